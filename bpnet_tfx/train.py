"""Trains BPNet on a records folder under a tf.distribute strategy and exports it.

    python -m bpnet_tfx.train --flagfile=configs/demo.flags

Flags become a `trainer.TrainConfig` once; the records' metadata.json fixes the input and
output lengths (an output shorter than the input means valid convolutions; see model.py),
tasks and strands; `--dry_run` prints the window length after every layer and the receptive
field. The main decides where and how to compute (`devices`: logical CPU replicas, the
tf.distribute strategy, the Keras dtype policy), hands the strategy to `trainer.train` and
prints its progress lines and a summary; absl and TensorFlow logs show only with -v 0
(`cli.run`). Writes to --model_dir:
train_config.json, checkpoints/ (resumable state every epoch, best weights), logs/
(TensorBoard), history.csv, train_summary.json, and the SavedModel (default
<model_dir>/export). Re-running the same command after an interruption resumes.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys

from absl import app, flags, logging

from bpnet_tfx.common import cli

_RECORDS_DIR = flags.DEFINE_string(
    'records_dir', None, 'Folder written by beam_jobs.make_records (holds metadata.json).'
)
_MODEL_DIR = flags.DEFINE_string(
    'model_dir', None, 'Output folder for checkpoints, TensorBoard logs and summaries.'
)
_EXPORT_DIR = flags.DEFINE_string(
    'export_dir', None, 'Where to write the SavedModel; default <model_dir>/export.'
)
_EPOCHS = flags.DEFINE_integer('epochs', 25, 'Passes over the training records.')
_BATCH_SIZE = flags.DEFINE_integer(
    'batch_size',
    512,
    'Global batch size in examples, over all replicas; with fewer training records than 4 '
    'batches, training uses records / 4 instead (the first line says so).',
)
_LEARNING_RATE = flags.DEFINE_float('learning_rate', 1e-3, 'Adam learning rate.')
_COUNTS_LOSS_WEIGHT = flags.DEFINE_string(
    'counts_loss_weight',
    '10',
    "Weight of the log-counts MSE against the profile NLL: a number, or 'auto' for each task's "
    'median total counts (both strands, output window, peak records only: background is '
    'left out) of the training records / 10, from metadata.json.',
)
_INIT_COUNTS_BIAS = flags.DEFINE_bool(
    'init_counts_bias',
    False,
    "Start each counts head's bias at log(1 + the training peaks' median total per strand) "
    '(metadata.json) instead of 0. Always on with the other counts heads (normalized_pool: '
    'its standardized features leave the typical count to the bias; the summed heads: their '
    'offset); with global_pool it leaves the head stuck (docs/training.md), so off there '
    'reproduces the reference.',
)
_FILTERS = flags.DEFINE_integer('filters', 64, 'Channels of every body convolution.')
_STEM_KERNEL_SIZE = flags.DEFINE_integer(
    'stem_kernel_size', 25, 'Kernel size (bp) of the first convolution.'
)
_NUM_DILATED_LAYERS = flags.DEFINE_integer(
    'num_dilated_layers', 9, 'Dilated residual layers; dilations 2, 4, ..., 2**layers.'
)
_PROFILE_KERNEL_SIZE = flags.DEFINE_integer(
    'profile_kernel_size',
    25,
    'Kernel size (bp) of the profile head (75 in the 2114 -> 1000 '
    'regime of bpnet v2 and ChromBPNet).',
)
_PROFILE_LOSS = flags.DEFINE_enum(
    'profile_loss',
    'per_strand',
    ['per_strand', 'joint'],
    'per_strand: one multinomial per strand and a count per strand (BPNet paper); joint: one '
    'multinomial over length x strands and one total count per task (ChromBPNet, bpnet v2).',
)
_COUNTS_HEAD = flags.DEFINE_enum(
    'counts_head',
    'global_pool',
    ['global_pool', 'normalized_pool', 'position_sum', 'profile_sum'],
    "global_pool: the reference counts head, a dense layer over the tower's average over "
    'positions; normalized_pool: the same average standardized per channel (batch '
    'normalization, statistics recomputed from 512 training windows after each epoch) before '
    'the dense layer, whose bias starts at the median log count: learns the counts much '
    "faster; position_sum: log of the sum over the output window of per-position rates from "
    "a convolution like the profile head's; profile_sum (the shipped configs): those rates "
    "averaged with the profile's softmax as weights, i.e. read where the profile head puts "
    'the reads (docs/training.md, the counts head).',
)
_SHUFFLE_BUFFER = flags.DEFINE_integer(
    'shuffle_buffer', 10_000, 'Records in the training shuffle buffer.'
)
_REVERSE_COMPLEMENT = flags.DEFINE_bool(
    'reverse_complement', True, 'Randomly reverse-complement half of the training examples.'
)
_JITTER = flags.DEFINE_bool(
    'jitter',
    True,
    'Randomly shift training windows within the margin stored in the records '
    '(make_records --max_jitter); no effect when the margin is 0.',
)
_CACHE = flags.DEFINE_bool(
    'cache',
    False,
    'Keep the serialised records in memory after the first epoch (for sets that fit in RAM).',
)
_STEPS_PER_EPOCH = flags.DEFINE_integer(
    'steps_per_epoch', None, 'Training steps per epoch; default one pass over the records.'
)
_SKIP_CORRUPT = flags.DEFINE_bool(
    'skip_corrupt_records',
    False,
    'Skip unreadable records (the rest of a truncated or corrupt '
    'shard) and count them in the run summary, instead of stopping with an error naming the '
    'shard.',
)
_CHECKPOINT_EVERY = flags.DEFINE_integer(
    'checkpoint_every_steps', 0, 'Also checkpoint every this many steps (0: each epoch only).'
)
_INPUT_BENCHMARK_BATCHES = flags.DEFINE_integer(
    'input_benchmark_batches',
    20,
    'Batches timed through the input pipeline alone before '
    'training, reported next to training throughput (0: skip).',
)
_STRATEGY = flags.DEFINE_enum(
    'strategy',
    'auto',
    ['auto', 'mirrored', 'multi_worker', 'one_device'],
    'auto/mirrored: MirroredStrategy over the visible GPUs, or over the (logical) CPUs when '
    'there is none; multi_worker: MultiWorkerMirroredStrategy from TF_CONFIG (run the same '
    'command on every host; the chief writes the model folder); one_device: one device.',
)
_PRECISION = flags.DEFINE_enum(
    'precision',
    'auto',
    ['auto', 'float32', 'mixed_float16', 'mixed_bfloat16'],
    'Keras dtype policy; softmax, losses and outputs stay float32, the export is float32. '
    'auto = float32 on every device, because mixed_bfloat16 has not kept the validation loss '
    "within 1% of float32's; ask for mixed_bfloat16 for speed on GPUs. Speed and loss of "
    'each policy, by machine: docs/benchmarks.md.',
)
_JIT_COMPILE = flags.DEFINE_bool(
    'jit_compile',
    False,
    'Compile the per-replica step with XLA. Whether that is faster depends '
    'on the device: docs/benchmarks.md.',
)
_PATIENCE = flags.DEFINE_integer(
    'patience',
    0,
    'Stop after this many epochs without a better validation loss (0: never); '
    'the export always holds the best epoch. Needs --validation=records.',
)
_REDUCE_LR_PATIENCE = flags.DEFINE_integer(
    'reduce_lr_patience',
    0,
    'Halve the learning rate after this many epochs without a better '
    'validation loss (0: never). Needs --validation=records.',
)
_VALIDATION = flags.DEFINE_enum(
    'validation',
    'records',
    ['records', 'none'],
    "records: after every epoch, compute the loss on the records' valid split and export the "
    "epoch with the lowest; none: no validation (for records without a valid split), the "
    "export holds the last epoch's weights.",
)
_CPU_REPLICAS = flags.DEFINE_integer(
    'cpu_replicas',
    1,
    'With no GPU: split the CPU into this many logical devices and run one '
    'replica on each (for testing data parallelism without GPUs).',
)
_SEED = flags.DEFINE_integer('seed', 0, 'Seed for weights, shuffling and augmentation.')
_OVERWRITE = flags.DEFINE_bool(
    'overwrite', False, 'Allow a model_dir that holds a run of a different architecture.'
)
_DRY_RUN = flags.DEFINE_bool(
    'dry_run',
    False,
    'Build the model, print its summary and parameter count, check the '
    'records, and exit without training.',
)


def _check_model_dir(config, overwrite: bool, chief: bool) -> None:
    """Refuses a model folder that holds a run of another architecture (unless overwrite);
    with overwrite, the chief removes its checkpoints."""
    from bpnet_tfx.training import trainer

    path = os.path.join(config.model_dir, 'train_config.json')
    if not os.path.exists(path):
        return
    with open(path) as f:
        previous = json.load(f).get('model')
    if previous == config.model.to_dict():
        return
    if not overwrite:
        raise trainer.TrainError(
            f'{config.model_dir} holds a run of another architecture '
            f'({path}); use a new --model_dir or pass --overwrite'
        )
    # Its checkpoints cannot be resumed into this architecture: start afresh.
    if chief:
        shutil.rmtree(os.path.join(config.model_dir, 'checkpoints'), ignore_errors=True)


def _write_train_config(config, chief: bool) -> None:
    """Checks the model folder and (the chief only, atomically) saves train_config.json.

    Every worker of a multi-worker run reads the file; a rerun's chief rewrites it meanwhile.
    """
    from bpnet_tfx.training import checkpointing

    _check_model_dir(config, _OVERWRITE.value, chief)
    os.makedirs(config.model_dir, exist_ok=True)
    if chief:
        checkpointing.replace_file(
            os.path.join(config.model_dir, 'train_config.json'),
            json.dumps(config.to_dict(), indent=2, sort_keys=True) + '\n',
        )


def config_from_flags(info):
    """Turns flag values into a validated TrainConfig; the records fix the shapes."""
    from bpnet_tfx.modeling import model as model_lib
    from bpnet_tfx.training import trainer

    for name, value in (('epochs', _EPOCHS.value), ('batch_size', _BATCH_SIZE.value)):
        if value < 1:
            raise trainer.TrainError(f'--{name} must be >= 1, got {value}')
    if not _LEARNING_RATE.value > 0:
        raise trainer.TrainError(f'--learning_rate must be > 0, got {_LEARNING_RATE.value}')
    try:
        model_config = model_lib.ModelConfig(
            sequence_length=info.sequence_length,
            output_length=info.output_length,
            profile_loss=_PROFILE_LOSS.value,
            counts_head=_COUNTS_HEAD.value,
            num_channels=4,
            num_tasks=info.num_tasks,
            num_strands=info.num_strands,
            filters=_FILTERS.value,
            stem_kernel_size=_STEM_KERNEL_SIZE.value,
            num_dilated_layers=_NUM_DILATED_LAYERS.value,
            profile_kernel_size=_PROFILE_KERNEL_SIZE.value,
            use_control=info.has_control,
        )
    except ValueError as e:
        raise trainer.TrainError(str(e)) from None
    return trainer.TrainConfig(
        records_dir=_RECORDS_DIR.value,
        model_dir=_MODEL_DIR.value,
        export_dir=_EXPORT_DIR.value or os.path.join(_MODEL_DIR.value, 'export'),
        model=model_config,
        epochs=_EPOCHS.value,
        batch_size=_BATCH_SIZE.value,
        learning_rate=_LEARNING_RATE.value,
        counts_loss_weight=trainer.resolve_counts_loss_weight(_COUNTS_LOSS_WEIGHT.value, info),
        init_counts_bias=_INIT_COUNTS_BIAS.value,
        shuffle_buffer=_SHUFFLE_BUFFER.value,
        reverse_complement=_REVERSE_COMPLEMENT.value,
        jitter=_JITTER.value,
        cache=_CACHE.value,
        skip_corrupt_records=_SKIP_CORRUPT.value,
        steps_per_epoch=_STEPS_PER_EPOCH.value,
        checkpoint_every_steps=_CHECKPOINT_EVERY.value,
        input_benchmark_batches=_INPUT_BENCHMARK_BATCHES.value,
        strategy=_STRATEGY.value,
        precision=_PRECISION.value,
        jit_compile=_JIT_COMPILE.value,
        patience=_PATIENCE.value,
        reduce_lr_patience=_REDUCE_LR_PATIENCE.value,
        cpu_replicas=_CPU_REPLICAS.value,
        seed=_SEED.value,
        validation=_VALIDATION.value,
    )


def _dry_run(config, info, strategy) -> None:
    """Prints the model summary, the window length after every block and the first batch."""
    from bpnet_tfx.modeling import model as model_lib
    from bpnet_tfx.records import dataset as data
    from bpnet_tfx.training import batches

    with strategy.scope():
        model = model_lib.build_bpnet(config.model)
    model.summary(print_fn=lambda line, **_: print(line))
    plan = batches.plan_batches(
        info.split_counts.get('train', 0) or config.batch_size,
        config.batch_size,
        strategy.num_replicas_in_sync,
    )
    batch = data.model_inputs(
        next(
            iter(
                data.make_dataset(
                    config.records_dir,
                    info,
                    'train',
                    batch_size=plan.batch_size,
                    training=True,
                    shuffle_buffer=1,
                )
            )
        )
    )
    lengths = config.model.crop_arithmetic()
    print('window lengths (bp): ' + ' -> '.join(f'{k} {v}' for k, v in lengths.items()))
    counts = info.split_counts
    print(
        f'parameters: {model.count_params():,}; receptive field: '
        f'{config.model.receptive_field} bp; input {config.model.sequence_length} bp -> '
        f'output {config.model.output_length} bp '
        f'({"valid" if config.model.valid_padding else "same"} padding, profile loss '
        f'{config.model.profile_loss}); records: train {counts.get("train", 0)}, valid '
        f'{counts.get("valid", 0)}'
        + (f' (background: {dict(info.background_counts)})' if info.has_background else '')
        + f'; first batch one_hot {tuple(batch["one_hot"].shape)}, profile '
        f'{tuple(batch["profile"].shape)}; replicas: {strategy.num_replicas_in_sync}'
    )


def _epoch_line(epoch, epochs, row, seconds) -> str:
    line = (
        f'epoch {epoch}/{epochs}: loss {row["loss"]:.2f} (profile '
        f'{row["profile_nll"]:.2f}, counts {row["log_counts_mse"]:.3f})'
    )
    if 'val_loss' in row:
        line += (
            f' | val loss {row["val_loss"]:.2f} (profile {row["val_profile_nll"]:.2f}, '
            f'counts {row["val_log_counts_mse"]:.3f})'
        )
    rate = row['examples_per_second']
    rate = f'{rate:.0f} ex/s' if math.isfinite(rate) else 'first step (tracing)'
    return line + f' | {rate}, {seconds:.{1 if seconds < 10 else 0}f} s'


def _start_line(
    records,
    valid_records,
    steps_per_epoch,
    batch_size,
    replicas,
    input_examples_per_second,
    batch_reason=None,
) -> str:
    batch = f'{batch_size} ({batch_reason})' if batch_reason else f'{batch_size}'
    line = (
        f'train: {records} training records, {steps_per_epoch} steps/epoch of {batch} over '
        f'{replicas} replica(s); '
    )
    line += f'validating on {valid_records}' if valid_records is not None else 'no validation'
    if math.isfinite(input_examples_per_second):
        line += f'; input pipeline alone: {input_examples_per_second:.0f} examples/s'
    return line


_PROGRESS = {
    'skipped_shard': lambda path, records, message: (
        f'train: skipping the rest of {path} after {records} records: {message}'
    ),
    'resume': lambda checkpoint, epoch, step: (
        f'train: resuming from {checkpoint} (epoch {epoch}, step {step})'
    ),
    'start': _start_line,
    'learning_rate': lambda stale, learning_rate: (
        f'train: no improvement for {stale} epochs: learning rate -> {learning_rate:g}'
    ),
    'epoch': _epoch_line,
    'early_stop': lambda epoch, monitor, stale, best_epoch: (
        f'train: early stop after epoch {epoch}: no improvement of {monitor} for {stale} '
        f'epochs (best: epoch {best_epoch})'
    ),
}


def _print_progress(event: str, **values) -> None:
    """The trainer's progress callback: one line per event on stdout (warnings: stderr)."""
    if event == 'warning':
        print(f'train: warning: {values["message"]}', file=sys.stderr, flush=True)
        return
    print(_PROGRESS[event](**values), flush=True)


def _rate(value: float) -> str:
    """A throughput for the summary line: 'n/a' when nothing was timed."""
    return f'{value:.0f}' if math.isfinite(value) and value > 0 else 'n/a'


def _summary_line(summary) -> str:
    if summary['validation'] == 'none':
        final = summary['final'] or {}
        result = (
            f"{summary['note']} (loss {final.get('loss', float('nan')):.2f}; profile "
            f"NLL {final.get('profile_nll', float('nan')):.2f})"
        )
    else:
        best = summary['best'] or {}
        result = (
            f"best epoch {summary['best_epoch']} (val_loss "
            f"{best.get('val_loss', float('nan')):.2f}; profile NLL "
            f"{best.get('val_profile_nll', float('nan')):.2f})"
        )
    steps = ''
    if 'steps' in summary:
        steps = f"{summary['steps']} steps of {summary['batch_size']}, "
    return (
        f"train: {summary['epochs']} epochs, {result}, {steps}"
        f"{_rate(summary['examples_per_second'])} examples/s training, "
        f"{_rate(summary['input_examples_per_second'])} examples/s input pipeline alone, on "
        f"{summary['replicas']} replica(s), {summary['wall_seconds']:.0f} s -> "
        f"{summary['export_dir']}"
    )


def main(argv):
    del argv  # cli.run refuses extra arguments.
    # TensorFlow is imported here, after flag parsing, so that --helpfull is quick; the logical
    # CPU devices must be configured before TensorFlow initialises its devices, and a
    # multi-worker strategy must exist before any TensorFlow op runs.
    with cli.native_stderr_hidden():
        from bpnet_tfx.common import devices
        from bpnet_tfx.records import schema
        from bpnet_tfx.training import trainer

        devices.configure_cpu_replicas(_CPU_REPLICAS.value)
        info = schema.RecordsInfo.load(_RECORDS_DIR.value)
        config = config_from_flags(info)
        strategy = devices.make_strategy(config.strategy)
    trainer.check_run(config, info, strategy.num_replicas_in_sync)
    logging.info('train config: %s', json.dumps(config.to_dict(), sort_keys=True))
    with devices.dtype_policy(config.precision):
        if _DRY_RUN.value:
            _dry_run(config, info, strategy)
            return
        _write_train_config(config, trainer.is_chief(strategy))
        summary = trainer.train(config, info, strategy=strategy, progress=_print_progress)
    if not summary.get('chief', True):
        print(
            f"train: worker done after {summary['epochs']} epochs (the chief writes the "
            'model folder)'
        )
        return
    print(_summary_line(summary))


if __name__ == '__main__':
    flags.mark_flags_as_required(['records_dir', 'model_dir'])
    app.run(cli.run('train', main))
