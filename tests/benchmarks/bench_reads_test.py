"""bench_reads' check of the two tools' bigWigs: identical counts pass, a base that differs or
another contig is named, and a missing bam2bw stops the benchmark in one line."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from benchmarks import bench_reads


def _bigwig(path, counts: dict[str, list[float]]) -> str:
    import pyBigWig

    bw = pyBigWig.open(str(path), 'w')
    bw.addHeader([(chrom, len(v)) for chrom, v in counts.items()])
    for chrom, values in counts.items():
        bw.addEntries(chrom, 0, values=np.asarray(values, np.float64), span=1, step=1)
    bw.close()
    return str(path)


def _pair(tmp_path, name, pos, neg):
    return (_bigwig(tmp_path / f'{name}.pos.bw', pos), _bigwig(tmp_path / f'{name}.neg.bw', neg))


def test_identical_counts_have_no_differences(tmp_path):
    counts = {'chr1': [0, 2, 1, 0], 'chr2': [3, 0, 0]}
    ours = _pair(tmp_path, 'ours', counts, counts)
    theirs = _pair(tmp_path, 'theirs', counts, counts)
    assert bench_reads._differences(ours, theirs) == []


def test_a_different_base_or_contig_is_named(tmp_path):
    counts = {'chr1': [0, 2, 1, 0], 'chr2': [3, 0, 0]}
    ours = _pair(tmp_path, 'ours', counts, counts)
    one_off = _pair(tmp_path, 'one_off', counts, {'chr1': [0, 2, 1, 0], 'chr2': [3, 1, 0]})
    found = bench_reads._differences(ours, one_off)
    assert len(found) == 1 and found[0].startswith('counts differ on chr2 at 1 bases')
    other = _pair(tmp_path, 'other', {'chr1': [0, 2, 1, 0]}, counts)
    assert bench_reads._differences(ours, other) == [
        f'{ours[0]} and {other[0]} name other contigs or sizes'
    ]


def test_a_missing_bam2bw_stops_in_one_line(tmp_path, monkeypatch):
    missing = str(tmp_path / 'bam2bw')
    monkeypatch.setattr(sys, 'argv', ['bench_reads', f'--bam2bw={missing}'])
    with pytest.raises(SystemExit) as stop:
        bench_reads.main()
    assert str(stop.value).startswith(f'bench_reads: error: --bam2bw={missing} not found')
