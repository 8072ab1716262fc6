"""Tests of motifs.kernels: TOMTOM's first-use compilation is a phase with a line before and
after, once per process, and the first TF-MoDISco run of a process says it loads the kernels."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from bpnet_tfx.motifs import kernels


@pytest.fixture
def fresh(monkeypatch):
    """A process in which no kernel has been used yet."""
    monkeypatch.setattr(kernels, '_USED', {'modisco': False, 'tomtom': False})


def test_tomtom_is_warmed_once_between_two_lines(fresh, capsys):
    calls = []

    def tomtom(queries, targets):  # records what annotation's TOMTOM would be given
        calls.append((queries, targets))
        print('annotate: inside', file=sys.stderr)

    kernels.warm_tomtom(tomtom, 'annotate')
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith('annotate: loading TOMTOM (memelite): its numba kernels compile')
    assert lines[1] == 'annotate: inside'
    assert lines[2].startswith('annotate: TOMTOM ready in ') and lines[2].endswith(' s')
    ((queries, targets),) = calls
    for pfm, width in ((queries[0], 6), (targets[0], 8)):  # the dtype and layout of real calls
        assert pfm.shape == (4, width) and pfm.dtype == np.float64 and pfm.flags.c_contiguous
        np.testing.assert_allclose(pfm.sum(axis=0), 1.0)
    kernels.warm_tomtom(tomtom, 'annotate')
    assert len(calls) == 1 and capsys.readouterr().err == ''


def test_the_first_modisco_run_of_a_process_is_announced(fresh):
    assert "modisco-lite's numba kernels" in kernels.modisco_note()
    kernels.modisco_ran()
    assert kernels.modisco_note() == ''
