"""The contrib output folder: written as windows are scored, read back, and merged from shards.

Layout (one row per window, in input order): regions.bed; ohe.npz (one-hot, N x 4 x L float32
under 'arr_0'); per target a folder (`profile`, `counts`; `<task>.profile`... with several
tasks) with shap.npz (hypothetical contributions, N x 4 x L under 'arr_0', uncompressed;
`modisco motifs -s ohe.npz -a profile/shap.npz`) and contrib.bw (observed-base contributions;
where windows overlap, each base gets the mean over the windows covering it); summary.json.

`FolderWriter` keeps no scores in memory: each batch's rows are appended to raw files in the
folder being written, and `finish` streams them into the .npz members (whose array header is
written once the row count is known) and reads the observed contributions back one merged
region at a time for the bigWig, so memory stays flat in the number of windows. `merge_shards`
interleaves the rows of the folders that `--shard_index`/`--num_shards` runs wrote (row j of
the whole input is row j // S of shard j % S) through the same writer, so the merged folder
holds exactly what a one-shot run writes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import zipfile
from typing import Any, Iterator, Sequence

import numpy as np

from bpnet_tfx.common.errors import BpnetError
from bpnet_tfx.genome import bigwig
from bpnet_tfx.genome.windows import merge_regions, stitch

REGIONS_FILENAME = 'regions.bed'
ONE_HOT_FILENAME = 'ohe.npz'
HYPOTHETICAL_FILENAME = 'shap.npz'
BIGWIG_FILENAME = 'contrib.bw'
SUMMARY_FILENAME = 'summary.json'
_ROWS_PER_READ = 256  # rows copied at a time when streaming raw rows into .npz members


class OutputError(BpnetError):
    """An output folder that cannot be written, read or merged, reported in one line."""


@dataclasses.dataclass(frozen=True)
class Window:
    """One row of the outputs: a model-length window of the genome."""

    chrom: str
    start: int
    end: int
    name: str

    @property
    def region(self) -> str:
        """'chrom:start-end': the window's identity, which seeds its references."""
        return f'{self.chrom}:{self.start}-{self.end}'


class FolderWriter:
    """Writes an output folder's rows as they come (module docstring).

    Args:
      folder: the (temporary) folder to write into; it exists.
      targets: target names, in output order.
    """

    def __init__(self, folder: str, targets: Sequence[str]):
        self.folder, self.targets = folder, list(targets)
        self.windows: list[Window] = []
        self.length: int | None = None
        self._raw = {
            key: open(os.path.join(folder, f'.{key}.raw'), 'wb')
            for key in ['ohe', *(f'{t}.shap' for t in self.targets), *self.targets]
        }

    def add(self, windows: Sequence[Window], one_hot: np.ndarray, hyps: Sequence[np.ndarray]):
        """Appends rows: windows, one-hot (B, L, 4) and per target hyp (B, L, 4)."""
        self.windows.extend(windows)
        self.length = one_hot.shape[1]
        one_hot = np.asarray(one_hot, np.float32)
        self._raw['ohe'].write(one_hot.transpose(0, 2, 1).astype('<f4').tobytes())
        for name, hyp in zip(self.targets, hyps):
            self._raw[f'{name}.shap'].write(hyp.transpose(0, 2, 1).astype('<f4').tobytes())
            self._raw[name].write((hyp * one_hot).sum(axis=-1).astype('<f4').tobytes())

    def add_rows(self, windows: Sequence[Window], one_hot_t: np.ndarray, hyps_t: Sequence):
        """Appends rows already in the file layout: one-hot and hyps (B, 4, L)."""
        self.add(windows, one_hot_t.transpose(0, 2, 1), [h.transpose(0, 2, 1) for h in hyps_t])

    def finish(self, header: Sequence[tuple[str, int]]) -> dict[str, str]:
        """Writes regions.bed, the .npz files and the bigWigs (`header`: chromosome sizes in
        output order); returns the files' paths relative to the folder."""
        for f in self._raw.values():
            f.close()
        shape = (len(self.windows), 4, self.length)
        files = {'regions': REGIONS_FILENAME, 'ohe': ONE_HOT_FILENAME}
        with open(os.path.join(self.folder, REGIONS_FILENAME), 'w') as f:
            f.writelines(f'{w.chrom}\t{w.start}\t{w.end}\t{w.name}\n' for w in self.windows)
        self._npz('ohe', ONE_HOT_FILENAME, shape, zipfile.ZIP_DEFLATED)
        for name in self.targets:
            os.makedirs(os.path.join(self.folder, name))
            files[f'{name}.shap'] = os.path.join(name, HYPOTHETICAL_FILENAME)
            files[f'{name}.bigwig'] = os.path.join(name, BIGWIG_FILENAME)
            self._npz(f'{name}.shap', files[f'{name}.shap'], shape, zipfile.ZIP_STORED)
            raw = os.path.join(self.folder, f'.{name}.raw')
            with open(raw, 'rb') as f:
                rows = _RowReader(f, self.length * 4)
                write_bigwig(
                    os.path.join(self.folder, files[f'{name}.bigwig']), header, self.windows, rows
                )
            os.remove(raw)
        return files

    def _npz(self, key: str, filename: str, shape: tuple[int, ...], compression: int) -> None:
        """Streams raw rows into an .npz holding them as 'arr_0' (as np.savez writes it)."""
        raw = os.path.join(self.folder, f'.{key}.raw')
        with (
            zipfile.ZipFile(os.path.join(self.folder, filename), 'w', compression) as archive,
            archive.open('arr_0.npy', 'w', force_zip64=True) as member,
            open(raw, 'rb') as f,
        ):
            np.lib.format.write_array_header_1_0(
                member, {'descr': '<f4', 'fortran_order': False, 'shape': shape}
            )
            while chunk := f.read(1 << 22):
                member.write(chunk)
        os.remove(raw)


class _RowReader:
    """Rows (L,) of float32 from a raw file, read on demand by index."""

    def __init__(self, f, row_bytes: int):
        self.f, self.row_bytes = f, row_bytes

    def __getitem__(self, rows: Sequence[int]) -> np.ndarray:
        out = []
        for i in rows:
            self.f.seek(i * self.row_bytes)
            out.append(np.frombuffer(self.f.read(self.row_bytes), '<f4'))
        return np.stack(out)


def average_overlaps(
    windows: Sequence[Window], values, chrom_order: Sequence[str]
) -> Iterator[tuple[str, int, np.ndarray]]:
    """Per-base values over the union of the windows, overlaps averaged.

    Args:
      windows: N windows of L bp each.
      values: (N, L) per-base values, or anything that gives those rows when indexed by a
        list of row numbers (rows are read one merged region at a time).
      chrom_order: chromosomes in output order (every window's chromosome must be there).

    Yields:
      (chrom, start, values) of the windows' union, merged where windows overlap or touch
      and sorted (`windows.merge_regions`); each base once, with the mean over the windows
      covering it (`windows.stitch`), whatever the windows' order.
    """
    rank = {c: i for i, c in enumerate(chrom_order)}
    order = sorted(
        range(len(windows)),
        key=lambda i: (rank[windows[i].chrom], windows[i].start, windows[i].end),
    )
    merged = merge_regions([(w.chrom, w.start, w.end) for w in windows], list(chrom_order))
    k = 0
    for chrom, start, end in merged:  # the sorted windows fall into the merged regions in turn
        members = []
        while k < len(order) and windows[order[k]].chrom == chrom and windows[order[k]].start < end:
            members.append(order[k])
            k += 1
        starts = [windows[i].start for i in members]
        yield chrom, start, stitch(values[members], starts, start, end)


def write_bigwig(path: str, header: Sequence[tuple[str, int]], windows: Sequence[Window], values):
    """Writes per-base `values` (N, L; see `average_overlaps`) of `windows` as a bigWig,
    overlaps averaged."""
    with bigwig.BigWigWriter(path, header) as bw:
        for chrom, start, run in average_overlaps(windows, values, [c for c, _ in header]):
            bw.add_values(chrom, start, run)


def read_windows(output_dir: str) -> list[Window]:
    windows = []
    with open(os.path.join(output_dir, REGIONS_FILENAME)) as f:
        for line in f:
            chrom, start, end, name = line.rstrip('\n').split('\t')
            windows.append(Window(chrom, int(start), int(end), name))
    return windows


def read_summary(output_dir: str) -> dict[str, Any]:
    path = os.path.join(output_dir, SUMMARY_FILENAME)
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise OutputError(f'{path}: cannot read the summary of a contrib folder: {e}') from None


def load_outputs(output_dir: str) -> dict[str, Any]:
    """Reads an output folder back: {'windows', 'one_hot' (N, L, 4), 'hyp': {target: (N, L,
    4)}, 'summary'}; hyp * one_hot summed over the last axis gives observed contributions."""
    summary = read_summary(output_dir)
    one_hot = np.load(os.path.join(output_dir, ONE_HOT_FILENAME))['arr_0'].transpose(0, 2, 1)
    hyp = {
        t['name']: np.load(os.path.join(output_dir, t['name'], HYPOTHETICAL_FILENAME))[
            'arr_0'
        ].transpose(0, 2, 1)
        for t in summary['targets']
    }
    return {
        'windows': read_windows(output_dir),
        'one_hot': one_hot,
        'hyp': hyp,
        'summary': summary,
    }


class _MemberRows:
    """Reads an .npz member's (N, 4, L) float32 rows in order, a few at a time."""

    def __init__(self, path: str):
        self.archive = zipfile.ZipFile(path)
        self.member = self.archive.open('arr_0.npy')
        major, _ = np.lib.format.read_magic(self.member)
        read_header = (
            np.lib.format.read_array_header_1_0
            if major == 1
            else np.lib.format.read_array_header_2_0
        )
        shape, _, dtype = read_header(self.member)
        self.rows, self.row_shape, self.dtype = shape[0], shape[1:], dtype
        self.row_bytes = int(np.prod(self.row_shape)) * dtype.itemsize

    def read(self, n: int) -> np.ndarray:
        data = self.member.read(n * self.row_bytes)
        return np.frombuffer(data, self.dtype).reshape(-1, *self.row_shape)

    def close(self) -> None:
        self.member.close()
        self.archive.close()


def extent_header(windows: Sequence[Window]) -> list[tuple[str, int]]:
    """A bigWig header from the windows alone: chromosomes in order of appearance, each as
    long as its last window's end."""
    sizes: dict[str, int] = {}
    for w in windows:
        sizes[w.chrom] = max(sizes.get(w.chrom, 0), w.end)
    return list(sizes.items())


# Keys of summary.json that differ between the shards of one run (or are the merge's own).
_PER_SHARD = ('shard_index', 'num_shards', 'regions', 'seconds', 'files', 'chrom_sizes')


def _check_shards(shard_dirs: Sequence[str]) -> list[tuple[str, dict[str, Any]]]:
    """(folder, summary) of each shard by shard index; raises OutputError unless they are
    all the shards of one run."""
    summaries = [read_summary(d) for d in shard_dirs]
    for d, s in zip(shard_dirs, summaries):
        if 'shard_index' not in s:
            raise OutputError(f'{d} is not a shard (it was written without --num_shards)')
    n = summaries[0]['num_shards']
    found = sorted(s['shard_index'] for s in summaries)
    if found != list(range(n)) or any(s['num_shards'] != n for s in summaries):
        raise OutputError(
            f'give every shard of the run once: --num_shards={n} needs shards 0..{n - 1}, '
            f'got {", ".join(map(str, found))}'
        )
    first = {k: v for k, v in summaries[0].items() if k not in _PER_SHARD}
    for d, s in zip(shard_dirs, summaries):
        other = {k: v for k, v in s.items() if k not in _PER_SHARD}
        if other != first:
            differ = sorted(k for k in first.keys() | other.keys() if first.get(k) != other.get(k))
            raise OutputError(
                f'{d} was not computed like {shard_dirs[0]} ({", ".join(differ)} differ); '
                'merge the shards of one run'
            )
    return sorted(zip(shard_dirs, summaries), key=lambda pair: pair[1]['shard_index'])


def _interleaved(shards: Sequence[str], name: str) -> Iterator[np.ndarray]:
    """Rows of member `name` of every shard, round robin (row j from shard j % S), in blocks."""
    readers = [_MemberRows(os.path.join(d, name)) for d in shards]
    try:
        left = [r.rows for r in readers]
        while left[0]:
            blocks = [r.read(min(_ROWS_PER_READ, k)) for r, k in zip(readers, left)]
            left = [k - len(b) for k, b in zip(left, blocks)]
            out = np.empty((sum(map(len, blocks)), *blocks[0].shape[1:]), blocks[0].dtype)
            for i, block in enumerate(blocks):
                out[i :: len(blocks)] = block
            yield out
    finally:
        for r in readers:
            r.close()


def merge_shards(shard_dirs: Sequence[str], folder: str) -> dict[str, Any]:
    """Writes into `folder` (which exists) the folder a one-shot run would have written from
    the shards' folders (module docstring); returns the merged summary without 'files' and
    'seconds'.

    Raises:
      OutputError: not all the shards of one run, or unreadable shard folders.
    """
    summaries = _check_shards(shard_dirs)
    shards = [d for d, _ in summaries]
    summaries = [s for _, s in summaries]
    windows_of = [read_windows(d) for d in shards]
    total = sum(map(len, windows_of))
    windows = [windows_of[j % len(shards)][j // len(shards)] for j in range(total)]
    targets = [t['name'] for t in summaries[0]['targets']]
    writer = FolderWriter(folder, targets)
    members = [ONE_HOT_FILENAME, *(os.path.join(t, HYPOTHETICAL_FILENAME) for t in targets)]
    done = 0
    for blocks in zip(*(_interleaved(shards, m) for m in members)):
        writer.add_rows(windows[done : done + len(blocks[0])], blocks[0], blocks[1:])
        done += len(blocks[0])
    if done != len(windows):
        raise OutputError(
            f'{shards[0]}...: the shards hold {done} scored rows for {len(windows)} windows'
        )
    summary = {k: v for k, v in summaries[0].items() if k not in _PER_SHARD}
    header = (
        extent_header(windows)
        if summary['header_from'] == 'the records'
        else [tuple(c) for c in summaries[0]['chrom_sizes']]
    )
    summary['files'] = writer.finish(header)
    summary['regions'], summary['chrom_sizes'] = len(windows), [list(c) for c in header]
    return summary
