"""Training speed: precisions and XLA against float32, ours against the notebook, and FLOPs.

    .venv/bin/python benchmarks/bench_train.py [--steps=100 --batch_size=64]

Measured in one run on the demo data's records (made here with make_records):
  1. bpnet_tfx.training.trainer at float32 (two seeds: the run-to-run spread), mixed_bfloat16, and
     float32 + XLA: training examples/s and the validation loss after the same fixed number of
     steps (target: within 1% of float32).
  2. The run at the default precision (what --precision=auto picks) against the reference
     notebook's in-memory Keras `model.fit` (float32 numpy arrays), same model (built from
     stock keras.layers.Conv1D, as the notebook does) and batch; and, for reference, the
     notebook's `model.fit` on bpnet_tfx's own Conv1D layer (`notebook_our_conv`).
     Target: >= 1.5x. With --repeats=N, float32, mixed_bfloat16 and the notebook run N times
     in turn (the machine may be shared), and the ratio is given per repeat.
  3. The model's training FLOPs per example (3x the forward convolutions' 2*MACs), the
     machine's measured float32 (and bfloat16) matmul peak, and the fraction of the float32
     peak that training reaches.
With --precision_seeds=N, only the validation loss of float32 and mixed_bfloat16 after
--steps steps, for seeds 0..N-1 (same seed: same initial weights and data order), paired.
Prints a readable row per measurement and one JSON line at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import common  # noqa: E402  (benchmarks/ is on sys.path when run as a script)


def training_flops_per_example(config) -> float:
    """2 x MACs of every convolution and the dense layer, forward; x3 for training."""
    length, f = config.sequence_length, config.filters
    macs = length * config.stem_kernel_size * config.num_channels * f
    macs += config.num_dilated_layers * length * config.dilated_kernel_size * f * f
    macs += length * config.profile_kernel_size * f * config.num_tasks * config.num_strands
    macs += f * config.num_tasks * config.num_strands
    return 3 * 2 * macs


def matmul_peak_gflops(size: int = 2048, repeats: int = 10, dtype: str = 'float32') -> float:
    """Measured matmul throughput of this machine through TensorFlow, in `dtype`."""
    import tensorflow as tf

    a = tf.cast(tf.random.normal((size, size)), dtype)
    b = tf.cast(tf.random.normal((size, size)), dtype)

    @tf.function
    def mm(a, b):
        return tf.matmul(a, b)

    mm(a, b).numpy()
    start = time.perf_counter()
    for _ in range(repeats):
        c = mm(a, b)
    c.numpy()
    return repeats * 2 * size**3 / (time.perf_counter() - start) / 1e9


def run_trainer(
    records_dir: str, batch_size: int, steps: int, precision: str, jit: bool, seed: int = 0
) -> dict:
    from bpnet_tfx.common import devices
    from bpnet_tfx.modeling import model as model_lib
    from bpnet_tfx.records import schema
    from bpnet_tfx.training import trainer

    info = schema.RecordsInfo.load(records_dir)
    model_dir = tempfile.mkdtemp(prefix=f'bench_train_{precision}_')
    config = trainer.TrainConfig(
        records_dir=records_dir,
        model_dir=model_dir,
        export_dir=os.path.join(model_dir, 'export'),
        model=model_lib.ModelConfig(sequence_length=info.sequence_length),
        batch_size=batch_size,
        epochs=1,
        steps_per_epoch=steps,
        precision=precision,
        jit_compile=jit,
        input_benchmark_batches=0,
        seed=seed,
    )
    with devices.dtype_policy(precision):
        summary = trainer.train(config, info, strategy=devices.make_strategy('auto'))
    return {
        'examples_per_second': summary['examples_per_second'],
        'val_loss': summary['final']['val_loss'],
        'precision': summary['precision'],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--batch_size', type=int, default=64, help='Batch size of every run.')
    parser.add_argument('--steps', type=int, default=100, help='Training steps of every run.')
    parser.add_argument(
        '--notebook_steps',
        type=int,
        default=30,
        help='Batches held in RAM for the notebook baseline.',
    )
    parser.add_argument(
        '--precision_seeds',
        type=int,
        default=0,
        help='Only compare float32 and mixed_bfloat16 validation loss after '
        '--steps steps, paired by seed over this many seeds (the run-to-run '
        'spread is about as large as the difference being measured).',
    )
    parser.add_argument(
        '--repeats',
        type=int,
        default=1,
        help='Times to run float32, mixed_bfloat16 and the notebook in turn.',
    )
    args = parser.parse_args()
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    workdir = tempfile.mkdtemp(prefix='bench_train_')
    records = os.path.join(workdir, 'records')
    subprocess.run(
        [
            sys.executable,
            '-m',
            'beam_jobs.make_records',
            '--runner=DirectRunner',
            f'--output_dir={records}',
        ],
        check=True,
        cwd=REPO,
        capture_output=True,
    )

    if args.precision_seeds:
        compare_losses(records, args.batch_size, args.steps, args.precision_seeds)
        return

    from bpnet_tfx.common import devices
    from bpnet_tfx.modeling import model as model_lib

    default = devices.resolve_precision('auto')  # the runs below include it, no XLA, seed 0
    runs, repeats, notebook_rates = {}, [], []
    for r in range(args.repeats):
        row = {
            p: run_trainer(records, args.batch_size, args.steps, p, False, 0)
            for p in ('float32', 'mixed_bfloat16')
        }
        notebook_rates.append(
            common.notebook_fit_rate(records, args.batch_size, args.notebook_steps)
        )
        # The notebook's model.fit given bpnet_tfx's Conv1D instead of the stock layer.
        notebook_ours = common.notebook_fit_rate(
            records, args.batch_size, args.notebook_steps, stock_layers=False
        )
        for p, v in row.items():
            runs.setdefault(p, v)  # the table shows the first repeat
        repeats.append(
            {
                **{p: v['examples_per_second'] for p, v in row.items()},
                'notebook': notebook_rates[-1],
                'notebook_our_conv': notebook_ours,
            }
        )
        print(f'  repeat {r + 1}: {repeats[-1]}', flush=True)
    # float32 twice (seeds 0 and 1) shows how much the loss moves from run to run alone.
    for name, precision, jit, seed in (
        ('float32_seed1', 'float32', False, 1),
        ('float32_xla', 'float32', True, 0),
        ('mixed_bfloat16_xla', 'mixed_bfloat16', True, 0),
    ):
        runs[name] = run_trainer(records, args.batch_size, args.steps, precision, jit, seed)
        print(f'  {name}: {runs[name]}', flush=True)
    notebook = notebook_rates[0]
    peak = matmul_peak_gflops()
    peak_bf16 = matmul_peak_gflops(dtype='bfloat16')
    flops = training_flops_per_example(model_lib.ModelConfig())
    base = runs['float32']
    machine = f'{platform.machine()}, {os.cpu_count()} cores'
    print(
        f'machine: {machine}; batch {args.batch_size}; {args.steps} steps per run; '
        f'default (--precision=auto) = {default}'
    )
    print(
        f'{"run (first repeat)":28s} {"examples/s":>11s} {"vs float32":>11s} {"val loss":>10s} '
        f'{"loss vs f32":>12s}'
    )
    for name, r in runs.items():
        print(
            f'{name:28s} {r["examples_per_second"]:11.1f} '
            f'{r["examples_per_second"] / base["examples_per_second"]:10.2f}x '
            f'{r["val_loss"]:10.2f} {100 * (r["val_loss"] / base["val_loss"] - 1):+11.2f}%'
        )
    print(f'{"notebook model.fit (float32)":28s} {notebook:11.1f}')
    print(f'{"notebook, our Conv1D layer":28s} {repeats[0]["notebook_our_conv"]:11.1f}')
    ratios = [r[default] / r['notebook'] for r in repeats]
    f32_ratios = [r['float32'] / r['notebook'] for r in repeats]
    print(
        f'ours ({default}, the default) / notebook, per repeat: '
        f'{", ".join(f"{x:.2f}x" for x in ratios)} (target >= 1.5); float32 / notebook: '
        f'{", ".join(f"{x:.2f}x" for x in f32_ratios)}'
    )
    fractions = {}
    for p in ('float32', 'mixed_bfloat16'):
        achieved = runs[p]['examples_per_second'] * flops / 1e9
        fractions[p] = achieved / peak
        print(
            f'{p} training: {flops / 1e9:.3f} GFLOP/example x '
            f'{runs[p]["examples_per_second"]:.0f} examples/s = {achieved:.1f} GFLOP/s = '
            f'{100 * achieved / peak:.0f}% of the float32 matmul peak {peak:.0f} GFLOP/s '
            f'(bfloat16 matmul peak {peak_bf16:.0f})'
        )
    print(
        json.dumps(
            {
                'benchmark': 'train',
                'machine': machine,
                'batch_size': args.batch_size,
                'steps': args.steps,
                'default': default,
                'runs': runs,
                'repeats': repeats,
                'notebook_examples_per_second': notebook,
                'ours_over_notebook': ratios,
                'float32_over_notebook': f32_ratios,
                'training_gflop_per_example': flops / 1e9,
                'matmul_peak_gflops': peak,
                'bfloat16_matmul_peak_gflops': peak_bf16,
                'fraction_of_float32_peak': fractions,
            },
            sort_keys=True,
        )
    )


def compare_losses(records: str, batch_size: int, steps: int, seeds: int) -> None:
    """float32 vs mixed_bfloat16 validation loss after `steps` steps, paired by seed."""
    losses = {'float32': [], 'mixed_bfloat16': []}
    for seed in range(seeds):
        for p in losses:
            losses[p].append(run_trainer(records, batch_size, steps, p, False, seed)['val_loss'])
        print(
            f'  seed {seed}: float32 {losses["float32"][-1]:.2f}, mixed_bfloat16 '
            f'{losses["mixed_bfloat16"][-1]:.2f}',
            flush=True,
        )
    f32, bf16 = (sum(v) / len(v) for v in losses.values())
    paired = [b / f - 1 for f, b in zip(losses['float32'], losses['mixed_bfloat16'])]
    spread = max(losses['float32']) / min(losses['float32']) - 1
    print(
        f'validation loss after {steps} steps over {seeds} seeds: float32 mean {f32:.2f}, '
        f'mixed_bfloat16 mean {bf16:.2f}: {100 * (bf16 / f32 - 1):+.2f}% (target within 1%); '
        f'paired {", ".join(f"{100 * d:+.2f}%" for d in paired)}; float32 spread between '
        f'seeds {100 * spread:.1f}%'
    )
    print(
        json.dumps(
            {
                'benchmark': 'train_precision',
                'steps': steps,
                'losses': losses,
                'relative_difference': bf16 / f32 - 1,
                'paired': paired,
                'float32_seed_spread': spread,
            }
        )
    )


if __name__ == '__main__':
    main()
