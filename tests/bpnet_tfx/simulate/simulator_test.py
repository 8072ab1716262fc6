"""Tests for bpnet_tfx.simulate: determinism, file validity, planted motifs, footprint
geometry, count statistics and the demo-data cache."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pyBigWig
import pyfaidx
import pytest

from bpnet_tfx.simulate import simulator as simulate
from bpnet_tfx.simulate import tracks as sim_tracks

_SMALL = simulate.SimulationConfig(
    seed=7,
    chrom_sizes=(('chr1', 60_000), ('chr2', 80_000)),
    n_stretch_chroms=('chr1',),
    n_stretches_per_chrom=1,
    n_stretch_length=(2000, 3000),
)
_WINDOW = 1000
_COMPLEMENT = str.maketrans('ACGTN', 'TGCAN')


def _reverse_complement(seq: str) -> str:
    return seq.translate(_COMPLEMENT)[::-1]


def _track(path: str, chrom: str) -> np.ndarray:
    """A whole chromosome of a bigWig as float64, bases without entries as 0."""
    bw = pyBigWig.open(path)
    try:
        return np.nan_to_num(bw.values(chrom, 0, bw.chroms()[chrom], numpy=True)).astype(np.float64)
    finally:
        bw.close()


def _tracks(
    files: simulate.DemoFiles, config: simulate.SimulationConfig, task: str | None = None
) -> dict[str, dict[str, np.ndarray]]:
    paths = files.task_bigwigs[task or files.tasks[0]]
    return {
        chrom: {kind: _track(path, chrom) for kind, path in paths._asdict().items()}
        for chrom, _ in config.chrom_sizes
    }


def _peaks(files: simulate.DemoFiles) -> list[tuple[str, int, int, str]]:
    with open(files.peaks) as f:
        return [(c, int(s), int(e), name) for c, s, e, name, *_ in (line.split('\t') for line in f)]


def _sites(files: simulate.DemoFiles) -> list[dict]:
    return simulate.read_motif_sites(files.motif_sites)


def _motifs(config: simulate.SimulationConfig) -> dict[str, simulate.MotifSpec]:
    return {m.name: m for t in config.tasks for m in t.motifs}


@pytest.fixture(scope='module')
def small(tmp_path_factory):
    files = simulate.simulate(str(tmp_path_factory.mktemp('small') / 'demo'), _SMALL)
    return files, _tracks(files, _SMALL)


def test_same_seed_same_files_other_seed_other_files(tmp_path):
    a = simulate.simulate(str(tmp_path / 'a'), _SMALL)
    b = simulate.simulate(str(tmp_path / 'b'), _SMALL)
    c = simulate.simulate(str(tmp_path / 'c'), dataclasses.replace(_SMALL, seed=8))
    for name in ('fasta', 'peaks', 'motif_sites', 'chrom_sizes'):
        with open(getattr(a, name), 'rb') as fa, open(getattr(b, name), 'rb') as fb:
            assert fa.read() == fb.read(), name
    ta, tb, tc = _tracks(a, _SMALL), _tracks(b, _SMALL), _tracks(c, _SMALL)
    for chrom in ta:
        for kind in ta[chrom]:
            np.testing.assert_array_equal(ta[chrom][kind], tb[chrom][kind])
    with open(a.fasta, 'rb') as fa, open(c.fasta, 'rb') as fc:
        assert fa.read() != fc.read()
    with open(a.peaks, 'rb') as fa, open(c.peaks, 'rb') as fc:
        assert fa.read() != fc.read()
    assert not np.array_equal(ta['chr1']['pos'], tc['chr1']['pos'])


def test_fingerprint_is_stable_and_config_sensitive():
    fp = _SMALL.fingerprint()
    assert len(fp) == 12
    assert fp == dataclasses.replace(_SMALL).fingerprint()
    assert fp != dataclasses.replace(_SMALL, seed=8).fingerprint()
    assert fp != dataclasses.replace(_SMALL, background_rate=0.02).fingerprint()
    # Lists are made tuples, so equal content gives equal configs and fingerprints.
    as_lists = dataclasses.replace(_SMALL, chrom_sizes=[list(c) for c in _SMALL.chrom_sizes])
    assert as_lists == _SMALL and as_lists.fingerprint() == fp


def test_files_are_valid_and_consistent(small):
    files, tracks = small
    sizes = dict(_SMALL.chrom_sizes)
    with open(files.chrom_sizes) as f:
        assert [tuple(line.split('\t')) for line in f.read().splitlines()] == [
            (c, str(s)) for c, s in _SMALL.chrom_sizes
        ]
    fasta = pyfaidx.Fasta(files.fasta)
    assert {name: len(fasta[name]) for name in fasta.keys()} == sizes
    with open(files.fasta) as f:
        lines = f.read().splitlines()
    assert max(len(line) for line in lines) == 60
    assert set(''.join(line for line in lines if not line.startswith('>'))) == set('ACGTN')
    for paths in files.task_bigwigs.values():
        for path in paths:
            bw = pyBigWig.open(path)
            assert bw.isBigWig() and bw.chroms() == sizes
            bw.close()
    peaks = _peaks(files)
    assert len(peaks) == 60 + 80
    order = {c: i for i, (c, _) in enumerate(_SMALL.chrom_sizes)}
    assert peaks == sorted(peaks, key=lambda p: (order[p[0]], p[1]))
    for chrom, start, end, _ in peaks:
        assert end == start + 1
        assert 600 <= start and end + 600 <= sizes[chrom]
    assert len({name for *_, name in peaks}) == len(peaks)
    for chrom, t in tracks.items():
        # Observed: integer counts; expected: every base present, as float32.
        np.testing.assert_array_equal(t['pos'], np.round(t['pos']))
        bw = pyBigWig.open(files.expected_pos_bigwig)
        raw = bw.values(chrom, 0, sizes[chrom], numpy=True)
        bw.close()
        assert not np.isnan(raw).any()
        assert raw.dtype == np.float32 and (raw >= 0).all()


def test_n_stretches_in_chr1_without_reads_or_motifs(small):
    files, tracks = small
    seq = str(pyfaidx.Fasta(files.fasta)['chr1'])
    is_n = np.frombuffer(seq.encode(), dtype=np.uint8) == ord('N')
    assert 2000 <= is_n.sum() <= 3000
    edges = np.flatnonzero(np.diff(is_n.astype(np.int8)))
    assert len(edges) == 2  # One contiguous stretch.
    for kind in ('pos', 'neg', 'expected_pos', 'expected_neg'):
        assert tracks['chr1'][kind][is_n].sum() == 0.0
    assert 'N' not in str(pyfaidx.Fasta(files.fasta)['chr2'])
    for site in _sites(files):
        if site['chrom'] == 'chr1':
            assert not is_n[site['start'] : site['end']].any()
    for chrom, start, _, _ in _peaks(files):
        if chrom == 'chr1':
            assert not is_n[max(0, start - 300) : start + 300].any()


def test_planted_motifs_are_in_the_fasta(small):
    files, _ = small
    fasta = pyfaidx.Fasta(files.fasta)
    motifs = _motifs(_SMALL)
    sites = _sites(files)
    peak_names = {name for *_, name in _peaks(files)}
    assert len(sites) >= 140
    assert {s['motif'] for s in sites} == set(motifs)
    assert {s['strand'] for s in sites} == {'+', '-'}
    assert 0.1 < np.mean([s['mismatches'] for s in sites]) < 0.4
    for site in sites:
        planted = str(fasta[site['chrom']][site['start'] : site['end']])
        if site['strand'] == '-':
            planted = _reverse_complement(planted)
        consensus = motifs[site['motif']].consensus
        assert len(planted) == len(consensus)
        assert sum(a != b for a, b in zip(planted, consensus)) == site['mismatches']
        assert site['task'] == 'demo' and site['peak'] in peak_names


def test_instances_lie_near_their_summit(small):
    files, _ = small
    summits = {name: start for _, start, _, name in _peaks(files)}
    counts = {}
    for site in _sites(files):
        centre = (site['start'] + site['end'] - 1) / 2
        assert abs(centre - summits[site['peak']]) <= _SMALL.instance_radius + 10
        counts[site['peak']] = counts.get(site['peak'], 0) + 1
    assert set(counts) == set(summits)
    assert set(counts.values()) == {1, 2, 3}


@pytest.mark.parametrize('motif_name', ['oct4_sox2', 'klf4'])
def test_footprints_peak_at_offsets_and_mirror_for_reverse_instances(small, motif_name):
    files, tracks = small
    motif = _motifs(_SMALL)[motif_name]
    flank = 25
    summed = {
        strand: {'pos': np.zeros(2 * flank + 1), 'neg': np.zeros(2 * flank + 1)} for strand in '+-'
    }
    for site in _sites(files):
        if site['motif'] != motif_name:
            continue
        centre = (site['start'] + site['end'] - 1) // 2  # Odd-length motifs: an exact base.
        for kind in ('pos', 'neg'):
            track = tracks[site['chrom']]['expected_' + kind]
            summed[site['strand']][kind] += track[centre - flank : centre + flank + 1]
    assert np.argmax(summed['+']['pos']) - flank == -motif.plus_offset
    assert np.argmax(summed['+']['neg']) - flank == motif.minus_offset
    assert np.argmax(summed['-']['pos']) - flank == -motif.minus_offset
    assert np.argmax(summed['-']['neg']) - flank == motif.plus_offset


def test_reverse_instance_is_the_reverse_complement_of_a_forward_one():
    # Even-length motif: half-integer centre; the mirror must still be exact.
    length = 200
    tracks = {}
    for forward, centre in ((True, 80.5), (False, length - 1 - 80.5)):
        pos, neg = np.zeros(length), np.zeros(length)
        sim_tracks.add_footprints(
            pos,
            neg,
            np.array([centre]),
            np.array([forward]),
            np.array([30.0]),
            np.array([9.0]),
            np.array([4.0]),
            2.5,
        )
        tracks[forward] = (pos, neg)
    fwd_pos, fwd_neg = tracks[True]
    rev_pos, rev_neg = tracks[False]
    np.testing.assert_allclose(rev_pos, fwd_neg[::-1], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(rev_neg, fwd_pos[::-1], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(fwd_pos.sum(), 30.0)
    # Peak shared by positions 80.5 - 9 = 71.5 -> bases 71 and 72.
    assert fwd_pos[71] == pytest.approx(fwd_pos[72]) and np.argmax(fwd_pos) in (71, 72)
    assert fwd_neg[84] == pytest.approx(fwd_neg[85]) and np.argmax(fwd_neg) in (84, 85)


def test_observed_counts_are_poisson_around_expected(small):
    files, tracks = small
    half = _WINDOW // 2
    observed = expected = 0.0
    for chrom, start, _, _ in _peaks(files):
        for strand in ('pos', 'neg'):
            observed += tracks[chrom][strand][start - half : start + half].sum()
            expected += tracks[chrom]['expected_' + strand][start - half : start + half].sum()
    assert expected > 50_000
    assert observed == pytest.approx(expected, rel=0.02)
    # Background-only bases: mean and variance both equal the rate.
    rate = np.float32(_SMALL.background_rate)
    background = np.concatenate(
        [t[kind][t['expected_' + kind] == rate] for t in tracks.values() for kind in ('pos', 'neg')]
    )
    assert background.size > 50_000
    assert background.mean() == pytest.approx(float(rate), rel=0.1)
    assert background.var() == pytest.approx(float(rate), rel=0.15)


def test_expected_total_splits_into_footprints_broad_and_background(small):
    files, tracks = small
    sites = _sites(files)
    motifs = _motifs(_SMALL)
    genome = sum(size for _, size in _SMALL.chrom_sizes)
    n_bases = sum(int((t['expected_pos'] > 0).sum()) for t in tracks.values())
    total = sum(t['expected_pos'].sum() for t in tracks.values())
    signal = total - _SMALL.background_rate * n_bases
    # Mean strength per site (weak sites scaled, cooperative ones boosted), lifted by the broad
    # fraction.
    mean_site = np.mean(
        [
            motifs[s['motif']].strength
            * s['boost']
            * (_SMALL.weak_site_factor if s['mismatches'] else 1.0)
            for s in sites
        ]
    )
    predicted = len(sites) * mean_site / (1 - _SMALL.broad_fraction)
    assert n_bases < genome
    assert signal == pytest.approx(predicted, rel=0.1)  # Lognormal factors average to ~1.


def test_totals_grow_with_instances(small):
    files, tracks = small
    per_peak = {}
    for site in _sites(files):
        per_peak[site['peak']] = per_peak.get(site['peak'], 0) + 1
    half = _WINDOW // 2
    totals = {1: [], 2: [], 3: []}
    for chrom, start, _, name in _peaks(files):
        t = tracks[chrom]
        totals[per_peak[name]].append(
            t['pos'][start - half : start + half].sum()
            + t['neg'][start - half : start + half].sum()
        )
    means = [np.mean(totals[n]) for n in (1, 2, 3)]
    assert all(len(totals[n]) >= 20 for n in (1, 2, 3))
    assert means[0] < means[1] < means[2]
    assert means[2] > 1.5 * means[0]


def test_several_tasks_get_their_own_tracks(tmp_path):
    second = simulate.TaskSpec('nanog', (simulate.MotifSpec('nanog', 'AGCCATCAATG', 6, 9, 80.0),))
    config = dataclasses.replace(_SMALL, tasks=_SMALL.tasks + (second,))
    files = simulate.simulate(str(tmp_path / 'two'), config)
    assert files.tasks == ('demo', 'nanog')
    assert set(files.task_bigwigs) == {'demo', 'nanog'}
    assert files.pos_bigwig == files.task_bigwigs['demo'].pos
    sites = _sites(files)
    assert {s['task'] for s in sites} == {'demo', 'nanog'}
    assert all((s['task'] == 'nanog') == (s['motif'] == 'nanog') for s in sites)
    # Each task's footprint is only in its own track.
    expected = {task: _track(files.task_bigwigs[task].expected_pos, 'chr2') for task in files.tasks}
    for site in sites:
        if site['chrom'] != 'chr2':
            continue
        other = 'demo' if site['task'] == 'nanog' else 'nanog'
        centre = (site['start'] + site['end'] - 1) // 2
        near = slice(centre - 15, centre + 16)
        assert expected[site['task']][near].max() > 3 * expected[other][near].max() or (
            any(o['task'] == other and abs(o['start'] - site['start']) < 40 for o in sites)
        )


def test_simulate_replaces_its_own_output_but_not_other_directories(tmp_path):
    out = tmp_path / 'demo'
    simulate.simulate(str(out), _SMALL)
    files = simulate.simulate(str(out), dataclasses.replace(_SMALL, seed=8))
    assert simulate._is_complete(files, dataclasses.replace(_SMALL, seed=8))
    assert sorted(os.listdir(tmp_path)) == ['demo']  # No temporary directories left.
    foreign = tmp_path / 'foreign'
    foreign.mkdir()
    (foreign / 'keep.txt').write_text('mine')
    with pytest.raises(FileExistsError):
        simulate.simulate(str(foreign), _SMALL)
    assert (foreign / 'keep.txt').read_text() == 'mine'


def _mtimes(files: simulate.DemoFiles) -> dict[str, int]:
    return {p: os.stat(p).st_mtime_ns for p in simulate._all_paths(files)}


def test_ensure_demo_data_reuses_cache(tmp_path, monkeypatch):
    monkeypatch.setenv('BPNET_TFX_CACHE', str(tmp_path / 'cache'))
    assert simulate.default_cache_dir() == str(tmp_path / 'cache')
    first = simulate.ensure_demo_data(config=_SMALL)
    assert first.root == str(tmp_path / 'cache' / f'demo-{_SMALL.fingerprint()}')
    assert all(os.path.isfile(p) for p in simulate._all_paths(first))
    before = _mtimes(first)
    second = simulate.ensure_demo_data(str(tmp_path / 'cache'), _SMALL)
    assert second == first and _mtimes(second) == before
    assert os.listdir(tmp_path / 'cache') == [os.path.basename(first.root)]


def test_default_cache_dir_without_env(monkeypatch):
    monkeypatch.delenv('BPNET_TFX_CACHE', raising=False)
    assert simulate.default_cache_dir() == os.path.join(
        os.path.expanduser('~'), '.cache', 'bpnet_tfx'
    )


def test_ensure_demo_data_repairs_a_damaged_copy(tmp_path):
    files = simulate.ensure_demo_data(str(tmp_path), _SMALL)
    with open(files.peaks, 'rb') as f:
        peaks = f.read()
    os.remove(files.neg_bigwig)
    repaired = simulate.ensure_demo_data(str(tmp_path), _SMALL)
    assert os.path.isfile(repaired.neg_bigwig)
    with open(repaired.peaks, 'rb') as f:
        assert f.read() == peaks
    assert os.listdir(tmp_path) == [os.path.basename(files.root)]


def test_ensure_demo_data_loser_of_a_race_uses_the_winner(tmp_path, monkeypatch):
    real = simulate._write_all
    winner = {}

    def racing(root, config):
        real(root, config)
        # Another process publishes while this one is still simulating.
        monkeypatch.setattr(simulate, '_write_all', real)
        winner['files'] = simulate.ensure_demo_data(str(tmp_path), config)
        winner['mtimes'] = _mtimes(winner['files'])

    monkeypatch.setattr(simulate, '_write_all', racing)
    files = simulate.ensure_demo_data(str(tmp_path), _SMALL)
    assert files == winner['files'] and _mtimes(files) == winner['mtimes']
    assert os.listdir(tmp_path) == [os.path.basename(files.root)]  # Loser's copy deleted.


def test_default_config_size(tmp_path):
    config = simulate.SimulationConfig()
    assert [c for c, _ in config.chrom_sizes][0] == 'chr1'
    files = simulate.ensure_demo_data(str(tmp_path), config)
    peaks = _peaks(files)
    n_val = sum(c == 'chr1' for c, *_ in peaks)
    assert 350 <= n_val <= 450
    assert 2200 <= len(peaks) - n_val <= 2800
    fasta = pyfaidx.Fasta(files.fasta)
    assert 'N' in str(fasta['chr1'])
    bw = pyBigWig.open(files.pos_bigwig)
    totals = [np.nansum(bw.values(c, s - 500, s + 500, numpy=True)) for c, s, _, _ in peaks[::10]]
    bw.close()
    assert 100 < np.median(totals) < 1000
    assert np.percentile(totals, 90) > 2 * np.percentile(totals, 10)  # Varied.
