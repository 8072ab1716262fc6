"""Trains BPNet on a records folder under tf.distribute.MirroredStrategy and exports it.

    python -m bpnet_tfx.train --flagfile=configs/demo.flags

Flags become a `TrainConfig` once; the records' metadata.json fixes the window length, tasks
and strands. The model, optimizer and metrics are built in `strategy.scope()`; `model.fit`
gets global batches and Keras splits them over the replicas. Writes to --model_dir:
train_config.json, checkpoints/ (last and best weights), logs/ (TensorBoard), history.csv,
train_summary.json, and the SavedModel (default <model_dir>/export).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
import warnings
from typing import Any

from absl import app, flags, logging

_RECORDS_DIR = flags.DEFINE_string(
    'records_dir', None, 'Folder written by beam_jobs.make_records (holds metadata.json).')
_MODEL_DIR = flags.DEFINE_string(
    'model_dir', None, 'Output folder for checkpoints, TensorBoard logs and summaries.')
_EXPORT_DIR = flags.DEFINE_string(
    'export_dir', None, 'Where to write the SavedModel; default <model_dir>/export.')
_EPOCHS = flags.DEFINE_integer('epochs', 25, 'Passes over the training records.')
_BATCH_SIZE = flags.DEFINE_integer('batch_size', 512, 'Global batch size, over all replicas.')
_LEARNING_RATE = flags.DEFINE_float('learning_rate', 1e-3, 'Adam learning rate.')
_COUNTS_LOSS_WEIGHT = flags.DEFINE_string(
    'counts_loss_weight', '10',
    "Weight of the log-counts MSE against the profile NLL: a number, or 'auto' for the median "
    'total counts of the training records / 10 (from metadata.json).')
_FILTERS = flags.DEFINE_integer('filters', 64, 'Channels of every body convolution.')
_STEM_KERNEL_SIZE = flags.DEFINE_integer('stem_kernel_size', 25,
                                         'Kernel size (bp) of the first convolution.')
_NUM_DILATED_LAYERS = flags.DEFINE_integer(
    'num_dilated_layers', 9, 'Dilated residual layers; dilations 2, 4, ..., 2**layers.')
_PROFILE_KERNEL_SIZE = flags.DEFINE_integer('profile_kernel_size', 25,
                                            'Kernel size (bp) of the profile head.')
_SHUFFLE_BUFFER = flags.DEFINE_integer('shuffle_buffer', 10_000,
                                       'Records in the training shuffle buffer.')
_REVERSE_COMPLEMENT = flags.DEFINE_bool(
    'reverse_complement', True, 'Randomly reverse-complement half of the training examples.')
_JITTER = flags.DEFINE_bool(
    'jitter', True, 'Randomly shift training windows within the margin stored in the records '
    '(make_records --max_jitter); no effect when the margin is 0.')
_CACHE = flags.DEFINE_bool('cache', False, 'Keep the serialised records in memory after the '
                           'first epoch (for sets that fit in RAM).')
_STEPS_PER_EPOCH = flags.DEFINE_integer(
    'steps_per_epoch', None, 'Training steps per epoch; default one pass over the records.')
_CPU_REPLICAS = flags.DEFINE_integer(
    'cpu_replicas', 1, 'With no GPU: split the CPU into this many logical devices and run one '
    'replica on each (for testing data parallelism without GPUs).')
_SEED = flags.DEFINE_integer('seed', 0, 'Seed for weights, shuffling and augmentation.')
_OVERWRITE = flags.DEFINE_bool(
    'overwrite', False, 'Allow a model_dir that holds a run of a different architecture.')
_DRY_RUN = flags.DEFINE_bool(
    'dry_run', False, 'Build the model, print its summary and parameter count, check the '
    'records, and exit without training.')


class TrainError(Exception):
    """A problem with the flags, the records or the model folder, reported in one line."""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs, made from flags once in `main`."""

    records_dir: str
    model_dir: str
    export_dir: str
    epochs: int
    batch_size: int
    learning_rate: float
    counts_loss_weight: float
    shuffle_buffer: int
    reverse_complement: bool
    jitter: bool
    cache: bool
    steps_per_epoch: int | None
    cpu_replicas: int
    seed: int
    model: Any  # model.ModelConfig; typed loosely so this module imports no TF at load.

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d['model'] = self.model.to_dict()
        return d


def configure_cpu_replicas(n: int) -> None:
    """Splits the first CPU into `n` logical devices; must run before TensorFlow starts."""
    import tensorflow as tf
    if n < 1:
        raise TrainError(f'--cpu_replicas must be >= 1, got {n}')
    if n == 1 or tf.config.list_physical_devices('GPU'):
        return
    cpu = tf.config.list_physical_devices('CPU')[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n)])


def make_strategy():
    """MirroredStrategy over the visible GPUs, or over the (logical) CPUs when there are none."""
    import tensorflow as tf
    gpus = tf.config.list_logical_devices('GPU')
    if gpus:
        return tf.distribute.MirroredStrategy()
    cpus = [d.name for d in tf.config.list_logical_devices('CPU')]
    return tf.distribute.MirroredStrategy(
        devices=cpus, cross_device_ops=tf.distribute.ReductionToOneDevice())


def resolve_counts_loss_weight(value: str, info) -> float:
    """Parses --counts_loss_weight: a non-negative number or 'auto' (median total / 10)."""
    if value == 'auto':
        if not info.median_total_counts:
            raise TrainError("--counts_loss_weight=auto needs median_total_counts in the "
                             "records' metadata.json; remake the records or give a number")
        return float(sum(info.median_total_counts) / len(info.median_total_counts)) / 10.0
    try:
        weight = float(value)
    except ValueError:
        raise TrainError(f"--counts_loss_weight must be a number or 'auto', got {value!r}") \
            from None
    if not math.isfinite(weight) or weight < 0:
        raise TrainError(f'--counts_loss_weight must be finite and >= 0, got {value}')
    return weight


def build_and_compile(config: TrainConfig, optimizer=None):
    """Builds the model and compiles it with the per-example BPNet losses (call in scope).

    Args:
      config: the run's config.
      optimizer: a Keras optimizer; default Adam at config.learning_rate.
    """
    import keras

    from bpnet_tfx import losses, model as model_lib
    model = model_lib.build_bpnet(config.model)
    model.compile(
        optimizer=optimizer or keras.optimizers.Adam(learning_rate=config.learning_rate),
        loss={model_lib.PROFILE: losses.MultinomialNLL(),
              model_lib.LOG_COUNTS: losses.LogCountsMSE()},
        loss_weights={model_lib.PROFILE: 1.0, model_lib.LOG_COUNTS: config.counts_loss_weight},
        # Keras 3.15's own per-output '<output>_loss' logs are not example-weighted means (on
        # the demo's validation set they read 530 where the true mean NLL is 607), so each
        # head's loss is tracked again as a plain per-example mean: 'profile_nll' and
        # 'log_counts_mse' (and 'val_...') are the numbers to read.
        metrics={model_lib.PROFILE: [keras.metrics.MeanMetricWrapper(
                     losses.multinomial_nll, name='nll')],
                 model_lib.LOG_COUNTS: [keras.metrics.MeanMetricWrapper(
                     losses.log_counts_mse, name='mse')]})
    return model


class _ThroughputCallback:
    """Times training (not validation) per epoch; a keras.callbacks.Callback built lazily."""

    @staticmethod
    def create():
        import keras

        class Throughput(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.train_seconds = 0.0
                self.train_steps = 0
                self._start = None

            def on_epoch_begin(self, epoch, logs=None):
                self._start = time.perf_counter()

            def on_train_batch_end(self, batch, logs=None):
                self.train_steps += 1

            def on_test_begin(self, logs=None):
                if self._start is not None:
                    self.train_seconds += time.perf_counter() - self._start
                    self._start = None

            def on_epoch_end(self, epoch, logs=None):
                if self._start is not None:
                    self.train_seconds += time.perf_counter() - self._start
                    self._start = None

        return Throughput()


def _check_model_dir(config: TrainConfig, overwrite: bool) -> None:
    path = os.path.join(config.model_dir, 'train_config.json')
    if not os.path.exists(path) or overwrite:
        return
    with open(path) as f:
        previous = json.load(f).get('model')
    if previous != config.model.to_dict():
        raise TrainError(f'{config.model_dir} holds a run of another architecture '
                         f'({path}); use a new --model_dir or pass --overwrite')


def train(config: TrainConfig, info, *, dry_run: bool = False) -> dict[str, Any]:
    """Trains, keeps the best weights by validation loss, exports, and returns a summary."""
    import keras
    import tensorflow as tf

    from bpnet_tfx import data, export

    keras.utils.set_random_seed(config.seed)
    strategy = make_strategy()
    replicas = strategy.num_replicas_in_sync
    if config.batch_size % replicas:
        raise TrainError(f'--batch_size={config.batch_size} is not divisible by the '
                         f'{replicas} replicas')
    with strategy.scope():
        model = build_and_compile(config)
    n_train = info.split_counts.get('train', 0)
    n_valid = info.split_counts.get('valid', 0)
    if n_train == 0:
        raise TrainError(f'{config.records_dir}: no training records (split_counts '
                         f'{dict(info.split_counts)})')
    train_ds = data.make_dataset(
        config.records_dir, info, 'train', batch_size=config.batch_size, training=True,
        seed=config.seed, shuffle_buffer=config.shuffle_buffer,
        reverse_complement=config.reverse_complement, jitter=config.jitter, cache=config.cache)
    valid_ds = None
    if n_valid:
        valid_ds = data.make_dataset(config.records_dir, info, 'valid',
                                     batch_size=config.batch_size, training=False)
    if dry_run:
        model.summary(print_fn=lambda line, **_: print(line))
        one_hot, targets = next(iter(train_ds))
        print(f'parameters: {model.count_params():,}; receptive field: '
              f'{config.model.receptive_field} bp; records: train {n_train}, valid {n_valid}; '
              f'first batch one_hot {tuple(one_hot.shape)}, profile '
              f'{tuple(targets["profile"].shape)}; replicas: {replicas}')
        return {'dry_run': True, 'parameters': model.count_params()}

    steps_per_epoch = config.steps_per_epoch or math.ceil(n_train / config.batch_size)
    ckpt_dir = os.path.join(config.model_dir, 'checkpoints')
    os.makedirs(ckpt_dir, exist_ok=True)
    best_path = os.path.join(ckpt_dir, 'best.weights.h5')
    monitor = 'val_loss' if valid_ds is not None else 'loss'
    throughput = _ThroughputCallback.create()
    callbacks = [
        throughput,
        keras.callbacks.ModelCheckpoint(os.path.join(ckpt_dir, 'last.weights.h5'),
                                        save_weights_only=True),
        keras.callbacks.ModelCheckpoint(best_path, monitor=monitor, save_best_only=True,
                                        save_weights_only=True),
        keras.callbacks.CSVLogger(os.path.join(config.model_dir, 'history.csv')),
        keras.callbacks.TensorBoard(os.path.join(config.model_dir, 'logs'),
                                    update_freq='epoch', write_graph=False),
    ]
    logging.info('training on %d records (%d steps/epoch of %d over %d replicas), '
                 'validating on %d', n_train, steps_per_epoch, config.batch_size, replicas,
                 n_valid)
    start = time.perf_counter()
    # The training set repeats forever; only the finite validation set ends, which Keras
    # reports as 'ran out of data' although it is the intended end of each validation pass.
    warnings.filterwarnings('ignore', message='Your input ran out of data')
    warnings.filterwarnings('ignore', message='`shuffle=True` was passed')
    history = model.fit(train_ds, epochs=config.epochs, steps_per_epoch=steps_per_epoch,
                        validation_data=valid_ds, callbacks=callbacks, verbose=2)
    wall = time.perf_counter() - start
    hist = history.history
    best_epoch = int(min(range(len(hist[monitor])), key=lambda i: hist[monitor][i]))
    model.load_weights(best_path)
    export_path = export.export_saved_model(model, info, config.model, config.export_dir)

    examples = throughput.train_steps * config.batch_size
    summary = {
        'epochs': len(hist['loss']),
        'best_epoch': best_epoch + 1,
        'monitor': monitor,
        'final': {k: float(v[-1]) for k, v in hist.items()},
        'best': {k: float(v[best_epoch]) for k, v in hist.items()},
        'examples_seen': examples,
        'examples_per_second': examples / max(throughput.train_seconds, 1e-9),
        'wall_seconds': wall,
        'replicas': replicas,
        'devices': list(strategy.extended.worker_devices),
        'strategy': type(strategy).__name__,
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


def config_from_flags(info) -> TrainConfig:
    """Turns flag values into a validated TrainConfig; the records fix the shapes."""
    from bpnet_tfx import model as model_lib
    for name, value in (('epochs', _EPOCHS.value), ('batch_size', _BATCH_SIZE.value)):
        if value < 1:
            raise TrainError(f'--{name} must be >= 1, got {value}')
    if not _LEARNING_RATE.value > 0:
        raise TrainError(f'--learning_rate must be > 0, got {_LEARNING_RATE.value}')
    try:
        model_config = model_lib.ModelConfig(
            sequence_length=info.sequence_length, num_channels=4, num_tasks=info.num_tasks,
            num_strands=info.num_strands, filters=_FILTERS.value,
            stem_kernel_size=_STEM_KERNEL_SIZE.value,
            num_dilated_layers=_NUM_DILATED_LAYERS.value,
            profile_kernel_size=_PROFILE_KERNEL_SIZE.value)
    except ValueError as e:
        raise TrainError(str(e)) from None
    return TrainConfig(
        records_dir=_RECORDS_DIR.value, model_dir=_MODEL_DIR.value,
        export_dir=_EXPORT_DIR.value or os.path.join(_MODEL_DIR.value, 'export'),
        epochs=_EPOCHS.value, batch_size=_BATCH_SIZE.value,
        learning_rate=_LEARNING_RATE.value,
        counts_loss_weight=resolve_counts_loss_weight(_COUNTS_LOSS_WEIGHT.value, info),
        shuffle_buffer=_SHUFFLE_BUFFER.value, reverse_complement=_REVERSE_COMPLEMENT.value,
        jitter=_JITTER.value, cache=_CACHE.value, steps_per_epoch=_STEPS_PER_EPOCH.value,
        cpu_replicas=_CPU_REPLICAS.value, seed=_SEED.value, model=model_config)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
    from bpnet_tfx import schema
    try:
        configure_cpu_replicas(_CPU_REPLICAS.value)
        info = schema.RecordsInfo.load(_RECORDS_DIR.value)
        config = config_from_flags(info)
        if not _DRY_RUN.value:
            _check_model_dir(config, _OVERWRITE.value)
            os.makedirs(config.model_dir, exist_ok=True)
            with open(os.path.join(config.model_dir, 'train_config.json'), 'w') as f:
                json.dump(config.to_dict(), f, indent=2, sort_keys=True)
                f.write('\n')
        logging.info('train config: %s', json.dumps(config.to_dict(), sort_keys=True))
        summary = train(config, info, dry_run=_DRY_RUN.value)
    except (TrainError, schema.SchemaError) as e:
        print(f'train: error: {e}', file=sys.stderr)
        sys.exit(2)
    if summary.get('dry_run'):
        return
    best = summary['best']
    print(f"train: {summary['epochs']} epochs, best epoch {summary['best_epoch']} "
          f"({summary['monitor']} {best[summary['monitor']]:.2f}; profile NLL "
          f"{best.get('val_profile_nll', best.get('profile_nll', float('nan'))):.2f}), "
          f"{summary['examples_per_second']:.0f} examples/s on {summary['replicas']} "
          f"replica(s), {summary['wall_seconds']:.0f} s -> {summary['export_dir']}")


if __name__ == '__main__':
    flags.mark_flags_as_required(['records_dir', 'model_dir'])
    app.run(main)
