"""The simulator's reads: a sorted, indexed BAM whose 5' ends give back its count bigWigs, of
varied CIGARs, and a fragments file whose ends are the paired ones."""

from __future__ import annotations

import gzip
import os

import numpy as np
import pysam
import pytest

from bpnet_tfx.simulate import reads as sim_reads
from bpnet_tfx.simulate import simulator as simulate
from tests.fixtures import reads as reads_fixtures

_SMALL = simulate.SimulationConfig(
    seed=3,
    chrom_sizes=(('chr1', 30_000), ('chr2', 40_000)),
    n_stretch_chroms=('chr1',),
    n_stretches_per_chrom=1,
    n_stretch_length=(1000, 2000),
)


@pytest.fixture(scope='module')
def small_demo(tmp_path_factory):
    files = simulate.simulate(str(tmp_path_factory.mktemp('sim') / 'demo'), _SMALL)
    return files, sim_reads.ensure_demo_reads(files)


def test_bam_five_prime_ends_equal_the_bigwigs(small_demo):
    files, demo_reads = small_demo
    bam = demo_reads.bams[files.tasks[0]]
    contigs = _SMALL.chrom_sizes
    counted = reads_fixtures.independent_counts(bam, contigs, min_mapq=0)
    for c in sim_reads.counts_from_bigwigs(files.pos_bigwig, files.neg_bigwig):
        np.testing.assert_array_equal(counted[c.chrom][:, 0], c.plus)
        np.testing.assert_array_equal(counted[c.chrom][:, 1], c.minus)
        assert c.plus.sum() > 1000 and c.minus.sum() > 1000
    with pysam.AlignmentFile(bam) as f:
        assert f.header.to_dict()['HD']['SO'] == 'coordinate' and f.has_index()
        cigars = [r.cigarstring for r in f.fetch(until_eof=True)]
        starts = [(r.reference_id, r.reference_start) for r in f.fetch(until_eof=True)]
    assert starts == sorted(starts)
    for op in 'SIDN':  # Every shape of read is there.
        assert sum(op in c for c in cigars) > len(cigars) / 20, op


def test_fragments_hold_the_paired_ends(small_demo):
    files, demo_reads = small_demo
    path = demo_reads.fragments[files.tasks[0]]
    counts = {c.chrom: c for c in sim_reads.counts_from_bigwigs(files.pos_bigwig, files.neg_bigwig)}
    n = 0
    with gzip.open(path, 'rt') as f:
        for line in f:
            if line.startswith('#'):
                continue
            chrom, start, end, barcode, count = line.split('\t')
            start, end = int(start), int(end)
            assert 0 < end - start <= sim_reads.MAX_FRAGMENT
            # Both ends are reads of the simulated counts.
            assert counts[chrom].plus[start] > 0 and counts[chrom].minus[end - 1] > 0
            n += 1
    total = sum(int(c.plus.sum()) for c in counts.values())
    assert 0.5 * total < n <= total  # Most plus ends find a partner.


def test_reads_are_written_once(small_demo):
    files, demo_reads = small_demo
    bam = demo_reads.bams[files.tasks[0]]
    before = os.stat(bam).st_mtime_ns
    again = sim_reads.ensure_demo_reads(files)
    assert again == demo_reads and os.stat(bam).st_mtime_ns == before


def test_reads_at_contig_ends_are_shortened(tmp_path):
    plus = np.zeros(100, np.int64)
    minus = np.zeros(100, np.int64)
    plus[99], minus[0], plus[0], minus[99] = 3, 2, 1, 1
    chroms = [sim_reads.ChromCounts('c', 100, plus, minus)]
    path = str(tmp_path / 'edge.bam')
    assert sim_reads.write_bam(path, chroms) == 7
    counted = reads_fixtures.independent_counts(path, (('c', 100),), min_mapq=0)
    np.testing.assert_array_equal(counted['c'], np.stack([plus, minus], axis=1))
