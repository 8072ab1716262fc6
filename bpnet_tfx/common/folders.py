"""Folders that appear only once complete: written as a temporary sibling, renamed into place.

Readers see the old folder or the new one, never a partial one; racing writers are safe (the
last rename wins, or the caller keeps what another process published). Local paths only; the
records job handles object stores itself (beam_jobs/common/files.py). Standard library only, so Beam
workers import it cheaply.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from typing import Callable, Iterator


def move_aside(path: str) -> None:
    """Renames `path` out of the way and deletes it; quiet if another process already did."""
    aside = tempfile.mkdtemp(prefix=f'.{os.path.basename(path)}.old-', dir=os.path.dirname(path))
    try:
        os.rename(path, os.path.join(aside, 'old'))
    except FileNotFoundError:
        pass
    shutil.rmtree(aside, ignore_errors=True)


def publish(tmp: str, output_dir: str, *, keep_existing: Callable[[], bool] | None = None) -> bool:
    """Renames the finished folder `tmp` to `output_dir`, replacing a non-empty one.

    Args:
      tmp: the finished folder, a sibling of `output_dir`.
      output_dir: where it goes.
      keep_existing: asked when `output_dir` is in the way; if it returns True (e.g. another
        process published a complete copy), `tmp` is deleted and that copy kept.

    Returns:
      True if `tmp` was published, False if an existing copy was kept.
    """
    while True:
        try:
            os.rename(tmp, output_dir)
            return True
        except OSError as e:
            if e.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
        if keep_existing is not None and keep_existing():
            shutil.rmtree(tmp, ignore_errors=True)
            return False
        move_aside(output_dir)


@contextlib.contextmanager
def temporary_sibling(output_dir: str) -> Iterator[str]:
    """A new empty folder beside `output_dir` (mode 0755) for its contents; deleted if the
    block fails. The caller publishes it (`publish`) or it is deleted at the end."""
    parent = os.path.dirname(os.path.abspath(output_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f'.{os.path.basename(output_dir)}.tmp-', dir=parent)
    try:
        os.chmod(tmp, 0o755)  # mkdtemp's 0700 is for scratch space, not the result
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # nothing left once published


def write_atomically(output_dir: str, write: Callable[[str], object]) -> object:
    """Calls `write(folder)` on a temporary sibling and publishes it as `output_dir`
    (replacing an old one only then); returns what `write` returned."""
    with temporary_sibling(output_dir) as tmp:
        result = write(tmp)
        publish(tmp, output_dir)
    return result
