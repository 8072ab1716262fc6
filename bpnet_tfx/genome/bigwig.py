"""bigWig files: reading per-task strand tracks over an interval, and the one writer.

`read_tracks` gives counts over an interval (missing values are 0). `BigWigWriter` writes a
bigWig: the chromosome header, then per chromosome in header order either every base's value
(`add_values`), only the non-zero bases (`add_nonzero`) or long runs of one value as single
entries (`add_runs`); with `temporary` it writes beside its final name and renames into place
on a clean close, so a failed run leaves no half-written file.
"""

from __future__ import annotations

import os
import secrets
from typing import Sequence

import numpy as np

from bpnet_tfx.genome.genome_io import GenomeError

# Runs of one value at least this long become one bedGraph entry in `add_runs`; the varying
# stretches between them are written as fixed-step values, which pyBigWig writes far faster.
MIN_RUN = 8
MAX_ZOOMS = 10  # zoom levels of the header (pyBigWig's default)


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


class BigWigWriter:
    """A bigWig being written; entries go in header order, each chromosome's by position.

    Use as a context manager, or call `close(ok)`: with `temporary`, a clean close renames the
    file into place and a failed one removes it.
    """

    def __init__(self, path: str, header: Sequence[tuple[str, int]], *, temporary=False):
        import pyBigWig

        self.path = path
        self._file = f'{path}.tmp-{secrets.token_hex(4)}' if temporary else path
        try:  # pyBigWig crashes the process on a path it cannot create
            open(self._file, 'wb').close()
        except OSError as e:
            raise GenomeError(f'{path}: cannot write bigWig: {e.strerror or e}') from None
        self._bw = pyBigWig.open(self._file, 'w')
        if self._bw is None:
            raise GenomeError(f'{path}: cannot write bigWig')
        try:
            self._bw.addHeader(list(header), maxZooms=MAX_ZOOMS)
        except BaseException:
            self.close(ok=False)
            raise

    def add_values(self, chrom: str, start: int, values: np.ndarray) -> None:
        """One value per base from `start` on."""
        self._bw.addEntries(chrom, start, values=values.astype(np.float64), span=1, step=1)

    def add_nonzero(self, chrom: str, counts: np.ndarray) -> None:
        """The non-zero bases of a whole chromosome's `counts`, one entry each."""
        starts = np.flatnonzero(counts).astype(np.int64)
        if starts.size:
            self._bw.addEntries(chrom, starts, values=counts[starts].astype(np.float64), span=1)

    def add_runs(self, chrom: str, values: np.ndarray) -> None:
        """Every base of a whole chromosome: runs of at least MIN_RUN equal values as one
        entry each, the rest as values per base."""
        n = values.size
        change = np.flatnonzero(values[1:] != values[:-1]) + 1
        run_starts = np.concatenate([[0], change])
        run_ends = np.concatenate([change, [n]])
        long_runs = np.flatnonzero(run_ends - run_starts >= MIN_RUN)
        position = 0
        for r in long_runs.tolist():
            start, end = int(run_starts[r]), int(run_ends[r])
            if start > position:
                self.add_values(chrom, position, values[position:start])
            self._bw.addEntries([chrom], [start], ends=[end], values=[float(values[start])])
            position = end
        if position < n:
            self.add_values(chrom, position, values[position:])

    def close(self, ok: bool = True) -> None:
        """Closes the file; with `temporary`, renames it into place if `ok`, else removes it."""
        self._bw.close()
        if self._file != self.path:
            if ok:
                os.replace(self._file, self.path)
            elif os.path.exists(self._file):
                os.remove(self._file)

    def __enter__(self) -> BigWigWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(ok=exc_type is None)
