"""The count-outlier rule (bpnet v2) and the exact window totals it is judged on.

`window_totals` sums each task's counts bigWigs (both strands) over every window's counts
window, reading nearby windows with one call; `drop_outliers` drops windows whose total, for a
task with a peak there, exceeds `outlier_thresholds`: quantile(q) x OUTLIER_FACTOR of that
task's totals at its peaks. No Beam here.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from beam_jobs.common.errors import RecordsInputError
from beam_jobs.records import regions as regions_lib
from beam_jobs.records.regions import Region

OUTLIER_FACTOR = 1.2  # bpnet v2: drop totals above quantile(q) x 1.2 of the task's peaks.


def window_totals(
    regions: Sequence[Region],
    bigwig_pairs: Sequence[tuple[str, str]],
    *,
    trim: int = 0,
    run_gap: int = 20_000,
    max_span: int = 1_000_000,
    names: Mapping[str, str] | None = None,
) -> np.ndarray:
    """Total counts of each task (both strands) in each region's counts window.

    The counts window is the region shrunk by `trim` bp on each side (the output window of a
    model whose input is wider), without the jitter margin. NaN (no data) counts as 0. Nearby
    windows of one chromosome share one bigWig `values()` call (runs of at most `max_span` bp,
    so memory does not grow with the chromosome), and each window is summed in float64
    (`_window_sums`: work in proportion to the windows, not to the run's span), so the totals
    are exact for integer counts.

    Args:
      regions: the windows, any order.
      bigwig_pairs: per task, local (plus, minus) counts bigWigs.
      trim: bases cut from each side of a region for its counts window.
      run_gap: windows closer than this many bp are read with one call.
      names: {local path: path to name in messages}.

    Returns:
      float64 array (len(regions), tasks), in the order of `regions`.

    Raises:
      RecordsInputError: a bigWig that cannot be read over a window.
    """
    import pyBigWig

    names = names or {}
    out = np.zeros((len(regions), len(bigwig_pairs)), np.float64)
    order, starts, ends, runs = _sorted_runs(regions, trim, run_gap, max_span)
    for t, pair in enumerate(bigwig_pairs):
        for path in pair:
            bw = pyBigWig.open(path)
            try:
                for first, last in runs:
                    chrom = regions[order[first]].chrom
                    lo, hi = int(starts[first]), int(ends[first:last].max())
                    try:
                        values = bw.values(chrom, lo, hi, numpy=True)
                    except RuntimeError:
                        raise RecordsInputError(
                            f'{names.get(path, path)}: cannot read {chrom}:{lo}-{hi}'
                        ) from None
                    out[order[first:last], t] += _window_sums(
                        values, starts[first:last] - lo, ends[first:last] - lo
                    )
            finally:
                bw.close()
    return out


def _sorted_runs(regions: Sequence[Region], trim: int, run_gap: int, max_span: int):
    """(order, counts window starts, ends, runs): the regions sorted by (chrom, start, end),
    their counts windows in that order, and the runs of them read with one call."""
    order = sorted(
        range(len(regions)), key=lambda i: (regions[i].chrom, regions[i].start, regions[i].end)
    )
    starts = np.array([regions[i].start + trim for i in order], np.int64).reshape(-1)
    ends = np.array([regions[i].end - trim for i in order], np.int64).reshape(-1)
    runs = regions_lib.group_runs(
        [(regions[i].start, regions[i].end) for i in order],
        gap=run_gap,
        max_span=max_span,
        chroms=[regions[i].chrom for i in order],
    )
    return order, starts, ends, runs


def _window_sums(values: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """float64 sums of values[starts[k]:ends[k]] (NaN as 0), shape (windows,).

    The windows' starts and ends cut `values` into elementary segments; one `np.add.reduceat`
    sums every segment in float64, and each window is a difference of the segments' running
    sum. One pass over the values whether or not windows overlap, and exact for integer
    counts (every partial sum is an integer below 2**53). `values` is overwritten (NaN -> 0)
    to save a copy of the run.
    """
    out = np.zeros(len(starts), np.float64)
    cuts = np.unique(np.concatenate([starts, ends]))
    if len(cuts) < 2:
        return out  # No window holds a base.
    clean = values[: cuts[-1]]
    np.fmax(clean, 0.0, out=clean)  # NaN (no data) -> 0, in place; negatives fail in the job.
    running = np.zeros(len(cuts), np.float64)
    np.cumsum(np.add.reduceat(clean, cuts[:-1], dtype=np.float64), out=running[1:])
    out[:] = running[np.searchsorted(cuts, ends)] - running[np.searchsorted(cuts, starts)]
    return out


def outlier_thresholds(totals: np.ndarray, has_peak: np.ndarray, quantile: float) -> np.ndarray:
    """Per task, quantile(`quantile`) x OUTLIER_FACTOR of the totals at the task's peaks.

    Args:
      totals: (windows, tasks) total counts.
      has_peak: (windows, tasks) bool, whether the task has a peak at the window.
      quantile: in (0, 1]; numpy's default (linear) quantile.

    Returns:
      float64 (tasks,); inf for a task without peaks.
    """
    out = np.full(totals.shape[1], np.inf)
    for t in range(totals.shape[1]):
        if has_peak[:, t].any():
            out[t] = np.quantile(totals[has_peak[:, t], t], quantile) * OUTLIER_FACTOR
    return out


def drop_outliers(
    regions: Sequence[Region], totals: np.ndarray, has_peak: np.ndarray, quantile: float
) -> tuple[list[Region], list[Region], np.ndarray]:
    """(kept, dropped, thresholds): the bpnet v2 outlier rule, per task.

    A window is dropped when, for a task with a peak there, its total counts exceed that
    task's threshold (`outlier_thresholds`): quantile(q) x 1.2 of the task's totals over the
    windows where it has a peak. Windows are the union of the tasks' peaks, so a window one
    task finds extreme is dropped for every task (as blacklisted windows are).

    Args:
      regions: the windows (one per window, as `merge_tasks` keeps them).
      totals: (len(regions), tasks) total counts over both strands of the counts window.
      has_peak: (len(regions), tasks) bool.
      quantile: in (0, 1].

    Returns:
      Kept and dropped regions, in input order, and the (tasks,) thresholds.
    """
    totals = np.asarray(totals, np.float64).reshape(len(regions), -1)
    has_peak = np.asarray(has_peak, bool).reshape(totals.shape)
    thresholds = outlier_thresholds(totals, has_peak, quantile)
    outlier = (has_peak & (totals > thresholds)).any(axis=1)
    kept = [r for r, o in zip(regions, outlier) if not o]
    dropped = [r for r, o in zip(regions, outlier) if o]
    return kept, dropped, thresholds
