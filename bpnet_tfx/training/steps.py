"""The distributed train and eval step functions of a run (its config: config.py).

`make_step_functions` builds the per-replica steps a strategy runs: augmentation (stateless
draws seeded by step and replica) inside the step, per-example losses (profile NLL per task,
weighted log-counts MSE; background records train the counts heads only) scaled with
`tf.nn.compute_average_loss` over the global batch, and per-batch sums reduced over replicas.
"""

from __future__ import annotations

from typing import Callable

import keras
import tensorflow as tf

from bpnet_tfx.modeling import losses
from bpnet_tfx.modeling.config import CONTROL_INPUT_NAME, INPUT_NAME, LOG_COUNTS, PROFILE
from bpnet_tfx.records import augment, schema
from bpnet_tfx.records import dataset as data
from bpnet_tfx.training.config import TrainConfig, task_weights


def _targets(profile: tf.Tensor, num_tasks: int) -> tuple[tf.Tensor, tf.Tensor]:
    targets = data.model_targets(profile, num_tasks)
    return targets[schema.TARGET_PROFILE], targets[schema.TARGET_LOG_COUNTS]


def _loss_function(model: keras.Model, config: TrainConfig, info: schema.RecordsInfo):
    """(one_hot, profile, control, is_background, training) -> (nll, mse, per_example, peak).

    nll and mse are (batch, tasks), per_example (batch,) the weighted total, peak (batch,) 1
    for peak records and 0 for background (whose profile NLL is zeroed).
    """
    num_tasks = info.num_tasks
    weights = task_weights(config, num_tasks)
    use_control = config.model.use_control
    joint = config.model.profile_loss == 'joint'
    profile_nll = losses.joint_multinomial_nll if joint else losses.multinomial_nll

    def _losses(one_hot, profile, control, is_background, training):
        counts, log_counts = _targets(profile, num_tasks)
        if joint:  # One total over both strands: (batch[, tasks], 1).
            log_counts = tf.math.log1p(
                tf.reduce_sum(tf.reduce_sum(counts, axis=1), axis=-1, keepdims=True)
            )
        inputs = tf.cast(one_hot, tf.float32)
        if use_control:
            inputs = {INPUT_NAME: inputs, CONTROL_INPUT_NAME: control}
        out = model(inputs, training=training)
        logits, pred_log_counts = out[PROFILE], out[LOG_COUNTS]
        if num_tasks == 1:  # Give every tensor a task axis: (batch, [length,] tasks, strands).
            counts, logits = counts[:, :, None], logits[:, :, None]
            log_counts, pred_log_counts = log_counts[:, None], pred_log_counts[:, None]
        nll = tf.stack(
            [profile_nll(counts[:, :, t], logits[:, :, t]) for t in range(num_tasks)], axis=1
        )  # (batch, tasks)
        peak = tf.ones_like(nll[:, 0])
        if is_background is not None:  # Background trains the counts heads only.
            peak = 1.0 - tf.cast(is_background, tf.float32)
            nll = nll * peak[:, None]
        mse = tf.stack(
            [
                losses.log_counts_mse(log_counts[:, t], pred_log_counts[:, t])
                for t in range(num_tasks)
            ],
            axis=1,
        )
        per_example = tf.reduce_sum(nll + tf.constant(weights, tf.float32) * mse, axis=1)
        return nll, mse, per_example, peak

    return _losses


def _step_sums(nll, mse, per_example, peak, tasks: tuple[str, ...]) -> dict[str, tf.Tensor]:
    """A step's sums over its batch (see make_step_functions)."""
    out = {
        'loss': tf.reduce_sum(per_example),
        'profile_nll': tf.reduce_sum(nll),
        'log_counts_mse': tf.reduce_sum(tf.reduce_mean(mse, axis=1)),
        'examples': tf.cast(tf.shape(nll)[0], tf.float32),
        'peak_examples': tf.reduce_sum(peak),
    }
    if len(tasks) > 1:
        for t, task in enumerate(tasks):
            out[f'profile_nll/{task}'] = tf.reduce_sum(nll[:, t])
            out[f'log_counts_mse/{task}'] = tf.reduce_sum(mse[:, t])
    return out


def _augment_replica_batch(
    batch: dict[str, tf.Tensor], step: tf.Tensor, config: TrainConfig, info: schema.RecordsInfo
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor | None]:
    """(one_hot, profile, control or None) of a replica's batch, jittered and RC'd with
    stateless draws seeded by (step, replica): each replica and step augments differently."""
    replica = tf.distribute.get_replica_context().replica_id_in_sync_group
    seed = tf.stack([tf.cast(step, tf.int64) + config.seed * 1_000_003, tf.cast(replica, tf.int64)])
    augmented = augment.augment_batch(
        batch['one_hot'],
        batch['profile'],
        sequence_length=info.sequence_length,
        max_jitter=info.max_jitter,
        seed=seed,
        jitter=config.jitter,
        reverse_complement=config.reverse_complement,
        control=batch.get('control'),
    )
    one_hot, profile = augmented[:2]
    return one_hot, profile, augmented[2] if len(augmented) > 2 else None


def _replica_steps(
    model: keras.Model,
    optimizer: keras.optimizers.Optimizer,
    config: TrainConfig,
    info: schema.RecordsInfo,
) -> tuple[Callable, Callable]:
    """The per-replica train step (batch, step) and eval step (batch), each returning the
    replica's sums (`_step_sums`)."""
    _losses = _loss_function(model, config, info)

    def _replica_train(batch, step):
        batch = data.model_inputs(batch)  # Tokens -> one-hot, counts -> float32, on the device.
        one_hot, profile, control = _augment_replica_batch(batch, step, config, info)
        with tf.GradientTape() as tape:
            nll, mse, per_example, peak = _losses(
                one_hot, profile, control, batch.get('is_background'), True
            )
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=config.batch_size)
            # float16 needs loss scaling (LossScaleOptimizer unscales); others pass through.
            scaled = optimizer.scale_loss(loss)
        grads = tape.gradient(scaled, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return _step_sums(nll, mse, per_example, peak, info.tasks)

    def _replica_eval(batch):
        batch = data.model_inputs(batch)
        return _step_sums(
            *_losses(
                batch['one_hot'],
                batch['profile'],
                batch.get('control'),
                batch.get('is_background'),
                False,
            ),
            info.tasks,
        )

    return _replica_train, _replica_eval


def make_step_functions(
    strategy: tf.distribute.Strategy,
    model: keras.Model,
    optimizer: keras.optimizers.Optimizer,
    config: TrainConfig,
    info: schema.RecordsInfo,
) -> tuple[Callable, Callable]:
    """Builds the distributed train and eval steps.

    Both return per-batch sums over the global batch: {'loss', 'profile_nll' (summed over
    tasks), 'log_counts_mse' (averaged over tasks), 'examples', 'peak_examples'} and, with
    several tasks, 'profile_nll/<task>' and 'log_counts_mse/<task>'; dividing by 'examples'
    (by 'peak_examples' for the profile NLLs) gives example-weighted means. Background
    records (`is_background`) add nothing to the profile loss: they train the counts heads
    only, as in bpnet v2 and ChromBPNet. With profile_loss='joint' the profile NLL is one
    multinomial over length x strands and the counts target is log(1 + total of both strands).

    Returns:
      (train_step(iterator, step), eval_step(batch)), tf.functions to call in cross-replica
      context.
    """
    _replica_train, _replica_eval = _replica_steps(model, optimizer, config, info)

    def _reduce(per_replica):
        return {
            k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
            for k, v in per_replica.items()
        }

    replica_train, replica_eval = _replica_train, _replica_eval
    if config.jit_compile:  # XLA compiles the per-replica computation, not the input.
        replica_train = tf.function(_replica_train, jit_compile=True)
        replica_eval = tf.function(_replica_eval, jit_compile=True)

    @tf.function
    def train_step(iterator, step):
        return _reduce(strategy.run(replica_train, args=(next(iterator), step)))

    @tf.function
    def eval_step(batch):
        return _reduce(strategy.run(replica_eval, args=(batch,)))

    return train_step, eval_step
