"""The design study: one training config on every simulator design, seed and window regime.

    python benchmarks/studies/designs.py [--designs=sites,control] [--seeds=0,1] \
        [--regimes=1000,2114] [--flagfile=configs/demo.flags] \
        [--flagfile_2114=configs/demo_2114.flags] [--train_flag=--epochs=12 ...] \
        [--output_dir=/tmp/designs_study] [--smoke]

For every design of `bpnet_tfx.simulate.designs` (simulated once, seed --data_seed) and regime
(1000: 1000-bp windows; 2114: 2114-bp inputs, 1000-bp counts) it makes records
(beam_jobs.make_records, DirectRunner, chr1 validation), and for every seed trains the regime's
flagfile plus --train_flag, evaluates the export on the validation split and prints a row:
count Pearson, its bound (the design's sequence-determined totals), their ratio, the profile
gap closed ((uniform NLL - NLL) / (uniform NLL - oracle NLL)) and the training seconds. Then a
table of every row, whether each design and regime meets the targets (ratio >= 0.85 at 1000,
>= 0.80 at 2114; gap >= 0.92) on every seed, and one JSON line with every number.

--smoke runs the chain on tiny designs for one epoch of a small model, to check that it works;
its numbers mean nothing. docs/training.md holds the study's table and what it shows.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)

from bpnet_tfx.simulate import designs  # noqa: E402 (after the path above)
from bpnet_tfx.simulate import simulator as simulate  # noqa: E402

# regime -> make_records flags
REGIMES = {
    '1000': ['--input_length=1000'],
    '2114': ['--input_length=2114', '--output_length=1000'],
}
TARGET_RATIO = {'1000': 0.85, '2114': 0.80}
TARGET_GAP = 0.92
SMOKE_SCALE = 0.05
SMOKE_TRAIN_FLAGS = [
    '--epochs=1',
    '--filters=8',
    '--num_dilated_layers=3',
    '--input_benchmark_batches=0',
]


def _run(args: list[str], log: str) -> float:
    """Runs a command with its output in `log`; returns its seconds. Stops the study with the
    log's tail when it fails."""
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL='2')
    start = time.perf_counter()
    with open(log, 'w') as f:
        proc = subprocess.run(args, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    if proc.returncode:
        with open(log) as f:
            tail = f.read()[-3000:]
        sys.exit(f'designs: error: {" ".join(args[:3])} failed (exit {proc.returncode}):\n{tail}')
    return time.perf_counter() - start


def _records(name: str, regime: str, args: argparse.Namespace) -> str:
    """Simulates design `name` (cached under output_dir/sim) and makes its records for
    `regime`; returns the records folder (reused when complete)."""
    config = designs.design_config(name, seed=args.data_seed, scale=args.scale)
    files = simulate.ensure_demo_data(os.path.join(args.output_dir, 'sim'), config)
    records = os.path.join(args.output_dir, 'records', f'{name}_{regime}')
    if os.path.exists(os.path.join(records, 'metadata.json')):
        return records
    task = files.task_bigwigs[files.tasks[0]]
    flags = [
        f'--fasta={files.fasta}',
        f'--peaks={files.peaks}',
        f'--pos_bigwig={task.pos}',
        f'--neg_bigwig={task.neg}',
        f'--expected_pos_bigwig={task.expected_pos}',
        f'--expected_neg_bigwig={task.expected_neg}',
        f'--task_name={files.tasks[0]}',
        '--valid_chroms=chr1',
        f'--output_dir={records}',
        '--runner=DirectRunner',
        '--overwrite',
        *REGIMES[regime],
    ]
    if files.control_pos_bigwig:
        flags += [
            f'--control_pos_bigwig={files.control_pos_bigwig}',
            f'--control_neg_bigwig={files.control_neg_bigwig}',
        ]
    os.makedirs(os.path.dirname(records), exist_ok=True)
    _run([sys.executable, '-m', 'beam_jobs.make_records', *flags], records + '.log')
    return records


def _train_and_evaluate(records: str, model_dir: str, flagfile: str, seed: int, extra) -> dict:
    """Trains and evaluates one model; returns the evaluation's overall numbers with
    'train_seconds'."""
    os.makedirs(model_dir, exist_ok=True)
    seconds = _run(
        [
            sys.executable,
            '-m',
            'bpnet_tfx.train',
            f'--flagfile={flagfile}',
            f'--records_dir={records}',
            f'--model_dir={model_dir}',
            f'--seed={seed}',
            '--overwrite',
            *extra,
        ],
        os.path.join(model_dir, 'train.log'),
    )
    metrics = os.path.join(model_dir, 'evaluation_valid.json')
    _run(
        [
            sys.executable,
            '-m',
            'bpnet_tfx.evaluate',
            f'--saved_model={model_dir}/export',
            f'--records_dir={records}',
            '--split=valid',
            f'--output_json={metrics}',
        ],
        os.path.join(model_dir, 'evaluate.log'),
    )
    with open(metrics) as f:
        overall = json.load(f)['overall']
    return {**overall, 'train_seconds': round(seconds, 1)}


def _scores(result: dict) -> tuple[float, float]:
    """(count Pearson / its bound, profile gap closed) of one evaluation."""
    bound = result.get('sequence_count_pearson_bound', math.nan)
    uniform, oracle = result['uniform_profile_nll'], result.get('oracle_profile_nll', math.nan)
    return result['count_pearson'] / bound, (uniform - result['profile_nll']) / (uniform - oracle)


HEADER = (
    f'{"design":<15}{"regime":>7}{"seed":>5}{"count_r":>9}{"bound":>8}{"ratio":>8}'
    f'{"gap":>8}{"train_s":>9}'
)


def _row(design: str, regime: str, seed: int, result: dict) -> str:
    ratio, gap = _scores(result)
    return (
        f'{design:<15}{regime:>7}{seed:>5}{result["count_pearson"]:>9.3f}'
        f'{result.get("sequence_count_pearson_bound", math.nan):>8.3f}{ratio:>8.3f}'
        f'{gap:>8.3f}{result["train_seconds"]:>9.0f}'
    )


def _verdicts(results: list[dict]) -> list[str]:
    """Per design and regime: the worst ratio and gap over the seeds, against the targets."""
    lines = []
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in results:
        groups.setdefault((r['design'], r['regime']), []).append(r)
    for (design, regime), rows in groups.items():
        ratios, gaps = zip(*(_scores(r['overall']) for r in rows))
        ok = min(ratios) >= TARGET_RATIO[regime] and min(gaps) >= TARGET_GAP
        lines.append(
            f'{design:<15}{regime:>7}: worst ratio {min(ratios):.3f} (target '
            f'{TARGET_RATIO[regime]}), worst gap {min(gaps):.3f} (target {TARGET_GAP}) over '
            f'{len(rows)} seed(s): {"meets" if ok else "misses"} the targets'
        )
    return lines


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--designs', default=','.join(designs.DESIGNS), help='Comma-separated.')
    parser.add_argument('--seeds', default='0,1', help='Comma-separated training seeds.')
    parser.add_argument('--regimes', default='1000,2114', help=f'Of {", ".join(REGIMES)}.')
    parser.add_argument('--flagfile', default='configs/demo.flags', help='The 1000 regime.')
    parser.add_argument('--flagfile_2114', default='configs/demo_2114.flags')
    parser.add_argument(
        '--train_flag', action='append', default=[], help='Extra train flag (repeatable).'
    )
    parser.add_argument('--data_seed', type=int, default=0, help='Seed of the simulations.')
    parser.add_argument(
        '--scale',
        type=float,
        default=4.0,
        help='Chromosome length factor: at 4 every design holds about 8,000 peaks (6,500 '
        'training windows), the order of a real peak set; at 1 too few to learn a determinant '
        'that leaves no footprint (docs/training.md).',
    )
    parser.add_argument('--output_dir', default='/tmp/designs_study')
    parser.add_argument(
        '--smoke',
        action='store_true',
        help=f'Designs at scale {SMOKE_SCALE}, one seed, {" ".join(SMOKE_TRAIN_FLAGS)}: checks '
        'the chain, measures nothing.',
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.scale, args.seeds = SMOKE_SCALE, args.seeds.split(',')[0]
        args.train_flag = SMOKE_TRAIN_FLAGS + args.train_flag
    unknown = [d for d in args.designs.split(',') if d not in designs.DESIGNS]
    unknown += [r for r in args.regimes.split(',') if r not in REGIMES]
    if unknown:
        parser.error(f'unknown design or regime {unknown[0]!r}')
    args.output_dir = os.path.abspath(args.output_dir)
    return args


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    rows, results = [], []
    for design in args.designs.split(','):
        for regime in args.regimes.split(','):
            records = _records(design, regime, args)
            flagfile = args.flagfile if regime == '1000' else args.flagfile_2114
            for seed in (int(s) for s in args.seeds.split(',')):
                model_dir = os.path.join(args.output_dir, 'models', f'{design}_{regime}_{seed}')
                result = _train_and_evaluate(records, model_dir, flagfile, seed, args.train_flag)
                rows.append(_row(design, regime, seed, result))
                print(rows[-1] if len(rows) > 1 else f'{HEADER}\n{rows[-1]}', flush=True)
                results.append(
                    {'design': design, 'regime': regime, 'seed': seed, 'overall': result}
                )
    print('\n' + '\n'.join([HEADER, *rows, '', *_verdicts(results)]))
    summary = {'study': 'designs', 'train_flags': args.train_flag, 'scale': args.scale}
    print(json.dumps({**summary, 'results': results}, sort_keys=True))


if __name__ == '__main__':
    main()
