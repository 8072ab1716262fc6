"""Tests of beam_jobs/common/files.py helpers the records job relies on (local and remote)."""

from __future__ import annotations

from beam_jobs.common import files as files_lib


def test_read_range(tmp_path, fake_remote):
    (tmp_path / 'f.txt').write_bytes(b'0123456789')
    assert files_lib.read_range(str(tmp_path / 'f.txt'), 3, 4) == b'3456'
    root, prefix = fake_remote
    (root / 'f.txt').write_bytes(b'abcdefgh')
    assert files_lib.read_range(prefix + 'f.txt', 5, 10) == b'fgh'


def test_remove_stale_dirs_removes_only_temporary_folders_of_that_output(tmp_path):
    for name in (
        'records.tmp-0123abcd',
        'records.tmp-ffffffff',
        'records.tmp-nothex00',
        'records.old-0123abcd',
        'other.tmp-0123abcd',
        'records',
    ):
        (tmp_path / name).mkdir()
        (tmp_path / name / 'x').write_text('x')
    (tmp_path / 'records.tmp-00000000').write_text('a file, not a folder')
    removed = files_lib.remove_stale_dirs(str(tmp_path / 'records.tmp-'))
    assert removed == [
        str(tmp_path / 'records.tmp-0123abcd'),
        str(tmp_path / 'records.tmp-ffffffff'),
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        'other.tmp-0123abcd',
        'records',
        'records.old-0123abcd',
        'records.tmp-00000000',
        'records.tmp-nothex00',
    ]


def test_remove_stale_dirs_on_a_remote_file_system(fake_remote):
    root, prefix = fake_remote
    for name in ('bucket/records.tmp-0123abcd', 'bucket/records.tmp-xyz', 'bucket/records'):
        (root / name).mkdir(parents=True)
        (root / name / 'part').write_text('x')
    assert files_lib.remove_stale_dirs(prefix + 'bucket/records.tmp-') == [
        prefix + 'bucket/records.tmp-0123abcd'
    ]
    assert sorted(p.name for p in (root / 'bucket').iterdir()) == ['records', 'records.tmp-xyz']
