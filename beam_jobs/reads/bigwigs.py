"""Writing a count's bigWigs: one writer per file, fed the region files in contig order.

A bigWig is written front to back by one writer, so the driver does it after the count: it
reads each region's non-zero bases (transforms.WriteRegionFn) in (contig, start) order and
adds them in batches of a fixed number of entries, so the bytes do not depend on the region
size. The files are written as temporary siblings and renamed into place once all are done.
`output_paths` names them: P.pos.bw and P.neg.bw, or P.bw for one unstranded track.
"""

from __future__ import annotations

import io
import os
import secrets
import tempfile
from typing import Any, Sequence

import numpy as np

from beam_jobs.common import files as files_lib
from beam_jobs.reads import transforms
from beam_jobs.reads.plan import CountPlan

ZOOM_LEVELS = 10
_BATCH = 1 << 20  # Entries per addEntries call.


def output_paths(prefix: str, stranded: bool) -> list[str]:
    return [prefix + '.pos.bw', prefix + '.neg.bw'] if stranded else [prefix + '.bw']


def _read_bytes(path: str) -> bytes:
    if not files_lib.is_remote(path):
        with open(path, 'rb') as f:
            return f.read()
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        return f.read()


def add_counts(bw: Any, chrom: str, starts: np.ndarray, values: np.ndarray) -> None:
    """Adds base-resolution counts at `starts` (sorted) to an open pyBigWig writer."""
    for i in range(0, starts.size, _BATCH):
        bw.addEntries(
            chrom,
            starts[i : i + _BATCH].astype(np.int64),
            values=values[i : i + _BATCH].astype(np.float64),
            span=1,
        )


class _Track:
    """One output file's entries of the current contig, flushed in whole batches."""

    def __init__(self, bw: Any):
        self.bw = bw
        self.starts: list[np.ndarray] = []
        self.values: list[np.ndarray] = []
        self.size = 0

    def add(self, chrom: str, starts: np.ndarray, values: np.ndarray, final: bool) -> None:
        keep = values > 0
        self.starts.append(starts[keep])
        self.values.append(values[keep])
        self.size += int(keep.sum())
        if self.size < _BATCH and not final:
            return
        starts, values = np.concatenate(self.starts), np.concatenate(self.values)
        whole = starts.size if final else starts.size - starts.size % _BATCH
        add_counts(self.bw, chrom, starts[:whole], values[:whole])
        self.starts, self.values, self.size = (
            [starts[whole:]],
            [values[whole:]],
            starts.size - whole,
        )


def write_bigwigs(
    plan: CountPlan, count_dir: str, regions: Sequence[Sequence[int]], outputs: Sequence[str]
) -> None:
    """Writes the region files of `count_dir` (`regions`: [contig, start, non-zero bases,
    ...] rows from the summary) into `outputs` (plus, minus; or one unstranded file)."""
    import pyBigWig

    local_dir = tempfile.mkdtemp(prefix='reads_to_bigwig-')
    locals_ = [os.path.join(local_dir, f'{i}.bw') for i in range(len(outputs))]
    handles = [pyBigWig.open(p, 'w') for p in locals_]
    try:
        for bw in handles:
            bw.addHeader(list(plan.genome), maxZooms=ZOOM_LEVELS)
        tracks = [_Track(bw) for bw in handles]
        by_contig: dict[int, list[int]] = {}
        for contig, start, n, *_ in regions:
            if n:
                by_contig.setdefault(contig, []).append(start)
        for contig, starts in sorted(by_contig.items()):
            chrom = plan.genome[contig][0]
            starts = sorted(starts)
            for k, start in enumerate(starts):
                name = transforms.region_filename(contig, start)
                path = files_lib.join(files_lib.join(count_dir, transforms.REGIONS_DIR), name)
                rows = np.load(io.BytesIO(_read_bytes(path)))
                final = k == len(starts) - 1
                if len(tracks) == 2:
                    tracks[0].add(chrom, rows[:, 0], rows[:, 1], final)
                    tracks[1].add(chrom, rows[:, 0], rows[:, 2], final)
                else:
                    tracks[0].add(chrom, rows[:, 0], rows[:, 1] + rows[:, 2], final)
        for bw in handles:
            bw.close()
        handles = []
        _publish(locals_, outputs)
    finally:
        for bw in handles:
            bw.close()
        for p in locals_:
            if os.path.exists(p):
                os.remove(p)
        os.rmdir(local_dir)


def _publish(locals_: Sequence[str], outputs: Sequence[str]) -> None:
    """Moves the finished files into place: each first beside its output, then renamed."""
    tag = secrets.token_hex(4)
    staged = []
    for local, dest in zip(locals_, outputs):
        tmp = f'{dest}.tmp-{tag}'
        files_lib.publish_file(local, tmp)
        staged.append((tmp, dest))
    for tmp, dest in staged:
        if files_lib.is_remote(dest):
            from apache_beam.io.filesystems import FileSystems

            if FileSystems.exists(dest):
                FileSystems.delete([dest])
            FileSystems.rename([tmp], [dest])
        else:
            os.replace(tmp, dest)
