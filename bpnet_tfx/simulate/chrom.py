"""One chromosome of the demo simulator: random sequence with N stretches, peaks with planted
motif instances, and the expected (noise-free) read intensities of every task and the control,
both as drawn (with each peak's lognormal factor and the control's bias field) and as the
sequence alone determines them (those factors at their mean, 1).

`simulator.py` draws each chromosome with `simulate_chrom` and writes the files; the random
stream is consumed in a fixed order, so a config always gives the same data.
"""

from __future__ import annotations

import bisect
import dataclasses
from typing import TYPE_CHECKING

import numpy as np

from bpnet_tfx.simulate import tracks

if TYPE_CHECKING:  # Annotations only.
    from bpnet_tfx.simulate.config import MotifSpec, SimulationConfig

BASE_LETTERS = np.frombuffer(b'ACGTN', dtype=np.uint8)
N_CODE = tracks.N_CODE


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
    # (start, end, strand, motif, task, mismatches, peak index on this chromosome, boost).
    sites: list[tuple[int, int, str, str, str, int, int, float]]
    expected: dict[str, tuple[np.ndarray, np.ndarray]]  # task -> float32 (plus, minus).
    # task -> float32 (plus, minus): the expected reads with every non-sequence factor at 1.
    sequence_expected: dict[str, tuple[np.ndarray, np.ndarray]]
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
    expected, sequence_expected, control = _expected_tracks(rng, codes, peaks, config)
    return Chrom(
        codes=codes,
        summits=peaks.summits,
        scores=peaks.scores,
        sites=peaks.sites,
        expected=expected,
        sequence_expected=sequence_expected,
        control=control,
    )


@dataclasses.dataclass
class _Peaks:
    """What `_draw_peaks` planted: per peak its summit and score; every site; and per task the
    footprint rows (centre, forward, amplitude, plus/minus offsets, sequence amplitude) and
    broad components (summit, reads, sequence reads). A sequence amplitude is the amplitude
    with the peak's lognormal factor at its mean (1)."""

    summits: list[int]
    scores: list[int]
    sites: list[tuple[int, int, str, str, str, int, int, float]]
    inst: dict[str, list[list[float]]]
    broad: dict[str, list[tuple[float, float, float]]]


def cooperative_boosts(
    names: list[str], centres: np.ndarray, config: SimulationConfig
) -> np.ndarray:
    """Per instance of one peak, the strength factor of the cooperative rule.

    An instance of one motif of `config.cooperative_motifs` whose centre lies within
    `config.cooperative_distance` (inclusive, bp between centres) of an instance of the other
    one (or of another instance of the same motif, when both names are the same) gets
    `config.cooperative_boost`; every other instance gets 1. Tasks do not matter: two
    factors of different tasks cooperate as well.

    Args:
      names: motif name of each instance.
      centres: (instances,) motif centres in bp.
      config: the rule's parameters.

    Returns:
      (instances,) float64 factors, `cooperative_boost` or 1.
    """
    boosts = np.ones(len(names))
    if not config.cooperative_motifs:
        return boosts
    first, second = config.cooperative_motifs
    low, high = config.cooperative_distance
    centres = np.asarray(centres, np.float64)
    for i, name in enumerate(names):
        if name not in (first, second):
            continue
        partner = second if name == first else first
        for j, other in enumerate(names):
            if j != i and other == partner and low <= abs(centres[j] - centres[i]) <= high:
                boosts[i] = config.cooperative_boost
                break
    return boosts


def _choose_motifs(
    rng: np.random.Generator, config: SimulationConfig
) -> list[tuple[int, MotifSpec]]:
    """(task index, motif) of each instance of one peak: 1-3 of its owner task, the first
    always the task's first motif, and one of each other task with cobinding_probability."""
    n_tasks = len(config.tasks)
    low, high = config.instances_per_peak
    owner = int(rng.integers(n_tasks)) if n_tasks > 1 else 0
    chosen: list[tuple[int, MotifSpec]] = []
    for t, task in enumerate(config.tasks):
        if t == owner:
            n = int(rng.integers(low, high + 1))
        else:
            n = int(rng.random() < config.cobinding_probability)
        for k in range(n):
            first = k == 0 and not config.any_first_motif
            motif = task.motifs[0] if first else task.motifs[rng.integers(len(task.motifs))]
            chosen.append((t, motif))
    return chosen


def _plant(
    rng: np.random.Generator,
    codes: np.ndarray,
    motif: MotifSpec,
    start: int,
    forward: bool,
    weak: bool,
) -> None:
    """Writes one instance into `codes`, with one random mismatch when `weak`."""
    m = len(motif.consensus)
    site = np.frombuffer(motif.consensus.encode(), dtype=np.uint8)
    site = np.searchsorted(BASE_LETTERS[:4], site).astype(np.uint8)
    if weak:
        at = int(rng.integers(m))
        site[at] = (site[at] + rng.integers(1, 4)) % 4
    codes[start : start + m] = site if forward else 3 - site[::-1]


def _plant_repressor(
    rng: np.random.Generator, codes: np.ndarray, config: SimulationConfig, start: int, peak: int
) -> tuple[int, int, str, str, str, int, int, float]:
    """Writes a peak's repressor instance (random orientation, exact) into `codes`; returns its
    site row, task '.' (it acts on every task) and the repressor factor as its boost."""
    motif = config.repressor
    forward = bool(rng.random() < 0.5)
    _plant(rng, codes, motif, start, forward, False)
    end = start + len(motif.consensus)
    return (start, end, '+' if forward else '-', motif.name, '.', 0, peak, config.repressor_factor)


def _plant_peak(
    rng: np.random.Generator,
    codes: np.ndarray,
    peak: int,
    anchor: int,
    config: SimulationConfig,
    inst: dict[str, list[list[float]]],
    sites: list[tuple],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Plants one peak's motif instances into `codes`, appending them to `inst` and `sites`;
    returns (sequence amplitude per task, the peak's lognormal factor per task, instance
    centres)."""
    n_tasks = len(config.tasks)
    sigma = config.peak_factor_sigma
    chosen = _choose_motifs(rng, config)
    lengths = [len(m.consensus) for _, m in chosen]
    # Drawn only with a repressor, so configs without one keep their random stream.
    repressed = config.repressor is not None and rng.random() < config.repressor_probability
    extra = [len(config.repressor.consensus)] if repressed else []
    starts = _place_instances(rng, anchor, lengths + extra, config.instance_radius)
    if repressed:
        sites.append(_plant_repressor(rng, codes, config, starts.pop(), peak))
    forward = rng.random(len(chosen)) < 0.5
    weak = rng.random(len(chosen)) < config.weak_site_probability
    factors = rng.lognormal(-0.5 * sigma**2, sigma, size=n_tasks)
    centres = np.array([s + (m - 1) / 2 for s, m in zip(starts, lengths)])
    boosts = cooperative_boosts([m.name for _, m in chosen], centres, config)
    sequence_amplitude = np.zeros(n_tasks)
    for (t, motif), start, centre, fwd, is_weak, boost in zip(
        chosen, starts, centres, forward, weak, boosts
    ):
        _plant(rng, codes, motif, start, bool(fwd), bool(is_weak))
        level = motif.strength * boost * (config.weak_site_factor if is_weak else 1.0)
        level *= config.repressor_factor if repressed else 1.0
        sequence_amplitude[t] += level
        task = config.tasks[t].name
        inst[task].append(
            [
                centre,
                float(fwd),
                level * factors[t],
                motif.plus_offset,
                motif.minus_offset,
                level,
            ]
        )
        sites.append(
            (
                start,
                start + len(motif.consensus),
                '+' if fwd else '-',
                motif.name,
                task,
                int(is_weak),
                peak,
                float(boost),
            )
        )
    return sequence_amplitude, factors, centres


def _draw_peaks(
    rng: np.random.Generator, codes: np.ndarray, anchors: list[int], config: SimulationConfig
) -> _Peaks:
    """Plants each peak's motif instances into `codes` (in place) and draws their strengths.

    An instance's sequence amplitude is its motif's strength times the weak-site factor (one
    mismatch) and its cooperative boost; its amplitude multiplies that by the peak's lognormal
    factor for its task.
    """
    inst: dict[str, list[list[float]]] = {t.name: [] for t in config.tasks}
    broad: dict[str, list[tuple[float, float, float]]] = {t.name: [] for t in config.tasks}
    summits, scores, sites = [], [], []
    broad_share = config.broad_fraction / (1.0 - config.broad_fraction)
    for peak, anchor in enumerate(anchors):
        sequence_amplitude, factors, centres = _plant_peak(
            rng, codes, peak, anchor, config, inst, sites
        )
        jitter = config.summit_jitter_sd * np.clip(rng.normal(), -3.0, 3.0)
        summit = int(np.rint(np.mean(centres) + jitter))
        summits.append(summit)
        scores.append(min(1000, int(round(float((sequence_amplitude * factors).sum())))))
        for t, task in enumerate(config.tasks):
            if sequence_amplitude[t] > 0:
                reads = sequence_amplitude[t] * broad_share
                broad[task.name].append((summit, reads * factors[t], reads))
    return _Peaks(summits, scores, sites, inst, broad)


_Tracks = dict[str, tuple[np.ndarray, np.ndarray]]


def _expected_tracks(
    rng: np.random.Generator, codes: np.ndarray, peaks: _Peaks, config: SimulationConfig
) -> tuple[_Tracks, _Tracks, np.ndarray | None]:
    """Per task the expected (plus, minus) reads as drawn and as the sequence determines them
    (lognormal factors and bias field at their mean, 1), and the expected control reads or
    None; float32."""
    size = codes.size
    n_mask = codes == N_CODE
    bias, control = None, None
    if config.control_rate > 0:  # Drawn only then, so configs without one keep their stream.
        n_blocks = -(-size // config.control_block)
        factors = rng.lognormal(-0.5 * config.control_sigma**2, config.control_sigma, n_blocks)
        bias = np.repeat(factors, config.control_block)[:size]
        control = config.control_rate * bias
        control[n_mask] = 0.0
        control = control.astype(np.float32)
    expected, sequence_expected = {}, {}
    background = tracks.gc_background(codes, config)
    for task in config.tasks:
        rows = np.array(peaks.inst[task.name], dtype=np.float64).reshape(-1, 6)
        broad = np.array(peaks.broad[task.name], dtype=np.float64).reshape(-1, 3)
        for out, sequence in ((expected, False), (sequence_expected, True)):
            known = bias if not sequence or config.bound_with_control else None
            pos, neg = tracks.task_tracks(size, rows, broad, config, known, sequence, background)
            # No read maps inside an assembly gap.
            pos[n_mask] = 0.0
            neg[n_mask] = 0.0
            out[task.name] = (pos.astype(np.float32), neg.astype(np.float32))
    return expected, sequence_expected, control
