"""bench_inference_jobs' flags and arms: the genome-wide memory comparison needs two genome
sizes, and says so in one line before any work starts; each size names an arm that the
protocol's ratios can look up (no dot in the name)."""

from __future__ import annotations

import sys

import pytest

from benchmarks import bench_inference_jobs


@pytest.mark.parametrize('sizes', ['1', '2,2'])
def test_one_genome_size_stops_before_any_work(sizes, monkeypatch):
    monkeypatch.setattr(sys, 'argv', ['bench_inference_jobs', f'--genome_wide_mb={sizes}'])
    monkeypatch.setattr(bench_inference_jobs, '_comparisons', lambda *a: pytest.fail('ran'))
    with pytest.raises(SystemExit) as stop:
        bench_inference_jobs.main()
    assert str(stop.value) == (
        'bench_inference_jobs: error: --genome_wide_mb needs two sizes or more'
    )


@pytest.mark.parametrize('mb', [0.01, 0.02, 1.0, 4])
def test_genome_sizes_name_arms_the_protocol_can_look_up(mb):
    from benchmarks import common

    name = bench_inference_jobs._genome_arm(mb)
    values = {name: {'peak_mb': 3.0, 'value': 1.0}}
    assert common._lookup(values, f'{name}.peak_mb') == 3.0
    assert name == f'genome_{round(mb * 1000)}kb'
