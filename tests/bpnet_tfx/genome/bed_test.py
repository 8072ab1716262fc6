"""Tests of the BED reader: columns, names, gzip by content, one-line errors, summits, windows."""

from __future__ import annotations

import gzip
import re

import pytest

from bpnet_tfx.genome import bed
from bpnet_tfx.genome.genome_io import GenomeError


def test_read_bed_skips_headers_names_by_column_4_and_reads_gzip_by_content(tmp_path):
    text = 'track name=x\n# comment\n\nchr1\t10\t20\tpeak_a\t5\nchr2 30 30\nchr1\t5\t9\t \n'
    plain = tmp_path / 'r.bed'
    plain.write_text(text)
    packed = tmp_path / 'r.txt'  # gzip without a .gz suffix
    packed.write_bytes(gzip.compress(text.encode()))
    for path in (plain, packed):
        lines = list(bed.read_bed(str(path)))
        assert lines == [
            bed.BedLine(4, 'chr1', 10, 20, 'peak_a'),
            bed.BedLine(5, 'chr2', 30, 30, None),  # whitespace-separated, zero length
            bed.BedLine(6, 'chr1', 5, 9, None),  # a blank name is no name
        ]


@pytest.mark.parametrize(
    'line, message',
    [
        ('chr1\t10', r'malformed line: 2 column\(s\), need at least 3'),
        ('\t10\t20', r'malformed line: empty chromosome name'),
        ('chr1\t1e3\t20', r"start '1e3' is not an integer"),
        ('chr1\t-5\t20', r'negative coordinate \(-5, 20\)'),
        ('chr1\t30\t20', r'start 30 > end 20'),
    ],
)
def test_malformed_lines_are_one_line_errors_naming_file_and_line(tmp_path, line, message):
    path = tmp_path / 'r.bed'
    path.write_text(f'chr1\t1\t2\n{line}\n')
    with pytest.raises(GenomeError, match=f'^{re.escape(str(path))}:2: {message}'):
        list(bed.read_bed(str(path)))


def test_unreadable_files_name_the_file_and_kind(tmp_path):
    with pytest.raises(GenomeError, match=r'nope\.bed: cannot read peaks file: No such file'):
        list(bed.data_lines(str(tmp_path / 'nope.bed'), kind='peaks'))
    binary = tmp_path / 'b.bed'
    binary.write_bytes(b'\xff\xfe\x00chr1')
    with pytest.raises(GenomeError, match=r'b\.bed: not a text BED/narrowPeak file'):
        list(bed.read_bed(str(binary)))


@pytest.mark.parametrize(
    'columns, centre',
    [
        (['c', '100', '200'], 150),  # BED3: the midpoint
        (['c', '100', '200', 'n', '0', '.', '1', '2', '3', '30'], 130),  # narrowPeak summit
        (['c', '100', '200', 'n', '0', '.', '1', '2', '3', '-1'], 150),  # no summit
        (['c', '100', '200', 'n', '0', '.', '1', '2', '3', '30', 'x'], 150),  # 11 columns
    ],
)
def test_peak_centre_takes_the_narrowpeak_summit(columns, centre):
    assert bed.peak_centre('p.bed', 1, columns) == ('c', centre)


def test_a_summit_outside_the_peak_is_refused():
    columns = ['c', '100', '200', 'n', '0', '.', '1', '2', '3', '101']
    with pytest.raises(GenomeError, match=r'p\.bed:7: summit offset 101 is outside the peak'):
        bed.peak_centre('p.bed', 7, columns)


def test_bed_windows_centre_shift_inside_and_keep_longer(tmp_path):
    path = tmp_path / 'r.bed'
    path.write_text('c\t40\t60\tmid\nc\t0\t4\tedge\nc\t10\t90\tlong\n')
    sizes = {'c': 100}
    got = [(w.start, w.end, w.name) for w in bed.bed_windows(str(path), sizes, 30)]
    assert got == [(35, 65, 'mid'), (0, 30, 'edge'), (35, 65, 'long')]
    kept = bed.bed_windows(str(path), sizes, 30, keep_longer=True)
    assert (kept[2].start, kept[2].end) == (10, 90)
    path.write_text('# nothing\n')
    with pytest.raises(GenomeError, match='no regions'):
        bed.bed_windows(str(path), sizes, 30)
