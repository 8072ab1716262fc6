"""The tasks of a records job: a `--tasks_spec` file (JSON or YAML) or the single-task flags.

A task is one experiment: its peaks and its plus/minus strand counts bigWigs, with optional
control (input) bigWigs and optional noise-free expected bigWigs (simulated data). Records hold
every task's counts for the union of the tasks' peaks. Controls and expected tracks are all or
none: either every task names them or no task does, so that every record has the same features.
Relative paths in a spec file are relative to the spec file's folder. No Beam here.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Sequence

from beam_jobs.common import files as files_lib
from beam_jobs.common.errors import RecordsInputError

_REQUIRED = ('name', 'peaks', 'pos_bigwig', 'neg_bigwig')
_PAIRS = {
    'control': ('control_pos_bigwig', 'control_neg_bigwig'),
    'expected': ('expected_pos_bigwig', 'expected_neg_bigwig'),
}
_OPTIONAL = tuple(k for pair in _PAIRS.values() for k in pair)


@dataclasses.dataclass(frozen=True)
class Task:
    """One task's files (paths or URLs, e.g. gs://)."""

    name: str
    peaks: str
    pos_bigwig: str
    neg_bigwig: str
    control_pos_bigwig: str | None = None
    control_neg_bigwig: str | None = None
    expected_pos_bigwig: str | None = None
    expected_neg_bigwig: str | None = None

    def pair(self, kind: str) -> tuple[str, str] | None:
        """('counts' | 'control' | 'expected') -> (plus, minus) bigWigs, or None."""
        if kind == 'counts':
            return self.pos_bigwig, self.neg_bigwig
        pos, neg = (getattr(self, k) for k in _PAIRS[kind])
        return (pos, neg) if pos else None

    def files(self) -> list[str]:
        return [self.peaks] + [
            p for kind in ('counts', 'control', 'expected') for p in (self.pair(kind) or ())
        ]


def _load(path: str, text: str) -> Any:
    if path.endswith('.json'):
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise RecordsInputError(
                f'{path}:{e.lineno}: not valid JSON: {e.msg} (column {e.colno})'
            ) from None
    import yaml  # Installed with apache-beam.

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, 'problem_mark', None)
        where = f':{mark.line + 1}' if mark is not None else ''
        problem = getattr(e, 'problem', None) or str(e).splitlines()[0]
        raise RecordsInputError(f'{path}{where}: not valid YAML: {problem}') from None


def demo_tasks(name: str = 'default') -> tuple[str, list[Task]]:
    """Makes (or reuses) a simulated demo data set (bpnet_tfx.simulate); returns its FASTA and its
    tasks, as absolute paths."""
    from bpnet_tfx.simulate import (
        simulator as simulate,  # Local: only the demo needs the simulator.
    )

    demo = simulate.ensure_demo_data(config=simulate.DEMO_CONFIGS[name])
    control = {}
    if demo.control_pos_bigwig:
        control = {
            'control_pos_bigwig': os.path.abspath(demo.control_pos_bigwig),
            'control_neg_bigwig': os.path.abspath(demo.control_neg_bigwig),
        }
    tasks = []
    for task in demo.tasks:
        bw = demo.task_bigwigs[task]
        tasks.append(
            Task(
                name=task,
                peaks=os.path.abspath(demo.peaks),
                pos_bigwig=os.path.abspath(bw[0]),
                neg_bigwig=os.path.abspath(bw[1]),
                expected_pos_bigwig=os.path.abspath(bw[2]),
                expected_neg_bigwig=os.path.abspath(bw[3]),
                **control,
            )
        )
    return os.path.abspath(demo.fasta), tasks


def check_all_or_none(tasks: Sequence[Task], where: str) -> None:
    """Raises RecordsInputError unless each optional pair is given for all tasks or none."""
    for kind, keys in _PAIRS.items():
        for task in tasks:
            if bool(getattr(task, keys[0])) != bool(getattr(task, keys[1])):
                raise RecordsInputError(
                    f'{where}: task {task.name!r} gives one of {keys[0]}, {keys[1]}; give both '
                    'or neither'
                )
        have = [t.name for t in tasks if t.pair(kind)]
        if have and len(have) != len(tasks):
            lacking = [t.name for t in tasks if not t.pair(kind)]
            raise RecordsInputError(
                f'{where}: {kind} bigWigs must be given for every task or none; '
                f'{", ".join(have)} have them, {", ".join(lacking)} not'
            )


def _task(entry, where: str, folder: str) -> Task:
    """One entry of a tasks spec as a Task, its paths resolved against `folder`."""
    if not isinstance(entry, dict):
        raise RecordsInputError(f'{where}: a task is a mapping of keys {list(_REQUIRED)}')
    missing = [k for k in _REQUIRED if k not in entry]
    if missing:
        raise RecordsInputError(f'{where}: missing key(s) {", ".join(missing)}')
    unknown = sorted(set(entry) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise RecordsInputError(
            f'{where}: unknown key(s) {", ".join(unknown)}; known: '
            f'{", ".join(_REQUIRED + _OPTIONAL)}'
        )
    for key, value in entry.items():
        if not isinstance(value, str) or not value.strip():
            raise RecordsInputError(f'{where}: {key} must be a non-empty string')
    values = {
        k: (v.strip() if k == 'name' else files_lib.resolve(v.strip(), folder))
        for k, v in entry.items()
    }
    return Task(**values)


def read_tasks_spec(path: str, text: str | None = None) -> list[Task]:
    """Reads a tasks spec: a mapping with a `tasks` list of task mappings.

    Each task has `name`, `peaks`, `pos_bigwig`, `neg_bigwig` and optionally
    `control_pos_bigwig` + `control_neg_bigwig` and `expected_pos_bigwig` +
    `expected_neg_bigwig`. The file is JSON when its name ends in .json, YAML otherwise.

    Args:
      path: the spec file (for messages and to resolve relative paths).
      text: its contents, when already read (a remote spec); else the local file is read.

    Returns:
      The tasks, in file order.

    Raises:
      RecordsInputError: an unreadable or malformed file, a missing or unknown key, a duplicate
        task name, or controls/expected tracks for some tasks only.
    """
    if text is None:
        try:
            with open(path) as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as e:
            reason = getattr(e, 'strerror', None) or str(e)
            raise RecordsInputError(f'{path}: cannot read tasks spec: {reason}') from None
    spec = _load(path, text)
    if not isinstance(spec, dict) or not isinstance(spec.get('tasks'), list) or not spec['tasks']:
        raise RecordsInputError(
            f"{path}: a tasks spec is a mapping with a non-empty 'tasks' list (see the README)"
        )
    unknown = sorted(set(spec) - {'tasks'})
    if unknown:
        raise RecordsInputError(f'{path}: unknown top-level key(s) {unknown}; only tasks')
    folder = os.path.dirname(path) if '://' not in path else path.rsplit('/', 1)[0]
    tasks = [_task(entry, f'{path}: task {i}', folder) for i, entry in enumerate(spec['tasks'], 1)]
    names = [t.name for t in tasks]
    for name in names:
        if names.count(name) > 1:
            raise RecordsInputError(f'{path}: task name {name!r} appears more than once')
    check_all_or_none(tasks, path)
    return tasks
