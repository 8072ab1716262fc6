"""Local copies of remote inputs and moves of remote outputs, through Beam's FileSystems.

pyfaidx and pyBigWig read only local files, and `os.rename` works only on local folders. The
records job therefore copies an input whose path has a scheme (`gs://`, `s3://`, `hdfs://`, ...)
to a local temporary folder before opening it (in the driver for its checks, in `DoFn.setup`
on the workers), writes each shard file locally before copying it to a remote output folder,
and moves a remote output folder into place file by file. Local paths are used as they are.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
import tempfile
from typing import Callable, Iterable, Sequence, TypeVar

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from beam_jobs.common.errors import RecordsInputError
from bpnet_tfx.common import folders

_COPY_BUFFER = 16 << 20
_T = TypeVar('_T')
_LOGGER = logging.getLogger(__name__)


def is_remote(path: str) -> bool:
    """Whether `path` names a file system other than the local one (it has a scheme)."""
    return FileSystems.get_scheme(path) not in (None, 'file')


def join(folder: str, name: str) -> str:
    """`folder`/`name` on the folder's file system."""
    return FileSystems.join(folder, name) if is_remote(folder) else os.path.join(folder, name)


def resolve(path: str, folder: str) -> str:
    """`path` as named from a file in `folder`: URLs and absolute paths as they are, relative
    ones joined to the folder (a tasks spec's paths are relative to the spec)."""
    if '://' in path or os.path.isabs(path):
        return path
    return os.path.normpath(os.path.join(folder, path))


def exists(path: str) -> bool:
    return FileSystems.exists(path) if is_remote(path) else os.path.lexists(path)


def copy_to_local(path: str, local_dir: str) -> str:
    """Copies a remote file into `local_dir` (keeping its base name); returns the local path.

    Bytes are copied as they are: a `.gz` file stays compressed.

    Raises:
      OSError: the file cannot be read (a `BeamIOError` is an IOError).
    """
    local = os.path.join(local_dir, path.rstrip('/').rsplit('/', 1)[-1])
    with (
        FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as src,
        open(local, 'wb') as dst,
    ):
        shutil.copyfileobj(src, dst, _COPY_BUFFER)
    return local


def localize(
    paths: Iterable[str], local_dir: str, *, companions: Sequence[str] = ()
) -> dict[str, str]:
    """Returns {path: local path}, copying the remote ones into `local_dir`.

    Args:
      paths: input files; local ones map to themselves.
      local_dir: where remote copies go (one subfolder per file, so equal base names do not
        collide).
      companions: suffixes of side files copied too when they exist remotely (e.g. '.fai').
    """
    out = {}
    for i, path in enumerate(dict.fromkeys(paths)):
        if not is_remote(path):
            out[path] = path
            continue
        folder = os.path.join(local_dir, str(i))
        os.makedirs(folder, exist_ok=True)
        out[path] = copy_to_local(path, folder)
        for suffix in companions:
            if FileSystems.exists(path + suffix):
                copy_to_local(path + suffix, folder)
    return out


def localize_inputs(paths: Sequence[str], local_dir: str) -> dict[str, str]:
    """{path: local path} for the driver's checks; remote inputs are copied to `local_dir`
    (each with its .fai when there is one).

    Raises:
      RecordsInputError: a remote input that cannot be read.
    """
    out = {}
    for path in paths:
        try:
            out.update(localize([path], tempfile.mkdtemp(dir=local_dir), companions=('.fai',)))
        except OSError as e:
            message = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise RecordsInputError(f'{path}: cannot read input file: {message}') from None
    return out


def check_output_dir(
    output_dir: str, overwrite: bool, *, marker: str, kind: str = 'records folder'
) -> None:
    """Refuses an existing output folder, unless `overwrite` and it holds `marker` (a records
    folder's metadata.json) or nothing; `kind` names such a folder in the message.

    Raises:
      RecordsInputError: the folder exists without `overwrite`, or is not a records folder,
        or its name starts with '-' (a flag that took the folder's place).
    """
    name = output_dir.rstrip('/').rsplit('/', 1)[-1]
    if name.startswith('-'):
        raise RecordsInputError(
            f'{output_dir}: an output folder named {name!r} looks like a flag that took the '
            "folder's place; give the folder's path (a folder name may not start with '-')"
        )
    metadata = join(output_dir, marker)
    if is_remote(output_dir):
        present = exists(metadata) or bool(list_files(output_dir))
        if present and not overwrite:
            raise RecordsInputError(f'{output_dir} exists; pass --overwrite to replace it')
        if present and not exists(metadata):
            raise RecordsInputError(
                f'{output_dir} exists and is not a {kind} (no {marker}); not replacing it'
            )
        return
    if not os.path.lexists(output_dir):
        return
    if not overwrite:
        raise RecordsInputError(f'{output_dir} exists; pass --overwrite to replace it')
    if not os.path.isdir(output_dir) or (os.listdir(output_dir) and not os.path.exists(metadata)):
        raise RecordsInputError(
            f'{output_dir} exists and is not a {kind} (no {marker}); not replacing it'
        )


def delete(path: str) -> None:
    """Deletes one file on any file system."""
    if is_remote(path):
        FileSystems.delete([path])
    else:
        os.remove(path)


def make_local_dir() -> str:
    """A fresh local temporary folder for copies of remote inputs."""
    return tempfile.mkdtemp(prefix='make_records-')


def publish_file(local_path: str, dest: str) -> None:
    """Copies a finished local file to `dest` on any file system (a plain move when local)."""
    if not is_remote(dest):
        shutil.move(local_path, dest)
        return
    with (
        open(local_path, 'rb') as src,
        FileSystems.create(dest, compression_type=CompressionTypes.UNCOMPRESSED) as dst,
    ):
        shutil.copyfileobj(src, dst, _COPY_BUFFER)
    os.remove(local_path)


def read_text(path: str) -> str:
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        return f.read().decode()


def read_range(path: str, offset: int, size: int) -> bytes:
    """`size` bytes of a local or remote file from byte `offset` on."""
    if not is_remote(path):
        with open(path, 'rb') as f:
            f.seek(offset)
            return f.read(size)
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        f.seek(offset)
        return f.read(size)


def write_text(path: str, text: str) -> None:
    if not is_remote(path):
        with open(path, 'w') as f:
            f.write(text)
        return
    with FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        f.write(text.encode())


def list_files(folder: str) -> list[str]:
    """Paths of the files directly in a remote or local folder, sorted."""
    if not is_remote(folder):
        return sorted(os.path.join(folder, n) for n in os.listdir(folder))
    pattern = join(folder, '*')
    return sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)


def replace_dir(tmp_dir: str, output_dir: str, *, last: str) -> None:
    """Moves the finished `tmp_dir` to `output_dir`, replacing an old one only at the end.

    Local folders: `folders.publish` (renames), so readers see the old folder or the new one. Remote
    (object stores have no folder rename): the old folder's files are deleted, then each new
    file is renamed (copy + delete) with `last` (metadata.json) moved last, so a folder that
    holds `last` is complete.

    Args:
      tmp_dir: the finished folder.
      output_dir: where it goes.
      last: base name of the file to move last.
    """
    if not is_remote(output_dir):
        folders.publish(tmp_dir, output_dir)
        return
    if FileSystems.exists(output_dir) or FileSystems.exists(join(output_dir, last)):
        old_files = _tree(output_dir)
        # metadata.json first, so that a half-deleted folder no longer claims to be complete.
        old_files.sort(key=lambda p: not p.endswith('/' + last))
        if old_files:
            FileSystems.delete(old_files)
    sources = _tree(tmp_dir)
    sources.sort(key=lambda p: p == join(tmp_dir, last))
    start = len(tmp_dir.rstrip('/')) + 1  # Files in subfolders keep their relative paths.
    FileSystems.rename(sources, [join(output_dir, p[start:]) for p in sources])
    remove_dir(tmp_dir)


def _tree(folder: str) -> list[str]:
    """Paths of every file under a remote folder, those in its subfolders too, sorted."""
    pattern = folder.rstrip('/') + '/**'
    return sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)


def remove_dir(folder: str) -> None:
    """Deletes a folder and its files; best effort."""
    try:
        if not is_remote(folder):
            shutil.rmtree(folder, ignore_errors=True)
        elif FileSystems.exists(folder) or _tree(folder):
            files = _tree(folder)
            if files:
                FileSystems.delete(files)
            if FileSystems.exists(folder):
                FileSystems.delete([folder])
    except Exception:  # Cleaning up after a failure must not hide the failure.
        pass


def remove_stale_dirs(prefix: str) -> list[str]:
    """Removes the folders named `prefix` + 8 hex digits (the temporary folders of runs that
    were killed before they could remove their own); returns their paths, sorted."""
    name = re.compile(re.escape(prefix.rstrip('/').rsplit('/', 1)[-1]) + r'[0-9a-f]{8}$')
    if not is_remote(prefix):
        parent = os.path.dirname(prefix) or '.'
        found = sorted(
            os.path.join(parent, n)
            for n in os.listdir(parent)
            if name.match(n) and os.path.isdir(os.path.join(parent, n))
        )
    else:  # Object stores have no folders: the files under prefix*/.
        matches = FileSystems.match([prefix + '*/*'])[0].metadata_list
        found = sorted(
            {
                m.path[: len(prefix) + 8]
                for m in matches
                if name.match(m.path[: len(prefix) + 8].rsplit('/', 1)[-1])
            }
        )
    for folder in found:
        remove_dir(folder)
    return found


def make_dir(folder: str) -> None:
    if is_remote(folder):
        FileSystems.mkdirs(folder)
    else:
        os.makedirs(folder)


def write_into_place(output_dir: str, write: Callable[[str], _T], *, last: str) -> _T:
    """Runs `write(tmp_dir)` into a fresh temporary sibling of `output_dir` (local or remote),
    then moves the folder into place with `last` moved last (`replace_dir`); on any failure
    neither is left. Sibling folders that killed runs left behind (`<output>.tmp-<8 hex>`)
    are removed first, each with a warning."""
    if not is_remote(output_dir):
        os.makedirs(os.path.dirname(output_dir), exist_ok=True)
    for stale in remove_stale_dirs(output_dir.rstrip('/') + '.tmp-'):
        _LOGGER.warning(
            'removed %s, left by an earlier run into %s that did not finish', stale, output_dir
        )
    tmp_dir = f'{output_dir.rstrip("/")}.tmp-{secrets.token_hex(4)}'
    make_dir(tmp_dir)
    try:
        result = write(tmp_dir)
        replace_dir(tmp_dir, output_dir, last=last)
    except BaseException:
        remove_dir(tmp_dir)
        raise
    return result


def copy_tree_to_local(folder: str, local_dir: str) -> str:
    """Copies every file under a remote `folder` into `local_dir`, keeping their relative
    paths (a SavedModel's variables/ and assets/); returns `local_dir`.

    Raises:
      OSError: the folder holds no file or one cannot be read.
    """
    prefix = folder.rstrip('/') + '/'
    found = FileSystems.match([prefix + '**'])[0].metadata_list
    if not found:
        raise FileNotFoundError(f'{folder}: no such folder, or it is empty')
    for m in found:
        target = os.path.join(local_dir, os.path.dirname(m.path[len(prefix) :]))
        os.makedirs(target, exist_ok=True)
        copy_to_local(m.path, target)
    return local_dir
