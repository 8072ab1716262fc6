"""Tests for the simulator's sequence-determined counts: the cooperative rule
(bpnet_tfx.simulate.chrom.cooperative_boosts and its effect on the written files) and the
`<task>.sequence.{pos,neg}.bw` tracks (the expected reads with every non-sequence factor at
its mean)."""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import pytest

from bpnet_tfx.genome import bigwig
from bpnet_tfx.simulate import chrom as simulated_chrom
from bpnet_tfx.simulate import simulator as simulate

_CONFIG = simulate.SimulationConfig(
    seed=3,
    chrom_sizes=(('chr1', 60_000), ('chr2', 80_000)),
    n_stretch_chroms=('chr1',),
    n_stretches_per_chrom=1,
    n_stretch_length=(2000, 3000),
)


def _track(path: str, chrom: str) -> np.ndarray:
    size = dict(_CONFIG.chrom_sizes)[chrom]  # chr1 is as long in every config here.
    return bigwig.read_tracks([[path]], chrom, 0, size)[:, 0, 0].astype(np.float64)


def _sites(files: simulate.DemoFiles) -> list[dict]:
    return simulate.read_motif_sites(files.motif_sites)


@pytest.fixture(scope='module')
def sim(tmp_path_factory):
    return simulate.simulate(str(tmp_path_factory.mktemp('coop') / 'sim'), _CONFIG)


@pytest.mark.parametrize(
    'names, centres, expected',
    [
        (['oct4_sox2', 'klf4'], [100, 130], [2.0, 2.0]),
        (['klf4', 'oct4_sox2'], [100, 80], [2.0, 2.0]),  # Either order, either side.
        (['oct4_sox2', 'klf4'], [100, 120], [2.0, 2.0]),  # Both ends of the range count.
        (['oct4_sox2', 'klf4'], [100, 140], [2.0, 2.0]),
        (['oct4_sox2', 'klf4'], [100, 119], [1.0, 1.0]),  # Too close.
        (['oct4_sox2', 'klf4'], [100, 141], [1.0, 1.0]),  # Too far.
        (['oct4_sox2', 'oct4_sox2'], [100, 130], [1.0, 1.0]),  # Not the pair.
        # Two partners boost once; the far klf4 has none.
        (['oct4_sox2', 'klf4', 'klf4'], [100, 125, 70], [2.0, 2.0, 2.0]),
        (['oct4_sox2', 'klf4', 'klf4'], [100, 125, 200], [2.0, 2.0, 1.0]),
        (['oct4_sox2'], [100], [1.0]),
    ],
)
def test_cooperative_boosts(names, centres, expected):
    got = simulated_chrom.cooperative_boosts(names, np.array(centres, float), _CONFIG)
    np.testing.assert_array_equal(got, expected)


def test_cooperative_boosts_homotypic_competitive_and_off():
    config = dataclasses.replace(
        _CONFIG,
        cooperative_motifs=('klf4', 'klf4'),
        cooperative_distance=(10, 15),
        cooperative_boost=0.5,
    )
    got = simulated_chrom.cooperative_boosts(
        ['klf4', 'klf4', 'oct4_sox2', 'klf4'], np.array([0.0, 12.0, 24.0, 60.0]), config
    )
    np.testing.assert_array_equal(got, [0.5, 0.5, 1.0, 1.0])
    off = dataclasses.replace(_CONFIG, cooperative_motifs=())
    got = simulated_chrom.cooperative_boosts(['oct4_sox2', 'klf4'], np.array([0.0, 30.0]), off)
    np.testing.assert_array_equal(got, [1.0, 1.0])


@pytest.mark.parametrize(
    'changes, message',
    [
        ({'cooperative_motifs': ('oct4_sox2', 'nanog')}, 'must name two motifs'),
        ({'cooperative_motifs': ('oct4_sox2',)}, 'must name two motifs'),
        ({'cooperative_distance': (40, 20)}, 'cooperative_distance'),
        ({'cooperative_distance': (-1, 20)}, 'cooperative_distance'),
        ({'cooperative_distance': (20, 280)}, 'min_peak_spacing - 2 \\* instance_radius'),
        ({'cooperative_boost': 0.0}, 'cooperative_boost'),
    ],
)
def test_bad_cooperative_rule_is_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(_CONFIG, **changes)


def test_sites_carry_the_rule_and_the_manifest_states_it(sim):
    sites = _sites(sim)
    by_peak: dict[str, list[dict]] = {}
    for site in sites:
        by_peak.setdefault(site['peak'], []).append(site)
    low, high = _CONFIG.cooperative_distance
    boosted = 0
    for peak_sites in by_peak.values():
        for site in peak_sites:
            partner = {'oct4_sox2': 'klf4', 'klf4': 'oct4_sox2'}[site['motif']]
            in_range = any(
                o['motif'] == partner and low <= abs(o['centre'] - site['centre']) <= high
                for o in peak_sites
            )
            assert site['boost'] == (_CONFIG.cooperative_boost if in_range else 1.0), site
            boosted += in_range
    assert 0.05 * len(sites) < boosted < 0.5 * len(sites)
    with open(os.path.join(sim.root, 'simulation.json')) as f:
        manifest = json.load(f)
    assert manifest['cooperativity'] == {
        'motifs': ['oct4_sox2', 'klf4'],
        'distance': [20, 40],
        'boost': 2.0,
        'boosted_sites': boosted,
    }
    assert manifest['config']['cooperative_distance'] == [20, 40]


def test_boosted_footprints_are_stronger_in_the_sequence_track(sim):
    # Footprint mass of each instance in the sequence track: strength x weak factor x boost.
    motifs = {m.name: m for t in _CONFIG.tasks for m in t.motifs}
    sequence = {c: _track(sim.task_bigwigs['demo'].sequence_pos, c) for c, _ in _CONFIG.chrom_sizes}
    ratios = {1.0: [], 2.0: []}
    for site in _sites(sim):
        motif = motifs[site['motif']]
        fwd = site['strand'] == '+'
        at = int(site['centre'] - (motif.plus_offset if fwd else motif.minus_offset))
        peak_height = sequence[site['chrom']][at]
        ratios[site['boost']].append(peak_height / motif.strength)
    # Exact, lone sites dominate the medians; boosted ones are about twice as high.
    ratio = np.median(ratios[2.0]) / np.median(ratios[1.0])
    assert 1.6 < ratio < 2.4


def test_sequence_track_is_the_expected_track_without_the_peak_factors(sim):
    """Per peak, expected = sequence x that peak's lognormal factor (one factor per peak,
    mean 1, log sd = peak_factor_sigma); away from peaks both are the background."""
    paths = sim.task_bigwigs['demo']
    with open(sim.peaks) as f:
        peaks = [(c, int(s)) for c, s, *_ in (line.split('\t') for line in f)]
    log_factors = []
    for chrom, _ in _CONFIG.chrom_sizes:
        expected = _track(paths.expected_pos, chrom) + _track(paths.expected_neg, chrom)
        sequence = _track(paths.sequence_pos, chrom) + _track(paths.sequence_neg, chrom)
        background = 2 * np.float32(_CONFIG.background_rate)
        far = np.ones(expected.size, bool)
        for c, summit in peaks:
            if c != chrom:
                continue
            far[max(summit - 600, 0) : summit + 600] = False
            near = slice(summit - 40, summit + 41)
            ratio = (expected[near] - background) / (sequence[near] - background)
            # One factor for the whole peak (a neighbour's broad tail adds a little).
            assert np.ptp(ratio) < 2e-2 * ratio.mean()
            log_factors.append(np.log(ratio.mean()))
        keep = far & (expected > 0)
        np.testing.assert_allclose(expected[keep], sequence[keep], rtol=1e-6)
    assert np.std(log_factors) == pytest.approx(_CONFIG.peak_factor_sigma, rel=0.2)
    assert abs(np.mean(np.exp(log_factors)) - 1.0) < 0.06


def test_sequence_track_ignores_the_control_bias(tmp_path):
    config = dataclasses.replace(_CONFIG, control_rate=0.05, chrom_sizes=(('chr1', 60_000),))
    files = simulate.simulate(str(tmp_path / 'sim'), config)
    sequence = _track(files.task_bigwigs['demo'].sequence_pos, 'chr1')
    expected = _track(files.task_bigwigs['demo'].expected_pos, 'chr1')
    # Away from peaks the sequence track is the flat background rate; the drawn track follows
    # the bias field there (lognormal factors, sigma 0.6).
    flat = sequence == np.float32(config.background_rate)
    assert flat.sum() > 10_000
    assert np.std(np.log(expected[flat])) > 0.4


def test_sequence_bigwigs_finds_the_tracks_beside_the_expected_ones(sim, tmp_path):
    paths = sim.task_bigwigs['demo']
    assert simulate.sequence_bigwigs(paths.expected_pos, paths.expected_neg) == (
        paths.sequence_pos,
        paths.sequence_neg,
    )
    assert simulate.sequence_bigwigs(None, None) is None
    assert simulate.sequence_bigwigs(paths.pos, paths.neg) is None  # Not expected tracks.
    other = tmp_path / 'x.expected.pos.bw'
    other.write_bytes(b'')
    assert simulate.sequence_bigwigs(str(other), str(tmp_path / 'x.expected.neg.bw')) is None
