"""Tests of window arithmetic: centring, shifting inside a chromosome, tiling, merging,
stitching."""

from __future__ import annotations

import numpy as np
import pytest

from bpnet_tfx.genome import windows


def test_centred_window_and_window_inside():
    assert windows.centred_window(40, 60, 30) == (35, 65)
    assert windows.centred_window(50, 51, 4) == (48, 52)
    assert windows.window_inside(0, 4, 30, 100) == (0, 30)
    assert windows.window_inside(95, 100, 30, 100) == (70, 100)


@pytest.mark.parametrize(
    'start, end, length, starts',
    [(0, 10, 10, [0]), (0, 25, 10, [0, 10, 15]), (5, 35, 10, [5, 15, 25])],
)
def test_tile_windows_end_exactly_at_the_region_end(start, end, length, starts):
    assert windows.tile_windows(start, end, length) == starts
    with pytest.raises(ValueError, match='shorter than one'):
        windows.tile_windows(0, 9, 10)


def test_merge_regions_sorts_in_chromosome_order_and_merges_touching():
    merged = windows.merge_regions(
        [('b', 5, 10), ('a', 20, 30), ('a', 0, 10), ('a', 10, 12), ('b', 0, 3)], ['b', 'a']
    )
    assert merged == [('b', 0, 3), ('b', 5, 10), ('a', 0, 12), ('a', 20, 30)]


def test_stitch_averages_overlaps_and_refuses_gaps():
    values = np.array([[1.0, 1.0, 1.0, 1.0], [3.0, 3.0, 3.0, 3.0]])
    np.testing.assert_array_equal(windows.stitch(values, [0, 2], 0, 6), [1, 1, 2, 2, 3, 3])
    with pytest.raises(ValueError, match='uncovered'):
        windows.stitch(values, [0, 3], 0, 8)
