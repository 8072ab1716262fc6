"""Tests of beam_jobs/records/window_rules.py: duplicates, chromosome ends, the blacklist."""

from __future__ import annotations

import gzip

import pytest

from beam_jobs.common.errors import RecordsInputError
from beam_jobs.records import window_rules
from beam_jobs.records.regions import Region


def _write(path, text):
    path.write_text(text)
    return str(path)


def test_drop_duplicates_keeps_first():
    a, b, c = (
        Region('chr1', 0, 10, line=1),
        Region('chr1', 0, 10, line=2),
        Region('chr1', 1, 11, line=3),
    )
    kept, duplicates = window_rules.drop_duplicates([a, b, c])
    assert kept == [a, c] and duplicates == [b]


def test_merge_tasks_union_duplicates_and_merged():
    a1, a2 = Region('chr1', 0, 10, line=1, task=0), Region('chr1', 5, 15, line=2, task=0)
    b1 = Region('chr1', 0, 10, line=1, task=1)  # Task 0's window: merged, not dropped.
    b2 = Region('chr1', 0, 10, line=2, task=1)  # Again in task 1: a duplicate.
    b3 = Region('chr1', 6, 16, line=3, task=1)  # Overlaps a2 but differs: its own region.
    a3 = Region('chr1', 0, 10, line=3, task=0)  # Again in task 0: a duplicate.
    kept, duplicates, merged = window_rules.merge_tasks([a1, a2, a3, b1, b2, b3])
    assert (kept, duplicates, merged) == ([a1, a2, b3], [a3, b2], [b1])


def test_drop_out_of_bounds_counts_the_jitter_margin():
    inside, low, high = (
        Region('chr1', 5, 15, line=1),
        Region('chr1', 4, 14, line=2),
        Region('chr1', 86, 96, line=3),
    )
    kept, dropped = window_rules.drop_out_of_bounds(
        [inside, low, high, Region('chrX', 50, 60, line=4)], {'chr1': 100}, max_jitter=5
    )
    assert kept == [inside] and [r.line for r in dropped] == [2, 3, 4]


def test_blacklist_overlap_is_half_open():
    blacklist = window_rules.Blacklist([('chr1', 100, 200), ('chr1', 150, 300), ('chr2', 0, 1)])
    assert len(blacklist) == 2  # Overlapping intervals merged.
    assert blacklist.overlaps('chr1', 299, 400) and blacklist.overlaps('chr1', 0, 101)
    assert not blacklist.overlaps('chr1', 300, 400) and not blacklist.overlaps('chr1', 0, 100)
    assert not blacklist.overlaps('chr3', 0, 10**9)
    kept, dropped = window_rules.drop_blacklisted(
        [Region('chr1', 304, 314, line=1), Region('chr1', 305, 315, line=2)],
        blacklist,
        max_jitter=5,
    )
    assert [r.line for r in kept] == [2] and [r.line for r in dropped] == [1]


def test_read_blacklist(tmp_path):
    path = tmp_path / 'bl.bed.gz'
    with gzip.open(path, 'wt') as f:
        f.write('track name=bl\n# c\nchr1\t10\t20\tname\t0\t+\nchr1 30 40\n')
    blacklist = window_rules.read_blacklist(str(path))
    assert blacklist.overlaps('chr1', 35, 36) and not blacklist.overlaps('chr1', 20, 30)


@pytest.mark.parametrize(
    'text, message',
    [
        ('chr1\t10\n', r'bl\.bed:1: malformed line'),
        ('chr1\tx\t20\n', r"bl\.bed:1: start 'x' is not an integer"),
        ('chr1\t30\t20\n', r'bl\.bed:1: start 30 > end 20'),
        ('chr1\t-5\t20\n', r'bl\.bed:1: negative coordinate'),
        (' \t10\t20\n', r'bl\.bed:1: malformed line: empty chromosome name'),
    ],
    ids=['columns', 'integer', 'order', 'negative', 'empty_chrom'],
)
def test_bad_blacklist_line(tmp_path, text, message):
    with pytest.raises(RecordsInputError, match=message):
        window_rules.read_blacklist(_write(tmp_path / 'bl.bed', text))
