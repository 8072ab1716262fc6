"""What the driver plans before the records pipeline runs: the plan's settings (`PlanConfig`),
what it chose (`WindowPlan`) and which peaks gave each window (`PeaksAt`). Planning fills them
(planning.py); accounting reads them (accounting.py)."""

from __future__ import annotations

import collections
import dataclasses
from typing import Collection, Sequence

import numpy as np

from beam_jobs.records import background as background_lib
from beam_jobs.records import splits
from beam_jobs.records.regions import Region


class PeaksAt:
    """The peaks that gave each window: the window's kept region (the first peak there) plus
    the other tasks' peaks merged into it. Only the merged ones are stored, so the driver
    holds nothing per window beyond the regions themselves."""

    def __init__(self, merged: Sequence[Region]):
        self._merged = collections.defaultdict(list)
        for r in merged:
            self._merged[r.window].append(r)

    def __call__(self, first: Region) -> list[Region]:
        return [first, *self._merged.get(first.window, ())]


@dataclasses.dataclass(frozen=True)
class PlanConfig:
    """How to choose windows (make_records turns its flags into one).

    Attributes:
      sequence_length: input window length L in bp.
      output_length: counts window length in bp, centred in the input window.
      max_jitter: margin J stored on each side of the window.
      max_n_fraction: the extraction step's N rule, applied to background candidates.
      valid, test: the --valid_chroms / --test_chroms items (splits.parse_chrom_spans).
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
    valid: tuple[splits.ChromSpan, ...] = ()
    test: tuple[splits.ChromSpan, ...] = ()
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
    peaks_at: PeaksAt
    spans: dict[str, tuple[splits.ChromSpan, ...]]
    thresholds: np.ndarray | None = None
    totals: np.ndarray | None = None

    @property
    def background_regions(self) -> list[Region]:
        return list(self.background.regions) if self.background else []

    @property
    def regions(self) -> list[Region]:
        """Every window the pipeline reads: peak windows, then background ones."""
        return self.windows + self.background_regions
