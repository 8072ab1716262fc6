"""Variant effect scores: variants per second of the variants command and of the Beam job.

    .venv/bin/python benchmarks/bench_variants.py [--sequence_length=2114 --output_length=1000 \
        --variants=1024 --batch_size=64 --null_variants=0,10 --beam_workers=1]

An untrained model of configs/chip_nexus_2114.flags's architecture (64 filters; for
2114 -> 1000: stem kernel 21, 8 dilated layers, profile kernel 75; otherwise the defaults),
exported to a temporary folder; a random 200-kb genome and random SNVs on it. For each
--null_variants value the same SNVs are scored by the command's library
(`variant_effects.score_variants`: ref and alt, forward and reverse complement) and by the
Beam job (`beam_jobs.score_variants.run`, --runner=DirectRunner, in-process, or with
--beam_workers=N > 1 that many worker processes), after one untimed warm-up run of each. Times
are the ones the summaries report: from the start of the call (export loading and, for the
job, building and running the pipeline and merging the shards) to the output in place. The
job's scores are checked against the command's (max |difference|). Untrained weights cost the
same as trained ones. Prints a readable row per measurement and one JSON line at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def _workers(args) -> str:
    if args.beam_workers == 1:
        return 'DirectRunner in-process'
    return f'DirectRunner, {args.beam_workers} worker processes'


def _beam(saved_model, fasta, variants, output_dir, args, null_variants) -> dict:
    from beam_jobs import score_variants

    flags = [
        f'--saved_model={saved_model}',
        f'--fasta={fasta}',
        f'--variants={variants}',
        f'--output_dir={output_dir}',
        f'--batch_size={args.batch_size}',
        f'--null_variants={null_variants}',
        '--runner=DirectRunner',
    ]
    if args.beam_workers > 1:
        flags += [
            f'--direct_num_workers={args.beam_workers}',
            '--direct_running_mode=multi_processing',
            f'--variants_per_chunk={-(-args.variants // args.beam_workers)}',
        ]
    return score_variants.run(flags)


def _max_diff(command_tsv: str, job_tsv: str) -> float:
    import pandas as pd

    a, b = (pd.read_csv(p, sep='\t') for p in (command_tsv, job_tsv))
    scores = [c for c in a.columns if '.' in c]
    assert list(a['variant_id']) == list(b['variant_id']), 'the job changed the rows'
    return float(np.nanmax(np.abs(a[scores].to_numpy() - b[scores].to_numpy())))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--sequence_length', type=int, default=2114)
    parser.add_argument('--output_length', type=int, default=1000)
    parser.add_argument('--variants', type=int, default=1024)
    parser.add_argument('--batch_size', type=int, default=64)
    parser.add_argument('--null_variants', default='0,10', help='Comma-separated values.')
    parser.add_argument(
        '--beam_workers',
        type=int,
        default=1,
        help='DirectRunner workers of the Beam job: 1 in-process, N > 1 worker processes.',
    )
    args = parser.parse_args()

    import keras

    from bpnet_tfx.inference import export
    from bpnet_tfx.modeling import model as model_lib
    from bpnet_tfx.records import schema
    from bpnet_tfx.variant_effects import scoring as variant_effects

    keras.utils.set_random_seed(0)
    regime = (
        dict(stem_kernel_size=21, num_dilated_layers=8, profile_kernel_size=75)
        if (args.sequence_length, args.output_length) == (2114, 1000)
        else {}
    )
    config = model_lib.ModelConfig(
        sequence_length=args.sequence_length, output_length=args.output_length, **regime
    )
    info = schema.RecordsInfo(
        sequence_length=args.sequence_length,
        output_length=args.output_length,
        max_jitter=0,
        tasks=('bench',),
    )
    rng = np.random.default_rng(0)
    seq = ''.join(rng.choice(list('ACGT'), 200_000))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = export.export_saved_model(
            model_lib.build_bpnet(config), info, config, os.path.join(tmp, 'export')
        )
        fasta = os.path.join(tmp, 'g.fa')
        with open(fasta, 'w') as f:
            f.write('>chrB\n' + '\n'.join(seq[i : i + 60] for i in range(0, len(seq), 60)) + '\n')

        def snvs(name, n):
            positions = rng.integers(5000, 195_000, n)
            lines = ''.join(
                f'chrB\t{p + 1}\t{seq[p]}\t{"ACGT"[("ACGT".index(seq[p]) + 1) % 4]}\n'
                for p in positions
            )
            with open(os.path.join(tmp, name), 'w') as f:
                f.write(lines)
            return os.path.join(tmp, name)

        out = os.path.join(tmp, 'scores.tsv')
        warm = snvs('warm.tsv', args.batch_size)
        variant_effects.score_variants(path, fasta, warm, out, batch_size=args.batch_size)
        _beam(path, fasta, warm, os.path.join(tmp, 'warm'), args, 0)
        todo = snvs('timed.tsv', args.variants)
        for k in (int(x) for x in args.null_variants.split(',')):
            cli = variant_effects.score_variants(
                path, fasta, todo, out, batch_size=args.batch_size, null_variants=k
            )
            beam = _beam(path, fasta, todo, os.path.join(tmp, f'beam{k}'), args, k)
            diff = _max_diff(out, os.path.join(tmp, f'beam{k}', 'scores.tsv'))
            for name, result in (('command', cli), (f'Beam job, {_workers(args)}', beam)):
                rows.append(
                    {
                        'measurement': f'{name}, {k} null variants each',
                        'variants_per_second': result['scored'] / result['seconds'],
                        'windows_per_second': result['scored'] * (4 + 2 * k) / result['seconds'],
                        'seconds': result['seconds'],
                    }
                )
            rows[-1]['max_abs_diff_vs_command'] = diff
    for r in rows:
        print(
            f"bench_variants: {args.sequence_length} -> {args.output_length} bp, batch "
            f"{args.batch_size}, {r['measurement']}: {r['variants_per_second']:.1f} variants/s "
            f"({r['windows_per_second']:.0f} windows/s, {r['seconds']:.1f} s)"
            + (
                f"; scores vs the command: max |diff| {r['max_abs_diff_vs_command']:.1e}"
                if 'max_abs_diff_vs_command' in r
                else ''
            )
        )
    print(
        json.dumps(
            {
                'benchmark': 'variants',
                'sequence_length': args.sequence_length,
                'output_length': args.output_length,
                'batch_size': args.batch_size,
                'variants': args.variants,
                'beam_workers': args.beam_workers,
                'rows': rows,
                'machine': f'{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs',
            }
        )
    )


if __name__ == '__main__':
    main()
