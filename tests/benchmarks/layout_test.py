"""The benchmarks folder's rules, checked on the source: every bench_*.py reports through the
protocol in common.py, no benchmark hides a child program in a string (children are modules the
linter checks), and every module imports without running anything."""

from __future__ import annotations

import ast
import importlib
import pathlib

import pytest

from tests.fixtures.paths import REPO

BENCHMARKS = pathlib.Path(REPO) / 'benchmarks'
MODULES = sorted(p for p in BENCHMARKS.rglob('*.py'))


def _calls(path: pathlib.Path) -> set[str]:
    """Every `module.function` called in the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if isinstance(node.func.value, ast.Name):
                found.add(f'{node.func.value.id}.{node.func.attr}')
    return found


@pytest.mark.parametrize('path', sorted(BENCHMARKS.glob('bench_*.py')), ids=lambda p: p.name)
def test_every_bench_script_measures_and_reports_through_the_protocol(path):
    calls = _calls(path)
    assert {'common.compare', 'common.report', 'common.add_protocol_flags'} <= calls


@pytest.mark.parametrize('path', MODULES, ids=lambda p: str(p.relative_to(BENCHMARKS)))
def test_no_child_program_hides_in_a_string(path):
    constants = {
        node.value
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    }
    assert '-c' not in constants, 'run a module of benchmarks/children instead of python -c'


@pytest.mark.parametrize('path', MODULES, ids=lambda p: str(p.relative_to(BENCHMARKS)))
def test_every_module_imports_without_side_effects(path, capsys):
    parts = path.relative_to(REPO).with_suffix('').parts
    name = '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)
    importlib.import_module(name)
    assert capsys.readouterr().out == ''


def test_quality_studies_and_peers_live_in_their_folders():
    top = {p.stem for p in BENCHMARKS.glob('*.py')}
    assert not top & {'bench_counts', 'bench_regimes', 'bench_motifs', 'peer_bpnet_lite'}
    assert (BENCHMARKS / 'peers' / 'bpnet_lite.py').exists()
    assert {'counts_head', 'regimes', 'precision'} <= {
        p.stem for p in (BENCHMARKS / 'studies').glob('*.py')
    }
