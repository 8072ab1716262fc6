"""Peaks (BED3, BED6, narrowPeak; plain or gzip) to centred, split-assigned windows.

The records job's driver reads the peaks files here, before any pipeline runs: each data line
gives one `Region`, a window of `sequence_length` bp centred on the peak summit (narrowPeak
column 10) or on the interval midpoint, in the split its centre falls in (splits.py). A
malformed line is a one-line `RecordsInputError` naming the file and line. Checking the files
against each other is input_checks.py's, choosing which windows to keep planning.py's;
`group_runs` groups nearby windows for reading (both the driver's totals and the workers'
reads). No Beam here.
"""

from __future__ import annotations

import dataclasses
import gzip
import sys
from typing import Iterator, Sequence

from beam_jobs.common.errors import RecordsInputError
from beam_jobs.records.splits import TRAIN, ChromSpan, assign_split

# Why a peak leaves: decided by the driver (planning.py) or the extraction step (windows.py).
DUPLICATE = 'duplicate'  # A second peak of the same task giving the same window.
OUT_OF_BOUNDS = 'out_of_bounds'  # The stored window (jitter margin included) leaves the chromosome.
BLACKLISTED = 'blacklisted'  # The stored window overlaps a --blacklist interval.
OUTLIER_COUNTS = 'outlier_counts'  # Total counts above the --outlier_quantile rule.
TOO_MANY_N = 'too_many_n'  # More than --max_n_fraction non-ACGT bases (the extraction step).

_HEADER_PREFIXES = ('track', 'browser', '#')
_NARROWPEAK_COLUMNS = 10  # BED6+4; column 10 is the summit offset from the start.


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


def _open_text(path: str):
    with open(path, 'rb') as f:
        magic = f.read(2)
    if magic == b'\x1f\x8b':
        return gzip.open(path, 'rt')
    return open(path, 'rt')


def data_lines(
    path: str, name: str | None = None, kind: str = 'peaks'
) -> Iterator[tuple[int, list[str]]]:
    """Yields (line number, columns) for each data line; header and blank lines skipped.

    `name` is the path to name in messages (the original of a local copy).
    """
    name = name or path
    try:
        with _open_text(path) as f:
            for line_no, line in enumerate(f, start=1):
                line = line.rstrip('\r\n')
                if not line.strip() or line.startswith(_HEADER_PREFIXES):
                    continue
                yield line_no, (line.split('\t') if '\t' in line else line.split())
    except UnicodeDecodeError:
        raise RecordsInputError(f'{name}: not a text BED/narrowPeak file') from None
    except (OSError, EOFError) as e:  # Missing, unreadable, or a broken gzip stream.
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise RecordsInputError(f'{name}: cannot read {kind} file: {reason}') from None


def _int_column(path: str, line_no: int, name: str, value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise RecordsInputError(f'{path}:{line_no}: {name} {value!r} is not an integer') from None
    return number


def bed_interval(path: str, line_no: int, columns: Sequence[str]) -> tuple[str, int, int]:
    """Returns (chrom, start, end) of one BED line.

    Raises:
      RecordsInputError: fewer than 3 columns, an empty chromosome name, non-integer or
        negative coordinates, or start > end.
    """
    if len(columns) < 3:
        raise RecordsInputError(
            f'{path}:{line_no}: malformed line: {len(columns)} column(s), need at least 3 '
            '(chrom, start, end)'
        )
    chrom = columns[0].strip()
    if not chrom:
        raise RecordsInputError(f'{path}:{line_no}: malformed line: empty chromosome name')
    start = _int_column(path, line_no, 'start', columns[1])
    end = _int_column(path, line_no, 'end', columns[2])
    if start < 0 or end < 0:
        raise RecordsInputError(f'{path}:{line_no}: negative coordinate ({start}, {end})')
    if start > end:
        raise RecordsInputError(f'{path}:{line_no}: start {start} > end {end}')
    return chrom, start, end


def peak_centre(path: str, line_no: int, columns: Sequence[str]) -> tuple[str, int]:
    """Returns (chrom, centre) of one peaks line.

    The centre is start + summit offset (column 10) for narrowPeak lines (exactly 10 columns)
    whose offset is not -1, and the midpoint (start + end) // 2 otherwise, so 1-bp summit
    intervals centre on themselves.

    Raises:
      RecordsInputError: fewer than 3 columns, non-integer or negative coordinates,
        start > end, or a summit offset outside the peak.
    """
    chrom, start, end = bed_interval(path, line_no, columns)
    if len(columns) == _NARROWPEAK_COLUMNS:
        summit = _int_column(path, line_no, 'summit offset (column 10)', columns[9])
        if summit != -1:
            if summit < 0 or summit > end - start:
                raise RecordsInputError(
                    f'{path}:{line_no}: summit offset {summit} is outside the peak '
                    f'(length {end - start})'
                )
            return chrom, start + summit
    return chrom, (start + end) // 2


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
    for line_no, columns in data_lines(path, name):
        chrom, centre = peak_centre(name, line_no, columns)
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
