"""The interpretation chain in one folder, as bpnet-lite's `pipeline` runs it:

  contrib/          python -m bpnet_tfx.contrib's folder (contributions.compute_contributions)
  discover/         TF-MoDISco per target, MEME files (discovery); annotations.tsv (annotation)
  scan/             instances.bed, instances.tsv, counts.tsv (instances)
  marginalize/      each discovered motif in shuffled backgrounds (experiments), optional
  report.html       the report with matches and instance counts
  summary.json      each finished step with its settings and results; the step that stopped

Each step publishes its own folder as soon as it is complete (its library writes it beside
and renames it into place) and summary.json then records it. A step that stops (nothing
found, bad input) leaves the finished steps, the report of what they found and summary.json
saying which step stopped and why; a rerun continues from the first unfinished step (a
finished step has its folder's summary.json, or annotations.tsv, and its record). A rerun
whose settings differ from a finished step's is refused, naming the differences; `overwrite`
starts afresh. Step folders refer to each other by relative paths, so the folder can move.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
import time
from typing import Any, Callable

from bpnet_tfx.attribution import contributions
from bpnet_tfx.common import folders
from bpnet_tfx.common.errors import BpnetError
from bpnet_tfx.motifs import (
    annotation,
    discovery,
    experiments,
    formats,
    html_report,
    instances,
)

STEPS = ('contrib', 'discover', 'annotate', 'scan', 'marginalize')  # then the report
TITLES = {
    'contrib': 'contribution scores',
    'discover': 'motif discovery (TF-MoDISco)',
    'annotate': 'annotation (TOMTOM)',
    'scan': 'CWM scanning',
    'marginalize': 'marginalization of each discovered motif',
}
_DONE_FILES = {  # a step's folder holds this file once the step is complete
    'contrib': os.path.join('contrib', 'summary.json'),
    'discover': os.path.join('discover', formats.SUMMARY_FILENAME),
    'annotate': os.path.join('discover', formats.ANNOTATIONS_FILENAME),
    'scan': os.path.join('scan', instances.SUMMARY_FILENAME),
    'marginalize': os.path.join('marginalize', 'summary.json'),
}
_FOLDERS = {s: s for s in ('contrib', 'discover', 'scan', 'marginalize')}


class PipelineError(BpnetError):
    """A pipeline that cannot start, or a step that stopped (one line)."""


@dataclasses.dataclass(frozen=True)
class PipelineOptions:
    """The pipeline's flags: each is the flag of the same name of its step's command
    (`marginalize` turns the marginalize step on; `batch_size` and `seed` serve contrib and
    marginalize)."""

    saved_model: str
    output_dir: str
    records_dir: str | None = None
    split: str = 'valid'
    regions_bed: str | None = None
    fasta: str | None = None
    control_pos_bigwig: str | None = None
    control_neg_bigwig: str | None = None
    method: str = 'deepshap'
    num_shuffles: int = 10
    steps: int = 20
    batch_size: int = 128
    seed: int = 0
    max_regions: int | None = None
    reverse_complement_average: bool = False
    targets: tuple[str, ...] = ()
    window: int = 400
    max_seqlets: int = 2000
    motif_db: str | None = None
    top: int = 3
    match_percentile: float = 5.0
    contrib_percentile: float = 1.0
    patterns: tuple[str, ...] = ()
    min_seqlet_match: float = 0.5
    marginalize: bool = False
    num_backgrounds: int = 64
    overwrite: bool = False
    verbose: bool = False


def _absolute(path: str | None) -> str | None:
    return path and os.path.abspath(path)


def step_settings(o: PipelineOptions) -> dict[str, dict[str, Any]]:
    """{step: the settings its results depend on} of the steps `o` runs (by flag name)."""
    settings = {
        'contrib': {
            'saved_model': _absolute(o.saved_model),
            'records_dir': _absolute(o.records_dir),
            'split': o.split if o.records_dir else None,
            'regions_bed': _absolute(o.regions_bed),
            'fasta': _absolute(o.fasta),
            'control_pos_bigwig': _absolute(o.control_pos_bigwig),
            'control_neg_bigwig': _absolute(o.control_neg_bigwig),
            'method': o.method,
            'num_shuffles': o.num_shuffles if o.method != 'ism' else None,
            'steps': o.steps if o.method == 'ig' else None,
            'seed': o.seed,
            'max_regions': o.max_regions,
            'reverse_complement_average': o.reverse_complement_average,
        },
        'discover': {'targets': list(o.targets), 'window': o.window, 'max_seqlets': o.max_seqlets},
        'annotate': {'motif_db': _absolute(o.motif_db), 'top': o.top},
        'scan': {
            'match_percentile': o.match_percentile,
            'contrib_percentile': o.contrib_percentile,
            'patterns': list(o.patterns),
            'min_seqlet_match': o.min_seqlet_match,
        },
        'marginalize': {'num_backgrounds': o.num_backgrounds, 'seed': o.seed},
    }
    skipped = {'annotate': not o.motif_db, 'marginalize': not o.marginalize}
    return {step: s for step, s in settings.items() if not skipped.get(step)}


def check_options(o: PipelineOptions) -> None:
    """Raises BpnetError for flags or files any step would refuse, before hours of work: the
    later steps' settings, the motif database, modisco-lite (and memelite) installed."""
    if not os.path.isdir(o.saved_model):
        raise PipelineError(f'{o.saved_model}: no such SavedModel folder')
    for name in ('records_dir', 'regions_bed', 'fasta', 'control_pos_bigwig'):
        path = getattr(o, name)
        if path and not os.path.exists(path):
            raise PipelineError(f'--{name}={path}: no such file or folder')
    if o.control_neg_bigwig and not os.path.exists(o.control_neg_bigwig):
        raise PipelineError(f'--control_neg_bigwig={o.control_neg_bigwig}: no such file')
    discovery.check_settings(o.window, o.max_seqlets, o.max_regions)
    instances.check_thresholds(o.match_percentile, o.contrib_percentile)
    if o.marginalize:
        experiments.check_backgrounds(o.num_backgrounds)
    if o.motif_db:
        annotation.check_inputs(o.motif_db, o.top)  # a bad database stops before any work
    discovery.import_modisco()


def _say(text: str) -> None:
    print(f'pipeline: {text}', file=sys.stderr, flush=True)


def _save(output_dir: str, state: dict[str, Any]) -> None:
    """Writes summary.json (`summary` of the record), renamed into place."""
    path = os.path.join(output_dir, 'summary.json')
    formats.write_json(f'{path}.tmp-{os.getpid()}', summary(state))
    os.replace(f'{path}.tmp-{os.getpid()}', path)


def _open_folder(output_dir: str, overwrite: bool, saved_model: str) -> tuple[dict, bool]:
    """(the record of an earlier run in `output_dir`, or a new one; whether the folder was
    made now). With `overwrite`, an existing folder is replaced."""
    path = os.path.join(output_dir, 'summary.json')
    if os.path.exists(output_dir) and overwrite:
        folders.move_aside(output_dir)
    elif os.path.isfile(path):
        try:
            with open(path) as f:
                state = json.load(f)
            if isinstance(state.get('steps'), dict):
                return state, False
        except (OSError, ValueError):
            pass
        raise PipelineError(
            f'{output_dir} exists and is not a pipeline folder; pass --overwrite to replace it'
        )
    elif os.path.exists(output_dir) and (not os.path.isdir(output_dir) or os.listdir(output_dir)):
        raise PipelineError(f'{output_dir} exists; pass --overwrite to replace it')
    created = not os.path.exists(output_dir)
    os.makedirs(output_dir, exist_ok=True)
    return {'saved_model': os.path.abspath(saved_model), 'steps': {}}, created


def _first_to_run(output_dir: str, state: dict, wanted: dict[str, dict]) -> int:
    """Index in `wanted` of the first step to run: the first unfinished one. Raises
    PipelineError when a finished step before it ran with other settings."""
    for i, step in enumerate(wanted):
        done = state['steps'].get(step)
        if not done or not os.path.isfile(os.path.join(output_dir, _DONE_FILES[step])):
            return i
        old, new = done['settings'], wanted[step]
        changed = [k for k in new if old.get(k) != new[k]]
        if changed:
            shown = ', '.join(f'--{k}={_flag(old.get(k))} (now {_flag(new[k])})' for k in changed)
            raise PipelineError(
                f'{output_dir} holds a run whose {step} step had other settings: {shown}; '
                'pass --overwrite to start again, or choose another --output_dir'
            )
    return len(wanted)


def _flag(value: Any) -> str:
    if value is None:
        return 'unset'
    return ','.join(map(str, value)) if isinstance(value, list) else str(value)


def _forget(output_dir: str, state: dict, first: str) -> None:
    """Drops the records of step `first` and every step after it (they run again, or their
    results would be stale) and the folders of those after it."""
    later = STEPS[STEPS.index(first) :]
    for step in later:
        state['steps'].pop(step, None)
    state.pop('stopped', None)
    for step in later[1:]:  # `first`'s own folder is replaced when it publishes
        folder = os.path.join(output_dir, _FOLDERS.get(step, ''))
        if step in _FOLDERS and os.path.isdir(folder):
            shutil.rmtree(folder)


# The steps: each runs its library into its folder and returns its part of the summary.


def _contrib(o: PipelineOptions, out: str) -> dict[str, Any]:
    result = contributions.compute_contributions(
        o.saved_model,
        os.path.join(out, 'contrib'),
        records_dir=o.records_dir,
        split=o.split,
        regions_bed=o.regions_bed,
        fasta=o.fasta,
        control_pos_bigwig=o.control_pos_bigwig,
        control_neg_bigwig=o.control_neg_bigwig,
        method=o.method,
        num_shuffles=o.num_shuffles,
        steps=o.steps,
        batch_size=o.batch_size,
        seed=o.seed,
        max_regions=o.max_regions,
        overwrite=True,
        reverse_complement_average=o.reverse_complement_average,
    )
    return {'regions': result['regions']}


def _discover(o: PipelineOptions, out: str) -> dict[str, Any]:
    found = discovery.discover(
        os.path.join(out, 'contrib'),
        os.path.join(out, 'discover'),
        targets=list(o.targets) or None,
        window=o.window,
        max_seqlets=o.max_seqlets,
        max_regions=o.max_regions,
        overwrite=True,
        verbose=o.verbose,
    )
    return {'patterns': {t: len(v) for t, v in found['targets'].items()}}


def _annotate(o: PipelineOptions, out: str) -> dict[str, Any]:
    result = annotation.annotate(os.path.join(out, 'discover'), o.motif_db, top=o.top)
    return {'annotation': result['best']}


def _scan(o: PipelineOptions, out: str) -> dict[str, Any]:
    scanned = instances.scan(
        os.path.join(out, 'discover'),
        os.path.join(out, 'scan'),
        match_percentile=o.match_percentile,
        contrib_percentile=o.contrib_percentile,
        patterns_wanted=list(o.patterns) or None,
        min_seqlet_match=o.min_seqlet_match,
        overwrite=True,
    )
    return {'instances': scanned['instances']}


def _marginalize(o: PipelineOptions, out: str) -> dict[str, Any]:
    motifs = experiments.discovered_motifs(os.path.join(out, 'discover'))
    if not motifs:
        raise PipelineError('discovery found no positive pattern to insert')
    result = experiments.run_marginalize(
        o.saved_model,
        os.path.join(out, 'contrib'),
        motifs,
        os.path.join(out, 'marginalize'),
        num_backgrounds=o.num_backgrounds,
        batch_size=o.batch_size,
        seed=o.seed,
        overwrite=True,
    )
    return {'marginalize': result['motifs']}


_RUN: dict[str, Callable[[PipelineOptions, str], dict[str, Any]]] = {
    'contrib': _contrib,
    'discover': _discover,
    'annotate': _annotate,
    'scan': _scan,
    'marginalize': _marginalize,
}


_RESULTS = ('regions', 'patterns', 'annotation', 'instances', 'marginalize', 'seconds')


def summary(state: dict[str, Any]) -> dict[str, Any]:
    """The pipeline's summary (summary.json): the record, with every finished step's results
    at the top ('regions', 'patterns', 'annotation', 'instances', 'marginalize') and
    'seconds', the time of all finished steps."""
    out = {'annotation': None, 'instances': {}}
    out.update((k, v) for k, v in state.items() if k not in _RESULTS)
    for step in STEPS:
        if step in state['steps']:
            out.update(state['steps'][step]['result'])
    out['seconds'] = round(sum(s['seconds'] for s in state['steps'].values()), 1)
    return out


def _report(output_dir: str, state: dict[str, Any]) -> None:
    """report.html from the discovery folder (with the scan's counts once scanned); none
    before discovery."""
    if 'discover' not in state['steps']:
        return
    html_report.write_report(
        os.path.join(output_dir, 'discover'),
        output_html=os.path.join(output_dir, formats.REPORT_FILENAME),
        instances=summary(state)['instances'] if 'scan' in state['steps'] else None,
    )


def _stop(output_dir: str, state: dict, step: str, error: str, created: bool) -> str:
    """Records the stopped step, writes the report of the finished ones (or removes a folder
    made for nothing); returns what the error line adds: what was kept."""
    if not state['steps'] and created:
        shutil.rmtree(output_dir, ignore_errors=True)
        return ''
    state['stopped'] = {'step': step, 'error': error}
    _report(output_dir, state)
    _save(output_dir, state)
    kept = [f'{s}/' for s in _FOLDERS if s in state['steps']]
    kept += ['report.html'] if 'discover' in state['steps'] else []
    return (
        f'; kept {", ".join(kept + ["summary.json"])} in {output_dir}: the same command '
        f'continues from {step}'
    )


def run_pipeline(o: PipelineOptions) -> dict[str, Any]:
    """Runs contrib -> discover -> annotate (with `motif_db`) -> scan -> [marginalize] ->
    report into `o.output_dir`, continuing an earlier run there from its first unfinished
    step. Returns the summary (`summary`; summary.json holds the record).

    Raises:
      BpnetError: bad flags or files before any step; a step that stopped (which, why, what
        was kept).
    """
    output_dir = os.path.abspath(o.output_dir)
    check_options(o)
    wanted = step_settings(o)
    state, created = _open_folder(output_dir, o.overwrite, o.saved_model)
    steps = list(wanted)
    first = _first_to_run(output_dir, state, wanted)
    if first < len(steps):
        _forget(output_dir, state, steps[first])
    total = len(steps) + 1
    for k, step in enumerate(steps, 1):
        if k <= first:
            _say(f'step {k}/{total}: {TITLES[step]}: done before, kept ({_DONE_FILES[step]})')
            continue
        _say(f'step {k}/{total}: {TITLES[step]}')
        start = time.perf_counter()
        try:
            result = _RUN[step](o, output_dir)
        except BpnetError as e:
            kept = _stop(output_dir, state, step, str(e), created)
            raise PipelineError(f'step {k}/{total} ({step}) stopped: {e}{kept}') from None
        seconds = round(time.perf_counter() - start, 1)
        state['steps'][step] = {'settings': wanted[step], 'result': result, 'seconds': seconds}
        _save(output_dir, state)
    _say(f'step {total}/{total}: report')
    _report(output_dir, state)
    _save(output_dir, state)
    return summary(state)
