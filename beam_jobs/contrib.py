"""Genome-scale contribution scores: `python -m bpnet_tfx.contrib` as a Beam job.

    python -m beam_jobs.contrib --saved_model=model/export (--regions_bed=peaks.bed \\
        [--fasta=genome.fa] | --records_dir=records [--split=valid]) --output_dir=contrib \\
        [--method=deepshap] [--num_shuffles=10] [--runner=DataflowRunner ...]

Writes the command's folder (regions.bed in input order, ohe.npz, per target shap.npz and
contrib.bw, summary.json) with the command's scores: the same flags, and each window's
references from its own seeded generator, so no score depends on the batch size, the shards
or the workers. The driver reads the windows (a records split is staged, a shard at a time,
in a temporary sibling of --output_dir) and cuts them into shards of consecutive rows
(contributions/plan.py); the workers score whole shards through RunInference with the shared
model handler, and one writer appends the shards in input order to the command's folder
writer (contributions/transforms.py). The folder is moved into place only when complete: a
failed run leaves none. The command line prints progress and a summary; -v brings back INFO
logs, Beam's warnings and TensorFlow's log lines. Other runners: docs/runners.md.
"""

from __future__ import annotations

import sys

from beam_jobs.common import logs  # No Beam import: it must come first on the command line.

if __name__ == '__main__':  # Before Beam's import logs its 'apitools not found' warning.
    logs.configure(logs.verbose_requested(sys.argv[1:]), prog='contrib')

import argparse
import json
import math
import os
import shutil
import tempfile
import time
from typing import Any, Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, SetupOptions

from beam_jobs.common import arguments, runners, shard_plans
from beam_jobs.common import files as files_lib
from beam_jobs.common.errors import RecordsInputError
from beam_jobs.contributions import plan as plan_lib
from beam_jobs.contributions import transforms
from beam_jobs.inference import outputs, startup
from bpnet_tfx.attribution import contributions
from bpnet_tfx.attribution import scorer as attribution
from bpnet_tfx.attribution import windows as contrib_windows
from bpnet_tfx.attribution.output import SUMMARY_FILENAME
from bpnet_tfx.common.errors import BpnetError
from bpnet_tfx.genome import genome_io
from bpnet_tfx.genome.genome_io import GenomeError
from bpnet_tfx.records import schema
from bpnet_tfx.records.schema import SchemaError

PROG = 'contrib'
PLANS_FILENAME = '_shard_plans.jsonl'
STARTED_FILENAME = '_workers_started'
REGIONS_PER_SHARD = 100  # --num_shards=auto
_SETTINGS = ('method', 'num_shuffles', 'steps', 'batch_size', 'seed', 'reverse_complement_average')
_PATHS = (
    'saved_model',
    'records_dir',
    'regions_bed',
    'fasta',
    'output_dir',
    'control_pos_bigwig',
    'control_neg_bigwig',
)


def _parser() -> argparse.ArgumentParser:
    parser = arguments.job_parser(PROG, __doc__.split('\n\n')[0])
    add = parser.add_argument
    add('--saved_model', help='SavedModel folder written by train (local or gs://...).')
    add('--records_dir', help='Records folder whose --split windows to explain.')
    add('--split', default='valid', help='Split of --records_dir: train, valid or test.')
    add('--regions_bed', help='BED file of regions to explain instead of --records_dir.')
    add('--fasta', help="Genome FASTA for --regions_bed; default: the training records' one.")
    add('--control_pos_bigwig', help='Plus-strand control bigWig for --regions_bed.')
    add('--control_neg_bigwig', help='Minus-strand control bigWig for --regions_bed.')
    add('--output_dir', help='Folder to create for the outputs.')
    add('--method', default='deepshap', choices=attribution.METHODS, help='As the command.')
    add('--num_shuffles', type=int, default=10, help='Shuffled references per window.')
    add('--steps', type=int, default=20, help='Integration steps per reference (ig).')
    add('--batch_size', type=int, default=128, help='Model inputs per call, as the command.')
    add('--seed', type=int, default=0, help="Seed of the references (with each window's name).")
    add('--max_regions', type=int, default=0, help='Explain only the first N windows; 0: all.')
    add(
        '--reverse_complement_average',
        action='store_true',
        help="Also score each window's reverse complement and average it in (twice the work).",
    )
    add('--overwrite', action='store_true', help='Replace an existing --output_dir when done.')
    add(
        '--num_shards',
        default='auto',
        help=f'Shards of consecutive windows, the units of work: auto (1 per '
        f'{REGIONS_PER_SHARD} windows) or a number (at most the number of windows).',
    )
    add(
        '--worker_start_timeout',
        type=float,
        default=600.0,
        help="Seconds to wait for the runner's first worker to run a step before the job is "
        'cancelled (0: no limit).',
    )
    add(*logs.VERBOSE_FLAGS, dest='verbose', action='store_true', help='Show the logs.')
    return parser


def _absolute(path: str) -> str:
    return path if files_lib.is_remote(path) else os.path.abspath(path)


def _check_flags(args: argparse.Namespace) -> None:
    if not args.saved_model or not args.output_dir:
        raise contrib_windows.ContribError('--saved_model and --output_dir are needed')
    if bool(args.records_dir) == bool(args.regions_bed):
        raise contrib_windows.ContribError('give exactly one of --records_dir and --regions_bed')
    problems = [
        f'--{name} must be >= 1, got {getattr(args, name)}'
        for name in ('num_shuffles', 'steps', 'batch_size')
        if getattr(args, name) < 1
    ]
    if args.max_regions < 0:
        problems.append(f'--max_regions must be >= 0 (0: all), got {args.max_regions}')
    if args.records_dir and (args.control_pos_bigwig or args.control_neg_bigwig):
        problems.append('--control_pos_bigwig/--control_neg_bigwig go with --regions_bed')
    problems.append(outputs.check_num_shards(args.num_shards))
    if not 0.0 <= args.worker_start_timeout < math.inf:
        problems.append(f'--worker_start_timeout must be >= 0 s, got {args.worker_start_timeout}')
    for name in ('regions_bed', 'fasta'):
        path = getattr(args, name)
        if path and not files_lib.exists(path):
            problems.append(f'{path}: no such {"BED" if name == "regions_bed" else "FASTA"} file')
    problems = [p for p in problems if p]
    if problems:
        raise contrib_windows.ContribError(problems[0])
    for name in _PATHS:
        if getattr(args, name):
            setattr(args, name, _absolute(getattr(args, name)))


def _bed_input(args, model, local_dir: str) -> dict[str, Any]:
    """The BED's windows (the first --max_regions), header and summary parts."""
    fasta = args.fasta or model.info.source.get('fasta')
    if not fasta:
        raise contrib_windows.ContribError("--fasta is needed: the model's metadata names no FASTA")
    controls = contrib_windows.bed_controls(model, args.control_pos_bigwig, args.control_neg_bigwig)
    local = files_lib.localize_inputs([fasta, args.regions_bed], local_dir)
    with genome_io.open_fasta(local[fasta]) as genome:
        sizes = genome_io.chrom_sizes(genome)
    windows = contrib_windows.bed_windows(
        local[args.regions_bed], sizes, model.config.sequence_length, fasta=fasta
    )[: args.max_regions or None]
    return {
        'windows': windows,
        'header': (list(sizes.items()), fasta),
        'source': {'regions_bed': args.regions_bed, 'fasta': _absolute(fasta)},
        'control_from': None if controls is None else [list(map(_absolute, p)) for p in controls],
        'fasta': fasta,
        'controls': controls,
    }


def _records_input(args, model, tmp_dir: str) -> dict[str, Any]:
    """The split's windows staged in `tmp_dir`, header and summary parts."""
    info = schema.RecordsInfo.load(args.records_dir)
    contributions.check_records_fit(model.config, model.path, args.records_dir, info)
    control_from = contrib_windows.records_control(model, args.records_dir, info)
    total = info.split_counts.get(args.split)
    if total is not None and args.max_regions:
        total = min(total, args.max_regions)
    shards = outputs.num_shards(args.num_shards, total or REGIONS_PER_SHARD, REGIONS_PER_SHARD)
    lines, windows = plan_lib.stage_records(
        args.records_dir,
        info,
        args.split,
        rows_per_shard=-(-total // shards) if total else REGIONS_PER_SHARD,
        limit=args.max_regions or None,
        output_dir=tmp_dir,
    )
    if not windows:
        raise contrib_windows.ContribError(
            f'{args.records_dir}: the {args.split} split holds no records'
        )
    header = contrib_windows.records_header(args.records_dir, info, args.fasta, windows)
    return {
        'windows': windows,
        'lines': lines,
        'header': header,
        'source': {'records_dir': args.records_dir, 'split': args.split},
        'control_from': control_from,
        'fasta': None,
        'controls': None,
    }


def _run_pipeline(args, pipeline_args, save_main_session, *, tmp_dir, plan) -> None:
    """Builds and runs plans -> ScoreShards -> WriteFolder (module docstring)."""
    shards = len(plan['lines'])
    options = PipelineOptions(runners.resolve_args(list(pipeline_args), num_plans=shards))
    options.view_as(SetupOptions).save_main_session = save_main_session
    p = runners.make_pipeline(options)
    started = files_lib.join(tmp_dir, STARTED_FILENAME)
    sizes = plan_lib.write_plans(files_lib.join(tmp_dir, PLANS_FILENAME), plan['lines'])
    _ = (
        p
        | 'ReadShardPlans'
        >> shard_plans.ReadShardPlans(files_lib.join(tmp_dir, PLANS_FILENAME), sizes, started)
        | 'SpreadShards' >> beam.Reshuffle()
        | 'ScoreShards'
        >> transforms.ScoreShards(
            args.saved_model,
            verbose=args.verbose,
            progress_every=max(1, len(plan['windows']) // 20),
            fasta=plan['fasta'],
            controls=plan['controls'],
            output_dir=tmp_dir,
            settings={k: getattr(args, k) for k in _SETTINGS},
        )
        | 'WriteFolder'
        >> transforms.WriteFolder(tmp_dir, plan['targets'], plan['header'][0], shards)
    )
    from bpnet_tfx.inference.export import ExportError  # TensorFlow: imported by now.

    runners.run_and_wait(
        p,
        runner_name=runners.runner_name(options),
        started=lambda: files_lib.exists(started),
        timeout=args.worker_start_timeout,
        user_errors=(GenomeError, ExportError, SchemaError, contrib_windows.ContribError),
        wrap=contrib_windows.ContribError,
    )


def _score(tmp_dir: str, args, pipeline_args, save_main_session, model, started) -> dict:
    """Windows -> pipeline -> the folder and summary.json in `tmp_dir`; returns the summary."""
    local_dir = tempfile.mkdtemp(prefix='contrib-in-')
    try:
        if args.records_dir:
            plan = _records_input(args, model, tmp_dir)
        else:
            plan = _bed_input(args, model, local_dir)
            num = outputs.num_shards(args.num_shards, len(plan['windows']), REGIONS_PER_SHARD)
            plan['lines'] = plan_lib.bed_plans(plan['windows'], num)
    finally:
        shutil.rmtree(local_dir, ignore_errors=True)
    targets = attribution.targets_of(model.info)
    plan['targets'] = [t.name for t in targets]
    print(
        f'{PROG}: {len(plan["windows"])} windows in {len(plan["lines"])} shard(s); scoring',
        file=sys.stderr,
        flush=True,
    )
    _run_pipeline(args, pipeline_args, save_main_session, tmp_dir=tmp_dir, plan=plan)
    files_path = files_lib.join(tmp_dir, transforms.FILES_FILENAME)
    if not files_lib.exists(files_path):
        raise runners.PipelineRunError(f'{PROG}: the run wrote no contrib folder')
    files = json.loads(files_lib.read_text(files_path))
    transforms.remove_staged(tmp_dir)
    for name in (PLANS_FILENAME, STARTED_FILENAME):
        if files_lib.exists(files_lib.join(tmp_dir, name)):
            files_lib.delete(files_lib.join(tmp_dir, name))
    summary = contributions.summary_settings(
        args.saved_model,
        targets,
        model.config.sequence_length,
        source=plan['source'],
        control_from=plan['control_from'],
        max_regions=args.max_regions or None,
        **{k: getattr(args, k) for k in _SETTINGS},
    )
    header, summary['header_from'] = plan['header']
    summary.update(files=files, regions=len(plan['windows']), chrom_sizes=header)
    summary['seconds'] = round(time.perf_counter() - started, 3)
    summary['beam_job'] = {'shards': len(plan['lines']), 'pipeline_args': list(pipeline_args)}
    text = json.dumps(summary, indent=2, sort_keys=True) + '\n'
    files_lib.write_text(files_lib.join(tmp_dir, SUMMARY_FILENAME), text)
    return summary


def run(argv: Sequence[str] | None = None, save_main_session: bool = False) -> dict[str, Any]:
    """Runs the job.

    Args:
      argv: command-line arguments; the ones this job does not define go to Beam.
      save_main_session: pickle the main session for workers (not needed).

    Returns:
      summary.json's contents: the command's ('regions', 'files', 'seconds', 'method', ...)
      and 'beam_job' ({'shards', 'pipeline_args'}).

    Raises:
      BpnetError: bad flags or inputs (one line), a worker's input error.
      RecordsInputError: an existing --output_dir without --overwrite, a runner Beam lacks.
      runners.PipelineRunError: the run failed.
    """
    started = time.perf_counter()
    args, pipeline_args, model = startup.start_job(
        _parser(), argv, _check_flags, output=(SUMMARY_FILENAME, 'contrib folder')
    )
    summary = files_lib.write_into_place(
        args.output_dir,
        lambda tmp: _score(tmp, args, pipeline_args, save_main_session, model, started),
        last=SUMMARY_FILENAME,
    )
    print(
        f'{PROG}: {summary["regions"]} regions ({summary["method"]}) in '
        f'{summary["beam_job"]["shards"]} shard(s), {time.perf_counter() - started:.1f} s -> '
        f'{args.output_dir}/ (' + ', '.join(summary['files'].values()) + ')'
    )
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the job; input errors become one line on stderr and exit status 2, a failed run
    one line and exit status 1 (with -v, after the runner's full error)."""
    return runners.job_main(PROG, run, argv, (BpnetError, RecordsInputError))


if __name__ == '__main__':
    sys.exit(main())
