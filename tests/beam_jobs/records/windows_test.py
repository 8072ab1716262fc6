"""Tests of beam_jobs/records/windows.py: the window reader on a tiny genome in a temp folder
(track_genome, tests/fixtures/genomes.py)."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest

from beam_jobs.common import files as files_lib
from beam_jobs.common.errors import RecordsInputError
from beam_jobs.records import shards
from beam_jobs.records import windows as windows_lib
from beam_jobs.records.regions import Region
from bpnet_tfx.genome import sequence
from tests.fixtures.genomes import write_bigwig
from tests.fixtures.windows import (
    KEPT,
    REGIONS,
    REJECTED,
    TRIM,
    J,
    L,
    direct_window,
    window_spec,
)


def _chunks(regions):
    return shards.make_chunks(regions)


@pytest.mark.parametrize('run_gap', [0, 20_000], ids=['window_by_window', 'one_fetch_per_run'])
@pytest.mark.parametrize(
    'tasks, control, expected',
    [(1, False, False), (2, True, True)],
    ids=['one_task', 'two_tasks_control_expected'],
)
def test_window_reader_matches_direct_extraction(track_genome, run_gap, tasks, control, expected):
    reader = windows_lib.WindowReader(
        window_spec(track_genome, tasks=tasks, control=control, expected=expected, run_gap=run_gap)
    ).open()
    pairs = [('pos', 'neg'), ('pos2', 'neg2')][:tasks]
    try:
        got = [item for chunk in _chunks(REGIONS) for item in reader.read(chunk)]
    finally:
        reader.close()
    rejected = sorted((r.region_id, w) for r, w in got if isinstance(w, str))
    assert rejected == sorted(REJECTED)
    windows = [w for _, w in got if not isinstance(w, str)]
    assert sorted(w.region.line for w in windows) == sorted(r.line for r in KEPT)
    for w in windows:
        one_hot, profile, start = direct_window(track_genome, w.region, pairs)
        assert w.start == start
        np.testing.assert_array_equal(sequence.one_hot_from_tokens(w.tokens), one_hot)
        np.testing.assert_array_equal(w.profile, profile)
        assert w.profile.shape == (L + 2 * J, tasks, 2) and w.profile.dtype == np.float32
        if control:
            np.testing.assert_array_equal(
                w.control,
                direct_window(track_genome, w.region, [('ctl_pos', 'ctl_neg')] * tasks)[1],
            )
        else:
            assert w.control is None
        if expected:
            np.testing.assert_allclose(
                w.expected,
                direct_window(track_genome, w.region, [('exp_pos', 'exp_neg')] * tasks)[1],
                rtol=1e-6,
            )
        else:
            assert w.expected is None


def test_dense_chunk_is_one_fetch_per_track(track_genome, monkeypatch):
    calls = []
    reader = windows_lib.WindowReader(window_spec(track_genome)).open()
    original = windows_lib.WindowReader._read_tracks

    def _spy(self, kind, chrom, start, end, windows):
        calls.append((start, end))
        return original(self, kind, chrom, start, end, windows)

    monkeypatch.setattr(windows_lib.WindowReader, '_read_tracks', _spy)
    chunk = shards.Chunk(
        'train',
        'chr1',
        tuple(Region('chr1', s, s + L, 'train', i) for i, s in enumerate(range(10, 180, 15))),
    )
    assert len([w for _, w in reader.read(chunk)]) == len(chunk.regions)
    assert calls == [(5, 200)]  # One values() span per bigWig for the whole chunk.
    reader.close()


def test_max_n_fraction_threshold(track_genome):
    # chr1:185-215 stored (5 bp margin each side) covers N at 200-215: 15 of 30 bases.
    chunk = shards.Chunk('train', 'chr1', (Region('chr1', 190, 210, 'train', 1),))
    for fraction, outcome in ((0.49, 'too_many_n'), (0.5, 'kept')):
        reader = windows_lib.WindowReader(window_spec(track_genome, max_n_fraction=fraction)).open()
        ((_, window),) = reader.read(chunk)
        reader.close()
        assert (window if isinstance(window, str) else 'kept') == outcome


def test_negative_counts_fail_naming_bigwig_and_region(track_genome, tmp_path):
    values = np.zeros(300)
    values[60] = -2.0
    bad = write_bigwig(tmp_path / 'bad.bw', {'chr1': values, 'chr2': np.zeros(100)})
    spec = windows_lib.WindowSpec(track_genome['fasta'], [(track_genome['pos'], bad)], max_jitter=J)
    reader = windows_lib.WindowReader(spec).open()
    with pytest.raises(
        RecordsInputError,
        match=r'bad\.bw: negative counts \(min -2\) in '
        r'chr1:45-75',
    ):
        list(reader.read(_chunks(REGIONS[:1])[0]))
    reader.close()


def test_reader_copies_remote_inputs_to_local_disk(track_genome, fake_remote):
    root, prefix = fake_remote
    for name in ('fasta', 'pos', 'neg'):
        (root / os.path.basename(track_genome[name])).write_bytes(
            open(track_genome[name], 'rb').read()
        )
    reader = windows_lib.WindowReader(window_spec(track_genome, prefix=prefix)).open()
    local_dir = reader._local_dir
    assert os.path.isdir(local_dir) and files_lib.is_remote(reader.spec.fasta)
    got = {r.line: w for chunk in _chunks(KEPT) for r, w in reader.read(chunk)}
    reader.close()
    assert not os.path.exists(local_dir)  # Removed in close (teardown).
    for r in KEPT:
        np.testing.assert_array_equal(
            got[r.line].profile, direct_window(track_genome, r, [('pos', 'neg')])[1]
        )


@pytest.mark.parametrize('run_gap', [0, 20_000], ids=['window_by_window', 'one_fetch_per_run'])
def test_output_trim_reads_the_centred_counts_window(track_genome, run_gap):
    spec = dataclasses.replace(
        window_spec(track_genome, tasks=2, control=True, expected=True, run_gap=run_gap),
        output_trim=TRIM,
    )
    reader = windows_lib.WindowReader(spec).open()
    try:
        got = [(r, w) for chunk in _chunks(REGIONS) for r, w in reader.read(chunk)]
    finally:
        reader.close()
    assert sorted((r.region_id, w) for r, w in got if isinstance(w, str)) == sorted(REJECTED)
    windows = [w for _, w in got if not isinstance(w, str)]
    assert sorted(w.region.line for w in windows) == sorted(r.line for r in KEPT)
    pairs = [('pos', 'neg'), ('pos2', 'neg2')]
    for w in windows:
        one_hot, profile, start = direct_window(track_genome, w.region, pairs)
        assert w.start == start and w.tokens.shape == (L + 2 * J,)
        np.testing.assert_array_equal(sequence.one_hot_from_tokens(w.tokens), one_hot)
        assert w.profile.shape == (L - 2 * TRIM + 2 * J, 2, 2)
        np.testing.assert_array_equal(w.profile, profile[TRIM:-TRIM])
        np.testing.assert_array_equal(
            w.control,
            direct_window(track_genome, w.region, [('ctl_pos', 'ctl_neg')] * 2)[1][TRIM:-TRIM],
        )
        np.testing.assert_allclose(
            w.expected,
            direct_window(track_genome, w.region, [('exp_pos', 'exp_neg')] * 2)[1][TRIM:-TRIM],
            rtol=1e-6,
        )
        assert w.is_background is None
