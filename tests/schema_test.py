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
    record = schema.encode_record('chr1:1-9', 'chr1', 0, one_hot, profile, profile * 0.5,
                                  control=profile + 1)
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
    info = _info(sequence_length=8, output_length=4, tasks=('a',), has_background=True,
                 background_counts={'train': 1})
    assert info.stored_length == 10 and info.stored_output_length == 6
    assert info.profile_shape == (6, 1, 2) and info.output_offset == 2
    one_hot = sequence.one_hot('ACGTNACGTN')
    profile = np.arange(6 * 2, dtype=np.float32).reshape(6, 1, 2)
    for flag in (True, False):
        out = schema.decode_record(schema.encode_record('r', 'c', 0, one_hot, profile,
                                                        is_background=flag), info)
        assert out['is_background'] is flag
        np.testing.assert_array_equal(out['profile'], profile)
    assert 'is_background' not in schema.decode_record(
        schema.encode_record('r', 'c', 0, one_hot, profile), info)
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
    info = _info(split_counts={'train': 3}, num_shards={'train': 1},
                 median_total_counts=(12.5, 3.0), source={'peaks': 'x.bed'})
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
