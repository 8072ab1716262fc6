"""One chromosome of the demo simulator: random sequence with N stretches, peaks with planted
motif instances, and the expected (noise-free) read intensities of every task and the control.

`simulate.py` draws each chromosome with `simulate_chrom` and writes the files; the random
stream is consumed in a fixed order, so a config always gives the same data.
"""

from __future__ import annotations

import bisect
import dataclasses
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # Annotations only: simulate.py imports this module.
    from bpnet_tfx.simulate import MotifSpec, SimulationConfig

BASE_LETTERS = np.frombuffer(b'ACGTN', dtype=np.uint8)
N_CODE = 4


def _genome_codes(rng: np.random.Generator, size: int, config: SimulationConfig) -> np.ndarray:
    """Random bases as codes 0..3 (ACGT) with GC content constant within blocks."""
    n_blocks = -(-size // config.gc_block)
    gc = np.clip(rng.normal(config.gc_mean, config.gc_sd, n_blocks), 0.25, 0.65)
    gc = np.repeat(gc, config.gc_block)[:size]
    u = rng.random(size)
    # A below (1-gc)/2, C below 1/2, G below (1+gc)/2, else T.
    return ((u >= (1.0 - gc) / 2).astype(np.uint8) + (u >= 0.5) + (u >= (1.0 + gc) / 2)).astype(
        np.uint8
    )


def _n_stretches(
    rng: np.random.Generator, chrom: str, size: int, config: SimulationConfig
) -> list[tuple[int, int]]:
    """Non-overlapping (start, end) N stretches, away from the chromosome ends."""
    if chrom not in config.n_stretch_chroms:
        return []
    low, high = config.n_stretch_length
    edge = config.peak_end_margin
    if size - 2 * edge < config.n_stretches_per_chrom * (high + 1000):
        raise ValueError(f'{chrom} ({size} bp) is too short for its N stretches.')
    stretches: list[tuple[int, int]] = []
    while len(stretches) < config.n_stretches_per_chrom:
        length = int(rng.integers(low, high + 1))
        start = int(rng.integers(edge, size - edge - length))
        # A gap of 1 kb keeps room for sequence between stretches.
        if all(start >= e + 1000 or start + length + 1000 <= s for s, e in stretches):
            stretches.append((start, start + length))
    return sorted(stretches)


def _place_anchors(
    rng: np.random.Generator, chrom: str, allowed: np.ndarray, count: int, spacing: int
) -> list[int]:
    """Draws `count` sorted positions from `allowed`, pairwise at least `spacing` apart."""
    pool = np.flatnonzero(allowed)
    if count and pool.size == 0:
        raise ValueError(f'No room for peaks on {chrom}.')
    chosen: list[int] = []
    for _ in range(50):
        if len(chosen) == count:
            break
        for c in rng.choice(pool, size=4 * count).tolist():
            i = bisect.bisect_left(chosen, c)
            if (i == 0 or c - chosen[i - 1] >= spacing) and (
                i == len(chosen) or chosen[i] - c >= spacing
            ):
                chosen.insert(i, c)
                if len(chosen) == count:
                    break
    if len(chosen) < count:
        raise ValueError(
            f'Could not place {count} peaks {spacing} bp apart on {chrom}; lower '
            'peaks_per_mb or min_peak_spacing.'
        )
    return chosen


def _add_gaussians(
    track: np.ndarray, centres: np.ndarray, amplitudes: np.ndarray, sd: float, radius: int
) -> None:
    """Adds, in place, discrete Gaussians each summing to its amplitude.

    A Gaussian covers the integer positions within `radius` of its (possibly half-integer)
    centre, a set symmetric about the centre, so mirrored centres give mirrored values.
    """
    if centres.size == 0:
        return
    lo = np.ceil(centres - radius).astype(np.int64)
    hi = np.floor(centres + radius).astype(np.int64)
    x = lo[:, None] + np.arange(2 * radius + 1)[None, :]
    valid = x <= hi[:, None]
    w = np.where(valid, np.exp(-0.5 * ((x - centres[:, None]) / sd) ** 2), 0.0)
    w *= (amplitudes / w.sum(axis=1))[:, None]
    inside = valid & (x >= 0) & (x < track.size)
    track += np.bincount(x[inside], weights=w[inside], minlength=track.size)


def _add_footprints(
    pos: np.ndarray,
    neg: np.ndarray,
    centres: np.ndarray,
    forward: np.ndarray,
    amplitudes: np.ndarray,
    plus_offsets: np.ndarray,
    minus_offsets: np.ndarray,
    sd: float,
) -> None:
    """Adds instance footprints to the plus and minus tracks, in place.

    Forward instances peak at centre - plus_offset (plus) and centre + minus_offset (minus);
    reverse ones at centre - minus_offset (plus) and centre + plus_offset (minus), the mirror
    image that reverse-complementing a window implies.
    """
    radius = int(np.ceil(4 * sd))
    plus_at = np.where(forward, centres - plus_offsets, centres - minus_offsets)
    minus_at = np.where(forward, centres + minus_offsets, centres + plus_offsets)
    _add_gaussians(pos, plus_at, amplitudes, sd, radius)
    _add_gaussians(neg, minus_at, amplitudes, sd, radius)


def _place_instances(
    rng: np.random.Generator, anchor: int, lengths: list[int], radius: int
) -> list[int]:
    """Start positions of non-overlapping instances with centres within `radius` of `anchor`."""
    for _ in range(1000):
        starts = [
            anchor + int(o) - (m - 1) // 2
            for o, m in zip(rng.integers(-radius, radius + 1, size=len(lengths)), lengths)
        ]
        spans = sorted(zip(starts, lengths))
        if all(s2 >= s1 + m1 + 2 for (s1, m1), (s2, _) in zip(spans, spans[1:])):
            return starts
    raise ValueError('Could not place motif instances apart; raise instance_radius.')


@dataclasses.dataclass
class Chrom:
    """One simulated chromosome, in memory."""

    codes: np.ndarray  # (size,) uint8, 0..3 = ACGT, 4 = N.
    summits: list[int]
    scores: list[int]
    # (start, end, strand, motif, task, mismatches, peak index on this chromosome).
    sites: list[tuple[int, int, str, str, str, int, int]]
    expected: dict[str, tuple[np.ndarray, np.ndarray]]  # task -> float32 (plus, minus).
    control: np.ndarray | None = None  # float32 expected control reads per strand.


def simulate_chrom(
    rng: np.random.Generator, chrom: str, size: int, config: SimulationConfig
) -> Chrom:
    """Draws one chromosome: sequence, peaks, planted instances and expected tracks."""
    codes = _genome_codes(rng, size, config)
    stretches = _n_stretches(rng, chrom, size, config)
    allowed = np.zeros(size, dtype=bool)
    allowed[config.peak_end_margin : size - config.peak_end_margin] = True
    for s, e in stretches:
        codes[s:e] = N_CODE
        allowed[max(0, s - config.n_stretch_margin) : e + config.n_stretch_margin] = False
    count = int(round(size * config.peaks_per_mb / 1e6))
    anchors = _place_anchors(rng, chrom, allowed, count, config.min_peak_spacing)

    peaks = _draw_peaks(rng, codes, anchors, config)
    expected, control = _expected_tracks(rng, codes, peaks, config)
    return Chrom(
        codes=codes,
        summits=peaks.summits,
        scores=peaks.scores,
        sites=peaks.sites,
        expected=expected,
        control=control,
    )


@dataclasses.dataclass
class _Peaks:
    """What `_draw_peaks` planted: per peak its summit and score; every site; and per task the
    footprint rows (centre, forward, amplitude, plus/minus offsets) and broad components."""

    summits: list[int]
    scores: list[int]
    sites: list[tuple[int, int, str, str, str, int, int]]
    inst: dict[str, list[list[float]]]
    broad: dict[str, list[tuple[float, float]]]


def _draw_peaks(
    rng: np.random.Generator, codes: np.ndarray, anchors: list[int], config: SimulationConfig
) -> _Peaks:
    """Plants each peak's motif instances into `codes` (in place) and draws their strengths."""
    n_tasks = len(config.tasks)
    low, high = config.instances_per_peak
    # Per task: instance centre, forward?, amplitude, plus/minus offsets; and broad components.
    inst: dict[str, list[list[float]]] = {t.name: [] for t in config.tasks}
    broad: dict[str, list[tuple[float, float]]] = {t.name: [] for t in config.tasks}
    summits, scores, sites = [], [], []
    sigma = config.peak_factor_sigma
    for peak, anchor in enumerate(anchors):
        owner = int(rng.integers(n_tasks)) if n_tasks > 1 else 0
        chosen: list[tuple[int, MotifSpec]] = []  # (task index, motif)
        for t, task in enumerate(config.tasks):
            if t == owner:
                n = int(rng.integers(low, high + 1))
            else:
                n = int(rng.random() < config.cobinding_probability)
            for k in range(n):
                motif = task.motifs[0] if k == 0 else task.motifs[rng.integers(len(task.motifs))]
                chosen.append((t, motif))
        starts = _place_instances(
            rng, anchor, [len(m.consensus) for _, m in chosen], config.instance_radius
        )
        forward = rng.random(len(chosen)) < 0.5
        weak = rng.random(len(chosen)) < config.weak_site_probability
        factors = rng.lognormal(-0.5 * sigma**2, sigma, size=n_tasks)
        centres, peak_amplitude = [], np.zeros(n_tasks)
        for (t, motif), start, fwd, is_weak in zip(chosen, starts, forward, weak):
            m = len(motif.consensus)
            site = np.frombuffer(motif.consensus.encode(), dtype=np.uint8)
            site = np.searchsorted(BASE_LETTERS[:4], site).astype(np.uint8)
            if is_weak:
                at = int(rng.integers(m))
                site[at] = (site[at] + rng.integers(1, 4)) % 4
            codes[start : start + m] = site if fwd else 3 - site[::-1]
            centre = start + (m - 1) / 2
            amplitude = motif.strength * factors[t] * (config.weak_site_factor if is_weak else 1.0)
            peak_amplitude[t] += amplitude
            centres.append(centre)
            task = config.tasks[t].name
            inst[task].append(
                [centre, float(fwd), amplitude, motif.plus_offset, motif.minus_offset]
            )
            sites.append(
                (start, start + m, '+' if fwd else '-', motif.name, task, int(is_weak), peak)
            )
        jitter = config.summit_jitter_sd * np.clip(rng.normal(), -3.0, 3.0)
        summit = int(np.rint(np.mean(centres) + jitter))
        summits.append(summit)
        scores.append(min(1000, int(round(peak_amplitude.sum()))))
        for t, task in enumerate(config.tasks):
            if peak_amplitude[t] > 0:
                broad_reads = (
                    peak_amplitude[t] * config.broad_fraction / (1.0 - config.broad_fraction)
                )
                broad[task.name].append((summit, broad_reads))

    return _Peaks(summits, scores, sites, inst, broad)


def _expected_tracks(
    rng: np.random.Generator, codes: np.ndarray, peaks: _Peaks, config: SimulationConfig
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], np.ndarray | None]:
    """Per task the expected (plus, minus) reads, and the expected control reads or None."""
    size = codes.size
    inst, broad = peaks.inst, peaks.broad
    expected = {}
    n_mask = codes == N_CODE
    bias, control = None, None
    if config.control_rate > 0:  # Drawn only then, so configs without one keep their stream.
        n_blocks = -(-size // config.control_block)
        factors = rng.lognormal(-0.5 * config.control_sigma**2, config.control_sigma, n_blocks)
        bias = np.repeat(factors, config.control_block)[:size]
        control = config.control_rate * bias
        control[n_mask] = 0.0
        control = control.astype(np.float32)
    for task in config.tasks:
        pos = np.full(size, config.background_rate, dtype=np.float64)
        neg = pos.copy()
        # Footprints, then the broad component (this order keeps the default data's exact
        # floats); with a control, background and broad signal follow the bias field and the
        # footprints do not.
        footprint_pos, footprint_neg = (
            (pos, neg) if bias is None else (np.zeros(size), np.zeros(size))
        )
        rows = np.array(inst[task.name], dtype=np.float64).reshape(-1, 5)
        _add_footprints(
            footprint_pos,
            footprint_neg,
            rows[:, 0],
            rows[:, 1] > 0.5,
            rows[:, 2],
            rows[:, 3],
            rows[:, 4],
            config.footprint_sd,
        )
        if broad[task.name] and config.broad_fraction > 0:
            b = np.array(broad[task.name], dtype=np.float64)
            radius = int(np.ceil(4 * config.broad_sd))
            for track in (pos, neg):
                _add_gaussians(track, b[:, 0], b[:, 1], config.broad_sd, radius)
        if bias is not None:
            pos = pos * bias + footprint_pos
            neg = neg * bias + footprint_neg
        # No read maps inside an assembly gap.
        pos[n_mask] = 0.0
        neg[n_mask] = 0.0
        expected[task.name] = (pos.astype(np.float32), neg.astype(np.float32))
    return expected, control
