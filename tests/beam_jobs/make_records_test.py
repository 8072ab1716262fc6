"""End-to-end tests of the records job on the real Reb1 ChIP-exo files (and the demo data)."""

from __future__ import annotations

import glob
import gzip
import json
import os
import pathlib
import re
import shutil

import apache_beam as beam
import numpy as np
import pyBigWig
import pyfaidx
import pytest
import scipy.stats
import tensorflow as tf
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.runners.portability.fn_api_runner import FnApiRunner

from beam_jobs import make_records
from beam_jobs.common import runners
from beam_jobs.common.errors import RecordsInputError
from beam_jobs.records import input_checks, outliers, regions, window_rules, windows
from bpnet_tfx.genome import sequence
from bpnet_tfx.records import codec, schema
from tests.fixtures.genomes import random_bases, write_bigwig, write_fasta
from tests.fixtures.mains import run_main
from tests.fixtures.paths import shared_data_dir

DATA = shared_data_dir()
L, J = 1000, 50
VALID_END = 100_000  # --valid_chroms=chrIV:0-100000

pytestmark = pytest.mark.skipif(
    not (DATA / 'peaks.narrowPeak').exists(), reason=f'Reb1 test data not found at {DATA}'
)


def _data_flags(peaks=None) -> list[str]:
    return [
        f'--fasta={DATA / "chrIV.fa"}',
        f'--peaks={peaks or DATA / "peaks.narrowPeak"}',
        f'--pos_bigwig={DATA / "Reb1.pos.bw"}',
        f'--neg_bigwig={DATA / "Reb1.neg.bw"}',
    ]


def _run(output_dir, *extra, peaks=None) -> schema.RecordsInfo:
    return make_records.run(
        _data_flags(peaks)
        + [
            f'--output_dir={output_dir}',
            f'--sequence_length={L}',
            f'--max_jitter={J}',
            f'--valid_chroms=chrIV:0-{VALID_END}',
            '--runner=DirectRunner',
            *extra,
        ]
    )


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
        out[split] = [
            codec.decode_record(r.numpy(), info)
            for r in tf.data.TFRecordDataset(files, compression_type='GZIP')
        ]
    return out


def _shard_bytes(records_dir) -> dict[str, bytes]:
    return {
        os.path.basename(p): pathlib.Path(p).read_bytes()
        for p in sorted(glob.glob(os.path.join(records_dir, '*.tfrecord.gz')))
    }


def _no_leftovers(parent) -> bool:
    return not [p for p in os.listdir(parent) if '.tmp-' in p or '.old-' in p]


@pytest.fixture(scope='module')
def reb1(tmp_path_factory):
    out = tmp_path_factory.mktemp('reb1') / 'records'
    info = _run(out, f'--valid_chroms=chrIV:0-{VALID_END:,}')  # As chrIV:0-100000.
    return out, info


@pytest.mark.slow  # The whole job.
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
            direct = np.stack(
                [np.nan_to_num(bw.values(chrom, lo, hi, numpy=True)) for bw in bigwigs], axis=-1
            )[:, None, :]
            np.testing.assert_array_equal(rec['profile'], direct)
            assert rec['profile'].shape == (L + 2 * J, 1, 2)
            assert 'expected' not in rec
            seen.add(rec['region_id'])
    assert seen == expected_ids and len(seen) == 29
    # Sorted within each shard.
    for recs in records.values():
        keys = [(r['chrom'], r['start']) for r in recs]
        assert keys == sorted(keys)


@pytest.mark.slow  # The whole job.
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
    totals = [r['profile'][J : J + L].sum() for r in records['train']]
    assert info.median_total_counts == pytest.approx((float(np.median(totals)),))
    source = info.source
    assert source['peaks'] == str(DATA / 'peaks.narrowPeak')
    assert source['fasta'] == str(DATA / 'chrIV.fa')
    assert source['peaks_read'] == 29 and source['dropped'] == {} and not source['demo']
    assert (source['records_written'], source['peaks_merged'], source['peaks_rejected']) == (
        29,
        0,
        0,
    )
    assert source['tasks'] == [
        {
            'name': 'task0',
            'peaks': str(DATA / 'peaks.narrowPeak'),
            'pos_bigwig': str(DATA / 'Reb1.pos.bw'),
            'neg_bigwig': str(DATA / 'Reb1.neg.bw'),
        }
    ]
    assert source['flags']['valid_chroms'] == 'chrIV:0-100,000'
    assert source['versions']['apache_beam'] == beam.__version__
    assert {'created', 'seconds', 'pipeline_args'} <= set(source)
    assert sorted(os.listdir(out)) == [
        'metadata.json',
        'rejected.tsv',
        'train-00000-of-00001.tfrecord.gz',
        'valid-00000-of-00001.tfrecord.gz',
    ]
    assert (out / 'rejected.tsv').read_text() == 'region_id\ttask\tline\treason\n'
    assert _no_leftovers(out.parent)


def _rows(path) -> list[str]:
    return pathlib.Path(path).read_text().splitlines()


@pytest.mark.slow  # The whole job.
def test_rejections_are_counted_and_listed(tmp_path, capsys):
    peaks = tmp_path / 'peaks.narrowPeak'
    lines = (DATA / 'peaks.narrowPeak').read_text().splitlines()
    lines += [
        lines[0],  # Duplicate of line 1.
        'chrIV\t299600\t299800\tend\t1\t.\t1\t-1\t-1\t100',
    ]  # Window past the end.
    peaks.write_text('\n'.join(lines) + '\n')
    info = _run(tmp_path / 'records', peaks=peaks)
    assert sum(info.split_counts.values()) == 29
    assert info.source['peaks_read'] == 31
    assert info.source['dropped'] == {'duplicate': 1, 'out_of_bounds': 1}
    first = _summits()[0]
    assert _rows(tmp_path / 'records' / 'rejected.tsv') == [
        'region_id\ttask\tline\treason',
        f'chrIV:{first[1] - 500}-{first[1] + 500}\ttask0\t30\tduplicate',
        'chrIV:299200-300200\ttask0\t31\tout_of_bounds',
    ]
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert summary.startswith('make_records: 31 peaks read, 29 records written (train ')
    assert '2 rejected (duplicate 1, out_of_bounds 1)' in summary


@pytest.mark.slow  # The whole job.
def test_blacklist_drops_overlapping_windows(tmp_path):
    (s1, s2), s3 = sorted(s for _, s in _summits())[:2], sorted(s for _, s in _summits())[5]
    blacklist = tmp_path / 'blacklist.bed.gz'
    # One base inside summit 1's stored window (L/2 + J before it); over summit 2; starting
    # right at the end of summit 3's stored window (half-open: no overlap); another chromosome.
    lo1, end3 = s1 - L // 2 - J, s3 + L // 2 + J
    with gzip.open(blacklist, 'wt') as f:
        f.write(
            f'track name=bl\n# ENCODE-style\nchrIV\t{lo1 - 1}\t{lo1 + 1}\n'
            f'chrIV\t{s2}\t{s2 + 1}\tname\nchrIV\t{end3}\t{end3 + 9}\nchrM\t0\t100\n'
        )
    info = _run(tmp_path / 'records', f'--blacklist={blacklist}')
    assert info.source['dropped'] == {'blacklisted': 2}
    assert sum(info.split_counts.values()) == 27
    assert info.source['blacklist'] == str(blacklist)
    rows = _rows(tmp_path / 'records' / 'rejected.tsv')[1:]
    assert sorted(r.split('\t')[0] for r in rows) == sorted(
        f'chrIV:{s - L // 2}-{s + L // 2}' for s in (s1, s2)
    )
    assert all(r.endswith('\tblacklisted') for r in rows)


def _write_spec(path, tasks) -> pathlib.Path:
    if path.suffix == '.json':
        path.write_text(json.dumps({'tasks': tasks}, indent=1))
    else:
        path.write_text(
            '# two tasks\ntasks:\n'
            + ''.join(
                '  - ' + '\n    '.join(f'{k}: {v}' for k, v in t.items()) + '\n' for t in tasks
            )
        )
    return path


def _two_tasks(tmp_path) -> list[dict]:
    """Task A: the Reb1 peaks; task B: 5 of them, a duplicate and a shifted window, strands
    swapped; each with a control pair."""
    lines = (DATA / 'peaks.narrowPeak').read_text().splitlines()
    f = lines[5].split('\t')
    shifted = '\t'.join(f[:9] + [str(int(f[9]) + 7)])
    (tmp_path / 'b.narrowPeak').write_text('\n'.join(lines[:5] + [lines[0], shifted]) + '\n')
    pos, neg = str(DATA / 'Reb1.pos.bw'), str(DATA / 'Reb1.neg.bw')
    return [
        {
            'name': 'reb1',
            'peaks': str(DATA / 'peaks.narrowPeak'),
            'pos_bigwig': pos,
            'neg_bigwig': neg,
            'control_pos_bigwig': neg,
            'control_neg_bigwig': pos,
        },
        {
            'name': 'swapped',
            'peaks': 'b.narrowPeak',  # Relative to the spec's folder.
            'pos_bigwig': neg,
            'neg_bigwig': pos,
            'control_pos_bigwig': pos,
            'control_neg_bigwig': neg,
        },
    ]


def _run_spec(spec, output_dir, *extra) -> schema.RecordsInfo:
    return make_records.run(
        [
            f'--fasta={DATA / "chrIV.fa"}',
            f'--tasks_spec={spec}',
            f'--output_dir={output_dir}',
            f'--sequence_length={L}',
            f'--max_jitter={J}',
            f'--valid_chroms=chrIV:0-{VALID_END}',
            '--runner=DirectRunner',
            *extra,
        ]
    )


@pytest.mark.slow  # The whole job.
def test_multi_task_union_and_controls(tmp_path):
    spec = _write_spec(tmp_path / 'tasks.yaml', _two_tasks(tmp_path))
    info = _run_spec(spec, tmp_path / 'records')
    assert info.tasks == ('reb1', 'swapped') and info.has_control and not info.has_expected
    # 29 + 7 peaks: 30 windows (the shifted one is new), 5 merged into task A's windows, and
    # task B's second copy of its line 1 a duplicate.
    assert info.source['peaks_read'] == 36
    assert (
        sum(info.split_counts.values()),
        info.source['peaks_merged'],
        info.source['dropped'],
    ) == (30, 5, {'duplicate': 1})
    assert _rows(tmp_path / 'records' / 'rejected.tsv')[1:] == [
        f'{_window_id(_summits()[0][1])}\tswapped\t6\tduplicate'
    ]
    assert info.source['tasks'][1]['peaks'] == str(tmp_path / 'b.narrowPeak')
    records = _read_records(tmp_path / 'records')
    bigwigs = {s: pyBigWig.open(str(DATA / f'Reb1.{s}.bw')) for s in ('pos', 'neg')}
    train_totals = []
    for split, recs in records.items():
        for rec in recs:
            lo, hi = rec['start'], rec['start'] + L + 2 * J
            pos, neg = (
                np.nan_to_num(bigwigs[s].values('chrIV', lo, hi, numpy=True))
                for s in ('pos', 'neg')
            )
            assert rec['profile'].shape == (L + 2 * J, 2, 2)
            np.testing.assert_array_equal(
                rec['profile'],
                np.stack([np.stack([pos, neg], -1), np.stack([neg, pos], -1)], axis=1),
            )
            np.testing.assert_array_equal(rec['control'], rec['profile'][:, ::-1])
            if split == 'train':
                train_totals.append(rec['profile'][J : J + L].sum(axis=(0, 2)))
    assert len(train_totals) == info.split_counts['train']
    np.testing.assert_allclose(info.median_total_counts, np.median(train_totals, axis=0))
    # The same tasks as JSON: the same bytes.
    json_spec = _write_spec(tmp_path / 'tasks.json', _two_tasks(tmp_path))
    _run_spec(json_spec, tmp_path / 'again')
    assert _shard_bytes(tmp_path / 'again') == _shard_bytes(tmp_path / 'records')


def _window_id(summit: int) -> str:
    return f'chrIV:{summit - L // 2}-{summit + L // 2}'


@pytest.mark.slow  # The whole job.
def test_records_from_simulated_demo_data(tmp_path):
    from bpnet_tfx.simulate import simulator as simulate

    config = simulate.SimulationConfig(
        seed=3,
        chrom_sizes=(('chr1', 40_000), ('chr2', 60_000)),
        n_stretch_chroms=('chr2',),
        n_stretches_per_chrom=1,
        n_stretch_length=(2000, 3000),
    )
    demo = simulate.simulate(str(tmp_path / 'sim'), config)
    info = make_records.run(
        [
            f'--fasta={demo.fasta}',
            f'--peaks={demo.peaks}',
            f'--pos_bigwig={demo.pos_bigwig}',
            f'--neg_bigwig={demo.neg_bigwig}',
            f'--expected_pos_bigwig={demo.expected_pos_bigwig}',
            f'--expected_neg_bigwig={demo.expected_neg_bigwig}',
            '--sequence_length=200',
            '--max_jitter=10',
            f'--output_dir={tmp_path / "records"}',
            '--runner=DirectRunner',
        ]
    )
    n_peaks = sum(1 for _ in open(demo.peaks))
    assert sum(info.split_counts.values()) + info.source['peaks_rejected'] == n_peaks > 50
    assert info.split_counts['valid'] > 0 and info.has_expected
    fasta = pyfaidx.Fasta(demo.fasta, as_raw=True)
    tracks = [
        pyBigWig.open(p)
        for p in (
            demo.pos_bigwig,
            demo.neg_bigwig,
            demo.expected_pos_bigwig,
            demo.expected_neg_bigwig,
        )
    ]
    for recs in _read_records(tmp_path / 'records').values():
        for rec in recs:
            chrom, lo, hi = rec['chrom'], rec['start'], rec['start'] + 220
            np.testing.assert_array_equal(rec['one_hot'], sequence.one_hot(fasta[chrom][lo:hi]))
            direct = [np.nan_to_num(bw.values(chrom, lo, hi, numpy=True)) for bw in tracks]
            np.testing.assert_array_equal(rec['profile'][:, 0], np.stack(direct[:2], -1))
            np.testing.assert_allclose(rec['expected'][:, 0], np.stack(direct[2:], -1), rtol=1e-6)


@pytest.mark.slow  # The whole job.
def test_remote_inputs_and_output(fake_remote, reb1, tmp_path):
    root, prefix = fake_remote
    (root / 'in').mkdir()
    for name in ('chrIV.fa', 'chrIV.fa.fai', 'peaks.narrowPeak', 'Reb1.pos.bw', 'Reb1.neg.bw'):
        (root / 'in' / name).write_bytes((DATA / name).read_bytes())
    flags = [
        f'--fasta={prefix}in/chrIV.fa',
        f'--peaks={prefix}in/peaks.narrowPeak',
        f'--pos_bigwig={prefix}in/Reb1.pos.bw',
        f'--neg_bigwig={prefix}in/Reb1.neg.bw',
        f'--output_dir={prefix}bucket/records',
        f'--sequence_length={L}',
        f'--max_jitter={J}',
        f'--valid_chroms=chrIV:0-{VALID_END}',
        '--runner=DirectRunner',
    ]
    info = make_records.run(flags)
    out = root / 'bucket' / 'records'
    assert _shard_bytes(out) == _shard_bytes(reb1[0])
    assert schema.RecordsInfo.load(str(out)) == info
    assert info.source['fasta'] == f'{prefix}in/chrIV.fa'
    # Without a remote .fai the driver copies the FASTA itself to read its sizes.
    (root / 'in' / 'chrIV.fa.fai').unlink()
    again = make_records.run(
        [
            f if not f.startswith('--output_dir') else f'--output_dir={prefix}bucket/records2'
            for f in flags
        ]
    )
    assert _shard_bytes(root / 'bucket' / 'records2') == _shard_bytes(reb1[0])
    assert again.split_counts == info.split_counts
    shutil.rmtree(root / 'bucket' / 'records2')
    assert sorted(os.listdir(root / 'bucket')) == ['records']  # No temporary folder left.
    with pytest.raises(RecordsInputError, match='exists; pass --overwrite'):
        make_records.run(flags)
    make_records.run(flags + ['--overwrite'])
    assert _shard_bytes(out) == _shard_bytes(reb1[0])
    assert sorted(os.listdir(root / 'bucket')) == ['records']
    with pytest.raises(RecordsInputError, match=r'fakegs://in/gone\.bw: cannot read input file'):
        make_records.run(
            flags[:2] + [f'--pos_bigwig={prefix}in/gone.bw'] + flags[3:] + ['--overwrite']
        )


@pytest.mark.slow  # About 20 s: a second job, and one in worker processes.
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
    # Another process (protobuf map order varies per process) with two worker processes.
    proc = run_main(
        'beam_jobs.make_records',
        *_data_flags(),
        f'--output_dir={tmp_path / "again"}',
        f'--sequence_length={L}',
        f'--max_jitter={J}',
        f'--valid_chroms=chrIV:0-{VALID_END}',
        shards,
        '--runner=DirectRunner',
        '--direct_num_workers=2',
        '--direct_running_mode=multi_processing',
    )
    assert proc.returncode == 0, proc.stderr
    assert _shard_bytes(tmp_path / 'again') == first
    assert _no_leftovers(tmp_path)


def test_an_output_folder_named_like_a_flag_is_refused(tmp_path, monkeypatch):
    # A flag that took the folder's place (--output_dir=--direct_num_workers=2) once wrote a
    # records folder of that name into the working folder.
    monkeypatch.chdir(tmp_path)
    for out in ('--direct_num_workers=2', str(tmp_path / '-records')):
        with pytest.raises(RecordsInputError, match='looks like a flag'):
            _run(out)
    assert os.listdir(tmp_path) == []


def test_overwrite_never_replaces_a_folder_that_is_not_records(tmp_path):
    out = tmp_path / 'mine'
    out.mkdir()
    (out / 'notes.txt').write_text('keep')
    with pytest.raises(RecordsInputError, match=r'mine exists and is not a records folder'):
        _run(out, '--overwrite')
    assert os.listdir(out) == ['notes.txt']


@pytest.mark.slow  # The whole job.
def test_failure_in_pipeline_leaves_no_output(tmp_path, monkeypatch):
    def _fail(self, chunk):
        raise RecordsInputError(f'bad window {chunk.regions[0].region_id}')
        yield  # pragma: no cover

    monkeypatch.setattr(windows.WindowReader, 'read', _fail)
    with pytest.raises(RecordsInputError, match=r'^bad window chrIV:\d+-\d+$'):
        _run(tmp_path / 'records')
    assert os.listdir(tmp_path) == []


@pytest.mark.slow  # The whole job.
def test_failed_overwrite_keeps_old_output(tmp_path, monkeypatch):
    out = tmp_path / 'records'
    _run(out)
    before = _shard_bytes(out)

    def _fail(self, chunk):
        raise RuntimeError('worker crashed')
        yield  # pragma: no cover

    monkeypatch.setattr(windows.WindowReader, 'read', _fail)
    with pytest.raises(Exception, match='worker crashed'):
        _run(out, '--overwrite')
    assert _shard_bytes(out) == before
    assert os.listdir(tmp_path) == ['records']


@pytest.mark.parametrize(
    'flags, message',
    [
        (['--fasta=x.fa'], 'missing: --peaks, --pos_bigwig, --neg_bigwig'),
        (_data_flags(), '--output_dir is required'),
        (
            _data_flags() + ['--output_dir=o', '--expected_pos_bigwig=e.bw'],
            'give both --expected_pos_bigwig and --expected_neg_bigwig',
        ),
        (
            _data_flags() + ['--output_dir=o', '--control_neg_bigwig=c.bw'],
            'give both --control_pos_bigwig and --control_neg_bigwig',
        ),
        (_data_flags() + ['--output_dir=o', '--sequence_length=0'], '--sequence_length must be'),
        (_data_flags() + ['--output_dir=o', '--max_n_fraction=2'], '--max_n_fraction must be'),
        (_data_flags() + ['--output_dir=o', '--num_shards=many'], '--num_shards: cannot read'),
        (
            _data_flags()
            + ['--output_dir=o', '--valid_chroms=chrIV:0-100000', '--num_shards=train=2'],
            '--num_shards: the valid split has',
        ),
        (
            _data_flags() + ['--output_dir=o', '--valid_chroms=chrIV', '--test_chroms=chrIV:0-10'],
            'overlaps',
        ),
        (_data_flags(DATA / 'chrIV.fa') + ['--output_dir=o'], r'chrIV\.fa:1: malformed line'),
        (
            _data_flags() + ['--output_dir=o', '--tasks_spec=t.yaml'],
            '--tasks_spec names every file of every task; drop --peaks',
        ),
        ([f'--tasks_spec={DATA / "x.yaml"}', '--output_dir=o'], 'missing: --fasta'),
        (
            _data_flags() + ['--output_dir=o', '--output_length=0'],
            '--output_length must be positive',
        ),
        (
            _data_flags() + ['--output_dir=o', '--output_length=1200'],
            r'--output_length must be .* at most --sequence_length \(1000\)',
        ),
        (
            _data_flags() + ['--output_dir=o', '--sequence_length=2114', '--output_length=999'],
            '--output_length must be .* of the same parity, got 999',
        ),
        (
            _data_flags() + ['--output_dir=o', '--outlier_quantile=1.5'],
            '--outlier_quantile must be between 0 and 1',
        ),
        (
            _data_flags() + ['--output_dir=o', '--outlier_quantile=nan'],
            '--outlier_quantile must be between 0 and 1',
        ),
        (
            _data_flags() + ['--output_dir=o', '--background_ratio=-0.5'],
            r'--background_ratio must be >= 0 \(0: none\), got -0.5',
        ),
        (
            _data_flags() + ['--output_dir=o', '--background_ratio=inf'],
            '--background_ratio must be >= 0',
        ),
        (
            _data_flags() + ['--output_dir=o', '--background_ratio=1', '--background_seed=-3'],
            '--background_seed must be >= 0, got -3',
        ),
        # Yeast has no chr1: the default --valid_chroms names no chromosome of the FASTA.
        (
            _data_flags() + ['--output_dir=o'],
            r"--valid_chroms item 'chr1' \(the default\) names no chromosome of .*chrIV\.fa, which "
            r'has chrIV; pass --valid_chroms with one of its chromosomes or an interval of one '
            r'\(e\.g\. chrIV:0-100,000\), or --allow_empty_splits$',
        ),
        (
            _data_flags()
            + ['--output_dir=o', '--valid_chroms=chrIV:0-1,000', '--test_chroms=chrV'],
            r"--valid_chroms item 'chrIV:0-1000' holds no peak centre \(of 29 peaks read\)",
        ),
        (
            _data_flags()
            + ['--output_dir=o', '--valid_chroms=chrIV:0-100000', '--test_chroms=chrV'],
            r"--test_chroms item 'chrV' names no chromosome",
        ),
        (
            _data_flags() + ['--output_dir=o', '--valid_chroms=chrIV:0-300.000'],
            r"--valid_chroms: item 'chrIV:0-300\.000' is neither a chromosome name nor an interval",
        ),
        (
            _data_flags() + ['--output_dir=o', '--valid_chroms=chrIV:1,00-2,000'],
            r"--valid_chroms: interval 'chrIV:1,00-2,000': '1,00' is not a number",
        ),
    ],
    ids=[
        'partial_data_flags',
        'no_output_dir',
        'one_expected',
        'one_control',
        'bad_length',
        'bad_n_fraction',
        'bad_num_shards',
        'zero_shards',
        'overlapping_splits',
        'fasta_as_peaks',
        'spec_and_peaks',
        'spec_without_fasta',
        'output_length_zero',
        'output_length_too_long',
        'output_length_parity',
        'outlier_quantile_above_1',
        'outlier_quantile_nan',
        'background_ratio_negative',
        'background_ratio_inf',
        'background_seed_negative',
        'default_valid_chroms_on_yeast',
        'valid_without_peaks',
        'test_without_chromosome',
        'interval_with_dots',
        'badly_grouped_digits',
    ],
)
def test_bad_flags_are_one_line_and_exit_2(tmp_path, monkeypatch, capsys, flags, message):
    monkeypatch.chdir(tmp_path)
    assert make_records.main(flags + ['--runner=DirectRunner']) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('make_records: error: ') and '\n' not in err, err
    assert re.search(message, err), err
    assert os.listdir(tmp_path) == []


@pytest.mark.slow  # The whole job.
def test_allow_empty_splits_keeps_the_old_behaviour(tmp_path, caplog):
    info = make_records.run(
        _data_flags()
        + [f'--output_dir={tmp_path / "records"}', '--runner=DirectRunner', '--allow_empty_splits']
    )
    assert dict(info.split_counts) == {'train': 29, 'valid': 0, 'test': 0}
    assert info.source['flags']['allow_empty_splits']
    assert any(
        "--valid_chroms item 'chr1' (the default) names no chromosome" in r.getMessage()
        for r in caplog.records
        if r.levelname == 'WARNING'
    )


@pytest.mark.slow  # The whole job.
def test_a_valid_split_the_pipeline_empties_stops_the_job(tmp_path, capsys):
    # The one valid peak (line 1, chr1:900-1100) is all N: the pipeline rejects it.
    flags, _ = _toy_genome(tmp_path, [10, 20, 30, 40, 50, 60])
    seq = (tmp_path / 'g.fa').read_text().split('\n')[1]
    write_fasta(tmp_path / 'g.fa', {'chr1': seq[:880] + 'N' * 240 + seq[1120:]}, width=None)
    flags = [f for f in flags if f not in ('--valid_chroms=chrX', '--allow_empty_splits')]
    out = tmp_path / 'out'
    assert (
        make_records.main(
            flags + [f'--output_dir={out}', '--valid_chroms=chr1:0-2,000', '--outlier_quantile=0']
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert err == (
        'make_records: error: the valid split has no records: the 1 peak(s) with '
        'their centre in --valid_chroms=chr1:0-2000 were all rejected (too_many_n '
        '1); pass other --valid_chroms, or --allow_empty_splits'
    )
    assert not out.exists() and _no_leftovers(tmp_path)
    info = make_records.run(
        flags
        + [
            f'--output_dir={out}',
            '--valid_chroms=chr1:0-2,000',
            '--outlier_quantile=0',
            '--allow_empty_splits',
        ]
    )
    assert dict(info.split_counts) == {'train': 5, 'valid': 0, 'test': 0}


@pytest.mark.slow  # Two jobs, each in a fresh Python.
def test_command_line_prints_progress_and_summary_only_unless_verbose(tmp_path):
    flags, _ = _toy_genome(tmp_path, [10, 20, 30, 40])
    flags = [f for f in flags if f != '--valid_chroms=chrX'] + ['--valid_chroms=chr1:0-2,000']
    procs = {}
    for verbose in (False, True):
        procs[verbose] = run_main(
            'beam_jobs.make_records',
            *flags,
            f'--output_dir={tmp_path / f"records{int(verbose)}"}',
            *(['-v'] if verbose else []),
        )
        assert procs[verbose].returncode == 0, procs[verbose].stderr
        assert procs[verbose].stdout.startswith('make_records: 4 peaks read, 4 records written')
    quiet, verbose = procs[False].stderr, procs[True].stderr
    assert 'apitools' not in quiet and 'INFO' not in quiet and 'Traceback' not in quiet, quiet
    assert quiet == ''
    assert 'beam_jobs.make_records: INFO: read 4 peaks of 1 task(s)' in verbose, verbose
    assert 'beam_jobs.make_records: INFO: wrote 4 records in 2 shards' in verbose, verbose


def _bigwig(path, chroms, value=1.0) -> str:
    """A bigWig of the chromosomes `chroms` ((name, length) pairs): `value` at base 100 only."""
    tracks = {c: np.where(np.arange(n) == 100, value, np.nan) for c, n in chroms}
    return write_bigwig(path, tracks)


_PEAK = 'chrIV\t1000\t1200\tp\t0\t.\t1\t-1\t-1\t100\n'
_SPEC_OK = 'tasks:\n  - name: a\n    peaks: {peaks}\n    pos_bigwig: {pos}\n    neg_bigwig: {neg}\n'
# (files to write: name -> text, or a callable(tmp) making the file; flags; error pattern)
BAD_INPUTS = {
    'missing_peaks_file': ({}, {'peaks': 'nope.bed'}, r'nope\.bed: cannot read peaks file: No '),
    'peaks_is_a_folder': (
        {'dir.bed/x': ''},
        {'peaks': 'dir.bed'},
        r'dir\.bed: cannot read peaks file',
    ),
    'malformed_line': ({'p.bed': _PEAK + 'chrIV\t5\n'}, {}, r'p\.bed:2: malformed line: 2 column'),
    'non_integer': (
        {'p.bed': 'chrIV\t1e3\t2000\n'},
        {},
        r"p\.bed:1: start '1e3' is not an integer",
    ),
    'negative_coordinate': ({'p.bed': 'chrIV\t-10\t2000\n'}, {}, r'p\.bed:1: negative coordinate'),
    'start_after_end': (
        {'p.bed': '# h\nchrIV\t3000\t2000\n'},
        {},
        r'p\.bed:2: start 3000 > end 2000',
    ),
    'empty_peaks_file': ({'p.bed': 'track name=x\n#\n'}, {}, r'p\.bed: empty peaks file'),
    'missing_fasta': ({}, {'fasta': 'gone.fa'}, r'gone\.fa: FASTA file not found'),
    'missing_bigwig': ({}, {'neg_bigwig': 'gone.bw'}, r'gone\.bw: bigWig file not found'),
    'chrom_not_in_fasta': (
        {'p.bed': _PEAK + 'chrV\t10\t20\n'},
        {},
        r"p\.bed:2: chromosome 'chrV' is not in .*chrIV\.fa$",
    ),
    'chrom_not_in_bigwig': (
        {'v.bw': lambda p: _bigwig(p, [('chrV', 500)])},
        {'pos_bigwig': 'v.bw'},
        r"p\.bed:1: chromosome 'chrIV' is not in .*v\.bw$",
    ),
    'chrom_naming_mismatch': (
        {'p.bed': 'IV\t1000\t1001\n'},
        {},
        r"p\.bed:1: chromosome 'IV' is not in .*chrIV\.fa \(it has "
        r"'chrIV': the files name chromosomes differently, '1' vs 'chr1'",
    ),
    'wrong_assembly': (
        {'long.bw': lambda p: _bigwig(p, [('chrIV', 300_001)])},
        {'pos_bigwig': 'long.bw'},
        r'long\.bw: chrIV is 300001 bp but 300000 bp in .*same assembly',
    ),
    'negative_counts': (
        {'neg.bw': lambda p: _bigwig(p, [('chrIV', 300_000)], -3.0)},
        {'neg_bigwig': 'neg.bw'},
        r'neg\.bw: holds negative values \(min -3\)',
    ),
    'malformed_blacklist': (
        {'bl.bed': 'chrIV\t10\n'},
        {'blacklist': 'bl.bed'},
        r'bl\.bed:1: malformed line',
    ),
    'spec_not_yaml': (
        {'t.yaml': 'tasks: [a, {'},
        {'tasks_spec': 't.yaml'},
        r't\.yaml:1: not valid YAML',
    ),
    'spec_not_json': (
        {'t.json': '{"tasks": [}'},
        {'tasks_spec': 't.json'},
        r't\.json:1: not valid JSON',
    ),
    'spec_not_a_mapping': (
        {'t.yaml': '- a\n'},
        {'tasks_spec': 't.yaml'},
        r"t\.yaml: a tasks spec is a mapping with a non-empty 'tasks' list",
    ),
    'spec_missing_key': (
        {'t.yaml': 'tasks:\n  - name: a\n    peaks: p.bed\n'},
        {'tasks_spec': 't.yaml'},
        r't\.yaml: task 1: missing key\(s\) pos_bigwig, neg_bigwig',
    ),
    'spec_unknown_key': (
        {'t.yaml': _SPEC_OK + '    pos_bigWig: x\n'},
        {'tasks_spec': 't.yaml'},
        r't\.yaml: task 1: unknown key\(s\) pos_bigWig',
    ),
    'spec_names_missing_file': (
        {'t.yaml': _SPEC_OK.replace('{neg}', 'gone.bw')},
        {'tasks_spec': 't.yaml'},
        r'gone\.bw: bigWig file not found',
    ),
    'spec_some_controls': (
        {
            't.yaml': _SPEC_OK
            + '    control_pos_bigwig: {pos}\n    control_neg_bigwig: {neg}\n'
            + _SPEC_OK.split('\n', 1)[1].replace('name: a', 'name: b')
        },
        {'tasks_spec': 't.yaml'},
        r't\.yaml: control bigWigs must be given for every task or none; a have them, b not',
    ),
    'spec_duplicate_name': (
        {'t.yaml': _SPEC_OK + _SPEC_OK.split('\n', 1)[1]},
        {'tasks_spec': 't.yaml'},
        r"t\.yaml: task name 'a' appears more",
    ),
}


@pytest.mark.parametrize('case', list(BAD_INPUTS))
def test_bad_input_is_one_line_naming_the_file_and_exit_2(tmp_path, capsys, case):
    files, overrides, message = BAD_INPUTS[case]
    inputs = tmp_path / 'in'
    inputs.mkdir()
    defaults = {
        'fasta': str(DATA / 'chrIV.fa'),
        'peaks': str(inputs / 'p.bed'),
        'pos_bigwig': str(DATA / 'Reb1.pos.bw'),
        'neg_bigwig': str(DATA / 'Reb1.neg.bw'),
    }
    (inputs / 'p.bed').write_text(_PEAK)
    for name, content in files.items():
        path = inputs / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if callable(content):
            content(path)
        else:
            for key in ('peaks', 'pos_bigwig', 'neg_bigwig'):
                content = content.replace('{%s}' % key.split('_')[0], defaults[key])
            path.write_text(content)
    values = {**defaults, **{k: str(inputs / v) for k, v in overrides.items()}}
    if 'tasks_spec' in values:
        values = {k: values[k] for k in ('fasta', 'tasks_spec')}
    out = tmp_path / 'out'
    flags = [f'--{k}={v}' for k, v in values.items()] + ['--valid_chroms=chrIV']
    assert make_records.main(flags + [f'--output_dir={out}', '--runner=DirectRunner']) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('make_records: error: ') and '\n' not in err, err
    assert re.search(message, err), err
    assert sorted(os.listdir(tmp_path)) == ['in']  # No output folder, no temporary one.


@pytest.mark.slow  # runs the job in a subprocess
def test_wrong_chromosome_names_from_the_command_line(tmp_path):
    peaks = tmp_path / 'peaks.bed'
    peaks.write_text('IV\t1000\t1001\n')
    proc = run_main(
        'beam_jobs.make_records',
        *_data_flags(peaks),
        f'--output_dir={tmp_path / "records"}',
        '--runner=DirectRunner',
        timeout=120,
    )
    assert proc.returncode == 2
    assert 'Traceback' not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith('make_records: error:')]
    assert errors == [
        f"make_records: error: {peaks}:1: chromosome 'IV' is not in "
        f"{DATA / 'chrIV.fa'} (it has 'chrIV': the files name chromosomes "
        "differently, '1' vs 'chr1'; rename one side)"
    ]
    assert not (tmp_path / 'records').exists()


@pytest.mark.parametrize(
    'runner, local',
    [
        (None, True),
        ('DirectRunner', True),
        ('apache_beam.runners.direct.direct_runner.DirectRunner', True),
        ('BundleBasedDirectRunner', False),
        ('DataflowRunner', False),
        ('FlinkRunner', False),
    ],
)
def test_local_runner_skips_prism_other_runners_pass_through(runner, local):
    args = [f'--runner={runner}'] if runner else []
    options = PipelineOptions(args)
    if local:
        assert isinstance(runners.make_pipeline(options).runner, FnApiRunner)
    else:  # Not constructed (Dataflow needs credentials): the options are left as given.
        assert options.view_as(StandardOptions).runner == runner


@pytest.mark.slow  # Simulates the demo data set (a few seconds), then runs the job.
def test_demo_mode(tmp_path, monkeypatch, capsys):
    pytest.importorskip('bpnet_tfx.simulate.simulator')
    from bpnet_tfx.simulate import simulator as simulate

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
    rec = codec.decode_record(
        next(iter(tf.data.TFRecordDataset(first, compression_type='GZIP'))).numpy(), info
    )
    chrom, start = rec['chrom'], rec['start']
    for strand, path in enumerate((demo.expected_pos_bigwig, demo.expected_neg_bigwig)):
        bw = pyBigWig.open(path)
        np.testing.assert_allclose(
            rec['expected'][:, 0, strand],
            np.nan_to_num(bw.values(chrom, start, start + info.stored_length, numpy=True)),
        )
    assert f'-> {out}' in capsys.readouterr().out


def test_tasks_spec_resolves_relative_paths_and_checks_pairs(tmp_path):
    from beam_jobs.records import tasks as tasks_lib

    spec = tmp_path / 'spec' / 'tasks.yaml'
    spec.parent.mkdir()
    spec.write_text(
        'tasks:\n  - {name: a, peaks: p.bed, pos_bigwig: ../pos.bw, '
        'neg_bigwig: /abs/neg.bw, expected_pos_bigwig: gs://b/e.bw, '
        'expected_neg_bigwig: gs://b/f.bw}\n'
    )
    (task,) = tasks_lib.read_tasks_spec(str(spec))
    assert (task.peaks, task.pos_bigwig, task.neg_bigwig) == (
        str(tmp_path / 'spec' / 'p.bed'),
        str(tmp_path / 'pos.bw'),
        '/abs/neg.bw',
    )
    assert task.pair('expected') == ('gs://b/e.bw', 'gs://b/f.bw') and not task.pair('control')
    spec.write_text(
        'tasks:\n  - {name: a, peaks: p, pos_bigwig: x, neg_bigwig: y, control_pos_bigwig: c}\n'
    )
    with pytest.raises(RecordsInputError, match="task 'a' gives one of control_pos_bigwig"):
        tasks_lib.read_tasks_spec(str(spec))


# --- The 2114 -> 1000 regime: output length, outliers, background ------------------------------


@pytest.mark.slow  # The whole job.
def test_output_length_records_match_direct_extraction(tmp_path):
    out_len = 600
    trim = (L - out_len) // 2
    info = make_records.run(
        _data_flags()
        + [
            f'--output_dir={tmp_path / "records"}',
            f'--input_length={L}',
            f'--max_jitter={J}',
            f'--valid_chroms=chrIV:0-{VALID_END}',
            '--runner=DirectRunner',
            f'--output_length={out_len}',
            '--outlier_quantile=0',
        ]
    )
    assert (
        info.sequence_length,
        info.output_length,
        info.stored_length,
        info.stored_output_length,
    ) == (L, out_len, L + 2 * J, out_len + 2 * J)
    assert schema.RecordsInfo.load(str(tmp_path / 'records')) == info
    fasta = pyfaidx.Fasta(str(DATA / 'chrIV.fa'), as_raw=True)
    bigwigs = [pyBigWig.open(str(DATA / f'Reb1.{s}.bw')) for s in ('pos', 'neg')]
    records = _read_records(tmp_path / 'records')
    assert {r['region_id'] for rs in records.values() for r in rs} == {
        _window_id(s) for _, s in _summits()
    }  # Ids name the input window.
    for rec in (r for rs in records.values() for r in rs):
        start = int(rec['region_id'].split(':')[1].split('-')[0])
        assert rec['start'] == start - J and 'is_background' not in rec
        np.testing.assert_array_equal(
            rec['one_hot'], sequence.one_hot(fasta['chrIV'][start - J : start + L + J])
        )
        lo, hi = start + trim - J, start + L - trim + J
        direct = np.stack(
            [np.nan_to_num(bw.values('chrIV', lo, hi, numpy=True)) for bw in bigwigs], axis=-1
        )[:, None, :]
        np.testing.assert_array_equal(rec['profile'], direct)
    totals = [r['profile'][J : J + out_len].sum() for r in records['train']]
    assert info.median_total_counts == pytest.approx((float(np.median(totals)),))


def _toy_genome(tmp_path, totals, far=None):
    """chr1 of 20 kb with peaks (BED, 1-bp summits) every 1500 bp from 1000; peak i has
    totals[i] counts at its summit (split 1:3 between strands) and `far` = (i, offset,
    counts) puts extra counts `offset` bp from one summit."""
    rng = np.random.default_rng(5)
    write_fasta(tmp_path / 'g.fa', {'chr1': random_bases(rng, 20_000)}, width=None)
    summits = [1000 + 1500 * i for i in range(len(totals))]
    (tmp_path / 'p.bed').write_text(''.join(f'chr1\t{s}\t{s + 1}\n' for s in summits))
    values = np.zeros((2, 20_000))
    for s, t in zip(summits, totals):
        values[0, s], values[1, s + 1] = t / 4, 3 * t / 4
    if far:
        values[0, summits[far[0]] + far[1]] += far[2]
    for strand, name in enumerate(('pos', 'neg')):
        write_bigwig(tmp_path / f'{name}.bw', {'chr1': values[strand]})
    return [
        f'--fasta={tmp_path / "g.fa"}',
        f'--peaks={tmp_path / "p.bed"}',
        f'--pos_bigwig={tmp_path / "pos.bw"}',
        f'--neg_bigwig={tmp_path / "neg.bw"}',
        '--valid_chroms=chrX',
        '--allow_empty_splits',
        '--runner=DirectRunner',
        '--sequence_length=200',
        '--max_jitter=10',
    ], summits


@pytest.mark.slow  # The whole job.
def test_outliers_are_dropped_counted_and_listed(tmp_path, capsys):
    # Totals 10, 20, ..., 90, 1000 at the summits: quantile(0.5) = 55, x 1.2 = 66, so lines
    # 7-10 go. Peak 1 also has 5000 counts 70 bp right of its summit: inside its 200-bp
    # window, outside its 100-bp output window.
    flags, summits = _toy_genome(
        tmp_path, [10, 20, 30, 40, 50, 60, 70, 80, 90, 1000], far=(0, 70, 5000)
    )
    info = make_records.run(
        flags
        + [f'--output_dir={tmp_path / "narrow"}', '--output_length=100', '--outlier_quantile=0.5']
    )
    assert info.source['dropped'] == {'outlier_counts': 4}
    assert info.source['outlier_thresholds'] == {'task0': pytest.approx(66.0)}
    assert (
        info.source['peaks_read'],
        sum(info.split_counts.values()),
        info.source['peaks_rejected'],
    ) == (10, 6, 4)
    assert _rows(tmp_path / 'narrow' / 'rejected.tsv')[1:] == [
        f'chr1:{s - 100}-{s + 100}\ttask0\t{line}\toutlier_counts'
        for line, s in zip(range(7, 11), summits[6:])
    ]
    assert info.median_total_counts == (35.0,)  # 10..60.
    assert '4 rejected (outlier_counts 4)' in capsys.readouterr().out
    # Counted over the whole 200-bp window, peak 1's 5010 makes it an outlier too (and moves
    # the quantile to 65 x 1.2 = 78: 80, 90 and 1000 go with it).
    info = make_records.run(flags + [f'--output_dir={tmp_path / "wide"}', '--outlier_quantile=0.5'])
    assert [r.split('\t')[2] for r in _rows(tmp_path / 'wide' / 'rejected.tsv')[1:]] == [
        '1',
        '8',
        '9',
        '10',
    ]
    # Off: every peak is written.
    info = make_records.run(flags + [f'--output_dir={tmp_path / "off"}', '--outlier_quantile=0'])
    assert sum(info.split_counts.values()) == 10 and info.source['dropped'] == {}
    assert 'outlier_thresholds' not in info.source


@pytest.mark.slow  # The whole job.
def test_outlier_of_a_merged_task_drops_the_window_for_both_tasks(tmp_path):
    # Task b's peaks all fall on task a's windows (merged, not kept). Task a's totals are
    # flat; task b's are 10..60 and 1000 at peak 7: only task b's rule can drop it, which
    # needs b's merged peaks to count as b's.
    flags, summits = _toy_genome(tmp_path, [10, 10, 10, 10, 10, 10, 10])
    b_dir = tmp_path / 'b'
    b_dir.mkdir()
    b_flags, _ = _toy_genome(b_dir, [10, 20, 30, 40, 50, 60, 1000])
    value = {f.split('=')[0]: f.split('=', 1)[1] for f in flags + b_flags if '=' in f}
    spec = _write_spec(
        tmp_path / 'tasks.json',
        [
            {
                'name': 'a',
                'peaks': str(tmp_path / 'p.bed'),
                'pos_bigwig': str(tmp_path / 'pos.bw'),
                'neg_bigwig': str(tmp_path / 'neg.bw'),
            },
            {
                'name': 'b',
                'peaks': str(b_dir / 'p.bed'),
                'pos_bigwig': str(b_dir / 'pos.bw'),
                'neg_bigwig': str(b_dir / 'neg.bw'),
            },
        ],
    )
    info = make_records.run(
        [
            f'--fasta={value["--fasta"]}',
            f'--tasks_spec={spec}',
            f'--output_dir={tmp_path / "out"}',
            '--valid_chroms=chrX',
            '--allow_empty_splits',
            '--runner=DirectRunner',
            '--sequence_length=200',
            '--max_jitter=10',
            '--outlier_quantile=0.8',
        ]
    )
    assert info.source['peaks_merged'] == 6  # Task b's peaks at the 6 kept windows.
    assert info.source['dropped'] == {'outlier_counts': 2}  # Both tasks' peak 7.
    # quantile(0.8) x 1.2: a 10 x 1.2; b (50 + 0.8 x 10) x 1.2.
    assert info.source['outlier_thresholds'] == {'a': pytest.approx(12.0), 'b': pytest.approx(69.6)}
    window = f'chr1:{summits[6] - 100}-{summits[6] + 100}'
    assert _rows(tmp_path / 'out' / 'rejected.tsv')[1:] == [
        f'{window}\ta\t7\toutlier_counts',
        f'{window}\tb\t7\toutlier_counts',
    ]
    assert info.median_total_counts == pytest.approx((10.0, 35.0))  # b: 10..60.


@pytest.mark.parametrize('quantile', ['0.99', '0'])
@pytest.mark.slow  # The whole job.
def test_median_leaves_out_windows_the_pipeline_rejects(tmp_path, quantile):
    # With the outlier rule on, the driver's totals give the median; off, the workers' do.
    # Either way peak 1 (total 10), all N, is rejected in the pipeline and not in the median.
    flags, _ = _toy_genome(tmp_path, [10, 20, 30, 40, 50, 60])
    seq = (tmp_path / 'g.fa').read_text().split('\n')[1]
    write_fasta(tmp_path / 'g.fa', {'chr1': seq[:880] + 'N' * 240 + seq[1120:]}, width=None)
    info = make_records.run(
        flags + [f'--output_dir={tmp_path / "out"}', f'--outlier_quantile={quantile}']
    )
    assert info.source['dropped'] == {'too_many_n': 1}
    assert info.median_total_counts == (40.0,)  # 20..60.


@pytest.fixture(scope='module')
def sparse_sim(tmp_path_factory):
    """Simulated data with room between peaks (150 per Mb) and N stretches on chr2."""
    from bpnet_tfx.simulate import simulator as simulate

    config = simulate.SimulationConfig(
        seed=2,
        chrom_sizes=(('chr1', 300_000), ('chr2', 300_000), ('chr3', 300_000), ('chr4', 300_000)),
        peaks_per_mb=150,
        n_stretch_chroms=('chr2',),
        n_stretches_per_chrom=2,
        gc_sd=0.08,
        gc_block=5000,
    )
    return simulate.simulate(str(tmp_path_factory.mktemp('sparse')), config)


def _sim_flags(demo, output_dir, *extra):
    return [
        f'--fasta={demo.fasta}',
        f'--peaks={demo.peaks}',
        f'--pos_bigwig={demo.pos_bigwig}',
        f'--neg_bigwig={demo.neg_bigwig}',
        '--sequence_length=600',
        '--output_length=300',
        '--max_jitter=20',
        '--valid_chroms=chr1',
        f'--output_dir={output_dir}',
        '--runner=DirectRunner',
        *extra,
    ]


def _gc_fraction(one_hot: np.ndarray) -> float:
    return float(one_hot[:, 1:3].sum() / max(one_hot.sum(), 1))


@pytest.mark.slow  # The whole job.
def test_background_records(sparse_sim, tmp_path, capsys):
    out = tmp_path / 'records'
    info = make_records.run(_sim_flags(sparse_sim, out, '--background_ratio=0.5'))
    background = info.source['background']
    assert info.has_background and background['ratio'] == 0.5 and background['seed'] == 0
    records = _read_records(out)
    n_bg = {s: sum(r['is_background'] for r in recs) for s, recs in records.items()}
    assert dict(info.background_counts) == n_bg
    assert {s: len(recs) for s, recs in records.items()} == dict(info.split_counts)
    peaks_written = sum(info.split_counts.values()) - sum(n_bg.values())
    assert background['written'] == background['sampled'] == sum(n_bg.values())
    assert background['requested'] == round(0.5 * len(_kept_peaks(sparse_sim)))
    assert background['written'] == background['requested'] > 60
    assert n_bg['train'] > 0 and n_bg['valid'] > 0
    # Peak accounting is unchanged: background is not a peak read.
    n_peaks = sum(1 for _ in open(sparse_sim.peaks))
    assert info.source['peaks_read'] == n_peaks == peaks_written + info.source['peaks_rejected']
    assert info.source['peaks_written'] == peaks_written
    assert all(row.split('\t')[1] == 'task0' for row in _rows(out / 'rejected.tsv')[1:])
    # Background windows: away from every peak's stored window, on the chromosome, in the
    # split of their chromosome, and extracted like peaks.
    fasta = pyfaidx.Fasta(sparse_sim.fasta, as_raw=True)
    bigwigs = [pyBigWig.open(p) for p in (sparse_sim.pos_bigwig, sparse_sim.neg_bigwig)]
    peaks = _all_peak_windows(sparse_sim)
    for split, recs in records.items():
        for rec in (r for r in recs if r['is_background']):
            chrom, lo = rec['chrom'], rec['start']
            hi = lo + info.stored_length
            assert 0 <= lo and hi <= len(fasta[chrom])
            assert split == ('valid' if chrom == 'chr1' else 'train')
            assert not any(c == chrom and s - 20 < hi and lo < e + 20 for c, s, e in peaks)
            np.testing.assert_array_equal(rec['one_hot'], sequence.one_hot(fasta[chrom][lo:hi]))
            direct = np.stack(
                [np.nan_to_num(bw.values(chrom, lo + 150, hi - 150, numpy=True)) for bw in bigwigs],
                axis=-1,
            )[:, None, :]
            np.testing.assert_array_equal(rec['profile'], direct)
    # The median is over peak records only.
    totals = [r['profile'][20:320].sum() for r in records['train'] if not r['is_background']]
    assert info.median_total_counts == pytest.approx((float(np.median(totals)),))
    # GC over the input window matches the peaks' (and the KS in metadata says so).
    gc = {
        flag: [
            _gc_fraction(r['one_hot'][20:620])
            for rs in records.values()
            for r in rs
            if r['is_background'] == flag
        ]
        for flag in (False, True)
    }
    assert background['gc_ks_statistic'] < 0.1
    assert scipy.stats.ks_2samp(gc[False], gc[True]).statistic < 0.1
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert (
        f'; {background["written"]} background of {background["requested"]} asked for, '
        f'GC KS {background["gc_ks_statistic"]:.3f})' in summary
    )


def _all_peak_windows(demo, length=600):
    return [
        (r.chrom, r.start, r.end) for r in regions.read_peaks(demo.peaks, sequence_length=length)
    ]


def _kept_peaks(demo):
    sizes = input_checks.fasta_chrom_sizes(demo.fasta)
    kept, _ = window_rules.drop_out_of_bounds(
        regions.read_peaks(demo.peaks, sequence_length=600), sizes, 20
    )
    totals = outliers.window_totals(kept, [(demo.pos_bigwig, demo.neg_bigwig)], trim=150)[:, 0]
    return [r for r, t in zip(kept, totals) if t <= np.quantile(totals, 0.99) * 1.2]


@pytest.mark.slow  # Three jobs.
def test_background_seed_decides_the_regions(sparse_sim, tmp_path):
    first = _sim_flags(sparse_sim, tmp_path / 'a', '--background_ratio=0.3')
    make_records.run(first)
    make_records.run(_sim_flags(sparse_sim, tmp_path / 'b', '--background_ratio=0.3'))
    assert _shard_bytes(tmp_path / 'a') == _shard_bytes(tmp_path / 'b')
    make_records.run(
        _sim_flags(sparse_sim, tmp_path / 'c', '--background_ratio=0.3', '--background_seed=1')
    )

    def background_ids(folder):
        return {
            r['region_id']
            for rs in _read_records(folder).values()
            for r in rs
            if r['is_background']
        }

    a, c = background_ids(tmp_path / 'a'), background_ids(tmp_path / 'c')
    assert len(a) == len(c) > 30 and a != c
