"""GC-matched background regions away from peaks (make_records --background_ratio).

The driver samples R x (peak windows) background windows before the pipeline runs; they then
flow through the same extraction and sharding as peaks, with KEY_IS_BACKGROUND = 1. Candidates
tile the chromosomes outside every peak's stored window and the blacklist
(`candidate_windows`); their GC fractions (`window_gc`: G + C over the ACGT bases of the input
window) are matched to the peaks' bin by bin (`sample_matched`), all from one seeded generator
over candidates in a fixed order, so a seed gives the same regions on every run; `ks_statistic`
measures the match. docs/records.md describes it for users. No Beam here.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

import numpy as np

from beam_jobs.records.regions import Region
from beam_jobs.records.splits import ChromSpan, assign_split

CHUNK_BP = 8_000_000  # FASTA bases read at once when tiling: about 8 MB and 4 arrays of it.
BIN_WIDTH = 0.01  # GC-fraction bin of the matching.

_ACGT = np.zeros(256, bool)
_GC = np.zeros(256, bool)
for _base in 'ACGTacgt':
    _ACGT[ord(_base)] = True
for _base in 'GCgc':
    _GC[ord(_base)] = True


@dataclasses.dataclass(frozen=True)
class Candidates:
    """Candidate windows of one chromosome; arrays of shape (n,), sorted by start.

    Attributes:
      chrom: chromosome name.
      starts: 0-based starts of the input windows (stored window: start - max_jitter).
      gc: GC fraction of each input window.
    """

    chrom: str
    starts: np.ndarray
    gc: np.ndarray


def _counts(
    fasta, chrom: str, starts: np.ndarray, ends: np.ndarray, chunk_bp: int
) -> tuple[np.ndarray, np.ndarray]:
    """(ACGT bases, GC bases) in each window [starts, ends) of `chrom`; int64 (n,) each.

    Windows must be sorted by start. Reads one FASTA slice per group of windows starting in
    the same `chunk_bp` block, so memory stays near `chunk_bp` whatever the chromosome size.
    """
    acgt = np.zeros(len(starts), np.int64)
    gc = np.zeros(len(starts), np.int64)
    if not len(starts):
        return acgt, gc
    block = starts // chunk_bp
    cuts = np.flatnonzero(np.diff(block)) + 1
    for lo_i, hi_i in zip(np.concatenate([[0], cuts]), np.concatenate([cuts, [len(starts)]])):
        lo, hi = int(starts[lo_i]), int(ends[lo_i:hi_i].max())
        raw = np.frombuffer(str(fasta[chrom][lo:hi]).encode('ascii', 'replace'), np.uint8)
        cum_acgt = np.concatenate([[0], np.cumsum(_ACGT[raw], dtype=np.int64)])
        cum_gc = np.concatenate([[0], np.cumsum(_GC[raw], dtype=np.int64)])
        a, b = starts[lo_i:hi_i] - lo, ends[lo_i:hi_i] - lo
        acgt[lo_i:hi_i] = cum_acgt[b] - cum_acgt[a]
        gc[lo_i:hi_i] = cum_gc[b] - cum_gc[a]
    return acgt, gc


def window_gc(
    fasta, chrom: str, starts: Sequence[int], ends: Sequence[int], *, chunk_bp: int = CHUNK_BP
) -> np.ndarray:
    """GC fraction (G + C over ACGT bases; 0 where there is none) of windows on `chrom`.

    Args:
      fasta: an open `pyfaidx.Fasta` (as_raw=True).
      chrom: chromosome.
      starts, ends: the windows, any order.

    Returns:
      float64 (n,), in the order given.
    """
    starts, ends = np.asarray(starts, np.int64), np.asarray(ends, np.int64)
    order = np.argsort(starts, kind='stable')
    acgt, gc = _counts(fasta, chrom, starts[order], ends[order], chunk_bp)
    out = np.empty(len(starts), np.float64)
    out[order] = gc / np.maximum(acgt, 1)
    return out


def _free_tiles(size: int, excluded: Sequence[tuple[int, int]], tile: int) -> np.ndarray:
    """Starts of back-to-back tiles of `tile` bp in [0, size) minus the excluded intervals.

    Each free gap is tiled from its left end; (n,) int64, sorted.
    """
    edges = []
    position = 0
    for start, end in sorted(excluded):
        if start > position:
            edges.append((position, min(start, size)))
        position = max(position, end)
    if position < size:
        edges.append((position, size))
    if not edges:
        return np.zeros(0, np.int64)
    gap_starts = np.array([s for s, _ in edges], np.int64)
    counts = np.array([(e - s) // tile for s, e in edges], np.int64)
    first = np.repeat(gap_starts, counts)
    index = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return first + index * tile


def candidate_windows(
    fasta,
    sizes: Mapping[str, int],
    excluded: Mapping[str, Sequence[tuple[int, int]]],
    *,
    sequence_length: int,
    max_jitter: int,
    max_n_fraction: float,
    chunk_bp: int = CHUNK_BP,
) -> list[Candidates]:
    """Candidate background windows, with their GC fractions.

    On each chromosome, the parts outside every excluded interval (every peak's stored window,
    jitter margin included, and every blacklist interval) are tiled from their left end with
    stored windows (sequence_length + 2 * max_jitter long) that touch but do not overlap; so no
    candidate shares a base with an excluded interval, none leaves its chromosome, and no two
    overlap. A candidate whose stored window holds more than `max_n_fraction` non-ACGT bases is
    left out (the extraction step's own rule, so the pipeline never rejects a background
    window). The FASTA is read in chunks of about `chunk_bp` bases as numpy bytes.

    Args:
      fasta: an open `pyfaidx.Fasta` (as_raw=True).
      sizes: {chromosome: length} of the chromosomes to tile, in the order to use.
      excluded: {chromosome: [(start, end)]} intervals no stored window may touch.
      sequence_length: input window length L.
      max_jitter: margin J; stored windows are L + 2J long.
      max_n_fraction: largest allowed fraction of non-ACGT bases in the stored window.
      chunk_bp: FASTA bases read at once.

    Returns:
      One `Candidates` per chromosome of `sizes`, in that order.
    """
    stored = sequence_length + 2 * max_jitter
    out = []
    for chrom, size in sizes.items():
        tiles = _free_tiles(size, excluded.get(chrom, ()), stored)
        acgt_stored, _ = _counts(fasta, chrom, tiles, tiles + stored, chunk_bp)
        acgt, gc = _counts(
            fasta, chrom, tiles + max_jitter, tiles + max_jitter + sequence_length, chunk_bp
        )
        ok = (1.0 - acgt_stored / stored <= max_n_fraction) & (acgt > 0)
        out.append(Candidates(chrom, tiles[ok] + max_jitter, gc[ok] / acgt[ok]))
    return out


def _bins(gc: np.ndarray, bin_width: float) -> np.ndarray:
    n_bins = int(round(1.0 / bin_width))
    return np.minimum((np.asarray(gc) / bin_width).astype(np.int64), n_bins - 1)


def _allocate(weights: np.ndarray, n: int) -> np.ndarray:
    """Integer counts summing to n in proportion to weights (largest remainders; ties: the
    lower index)."""
    exact = weights / weights.sum() * n
    out = np.floor(exact).astype(np.int64)
    remainders = exact - out
    order = np.lexsort((np.arange(len(weights)), -remainders))
    out[order[: n - out.sum()]] += 1
    return out


def sample_matched(
    peak_gc: np.ndarray,
    candidate_gc: np.ndarray,
    n: int,
    *,
    seed: int,
    bin_width: float = BIN_WIDTH,
) -> np.ndarray:
    """Indices into `candidate_gc` of n candidates whose GC follows the peaks'.

    Peak and candidate GC fractions go into bins of `bin_width`; the number wanted is spread
    over the bins in proportion to the peaks' histogram (largest remainders), each bin draws
    that many of its candidates without replacement, and a bin that runs short takes the rest
    from the nearest bins with candidates left (the lower bin first at equal distance). With
    fewer candidates than wanted, all are taken (a shortfall the driver reports).

    Args:
      peak_gc: (peaks,) GC fractions of the peak windows.
      candidate_gc: (candidates,) GC fractions, in a fixed order.
      n: how many to draw; all candidates when there are fewer.
      seed: seed of the `numpy.random.Generator`.
      bin_width: GC bin width.

    Returns:
      int64 (min(n, candidates),) sorted indices.
    """
    candidate_gc = np.asarray(candidate_gc, np.float64)
    n = min(int(n), len(candidate_gc))
    if n <= 0 or not len(peak_gc):
        return np.zeros(0, np.int64)
    n_bins = int(round(1.0 / bin_width))
    want = _allocate(np.bincount(_bins(peak_gc, bin_width), minlength=n_bins).astype(float), n)
    rng = np.random.default_rng(seed)
    cand_bins = _bins(candidate_gc, bin_width)
    pools = [rng.permutation(np.flatnonzero(cand_bins == b)) for b in range(n_bins)]
    taken = np.minimum(want, [len(p) for p in pools])
    for b in np.flatnonzero(want > taken):  # Short bins borrow from the nearest bins.
        short = want[b] - taken[b]
        for distance in range(1, n_bins):
            for other in (b - distance, b + distance):
                if 0 <= other < n_bins and short:
                    extra = min(short, len(pools[other]) - taken[other])
                    taken[other] += extra
                    short -= extra
            if not short:
                break
    chosen = np.concatenate([p[:k] for p, k in zip(pools, taken)])
    return np.sort(chosen.astype(np.int64))


def ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: max |F_a(x) - F_b(x)|; nan if one is empty."""
    a, b = np.sort(np.asarray(a, np.float64)), np.sort(np.asarray(b, np.float64))
    if not len(a) or not len(b):
        return float('nan')
    x = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, x, side='right') / len(a)
    cdf_b = np.searchsorted(b, x, side='right') / len(b)
    return float(np.abs(cdf_a - cdf_b).max())


@dataclasses.dataclass(frozen=True)
class BackgroundSample:
    """What `sample_background` drew.

    Attributes:
      regions: the background windows (Region.background True), sorted by (chrom, start).
      requested: how many were asked for.
      candidates: how many candidate windows there were.
      ks: KS statistic of the peaks' GC vs the background's (nan without background).
      peak_gc: (peaks,) GC fractions of the peak windows.
      background_gc: (len(regions),) GC fractions of the background windows.
    """

    regions: tuple[Region, ...]
    requested: int
    candidates: int
    ks: float
    peak_gc: np.ndarray
    background_gc: np.ndarray


def _excluded(
    all_peaks: Sequence[Region], sizes: Mapping[str, int], blacklist, max_jitter: int
) -> tuple[dict[str, int], dict[str, list[tuple[int, int]]]]:
    """(chromosomes to tile: {name: length}, {chromosome: intervals no candidate may touch}):
    every peak's stored window, and the blacklist, on the chromosomes that hold peaks."""
    excluded: dict[str, list[tuple[int, int]]] = {}
    for r in all_peaks:
        excluded.setdefault(r.chrom, []).append((r.start - max_jitter, r.end + max_jitter))
    chroms = {c: s for c, s in sizes.items() if c in excluded}
    if blacklist is not None:
        for chrom in chroms:
            excluded[chrom] += list(zip(*blacklist.intervals(chrom)))
    return chroms, excluded


def _peak_gc(fasta, peaks: Sequence[Region], chunk_bp: int) -> np.ndarray:
    """GC fractions of the peak windows, chromosome by chromosome (sorted by name)."""
    by_chrom: dict[str, list[Region]] = {}
    for r in peaks:
        by_chrom.setdefault(r.chrom, []).append(r)
    return np.concatenate(
        [np.zeros(0)]
        + [
            window_gc(fasta, chrom, [r.start for r in rs], [r.end for r in rs], chunk_bp=chunk_bp)
            for chrom, rs in sorted(by_chrom.items())
        ]
    )


def _background_regions(
    candidates: Sequence,
    chosen: np.ndarray,
    sequence_length: int,
    valid: Sequence[ChromSpan],
    test: Sequence[ChromSpan],
) -> tuple[Region, ...]:
    """The chosen candidates (indices into all chromosomes' candidates in turn) as background
    Regions, numbered from 1, each in the split of its centre."""
    names = np.concatenate(
        [np.zeros(0, np.int64)] + [np.full(len(c.starts), i) for i, c in enumerate(candidates)]
    ).astype(np.int64)
    starts = np.concatenate([np.zeros(0, np.int64)] + [c.starts for c in candidates])
    regions = []
    for k, i in enumerate(chosen, start=1):
        chrom, start = candidates[names[i]].chrom, int(starts[i])
        centre = start + sequence_length // 2
        regions.append(
            Region(
                chrom,
                start,
                start + sequence_length,
                assign_split(chrom, centre, valid, test),
                k,
                -1,
                True,
            )
        )
    return tuple(regions)


def sample_background(
    fasta,
    peaks: Sequence[Region],
    all_peaks: Sequence[Region],
    sizes: Mapping[str, int],
    *,
    ratio: float,
    seed: int,
    sequence_length: int,
    max_jitter: int,
    max_n_fraction: float,
    blacklist=None,
    valid: Sequence[ChromSpan] = (),
    test: Sequence[ChromSpan] = (),
    chunk_bp: int = CHUNK_BP,
) -> BackgroundSample:
    """Samples round(ratio x len(peaks)) GC-matched background windows away from peaks.

    Args:
      fasta: an open `pyfaidx.Fasta` (as_raw=True).
      peaks: the peak windows to match (those going into the records).
      all_peaks: every peak read (dropped ones too): no background stored window touches one
        of their stored windows. Their chromosomes are the ones tiled.
      sizes: {chromosome: length} of the FASTA, in FASTA order.
      ratio: background windows per peak window.
      seed: seed of the sampling.
      sequence_length: input window length L.
      max_jitter: margin J.
      max_n_fraction: the extraction step's N rule, applied to candidates.
      blacklist: optional `window_rules.Blacklist`.
      valid, test: split spans; a background window goes to the split containing its centre.
      chunk_bp: FASTA bases read at once.

    Returns:
      A BackgroundSample.
    """
    requested = int(round(ratio * len(peaks)))
    chroms, excluded = _excluded(all_peaks, sizes, blacklist, max_jitter)
    peak_gc = _peak_gc(fasta, peaks, chunk_bp)
    candidates = candidate_windows(
        fasta,
        chroms,
        excluded,
        sequence_length=sequence_length,
        max_jitter=max_jitter,
        max_n_fraction=max_n_fraction,
        chunk_bp=chunk_bp,
    )
    gc = np.concatenate([np.zeros(0)] + [c.gc for c in candidates])
    chosen = sample_matched(peak_gc, gc, requested, seed=seed)
    regions = _background_regions(candidates, chosen, sequence_length, valid, test)
    return BackgroundSample(
        regions,
        requested,
        len(gc),
        ks_statistic(peak_gc, gc[chosen]) if len(chosen) else float('nan'),
        peak_gc,
        gc[chosen],
    )
