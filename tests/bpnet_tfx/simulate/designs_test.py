"""Tests of the simulator designs: each one's files are valid and deterministic, and the property
that defines it holds in its expected tracks (window totals of the sequence-determined reads)."""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import os

import numpy as np
import pyBigWig
import pyfaidx
import pytest

from bpnet_tfx.simulate import chrom as simulated_chrom
from bpnet_tfx.simulate import designs
from bpnet_tfx.simulate import simulator as simulate
from bpnet_tfx.simulate import tracks as sim_tracks

_SCALE = 0.06  # about 30 isolated peaks per Mb of the full designs' 8 Mb
# dense has 1 Mb: twice the scale keeps the 30-kb chromosomes its N stretches need.
_SCALES = {'dense': 2 * _SCALE}
_WINDOW = 1000


def _simulate(tmp_path_factory, name, **changes):
    config = dataclasses.replace(
        designs.design_config(name, scale=_SCALES.get(name, _SCALE)), **changes
    )
    root = tmp_path_factory.mktemp(name) / 'sim'
    return simulate.simulate(str(root), config), config


@pytest.fixture(scope='module')
def simulated(tmp_path_factory):
    """Every design at the test scale, simulated once: name -> (files, config)."""
    return {name: _simulate(tmp_path_factory, name) for name in designs.DESIGNS}


def _peaks(files):
    with open(files.peaks) as f:
        return [(c, int(s), name) for c, s, _, name, *_ in (line.split('\t') for line in f)]


def _window_totals(files, kind='sequence', width=_WINDOW):
    """peak name -> the reads of task 0's `kind` tracks (both strands) in the centred window."""
    bigwigs = files.task_bigwigs[files.tasks[0]]
    paths = {
        'sequence': (bigwigs.sequence_pos, bigwigs.sequence_neg),
        'expected': (bigwigs.expected_pos, bigwigs.expected_neg),
    }[kind]
    return _sum_windows(paths, _peaks(files), width)


def _sum_windows(paths, peaks, width):
    handles = [pyBigWig.open(p) for p in paths]
    try:
        totals = {}
        for chrom, summit, name in peaks:
            start = max(0, summit - width // 2)
            end = min(handles[0].chroms()[chrom], start + width)
            totals[name] = sum(
                float(np.nan_to_num(bw.values(chrom, start, end, numpy=True)).sum())
                for bw in handles
            )
        return totals
    finally:
        for bw in handles:
            bw.close()


def _sites_by_peak(files):
    by_peak = collections.defaultdict(list)
    for site in simulate.read_motif_sites(files.motif_sites):
        by_peak[site['peak']].append(site)
    return by_peak


def _digest(root):
    return {
        name: hashlib.sha256(open(os.path.join(root, name), 'rb').read()).hexdigest()
        for name in sorted(os.listdir(root))
    }


def test_designs_differ_and_unknown_names_are_refused():
    fingerprints = {d.config.fingerprint() for d in designs.DESIGNS.values()}
    assert len(fingerprints) == len(designs.DESIGNS) >= 7
    assert designs.design_config('sites', seed=3).seed == 3
    scaled = designs.design_config('sites', scale=0.5)
    assert scaled.chrom_sizes[0] == ('chr1', 800_000)
    with pytest.raises(KeyError, match='designs: sites, cooperative'):
        designs.design_config('nope')


def test_demo_fingerprint_leaves_the_new_fields_out():
    config = simulate.SimulationConfig()
    assert 'repressor' not in config.to_dict() and 'bound_with_control' not in config.to_dict()
    with_repressor = designs.DESIGNS['repressor'].config
    assert with_repressor.to_dict()['repressor']['name'] == 'rep'


@pytest.mark.parametrize('name', list(designs.DESIGNS))
def test_each_design_is_valid_and_deterministic(simulated, tmp_path, name):
    files, config = simulated[name]
    again = simulate.simulate(str(tmp_path / 'again'), config)
    assert _digest(again.root) == _digest(files.root)
    manifest = json.loads(open(os.path.join(files.root, 'simulation.json')).read())
    assert manifest['fingerprint'] == config.fingerprint()
    peaks = _peaks(files)
    assert len(peaks) >= 20
    # Every planted site is in the FASTA, exact or with its stated mismatches.
    genome = pyfaidx.Fasta(files.fasta)
    motifs = {m.name: m for t in config.tasks for m in t.motifs}
    if config.repressor:
        motifs[config.repressor.name] = config.repressor
    complement = str.maketrans('ACGT', 'TGCA')
    for site in simulate.read_motif_sites(files.motif_sites):
        seq = str(genome[site['chrom']][site['start'] : site['end']]).upper()
        if site['strand'] == '-':
            seq = seq.translate(complement)[::-1]
        consensus = motifs[site['motif']].consensus
        assert sum(a != b for a, b in zip(seq, consensus)) == site['mismatches']
    # The sequence-determined reads are what the observed reads scatter around.
    expected = sum(_window_totals(files, 'sequence').values())
    observed = sum(_sum_windows((files.pos_bigwig, files.neg_bigwig), peaks, _WINDOW).values())
    assert observed == pytest.approx(expected, rel=0.15)


def test_sites_counts_follow_the_number_and_strength_of_sites(simulated):
    files, config = simulated['sites']
    totals = _window_totals(files)
    background = 2 * _WINDOW * config.background_rate
    classes = collections.defaultdict(list)
    for peak, sites in _sites_by_peak(files).items():
        classes[tuple(sorted(s['motif'] for s in sites))].append(totals[peak] - background)
    mean = {k: np.mean(v) for k, v in classes.items()}
    order = [('gata',), ('gata', 'gata'), ('ebox',), ('ebox', 'gata'), ('ebox', 'ebox')]
    assert all(k in mean for k in order), sorted(mean)
    assert [mean[k] for k in order] == sorted(mean[k] for k in order)
    # Footprints and broad signal scale with the motif's strength: 150 against 40.
    assert mean[('ebox',)] / mean[('gata',)] == pytest.approx(150 / 40, rel=0.1)
    assert mean[('gata', 'gata')] / mean[('gata',)] == pytest.approx(2.0, rel=0.1)


def test_cooperative_pairs_quadruple_their_sites(simulated):
    files, config = simulated['cooperative']
    totals = _window_totals(files)
    background = 2 * _WINDOW * config.background_rate
    boosted, plain = [], []
    for peak, sites in _sites_by_peak(files).items():
        if sorted(s['motif'] for s in sites) == ['nfy', 'nr']:
            low, high = config.cooperative_distance
            apart = abs(sites[0]['centre'] - sites[1]['centre'])
            assert (sites[0]['boost'] == 4.0) == (low <= apart <= high)
            (boosted if sites[0]['boost'] == 4.0 else plain).append(totals[peak] - background)
    assert len(boosted) >= 3 and len(plain) >= 3
    assert np.mean(boosted) / np.mean(plain) == pytest.approx(4.0, rel=0.1)


def test_the_repressor_quarters_its_peak(simulated):
    files, config = simulated['repressor']
    totals = _window_totals(files)
    background = 2 * _WINDOW * config.background_rate
    strength = config.tasks[0].motifs[0].strength
    ratios = {True: [], False: []}
    for peak, sites in _sites_by_peak(files).items():
        planted = [s for s in sites if s['motif'] != 'rep']
        level = sum(strength * (config.weak_site_factor if s['mismatches'] else 1) for s in planted)
        repressed = any(s['motif'] == 'rep' for s in sites)
        ratios[repressed].append((totals[peak] - background) / level)
    assert len(ratios[True]) >= 5 and len(ratios[False]) >= 5
    assert np.mean(ratios[True]) / np.mean(ratios[False]) == pytest.approx(0.25, rel=0.1)


def test_gc_background_follows_the_local_gc(simulated):
    files, config = simulated['gc_background']
    genome = pyfaidx.Fasta(files.fasta)
    lookup = np.full(256, simulated_chrom.N_CODE, np.uint8)
    lookup[simulated_chrom.BASE_LETTERS[:4]] = np.arange(4)
    codes = lookup[np.frombuffer(str(genome['chr2'][:]).upper().encode(), np.uint8)]
    background = sim_tracks.gc_background(codes, config)
    bigwigs = files.task_bigwigs[files.tasks[0]]
    bw = pyBigWig.open(bigwigs.sequence_pos)
    track = np.nan_to_num(bw.values('chr2', 0, len(codes), numpy=True))
    bw.close()
    # Away from peaks (at least 1 kb from every summit) the track is the GC background.
    away = np.ones(len(codes), bool)
    for chrom, summit, _ in _peaks(files):
        if chrom == 'chr2':
            away[max(0, summit - 1000) : summit + 1000] = False
    np.testing.assert_allclose(track[away], background[away], rtol=1e-5)
    # ... which varies several fold with the GC content.
    assert np.quantile(background, 0.9) / np.quantile(background, 0.1) > 3


def test_the_control_carries_half_of_the_counts(simulated, tmp_path_factory):
    files, config = simulated['control']
    # The same genome and footprints without the components the bias field modulates.
    bare, _ = _simulate(tmp_path_factory, 'control', background_rate=0.0, broad_fraction=0.0)
    with_bias = _window_totals(files)
    footprints = _window_totals(bare)
    share = 1 - sum(footprints.values()) / sum(with_bias.values())
    assert 0.35 <= share <= 0.65
    # The bound keeps the control's bias: windows whose control is high hold more reads.
    controls = _sum_windows(
        (files.control_pos_bigwig, files.control_neg_bigwig), _peaks(files), _WINDOW
    )
    names = sorted(with_bias)
    r = np.corrcoef(
        np.log1p([with_bias[n] for n in names]), np.log1p([controls[n] for n in names])
    )[0, 1]
    assert r > 0.3


def test_dense_peaks_share_their_windows_at_high_depth(simulated):
    files, _ = simulated['dense']
    peaks = _peaks(files)
    by_chrom = collections.defaultdict(list)
    for chrom, summit, _ in peaks:
        by_chrom[chrom].append(summit)
    neighbours = [
        sum(1 for other in by_chrom[chrom] if other != summit and abs(other - summit) < 500)
        for chrom, summit, _ in peaks
    ]
    assert np.median(neighbours) >= 1
    assert np.median(list(_window_totals(files).values())) > 500


def test_low_depth_windows_hold_20_to_100_reads(simulated):
    files, _ = simulated['low_depth']
    totals = np.array(list(_window_totals(files).values()))
    inside = np.mean((totals >= 20) & (totals <= 100))
    assert inside >= 0.9, np.quantile(totals, [0.05, 0.5, 0.95])
