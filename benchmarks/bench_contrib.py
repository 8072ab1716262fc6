"""Contribution scores: windows per second of the shuffle, integrated gradients and ISM.

    .venv/bin/python benchmarks/bench_contrib.py [--saved_model=demo_output/model/export \
        --records_dir=demo_output/records --windows=16 --ism_windows=2]

Measured on the first validation windows of the records, through the SavedModel as
`python -m bpnet_tfx.contrib` runs it (attribution.Scorer), after one untimed warm-up call:
  1. the dinucleotide shuffle alone (numpy): windows/s at --num_shuffles references a window;
  2. integrated gradients at --num_shuffles references x --steps steps (the command's
     defaults), both heads, references included: windows/s and model inputs/s (forward and
     backward over the path points);
  3. in-silico mutagenesis of every base, both heads: windows/s and mutated windows/s.
Prints a readable row per measurement and one JSON line at the end. The defaults are the demo's
model and records (`bash scripts/demo.sh` makes them).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def _windows(records_dir: str, count: int) -> tuple[np.ndarray, np.ndarray | None]:
    """One-hot (count, L, 4) of the first validation windows, and their control counts (or
    None: records without controls)."""
    from bpnet_tfx import data, schema

    info = schema.RecordsInfo.load(records_dir)
    batch = next(iter(data.make_eval_dataset(records_dir, info, 'valid', batch_size=count)))
    control = batch['control'].numpy() if 'control' in batch else None
    return batch['one_hot'].numpy().astype(np.float32), control


def _timed(fn, repeats: int = 1) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument(
        '--saved_model', default=os.path.join(REPO, 'demo_output', 'model', 'export')
    )
    parser.add_argument('--records_dir', default=os.path.join(REPO, 'demo_output', 'records'))
    parser.add_argument('--windows', type=int, default=16, help='Windows timed for IG.')
    parser.add_argument('--ism_windows', type=int, default=2, help='Windows timed for ISM.')
    parser.add_argument('--num_shuffles', type=int, default=10)
    parser.add_argument('--steps', type=int, default=20)
    parser.add_argument(
        '--batch_size',
        type=int,
        default=128,
        help='Model inputs per device call, as contrib --batch_size.',
    )
    args = parser.parse_args()
    for path in (args.saved_model, args.records_dir):
        if not os.path.isdir(path):
            sys.exit(
                f'bench_contrib: {path} not found; run `bash scripts/demo.sh` first or '
                'pass --saved_model and --records_dir'
            )

    import tensorflow as tf

    from bpnet_tfx import attribution, shuffle

    scorer = attribution.Scorer(args.saved_model)
    k, s = args.num_shuffles, args.steps
    x, control = _windows(args.records_dir, max(args.windows, args.ism_windows + 1))
    if not scorer.use_control:
        control = None

    def ctrl(lo, hi):  # a control model scores with the windows' observed control counts
        return None if control is None else control[lo:hi]

    per_call = max(1, args.batch_size // k)
    rows = []

    def rngs(n, offset=0):
        return [np.random.default_rng([0, offset + i]) for i in range(n)]

    # 1. The shuffle alone, in the batches the command uses.
    def shuffle_all():
        for b in range(0, args.windows, per_call):
            shuffle.dinuc_shuffle(
                x[b : min(b + per_call, args.windows)], k, rngs(min(per_call, args.windows - b), b)
            )

    seconds = _timed(shuffle_all, 3)
    rows.append(
        {
            'measurement': f'dinucleotide shuffle ({k} refs)',
            'windows_per_second': args.windows / seconds,
        }
    )

    # 2. Integrated gradients, shuffles included; warm-up call first (tracing).
    first = x[:1]  # the function takes any batch and step count: one step traces it
    scorer.integrated_gradients(first, shuffle.dinuc_shuffle(first, k, rngs(1)), 1, ctrl(0, 1))

    def ig_all():
        for b in range(0, args.windows, per_call):
            part = x[b : min(b + per_call, args.windows)]
            scorer.integrated_gradients(
                part, shuffle.dinuc_shuffle(part, k, rngs(len(part), b)), s, ctrl(b, b + len(part))
            )

    seconds = _timed(ig_all)
    rows.append(
        {
            'measurement': f'integrated gradients ({k} refs x {s} steps, 2 heads)',
            'windows_per_second': args.windows / seconds,
            'model_inputs_per_second': args.windows * k * s / seconds,
        }
    )

    # 3. In-silico mutagenesis of every base, a window at a time (as the command runs it);
    # the first window, which traces the function, is not timed.
    times = [
        _timed(lambda: scorer.mutagenesis(x[i : i + 1], args.batch_size, ctrl(i, i + 1)))
        for i in range(args.ism_windows + 1)
    ]
    seconds = sum(times[1:])
    mutants = int(np.sum(x[1 : args.ism_windows + 1] == 0))
    rows.append(
        {
            'measurement': 'in-silico mutagenesis (every base, 2 heads)',
            'windows_per_second': args.ism_windows / seconds,
            'model_inputs_per_second': mutants / seconds,
        }
    )

    gpus = tf.config.list_logical_devices('GPU')
    device = f'GPU x{len(gpus)}' if gpus else f'CPU ({os.cpu_count()} cores)'
    print(
        f"{'measurement':55s} {'windows/s':>10s} {'inputs/s':>10s}   ({device}, "
        f'{scorer.length} bp windows, {args.saved_model})'
    )
    for row in rows:
        inputs = row.get('model_inputs_per_second')
        print(
            f"{row['measurement']:55s} {row['windows_per_second']:10.2f} "
            f"{'-' if inputs is None else f'{inputs:.0f}':>10s}"
        )
    print(
        json.dumps(
            {
                'benchmark': 'bench_contrib',
                'device': device,
                'machine': platform.machine(),
                'saved_model': args.saved_model,
                'sequence_length': scorer.length,
                'use_control': scorer.use_control,
                'num_shuffles': k,
                'steps': s,
                'batch_size': args.batch_size,
                'windows': args.windows,
                'ism_windows': args.ism_windows,
                'results': [
                    {k2: (round(v, 3) if isinstance(v, float) else v) for k2, v in row.items()}
                    for row in rows
                ],
            }
        )
    )


if __name__ == '__main__':
    main()
