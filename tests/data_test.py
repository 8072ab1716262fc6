"""Tests of the tf.data pipeline over a tiny records folder."""

import numpy as np
import pytest
import tensorflow as tf

from bpnet_tfx import data, schema


def test_training_batches_shapes_dtypes_and_targets(small_records):
    path, info = small_records
    ds = data.make_dataset(path, info, 'train', batch_size=8, training=True, seed=0)
    one_hot, targets = next(iter(ds))
    assert one_hot.dtype == tf.uint8 and tuple(one_hot.shape) == (8, 200, 4)
    assert tuple(targets['profile'].shape) == (8, 200, 2)  # single task: no task axis
    np.testing.assert_allclose(targets['log_counts'].numpy(),
                               np.log1p(targets['profile'].numpy().sum(axis=1)), rtol=1e-6)
    # Every row is one-hot (synthetic data has no N).
    assert np.all(one_hot.numpy().sum(-1) == 1)


def test_training_dataset_repeats(small_records):
    path, info = small_records
    ds = data.make_dataset(path, info, 'train', batch_size=16, training=True, seed=0)
    assert sum(1 for _ in ds.take(10)) == 10  # 160 examples from 64 records


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
    one_hot, targets = next(iter(ds))
    assert one_hot.shape[0] == 16 and sum(1 for _ in ds) == 1  # read once, not repeated


def test_input_context_gives_per_replica_batches_and_disjoint_files(small_records):
    path, info = small_records
    seen = []
    for pipeline_id in range(2):
        ctx = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipeline_id,
                                         num_replicas_in_sync=2)
        batch = ctx.get_per_replica_batch_size(8)
        ds = data.make_dataset(path, info, 'valid', batch_size=batch, training=False,
                               input_context=ctx)
        sizes = [int(x.shape[0]) for x, _ in ds]
        assert max(sizes) == 4
        seen.append(sum(sizes))
    assert sum(seen) == 16


def test_missing_split_is_a_clear_error(small_records):
    path, info = small_records
    with pytest.raises(schema.SchemaError, match='no test shards'):
        data.make_dataset(path, info, 'test', batch_size=4, training=False)
