"""The contrib job's driver side: the windows in input order, cut into shard plans.

BED windows are the command's (`attribution.windows.bed_windows`, then the first
`max_regions`); the workers read their sequence. Records windows are read on the driver with
the command's reader (`attribution.windows.records_batches`), a shard at a time, and staged
as one .npz of one-hot and control per shard in the job's folder, since a records split has no
cheap way to a row in the middle. Plans are JSON lines (transforms.py).
"""

from __future__ import annotations

import json
import os
import shutil

from beam_jobs.common import files as files_lib
from beam_jobs.contributions import transforms


def shard_bounds(total: int, num_shards: int) -> list[int]:
    """Row bounds of the shards: shard s holds input rows [bounds[s], bounds[s + 1])."""
    return [s * total // num_shards for s in range(num_shards + 1)]


def _line(shard: int, windows, staged: str | None) -> str:
    rows = [[w.chrom, w.start, w.end, w.name] for w in windows]
    return json.dumps({'shard': shard, 'windows': rows, 'input': staged}) + '\n'


def bed_plans(windows: list, num_shards: int) -> list[str]:
    """Plan lines of BED windows: `num_shards` runs of consecutive rows."""
    bounds = shard_bounds(len(windows), num_shards)
    return [_line(s, windows[bounds[s] : bounds[s + 1]], None) for s in range(num_shards)]


def stage_records(
    records_dir: str, info, split: str, *, rows_per_shard: int, limit: int | None, output_dir: str
) -> tuple[list[str], list]:
    """Reads the split's first `limit` centred windows, `rows_per_shard` at a time, and
    stages each shard's one-hot (and control) in `output_dir`; returns (plan lines, windows).

    Raises:
      ContribError: unreadable records.
    """
    from bpnet_tfx.attribution import windows as contrib_windows

    lines, windows = [], []
    batches = contrib_windows.records_batches(records_dir, info, split, rows_per_shard, limit)
    for shard, (part, one_hot, control) in enumerate(batches):
        path = files_lib.join(output_dir, transforms.shard_filename(transforms.INPUT_PREFIX, shard))
        arrays = (
            {'one_hot': one_hot} if control is None else {'one_hot': one_hot, 'control': control}
        )
        transforms.save_arrays(path, **arrays)
        lines.append(_line(shard, part, path))
        windows.extend(part)
    return lines, windows


def write_plans(path: str, lines: list[str]) -> list[int]:
    """Writes the plan lines to `path` (any file system); returns each line's byte size."""
    local_dir = files_lib.make_local_dir()
    try:
        local = os.path.join(local_dir, os.path.basename(path))
        with open(local, 'w') as f:
            f.writelines(lines)
        files_lib.publish_file(local, path)
    finally:
        shutil.rmtree(local_dir, ignore_errors=True)
    return [len(line.encode()) for line in lines]
