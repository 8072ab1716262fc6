"""The training loop: one code path for every tf.distribute strategy.

A custom loop rather than `model.fit`, because Keras 3's `fit` does not run under
MultiWorkerMirroredStrategy and because augmentation belongs inside the distributed step, on
the accelerator. Each replica reads its own share of the shards (`train_data`), and the
distributed steps (`train_steps`) augment, compute per-example losses scaled over the global
batch, and let the optimizer sum gradients over replicas. Checkpoints (weights, optimizer,
epoch, step) are written every epoch and every N steps, and a restarted run resumes from the
last one.

The caller creates the strategy and sets the dtype policy (`devices`); `train` builds the
model, optimizer and `checkpointing.Checkpointer` in its scope, runs `epochs.train_epochs`
(the plateau rule is `plateau`, the per-epoch record `history`) and exports the best epoch.
Progress goes to a callback (`Progress`), never to stdout.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from typing import Any, Callable

import keras
import tensorflow as tf
from absl import logging

from bpnet_tfx.common import devices
from bpnet_tfx.inference import export
from bpnet_tfx.modeling import heads
from bpnet_tfx.modeling.config import ModelConfig
from bpnet_tfx.modeling.model import build_bpnet
from bpnet_tfx.records import schema
from bpnet_tfx.training import (
    batches,
    calibration,
    checkpointing,
    epochs,
    history,
    worker_faults,
)
from bpnet_tfx.training import inputs as train_data
from bpnet_tfx.training.config import TrainConfig, TrainError, resolve_counts_loss_weight
from bpnet_tfx.training.inputs import measure_input_pipeline
from bpnet_tfx.training.steps import make_step_functions

__all__ = [
    'Progress',
    'TrainConfig',
    'TrainError',
    'check_model_fits_records',
    'check_run',
    'make_step_functions',
    'measure_input_pipeline',
    'resolve_counts_loss_weight',
    'train',
]

VALIDATIONS = ('records', 'none')
# Kept here for benchmarks/bench_input_pipeline.py; mains create strategies with devices.
make_strategy = devices.make_strategy


def check_model_fits_records(config: ModelConfig, info: schema.RecordsInfo) -> None:
    """Raises TrainError unless the model's input and output lengths are the records'."""
    if (config.sequence_length, config.output_length) != (info.sequence_length, info.output_length):
        raise TrainError(
            f'the model maps {config.sequence_length} -> {config.output_length} '
            f'bp but the records hold {info.sequence_length}-bp sequences and '
            f'{info.output_length}-bp counts'
        )


Progress = Callable[..., None]
"""progress(event, **values): how the trainer reports to its caller (train.main prints it).

Events (only the chief reports): 'skipped_shard' (path, records, message), 'warning'
(message: a training set too small to learn from), 'resume' (checkpoint, epoch, step), 'start'
(records, valid_records: None without validation, steps_per_epoch, batch_size: the effective
one, replicas, input_examples_per_second, batch_reason: why the batch is not the requested
one, or None), 'learning_rate' (stale,
learning_rate), 'epoch' (epoch, epochs, row, seconds), 'early_stop' (epoch, monitor, stale,
best_epoch), 'export' (path, weights: "epoch 3's weights") before the export and
'exported' (path, seconds) after it."""


def _ignore(event: str, **values: Any) -> None:
    del event, values


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

    Raises:
      TrainError: flags, records or model folder that cannot train; under multi-worker
        training, `worker_faults.LostWorkerError` when another worker dies or stops answering.
    """
    strategy = strategy or tf.distribute.get_strategy()
    checkpoints = checkpointing.checkpoint_dir(config.model_dir)
    with worker_faults.named_lost_workers(strategy, checkpoints):
        return _train(config, info, strategy, progress)


def _train(
    config: TrainConfig,
    info: schema.RecordsInfo,
    strategy: tf.distribute.Strategy,
    progress: Progress | None,
) -> dict[str, Any]:
    """`train`, once the strategy is known."""
    precision = _policy(config)
    validate = check_run(config, info, strategy.num_replicas_in_sync)
    keras.utils.set_random_seed(config.seed)
    # Under multi-worker training every worker runs this function; only the chief writes
    # the model folder (logs, best weights, export, summary) and reports progress.
    chief = is_chief(strategy)
    report = (progress or _ignore) if chief else _ignore
    plan, config = _plan_batches(config, info, strategy, report)
    model, optimizer, ckpt = _build(config, info, strategy, precision, chief)
    splits = ('train', 'valid') if validate else ('train',)
    skipped = (
        train_data.check_readable(config, info, splits, report)
        if config.skip_corrupt_records
        else {}
    )
    latest = ckpt.restore()
    if latest:
        report('resume', checkpoint=latest, epoch=ckpt.epochs_done, step=ckpt.steps_done)
    runner = _epoch_runner(config, info, strategy, model, optimizer, ckpt, validate)
    _report_start(report, config, info, strategy, runner, precision, plan.reason)
    start = time.perf_counter()
    rows = epochs.train_epochs(
        runner,
        ckpt,
        optimizer,
        epochs=config.epochs,
        patience=config.patience,
        reduce_lr_patience=config.reduce_lr_patience,
        report=report,
        writer=history.History(config.model_dir) if chief else None,
    )
    if not chief:
        ckpt.close()
        return {
            'chief': False,
            'epochs': ckpt.epochs_done,
            'final': rows[-1] if rows else None,
            'replicas': strategy.num_replicas_in_sync,
        }
    export_path = _export(model, ckpt if validate else None, config, info, report)
    summary = {
        **_summary(runner, ckpt, rows, validate),
        'skipped_corrupt_records': skipped,
        'requested_batch_size': plan.requested,
        'batch_size': plan.batch_size,
        'steps_per_epoch': plan.steps_per_epoch,
        'steps': ckpt.steps_done,
        'wall_seconds': time.perf_counter() - start,
        **_run_facts(config, strategy, precision, model),
        'export_dir': export_path,
    }
    with open(os.path.join(config.model_dir, 'train_summary.json'), 'w') as f:
        json.dump(summary, f, indent=2, sort_keys=True)
        f.write('\n')
    return summary


def _plan_batches(
    config: TrainConfig,
    info: schema.RecordsInfo,
    strategy: tf.distribute.Strategy,
    report: Progress,
) -> tuple[batches.BatchPlan, TrainConfig]:
    """The run's batching (`batches.plan_batches`), its warning reported, and the config
    with the effective batch and steps per epoch."""
    plan = batches.plan_batches(
        info.split_counts['train'],
        config.batch_size,
        strategy.num_replicas_in_sync,
        config.steps_per_epoch,
    )
    if plan.warning:
        report('warning', message=plan.warning)
    return plan, dataclasses.replace(
        config, batch_size=plan.batch_size, steps_per_epoch=plan.steps_per_epoch
    )


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the model folder: always, except on the non-chief workers
    of a multi-worker run."""
    return bool(getattr(strategy.extended, 'should_checkpoint', True))


def _report_start(
    report: Progress,
    config: TrainConfig,
    info: schema.RecordsInfo,
    strategy: tf.distribute.Strategy,
    runner: epochs.EpochRunner,
    precision: str,
    batch_reason: str | None = None,
) -> None:
    """Logs where the run computes and reports its 'start' event."""
    logging.info(
        'strategy %s over %s, dtype policy %s',
        type(strategy).__name__,
        devices.strategy_devices(strategy),
        precision,
    )
    report(
        'start',
        records=info.split_counts['train'],
        valid_records=info.split_counts['valid'] if runner.validates else None,
        steps_per_epoch=runner.steps_per_epoch,
        batch_size=config.batch_size,
        replicas=strategy.num_replicas_in_sync,
        input_examples_per_second=runner.input_rate,
        batch_reason=batch_reason,
    )


def _epoch_runner(
    config: TrainConfig,
    info: schema.RecordsInfo,
    strategy: tf.distribute.Strategy,
    model: keras.Model,
    optimizer: keras.optimizers.Optimizer,
    ckpt: checkpointing.Checkpointer,
    validate: bool,
) -> epochs.EpochRunner:
    """The step functions, the run's training iterator and validation, in an EpochRunner."""
    steps_per_epoch = config.steps_per_epoch or math.ceil(
        info.split_counts['train'] / config.batch_size
    )
    input_rate = train_data.measure_input_pipeline(config, info)
    train_step, eval_step = make_step_functions(strategy, model, optimizer, config, info)
    # One iterator for the whole run: the shuffle buffer fills once, and the training set
    # repeats with a new order each pass. Its seed includes the epoch the run starts at, so
    # a resumed run does not replay the first epoch's order.
    iterator = iter(
        strategy.distribute_datasets_from_function(
            train_data.dataset_fn(config, info, 'train', True, config.seed + ckpt.epochs_done)
        )
    )

    def evaluate() -> dict[str, float]:
        calibration.calibrate(model, config, info)  # validate with this epoch's statistics
        return train_data.evaluate(strategy, eval_step, config, info)

    return epochs.EpochRunner(
        train_step,
        iterator,
        ckpt,
        steps_per_epoch=steps_per_epoch,
        checkpoint_every_steps=config.checkpoint_every_steps,
        input_rate=input_rate,
        evaluate=evaluate if validate else None,
        data_error=lambda e: train_data.name_corrupt_shard(config, 'train', e),
    )


def _build(
    config: TrainConfig,
    info: schema.RecordsInfo,
    strategy: tf.distribute.Strategy,
    precision: str,
    chief: bool,
) -> tuple[keras.Model, keras.optimizers.Optimizer, checkpointing.Checkpointer]:
    """The model, its optimizer and their checkpointer, in the strategy's scope."""
    init = None
    # The normalized head's features are centred, so its bias must carry the typical count;
    # the summed heads' rates start flat, so their offset must.
    if config.init_counts_bias or config.model.counts_head != 'global_pool':
        try:
            init = heads.initial_log_counts(config.model, info.median_total_counts)
        except ValueError:
            raise TrainError(
                "--init_counts_bias needs median_total_counts per task in the records' "
                'metadata.json; remake the records with this make_records or leave it off'
            ) from None
    with strategy.scope():
        model = build_bpnet(config.model, log_counts_init=init)
        optimizer = keras.optimizers.Adam(learning_rate=config.learning_rate)
        if precision == 'mixed_float16':
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        optimizer.build(model.trainable_variables)
        ckpt = checkpointing.Checkpointer(
            config.model_dir,
            model,
            optimizer,
            chief=chief,
            task_id=0 if chief else strategy.cluster_resolver.task_id,
        )
    return model, optimizer, ckpt


def _export(
    model: keras.Model,
    best: checkpointing.Checkpointer | None,
    config: TrainConfig,
    info: schema.RecordsInfo,
    report: Progress,
) -> str:
    """Exports the best epoch's weights (`best`), or the model's as they are (None), between
    the 'export' and 'exported' events.

    Serves in float32 whatever the training precision: same weights, full-precision math.
    """
    start = time.perf_counter()
    weights = f"epoch {best.best['epoch']}'s weights" if best else "the last epoch's weights"
    report('export', path=config.export_dir, weights=weights)
    if best is not None:
        best.load_best_weights()  # calibrated before that epoch's validation
    else:
        calibration.calibrate(model, config, info)
    with devices.dtype_policy('float32'):
        serving_model = build_bpnet(config.model)
    serving_model.set_weights(model.get_weights())
    path = export.export_saved_model(serving_model, info, config.model, config.export_dir)
    report('exported', path=path, seconds=time.perf_counter() - start)
    return path


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


def _run_facts(
    config: TrainConfig,
    strategy: tf.distribute.Strategy,
    precision: str,
    model: keras.Model,
) -> dict[str, Any]:
    """The summary's description of where and how the chief ran."""
    return {
        'chief': True,
        'replicas': strategy.num_replicas_in_sync,
        'devices': devices.strategy_devices(strategy),
        'strategy': type(strategy).__name__,
        'precision': precision,
        'parameters': model.count_params(),
        'config': config.to_dict(),
    }
