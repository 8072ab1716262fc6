"""Windows on a genome: centring a window on an interval, tiling a region with windows,
merging intervals, and averaging window values back into per-base values.

Coordinates are 0-based and half-open; a window is `length` bp.
"""

from __future__ import annotations

import numpy as np


def centred_window(start: int, end: int, length: int) -> tuple[int, int]:
    """The window of `length` bp centred on the midpoint of [start, end)."""
    centre = (start + end) // 2
    return centre - length // 2, centre - length // 2 + length


def window_inside(start: int, end: int, length: int, size: int) -> tuple[int, int]:
    """The `length`-bp window centred on [start, end), shifted inside a chromosome of `size`
    bp where it would run past an end (`size` >= `length`)."""
    s, e = centred_window(start, end, length)
    shift = max(0, -s) - max(0, e - size)
    return s + shift, e + shift


def tile_windows(start: int, end: int, length: int) -> list[int]:
    """Starts of the `length`-bp windows tiling [start, end) (which is at least `length` long).

    Windows start at `start` every `length` bp; the last one ends exactly at `end`, so it
    overlaps the one before it unless the region's length is a multiple of `length`.
    """
    if end - start < length:
        raise ValueError(f'[{start}, {end}) is shorter than one {length}-bp window')
    starts = list(range(start, end - length + 1, length))
    if starts[-1] + length < end:
        starts.append(end - length)
    return starts


def stitch(values: np.ndarray, starts: list[int], start: int, end: int) -> np.ndarray:
    """Per-base mean of window values (windows, length, ...) placed at `starts` over [start, end).

    Raises:
      ValueError: a base of [start, end) no window covers.
    """
    length = values.shape[1]
    total = np.zeros((end - start, *values.shape[2:]), np.float64)
    cover = np.zeros(end - start, np.int64)
    for value, w in zip(values, starts):
        total[w - start : w - start + length] += value
        cover[w - start : w - start + length] += 1
    if (cover == 0).any():
        raise ValueError('the windows leave bases of the region uncovered')
    return total / cover.reshape(-1, *([1] * (total.ndim - 1)))


def merge_regions(
    intervals: list[tuple[str, int, int]], chrom_order: list[str]
) -> list[tuple[str, int, int]]:
    """Sorts intervals by (chromosome in `chrom_order`, start) and merges overlapping or
    adjacent ones."""
    rank = {c: i for i, c in enumerate(chrom_order)}
    merged: list[list] = []
    for chrom, start, end in sorted(intervals, key=lambda x: (rank[x[0]], x[1], x[2])):
        if merged and merged[-1][0] == chrom and start <= merged[-1][2]:
            merged[-1][2] = max(merged[-1][2], end)
        else:
            merged.append([chrom, start, end])
    return [tuple(m) for m in merged]
