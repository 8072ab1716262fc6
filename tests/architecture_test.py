"""The import directions of docs/architecture.md, checked on the source: the floors of
bpnet_tfx, what beam_jobs may take from it, and no import circles (imports inside functions and
under TYPE_CHECKING count too)."""

from __future__ import annotations

import ast
import pathlib

import pytest

from tests.fixtures.paths import REPO

# bpnet_tfx's packages by floor: a package imports only from its own floor's package or lower
# floors; packages on one floor do not import each other. The mains (bpnet_tfx/*.py) sit on top.
FLOORS = (
    ('common',),
    ('genome',),
    ('records', 'simulate'),
    ('modeling',),
    ('inference',),
    ('training', 'attribution', 'variant_effects'),
    ('motifs',),
)
# What beam_jobs' shared and records packages may take from bpnet_tfx (module prefixes).
BEAM_SHARED_ALLOWED = (
    'bpnet_tfx.common',
    'bpnet_tfx.genome',
    'bpnet_tfx.records.codec',
    'bpnet_tfx.records.schema',
    'bpnet_tfx.records.wire',
    'bpnet_tfx.simulate',
)
# Inference jobs (their package and main) may also use the export and the scoring libraries.
BEAM_INFERENCE_ALLOWED = BEAM_SHARED_ALLOWED + (
    'bpnet_tfx.inference',
    'bpnet_tfx.variant_effects',
    'bpnet_tfx.attribution',
)
BEAM_INFERENCE_PACKAGES = ('inference', 'variants', 'tracks', 'contributions')
BEAM_INFERENCE_MAINS = ('score_variants', 'predict_tracks', 'contrib')
# beam_jobs packages every job package may import: common, and for the inference jobs the
# shared inference layer (the model handler), which itself imports only common.
BEAM_SHARED_PACKAGES = {'common': ('common',), 'inference': ('common', 'inference')}


def _modules() -> dict[str, pathlib.Path]:
    root = pathlib.Path(REPO)
    found = {}
    for top in ('bpnet_tfx', 'beam_jobs'):
        for path in sorted((root / top).rglob('*.py')):
            parts = path.relative_to(root).with_suffix('').parts
            if parts[-1] == '__init__':
                parts = parts[:-1]
            found['.'.join(parts)] = path
    return found


def _imports(path: pathlib.Path, module: str, known) -> set[str]:
    """Every project module `path` imports (a package import names its __init__)."""
    package = module if path.name == '__init__.py' else module.rpartition('.')[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                anchor = package.split('.')[: len(package.split('.')) - node.level + 1]
                base = '.'.join(anchor + ([base] if base else []))
            names = [
                f'{base}.{a.name}' if f'{base}.{a.name}' in known else base for a in node.names
            ]
        else:
            continue
        for name in names:
            if name.startswith(('apache_beam', 'beam_jobs', 'bpnet_tfx')):
                # The longest known module the name points into (from pkg import module).
                while name and name not in known and not name.startswith('apache_beam'):
                    name = name.rpartition('.')[0]
                if name and name != module:
                    out.add(name)
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {m: _imports(p, m, modules) for m, p in modules.items()}


GRAPH = _graph()
PACKAGES = {m for m, p in _modules().items() if p.name == '__init__.py'}


def _is_main(module: str) -> bool:
    return module.count('.') == 1 and module not in PACKAGES


def _floor(module: str) -> int | None:
    parts = module.split('.')
    if parts[0] != 'bpnet_tfx' or len(parts) < 3:
        return None  # the mains and bpnet_tfx itself
    for level, packages in enumerate(FLOORS):
        if parts[1] in packages:
            return level
    raise AssertionError(f'{module}: package {parts[1]!r} has no floor in FLOORS')


def _edges():
    for module, targets in sorted(GRAPH.items()):
        for target in sorted(targets):
            yield module, target


def test_every_bpnet_tfx_package_has_a_floor():
    packages = {m.split('.')[1] for m in GRAPH if m.startswith('bpnet_tfx.') and m.count('.') > 1}
    assert packages == {p for floor in FLOORS for p in floor}


def test_bpnet_tfx_never_imports_beam():
    bad = [
        f'{m} -> {t}'
        for m, t in _edges()
        if m.startswith('bpnet_tfx') and t.startswith(('apache_beam', 'beam_jobs'))
    ]
    assert not bad, bad


def test_bpnet_tfx_imports_only_down_its_floors():
    bad = []
    for module, target in _edges():
        if not (module.startswith('bpnet_tfx') and target.startswith('bpnet_tfx.')):
            continue
        here, there = _floor(module), _floor(target)
        if _is_main(target):
            bad.append(f'{module} -> {target} (a main)')
        elif here is None or there is None:
            continue
        elif there > here or (there == here and module.split('.')[1] != target.split('.')[1]):
            bad.append(f'{module} -> {target}')
    assert not bad, bad


def test_motif_libraries_do_not_import_the_motif_commands():
    bad = [
        f'{m} -> {t}'
        for m, t in _edges()
        if m.startswith('bpnet_tfx.motifs')
        and not m.startswith('bpnet_tfx.motifs.commands')
        and m != 'bpnet_tfx.motifs.__main__'
        and t.startswith('bpnet_tfx.motifs.commands')
    ]
    assert not bad, bad


def test_beam_jobs_take_only_what_their_package_may_from_bpnet_tfx():
    bad = []
    for module, target in _edges():
        if not (module.startswith('beam_jobs') and target.startswith('bpnet_tfx')):
            continue
        parts = module.split('.')
        inference = (len(parts) > 2 and parts[1] in BEAM_INFERENCE_PACKAGES) or (
            len(parts) == 2 and parts[1] in BEAM_INFERENCE_MAINS
        )
        allowed = BEAM_INFERENCE_ALLOWED if inference else BEAM_SHARED_ALLOWED
        if not target.startswith(allowed):
            bad.append(f'{module} -> {target}')
    assert not bad, bad


def test_beam_jobs_packages_import_only_common_and_themselves():
    """beam_jobs/common imports no job package, beam_jobs/inference only common; one job's
    package never imports another's; packages never import a main."""
    bad = []
    for module, target in _edges():
        if not (module.startswith('beam_jobs.') and target.startswith('beam_jobs.')):
            continue
        here, there = module.split('.'), target.split('.')
        allowed = BEAM_SHARED_PACKAGES.get(here[1], (*BEAM_SHARED_PACKAGES, here[1]))
        if _is_main(target):
            bad.append(f'{module} -> {target} (a main)')
        elif len(here) > 2 and there[1] not in allowed:
            bad.append(f'{module} -> {target}')
    assert not bad, bad


def _cycle_from(start: str) -> list[str] | None:
    stack, seen = [(start, [start])], set()
    while stack:
        node, path = stack.pop()
        for target in sorted(GRAPH.get(node, ())):
            if target == start:
                return path + [start]
            if target not in seen and target in GRAPH:
                seen.add(target)
                stack.append((target, path + [target]))
    return None


@pytest.mark.parametrize('top', ['bpnet_tfx', 'beam_jobs'])
def test_no_import_circles(top):
    cycles = {tuple(c) for m in GRAPH if m.startswith(top) and (c := _cycle_from(m))}
    assert not cycles, sorted(cycles)[:5]


def test_the_checker_sees_imports_inside_functions_and_packages():
    """The graph is not empty where the code is known to import: a main's function-level
    imports and a package-level `from pkg import module`."""
    assert 'bpnet_tfx.records.schema' in GRAPH['bpnet_tfx.records.dataset']
    assert any(t.startswith('bpnet_tfx.training') for t in GRAPH['bpnet_tfx.train'])
