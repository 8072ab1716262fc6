"""Tests of the records' track encodings: the driver's choice and the job's version-2 output."""

from __future__ import annotations

import glob
import os

import numpy as np
import pyBigWig
import pytest
import tensorflow as tf

from beam_jobs import make_records
from beam_jobs.records import encodings
from beam_jobs.records.regions import Region
from bpnet_tfx.records import codec, schema
from bpnet_tfx.records import dataset as data
from tests.fixtures.genomes import write_bigwig
from tests.fixtures.mains import run_main
from tests.fixtures.paths import shared_data_dir

DATA = shared_data_dir()
REB1 = [
    f'--fasta={DATA / "chrIV.fa"}',
    f'--peaks={DATA / "peaks.narrowPeak"}',
    f'--pos_bigwig={DATA / "Reb1.pos.bw"}',
    f'--neg_bigwig={DATA / "Reb1.neg.bw"}',
    '--valid_chroms=chrIV:0-100000',
    '--max_jitter=50',
    '--runner=DirectRunner',
]


def _bigwig(path, values: dict[int, float], size=1000):
    """A bigWig of chromosome c1 with entries only at the positions of `values`."""
    track = np.full(size, np.nan)
    track[list(values)] = list(values.values())
    return write_bigwig(path, {'c1': track})


def test_survey_reads_the_header_maximum_integrality_and_density(tmp_path):
    # The maximum lies outside the sampled window: the header still gives it.
    a = _bigwig(tmp_path / 'a.bw', {10: 3, 11: 4, 900: 300})
    b = _bigwig(tmp_path / 'b.bw', {20: 1.5})
    whole = encodings.survey_track([a], [('c1', 0, 100)], ['a'])
    assert whole == encodings.TrackSurvey(max_value=300.0, integer=True, nonzero_fraction=0.02)
    mixed = encodings.survey_track([a, b], [('c1', 0, 100), ('c2', 0, 10), ('c1', 990, 1010)], 'ab')
    assert mixed.integer is False and mixed.max_value == 300.0  # Unknown/out of range: skipped.
    assert mixed.nonzero_fraction == pytest.approx(3 / 200)


@pytest.mark.parametrize(
    'survey,dtype,layout,expected',
    [
        (encodings.TrackSurvey(200, True, 0.01), 'auto', 'auto', ('uint8', 'sparse')),
        (encodings.TrackSurvey(200, True, 0.2), 'auto', 'auto', ('uint8', 'dense')),
        (encodings.TrackSurvey(70_000, True, 0.01), 'auto', 'auto', ('uint32', 'sparse')),
        (encodings.TrackSurvey(7.5, False, 0.01), 'auto', 'auto', ('float32', 'sparse')),
        (encodings.TrackSurvey(7.5, False, 0.9), 'auto', 'auto', ('float32', 'dense')),
        (encodings.TrackSurvey(200, True, 0.01), 'uint16', 'dense', ('uint16', 'dense')),
        (encodings.TrackSurvey(200, True, 0.2), 'float32', 'sparse', ('float32', 'sparse')),
    ],
)
def test_encoding_rules(survey, dtype, layout, expected):
    enc = encodings.encoding_for(survey, dtype=dtype, layout=layout, values=2000)
    assert (enc.dtype, enc.layout) == expected


def test_the_sample_does_not_depend_on_region_order():
    rng = np.random.default_rng(0)
    regions = [Region('c1', int(s), int(s) + 100) for s in rng.integers(0, 10**6, 5000)]
    sample = encodings.sample_windows(regions, limit=100)
    assert len(sample) <= 100 and len(sample) >= 90
    shuffled = [regions[i] for i in rng.permutation(len(regions))]
    assert encodings.sample_windows(shuffled, limit=100) == sample


def _decoded(records_dir):
    info = schema.RecordsInfo.load(str(records_dir))
    out = {}
    for path in sorted(glob.glob(os.path.join(records_dir, '*.tfrecord.gz'))):
        for r in tf.data.TFRecordDataset(path, compression_type='GZIP'):
            rec = codec.decode_record(r.numpy(), info)
            out[rec['region_id']] = rec
    return info, out


def _shard_size(records_dir):
    return sum(os.path.getsize(p) for p in glob.glob(os.path.join(records_dir, '*.tfrecord.gz')))


@pytest.mark.slow  # Two jobs.
def test_version_2_records_hold_what_version_1_records_hold(tmp_path):
    v1 = make_records.run(REB1 + [f'--output_dir={tmp_path / "v1"}', '--schema_version=1'])
    v2 = make_records.run(REB1 + [f'--output_dir={tmp_path / "v2"}'])
    assert (v1.schema_version, v2.schema_version) == (1, 2)
    # Reb1's bigWigs hold integer tag counts above 255, a few percent of bases non-zero.
    assert v2.encoding('profile') == schema.TrackEncoding('uint16', 'sparse')
    _, old = _decoded(tmp_path / 'v1')
    _, new = _decoded(tmp_path / 'v2')
    assert sorted(old) == sorted(new) and len(new) == 29
    for region_id, rec in old.items():
        for key, value in rec.items():
            np.testing.assert_array_equal(new[region_id][key], value, err_msg=key)
    assert _shard_size(tmp_path / 'v2') < 0.6 * _shard_size(tmp_path / 'v1')
    # The training path gives the model the same batches (bit for bit).
    for split in ('train', 'valid'):
        a = data.make_eval_dataset(str(tmp_path / 'v1'), v1, split, batch_size=5)
        b = data.make_eval_dataset(str(tmp_path / 'v2'), v2, split, batch_size=5)
        for x, y in zip(a, b, strict=True):
            for key in x:
                np.testing.assert_array_equal(x[key].numpy(), y[key].numpy(), err_msg=key)


@pytest.mark.slow  # Three jobs.
def test_fixed_encodings_and_a_non_integer_track(tmp_path):
    dense = make_records.run(
        REB1
        + [f'--output_dir={tmp_path / "dense"}', '--counts_dtype=uint32', '--counts_layout=dense']
    )
    assert dense.encoding('profile') == schema.TrackEncoding('uint32', 'dense')
    _, ref = _decoded(tmp_path / 'dense')
    # Halved counts are not integers: auto picks float32, and the values survive.
    halves = {}
    for strand in ('pos', 'neg'):
        src = pyBigWig.open(str(DATA / f'Reb1.{strand}.bw'))
        values = np.nan_to_num(src.values('chrIV', 0, 300_000, numpy=True)) / 2
        src.close()
        halves[strand] = write_bigwig(  # entries where counts are
            tmp_path / f'half.{strand}.bw', {'chrIV': np.where(values != 0, values, np.nan)}
        )
    flags = [f for f in REB1 if 'bigwig' not in f]
    half = make_records.run(
        flags
        + [
            f'--pos_bigwig={halves["pos"]}',
            f'--neg_bigwig={halves["neg"]}',
            f'--output_dir={tmp_path / "half"}',
        ]
    )
    assert half.encoding('profile').dtype == 'float32'
    _, got = _decoded(tmp_path / 'half')
    for region_id, rec in ref.items():
        np.testing.assert_array_equal(got[region_id]['profile'], rec['profile'] / 2)


@pytest.mark.slow  # A job in a fresh Python.
def test_a_dtype_too_small_for_the_counts_is_one_line_and_leaves_no_output(tmp_path):
    out = tmp_path / 'records'
    proc = run_main('beam_jobs.make_records', *REB1, f'--output_dir={out}', '--counts_dtype=uint8')
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert 'not an integer in 0..255' in lines[0] and 'Reb1.pos.bw' in lines[0]
    assert 'a larger --counts_dtype' in lines[0]
    assert not out.exists() and not [p for p in os.listdir(tmp_path) if '.tmp-' in p]
