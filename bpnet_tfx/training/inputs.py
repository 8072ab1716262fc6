"""What a training run reads: its distributed datasets, the validation pass, unreadable shards.

`dataset_fn` gives `distribute_datasets_from_function` each replica's share of a split
(per-replica batch = global batch / replicas); `evaluate` runs the eval step over the valid
split and returns its example-weighted means; `measure_input_pipeline` times the input alone
(read, parse, batch, augment); `check_readable` and `name_corrupt_shard` count or name
corrupt and truncated shards.
"""

from __future__ import annotations

import collections
import time
from typing import Callable

import tensorflow as tf

from bpnet_tfx.records import augment, schema
from bpnet_tfx.records import dataset as data
from bpnet_tfx.training import epochs
from bpnet_tfx.training.config import TrainConfig, TrainError


def dataset_fn(
    config: TrainConfig, info: schema.RecordsInfo, split: str, training: bool, seed: int
) -> Callable[[tf.distribute.InputContext], tf.data.Dataset]:
    """The per-replica dataset of `split`, for `strategy.distribute_datasets_from_function`."""

    def fn(ctx: tf.distribute.InputContext) -> tf.data.Dataset:
        return data.make_dataset(
            config.records_dir,
            info,
            split,
            training=training,
            seed=seed,
            batch_size=ctx.get_per_replica_batch_size(config.batch_size),
            shuffle_buffer=config.shuffle_buffer,
            cache=config.cache and training,
            skip_corrupt=config.skip_corrupt_records,
            input_context=ctx,
        )

    return fn


def measure_input_pipeline(config: TrainConfig, info: schema.RecordsInfo) -> float:
    """Examples per second of the training input pipeline alone (read, parse, batch, augment)."""
    n = config.input_benchmark_batches
    if n <= 0:
        return float('nan')
    ds = data.make_dataset(
        config.records_dir,
        info,
        'train',
        batch_size=config.batch_size,
        training=True,
        seed=config.seed,
        shuffle_buffer=min(config.shuffle_buffer, 4 * config.batch_size),
        skip_corrupt=config.skip_corrupt_records,
    )

    @tf.function
    def _augment(batch, step):
        batch = data.model_inputs(batch)
        return augment.augment_batch(
            batch['one_hot'],
            batch['profile'],
            sequence_length=info.sequence_length,
            max_jitter=info.max_jitter,
            seed=tf.stack([step, step]),
            jitter=config.jitter,
            reverse_complement=config.reverse_complement,
        )

    it = iter(ds)
    _augment(next(it), tf.constant(0, tf.int64))  # warm-up: tracing, buffers
    start = time.perf_counter()
    examples = 0
    for i in range(n):
        one_hot, _ = _augment(next(it), tf.constant(i, tf.int64))
        examples += int(one_hot.shape[0])
    return examples / (time.perf_counter() - start)


def name_corrupt_shard(config: TrainConfig, split: str, error: Exception) -> TrainError:
    """The one-line error for a read that failed: the first corrupt shard of `split`, if any."""
    scan = data.scan_shards(data.list_shards(config.records_dir, split))
    if scan['corrupt']:
        path, n, message = scan['corrupt'][0]
        return TrainError(
            f'{path}: corrupt or truncated shard (after {n} records: {message}); '
            'remake the records or pass --skip_corrupt_records'
        )
    return TrainError(
        f'{config.records_dir}: reading {split} records failed: {str(error).splitlines()[0]}'
    )


def check_readable(
    config: TrainConfig,
    info: schema.RecordsInfo,
    splits: tuple[str, ...],
    report: Callable[..., None],
) -> dict[str, int]:
    """With --skip_corrupt_records: counts unreadable records up front, per split.

    Reports each corrupt shard as `report('skipped_shard', path=, records=, message=)`.
    """
    skipped = {}
    for split in splits:
        expected = info.split_counts.get(split, 0)
        if not expected:
            continue
        scan = data.scan_shards(data.list_shards(config.records_dir, split))
        skipped[split] = max(expected - scan['records'], 0)
        for path, n, message in scan['corrupt']:
            report('skipped_shard', path=path, records=n, message=message)
    return skipped


def evaluate(
    strategy: tf.distribute.Strategy,
    eval_step: Callable,
    config: TrainConfig,
    info: schema.RecordsInfo,
) -> dict[str, float]:
    """One pass over the valid split: {'val_loss', 'val_profile_nll', ...} example means."""
    valid = strategy.distribute_datasets_from_function(
        dataset_fn(config, info, 'valid', False, config.seed)
    )
    sums = collections.defaultdict(float)
    try:
        for batch in valid:
            for k, v in eval_step(batch).items():
                sums[k] += float(v)
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as e:
        raise name_corrupt_shard(config, 'valid', e) from None
    return {f'val_{k}': v for k, v in epochs.means(sums).items()}
