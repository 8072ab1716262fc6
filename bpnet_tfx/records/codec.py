"""The record codec: one window's arrays to `tf.train.Example` bytes and back, as schema.py
defines them.

`encode_record` writes the Example's protobuf bytes without TensorFlow (`example_wire`), so Beam
workers import this module cheaply; TensorFlow is imported inside the functions that need it
(parse specs, decoding).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from bpnet_tfx.genome import sequence
from bpnet_tfx.genome.sequence import ALPHABET
from bpnet_tfx.records import wire as example_wire
from bpnet_tfx.records.schema import (
    COUNTS_DTYPE,
    DEFAULT_ENCODING,
    KEY_CHROM,
    KEY_IS_BACKGROUND,
    KEY_ONE_HOT,
    KEY_REGION_ID,
    KEY_START,
    KEY_TOKENS,
    ONE_HOT_DTYPE,
    READABLE_VERSIONS,
    SCHEMA_VERSION,
    TOKEN_DTYPE,
    TRACK_KEYS,
    RecordsInfo,
    SchemaError,
    TrackEncoding,
    sparse_index_dtype,
    sparse_keys,
)


def _sequence_entry(region_id: str, seq: np.ndarray, version: int) -> tuple[str, tuple]:
    """The sequence feature of one record: tokens (v2) or one-hot (v1), from either form."""
    seq = np.asarray(seq)
    if seq.ndim == 2 and seq.shape[1] == len(ALPHABET):
        if version == 1:
            return KEY_ONE_HOT, example_wire.bytes_entry(
                KEY_ONE_HOT, seq.astype(ONE_HOT_DTYPE, copy=False).tobytes()
            )
        try:
            seq = sequence.tokens_from_one_hot(seq)
        except ValueError as e:
            raise SchemaError(f'{region_id}: {e}') from None
    elif seq.ndim != 1:
        raise SchemaError(
            f'{region_id}: one_hot must be (length, 4) or tokens (length,), got {seq.shape}'
        )
    elif version == 1:
        seq = sequence.one_hot_from_tokens(seq)
        return KEY_ONE_HOT, example_wire.bytes_entry(KEY_ONE_HOT, seq.tobytes())
    tokens = seq.astype(TOKEN_DTYPE, copy=False)
    return KEY_TOKENS, example_wire.bytes_entry(KEY_TOKENS, tokens.tobytes())


def _stored_values(region_id: str, track: str, values: np.ndarray, enc: TrackEncoding):
    """`values` in the stored dtype, or SchemaError naming the first value it cannot hold."""
    stored = values.astype(enc.dtype)
    if enc.is_integer and not np.array_equal(stored, values):
        flat = values.ravel()
        bad = int(np.flatnonzero(stored.ravel() != flat)[0])
        raise SchemaError(
            f'{region_id}: {track} value {flat[bad]:g} (flat index {bad}) is not an integer '
            f'in 0..{np.iinfo(enc.dtype).max}, as {enc.dtype} counts must be'
        )
    return stored


def _track_entries(region_id: str, track: str, values: np.ndarray, enc: TrackEncoding) -> dict:
    """The feature entries of one counts track in encoding `enc`."""
    key = TRACK_KEYS[track]
    stored = _stored_values(region_id, track, values, enc)
    if enc.layout == 'dense':
        return {key: example_wire.bytes_entry(key, stored.tobytes())}
    flat = stored.ravel()
    nonzero = np.flatnonzero(flat)
    index_key, value_key = sparse_keys(key)
    gaps = np.diff(nonzero, prepend=0).astype(sparse_index_dtype(flat.size))
    return {
        index_key: example_wire.bytes_entry(index_key, gaps.tobytes()),
        value_key: example_wire.bytes_entry(value_key, flat[nonzero].tobytes()),
    }


def _tracks_entries(
    region_id: str,
    tracks: Mapping[str, np.ndarray | None],
    encodings: Mapping[str, TrackEncoding],
    version: int,
) -> dict:
    """The feature entries of every given track, each shaped like the profile."""
    profile = tracks['profile']
    entries = {}
    for track, values in tracks.items():
        if values is None:
            continue
        values = np.asarray(values)
        if values.shape != profile.shape:
            raise SchemaError(
                f'{region_id}: {track} shape {values.shape} differs from '
                f'profile shape {profile.shape}'
            )
        enc = DEFAULT_ENCODING if version == 1 else encodings.get(track, DEFAULT_ENCODING)
        entries.update(_track_entries(region_id, track, values, enc))
    return entries


def encode_record(
    region_id: str,
    chrom: str,
    start: int,
    one_hot: np.ndarray,
    profile: np.ndarray,
    expected: np.ndarray | None = None,
    control: np.ndarray | None = None,
    is_background: bool | None = None,
    *,
    encodings: Mapping[str, TrackEncoding] | None = None,
    version: int = SCHEMA_VERSION,
) -> bytes:
    """Serialises one window as a `tf.train.Example` (without importing TensorFlow).

    Args:
      region_id: 'chrom:start-end' of the centred window.
      chrom: chromosome name.
      start: 0-based start of the stored window (jitter margin included).
      one_hot: the stored window's sequence: (stored_length, 4) one-hot in ACGT order (N rows
        all zero) or (stored_length,) tokens (`sequence.tokens`).
      profile: (stored_output_length, tasks, strands) counts, plus strand first; centred in
        the sequence window, so stored_length - stored_output_length is even and >= 0.
      expected: optional array shaped like `profile` with noise-free intensities.
      control: optional array shaped like `profile` with control counts.
      is_background: when not None, KEY_IS_BACKGROUND is written (1 for background).
      encodings: per track, its TrackEncoding (version 2); missing tracks are dense float32.
      version: the schema version to write, 1 or 2.

    Returns:
      The serialised Example: the bytes of
      `tf.train.Example(...).SerializeToString(deterministic=True)`, the same in every process.

    Raises:
      SchemaError: arrays of the wrong rank, length or alphabet size, or a value the track's
        integer dtype cannot hold.
    """
    if version not in READABLE_VERSIONS:
        raise SchemaError(f'cannot write schema version {version}')
    seq_key, seq_entry = _sequence_entry(region_id, one_hot, version)
    length = len(np.asarray(one_hot))
    profile = np.asarray(profile)
    if profile.ndim != 3 or not 0 < profile.shape[0] <= length or (length - profile.shape[0]) % 2:
        raise SchemaError(
            f'{region_id}: profile must be (length <= {length}, centred, tasks, '
            f'strands), got {profile.shape}'
        )
    feature = {
        KEY_REGION_ID: example_wire.bytes_entry(KEY_REGION_ID, region_id.encode()),
        KEY_CHROM: example_wire.bytes_entry(KEY_CHROM, chrom.encode()),
        KEY_START: example_wire.int64_entry(KEY_START, int(start)),
        seq_key: seq_entry,
    }
    tracks = {'profile': profile, 'expected': expected, 'control': control}
    feature.update(_tracks_entries(region_id, tracks, encodings or {}, version))
    if is_background is not None:
        feature[KEY_IS_BACKGROUND] = example_wire.int64_entry(
            KEY_IS_BACKGROUND, int(bool(is_background))
        )
    return example_wire.serialize(feature)


def sequence_key(info: RecordsInfo) -> str:
    """The sequence feature of the records `info` describes: KEY_TOKENS or (v1) KEY_ONE_HOT."""
    return KEY_TOKENS if info.schema_version >= 2 else KEY_ONE_HOT


def track_feature_keys(info: RecordsInfo, track: str) -> tuple[str, ...]:
    """The feature keys holding `track`: (key,) when dense, (index key, value key) when
    sparse."""
    key = TRACK_KEYS[track]
    return sparse_keys(key) if info.encoding(track).layout == 'sparse' else (key,)


def feature_spec(info: RecordsInfo) -> dict[str, Any]:
    """Returns the `tf.io.parse_example` spec for records described by `info`."""
    import tensorflow as tf

    keys = [KEY_REGION_ID, KEY_CHROM, sequence_key(info)]
    keys += [k for track in info.stored_tracks() for k in track_feature_keys(info, track)]
    spec = {key: tf.io.FixedLenFeature([], tf.string) for key in keys}
    spec[KEY_START] = tf.io.FixedLenFeature([], tf.int64)
    if info.has_background:
        spec[KEY_IS_BACKGROUND] = tf.io.FixedLenFeature([], tf.int64)
    return spec


def _decoded_track(f, region_id: str, info: RecordsInfo, track: str) -> np.ndarray:
    """One counts track of a parsed Example as float32 (stored_output_length, tasks, strands)."""
    shape, enc = info.profile_shape, info.encoding(track)

    def _array(key, dtype):
        if key not in f:
            raise SchemaError(f'record {region_id}: no {key} feature; metadata says it is there')
        return np.frombuffer(f[key].bytes_list.value[0], dtype=dtype)

    size = int(np.prod(shape))
    if enc.layout == 'dense':
        values = _array(TRACK_KEYS[track], enc.dtype)
        if values.size != size:
            raise SchemaError(
                f'record {region_id}: {TRACK_KEYS[track]} holds {values.size} values, '
                f'metadata says shape {shape}'
            )
        return values.astype(COUNTS_DTYPE).reshape(shape)
    index_key, value_key = sparse_keys(TRACK_KEYS[track])
    index = np.cumsum(_array(index_key, sparse_index_dtype(size)), dtype=np.int64)
    values = _array(value_key, enc.dtype)
    if index.size != values.size or (index.size and int(index.max()) >= size):
        raise SchemaError(
            f'record {region_id}: {index_key} and {value_key} do not fit shape {shape}'
        )
    dense = np.zeros(size, COUNTS_DTYPE)
    dense[index] = values
    return dense.reshape(shape)


def decode_record(serialized: bytes, info: RecordsInfo) -> dict[str, Any]:
    """Decodes one serialised record into numpy arrays (for tests and tools, not training).

    Records of every readable version decode alike.

    Returns:
      A dict with 'region_id', 'chrom', 'start', 'one_hot' (uint8 (stored_length, 4)),
      'profile' (float32) and, when present, 'expected', 'control' and 'is_background' (bool).

    Raises:
      SchemaError: a feature missing, or whose size does not match `info`.
    """
    import tensorflow as tf

    f = tf.train.Example.FromString(serialized).features.feature
    region_id = f[KEY_REGION_ID].bytes_list.value[0].decode()
    key = sequence_key(info)
    seq = np.frombuffer(f[key].bytes_list.value[0], dtype=np.uint8)
    expected_size = int(np.prod(info.one_hot_shape)) if key == KEY_ONE_HOT else info.stored_length
    if seq.size != expected_size:
        raise SchemaError(
            f'record {region_id}: {key} holds {seq.size} values, metadata says '
            f'{info.stored_length} bases'
        )
    out = {
        'region_id': region_id,
        'chrom': f[KEY_CHROM].bytes_list.value[0].decode(),
        'start': int(f[KEY_START].int64_list.value[0]),
        'one_hot': (
            seq.reshape(info.one_hot_shape)
            if key == KEY_ONE_HOT
            else sequence.one_hot_from_tokens(seq)
        ),
    }
    for track in TRACK_KEYS:
        if track == 'profile' or any(k in f for k in track_feature_keys(info, track)):
            out[track] = _decoded_track(f, region_id, info, track)
    if KEY_IS_BACKGROUND in f:
        out['is_background'] = bool(f[KEY_IS_BACKGROUND].int64_list.value[0])
    return out
