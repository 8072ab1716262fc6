"""Accounting of the records job: every peak read is written, merged or rejected, with a reason.

The pipeline reports what it wrote and rejected (`summarise`, the job summary file); the driver
adds what it set aside before the pipeline (planning.py) and checks that the books balance:
peaks read = peak records written + peaks merged into another task's window + peaks rejected
(`tally`). Rejected peaks are listed in rejected.tsv (`rejected_text`); the job ends with one
summary line (`summary_line`). A split the user asked for that ends without records is a
problem line (`empty_splits`): the job stops on it unless --allow_empty_splits
(`stop_or_warn`). No Beam here.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import math
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from beam_jobs.common.errors import RecordsInputError
from beam_jobs.records.background import BackgroundSample
from beam_jobs.records.plan import WindowPlan
from beam_jobs.records.regions import Region
from beam_jobs.records.splits import ChromSpan
from bpnet_tfx.records import schema

REJECTED_FILENAME = 'rejected.tsv'

_LOGGER = logging.getLogger(__name__)


def summarise(
    shards: Sequence[tuple[str, int]],
    totals: Sequence[tuple[str, np.ndarray | Sequence[Sequence[float]]]],
    rejected: Sequence[tuple[str, str]],
) -> dict[str, Any]:
    """The job summary from the pipeline's collected outputs (transforms.WriteJobSummary).

    Returns:
      {'split_counts': {split: records}, 'median_total_counts': per-task exact median over
       training records (empty without training records), 'rejected': sorted
       [region_id, reason] pairs}.
    """
    split_counts = dict.fromkeys(schema.SPLITS, 0)
    for split, n in shards:
        split_counts[split] += n
    train = [
        np.asarray(t, np.float64) for split, t in totals if split == schema.SPLITS[0] and len(t)
    ]
    median = np.median(np.concatenate(train), axis=0).tolist() if train else []
    return {
        'split_counts': split_counts,
        'median_total_counts': median,
        'rejected': sorted([list(r) for r in rejected]),
    }


@dataclasses.dataclass(frozen=True)
class Tally:
    """The books of one run.

    Attributes:
      peaks_read: peaks read, all tasks.
      split_counts: records written per split (peaks and background).
      background_counts: background records written per split.
      background_rejected: {reason: background windows the pipeline rejected}.
      rejected: (region_id, task name, peaks file line, reason) per rejected peak, in task,
        line order.
      merged: peaks merged into another task's written window.
      median_total_counts: per task, the median total counts of the training peak records.
      rejected_by_split: {split: {reason: peaks}} of the rejected peaks.
    """

    peaks_read: int
    split_counts: dict[str, int]
    background_counts: dict[str, int]
    background_rejected: dict[str, int]
    rejected: list[tuple[str, str, int, str]]
    merged: int
    median_total_counts: list[float]
    rejected_by_split: dict[str, dict[str, int]]

    @property
    def written(self) -> int:
        return sum(self.split_counts.values())

    @property
    def background_written(self) -> int:
        return sum(self.background_counts.values())

    @property
    def peaks_written(self) -> int:
        return self.written - self.background_written

    @property
    def drops(self) -> dict[str, int]:
        """{reason: peaks rejected}, sorted by reason."""
        return dict(sorted(collections.Counter(row[3] for row in self.rejected).items()))


def tally(plan: WindowPlan, summary: Mapping[str, Any], task_names: Sequence[str]) -> Tally:
    """Balances the books: the driver's plan plus the pipeline's job summary.

    Raises:
      AssertionError: peaks read != written + merged + rejected (a bug).
    """
    background_split = {r.region_id: r.split for r in plan.background_regions}
    background_counts = dict.fromkeys(schema.SPLITS, 0)
    for r in plan.background_regions:
        background_counts[r.split] += 1
    background_lost = collections.Counter()
    peak_rejected = []
    for region_id, reason in summary['rejected']:
        if region_id in background_split:  # Not a peak: counted apart.
            background_counts[background_split[region_id]] -= 1
            background_lost[reason] += 1
        else:
            peak_rejected.append((region_id, reason))
    rows, by_split = _rejected_rows(plan, peak_rejected, task_names)
    lost = plan.lost_windows | {region_id for region_id, _ in peak_rejected}
    merged = sum(1 for r in plan.merged if r.region_id not in lost)  # In a record.
    median = summary['median_total_counts']
    if plan.totals is not None:  # The driver's exact totals, less the pipeline's rejections.
        median = median_totals(plan.windows, plan.totals, {i for i, _ in peak_rejected})
    books = Tally(
        len(plan.peaks),
        {s: summary['split_counts'][s] for s in schema.SPLITS},
        background_counts,
        dict(sorted(background_lost.items())),
        rows,
        merged,
        median,
        by_split,
    )
    if books.peaks_read != books.peaks_written + books.merged + len(books.rejected):
        raise AssertionError(
            f'bug: {books.peaks_read} peaks read but {books.peaks_written} written + '
            f'{books.merged} merged + {len(books.rejected)} rejected'
        )
    return books


def median_totals(
    windows: Sequence[Region], totals: np.ndarray, rejected_ids: set[str]
) -> list[float]:
    """Per-task median of the totals of the training peak windows the pipeline wrote: what
    the workers' totals would give, from the driver's own exact totals (`window_totals`)."""
    rows = [
        i
        for i, r in enumerate(windows)
        if r.split == schema.SPLITS[0] and not (rejected_ids and r.region_id in rejected_ids)
    ]
    return np.median(totals[rows], axis=0).tolist() if rows else []


def _rejected_rows(
    plan: WindowPlan, pipeline_rejected: Sequence[tuple[str, str]], task_names: Sequence[str]
) -> tuple[list[tuple[str, str, int, str]], dict[str, dict[str, int]]]:
    """((region_id, task, line, reason) rows in task, line order; {split: {reason: peaks}})
    of every rejected peak. A rejected window rejects every peak that gave it (one per task
    at most)."""
    ids = {region_id for region_id, _ in pipeline_rejected}
    by_id = {r.region_id: r for r in plan.windows if ids and r.region_id in ids}
    peaks = list(plan.dropped)
    for region_id, reason in pipeline_rejected:
        peaks += [(r, reason) for r in plan.peaks_at(by_id[region_id])]
    by_split = reasons_by_split(peaks)
    peaks.sort(key=lambda item: (item[0].task, item[0].line))
    rows = [(r.region_id, task_names[r.task], r.line, reason) for r, reason in peaks]
    return rows, by_split


def reasons_by_split(rejected: Iterable[tuple[Region, str]]) -> dict[str, dict[str, int]]:
    """{split: {reason: peaks}} of (peak, reason) pairs, sorted."""
    counts = collections.defaultdict(collections.Counter)
    for r, reason in rejected:
        counts[r.split][reason] += 1
    return {s: dict(sorted(c.items())) for s, c in sorted(counts.items())}


def empty_splits(
    spans: Mapping[str, Sequence[ChromSpan]],
    records: Mapping[str, int],
    peaks: Sequence[Region],
    reasons: Mapping[str, Mapping[str, int]],
) -> list[str]:
    """One line per split the user asked for (items given) that has peaks but no records.

    Args:
      spans: {split: its --valid_chroms / --test_chroms items}.
      records: {split: records (or windows still to write)}.
      peaks: every peak read.
      reasons: {split: {reason: peaks rejected}} (`reasons_by_split`).
    """
    in_split = collections.Counter(r.split for r in peaks)
    problems = []
    for split, items in spans.items():
        if items and not records.get(split) and in_split[split]:
            why = ', '.join(f'{k} {v}' for k, v in sorted(reasons.get(split, {}).items()))
            problems.append(
                f'the {split} split has no records: the {in_split[split]} peak(s) with their '
                f'centre in --{split}_chroms={",".join(map(str, items))} were all rejected'
                + (f' ({why})' if why else '')
                + f'; pass other --{split}_chroms, or '
                '--allow_empty_splits'
            )
    return problems


def stop_or_warn(problems: Sequence[str], allow: bool) -> None:
    """Raises RecordsInputError with the first problem, or logs each as a warning if `allow`."""
    if problems and not allow:
        raise RecordsInputError(problems[0])
    for problem in problems:  # Less the advice ('; pass ...'), followed already.
        _LOGGER.warning('%s (--allow_empty_splits: going on)', problem.split('; pass ')[0])


def rejected_text(rows: Sequence[tuple[str, str, int, str]]) -> str:
    """rejected.tsv: a header and one (region_id, task, line, reason) row per rejected peak."""
    lines = ['region_id\ttask\tline\treason']
    lines += [f'{region_id}\t{task}\t{line}\t{reason}' for region_id, task, line, reason in rows]
    return '\n'.join(lines) + '\n'


def summary_line(
    books: Tally, *, background: BackgroundSample | None, seconds: float, output_dir: str
) -> str:
    """The job's last line: peaks read, records per split, merged, rejected by reason."""
    drop_text = ', '.join(f'{k} {v}' for k, v in books.drops.items())
    background_text = ''
    if background is not None:
        ks = 'n/a' if math.isnan(background.ks) else f'{background.ks:.3f}'
        background_text = (
            f'; {books.background_written} background of '
            f'{background.requested} asked for, GC KS {ks}'
        )
    return (
        f'make_records: {books.peaks_read} peaks read, {books.written} records written ('
        + ', '.join(f'{s} {n}' for s, n in books.split_counts.items())
        + background_text
        + (f'), {books.merged} merged into another task\'s window' if books.merged else ')')
        + f', {len(books.rejected)} rejected'
        + (f' ({drop_text})' if drop_text else '')
        + f', {seconds:.1f} s -> {output_dir}'
    )
