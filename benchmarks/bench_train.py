"""Training speed: precisions and XLA against float32, ours against the notebook, and FLOPs.

    .venv/bin/python benchmarks/bench_train.py [--steps=100 --batch_size=64]

Measured in one run on the demo data's records (made here with make_records):
  1. bpnet_tfx.trainer at float32 (two seeds: the run-to-run spread), mixed_bfloat16, and
     float32 + XLA: training examples/s and the validation loss after the same fixed number of
     steps (target: within 1% of float32).
  2. The run at the default precision (what --precision=auto picks) against the reference
     notebook's in-memory Keras `model.fit` (float32 numpy arrays), same model and batch.
     Target: >= 1.5x.
  3. The model's training FLOPs per example (3x the forward convolutions' 2*MACs), the
     machine's measured float32 matmul peak, and the fraction of it training reaches.
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


def matmul_peak_gflops(size: int = 2048, repeats: int = 10) -> float:
    """Measured float32 matmul throughput of this machine through TensorFlow."""
    import tensorflow as tf
    a = tf.random.normal((size, size))
    b = tf.random.normal((size, size))

    @tf.function
    def mm(a, b):
        return tf.matmul(a, b)

    mm(a, b).numpy()
    start = time.perf_counter()
    for _ in range(repeats):
        c = mm(a, b)
    c.numpy()
    return repeats * 2 * size**3 / (time.perf_counter() - start) / 1e9


def run_trainer(records_dir: str, batch_size: int, steps: int, precision: str,
                jit: bool, seed: int = 0) -> dict:
    from bpnet_tfx import model as model_lib
    from bpnet_tfx import schema, trainer
    info = schema.RecordsInfo.load(records_dir)
    model_dir = tempfile.mkdtemp(prefix=f'bench_train_{precision}_')
    config = trainer.TrainConfig(
        records_dir=records_dir, model_dir=model_dir,
        export_dir=os.path.join(model_dir, 'export'),
        model=model_lib.ModelConfig(sequence_length=info.sequence_length),
        batch_size=batch_size, epochs=1, steps_per_epoch=steps, precision=precision,
        jit_compile=jit, input_benchmark_batches=0, seed=seed)
    summary = trainer.train(config, info)
    return {'examples_per_second': summary['examples_per_second'],
            'val_loss': summary['final']['val_loss'], 'precision': summary['precision']}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--batch_size', type=int, default=64, help='Batch size of every run.')
    parser.add_argument('--steps', type=int, default=100, help='Training steps of every run.')
    parser.add_argument('--notebook_steps', type=int, default=30,
                        help='Batches held in RAM for the notebook baseline.')
    parser.add_argument('--precision_seeds', type=int, default=0,
                        help='Only compare float32 and mixed_bfloat16 validation loss, each '
                        'averaged over this many seeds (the run-to-run spread is about as large '
                        'as the difference being measured).')
    args = parser.parse_args()
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    workdir = tempfile.mkdtemp(prefix='bench_train_')
    records = os.path.join(workdir, 'records')
    subprocess.run([sys.executable, '-m', 'beam_jobs.make_records', '--runner=DirectRunner',
                    f'--output_dir={records}'], check=True, cwd=REPO, capture_output=True)

    if args.precision_seeds:
        losses = {p: [run_trainer(records, args.batch_size, args.steps, p, False, seed)['val_loss']
                      for seed in range(args.precision_seeds)]
                  for p in ('float32', 'mixed_bfloat16')}
        f32, bf16 = (float(sum(v) / len(v)) for v in losses.values())
        print(f'validation loss after {args.steps} steps over {args.precision_seeds} seeds: '
              f'float32 {f32:.2f} {losses["float32"]}, mixed_bfloat16 {bf16:.2f} '
              f'{losses["mixed_bfloat16"]}: {100 * (bf16 / f32 - 1):+.2f}% (target within 1%)')
        print(json.dumps({'benchmark': 'train_precision', 'steps': args.steps,
                          'losses': losses, 'relative_difference': bf16 / f32 - 1}))
        return

    from bpnet_tfx import model as model_lib
    from bpnet_tfx import trainer
    default = trainer.resolve_precision('auto')  # the runs below include it, no XLA, seed 0
    runs = {}
    # float32 twice (seeds 0 and 1) shows how much the loss moves from run to run alone.
    for name, precision, jit, seed in (('float32', 'float32', False, 0),
                                       ('float32_seed1', 'float32', False, 1),
                                       ('mixed_bfloat16', 'mixed_bfloat16', False, 0),
                                       ('float32_xla', 'float32', True, 0),
                                       ('mixed_bfloat16_xla', 'mixed_bfloat16', True, 0)):
        runs[name] = run_trainer(records, args.batch_size, args.steps, precision, jit, seed)
        print(f'  {name}: {runs[name]}', flush=True)
    notebook = common.notebook_fit_rate(records, args.batch_size, args.notebook_steps)
    peak = matmul_peak_gflops()
    flops = training_flops_per_example(model_lib.ModelConfig())
    base = runs['float32']
    machine = f'{platform.machine()}, {os.cpu_count()} cores'
    print(f'machine: {machine}; batch {args.batch_size}; {args.steps} steps per run; '
          f'default (--precision=auto) = {default}')
    print(f'{"run":28s} {"examples/s":>11s} {"vs float32":>11s} {"val loss":>10s} '
          f'{"loss vs f32":>12s}')
    for name, r in runs.items():
        print(f'{name:28s} {r["examples_per_second"]:11.1f} '
              f'{r["examples_per_second"] / base["examples_per_second"]:10.2f}x '
              f'{r["val_loss"]:10.2f} {100 * (r["val_loss"] / base["val_loss"] - 1):+11.2f}%')
    print(f'{"notebook model.fit (float32)":28s} {notebook:11.1f}')
    ratio = runs[default]['examples_per_second'] / notebook
    print(f'ours ({default}, the default) / notebook: {ratio:.2f}x (target >= 1.5)')
    achieved = runs['float32']['examples_per_second'] * flops / 1e9
    print(f'training FLOPs/example {flops / 1e9:.3f} GFLOP; float32 matmul peak '
          f'{peak:.0f} GFLOP/s; float32 training reaches {achieved:.1f} GFLOP/s = '
          f'{100 * achieved / peak:.0f}% of peak')
    print(json.dumps({'benchmark': 'train', 'machine': machine, 'batch_size': args.batch_size,
                      'steps': args.steps, 'runs': runs, 'notebook_examples_per_second': notebook,
                      'ours_over_notebook': ratio, 'training_gflop_per_example': flops / 1e9,
                      'matmul_peak_gflops': peak,
                      'float32_fraction_of_peak': achieved / peak}, sort_keys=True))


if __name__ == '__main__':
    main()
