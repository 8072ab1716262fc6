"""Tests of the contrib job's scoring loop helpers: windows per call, shard sizes, and
references that do not depend on the batching."""

from __future__ import annotations

import numpy as np
import pytest

from bpnet_tfx.attribution import shuffle, window_scoring
from bpnet_tfx.attribution.output import Window


@pytest.mark.parametrize(
    'method, rc, expected',
    [('ig', False, 11), ('deepshap', False, 10), ('ism', False, 2), ('deepshap', True, 5)],
)
def test_windows_per_call_fill_the_batch(method, rc, expected):
    settings = window_scoring.Settings(method, 9, 20, 100, 0, rc)
    # ig: 100 // 9 shuffles; deepshap: 100 // (1 + 9), halved with the reverse complement;
    # ism: 100 // (3 x 16 mutants).
    assert settings.windows_per_call(16) == expected


@pytest.mark.parametrize('total', [0, 1, 7, 10])
def test_shard_rows_partition_the_input(total):
    for count in (1, 3, 4):
        rows = [window_scoring._shard_rows(total, (i, count)) for i in range(count)]
        assert rows == [len(range(i, total, count)) for i in range(count)]


def test_references_depend_on_the_window_not_the_batching():
    rng = np.random.default_rng(0)
    windows = [Window('c', 10 * i, 10 * i + 12, f'w{i}') for i in range(5)]
    one_hot = np.eye(4, dtype=np.uint8)[rng.integers(0, 4, (5, 12))]
    by_batch = {}
    for size in (1, 2, 5):
        batches = [(windows[i : i + size], one_hot[i : i + size], None) for i in range(0, 5, size)]
        refs = [r for _, _, r, _ in window_scoring._with_references(batches, 3, seed=7)]
        by_batch[size] = np.concatenate(refs)
    np.testing.assert_array_equal(by_batch[1], by_batch[2])
    np.testing.assert_array_equal(by_batch[1], by_batch[5])
    first = shuffle.dinuc_shuffle(
        one_hot[:1].astype(np.float32), 3, [shuffle.keyed_rng(7, 'c:0-12')]
    )
    np.testing.assert_array_equal(by_batch[1][:1], first)
