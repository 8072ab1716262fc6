"""The training loop: one code path for every tf.distribute strategy.

A custom loop rather than `model.fit`, because Keras 3's `fit` does not run under
MultiWorkerMirroredStrategy and because augmentation belongs inside the distributed step, on
the accelerator. Each replica reads its own share of the shards
(`distribute_datasets_from_function`, per-replica batch = global batch / replicas), jitters and
reverse-complements its batch with stateless draws seeded by (step, replica), computes
per-example losses and scales them with `tf.nn.compute_average_loss` over the global batch; the
optimizer sums gradients over replicas. Checkpoints (weights, optimizer, epoch, step) are
written every epoch and every N steps, and a restarted run resumes from the last one.

The caller creates the strategy and sets the dtype policy (`devices`); `train` builds the
model, optimizer and `checkpointing.Checkpointer` in its scope, runs `epochs.train_epochs`
(the plateau rule is `plateau`, the per-epoch record `history`) and exports the best epoch.
Progress goes to a callback (`Progress`), never to stdout.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import math
import os
import time
from typing import Any, Callable

import keras
import tensorflow as tf
from absl import logging

from bpnet_tfx import augment, checkpointing, data, devices, epochs, export, history, losses, schema
from bpnet_tfx import model as model_lib
from bpnet_tfx.errors import BpnetError

VALIDATIONS = ('records', 'none')
# Kept here for benchmarks/bench_input_pipeline.py; mains create strategies with devices.
make_strategy = devices.make_strategy


class TrainError(BpnetError):
    """A problem with the flags, the records or the model folder, reported in one line."""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs, made from flags once by the main."""

    records_dir: str
    model_dir: str
    export_dir: str
    model: model_lib.ModelConfig
    epochs: int = 25
    batch_size: int = 512
    learning_rate: float = 1e-3
    counts_loss_weight: float | tuple[float, ...] = 10.0  # one, or one per task
    shuffle_buffer: int = 10_000
    reverse_complement: bool = True
    jitter: bool = True
    cache: bool = False
    skip_corrupt_records: bool = False
    steps_per_epoch: int | None = None
    checkpoint_every_steps: int = 0
    input_benchmark_batches: int = 20
    strategy: str = 'auto'
    precision: str = 'auto'
    jit_compile: bool = False
    patience: int = 0
    reduce_lr_patience: int = 0
    cpu_replicas: int = 1
    seed: int = 0
    validation: str = 'records'  # 'none': no validation pass; the export is the last epoch

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d['model'] = self.model.to_dict()
        return d


def resolve_counts_loss_weight(value: str, info: schema.RecordsInfo) -> tuple[float, ...]:
    """Parses --counts_loss_weight into one weight per task.

    A non-negative number applies to every task; 'auto' gives each task the median total
    counts of its training records / 10 (the BPNet and ChromBPNet authors' rule).
    """
    if value == 'auto':
        if len(info.median_total_counts) != info.num_tasks:
            raise TrainError(
                "--counts_loss_weight=auto needs median_total_counts per task in "
                "the records' metadata.json; remake the records or give a number"
            )
        return tuple(float(m) / 10.0 for m in info.median_total_counts)
    try:
        weight = float(value)
    except ValueError:
        raise TrainError(
            f"--counts_loss_weight must be a number or 'auto', got {value!r}"
        ) from None
    if not math.isfinite(weight) or weight < 0:
        raise TrainError(f'--counts_loss_weight must be finite and >= 0, got {value}')
    return (weight,) * info.num_tasks


def task_weights(config: TrainConfig, num_tasks: int) -> tuple[float, ...]:
    """The counts loss weight of each task."""
    w = config.counts_loss_weight
    weights = tuple(w) if isinstance(w, (tuple, list)) else (float(w),) * num_tasks
    if len(weights) != num_tasks:
        raise TrainError(f'{len(weights)} counts loss weights for {num_tasks} tasks')
    return weights


def _targets(profile: tf.Tensor, num_tasks: int) -> tuple[tf.Tensor, tf.Tensor]:
    targets = data.model_targets(profile, num_tasks)
    return targets[schema.TARGET_PROFILE], targets[schema.TARGET_LOG_COUNTS]


def check_model_fits_records(config: model_lib.ModelConfig, info: schema.RecordsInfo) -> None:
    """Raises TrainError unless the model's input and output lengths are the records'."""
    if (config.sequence_length, config.output_length) != (info.sequence_length, info.output_length):
        raise TrainError(
            f'the model maps {config.sequence_length} -> {config.output_length} '
            f'bp but the records hold {info.sequence_length}-bp sequences and '
            f'{info.output_length}-bp counts'
        )


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
            inputs = {model_lib.INPUT_NAME: inputs, model_lib.CONTROL_INPUT_NAME: control}
        out = model(inputs, training=training)
        logits, pred_log_counts = out[model_lib.PROFILE], out[model_lib.LOG_COUNTS]
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
    length, margin = info.sequence_length, info.max_jitter
    _losses = _loss_function(model, config, info)

    def _replica_train(batch, step):
        batch = data.model_inputs(batch)  # Tokens -> one-hot, counts -> float32, on the device.
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        seed = tf.stack(
            [tf.cast(step, tf.int64) + config.seed * 1_000_003, tf.cast(replica, tf.int64)]
        )
        augmented = augment.augment_batch(
            batch['one_hot'],
            batch['profile'],
            sequence_length=length,
            max_jitter=margin,
            seed=seed,
            jitter=config.jitter,
            reverse_complement=config.reverse_complement,
            control=batch.get('control'),
        )
        one_hot, profile = augmented[:2]
        control = augmented[2] if len(augmented) > 2 else None
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


def _dataset_fn(
    config: TrainConfig, info: schema.RecordsInfo, split: str, training: bool, seed: int
):
    def fn(ctx: tf.distribute.InputContext) -> tf.data.Dataset:
        return data.make_dataset(
            config.records_dir,
            info,
            split,
            training=training,
            seed=seed,
            batch_size=ctx.get_per_replica_batch_size(config.batch_size),
            shuffle_buffer=config.shuffle_buffer,
            cache=config.cache and training,
            skip_corrupt=config.skip_corrupt_records,
            input_context=ctx,
        )

    return fn


def measure_input_pipeline(config: TrainConfig, info: schema.RecordsInfo) -> float:
    """Examples per second of the training input pipeline alone (read, parse, batch, augment)."""
    n = config.input_benchmark_batches
    if n <= 0:
        return float('nan')
    ds = data.make_dataset(
        config.records_dir,
        info,
        'train',
        batch_size=config.batch_size,
        training=True,
        seed=config.seed,
        shuffle_buffer=min(config.shuffle_buffer, 4 * config.batch_size),
        skip_corrupt=config.skip_corrupt_records,
    )

    @tf.function
    def _augment(batch, step):
        batch = data.model_inputs(batch)
        return augment.augment_batch(
            batch['one_hot'],
            batch['profile'],
            sequence_length=info.sequence_length,
            max_jitter=info.max_jitter,
            seed=tf.stack([step, step]),
            jitter=config.jitter,
            reverse_complement=config.reverse_complement,
        )

    it = iter(ds)
    _augment(next(it), tf.constant(0, tf.int64))  # warm-up: tracing, buffers
    start = time.perf_counter()
    examples = 0
    for i in range(n):
        one_hot, _ = _augment(next(it), tf.constant(i, tf.int64))
        examples += int(one_hot.shape[0])
    return examples / (time.perf_counter() - start)


def _name_corrupt_shard(config: TrainConfig, split: str, error: Exception) -> TrainError:
    scan = data.scan_shards(data.list_shards(config.records_dir, split))
    if scan['corrupt']:
        path, n, message = scan['corrupt'][0]
        return TrainError(
            f'{path}: corrupt or truncated shard (after {n} records: {message}); '
            'remake the records or pass --skip_corrupt_records'
        )
    return TrainError(
        f'{config.records_dir}: reading {split} records failed: {str(error).splitlines()[0]}'
    )


Progress = Callable[..., None]
"""progress(event, **values): how the trainer reports to its caller (train.main prints it).

Events (only the chief reports): 'skipped_shard' (path, records, message), 'resume'
(checkpoint, epoch, step), 'start' (records, valid_records: None without validation,
steps_per_epoch, batch_size, replicas, input_examples_per_second), 'learning_rate' (stale,
learning_rate), 'epoch' (epoch, epochs, row, seconds), 'early_stop' (epoch, monitor, stale,
best_epoch)."""


def _ignore(event: str, **values: Any) -> None:
    del event, values


def _check_readable(
    config: TrainConfig, info: schema.RecordsInfo, splits: tuple[str, ...], report: Progress
) -> dict[str, int]:
    """With --skip_corrupt_records: counts unreadable records up front, per split."""
    skipped = {}
    for split in splits:
        expected = info.split_counts.get(split, 0)
        if not expected:
            continue
        scan = data.scan_shards(data.list_shards(config.records_dir, split))
        skipped[split] = max(expected - scan['records'], 0)
        for path, n, message in scan['corrupt']:
            report('skipped_shard', path=path, records=n, message=message)
    return skipped


def check_run(config: TrainConfig, info: schema.RecordsInfo, replicas: int) -> bool:
    """Raises TrainError unless `config` can train on these records over `replicas`.

    Returns:
      Whether the run validates (on the records' valid split) after every epoch.
    """
    if config.validation not in VALIDATIONS:
        raise TrainError(
            f'--validation must be one of {", ".join(VALIDATIONS)}, got {config.validation!r}'
        )
    if config.batch_size % replicas:
        raise TrainError(
            f'--batch_size={config.batch_size} is not divisible by the {replicas} replicas'
        )
    check_model_fits_records(config.model, info)
    if info.split_counts.get('train', 0) == 0:
        raise TrainError(
            f'{config.records_dir}: no training records (split_counts {dict(info.split_counts)})'
        )
    if config.validation == 'none':
        for name in ('patience', 'reduce_lr_patience'):
            if getattr(config, name):
                raise TrainError(
                    f'--{name} needs a validation loss; it cannot be used with --validation=none'
                )
        return False
    if info.split_counts.get('valid', 0) == 0:
        raise TrainError(
            f'{config.records_dir}: no validation records (split_counts '
            f'{dict(info.split_counts)}); remake the records with a validation '
            'split (make_records --valid_chroms) or pass --validation=none to '
            "export the last epoch's weights"
        )
    return True


def _policy(config: TrainConfig) -> str:
    """The Keras dtype policy the run is under; it must be the one config.precision names."""
    policy = keras.mixed_precision.global_policy().name
    wanted = devices.resolve_precision(config.precision)
    if policy != wanted:
        raise TrainError(
            f'config.precision is {config.precision!r} but the Keras dtype policy '
            f'is {policy!r}: train under devices.dtype_policy({wanted!r})'
        )
    return policy


def train(
    config: TrainConfig,
    info: schema.RecordsInfo,
    *,
    strategy: tf.distribute.Strategy | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Trains (resuming from the model folder's last checkpoint) and exports the model.

    The export holds the best epoch's weights (lowest validation loss), or with
    validation='none' the last epoch's. The run computes under the Keras dtype policy that
    is set (the caller sets it, see `devices.dtype_policy`; it must be config.precision's);
    softmax, losses and the model's outputs stay float32 under every policy, and the export
    is float32.

    Args:
      config: the run.
      info: the records' metadata.
      strategy: where to compute; default the current one (`tf.distribute.get_strategy()`).
      progress: called with what a user wants to see as the run goes (see `Progress`).

    Returns:
      The run summary also written to <model_dir>/train_summary.json.
    """
    strategy = strategy or tf.distribute.get_strategy()
    precision = _policy(config)
    validate = check_run(config, info, strategy.num_replicas_in_sync)
    keras.utils.set_random_seed(config.seed)
    # Under multi-worker training every worker runs this function; only the chief writes
    # the model folder (logs, best weights, export, summary) and reports progress.
    is_chief = bool(getattr(strategy.extended, 'should_checkpoint', True))
    report = (progress or _ignore) if is_chief else _ignore
    model, optimizer, ckpt = _build(config, strategy, precision, is_chief)
    splits = ('train', 'valid') if validate else ('train',)
    skipped = _check_readable(config, info, splits, report) if config.skip_corrupt_records else {}
    latest = ckpt.restore()
    if latest:
        report('resume', checkpoint=latest, epoch=ckpt.epochs_done, step=ckpt.steps_done)
    steps_per_epoch = config.steps_per_epoch or math.ceil(
        info.split_counts['train'] / config.batch_size
    )
    input_rate = measure_input_pipeline(config, info)
    train_step, eval_step = make_step_functions(strategy, model, optimizer, config, info)
    # One iterator for the whole run: the shuffle buffer fills once, and the training set
    # repeats with a new order each pass. Its seed includes the epoch the run starts at, so
    # a resumed run does not replay the first epoch's order.
    iterator = iter(
        strategy.distribute_datasets_from_function(
            _dataset_fn(config, info, 'train', True, config.seed + ckpt.epochs_done)
        )
    )
    runner = epochs.EpochRunner(
        train_step,
        iterator,
        ckpt,
        steps_per_epoch=steps_per_epoch,
        checkpoint_every_steps=config.checkpoint_every_steps,
        input_rate=input_rate,
        evaluate=(lambda: _evaluate(strategy, eval_step, config, info)) if validate else None,
        data_error=lambda e: _name_corrupt_shard(config, 'train', e),
    )
    logging.info(
        'strategy %s over %s, dtype policy %s',
        type(strategy).__name__,
        devices.strategy_devices(strategy),
        precision,
    )
    report(
        'start',
        records=info.split_counts['train'],
        valid_records=info.split_counts['valid'] if validate else None,
        steps_per_epoch=steps_per_epoch,
        batch_size=config.batch_size,
        replicas=strategy.num_replicas_in_sync,
        input_examples_per_second=input_rate,
    )
    start = time.perf_counter()
    rows = epochs.train_epochs(
        runner,
        ckpt,
        optimizer,
        epochs=config.epochs,
        patience=config.patience,
        reduce_lr_patience=config.reduce_lr_patience,
        report=report,
        writer=history.History(config.model_dir) if is_chief else None,
    )
    if not is_chief:
        ckpt.close()
        return {
            'chief': False,
            'epochs': ckpt.epochs_done,
            'final': rows[-1] if rows else None,
            'replicas': strategy.num_replicas_in_sync,
        }
    export_path = _export(model, ckpt if validate else None, config, info)
    summary = {
        **_summary(runner, ckpt, rows, validate),
        'chief': True,
        'skipped_corrupt_records': skipped,
        'wall_seconds': time.perf_counter() - start,
        'replicas': strategy.num_replicas_in_sync,
        'devices': devices.strategy_devices(strategy),
        'strategy': type(strategy).__name__,
        'precision': precision,
        'parameters': model.count_params(),
        'export_dir': export_path,
        'config': config.to_dict(),
    }
    with open(os.path.join(config.model_dir, 'train_summary.json'), 'w') as f:
        json.dump(summary, f, indent=2, sort_keys=True)
        f.write('\n')
    return summary


def _build(
    config: TrainConfig, strategy: tf.distribute.Strategy, precision: str, is_chief: bool
) -> tuple[keras.Model, keras.optimizers.Optimizer, checkpointing.Checkpointer]:
    """The model, its optimizer and their checkpointer, in the strategy's scope."""
    with strategy.scope():
        model = model_lib.build_bpnet(config.model)
        optimizer = keras.optimizers.Adam(learning_rate=config.learning_rate)
        if precision == 'mixed_float16':
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        optimizer.build(model.trainable_variables)
        ckpt = checkpointing.Checkpointer(
            config.model_dir,
            model,
            optimizer,
            chief=is_chief,
            task_id=0 if is_chief else strategy.cluster_resolver.task_id,
        )
    return model, optimizer, ckpt


def _export(
    model: keras.Model,
    best: checkpointing.Checkpointer | None,
    config: TrainConfig,
    info: schema.RecordsInfo,
) -> str:
    """Exports the best epoch's weights (`best`), or the model's as they are (None).

    Serves in float32 whatever the training precision: same weights, full-precision math.
    """
    if best is not None:
        best.load_best_weights()
    with devices.dtype_policy('float32'):
        serving_model = model_lib.build_bpnet(config.model)
    serving_model.set_weights(model.get_weights())
    return export.export_saved_model(serving_model, info, config.model, config.export_dir)


def _summary(
    runner: epochs.EpochRunner,
    ckpt: checkpointing.Checkpointer,
    rows: list[dict[str, float]],
    validate: bool,
) -> dict[str, Any]:
    """The summary's training part: epochs, which weights were exported, throughput."""
    if validate:
        exported = {
            'monitor': 'val_loss',
            'best_epoch': ckpt.best['epoch'],
            'best': ckpt.best.get('row'),
            'exported': 'best_epoch',
        }
    else:
        exported = {
            'monitor': None,
            'best_epoch': None,
            'best': None,
            'exported': 'last_epoch',
            'note': "no validation: exported the last epoch's weights",
        }
    return {
        **exported,
        'validation': 'records' if validate else 'none',
        'epochs': ckpt.epochs_done,
        'epochs_this_run': len(rows),
        'final': rows[-1] if rows else None,
        'examples_seen': runner.train_examples,
        'examples_per_second': runner.timed_examples / max(runner.train_seconds, 1e-9),
        'input_examples_per_second': runner.input_rate,
        'stopped_early': ckpt.stopped_early,
        'tensorflow': tf.__version__,
        'keras': keras.__version__,
    }


def _evaluate(
    strategy, eval_step, config: TrainConfig, info: schema.RecordsInfo
) -> dict[str, float]:
    valid = strategy.distribute_datasets_from_function(
        _dataset_fn(config, info, 'valid', False, config.seed)
    )
    sums = collections.defaultdict(float)
    try:
        for batch in valid:
            for k, v in eval_step(batch).items():
                sums[k] += float(v)
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as e:
        raise _name_corrupt_shard(config, 'valid', e) from None
    return {f'val_{k}': v for k, v in epochs.means(sums).items()}
