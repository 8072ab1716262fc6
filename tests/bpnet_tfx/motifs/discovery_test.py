"""Tests of motifs.discovery without running modisco-lite: a line before and after each
target, and what the no-pattern error suggests (only flags of the command that runs it)."""

from __future__ import annotations

import json
import os

import pytest

from bpnet_tfx.motifs import discovery, kernels
from tests.fixtures.motif_folders import LENGTH


@pytest.fixture
def no_patterns(monkeypatch, capsys):
    """discover_target finding nothing, recording the progress lines printed before it ran."""
    seen = []

    def discover_target(contrib, target, folder, window, max_seqlets, verbose):
        seen.append(capsys.readouterr().err)
        return []

    monkeypatch.setattr(discovery, 'discover_target', discover_target)
    monkeypatch.setattr(kernels, '_USED', {'modisco': False, 'tomtom': False})
    return seen


def test_each_target_has_a_line_before_and_after(folders, no_patterns, tmp_path, capsys):
    contrib_dir, _, _ = folders
    with pytest.raises(discovery.DiscoveryError):
        discovery.discover(contrib_dir, str(tmp_path / 'o'), window=100)
    (before,) = no_patterns
    assert before.startswith('discover: 1/1 targets: profile: TF-MoDISco on 4 rows x 100 bp; ')
    assert "this first run also loads modisco-lite's numba kernels" in before
    after = capsys.readouterr().err
    assert after.startswith('discover: 1/1 targets: profile: 0 patterns from 0 seqlets in ')
    assert not (tmp_path / 'o').exists()


@pytest.mark.parametrize(
    'window, max_regions, hint',
    [
        (100, None, f'widen --window (now 100 of {LENGTH} bp)'),
        (LENGTH, 3, 'raise --max_regions (now 3 of 4 rows)'),
        (LENGTH, None, 'every region was used in full: train the model longer'),
    ],
)
def test_no_pattern_suggests_only_what_can_help(
    folders, no_patterns, tmp_path, window, max_regions, hint
):
    contrib_dir, _, _ = folders
    with pytest.raises(discovery.DiscoveryError) as e:
        discovery.discover(contrib_dir, str(tmp_path / 'o'), window=window, max_regions=max_regions)
    rows = max_regions or 4
    assert str(e.value) == (
        f'{contrib_dir}: modisco-lite found no pattern in {rows} rows of profile; {hint}'
    )


def test_no_pattern_in_contributions_of_the_first_regions_says_to_score_more(
    folders, no_patterns, tmp_path
):
    contrib_dir, _, _ = folders
    path = os.path.join(contrib_dir, 'summary.json')
    with open(path) as f:
        summary = json.load(f)
    with open(path, 'w') as f:
        json.dump({**summary, 'max_regions': 4}, f)  # contrib stopped after 4 regions
    with pytest.raises(discovery.DiscoveryError) as e:
        discovery.discover(contrib_dir, str(tmp_path / 'o'), window=LENGTH)
    assert str(e.value).endswith(
        'no pattern in 4 rows of profile; score more regions with contrib (it scored only '
        'the first 4)'
    )
