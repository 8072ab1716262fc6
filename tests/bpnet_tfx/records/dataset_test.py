"""Tests of the tf.data pipeline over a tiny records folder."""

import numpy as np
import pytest
import tensorflow as tf

from bpnet_tfx.genome import sequence
from bpnet_tfx.records import codec, schema
from bpnet_tfx.records import dataset as data


def test_training_batches_keep_the_margin_and_stay_compact(small_records):
    path, info = small_records
    ds = data.make_dataset(path, info, 'train', batch_size=8, training=True, seed=0)
    batch = next(iter(ds))
    assert 'one_hot' not in batch  # version 2: tokens until the training step
    assert batch['tokens'].dtype == tf.uint8 and tuple(batch['tokens'].shape) == (8, 220)
    assert tuple(batch['profile'].shape) == (8, 220, 1, 2)
    finished = data.model_inputs(batch)
    assert finished['one_hot'].dtype == tf.uint8 and tuple(finished['one_hot'].shape) == (8, 220, 4)
    assert np.all(finished['one_hot'].numpy().sum(-1) == 1)  # synthetic data has no N
    assert finished['profile'].dtype == tf.float32


def _stored_order(path, info, finish):
    """Every record of every shard, in file order, through decode_batch (+ model_inputs):
    what the training step receives before augmentation."""
    out = []
    for f in data.list_shards(path, 'train') + data.list_shards(path, 'valid'):
        for serialized in tf.data.TFRecordDataset(f, compression_type='GZIP').batch(7):
            batch = data.decode_batch(serialized, info)
            out.append(finish(batch) if finish else batch)
    return out


V2_ENCODINGS = {
    'float32 dense': {},
    'uint8 sparse': {'profile': schema.TrackEncoding('uint8', 'sparse')},
    'uint16 dense': {'profile': schema.TrackEncoding('uint16', 'dense')},
    'uint32 sparse': {'profile': schema.TrackEncoding('uint32', 'sparse')},
}


@pytest.mark.parametrize('name', V2_ENCODINGS)
def test_version_2_gives_the_model_bit_identical_batches_to_version_1(tmp_path, name):
    from tests.fixtures.records import write_records

    kw = dict(
        split_counts={'train': 24, 'valid': 8},
        sequence_length=60,
        max_jitter=5,
        with_expected=True,
        background_every=4,
        integer_counts=True,
    )
    v1 = write_records(str(tmp_path / 'v1'), version=1, **kw)
    v2 = write_records(str(tmp_path / 'v2'), encodings=V2_ENCODINGS[name], **kw)
    assert v1.schema_version == 1 and v2.schema_version == 2
    # Training path: stored form, finished by model_inputs (as in the training step).
    old = _stored_order(str(tmp_path / 'v1'), v1, data.model_inputs)
    new = _stored_order(str(tmp_path / 'v2'), v2, data.model_inputs)
    for a, b in zip(old, new, strict=True):
        assert sorted(a) == sorted(b)
        for key in a:
            assert a[key].dtype == b[key].dtype, key
            np.testing.assert_array_equal(a[key].numpy(), b[key].numpy(), err_msg=key)
    # Evaluation path.
    for a, b in zip(
        data.make_eval_dataset(str(tmp_path / 'v1'), v1, 'valid', batch_size=3),
        data.make_eval_dataset(str(tmp_path / 'v2'), v2, 'valid', batch_size=3),
        strict=True,
    ):
        assert sorted(a) == sorted(b)
        for key in a:
            np.testing.assert_array_equal(a[key].numpy(), b[key].numpy(), err_msg=key)


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


def _parallel_ops_determinism(ds: tf.data.Dataset) -> dict[str, bytes]:
    """The `deterministic` attribute of every parallel op in the dataset's graph."""
    graph = tf.raw_ops.DatasetToGraphV2(input_dataset=ds._variant_tensor)
    nodes = tf.compat.v1.GraphDef.FromString(graph.numpy()).node
    return {n.op: n.attr['deterministic'].s for n in nodes if 'deterministic' in n.attr}


def test_training_order_is_set_by_the_seed_alone(small_records):
    # Every parallel read, batch and map keeps its order, so the threads' timing (other work
    # on the cores) cannot reorder the records: the same seed trains the same model.
    path, info = small_records

    def batches(seed):
        ds = data.make_dataset(path, info, 'train', batch_size=16, training=True, seed=seed)
        return ds, [b['profile'].numpy().sum(axis=(1, 2, 3)) for b in ds.take(8)]

    ds, first = batches(0)
    ops = _parallel_ops_determinism(ds)
    assert {'ParallelInterleaveDatasetV4', 'ParallelBatchDataset', 'ParallelMapDatasetV2'} <= set(
        ops
    ), ops
    assert set(ops.values()) == {b'true'}, ops
    np.testing.assert_array_equal(np.concatenate(first), np.concatenate(batches(0)[1]))
    assert not np.array_equal(np.concatenate(first), np.concatenate(batches(1)[1]))


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
            records.append(codec.decode_record(r.numpy(), info))
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


@pytest.mark.parametrize('length', [12, 20_000])  # uint16 and uint32 index gaps
@pytest.mark.parametrize('dtype', ['uint8', 'uint32', 'float32'])
def test_sparse_tracks_decode_in_a_batch_as_each_record_alone(length, dtype):
    rng = np.random.default_rng(length)
    info = schema.RecordsInfo(
        sequence_length=length,
        max_jitter=0,
        tasks=('a', 'b'),
        track_encodings={'profile': {'dtype': dtype, 'layout': 'sparse'}},
    )
    profiles = [rng.poisson(0.3, (length, 2, 2)).astype(np.float32) for _ in range(4)]
    profiles[1][:] = 0  # A record without a non-zero value.
    profiles[2][0, 0, 0] = 7  # A non-zero value at flat index 0.
    records = [
        codec.encode_record(
            f'r{i}',
            'c',
            0,
            sequence.tokens('A' * length),
            p,
            encodings={'profile': info.encoding('profile')},
        )
        for i, p in enumerate(profiles)
    ]
    batch = data.decode_batch(tf.constant(records), info)
    assert batch['profile'].dtype == tf.as_dtype(dtype)
    for i, p in enumerate(profiles):
        np.testing.assert_array_equal(batch['profile'][i].numpy(), p)
        np.testing.assert_array_equal(codec.decode_record(records[i], info)['profile'], p)


@pytest.mark.slow  # Trains and exports a tiny model.
def test_version_1_records_still_train_and_evaluate_like_version_2(tmp_path):
    from bpnet_tfx.inference import evaluation
    from bpnet_tfx.modeling import config as config_lib
    from bpnet_tfx.training import trainer
    from tests.fixtures.records import write_records

    kw = dict(split_counts={'train': 48, 'valid': 16}, sequence_length=80, max_jitter=4)
    kw.update(with_expected=True, integer_counts=True)
    v1 = write_records(str(tmp_path / 'v1'), version=1, **kw)
    v2 = write_records(
        str(tmp_path / 'v2'), encodings={'profile': schema.TrackEncoding('uint8', 'sparse')}, **kw
    )
    config = trainer.TrainConfig(
        records_dir=str(tmp_path / 'v1'),
        model_dir=str(tmp_path / 'model'),
        export_dir=str(tmp_path / 'model' / 'export'),
        epochs=2,
        batch_size=16,
        shuffle_buffer=64,
        input_benchmark_batches=0,
        model=config_lib.ModelConfig(sequence_length=80, filters=8, num_dilated_layers=2),
    )
    summary = trainer.train(config, v1)
    assert summary['epochs'] == 2 and np.isfinite(summary['final']['loss'])
    metrics = {
        name: evaluation.evaluate(summary['export_dir'], str(tmp_path / name), 'valid')
        for name in ('v1', 'v2')
    }
    overall = {name: m['overall'] for name, m in metrics.items()}
    assert overall['v1']['n_examples'] == 16 and np.isfinite(overall['v1']['profile_nll'])
    assert overall['v1'] == overall['v2']  # Every metric, exactly.
    assert v2.schema_version == 2
