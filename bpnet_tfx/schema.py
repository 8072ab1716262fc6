"""The record contract shared by the Beam writer and the tf.data reader.

This is the only module that spells a feature key, a dtype or a record shape. A record is one
`tf.train.Example` for one window: the one-hot sequence as uint8 bytes of shape
(stored_length, 4) and the stranded counts as float32 bytes of shape
(stored_output_length, tasks, strands), where stored_length = sequence_length + 2 * max_jitter
and stored_output_length = output_length + 2 * max_jitter. The two windows share their centre;
output_length equals sequence_length unless the model's input is wider than its output (the
2114 -> 1000 regime). Background records (GC-matched regions away from peaks) carry
KEY_IS_BACKGROUND = 1. The shapes are not in the record; they live in `metadata.json`
(`RecordsInfo`) next to the shards.
`encode_record` writes the Example's protobuf bytes without TensorFlow; TensorFlow is imported
inside the functions that need it (decoding, parse specs) so that Beam workers import this
module cheaply and never load TensorFlow.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from typing import Any, Mapping

import numpy as np

from bpnet_tfx.errors import BpnetError
from bpnet_tfx.sequence import ALPHABET

SCHEMA_VERSION = 1

# Feature keys.
KEY_REGION_ID = 'region/id'  # bytes: 'chrom:start-end' of the centred window (no margin).
KEY_CHROM = 'region/chrom'  # bytes.
KEY_START = 'region/start'  # int64: 0-based start of the stored window (margin included).
KEY_ONE_HOT = 'sequence/one_hot'  # bytes: uint8 (stored_length, 4), ACGT, N = zero row.
KEY_PROFILE = 'counts/profile'  # bytes: float32 (stored_length, tasks, strands).
KEY_EXPECTED = 'counts/expected'  # optional bytes: float32, as KEY_PROFILE; noise-free truth.
KEY_CONTROL = 'counts/control'  # optional bytes: float32, as KEY_PROFILE; control (input) counts.
KEY_IS_BACKGROUND = 'region/is_background'  # optional int64: 1 for a background region, else 0.

ONE_HOT_DTYPE = np.uint8
COUNTS_DTYPE = np.float32
STRANDS = ('+', '-')  # plus then minus; reverse complement swaps them.

# Model targets and outputs: the names data.py gives targets and model.py gives outputs.
TARGET_PROFILE = 'profile'  # counts (batch, length[, tasks], strands); model: logits.
TARGET_LOG_COUNTS = 'log_counts'  # log(1 + total counts) (batch[, tasks], strands).

SPLITS = ('train', 'valid', 'test')
METADATA_FILENAME = 'metadata.json'
SHARD_SUFFIX = '.tfrecord.gz'
COMPRESSION = 'GZIP'


class SchemaError(BpnetError):
    """Records or metadata that do not follow this schema."""


def shard_filename(split: str, index: int, num_shards: int) -> str:
    """Returns the file name of one shard, e.g. 'train-00003-of-00016.tfrecord.gz'."""
    return f'{split}-{index:05d}-of-{num_shards:05d}{SHARD_SUFFIX}'


def shard_pattern(records_dir: str, split: str) -> str:
    """Returns the glob pattern matching every shard of `split` in `records_dir`."""
    return os.path.join(records_dir, f'{split}-?????-of-?????{SHARD_SUFFIX}')


@dataclasses.dataclass(frozen=True)
class RecordsInfo:
    """What `metadata.json` says about a records folder.

    Attributes:
      sequence_length: the model's input window length L in bp.
      max_jitter: margin J stored on each side; stored sequence windows are L + 2J long.
      tasks: task names, in the order of the counts' task axis.
      strands: strand names, in the order of the counts' strand axis.
      split_counts: records written per split.
      num_shards: shard files per split.
      has_expected: whether records hold KEY_EXPECTED (simulated data only).
      has_control: whether records hold KEY_CONTROL: per task, control (input, PAtCh-CAP)
        counts with the same (stored_length, tasks, strands) layout as the profile.
      median_total_counts: per task, the median over training records of the total counts
        (both strands) in the centred window; used for `counts_loss_weight=auto`.
      source: how the records were made (input files, flags, time, versions, drops).
      schema_version: the version these records follow.
      output_length: the counts window length O in bp, centred in the input window (stored
        O + 2J long); 0 means equal to sequence_length.
      has_background: whether records hold KEY_IS_BACKGROUND (make_records
        --background_ratio > 0); split_counts then include background records, and
        background_counts gives how many of them each split holds.
      background_counts: background records per split.
    """

    sequence_length: int
    max_jitter: int
    tasks: tuple[str, ...]
    strands: tuple[str, ...] = STRANDS
    split_counts: Mapping[str, int] = dataclasses.field(default_factory=dict)
    num_shards: Mapping[str, int] = dataclasses.field(default_factory=dict)
    has_expected: bool = False
    has_control: bool = False
    median_total_counts: tuple[float, ...] = ()
    source: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION
    output_length: int = 0
    has_background: bool = False
    background_counts: Mapping[str, int] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if self.sequence_length <= 0:
            raise SchemaError(f'sequence_length must be positive, got {self.sequence_length}')
        if self.output_length == 0:
            object.__setattr__(self, 'output_length', self.sequence_length)
        if not 0 < self.output_length <= self.sequence_length or (
            (self.sequence_length - self.output_length) % 2
        ):
            raise SchemaError(
                f'output_length must be in 1..sequence_length ({self.sequence_length}) and '
                f'differ from it by an even number, got {self.output_length}'
            )
        if self.max_jitter < 0:
            raise SchemaError(f'max_jitter must be >= 0, got {self.max_jitter}')
        if not self.tasks:
            raise SchemaError('at least one task is needed')
        object.__setattr__(self, 'tasks', tuple(self.tasks))
        object.__setattr__(self, 'strands', tuple(self.strands))
        object.__setattr__(self, 'median_total_counts', tuple(self.median_total_counts))

    @property
    def stored_length(self) -> int:
        return self.sequence_length + 2 * self.max_jitter

    @property
    def stored_output_length(self) -> int:
        return self.output_length + 2 * self.max_jitter

    @property
    def output_offset(self) -> int:
        """Bases between the input window's start and the output window's start."""
        return (self.sequence_length - self.output_length) // 2

    @property
    def num_tasks(self) -> int:
        return len(self.tasks)

    @property
    def num_strands(self) -> int:
        return len(self.strands)

    @property
    def one_hot_shape(self) -> tuple[int, int]:
        return (self.stored_length, len(ALPHABET))

    @property
    def profile_shape(self) -> tuple[int, int, int]:
        return (self.stored_output_length, self.num_tasks, self.num_strands)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d['tasks'] = list(self.tasks)
        d['strands'] = list(self.strands)
        d['median_total_counts'] = list(self.median_total_counts)
        d['split_counts'] = dict(self.split_counts)
        d['background_counts'] = dict(self.background_counts)
        d['num_shards'] = dict(self.num_shards)
        d['source'] = dict(self.source)
        d['stored_length'] = self.stored_length
        d['stored_output_length'] = self.stored_output_length
        d['feature_keys'] = {
            'region_id': KEY_REGION_ID,
            'chrom': KEY_CHROM,
            'start': KEY_START,
            'one_hot': KEY_ONE_HOT,
            'profile': KEY_PROFILE,
            'expected': KEY_EXPECTED,
            'control': KEY_CONTROL,
            'is_background': KEY_IS_BACKGROUND,
        }
        d['dtypes'] = {'one_hot': 'uint8', 'profile': 'float32', 'is_background': 'int64'}
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = 'metadata') -> 'RecordsInfo':
        version = d.get('schema_version')
        if version != SCHEMA_VERSION:
            raise SchemaError(
                f'{where}: records of schema version {version}, this code reads version '
                f'{SCHEMA_VERSION}; remake the records with this version of make_records'
            )
        names = {f.name for f in dataclasses.fields(cls)}
        try:
            return cls(**{k: v for k, v in d.items() if k in names})
        except TypeError as e:
            raise SchemaError(f'{where}: {e}') from None

    def save(self, records_dir: str) -> str:
        """Writes metadata.json into `records_dir` and returns its path."""
        path = os.path.join(records_dir, METADATA_FILENAME)
        with open(path, 'w') as f:
            json.dump(self.to_dict(), f, indent=2, sort_keys=True)
            f.write('\n')
        return path

    @classmethod
    def load(cls, records_dir_or_file: str) -> 'RecordsInfo':
        """Reads metadata.json from a records folder (or the file itself).

        Raises:
          SchemaError: the file is missing, not JSON, or of another schema version.
        """
        path = records_dir_or_file
        if os.path.isdir(path):
            path = os.path.join(path, METADATA_FILENAME)
        try:
            with open(path) as f:
                d = json.load(f)
        except FileNotFoundError:
            raise SchemaError(
                f'{path}: not found; is this a records folder written by make_records?'
            ) from None
        except (OSError, json.JSONDecodeError) as e:
            raise SchemaError(f'{path}: cannot read metadata: {e}') from None
        return cls.from_dict(d, where=path)


# --- Example wire format -------------------------------------------------------------------------
# encode_record writes the protobuf bytes of a tf.train.Example itself, so that Beam workers never
# import TensorFlow (3+ s per process). The messages and their field numbers
# (tensorflow/core/example/{example,feature}.proto), every one a length-delimited field (wire
# type 2): Example{features = 1}; Features{map<string, Feature> feature = 1}, each map entry a
# message {key = 1, value = 2}; Feature{bytes_list = 1, int64_list = 3}; BytesList{repeated
# bytes value = 1}; Int64List{repeated int64 value = 1, packed}. Entries go in key order, as
# `SerializeToString(deterministic=True)` writes them, so the bytes equal TensorFlow's. Each
# message is written as its small header pieces plus the payload, joined once at the end.


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


def _bytes_entry(key: str, value) -> tuple[bytes, ...]:
    """The pieces of entry `key` -> Feature{bytes_list: BytesList{value: [value]}}."""
    size = len(value)
    value_header = _tag(1) + _varint(size)
    return (_entry_header(key, 1, len(value_header) + size), value_header, value)


def _int64_entry(key: str, value: int) -> tuple[bytes, ...]:
    """The pieces of entry `key` -> Feature{int64_list: Int64List{value: [value]}} (packed)."""
    packed = _varint(value)
    values = _tag(1) + _varint(len(packed)) + packed
    return (_entry_header(key, 3, len(values)), values)


def _array_bytes(array: np.ndarray, dtype) -> bytes:
    """The C-order bytes of `array` as `dtype`."""
    return np.asarray(array).astype(dtype, copy=False).tobytes()


def encode_record(
    region_id: str,
    chrom: str,
    start: int,
    one_hot: np.ndarray,
    profile: np.ndarray,
    expected: np.ndarray | None = None,
    control: np.ndarray | None = None,
    is_background: bool | None = None,
) -> bytes:
    """Serialises one window as a `tf.train.Example` (without importing TensorFlow).

    Args:
      region_id: 'chrom:start-end' of the centred window.
      chrom: chromosome name.
      start: 0-based start of the stored window (jitter margin included).
      one_hot: (stored_length, 4) array of 0/1, ACGT order, N rows all zero.
      profile: (stored_output_length, tasks, strands) counts, plus strand first; centred in
        the sequence window, so stored_length - stored_output_length is even and >= 0.
      expected: optional array shaped like `profile` with noise-free intensities.
      control: optional array shaped like `profile` with control counts.
      is_background: when not None, KEY_IS_BACKGROUND is written (1 for background).

    Returns:
      The serialised Example: the bytes of
      `tf.train.Example(...).SerializeToString(deterministic=True)`, the same in every process.

    Raises:
      SchemaError: arrays of the wrong rank, length or alphabet size.
    """
    one_hot = np.asarray(one_hot)
    profile = np.asarray(profile)
    if one_hot.ndim != 2 or one_hot.shape[1] != len(ALPHABET):
        raise SchemaError(f'{region_id}: one_hot must be (length, 4), got {one_hot.shape}')
    if (
        profile.ndim != 3
        or not 0 < profile.shape[0] <= one_hot.shape[0]
        or (one_hot.shape[0] - profile.shape[0]) % 2
    ):
        raise SchemaError(
            f'{region_id}: profile must be (length <= {one_hot.shape[0]}, centred, tasks, '
            f'strands), got {profile.shape}'
        )
    feature = {
        KEY_REGION_ID: _bytes_entry(KEY_REGION_ID, region_id.encode()),
        KEY_CHROM: _bytes_entry(KEY_CHROM, chrom.encode()),
        KEY_START: _int64_entry(KEY_START, int(start)),
        KEY_ONE_HOT: _bytes_entry(KEY_ONE_HOT, _array_bytes(one_hot, ONE_HOT_DTYPE)),
        KEY_PROFILE: _bytes_entry(KEY_PROFILE, _array_bytes(profile, COUNTS_DTYPE)),
    }
    for key, name, extra in (
        (KEY_EXPECTED, 'expected', expected),
        (KEY_CONTROL, 'control', control),
    ):
        if extra is None:
            continue
        extra = np.asarray(extra)
        if extra.shape != profile.shape:
            raise SchemaError(
                f'{region_id}: {name} shape {extra.shape} differs from '
                f'profile shape {profile.shape}'
            )
        feature[key] = _bytes_entry(key, _array_bytes(extra, COUNTS_DTYPE))
    if is_background is not None:
        feature[KEY_IS_BACKGROUND] = _int64_entry(KEY_IS_BACKGROUND, int(bool(is_background)))
    pieces = [piece for key in _key_order(tuple(feature)) for piece in feature[key]]
    size = sum(map(len, pieces))
    return b''.join([_tag(1), _varint(size)] + pieces)  # Example{features: Features{...}}.


@functools.lru_cache(maxsize=64)
def _key_order(keys: tuple[str, ...]) -> tuple[str, ...]:
    """`keys` in the order of their UTF-8 bytes, as protobuf's deterministic map order."""
    return tuple(sorted(keys, key=str.encode))


def feature_spec(info: RecordsInfo) -> dict[str, Any]:
    """Returns the `tf.io.parse_example` spec for records described by `info`."""
    import tensorflow as tf

    spec = {
        KEY_REGION_ID: tf.io.FixedLenFeature([], tf.string),
        KEY_CHROM: tf.io.FixedLenFeature([], tf.string),
        KEY_START: tf.io.FixedLenFeature([], tf.int64),
        KEY_ONE_HOT: tf.io.FixedLenFeature([], tf.string),
        KEY_PROFILE: tf.io.FixedLenFeature([], tf.string),
    }
    if info.has_expected:
        spec[KEY_EXPECTED] = tf.io.FixedLenFeature([], tf.string)
    if info.has_control:
        spec[KEY_CONTROL] = tf.io.FixedLenFeature([], tf.string)
    if info.has_background:
        spec[KEY_IS_BACKGROUND] = tf.io.FixedLenFeature([], tf.int64)
    return spec


def decode_record(serialized: bytes, info: RecordsInfo) -> dict[str, Any]:
    """Decodes one serialised record into numpy arrays (for tests and tools, not training).

    Returns:
      A dict with 'region_id', 'chrom', 'start', 'one_hot' (uint8), 'profile' (float32) and,
      when present, 'expected', 'control' and 'is_background' (bool).

    Raises:
      SchemaError: a byte field whose size does not match `info`.
    """
    import tensorflow as tf

    example = tf.train.Example.FromString(serialized)
    f = example.features.feature
    region_id = f[KEY_REGION_ID].bytes_list.value[0].decode()

    def _array(key, dtype, shape):
        raw = f[key].bytes_list.value[0]
        arr = np.frombuffer(raw, dtype=dtype)
        if arr.size != int(np.prod(shape)):
            raise SchemaError(
                f'record {region_id}: {key} holds {arr.size} values, metadata says shape {shape}'
            )
        return arr.reshape(shape)

    out = {
        'region_id': region_id,
        'chrom': f[KEY_CHROM].bytes_list.value[0].decode(),
        'start': int(f[KEY_START].int64_list.value[0]),
        'one_hot': _array(KEY_ONE_HOT, ONE_HOT_DTYPE, info.one_hot_shape),
        'profile': _array(KEY_PROFILE, COUNTS_DTYPE, info.profile_shape),
    }
    for key, name in ((KEY_EXPECTED, 'expected'), (KEY_CONTROL, 'control')):
        if key in f:
            out[name] = _array(key, COUNTS_DTYPE, info.profile_shape)
    if KEY_IS_BACKGROUND in f:
        out['is_background'] = bool(f[KEY_IS_BACKGROUND].int64_list.value[0])
    return out
