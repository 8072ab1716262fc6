"""The protobuf bytes of a `tf.train.Example`, written without TensorFlow.

Beam workers serialise records with this module so that they never import TensorFlow (3+ s per
process). The messages and their field numbers (tensorflow/core/example/{example,feature}.proto),
every one a length-delimited field (wire type 2): Example{features = 1}; Features{map<string,
Feature> feature = 1}, each map entry a message {key = 1, value = 2}; Feature{bytes_list = 1,
int64_list = 3}; BytesList{repeated bytes value = 1}; Int64List{repeated int64 value = 1,
packed}. Entries go in key order, as `SerializeToString(deterministic=True)` writes them, so the
bytes equal TensorFlow's. Each message is written as its small header pieces plus the payload,
joined once at the end. Which keys a record holds is schema.py's business, not this module's.
"""

from __future__ import annotations

import functools
from typing import Mapping

_ONE_BYTE = tuple(bytes((i,)) for i in range(0x80))


def _varint(n: int) -> bytes:
    """Base-128 varint of a uint64; a negative int64 as its two's complement (10 bytes)."""
    if 0 <= n < 0x80:
        return _ONE_BYTE[n]
    n &= 0xFFFF_FFFF_FFFF_FFFF
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _tag(number: int) -> bytes:
    """The key of length-delimited field `number` (< 16, so one byte)."""
    return _ONE_BYTE[(number << 3) | 2]


@functools.lru_cache(maxsize=1024)
def _entry_header(key: str, list_number: int, list_length: int) -> bytes:
    """What precedes a List message's own bytes in one Features.feature map entry:
    entry{key = 1: `key`, value = 2: Feature{`list_number`: List (`list_length` bytes)}}.
    Cached: within a job, the keys and most lengths repeat."""
    encoded = key.encode()
    feature = _tag(list_number) + _varint(list_length)
    feature_length = len(feature) + list_length
    entry = _tag(1) + _varint(len(encoded)) + encoded + _tag(2) + _varint(feature_length)
    return _tag(1) + _varint(len(entry) + feature_length) + entry + feature


def bytes_entry(key: str, value) -> tuple[bytes, ...]:
    """The pieces of entry `key` -> Feature{bytes_list: BytesList{value: [value]}}."""
    size = len(value)
    value_header = _tag(1) + _varint(size)
    return (_entry_header(key, 1, len(value_header) + size), value_header, value)


def int64_entry(key: str, value: int) -> tuple[bytes, ...]:
    """The pieces of entry `key` -> Feature{int64_list: Int64List{value: [value]}} (packed)."""
    packed = _varint(value)
    values = _tag(1) + _varint(len(packed)) + packed
    return (_entry_header(key, 3, len(values)), values)


@functools.lru_cache(maxsize=64)
def _key_order(keys: tuple[str, ...]) -> tuple[str, ...]:
    """`keys` in the order of their UTF-8 bytes, as protobuf's deterministic map order."""
    return tuple(sorted(keys, key=str.encode))


def serialize(entries: Mapping[str, tuple[bytes, ...]]) -> bytes:
    """Joins `bytes_entry`/`int64_entry` pieces, keyed by feature key, into an Example: the
    bytes of `tf.train.Example(...).SerializeToString(deterministic=True)`."""
    pieces = [piece for key in _key_order(tuple(entries)) for piece in entries[key]]
    size = sum(map(len, pieces))
    return b''.join([_tag(1), _varint(size)] + pieces)  # Example{features: Features{...}}.
