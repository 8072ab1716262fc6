"""Variant effect scores: variants per second of the variants command and of the Beam job.

    .venv/bin/python -m benchmarks.bench_variants [--sequence_length=2114 --output_length=1000 \
        --variants=1024 --batch_size=64 --null_variants=0,10 --beam_workers=1]

An untrained model of configs/chip_nexus_2114.flags's architecture (64 filters; for
2114 -> 1000: stem kernel 21, 8 dilated layers, profile kernel 75; otherwise the defaults),
exported to a temporary folder; a random 200-kb genome and random SNVs on it. For each
--null_variants value the same SNVs are scored by the command's library
(`variant_effects.score_variants`: ref and alt, forward and reverse complement) and by the
Beam job (`beam_jobs.score_variants.run`, --runner=DirectRunner, in-process, or with
--beam_workers=N > 1 that many worker processes), after one untimed warm-up run of each, in
interleaved pairs under common.py's protocol. Times
are the ones the summaries report: from the start of the call (export loading and, for the
job, building and running the pipeline and merging the shards) to the output in place. The
job's scores are checked against the command's (max |difference|). Untrained weights cost the
same as trained ones. Prints a line per pair, the table and one JSON line.
"""

from __future__ import annotations

import argparse
import os
import tempfile

import numpy as np

from benchmarks import common, workloads


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


def _arms(path, fasta, todo, tmp, args, k, outputs: dict) -> dict:
    """The command and the job scoring the same SNVs with `k` null variants each; each run
    writes a fresh output, its path kept in `outputs` (the last ones are compared)."""
    from bpnet_tfx.variant_effects import scoring as variant_effects

    def command() -> dict:
        out = os.path.join(tempfile.mkdtemp(dir=tmp), 'scores.tsv')
        r = variant_effects.score_variants(
            path, fasta, todo, out, batch_size=args.batch_size, null_variants=k
        )
        outputs[f'command_{k}'] = out
        return _rates(r, k)

    def job() -> dict:
        out = tempfile.mkdtemp(dir=tmp)
        r = _beam(path, fasta, todo, os.path.join(out, 'beam'), args, k)
        outputs[f'job_{k}'] = os.path.join(out, 'beam', 'scores.tsv')
        return _rates(r, k)

    return {f'command_{k}': command, f'job_{k}': job}


def _rates(result: dict, k: int) -> dict:
    return {
        'value': result['scored'] / result['seconds'],
        'windows_per_second': result['scored'] * (4 + 2 * k) / result['seconds'],
        'seconds': result['seconds'],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--sequence_length', type=int, default=2114, help='Input length, bp.')
    parser.add_argument('--output_length', type=int, default=1000, help='Output length, bp.')
    parser.add_argument('--variants', type=int, default=1024, help='SNVs timed.')
    parser.add_argument('--batch_size', type=int, default=64, help='Variants a batch.')
    parser.add_argument('--null_variants', default='0,10', help='Comma-separated values.')
    parser.add_argument(
        '--beam_workers',
        type=int,
        default=1,
        help='DirectRunner workers of the Beam job: 1 in-process, N > 1 worker processes.',
    )
    common.add_protocol_flags(parser)
    args = parser.parse_args()

    from bpnet_tfx.modeling import model as model_lib
    from bpnet_tfx.variant_effects import scoring as variant_effects

    regime = (
        dict(stem_kernel_size=21, num_dilated_layers=8, profile_kernel_size=75)
        if (args.sequence_length, args.output_length) == (2114, 1000)
        else {}
    )
    config = model_lib.ModelConfig(
        sequence_length=args.sequence_length, output_length=args.output_length, **regime
    )
    comparisons, checks, outputs = {}, {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        path = workloads.untrained_export(tmp, config)
        genome = workloads.random_genome(tmp, 200_000)
        margin = args.sequence_length
        warm = workloads.random_snvs(
            os.path.join(tmp, 'warm.tsv'), genome, args.batch_size, margin=margin, seed=1
        )
        todo = workloads.random_snvs(
            os.path.join(tmp, 'timed.tsv'), genome, args.variants, margin=margin, seed=2
        )
        # Untimed warm-up of each: loading, tracing.
        out = os.path.join(tmp, 'warm_scores.tsv')
        variant_effects.score_variants(path, genome.fasta, warm, out, batch_size=args.batch_size)
        _beam(path, genome.fasta, warm, os.path.join(tmp, 'warm'), args, 0)
        for k in (int(x) for x in args.null_variants.split(',')):
            print(f'{k} null variants each; the job: {_workers(args)}', flush=True)
            ratio = common.Ratio(f'Beam job / command, {k} nulls', f'job_{k}', f'command_{k}')
            comparisons[f'nulls_{k}'] = common.compare(
                _arms(path, genome.fasta, todo, tmp, args, k, outputs),
                [ratio],
                common.protocol_from_args(args),
            )
            checks[k] = _max_diff(outputs[f'command_{k}'], outputs[f'job_{k}'])
            print(f'  the job\'s scores against the command\'s: max |diff| {checks[k]:.1e}')
    common.report(
        'bench_variants',
        comparisons,
        sequence_length=args.sequence_length,
        output_length=args.output_length,
        batch_size=args.batch_size,
        variants=args.variants,
        beam_workers=args.beam_workers,
        max_abs_diff_job_vs_command={str(k): v for k, v in checks.items()},
    )


if __name__ == '__main__':
    main()
