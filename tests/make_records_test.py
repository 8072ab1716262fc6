"""End-to-end tests of the records job on the real Reb1 ChIP-exo files (and the demo data)."""

from __future__ import annotations

import glob
import os
import pathlib
import re
import subprocess
import sys

import apache_beam as beam
import numpy as np
import pyBigWig
import pyfaidx
import pytest
import tensorflow as tf
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.portability.fn_api_runner import FnApiRunner

from beam_jobs import make_records
from beam_jobs import transforms
from beam_jobs.regions import RecordsInputError
from bpnet_tfx import schema
from bpnet_tfx import sequence
from conftest import shared_data_dir

REPO = pathlib.Path(__file__).resolve().parents[1]
DATA = shared_data_dir()
L, J = 1000, 50
VALID_END = 100_000  # --valid_chroms=chrIV:0-100000

pytestmark = pytest.mark.skipif(not (DATA / 'peaks.narrowPeak').exists(),
                                reason=f'Reb1 test data not found at {DATA}')


def _data_flags(peaks=None) -> list[str]:
    return [f'--fasta={DATA / "chrIV.fa"}', f'--peaks={peaks or DATA / "peaks.narrowPeak"}',
            f'--pos_bigwig={DATA / "Reb1.pos.bw"}', f'--neg_bigwig={DATA / "Reb1.neg.bw"}']


def _run(output_dir, *extra, peaks=None) -> schema.RecordsInfo:
    return make_records.run(_data_flags(peaks) + [
        f'--output_dir={output_dir}', f'--sequence_length={L}', f'--max_jitter={J}',
        f'--valid_chroms=chrIV:0-{VALID_END}', '--runner=DirectRunner', *extra])


def _summits() -> list[tuple[str, int]]:
    """(chrom, summit) per line of the narrowPeak file, read here independently of the job."""
    out = []
    for line in (DATA / 'peaks.narrowPeak').read_text().splitlines():
        f = line.split('\t')
        out.append((f[0], int(f[1]) + int(f[9])))
    return out


def _read_records(records_dir) -> dict[str, list[dict]]:
    info = schema.RecordsInfo.load(str(records_dir))
    out = {}
    for split in schema.SPLITS:
        files = sorted(glob.glob(schema.shard_pattern(str(records_dir), split)))
        out[split] = [schema.decode_record(r.numpy(), info)
                      for r in tf.data.TFRecordDataset(files, compression_type='GZIP')]
    return out


def _shard_bytes(records_dir) -> dict[str, bytes]:
    return {os.path.basename(p): pathlib.Path(p).read_bytes()
            for p in sorted(glob.glob(os.path.join(records_dir, '*.tfrecord.gz')))}


def _no_leftovers(parent) -> bool:
    return not [p for p in os.listdir(parent) if '.tmp-' in p or '.old-' in p]


@pytest.fixture(scope='module')
def reb1(tmp_path_factory):
    out = tmp_path_factory.mktemp('reb1') / 'records'
    info = _run(out)
    return out, info


def test_records_match_direct_extraction(reb1):
    out, _ = reb1
    records = _read_records(out)
    fasta = pyfaidx.Fasta(str(DATA / 'chrIV.fa'), as_raw=True)
    bigwigs = [pyBigWig.open(str(DATA / f'Reb1.{s}.bw')) for s in ('pos', 'neg')]
    expected_ids = set()
    for chrom, summit in _summits():
        expected_ids.add(f'{chrom}:{summit - L // 2}-{summit + L // 2}')
    seen = set()
    for split, recs in records.items():
        for rec in recs:
            chrom, span = rec['region_id'].split(':')
            start, end = map(int, span.split('-'))
            centre = start + L // 2
            assert split == ('valid' if centre < VALID_END else 'train')
            assert (rec['chrom'], rec['start']) == (chrom, start - J)
            lo, hi = start - J, end + J
            np.testing.assert_array_equal(rec['one_hot'], sequence.one_hot(fasta[chrom][lo:hi]))
            direct = np.stack([np.nan_to_num(bw.values(chrom, lo, hi, numpy=True))
                               for bw in bigwigs], axis=-1)[:, None, :]
            np.testing.assert_array_equal(rec['profile'], direct)
            assert rec['profile'].shape == (L + 2 * J, 1, 2)
            assert 'expected' not in rec
            seen.add(rec['region_id'])
    assert seen == expected_ids and len(seen) == 29
    # Sorted within each shard.
    for recs in records.values():
        keys = [(r['chrom'], r['start']) for r in recs]
        assert keys == sorted(keys)


def test_metadata(reb1):
    out, info = reb1
    loaded = schema.RecordsInfo.load(str(out))
    assert loaded == info
    assert (info.sequence_length, info.max_jitter, info.tasks) == (L, J, ('task0',))
    n_valid = sum(s < VALID_END for _, s in _summits())
    assert dict(info.split_counts) == {'train': 29 - n_valid, 'valid': n_valid, 'test': 0}
    assert n_valid > 0 and 29 - n_valid > 0
    assert dict(info.num_shards) == {'train': 1, 'valid': 1, 'test': 0}
    assert not info.has_expected
    records = _read_records(out)
    totals = [r['profile'][J:J + L].sum() for r in records['train']]
    assert info.median_total_counts == pytest.approx((float(np.median(totals)),))
    source = info.source
    assert source['peaks'] == str(DATA / 'peaks.narrowPeak')
    assert source['fasta'] == str(DATA / 'chrIV.fa')
    assert source['peaks_read'] == 29 and source['dropped'] == {} and not source['demo']
    assert source['flags']['valid_chroms'] == f'chrIV:0-{VALID_END}'
    assert source['versions']['apache_beam'] == beam.__version__
    assert {'created', 'seconds', 'pipeline_args'} <= set(source)
    assert sorted(os.listdir(out)) == ['metadata.json', 'rejected.tsv',
                                       'train-00000-of-00001.tfrecord.gz',
                                       'valid-00000-of-00001.tfrecord.gz']
    assert (out / 'rejected.tsv').read_text() == 'region_id\tline\treason\n'
    assert _no_leftovers(out.parent)


def test_rejections_are_counted_and_listed(tmp_path, capsys):
    peaks = tmp_path / 'peaks.narrowPeak'
    lines = (DATA / 'peaks.narrowPeak').read_text().splitlines()
    lines += [lines[0],  # Duplicate of line 1.
              'chrIV\t299600\t299800\tend\t1\t.\t1\t-1\t-1\t100']  # Window past the end.
    peaks.write_text('\n'.join(lines) + '\n')
    info = _run(tmp_path / 'records', peaks=peaks)
    assert sum(info.split_counts.values()) == 29
    assert info.source['peaks_read'] == 31
    assert info.source['dropped'] == {'duplicate': 1, 'out_of_bounds': 1}
    rows = (tmp_path / 'records' / 'rejected.tsv').read_text().splitlines()
    first = _summits()[0]
    assert rows == ['region_id\tline\treason',
                    f'chrIV:{first[1] - 500}-{first[1] + 500}\t30\tduplicate',
                    'chrIV:299200-300200\t31\tout_of_bounds']
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert summary.startswith('make_records: 31 peaks read, 29 records written (train ')
    assert '2 rejected (duplicate 1, out_of_bounds 1)' in summary


@pytest.mark.slow  # About 10 s: a second job in a fresh process.
def test_rerun_gives_identical_bytes_and_needs_overwrite(tmp_path):
    shards = '--num_shards=train=3,valid=2'
    out = tmp_path / 'records'
    _run(out, shards)
    first = _shard_bytes(out)
    assert len(first) == 5
    with pytest.raises(RecordsInputError, match='exists; pass --overwrite'):
        _run(out, shards)
    assert _shard_bytes(out) == first  # The refused run left it alone.
    _run(out, shards, '--overwrite')
    assert _shard_bytes(out) == first
    # Another process (protobuf map order varies per process) with two worker threads.
    proc = subprocess.run(
        [sys.executable, '-m', 'beam_jobs.make_records', *_data_flags(),
         f'--output_dir={tmp_path / "again"}', f'--sequence_length={L}', f'--max_jitter={J}',
         f'--valid_chroms=chrIV:0-{VALID_END}', shards, '--runner=DirectRunner',
         '--direct_num_workers=2', '--direct_running_mode=multi_threading'],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert _shard_bytes(tmp_path / 'again') == first
    assert _no_leftovers(tmp_path)


def test_overwrite_never_replaces_a_folder_that_is_not_records(tmp_path):
    out = tmp_path / 'mine'
    out.mkdir()
    (out / 'notes.txt').write_text('keep')
    with pytest.raises(RecordsInputError, match=r'mine exists and is not a records folder'):
        _run(out, '--overwrite')
    assert os.listdir(out) == ['notes.txt']


def test_failure_in_pipeline_leaves_no_output(tmp_path, monkeypatch):
    def _fail(self, region):
        raise RecordsInputError(f'bad window {region.region_id}')
        yield  # pragma: no cover

    monkeypatch.setattr(transforms.ExtractWindowsFn, 'process', _fail)
    with pytest.raises(RecordsInputError, match=r'^bad window chrIV:\d+-\d+$'):
        _run(tmp_path / 'records')
    assert os.listdir(tmp_path) == []


def test_failed_overwrite_keeps_old_output(tmp_path, monkeypatch):
    out = tmp_path / 'records'
    _run(out)
    before = _shard_bytes(out)

    def _fail(self, region):
        raise RuntimeError('worker crashed')
        yield  # pragma: no cover

    monkeypatch.setattr(transforms.ExtractWindowsFn, 'process', _fail)
    with pytest.raises(Exception, match='worker crashed'):
        _run(out, '--overwrite')
    assert _shard_bytes(out) == before
    assert os.listdir(tmp_path) == ['records']


@pytest.mark.parametrize('flags, message', [
    (['--fasta=x.fa'], 'missing: --peaks, --pos_bigwig, --neg_bigwig'),
    (_data_flags(), '--output_dir is required'),
    (_data_flags() + ['--output_dir=o', '--expected_pos_bigwig=e.bw'],
     'give both --expected_pos_bigwig and --expected_neg_bigwig'),
    (_data_flags() + ['--output_dir=o', '--sequence_length=0'], '--sequence_length must be'),
    (_data_flags() + ['--output_dir=o', '--max_n_fraction=2'], '--max_n_fraction must be'),
    (_data_flags() + ['--output_dir=o', '--num_shards=many'], '--num_shards: cannot read'),
    (_data_flags() + ['--output_dir=o', '--valid_chroms=chrIV:0-100000', '--num_shards=train=2'],
     '--num_shards: the valid split has'),
    (_data_flags() + ['--output_dir=o', '--valid_chroms=chrIV', '--test_chroms=chrIV:0-10'],
     'overlaps'),
    (_data_flags(DATA / 'chrIV.fa') + ['--output_dir=o'], r'chrIV\.fa:1: malformed line'),
], ids=['partial_data_flags', 'no_output_dir', 'one_expected', 'bad_length', 'bad_n_fraction',
        'bad_num_shards', 'zero_shards', 'overlapping_splits', 'fasta_as_peaks'])
def test_bad_input_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys, flags, message):
    monkeypatch.chdir(tmp_path)
    assert make_records.main(flags + ['--runner=DirectRunner']) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('make_records: error: ') and '\n' not in err, err
    assert re.search(message, err), err
    assert os.listdir(tmp_path) == []


def test_wrong_chromosome_names_from_the_command_line(tmp_path):
    peaks = tmp_path / 'peaks.bed'
    peaks.write_text('IV\t1000\t1001\n')
    proc = subprocess.run(
        [sys.executable, '-m', 'beam_jobs.make_records', *_data_flags(peaks),
         f'--output_dir={tmp_path / "records"}', '--runner=DirectRunner'],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert 'Traceback' not in proc.stderr
    errors = [l for l in proc.stderr.splitlines() if l.startswith('make_records: error:')]
    assert errors == [f"make_records: error: {peaks}:1: chromosome 'IV' is not in "
                      f"{DATA / 'chrIV.fa'} (it has 'chrIV': the files name chromosomes "
                      "differently, '1' vs 'chr1'; rename one side)"]
    assert not (tmp_path / 'records').exists()


def test_plan_shards():
    counts = {'train': 4001, 'valid': 1, 'test': 0}
    assert make_records._plan_shards('auto', counts) == {'train': 3, 'valid': 1, 'test': 0}
    assert make_records._plan_shards('4', counts) == {'train': 4, 'valid': 4, 'test': 0}
    assert make_records._plan_shards('train=2,valid=1,test=2', counts) == {
        'train': 2, 'valid': 1, 'test': 2}


@pytest.mark.parametrize('runner, local', [
    (None, True), ('DirectRunner', True),
    ('apache_beam.runners.direct.direct_runner.DirectRunner', True),
    ('BundleBasedDirectRunner', False)])
def test_local_runner_skips_prism(runner, local):
    args = [f'--runner={runner}'] if runner else []
    p = make_records._make_pipeline(PipelineOptions(args))
    assert isinstance(p.runner, FnApiRunner) == local


@pytest.mark.slow  # Simulates the demo data set (a few seconds), then runs the job.
def test_demo_mode(tmp_path, monkeypatch, capsys):
    pytest.importorskip('bpnet_tfx.simulate')
    from bpnet_tfx import simulate
    monkeypatch.setenv('BPNET_TFX_CACHE', str(tmp_path / 'cache'))
    monkeypatch.chdir(tmp_path)
    info = make_records.run(['--runner=DirectRunner'])
    out = tmp_path / 'demo_output' / 'records'
    demo = simulate.ensure_demo_data()
    assert demo.root.startswith(str(tmp_path / 'cache'))
    assert info.tasks == demo.tasks and info.has_expected and info.source['demo']
    assert info.source['peaks'] == demo.peaks
    n_peaks = sum(1 for _ in open(demo.peaks))
    dropped = sum(info.source['dropped'].values())
    assert sum(info.split_counts.values()) + dropped == n_peaks
    assert info.split_counts['train'] > 0 and info.split_counts['valid'] > 0
    assert schema.RecordsInfo.load(str(out)) == info
    # Spot-check one record's expected track against the bigWigs.
    first = glob.glob(schema.shard_pattern(str(out), 'valid'))[0]
    rec = schema.decode_record(
        next(iter(tf.data.TFRecordDataset(first, compression_type='GZIP'))).numpy(), info)
    chrom, start = rec['chrom'], rec['start']
    for strand, path in enumerate((demo.expected_pos_bigwig, demo.expected_neg_bigwig)):
        bw = pyBigWig.open(path)
        np.testing.assert_allclose(
            rec['expected'][:, 0, strand],
            np.nan_to_num(bw.values(chrom, start, start + info.stored_length, numpy=True)))
    assert f'-> {out}' in capsys.readouterr().out
