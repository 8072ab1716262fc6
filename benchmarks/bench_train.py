"""Training speed: ours against the notebook, precisions and XLA against float32, and the
fraction of the machine's matmul peak.

    .venv/bin/python -m benchmarks.bench_train [--steps=100 --batch_size=64 --no-xla]

On the demo data's records (made here with make_records), in interleaved pairs under
common.py's protocol, each pair running:
  - our loop (bpnet_tfx.training.trainer) at the default precision (what --precision=auto
    picks), mixed_bfloat16 (unless --no-bf16), and (unless --no-xla) float32 and
    mixed_bfloat16 with XLA: examples/s of one epoch of --steps steps, the first (tracing)
    step left out;
  - the reference notebook's in-memory Keras `model.fit` (float32 numpy arrays), same model
    (built from stock keras.layers.Conv1D, as the notebook does) and batch; and the same
    `model.fit` on bpnet_tfx's own Conv1D layer, which isolates what the training loop buys;
  - the machine's float32 matmul throughput through TensorFlow.
Reported: ours / notebook (target >= 1.7x), the precisions and XLA against float32, and the
training GFLOP/s (3x the forward convolutions' 2*MACs per example) over the matmul peak
(target >= 0.6). The validation loss after the steps is in the JSON; the loss comparison of
precisions by seed is a study: python -m benchmarks.studies.precision.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from benchmarks import common, workloads


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


def _trainer_arm(records: str, args, precision: str, jit: bool, flops: float):
    def run() -> dict:
        r = workloads.run_trainer(
            records, batch_size=args.batch_size, steps=args.steps, precision=precision, jit=jit
        )
        rate = r['examples_per_second']
        return {'value': rate, 'gflops': rate * flops / 1e9, 'val_loss': r['val_loss']}

    return run


def _arms_and_ratios(records: str, args, default: str, flops: float) -> tuple[dict, list]:
    arms = {
        'ours': _trainer_arm(records, args, default, False, flops),
        'notebook': lambda: common.notebook_fit_rate(records, args.batch_size, args.notebook_steps),
        'notebook_our_conv': lambda: common.notebook_fit_rate(
            records, args.batch_size, args.notebook_steps, stock_layers=False
        ),
        'matmul_peak': matmul_peak_gflops,
    }
    ratios = [
        common.Ratio(f'ours ({default}) / notebook model.fit', 'ours', 'notebook', '>= 1.7x'),
        common.Ratio('ours / notebook model.fit on our Conv1D', 'ours', 'notebook_our_conv'),
        common.Ratio(
            f'{default} training GFLOP/s / matmul peak', 'ours.gflops', 'matmul_peak', '>= 0.6'
        ),
    ]
    if args.bf16:
        arms['mixed_bfloat16'] = _trainer_arm(records, args, 'mixed_bfloat16', False, flops)
        ratios.append(common.Ratio(f'mixed_bfloat16 / {default}', 'mixed_bfloat16', 'ours'))
    if args.xla:
        for precision in (default, 'mixed_bfloat16')[: 1 + args.bf16]:
            arms[f'{precision}_xla'] = _trainer_arm(records, args, precision, True, flops)
            name = f'{precision} + XLA / {default}'
            ratios.append(common.Ratio(name, f'{precision}_xla', 'ours'))
    return arms, ratios


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
        '--xla',
        action=argparse.BooleanOptionalAction,
        default=True,
        help='Also run float32 and mixed_bfloat16 with XLA (--jit_compile) in every pair.',
    )
    parser.add_argument(
        '--bf16',
        action=argparse.BooleanOptionalAction,
        default=True,
        help='Also run mixed_bfloat16 in every pair (--no-bf16 on CPUs without bfloat16 '
        'instructions, where it only measures their emulation).',
    )
    common.add_protocol_flags(parser)
    args = parser.parse_args()
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    records = workloads.demo_records(tempfile.mkdtemp(prefix='bench_train_'))

    from bpnet_tfx.common import devices
    from bpnet_tfx.modeling import model as model_lib

    default = devices.resolve_precision('auto')
    flops = training_flops_per_example(model_lib.ModelConfig())
    print(
        f'batch {args.batch_size}; {args.steps} steps per run; default precision {default}; '
        f'{flops / 1e9:.3f} training GFLOP/example',
        flush=True,
    )
    arms, ratios = _arms_and_ratios(records, args, default, flops)
    result = common.compare(arms, ratios, common.protocol_from_args(args))
    common.report(
        'bench_train',
        {'train': result},
        batch_size=args.batch_size,
        steps=args.steps,
        default_precision=default,
        training_gflop_per_example=flops / 1e9,
        bfloat16_matmul_peak_gflops=matmul_peak_gflops(dtype='bfloat16'),
    )


if __name__ == '__main__':
    main()
