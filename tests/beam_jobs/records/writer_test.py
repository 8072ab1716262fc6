"""Tests of beam_jobs/records/writer.py against TensorFlow's own TFRecord reader and writer."""

from __future__ import annotations

import gzip
import os

import numpy as np
import pytest
import tensorflow as tf

from beam_jobs.records import writer as tfrecord_writer


def _records(seed: int = 0) -> list[bytes]:
    """Records of many sizes: empty, tiny, and larger than the writer's 1 MiB buffer."""
    rng = np.random.default_rng(seed)
    sizes = [0, 1, 7, 300, 5000, (1 << 20) + 3, 12_000, 0, 40]
    return [
        rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        if i % 2
        else bytes(n // 2) + rng.integers(0, 4, n - n // 2, dtype=np.uint8).tobytes()
        for i, n in enumerate(sizes)
    ]


def _read(path: str) -> list[bytes]:
    return [r.numpy() for r in tf.data.TFRecordDataset(path, compression_type='GZIP')]


@pytest.mark.parametrize('level', [0, 1, 3])
def test_tensorflow_reads_back_every_record(tmp_path, level):
    records = _records()
    path = str(tmp_path / 'x.tfrecord.gz')
    with tfrecord_writer.GzipTFRecordWriter(path, level) as writer:
        for record in records:
            writer.write(record)
    assert _read(path) == records


def test_framing_equals_tensorflows_uncompressed_file(tmp_path):
    records = _records(1)
    path = str(tmp_path / 'tf.tfrecord')
    with tf.io.TFRecordWriter(path) as writer:
        for record in records:
            writer.write(record)
    with open(path, 'rb') as f:
        expected = f.read()
    assert b''.join(piece for r in records for piece in tfrecord_writer.frame(r)) == expected
    ours = str(tmp_path / 'ours.tfrecord.gz')
    with tfrecord_writer.GzipTFRecordWriter(ours, 1) as writer:
        for record in records:
            writer.write(record)
    with open(ours, 'rb') as f:
        assert gzip.decompress(f.read()) == expected


def test_same_records_give_the_same_bytes(tmp_path):
    contents = []
    for name in ('a', 'b'):
        path = str(tmp_path / f'{name}.tfrecord.gz')
        with tfrecord_writer.GzipTFRecordWriter(path, 1) as writer:
            for record in _records(2):
                writer.write(record)
        with open(path, 'rb') as f:
            contents.append(f.read())
    assert contents[0] == contents[1]
    assert contents[0][:2] == b'\x1f\x8b' and contents[0][4:8] == bytes(4)  # gzip, mtime 0.


def test_no_records_is_a_valid_empty_file(tmp_path):
    path = str(tmp_path / 'empty.tfrecord.gz')
    tfrecord_writer.GzipTFRecordWriter(path, 1).close()
    assert _read(path) == []


def test_failure_inside_the_block_closes_the_file(tmp_path):
    path = str(tmp_path / 'x.tfrecord.gz')
    with pytest.raises(RuntimeError, match='boom'):
        with tfrecord_writer.GzipTFRecordWriter(path, 1) as writer:
            writer.write(b'abc')
            raise RuntimeError('boom')
    assert writer._file.closed and os.path.exists(path)


def test_masked_crc32c_known_value():
    # CRC32C('123456789') is 0xE3069283 (RFC 3720's check value); masked by TFRecord's rule.
    crc = 0xE3069283
    assert tfrecord_writer.masked_crc32c(b'123456789') == (
        (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF
    )


def test_error_of_the_compressing_thread_is_raised_by_the_writer(tmp_path):
    class FailingCompressor:
        def compress(self, data):
            raise OSError('disk full')

    writer = tfrecord_writer.GzipTFRecordWriter(str(tmp_path / 'x.tfrecord.gz'), 1)
    writer._compressor = FailingCompressor()
    writer.write(bytes(2 << 20))  # More than one buffer: goes to the thread.
    with pytest.raises(OSError, match='disk full'):
        writer.close()
    assert writer._file.closed and not writer._thread.is_alive()
