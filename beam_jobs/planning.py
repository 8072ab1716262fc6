"""Driver-side choice of windows: which peaks become records, before any pipeline runs.

`plan_windows` reads every task's peaks (regions.py) and checks them against the FASTA and
bigWigs, then sets windows aside with a reason: a second peak of one task at the same window
(`merge_tasks`: duplicate; another task's peak there is merged, not dropped), windows past a
chromosome end (`drop_out_of_bounds`), windows overlapping the --blacklist
(`drop_blacklisted`) and count outliers (`drop_outliers`, the bpnet v2 rule: total counts above
1.2 x a quantile of the task's peaks' totals, from the driver's exact `window_totals`). It adds
GC-matched background windows away from peaks (background.py) and stops, with one line, when a
split the user asked for can give no record (`--allow_empty_splits`: a warning instead). A
window dropped here drops every task's peak at it. No Beam here.
"""

from __future__ import annotations

import bisect
import dataclasses
import logging
import shutil
from typing import Collection, Iterable, Mapping, Sequence

import numpy as np

from beam_jobs import accounting
from beam_jobs import background as background_lib
from beam_jobs import files as files_lib
from beam_jobs import regions as regions_lib
from beam_jobs import tasks as tasks_lib
from beam_jobs.regions import (
    BLACKLISTED,
    DUPLICATE,
    OUT_OF_BOUNDS,
    OUTLIER_COUNTS,
    RecordsInputError,
    Region,
)

OUTLIER_FACTOR = 1.2  # bpnet v2: drop totals above quantile(q) x 1.2 of the task's peaks.

_LOGGER = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class PlanConfig:
    """How to choose windows (make_records turns its flags into one).

    Attributes:
      sequence_length: input window length L in bp.
      output_length: counts window length in bp, centred in the input window.
      max_jitter: margin J stored on each side of the window.
      max_n_fraction: the extraction step's N rule, applied to background candidates.
      valid, test: the --valid_chroms / --test_chroms items (regions.parse_chrom_spans).
      outlier_quantile: the outlier rule's quantile; 0 or 1: off.
      background_ratio: background windows per peak window (0: none).
      background_seed: seed of the background sampling.
      allow_empty_splits: warn, not stop, when an asked-for split can give no record.
      default_flags: the split flags left at their default value, named in messages.
    """

    sequence_length: int
    output_length: int
    max_jitter: int = 0
    max_n_fraction: float = 0.1
    valid: tuple[regions_lib.ChromSpan, ...] = ()
    test: tuple[regions_lib.ChromSpan, ...] = ()
    outlier_quantile: float = 0.0
    background_ratio: float = 0.0
    background_seed: int = 0
    allow_empty_splits: bool = False
    default_flags: Collection[str] = ()

    @property
    def trim(self) -> int:
        return (self.sequence_length - self.output_length) // 2


@dataclasses.dataclass
class WindowPlan:
    """What `plan_windows` chose.

    Attributes:
      peaks: every peak read, all tasks, in file order.
      windows: the peak windows for the pipeline, one per window (the first peak there).
      background: the background sample, or None.
      dropped: (peak, reason) of every peak set aside here, every task's peak at a dropped
        window included.
      lost_windows: region ids of the windows dropped here.
      merged: other tasks' peaks at a kept or dropped window (not drops).
      peaks_at: the peaks that gave each window.
      spans: {split: its --valid_chroms / --test_chroms items}.
      thresholds: (tasks,) outlier thresholds, or None when the rule is off.
      totals: (len(windows), tasks) total counts when the rule ran (the driver's median).
    """

    peaks: list[Region]
    windows: list[Region]
    background: background_lib.BackgroundSample | None
    dropped: list[tuple[Region, str]]
    lost_windows: set[str]
    merged: list[Region]
    peaks_at: accounting.PeaksAt
    spans: dict[str, tuple[regions_lib.ChromSpan, ...]]
    thresholds: np.ndarray | None = None
    totals: np.ndarray | None = None

    @property
    def background_regions(self) -> list[Region]:
        return list(self.background.regions) if self.background else []

    @property
    def regions(self) -> list[Region]:
        """Every window the pipeline reads: peak windows, then background ones."""
        return self.windows + self.background_regions


def plan_windows(
    config: PlanConfig,
    task_list: Sequence[tasks_lib.Task],
    fasta: str,
    blacklist: str | None = None,
) -> WindowPlan:
    """Reads and checks the inputs and chooses the windows (see the module docstring).

    Args:
      config: how to choose.
      task_list: the tasks; their files may be remote (copied to a local folder, removed
        after).
      fasta: the genome FASTA (a remote one with a remote .fai is not copied, unless
        background windows need its sequence).
      blacklist: optional BED of regions to leave out.

    Raises:
      RecordsInputError: bad input files, a split item that can give no record, or an
        asked-for split left with no window (unless config.allow_empty_splits).
    """
    local_dir = files_lib.make_local_dir()
    try:
        local, fasta_sizes = _local_inputs(
            task_list, fasta, blacklist, local_dir, need_sequence=bool(config.background_ratio)
        )
        names = {v: k for k, v in local.items()}
        spans = {'valid': config.valid, 'test': config.test}
        peaks = []
        for i, task in enumerate(task_list):
            peaks += regions_lib.read_peaks(
                local[task.peaks],
                sequence_length=config.sequence_length,
                valid=spans['valid'],
                test=spans['test'],
                task=i,
                name=task.peaks,
            )
        windows, duplicates, merged = merge_tasks(peaks)
        sizes = regions_lib.check_inputs(
            windows,
            peaks_path=[t.peaks for t in task_list],
            fasta_path=local.get(fasta, fasta),
            bigwig_paths=[local[p] for t in task_list for p in t.files()[1:]],
            names=names,
            fasta_sizes=fasta_sizes,
        )
        blacklist_intervals = (
            read_blacklist(local[blacklist], name=blacklist) if blacklist else None
        )
        accounting.stop_or_warn(
            regions_lib.split_problems(
                {f'{s}_chroms': v for s, v in spans.items()},
                peaks,
                sizes,
                fasta,
                defaults=config.default_flags,
            ),
            config.allow_empty_splits,
        )
        peaks_at = accounting.PeaksAt(merged)
        counts = [tuple(local[p] for p in t.pair('counts')) for t in task_list]
        windows, lost, thresholds, totals = _drop_windows(
            config, windows, sizes, blacklist_intervals, peaks_at, counts, names
        )
        background = None
        if config.background_ratio:
            background = _sample_background(
                config, windows, peaks, sizes, local[fasta], fasta, blacklist_intervals, spans
            )
    finally:
        shutil.rmtree(local_dir, ignore_errors=True)
    dropped = [(r, DUPLICATE) for r in duplicates]
    dropped += [(peak, reason) for window, reason in lost for peak in peaks_at(window)]
    plan = WindowPlan(
        peaks,
        windows,
        background,
        dropped,
        {w.region_id for w, _ in lost},
        merged,
        peaks_at,
        spans,
        thresholds,
        totals,
    )
    accounting.stop_or_warn(
        accounting.empty_splits(
            spans,
            regions_lib.split_counts(plan.regions),
            peaks,
            accounting.reasons_by_split((p, r) for p, r in dropped if r != DUPLICATE),
        ),
        config.allow_empty_splits,
    )
    return plan


def _local_inputs(
    task_list: Sequence[tasks_lib.Task],
    fasta: str,
    blacklist: str | None,
    local_dir: str,
    *,
    need_sequence: bool,
) -> tuple[dict[str, str], dict[str, int] | None]:
    """({input: local path}, FASTA sizes from a remote .fai or None): what the driver reads."""
    inputs = [p for t in task_list for p in t.files()] + ([blacklist] if blacklist else [])
    if files_lib.is_remote(fasta) and files_lib.exists(fasta + '.fai') and not need_sequence:
        # The index gives the sizes: no need to copy a whole genome to the driver.
        fai = files_lib.localize_inputs([fasta + '.fai'], local_dir)[fasta + '.fai']
        return (
            files_lib.localize_inputs(inputs, local_dir),
            regions_lib.fai_chrom_sizes(fai, name=fasta + '.fai'),
        )
    return files_lib.localize_inputs([fasta] + inputs, local_dir), None


def _drop_windows(
    config: PlanConfig,
    windows: list[Region],
    sizes: Mapping[str, int],
    blacklist: 'Blacklist | None',
    peaks_at: accounting.PeaksAt,
    counts: Sequence[tuple[str, str]],
    names: Mapping[str, str],
):
    """(kept, [(window, reason)], thresholds, totals of kept): the window rules in turn."""
    windows, out_of_bounds = drop_out_of_bounds(windows, sizes, config.max_jitter)
    lost = [(w, OUT_OF_BOUNDS) for w in out_of_bounds]
    if blacklist is not None:
        windows, blacklisted = drop_blacklisted(windows, blacklist, config.max_jitter)
        lost += [(w, BLACKLISTED) for w in blacklisted]
    thresholds, totals = None, None
    if 0.0 < config.outlier_quantile < 1.0:
        windows, outliers, thresholds, totals = _drop_outliers(
            config, windows, peaks_at, counts, names
        )
        lost += [(w, OUTLIER_COUNTS) for w in outliers]
    return windows, lost, thresholds, totals


def _drop_outliers(
    config: PlanConfig,
    windows: Sequence[Region],
    peaks_at: accounting.PeaksAt,
    counts: Sequence[tuple[str, str]],
    names: Mapping[str, str],
):
    """(kept, outliers, thresholds (tasks,), totals of kept (len(kept), tasks)): the
    --outlier_quantile rule on the windows.

    The driver computes the totals itself (exact sums of the bigWigs over each counts window,
    `window_totals`) rather than the pipeline: the threshold needs every peak's total before
    any record is written, and the pipeline would have to read every window twice or rewrite
    its shards; the driver reads only the counts bigWigs, once, over nearby windows together,
    and no step ever holds records.
    """
    totals = window_totals(windows, counts, trim=config.trim, names=names)
    has_peak = np.zeros((len(windows), len(counts)), bool)
    for i, r in enumerate(windows):
        for peak in peaks_at(r):
            has_peak[i, peak.task] = True
    kept, outliers, thresholds = drop_outliers(windows, totals, has_peak, config.outlier_quantile)
    dropped = {id(r) for r in outliers}
    totals = totals[[i for i, r in enumerate(windows) if id(r) not in dropped]]
    _LOGGER.info(
        'outlier rule (quantile %g x %g): thresholds %s; %d window(s) dropped',
        config.outlier_quantile,
        OUTLIER_FACTOR,
        ', '.join(f'{t:.1f}' for t in thresholds),
        len(outliers),
    )
    return kept, outliers, thresholds, totals.reshape(len(kept), len(counts))


def _sample_background(
    config: PlanConfig,
    windows: Sequence[Region],
    peaks: Sequence[Region],
    sizes: Mapping[str, int],
    fasta_path: str,
    fasta_name: str,
    blacklist,
    spans: Mapping[str, Sequence[regions_lib.ChromSpan]],
) -> background_lib.BackgroundSample:
    """GC-matched background windows for the kept peak windows (background.py)."""
    import pyfaidx

    try:
        fasta = pyfaidx.Fasta(fasta_path, as_raw=True)
    except Exception as e:  # pyfaidx raises several types for bad inputs.
        message = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise RecordsInputError(f'{fasta_name}: cannot open FASTA: {message}') from None
    with fasta:
        sample = background_lib.sample_background(
            fasta,
            windows,
            peaks,
            sizes,
            ratio=config.background_ratio,
            seed=config.background_seed,
            sequence_length=config.sequence_length,
            max_jitter=config.max_jitter,
            max_n_fraction=config.max_n_fraction,
            blacklist=blacklist,
            valid=spans['valid'],
            test=spans['test'],
        )
    _LOGGER.info(
        'background: %d window(s) of %d asked for, from %d candidates away from '
        'peaks; GC KS statistic vs peaks %.4f',
        len(sample.regions),
        sample.requested,
        sample.candidates,
        sample.ks,
    )
    if len(sample.regions) < sample.requested:
        _LOGGER.warning(
            'background: only %d candidate windows away from peaks, blacklist and '
            'N-rich sequence; %d asked for (--background_ratio %g): using all',
            sample.candidates,
            sample.requested,
            config.background_ratio,
        )
    return sample


# --- The window rules ---------------------------------------------------------------------------


def drop_duplicates(regions: Iterable[Region]) -> tuple[list[Region], list[Region]]:
    """Splits regions into (kept, duplicates): a later region with an earlier one's window is
    a duplicate; the first one is kept."""
    kept, duplicates, merged = merge_tasks(regions)
    return kept + merged, duplicates


def merge_tasks(regions: Iterable[Region]) -> tuple[list[Region], list[Region], list[Region]]:
    """The union of several tasks' regions: (kept, duplicates, merged).

    Every window is kept once, as the first region that gives it. A later region with the same
    window is a duplicate when an earlier region of its own task gave the window (a drop), and
    merged otherwise: another task's peak at the same place, whose counts the kept record holds
    anyway (not a drop).
    """
    first = {}
    tasks_seen = set()
    kept, duplicates, merged = [], [], []
    for r in regions:
        key = r.window
        if (key, r.task) in tasks_seen:
            duplicates.append(r)
        elif key in first:
            merged.append(r)
        else:
            first[key] = r
            kept.append(r)
        tasks_seen.add((key, r.task))
    return kept, duplicates, merged


def drop_out_of_bounds(
    regions: Iterable[Region], sizes: Mapping[str, int], max_jitter: int
) -> tuple[list[Region], list[Region]]:
    """(kept, dropped): dropped stored windows (region +- max_jitter) leave their chromosome."""
    kept, dropped = [], []
    for r in regions:
        size = sizes.get(r.chrom)
        inside = size is not None and r.start - max_jitter >= 0 and r.end + max_jitter <= size
        (kept if inside else dropped).append(r)
    return kept, dropped


class Blacklist:
    """Merged, sorted intervals per chromosome with a fast overlap test."""

    def __init__(self, intervals: Iterable[tuple[str, int, int]]):
        by_chrom: dict[str, list[tuple[int, int]]] = {}
        for chrom, start, end in intervals:
            by_chrom.setdefault(chrom, []).append((start, end))
        self._starts, self._ends = {}, {}
        for chrom, spans in by_chrom.items():
            merged: list[list[int]] = []
            for start, end in sorted(spans):
                if merged and start <= merged[-1][1]:
                    merged[-1][1] = max(merged[-1][1], end)
                else:
                    merged.append([start, end])
            self._starts[chrom] = [s for s, _ in merged]
            self._ends[chrom] = [e for _, e in merged]

    def __len__(self) -> int:
        return sum(len(s) for s in self._starts.values())

    def intervals(self, chrom: str) -> tuple[list[int], list[int]]:
        """(starts, ends) of the merged, sorted, disjoint intervals on `chrom`."""
        return list(self._starts.get(chrom, ())), list(self._ends.get(chrom, ()))

    def overlaps(self, chrom: str, start: int, end: int) -> bool:
        """Whether [start, end) shares at least one base with an interval."""
        starts = self._starts.get(chrom)
        if not starts:
            return False
        i = bisect.bisect_left(starts, end) - 1  # Last interval starting before `end`.
        return i >= 0 and self._ends[chrom][i] > start


def read_blacklist(path: str, name: str | None = None) -> Blacklist:
    """Reads a BED file (3 or more columns; plain or gzip) of regions to leave out.

    Raises:
      RecordsInputError: an unreadable file or a malformed line, naming the file and line.
    """
    name = name or path
    lines = regions_lib.data_lines(path, name, kind='blacklist')
    return Blacklist(
        [regions_lib.bed_interval(name, line_no, columns) for line_no, columns in lines]
    )


def drop_blacklisted(
    regions: Iterable[Region], blacklist: Blacklist, max_jitter: int
) -> tuple[list[Region], list[Region]]:
    """(kept, dropped): dropped stored windows (region +- max_jitter) overlap the blacklist."""
    kept, dropped = [], []
    for r in regions:
        hit = blacklist.overlaps(r.chrom, r.start - max_jitter, r.end + max_jitter)
        (dropped if hit else kept).append(r)
    return kept, dropped


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
