"""Reads to bigWigs: `beam_jobs.reads_to_bigwig` against bam2bw on the same BAM.

    python benchmarks/bench_reads.py --reads=10000000 \\
        --bam2bw=/work/peer-venv-bam2bw/bin/bam2bw          # the docs/benchmarks.md row
    python benchmarks/bench_reads.py --reads=200000         # a quick check, ours only

Makes (once, under --work_dir) a sorted, indexed BAM of about --reads single-end reads with the
simulator's read writer (bpnet_tfx/simulate/reads.py: varied CIGARs, both strands, MAPQ 60, no
flags, so every filter keeps every read), then times each tool --repeats times on it: wall
seconds and the CPU seconds of the command (user + system of the process and its children),
from which reads/s and reads/s per core (reads / CPU seconds). Ours runs on the local runner
in one process (--direct_num_workers=1), both write the same number of zoom levels. Then the
two tools' bigWigs are compared base by base on every contig: the counts must be identical.
bam2bw lives in its own virtual environment (pip install bam2bw==0.5.1 there); it is never a
dependency of this project. Run it on a quiet machine; record the numbers in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

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
    """(wall s, CPU s) of a command; stops on failure."""
    print('$ ' + ' '.join(args), flush=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL='2')
    subprocess.run(args, check=True, cwd=REPO, env=env, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def _same_counts(ours: tuple[str, str], theirs: tuple[str, str]) -> bool:
    import pyBigWig

    for a, b in zip(ours, theirs):
        x, y = pyBigWig.open(a), pyBigWig.open(b)
        try:
            for chrom, size in x.chroms().items():
                u = np.nan_to_num(x.values(chrom, 0, size, numpy=True))
                v = np.nan_to_num(y.values(chrom, 0, size, numpy=True))
                if not np.array_equal(u, v):
                    print(f'counts differ on {chrom} ({a} vs {b})')
                    return False
        finally:
            x.close()
            y.close()
    return True


def _report(name: str, n: int, runs: list[tuple[float, float]]) -> None:
    wall = min(w for w, _ in runs)
    cpu = min(c for _, c in runs)
    print(
        f'{name}: {n:,} reads, best of {len(runs)}: {wall:.1f} s wall, {cpu:.1f} s CPU; '
        f'{n / wall:,.0f} reads/s, {n / cpu:,.0f} reads/s per core',
        flush=True,
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--reads', type=int, default=10_000_000, help='Reads in the test BAM.')
    p.add_argument('--work_dir', default='/tmp/bench_reads', help='Where the BAM and outputs go.')
    p.add_argument('--repeats', type=int, default=3, help='Timed runs of each tool.')
    p.add_argument('--bam2bw', default='', help='The bam2bw command (its own venv); empty: skip.')
    p.add_argument('--zooms', type=int, default=10, help='bigWig zoom levels bam2bw writes.')
    p.add_argument('--seed', type=int, default=0, help='Seed of the simulated counts and reads.')
    args = p.parse_args()
    os.makedirs(args.work_dir, exist_ok=True)
    bam, sizes = _make_bam(args.work_dir, args.reads, args.seed)
    import pysam

    with pysam.AlignmentFile(bam) as f:
        n = f.mapped
    ours_prefix = os.path.join(args.work_dir, 'ours')
    ours = [
        _timed(
            [
                sys.executable,
                '-m',
                'beam_jobs.reads_to_bigwig',
                f'--reads={bam}',
                '--assay=chip-seq',
                f'--chrom_sizes={sizes}',
                f'--output_prefix={ours_prefix}',
                '--overwrite',
                '--direct_num_workers=1',
                '--direct_running_mode=in_memory',
            ]
        )
        for _ in range(args.repeats)
    ]
    _report('reads_to_bigwig', n, ours)
    if not args.bam2bw:
        return
    theirs_prefix = os.path.join(args.work_dir, 'bam2bw')
    theirs = [
        _timed([args.bam2bw, bam, '-s', sizes, '-n', theirs_prefix, '-z', str(args.zooms)])
        for _ in range(args.repeats)
    ]
    _report('bam2bw', n, theirs)
    same = _same_counts(
        (ours_prefix + '.pos.bw', ours_prefix + '.neg.bw'),
        (theirs_prefix + '.+.bw', theirs_prefix + '.-.bw'),
    )
    print(f'identical counts: {same}')


if __name__ == '__main__':
    main()
