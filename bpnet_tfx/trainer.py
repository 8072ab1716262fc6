"""The training loop: one code path for every tf.distribute strategy.

A custom loop rather than `model.fit`, because Keras 3's `fit` does not run under
MultiWorkerMirroredStrategy and because augmentation belongs inside the distributed step, on
the accelerator. Each replica reads its own share of the shards
(`distribute_datasets_from_function`, per-replica batch = global batch / replicas), jitters and
reverse-complements its batch with stateless draws seeded by (step, replica), computes
per-example losses and scales them with `tf.nn.compute_average_loss` over the global batch; the
optimizer sums gradients over replicas. Checkpoints (weights, optimizer, epoch, step) are
written every epoch and every N steps, and a restarted run resumes from the last one.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import json
import math
import os
import shutil
import time
from typing import Any, Callable

import keras
import tensorflow as tf
from absl import logging

from bpnet_tfx import augment, data, export, losses, schema
from bpnet_tfx import model as model_lib
from bpnet_tfx.errors import BpnetError

STRATEGIES = ('auto', 'mirrored', 'multi_worker', 'one_device')
PRECISIONS = ('auto', 'float32', 'mixed_float16', 'mixed_bfloat16')


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

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d['model'] = self.model.to_dict()
        return d


def configure_cpu_replicas(n: int) -> None:
    """Splits the first CPU into `n` logical devices; must run before TensorFlow starts."""
    if n < 1:
        raise TrainError(f'--cpu_replicas must be >= 1, got {n}')
    if n == 1 or tf.config.list_physical_devices('GPU'):
        return
    cpu = tf.config.list_physical_devices('CPU')[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n)])


def make_strategy(name: str = 'auto') -> tf.distribute.Strategy:
    """Returns the strategy.

    'auto'/'mirrored' mirror over the visible GPUs (or the logical CPUs); 'multi_worker' is
    MultiWorkerMirroredStrategy configured from the TF_CONFIG environment variable (one
    process per host, each mirroring over its own GPUs); 'one_device' uses one device.
    """
    if name not in STRATEGIES:
        raise TrainError(f'--strategy must be one of {", ".join(STRATEGIES)}, got {name!r}')
    if name == 'multi_worker':
        if not os.environ.get('TF_CONFIG'):
            raise TrainError('--strategy=multi_worker needs the TF_CONFIG environment '
                             'variable (cluster and this task); see README')
        try:
            json.loads(os.environ['TF_CONFIG'])
        except json.JSONDecodeError as e:
            raise TrainError(f'TF_CONFIG is not valid JSON: {e}') from None
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices('GPU')
    if name == 'one_device':
        return tf.distribute.OneDeviceStrategy((gpus or tf.config.list_logical_devices('CPU'))[0].name)
    if gpus:
        return tf.distribute.MirroredStrategy([d.name for d in gpus])
    cpus = [d.name for d in tf.config.list_logical_devices('CPU')]
    return tf.distribute.MirroredStrategy(
        devices=cpus, cross_device_ops=tf.distribute.ReductionToOneDevice())


def resolve_precision(name: str) -> str:
    """Maps --precision=auto to the dtype policy that passed our accuracy rule.

    The rule: a faster policy becomes the default only while its validation loss after a
    fixed number of steps stays within 1% of float32's. On the 2-core AVX-512 BF16 CPU,
    bench_train.py measured mixed_bfloat16 1.05-2x faster (depending on the machine's load)
    but, even with the heads in float32, its loss after 200 steps was +1.02% above float32's
    (mean of 4 seeds, paired by seed; every pair worse: +0.52, +2.16, +0.78, +0.64%; float32
    alone spans 3.9% between seeds), and XLA was slower; so auto is float32 on every device.
    On a 2-core CPU without BF16 instructions (2026-12-01) mixed_bfloat16 ran at 0.28x
    float32's speed and XLA at 0.79-0.97x. bf16 numerics are the same on GPUs (not measured
    here), where it is much faster: ask for it with --precision.
    """
    if name not in PRECISIONS:
        raise TrainError(f'--precision must be one of {", ".join(PRECISIONS)}, got {name!r}')
    return 'float32' if name == 'auto' else name


def resolve_counts_loss_weight(value: str, info: schema.RecordsInfo) -> tuple[float, ...]:
    """Parses --counts_loss_weight into one weight per task.

    A non-negative number applies to every task; 'auto' gives each task the median total
    counts of its training records / 10 (the BPNet and ChromBPNet authors' rule).
    """
    if value == 'auto':
        if len(info.median_total_counts) != info.num_tasks:
            raise TrainError("--counts_loss_weight=auto needs median_total_counts per task in "
                             "the records' metadata.json; remake the records or give a number")
        return tuple(float(m) / 10.0 for m in info.median_total_counts)
    try:
        weight = float(value)
    except ValueError:
        raise TrainError(f"--counts_loss_weight must be a number or 'auto', got {value!r}") \
            from None
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
    if (config.sequence_length, config.output_length) != (info.sequence_length,
                                                          info.output_length):
        raise TrainError(f'the model maps {config.sequence_length} -> {config.output_length} '
                         f'bp but the records hold {info.sequence_length}-bp sequences and '
                         f'{info.output_length}-bp counts')


def make_step_functions(strategy: tf.distribute.Strategy, model: keras.Model,
                        optimizer: keras.optimizers.Optimizer, config: TrainConfig,
                        info: schema.RecordsInfo) -> tuple[Callable, Callable]:
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
    num_tasks = info.num_tasks
    weights = task_weights(config, num_tasks)
    length, margin = info.sequence_length, info.max_jitter
    use_control = config.model.use_control
    joint = config.model.profile_loss == 'joint'
    profile_nll = losses.joint_multinomial_nll if joint else losses.multinomial_nll

    def _losses(one_hot, profile, control, is_background, training):
        counts, log_counts = _targets(profile, num_tasks)
        if joint:  # One total over both strands: (batch[, tasks], 1).
            log_counts = tf.math.log1p(tf.reduce_sum(tf.reduce_sum(counts, axis=1), axis=-1,
                                                     keepdims=True))
        inputs = tf.cast(one_hot, tf.float32)
        if use_control:
            inputs = {model_lib.INPUT_NAME: inputs, model_lib.CONTROL_INPUT_NAME: control}
        out = model(inputs, training=training)
        logits, pred_log_counts = out[model_lib.PROFILE], out[model_lib.LOG_COUNTS]
        if num_tasks == 1:  # Give every tensor a task axis: (batch, [length,] tasks, strands).
            counts, logits = counts[:, :, None], logits[:, :, None]
            log_counts, pred_log_counts = log_counts[:, None], pred_log_counts[:, None]
        nll = tf.stack([profile_nll(counts[:, :, t], logits[:, :, t])
                        for t in range(num_tasks)], axis=1)  # (batch, tasks)
        peak = tf.ones_like(nll[:, 0])
        if is_background is not None:  # Background trains the counts heads only.
            peak = 1.0 - tf.cast(is_background, tf.float32)
            nll = nll * peak[:, None]
        mse = tf.stack([losses.log_counts_mse(log_counts[:, t], pred_log_counts[:, t])
                        for t in range(num_tasks)], axis=1)
        per_example = tf.reduce_sum(nll + tf.constant(weights, tf.float32) * mse, axis=1)
        return nll, mse, per_example, peak

    def _sums(nll, mse, per_example, peak):
        out = {'loss': tf.reduce_sum(per_example),
               'profile_nll': tf.reduce_sum(nll),
               'log_counts_mse': tf.reduce_sum(tf.reduce_mean(mse, axis=1)),
               'examples': tf.cast(tf.shape(nll)[0], tf.float32),
               'peak_examples': tf.reduce_sum(peak)}
        if num_tasks > 1:
            for t, task in enumerate(info.tasks):
                out[f'profile_nll/{task}'] = tf.reduce_sum(nll[:, t])
                out[f'log_counts_mse/{task}'] = tf.reduce_sum(mse[:, t])
        return out

    def _replica_train(batch, step):
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        seed = tf.stack([tf.cast(step, tf.int64) + config.seed * 1_000_003,
                         tf.cast(replica, tf.int64)])
        augmented = augment.augment_batch(
            batch['one_hot'], batch['profile'], sequence_length=length, max_jitter=margin,
            seed=seed, jitter=config.jitter, reverse_complement=config.reverse_complement,
            control=batch.get('control'))
        one_hot, profile = augmented[:2]
        control = augmented[2] if len(augmented) > 2 else None
        with tf.GradientTape() as tape:
            nll, mse, per_example, peak = _losses(one_hot, profile, control,
                                                  batch.get('is_background'), True)
            loss = tf.nn.compute_average_loss(per_example,
                                              global_batch_size=config.batch_size)
            # float16 needs loss scaling (LossScaleOptimizer unscales); others pass through.
            scaled = optimizer.scale_loss(loss)
        grads = tape.gradient(scaled, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return _sums(nll, mse, per_example, peak)

    def _replica_eval(batch):
        return _sums(*_losses(batch['one_hot'], batch['profile'], batch.get('control'),
                              batch.get('is_background'), False))

    def _reduce(per_replica):
        return {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
                for k, v in per_replica.items()}

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


def _dataset_fn(config: TrainConfig, info: schema.RecordsInfo, split: str, training: bool,
                seed: int):
    def fn(ctx: tf.distribute.InputContext) -> tf.data.Dataset:
        return data.make_dataset(
            config.records_dir, info, split, training=training, seed=seed,
            batch_size=ctx.get_per_replica_batch_size(config.batch_size),
            shuffle_buffer=config.shuffle_buffer, cache=config.cache and training,
            skip_corrupt=config.skip_corrupt_records, input_context=ctx)
    return fn


def measure_input_pipeline(config: TrainConfig, info: schema.RecordsInfo) -> float:
    """Examples per second of the training input pipeline alone (read, parse, batch, augment)."""
    n = config.input_benchmark_batches
    if n <= 0:
        return float('nan')
    ds = data.make_dataset(config.records_dir, info, 'train', batch_size=config.batch_size,
                           training=True, seed=config.seed,
                           shuffle_buffer=min(config.shuffle_buffer, 4 * config.batch_size),
                           skip_corrupt=config.skip_corrupt_records)

    @tf.function
    def _augment(batch, step):
        return augment.augment_batch(batch['one_hot'], batch['profile'],
                                     sequence_length=info.sequence_length,
                                     max_jitter=info.max_jitter, seed=tf.stack([step, step]),
                                     jitter=config.jitter,
                                     reverse_complement=config.reverse_complement)

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
        return TrainError(f'{path}: corrupt or truncated shard (after {n} records: {message}); '
                          'remake the records or pass --skip_corrupt_records')
    return TrainError(f'{config.records_dir}: reading {split} records failed: '
                      f'{str(error).splitlines()[0]}')


def _check_readable(config: TrainConfig, info: schema.RecordsInfo) -> dict[str, int]:
    """With --skip_corrupt_records: counts unreadable records up front, per split."""
    skipped = {}
    for split in ('train', 'valid'):
        expected = info.split_counts.get(split, 0)
        if not expected:
            continue
        scan = data.scan_shards(data.list_shards(config.records_dir, split))
        skipped[split] = max(expected - scan['records'], 0)
        for path, n, message in scan['corrupt']:
            logging.warning('skipping the rest of %s after %d records: %s', path, n, message)
    return skipped


class _Writer:
    """history.csv and TensorBoard scalars, one row per epoch."""

    def __init__(self, model_dir: str):
        self._csv_path = os.path.join(model_dir, 'history.csv')
        self._tb = tf.summary.create_file_writer(os.path.join(model_dir, 'logs'))

    def truncate(self, last_epoch: int) -> None:
        """Drops rows after `last_epoch`: a run killed after logging but before its
        checkpoint logs that epoch again when it resumes."""
        if not os.path.exists(self._csv_path):
            return
        with open(self._csv_path, newline='') as f:
            rows = list(csv.DictReader(f))
        keep = [r for r in rows if int(r['epoch']) <= last_epoch]
        if len(keep) == len(rows):
            return
        with open(self._csv_path, 'w', newline='') as f:
            if keep:
                w = csv.DictWriter(f, fieldnames=list(keep[0]))
                w.writeheader()
                w.writerows(keep)

    def write(self, epoch: int, row: dict[str, float]) -> None:
        new = not os.path.exists(self._csv_path)
        with open(self._csv_path, 'a', newline='') as f:
            w = csv.DictWriter(f, fieldnames=['epoch', *sorted(row)])
            if new:
                w.writeheader()
            w.writerow({'epoch': epoch, **row})
        with self._tb.as_default():
            for k, v in row.items():
                tf.summary.scalar(k, v, step=epoch)
        self._tb.flush()


def train(config: TrainConfig, info: schema.RecordsInfo, *,
          dry_run: bool = False) -> dict[str, Any]:
    """Trains (resuming from the model folder's last checkpoint), exports the best epoch.

    The Keras dtype policy of `config.precision` holds for the run and is restored after it;
    softmax, losses and the model's outputs stay float32 under every policy.

    Returns:
      The run summary also written to <model_dir>/train_summary.json.
    """
    precision = resolve_precision(config.precision)
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(precision)
    try:
        return _train(config, info, dry_run=dry_run, precision=precision)
    finally:
        keras.mixed_precision.set_global_policy(previous)


def _train(config: TrainConfig, info: schema.RecordsInfo, *, dry_run: bool,
           precision: str) -> dict[str, Any]:
    strategy = make_strategy(config.strategy)  # First: multi-worker must precede any op.
    keras.utils.set_random_seed(config.seed)
    # Under multi-worker training every worker runs this function; only the chief writes
    # the model folder (logs, best weights, export, summary). Checkpoints may involve
    # collective ops, so every worker saves, the others into a scratch folder.
    is_chief = bool(getattr(strategy.extended, 'should_checkpoint', True))
    say = print if is_chief else (lambda *a, **k: None)
    replicas = strategy.num_replicas_in_sync
    if config.batch_size % replicas:
        raise TrainError(f'--batch_size={config.batch_size} is not divisible by the '
                         f'{replicas} replicas')
    check_model_fits_records(config.model, info)
    n_train = info.split_counts.get('train', 0)
    n_valid = info.split_counts.get('valid', 0)
    if n_train == 0:
        raise TrainError(f'{config.records_dir}: no training records (split_counts '
                         f'{dict(info.split_counts)})')
    with strategy.scope():
        model = model_lib.build_bpnet(config.model)
        optimizer = keras.optimizers.Adam(learning_rate=config.learning_rate)
        if precision == 'mixed_float16':
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        optimizer.build(model.trainable_variables)
        epoch_var = tf.Variable(0, dtype=tf.int64, trainable=False, name='epoch')
        step_var = tf.Variable(0, dtype=tf.int64, trainable=False, name='step')
    if dry_run:
        model.summary(print_fn=lambda line, **_: print(line))
        batch = next(iter(data.make_dataset(config.records_dir, info, 'train',
                                            batch_size=config.batch_size, training=True,
                                            shuffle_buffer=1)))
        lengths = config.model.crop_arithmetic()
        print('window lengths (bp): ' + ' -> '.join(f'{k} {v}' for k, v in lengths.items()))
        print(f'parameters: {model.count_params():,}; receptive field: '
              f'{config.model.receptive_field} bp; input {config.model.sequence_length} bp -> '
              f'output {config.model.output_length} bp '
              f'({"valid" if config.model.valid_padding else "same"} padding, profile loss '
              f'{config.model.profile_loss}); records: train {n_train}, valid {n_valid}'
              + (f' (background: {dict(info.background_counts)})' if info.has_background
                 else '')
              + f'; first batch one_hot {tuple(batch["one_hot"].shape)}, profile '
              f'{tuple(batch["profile"].shape)}; replicas: {replicas}')
        return {'dry_run': True, 'parameters': model.count_params(),
                'receptive_field': config.model.receptive_field, 'lengths': lengths}

    skipped = _check_readable(config, info) if config.skip_corrupt_records else {}
    steps_per_epoch = config.steps_per_epoch or math.ceil(n_train / config.batch_size)
    ckpt_dir = os.path.join(config.model_dir, 'checkpoints')
    os.makedirs(ckpt_dir, exist_ok=True)
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, epoch=epoch_var,
                                     step=step_var)
    scratch = None
    save_dir = ckpt_dir
    if not is_chief:
        scratch = os.path.join(config.model_dir,
                               f'.worker-{strategy.cluster_resolver.task_id}-scratch')
        save_dir = os.path.join(scratch, 'checkpoints')
    manager = tf.train.CheckpointManager(checkpoint, save_dir, max_to_keep=2)
    state_path = os.path.join(ckpt_dir, 'best.json')
    best = {'val_loss': math.inf, 'epoch': 0}
    latest = tf.train.latest_checkpoint(ckpt_dir)  # Every worker resumes from the chief's.
    if latest:
        checkpoint.restore(latest).assert_existing_objects_matched()
        if os.path.exists(state_path):
            with open(state_path) as f:
                best = json.load(f)
        logging.info('resuming from %s: epoch %d, step %d', latest,
                     int(epoch_var.numpy()), int(step_var.numpy()))
        say(f'train: resuming from {latest} (epoch {int(epoch_var.numpy())}, step '
            f'{int(step_var.numpy())})')

    input_rate = measure_input_pipeline(config, info)
    train_step, eval_step = make_step_functions(strategy, model, optimizer, config, info)
    writer = _Writer(config.model_dir) if is_chief else None
    if writer:
        writer.truncate(int(epoch_var.numpy()))
    best_weights = os.path.join(ckpt_dir, 'best.weights.h5')
    logging.info('training on %d records (%d steps/epoch of %d over %d replicas), '
                 'validating on %d; input pipeline alone: %.0f examples/s', n_train,
                 steps_per_epoch, config.batch_size, replicas, n_valid, input_rate)
    train_seconds, train_examples, timed_total, rows = 0.0, 0, 0.0, []
    # One iterator for the whole run: the shuffle buffer fills once, and the training set
    # repeats with a new order each pass. Its seed includes the epoch the run starts at, so
    # a resumed run does not replay the first epoch's order.
    first_epoch = int(epoch_var.numpy())
    iterator = iter(strategy.distribute_datasets_from_function(
        _dataset_fn(config, info, 'train', True, config.seed + first_epoch)))
    compiled = False
    start = time.perf_counter()
    while int(epoch_var.numpy()) < config.epochs and not best.get('stopped_early'):
        epoch = int(epoch_var.numpy())
        done_in_epoch = int(step_var.numpy()) - epoch * steps_per_epoch
        sums = collections.defaultdict(float)
        timed_examples, t0 = 0.0, time.perf_counter()
        try:
            for _ in range(max(done_in_epoch, 0), steps_per_epoch):
                out = train_step(iterator, step_var.value())
                step_var.assign_add(1)
                for k, v in out.items():
                    sums[k] += float(v)
                if not compiled:  # Throughput leaves out the first step: tracing, warm-up.
                    compiled, t0 = True, time.perf_counter()
                else:
                    timed_examples += float(out['examples'])
                if (config.checkpoint_every_steps
                        and int(step_var.numpy()) % config.checkpoint_every_steps == 0):
                    manager.save(checkpoint_number=int(step_var.numpy()))
        except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as e:
            raise _name_corrupt_shard(config, 'train', e) from None
        seconds = time.perf_counter() - t0
        train_seconds += seconds
        train_examples += int(sums['examples'])
        timed_total += timed_examples
        row = _means(sums)
        row['examples_per_second'] = timed_examples / max(seconds, 1e-9)
        row['input_examples_per_second'] = input_rate
        if n_valid:
            row.update(_evaluate(strategy, eval_step, config, info))
        monitor = row.get('val_loss', row['loss'])
        if monitor < best['val_loss']:
            best = {'val_loss': monitor, 'epoch': epoch + 1, 'row': row}
            if is_chief:
                model.save_weights(best_weights)
        stale = epoch + 1 - best['epoch']  # epochs since the last improvement
        old_lr = float(optimizer.learning_rate.numpy())
        lr = plateau_learning_rate(old_lr, stale, config.reduce_lr_patience)
        if lr != old_lr:
            optimizer.learning_rate.assign(lr)
            say(f'train: no improvement for {stale} epochs: learning rate -> {lr:g}')
        row['learning_rate'] = float(optimizer.learning_rate.numpy())
        epoch_var.assign(epoch + 1)
        if writer:
            writer.write(epoch + 1, row)
        rows.append(row)
        manager.save(checkpoint_number=int(step_var.numpy()))
        if is_chief:
            with open(state_path, 'w') as f:
                json.dump(best, f)
        say(f'epoch {epoch + 1}/{config.epochs}: loss {row["loss"]:.2f} (profile '
              f'{row["profile_nll"]:.2f}, counts {row["log_counts_mse"]:.3f})'
              + (f' | val loss {row["val_loss"]:.2f} (profile {row["val_profile_nll"]:.2f}, '
                 f'counts {row["val_log_counts_mse"]:.3f})' if n_valid else '')
              + f' | {row["examples_per_second"]:.0f} ex/s, {seconds:.0f} s', flush=True)
        if config.patience and stale >= config.patience:
            say(f'train: early stop after epoch {epoch + 1}: no improvement of '
                f'{"val_loss" if n_valid else "loss"} for {stale} epochs (best: epoch '
                f'{best["epoch"]})')
            best['stopped_early'] = True
            if is_chief:
                with open(state_path, 'w') as f:
                    json.dump(best, f)
            break

    if not is_chief:
        shutil.rmtree(scratch, ignore_errors=True)
        return {'chief': False, 'epochs': int(epoch_var.numpy()), 'final': rows[-1] if rows
                else None, 'replicas': replicas}
    if os.path.exists(best_weights):
        model.load_weights(best_weights)
    # Serve in float32 whatever the training precision: same weights, full-precision math.
    keras.mixed_precision.set_global_policy('float32')
    serving_model = model_lib.build_bpnet(config.model)
    serving_model.set_weights(model.get_weights())
    export_path = export.export_saved_model(serving_model, info, config.model,
                                            config.export_dir)
    summary = {
        'chief': True,
        'epochs': int(epoch_var.numpy()),
        'epochs_this_run': len(rows),
        'best_epoch': best['epoch'],
        'monitor': 'val_loss' if n_valid else 'loss',
        'final': rows[-1] if rows else None,
        'best': best.get('row'),
        'examples_seen': train_examples,
        'examples_per_second': timed_total / max(train_seconds, 1e-9),
        'input_examples_per_second': input_rate,
        'skipped_corrupt_records': skipped,
        'wall_seconds': time.perf_counter() - start,
        'replicas': replicas,
        'devices': list(strategy.extended.worker_devices),
        'strategy': type(strategy).__name__,
        'precision': precision,
        'stopped_early': bool(best.get('stopped_early')),
        'tensorflow': tf.__version__,
        'keras': keras.__version__,
        'parameters': model.count_params(),
        'export_dir': export_path,
        'config': config.to_dict(),
    }
    with open(os.path.join(config.model_dir, 'train_summary.json'), 'w') as f:
        json.dump(summary, f, indent=2, sort_keys=True)
        f.write('\n')
    return summary


def plateau_learning_rate(lr: float, stale: int, patience: int) -> float:
    """The learning rate after an epoch `stale` epochs past the best one: halved after every
    `patience` epochs without improvement (0: never), down to 1e-6; never raised."""
    if patience and stale and stale % patience == 0:
        return max(lr * 0.5, min(lr, 1e-6))
    return lr


def _evaluate(strategy, eval_step, config: TrainConfig,
              info: schema.RecordsInfo) -> dict[str, float]:
    valid = strategy.distribute_datasets_from_function(
        _dataset_fn(config, info, 'valid', False, config.seed))
    sums = collections.defaultdict(float)
    try:
        for batch in valid:
            for k, v in eval_step(batch).items():
                sums[k] += float(v)
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as e:
        raise _name_corrupt_shard(config, 'valid', e) from None
    return {f'val_{k}': v for k, v in _means(sums).items()}


def _means(sums: dict[str, float]) -> dict[str, float]:
    """Example-weighted means of step sums; profile NLLs are over peak (non-background)
    examples, everything else over all examples."""
    out = {}
    for k, v in sums.items():
        if k in ('examples', 'peak_examples'):
            continue
        n = sums['peak_examples'] if k.startswith('profile_nll') else sums['examples']
        out[k] = v / max(n, 1)
    return out
