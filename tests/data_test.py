"""Tests of the tf.data pipeline over a tiny records folder."""

import numpy as np
import pytest
import tensorflow as tf

from bpnet_tfx import data, schema


def test_training_batches_keep_the_margin_and_stay_uint8(small_records):
    path, info = small_records
    ds = data.make_dataset(path, info, 'train', batch_size=8, training=True, seed=0)
    batch = next(iter(ds))
    assert batch['one_hot'].dtype == tf.uint8 and tuple(batch['one_hot'].shape) == (8, 220, 4)
    assert tuple(batch['profile'].shape) == (8, 220, 1, 2)
    assert np.all(batch['one_hot'].numpy().sum(-1) == 1)  # synthetic data has no N


def test_model_targets_drop_the_task_axis_for_one_task():
    profile = tf.constant(np.arange(2 * 5 * 1 * 2, dtype=np.float32).reshape(2, 5, 1, 2))
    targets = data.model_targets(profile, 1)
    assert tuple(targets['profile'].shape) == (2, 5, 2)
    np.testing.assert_allclose(
        targets['log_counts'].numpy(), np.log1p(profile.numpy()[:, :, 0].sum(axis=1)), rtol=1e-6
    )
    assert tuple(data.model_targets(tf.zeros((2, 5, 3, 2)), 3)['log_counts'].shape) == (2, 3, 2)


def test_training_dataset_repeats_and_shuffles(small_records):
    path, info = small_records
    ds = data.make_dataset(path, info, 'train', batch_size=16, training=True, seed=0)
    batches = [b['profile'].numpy().sum(axis=(1, 2, 3)) for b in ds.take(8)]
    assert len(batches) == 8  # 128 examples from 64 records
    first_pass, second_pass = np.concatenate(batches[:4]), np.concatenate(batches[4:])
    np.testing.assert_allclose(np.sort(first_pass), np.sort(second_pass), rtol=1e-6)
    assert not np.array_equal(first_pass, second_pass)  # reshuffled each pass


def test_evaluation_order_is_deterministic_and_complete(small_records):
    path, info = small_records
    ids = []
    for _ in range(2):
        ds = data.make_eval_dataset(path, info, 'valid', batch_size=5)
        ids.append([i for b in ds for i in b['region_id'].numpy().tolist()])
    assert ids[0] == ids[1]
    assert len(ids[0]) == 16 and len(set(ids[0])) == 16


def test_evaluation_windows_are_centred_and_unaugmented(small_records):
    path, info = small_records
    records = []
    for f in data.list_shards(path, 'valid'):
        for r in tf.data.TFRecordDataset(f, compression_type='GZIP'):
            records.append(schema.decode_record(r.numpy(), info))
    by_id = {r['region_id']: r for r in records}
    for batch in data.make_eval_dataset(path, info, 'valid', batch_size=4):
        for i, rid in enumerate(batch['region_id'].numpy()):
            rec = by_id[rid.decode()]
            np.testing.assert_array_equal(batch['one_hot'][i].numpy(), rec['one_hot'][10:210])
            np.testing.assert_array_equal(batch['profile'][i].numpy(), rec['profile'][10:210])
            np.testing.assert_array_equal(batch['expected'][i].numpy(), rec['expected'][10:210])
    ds = data.make_dataset(path, info, 'valid', batch_size=16, training=False)
    batch = next(iter(ds))
    assert tuple(batch['one_hot'].shape) == (16, 200, 4)  # centred: margin cut off
    assert sum(1 for _ in ds) == 1  # read once, not repeated


def test_input_context_gives_per_replica_batches_and_disjoint_files(small_records):
    path, info = small_records
    seen = []
    for pipeline_id in range(2):
        ctx = tf.distribute.InputContext(
            num_input_pipelines=2, input_pipeline_id=pipeline_id, num_replicas_in_sync=2
        )
        batch = ctx.get_per_replica_batch_size(8)
        ds = data.make_dataset(
            path, info, 'valid', batch_size=batch, training=False, input_context=ctx
        )
        sizes = [int(b['one_hot'].shape[0]) for b in ds]
        assert max(sizes) == 4
        seen.append(sum(sizes))
    assert sum(seen) == 16


def test_missing_split_is_a_clear_error(small_records):
    path, info = small_records
    with pytest.raises(schema.SchemaError, match="no 'test' split"):
        data.make_dataset(path, info, 'test', batch_size=4, training=False)
