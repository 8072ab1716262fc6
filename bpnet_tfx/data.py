"""The tf.data input pipeline: records folder -> batches of (one_hot, targets).

Shards are listed (shuffled when training), read in parallel with `interleave`, shuffled,
repeated, batched, and only then parsed with `tf.io.parse_example` + `decode_raw`, so parsing
is one op per batch. Memory does not grow with the data: nothing is held but the shuffle buffer
(and the serialised records, with `cache=True`). One-hot stays uint8 until the model casts it.
Augmentation is not done here but in the training step, on the device (augment.py);
evaluation and prediction get the centred window.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from bpnet_tfx import schema

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


def decode_batch(serialized: tf.Tensor, info: schema.RecordsInfo) -> dict[str, tf.Tensor]:
    """Parses a batch of serialised records.

    Args:
      serialized: (batch,) string tensor of `tf.train.Example`s.
      info: the records' metadata.

    Returns:
      {'region_id': (batch,) string, 'one_hot': (batch, stored_length, 4) uint8,
       'profile': (batch, stored_output_length, tasks, strands) float32, 'expected' and
       'control' like 'profile' when the records hold them, and 'is_background' (batch,)
       float32 0/1 when the records mark background regions}.
    """
    parsed = tf.io.parse_example(serialized, schema.feature_spec(info))
    out = {
        'region_id': parsed[schema.KEY_REGION_ID],
        'one_hot': tf.reshape(
            tf.io.decode_raw(parsed[schema.KEY_ONE_HOT], tf.uint8), (-1, *info.one_hot_shape)
        ),
        'profile': tf.reshape(
            tf.io.decode_raw(parsed[schema.KEY_PROFILE], tf.float32), (-1, *info.profile_shape)
        ),
    }
    for key, name, present in (
        (schema.KEY_EXPECTED, 'expected', info.has_expected),
        (schema.KEY_CONTROL, 'control', info.has_control),
    ):
        if present:
            out[name] = tf.reshape(
                tf.io.decode_raw(parsed[key], tf.float32), (-1, *info.profile_shape)
            )
    if info.has_background:
        out['is_background'] = tf.cast(parsed[schema.KEY_IS_BACKGROUND], tf.float32)
    return out


def crop_centre(batch: dict[str, tf.Tensor], info: schema.RecordsInfo) -> dict[str, tf.Tensor]:
    """Cuts the stored margin off every track (`augment.center_crop`): one-hot to
    sequence_length, counts tracks ('profile', 'expected', 'control') to output_length; other
    entries pass through."""
    from bpnet_tfx import augment

    out = dict(batch)
    for key in ('profile', 'expected', 'control'):
        if key in batch:
            out['one_hot'], out[key] = augment.center_crop(
                batch['one_hot'],
                batch[key],
                sequence_length=info.sequence_length,
                max_jitter=info.max_jitter,
            )
    if 'one_hot' in batch and 'profile' not in batch:
        out['one_hot'] = batch['one_hot'][
            :, info.max_jitter : info.max_jitter + info.sequence_length
        ]
    return out


def model_targets(profile: tf.Tensor, num_tasks: int) -> dict[str, tf.Tensor]:
    """Turns counts (batch, length, tasks, strands) into the model's training targets.

    With one task the task axis is dropped, matching the model's outputs.
    """
    if num_tasks == 1:
        profile = profile[:, :, 0, :]
    return {
        schema.TARGET_PROFILE: profile,
        schema.TARGET_LOG_COUNTS: tf.math.log1p(tf.reduce_sum(profile, axis=1)),
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
        deterministic=not training,
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
    """Returns batches of {'one_hot', 'profile'} for the training loop.

    Training datasets are shuffled, repeated forever and keep the stored windows (length
    + 2 * max_jitter) so that the training step can jitter and reverse-complement them on the
    device (`augment.augment_batch`); other datasets are read once, in a fixed order, and cut
    to the centred window. One-hot stays uint8.

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
      when they mark background regions.
    """
    files = list_shards(records_dir, split)
    ds = _read_records(
        files, training=training, seed=seed, input_context=input_context, skip_corrupt=skip_corrupt
    )
    if cache:
        ds = ds.cache()
    if training:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True).repeat()
    ds = ds.batch(batch_size, num_parallel_calls=AUTOTUNE, deterministic=not training)
    keys = ['one_hot', 'profile']
    keys += ['control'] if info.has_control else []
    keys += ['is_background'] if info.has_background else []

    def _prepare(serialized):
        batch = decode_batch(serialized, info)
        batch = {k: batch[k] for k in keys}
        return batch if training else crop_centre(batch, info)

    return ds.map(_prepare, num_parallel_calls=AUTOTUNE, deterministic=not training).prefetch(
        AUTOTUNE
    )


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
        return crop_centre(decode_batch(serialized, info), info)

    return ds.map(_prepare, num_parallel_calls=AUTOTUNE, deterministic=True).prefetch(AUTOTUNE)
