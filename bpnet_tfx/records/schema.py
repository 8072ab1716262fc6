"""The record contract shared by the Beam writer and the tf.data reader.

This is the only module that spells a feature key, a dtype or a record shape. A record is one
`tf.train.Example` for one window. Version 2 (written by default) stores the sequence as one
uint8 token a base (`sequence.tokens`: A, C, G, T = 0..3, N = 4) of shape (stored_length,), and
each counts track (profile, expected, control) of shape (stored_output_length, tasks, strands)
in its `TrackEncoding`: a dtype (uint8/uint16/uint32 for integer counts, float32 otherwise) and
a layout, 'dense' (every value, C order) or 'sparse' (the gaps between the flat C-order indices
of the non-zero values, the first counted from 0, as uint16, or uint32 past 65,536 values; and
those values). Gaps rather than indices: mostly small numbers, so the shards compress about
twice as well. Version 1 stored the one-hot
sequence as uint8 (stored_length, 4) and every track as dense float32; it is still read.
stored_length = sequence_length + 2 * max_jitter and stored_output_length = output_length + 2 *
max_jitter; the two windows share their centre; output_length equals sequence_length unless the
model's input is wider than its output (the 2114 -> 1000 regime). Background records
(GC-matched regions away from peaks) carry KEY_IS_BACKGROUND = 1. The shapes and encodings are
not in the record; they live in `metadata.json` (`RecordsInfo`) next to the shards.
Writing and reading records from these definitions is codec.py's.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Mapping

import numpy as np

from bpnet_tfx.common.errors import BpnetError
from bpnet_tfx.genome.sequence import ALPHABET

SCHEMA_VERSION = 2  # What make_records writes.
READABLE_VERSIONS = (1, 2)

# Feature keys.
KEY_REGION_ID = 'region/id'  # bytes: 'chrom:start-end' of the centred window (no margin).
KEY_CHROM = 'region/chrom'  # bytes.
KEY_START = 'region/start'  # int64: 0-based start of the stored window (margin included).
KEY_TOKENS = 'sequence/tokens'  # v2 bytes: uint8 (stored_length,) tokens, N = 4.
KEY_ONE_HOT = 'sequence/one_hot'  # v1 bytes: uint8 (stored_length, 4), ACGT, N = zero row.
KEY_PROFILE = 'counts/profile'  # bytes: (stored_output_length, tasks, strands), its encoding.
KEY_EXPECTED = 'counts/expected'  # optional, as KEY_PROFILE: noise-free truth.
KEY_CONTROL = 'counts/control'  # optional, as KEY_PROFILE: control (input) counts.
KEY_IS_BACKGROUND = 'region/is_background'  # optional int64: 1 for a background region, else 0.
TRACK_KEYS = {'profile': KEY_PROFILE, 'expected': KEY_EXPECTED, 'control': KEY_CONTROL}
SPARSE_INDEX_SUFFIX = '/index'  # A sparse track is KEY + these two features.
SPARSE_VALUE_SUFFIX = '/value'

ONE_HOT_DTYPE = np.uint8
TOKEN_DTYPE = np.uint8
COUNTS_DTYPE = np.float32  # What readers hand on, whatever the stored dtype.
COUNT_DTYPES = ('uint8', 'uint16', 'uint32', 'float32')  # Stored dtypes, smallest first.
LAYOUTS = ('dense', 'sparse')
STRANDS = ('+', '-')  # plus then minus; reverse complement swaps them.

# Model targets and outputs: the names dataset.py gives targets and modeling/config.py outputs.
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
class TrackEncoding:
    """How one counts track is stored (version 2).

    Attributes:
      dtype: one of COUNT_DTYPES; an unsigned integer type holds integer counts up to its
        maximum, float32 any finite value.
      layout: 'dense' (every value) or 'sparse' (indices and values of the non-zero ones).
    """

    dtype: str = 'float32'
    layout: str = 'dense'

    def __post_init__(self):
        if self.dtype not in COUNT_DTYPES:
            raise SchemaError(f'counts dtype must be one of {COUNT_DTYPES}, got {self.dtype!r}')
        if self.layout not in LAYOUTS:
            raise SchemaError(f'counts layout must be one of {LAYOUTS}, got {self.layout!r}')

    @property
    def is_integer(self) -> bool:
        return self.dtype != 'float32'

    def to_dict(self) -> dict[str, str]:
        return {'dtype': self.dtype, 'layout': self.layout}


DEFAULT_ENCODING = TrackEncoding()


def smallest_count_dtype(max_value: float) -> str:
    """The smallest unsigned COUNT_DTYPES member that holds 0..`max_value`; float32 past
    uint32."""
    for name in COUNT_DTYPES[:-1]:
        if max_value <= np.iinfo(name).max:
            return name
    return 'float32'


def sparse_index_dtype(values_per_track: int) -> str:
    """The dtype of a sparse track's flat indices: uint16 up to 65,536 values, else uint32."""
    return 'uint16' if values_per_track <= 1 << 16 else 'uint32'


def sparse_keys(key: str) -> tuple[str, str]:
    """The (index gaps, value) feature keys of a sparse track stored under `key`."""
    return key + SPARSE_INDEX_SUFFIX, key + SPARSE_VALUE_SUFFIX


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
      track_encodings: per track ('profile', 'expected', 'control'), its TrackEncoding as a
        dict; a track not named is dense float32 (always so in version 1).
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
    track_encodings: Mapping[str, Mapping[str, str]] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if self.schema_version not in READABLE_VERSIONS:
            raise SchemaError(
                f'records of schema version {self.schema_version}; this code reads versions '
                f'{READABLE_VERSIONS}: remake the records with this version of make_records'
            )
        unknown = set(self.track_encodings) - set(TRACK_KEYS)
        if unknown:
            raise SchemaError(f'track_encodings names unknown tracks {sorted(unknown)}')
        # Only what differs from the default is kept, so equal encodings compare equal.
        encodings = {
            k: TrackEncoding(**v).to_dict()
            for k, v in self.track_encodings.items()
            if TrackEncoding(**v) != DEFAULT_ENCODING
        }
        if self.schema_version == 1 and encodings:
            raise SchemaError('schema version 1 stores every track as dense float32')
        object.__setattr__(self, 'track_encodings', encodings)
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

    def encoding(self, track: str) -> TrackEncoding:
        """How `track` ('profile', 'expected' or 'control') is stored."""
        return TrackEncoding(**self.track_encodings.get(track, {}))

    def stored_tracks(self) -> tuple[str, ...]:
        """The counts tracks every record holds, in TRACK_KEYS order."""
        present = {'profile': True, 'expected': self.has_expected, 'control': self.has_control}
        return tuple(t for t in TRACK_KEYS if present[t])

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
            'sequence': KEY_TOKENS if self.schema_version >= 2 else KEY_ONE_HOT,
            **{t: TRACK_KEYS[t] for t in self.stored_tracks()},
            'is_background': KEY_IS_BACKGROUND,
        }
        d['track_encodings'] = {t: self.encoding(t).to_dict() for t in self.stored_tracks()}
        d['sequence_encoding'] = (
            'uint8 tokens A,C,G,T,N = 0..4' if self.schema_version >= 2 else 'uint8 one-hot ACGT'
        )
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = 'metadata') -> 'RecordsInfo':
        version = d.get('schema_version')
        if version not in READABLE_VERSIONS:
            raise SchemaError(
                f'{where}: records of schema version {version}, this code reads versions '
                f'{", ".join(map(str, READABLE_VERSIONS))}; remake the records with this version '
                'of make_records'
            )
        names = {f.name for f in dataclasses.fields(cls)}
        try:
            return cls(**{k: v for k, v in d.items() if k in names})
        except (TypeError, SchemaError) as e:
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
