"""Tests of beam_jobs/planning.py: the window rules and the driver's choice of windows."""

from __future__ import annotations

import gzip

import numpy as np
import pyBigWig
import pytest

from beam_jobs import planning, regions
from beam_jobs.regions import RecordsInputError, Region


def _write(path, text):
    path.write_text(text)
    return str(path)


def test_drop_duplicates_keeps_first():
    a, b, c = (
        Region('chr1', 0, 10, line=1),
        Region('chr1', 0, 10, line=2),
        Region('chr1', 1, 11, line=3),
    )
    kept, duplicates = planning.drop_duplicates([a, b, c])
    assert kept == [a, c] and duplicates == [b]


def test_merge_tasks_union_duplicates_and_merged():
    a1, a2 = Region('chr1', 0, 10, line=1, task=0), Region('chr1', 5, 15, line=2, task=0)
    b1 = Region('chr1', 0, 10, line=1, task=1)  # Task 0's window: merged, not dropped.
    b2 = Region('chr1', 0, 10, line=2, task=1)  # Again in task 1: a duplicate.
    b3 = Region('chr1', 6, 16, line=3, task=1)  # Overlaps a2 but differs: its own region.
    a3 = Region('chr1', 0, 10, line=3, task=0)  # Again in task 0: a duplicate.
    kept, duplicates, merged = planning.merge_tasks([a1, a2, a3, b1, b2, b3])
    assert (kept, duplicates, merged) == ([a1, a2, b3], [a3, b2], [b1])


def test_drop_out_of_bounds_counts_the_jitter_margin():
    inside, low, high = (
        Region('chr1', 5, 15, line=1),
        Region('chr1', 4, 14, line=2),
        Region('chr1', 86, 96, line=3),
    )
    kept, dropped = planning.drop_out_of_bounds(
        [inside, low, high, Region('chrX', 50, 60, line=4)], {'chr1': 100}, max_jitter=5
    )
    assert kept == [inside] and [r.line for r in dropped] == [2, 3, 4]


def test_blacklist_overlap_is_half_open():
    blacklist = planning.Blacklist([('chr1', 100, 200), ('chr1', 150, 300), ('chr2', 0, 1)])
    assert len(blacklist) == 2  # Overlapping intervals merged.
    assert blacklist.overlaps('chr1', 299, 400) and blacklist.overlaps('chr1', 0, 101)
    assert not blacklist.overlaps('chr1', 300, 400) and not blacklist.overlaps('chr1', 0, 100)
    assert not blacklist.overlaps('chr3', 0, 10**9)
    kept, dropped = planning.drop_blacklisted(
        [Region('chr1', 304, 314, line=1), Region('chr1', 305, 315, line=2)],
        blacklist,
        max_jitter=5,
    )
    assert [r.line for r in kept] == [2] and [r.line for r in dropped] == [1]


def test_read_blacklist(tmp_path):
    path = tmp_path / 'bl.bed.gz'
    with gzip.open(path, 'wt') as f:
        f.write('track name=bl\n# c\nchr1\t10\t20\tname\t0\t+\nchr1 30 40\n')
    blacklist = planning.read_blacklist(str(path))
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
        planning.read_blacklist(_write(tmp_path / 'bl.bed', text))


# --- Outliers ----------------------------------------------------------------------------------


def test_drop_outliers_hand_made_case():
    # Task 0 has peaks at windows 0-9 with totals 10, 20, ..., 90 and 1000; q = 0.5 gives
    # median 55 x 1.2 = 66, so 70, 80, 90 and 1000 go. Task 1 has peaks at windows 8-11 only
    # (totals 5, 5, 5, 100; quantile(0.5) = 5 x 1.2 = 6): window 11 goes for task 1, and
    # window 0's task-1 total of 500 does not count, task 1 having no peak there.
    windows = [Region('chr1', 100 * i, 100 * i + 50, line=i + 1) for i in range(12)]
    totals = np.zeros((12, 2))
    totals[:10, 0] = [10, 20, 30, 40, 50, 60, 70, 80, 90, 1000]
    totals[8:12, 1] = [5, 5, 5, 100]
    totals[0, 1] = 500
    has_peak = np.zeros((12, 2), bool)
    has_peak[:10, 0] = True
    has_peak[8:12, 1] = True
    kept, dropped, thresholds = planning.drop_outliers(windows, totals, has_peak, 0.5)
    assert [r.line for r in dropped] == [7, 8, 9, 10, 12]
    assert [r.line for r in kept] == [1, 2, 3, 4, 5, 6, 11]
    np.testing.assert_allclose(thresholds, [66.0, 6.0])
    # quantile(0) = 10, x 1.2 = 12: a total equal to the threshold stays, a greater one goes.
    for top, lost in ((12.0, []), (12.5, [2])):
        kept, dropped, _ = planning.drop_outliers(
            windows[:2], [[10.0], [top]], [[True], [True]], 0.0
        )
        assert [r.line for r in dropped] == lost
    assert planning.drop_outliers(windows[:2], [[10.0], [12.0]], [[True], [True]], 1.0)[1] == []


def test_window_totals_sum_both_strands_over_the_trimmed_window(tmp_path):
    rng = np.random.default_rng(3)
    values = {
        name: np.where(rng.random(400) < 0.5, rng.integers(0, 9, 400), np.nan)
        for name in ('pos', 'neg', 'pos2', 'neg2')
    }
    paths = {}
    for name, v in values.items():
        bw = pyBigWig.open(str(tmp_path / f'{name}.bw'), 'w')
        bw.addHeader([('chr1', 400)])
        starts = np.flatnonzero(~np.isnan(v))
        bw.addEntries('chr1', starts.astype(np.int64), values=v[starts].astype(np.float64), span=1)
        bw.close()
        paths[name] = str(tmp_path / f'{name}.bw')
    windows = [Region('chr1', s, s + 40) for s in (300, 10, 25, 200, 360)]
    pairs = [(paths['pos'], paths['neg']), (paths['pos2'], paths['neg2'])]
    for trim, run_gap in ((0, 20_000), (7, 0)):
        got = planning.window_totals(windows, pairs, trim=trim, run_gap=run_gap)
        expected = [
            [
                sum(np.nansum(values[n][r.start + trim : r.end - trim]) for n in pair)
                for pair in (('pos', 'neg'), ('pos2', 'neg2'))
            ]
            for r in windows
        ]
        np.testing.assert_array_equal(got, expected)


def test_window_totals_runs_capped_by_span_give_the_same_sums(tmp_path):
    # Overlapping, adjacent and far windows; runs cut by max_span must not change any sum.
    rng = np.random.default_rng(5)
    values = {
        n: np.where(rng.random(3000) < 0.3, rng.integers(0, 50, 3000), np.nan)
        for n in ('pos', 'neg')
    }
    for name, v in values.items():
        bw = pyBigWig.open(str(tmp_path / f'{name}.bw'), 'w')
        bw.addHeader([('chr1', 3000), ('chr2', 3000)])
        for chrom in ('chr1', 'chr2'):
            starts = np.flatnonzero(~np.isnan(v))
            bw.addEntries(
                chrom, starts.astype(np.int64), values=v[starts].astype(np.float64), span=1
            )
        bw.close()
    pair = (str(tmp_path / 'pos.bw'), str(tmp_path / 'neg.bw'))
    windows = [
        Region(c, s, s + 100)
        for c, s in (
            ('chr2', 0),
            ('chr1', 2900),
            ('chr1', 50),
            ('chr1', 100),
            ('chr1', 120),
            ('chr1', 1500),
        )
    ]
    expected = [
        [sum(np.nansum(values[n][r.start : r.end]) for n in ('pos', 'neg'))] for r in windows
    ]
    for max_span in (1_000_000, 150, 1):
        got = planning.window_totals(windows, [pair], max_span=max_span)
        np.testing.assert_array_equal(got, expected)


# --- The driver's choice: plan_windows ---------------------------------------------------------


@pytest.fixture
def toy(tmp_path):
    """chrA (3000 bp) and chrB (1000 bp) with flat counts, and a task whose peaks are there."""
    rng = np.random.default_rng(0)
    sizes = {'chrA': 3000, 'chrB': 1000}
    fasta = _write(
        tmp_path / 'g.fa',
        ''.join(f'>{c}\n{"".join(rng.choice(list("ACGT"), n))}\n' for c, n in sizes.items()),
    )
    paths = {}
    for name in ('pos', 'neg'):
        paths[name] = str(tmp_path / f'{name}.bw')
        bw = pyBigWig.open(paths[name], 'w')
        bw.addHeader(list(sizes.items()))
        for chrom, n in sizes.items():
            bw.addEntries(chrom, 0, values=np.ones(n).tolist(), span=1, step=1)
        bw.close()
    # chrA: 500 (twice), 1500, 2950 (past the end); chrB: 500.
    peaks = _write(
        tmp_path / 'p.bed',
        'chrA\t500\t501\nchrA\t500\t501\nchrA\t1500\t1501\nchrA\t2950\t2951\nchrB\t500\t501\n',
    )
    task = planning.tasks_lib.Task('t', peaks, paths['pos'], paths['neg'])
    return fasta, [task]


def _config(valid='', test='', **kwargs) -> planning.PlanConfig:
    return planning.PlanConfig(
        sequence_length=200,
        output_length=200,
        max_jitter=10,
        valid=regions.parse_chrom_spans(valid, flag='valid_chroms'),
        test=regions.parse_chrom_spans(test, flag='test_chroms'),
        **kwargs,
    )


def test_plan_windows_sets_aside_duplicates_and_windows_past_the_end(toy, tmp_path):
    fasta, task_list = toy
    blacklist = _write(tmp_path / 'bl.bed', 'chrA\t1450\t1460\n')
    plan = planning.plan_windows(_config('chrB'), task_list, fasta, blacklist)
    assert len(plan.peaks) == 5
    assert [(r.region_id, r.split) for r in plan.regions] == [
        ('chrA:400-600', 'train'),
        ('chrB:400-600', 'valid'),
    ]
    assert sorted((r.line, reason) for r, reason in plan.dropped) == [
        (2, 'duplicate'),
        (3, 'blacklisted'),
        (4, 'out_of_bounds'),
    ]
    assert plan.lost_windows == {'chrA:1400-1600', 'chrA:2850-3050'}
    assert plan.background is None and plan.thresholds is None and plan.totals is None


@pytest.mark.parametrize(
    'valid, test, message',
    [
        (
            'chr1',
            '',
            r"^--valid_chroms item 'chr1' names no chromosome of .*g\.fa, which has "
            r'chrA, chrB; pass --valid_chroms with one of its chromosomes or an interval '
            r'of one \(e\.g\. chrA:0-1,000\), or --allow_empty_splits$',
        ),
        (
            'chrB',
            'chrA:0-100',
            r"^--test_chroms item 'chrA:0-100' holds no peak centre \(of 5 "
            r'peaks read\)',
        ),
        (
            'chrA:2900-3000',
            '',
            r'^the valid split has no records: the 1 peak\(s\) with their '
            r'centre in --valid_chroms=chrA:2900-3000 were all rejected '
            r'\(out_of_bounds 1\); pass other --valid_chroms, or '
            r'--allow_empty_splits$',
        ),
    ],
    ids=['no_such_chromosome', 'no_peak_centre', 'all_rejected'],
)
def test_a_split_asked_for_that_can_give_no_record_stops(toy, caplog, valid, test, message):
    fasta, task_list = toy
    with pytest.raises(RecordsInputError, match=message):
        planning.plan_windows(_config(valid, test), task_list, fasta)
    plan = planning.plan_windows(_config(valid, test, allow_empty_splits=True), task_list, fasta)
    assert len(plan.peaks) == 5  # Warned, went on.
    warnings = [r.getMessage() for r in caplog.records if r.levelname == 'WARNING']
    assert len(warnings) == 1 and warnings[0].endswith('(--allow_empty_splits: going on)')
    assert 'pass --' not in warnings[0]
