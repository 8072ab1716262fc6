"""A GZIP TFRecord file writer without TensorFlow: ISA-L deflate + google-crc32c.

Beam workers that import TensorFlow just for `tf.io.TFRecordWriter` pay 3+ s per process. The
TFRecord framing is simple: per record, its length (uint64, little-endian), the masked CRC32C
of those 8 bytes (uint32 LE), the record, the masked CRC32C of the record (uint32 LE). The file
is one gzip stream (no file name, mtime 0), which
`tf.data.TFRecordDataset(..., compression_type='GZIP')` reads. The same records at the same
level give the same bytes on every run.

Deflate is ISA-L's (`isal.isal_zlib`, zlib's interface): on our records its level 1 compresses
about 4-5x faster than zlib's level 1 and its files are about 15% smaller (zlib's level 1 alone
took longer than all the rest of the job; benchmarks/bench_make_records.py). Its levels are 0-3.
"""

from __future__ import annotations

import struct
from typing import BinaryIO

import google_crc32c
from isal import isal_zlib

_MASK_DELTA = 0xA282EAD8
_BUFFER_BYTES = 1 << 20  # Framed bytes gathered before each compress call.


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC32C of `data` (rotated right by 15 bits plus a constant)."""
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def frame(record: bytes) -> tuple[bytes, bytes, bytes, bytes]:
    """The four pieces of one record in TFRecord framing; joined, 16 bytes more than it."""
    length = struct.pack('<Q', len(record))
    return (length, struct.pack('<I', masked_crc32c(length)), record,
            struct.pack('<I', masked_crc32c(record)))


class GzipTFRecordWriter:
    """Writes records to a GZIP-compressed TFRecord file; a context manager.

    Framed records are gathered into about 1 MiB before each compress call, so deflate runs on
    large buffers (and releases the GIL for them). The file is complete only after `close()`.
    """

    def __init__(self, path: str, compression_level: int):
        """Args:
          path: local path of the file to write (replaced if present).
          compression_level: ISA-L deflate level, 0 to 3.
        """
        self._file: BinaryIO = open(path, 'wb')
        self._compressor = isal_zlib.compressobj(compression_level, isal_zlib.DEFLATED,
                                                 16 + isal_zlib.MAX_WBITS)
        self._pending: list[bytes] = []
        self._pending_bytes = 0

    def write(self, record: bytes) -> None:
        self._pending += frame(record)
        self._pending_bytes += len(record)
        if self._pending_bytes >= _BUFFER_BYTES:
            self._flush_pending()

    def _flush_pending(self) -> None:
        if self._pending:
            self._file.write(self._compressor.compress(b''.join(self._pending)))
            self._pending, self._pending_bytes = [], 0

    def close(self) -> None:
        if self._file.closed:
            return
        try:
            self._flush_pending()
            self._file.write(self._compressor.flush())
        finally:
            self._file.close()

    def __enter__(self) -> 'GzipTFRecordWriter':
        return self

    def __exit__(self, *exc_info) -> None:
        if exc_info[0] is None:
            self.close()
        else:  # Failing: close the handle; the caller's temporary folder goes away.
            self._file.close()
