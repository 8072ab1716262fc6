"""The window rules the records job's driver applies to peak windows, one function each.

`merge_tasks` keeps every window once (a task's second peak at a window is a duplicate, another
task's is merged), `drop_out_of_bounds` drops stored windows (jitter margin included) that leave
their chromosome, and `drop_blacklisted` those that overlap a `Blacklist` (`read_blacklist`
reads its BED). Each returns what it keeps and what it drops, in input order. No Beam here.
"""

from __future__ import annotations

import bisect
from typing import Iterable, Mapping

from beam_jobs.common.errors import records_input_errors
from beam_jobs.records.regions import Region
from bpnet_tfx.genome import bed


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
    with records_input_errors():
        lines = bed.data_lines(path, name, kind='blacklist')
        return Blacklist([bed.interval(name, line_no, columns) for line_no, columns in lines])


def drop_blacklisted(
    regions: Iterable[Region], blacklist: Blacklist, max_jitter: int
) -> tuple[list[Region], list[Region]]:
    """(kept, dropped): dropped stored windows (region +- max_jitter) overlap the blacklist."""
    kept, dropped = [], []
    for r in regions:
        hit = blacklist.overlaps(r.chrom, r.start - max_jitter, r.end + max_jitter)
        (dropped if hit else kept).append(r)
    return kept, dropped
