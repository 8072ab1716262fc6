"""Peaks (BED3, BED6, narrowPeak; plain or gzip) to centred, split-assigned windows.

The records job's driver reads the peaks files here, before any pipeline runs: each data line
gives one `Region`, a window of `sequence_length` bp centred on the peak summit (narrowPeak
column 10) or on the interval midpoint, assigned to the valid or test split when a
`--valid_chroms` / `--test_chroms` item (a chromosome, or a chromosome interval such as
'chrIV:0-100,000') contains its centre, and to train otherwise; an item that can give no region
is a `split_problems` line. It also checks the inputs against each other (chromosome names and
lengths in the FASTA index and the bigWig headers) so that a wrong file fails in seconds with a
one-line `RecordsInputError` naming the file and line, rather than as a worker traceback.
Choosing which windows to keep is planning.py's; `group_runs` groups nearby windows for
reading (both the driver's totals and the workers' reads). No Beam here.
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import re
import sys
from typing import Collection, Iterable, Iterator, Mapping, Sequence

from bpnet_tfx import schema

TRAIN, VALID, TEST = schema.SPLITS
# Why a peak leaves: decided by the driver (planning.py) or the extraction step (windows.py).
DUPLICATE = 'duplicate'  # A second peak of the same task giving the same window.
OUT_OF_BOUNDS = 'out_of_bounds'  # The stored window (jitter margin included) leaves the chromosome.
BLACKLISTED = 'blacklisted'  # The stored window overlaps a --blacklist interval.
OUTLIER_COUNTS = 'outlier_counts'  # Total counts above the --outlier_quantile rule.
TOO_MANY_N = 'too_many_n'  # More than --max_n_fraction non-ACGT bases (the extraction step).

_HEADER_PREFIXES = ('track', 'browser', '#')
_NARROWPEAK_COLUMNS = 10  # BED6+4; column 10 is the summit offset from the start.
_SPAN_RE = re.compile(r'^(?P<chrom>.+):(?P<start>\d[\d,]*)-(?P<end>\d[\d,]*)$')
_GROUPED_RE = re.compile(r'^\d{1,3}(,\d{3})+$')  # 300,000
_IN_NUMBER_RE = re.compile(r':[\d,]*\d$|:[\d,]+-[\d,]*\d$')  # Ends inside an interval.
_GROUP_RE = re.compile(r'^(\d{3}(-|$)|\d+-[\d,]*$)')  # What follows a comma in a number.


class RecordsInputError(ValueError):
    """Input files or flags the records job cannot use; the message is one line."""


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


@dataclasses.dataclass(frozen=True)
class ChromSpan:
    """A whole chromosome (`end` None) or the interval [start, end) of one."""

    chrom: str
    start: int = 0
    end: int | None = None

    def contains(self, chrom: str, position: int) -> bool:
        return (
            chrom == self.chrom
            and position >= self.start
            and (self.end is None or position < self.end)
        )

    def overlaps(self, other: 'ChromSpan') -> bool:
        if self.chrom != other.chrom:
            return False
        inf = float('inf')
        return max(self.start, other.start) < min(
            inf if self.end is None else self.end, inf if other.end is None else other.end
        )

    def __str__(self) -> str:
        return self.chrom if self.end is None else f'{self.chrom}:{self.start}-{self.end}'


def _split_items(text: str) -> list[str]:
    """Splits a comma list, keeping thousands separators inside an interval's numbers.

    A comma belongs to a number when the text before it ends in the digits of an interval
    ('chrIV:0-300' or 'chrIV:100') and the text after it is three digits followed by the end,
    '-' or another comma, or digits then '-' (the rest of a start; its grouping is checked
    later): 'chrIV:0-300,000,chrV' is 'chrIV:0-300,000' and 'chrV'. So '1:0-100,2' is chromosome
    1's interval and chromosome 2, but 'X:0-100,200' is X:0-100200.
    """
    items: list[str] = []
    for piece in text.split(','):
        if items and _IN_NUMBER_RE.search(items[-1]) and _GROUP_RE.match(piece):
            items[-1] += ',' + piece
        else:
            items.append(piece)
    return items


def _parse_span(item: str, flag: str) -> ChromSpan:
    """One item: a chromosome name, or 'chrom:start-end' with optional thousands commas.

    Raises:
      RecordsInputError: an empty interval, badly grouped digits, an interval-like item that
        is not one ('chrIV:0-1e5', 'chrIV:0-300.000'), or whitespace inside a name.
    """
    m = _SPAN_RE.match(item)
    if m is not None:
        start, end = (_coordinate(m.group(g), item, flag) for g in ('start', 'end'))
        if start >= end:
            raise RecordsInputError(f'--{flag}: interval {item!r} is empty (start >= end)')
        return ChromSpan(m.group('chrom'), start, end)
    # A plain name; names may contain ':' (e.g. HLA contigs), so only a last part with a '-'
    # and digits reads as a failed interval.
    tail = item.rsplit(':', 1)[1] if ':' in item else ''
    if (
        any(c.isspace() for c in item)
        or not any(c.isalnum() for c in item)
        or ('-' in tail and any(c.isdigit() for c in tail))
    ):
        raise RecordsInputError(
            f'--{flag}: item {item!r} is neither a chromosome name nor an interval '
            "chrom:start-end (0-based, half-open; digits, commas allowed: 'chrIV:0-100,000')"
        )
    return ChromSpan(item)


def _coordinate(text: str, item: str, flag: str) -> int:
    if ',' in text and not _GROUPED_RE.match(text):
        raise RecordsInputError(
            f'--{flag}: interval {item!r}: {text!r} is not a number (commas must separate '
            'groups of three digits)'
        )
    return int(text.replace(',', ''))


def parse_chrom_spans(items: str | Sequence[str], *, flag: str) -> tuple[ChromSpan, ...]:
    """Parses a `--valid_chroms`-style list: chromosome names or 'chrom:start-end' intervals.

    Args:
      items: a comma-separated string or a sequence of items; empty items are ignored.
        Numbers may hold thousands separators ('chrIV:0-300,000'; see `_split_items`).
      flag: the flag's name, for error messages.

    Returns:
      The spans, in the order given.

    Raises:
      RecordsInputError: an item that is neither a chromosome name nor an interval, or an
        interval with start >= end.
    """
    if isinstance(items, str):
        items = _split_items(items)
    return tuple(_parse_span(item, flag) for item in (i.strip() for i in items) if item)


def check_disjoint(valid: Sequence[ChromSpan], test: Sequence[ChromSpan]) -> None:
    """Raises RecordsInputError when a valid item and a test item overlap."""
    for v in valid:
        for t in test:
            if v.overlaps(t):
                raise RecordsInputError(
                    f'--valid_chroms item {str(v)!r} overlaps --test_chroms item {str(t)!r}; '
                    'a region can only be in one split'
                )


def assign_split(
    chrom: str, position: int, valid: Sequence[ChromSpan], test: Sequence[ChromSpan]
) -> str:
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


def fasta_chrom_sizes(path: str, name: str | None = None) -> dict[str, int]:
    """Returns {chromosome: length} from a FASTA's index (pyfaidx builds a missing .fai).

    Args:
      path: a local FASTA.
      name: the path to name in messages, when `path` is a local copy of it.

    Raises:
      RecordsInputError: the FASTA is missing or cannot be indexed.
    """
    import pyfaidx  # Local: only the driver and the extraction step need it.

    name = name or path
    if not os.path.isfile(path):
        raise RecordsInputError(f'{name}: FASTA file not found')
    try:
        with pyfaidx.Fasta(path, as_raw=True) as fasta:
            return {chrom: len(record) for chrom, record in fasta.records.items()}
    except Exception as e:  # pyfaidx raises several types for bad or read-only inputs.
        message = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise RecordsInputError(f'{name}: cannot open FASTA: {message}') from None


def bigwig_header(path: str, name: str | None = None) -> tuple[dict[str, int], float]:
    """Returns ({chromosome: length}, minimum value) from a bigWig's header.

    Raises:
      RecordsInputError: the file is missing or not a bigWig.
    """
    import pyBigWig

    name = name or path
    if not os.path.isfile(path):
        raise RecordsInputError(f'{name}: bigWig file not found')
    try:
        bw = pyBigWig.open(path)
    except RuntimeError:
        bw = None
    if bw is None or not bw.isBigWig():
        raise RecordsInputError(f'{name}: not a readable bigWig file')
    try:
        return dict(bw.chroms()), float(bw.header().get('minVal', 0))
    finally:
        bw.close()


def _prefix_hint(chrom: str, names: Iterable[str]) -> str:
    names = set(names)
    other = chrom[3:] if chrom.startswith('chr') else 'chr' + chrom
    if other in names:
        return (
            f" (it has {other!r}: the files name chromosomes differently, '1' vs 'chr1'; "
            'rename one side)'
        )
    return ''


def fai_chrom_sizes(path: str, name: str | None = None) -> dict[str, int]:
    """Returns {chromosome: length} from a FASTA index (.fai) file.

    Raises:
      RecordsInputError: a line without an integer length in column 2.
    """
    sizes = {}
    with open(path) as f:
        for line_no, line in enumerate(f, start=1):
            columns = line.rstrip('\n').split('\t')
            if len(columns) < 2 or not columns[1].isdigit():
                raise RecordsInputError(f'{name or path}:{line_no}: not a FASTA index line')
            sizes[columns[0]] = int(columns[1])
    return sizes


def check_inputs(
    regions: Sequence[Region],
    *,
    peaks_path: str | Sequence[str],
    fasta_path: str,
    bigwig_paths: Sequence[str],
    names: Mapping[str, str] | None = None,
    fasta_sizes: Mapping[str, int] | None = None,
) -> dict[str, int]:
    """Checks peaks, FASTA and bigWigs against each other before any window is read.

    Args:
      regions: regions read from the peaks files.
      peaks_path: the peaks file, or one per task (indexed by `Region.task`), for messages.
      fasta_path: the genome FASTA (local).
      bigwig_paths: every bigWig the job reads (counts, control and expected tracks; local).
      names: {local path: path to name in messages} for local copies of remote files.
      fasta_sizes: the FASTA's chromosome sizes when already known (from a remote .fai, so
        that the driver need not copy the whole FASTA); `fasta_path` is then only named.

    Returns:
      {chromosome: length} of the FASTA.

    Raises:
      RecordsInputError: a peak on a chromosome missing from the FASTA or a bigWig, a bigWig
        chromosome whose length differs from the FASTA's, or a bigWig with negative values.
    """
    names = names or {}
    peaks_paths = [peaks_path] if isinstance(peaks_path, str) else list(peaks_path)
    fasta_name = names.get(fasta_path, fasta_path)
    sizes = (
        dict(fasta_sizes) if fasta_sizes is not None else fasta_chrom_sizes(fasta_path, fasta_name)
    )
    headers = {}
    for path in dict.fromkeys(bigwig_paths):
        name = names.get(path, path)
        chroms, min_value = bigwig_header(path, name)
        if min_value < 0:
            raise RecordsInputError(
                f'{name}: holds negative values (min {min_value:g}); counts must be >= 0'
            )
        for chrom, length in chroms.items():
            if chrom in sizes and sizes[chrom] != length:
                raise RecordsInputError(
                    f'{name}: {chrom} is {length} bp but {sizes[chrom]} bp in {fasta_name}; '
                    'are they from the same assembly?'
                )
        headers[name] = chroms
    checked = set()
    for r in regions:
        if r.chrom in checked:
            continue
        where = f'{peaks_paths[r.task]}:{r.line}'
        if r.chrom not in sizes:
            raise RecordsInputError(
                f'{where}: chromosome {r.chrom!r} is not in {fasta_name}'
                + _prefix_hint(r.chrom, sizes)
            )
        for name, chroms in headers.items():
            if r.chrom not in chroms:
                raise RecordsInputError(
                    f'{where}: chromosome {r.chrom!r} is not in {name}'
                    + _prefix_hint(r.chrom, chroms)
                )
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


def split_problems(
    spans: Mapping[str, Sequence[ChromSpan]],
    regions: Sequence[Region],
    sizes: Mapping[str, int],
    fasta_name: str,
    defaults: Collection[str] = (),
) -> list[str]:
    """One line per split item that can give no region: it names no chromosome of the FASTA,
    or it contains no peak centre (a typo in --valid_chroms or --test_chroms, or the default
    --valid_chroms=chr1 on a genome without chr1).

    Args:
      spans: {flag name: its items}, e.g. {'valid_chroms': ..., 'test_chroms': ...}.
      regions: every peak read.
      sizes: {chromosome: length} of the FASTA, in FASTA order.
      fasta_name: the FASTA, for messages.
      defaults: the flags left at their default value (their items say so).
    """
    names = list(sizes)
    shown = ', '.join(names[:5]) + (f', ... ({len(names)} in all)' if len(names) > 5 else '')
    example = f'{names[0]}:0-{sizes[names[0]] // 3:,}' if names else 'chr1:0-1,000,000'
    problems = []
    for flag, items in spans.items():
        unmatched = set(unmatched_spans(regions, items))
        for span in items:
            what = f'--{flag} item {str(span)!r}'
            if flag in defaults:
                what += ' (the default)'
            if span.chrom not in sizes:
                problems.append(
                    f'{what} names no chromosome of {fasta_name}, which has {shown}; pass '
                    f'--{flag} with one of its chromosomes or an interval of one (e.g. '
                    f'{example}), or --allow_empty_splits'
                )
            elif span in unmatched:
                problems.append(
                    f'{what} holds no peak centre (of {len(regions)} peaks read); pass '
                    f'--{flag} with items that hold peaks, or --allow_empty_splits'
                )
    return problems


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
