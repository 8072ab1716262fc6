"""Tests of beam_jobs/transforms.py on a tiny genome and bigWigs built in a temp folder."""

from __future__ import annotations

import hashlib
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

from beam_jobs import transforms
from beam_jobs.regions import Region
from bpnet_tfx import schema
from bpnet_tfx import sequence

L, J = 20, 5  # Window length and jitter margin of these tests.
NUM_SHARDS = {'train': 3, 'valid': 1, 'test': 1}


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
    """chr1 (300 bp, N stretch at 200-260) and chr2 (100 bp); sparse plus, dense minus counts."""
    root = tmp_path_factory.mktemp('genome')
    rng = np.random.default_rng(0)
    chroms = {'chr1': 300, 'chr2': 100}
    seqs = {c: ''.join(rng.choice(list('ACGTacgt'), n)) for c, n in chroms.items()}
    seqs['chr1'] = seqs['chr1'][:200] + 'N' * 60 + seqs['chr1'][260:]
    fasta = root / 'genome.fa'
    fasta.write_text(''.join(f'>{c}\n{s}\n' for c, s in seqs.items()))
    pos = {c: np.where(rng.random(n) < 0.3, rng.integers(1, 20, n), np.nan)
           for c, n in chroms.items()}
    neg = {c: rng.integers(0, 5, n).astype(np.float64) for c, n in chroms.items()}
    exp_pos = {c: rng.random(n) * 3 for c, n in chroms.items()}
    exp_neg = {c: rng.random(n) * 2 for c, n in chroms.items()}
    return {
        'fasta': str(fasta), 'seqs': seqs,
        'pos': _write_bigwig(str(root / 'pos.bw'), chroms, pos),
        'neg': _write_bigwig(str(root / 'neg.bw'), chroms, neg),
        'exp_pos': _write_bigwig(str(root / 'exp_pos.bw'), chroms, exp_pos),
        'exp_neg': _write_bigwig(str(root / 'exp_neg.bw'), chroms, exp_neg),
        'values': {'pos': pos, 'neg': neg, 'exp_pos': exp_pos, 'exp_neg': exp_neg},
    }


REGIONS = [
    Region('chr1', 50, 70, 'train', 1),
    Region('chr1', 100, 120, 'valid', 2),
    Region('chr1', 2, 22, 'train', 3),  # Stored window starts at -3.
    Region('chr1', 280, 300, 'train', 4),  # Stored window ends at 305 > 300.
    Region('chr1', 210, 230, 'train', 5),  # Inside the N stretch.
    Region('chr2', 40, 60, 'test', 6),
    Region('chr1', 5, 25, 'train', 7),  # Stored window starts exactly at 0.
    Region('chr3', 5, 25, 'train', 8),  # Not in the FASTA.
]
KEPT = [REGIONS[i] for i in (0, 1, 5, 6)]
REJECTED = [('chr1:2-22', 'out_of_bounds'), ('chr1:280-300', 'out_of_bounds'),
            ('chr1:210-230', 'too_many_n'), ('chr3:5-25', 'out_of_bounds')]


def _info(has_expected: bool) -> schema.RecordsInfo:
    return schema.RecordsInfo(sequence_length=L, max_jitter=J, tasks=('t',),
                              has_expected=has_expected)


def _expected_window(genome, region: Region, tracks=('pos', 'neg')):
    """Direct extraction: one-hot, (stored, 1, 2) counts, stored start."""
    start, end = region.start - J, region.end + J
    one_hot = sequence.one_hot(genome['seqs'][region.chrom][start:end])
    profile = np.stack([np.nan_to_num(genome['values'][t][region.chrom][start:end])
                        for t in tracks], axis=-1)[:, None, :].astype(np.float32)
    return one_hot, profile, start


def _fn(genome, expected=False, max_n_fraction=0.1):
    return transforms.ExtractWindowsFn(
        genome['fasta'], [(genome['pos'], genome['neg'])], max_jitter=J, num_shards=NUM_SHARDS,
        max_n_fraction=max_n_fraction,
        expected_bigwigs=[(genome['exp_pos'], genome['exp_neg'])] if expected else None)


def _records_match(genome, expected: bool):
    """A matcher: each record equals direct extraction and sits in its hashed shard."""
    def _match(actual):
        by_id = {r.region_id: r for r in KEPT}
        assert sorted(decoded_id for decoded_id in (
            schema.decode_record(rec, _info(expected))['region_id'] for _, (_, rec) in actual)
        ) == sorted(by_id)
        for (split, shard), (sort_key, record) in actual:
            got = schema.decode_record(record, _info(expected))
            region = by_id[got['region_id']]
            one_hot, profile, start = _expected_window(genome, region)
            assert split == region.split
            assert shard == transforms.shard_index(region.region_id, NUM_SHARDS[split])
            assert sort_key == (region.chrom, region.start, region.end)
            assert (got['chrom'], got['start']) == (region.chrom, start)
            np.testing.assert_array_equal(got['one_hot'], one_hot)
            np.testing.assert_array_equal(got['profile'], profile)
            if expected:
                _, exp, _ = _expected_window(genome, region, ('exp_pos', 'exp_neg'))
                np.testing.assert_allclose(got['expected'], exp, rtol=1e-6)
            else:
                assert 'expected' not in got
    return _match


@pytest.mark.parametrize('expected', [False, True], ids=['counts', 'with_expected'])
def test_extract_windows(genome, expected):
    totals = [(r.split, (float(_expected_window(genome, r)[1][J:J + L].sum()),)) for r in KEPT]
    with _pipeline() as p:
        out = (p | beam.Create(REGIONS)
               | beam.ParDo(_fn(genome, expected)).with_outputs(
                   transforms.REJECTED, transforms.TOTALS, main='records'))
        assert_that(out.records, _records_match(genome, expected), label='Records')
        assert_that(out[transforms.REJECTED], equal_to(REJECTED), label='Rejected')
        assert_that(out[transforms.TOTALS], equal_to(totals), label='Totals')
    counters = {c.key.metric.name: c.committed for c in p.result.metrics().query(
        MetricsFilter().with_namespace(transforms.NAMESPACE))['counters']}
    assert counters == {'regions_in': 8, 'records_out': 4, 'records_train': 2,
                        'records_valid': 1, 'records_test': 1, 'rejected_out_of_bounds': 3,
                        'rejected_too_many_n': 1}


def test_max_n_fraction_threshold(genome):
    # chr1:185-215 stored (10 bp margin) covers 200-215: 15 of 30 bases are N.
    region = Region('chr1', 190, 210, 'train', 1)
    with _pipeline() as p:
        out = (p | beam.Create([region])
               | 'Strict' >> beam.ParDo(_fn(genome, max_n_fraction=0.49)).with_outputs(
                   transforms.REJECTED, transforms.TOTALS, main='records'))
        loose = (p | 'Again' >> beam.Create([region])
                 | 'Loose' >> beam.ParDo(_fn(genome, max_n_fraction=0.5)).with_outputs(
                     transforms.REJECTED, transforms.TOTALS, main='records'))
        assert_that(out[transforms.REJECTED], equal_to([('chr1:190-210', 'too_many_n')]),
                    label='StrictRejects')
        assert_that(loose[transforms.REJECTED], equal_to([]), label='LooseRejects')
        assert_that(loose.records | beam.Map(lambda kv: kv[1][0]),
                    equal_to([('chr1', 190, 210)]), label='LooseKeeps')


def test_negative_counts_fail_naming_bigwig_and_region(genome, tmp_path):
    values = np.zeros(300)
    values[60] = -2.0
    bad = _write_bigwig(str(tmp_path / 'bad.bw'), {'chr1': 300, 'chr2': 100},
                        {'chr1': values, 'chr2': np.zeros(100)})
    fn = transforms.ExtractWindowsFn(genome['fasta'], [(genome['pos'], bad)], max_jitter=J,
                                     num_shards=NUM_SHARDS)
    with pytest.raises(Exception, match=r'bad\.bw: negative counts \(min -2\) in chr1:45-75'):
        with _pipeline() as p:
            _ = p | beam.Create([REGIONS[0]]) | beam.ParDo(fn)


def test_shard_index_is_a_stable_hash():
    # md5-based, so the same in every process (unlike hash()) and fixed across releases.
    assert transforms.shard_index('chr1:0-1000', 1_000_003) == int.from_bytes(
        hashlib.md5(b'chr1:0-1000').digest()[:8], 'big') % 1_000_003
    assert [transforms.shard_index(f'chr1:{i}-{i + 10}', 4) for i in range(8)] == [
        transforms.shard_index(f'chr1:{i}-{i + 10}', 4) for i in range(8)]
    assert len({transforms.shard_index(f'chr1:{i}-{i + 10}', 4) for i in range(64)}) == 4


def _read_shard(path: str) -> list[bytes]:
    return [r.numpy() for r in tf.data.TFRecordDataset(path, compression_type='GZIP')]


def test_write_shards_sorted_and_empty_shards(tmp_path):
    num_shards = {'train': 2, 'valid': 3, 'test': 0}
    records = [(('train', 1), (('chr2', 5, 9), b'c')), (('train', 1), (('chr1', 9, 13), b'b')),
               (('train', 1), (('chr1', 1, 5), b'a')), (('valid', 2), (('chr1', 0, 4), b'v'))]
    with _pipeline() as p:
        out = p | beam.Create(records) | transforms.WriteShards(str(tmp_path), num_shards)
        assert_that(out, equal_to([('train', 0), ('train', 3), ('valid', 0), ('valid', 0),
                                   ('valid', 1)]))
    assert sorted(os.listdir(tmp_path)) == [
        schema.shard_filename('train', 0, 2), schema.shard_filename('train', 1, 2),
        schema.shard_filename('valid', 0, 3), schema.shard_filename('valid', 1, 3),
        schema.shard_filename('valid', 2, 3)]
    assert _read_shard(str(tmp_path / 'train-00001-of-00002.tfrecord.gz')) == [b'a', b'b', b'c']
    assert _read_shard(str(tmp_path / 'train-00000-of-00002.tfrecord.gz')) == []
    assert _read_shard(str(tmp_path / 'valid-00002-of-00003.tfrecord.gz')) == [b'v']
    counters = {c.key.metric.name: c.committed for c in p.result.metrics().query(
        MetricsFilter().with_namespace(transforms.NAMESPACE))['counters']}
    assert counters == {'shards_written': 5, 'records_written': 4}


def test_summarise_median_over_training_records_only():
    summary = transforms.summarise(
        shards=[('train', 2), ('train', 1), ('valid', 1)],
        totals=[('train', (1.0, 10.0)), ('train', (4.0, 30.0)), ('train', (2.0, 20.0)),
                ('train', (3.0, 40.0)), ('valid', (1000.0, 1000.0))],
        rejected=[('chr1:5-10', 'too_many_n'), ('chr1:0-5', 'out_of_bounds')])
    assert summary == {
        'split_counts': {'train': 3, 'valid': 1, 'test': 0},
        'median_total_counts': [2.5, 25.0],
        'rejected': [['chr1:0-5', 'out_of_bounds'], ['chr1:5-10', 'too_many_n']],
    }
    assert transforms.summarise([], [('valid', (1.0,))], [])['median_total_counts'] == []


def test_write_job_summary(tmp_path):
    path = str(tmp_path / transforms.SUMMARY_FILENAME)
    with _pipeline() as p:
        pcolls = {
            'shards': p | 'Shards' >> beam.Create([('train', 2), ('valid', 1)]),
            'totals': p | 'Totals' >> beam.Create([('train', (5.0,)), ('train', (7.0,)),
                                                   ('valid', (9.0,))]),
            'rejected': p | 'Rejected' >> beam.Create([]),
        }
        out = pcolls | transforms.WriteJobSummary(path)
        assert_that(out, equal_to([path]))
    with open(path) as f:
        assert json.load(f) == {'split_counts': {'train': 2, 'valid': 1, 'test': 0},
                                'median_total_counts': [6.0], 'rejected': []}
