"""bench_inference_jobs' flags: the genome-wide memory comparison needs two genome sizes, and
says so in one line before any work starts."""

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
