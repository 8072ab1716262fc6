"""The device check: what a machine with a GPU does with the shipped code, measured in one run
of at most about 8 minutes and written to one JSON file, from which docs/benchmarks.md's GPU
rows are filled. Run it through benchmarks/device_check.sh.

On synthetic records of the reference shape (1000 bp, 2 strands) and the reference model:
  train: examples/s of our training loop at --batch_size (512) in float32 and mixed precision
    (--precisions), each without and with XLA; the first (tracing) step is left out;
  feed: the training input pipeline alone (examples/s) against the training step alone on a
    batch already on the device (float32, no augmentation), and their ratio;
  contrib: DeepSHAP windows/s, both heads, the whole call (loading, tracing, writing), on
    1000-bp BED windows of a random genome, per batch size;
  variants: variants/s of variant scoring (ref and alt, forward and reverse complement), the
    whole call, per batch size.
Untrained weights cost what trained ones do. A part that would start after --budget_s is
skipped and named in 'skipped'. --dry_run runs the same code on a tiny model and sizes on
whatever device there is (the CPU in CI), in seconds.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from typing import Any, Callable

from benchmarks import common, workloads


@dataclasses.dataclass(frozen=True)
class Sizes:
    """How much work each part does."""

    batch_size: int = 512
    train_steps: int = 60
    records: int = 8192
    feed_batches: int = 40
    step_steps: int = 40
    contrib_windows: int = 512
    contrib_batch_sizes: tuple[int, ...] = (128, 1024)
    num_shuffles: int = 10
    variants: int = 2048
    variant_batch_sizes: tuple[int, ...] = (64, 512)
    filters: int = 64
    layers: int = 9


DRY_RUN = Sizes(
    batch_size=8,
    train_steps=3,
    records=64,
    feed_batches=2,
    step_steps=2,
    contrib_windows=3,
    contrib_batch_sizes=(12,),
    num_shuffles=2,
    variants=4,
    variant_batch_sizes=(4,),
    filters=4,
    layers=2,
)
LENGTH = 1000


class Budget:
    """Runs parts while time is left; a part that would start late is skipped and named."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.perf_counter):
        self.seconds, self.clock, self.start, self.skipped = seconds, clock, clock(), []

    def run(self, name: str, part: Callable[[], Any]) -> Any:
        elapsed = self.clock() - self.start
        if elapsed > self.seconds:
            self.skipped.append(name)
            print(f'device_check: {name}: skipped ({elapsed:.0f} s of {self.seconds:.0f} used)')
            return None
        started = self.clock()
        result = part()
        print(f'device_check: {name}: {_brief(result)} ({self.clock() - started:.0f} s)')
        return result


def _brief(result: Any) -> str:
    if isinstance(result, dict):
        return ', '.join(f'{k} {v:.4g}' for k, v in result.items() if isinstance(v, float))
    return str(result)


def _train(records: str, sizes: Sizes, config, precision: str, jit: bool) -> dict:
    r = workloads.run_trainer(
        records,
        batch_size=sizes.batch_size,
        steps=sizes.train_steps,
        precision=precision,
        jit=jit,
        model=config,
        validation='none',
    )
    return {'examples_per_second': r['examples_per_second'], 'precision': r['precision']}


def _feed(records: str, sizes: Sizes, config) -> dict:
    from bpnet_tfx.records import schema
    from bpnet_tfx.training import trainer

    info = schema.RecordsInfo.load(records)
    train_config = workloads.train_config(
        records,
        tempfile.mkdtemp(prefix='device_check_feed_'),
        sizes.batch_size,
        model=config,
        precision='float32',
        input_benchmark_batches=sizes.feed_batches,
    )
    feed = trainer.measure_input_pipeline(train_config, info)
    step = workloads.step_timer(train_config)(sizes.step_steps)
    return {
        'pipeline_examples_per_second': feed,
        'step_examples_per_second': step,
        'pipeline_over_step': feed / step,
    }


def _contrib(folder: str, export: str, sizes: Sizes, batch_size: int) -> dict:
    from bpnet_tfx.attribution import contributions

    genome = workloads.random_genome(folder, (sizes.contrib_windows + 1) * LENGTH, seed=1)
    bed = workloads.tiled_bed(folder, genome, LENGTH, sizes.contrib_windows)
    out = os.path.join(tempfile.mkdtemp(dir=folder), 'contrib')
    r = contributions.compute_contributions(
        export,
        out,
        regions_bed=bed,
        fasta=genome.fasta,
        num_shuffles=sizes.num_shuffles,
        batch_size=batch_size,
    )
    return {
        'windows_per_second': r['regions'] / r['seconds'],
        'windows': float(r['regions']),
        'batch_size': float(batch_size),
    }


def _variants(folder: str, export: str, sizes: Sizes, batch_size: int) -> dict:
    from bpnet_tfx.variant_effects import scoring

    genome = workloads.random_genome(folder, 20 * LENGTH + sizes.variants, seed=2)
    snvs = workloads.random_snvs(
        os.path.join(folder, 'snvs.tsv'), genome, sizes.variants, margin=LENGTH
    )
    out = os.path.join(tempfile.mkdtemp(dir=folder), 'scores.tsv')
    r = scoring.score_variants(export, genome.fasta, snvs, out, batch_size=batch_size)
    return {
        'variants_per_second': r['scored'] / r['seconds'],
        'variants': float(r['scored']),
        'batch_size': float(batch_size),
    }


def _devices() -> dict:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices('GPU')
    details = [tf.config.experimental.get_device_details(g) for g in gpus]
    return {
        'gpus': [d.get('device_name', 'GPU') for d in details],
        'compute_capability': [list(d.get('compute_capability', ())) for d in details],
        'tensorflow': tf.__version__,
        'built_with_cuda': tf.test.is_built_with_cuda(),
    }


def run(args: argparse.Namespace, sizes: Sizes) -> dict:
    """Every part, under the time budget; returns the JSON's content."""
    from bpnet_tfx.modeling import model as model_lib

    budget = Budget(args.budget_s)
    load = [os.getloadavg()[0]]
    config = model_lib.ModelConfig(
        sequence_length=LENGTH, filters=sizes.filters, num_dilated_layers=sizes.layers
    )
    out: dict[str, Any] = {'train': {}, 'contrib': [], 'variants': []}
    with tempfile.TemporaryDirectory(prefix='device_check_') as tmp:
        records = os.path.join(tmp, 'records')
        common.write_records(records, sizes.records, unique=min(sizes.records, 2048))
        for precision in args.precisions.split(','):
            for jit in (False, True):
                name = f'{precision}_xla' if jit else precision
                out['train'][name] = budget.run(
                    f'train {name}', lambda: _train(records, sizes, config, precision, jit)
                )
        out['feed'] = budget.run('feed', lambda: _feed(records, sizes, config))
        export = workloads.untrained_export(tmp, config)
        for b in sizes.contrib_batch_sizes:
            out['contrib'].append(
                budget.run(f'contrib batch {b}', lambda: _contrib(tmp, export, sizes, b))
            )
        for b in sizes.variant_batch_sizes:
            out['variants'].append(
                budget.run(f'variants batch {b}', lambda: _variants(tmp, export, sizes, b))
            )
    load.append(os.getloadavg()[0])
    return {
        'benchmark': 'device_check',
        'dry_run': args.dry_run,
        'sizes': dataclasses.asdict(sizes),
        'machine': common.machine(),
        'devices': _devices(),
        'load': load,
        'seconds': budget.clock() - budget.start,
        'skipped': budget.skipped,
        **out,
    }


def _write(path: str, result: dict) -> None:
    """Writes the JSON beside its place and renames it in, so no half-written file is left."""
    tmp = f'{path}.tmp{os.getpid()}'
    with open(tmp, 'w') as f:
        json.dump(result, f, indent=2, sort_keys=True, default=float)
        f.write('\n')
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='device_check', description=__doc__.split('\n\n')[0])
    parser.add_argument('--output', default='device_check.json', help='The JSON file to write.')
    parser.add_argument(
        '--dry_run', action='store_true', help='Tiny model and sizes: the code paths in seconds.'
    )
    parser.add_argument(
        '--precisions',
        default='float32,mixed_float16,mixed_bfloat16',
        help='Comma-separated dtype policies to train in, each without and with XLA.',
    )
    parser.add_argument(
        '--budget_s',
        type=float,
        default=420.0,
        help='Seconds after which parts not yet started are skipped (the whole run stays '
        'under about 8 minutes on a GPU).',
    )
    parser.add_argument(
        '--verbose', action='store_true', help="Show TensorFlow's and absl's log lines."
    )
    args = parser.parse_args(argv)
    if not args.verbose:
        from bpnet_tfx.common import cli

        cli.quiet_logs()
    folder = os.path.dirname(os.path.abspath(args.output))
    if not os.path.isdir(folder):
        print(f'device_check: error: --output={args.output}: no folder {folder}', file=sys.stderr)
        return 2
    from bpnet_tfx.common import devices

    for precision in args.precisions.split(','):
        if precision not in devices.PRECISIONS:
            print(
                f'device_check: error: --precisions: {precision!r} is not one of '
                f'{", ".join(devices.PRECISIONS)}',
                file=sys.stderr,
            )
            return 2
    result = run(args, DRY_RUN if args.dry_run else Sizes())
    _write(args.output, result)
    print(f'device_check: {result["seconds"]:.0f} s; wrote {args.output}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
