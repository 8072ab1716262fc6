"""Tests of beam_jobs/transforms.py on a tiny genome and bigWigs built in a temp folder."""

from __future__ import annotations

import dataclasses
import json
import os

import apache_beam as beam
import numpy as np
import pyBigWig
import pytest
import tensorflow as tf
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that
from apache_beam.testing.util import equal_to

from beam_jobs import files as files_lib
from beam_jobs import transforms
from beam_jobs.regions import RecordsInputError, Region
from bpnet_tfx import schema
from bpnet_tfx import sequence

L, J = 20, 5  # Window length and jitter margin of these tests.
def _pipeline() -> test_pipeline.TestPipeline:
    # FnApiRunner directly: the default DirectRunner first tries to download Prism.
    return test_pipeline.TestPipeline(runner=FnApiRunner())


def _write_bigwig(path: str, chroms: dict[str, int], tracks: dict[str, np.ndarray]) -> str:
    """Writes the non-NaN bases of each track (NaN = no entry, read back as NaN)."""
    bw = pyBigWig.open(path, 'w')
    bw.addHeader(list(chroms.items()))
    for chrom in chroms:
        values = tracks[chrom]
        starts = np.flatnonzero(~np.isnan(values))
        if starts.size:
            bw.addEntries(chrom, starts.astype(np.int64), values=values[starts].astype(np.float64),
                          span=1)
    bw.close()
    return path


@pytest.fixture(scope='module')
def genome(tmp_path_factory):
    """chr1 (300 bp, N stretch at 200-260) and chr2 (100 bp); two tasks, a control, expected."""
    root = tmp_path_factory.mktemp('genome')
    rng = np.random.default_rng(0)
    chroms = {'chr1': 300, 'chr2': 100}
    seqs = {c: ''.join(rng.choice(list('ACGTacgt'), n)) for c, n in chroms.items()}
    seqs['chr1'] = seqs['chr1'][:200] + 'N' * 60 + seqs['chr1'][260:]
    fasta = root / 'genome.fa'
    fasta.write_text(''.join(f'>{c}\n{s}\n' for c, s in seqs.items()))
    values, paths = {}, {}
    for name in ('pos', 'neg', 'pos2', 'neg2', 'ctl_pos', 'ctl_neg', 'exp_pos', 'exp_neg'):
        if name.startswith('exp'):
            values[name] = {c: rng.random(n) * 3 for c, n in chroms.items()}
        elif name in ('pos', 'pos2'):  # Sparse: NaN (no entry) reads as 0.
            values[name] = {c: np.where(rng.random(n) < 0.3, rng.integers(1, 20, n), np.nan)
                            for c, n in chroms.items()}
        else:
            values[name] = {c: rng.integers(0, 5, n).astype(np.float64)
                            for c, n in chroms.items()}
        paths[name] = _write_bigwig(str(root / f'{name}.bw'), chroms, values[name])
    return {'root': root, 'fasta': str(fasta), 'seqs': seqs, 'values': values, **paths}


def _spec(genome, *, tasks=1, control=False, expected=False, max_n_fraction=0.1,
          run_gap=20_000, prefix=None):
    path = (lambda name: prefix + os.path.basename(genome[name])) if prefix else genome.get
    pairs = [('pos', 'neg'), ('pos2', 'neg2')][:tasks]
    return transforms.WindowSpec(
        fasta=path('fasta'), counts=[(path(a), path(b)) for a, b in pairs],
        control=[(path('ctl_pos'), path('ctl_neg'))] * tasks if control else None,
        expected=[(path('exp_pos'), path('exp_neg'))] * tasks if expected else None,
        max_jitter=J, max_n_fraction=max_n_fraction, run_gap=run_gap)


def _direct(genome, region: Region, pairs) -> tuple[np.ndarray, np.ndarray, int]:
    """Direct extraction: one-hot, (stored, tasks, 2) counts, stored start."""
    start, end = region.start - J, region.end + J
    one_hot = sequence.one_hot(genome['seqs'][region.chrom][start:end])
    profile = np.stack([np.stack([np.nan_to_num(genome['values'][t][region.chrom][start:end])
                                  for t in pair], axis=-1) for pair in pairs],
                       axis=1).astype(np.float32)
    return one_hot, profile, start


REGIONS = [
    Region('chr1', 50, 70, 'train', 1),
    Region('chr1', 100, 120, 'valid', 2),
    Region('chr1', 2, 22, 'train', 3),  # Stored window starts at -3.
    Region('chr1', 280, 300, 'train', 4),  # Stored window ends at 305 > 300.
    Region('chr1', 210, 230, 'train', 5),  # Inside the N stretch.
    Region('chr2', 40, 60, 'test', 6),
    Region('chr1', 5, 25, 'train', 7),  # Stored window starts exactly at 0.
    Region('chr3', 5, 25, 'train', 8),  # Not in the FASTA.
    Region('chr1', 60, 80, 'train', 9),  # Overlaps line 1's window.
]
KEPT = [REGIONS[i] for i in (0, 1, 5, 6, 8)]
REJECTED = [('chr1:2-22', 'out_of_bounds'), ('chr1:280-300', 'out_of_bounds'),
            ('chr1:210-230', 'too_many_n'), ('chr3:5-25', 'out_of_bounds')]
NUM_SHARDS = {'train': 3, 'valid': 1, 'test': 1}


# --- Planning ----------------------------------------------------------------------------------


def test_make_chunks_cuts_by_split_chrom_size_and_span():
    regions = [Region('chr1', s, s + 10, 'train', i) for i, s in enumerate([50, 0, 20, 30, 40])]
    regions += [Region('chr1', 5, 15, 'valid', 9), Region('chr2', 0, 10, 'train', 10),
                Region('chr2', 5000, 5010, 'train', 11)]
    chunks = transforms.make_chunks(regions, chunk_size=2, max_span=1000)
    got = [(c.split, c.chrom, [r.start for r in c.regions]) for c in chunks]
    assert got == [('train', 'chr1', [0, 20]), ('train', 'chr1', [30, 40]),
                   ('train', 'chr1', [50]), ('train', 'chr2', [0]), ('train', 'chr2', [5000]),
                   ('valid', 'chr1', [5])]


def test_plan_shards_is_balanced_sorted_complete_and_stable():
    rng = np.random.default_rng(1)
    regions = [Region(f'chr{c}', int(s), int(s) + 100, 'valid' if c == 1 else 'train', i)
               for i, (c, s) in enumerate(zip(rng.integers(1, 4, 2000),
                                              rng.integers(0, 10**6, 2000)))]
    num_shards = {'train': 5, 'valid': 2, 'test': 0}
    plans = transforms.plan_shards(regions, num_shards, chunk_size=32)
    assert [(p.split, p.shard, p.num_shards) for p in plans] == [
        ('train', i, 5) for i in range(5)] + [('valid', 0, 2), ('valid', 1, 2)]
    placed = [r for p in plans for c in p.chunks for r in c.regions]
    assert sorted(placed, key=lambda r: r.line) == regions  # Each region exactly once.
    for p in plans:
        keys = [(r.chrom, r.start, r.end) for c in p.chunks for r in c.regions]
        assert keys == sorted(keys)  # File order is (chrom, start, end).
        assert all(r.split == p.split for c in p.chunks for r in c.regions)
    train = [p.num_regions for p in plans if p.split == 'train']
    assert max(train) - min(train) <= 32  # Within one chunk.
    # Same plan from a shuffled input, and through the JSON the pipeline reads.
    again = transforms.plan_shards(list(reversed(regions)), num_shards, chunk_size=32)
    assert again == plans
    assert [transforms.ShardPlan.from_json(p.to_json()) for p in plans] == plans


def test_plan_shards_needs_a_shard_for_every_split_with_regions():
    with pytest.raises(ValueError, match='valid split has regions but no shards'):
        transforms.plan_shards([Region('chr1', 0, 10, 'valid')], {'train': 1})


def test_shard_index_is_a_stable_hash():
    assert transforms.shard_index('train/chr1:0-1000', 7) == transforms.shard_index(
        'train/chr1:0-1000', 7)
    assert len({transforms.shard_index(f'chr1:{i}-{i + 10}', 4) for i in range(64)}) == 4


def test_runs_group_nearby_windows():
    stored = [(0, 30), (10, 40), (100, 130), (1000, 1030), (1040, 1070)]
    assert transforms._runs(stored, gap=50, max_span=10**6) == [(0, 2), (2, 3), (3, 5)]
    assert transforms._runs(stored, gap=10**6, max_span=10**6) == [(0, 5)]
    assert transforms._runs(stored, gap=10**6, max_span=500) == [(0, 3), (3, 5)]
    assert transforms._runs([], gap=1, max_span=1) == []


# --- Reading windows ---------------------------------------------------------------------------


def _chunks(regions):
    return transforms.make_chunks(regions)


@pytest.mark.parametrize('run_gap', [0, 20_000], ids=['window_by_window', 'one_fetch_per_run'])
@pytest.mark.parametrize('tasks, control, expected', [(1, False, False), (2, True, True)],
                         ids=['one_task', 'two_tasks_control_expected'])
def test_window_reader_matches_direct_extraction(genome, run_gap, tasks, control, expected):
    reader = transforms.WindowReader(_spec(genome, tasks=tasks, control=control,
                                           expected=expected, run_gap=run_gap)).open()
    pairs = [('pos', 'neg'), ('pos2', 'neg2')][:tasks]
    try:
        got = [item for chunk in _chunks(REGIONS) for item in reader.read(chunk)]
    finally:
        reader.close()
    rejected = sorted((r.region_id, w) for r, w in got if isinstance(w, str))
    assert rejected == sorted(REJECTED)
    windows = [w for _, w in got if not isinstance(w, str)]
    assert sorted(w.region.line for w in windows) == sorted(r.line for r in KEPT)
    for w in windows:
        one_hot, profile, start = _direct(genome, w.region, pairs)
        assert w.start == start
        np.testing.assert_array_equal(w.one_hot, one_hot)
        np.testing.assert_array_equal(w.profile, profile)
        assert w.profile.shape == (L + 2 * J, tasks, 2) and w.profile.dtype == np.float32
        if control:
            np.testing.assert_array_equal(
                w.control, _direct(genome, w.region, [('ctl_pos', 'ctl_neg')] * tasks)[1])
        else:
            assert w.control is None
        if expected:
            np.testing.assert_allclose(
                w.expected, _direct(genome, w.region, [('exp_pos', 'exp_neg')] * tasks)[1],
                rtol=1e-6)
        else:
            assert w.expected is None


def test_dense_chunk_is_one_fetch_per_track(genome, monkeypatch):
    calls = []
    reader = transforms.WindowReader(_spec(genome)).open()
    original = transforms.WindowReader._read_tracks

    def _spy(self, kind, chrom, start, end, windows):
        calls.append((start, end))
        return original(self, kind, chrom, start, end, windows)

    monkeypatch.setattr(transforms.WindowReader, '_read_tracks', _spy)
    chunk = transforms.Chunk('train', 'chr1', tuple(
        Region('chr1', s, s + L, 'train', i) for i, s in enumerate(range(10, 180, 15))))
    assert len([w for _, w in reader.read(chunk)]) == len(chunk.regions)
    assert calls == [(5, 200)]  # One values() span per bigWig for the whole chunk.
    reader.close()


def test_max_n_fraction_threshold(genome):
    # chr1:185-215 stored (5 bp margin each side) covers N at 200-215: 15 of 30 bases.
    chunk = transforms.Chunk('train', 'chr1', (Region('chr1', 190, 210, 'train', 1),))
    for fraction, outcome in ((0.49, 'too_many_n'), (0.5, 'kept')):
        reader = transforms.WindowReader(_spec(genome, max_n_fraction=fraction)).open()
        (_, window), = reader.read(chunk)
        reader.close()
        assert (window if isinstance(window, str) else 'kept') == outcome


def test_negative_counts_fail_naming_bigwig_and_region(genome, tmp_path):
    values = np.zeros(300)
    values[60] = -2.0
    bad = _write_bigwig(str(tmp_path / 'bad.bw'), {'chr1': 300, 'chr2': 100},
                        {'chr1': values, 'chr2': np.zeros(100)})
    spec = transforms.WindowSpec(genome['fasta'], [(genome['pos'], bad)], max_jitter=J)
    reader = transforms.WindowReader(spec).open()
    with pytest.raises(RecordsInputError, match=r'bad\.bw: negative counts \(min -2\) in '
                                                 r'chr1:45-75'):
        list(reader.read(_chunks(REGIONS[:1])[0]))
    reader.close()


def test_reader_copies_remote_inputs_to_local_disk(genome, fake_remote):
    root, prefix = fake_remote
    for name in ('fasta', 'pos', 'neg'):
        (root / os.path.basename(genome[name])).write_bytes(
            open(genome[name], 'rb').read())
    reader = transforms.WindowReader(_spec(genome, prefix=prefix)).open()
    local_dir = reader._local_dir
    assert os.path.isdir(local_dir) and files_lib.is_remote(reader.spec.fasta)
    got = {r.line: w for chunk in _chunks(KEPT) for r, w in reader.read(chunk)}
    reader.close()
    assert not os.path.exists(local_dir)  # Removed in close (teardown).
    for r in KEPT:
        np.testing.assert_array_equal(got[r.line].profile, _direct(genome, r, [('pos', 'neg')])[1])


# --- Writing shards ----------------------------------------------------------------------------


def _read_shard(path: str, info: schema.RecordsInfo) -> list[dict]:
    return [schema.decode_record(r.numpy(), info)
            for r in tf.data.TFRecordDataset(path, compression_type='GZIP')]


def _info(tasks=1, control=False) -> schema.RecordsInfo:
    return schema.RecordsInfo(sequence_length=L, max_jitter=J,
                              tasks=tuple(f't{i}' for i in range(tasks)), has_control=control)


def _counters(result) -> dict[str, int]:
    return {c.key.metric.name: c.committed for c in result.metrics().query(
        MetricsFilter().with_namespace(transforms.NAMESPACE))['counters']}


def _check_shards(genome, folder, plans, tasks, control):
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
            one_hot, profile, start = _direct(genome, region, pairs)
            assert (rec['chrom'], rec['start']) == (region.chrom, start)
            np.testing.assert_array_equal(rec['one_hot'], one_hot)
            np.testing.assert_array_equal(rec['profile'], profile)
            assert ('control' in rec) == control
            if control:
                np.testing.assert_array_equal(
                    rec['control'], _direct(genome, region, [('ctl_pos', 'ctl_neg')] * tasks)[1])
        seen += [r.line for r in expected]
    assert sorted(seen) == sorted(r.line for r in KEPT)


@pytest.mark.parametrize('tasks, control', [(1, False), (2, True)],
                         ids=['one_task', 'two_tasks_control'])
def test_write_shards(genome, tmp_path, tasks, control):
    plans = transforms.plan_shards(REGIONS, NUM_SHARDS)
    pairs = [('pos', 'neg'), ('pos2', 'neg2')][:tasks]
    centre = slice(J, J + L)
    totals = {}
    for r in KEPT:
        totals.setdefault(r.split, []).append(tuple(
            float(x) for x in _direct(genome, r, pairs)[1][centre].sum(axis=(0, 2))))
    with _pipeline() as p:
        out = (p | beam.Create(plans)
               | transforms.WriteShards(str(tmp_path), _spec(genome, tasks=tasks,
                                                             control=control), L))
        written = {s: sum(1 for r in KEPT if r.split == s) for s in ('train', 'valid', 'test')}
        assert_that(out.shards | beam.CombinePerKey(sum),
                    equal_to(list(written.items())), label='Counts')
        assert_that(out[transforms.REJECTED], equal_to(REJECTED), label='Rejected')
        assert_that(out[transforms.TOTALS]
                    | beam.FlatMap(lambda kv: [(kv[0], tuple(t)) for t in kv[1].tolist()]),
                    equal_to([(s, t) for s, ts in totals.items() for t in ts]), label='Totals')
    assert sorted(os.listdir(tmp_path)) == sorted(p.filename for p in plans)
    _check_shards(genome, str(tmp_path), plans, tasks, control)
    assert _counters(p.result) == {
        'regions_in': len(REGIONS), 'records_out': 5, 'records_train': 3, 'records_valid': 1,
        'records_test': 1, 'rejected_out_of_bounds': 3, 'rejected_too_many_n': 1,
        'shards_written': 5}


def test_write_shards_to_a_remote_folder(genome, fake_remote, tmp_path):
    root, prefix = fake_remote
    plans = transforms.plan_shards(REGIONS, NUM_SHARDS)
    with _pipeline() as p:
        _ = (p | beam.Create(plans)
             | transforms.WriteShards(prefix + 'bucket/records', _spec(genome), L))
    assert sorted(os.listdir(root / 'bucket' / 'records')) == sorted(p.filename for p in plans)
    _check_shards(genome, str(root / 'bucket' / 'records'), plans, 1, False)


def test_empty_plan_writes_an_empty_file(genome, tmp_path):
    with _pipeline() as p:
        out = (p | beam.Create([transforms.ShardPlan('test', 0, 1)])
               | transforms.WriteShards(str(tmp_path), _spec(genome), L))
        assert_that(out.shards, equal_to([('test', 0)]))
    assert _read_shard(str(tmp_path / 'test-00000-of-00001.tfrecord.gz'), _info()) == []


# --- Job summary -------------------------------------------------------------------------------


def test_summarise_median_over_training_records_only():
    summary = transforms.summarise(
        shards=[('train', 2), ('train', 1), ('valid', 1)],
        totals=[('train', [(1.0, 10.0), (4.0, 30.0)]), ('train', [(2.0, 20.0), (3.0, 40.0)]),
                ('valid', [(1000.0, 1000.0)])],
        rejected=[('chr1:5-10', 'too_many_n'), ('chr1:0-5', 'out_of_bounds')])
    assert summary == {
        'split_counts': {'train': 3, 'valid': 1, 'test': 0},
        'median_total_counts': [2.5, 25.0],
        'rejected': [['chr1:0-5', 'out_of_bounds'], ['chr1:5-10', 'too_many_n']],
    }
    assert transforms.summarise([], [('valid', [(1.0,)])], [])['median_total_counts'] == []


def test_write_job_summary(tmp_path):
    path = str(tmp_path / transforms.SUMMARY_FILENAME)
    with _pipeline() as p:
        pcolls = {
            'shards': p | 'Shards' >> beam.Create([('train', 2), ('valid', 1)]),
            'totals': p | 'Totals' >> beam.Create([('train', [(5.0,), (7.0,)]),
                                                   ('valid', [(9.0,)])]),
            'rejected': p | 'Rejected' >> beam.Create([]),
        }
        out = pcolls | transforms.WriteJobSummary(path)
        assert_that(out, equal_to([path]))
    with open(path) as f:
        assert json.load(f) == {'split_counts': {'train': 2, 'valid': 1, 'test': 0},
                                'median_total_counts': [6.0], 'rejected': []}


# --- Narrower counts window and background records ---------------------------------------------


TRIM = 4  # Counts window: L - 2 * TRIM = 12 bp, stored 12 + 2J.


@pytest.mark.parametrize('run_gap', [0, 20_000], ids=['window_by_window', 'one_fetch_per_run'])
def test_output_trim_reads_the_centred_counts_window(genome, run_gap):
    spec = dataclasses.replace(_spec(genome, tasks=2, control=True, expected=True,
                                     run_gap=run_gap), output_trim=TRIM)
    reader = transforms.WindowReader(spec).open()
    try:
        got = [(r, w) for chunk in _chunks(REGIONS) for r, w in reader.read(chunk)]
    finally:
        reader.close()
    assert sorted((r.region_id, w) for r, w in got if isinstance(w, str)) == sorted(REJECTED)
    windows = [w for _, w in got if not isinstance(w, str)]
    assert sorted(w.region.line for w in windows) == sorted(r.line for r in KEPT)
    pairs = [('pos', 'neg'), ('pos2', 'neg2')]
    for w in windows:
        one_hot, profile, start = _direct(genome, w.region, pairs)
        assert w.start == start and w.one_hot.shape == (L + 2 * J, 4)
        np.testing.assert_array_equal(w.one_hot, one_hot)
        assert w.profile.shape == (L - 2 * TRIM + 2 * J, 2, 2)
        np.testing.assert_array_equal(w.profile, profile[TRIM:-TRIM])
        np.testing.assert_array_equal(
            w.control, _direct(genome, w.region, [('ctl_pos', 'ctl_neg')] * 2)[1][TRIM:-TRIM])
        np.testing.assert_allclose(
            w.expected, _direct(genome, w.region, [('exp_pos', 'exp_neg')] * 2)[1][TRIM:-TRIM],
            rtol=1e-6)
        assert w.is_background is None


BACKGROUND = Region('chr1', 130, 150, 'train', 1, -1, True)


def test_plan_json_keeps_the_background_flag():
    plans = transforms.plan_shards(KEPT + [BACKGROUND], {'train': 1, 'valid': 1, 'test': 1})
    assert [transforms.ShardPlan.from_json(p.to_json()) for p in plans] == plans
    assert sum(r.background for p in plans for c in p.chunks for r in c.regions) == 1
    # Peaks only: the JSON is as before (no fifth field).
    assert '[50,70,1,0]' in transforms.plan_shards(KEPT, NUM_SHARDS)[0].to_json()


def test_background_records_are_marked_and_left_out_of_the_totals(genome, tmp_path):
    regions_in = KEPT + [BACKGROUND]
    num_shards = {'train': 1, 'valid': 1, 'test': 1}
    plans = transforms.plan_shards(regions_in, num_shards)
    spec = dataclasses.replace(_spec(genome), output_trim=TRIM, mark_background=True)
    centre = slice(J, J + L - 2 * TRIM)
    peak_totals = [(r.split, float(_direct(genome, r, [('pos', 'neg')])[1][TRIM:-TRIM]
                                   [centre].sum())) for r in KEPT]
    with _pipeline() as p:
        out = (p | beam.Create(plans)
               | transforms.WriteShards(str(tmp_path), spec, L - 2 * TRIM))
        assert_that(out.shards | beam.CombinePerKey(sum),
                    equal_to([('train', 4), ('valid', 1), ('test', 1)]), label='Counts')
        assert_that(out[transforms.TOTALS]
                    | beam.FlatMap(lambda kv: [(kv[0], float(t[0])) for t in kv[1].tolist()]),
                    equal_to(peak_totals), label='Totals')
    info = schema.RecordsInfo(sequence_length=L, output_length=L - 2 * TRIM, max_jitter=J,
                              tasks=('t0',), has_background=True)
    records = {rec['region_id']: rec for plan in plans
               for rec in _read_shard(str(tmp_path / plan.filename), info)}
    assert set(records) == {r.region_id for r in regions_in}
    assert {rid for rid, rec in records.items() if rec['is_background']} == {
        BACKGROUND.region_id}
    one_hot, profile, _ = _direct(genome, BACKGROUND, [('pos', 'neg')])
    np.testing.assert_array_equal(records[BACKGROUND.region_id]['one_hot'], one_hot)
    np.testing.assert_array_equal(records[BACKGROUND.region_id]['profile'], profile[TRIM:-TRIM])


def test_write_job_summary_of_empty_inputs(tmp_path):
    path = str(tmp_path / transforms.SUMMARY_FILENAME)
    with _pipeline() as p:
        pcolls = {name: p | name >> beam.Create([]) for name in ('shards', 'totals', 'rejected')}
        assert_that(pcolls | transforms.WriteJobSummary(path), equal_to([path]))
    with open(path) as f:
        assert json.load(f) == {'split_counts': {'train': 0, 'valid': 0, 'test': 0},
                                'median_total_counts': [], 'rejected': []}


def test_shard_file_appears_whole_or_not_at_all(genome, tmp_path, monkeypatch):
    # The DoFn writes a local shard under a name of its own and renames it into place: a
    # failed attempt leaves nothing, a good one only the shard.
    plan = transforms.plan_shards(KEPT, NUM_SHARDS)[0]
    fn = transforms.WriteShardFn(str(tmp_path), _spec(genome), L)
    fn.setup()
    try:
        real = transforms.WindowReader.read

        def _fail_after_one(self, chunk):
            for item in real(self, chunk):
                yield item
                raise OSError('disk gone')

        monkeypatch.setattr(transforms.WindowReader, 'read', _fail_after_one)
        with pytest.raises(OSError, match='disk gone'):
            list(fn.process(plan.to_json()))
        assert os.listdir(tmp_path) == []
        monkeypatch.setattr(transforms.WindowReader, 'read', real)
        (split, written), *_ = fn.process(plan.to_json())
        assert os.listdir(tmp_path) == [plan.filename]
        assert written == plan.num_regions > 0
    finally:
        fn.teardown()
