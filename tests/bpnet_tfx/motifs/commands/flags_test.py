"""The motifs commands' flags, read from their source (no command runs): the pipeline takes
every flag of each step's command, of the same kind, and every --flag that a command's error
or progress lines suggest (its own, and those of the library functions it reaches through
bpnet_tfx.motifs and bpnet_tfx.attribution) is a flag of that command."""

from __future__ import annotations

import ast
import os
import re

import pytest

from tests.fixtures.paths import REPO

COMMANDS = ('discover', 'annotate', 'scan', 'report', 'marginalize', 'ablate', 'space', 'pipeline')
STEPS = {  # the pipeline's steps: their commands
    'contrib': 'bpnet_tfx/contrib.py',
    **{s: f'bpnet_tfx/motifs/commands/{s}.py' for s in ('discover', 'annotate', 'scan')},
    'marginalize': 'bpnet_tfx/motifs/commands/marginalize.py',
}
# Flags that connect a step's command to the folders of others (the pipeline connects them
# itself), shard a contrib run, or name motifs the pipeline takes from discovery instead.
WIRING = {
    'contrib_dir',
    'discover_dir',
    'scan_dir',
    'output_dir',
    'output_html',
    'shard_index',
    'num_shards',
    'merge',
    'motifs',
}
# contrib's check of --shard_index/--num_shards: the pipeline passes neither (one shard).
UNREACHABLE = {'pipeline': {'shard_index', 'num_shards'}}
LIBRARY_PACKAGES = ('bpnet_tfx/motifs', 'bpnet_tfx/attribution')
FLAG = re.compile(r'(?<![\w-])--([a-z][a-z0-9_]*)')


def _parse(path: str) -> ast.Module:
    with open(os.path.join(REPO, path)) as f:
        return ast.parse(f.read())


def defined_flags(path: str) -> dict[str, str]:
    """{flag: DEFINE_ kind} of an absl main, with those of the shared flag modules it calls
    `define` of (`<module>.define(__name__)`, a module beside it)."""
    out = {}
    for node in ast.walk(_parse(path)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr.startswith('DEFINE_'):
            out[node.args[0].value] = node.func.attr
        elif node.func.attr == 'define' and isinstance(node.func.value, ast.Name):
            out.update(
                defined_flags(os.path.join(os.path.dirname(path), f'{node.func.value.id}.py'))
            )
    return out


def _module_name(path: str) -> str:
    return path[: -len('.py')].replace('/', '.')


def _imports(tree: ast.Module, module: str) -> dict[str, tuple[str, str | None]]:
    """{local name: (module, attribute or None for a module)} of every import in `tree`."""
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                names[a.asname or a.name] = (node.module, a.name)
        elif isinstance(node, ast.Import):
            for a in node.names:
                names[a.asname or a.name.split('.')[0]] = (a.name, None)
    return names


def _strings_and_calls(function: ast.AST, module: str, imports) -> tuple[str, set]:
    """(the text of every string in `function` but its docstring, with a '--flag' for each
    name a loop gives to an f'--{name}' message; the functions it calls)."""
    body = function.body
    skip = body[0].value if body and isinstance(body[0], ast.Expr) else None
    texts, calls = [], set()
    for node in ast.walk(function):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node is not skip:
            texts.append(node.value)
        elif isinstance(node, ast.For) and any(
            isinstance(n, ast.JoinedStr) and '--{' in ast.unparse(n) for n in ast.walk(node)
        ):
            texts += [
                f'--{n.value}'
                for n in ast.walk(node.iter)
                if isinstance(n, ast.Constant) and isinstance(n.value, str)
            ]
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            calls.add((module, node.id))  # a table of functions, or a function passed on
        elif isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Name):
                target = imports.get(f.id)
                calls.add(target if target and target[1] else (module, f.id))
            elif isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name):
                target = imports.get(f.value.id)
                if target:
                    base = target[0] if target[1] is None else f'{target[0]}.{target[1]}'
                    calls.add((base, f.attr))
    return '\n'.join(texts), calls


def _functions() -> dict[tuple[str, str], tuple[str, set]]:
    """{(module, function): (its strings, its calls)} of the library packages and the mains."""
    paths = ['bpnet_tfx/contrib.py'] + [f'bpnet_tfx/motifs/commands/{c}.py' for c in COMMANDS]
    for package in LIBRARY_PACKAGES:
        paths += [os.path.join(package, f) for f in os.listdir(os.path.join(REPO, package))]
    out = {}
    for path in (p for p in paths if p.endswith('.py')):
        tree, module = _parse(path), _module_name(path)
        imports = _imports(tree, module)
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                out[(module, node.name)] = _strings_and_calls(node, module, imports)
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):  # a table of functions
                for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                    if isinstance(target, ast.Name):
                        out[(module, target.id)] = ('', _names(node.value, module))
    return out


def _names(node: ast.AST, module: str) -> set:
    """The names `node` refers to, as (module, name): the functions a table holds."""
    return {(module, n.id) for n in ast.walk(node) if isinstance(n, ast.Name)}


def suggested_flags(command: str, functions) -> dict[str, str]:
    """{flag: the function that names it} over the functions the command's main reaches."""
    todo = [(f'bpnet_tfx.motifs.commands.{command}', 'main')]
    seen, out = set(), {}
    while todo:
        key = todo.pop()
        if key in seen or key not in functions:
            continue
        seen.add(key)
        text, calls = functions[key]
        for flag in FLAG.findall(text):
            out.setdefault(flag, '.'.join(key))
        todo += calls
    return out


def test_the_analysis_sees_the_flags_of_the_scan_error():
    functions = _functions()
    found = suggested_flags('scan', functions)
    for flag in ('match_percentile', 'contrib_percentile', 'min_seqlet_match', 'overwrite'):
        assert found[flag].startswith('bpnet_tfx.motifs.instances.'), found
    assert 'shard_index' in suggested_flags('pipeline', functions)  # through contributions


@pytest.mark.parametrize('command', COMMANDS)
def test_every_flag_an_error_suggests_is_one_of_the_commands(command):
    functions = _functions()
    defined = defined_flags(f'bpnet_tfx/motifs/commands/{command}.py')
    suggested = suggested_flags(command, functions)
    foreign = {
        flag: where
        for flag, where in suggested.items()
        if flag not in defined and flag not in UNREACHABLE.get(command, ())
    }
    assert not foreign, f'motifs {command} suggests flags it does not take: {foreign}'


@pytest.mark.parametrize('step', sorted(STEPS))
def test_the_pipeline_takes_every_flag_of_each_step(step):
    pipeline = defined_flags('bpnet_tfx/motifs/commands/pipeline.py')
    own = defined_flags(STEPS[step])
    missing = sorted(set(own) - WIRING - set(pipeline))
    assert not missing, f'pipeline lacks {step} flags {missing}'
    kinds = {f: (own[f], pipeline[f]) for f in set(own) & set(pipeline) if own[f] != pipeline[f]}
    assert not kinds, f'flags of another kind in the pipeline than in {step}: {kinds}'
