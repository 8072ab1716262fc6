"""The test suite's own layout: every test folder is a package (so two modules of one name in
different folders never collide and each file runs alone), and test modules import shared
helpers from tests/fixtures/, never from one another."""

import ast
import pathlib

from tests.fixtures.paths import REPO

TESTS = pathlib.Path(REPO) / 'tests'


def _test_modules() -> list[pathlib.Path]:
    return sorted(TESTS.rglob('*_test.py'))


def test_every_test_folder_is_a_package():
    folders = {p.parent for p in _test_modules()} | {TESTS / 'fixtures'}
    missing = sorted(str(f.relative_to(TESTS)) for f in folders if not (f / '__init__.py').exists())
    assert missing == [], f'add an empty __init__.py to: {missing}'
    assert len(_test_modules()) > 50  # the glob found the suite


def _imported_modules(path: pathlib.Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f'{node.module}.{a.name}' for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def test_test_modules_import_helpers_only_from_fixtures():
    offenders = {}
    for path in [*_test_modules(), *sorted((TESTS / 'fixtures').glob('*.py'))]:
        bad = sorted(
            name
            for name in _imported_modules(path)
            if name == 'conftest'
            or name.startswith('conftest.')
            or (name.startswith('tests.') and name.split('.')[-1].endswith('_test'))
        )
        if bad:
            offenders[str(path.relative_to(TESTS))] = bad
    assert offenders == {}, f'move what these import into tests/fixtures/: {offenders}'
