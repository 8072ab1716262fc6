"""The work the speed benchmarks time, shared between them and the device check: a training
run through the trainer, the training step alone on a batch already in memory, and an untrained
export with a random genome, BED windows and SNVs on it (contrib and variant scoring cost the
same with untrained weights).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def demo_records(workdir: str) -> str:
    """The demo's records (make_records' default demo data), made in `workdir`/records."""
    records = os.path.join(workdir, 'records')
    command = [sys.executable, '-m', 'beam_jobs.make_records', '--runner=DirectRunner']
    subprocess.run([*command, f'--output_dir={records}'], check=True, cwd=REPO, capture_output=True)
    return records


def train_config(records_dir: str, model_dir: str, batch_size: int, model=None, **kw: Any):
    """A TrainConfig for `records_dir` (the reference model at the records' length unless
    `model` is given), `kw` overriding the rest."""
    from bpnet_tfx.modeling import model as model_lib
    from bpnet_tfx.records import schema
    from bpnet_tfx.training import trainer

    if model is None:
        info = schema.RecordsInfo.load(records_dir)
        model = model_lib.ModelConfig(sequence_length=info.sequence_length)
    return trainer.TrainConfig(
        records_dir=records_dir,
        model_dir=model_dir,
        export_dir=os.path.join(model_dir, 'export'),
        model=model,
        batch_size=batch_size,
        **kw,
    )


def run_trainer(
    records_dir: str,
    *,
    batch_size: int,
    steps: int,
    precision: str,
    jit: bool = False,
    seed: int = 0,
    **kw: Any,
) -> dict[str, Any]:
    """One epoch of `steps` steps by bpnet_tfx.training.trainer under `precision`; returns
    {'examples_per_second' (the epoch's timed steps: the first, which traces, left out),
    'input_examples_per_second', 'val_loss' (nan without validation), 'precision'}."""
    from bpnet_tfx.common import devices
    from bpnet_tfx.records import schema
    from bpnet_tfx.training import trainer

    info = schema.RecordsInfo.load(records_dir)
    model_dir = tempfile.mkdtemp(prefix=f'bench_train_{precision}_')
    config = train_config(
        records_dir,
        model_dir,
        batch_size,
        model=kw.pop('model', None),
        epochs=1,
        steps_per_epoch=steps,
        precision=precision,
        jit_compile=jit,
        input_benchmark_batches=kw.pop('input_benchmark_batches', 0),
        seed=seed,
        **kw,
    )
    with devices.dtype_policy(precision):
        summary = trainer.train(config, info, strategy=devices.make_strategy('auto'))
    final = summary['final'] or {}
    return {
        'examples_per_second': summary['examples_per_second'],
        'input_examples_per_second': summary['input_examples_per_second'],
        'val_loss': final.get('val_loss', float('nan')),
        'precision': summary['precision'],
    }


def step_timer(config, precision: str = 'float32') -> Callable[[int], float]:
    """The training step alone, on one batch already in memory (no augmentation), under
    `precision`: returns run(steps) -> examples/s of `steps` steps, traced on first use."""
    import keras
    import tensorflow as tf

    from bpnet_tfx.common import devices
    from bpnet_tfx.modeling import model as model_lib
    from bpnet_tfx.records import dataset as data
    from bpnet_tfx.records import schema
    from bpnet_tfx.training import trainer

    info = schema.RecordsInfo.load(config.records_dir)
    batch = next(
        iter(
            data.make_dataset(
                config.records_dir, info, 'train', batch_size=config.batch_size, training=False
            )
        )
    )
    strategy = devices.make_strategy('auto')
    with devices.dtype_policy(precision), strategy.scope():
        model = model_lib.build_bpnet(config.model)
        optimizer = keras.optimizers.Adam(1e-3)
        if precision == 'mixed_float16':
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        optimizer.build(model.trainable_variables)
    train_step, _ = trainer.make_step_functions(
        strategy,
        model,
        optimizer,
        dataclasses.replace(config, jitter=False, reverse_complement=False),
        info,
    )
    fixed = strategy.distribute_datasets_from_function(
        lambda ctx: tf.data.Dataset.from_tensors(batch).repeat()
    )
    it = iter(fixed)
    train_step(it, tf.constant(0, tf.int64))['loss'].numpy()  # traces

    def run(steps: int) -> float:
        start = time.perf_counter()
        for i in range(steps):
            out = train_step(it, tf.constant(i, tf.int64))
        out['loss'].numpy()  # waits for the device
        return steps * config.batch_size / (time.perf_counter() - start)

    return run


@dataclasses.dataclass(frozen=True)
class Genome:
    """A random one-chromosome genome: its FASTA and its sequence."""

    fasta: str
    chrom: str
    sequence: str


def random_genome(folder: str, length: int, *, chrom: str = 'chrB', seed: int = 0) -> Genome:
    """Writes `folder`/genome.fa, `length` random bases in lines of 60."""
    rng = np.random.default_rng(seed)
    sequence = ''.join(rng.choice(list('ACGT'), length))
    path = os.path.join(folder, 'genome.fa')
    with open(path, 'w') as f:
        lines = (sequence[i : i + 60] for i in range(0, length, 60))
        f.write(f'>{chrom}\n' + '\n'.join(lines) + '\n')
    return Genome(path, chrom, sequence)


def tiled_bed(folder: str, genome: Genome, width: int, count: int) -> str:
    """`folder`/windows.bed: `count` adjacent `width`-bp windows from the genome's start."""
    path = os.path.join(folder, 'windows.bed')
    with open(path, 'w') as f:
        f.writelines(f'{genome.chrom}\t{i * width}\t{(i + 1) * width}\n' for i in range(count))
    return path


def random_snvs(path: str, genome: Genome, count: int, *, margin: int, seed: int = 0) -> str:
    """A TSV of `count` SNVs (chrom, 1-based pos, ref, alt) at least `margin` bp inside."""
    rng = np.random.default_rng(seed)
    seq = genome.sequence
    positions = rng.integers(margin, len(seq) - margin, count)
    with open(path, 'w') as f:
        for p in positions:
            alt = 'ACGT'[('ACGT'.index(seq[p]) + 1) % 4]
            f.write(f'{genome.chrom}\t{p + 1}\t{seq[p]}\t{alt}\n')
    return path


def untrained_export(folder: str, config, *, tasks: tuple[str, ...] = ('bench',)) -> str:
    """Exports an untrained model of `config` (seeded) to `folder`/export; returns its path."""
    import keras

    from bpnet_tfx.inference import export
    from bpnet_tfx.modeling import model as model_lib
    from bpnet_tfx.records import schema

    keras.utils.set_random_seed(0)
    info = schema.RecordsInfo(
        sequence_length=config.sequence_length,
        output_length=config.output_length,
        max_jitter=0,
        tasks=tasks,
    )
    model = model_lib.build_bpnet(config)
    return export.export_saved_model(model, info, config, os.path.join(folder, 'export'))
