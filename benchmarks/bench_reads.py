"""Reads to bigWigs: `beam_jobs.reads_to_bigwig` against bam2bw on the same BAM, reads/s and
reads/s per core in interleaved pairs under common.py's protocol.

    .venv/bin/python -m benchmarks.bench_reads --reads=10000000 \\
        --bam2bw=/path/to/bam2bw-venv/bin/bam2bw        # the docs/benchmarks.md row
    .venv/bin/python -m benchmarks.bench_reads --reads=20000 --pairs=1 --bam2bw=...  # a check

Makes (once, under --work_dir) a sorted, indexed BAM of about --reads single-end reads with the
simulator's read writer (bpnet_tfx/simulate/reads.py: varied CIGARs, both strands, MAPQ 60, no
flags, so every filter keeps every read). A pair runs each tool once on it, as a command: wall
seconds and the command's CPU seconds (user + system of the process and its children), from
which reads/s and reads/s per core (reads / CPU seconds). Ours runs on the local runner in one
process (--direct_num_workers=1); both write the same number of zoom levels. The two tools'
last bigWigs are then compared base by base on every contig: the counts must be identical, or
the benchmark stops (wrong counts are no speed to compare against). bam2bw lives in its own
virtual environment (pip install bam2bw==0.5.1 there); it is never a dependency of this
project. Prints a line per pair, the table and one JSON line.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time

import numpy as np

from benchmarks import common

CONTIG_SIZE = 5_000_000


def _make_bam(work_dir: str, n_reads: int, seed: int) -> tuple[str, str]:
    """(BAM, chrom.sizes) of about n_reads reads, made once."""
    from bpnet_tfx.simulate import reads as sim_reads

    bam = os.path.join(work_dir, f'bench_{n_reads}.bam')
    sizes = os.path.join(work_dir, f'bench_{n_reads}.sizes')
    if os.path.exists(bam + '.bai') and os.path.exists(sizes):
        return bam, sizes
    rng = np.random.default_rng(seed)
    n_contigs = max(1, round(n_reads / 2_000_000))  # About 0.2 reads per base and strand.
    rate = n_reads / (2 * n_contigs * CONTIG_SIZE)
    chroms = [
        sim_reads.ChromCounts(
            f'chr{i + 1}',
            CONTIG_SIZE,
            rng.poisson(rate, CONTIG_SIZE).astype(np.int64),
            rng.poisson(rate, CONTIG_SIZE).astype(np.int64),
        )
        for i in range(n_contigs)
    ]
    with open(sizes, 'w') as f:
        f.writelines(f'{c.chrom}\t{c.size}\n' for c in chroms)
    t0 = time.perf_counter()
    n = sim_reads.write_bam(bam, chroms, seed=seed)
    print(f'wrote {n:,} reads to {bam} in {time.perf_counter() - t0:.0f} s', flush=True)
    return bam, sizes


def _timed(args: list[str]) -> tuple[float, float]:
    """(wall s, CPU s) of a command run in the checkout; stops on failure."""
    print('$ ' + ' '.join(args), flush=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
    env['PYTHONPATH'] = os.pathsep.join(p for p in (common.REPO, env.get('PYTHONPATH')) if p)
    subprocess.run(args, check=True, cwd=common.REPO, env=env, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def _arm(command: list[str], n: int):
    """One run of `command` on the n reads: reads/s ('value'), reads/s per core, seconds."""

    def run() -> dict:
        wall, cpu = _timed(command)
        return {'value': n / wall, 'per_core': n / cpu, 'seconds': wall, 'cpu_seconds': cpu}

    return run


def _differences(ours: tuple[str, str], theirs: tuple[str, str]) -> list[str]:
    """Where the two tools' bigWigs (positive, negative strand) differ: contigs or counts."""
    import pyBigWig

    found = []
    for a, b in zip(ours, theirs):
        x, y = pyBigWig.open(a), pyBigWig.open(b)
        try:
            if x.chroms() != y.chroms():
                found.append(f'{a} and {b} name other contigs or sizes')
                continue
            for chrom, size in x.chroms().items():
                u = np.nan_to_num(x.values(chrom, 0, size, numpy=True))
                v = np.nan_to_num(y.values(chrom, 0, size, numpy=True))
                if not np.array_equal(u, v):
                    found.append(f'counts differ on {chrom} at {int((u != v).sum())} bases ({a})')
        finally:
            x.close()
            y.close()
    return found


def _flags() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--reads', type=int, default=10_000_000, help='Reads in the test BAM.')
    p.add_argument('--work_dir', default='/tmp/bench_reads', help='Where the BAM and outputs go.')
    p.add_argument(
        '--bam2bw', required=True, help='The bam2bw command (in its own venv), the baseline.'
    )
    p.add_argument('--zooms', type=int, default=10, help='bigWig zoom levels bam2bw writes.')
    p.add_argument('--seed', type=int, default=0, help='Seed of the simulated counts and reads.')
    common.add_protocol_flags(p)
    return p


def main() -> None:
    args = _flags().parse_args()
    if not os.path.exists(args.bam2bw):
        sys.exit(
            f'bench_reads: error: --bam2bw={args.bam2bw} not found (pip install '
            'bam2bw==0.5.1 in a venv of its own and pass its bin/bam2bw)'
        )
    os.makedirs(args.work_dir, exist_ok=True)
    bam, sizes = _make_bam(args.work_dir, args.reads, args.seed)
    import pysam

    with pysam.AlignmentFile(bam) as f:
        n = f.mapped
    ours, theirs = (os.path.join(args.work_dir, name) for name in ('ours', 'bam2bw'))
    job = [sys.executable, '-m', 'beam_jobs.reads_to_bigwig', f'--reads={bam}']
    job += ['--assay=chip-seq', f'--chrom_sizes={sizes}', f'--output_prefix={ours}']
    job += ['--overwrite', '--direct_num_workers=1', '--direct_running_mode=in_memory']
    peer = [args.bam2bw, bam, '-s', sizes, '-n', theirs, '-z', str(args.zooms)]
    print(f'{n:,} reads; ours in one process, bam2bw with {args.zooms} zoom levels', flush=True)
    result = common.compare(
        {'reads_to_bigwig': _arm(job, n), 'bam2bw': _arm(peer, n)},
        [
            common.Ratio('reads_to_bigwig / bam2bw, reads/s', 'reads_to_bigwig', 'bam2bw'),
            common.Ratio(
                'reads_to_bigwig / bam2bw, reads/s per core',
                'reads_to_bigwig.per_core',
                'bam2bw.per_core',
            ),
        ],
        common.protocol_from_args(args),
    )
    differences = _differences(
        (ours + '.pos.bw', ours + '.neg.bw'), (theirs + '.+.bw', theirs + '.-.bw')
    )
    print(f'identical counts base by base: {not differences}', flush=True)
    common.report(
        'bench_reads',
        {'reads': result},
        reads=n,
        zooms=args.zooms,
        identical_counts=not differences,
        differences=differences,
    )
    if differences:
        sys.exit('bench_reads: error: ' + '; '.join(differences))


if __name__ == '__main__':
    main()
