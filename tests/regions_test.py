"""Tests of beam_jobs/regions.py: peaks parsing, centring, split assignment, input checks."""

from __future__ import annotations

import gzip
import re

import numpy as np
import pyBigWig
import pytest

from beam_jobs import regions
from beam_jobs.regions import RecordsInputError, Region


def _write(path, text):
    path.write_text(text)
    return str(path)


def _spans(valid='', test=''):
    return (
        regions.parse_chrom_spans(valid, flag='valid_chroms'),
        regions.parse_chrom_spans(test, flag='test_chroms'),
    )


# --- Parsing and centring --------------------------------------------------------------------


def test_bed3_centres_on_midpoint(tmp_path):
    path = _write(tmp_path / 'p.bed', 'chr1\t100\t200\nchr1\t500\t501\nchr2\t10\t13\n')
    got = regions.read_peaks(path, sequence_length=10)
    # Midpoints 150, 500 (a 1-bp summit centres on itself) and (10 + 13) // 2 = 11.
    assert got == [
        Region('chr1', 145, 155, 'train', 1),
        Region('chr1', 495, 505, 'train', 2),
        Region('chr2', 6, 16, 'train', 3),
    ]
    assert [r.centre for r in got] == [150, 500, 11]
    assert got[0].region_id == 'chr1:145-155'


def test_odd_length_window(tmp_path):
    path = _write(tmp_path / 'p.bed', 'chr1\t100\t101\n')
    (r,) = regions.read_peaks(path, sequence_length=5)
    assert (r.start, r.end, r.centre) == (98, 103, 100)


def test_bed6_uses_midpoint(tmp_path):
    path = _write(tmp_path / 'p.bed', 'chr1\t1000\t1001\tpeak_1\t500\t.\n')
    (r,) = regions.read_peaks(path, sequence_length=100)
    assert (r.chrom, r.start, r.end) == ('chr1', 950, 1050)


def test_narrowpeak_uses_summit_column(tmp_path):
    path = _write(
        tmp_path / 'p.narrowPeak',
        'chr1\t1000\t1200\tp1\t0\t.\t5.0\t-1\t-1\t30\n'
        'chr1\t2000\t2200\tp2\t0\t.\t5.0\t-1\t-1\t-1\n',
    )
    got = regions.read_peaks(path, sequence_length=100)
    assert [r.centre for r in got] == [1030, 2100]  # Summit offset; -1 means midpoint.
    assert (got[0].start, got[0].end) == (980, 1080)


def test_skips_header_comment_and_blank_lines(tmp_path):
    path = _write(
        tmp_path / 'p.bed',
        'track name=peaks\nbrowser position chr1:1-100\n# comment\n\n   \nchr1\t100\t200\n',
    )
    (r,) = regions.read_peaks(path, sequence_length=10)
    assert r.line == 6


def test_space_separated_and_crlf(tmp_path):
    path = _write(tmp_path / 'p.bed', 'chr1 100 200\r\n')
    (r,) = regions.read_peaks(path, sequence_length=10)
    assert r.centre == 150


def test_gzip_peaks(tmp_path):
    path = tmp_path / 'p.bed.gz'
    with gzip.open(path, 'wt') as f:
        f.write('# header\nchr1\t100\t200\n')
    (r,) = regions.read_peaks(str(path), sequence_length=10)
    assert (r.centre, r.line) == (150, 2)


def test_messages_name_the_original_of_a_local_copy(tmp_path):
    path = _write(tmp_path / 'p.bed', 'chr1\tx\t20\n')
    with pytest.raises(RecordsInputError, match=r"^gs://b/p\.bed:1: start 'x'"):
        regions.read_peaks(path, sequence_length=10, name='gs://b/p.bed')


# --- Splits ----------------------------------------------------------------------------------


def test_split_by_chromosome(tmp_path):
    path = _write(tmp_path / 'p.bed', 'chr1\t100\t101\nchr2\t100\t101\nchr3\t100\t101\n')
    valid, test = _spans('chr1', 'chr3')
    got = regions.read_peaks(path, sequence_length=10, valid=valid, test=test)
    assert [r.split for r in got] == ['valid', 'train', 'test']
    assert regions.split_counts(got) == {'train': 1, 'valid': 1, 'test': 1}


def test_split_by_interval_uses_centre(tmp_path):
    # Centres 99_999 and 100_000: the interval [0, 100000) is half-open.
    path = _write(
        tmp_path / 'p.bed', 'chrIV\t99999\t100000\nchrIV\t100000\t100001\nchrIV\t250000\t250001\n'
    )
    valid, test = _spans('chrIV:0-100000', 'chrIV:200000-300000')
    got = regions.read_peaks(path, sequence_length=1000, valid=valid, test=test)
    assert [r.split for r in got] == ['valid', 'train', 'test']


def test_parse_chrom_spans():
    assert regions.parse_chrom_spans('chr1, chrX:5-10,,', flag='f') == (
        regions.ChromSpan('chr1'),
        regions.ChromSpan('chrX', 5, 10),
    )
    assert regions.parse_chrom_spans('', flag='f') == ()
    # A name with ':' but no interval stays a name.
    assert regions.parse_chrom_spans(['HLA-A*01:01'], flag='f') == (
        regions.ChromSpan('HLA-A*01:01'),
    )


def test_thousands_separators_inside_intervals():
    assert regions.parse_chrom_spans('chrIV:0-300,000', flag='f') == (
        regions.ChromSpan('chrIV', 0, 300_000),
    )
    assert regions.parse_chrom_spans('chrIV:100,000-1,200,000,chrV,chr1:5-10', flag='f') == (
        regions.ChromSpan('chrIV', 100_000, 1_200_000),
        regions.ChromSpan('chrV'),
        regions.ChromSpan('chr1', 5, 10),
    )
    # Numeric names stay names: Ensembl calls chromosomes 1, 2, ...
    assert regions.parse_chrom_spans('1,2,X:1,000-2,000', flag='f') == (
        regions.ChromSpan('1'),
        regions.ChromSpan('2'),
        regions.ChromSpan('X', 1000, 2000),
    )


@pytest.mark.parametrize(
    'item', ['chrIV:0-300.000', 'chrIV:0-1e5', 'chrIV:10-', 'chr IV', '-', 'chrIV:1,00-2000']
)
def test_an_item_that_is_neither_a_name_nor_an_interval_is_an_error(item):
    with pytest.raises(
        RecordsInputError, match=r'^--valid_chroms: (item|interval) ' + re.escape(repr(item))
    ):
        regions.parse_chrom_spans(f'chr1,{item}', flag='valid_chroms')


def test_split_problems_name_the_item_and_the_fasta_chromosomes():
    peaks = [Region('chrIV', 0, 10), Region('chrIV', 500, 510)]
    sizes = {'chrIV': 300_000, 'chrV': 500, 'chrVI': 1, 'chrVII': 1, 'chrVIII': 1, 'chrIX': 1}
    spans = {
        'valid_chroms': regions.parse_chrom_spans('chr1,chrIV:0-100', flag='f'),
        'test_chroms': regions.parse_chrom_spans('chrV,chrIV:400-600', flag='f'),
    }
    problems = regions.split_problems(spans, peaks, sizes, 'g.fa', defaults=['valid_chroms'])
    assert problems == [
        "--valid_chroms item 'chr1' (the default) names no chromosome of g.fa, which has chrIV, "
        'chrV, chrVI, chrVII, chrVIII, ... (6 in all); pass --valid_chroms with one of its '
        'chromosomes or an interval of one (e.g. chrIV:0-100,000), or --allow_empty_splits',
        "--test_chroms item 'chrV' holds no peak centre (of 2 peaks read); pass --test_chroms "
        'with items that hold peaks, or --allow_empty_splits',
    ]
    assert (
        regions.split_problems({'valid_chroms': spans['valid_chroms'][1:]}, peaks, sizes, 'g.fa')
        == []
    )


def test_group_runs_of_nearby_windows():
    stored = [(0, 30), (10, 40), (100, 130), (1000, 1030), (1040, 1070)]
    assert regions.group_runs(stored, gap=50, max_span=10**6) == [(0, 2), (2, 3), (3, 5)]
    assert regions.group_runs(stored, gap=10**6, max_span=10**6) == [(0, 5)]
    assert regions.group_runs(stored, gap=10**6, max_span=500) == [(0, 3), (3, 5)]
    assert regions.group_runs(
        stored, gap=10**6, max_span=10**6, chroms=['a', 'a', 'b', 'b', 'b']
    ) == [(0, 2), (2, 5)]
    assert regions.group_runs([], gap=1, max_span=1) == []


def test_empty_interval_is_an_error():
    with pytest.raises(RecordsInputError, match=r"--valid_chroms: interval 'chr1:10-10'"):
        regions.parse_chrom_spans('chr1:10-10', flag='valid_chroms')


def test_overlapping_valid_and_test_is_an_error():
    valid, test = _spans('chr1:0-100', 'chr1:50-200')
    with pytest.raises(RecordsInputError, match='overlaps'):
        regions.check_disjoint(valid, test)
    valid, test = _spans('chr1:0-100', 'chr1:100-200,chr2')
    regions.check_disjoint(valid, test)  # Touching is fine.


def test_unmatched_spans():
    valid, _ = _spans('chr1,chrIV:0-10')
    assert regions.unmatched_spans([Region('chr1', 0, 10)], valid) == [valid[1]]


# --- Bad input: one error per case, naming file and line -------------------------------------


@pytest.mark.parametrize(
    'text, message',
    [
        ('chr1\t100\n', r':1: malformed line: 2 column\(s\)'),
        ('chr1\tabc\t200\n', r":1: start 'abc' is not an integer"),
        ('chr1\t100\t2e2\n', r":1: end '2e2' is not an integer"),
        ('chr1\t-5\t200\n', r':1: negative coordinate'),
        ('chr1\t300\t200\n', r':1: start 300 > end 200'),
        ('chr1\t100\t200\tp\t0\t.\t1\t-1\t-1\tx\n', r":1: summit offset \(column 10\) 'x' is not"),
        ('chr1\t100\t200\tp\t0\t.\t1\t-1\t-1\t150\n', r':1: summit offset 150 is outside'),
        ('# ok\nchr1\t100\t200\n\tchr1\t5\t6\n', r':3: malformed line: empty chromosome'),
    ],
    ids=[
        'too_few_columns',
        'non_integer_start',
        'non_integer_end',
        'negative',
        'start_gt_end',
        'bad_summit',
        'summit_outside',
        'empty_chrom',
    ],
)
def test_bad_line(tmp_path, text, message):
    path = _write(tmp_path / 'p.bed', text)
    with pytest.raises(RecordsInputError, match=str(tmp_path / 'p.bed') + message) as e:
        regions.read_peaks(path, sequence_length=10)
    assert '\n' not in str(e.value)


def test_empty_peaks_file(tmp_path):
    path = _write(tmp_path / 'p.bed', 'track name=x\n# only comments\n\n')
    with pytest.raises(RecordsInputError, match=r'p\.bed: empty peaks file \(no data lines\)'):
        regions.read_peaks(path, sequence_length=10)


def test_missing_peaks_file(tmp_path):
    with pytest.raises(RecordsInputError, match=r'nope\.bed: cannot read peaks file: No such'):
        regions.read_peaks(str(tmp_path / 'nope.bed'), sequence_length=10)


def test_peaks_path_is_a_folder(tmp_path):
    with pytest.raises(RecordsInputError, match='cannot read peaks file'):
        regions.read_peaks(str(tmp_path), sequence_length=10)


def test_binary_peaks_file(tmp_path):
    path = tmp_path / 'p.bed'
    path.write_bytes(b'\xff\xfe\x00\x01' * 10)
    with pytest.raises(RecordsInputError, match='not a text BED'):
        regions.read_peaks(str(path), sequence_length=10)


def test_truncated_gzip(tmp_path):
    path = tmp_path / 'p.bed.gz'
    path.write_bytes(gzip.compress(b'chr1\t1\t2\n' * 1000)[:40])
    with pytest.raises(RecordsInputError, match='cannot read peaks file'):
        regions.read_peaks(str(path), sequence_length=10)


# --- Checks against the FASTA and bigWigs ----------------------------------------------------


def _fasta(tmp_path, chroms):
    path = tmp_path / 'genome.fa'
    path.write_text(''.join(f'>{name}\n{"ACGT" * (size // 4)}\n' for name, size in chroms))
    return str(path)


def _bigwig(tmp_path, name, chroms, value=1.0):
    path = str(tmp_path / name)
    bw = pyBigWig.open(path, 'w')
    bw.addHeader(list(chroms))
    for chrom, size in chroms:
        bw.addEntries(chrom, 0, values=np.full(size, value, np.float64), span=1, step=1)
    bw.close()
    return path


@pytest.fixture
def genome(tmp_path):
    chroms = [('chr1', 400), ('chr2', 200)]
    return {
        'fasta': _fasta(tmp_path, chroms),
        'pos': _bigwig(tmp_path, 'pos.bw', chroms),
        'neg': _bigwig(tmp_path, 'neg.bw', chroms),
    }


def _check(genome, region_list, bigwigs=None):
    return regions.check_inputs(
        region_list,
        peaks_path='peaks.bed',
        fasta_path=genome['fasta'],
        bigwig_paths=bigwigs or [genome['pos'], genome['neg']],
    )


def test_check_inputs_returns_fasta_sizes(genome):
    assert _check(genome, [Region('chr1', 0, 10, line=1)]) == {'chr1': 400, 'chr2': 200}


def test_chrom_missing_from_fasta_with_prefix_hint(genome):
    with pytest.raises(
        RecordsInputError,
        match=r"peaks\.bed:7: chromosome '1' is not in .*genome\.fa "
        r"\(it has 'chr1'",
    ):
        _check(genome, [Region('1', 0, 10, line=7)])


def test_chrom_missing_from_fasta_without_hint(genome):
    with pytest.raises(RecordsInputError, match=r"peaks\.bed:2: chromosome 'chrM' is not in") as e:
        _check(genome, [Region('chr1', 0, 10, line=1), Region('chrM', 0, 10, line=2)])
    assert 'it has' not in str(e.value)


def test_chrom_missing_from_bigwig(tmp_path, genome):
    pos = _bigwig(tmp_path, 'pos1.bw', [('chr1', 400)])
    with pytest.raises(
        RecordsInputError, match=r"peaks\.bed:3: chromosome 'chr2' is not in .*pos1\.bw"
    ):
        _check(genome, [Region('chr2', 0, 10, line=3)], [pos, genome['neg']])


def test_bigwig_chrom_length_differs(tmp_path, genome):
    pos = _bigwig(tmp_path, 'hg19.bw', [('chr1', 404), ('chr2', 200)])
    with pytest.raises(
        RecordsInputError,
        match=r'hg19\.bw: chr1 is 404 bp but 400 bp in .*'
        r'same assembly',
    ):
        _check(genome, [Region('chr2', 0, 10, line=1)], [pos])


def test_negative_bigwig(tmp_path, genome):
    neg = _bigwig(tmp_path, 'negative.bw', [('chr1', 400), ('chr2', 200)], value=-1.0)
    with pytest.raises(RecordsInputError, match=r'negative\.bw: holds negative values'):
        _check(genome, [Region('chr1', 0, 10, line=1)], [genome['pos'], neg])


def test_missing_bigwig(tmp_path, genome):
    with pytest.raises(RecordsInputError, match=r'gone\.bw: bigWig file not found'):
        _check(genome, [Region('chr1', 0, 10, line=1)], [str(tmp_path / 'gone.bw')])


def test_not_a_bigwig(tmp_path, genome):
    with pytest.raises(RecordsInputError, match=r'genome\.fa: not a readable bigWig'):
        _check(genome, [Region('chr1', 0, 10, line=1)], [genome['fasta']])


def test_check_inputs_names_each_tasks_peaks_file(genome):
    with pytest.raises(RecordsInputError, match=r"^b\.bed:4: chromosome 'chrM' is not in"):
        regions.check_inputs(
            [Region('chr1', 0, 10, line=1), Region('chrM', 0, 10, line=4, task=1)],
            peaks_path=['a.bed', 'b.bed'],
            fasta_path=genome['fasta'],
            bigwig_paths=[genome['pos']],
        )


def test_check_inputs_names_remote_originals(tmp_path, genome):
    only_chr2 = _bigwig(tmp_path, 'chr2.bw', [('chr2', 200)])
    with pytest.raises(RecordsInputError, match=r"chromosome 'chr1' is not in gs://b/pos\.bw$"):
        regions.check_inputs(
            [Region('chr1', 0, 10, line=1)],
            peaks_path='p',
            fasta_path=genome['fasta'],
            bigwig_paths=[only_chr2],
            names={only_chr2: 'gs://b/pos.bw'},
        )


def test_missing_fasta(tmp_path, genome):
    with pytest.raises(RecordsInputError, match=r'gone\.fa: FASTA file not found'):
        regions.check_inputs(
            [], peaks_path='p', fasta_path=str(tmp_path / 'gone.fa'), bigwig_paths=[]
        )
