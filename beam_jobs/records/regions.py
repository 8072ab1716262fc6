"""Peaks (BED3, BED6, narrowPeak; plain or gzip) to centred, split-assigned windows.

The records job's driver reads the peaks files here, before any pipeline runs: each data line
gives one `Region`, a window of `sequence_length` bp centred on the peak summit (narrowPeak
column 10) or on the interval midpoint (bpnet_tfx/genome/bed.py reads the lines), in the split
its centre falls in (splits.py). A malformed line is a one-line `RecordsInputError` naming the
file and line. Checking the files
against each other is input_checks.py's, choosing which windows to keep planning.py's;
`group_runs` groups nearby windows for reading (both the driver's totals and the workers'
reads). No Beam here.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Sequence

from beam_jobs.common.errors import RecordsInputError, records_input_errors
from beam_jobs.records.splits import TRAIN, ChromSpan, assign_split
from bpnet_tfx.genome import bed

# Why a peak leaves: decided by the driver (planning.py) or the extraction step (windows.py).
DUPLICATE = 'duplicate'  # A second peak of the same task giving the same window.
OUT_OF_BOUNDS = 'out_of_bounds'  # The stored window (jitter margin included) leaves the chromosome.
BLACKLISTED = 'blacklisted'  # The stored window overlaps a --blacklist interval.
OUTLIER_COUNTS = 'outlier_counts'  # Total counts above the --outlier_quantile rule.
TOO_MANY_N = 'too_many_n'  # More than --max_n_fraction non-ACGT bases (the extraction step).


@dataclasses.dataclass(frozen=True, slots=True)  # Slots: the driver holds one per peak.
class Region:
    """One window to extract: [start, end) on `chrom`, 0-based, half-open, `sequence_length` long.

    Attributes:
      chrom: chromosome name as in the peaks file.
      start: 0-based start of the centred window (may be negative for a peak near the start of a
        chromosome; the extraction step rejects such windows as out of bounds).
      end: end of the centred window, exclusive.
      split: 'train', 'valid' or 'test'.
      line: 1-based line number in the peaks file, for error messages and rejected.tsv.
      task: index of the task whose peaks file holds the line; -1 for a background region.
      background: a GC-matched background region (make_records --background_ratio), not a
        peak; `line` is then its 1-based index among the background regions.
    """

    chrom: str
    start: int
    end: int
    split: str = TRAIN
    line: int = 0
    task: int = 0
    background: bool = False

    @property
    def window(self) -> tuple[str, int, int]:
        return self.chrom, self.start, self.end

    @property
    def region_id(self) -> str:
        return f'{self.chrom}:{self.start}-{self.end}'

    @property
    def centre(self) -> int:
        return self.start + (self.end - self.start) // 2


def read_peaks(
    path: str,
    *,
    sequence_length: int,
    valid: Sequence[ChromSpan] = (),
    test: Sequence[ChromSpan] = (),
    task: int = 0,
    name: str | None = None,
) -> list[Region]:
    """Reads a peaks file into one centred window per data line, duplicates included.

    Args:
      path: BED3, BED6 (or any BED with other than 10 columns) or narrowPeak; plain or gzip.
      sequence_length: window length L; the window is [c - L//2, c - L//2 + L) for centre c.
      valid: spans whose regions go to the valid split.
      test: spans whose regions go to the test split.
      task: the task index stored in each region.
      name: the path to name in messages, when `path` is a local copy of it.

    Returns:
      The regions in file order.

    Raises:
      RecordsInputError: missing or unreadable file, malformed line, bad coordinates, or no
        data lines at all.
    """
    if sequence_length <= 0:
        raise RecordsInputError(f'sequence_length must be positive, got {sequence_length}')
    name = name or path
    regions = []
    with records_input_errors():  # the BED reader's one-line errors, as the job's
        for line_no, columns in bed.data_lines(path, name, kind='peaks'):
            chrom, centre = bed.peak_centre(name, line_no, columns)
            chrom = sys.intern(chrom)  # One string per chromosome, not per peak.
            start = centre - sequence_length // 2
            regions.append(
                Region(
                    chrom,
                    start,
                    start + sequence_length,
                    assign_split(chrom, centre, valid, test),
                    line_no,
                    task,
                )
            )
    if not regions:
        raise RecordsInputError(f'{name}: empty peaks file (no data lines)')
    return regions


def group_runs(
    windows: Sequence[tuple[int, int]],
    *,
    gap: int,
    max_span: int,
    chroms: Sequence[str] | None = None,
) -> list[tuple[int, int]]:
    """Groups windows sorted by start into runs read with one call: [(first, last + 1)].

    A window starts a new run when it starts more than `gap` bp after the furthest end of the
    run so far, when the run would span more than `max_span` bp from its first start to this
    window's end (so memory does not grow with the chromosome), or, given `chroms` (one per
    window), when it is on another chromosome.

    Args:
      windows: (start, end) pairs, sorted by start (within each chromosome).
      gap: the largest gap in bp inside a run.
      max_span: the largest span in bp of a run of more than one window.
      chroms: optional chromosome of each window; windows sorted by (chrom, start).
    """
    runs = []
    first, end = 0, None
    for i, (s, e) in enumerate(windows):
        if end is not None and (
            s - end > gap
            or e - windows[first][0] > max_span
            or (chroms is not None and chroms[i] != chroms[first])
        ):
            runs.append((first, i))
            first, end = i, None
        end = e if end is None else max(end, e)
    if windows:
        runs.append((first, len(windows)))
    return runs
