"""A fake remote file system ('fakegs://', a local folder behind Beam's FileSystems) and its
`fake_remote` fixture, for tests of remote inputs and outputs; loaded by conftest.py."""

from __future__ import annotations

import os

import pytest
from apache_beam.io.filesystem import FileMetadata, FileSystem
from apache_beam.io.localfilesystem import LocalFileSystem

FAKE_SCHEME = 'fakegs'


class FakeRemoteFileSystem(FileSystem):
    """A remote file system for tests: `fakegs://x` is `ROOT/x`, with no folder rename.

    Registered with Beam's FileSystems by being a subclass; ROOT is set by the fixture.
    """

    ROOT = None

    def __init__(self, pipeline_options=None):
        super().__init__(pipeline_options)
        self._fs = LocalFileSystem(pipeline_options)

    @classmethod
    def scheme(cls):
        return FAKE_SCHEME

    def _local(self, path):
        return os.path.join(self.ROOT, path[len(FAKE_SCHEME) + 3 :])

    def _remote(self, local):
        return f'{FAKE_SCHEME}://' + os.path.relpath(local, self.ROOT)

    def join(self, basepath, *paths):
        return '/'.join([basepath.rstrip('/')] + [p.strip('/') for p in paths])

    def split(self, path):
        head, _, tail = path.rstrip('/').rpartition('/')
        return head, tail

    def mkdirs(self, path):
        os.makedirs(self._local(path), exist_ok=True)

    def has_dirs(self):
        return False  # Like an object store.

    def _list(self, dir_or_prefix):
        local = self._local(dir_or_prefix)
        folder = local if os.path.isdir(local) else os.path.dirname(local)
        for dirpath, _, names in os.walk(folder):
            for name in names:
                path = os.path.join(dirpath, name)
                if path.startswith(local):
                    yield FileMetadata(
                        self._remote(path), os.path.getsize(path), os.path.getmtime(path)
                    )

    def create(self, path, *args, **kwargs):
        os.makedirs(os.path.dirname(self._local(path)), exist_ok=True)
        return self._fs.create(self._local(path), *args, **kwargs)

    def open(self, path, *args, **kwargs):
        return self._fs.open(self._local(path), *args, **kwargs)

    def copy(self, sources, destinations):
        for d in destinations:  # Objects need no parent folder.
            os.makedirs(os.path.dirname(self._local(d)), exist_ok=True)
        self._fs.copy([self._local(p) for p in sources], [self._local(p) for p in destinations])

    def rename(self, sources, destinations):
        for s, d in zip(sources, destinations):
            if os.path.isdir(self._local(s)):
                raise OSError(f'{s}: an object store cannot rename a folder')
            self.copy([s], [d])
            self.delete([s])

    def exists(self, path):
        return os.path.exists(self._local(path))

    def size(self, path):
        return os.path.getsize(self._local(path))

    def last_updated(self, path):
        return os.path.getmtime(self._local(path))

    def checksum(self, path):
        return str(self.size(path))

    def metadata(self, path):
        return FileMetadata(path, self.size(path), self.last_updated(path))

    def delete(self, paths):
        self._fs.delete([self._local(p) for p in paths])


@pytest.fixture
def fake_remote(tmp_path):
    """Returns (root folder, 'fakegs://' prefix) of a fresh fake remote file system."""
    root = tmp_path / 'remote'
    root.mkdir()
    FakeRemoteFileSystem.ROOT = str(root)
    return root, f'{FAKE_SCHEME}://'
