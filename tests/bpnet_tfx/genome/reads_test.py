"""The counting rules against an independent count: a plain pysam loop that walks each CIGAR
(tests/fixtures/reads.py), over reads of every shape, strand, flag and mapping quality."""

from __future__ import annotations

import numpy as np
import pysam
import pytest

from bpnet_tfx.genome import reads
from tests.fixtures import reads as reads_fixtures
from tests.fixtures.reads import CONTIGS


def _count(path, rule, region_size=None):
    """{contig: (size, 2) counts} and the summed tally, counting region by region."""
    out, tally = {}, {}
    with pysam.AlignmentFile(path) as f:
        for chrom, size in CONTIGS:
            step = region_size or size
            parts = []
            for start in range(0, size, step):
                end = min(size, start + step)
                lo, hi = max(0, start - rule.margin), min(size, end + rule.margin)
                ends = reads.alignment_keys(f.fetch(chrom, lo, hi), rule, start, end, size)
                keys = reads.counted_keys(ends, rule)
                parts.append(reads.count_keys(keys, start, end - start))
                reads.add_tallies(tally, ends.tally)
            out[chrom] = np.concatenate(parts).astype(np.int64)
    return out, tally


RULES = {
    'chip-exo': dict(),
    'chip-exo all mates': dict(first_mates_only=False),
    'atac': dict(shift=(4, -4)),
    'dnase': dict(shift=(0, 1)),
    'chip-seq shift 30': dict(shift=(30, -30)),
    'no filters': dict(
        min_mapq=0,
        dedup='none',
        keep_secondary=True,
        keep_supplementary=True,
        keep_improper_pairs=True,
    ),
    'position dedup': dict(dedup='position'),
}


def _rule(name):
    kw = RULES[name]
    filters = reads.ReadFilters(
        **{k: v for k, v in kw.items() if k not in ('shift', 'first_mates_only')}
    )
    assay = {'atac': 'atac', 'dnase': 'dnase', 'chip-seq shift 30': 'chip-seq'}.get(
        name, 'chip-exo'
    )
    rule = reads.make_rule(assay, filters=filters, fragment_shift=30 if assay == 'chip-seq' else 0)
    if name == 'chip-exo all mates' or name == 'no filters':
        rule = reads.CountRule(rule.assay, rule.shift, rule.stranded, False, filters)
    expected_kw = {k: v for k, v in kw.items()}
    expected_kw.setdefault('first_mates_only', rule.first_mates_only)
    return rule, expected_kw


@pytest.mark.parametrize('name', list(RULES))
@pytest.mark.parametrize('region_size', [None, 700])
def test_counts_equal_an_independent_count(reads_bam, name, region_size):
    path, _ = reads_bam
    rule, expected_kw = _rule(name)
    got, tally = _count(path, rule, region_size)
    expected = reads_fixtures.independent_counts(path, **expected_kw)
    for chrom, _ in CONTIGS:
        np.testing.assert_array_equal(got[chrom], expected[chrom], err_msg=chrom)
    assert tally['counted'] == sum(int(e.sum()) for e in expected.values())
    assert tally['counted'] > 200  # The test means something: most reads count.


def test_every_read_is_tallied_once_whatever_the_regions(reads_bam):
    path, all_reads = reads_bam
    rule = reads.make_rule('dnase')  # +0/+1: minus reads at a contig's end fall off it.
    tallies = [_count(path, rule, size)[1] for size in (None, 333, 1000)]
    assert tallies[0] == tallies[1] == tallies[2]
    assert tallies[0]['reads'] == len(all_reads)
    assert tallies[0]['reads'] == sum(v for k, v in tallies[0].items() if k != 'reads')
    assert tallies[0]['off_contig'] > 0 and tallies[0]['low_mapq'] > 0
    assert tallies[0]['duplicate'] > 0 and tallies[0]['improper_pair'] > 0
    assert tallies[0]['unmapped'] == sum(1 for r in all_reads if r.flag & 0x4) > 0


def test_five_prime_ends_of_each_shape():
    """Hand-checked ends: a minus read's 5' base is its last aligned base, past deletions and
    introns, before soft clips; a plus read's is its first aligned base."""
    cases = [
        ('10M', 0x0, 100, 100),
        ('5S10M', 0x0, 100, 100),
        ('10M', 0x10, 100, 109),
        ('10M7S', 0x10, 100, 109),
        ('4M3D6M', 0x10, 100, 112),
        ('4M100N6M', 0x10, 100, 209),
        ('4M2I6M', 0x10, 100, 109),
    ]
    rule = reads.make_rule('chip-seq')
    for cigar, flag, start, base in cases:
        read = pysam.AlignedSegment()
        read.cigarstring, read.flag, read.reference_start = cigar, flag, start
        read.mapping_quality = 60
        ends = reads.alignment_keys([read], rule, 0, 1000, 1000)
        assert ends.keys.tolist() == [2 * base + (flag >> 4)], cigar


def test_shifts_move_ends_and_drop_those_off_the_contig():
    rule = reads.make_rule('atac')
    plus, minus = pysam.AlignedSegment(), pysam.AlignedSegment()
    plus.cigarstring, plus.flag, plus.reference_start, plus.mapping_quality = '10M', 0, 0, 60
    minus.cigarstring, minus.flag, minus.reference_start, minus.mapping_quality = '10M', 16, 0, 60
    ends = reads.alignment_keys([plus, minus], rule, 0, 100, 100)
    assert ends.keys.tolist() == [2 * 4, 2 * 5 + 1]
    edge = pysam.AlignedSegment()
    edge.cigarstring, edge.flag, edge.reference_start, edge.mapping_quality = '3M', 16, 0, 60
    ends = reads.alignment_keys([edge], rule, 0, 100, 100)  # 5' base 2, shifted to -2.
    assert ends.keys.size == 0 and ends.tally == {'counted': 0, 'reads': 1, 'off_contig': 1}


def test_assay_rules_and_shift_text():
    assert reads.make_rule('atac').shift == (4, -4)
    assert reads.make_rule('atac', fragments=True).shift == (0, 1)
    assert reads.make_rule('dnase').shift == (0, 1)
    assert reads.make_rule('chip-seq', fragment_shift=50).shift == (50, -50)
    assert reads.make_rule('chip-exo').first_mates_only and not reads.make_rule('atac').stranded
    assert reads.make_rule('atac', shift=(4, -5)).shift == (4, -5)
    assert reads.ASSAYS['atac'].expected_lag == 8 and reads.ASSAYS['dnase'].expected_lag == -1
    assert reads.parse_shift('+4/-5') == (4, -5) and reads.parse_shift('0/+1') == (0, 1)
    assert reads.format_shift((0, 1)) == '+0/+1'
    for bad in ('4', '+4/-x', '4,-4', ''):
        with pytest.raises(ValueError, match='PLUS/-MINUS'):
            reads.parse_shift(bad)
    with pytest.raises(ValueError, match='unknown assay'):
        reads.make_rule('hic')
    with pytest.raises(ValueError, match='chip-seq only'):
        reads.make_rule('atac', fragment_shift=10)
    with pytest.raises(ValueError, match='dedup'):
        reads.ReadFilters(dedup='mark')


def test_count_keys_places_strands():
    keys = np.array([2 * 10 + 0, 2 * 10 + 1, 2 * 12 + 1, 2 * 12 + 1])
    counts = reads.count_keys(keys, 10, 5)
    assert counts.dtype == np.uint32 and counts.shape == (5, 2)
    assert counts.tolist() == [[1, 1], [0, 0], [0, 2], [0, 0], [0, 0]]
    assert reads.unique_ends(keys, None).tolist() == [20, 21, 25]
    mates = np.array([-1, -1, 7, 9])
    assert sorted(reads.unique_ends(keys, mates).tolist()) == [20, 21, 25, 25]
