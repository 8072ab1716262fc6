"""Tests of beam_jobs/records/background.py: candidates, GC fractions, matched sampling, KS."""

from __future__ import annotations

import numpy as np
import pyfaidx
import pytest
import scipy.stats

from beam_jobs.records import background, regions, splits, window_rules
from beam_jobs.records.regions import Region
from tests.fixtures.genomes import write_fasta


def _fasta(tmp_path, seqs: dict[str, str]) -> pyfaidx.Fasta:
    return pyfaidx.Fasta(write_fasta(tmp_path / 'genome.fa', seqs), as_raw=True)


def _gc(seq: str) -> float:
    acgt = sum(seq.upper().count(b) for b in 'ACGT')
    return (seq.upper().count('G') + seq.upper().count('C')) / max(acgt, 1)


def test_free_tiles_pack_each_gap_from_its_left_end():
    # Gaps of [0, 100): [3, 10) (too short), [20, 45) and [50, 95).
    got = background._free_tiles(100, [(45, 50), (10, 20), (-5, 3), (95, 120)], 10)
    assert got.tolist() == [20, 30, 50, 60, 70, 80]
    assert background._free_tiles(25, [], 10).tolist() == [0, 10]
    assert background._free_tiles(25, [(0, 25)], 10).tolist() == []


@pytest.mark.parametrize('chunk_bp', [7, 1000])
def test_window_gc_counts_acgt_of_any_case(tmp_path, chunk_bp):
    rng = np.random.default_rng(0)
    seq = ''.join(rng.choice(list('ACGTacgtNNR'), 300))
    fasta = _fasta(tmp_path, {'chr1': seq})
    starts = rng.integers(0, 280, 40)
    ends = starts + rng.integers(1, 20, 40)
    got = background.window_gc(fasta, 'chr1', starts, ends, chunk_bp=chunk_bp)
    np.testing.assert_allclose(got, [_gc(seq[s:e]) for s, e in zip(starts, ends)])
    assert background.window_gc(fasta, 'chr1', [0], [3]).tolist() == [_gc(seq[:3])]


def test_candidates_avoid_peaks_blacklist_n_and_chromosome_ends(tmp_path):
    rng = np.random.default_rng(1)
    seq = list(''.join(rng.choice(list('ACGT'), 200)))
    seq[150:170] = 'N' * 20
    fasta = _fasta(tmp_path, {'chr1': ''.join(seq)})
    # L = 20, J = 5: stored windows of 30. A peak stored at [40, 70), a blacklist interval
    # [100, 110): gaps [0, 40), [70, 100) and [110, 200) hold tiles at 0, 70, 110, 140, 170;
    # the tile at 140 holds 20 N of 30 bases.
    (cands,) = background.candidate_windows(
        fasta,
        {'chr1': 200},
        {'chr1': [(40, 70), (100, 110)]},
        sequence_length=20,
        max_jitter=5,
        max_n_fraction=0.1,
        chunk_bp=64,
    )
    assert cands.chrom == 'chr1'
    assert cands.starts.tolist() == [5, 75, 115, 175]  # Input windows: tile + J.
    np.testing.assert_allclose(cands.gc, [_gc(''.join(seq[s : s + 20])) for s in cands.starts])
    (loose,) = background.candidate_windows(
        fasta,
        {'chr1': 200},
        {'chr1': [(40, 70), (100, 110)]},
        sequence_length=20,
        max_jitter=5,
        max_n_fraction=0.7,
    )
    assert loose.starts.tolist() == [5, 75, 115, 145, 175]  # 20/30 N <= 0.7.


def test_allocate_is_proportional_and_exact():
    got = background._allocate(np.array([1.0, 0.0, 2.0, 1.0]), 10)
    assert got.tolist() == [3, 0, 5, 2] and got.sum() == 10  # 2.5, 0, 5, 2.5: lower tie first.
    assert background._allocate(np.array([3.0, 1.0]), 0).tolist() == [0, 0]


def test_sample_matched_follows_the_peaks_and_borrows_from_the_nearest_bins():
    peak_gc = np.array([0.305] * 10 + [0.505] * 10)
    # Bin 0.30: 100 candidates; bin 0.50: only 3; bin 0.52: 50; bin 0.90: 50.
    cand = np.array([0.301] * 100 + [0.502] * 3 + [0.525] * 50 + [0.905] * 50)
    chosen = background.sample_matched(peak_gc, cand, 20, seed=0)
    assert len(chosen) == 20 and len(set(chosen.tolist())) == 20
    assert chosen.tolist() == sorted(chosen.tolist())
    counts = {v: int((cand[chosen] == v).sum()) for v in (0.301, 0.502, 0.525, 0.905)}
    assert counts == {0.301: 10, 0.502: 3, 0.525: 7, 0.905: 0}
    again = background.sample_matched(peak_gc, cand, 20, seed=0)
    other = background.sample_matched(peak_gc, cand, 20, seed=1)
    assert again.tolist() == chosen.tolist() and other.tolist() != chosen.tolist()
    # More wanted than there are candidates: all of them.
    assert background.sample_matched(peak_gc, cand[:5], 20, seed=0).tolist() == list(range(5))
    assert background.sample_matched(peak_gc, cand, 0, seed=0).tolist() == []


def test_ks_statistic_matches_scipy():
    rng = np.random.default_rng(2)
    for a, b in (
        (rng.normal(0, 1, 50), rng.normal(0.3, 1, 80)),
        (rng.integers(0, 5, 40).astype(float), rng.integers(0, 5, 30).astype(float)),
    ):
        assert background.ks_statistic(a, b) == pytest.approx(
            scipy.stats.ks_2samp(a, b).statistic, abs=1e-12
        )
    assert np.isnan(background.ks_statistic([], [1.0]))


# --- On simulated genomes ----------------------------------------------------------------------


def _stored_overlap(a: Region, b: Region, j: int) -> bool:
    return a.chrom == b.chrom and a.start - j < b.end + j and b.start - j < a.end + j


@pytest.fixture(scope='module')
def sparse(tmp_path_factory):
    """A simulated genome with GC blocks, N stretches and 270 peaks: room for background."""
    from bpnet_tfx.simulate import simulator as simulate

    config = simulate.SimulationConfig(
        seed=1,
        chrom_sizes=(
            ('chr1', 300_000),
            ('chr2', 300_000),
            ('chr3', 300_000),
            ('chr4', 300_000),
            ('chr5', 300_000),
            ('chr6', 300_000),
        ),
        peaks_per_mb=150,
        n_stretch_chroms=('chr2',),
        n_stretches_per_chrom=2,
        gc_sd=0.08,
        gc_block=5000,
    )
    return simulate.simulate(str(tmp_path_factory.mktemp('sparse')), config)


def _sample(
    demo, *, peaks=None, ratio=1.0, seed=0, length=1000, jitter=0, blacklist=None, valid=()
):
    fasta = pyfaidx.Fasta(demo.fasta, as_raw=True)
    sizes = {c: len(r) for c, r in fasta.records.items()}
    all_peaks = regions.read_peaks(demo.peaks, sequence_length=length, valid=valid)
    kept, _ = window_rules.drop_out_of_bounds(all_peaks, sizes, jitter)
    peaks = kept if peaks is None else peaks(kept, fasta)
    return (
        fasta,
        peaks,
        all_peaks,
        background.sample_background(
            fasta,
            peaks,
            all_peaks,
            sizes,
            ratio=ratio,
            seed=seed,
            sequence_length=length,
            max_jitter=jitter,
            max_n_fraction=0.1,
            blacklist=blacklist,
            valid=valid,
        ),
    )


def _high_gc(kept, fasta):
    """The peaks whose window GC is above the median: a GC-biased set to match."""
    gc = np.array([_gc(fasta[r.chrom][r.start : r.end]) for r in kept])
    return [r for r, g in zip(kept, gc) if g > np.median(gc)]


def test_background_gc_matches_a_gc_biased_peak_set(sparse):
    fasta, peaks, all_peaks, got = _sample(sparse, peaks=_high_gc, ratio=1.0, jitter=50)
    assert got.requested == len(peaks) == len(got.regions) > 100
    bg_gc = np.array([_gc(fasta[r.chrom][r.start : r.end]) for r in got.regions])
    peak_gc = np.array([_gc(fasta[r.chrom][r.start : r.end]) for r in peaks])
    np.testing.assert_allclose(got.background_gc, bg_gc)
    ks = scipy.stats.ks_2samp(peak_gc, bg_gc).statistic
    assert ks == pytest.approx(got.ks) and ks < 0.1
    # Unmatched (every candidate) would be far off: the peak set is GC-biased.
    fasta_all, _, _, everything = _sample(sparse, peaks=_high_gc, ratio=100.0, jitter=50)
    assert everything.candidates == len(everything.regions) > 3 * len(peaks)
    assert scipy.stats.ks_2samp(peak_gc, everything.background_gc).statistic > 0.3


def test_background_stays_away_from_peaks_blacklist_n_and_ends(sparse):
    fasta = pyfaidx.Fasta(sparse.fasta, as_raw=True)
    # Blacklist the first 100 kb of chr3 and a chunk of chr4.
    blacklist = window_rules.Blacklist([('chr3', 0, 100_000), ('chr4', 50_000, 60_000)])
    valid = splits.parse_chrom_spans('chr1', flag='valid_chroms')
    _, _, all_peaks, got = _sample(
        sparse, ratio=2.0, jitter=100, length=500, blacklist=blacklist, valid=valid
    )
    assert len(got.regions) == got.requested > 400
    j = 100
    by_chrom = {}
    for r in all_peaks:
        by_chrom.setdefault(r.chrom, []).append(r)
    for r in got.regions:
        assert r.background and r.end - r.start == 500 and r.task == -1
        assert r.split == ('valid' if r.chrom == 'chr1' else 'train')
        assert 0 <= r.start - j and r.end + j <= len(fasta[r.chrom])
        assert not blacklist.overlaps(r.chrom, r.start - j, r.end + j)
        assert not any(_stored_overlap(r, p, j) for p in by_chrom[r.chrom])
        stored = fasta[r.chrom][r.start - j : r.end + j].upper()
        assert sum(stored.count(b) for b in 'ACGT') >= 0.9 * len(stored)
    ids = [r.region_id for r in got.regions]
    assert len(set(ids)) == len(ids)
    assert [r.line for r in got.regions] == list(range(1, len(ids) + 1))
    # Background windows do not overlap each other either.
    ordered = sorted(got.regions, key=lambda r: (r.chrom, r.start))
    assert all(a.chrom != b.chrom or a.end + j <= b.start - j for a, b in zip(ordered, ordered[1:]))


def test_same_seed_same_regions_other_seed_other_regions(sparse):
    first = _sample(sparse, ratio=0.5, seed=7)[3].regions
    assert _sample(sparse, ratio=0.5, seed=7)[3].regions == first
    other = _sample(sparse, ratio=0.5, seed=8)[3].regions
    assert len(other) == len(first) and set(other) != set(first)


@pytest.mark.slow  # Simulates the demo data set (about 3 s).
def test_gc_match_on_the_demo_data(tmp_path):
    """The acceptance check: on the demo data (1000 bp windows, no jitter), the background's
    GC distribution matches the peaks' with a KS statistic below 0.1."""
    from bpnet_tfx.simulate import simulator as simulate

    demo = simulate.simulate(str(tmp_path / 'demo'))
    fasta, peaks, _, got = _sample(demo, ratio=0.05)
    assert len(got.regions) == got.requested == round(0.05 * len(peaks))
    bg_gc = [_gc(fasta[r.chrom][r.start : r.end]) for r in got.regions]
    peak_gc = [_gc(fasta[r.chrom][r.start : r.end]) for r in peaks]
    assert scipy.stats.ks_2samp(peak_gc, bg_gc).statistic < 0.1
