"""Tests of beam_jobs/records/accounting.py: the job summary, books, rejected.tsv, summary line."""

from __future__ import annotations

import pytest

from beam_jobs.common.errors import RecordsInputError
from beam_jobs.records import accounting, plan, planning
from beam_jobs.records.regions import Region
from beam_jobs.records.splits import ChromSpan


def test_summarise_median_over_training_records_only():
    summary = accounting.summarise(
        shards=[('train', 2), ('train', 1), ('valid', 1)],
        totals=[
            ('train', [(1.0, 10.0), (4.0, 30.0)]),
            ('train', [(2.0, 20.0), (3.0, 40.0)]),
            ('valid', [(1000.0, 1000.0)]),
        ],
        rejected=[('chr1:5-10', 'too_many_n'), ('chr1:0-5', 'out_of_bounds')],
    )
    assert summary == {
        'split_counts': {'train': 3, 'valid': 1, 'test': 0},
        'median_total_counts': [2.5, 25.0],
        'rejected': [['chr1:0-5', 'out_of_bounds'], ['chr1:5-10', 'too_many_n']],
    }
    assert accounting.summarise([], [('valid', [(1.0,)])], [])['median_total_counts'] == []


def _plan(**kwargs) -> planning.WindowPlan:
    """Task 0: peaks at windows w1, w2 (and a duplicate of w1, line 3); task 1: a peak at w1
    (merged) and one at w3, which the driver dropped as out of bounds."""
    w1, w2 = Region('chr1', 0, 10, 'train', 1, 0), Region('chr1', 50, 60, 'valid', 2, 0)
    dup, merged = Region('chr1', 0, 10, 'train', 3, 0), Region('chr1', 0, 10, 'train', 1, 1)
    w3 = Region('chr1', 95, 105, 'train', 2, 1)
    defaults = dict(
        peaks=[w1, w2, dup, merged, w3],
        windows=[w1, w2],
        background=None,
        dropped=[(dup, 'duplicate'), (w3, 'out_of_bounds')],
        lost_windows={w3.region_id},
        merged=[merged],
        peaks_at=plan.PeaksAt([merged]),
        spans={'valid': (ChromSpan('chr1', 50, 60),), 'test': ()},
    )
    return planning.WindowPlan(**{**defaults, **kwargs})


def test_tally_balances_the_books_and_lists_rejected_peaks_in_task_line_order():
    summary = {
        'split_counts': {'train': 0, 'valid': 1, 'test': 0},
        'median_total_counts': [],
        'rejected': [['chr1:0-10', 'too_many_n']],
    }
    books = accounting.tally(_plan(), summary, ['a', 'b'])
    # 5 read = 1 written + 0 merged (its window was rejected) + 4 rejected.
    assert (books.peaks_read, books.peaks_written, books.merged) == (5, 1, 0)
    assert books.rejected == [
        ('chr1:0-10', 'a', 1, 'too_many_n'),
        ('chr1:0-10', 'a', 3, 'duplicate'),
        ('chr1:0-10', 'b', 1, 'too_many_n'),
        ('chr1:95-105', 'b', 2, 'out_of_bounds'),
    ]
    assert books.drops == {'duplicate': 1, 'out_of_bounds': 1, 'too_many_n': 2}
    assert books.rejected_by_split == {
        'train': {'duplicate': 1, 'out_of_bounds': 1, 'too_many_n': 2}
    }
    assert accounting.rejected_text(books.rejected).splitlines()[:2] == [
        'region_id\ttask\tline\treason',
        'chr1:0-10\ta\t1\ttoo_many_n',
    ]
    assert accounting.summary_line(books, background=None, seconds=1.26, output_dir='o') == (
        'make_records: 5 peaks read, 1 records written (train 0, valid 1, test 0), 4 rejected '
        '(duplicate 1, out_of_bounds 1, too_many_n 2), 1.3 s -> o'
    )
    # Nothing rejected in the pipeline: task b's peak at w1 is merged into a's record.
    summary = {**summary, 'split_counts': {'train': 1, 'valid': 1, 'test': 0}, 'rejected': []}
    books = accounting.tally(_plan(), summary, ['a', 'b'])
    assert (books.peaks_written, books.merged, len(books.rejected)) == (2, 1, 2)
    with pytest.raises(AssertionError, match='bug: 5 peaks read but 3 written'):
        accounting.tally(
            _plan(), {**summary, 'split_counts': {'train': 2, 'valid': 1, 'test': 0}}, ['a', 'b']
        )


def test_empty_splits_name_the_split_its_items_and_the_reasons():
    plan = _plan()
    assert accounting.empty_splits(plan.spans, {'train': 1, 'valid': 1}, plan.peaks, {}) == []
    (problem,) = accounting.empty_splits(
        plan.spans, {'train': 1, 'valid': 0}, plan.peaks, {'valid': {'too_many_n': 1}}
    )
    assert problem == (
        'the valid split has no records: the 1 peak(s) with their centre in '
        '--valid_chroms=chr1:50-60 were all rejected (too_many_n 1); pass other '
        '--valid_chroms, or --allow_empty_splits'
    )
    # No items, or no peaks there (splits.split_problems says so): not this problem.
    assert accounting.empty_splits({'valid': ()}, {}, plan.peaks, {}) == []
    assert accounting.empty_splits({'test': (ChromSpan('chr2'),)}, {}, plan.peaks, {}) == []


def test_stop_or_warn(caplog):
    accounting.stop_or_warn([], allow=False)
    with pytest.raises(RecordsInputError, match='^first; pass x$'):
        accounting.stop_or_warn(['first; pass x', 'second'], allow=False)
    accounting.stop_or_warn(['first; pass x', 'second'], allow=True)
    assert [r.getMessage() for r in caplog.records] == [
        'first (--allow_empty_splits: going on)',
        'second (--allow_empty_splits: going on)',
    ]
