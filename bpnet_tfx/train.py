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
<model_dir>/export). Re-running the same command after an interruption (Ctrl-C keeps the last
checkpoint) resumes; on a finished run it says so and does nothing unless --epochs asks for
more; a rerun whose settings would change the weights is refused, naming them (reruns.py);
--overwrite replaces the run. Flags and the records' metadata are checked before TensorFlow
starts.
"""

from __future__ import annotations

import json
import os

from absl import flags, logging

from bpnet_tfx.common import cli
from bpnet_tfx.common.errors import BpnetError
from bpnet_tfx.training import lines

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
    'overwrite',
    False,
    'Replace the run in --model_dir: start afresh (its checkpoints, logs, history and summary '
    'are removed first; its export is replaced when the new one is written). Without it, a '
    'rerun resumes the run, or does nothing when the run is finished.',
)
_DRY_RUN = flags.DEFINE_bool(
    'dry_run',
    False,
    'Build the model, print its summary and parameter count, check the '
    'records, and exit without training.',
)


def _prepare_model_dir(config, chief: bool) -> dict | None:
    """Replaces (--overwrite), or checks that a rerun may resume, the run in the model folder,
    then (the chief only, atomically) saves train_config.json.

    Returns:
      The summary of a run that is already finished for --epochs (nothing to do), or None.
    """
    from bpnet_tfx.training import checkpointing, reruns

    if _OVERWRITE.value:
        if chief:
            reruns.clear_run(config.model_dir)
    else:
        reruns.check_resumable(config.model_dir, config.to_dict())
        finished = reruns.finished_run(config.model_dir, config.epochs)
        if finished:
            return finished
    os.makedirs(config.model_dir, exist_ok=True)
    if chief:  # Every worker of a multi-worker run reads it; a rerun's chief rewrites it.
        checkpointing.replace_file(
            os.path.join(config.model_dir, reruns.CONFIG_FILENAME),
            json.dumps(config.to_dict(), indent=2, sort_keys=True) + '\n',
        )
    return None


def _check_numbers() -> None:
    for name, value in (('epochs', _EPOCHS.value), ('batch_size', _BATCH_SIZE.value)):
        if value < 1:
            raise BpnetError(f'--{name} must be >= 1, got {value}')
    if not _LEARNING_RATE.value > 0:
        raise BpnetError(f'--learning_rate must be > 0, got {_LEARNING_RATE.value}')


def _check_flags() -> None:
    """The checks that need no TensorFlow (training.config imports it): numbers in range, a
    records folder with metadata."""
    from bpnet_tfx.records import schema

    _check_numbers()
    if os.path.isfile(_MODEL_DIR.value):
        raise BpnetError(f'--model_dir={_MODEL_DIR.value} is a file, not a folder')
    schema.RecordsInfo.load(_RECORDS_DIR.value)


def _interrupted() -> str:
    """What Ctrl-C leaves in the model folder, and how to go on."""
    from bpnet_tfx.training import checkpointing

    index = os.path.join(checkpointing.checkpoint_dir(_MODEL_DIR.value), 'checkpoint')
    if not os.path.exists(index):
        return f'no checkpoint in {_MODEL_DIR.value} yet; run the same command again to start'
    again = (
        'the command again without --overwrite' if _OVERWRITE.value else 'the same command again'
    )
    return f'the last checkpoint in {os.path.dirname(index)} is kept; run {again} to resume from it'


def config_from_flags(info):
    """Turns flag values into a validated TrainConfig; the records fix the shapes."""
    from bpnet_tfx.modeling.config import ModelConfig
    from bpnet_tfx.training import trainer

    _check_numbers()
    try:
        model_config = ModelConfig(
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
    from bpnet_tfx.modeling.model import build_bpnet
    from bpnet_tfx.records import dataset as data
    from bpnet_tfx.training import batches

    with strategy.scope():
        model = build_bpnet(config.model)
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
        finished = _prepare_model_dir(config, trainer.is_chief(strategy))
        if finished:
            from bpnet_tfx.training import reruns

            print(reruns.finished_line(config.model_dir, finished))
            return
        summary = trainer.train(config, info, strategy=strategy, progress=lines.print_progress)
    if not summary.get('chief', True):
        print(
            f"train: worker done after {summary['epochs']} epochs (the chief writes the "
            'model folder)'
        )
        return
    print(lines.summary_line(summary))


if __name__ == '__main__':
    flags.mark_flags_as_required(['records_dir', 'model_dir'])
    cli.start('train', main, checks=_check_flags, interrupted=_interrupted)
