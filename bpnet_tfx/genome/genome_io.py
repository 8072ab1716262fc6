"""FASTA files and region text: opening a FASTA, checking an interval against its chromosomes,
one-hot windows padded past chromosome ends, and 'chrom:start-end' regions.

`GenomeError`, the one error of genome files (here, bed.py, bigwig.py), names the file and line
(or region) and what to do. Coordinates are 0-based and half-open.
"""

from __future__ import annotations

import re
from typing import Mapping, Sequence

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
