"""The tf.data input pipeline: records folder -> batches of (one_hot, targets).

Shards are listed (shuffled when training), read in parallel with `interleave`, shuffled,
repeated, batched, and only then parsed with `tf.io.parse_example` + `decode_raw`, so parsing
is one op per batch. Version-2 records stay compact on the host: sequence tokens (one byte a
base) and counts in their stored integer dtype, sparse tracks scattered to dense; the training
step makes the one-hot and the float32 counts on the device (`model_inputs`). Memory does not
grow with the data: nothing is held but the shuffle buffer (and the serialised records, with
`cache=True`). One-hot stays uint8 until the model casts it. Augmentation is not done here but
in the training step, on the device (augment.py); evaluation and prediction get the centred
window.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from bpnet_tfx.common import rowwise
from bpnet_tfx.records import codec, schema

AUTOTUNE = tf.data.AUTOTUNE


def list_shards(records_dir: str, split: str) -> list[str]:
    """Returns the sorted shard files of `split`.

    Raises:
      schema.SchemaError: no shard of that split exists.
    """
    files = sorted(tf.io.gfile.glob(schema.shard_pattern(records_dir, split)))
    if not files:
        held = [s for s in schema.SPLITS if tf.io.gfile.glob(schema.shard_pattern(records_dir, s))]
        if not held:
            raise schema.SchemaError(
                f'{records_dir}: no record shards; run beam_jobs.make_records first'
            )
        raise schema.SchemaError(
            f'{records_dir}: no {split!r} split ({schema.shard_filename(split, 0, 1)} ...); '
            f'the records hold: {", ".join(held)}'
        )
    return files


def _decode_raw(raw: tf.Tensor, dtype: tf.DType) -> tf.Tensor:
    """`tf.io.decode_raw`, also for uint32 (which it lacks): read as int32, then bitcast."""
    if dtype == tf.uint32:
        return tf.bitcast(tf.io.decode_raw(raw, tf.int32), tf.uint32)
    return tf.io.decode_raw(raw, dtype)


def _dense_track(parsed: dict, info: schema.RecordsInfo, track: str) -> tf.Tensor:
    """One counts track of a parsed batch, (batch, *profile_shape), in its stored dtype."""
    enc, shape = info.encoding(track), info.profile_shape
    dtype = tf.as_dtype(enc.dtype)
    if enc.layout == 'dense':
        return tf.reshape(_decode_raw(parsed[schema.TRACK_KEYS[track]], dtype), (-1, *shape))
    # Sparse: every record's index gaps and values, joined into one buffer each; a running
    # sum of the gaps, restarted at each record, gives the flat indices to scatter to.
    index_key, value_key = schema.sparse_keys(schema.TRACK_KEYS[track])
    size = int(np.prod(shape))
    index_dtype = tf.as_dtype(schema.sparse_index_dtype(size))
    gap_bytes, value_bytes = parsed[index_key], parsed[value_key]
    n = tf.shape(gap_bytes)[0]
    lengths = tf.cast(tf.strings.length(gap_bytes) // index_dtype.size, tf.int32)
    gaps = tf.reshape(_decode_raw(tf.strings.reduce_join(gap_bytes), index_dtype), [-1])
    running = tf.math.cumsum(tf.cast(gaps, tf.int64))
    before = tf.gather(tf.concat([[0], running], 0), tf.math.cumsum(lengths, exclusive=True))
    row_starts = tf.range(tf.cast(n, tf.int64)) * size - before  # Flat index of each row's 0.
    flat_index = running + tf.repeat(row_starts, lengths)
    values = tf.reshape(_decode_raw(tf.strings.reduce_join(value_bytes), dtype), [-1])
    # to_dense: several times faster than scatter_nd on CPU.
    dense = tf.sparse.to_dense(
        tf.SparseTensor(flat_index[:, None], values, tf.cast([n * size], tf.int64)),
        validate_indices=False,
    )
    return tf.reshape(dense, (-1, *shape))


def decode_batch(serialized: tf.Tensor, info: schema.RecordsInfo) -> dict[str, tf.Tensor]:
    """Parses a batch of serialised records into their stored form.

    Args:
      serialized: (batch,) string tensor of `tf.train.Example`s.
      info: the records' metadata.

    Returns:
      {'region_id': (batch,) string, the sequence as 'tokens' (batch, stored_length) uint8
       (schema version 2) or 'one_hot' (batch, stored_length, 4) uint8 (version 1),
       'profile': (batch, stored_output_length, tasks, strands) in its stored dtype (dense),
       'expected' and 'control' likewise when the records hold them, and 'is_background'
       (batch,) float32 0/1 when the records mark background regions}. `model_inputs` turns
      this into what the model takes.
    """
    parsed = tf.io.parse_example(serialized, codec.feature_spec(info))
    seq = tf.io.decode_raw(parsed[codec.sequence_key(info)], tf.uint8)
    out = {'region_id': parsed[schema.KEY_REGION_ID]}
    if info.schema_version >= 2:
        out['tokens'] = tf.reshape(seq, (-1, info.stored_length))
    else:
        out['one_hot'] = tf.reshape(seq, (-1, *info.one_hot_shape))
    for track in info.stored_tracks():
        out[track] = _dense_track(parsed, info, track)
    if info.has_background:
        out['is_background'] = tf.cast(parsed[schema.KEY_IS_BACKGROUND], tf.float32)
    return out


def model_inputs(batch: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    """Finishes decoding on the device: 'tokens' become 'one_hot' (uint8, N a zero row) and
    every counts track becomes float32; other entries pass through. Idempotent, so batches
    already finished (evaluation datasets, version-1 records) pass unchanged."""
    out = dict(batch)
    if 'tokens' in out:
        out['one_hot'] = tf.one_hot(out.pop('tokens'), len(schema.ALPHABET), dtype=tf.uint8)
    for track in schema.TRACK_KEYS:
        if track in out and out[track].dtype != tf.float32:
            out[track] = tf.cast(out[track], tf.float32)
    return out


def crop_centre(batch: dict[str, tf.Tensor], info: schema.RecordsInfo) -> dict[str, tf.Tensor]:
    """Cuts the stored margin off every track (`augment.center_crop`): the sequence ('tokens'
    or 'one_hot') to sequence_length, counts tracks ('profile', 'expected', 'control') to
    output_length; other entries pass through."""
    from bpnet_tfx.records import augment

    out = dict(batch)
    seq_key = 'tokens' if 'tokens' in batch else 'one_hot'
    for key in ('profile', 'expected', 'control'):
        if key in batch:
            out[seq_key], out[key] = augment.center_crop(
                batch[seq_key],
                batch[key],
                sequence_length=info.sequence_length,
                max_jitter=info.max_jitter,
            )
    if seq_key in batch and 'profile' not in batch:
        out[seq_key] = batch[seq_key][:, info.max_jitter : info.max_jitter + info.sequence_length]
    return out


def model_targets(profile: tf.Tensor, num_tasks: int) -> dict[str, tf.Tensor]:
    """Turns counts (batch, length, tasks, strands) into the model's training targets.

    With one task the task axis is dropped, matching the model's outputs.
    """
    if num_tasks == 1:
        profile = profile[:, :, 0, :]
    return {
        schema.TARGET_PROFILE: profile,
        schema.TARGET_LOG_COUNTS: rowwise.log1p(rowwise.reduce_sum(profile, 1)),
    }


def _read_records(
    files: list[str],
    *,
    training: bool,
    seed: int | None,
    input_context: tf.distribute.InputContext | None,
    skip_corrupt: bool = False,
) -> tf.data.Dataset:
    files_ds = tf.data.Dataset.from_tensor_slices(files)
    shard_records = False
    if input_context is not None and input_context.num_input_pipelines > 1:
        if len(files) >= input_context.num_input_pipelines:
            files_ds = files_ds.shard(
                input_context.num_input_pipelines, input_context.input_pipeline_id
            )
        else:
            shard_records = True  # Too few files: every pipeline reads all, keeps its share.
    if training:
        files_ds = files_ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)

    def _open(path):
        ds = tf.data.TFRecordDataset(path, compression_type=schema.COMPRESSION)
        # A truncated or corrupt shard ends that shard's stream instead of the run.
        return ds.ignore_errors() if skip_corrupt else ds

    ds = files_ds.interleave(
        _open,
        cycle_length=min(len(files), 16),
        block_length=1,
        num_parallel_calls=AUTOTUNE,
        deterministic=True,
    )
    if shard_records:
        ds = ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    return ds


def make_dataset(
    records_dir: str,
    info: schema.RecordsInfo,
    split: str,
    *,
    batch_size: int,
    training: bool,
    seed: int | None = None,
    shuffle_buffer: int = 10_000,
    cache: bool = False,
    skip_corrupt: bool = False,
    input_context: tf.distribute.InputContext | None = None,
) -> tf.data.Dataset:
    """Returns batches of sequence and counts for the training loop.

    Training datasets are shuffled, repeated forever and keep the stored windows (length
    + 2 * max_jitter) in their stored form (tokens, counts in their stored dtype), so that the
    training step finishes decoding (`model_inputs`) and jitters and reverse-complements them
    on the device (`augment.augment_batch`); other datasets are read once, in a fixed order,
    finished on the host and cut to the centred window. One-hot stays uint8.

    Args:
      records_dir: folder written by make_records.
      info: its metadata (`RecordsInfo.load(records_dir)`).
      split: 'train', 'valid' or 'test'.
      batch_size: examples per batch for this input pipeline (per replica under
        `distribute_datasets_from_function`, global otherwise).
      training: shuffle and repeat; keep the jitter margin.
      seed: seed for file order and shuffling.
      shuffle_buffer: records in the shuffle buffer.
      cache: keep the serialised records in memory after the first pass.
      skip_corrupt: skip unreadable records instead of failing (see `scan_shards`).
      input_context: from `distribute_datasets_from_function`; each pipeline reads its share.

    Returns:
      A dataset of {'one_hot': uint8 (batch, length, 4),
                    'profile': float32 (batch, output length, tasks, strands)}, plus 'control'
      like 'profile' when the records hold control tracks and 'is_background' (batch,) 0/1
      when they mark background regions. Training batches of version-2 records hold 'tokens'
      (batch, length) instead of 'one_hot' and counts in their stored dtype: pass them
      through `model_inputs` (in the training step, so on the device).
    """
    files = list_shards(records_dir, split)
    ds = _read_records(
        files, training=training, seed=seed, input_context=input_context, skip_corrupt=skip_corrupt
    )
    if cache:
        ds = ds.cache()
    if training:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True).repeat()
    # Deterministic throughout: with a seed, a run reads its records in one order whatever
    # the threads' timing, so that the same seed trains the same model on the same machine.
    ds = ds.batch(batch_size, num_parallel_calls=AUTOTUNE, deterministic=True)
    prepare = _prepare_fn(info, training)
    return ds.map(prepare, num_parallel_calls=AUTOTUNE, deterministic=True).prefetch(AUTOTUNE)


def _prepare_fn(info: schema.RecordsInfo, training: bool):
    """serialized batch -> the batch `make_dataset` yields: decoded, the features it needs;
    finished on the host and centred unless `training`."""
    keys = ['tokens' if info.schema_version >= 2 else 'one_hot', 'profile']
    keys += ['control'] if info.has_control else []
    keys += ['is_background'] if info.has_background else []

    def _prepare(serialized):
        batch = decode_batch(serialized, info)
        batch = {k: batch[k] for k in keys}
        return batch if training else model_inputs(crop_centre(batch, info))

    return _prepare


def scan_shards(files: list[str]) -> dict[str, Any]:
    """Reads every record of every shard (framing and checksums only) to find damage.

    Returns:
      {'records': readable records, 'corrupt': [(path, records read before the error,
       error message)]}.
    """
    readable, corrupt = 0, []
    for path in files:
        n = 0
        try:
            for _ in tf.data.TFRecordDataset(path, compression_type=schema.COMPRESSION):
                n += 1
        except (
            tf.errors.DataLossError,
            tf.errors.InvalidArgumentError,
            tf.errors.OutOfRangeError,
        ) as e:
            corrupt.append((path, n, e.message.splitlines()[0]))
        readable += n
    return {'records': readable, 'corrupt': corrupt}


def make_eval_dataset(
    records_dir: str, info: schema.RecordsInfo, split: str, *, batch_size: int
) -> tf.data.Dataset:
    """Returns centred, unaugmented batches in a fixed order, with ids and expected tracks.

    Each element is a dict: 'region_id', 'one_hot' (batch, sequence_length, 4) uint8,
    'profile' (batch, output_length, tasks, strands), and 'expected', 'control' and
    'is_background' when the records hold them.
    """
    files = list_shards(records_dir, split)
    ds = _read_records(files, training=False, seed=None, input_context=None).batch(batch_size)

    def _prepare(serialized):
        return model_inputs(crop_centre(decode_batch(serialized, info), info))

    return ds.map(_prepare, num_parallel_calls=AUTOTUNE, deterministic=True).prefetch(AUTOTUNE)
