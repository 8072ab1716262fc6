"""Files the inference jobs write: whole files only, and prefix outputs published when complete.

`write_file` writes one file of a step on any file system so that a retried bundle replaces
it whole. predict_tracks writes files beside a prefix (PREFIX.<task>.<strand>.bw,
PREFIX.regions.bed), not a folder: `write_prefix_files` runs the job into `PREFIX.tmp-<8 hex>/`,
then moves the named files beside the prefix, the one named `last` last, and removes the
folder; a failed run leaves none of them (and its folder is removed), a killed run's folder is
removed by the next run into the same prefix. `num_shards` sizes the shards of work.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
import tempfile
from typing import Callable, Sequence, TypeVar

from apache_beam.io.filesystems import FileSystems

from beam_jobs.common import files as files_lib

_T = TypeVar('_T')
_LOGGER = logging.getLogger(__name__)


def write_file(dest: str, write: Callable[[str], None]) -> None:
    """Calls `write(local_path)` and moves the file to `dest` (local or remote) whole."""
    if not files_lib.is_remote(dest):
        path = f'{dest}.partial-{os.getpid()}-{secrets.token_hex(4)}'
        try:
            write(path)
            os.replace(path, dest)
        finally:
            if os.path.exists(path):
                os.remove(path)
        return
    local_dir = tempfile.mkdtemp(prefix='bpnet-job-out-')
    try:
        path = os.path.join(local_dir, dest.rstrip('/').rsplit('/', 1)[-1])
        write(path)
        files_lib.publish_file(path, dest)
    finally:
        shutil.rmtree(local_dir, ignore_errors=True)


def parent_of(prefix: str) -> str:
    """The folder of an output prefix ('out/pred' -> 'out', 'gs://b/x/pred' -> 'gs://b/x')."""
    if files_lib.is_remote(prefix):
        return prefix.rsplit('/', 1)[0]
    return os.path.dirname(os.path.abspath(prefix))


def write_prefix_files(
    prefix: str, write: Callable[[str], tuple[_T, Sequence[str]]], *, last: str
) -> _T:
    """Runs `write(tmp_dir)`, which returns (result, base names of the files it wrote there
    for the prefix's folder), and moves those files into place, `last` last (module
    docstring); returns the result."""
    parent = parent_of(prefix)
    if not files_lib.is_remote(prefix):
        os.makedirs(parent, exist_ok=True)
    for stale in files_lib.remove_stale_dirs(prefix.rstrip('/') + '.tmp-'):
        _LOGGER.warning(
            'removed %s, left by an earlier run into %s that did not finish', stale, prefix
        )
    tmp_dir = f'{prefix.rstrip("/")}.tmp-{secrets.token_hex(4)}'
    files_lib.make_dir(tmp_dir)
    try:
        result, names = write(tmp_dir)
        names = sorted(names, key=lambda n: n == last)
        sources = [files_lib.join(tmp_dir, n) for n in names]
        targets = [files_lib.join(parent, n) for n in names]
        if files_lib.is_remote(prefix):
            FileSystems.rename(sources, targets)
        else:
            for source, target in zip(sources, targets):
                os.replace(source, target)
    finally:
        files_lib.remove_dir(tmp_dir)
    return result


def num_shards(flag: str, total: int, per_shard: int) -> int:
    """Shards for `total` items: the flag's number ('auto': one per `per_shard`), at most
    `total`, at least 1."""
    wanted = -(-total // per_shard) if flag == 'auto' else int(flag)
    return max(1, min(wanted, total))


def check_num_shards(flag: str) -> str | None:
    """The problem with a --num_shards value, or None."""
    if flag != 'auto' and not re.fullmatch(r'[1-9]\d*', flag):
        return f'--num_shards must be auto or a positive number, got {flag}'
    return None
