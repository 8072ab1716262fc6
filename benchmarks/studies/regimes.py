"""The 2114 -> 1000 regime against the reference 1000 -> 1000 one, on the embedded demo data.

    python -m benchmarks.studies.regimes [OUTPUT_DIR] [--epochs N]

Makes two record sets from the same simulated genome and peaks (make_records, DirectRunner):
1000-bp windows (the reference), and 2114-bp inputs with 1000-bp counts plus GC-matched
background regions (ratio 0.25); trains configs/demo.flags and configs/demo_2114.flags on them
(same batch size, epochs and seed), evaluates both exports on the validation chromosome's peaks
(background is left out of every metric) and prints a table and one JSON line. The validation
NLL is the per-strand multinomial NLL over the same 1000-bp output windows in both regimes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from benchmarks import common

REGIMES = {
    '1000->1000': {'records': [], 'flagfile': 'configs/demo.flags'},
    '2114->1000': {
        'records': ['--input_length=2114', '--output_length=1000', '--background_ratio=0.25'],
        'flagfile': 'configs/demo_2114.flags',
    },
}


def _run(args: list[str]) -> float:
    return common.run_command(args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('output_dir', nargs='?', default='/tmp/bench_regimes')
    parser.add_argument('--epochs', type=int, default=8)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--demo',
        default='default',
        help="make_records' --demo data set: 'default', or 'sparse' (room for background windows).",
    )
    parser.add_argument(
        '--train_flag',
        action='append',
        default=[],
        help='Extra flag for both training runs, e.g. '
        '--train_flag=--counts_loss_weight=10 (repeatable).',
    )
    args = parser.parse_args()
    py = sys.executable
    results = {}
    for name, regime in REGIMES.items():
        tag = name.split('->')[0]
        records = os.path.join(args.output_dir, f'records_{tag}')
        model = os.path.join(args.output_dir, f'model_{tag}')
        seconds = {
            'records': _run(
                [
                    py,
                    '-m',
                    'beam_jobs.make_records',
                    '--runner=DirectRunner',
                    f'--output_dir={records}',
                    '--overwrite',
                    f'--demo={args.demo}',
                    *regime['records'],
                ]
            )
        }
        seconds['train'] = _run(
            [
                py,
                '-m',
                'bpnet_tfx.train',
                f'--flagfile={regime["flagfile"]}',
                f'--records_dir={records}',
                f'--model_dir={model}',
                f'--epochs={args.epochs}',
                f'--seed={args.seed}',
                '--overwrite',
                *args.train_flag,
            ]
        )
        metrics_path = os.path.join(args.output_dir, f'evaluation_{tag}.json')
        seconds['evaluate'] = _run(
            [
                py,
                '-m',
                'bpnet_tfx.evaluate',
                f'--saved_model={model}/export',
                f'--records_dir={records}',
                '--split=valid',
                f'--output_json={metrics_path}',
            ]
        )
        with open(metrics_path) as f:
            evaluation = json.load(f)
        with open(os.path.join(records, 'metadata.json')) as f:
            meta = json.load(f)
        results[name] = {
            'overall': evaluation['overall'],
            'seconds': seconds,
            'split_counts': meta['split_counts'],
            'background_counts': meta.get('background_counts', {}),
            'background_skipped': evaluation.get('background_skipped', 0),
        }
    keys = (
        'profile_nll',
        'oracle_profile_nll',
        'uniform_profile_nll',
        'profile_auprc',
        'count_pearson',
        'n_examples',
    )
    print(f'\n{"regime":<12}' + ''.join(f'{k:>20}' for k in keys) + f'{"train s":>10}')
    for name, r in results.items():
        print(
            f'{name:<12}'
            + ''.join(f'{r["overall"].get(k, float("nan")):>20.4g}' for k in keys)
            + f'{r["seconds"]["train"]:>10.0f}'
        )
    a, b = (results[n]['overall']['profile_nll'] for n in REGIMES)
    print(
        f'\n2114->1000 validation profile NLL minus 1000->1000: {b - a:+.2f} '
        f'({100 * (b - a) / a:+.2f}%); no worse: {b <= a}'
    )
    print(
        json.dumps(
            {
                'benchmark': 'regimes',
                'demo': args.demo,
                'epochs': args.epochs,
                'seed': args.seed,
                'train_flags': args.train_flag,
                'results': results,
            },
            sort_keys=True,
        )
    )


if __name__ == '__main__':
    main()
