"""Peaks (BED3, BED6, narrowPeak; plain or gzip) to centred, split-assigned windows.

The records job's driver reads the peaks file here, before any pipeline runs: each data line
gives one `Region`, a window of `sequence_length` bp centred on the peak summit (narrowPeak
column 10) or on the interval midpoint, assigned to the valid or test split when a
`--valid_chroms` / `--test_chroms` item (a chromosome, or a chromosome interval such as
'chrIV:0-100000') contains its centre, and to train otherwise. It also checks the inputs against
each other (chromosome names and lengths in the FASTA index and the bigWig headers) so that a
wrong file fails in seconds with a one-line `RecordsInputError` naming the file and line, rather
than as a worker traceback. No Beam here.
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import re
from typing import Iterable, Iterator, Sequence

from bpnet_tfx import schema

TRAIN, VALID, TEST = schema.SPLITS
DUPLICATE = 'duplicate'  # The drop reason for a second peak giving the same window.

_HEADER_PREFIXES = ('track', 'browser', '#')
_NARROWPEAK_COLUMNS = 10  # BED6+4; column 10 is the summit offset from the start.
_SPAN_RE = re.compile(r'^(?P<chrom>.+):(?P<start>\d+)-(?P<end>\d+)$')


class RecordsInputError(ValueError):
    """Input files or flags the records job cannot use; the message is one line."""


@dataclasses.dataclass(frozen=True)
class Region:
    """One window to extract: [start, end) on `chrom`, 0-based, half-open, `sequence_length` long.

    Attributes:
      chrom: chromosome name as in the peaks file.
      start: 0-based start of the centred window (may be negative for a peak near the start of a
        chromosome; the extraction step rejects such windows as out of bounds).
      end: end of the centred window, exclusive.
      split: 'train', 'valid' or 'test'.
      line: 1-based line number in the peaks file, for error messages and rejected.tsv.
    """

    chrom: str
    start: int
    end: int
    split: str = TRAIN
    line: int = 0

    @property
    def region_id(self) -> str:
        return f'{self.chrom}:{self.start}-{self.end}'

    @property
    def centre(self) -> int:
        return self.start + (self.end - self.start) // 2


@dataclasses.dataclass(frozen=True)
class ChromSpan:
    """A whole chromosome (`end` None) or the interval [start, end) of one."""

    chrom: str
    start: int = 0
    end: int | None = None

    def contains(self, chrom: str, position: int) -> bool:
        return (chrom == self.chrom and position >= self.start
                and (self.end is None or position < self.end))

    def overlaps(self, other: 'ChromSpan') -> bool:
        if self.chrom != other.chrom:
            return False
        inf = float('inf')
        return (max(self.start, other.start) <
                min(inf if self.end is None else self.end, inf if other.end is None else other.end))

    def __str__(self) -> str:
        return self.chrom if self.end is None else f'{self.chrom}:{self.start}-{self.end}'


def parse_chrom_spans(items: str | Sequence[str], *, flag: str) -> tuple[ChromSpan, ...]:
    """Parses a `--valid_chroms`-style list: chromosome names or 'chrom:start-end' intervals.

    Args:
      items: a comma-separated string or a sequence of items; empty items are ignored.
      flag: the flag's name, for error messages.

    Returns:
      The spans, in the order given.

    Raises:
      RecordsInputError: an interval with start >= end.
    """
    if isinstance(items, str):
        items = items.split(',')
    spans = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        m = _SPAN_RE.match(item)
        if m is None:  # A plain name; names may contain ':' (e.g. HLA contigs).
            spans.append(ChromSpan(item))
            continue
        start, end = int(m.group('start')), int(m.group('end'))
        if start >= end:
            raise RecordsInputError(f'--{flag}: interval {item!r} is empty (start >= end)')
        spans.append(ChromSpan(m.group('chrom'), start, end))
    return tuple(spans)


def check_disjoint(valid: Sequence[ChromSpan], test: Sequence[ChromSpan]) -> None:
    """Raises RecordsInputError when a valid item and a test item overlap."""
    for v in valid:
        for t in test:
            if v.overlaps(t):
                raise RecordsInputError(
                    f'--valid_chroms item {str(v)!r} overlaps --test_chroms item {str(t)!r}; '
                    'a region can only be in one split')


def assign_split(chrom: str, position: int, valid: Sequence[ChromSpan],
                 test: Sequence[ChromSpan]) -> str:
    """Returns the split whose spans contain `position` on `chrom`; 'train' when none does."""
    if any(s.contains(chrom, position) for s in valid):
        return VALID
    if any(s.contains(chrom, position) for s in test):
        return TEST
    return TRAIN


def _open_text(path: str):
    with open(path, 'rb') as f:
        magic = f.read(2)
    if magic == b'\x1f\x8b':
        return gzip.open(path, 'rt')
    return open(path, 'rt')


def _data_lines(path: str) -> Iterator[tuple[int, list[str]]]:
    """Yields (line number, columns) for each data line; header and blank lines skipped."""
    try:
        with _open_text(path) as f:
            for line_no, line in enumerate(f, start=1):
                line = line.rstrip('\r\n')
                if not line.strip() or line.startswith(_HEADER_PREFIXES):
                    continue
                yield line_no, (line.split('\t') if '\t' in line else line.split())
    except UnicodeDecodeError:
        raise RecordsInputError(f'{path}: not a text BED/narrowPeak file') from None
    except (OSError, EOFError) as e:  # Missing, unreadable, or a broken gzip stream.
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise RecordsInputError(f'{path}: cannot read peaks file: {reason}') from None


def _int_column(path: str, line_no: int, name: str, value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise RecordsInputError(
            f'{path}:{line_no}: {name} {value!r} is not an integer') from None
    return number


def peak_centre(path: str, line_no: int, columns: Sequence[str]) -> tuple[str, int]:
    """Returns (chrom, centre) of one peaks line.

    The centre is start + summit offset (column 10) for narrowPeak lines (exactly 10 columns)
    whose offset is not -1, and the midpoint (start + end) // 2 otherwise, so 1-bp summit
    intervals centre on themselves.

    Raises:
      RecordsInputError: fewer than 3 columns, non-integer or negative coordinates,
        start > end, or a summit offset outside the peak.
    """
    if len(columns) < 3:
        raise RecordsInputError(
            f'{path}:{line_no}: malformed line: {len(columns)} column(s), need at least 3 '
            '(chrom, start, end)')
    chrom = columns[0].strip()
    if not chrom:
        raise RecordsInputError(f'{path}:{line_no}: malformed line: empty chromosome name')
    start = _int_column(path, line_no, 'start', columns[1])
    end = _int_column(path, line_no, 'end', columns[2])
    if start < 0 or end < 0:
        raise RecordsInputError(f'{path}:{line_no}: negative coordinate ({start}, {end})')
    if start > end:
        raise RecordsInputError(f'{path}:{line_no}: start {start} > end {end}')
    if len(columns) == _NARROWPEAK_COLUMNS:
        summit = _int_column(path, line_no, 'summit offset (column 10)', columns[9])
        if summit != -1:
            if summit < 0 or summit > end - start:
                raise RecordsInputError(
                    f'{path}:{line_no}: summit offset {summit} is outside the peak '
                    f'(length {end - start})')
            return chrom, start + summit
    return chrom, (start + end) // 2


def read_peaks(path: str, *, sequence_length: int, valid: Sequence[ChromSpan] = (),
               test: Sequence[ChromSpan] = ()) -> list[Region]:
    """Reads a peaks file into one centred window per data line, duplicates included.

    Args:
      path: BED3, BED6 (or any BED with other than 10 columns) or narrowPeak; plain or gzip.
      sequence_length: window length L; the window is [c - L//2, c - L//2 + L) for centre c.
      valid: spans whose regions go to the valid split.
      test: spans whose regions go to the test split.

    Returns:
      The regions in file order.

    Raises:
      RecordsInputError: missing or unreadable file, malformed line, bad coordinates, or no
        data lines at all.
    """
    if sequence_length <= 0:
        raise RecordsInputError(f'sequence_length must be positive, got {sequence_length}')
    regions = []
    for line_no, columns in _data_lines(path):
        chrom, centre = peak_centre(path, line_no, columns)
        start = centre - sequence_length // 2
        regions.append(Region(chrom, start, start + sequence_length,
                              assign_split(chrom, centre, valid, test), line_no))
    if not regions:
        raise RecordsInputError(f'{path}: empty peaks file (no data lines)')
    return regions


def drop_duplicates(regions: Iterable[Region]) -> tuple[list[Region], list[Region]]:
    """Splits regions into (kept, duplicates): a later region with an earlier one's window is
    a duplicate; the first one is kept."""
    seen = set()
    kept, duplicates = [], []
    for r in regions:
        key = (r.chrom, r.start, r.end)
        (duplicates if key in seen else kept).append(r)
        seen.add(key)
    return kept, duplicates


def fasta_chrom_sizes(path: str) -> dict[str, int]:
    """Returns {chromosome: length} from a FASTA's index (pyfaidx builds a missing .fai).

    Raises:
      RecordsInputError: the FASTA is missing or cannot be indexed.
    """
    import pyfaidx  # Local: only the driver and the extraction step need it.
    if not os.path.isfile(path):
        raise RecordsInputError(f'{path}: FASTA file not found')
    try:
        with pyfaidx.Fasta(path, as_raw=True) as fasta:
            return {name: len(record) for name, record in fasta.records.items()}
    except Exception as e:  # pyfaidx raises several types for bad or read-only inputs.
        message = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise RecordsInputError(f'{path}: cannot open FASTA: {message}') from None


def bigwig_header(path: str) -> tuple[dict[str, int], float]:
    """Returns ({chromosome: length}, minimum value) from a bigWig's header.

    Raises:
      RecordsInputError: the file is missing or not a bigWig.
    """
    import pyBigWig
    if not os.path.isfile(path):
        raise RecordsInputError(f'{path}: bigWig file not found')
    try:
        bw = pyBigWig.open(path)
    except RuntimeError:
        bw = None
    if bw is None or not bw.isBigWig():
        raise RecordsInputError(f'{path}: not a readable bigWig file')
    try:
        return dict(bw.chroms()), float(bw.header().get('minVal', 0))
    finally:
        bw.close()


def _prefix_hint(chrom: str, names: Iterable[str]) -> str:
    names = set(names)
    other = chrom[3:] if chrom.startswith('chr') else 'chr' + chrom
    if other in names:
        return (f" (it has {other!r}: the files name chromosomes differently, '1' vs 'chr1'; "
                'rename one side)')
    return ''


def check_inputs(regions: Sequence[Region], *, peaks_path: str, fasta_path: str,
                 bigwig_paths: Sequence[str]) -> dict[str, int]:
    """Checks peaks, FASTA and bigWigs against each other before any window is read.

    Args:
      regions: regions read from `peaks_path`.
      peaks_path: the peaks file, for messages.
      fasta_path: the genome FASTA.
      bigwig_paths: every bigWig the job reads (counts and expected tracks).

    Returns:
      {chromosome: length} of the FASTA.

    Raises:
      RecordsInputError: a peak on a chromosome missing from the FASTA or a bigWig, a bigWig
        chromosome whose length differs from the FASTA's, or a bigWig with negative values.
    """
    sizes = fasta_chrom_sizes(fasta_path)
    headers = {}
    for path in bigwig_paths:
        chroms, min_value = bigwig_header(path)
        if min_value < 0:
            raise RecordsInputError(
                f'{path}: holds negative values (min {min_value:g}); counts must be >= 0')
        for chrom, length in chroms.items():
            if chrom in sizes and sizes[chrom] != length:
                raise RecordsInputError(
                    f'{path}: {chrom} is {length} bp but {sizes[chrom]} bp in {fasta_path}; '
                    'are they from the same assembly?')
        headers[path] = chroms
    checked = set()
    for r in regions:
        if r.chrom in checked:
            continue
        if r.chrom not in sizes:
            raise RecordsInputError(
                f'{peaks_path}:{r.line}: chromosome {r.chrom!r} is not in {fasta_path}'
                + _prefix_hint(r.chrom, sizes))
        for path, chroms in headers.items():
            if r.chrom not in chroms:
                raise RecordsInputError(
                    f'{peaks_path}:{r.line}: chromosome {r.chrom!r} is not in {path}'
                    + _prefix_hint(r.chrom, chroms))
        checked.add(r.chrom)
    return sizes


def split_counts(regions: Iterable[Region]) -> dict[str, int]:
    """Returns {split: number of regions} over all three splits."""
    counts = dict.fromkeys(schema.SPLITS, 0)
    for r in regions:
        counts[r.split] += 1
    return counts


def unmatched_spans(regions: Sequence[Region], spans: Sequence[ChromSpan]) -> list[ChromSpan]:
    """Returns the spans that contain no region's centre (likely a typo in a split flag)."""
    return [s for s in spans if not any(s.contains(r.chrom, r.centre) for r in regions)]

