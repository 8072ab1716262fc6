"""Reads files: kinds, alignment checks, and the text formats' ends against plain loops."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from bpnet_tfx.genome import read_files, reads
from tests.fixtures import reads as reads_fixtures
from tests.fixtures.reads import CONTIGS

SIZES = dict(CONTIGS)
NO_FILTERS = dict(
    min_mapq=0, dedup='none', keep_secondary=True, keep_supplementary=True, keep_improper_pairs=True
)


def _counts(chunks):
    out = {c: np.zeros((n, 2), np.int64) for c, n in CONTIGS}
    names = list(SIZES)
    for chunk in chunks:
        for code, key in zip(chunk.codes.tolist(), chunk.keys.tolist()):
            out[names[code]][key // 2, key % 2] += 1
    return out


@pytest.mark.parametrize('suffix', ['.tagAlign', '.tagAlign.gz', '.bed'])
@pytest.mark.parametrize('assay', ['chip-exo', 'atac'])
def test_tagalign_ends_equal_the_same_reads_from_a_bam(tmp_path, suffix, assay):
    all_reads = reads_fixtures.random_reads(np.random.default_rng(5), 400, flags=False)
    path = reads_fixtures.write_tagalign(str(tmp_path / f'r{suffix}'), all_reads)
    bam = reads_fixtures.write_alignments(str(tmp_path / 'r.bam'), all_reads)
    rule = reads.make_rule(assay, filters=reads.ReadFilters(**NO_FILTERS))
    got = _counts(read_files.text_chunks(path, 'tagalign', SIZES, rule, chunk_lines=97))
    from_bam = reads_fixtures.independent_counts(bam, shift=rule.shift, **NO_FILTERS)
    by_lines = reads_fixtures.text_counts(path, rule.shift, fragments=False)
    for chrom in SIZES:
        np.testing.assert_array_equal(got[chrom], from_bam[chrom])
        np.testing.assert_array_equal(got[chrom], by_lines[chrom])
    assert sum(int(g.sum()) for g in got.values()) > 300


@pytest.mark.parametrize('suffix', ['.tsv', '.tsv.gz'])
@pytest.mark.parametrize('assay', ['atac', 'chip-seq'])
def test_fragments_give_both_ends(tmp_path, suffix, assay):
    frags = reads_fixtures.random_fragments(np.random.default_rng(2), 500)
    path = reads_fixtures.write_fragments(str(tmp_path / f'fragments{suffix}'), frags)
    rule = reads.make_rule(assay, fragments=True)
    chunks = list(read_files.text_chunks(path, 'fragments', SIZES, rule, chunk_lines=128))
    assert sum(c.lines for c in chunks) == 500 and len(chunks) == 4
    got, expected = _counts(chunks), reads_fixtures.text_counts(path, rule.shift, fragments=True)
    for chrom in SIZES:
        np.testing.assert_array_equal(got[chrom], expected[chrom])
    ends = sum(int(g.sum()) for g in got.values())
    assert ends + sum(c.off_contig for c in chunks) == 1000
    # Each end's mate key is the fragment's other end.
    keys, mates = (
        np.concatenate([c.keys for c in chunks]),
        np.concatenate([c.mates for c in chunks]),
    )
    assert set(zip(keys.tolist(), mates.tolist())) >= {
        (2 * s + rule.shift[0], 2 * (e - 1 + rule.shift[1]) + 1) for _, s, e in frags[:3]
    }


def test_a_line_pandas_cannot_split_is_read_line_by_line(tmp_path):
    """A later line with more columns than the first stops pandas' parser; the chunk is read
    again line by line and nothing is lost or counted twice."""
    frags = reads_fixtures.random_fragments(np.random.default_rng(4), 300)
    path = str(tmp_path / 'f.tsv')
    reads_fixtures.write_fragments(path, frags)
    lines = open(path).read().splitlines(keepends=True)
    lines[150] = lines[150].rstrip('\n') + '\textra\tcolumns\n'
    open(path, 'w').writelines(lines)
    rule = reads.make_rule('atac', fragments=True)
    chunks = list(read_files.text_chunks(path, 'fragments', SIZES, rule, chunk_lines=64))
    assert sum(c.lines for c in chunks) == 300
    got, expected = _counts(chunks), reads_fixtures.text_counts(path, rule.shift, fragments=True)
    for chrom in SIZES:
        np.testing.assert_array_equal(got[chrom], expected[chrom])


@pytest.mark.parametrize(
    'line, message',
    [
        ('chrA\t10\n', r'f\.tsv:5: 2 tab-separated columns; a fragments line'),
        ('chrA\tx\t20\tB\t1\n', r"f\.tsv:5: start 'x' or end '20' is not an integer"),
        ('chrZ\t10\t20\tB\t1\n', r"f\.tsv:5: contig 'chrZ' is not in the genome"),
        (
            'chrB\t10\t1600\tB\t1\n',
            r'f\.tsv:5: needs 0 <= start < end <= 1500 \(the length of chrB\), got 10-1600',
        ),
        ('chrB\t30\t20\tB\t1\n', r'f\.tsv:5: needs 0 <= start < end'),
    ],
)
def test_a_bad_fragments_line_is_named(tmp_path, line, message):
    path = str(tmp_path / 'f.tsv')
    reads_fixtures.write_fragments(path, [('chrA', 1, 50), ('chrB', 3, 40)])
    with open(path, 'a') as f:
        f.write(line + 'chrA\t5\t60\tB\t1\n')
    rule = reads.make_rule('atac', fragments=True)
    with pytest.raises(reads.ReadsError, match=message):
        list(read_files.text_chunks(path, 'fragments', SIZES, rule))


def test_a_bad_tagalign_strand_is_named(tmp_path):
    path = str(tmp_path / 'r.tagAlign.gz')
    with gzip.open(path, 'wt') as f:
        f.write('chrA\t1\t30\tN\t1000\t+\nchrA\t5\t30\tN\t1000\t.\n')
    with pytest.raises(reads.ReadsError, match=r"r\.tagAlign\.gz:2: strand '\.' is not"):
        list(read_files.text_chunks(path, 'tagalign', SIZES, reads.make_rule('chip-seq')))


def test_file_kinds():
    kinds = {
        'a.bam': 'bam',
        'a.CRAM': 'cram',
        'a.sam': 'sam',
        'a.tagAlign.gz': 'tagalign',
        'a.bed': 'tagalign',
        'x/fragments.tsv.gz': 'fragments',
        'a.tsv': 'fragments',
    }
    for path, kind in kinds.items():
        assert read_files.file_kind(path) == kind
    with pytest.raises(reads.ReadsError, match='a.bw: not a reads file name'):
        read_files.file_kind('a.bw')


def test_alignments_must_be_sorted_and_indexed(tmp_path):
    some = reads_fixtures.random_reads(np.random.default_rng(1), 50, flags=False)
    unsorted = reads_fixtures.write_alignments(str(tmp_path / 'u.bam'), some, sort=False)
    with pytest.raises(reads.ReadsError, match=r'u\.bam: not sorted by coordinate .*samtools sort'):
        read_files.open_alignments(unsorted)
    unindexed = reads_fixtures.write_alignments(str(tmp_path / 'n.bam'), some, index=False)
    with pytest.raises(reads.ReadsError, match=r'n\.bam: no index beside it; run samtools index'):
        read_files.open_alignments(unindexed)
    with pytest.raises(reads.ReadsError, match='CRAM file needs its reference: give --fasta'):
        read_files.open_alignments(str(tmp_path / 'x.cram'))
    (tmp_path / 'bad.bam').write_bytes(b'not a bam')
    with pytest.raises(reads.ReadsError, match=r'bad\.bam: cannot read as BAM'):
        read_files.open_alignments(str(tmp_path / 'bad.bam'))
    good = reads_fixtures.write_alignments(str(tmp_path / 'g.bam'), some)
    with read_files.open_alignments(good) as f:
        assert read_files.alignment_contigs(f, good) == SIZES
        assert set(read_files.contigs_with_reads(f)) <= set(SIZES)


def test_contigs_are_checked_against_the_genome():
    read_files.check_contigs('r.bam', {'chrA': 3000}, SIZES, 'g.fa')
    with pytest.raises(
        reads.ReadsError, match=r'r\.bam: contig\(s\) chr1 with reads are not in g\.fa'
    ):
        read_files.check_contigs('r.bam', {'chr1': 3000}, SIZES, 'g.fa')
    with pytest.raises(reads.ReadsError, match='chrA is 2999 bp long there but 3000 bp in g.fa'):
        read_files.check_contigs('r.bam', {'chrA': 2999}, SIZES, 'g.fa')


def test_chrom_sizes(tmp_path):
    path = reads_fixtures.write_chrom_sizes(str(tmp_path / 'c.sizes'))
    assert read_files.read_chrom_sizes(path) == SIZES
    (tmp_path / 'bad.sizes').write_text('chrA\t100\nchrB\n')
    with pytest.raises(reads.ReadsError, match=r'bad\.sizes:2: expected a name and a length'):
        read_files.read_chrom_sizes(str(tmp_path / 'bad.sizes'))
