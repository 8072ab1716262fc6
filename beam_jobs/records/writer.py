"""A GZIP TFRecord file writer without TensorFlow: ISA-L deflate + google-crc32c.

Beam workers that import TensorFlow just for `tf.io.TFRecordWriter` pay 3+ s per process. The
TFRecord framing is simple: per record, its length (uint64, little-endian), the masked CRC32C
of those 8 bytes (uint32 LE), the record, the masked CRC32C of the record (uint32 LE). The file
is one gzip stream (no file name, mtime 0), which
`tf.data.TFRecordDataset(..., compression_type='GZIP')` reads. The same records at the same
level give the same bytes on every run.

Deflate is ISA-L's (`isal.isal_zlib`, zlib's interface): on our records it compresses faster
than zlib's level 1 and into smaller files (docs/benchmarks.md has the measurements,
benchmarks/bench_make_records.py makes them). Its levels are 0-3.
"""

from __future__ import annotations

import queue
import struct
import threading
from typing import BinaryIO

import google_crc32c
from isal import isal_zlib

_MASK_DELTA = 0xA282EAD8
_BUFFER_BYTES = 1 << 20  # Framed bytes gathered before each compress call.
_QUEUED = 4  # Buffers waiting for the compressing thread at most.


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC32C of `data` (rotated right by 15 bits plus a constant)."""
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def frame(record: bytes) -> tuple[bytes, bytes, bytes, bytes]:
    """The four pieces of one record in TFRecord framing; joined, 16 bytes more than it."""
    length = struct.pack('<Q', len(record))
    return (
        length,
        struct.pack('<I', masked_crc32c(length)),
        record,
        struct.pack('<I', masked_crc32c(record)),
    )


class GzipTFRecordWriter:
    """Writes records to a GZIP-compressed TFRecord file; a context manager.

    Framed records are gathered into about 1 MiB buffers, which a background thread compresses
    and writes in order (ISA-L releases the GIL), so compression runs on the second core while
    the caller reads and encodes the next records. At most `_QUEUED` buffers wait, so memory
    stays a few MiB. The file is complete only after `close()`, which re-raises any error of
    the thread.
    """

    def __init__(self, path: str, compression_level: int):
        """Args:
        path: local path of the file to write (replaced if present).
        compression_level: ISA-L deflate level, 0 to 3.
        """
        self._file: BinaryIO = open(path, 'wb')
        self._compressor = isal_zlib.compressobj(
            compression_level, isal_zlib.DEFLATED, 16 + isal_zlib.MAX_WBITS
        )
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=_QUEUED)
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._compress_and_write, daemon=True, name='GzipTFRecordWriter'
        )
        self._thread.start()

    def _compress_and_write(self) -> None:
        while (buffer := self._queue.get()) is not None:
            if self._error is None:  # After an error, only drain so that put() never blocks.
                try:
                    self._file.write(self._compressor.compress(buffer))
                except BaseException as e:  # Re-raised by the caller's next write or close.
                    self._error = e

    def write(self, record: bytes) -> None:
        self._pending += frame(record)
        self._pending_bytes += len(record)
        if self._pending_bytes >= _BUFFER_BYTES:
            self._flush_pending()

    def _flush_pending(self) -> None:
        if self._error is not None:
            raise self._error
        if self._pending:
            self._queue.put(b''.join(self._pending))
            self._pending, self._pending_bytes = [], 0

    def _stop(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def close(self) -> None:
        if self._file.closed:
            return
        try:
            self._flush_pending()
            self._stop()
            if self._error is not None:
                raise self._error
            self._file.write(self._compressor.flush())
        finally:
            self._stop()
            self._file.close()

    def __enter__(self) -> 'GzipTFRecordWriter':
        return self

    def __exit__(self, *exc_info) -> None:
        if exc_info[0] is None:
            self.close()
        else:  # Failing: stop the thread, close the handle; the caller's temporary folder goes.
            self._stop()
            self._file.close()
