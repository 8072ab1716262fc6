"""The counts-head study: training variants on simulated records, count Pearson against its bound.

    python -m benchmarks.studies.counts_head [--records=demo_output/records] \
        [--flagfile=configs/demo.flags] [--seeds=0,1] [--variant=NAME ...] [--output_dir=DIR]

For every variant (a set of extra train flags, STUDY below; all of them without --variant) and
seed: trains `--flagfile` with those flags on `--records` (make them first, e.g.
`python -m beam_jobs.make_records --runner=DirectRunner --output_dir=demo_output/records`),
evaluates the export on the validation split and prints a row: count_pearson,
sequence_count_pearson_bound (the simulator's sequence-determined totals; see
inference/evaluation.py), their ratio, profile NLL (and its oracle) and training seconds, per
task too with several tasks; then one JSON line with every number. docs/training.md holds the
table of the study and what it shows.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from benchmarks import common

# name -> extra train flags, on top of --flagfile (each names its counts head, since the
# shipped configs set one).
STUDY = {
    'reference': ['--counts_head=global_pool'],
    'weight_auto': ['--counts_head=global_pool', '--counts_loss_weight=auto'],
    'init_bias': ['--counts_head=global_pool', '--init_counts_bias'],
    'normalized': ['--counts_head=normalized_pool', '--init_counts_bias'],
    'normalized_weight_auto': [
        '--counts_head=normalized_pool',
        '--init_counts_bias',
        '--counts_loss_weight=auto',
    ],
    'normalized_weight_1': [
        '--counts_head=normalized_pool',
        '--init_counts_bias',
        '--counts_loss_weight=1',
    ],
    'normalized_lr_2e-3': [
        '--counts_head=normalized_pool',
        '--init_counts_bias',
        '--learning_rate=0.002',
    ],
    'normalized_no_rc': [
        '--counts_head=normalized_pool',
        '--init_counts_bias',
        '--noreverse_complement',
    ],
    'position_sum': ['--counts_head=position_sum'],
    'profile_sum': ['--counts_head=profile_sum'],
    'profile_sum_weight_auto': ['--counts_head=profile_sum', '--counts_loss_weight=auto'],
    'profile_sum_12_epochs': ['--counts_head=profile_sum', '--epochs=12'],
}


def _run(args: list[str]) -> float:
    return common.run_command(args, quiet=True)


def _row(name: str, seed: int, result: dict, seconds: float) -> str:
    o = result['overall']
    bound = o.get('sequence_count_pearson_bound', float('nan'))
    cells = [
        f'{name:<26}{seed:>5}',
        f'{o["count_pearson"]:>9.3f}{bound:>8.3f}{o["count_pearson"] / bound:>8.3f}',
        f'{o["profile_nll"]:>10.1f}{o.get("oracle_profile_nll", float("nan")):>9.1f}',
        f'{seconds:>8.0f}',
    ]
    if len(result['tasks']) > 1:
        cells += [
            f'  {task} {t["count_pearson"]:.3f}/{t.get("sequence_count_pearson_bound", 0):.3f}'
            for task, t in result['tasks'].items()
        ]
    return ''.join(cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--records', default='demo_output/records')
    parser.add_argument('--flagfile', default='configs/demo.flags')
    parser.add_argument('--seeds', default='0,1', help='Comma-separated training seeds.')
    parser.add_argument(
        '--variant', action='append', choices=sorted(STUDY), help='Repeatable; default: all.'
    )
    parser.add_argument('--output_dir', default='/tmp/bench_counts')
    args = parser.parse_args()
    py = sys.executable
    rows, results = [], []
    header = (
        f'{"variant":<26}{"seed":>5}{"count_r":>9}{"bound":>8}{"ratio":>8}'
        f'{"prof_nll":>10}{"oracle":>9}{"train_s":>8}'
    )
    for name in args.variant or list(STUDY):
        for seed in (int(s) for s in args.seeds.split(',')):
            model_dir = os.path.join(args.output_dir, f'{name}_seed{seed}')
            seconds = _run(
                [
                    py,
                    '-m',
                    'bpnet_tfx.train',
                    f'--flagfile={args.flagfile}',
                    f'--records_dir={args.records}',
                    f'--model_dir={model_dir}',
                    f'--seed={seed}',
                    '--overwrite',
                    *STUDY[name],
                ]
            )
            metrics_path = os.path.join(model_dir, 'evaluation_valid.json')
            _run(
                [
                    py,
                    '-m',
                    'bpnet_tfx.evaluate',
                    f'--saved_model={model_dir}/export',
                    f'--records_dir={args.records}',
                    '--split=valid',
                    f'--output_json={metrics_path}',
                ]
            )
            with open(metrics_path) as f:
                result = json.load(f)
            rows.append(_row(name, seed, result, seconds))
            print(header + '\n' + rows[-1], flush=True)
            results.append(
                {
                    'variant': name,
                    'seed': seed,
                    'train_flags': STUDY[name],
                    'train_seconds': round(seconds, 1),
                    'overall': result['overall'],
                    'tasks': {k: {**v, 'strands': None} for k, v in result['tasks'].items()},
                }
            )
    print('\n' + header + '\n' + '\n'.join(rows))
    print(
        json.dumps(
            {
                'benchmark': 'counts',
                'records': args.records,
                'flagfile': args.flagfile,
                'results': results,
            },
            sort_keys=True,
        )
    )


if __name__ == '__main__':
    main()
