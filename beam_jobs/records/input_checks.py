"""The records job's inputs checked against each other before any window is read.

`check_inputs` compares the peaks' chromosomes with the FASTA index and every bigWig header
(names, lengths, no negative values), so a wrong file fails in seconds with a one-line
`RecordsInputError` naming the file and line (and a hint when the files name chromosomes
differently, '1' vs 'chr1'), rather than as a worker traceback. `fasta_chrom_sizes`,
`fai_chrom_sizes` and `bigwig_header` read the sizes. No Beam here.
"""

from __future__ import annotations

import os
from typing import Iterable, Mapping, Sequence

from beam_jobs.common.errors import RecordsInputError
from beam_jobs.records.regions import Region


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


def _bigwig_headers(
    bigwig_paths: Sequence[str], names: Mapping[str, str], sizes: Mapping[str, int], fasta_name: str
) -> dict[str, dict[str, int]]:
    """{name: {chromosome: length}} of each bigWig, once each, checked against the FASTA's
    sizes and for negative values."""
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
    return headers


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
    headers = _bigwig_headers(bigwig_paths, names, sizes, fasta_name)
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
