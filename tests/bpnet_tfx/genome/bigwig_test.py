"""Tests of the bigWig writer and reader: values back as written, runs as single entries,
publishing by rename."""

from __future__ import annotations

import os

import numpy as np
import pyBigWig
import pytest

from bpnet_tfx.genome import bigwig
from bpnet_tfx.genome.genome_io import GenomeError

HEADER = [('c1', 100), ('c2', 60)]


def test_written_values_read_back_and_runs_are_single_entries(tmp_path):
    path = str(tmp_path / 't.bw')
    rng = np.random.default_rng(0)
    values = rng.normal(size=30).astype(np.float32)
    counts = np.zeros(100)
    counts[[3, 50, 99]] = [2, 1, 7]
    runs = np.concatenate([np.full(10, 2.5), [1.0, 3.0], np.full(8, 0.5), [4.0] * 7, [9.0] * 33])
    with bigwig.BigWigWriter(path, HEADER) as bw:
        bw.add_nonzero('c1', counts)
        bw.add_values('c2', 0, values)
    bw = pyBigWig.open(path)
    np.testing.assert_array_equal(np.nan_to_num(bw.values('c1', 0, 100)), counts)
    np.testing.assert_allclose(bw.values('c2', 0, 30), values, rtol=1e-6)
    assert len(bw.intervals('c1')) == 3
    bw.close()
    with bigwig.BigWigWriter(path, [('c1', 100)]) as bw:
        bw.add_runs('c1', runs.astype(np.float32))
    np.testing.assert_allclose(bigwig.read_tracks([[path]], 'c1', 0, 60)[:, 0, 0], runs)
    bw = pyBigWig.open(path)
    # 2.5 x 10, 0.5 x 8 and 9.0 x 33 are one entry each; the rest one entry per base.
    assert len(bw.intervals('c1')) == 3 + 2 + 7
    bw.close()


def test_temporary_writer_publishes_only_on_a_clean_close(tmp_path):
    path = str(tmp_path / 't.bw')
    with pytest.raises(RuntimeError):
        with bigwig.BigWigWriter(path, HEADER, temporary=True) as bw:
            bw.add_values('c1', 0, np.ones(5))
            raise RuntimeError('fails mid-way')
    assert os.listdir(tmp_path) == []
    with bigwig.BigWigWriter(path, HEADER, temporary=True) as bw:
        bw.add_values('c1', 0, np.ones(5))
        assert not os.path.exists(path)
    assert os.listdir(tmp_path) == ['t.bw']
    np.testing.assert_array_equal(bigwig.read_tracks([[path]], 'c1', 0, 5)[:, 0, 0], np.ones(5))


def test_unwritable_and_unreadable_bigwigs_are_one_line_errors(tmp_path):
    with pytest.raises(GenomeError, match='cannot write bigWig'):
        bigwig.BigWigWriter(str(tmp_path / 'no' / 'dir' / 't.bw'), HEADER)
    with pytest.raises(GenomeError, match='cannot open bigWig'):
        bigwig.open_bigwig(str(tmp_path / 'missing.bw'))
    path = str(tmp_path / 't.bw')
    with bigwig.BigWigWriter(path, HEADER) as bw:
        bw.add_values('c1', 0, np.ones(5))
    with pytest.raises(GenomeError, match=r"chromosome 'c9' not in the bigWig \(given\)"):
        bigwig.read_tracks([[path]], 'c9', 0, 5, origin='given')
