"""Tests of beam_jobs/records/transforms.py (shard files, job summary) on a tiny genome
(track_genome, tests/fixtures/genomes.py)."""

from __future__ import annotations

import dataclasses
import json
import os

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to

from beam_jobs.common import shard_plans
from beam_jobs.records import shards, transforms, windows
from beam_jobs.records.regions import Region
from bpnet_tfx.records import codec, schema
from tests.fixtures.windows import (
    KEPT,
    NUM_SHARDS,
    REGIONS,
    REJECTED,
    TRIM,
    J,
    L,
    direct_window,
    window_spec,
)


def _pipeline() -> test_pipeline.TestPipeline:
    # FnApiRunner directly: the default DirectRunner first tries to download Prism.
    return test_pipeline.TestPipeline(runner=FnApiRunner())


# --- Writing shards ----------------------------------------------------------------------------


def _read_shard(path: str, info: schema.RecordsInfo) -> list[dict]:
    return [
        codec.decode_record(r.numpy(), info)
        for r in tf.data.TFRecordDataset(path, compression_type='GZIP')
    ]


def _info(tasks=1, control=False) -> schema.RecordsInfo:
    return schema.RecordsInfo(
        sequence_length=L,
        max_jitter=J,
        tasks=tuple(f't{i}' for i in range(tasks)),
        has_control=control,
    )


def _counters(result) -> dict[str, int]:
    return {
        c.key.metric.name: c.committed
        for c in result.metrics().query(MetricsFilter().with_namespace(transforms.NAMESPACE))[
            'counters'
        ]
    }


def _check_shards(track_genome, folder, plans, tasks, control):
    """Every planned file exists; its records match direct extraction, in plan order."""
    info = _info(tasks, control)
    pairs = [('pos', 'neg'), ('pos2', 'neg2')][:tasks]
    rejected = {region_id for region_id, _ in REJECTED}
    seen = []
    for plan in plans:
        records = _read_shard(os.path.join(folder, plan.filename), info)
        expected = [r for c in plan.chunks for r in c.regions if r.region_id not in rejected]
        assert [rec['region_id'] for rec in records] == [r.region_id for r in expected]
        for rec, region in zip(records, expected):
            one_hot, profile, start = direct_window(track_genome, region, pairs)
            assert (rec['chrom'], rec['start']) == (region.chrom, start)
            np.testing.assert_array_equal(rec['one_hot'], one_hot)
            np.testing.assert_array_equal(rec['profile'], profile)
            assert ('control' in rec) == control
            if control:
                np.testing.assert_array_equal(
                    rec['control'],
                    direct_window(track_genome, region, [('ctl_pos', 'ctl_neg')] * tasks)[1],
                )
        seen += [r.line for r in expected]
    assert sorted(seen) == sorted(r.line for r in KEPT)


@pytest.mark.parametrize(
    'tasks, control', [(1, False), (2, True)], ids=['one_task', 'two_tasks_control']
)
def test_write_shards(track_genome, tmp_path, tasks, control):
    plans = shards.plan_shards(REGIONS, NUM_SHARDS)
    pairs = [('pos', 'neg'), ('pos2', 'neg2')][:tasks]
    centre = slice(J, J + L)
    totals = {}
    for r in KEPT:
        totals.setdefault(r.split, []).append(
            tuple(
                float(x) for x in direct_window(track_genome, r, pairs)[1][centre].sum(axis=(0, 2))
            )
        )
    with _pipeline() as p:
        out = (
            p
            | beam.Create(plans)
            | transforms.WriteShards(
                str(tmp_path), window_spec(track_genome, tasks=tasks, control=control), L
            )
        )
        written = {s: sum(1 for r in KEPT if r.split == s) for s in ('train', 'valid', 'test')}
        assert_that(
            out['shards'] | beam.CombinePerKey(sum), equal_to(list(written.items())), label='Counts'
        )
        assert_that(out[transforms.REJECTED], equal_to(REJECTED), label='Rejected')
        assert_that(
            out[transforms.TOTALS]
            | beam.FlatMap(lambda kv: [(kv[0], tuple(t)) for t in kv[1].tolist()]),
            equal_to([(s, t) for s, ts in totals.items() for t in ts]),
            label='Totals',
        )
    assert sorted(os.listdir(tmp_path)) == sorted(p.filename for p in plans)
    _check_shards(track_genome, str(tmp_path), plans, tasks, control)
    assert _counters(p.result) == {
        'regions_in': len(REGIONS),
        'records_out': 5,
        'records_train': 3,
        'records_valid': 1,
        'records_test': 1,
        'rejected_out_of_bounds': 3,
        'rejected_too_many_n': 1,
        'shards_written': 5,
    }


def test_write_shards_to_a_remote_folder(track_genome, fake_remote, tmp_path):
    root, prefix = fake_remote
    plans = shards.plan_shards(REGIONS, NUM_SHARDS)
    with _pipeline() as p:
        _ = (
            p
            | beam.Create(plans)
            | transforms.WriteShards(prefix + 'bucket/records', window_spec(track_genome), L)
        )
    assert sorted(os.listdir(root / 'bucket' / 'records')) == sorted(p.filename for p in plans)
    _check_shards(track_genome, str(root / 'bucket' / 'records'), plans, 1, False)


def test_empty_plan_writes_an_empty_file(track_genome, tmp_path):
    with _pipeline() as p:
        out = (
            p
            | beam.Create([shards.ShardPlan('test', 0, 1)])
            | transforms.WriteShards(str(tmp_path), window_spec(track_genome), L)
        )
        assert_that(out['shards'], equal_to([('test', 0)]))
    assert _read_shard(str(tmp_path / 'test-00000-of-00001.tfrecord.gz'), _info()) == []


# --- Job summary -------------------------------------------------------------------------------


def test_write_job_summary(tmp_path):
    path = str(tmp_path / transforms.SUMMARY_FILENAME)
    with _pipeline() as p:
        pcolls = {
            'shards': p | 'Shards' >> beam.Create([('train', 2), ('valid', 1)]),
            'totals': p
            | 'Totals' >> beam.Create([('train', [(5.0,), (7.0,)]), ('valid', [(9.0,)])]),
            'rejected': p | 'Rejected' >> beam.Create([]),
        }
        out = pcolls | transforms.WriteJobSummary(path)
        assert_that(out, equal_to([path]))
    with open(path) as f:
        assert json.load(f) == {
            'split_counts': {'train': 2, 'valid': 1, 'test': 0},
            'median_total_counts': [6.0],
            'rejected': [],
        }


# --- Narrower counts window and background records ---------------------------------------------


BACKGROUND = Region('chr1', 130, 150, 'train', 1, -1, True)


def test_background_records_are_marked_and_left_out_of_the_totals(track_genome, tmp_path):
    regions_in = KEPT + [BACKGROUND]
    num_shards = {'train': 1, 'valid': 1, 'test': 1}
    plans = shards.plan_shards(regions_in, num_shards)
    spec = dataclasses.replace(window_spec(track_genome), output_trim=TRIM, mark_background=True)
    centre = slice(J, J + L - 2 * TRIM)
    peak_totals = [
        (
            r.split,
            float(direct_window(track_genome, r, [('pos', 'neg')])[1][TRIM:-TRIM][centre].sum()),
        )
        for r in KEPT
    ]
    with _pipeline() as p:
        out = p | beam.Create(plans) | transforms.WriteShards(str(tmp_path), spec, L - 2 * TRIM)
        assert_that(
            out['shards'] | beam.CombinePerKey(sum),
            equal_to([('train', 4), ('valid', 1), ('test', 1)]),
            label='Counts',
        )
        assert_that(
            out[transforms.TOTALS]
            | beam.FlatMap(lambda kv: [(kv[0], float(t[0])) for t in kv[1].tolist()]),
            equal_to(peak_totals),
            label='Totals',
        )
    info = schema.RecordsInfo(
        sequence_length=L,
        output_length=L - 2 * TRIM,
        max_jitter=J,
        tasks=('t0',),
        has_background=True,
    )
    records = {
        rec['region_id']: rec
        for plan in plans
        for rec in _read_shard(str(tmp_path / plan.filename), info)
    }
    assert set(records) == {r.region_id for r in regions_in}
    assert {rid for rid, rec in records.items() if rec['is_background']} == {BACKGROUND.region_id}
    one_hot, profile, _ = direct_window(track_genome, BACKGROUND, [('pos', 'neg')])
    np.testing.assert_array_equal(records[BACKGROUND.region_id]['one_hot'], one_hot)
    np.testing.assert_array_equal(records[BACKGROUND.region_id]['profile'], profile[TRIM:-TRIM])


def test_write_job_summary_of_empty_inputs(tmp_path):
    path = str(tmp_path / transforms.SUMMARY_FILENAME)
    with _pipeline() as p:
        pcolls = {name: p | name >> beam.Create([]) for name in ('shards', 'totals', 'rejected')}
        assert_that(pcolls | transforms.WriteJobSummary(path), equal_to([path]))
    with open(path) as f:
        assert json.load(f) == {
            'split_counts': {'train': 0, 'valid': 0, 'test': 0},
            'median_total_counts': [],
            'rejected': [],
        }


def test_shard_file_appears_whole_or_not_at_all(track_genome, tmp_path, monkeypatch):
    # The DoFn writes a local shard under a name of its own and renames it into place: a
    # failed attempt leaves nothing, a good one only the shard.
    plan = shards.plan_shards(KEPT, NUM_SHARDS)[0]
    fn = transforms.WriteShardFn(str(tmp_path), window_spec(track_genome), L)
    fn.setup()
    try:
        real = windows.WindowReader.read

        def _fail_after_one(self, chunk):
            for item in real(self, chunk):
                yield item
                raise OSError('disk gone')

        monkeypatch.setattr(windows.WindowReader, 'read', _fail_after_one)
        with pytest.raises(OSError, match='disk gone'):
            list(fn.process(plan.to_json()))
        assert os.listdir(tmp_path) == []
        monkeypatch.setattr(windows.WindowReader, 'read', real)
        (_, (split, written)), *_ = fn.process(plan.to_json())
        assert os.listdir(tmp_path) == [plan.filename]
        assert written == plan.num_regions > 0
    finally:
        fn.teardown()


# --- Reading the plans -------------------------------------------------------------------------


def test_read_shard_plans_reads_each_line_and_marks_the_start(tmp_path):
    lines = ['{"a":1}\n', '\n', '{"b":"\\u00e9"}\n', '{"c":3}\n']  # An empty plan line too.
    path = tmp_path / shards.PLANS_FILENAME
    path.write_text(''.join(lines))
    started = tmp_path / transforms.STARTED_FILENAME
    with _pipeline() as p:
        out = p | shard_plans.ReadShardPlans(str(path), [len(x) for x in lines], str(started))
        assert_that(out, equal_to(lines))
    assert started.read_text().strip().isdigit()  # The worker's pid.
    with _pipeline() as p:
        assert_that(p | shard_plans.ReadShardPlans(str(path), []), equal_to([]))
