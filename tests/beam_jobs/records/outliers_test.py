"""Tests of beam_jobs/records/outliers.py: bpnet v2's count-outlier rule, exact totals."""

from __future__ import annotations

import numpy as np
import pyBigWig

from beam_jobs.records import outliers
from beam_jobs.records.regions import Region


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
    kept, dropped, thresholds = outliers.drop_outliers(windows, totals, has_peak, 0.5)
    assert [r.line for r in dropped] == [7, 8, 9, 10, 12]
    assert [r.line for r in kept] == [1, 2, 3, 4, 5, 6, 11]
    np.testing.assert_allclose(thresholds, [66.0, 6.0])
    # quantile(0) = 10, x 1.2 = 12: a total equal to the threshold stays, a greater one goes.
    for top, lost in ((12.0, []), (12.5, [2])):
        kept, dropped, _ = outliers.drop_outliers(
            windows[:2], [[10.0], [top]], [[True], [True]], 0.0
        )
        assert [r.line for r in dropped] == lost
    assert outliers.drop_outliers(windows[:2], [[10.0], [12.0]], [[True], [True]], 1.0)[1] == []


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
        got = outliers.window_totals(windows, pairs, trim=trim, run_gap=run_gap)
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
        got = outliers.window_totals(windows, [pair], max_span=max_span)
        np.testing.assert_array_equal(got, expected)
