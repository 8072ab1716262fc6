"""Tests of the record contract: metadata (RecordsInfo), encodings, shard names."""

import json

import pytest

from bpnet_tfx.records import schema


def _info(**kw):
    base = dict(sequence_length=8, max_jitter=1, tasks=('a', 'b'))
    base.update(kw)
    return schema.RecordsInfo(**base)


def test_smallest_count_dtype():
    assert schema.smallest_count_dtype(0) == 'uint8'
    assert schema.smallest_count_dtype(255) == 'uint8'
    assert schema.smallest_count_dtype(256) == 'uint16'
    assert schema.smallest_count_dtype(65_536) == 'uint32'
    assert schema.smallest_count_dtype(2.0**32) == 'float32'


@pytest.mark.parametrize('output_length', [9, 7, -2])
def test_output_length_must_fit_the_input_and_share_its_centre(output_length):
    with pytest.raises(schema.SchemaError, match='output_length'):
        _info(output_length=output_length)


def test_output_length_defaults_to_sequence_length():
    info = _info()
    assert info.output_length == 8 and info.output_offset == 0
    assert info.profile_shape == (10, 2, 2)


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
    assert d['feature_keys']['sequence'] == schema.KEY_TOKENS
    assert d['track_encodings'] == {'profile': {'dtype': 'float32', 'layout': 'dense'}}


def test_records_info_reads_version_1_and_keeps_track_encodings(tmp_path):
    v1 = _info(schema_version=1)
    assert schema.RecordsInfo.from_dict(v1.to_dict()) == v1
    assert v1.to_dict()['feature_keys']['sequence'] == schema.KEY_ONE_HOT
    with pytest.raises(schema.SchemaError, match='version 1 stores every track as dense float32'):
        _info(schema_version=1, track_encodings={'profile': {'dtype': 'uint8'}})
    v2 = _info(
        has_control=True, track_encodings={'control': {'dtype': 'uint16', 'layout': 'sparse'}}
    )
    assert v2.encoding('control') == schema.TrackEncoding('uint16', 'sparse')
    assert v2.encoding('profile') == schema.DEFAULT_ENCODING
    v2.save(str(tmp_path))
    assert schema.RecordsInfo.load(str(tmp_path)) == v2
    with pytest.raises(schema.SchemaError, match='counts dtype must be one of'):
        _info(track_encodings={'profile': {'dtype': 'int8'}})
    with pytest.raises(schema.SchemaError, match='unknown tracks'):
        _info(track_encodings={'signal': {'dtype': 'uint8'}})


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
