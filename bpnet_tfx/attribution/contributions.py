"""The contrib job: contribution scores of every window of records or a BED, as one folder.

Windows come from a records split (the centred windows; region ids give their coordinates) or
from a BED file (each line the model-length window centred on it, `bed.bed_windows`), in
input order; `max_regions` keeps the first N. Window 'chrom:start-end' draws its references
from `shuffle.keyed_rng(seed, 'chrom:start-end')`, so its scores depend on neither the batch
size, nor where it sits in the input (nor on whether it came from records or a BED), nor the
devices (each batch is split over them, `devices.split_batch`). Scores and their formulas:
`attribution`; the folder's files: `contrib_output`.

The folder is written to a temporary sibling of the output folder, as windows are scored (no
scores are held in memory), and renamed into place once complete. A genome-scale run can be
split over hosts: the run with `shard=(i, S)` scores rows j of the input with j % S == i
(after `max_regions`) into a folder of its own, and `merge_shards` joins the S folders into
the folder a one-shot run writes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
import types
from typing import Any

from bpnet_tfx.attribution import output as contrib_output
from bpnet_tfx.attribution import scorer as attribution
from bpnet_tfx.attribution import window_scoring
from bpnet_tfx.attribution import windows as contrib_windows
from bpnet_tfx.attribution.output import Window, load_outputs  # noqa: F401 (the public API)
from bpnet_tfx.attribution.window_scoring import (  # noqa: F401 (check_records_fit: public)
    Settings,
    check_records_fit,
    score_bed,
    score_records,
)
from bpnet_tfx.attribution.windows import ContribError, bed_windows  # noqa: F401
from bpnet_tfx.common import folders
from bpnet_tfx.records import schema


@dataclasses.dataclass(frozen=True)
class _Inputs:
    """Which windows are scored, and from where (the input arguments of
    `compute_contributions`)."""

    records_dir: str | None
    split: str
    regions_bed: str | None
    fasta: str | None
    control_bigwigs: tuple[str | None, str | None]
    max_regions: int | None


# Checks before any work.


def _check_arguments(output_dir: str, settings: Settings, inputs: _Inputs, overwrite: bool):
    """Raises ContribError for flags that cannot work, before anything is loaded."""
    records_dir, regions_bed, fasta = inputs.records_dir, inputs.regions_bed, inputs.fasta
    max_regions = inputs.max_regions
    if bool(records_dir) == bool(regions_bed):
        raise ContribError('give exactly one of --records_dir and --regions_bed')
    if settings.method not in attribution.METHODS:
        raise ContribError(
            f'--method must be one of {", ".join(attribution.METHODS)}, got {settings.method!r}'
        )
    for name in ('num_shuffles', 'steps', 'batch_size'):
        if getattr(settings, name) < 1:
            raise ContribError(f'--{name} must be >= 1, got {getattr(settings, name)}')
    index, count = settings.shard
    if count < 1 or not 0 <= index < count:
        raise ContribError(
            f'--shard_index must be in 0..--num_shards - 1 and --num_shards >= 1, got '
            f'--shard_index={index} --num_shards={count}'
        )
    if max_regions is not None and max_regions < 1:
        raise ContribError(f'--max_regions must be >= 1, got {max_regions}')
    if os.path.exists(output_dir) and not (overwrite and os.path.isdir(output_dir)):
        raise ContribError(f'{output_dir} exists; pass --overwrite to replace it')
    if regions_bed and not os.path.isfile(regions_bed):
        raise ContribError(f'{regions_bed}: no such BED file')
    if fasta and not os.path.isfile(fasta):
        raise ContribError(f'{fasta}: no such FASTA file')
    if records_dir and any(inputs.control_bigwigs):
        raise ContribError(
            '--control_pos_bigwig/--control_neg_bigwig go with --regions_bed; '
            'with --records_dir the records\' own control counts are used'
        )


# The whole job.


def _plan(
    scorer: attribution.Scorer,
    settings: Settings,
    inputs: _Inputs,
    info: schema.RecordsInfo | None,
):
    """(the summary's 'input', its 'control', score(writer) -> (header, header_from)) of
    records or BED input; checks the controls."""
    records_dir, split, regions_bed = inputs.records_dir, inputs.split, inputs.regions_bed
    fasta, max_regions = inputs.fasta, inputs.max_regions
    if records_dir:
        control_from = contrib_windows.records_control(scorer.model, records_dir, info)
        source = {'records_dir': os.path.abspath(records_dir), 'split': split}

        def score(writer):
            return score_records(
                scorer, settings, writer, records_dir, info, split, max_regions, fasta
            )
    else:
        controls = contrib_windows.bed_controls(scorer.model, *inputs.control_bigwigs)
        control_from = (
            None if controls is None else [[os.path.abspath(p) for p in pair] for pair in controls]
        )
        source = {'regions_bed': os.path.abspath(regions_bed)}

        def score(writer):
            header = score_bed(scorer, settings, writer, regions_bed, fasta, max_regions, controls)
            source['fasta'] = os.path.abspath(header[1])
            return header

    return source, control_from, score


def compute_contributions(
    saved_model: str,
    output_dir: str,
    *,
    records_dir: str | None = None,
    split: str = 'valid',
    regions_bed: str | None = None,
    fasta: str | None = None,
    control_pos_bigwig: str | None = None,
    control_neg_bigwig: str | None = None,
    method: str = 'deepshap',
    num_shuffles: int = 10,
    steps: int = 20,
    batch_size: int = 128,
    seed: int = 0,
    max_regions: int | None = None,
    overwrite: bool = False,
    reverse_complement_average: bool = False,
    shard_index: int = 0,
    num_shards: int = 1,
) -> dict[str, Any]:
    """Computes contribution scores of every window and writes the output folder.

    Windows, sharding and layout: module docstring. A model with control tracks gets each
    window's observed control counts, held fixed (the records' or the control bigWigs').

    Args:
      saved_model, output_dir: the export; the folder to create.
      records_dir, split: records folder and its split; or `regions_bed`, a BED of regions.
      fasta: genome FASTA for `regions_bed` (with records: the header); default: the records'.
      control_pos_bigwig, control_neg_bigwig: control bigWigs for `regions_bed` (for every
        task); default: each task's in the model's metadata.
      method: 'ig', 'deepshap' or 'ism' (`scorer.METHODS`).
      num_shuffles, steps: K references per window (ig, deepshap), S midpoint steps (ig).
      batch_size: model inputs per device call (`Settings.windows_per_call`); scores do not
        depend on it.
      seed: window 'chrom:start-end' draws its references from shuffle.keyed_rng(seed, it).
      max_regions: only the first this many windows, in input order (None: all).
      overwrite: replace an existing `output_dir` (only once the new one is complete).
      reverse_complement_average: average with the reverse complement's scores, mapped back.
      shard_index, num_shards: score only rows j with j % num_shards == shard_index.

    Returns:
      {'regions', 'seconds', 'output_dir', 'files', 'targets', 'header_from', 'devices',
       'control' (None, 'records' or the bigWig pairs per task) and the settings}.

    Raises:
      BpnetError: bad flags or input (one line), an unreadable export or records.
    """
    start_time = time.perf_counter()
    rc_average, shard = bool(reverse_complement_average), (shard_index, num_shards)
    settings = Settings(method, num_shuffles, steps, batch_size, seed, rc_average, shard)
    controls = (control_pos_bigwig, control_neg_bigwig)
    inputs = _Inputs(records_dir, split, regions_bed, fasta, controls, max_regions)
    output_dir = os.path.abspath(output_dir)
    _check_arguments(output_dir, settings, inputs, overwrite)
    info = schema.RecordsInfo.load(records_dir) if records_dir else None  # before TensorFlow
    from bpnet_tfx.inference import export

    scorer = attribution.Scorer(export.ExportedModel(saved_model))
    source, control_from, score = _plan(scorer, settings, inputs, info)
    summary = _summary(saved_model, scorer, settings, max_regions, source, control_from)
    return _publish(output_dir, scorer, settings, summary, score, start_time)


def _summary(
    saved_model: str,
    scorer: attribution.Scorer,
    settings: Settings,
    max_regions: int | None,
    source: dict[str, Any],
    control_from: Any,
) -> dict[str, Any]:
    """summary.json's settings part: what was scored, how, and from which input."""
    summary = {
        'saved_model': os.path.abspath(saved_model),
        'input': source,
        'method': settings.method,
        'num_shuffles': settings.num_shuffles if settings.uses_references else None,
        'steps': settings.steps if settings.method == 'ig' else None,
        'reverse_complement_average': settings.reverse_complement_average,
        'seed': settings.seed,
        'max_regions': max_regions,
        'sequence_length': scorer.length,
        'control': control_from,
        'targets': [dataclasses.asdict(t) for t in scorer.targets],
    }
    shard_index, num_shards = settings.shard
    if num_shards > 1:
        summary.update(shard_index=shard_index, num_shards=num_shards)
    return summary


def _publish(
    output_dir: str,
    scorer: attribution.Scorer,
    settings: Settings,
    summary: dict[str, Any],
    score,
    start_time: float,
) -> dict[str, Any]:
    """Scores into a temporary sibling of `output_dir` with `score(writer)`, writes
    summary.json there and renames it into place; returns `compute_contributions`' dict."""

    def write(tmp: str) -> dict[str, Any]:
        writer = contrib_output.FolderWriter(tmp, [t.name for t in scorer.targets])
        header, summary['header_from'] = score(writer)
        summary['files'] = writer.finish(header)
        summary['regions'], summary['chrom_sizes'] = len(writer.windows), header
        return _write_summary(tmp, summary, start_time)

    written = folders.write_atomically(output_dir, write)
    return {
        **{k: written[k] for k in ('regions', 'seconds', 'method', 'header_from', 'control')},
        'output_dir': output_dir,
        'files': {k: os.path.join(output_dir, v) for k, v in written['files'].items()},
        'num_shuffles': settings.num_shuffles,
        'steps': settings.steps,
        'reverse_complement_average': settings.reverse_complement_average,
        'targets': [t.name for t in scorer.targets],
        'devices': len(scorer.model.devices),
    }


def _write_summary(folder: str, summary: dict[str, Any], start_time: float) -> dict[str, Any]:
    """Writes summary.json with 'seconds' since `start_time` added; returns it."""
    summary = {**summary, 'seconds': round(time.perf_counter() - start_time, 3)}
    with open(os.path.join(folder, contrib_output.SUMMARY_FILENAME), 'w') as f:
        json.dump(summary, f, indent=2, sort_keys=True)
        f.write('\n')
    return summary


def merge_contributions(
    shard_dirs: list[str], output_dir: str, *, overwrite: bool = False
) -> dict[str, Any]:
    """Joins the folders of every shard of one run into the folder a one-shot run writes.

    Args:
      shard_dirs: the S folders written with num_shards=S, in any order.
      output_dir: the folder to create (published once complete).
      overwrite: replace an existing `output_dir`.

    Returns:
      {'regions', 'shards', 'seconds', 'output_dir', 'files'}.

    Raises:
      BpnetError: not every shard of one run, or unreadable folders (one line).
    """
    start_time = time.perf_counter()
    output_dir = os.path.abspath(output_dir)
    if not shard_dirs:
        raise ContribError('--merge names no shard folders')
    missing = next((d for d in shard_dirs if not os.path.isdir(d)), None)
    if missing:
        raise ContribError(f'{missing}: no such shard folder')
    if os.path.exists(output_dir) and not (overwrite and os.path.isdir(output_dir)):
        raise ContribError(f'{output_dir} exists; pass --overwrite to replace it')

    def write(tmp: str) -> dict[str, Any]:
        summary = contrib_output.merge_shards(shard_dirs, tmp)
        return _write_summary(tmp, summary, start_time)

    written = folders.write_atomically(output_dir, write)
    return {
        'regions': written['regions'],
        'shards': len(shard_dirs),
        'seconds': written['seconds'],
        'output_dir': output_dir,
        'files': {k: os.path.join(output_dir, v) for k, v in written['files'].items()},
    }


# For jobs that score the windows elsewhere (beam_jobs.contrib): the command's batch sizing,
# scoring of one batch and summary settings, from plain arguments.


def windows_per_call(
    method: str, num_shuffles: int, batch_size: int, length: int, reverse_complement_average: bool
) -> int:
    """Windows per model call for `batch_size` model inputs, as the command groups them."""
    settings = Settings(method, num_shuffles, 1, batch_size, 0, reverse_complement_average)
    return settings.windows_per_call(length)


def score_batch(
    scorer: attribution.Scorer,
    windows: list[Window],
    one_hot,
    control,
    **settings: Any,
):
    """Per target hyp (B, L, 4) of one batch of windows, scored as the command scores them.

    Args:
      scorer, windows, one_hot, control: the scorer; the batch's windows, one-hot (B, L, 4)
        and control counts or None.
      settings: method, num_shuffles, steps, batch_size, seed, reverse_complement_average
        (`compute_contributions`' arguments).
    """
    return window_scoring.score_batch(scorer, windows, one_hot, control, Settings(**settings))


def summary_settings(
    saved_model: str,
    targets: list[attribution.Target],
    sequence_length: int,
    *,
    source: dict[str, Any],
    control_from: Any,
    max_regions: int | None,
    **settings: Any,
) -> dict[str, Any]:
    """summary.json's settings part (`compute_contributions`' folder) for windows scored
    elsewhere; `settings` as for `score_batch`."""
    scorer = types.SimpleNamespace(length=sequence_length, targets=targets)
    return _summary(saved_model, scorer, Settings(**settings), max_regions, source, control_from)
