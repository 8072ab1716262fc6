"""Tests of the record contract: encode/decode round trip and metadata."""

import json

import numpy as np
import pytest

from bpnet_tfx.genome import sequence
from bpnet_tfx.records import schema


def _info(**kw):
    base = dict(sequence_length=8, max_jitter=1, tasks=('a', 'b'))
    base.update(kw)
    return schema.RecordsInfo(**base)


ENCODINGS = [
    schema.TrackEncoding(dtype, layout)
    for dtype in schema.COUNT_DTYPES
    for layout in schema.LAYOUTS
]


@pytest.mark.parametrize('version', schema.READABLE_VERSIONS)
@pytest.mark.parametrize('enc', ENCODINGS, ids=lambda e: f'{e.dtype}-{e.layout}')
def test_encode_decode_round_trip(version, enc):
    encodings = {'profile': enc, 'control': enc} if version == 2 else None
    info = _info(
        has_expected=True,
        has_control=True,
        schema_version=version,
        track_encodings={k: v.to_dict() for k, v in (encodings or {}).items()},
    )
    one_hot = sequence.one_hot('ACGTNACGTN')
    profile = np.arange(10 * 2 * 2, dtype=np.float32).reshape(10, 2, 2)
    profile[::3] = 0  # Zeros for the sparse layout to leave out.
    record = schema.encode_record(
        'chr1:1-9',
        'chr1',
        0,
        one_hot,
        profile,
        profile * 0.5,
        control=profile + 1,
        encodings=encodings,
        version=version,
    )
    out = schema.decode_record(record, info)
    np.testing.assert_array_equal(out['control'], profile + 1)
    assert out['region_id'] == 'chr1:1-9' and out['chrom'] == 'chr1' and out['start'] == 0
    np.testing.assert_array_equal(out['one_hot'], one_hot)
    np.testing.assert_array_equal(out['profile'], profile)
    np.testing.assert_array_equal(out['expected'], profile * 0.5)  # Not integer: float32.
    assert out['one_hot'].dtype == np.uint8 and out['profile'].dtype == np.float32


def test_compact_encodings_are_smaller():
    one_hot = sequence.one_hot('ACGT' * 250)
    profile = np.zeros((1000, 1, 2), np.float32)
    profile[::50] = 3  # 2% non-zero, as in the flanks of a ChIP-nexus peak.
    sizes = {
        (version, enc.dtype, enc.layout): len(
            schema.encode_record(
                'r', 'c', 0, one_hot, profile, encodings={'profile': enc}, version=version
            )
        )
        for version in (1, 2)
        for enc in (schema.TrackEncoding(), schema.TrackEncoding('uint8', 'sparse'))
    }
    assert sizes[1, 'float32', 'dense'] > 12_000 and sizes[1, 'uint8', 'sparse'] > 12_000
    assert sizes[2, 'float32', 'dense'] < 9_200
    assert sizes[2, 'uint8', 'sparse'] < 1_300


@pytest.mark.parametrize(
    'dtype,value,problem',
    [('uint8', 2.5, 'value 2.5'), ('uint8', 256, 'value 256'), ('uint16', 70_000, 'value 70000')],
)
def test_integer_encodings_refuse_values_they_cannot_hold(dtype, value, problem):
    profile = np.zeros((10, 1, 2), np.float32)
    profile[4, 0, 1] = value
    for layout in schema.LAYOUTS:
        with pytest.raises(schema.SchemaError, match=f'r1: profile {problem} .flat index 9.'):
            schema.encode_record(
                'r1',
                'c',
                0,
                sequence.one_hot('ACGTNACGTN'),
                profile,
                encodings={'profile': schema.TrackEncoding(dtype, layout)},
            )


def test_smallest_count_dtype():
    assert schema.smallest_count_dtype(0) == 'uint8'
    assert schema.smallest_count_dtype(255) == 'uint8'
    assert schema.smallest_count_dtype(256) == 'uint16'
    assert schema.smallest_count_dtype(65_536) == 'uint32'
    assert schema.smallest_count_dtype(2.0**32) == 'float32'


def test_tokens_and_one_hot_give_the_same_record():
    one_hot = sequence.one_hot('ACGTNacgtR')
    profile = np.ones((10, 1, 2), np.float32)
    for version in schema.READABLE_VERSIONS:
        a = schema.encode_record('r', 'c', 0, one_hot, profile, version=version)
        b = schema.encode_record(
            'r', 'c', 0, sequence.tokens('ACGTNacgtR'), profile, version=version
        )
        assert a == b
    with pytest.raises(schema.SchemaError, match='single 1'):
        schema.encode_record('r', 'c', 0, np.ones((10, 4)), profile)


def test_encode_rejects_bad_shapes():
    with pytest.raises(schema.SchemaError, match='one_hot must be'):
        schema.encode_record('r', 'c', 0, np.zeros((10, 5)), np.zeros((10, 1, 2)))
    with pytest.raises(schema.SchemaError, match='one_hot must be'):
        schema.encode_record('r', 'c', 0, np.zeros((10, 4, 1)), np.zeros((10, 1, 2)))
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


def _tf_example(region_id, chrom, start, one_hot, profile, version, enc, **extras):
    """The record built with TensorFlow's own protos: what encode_record must equal."""
    import tensorflow as tf

    def _bytes(value):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    def _int64(value):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))

    def _track(key, values):
        if version == 1:
            return {key: _bytes(values.astype(np.float32).tobytes())}
        flat = values.astype(enc.dtype).ravel()
        if enc.layout == 'dense':
            return {key: _bytes(flat.tobytes())}
        nz = np.flatnonzero(flat)
        gaps = np.diff(nz, prepend=0).astype(schema.sparse_index_dtype(flat.size))
        return {key + '/index': _bytes(gaps.tobytes()), key + '/value': _bytes(flat[nz].tobytes())}

    feature = {
        schema.KEY_REGION_ID: _bytes(region_id.encode()),
        schema.KEY_CHROM: _bytes(chrom.encode()),
        schema.KEY_START: _int64(start),
        **_track(schema.KEY_PROFILE, profile),
    }
    if version == 1:
        feature[schema.KEY_ONE_HOT] = _bytes(one_hot.astype(np.uint8).tobytes())
    else:
        feature[schema.KEY_TOKENS] = _bytes(sequence.tokens_from_one_hot(one_hot).tobytes())
    for key, name in ((schema.KEY_EXPECTED, 'expected'), (schema.KEY_CONTROL, 'control')):
        if name in extras:
            feature.update(_track(key, extras[name]))
    if 'is_background' in extras:
        feature[schema.KEY_IS_BACKGROUND] = _int64(int(extras['is_background']))
    return tf.train.Example(features=tf.train.Features(feature=feature))


WIRE_CASES = [
    (1, schema.TrackEncoding()),
    (2, schema.TrackEncoding()),
    (2, schema.TrackEncoding('uint16', 'dense')),
    (2, schema.TrackEncoding('uint8', 'sparse')),
    (2, schema.TrackEncoding('uint32', 'sparse')),
]


@pytest.mark.parametrize(
    'length,start', [(1, 0), (10, 127), (16, 128), (2114, 2**40), (40_000, -3)]
)
@pytest.mark.parametrize('extras', ['none', 'expected', 'control+background', 'foreground'])
@pytest.mark.parametrize('version,enc', WIRE_CASES, ids=lambda c: str(c))
def test_encode_record_writes_tensorflows_deterministic_bytes(length, start, extras, version, enc):
    # The hand-written wire format against TensorFlow's: lengths of 1, 2 and 3 varint bytes,
    # starts of 1, 2, 6 and 10 (negative) varint bytes, every optional feature and encoding
    # (40,000 x 2 x 2 values take uint32 sparse indices).
    rng = np.random.default_rng(length)
    one_hot = sequence.one_hot(''.join(rng.choice(list('ACGTN'), length)))
    profile = rng.poisson(0.5, (length, 2, 2)).astype(np.float32)
    kw = {
        'none': {},
        'expected': {'expected': profile * 2},
        'control+background': {'control': profile + 1, 'is_background': True},
        'foreground': {'is_background': False},
    }[extras]
    encodings = {'profile': enc, 'expected': enc, 'control': enc}
    ours = schema.encode_record(
        'chr2L:5-15', 'chr2L', start, one_hot, profile, encodings=encodings, version=version, **kw
    )
    reference = _tf_example('chr2L:5-15', 'chr2L', start, one_hot, profile, version, enc, **kw)
    assert ours == reference.SerializeToString(deterministic=True)
    assert type(reference).FromString(ours) == reference


@pytest.mark.parametrize('version', schema.READABLE_VERSIONS)
def test_encoded_records_parse_with_parse_example(version):
    import tensorflow as tf

    control_enc = (
        schema.TrackEncoding('uint8', 'sparse') if version == 2 else schema.TrackEncoding()
    )
    info = _info(
        sequence_length=8,
        max_jitter=1,
        tasks=('a',),
        has_control=True,
        has_background=True,
        schema_version=version,
        track_encodings={'control': control_enc.to_dict()},
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
            encodings={'control': control_enc},
            version=version,
        )
        for i in range(3)
    ]
    parsed = tf.io.parse_example(tf.constant(records), schema.feature_spec(info))
    assert parsed[schema.KEY_START].numpy().tolist() == [0, 1, 2]
    assert parsed[schema.KEY_IS_BACKGROUND].numpy().tolist() == [0, 1, 0]
    assert parsed[schema.KEY_REGION_ID].numpy().tolist() == [b'c:0-8', b'c:1-9', b'c:2-10']
    seq_key = schema.sequence_key(info)
    control_keys = schema.track_feature_keys(info, 'control')
    assert len(control_keys) == (2 if version == 2 else 1)
    for i in range(3):
        np.testing.assert_array_equal(
            np.frombuffer(parsed[schema.KEY_PROFILE].numpy()[i], np.float32).reshape(10, 1, 2),
            profile + i,
        )
        if version == 1:
            np.testing.assert_array_equal(
                np.frombuffer(parsed[seq_key].numpy()[i], np.uint8).reshape(10, 4), one_hot
            )
        else:
            np.testing.assert_array_equal(
                np.frombuffer(parsed[seq_key].numpy()[i], np.uint8), sequence.tokens('ACGTNACGTA')
            )
            values = np.frombuffer(parsed[control_keys[1]].numpy()[i], np.uint8)
            assert values.tolist() == [v for v in (profile * i).ravel() if v]


def test_encode_record_does_not_import_tensorflow():
    from tests.fixtures.mains import run_python

    code = (
        'import sys, numpy as np; from bpnet_tfx.records import schema; '
        'schema.encode_record("r", "c", 0, np.zeros((4, 4)), np.zeros((4, 1, 2)), '
        'is_background=True); print("tensorflow" in sys.modules)'
    )
    out = run_python('-c', code)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == 'False'
