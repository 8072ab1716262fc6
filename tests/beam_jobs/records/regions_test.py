"""Tests of beam_jobs/records/regions.py: peaks parsing, centring, split assignment, window runs."""

from __future__ import annotations

import gzip

import pytest

from beam_jobs.common.errors import RecordsInputError
from beam_jobs.records import regions, splits
from beam_jobs.records.regions import Region


def _write(path, text):
    path.write_text(text)
    return str(path)


def _spans(valid='', test=''):
    return (
        splits.parse_chrom_spans(valid, flag='valid_chroms'),
        splits.parse_chrom_spans(test, flag='test_chroms'),
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


# --- Split assignment (the split flags themselves: splits_test.py) -----------------------------


def test_split_by_chromosome(tmp_path):
    path = _write(tmp_path / 'p.bed', 'chr1\t100\t101\nchr2\t100\t101\nchr3\t100\t101\n')
    valid, test = _spans('chr1', 'chr3')
    got = regions.read_peaks(path, sequence_length=10, valid=valid, test=test)
    assert [r.split for r in got] == ['valid', 'train', 'test']
    assert splits.split_counts(got) == {'train': 1, 'valid': 1, 'test': 1}


def test_split_by_interval_uses_centre(tmp_path):
    # Centres 99_999 and 100_000: the interval [0, 100000) is half-open.
    path = _write(
        tmp_path / 'p.bed', 'chrIV\t99999\t100000\nchrIV\t100000\t100001\nchrIV\t250000\t250001\n'
    )
    valid, test = _spans('chrIV:0-100000', 'chrIV:200000-300000')
    got = regions.read_peaks(path, sequence_length=1000, valid=valid, test=test)
    assert [r.split for r in got] == ['valid', 'train', 'test']


def test_group_runs_of_nearby_windows():
    stored = [(0, 30), (10, 40), (100, 130), (1000, 1030), (1040, 1070)]
    assert regions.group_runs(stored, gap=50, max_span=10**6) == [(0, 2), (2, 3), (3, 5)]
    assert regions.group_runs(stored, gap=10**6, max_span=10**6) == [(0, 5)]
    assert regions.group_runs(stored, gap=10**6, max_span=500) == [(0, 3), (3, 5)]
    assert regions.group_runs(
        stored, gap=10**6, max_span=10**6, chroms=['a', 'a', 'b', 'b', 'b']
    ) == [(0, 2), (2, 5)]
    assert regions.group_runs([], gap=1, max_span=1) == []


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
