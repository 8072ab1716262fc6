"""Reading the genome side of inference: FASTA windows, bigWig tracks, BED lines and regions.

Shared by prediction, contribution scores and evaluation helpers. BED and region coordinates
are 0-based and half-open. Every error a user can cause is a `GenomeError` naming the file and
line (or region) and what to do.
"""

from __future__ import annotations

import dataclasses
import gzip
import re
from typing import Iterator, Mapping, Sequence

import numpy as np

from bpnet_tfx.common.errors import BpnetError
from bpnet_tfx.genome import sequence


class GenomeError(BpnetError):
    """An unreadable or inconsistent FASTA, bigWig, BED line or region, in one line."""


def file_label(name: str) -> str:
    """`name` made safe for a file name: anything but letters, digits, '.', '-' becomes '_'."""
    return re.sub(r'[^\w.-]', '_', name)


def open_fasta(fasta: str):
    """Opens `fasta` with pyfaidx (upper-case raw strings); use as a context manager.

    Raises:
      GenomeError: no such file, or it cannot be indexed.
    """
    import os

    import pyfaidx

    if not os.path.isfile(fasta):
        raise GenomeError(f'{fasta}: no such FASTA file')
    try:
        return pyfaidx.Fasta(fasta, as_raw=True, sequence_always_upper=True)
    except (OSError, pyfaidx.FastaIndexingError, ValueError) as e:
        raise GenomeError(f'{fasta}: cannot open FASTA: {e}') from None


def chrom_sizes(genome) -> dict[str, int]:
    """{chromosome: length} of an open FASTA, in file order."""
    return {name: len(genome[name]) for name in genome.keys()}


def _shown(names: Sequence[str]) -> str:
    return ', '.join(list(names)[:5]) + (', ...' if len(names) > 5 else '')


def check_interval(
    sizes: Mapping[str, int], fasta: str, chrom: str, start: int, end: int, where: str = ''
) -> None:
    """Raises GenomeError ('<where>...') unless [start, end) lies on a chromosome of `sizes`."""
    if chrom not in sizes:
        raise GenomeError(
            f'{where}chromosome {chrom!r} not in the FASTA {fasta} (it has {_shown(list(sizes))})'
        )
    if start < 0 or end > sizes[chrom]:
        raise GenomeError(
            f'{where}region {chrom}:{start}-{end} runs past the end of {chrom} '
            f'({sizes[chrom]:,} bp)'
        )


def padded_one_hot(genome, chrom: str, start: int, end: int) -> np.ndarray:
    """One-hot (end - start, 4) float32 of [start, end), with all-zero (N) rows past either
    end of the chromosome: a model with a wider input than output still predicts bases near
    ends."""
    size = len(genome[chrom])
    out = np.zeros((end - start, 4), np.float32)
    lo, hi = max(start, 0), min(end, size)
    if lo < hi:
        out[lo - start : hi - start] = sequence.one_hot(genome[chrom][lo:hi])
    return out


_REGION_RE = re.compile(r'^([^:\s]+):([\d,]+)-([\d,]+)$')


def parse_region(text: str) -> tuple[str, int, int]:
    """Parses 'chrom:start-end' into (chrom, start, end); commas in numbers are allowed.

    Raises:
      GenomeError: malformed text or start >= end.
    """
    m = _REGION_RE.match(text.strip()) if text else None
    if not m:
        raise GenomeError(
            f"malformed region {text!r}; expected 'chrom:start-end', e.g. chr1:180924452-180925452"
        )
    chrom = m.group(1)
    start, end = (int(m.group(i).replace(',', '')) for i in (2, 3))
    if start >= end:
        raise GenomeError(f'region {text!r}: start must be below end')
    return chrom, start, end


def centred_window(start: int, end: int, length: int) -> tuple[int, int]:
    """The window of `length` bp centred on the midpoint of [start, end)."""
    centre = (start + end) // 2
    return centre - length // 2, centre - length // 2 + length


def window_inside(start: int, end: int, length: int, size: int) -> tuple[int, int]:
    """The `length`-bp window centred on [start, end), shifted inside a chromosome of `size`
    bp where it would run past an end (`size` >= `length`)."""
    s, e = centred_window(start, end, length)
    shift = max(0, -s) - max(0, e - size)
    return s + shift, e + shift


@dataclasses.dataclass(frozen=True)
class BedLine:
    """One interval of a BED file; `number` is its 1-based line number, `name` column 4."""

    number: int
    chrom: str
    start: int
    end: int
    name: str | None = None


def read_bed(path: str) -> Iterator[BedLine]:
    """Yields the intervals of a BED file (plain or gzipped), in file order.

    Blank, '#', 'track' and 'browser' lines are skipped; columns past the 4th are ignored.

    Raises:
      GenomeError: an unreadable file, or a line without chrom, start < end, as
        'file:line: ...'.
    """
    opener = gzip.open if path.endswith('.gz') else open
    try:
        f = opener(path, 'rt')
    except OSError as e:
        raise GenomeError(f'{path}: cannot open BED: {e.strerror or e}') from None
    with f:
        try:
            for number, line in enumerate(f, 1):
                if not line.strip() or line.startswith(('#', 'track', 'browser')):
                    continue
                yield _bed_line(path, number, line)
        except (OSError, UnicodeDecodeError, EOFError) as e:
            raise GenomeError(f'{path}: cannot read BED: {e}') from None


def _bed_line(path: str, number: int, line: str) -> BedLine:
    cols = line.rstrip('\r\n').split('\t')
    if len(cols) < 3:
        cols = line.split()
    try:
        chrom, start, end = cols[0], int(cols[1]), int(cols[2])
    except (IndexError, ValueError):
        raise GenomeError(
            f'{path}:{number}: malformed BED line {line.strip()!r}; expected chrom, start, end'
        ) from None
    if not chrom or start < 0 or start >= end:
        raise GenomeError(
            f'{path}:{number}: malformed BED line {line.strip()!r}; needs 0 <= start < end'
        )
    name = cols[3].strip() if len(cols) >= 4 and cols[3].strip() else None
    return BedLine(number, chrom, start, end, name)


def bed_windows(
    path: str,
    sizes: Mapping[str, int],
    length: int,
    *,
    fasta: str = 'the FASTA',
    keep_longer: bool = False,
) -> list[BedLine]:
    """Each BED line as the `length`-bp window centred on it, shifted inside its chromosome
    (`window_inside`), in file order; names kept. With `keep_longer`, lines longer than
    `length` are kept whole instead.

    Raises:
      GenomeError: a malformed line, a chromosome not in `sizes`, an interval past the
        chromosome's end or a chromosome shorter than the window ('file:line: ...'), or no
        lines.
    """
    windows = []
    for line in read_bed(path):
        where = f'{path}:{line.number}: '
        check_interval(sizes, fasta, line.chrom, line.start, line.end, where)
        size = sizes[line.chrom]
        if size < length:
            raise GenomeError(
                f'{where}{line.chrom} is {size:,} bp, shorter than the model\'s {length}-bp window'
            )
        if keep_longer and line.end - line.start >= length:
            windows.append(line)
            continue
        start, end = window_inside(line.start, line.end, length, size)
        windows.append(dataclasses.replace(line, start=start, end=end))
    if not windows:
        raise GenomeError(f'{path}: no regions')
    return windows


def open_bigwig(path: str):
    """Opens a bigWig for reading.

    Raises:
      GenomeError: it cannot be opened.
    """
    import pyBigWig

    try:
        bw = pyBigWig.open(path)
    except (RuntimeError, OSError):
        bw = None
    if bw is None:
        raise GenomeError(f'{path}: cannot open bigWig')
    return bw


def read_tracks(
    pairs: Sequence[Sequence[str]], chrom: str, start: int, end: int, *, origin: str = ''
) -> np.ndarray:
    """(end - start, len(pairs), strands) float32 counts from per-task bigWig pairs (missing
    values are 0).

    Args:
      pairs: per task, the bigWigs of each strand (plus, minus).
      chrom, start, end: the interval.
      origin: where the paths came from, for the message when `chrom` is missing (e.g. "the
        default from the records' metadata.json; give --pos_bigwig").

    Raises:
      GenomeError: a bigWig cannot be opened or lacks `chrom`.
    """
    strands = max(len(p) for p in pairs)
    out = np.zeros((end - start, len(pairs), strands), np.float32)
    for t, pair in enumerate(pairs):
        for s, path in enumerate(pair):
            bw = open_bigwig(path)
            try:
                if chrom not in bw.chroms():
                    raise GenomeError(
                        f'{path}: chromosome {chrom!r} not in the bigWig'
                        + (f' ({origin})' if origin else '')
                    )
                out[:, t, s] = np.nan_to_num(bw.values(chrom, start, end, numpy=True))
            finally:
                bw.close()
    return out
