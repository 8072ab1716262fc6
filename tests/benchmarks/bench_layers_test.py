"""bench_layers measures the reference model's own layers: its FLOP counts are bench_train's
per-example count less the stem and the dense layer, and one tiny pair of arms returns a
positive rate for the tower and the head, ours and stock."""

from __future__ import annotations

import math

from benchmarks import bench_layers, bench_train


def test_tower_and_head_flops_are_the_training_count_less_stem_and_dense():
    config = bench_layers.reference()
    length, f = config.sequence_length, config.filters
    stem = 3 * 2 * length * config.stem_kernel_size * config.num_channels * f
    dense = 3 * 2 * f * config.num_tasks * config.num_strands
    ours = bench_layers.tower_flops(config, 1, length) + bench_layers.head_flops(config, 1, length)
    assert ours == bench_train.training_flops_per_example(config) - stem - dense
    assert bench_layers.tower_flops(config, 8, length) == 8 * bench_layers.tower_flops(
        config, 1, length
    )


def test_a_tiny_run_of_each_arm_reports_the_tower_and_the_head():
    config = bench_layers.reference()
    for stock in (False, True):
        rates = bench_layers.layers_arm(config, stock, batch=2, length=64, steps=1)()
        assert set(rates) == {'tower', 'head'}
        assert all(math.isfinite(v) and v > 0 for v in rates.values())
