"""Variant effect scores: variants per second of `python -m bpnet_tfx.variants`'s library.

    .venv/bin/python benchmarks/bench_variants.py [--sequence_length=2114 --output_length=1000 \
        --variants=256 --batch_size=64 --null_variants=0,10]

An untrained model of configs/chip_nexus_2114.flags's architecture (64 filters; for
2114 -> 1000: stem kernel 21, 8 dilated layers, profile kernel 75; otherwise the defaults),
exported to a temporary folder; a random 200-kb genome and random SNVs on it, scored by
`variant_effects.score_variants` (ref and alt, forward and reverse complement) once per
--null_variants value after one untimed warm-up batch. Untrained weights cost the same as
trained ones. Times include loading the export, as the command's summary does. Prints a
readable row per measurement and one JSON line at the end.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--sequence_length', type=int, default=2114)
    parser.add_argument('--output_length', type=int, default=1000)
    parser.add_argument('--variants', type=int, default=256)
    parser.add_argument('--batch_size', type=int, default=64)
    parser.add_argument('--null_variants', default='0,10', help='Comma-separated values.')
    args = parser.parse_args()

    import keras

    from bpnet_tfx import export, schema, variant_effects
    from bpnet_tfx import model as model_lib

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
        variant_effects.score_variants(  # warm-up: loads and traces
            path, fasta, snvs('warm.tsv', args.batch_size), out, batch_size=args.batch_size
        )
        todo = snvs('timed.tsv', args.variants)
        for k in (int(x) for x in args.null_variants.split(',')):
            result = variant_effects.score_variants(
                path, fasta, todo, out, batch_size=args.batch_size, null_variants=k
            )
            rows.append(
                {
                    'measurement': f'{k} null variants each',
                    'variants_per_second': result['scored'] / result['seconds'],
                    'windows_per_second': result['scored'] * (4 + 2 * k) / result['seconds'],
                }
            )
    for r in rows:
        print(
            f"bench_variants: {args.sequence_length} -> {args.output_length} bp, batch "
            f"{args.batch_size}, {r['measurement']}: {r['variants_per_second']:.1f} variants/s "
            f"({r['windows_per_second']:.0f} windows/s)"
        )
    print(
        json.dumps(
            {
                'benchmark': 'variants',
                'sequence_length': args.sequence_length,
                'output_length': args.output_length,
                'batch_size': args.batch_size,
                'variants': args.variants,
                'rows': rows,
                'machine': f'{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs',
            }
        )
    )


if __name__ == '__main__':
    main()
