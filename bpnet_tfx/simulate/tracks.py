"""Expected read intensities of one simulated chromosome's track: discrete Gaussian
footprints of motif instances on both strands, broad components, and the background (flat,
or GC-dependent with `gc_background`). `chrom.py` places the peaks and calls these.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # Annotations only.
    from bpnet_tfx.simulate.config import SimulationConfig

N_CODE = 4  # The code of N in a chromosome's base codes (A, C, G, T, N: 0-4).


def add_gaussians(
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


def add_footprints(
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
    add_gaussians(pos, plus_at, amplitudes, sd, radius)
    add_gaussians(neg, minus_at, amplitudes, sd, radius)


def task_tracks(
    size: int,
    rows: np.ndarray,
    broad: np.ndarray,
    config: SimulationConfig,
    bias: np.ndarray | None,
    sequence: bool,
    background: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One task's expected (plus, minus) reads, float64, before N masking.

    Args:
      size: chromosome length.
      rows: (instances, 6) footprint rows of chrom's `_Peaks.inst`.
      broad: (peaks, 3) broad components of chrom's `_Peaks.broad`.
      config: the simulation.
      bias: the control's bias field, or None (no control, or its mean, 1).
      sequence: use the sequence amplitudes (lognormal factors at 1) instead of the drawn ones.
      background: the background per base (`gc_background`), or None for `background_rate`.
    """
    pos = np.full(size, config.background_rate, dtype=np.float64)
    if background is not None:
        pos = background.copy()
    neg = pos.copy()
    # With a control, background and broad signal follow the bias field and the footprints
    # do not.
    footprint_pos, footprint_neg = (pos, neg) if bias is None else (np.zeros(size), np.zeros(size))
    add_footprints(
        footprint_pos,
        footprint_neg,
        rows[:, 0],
        rows[:, 1] > 0.5,
        rows[:, 5 if sequence else 2],
        rows[:, 3],
        rows[:, 4],
        config.footprint_sd,
    )
    if broad.size and config.broad_fraction > 0:
        radius = int(np.ceil(4 * config.broad_sd))
        for track in (pos, neg):
            add_gaussians(
                track, broad[:, 0], broad[:, 2 if sequence else 1], config.broad_sd, radius
            )
    if bias is not None:
        pos = pos * bias + footprint_pos
        neg = neg * bias + footprint_neg
    return pos, neg


def gc_background(codes: np.ndarray, config: SimulationConfig) -> np.ndarray | None:
    """The GC-dependent background per base (float64), or None without one.

    `background_rate * exp(gc_background_slope * (gc - gc_mean))`, gc the GC fraction of the
    non-N bases among the `gc_background_window` bp centred on each base (gc_mean where all
    are N).
    """
    if not config.gc_background_slope:
        return None
    half = config.gc_background_window // 2
    lo = np.clip(np.arange(codes.size) - half, 0, codes.size)
    hi = np.clip(np.arange(codes.size) + half + 1, 0, codes.size)

    def window_sums(mask: np.ndarray) -> np.ndarray:
        total = np.concatenate([[0], np.cumsum(mask, dtype=np.int64)])
        return (total[hi] - total[lo]).astype(np.float64)

    n = window_sums(codes != N_CODE)
    gc = window_sums((codes == 1) | (codes == 2))
    fraction = np.where(n > 0, gc / np.maximum(n, 1.0), config.gc_mean)
    return config.background_rate * np.exp(config.gc_background_slope * (fraction - config.gc_mean))
