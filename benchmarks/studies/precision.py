"""The precision study: validation loss of mixed_bfloat16 (heads in float32) against float32
after the same number of steps, paired by seed (same initial weights and data order), on the
demo's records. A faster policy becomes the default only within 1% of float32
(bpnet_tfx/common/devices.py).

    python -m benchmarks.studies.precision [--seeds=4 --steps=200 --batch_size=64]

Prints a line per seed and one JSON line: the losses, their relative difference, the paired
differences and float32's own spread between seeds.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile

from benchmarks import workloads


def compare_losses(records: str, batch_size: int, steps: int, seeds: int) -> dict:
    """float32 vs mixed_bfloat16 validation loss after `steps` steps, paired by seed."""
    losses = {'float32': [], 'mixed_bfloat16': []}
    for seed in range(seeds):
        for p in losses:
            run = workloads.run_trainer(
                records, batch_size=batch_size, steps=steps, precision=p, seed=seed
            )
            losses[p].append(run['val_loss'])
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
    return {
        'study': 'precision',
        'steps': steps,
        'batch_size': batch_size,
        'losses': losses,
        'relative_difference': bf16 / f32 - 1,
        'paired': paired,
        'float32_seed_spread': spread,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--seeds', type=int, default=4, help='Seeds 0..N-1, one pair each.')
    parser.add_argument('--steps', type=int, default=200, help='Training steps of every run.')
    parser.add_argument('--batch_size', type=int, default=64, help='Batch size of every run.')
    args = parser.parse_args()
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    records = workloads.demo_records(tempfile.mkdtemp(prefix='study_precision_'))
    result = compare_losses(records, args.batch_size, args.steps, args.seeds)
    print(json.dumps(result))


if __name__ == '__main__':
    main()
