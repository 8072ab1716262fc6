"""BED files (BED3, BED6, narrowPeak; plain or gzip): the one reader of their lines.

`data_lines` yields each data line's columns (header and blank lines skipped), `interval` checks
its chrom, start and end, `peak_centre` adds the narrowPeak summit. `read_bed` gives the
intervals named by column 4; `bed_windows` the model-length windows centred on them. Coordinates
are 0-based, half-open; a bad file or line is a one-line `GenomeError` naming the file and line.
"""

from __future__ import annotations

import dataclasses
import gzip
from typing import Iterator, Mapping, Sequence

from bpnet_tfx.genome import genome_io, windows
from bpnet_tfx.genome.genome_io import GenomeError

_HEADER_PREFIXES = ('track', 'browser', '#')
_NARROWPEAK_COLUMNS = 10  # BED6+4; column 10 is the summit offset from the start.


def _open_text(path: str):
    with open(path, 'rb') as f:
        magic = f.read(2)
    if magic == b'\x1f\x8b':
        return gzip.open(path, 'rt')
    return open(path, 'rt')


def data_lines(
    path: str, name: str | None = None, kind: str = 'BED'
) -> Iterator[tuple[int, list[str]]]:
    """Yields (line number, columns) for each data line; header and blank lines skipped.

    Columns are tab-separated, or whitespace-separated in a line without tabs. `name` is the
    path to name in messages (the original of a local copy), `kind` what the file is for
    ('BED', 'peaks', 'blacklist').
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
        raise GenomeError(f'{name}: not a text BED/narrowPeak file') from None
    except (OSError, EOFError) as e:  # Missing, unreadable, or a broken gzip stream.
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise GenomeError(f'{name}: cannot read {kind} file: {reason}') from None


def _int_column(path: str, line_no: int, name: str, value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise GenomeError(f'{path}:{line_no}: {name} {value!r} is not an integer') from None
    return number


def interval(path: str, line_no: int, columns: Sequence[str]) -> tuple[str, int, int]:
    """Returns (chrom, start, end) of one BED line.

    Raises:
      GenomeError: fewer than 3 columns, an empty chromosome name, non-integer or
        negative coordinates, or start > end.
    """
    if len(columns) < 3:
        raise GenomeError(
            f'{path}:{line_no}: malformed line: {len(columns)} column(s), need at least 3 '
            '(chrom, start, end)'
        )
    chrom = columns[0].strip()
    if not chrom:
        raise GenomeError(f'{path}:{line_no}: malformed line: empty chromosome name')
    start = _int_column(path, line_no, 'start', columns[1])
    end = _int_column(path, line_no, 'end', columns[2])
    if start < 0 or end < 0:
        raise GenomeError(f'{path}:{line_no}: negative coordinate ({start}, {end})')
    if start > end:
        raise GenomeError(f'{path}:{line_no}: start {start} > end {end}')
    return chrom, start, end


def peak_centre(path: str, line_no: int, columns: Sequence[str]) -> tuple[str, int]:
    """Returns (chrom, centre) of one peaks line.

    The centre is start + summit offset (column 10) for narrowPeak lines (exactly 10 columns)
    whose offset is not -1, and the midpoint (start + end) // 2 otherwise, so 1-bp summit
    intervals centre on themselves.

    Raises:
      GenomeError: fewer than 3 columns, non-integer or negative coordinates,
        start > end, or a summit offset outside the peak.
    """
    chrom, start, end = interval(path, line_no, columns)
    if len(columns) == _NARROWPEAK_COLUMNS:
        summit = _int_column(path, line_no, 'summit offset (column 10)', columns[9])
        if summit != -1:
            if summit < 0 or summit > end - start:
                raise GenomeError(
                    f'{path}:{line_no}: summit offset {summit} is outside the peak '
                    f'(length {end - start})'
                )
            return chrom, start + summit
    return chrom, (start + end) // 2


@dataclasses.dataclass(frozen=True)
class BedLine:
    """One interval of a BED file; `number` is its 1-based line number, `name` column 4."""

    number: int
    chrom: str
    start: int
    end: int
    name: str | None = None


def read_bed(path: str) -> Iterator[BedLine]:
    """Yields the intervals of a BED file (plain or gzipped), in file order; columns past the
    4th are ignored.

    Raises:
      GenomeError: an unreadable file or a malformed line (`interval`), as 'file:line: ...'.
    """
    for number, columns in data_lines(path, kind='BED'):
        chrom, start, end = interval(path, number, columns)
        name = columns[3].strip() if len(columns) >= 4 and columns[3].strip() else None
        yield BedLine(number, chrom, start, end, name)


def bed_windows(
    path: str,
    sizes: Mapping[str, int],
    length: int,
    *,
    fasta: str = 'the FASTA',
    keep_longer: bool = False,
) -> list[BedLine]:
    """Each BED line as the `length`-bp window centred on it, shifted inside its chromosome
    (`windows.window_inside`), in file order; names kept. With `keep_longer`, lines longer than
    `length` are kept whole instead.

    Raises:
      GenomeError: a malformed line, a chromosome not in `sizes`, an interval past the
        chromosome's end or a chromosome shorter than the window ('file:line: ...'), or no
        lines.
    """
    out = []
    for line in read_bed(path):
        where = f'{path}:{line.number}: '
        genome_io.check_interval(sizes, fasta, line.chrom, line.start, line.end, where)
        size = sizes[line.chrom]
        if size < length:
            raise GenomeError(
                f'{where}{line.chrom} is {size:,} bp, shorter than the model\'s {length}-bp window'
            )
        if keep_longer and line.end - line.start >= length:
            out.append(line)
            continue
        start, end = windows.window_inside(line.start, line.end, length, size)
        out.append(dataclasses.replace(line, start=start, end=end))
    if not out:
        raise GenomeError(f'{path}: no regions')
    return out
