"""Tests of the record contract: encode/decode round trip and metadata."""

import json

import numpy as np
import pytest

from bpnet_tfx import schema, sequence


def _info(**kw):
    base = dict(sequence_length=8, max_jitter=1, tasks=('a', 'b'))
    base.update(kw)
    return schema.RecordsInfo(**base)


def test_encode_decode_round_trip():
    info = _info(has_expected=True, has_control=True)
    one_hot = sequence.one_hot('ACGTNACGTN')
    profile = np.arange(10 * 2 * 2, dtype=np.float32).reshape(10, 2, 2)
    record = schema.encode_record(
        'chr1:1-9', 'chr1', 0, one_hot, profile, profile * 0.5, control=profile + 1
    )
    out = schema.decode_record(record, info)
    np.testing.assert_array_equal(out['control'], profile + 1)
    assert out['region_id'] == 'chr1:1-9' and out['chrom'] == 'chr1' and out['start'] == 0
    np.testing.assert_array_equal(out['one_hot'], one_hot)
    np.testing.assert_array_equal(out['profile'], profile)
    np.testing.assert_array_equal(out['expected'], profile * 0.5)
    assert out['one_hot'].dtype == np.uint8 and out['profile'].dtype == np.float32


def test_encode_rejects_bad_shapes():
    with pytest.raises(schema.SchemaError, match='one_hot must be'):
        schema.encode_record('r', 'c', 0, np.zeros((10, 5)), np.zeros((10, 1, 2)))
    with pytest.raises(schema.SchemaError, match='profile must be'):
        schema.encode_record('r', 'c', 0, np.zeros((10, 4)), np.zeros((9, 1, 2)))
    with pytest.raises(schema.SchemaError, match='profile must be'):
        schema.encode_record('r', 'c', 0, np.zeros((10, 4)), np.zeros((12, 1, 2)))


def test_wider_input_than_output_and_background_flag_round_trip():
    info = _info(
        sequence_length=8,
        output_length=4,
        tasks=('a',),
        has_background=True,
        background_counts={'train': 1},
    )
    assert info.stored_length == 10 and info.stored_output_length == 6
    assert info.profile_shape == (6, 1, 2) and info.output_offset == 2
    one_hot = sequence.one_hot('ACGTNACGTN')
    profile = np.arange(6 * 2, dtype=np.float32).reshape(6, 1, 2)
    for flag in (True, False):
        out = schema.decode_record(
            schema.encode_record('r', 'c', 0, one_hot, profile, is_background=flag), info
        )
        assert out['is_background'] is flag
        np.testing.assert_array_equal(out['profile'], profile)
    assert 'is_background' not in schema.decode_record(
        schema.encode_record('r', 'c', 0, one_hot, profile), info
    )
    assert schema.RecordsInfo.from_dict(info.to_dict()) == info


@pytest.mark.parametrize('output_length', [9, 7, -2])
def test_output_length_must_fit_the_input_and_share_its_centre(output_length):
    with pytest.raises(schema.SchemaError, match='output_length'):
        _info(output_length=output_length)


def test_output_length_defaults_to_sequence_length():
    info = _info()
    assert info.output_length == 8 and info.output_offset == 0
    assert info.profile_shape == (10, 2, 2)


def test_decode_detects_shape_mismatch_with_metadata():
    record = schema.encode_record('r', 'c', 0, np.zeros((10, 4)), np.zeros((10, 1, 2)))
    with pytest.raises(schema.SchemaError, match='metadata says shape'):
        schema.decode_record(record, _info())  # metadata says 2 tasks


def test_records_info_save_load_round_trip(tmp_path):
    info = _info(
        split_counts={'train': 3},
        num_shards={'train': 1},
        median_total_counts=(12.5, 3.0),
        source={'peaks': 'x.bed'},
    )
    info.save(str(tmp_path))
    loaded = schema.RecordsInfo.load(str(tmp_path))
    assert loaded == info
    assert loaded.stored_length == 10 and loaded.profile_shape == (10, 2, 2)
    d = json.loads((tmp_path / schema.METADATA_FILENAME).read_text())
    assert d['schema_version'] == schema.SCHEMA_VERSION
    assert d['feature_keys']['one_hot'] == schema.KEY_ONE_HOT


def test_records_info_refuses_other_schema_version(tmp_path):
    d = _info().to_dict()
    d['schema_version'] = schema.SCHEMA_VERSION + 1
    (tmp_path / schema.METADATA_FILENAME).write_text(json.dumps(d))
    with pytest.raises(schema.SchemaError, match='schema version'):
        schema.RecordsInfo.load(str(tmp_path))


def test_records_info_missing_file_is_one_line_error(tmp_path):
    with pytest.raises(schema.SchemaError, match='not found'):
        schema.RecordsInfo.load(str(tmp_path))


def test_shard_names():
    assert schema.shard_filename('train', 3, 16) == 'train-00003-of-00016.tfrecord.gz'


def _tf_example(region_id, chrom, start, one_hot, profile, **extras):
    """The record built with TensorFlow's own protos: what encode_record must equal."""
    import tensorflow as tf

    def _bytes(value):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    def _int64(value):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))

    feature = {
        schema.KEY_REGION_ID: _bytes(region_id.encode()),
        schema.KEY_CHROM: _bytes(chrom.encode()),
        schema.KEY_START: _int64(start),
        schema.KEY_ONE_HOT: _bytes(one_hot.astype(np.uint8).tobytes()),
        schema.KEY_PROFILE: _bytes(profile.astype(np.float32).tobytes()),
    }
    for key, name in ((schema.KEY_EXPECTED, 'expected'), (schema.KEY_CONTROL, 'control')):
        if name in extras:
            feature[key] = _bytes(extras[name].astype(np.float32).tobytes())
    if 'is_background' in extras:
        feature[schema.KEY_IS_BACKGROUND] = _int64(int(extras['is_background']))
    return tf.train.Example(features=tf.train.Features(feature=feature))


@pytest.mark.parametrize(
    'length,start', [(1, 0), (10, 127), (16, 128), (2114, 2**40), (40_000, -3)]
)
@pytest.mark.parametrize('extras', ['none', 'expected', 'control+background', 'foreground'])
def test_encode_record_writes_tensorflows_deterministic_bytes(length, start, extras):
    # The hand-written wire format against TensorFlow's: lengths of 1, 2 and 3 varint bytes,
    # starts of 1, 2, 6 and 10 (negative) varint bytes, every optional feature.
    rng = np.random.default_rng(length)
    one_hot = sequence.one_hot(''.join(rng.choice(list('ACGTN'), length)))
    profile = rng.random((length, 2, 2)).astype(np.float32)
    kw = {
        'none': {},
        'expected': {'expected': profile * 2},
        'control+background': {'control': profile + 1, 'is_background': True},
        'foreground': {'is_background': False},
    }[extras]
    ours = schema.encode_record('chr2L:5-15', 'chr2L', start, one_hot, profile, **kw)
    reference = _tf_example('chr2L:5-15', 'chr2L', start, one_hot, profile, **kw)
    assert ours == reference.SerializeToString(deterministic=True)
    assert type(reference).FromString(ours) == reference


def test_encoded_records_parse_with_parse_example():
    import tensorflow as tf

    info = _info(
        sequence_length=8, max_jitter=1, tasks=('a',), has_control=True, has_background=True
    )
    one_hot = sequence.one_hot('ACGTNACGTA')
    profile = np.arange(10 * 2, dtype=np.float32).reshape(10, 1, 2)
    records = [
        schema.encode_record(
            f'c:{i}-{i + 8}',
            'c',
            i,
            one_hot,
            profile + i,
            control=profile * i,
            is_background=bool(i % 2),
        )
        for i in range(3)
    ]
    parsed = tf.io.parse_example(tf.constant(records), schema.feature_spec(info))
    assert parsed[schema.KEY_START].numpy().tolist() == [0, 1, 2]
    assert parsed[schema.KEY_IS_BACKGROUND].numpy().tolist() == [0, 1, 0]
    assert parsed[schema.KEY_REGION_ID].numpy().tolist() == [b'c:0-8', b'c:1-9', b'c:2-10']
    for i in range(3):
        np.testing.assert_array_equal(
            np.frombuffer(parsed[schema.KEY_PROFILE].numpy()[i], np.float32).reshape(10, 1, 2),
            profile + i,
        )
        np.testing.assert_array_equal(
            np.frombuffer(parsed[schema.KEY_CONTROL].numpy()[i], np.float32).reshape(10, 1, 2),
            profile * i,
        )
        np.testing.assert_array_equal(
            np.frombuffer(parsed[schema.KEY_ONE_HOT].numpy()[i], np.uint8).reshape(10, 4), one_hot
        )


def test_encode_record_does_not_import_tensorflow():
    import subprocess
    import sys

    code = (
        'import sys, numpy as np; from bpnet_tfx import schema; '
        'schema.encode_record("r", "c", 0, np.zeros((4, 4)), np.zeros((4, 1, 2)), '
        'is_background=True); print("tensorflow" in sys.modules)'
    )
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == 'False'
