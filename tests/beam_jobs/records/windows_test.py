"""Tests of beam_jobs/records/windows.py: the window reader on a tiny genome in a temp folder."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pyBigWig
import pytest

from beam_jobs.common import files as files_lib
from beam_jobs.common.errors import RecordsInputError
from beam_jobs.records import shards
from beam_jobs.records import windows as windows_lib
from beam_jobs.records.regions import Region
from bpnet_tfx.genome import sequence

L, J = 20, 5  # Window length and jitter margin of these tests.


def _write_bigwig(path: str, chroms: dict[str, int], tracks: dict[str, np.ndarray]) -> str:
    """Writes the non-NaN bases of each track (NaN = no entry, read back as NaN)."""
    bw = pyBigWig.open(path, 'w')
    bw.addHeader(list(chroms.items()))
    for chrom in chroms:
        values = tracks[chrom]
        starts = np.flatnonzero(~np.isnan(values))
        if starts.size:
            bw.addEntries(
                chrom, starts.astype(np.int64), values=values[starts].astype(np.float64), span=1
            )
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
            values[name] = {
                c: np.where(rng.random(n) < 0.3, rng.integers(1, 20, n), np.nan)
                for c, n in chroms.items()
            }
        else:
            values[name] = {c: rng.integers(0, 5, n).astype(np.float64) for c, n in chroms.items()}
        paths[name] = _write_bigwig(str(root / f'{name}.bw'), chroms, values[name])
    return {'root': root, 'fasta': str(fasta), 'seqs': seqs, 'values': values, **paths}


def _spec(
    genome,
    *,
    tasks=1,
    control=False,
    expected=False,
    max_n_fraction=0.1,
    run_gap=20_000,
    prefix=None,
):
    path = (lambda name: prefix + os.path.basename(genome[name])) if prefix else genome.get
    pairs = [('pos', 'neg'), ('pos2', 'neg2')][:tasks]
    return windows_lib.WindowSpec(
        fasta=path('fasta'),
        counts=[(path(a), path(b)) for a, b in pairs],
        control=[(path('ctl_pos'), path('ctl_neg'))] * tasks if control else None,
        expected=[(path('exp_pos'), path('exp_neg'))] * tasks if expected else None,
        max_jitter=J,
        max_n_fraction=max_n_fraction,
        run_gap=run_gap,
    )


def _direct(genome, region: Region, pairs) -> tuple[np.ndarray, np.ndarray, int]:
    """Direct extraction: one-hot, (stored, tasks, 2) counts, stored start."""
    start, end = region.start - J, region.end + J
    one_hot = sequence.one_hot(genome['seqs'][region.chrom][start:end])
    profile = np.stack(
        [
            np.stack(
                [np.nan_to_num(genome['values'][t][region.chrom][start:end]) for t in pair], axis=-1
            )
            for pair in pairs
        ],
        axis=1,
    ).astype(np.float32)
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
REJECTED = [
    ('chr1:2-22', 'out_of_bounds'),
    ('chr1:280-300', 'out_of_bounds'),
    ('chr1:210-230', 'too_many_n'),
    ('chr3:5-25', 'out_of_bounds'),
]
NUM_SHARDS = {'train': 3, 'valid': 1, 'test': 1}


def _chunks(regions):
    return shards.make_chunks(regions)


@pytest.mark.parametrize('run_gap', [0, 20_000], ids=['window_by_window', 'one_fetch_per_run'])
@pytest.mark.parametrize(
    'tasks, control, expected',
    [(1, False, False), (2, True, True)],
    ids=['one_task', 'two_tasks_control_expected'],
)
def test_window_reader_matches_direct_extraction(genome, run_gap, tasks, control, expected):
    reader = windows_lib.WindowReader(
        _spec(genome, tasks=tasks, control=control, expected=expected, run_gap=run_gap)
    ).open()
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
        np.testing.assert_array_equal(sequence.one_hot_from_tokens(w.tokens), one_hot)
        np.testing.assert_array_equal(w.profile, profile)
        assert w.profile.shape == (L + 2 * J, tasks, 2) and w.profile.dtype == np.float32
        if control:
            np.testing.assert_array_equal(
                w.control, _direct(genome, w.region, [('ctl_pos', 'ctl_neg')] * tasks)[1]
            )
        else:
            assert w.control is None
        if expected:
            np.testing.assert_allclose(
                w.expected,
                _direct(genome, w.region, [('exp_pos', 'exp_neg')] * tasks)[1],
                rtol=1e-6,
            )
        else:
            assert w.expected is None


def test_dense_chunk_is_one_fetch_per_track(genome, monkeypatch):
    calls = []
    reader = windows_lib.WindowReader(_spec(genome)).open()
    original = windows_lib.WindowReader._read_tracks

    def _spy(self, kind, chrom, start, end, windows):
        calls.append((start, end))
        return original(self, kind, chrom, start, end, windows)

    monkeypatch.setattr(windows_lib.WindowReader, '_read_tracks', _spy)
    chunk = shards.Chunk(
        'train',
        'chr1',
        tuple(Region('chr1', s, s + L, 'train', i) for i, s in enumerate(range(10, 180, 15))),
    )
    assert len([w for _, w in reader.read(chunk)]) == len(chunk.regions)
    assert calls == [(5, 200)]  # One values() span per bigWig for the whole chunk.
    reader.close()


def test_max_n_fraction_threshold(genome):
    # chr1:185-215 stored (5 bp margin each side) covers N at 200-215: 15 of 30 bases.
    chunk = shards.Chunk('train', 'chr1', (Region('chr1', 190, 210, 'train', 1),))
    for fraction, outcome in ((0.49, 'too_many_n'), (0.5, 'kept')):
        reader = windows_lib.WindowReader(_spec(genome, max_n_fraction=fraction)).open()
        ((_, window),) = reader.read(chunk)
        reader.close()
        assert (window if isinstance(window, str) else 'kept') == outcome


def test_negative_counts_fail_naming_bigwig_and_region(genome, tmp_path):
    values = np.zeros(300)
    values[60] = -2.0
    bad = _write_bigwig(
        str(tmp_path / 'bad.bw'),
        {'chr1': 300, 'chr2': 100},
        {'chr1': values, 'chr2': np.zeros(100)},
    )
    spec = windows_lib.WindowSpec(genome['fasta'], [(genome['pos'], bad)], max_jitter=J)
    reader = windows_lib.WindowReader(spec).open()
    with pytest.raises(
        RecordsInputError,
        match=r'bad\.bw: negative counts \(min -2\) in '
        r'chr1:45-75',
    ):
        list(reader.read(_chunks(REGIONS[:1])[0]))
    reader.close()


def test_reader_copies_remote_inputs_to_local_disk(genome, fake_remote):
    root, prefix = fake_remote
    for name in ('fasta', 'pos', 'neg'):
        (root / os.path.basename(genome[name])).write_bytes(open(genome[name], 'rb').read())
    reader = windows_lib.WindowReader(_spec(genome, prefix=prefix)).open()
    local_dir = reader._local_dir
    assert os.path.isdir(local_dir) and files_lib.is_remote(reader.spec.fasta)
    got = {r.line: w for chunk in _chunks(KEPT) for r, w in reader.read(chunk)}
    reader.close()
    assert not os.path.exists(local_dir)  # Removed in close (teardown).
    for r in KEPT:
        np.testing.assert_array_equal(got[r.line].profile, _direct(genome, r, [('pos', 'neg')])[1])


TRIM = 4  # Counts window: L - 2 * TRIM = 12 bp, stored 12 + 2J.


@pytest.mark.parametrize('run_gap', [0, 20_000], ids=['window_by_window', 'one_fetch_per_run'])
def test_output_trim_reads_the_centred_counts_window(genome, run_gap):
    spec = dataclasses.replace(
        _spec(genome, tasks=2, control=True, expected=True, run_gap=run_gap), output_trim=TRIM
    )
    reader = windows_lib.WindowReader(spec).open()
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
        assert w.start == start and w.tokens.shape == (L + 2 * J,)
        np.testing.assert_array_equal(sequence.one_hot_from_tokens(w.tokens), one_hot)
        assert w.profile.shape == (L - 2 * TRIM + 2 * J, 2, 2)
        np.testing.assert_array_equal(w.profile, profile[TRIM:-TRIM])
        np.testing.assert_array_equal(
            w.control, _direct(genome, w.region, [('ctl_pos', 'ctl_neg')] * 2)[1][TRIM:-TRIM]
        )
        np.testing.assert_allclose(
            w.expected,
            _direct(genome, w.region, [('exp_pos', 'exp_neg')] * 2)[1][TRIM:-TRIM],
            rtol=1e-6,
        )
        assert w.is_background is None
