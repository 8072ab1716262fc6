"""Genome-scale inference jobs against their commands: windows per second and peak memory.

    .venv/bin/python benchmarks/bench_inference_jobs.py [--sequence_length=2114 \
        --output_length=1000 --filters=64 --genome_mb=2 --peaks=500 --workers=1,2 \
        --genome_wide_mb=1,2,4] [--smoke]

An untrained model (stem kernel 21, 8 dilated layers, profile kernel 75 for 2114 -> 1000 bp,
otherwise the library's defaults; --smoke: 260 -> 200 bp, 2 layers; untrained weights cost what
trained ones do) exported to a temporary folder, and a random genome of --genome_mb Mb in two
chromosomes with N runs. Rows:

- tracks: `predict --regions_bed` (`tracks.predict_tracks`) against `beam_jobs.predict_tracks`
  (--runner=DirectRunner in-process, or N worker processes) on the same --peaks BED lines;
- contrib: `contributions.compute_contributions` against `beam_jobs.contrib` on the same BED
  (deepshap, --num_shuffles references);
- genome_wide: `beam_jobs.predict_tracks --genome_wide` (in-process) on random genomes of each
  --genome_wide_mb size: windows against the peak resident memory of the process (and of its
  worker processes), which should stay flat as the windows grow.

Every measurement runs in a fresh process (this script with --_child), so each one pays its
own imports and export loading, and its peak memory (ru_maxrss) is its own. Windows/s is the
windows over the wall time of the call (export loading, pipeline building and writing
included). The job's tracks are checked against the command's (max |difference|). Prints a
row per measurement and one JSON line at the end. Self-contained: no benchmarks/common.py.
--smoke runs a tiny version (minutes: 8 fresh processes; a check that the script works, no
numbers).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def _export(folder: str, args) -> str:
    import keras

    from bpnet_tfx.inference import export
    from bpnet_tfx.modeling import model as model_lib
    from bpnet_tfx.records import schema

    keras.utils.set_random_seed(0)
    shape = {'sequence_length': args.sequence_length, 'output_length': args.output_length}
    if (args.sequence_length, args.output_length) == (2114, 1000):
        shape.update(stem_kernel_size=21, num_dilated_layers=8, profile_kernel_size=75)
    elif args.smoke:
        shape.update(stem_kernel_size=5, num_dilated_layers=2, profile_kernel_size=5)
    config = model_lib.ModelConfig(filters=args.filters, **shape)
    info = schema.RecordsInfo(
        sequence_length=args.sequence_length,
        output_length=args.output_length,
        max_jitter=0,
        tasks=('t',),
    )
    return export.export_saved_model(
        model_lib.build_bpnet(config), info, config, os.path.join(folder, 'export')
    )


def _genome(path: str, size: int, seed: int = 0) -> dict[str, int]:
    """Two random chromosomes of size/2 bp, each with an N run of 1% of it in the middle."""
    rng = np.random.default_rng(seed)
    sizes = {'chr1': size // 2, 'chr2': size - size // 2}
    with open(path, 'w') as f:
        for chrom, n in sizes.items():
            seq = np.array(list('ACGT'))[rng.integers(0, 4, n)]
            seq[n // 2 : n // 2 + n // 100] = 'N'
            text = ''.join(seq)
            f.write(f'>{chrom}\n' + '\n'.join(text[i : i + 60] for i in range(0, n, 60)) + '\n')
    return sizes


def _bed(path: str, sizes: dict[str, int], peaks: int, width: int, seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    chroms = list(sizes)
    with open(path, 'w') as f:
        for k in range(peaks):
            chrom = chroms[k % len(chroms)]
            start = int(rng.integers(width, sizes[chrom] // 2 - width))  # left of the N run
            f.write(f'{chrom}\t{start}\t{start + 1}\n')


def _job_flags(workers: int) -> list[str]:
    flags = ['--runner=DirectRunner']
    if workers > 1:
        flags += [f'--direct_num_workers={workers}', '--direct_running_mode=multi_processing']
    return flags


def _child(spec: dict) -> dict:
    """One measurement in this process: runs it and returns seconds, windows and peak memory."""
    start = time.perf_counter()
    kind, out = spec['kind'], spec['out']
    if kind == 'tracks_command':
        from bpnet_tfx.inference import tracks

        windows = tracks.predict_tracks(
            spec['export'], spec['bed'], fasta=spec['fasta'], output_prefix=out
        )['windows']
    elif kind == 'contrib_command':
        from bpnet_tfx.attribution import contributions

        windows = contributions.compute_contributions(
            spec['export'],
            out,
            regions_bed=spec['bed'],
            fasta=spec['fasta'],
            num_shuffles=spec['num_shuffles'],
        )['regions']
    elif kind == 'contrib_job':
        from beam_jobs import contrib

        windows = contrib.run(spec['flags'])['regions']
    else:
        from beam_jobs import predict_tracks

        windows = predict_tracks.run(spec['flags'])['windows']
    seconds = time.perf_counter() - start
    mb = 1 / 1024  # ru_maxrss is in KiB on Linux
    return {
        'seconds': round(seconds, 2),
        'windows': windows,
        'windows_per_s': round(windows / seconds, 2),
        'peak_mb': round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * mb),
        'workers_peak_mb': round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * mb),
    }


def _measure(spec: dict) -> dict:
    env = {**os.environ, 'PYTHONPATH': REPO, 'TF_CPP_MIN_LOG_LEVEL': '3'}
    proc = subprocess.run(
        [sys.executable, __file__, '--_child', json.dumps(spec)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if proc.returncode:
        raise SystemExit(f'{spec["kind"]} failed:\n{proc.stderr[-3000:]}')
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _max_difference(a_prefix: str, b_prefix: str) -> float:
    import pyBigWig

    worst = 0.0
    for strand in ('pos', 'neg'):
        a, b = (
            pyBigWig.open(f'{a_prefix}.t.{strand}.bw'),
            pyBigWig.open(f'{b_prefix}.t.{strand}.bw'),
        )
        for chrom, n in a.chroms().items():
            x, y = a.values(chrom, 0, n, numpy=True), b.values(chrom, 0, n, numpy=True)
            both = ~np.isnan(x) & ~np.isnan(y)
            worst = max(worst, float(np.abs(x[both] - y[both]).max(initial=0.0)))
        a.close()
        b.close()
    return worst


def _rows(args, tmp: str) -> list[dict]:
    export = _export(tmp, args)
    fasta = os.path.join(tmp, 'genome.fa')
    sizes = _genome(fasta, int(args.genome_mb * 1e6))
    bed = os.path.join(tmp, 'peaks.bed')
    _bed(bed, sizes, args.peaks, args.sequence_length)
    base = {'export': export, 'fasta': fasta, 'bed': bed, 'num_shuffles': args.num_shuffles}
    common = [f'--saved_model={export}', f'--fasta={fasta}', f'--regions_bed={bed}']
    rows = []
    command = os.path.join(tmp, 'tracks_command', 'pred')
    row = _measure({**base, 'kind': 'tracks_command', 'out': command})
    rows.append({'job': 'tracks', 'how': 'command', **row})
    for w in args.workers:
        prefix = os.path.join(tmp, f'tracks_job{w}', 'pred')
        flags = [*common, f'--output_prefix={prefix}', *_job_flags(w)]
        row = _measure({**base, 'kind': 'tracks_job', 'out': prefix, 'flags': flags})
        row['max_difference'] = _max_difference(prefix, command)
        rows.append({'job': 'tracks', 'how': f'job, {w} worker(s)', **row})
    row = _measure({**base, 'kind': 'contrib_command', 'out': os.path.join(tmp, 'contrib_cli')})
    rows.append({'job': 'contrib', 'how': 'command', **row})
    for w in args.workers:
        out = os.path.join(tmp, f'contrib_job{w}')
        flags = [*common, f'--output_dir={out}', f'--num_shuffles={args.num_shuffles}']
        row = _measure({**base, 'kind': 'contrib_job', 'out': out, 'flags': flags + _job_flags(w)})
        rows.append({'job': 'contrib', 'how': f'job, {w} worker(s)', **row})
    for mb in args.genome_wide_mb:
        genome = os.path.join(tmp, f'genome_{mb}.fa')
        _genome(genome, int(mb * 1e6), seed=2)
        prefix = os.path.join(tmp, f'genome_wide_{mb}', 'pred')
        flags = [f'--saved_model={export}', f'--fasta={genome}', '--genome_wide']
        flags += [f'--output_prefix={prefix}', '--runner=DirectRunner']
        row = _measure({**base, 'kind': 'genome_wide_job', 'out': prefix, 'flags': flags})
        rows.append({'job': 'genome_wide', 'how': f'{mb} Mb, job in-process', **row})
    return rows


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    add = parser.add_argument
    add('--sequence_length', type=int, default=2114, help='Model input length, bp.')
    add('--output_length', type=int, default=1000, help='Model output length, bp.')
    add('--filters', type=int, default=64, help='Model filters.')
    add('--genome_mb', type=float, default=2.0, help='Random genome size for the BED rows, Mb.')
    add('--peaks', type=int, default=500, help='BED lines (1-bp summits).')
    add('--num_shuffles', type=int, default=10, help='Contrib references per window.')
    add('--workers', default='1,2', help='Worker processes of the jobs, comma-separated.')
    add('--genome_wide_mb', default='1,2,4', help='Genome sizes of the memory rows, Mb.')
    add('--smoke', action='store_true', help='A tiny run that checks the script, no numbers.')
    add('--_child', help=argparse.SUPPRESS)
    return parser


def main() -> None:
    args = _parser().parse_args()
    if args._child:
        print(json.dumps(_child(json.loads(args._child))))
        return
    if args.smoke:
        args.sequence_length, args.output_length, args.filters = 260, 200, 8
        args.genome_mb, args.peaks, args.num_shuffles = 0.02, 12, 2
        args.genome_wide_mb = '0.01,0.02'
    args.workers = [int(w) for w in args.workers.split(',')]
    args.genome_wide_mb = [float(m) for m in args.genome_wide_mb.split(',')]
    with tempfile.TemporaryDirectory(prefix='bench_inference_jobs-') as tmp:
        rows = _rows(args, tmp)
    for row in rows:
        extra = f", max |diff| {row['max_difference']:.1e}" if 'max_difference' in row else ''
        print(
            f"{row['job']:12s} {row['how']:22s} {row['windows']:7d} windows "
            f"{row['seconds']:8.1f} s {row['windows_per_s']:9.2f} windows/s  peak "
            f"{row['peak_mb']} MB (workers {row['workers_peak_mb']} MB){extra}"
        )
    machine = f'{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}'
    print(json.dumps({'machine': machine, 'args': vars(args), 'rows': rows}))


if __name__ == '__main__':
    main()
