"""The records job: genome FASTA + peaks + stranded bigWigs -> sharded TFRecords + metadata.json.

    python -m beam_jobs.make_records --runner=DirectRunner            # demo data
    python -m beam_jobs.make_records --fasta=g.fa --peaks=p.narrowPeak \\
        --pos_bigwig=pos.bw --neg_bigwig=neg.bw --output_dir=records --valid_chroms=chr1
    python -m beam_jobs.make_records --fasta=g.fa --tasks_spec=tasks.yaml --output_dir=records

The driver reads and checks the peaks of every task and chooses the windows (planning.py:
duplicates, windows past a chromosome end, blacklisted windows and count outliers set aside,
GC-matched background windows added), deals them out to the shard files (shards.py), writes
the plans beside the output and runs the pipeline (transforms.py) into a temporary sibling
folder; then it balances the books (accounting.py), writes metadata.json and rejected.tsv there
and moves the folder into place, so a failed run leaves no output folder. A split the user
asked for (--valid_chroms, by default chr1; --test_chroms) that can give no record stops the
job unless --allow_empty_splits. With no data flags at all it makes (or reuses) the simulated
demo data set. Inputs and the output folder may be remote (gs://...): see files.py.
`--runner=DirectRunner` (the default) runs on Beam's FnApiRunner directly, skipping Beam's
attempt to download the Prism runner; other runners are used as given (`--runner=DaskRunner`
is mapped to the Dask runner's class path: runners.py), with the same graph and the same shard
bytes (docs/runners.md). A run whose workers never start is cancelled after
--worker_start_timeout; a killed run's temporary folder is removed by the next run into the
same output; a failed run is one line. The command line prints
progress and the summary only; -v brings back INFO logs and Beam's warnings (logs.py).
"""

from __future__ import annotations

import sys

from beam_jobs import logs  # No Beam import: it must come first on the command line.

if __name__ == '__main__':  # Before Beam's import logs its 'apitools not found' warning.
    logs.configure(logs.verbose_requested(sys.argv[1:]))

import argparse
import dataclasses
import datetime
import importlib.metadata
import json
import logging
import math
import os
import re
import secrets
import time
import traceback
from typing import Any, Callable, Sequence, TypeVar

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, SetupOptions, StandardOptions

from beam_jobs import accounting, encodings, planning, regions, runners, shards, transforms, windows
from beam_jobs import background as background_lib
from beam_jobs import files as files_lib
from beam_jobs import tasks as tasks_lib
from bpnet_tfx import schema

RecordsInputError = regions.RecordsInputError

_DEMO_OUTPUT_DIR = os.path.join('demo_output', 'records')
_DEFAULT_TASK = 'task0'
_DEFAULT_VALID_CHROMS = 'chr1'
_REQUIRED_DATA_FLAGS = ('fasta', 'peaks', 'pos_bigwig', 'neg_bigwig')
_PAIR_FLAGS = (
    ('expected_pos_bigwig', 'expected_neg_bigwig'),
    ('control_pos_bigwig', 'control_neg_bigwig'),
)
_TASK_FLAGS = ('peaks', 'pos_bigwig', 'neg_bigwig') + tuple(f for p in _PAIR_FLAGS for f in p)
_LOCAL_RUNNERS = ('DirectRunner', 'SwitchingDirectRunner')
_WORKER_ERROR_RE = re.compile(r'RecordsInputError: (.+)')  # In a remote worker's traceback.
_STEP_SUFFIX_RE = re.compile(r" \[while running '[^']*'\]")  # Added by Beam to the message.

_T = TypeVar('_T')
_LOGGER = logging.getLogger('beam_jobs.make_records')  # Not __main__ under python -m.


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='make_records',
        description=__doc__.split('\n\n')[0],
        allow_abbrev=False,
        epilog='Other flags (--runner, --direct_num_workers, --setup_file, ...) go to Beam.',
    )
    _add_data_flags(
        parser.add_argument_group(
            'data (give none of them for the demo data set; paths may be gs:// or other URLs)'
        )
    )
    parser.add_argument(
        '--task_name',
        default=None,
        help=f'Task name stored in metadata.json (default: {_DEFAULT_TASK!r}, '
        "or the demo data set's task); single-task flags only.",
    )
    parser.add_argument(
        '--output_dir',
        default=None,
        help='Records folder to create, local or on a file system the workers '
        f'reach, e.g. gs:// (default for the demo: ./{_DEMO_OUTPUT_DIR}).',
    )
    _add_window_flags(parser)
    _add_encoding_flags(parser)
    _add_split_flags(parser)
    parser.add_argument(
        '--num_shards',
        default='auto',
        help='Shard files per split: auto (about 1 per '
        f'{shards.RECORDS_PER_SHARD} records, at least 1 per split with '
        'regions), one number for every split with regions, or '
        'train=8,valid=1,test=1.',
    )
    parser.add_argument(
        '--overwrite',
        action='store_true',
        help='Replace an existing --output_dir (only once the new one is done).',
    )
    parser.add_argument(
        '--demo',
        default='default',
        choices=('default', 'multitask', 'sparse'),
        help='Which simulated data set to use when no data flags are given: '
        "'default' (one task), 'multitask' (two tasks and a control track) or "
        "'sparse' (the default's peaks over a 6.5x larger genome: room for "
        'background regions).',
    )
    parser.add_argument(
        '--worker_start_timeout',
        type=float,
        default=600.0,
        help="Seconds to wait for the runner's first worker to run a step "
        'before the job is cancelled and stops with an error (0: wait as '
        'long as it takes). Raise it where workers install packages first '
        '(Dataflow with --setup_file: 1800).',
    )
    parser.add_argument(
        *logs.VERBOSE_FLAGS,
        dest='verbose',
        action='store_true',
        help="Log the job's INFO lines and Beam's warnings to stderr (default: "
        'progress and the summary only). Command line only: run() leaves '
        "the caller's logging as it is.",
    )
    return parser


def _add_data_flags(data) -> None:
    data.add_argument('--fasta', help='Genome FASTA (plain or bgzip; a .fai is made if missing).')
    data.add_argument(
        '--tasks_spec',
        help='JSON or YAML file naming several tasks, each with its peaks and '
        'bigWigs (see the README); replaces --peaks and the bigWig flags.',
    )
    data.add_argument(
        '--peaks',
        help='Peaks: BED3/BED6 (centre = midpoint) or narrowPeak '
        '(centre = start + column 10); plain or .gz.',
    )
    data.add_argument('--pos_bigwig', help='Plus-strand counts bigWig (base resolution).')
    data.add_argument('--neg_bigwig', help='Minus-strand counts bigWig (base resolution).')
    data.add_argument(
        '--control_pos_bigwig',
        help=f'Optional plus-strand control (input) counts, stored as {schema.KEY_CONTROL}.',
    )
    data.add_argument('--control_neg_bigwig', help='Optional minus-strand control counts.')
    data.add_argument(
        '--expected_pos_bigwig', help='Optional plus-strand noise-free track (simulated data).'
    )
    data.add_argument(
        '--expected_neg_bigwig', help='Optional minus-strand noise-free track (simulated data).'
    )
    data.add_argument(
        '--blacklist',
        help='Optional BED of regions to leave out: stored windows (jitter '
        'margin included) that overlap one are dropped as blacklisted.',
    )


def _add_window_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        '--sequence_length',
        '--input_length',
        type=int,
        default=1000,
        help='Model input window length in bp, centred on each peak '
        '(--input_length is the same flag).',
    )
    parser.add_argument(
        '--output_length',
        type=int,
        default=None,
        help='Counts (model output) window length in bp, centred in the input '
        'window: positive, at most --sequence_length and of the same parity '
        '(default: equal to --sequence_length; e.g. 2114 -> 1000).',
    )
    parser.add_argument(
        '--max_jitter',
        type=int,
        default=0,
        help='Extra bp stored on each side of the window for random shifts.',
    )
    parser.add_argument(
        '--max_n_fraction',
        type=float,
        default=0.1,
        help='Reject windows with a larger fraction of N (non-ACGT) bases.',
    )
    parser.add_argument(
        '--outlier_quantile',
        type=float,
        default=0.99,
        help='Drop peaks whose total counts (both strands, counts window) '
        'exceed 1.2 x this quantile of their task\'s peaks\' totals (bpnet v2); '
        '0 turns the rule off (1 drops nothing).',
    )
    parser.add_argument(
        '--background_ratio',
        type=float,
        default=0.0,
        help='Add this many GC-matched background windows away from peaks per '
        'peak window (0: none); they are marked '
        f'{schema.KEY_IS_BACKGROUND}=1.',
    )
    parser.add_argument(
        '--background_seed',
        type=int,
        default=0,
        help='Seed of the background sampling (same seed, same regions).',
    )


def _add_encoding_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        '--counts_dtype',
        choices=(encodings.AUTO, *schema.COUNT_DTYPES),
        default=encodings.AUTO,
        help='Stored dtype of the counts and control tracks: auto = the smallest unsigned '
        'integer type holding the bigWigs\' maximum when they hold integers, else float32 '
        '(docs/records.md).',
    )
    parser.add_argument(
        '--counts_layout',
        choices=(encodings.AUTO, *schema.LAYOUTS),
        default=encodings.AUTO,
        help='dense (every value) or sparse (the non-zero values and their positions); auto '
        'picks sparse where it is much smaller, from a sample of windows.',
    )
    parser.add_argument(
        '--schema_version',
        type=int,
        choices=schema.READABLE_VERSIONS,
        default=schema.SCHEMA_VERSION,
        help='Record schema to write: 2 (compact) or 1 (one-hot and float32, for readers '
        'older than version 2).',
    )


def _add_split_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        '--valid_chroms',
        default=_DEFAULT_VALID_CHROMS,
        help="Comma list of chromosomes or intervals ('chrIV:0-100,000', "
        '0-based, half-open; commas inside numbers allowed) whose peak centres '
        f'go to the valid split (default: {_DEFAULT_VALID_CHROMS}). An item '
        'naming no chromosome of the FASTA or holding no peak centre, or a '
        'valid split left with no records, stops the job.',
    )
    parser.add_argument(
        '--test_chroms', default='', help='Like --valid_chroms, for the test split (default: none).'
    )
    parser.add_argument(
        '--allow_empty_splits',
        action='store_true',
        help='Only warn, and go on, when a --valid_chroms or --test_chroms item '
        'names no chromosome or holds no peak centre, or when its split ends '
        'with no records.',
    )


def _tasks_from_flags(args: argparse.Namespace) -> list[tasks_lib.Task] | None:
    """The tasks the data flags name (None: no data flags, the demo); checks the flag set.

    Raises:
      RecordsInputError: an incomplete or conflicting set of data flags, or --output_dir
        missing.
    """
    task_flags = [f for f in _TASK_FLAGS if getattr(args, f)]
    if not (task_flags or args.fasta or args.tasks_spec or args.blacklist):
        return None
    if args.tasks_spec:
        if task_flags:
            raise RecordsInputError(
                '--tasks_spec names every file of every task; drop '
                + ', '.join('--' + f for f in task_flags)
            )
        if args.task_name is not None:
            raise RecordsInputError(
                '--task_name is for the single-task flags; with '
                '--tasks_spec the spec names the tasks'
            )
        missing = [] if args.fasta else ['--fasta']
    else:
        missing = ['--' + f for f in _REQUIRED_DATA_FLAGS if not getattr(args, f)]
    if missing:
        raise RecordsInputError(
            'give all of --fasta, --peaks, --pos_bigwig, --neg_bigwig, or --fasta and '
            '--tasks_spec (or none, for the demo); missing: ' + ', '.join(missing)
        )
    for pos, neg in _PAIR_FLAGS:
        if bool(getattr(args, pos)) != bool(getattr(args, neg)):
            raise RecordsInputError(f'give both --{pos} and --{neg}, or neither')
    if not args.output_dir:
        raise RecordsInputError('--output_dir is required with your own data')
    if args.tasks_spec:
        spec = args.tasks_spec
        try:
            text = files_lib.read_text(spec) if files_lib.is_remote(spec) else None
        except OSError as e:
            raise RecordsInputError(f'{spec}: cannot read tasks spec: {e}') from None
        spec = spec if files_lib.is_remote(spec) else os.path.abspath(spec)
        return tasks_lib.read_tasks_spec(spec, text)
    paths = {f: _absolute(getattr(args, f)) for f in _TASK_FLAGS if getattr(args, f)}
    return [tasks_lib.Task(name=args.task_name or _DEFAULT_TASK, **paths)]


def _absolute(path: str) -> str:
    return path if files_lib.is_remote(path) else os.path.abspath(path)


def _inputs(args: argparse.Namespace) -> tuple[str, list[tasks_lib.Task], bool]:
    """(FASTA, tasks, demo?) from the data flags, or the demo data set without any."""
    task_list = _tasks_from_flags(args)
    if task_list is not None:
        return _absolute(args.fasta), task_list, False
    _LOGGER.info('no data flags: using the %r demo data set', args.demo)
    fasta, task_list = tasks_lib.demo_tasks(args.demo)
    if args.task_name:
        task_list[0] = tasks_lib.Task(**{**vars(task_list[0]), 'name': args.task_name})
    return fasta, task_list, True


def _check_flags(args: argparse.Namespace) -> None:
    if args.sequence_length <= 0:
        raise RecordsInputError(f'--sequence_length must be positive, got {args.sequence_length}')
    if args.max_jitter < 0:
        raise RecordsInputError(f'--max_jitter must be >= 0, got {args.max_jitter}')
    if not 0.0 <= args.max_n_fraction <= 1.0:
        raise RecordsInputError(
            f'--max_n_fraction must be between 0 and 1, got {args.max_n_fraction}'
        )
    if args.task_name is not None and not args.task_name.strip():
        raise RecordsInputError('--task_name must not be empty')
    if args.output_length is None:
        args.output_length = args.sequence_length
    if not 0 < args.output_length <= args.sequence_length or (
        (args.sequence_length - args.output_length) % 2
    ):
        raise RecordsInputError(
            f'--output_length must be positive, at most --sequence_length '
            f'({args.sequence_length}) and of the same parity, got {args.output_length}'
        )
    if not 0.0 <= args.outlier_quantile <= 1.0:  # NaN fails too.
        raise RecordsInputError(
            f'--outlier_quantile must be between 0 and 1 (0: off), got {args.outlier_quantile}'
        )
    if not 0.0 <= args.background_ratio < math.inf:
        raise RecordsInputError(
            f'--background_ratio must be >= 0 (0: none), got {args.background_ratio}'
        )
    if args.background_seed < 0:
        raise RecordsInputError(f'--background_seed must be >= 0, got {args.background_seed}')
    if not 0.0 <= args.worker_start_timeout < math.inf:
        raise RecordsInputError(
            f'--worker_start_timeout must be >= 0 s (0: no limit), got {args.worker_start_timeout}'
        )


def _plan_config(args: argparse.Namespace) -> planning.PlanConfig:
    """The window choice the flags ask for; the split flags are read here, before any input.

    Raises:
      RecordsInputError: a malformed or empty split item, or valid and test items that overlap.
    """
    valid = regions.parse_chrom_spans(args.valid_chroms, flag='valid_chroms')
    test = regions.parse_chrom_spans(args.test_chroms, flag='test_chroms')
    regions.check_disjoint(valid, test)
    return planning.PlanConfig(
        sequence_length=args.sequence_length,
        output_length=args.output_length,
        max_jitter=args.max_jitter,
        max_n_fraction=args.max_n_fraction,
        valid=valid,
        test=test,
        outlier_quantile=args.outlier_quantile,
        background_ratio=args.background_ratio,
        background_seed=args.background_seed,
        allow_empty_splits=args.allow_empty_splits,
        default_flags=('valid_chroms',) if args.valid_chroms == _DEFAULT_VALID_CHROMS else (),
    )


def _make_pipeline(options: PipelineOptions) -> beam.Pipeline:
    """A pipeline on FnApiRunner when the local DirectRunner is asked for.

    Beam 2.77's DirectRunner first tries the Prism runner, which downloads a binary (slow,
    or a stall, without network) before falling back to FnApiRunner. FnApiRunner honours
    --direct_num_workers and --direct_running_mode. Every other runner is left as given.
    """
    runner = options.view_as(StandardOptions).runner
    if runner is None or runner.rsplit('.', 1)[-1] in _LOCAL_RUNNERS:
        from apache_beam.runners.portability.fn_api_runner import FnApiRunner

        return beam.Pipeline(runner=FnApiRunner(), options=options)
    return beam.Pipeline(options=options)


def _worker_error(error: Exception) -> RecordsInputError | None:
    """The one-line input error raised inside a worker, if that is what failed the job."""
    if isinstance(error, RecordsInputError):  # In-process runners re-raise its type.
        text = str(error)
    else:
        match = _WORKER_ERROR_RE.search(str(error))
        if match is None:
            return None
        text = match.group(1)
    return RecordsInputError(_STEP_SUFFIX_RE.sub('', text).strip())


def _build_pipeline(
    p: beam.Pipeline,
    *,
    plans_path: str,
    plan_sizes: Sequence[int],
    tmp_dir: str,
    spec: windows.WindowSpec,
    output_length: int,
    totals: bool,
) -> None:
    """Adds the job's steps: shard plans -> shard files, plus the job summary file.
    `totals`: whether the workers gather each record's totals for the median."""
    out = (
        p
        | 'ReadShardPlans'
        >> transforms.ReadShardPlans(
            plans_path, plan_sizes, files_lib.join(tmp_dir, transforms.STARTED_FILENAME)
        )
        | 'WriteShards' >> transforms.WriteShards(tmp_dir, spec, output_length, totals)
    )
    _ = out | 'WriteJobSummary' >> transforms.WriteJobSummary(
        files_lib.join(tmp_dir, transforms.SUMMARY_FILENAME)
    )


def _run_pipeline(
    pipeline_args: Sequence[str],
    save_main_session: bool,
    *,
    worker_start_timeout: float,
    **graph_args,
) -> dict[str, Any]:
    """Builds and runs the pipeline; returns the job summary it wrote (and removes the file).

    Raises:
      RecordsInputError: a worker's input error, a runner whose workers did not start within
        `worker_start_timeout` s, or an unknown runner alias.
      PipelineRunError: any other failure of the run, as one line.
    """
    options = PipelineOptions(
        runners.resolve_args(list(pipeline_args), num_plans=len(graph_args['plan_sizes']))
    )
    options.view_as(SetupOptions).save_main_session = save_main_session
    p = _make_pipeline(options)
    runner_name = runners.runner_name(options)
    tmp_dir = graph_args['tmp_dir']
    _LOGGER.info(
        'running pipeline on %s (%s) into %s',
        runner_name,
        options.view_as(StandardOptions).runner or 'DirectRunner',
        tmp_dir,
    )
    started_path = files_lib.join(tmp_dir, transforms.STARTED_FILENAME)
    try:
        _build_pipeline(p, **graph_args)
        # p.run() and a wait of our own, not `with p:`, so that a run whose workers never
        # start can be told apart from a long one, and cancelled.
        runners.wait_for(
            p.run(),
            runner_name=runner_name,
            started=lambda: files_lib.exists(started_path),
            timeout=worker_start_timeout,
        )
    except runners.WorkersDidNotStartError as e:
        raise RecordsInputError(str(e)) from None
    except Exception as e:
        worker_error = _worker_error(e)
        if worker_error is not None:
            raise worker_error from None
        raise runners.PipelineRunError.from_exception(runner_name, e) from e
    summary_path = files_lib.join(tmp_dir, transforms.SUMMARY_FILENAME)
    summary = json.loads(files_lib.read_text(summary_path))
    files_lib.delete(summary_path)
    if files_lib.exists(started_path):
        files_lib.delete(started_path)
    files_lib.delete(graph_args['plans_path'])
    return summary


def _window_spec(
    args: argparse.Namespace, fasta: str, task_list: Sequence[tasks_lib.Task]
) -> windows.WindowSpec:
    def pairs(kind):
        found = [t.pair(kind) for t in task_list]
        return tuple(found) if found[0] else None

    return windows.WindowSpec(
        fasta=fasta,
        counts=pairs('counts'),
        control=pairs('control'),
        expected=pairs('expected'),
        max_jitter=args.max_jitter,
        max_n_fraction=args.max_n_fraction,
        output_trim=(args.sequence_length - args.output_length) // 2,
        mark_background=bool(args.background_ratio),
    )


def _with_encodings(
    args: argparse.Namespace, spec: windows.WindowSpec, plan: planning.WindowPlan
) -> windows.WindowSpec:
    """`spec` with the tracks' encodings (schema version 2) and the schema version."""
    if args.schema_version == 1:
        return dataclasses.replace(spec, schema_version=1)
    chosen = encodings.choose_encodings(
        {'counts': spec.counts, 'control': spec.control, 'expected': spec.expected},
        plan.regions,
        margin=args.max_jitter,
        trim=spec.output_trim,
        values_per_track=(args.output_length + 2 * args.max_jitter) * len(spec.counts) * 2,
        dtype=args.counts_dtype,
        layout=args.counts_layout,
    )
    _LOGGER.info(
        'track encodings: %s',
        ', '.join(f'{t} {e.dtype} {e.layout}' for t, e in chosen.items()),
    )
    return dataclasses.replace(spec, encodings=chosen, schema_version=2)


def _records_info(
    args: argparse.Namespace,
    pipeline_args: Sequence[str],
    *,
    fasta: str,
    task_list: Sequence[tasks_lib.Task],
    demo: bool,
    blacklist: str | None,
    plan: planning.WindowPlan,
    books: accounting.Tally,
    num_shards: dict[str, int],
    spec: windows.WindowSpec,
    seconds: float,
) -> schema.RecordsInfo:
    """metadata.json: the records' shapes and counts, and where they came from."""
    task_names = [t.name for t in task_list]
    extra = {}
    if plan.thresholds is not None:
        extra['outlier_thresholds'] = dict(zip(task_names, plan.thresholds.tolist()))
    if plan.background is not None:
        sample = plan.background
        extra['background'] = {
            'ratio': args.background_ratio,
            'seed': args.background_seed,
            'requested': sample.requested,
            'candidates': sample.candidates,
            'sampled': len(sample.regions),
            'written': books.background_written,
            'rejected': books.background_rejected,
            'gc_ks_statistic': None if math.isnan(sample.ks) else round(sample.ks, 4),
            'gc_bin_width': background_lib.BIN_WIDTH,
        }
    first = task_list[0]
    return schema.RecordsInfo(
        sequence_length=args.sequence_length,
        output_length=args.output_length,
        max_jitter=args.max_jitter,
        tasks=tuple(task_names),
        split_counts=books.split_counts,
        num_shards=num_shards,
        has_expected=spec.expected is not None,
        has_control=spec.control is not None,
        has_background=bool(args.background_ratio),
        background_counts=books.background_counts if args.background_ratio else {},
        schema_version=spec.schema_version,
        track_encodings={t: e.to_dict() for t, e in spec.encodings.items()},
        median_total_counts=books.median_total_counts,
        source={
            'fasta': fasta,
            # Task 0's files under the single-task names, which predict.py reads.
            'peaks': first.peaks,
            'pos_bigwig': first.pos_bigwig,
            'neg_bigwig': first.neg_bigwig,
            **(
                {
                    'expected_pos_bigwig': first.expected_pos_bigwig,
                    'expected_neg_bigwig': first.expected_neg_bigwig,
                }
                if first.expected_pos_bigwig
                else {}
            ),
            'tasks': [{k: v for k, v in vars(t).items() if v} for t in task_list],
            'tasks_spec': args.tasks_spec,
            'blacklist': blacklist,
            'demo': demo,
            'flags': vars(args),
            'pipeline_args': list(pipeline_args),
            'created': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
            'versions': {
                'apache_beam': beam.__version__,
                'tensorflow': _version('tensorflow'),
                'bpnet_tfx': _version('bpnet-tfx'),
            },
            'peaks_read': books.peaks_read,
            'records_written': books.written,
            'peaks_written': books.peaks_written,
            'peaks_merged': books.merged,
            'peaks_rejected': len(books.rejected),
            'dropped': books.drops,
            **extra,
            'compression_level': transforms.COMPRESSION_LEVEL,
            'seconds': round(seconds, 1),
        },
    )


def _into_place(output_dir: str, write: Callable[[str], _T]) -> _T:
    """Runs `write(tmp_dir)` into a fresh temporary sibling of `output_dir`, then moves the
    folder into place (metadata.json last); on any failure neither is left."""
    if not files_lib.is_remote(output_dir):
        os.makedirs(os.path.dirname(output_dir), exist_ok=True)
    for stale in files_lib.remove_stale_dirs(output_dir.rstrip('/') + '.tmp-'):
        # A killed run (SIGKILL, a lost driver) could not remove its own.
        _LOGGER.warning(
            'removed %s, left by an earlier run into %s that did not finish', stale, output_dir
        )
    token = secrets.token_hex(4)
    tmp_dir = f'{output_dir.rstrip("/")}.tmp-{token}'
    files_lib.make_dir(tmp_dir)
    try:
        result = write(tmp_dir)
        files_lib.replace_dir(tmp_dir, output_dir, last=schema.METADATA_FILENAME)
    except BaseException:
        files_lib.remove_dir(tmp_dir)
        raise
    return result


def _write_records(
    tmp_dir: str,
    *,
    args: argparse.Namespace,
    pipeline_args: Sequence[str],
    save_main_session: bool,
    plan: planning.WindowPlan,
    num_shards: dict[str, int],
    spec: windows.WindowSpec,
    task_names: Sequence[str],
    metadata: Callable[[accounting.Tally], schema.RecordsInfo],
) -> tuple[accounting.Tally, schema.RecordsInfo]:
    """Shard plans -> pipeline -> books -> rejected.tsv and metadata.json, all in `tmp_dir`.

    Raises:
      RecordsInputError: a worker's input error, or an asked-for split the pipeline emptied
        (unless --allow_empty_splits).
    """
    plans_path = files_lib.join(tmp_dir, shards.PLANS_FILENAME)
    lines = [p.to_json() + '\n' for p in shards.plan_shards(plan.regions, num_shards)]
    files_lib.write_text(plans_path, ''.join(lines))  # ASCII: json.dumps escapes the rest.
    # With the outlier rule the driver has every window's totals: workers need not sum.
    summary = _run_pipeline(
        pipeline_args,
        save_main_session,
        worker_start_timeout=args.worker_start_timeout,
        plans_path=plans_path,
        plan_sizes=[len(x) for x in lines],
        tmp_dir=tmp_dir,
        spec=spec,
        output_length=args.output_length,
        totals=plan.totals is None,
    )
    books = accounting.tally(plan, summary, task_names)
    accounting.stop_or_warn(
        accounting.empty_splits(
            plan.spans, books.split_counts, plan.peaks, books.rejected_by_split
        ),
        args.allow_empty_splits,
    )
    info = metadata(books)
    files_lib.write_text(
        files_lib.join(tmp_dir, accounting.REJECTED_FILENAME),
        accounting.rejected_text(books.rejected),
    )
    files_lib.write_text(
        files_lib.join(tmp_dir, schema.METADATA_FILENAME),
        json.dumps(info.to_dict(), indent=2, sort_keys=True) + '\n',
    )
    return books, info


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return 'unknown'


def run(argv: Sequence[str] | None = None, save_main_session: bool = False) -> schema.RecordsInfo:
    """Runs the records job.

    Args:
      argv: command-line arguments; the ones this job does not define go to Beam.
      save_main_session: pickle the main session for workers (not needed: code is in
        transforms.py, shipped with --setup_file).

    Returns:
      The RecordsInfo written as metadata.json.

    Raises:
      RecordsInputError: bad flags or input files, an existing output folder without
        --overwrite, a split asked for that can give no record, or bad values met while
        reading the windows.
    """
    t0 = time.time()
    args, pipeline_args = _parser().parse_known_args(argv)
    _check_flags(args)
    runners.resolve_args(pipeline_args, num_plans=0)  # A runner Beam lacks stops us here.
    config = _plan_config(args)
    num_shards_flag = shards.parse_num_shards(args.num_shards)
    fasta, task_list, demo = _inputs(args)
    blacklist = _absolute(args.blacklist) if args.blacklist else None
    output_dir = _absolute(args.output_dir or _DEMO_OUTPUT_DIR)
    files_lib.check_output_dir(output_dir, args.overwrite, marker=schema.METADATA_FILENAME)

    plan = planning.plan_windows(config, task_list, fasta, blacklist)
    counts = regions.split_counts(plan.regions)
    num_shards = shards.shards_per_split(num_shards_flag, counts)
    _LOGGER.info(
        'read %d peaks of %d task(s): %d windows and %d background (%s); %d set aside '
        'before the pipeline',
        len(plan.peaks),
        len(task_list),
        len(plan.windows),
        len(plan.background_regions),
        ', '.join(f'{s} {n}' for s, n in counts.items()),
        len(plan.dropped),
    )
    spec = _with_encodings(args, _window_spec(args, fasta, task_list), plan)

    def metadata(books: accounting.Tally) -> schema.RecordsInfo:
        return _records_info(
            args,
            pipeline_args,
            fasta=fasta,
            task_list=task_list,
            demo=demo,
            blacklist=blacklist,
            plan=plan,
            books=books,
            num_shards=num_shards,
            spec=spec,
            seconds=time.time() - t0,
        )

    books, info = _into_place(
        output_dir,
        lambda tmp_dir: _write_records(
            tmp_dir,
            args=args,
            pipeline_args=pipeline_args,
            save_main_session=save_main_session,
            plan=plan,
            num_shards=num_shards,
            spec=spec,
            task_names=[t.name for t in task_list],
            metadata=metadata,
        ),
    )
    if not info.median_total_counts:
        _LOGGER.warning('no training records: median_total_counts is empty')
    _LOGGER.info(
        'wrote %d records in %d shards to %s', books.written, sum(num_shards.values()), output_dir
    )
    print(
        accounting.summary_line(
            books, background=plan.background, seconds=info.source['seconds'], output_dir=output_dir
        )
    )
    return info


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the job; input errors become one line on stderr and exit status 2, a failed run
    one line and exit status 1 (with -v, after the runner's full error)."""
    try:
        run(argv)
    except RecordsInputError as e:
        print(f'make_records: error: {e}', file=sys.stderr)
        return 2
    except runners.PipelineRunError as e:
        if logs.verbose_requested(sys.argv[1:] if argv is None else argv):
            traceback.print_exception(e.__cause__ or e, file=sys.stderr)
        print(f'make_records: error: {e}', file=sys.stderr)
        return 1
    return 0


def _exit(code: int) -> None:
    """Exits; after a failed run whose runner left threads waiting (a job server still
    waiting for workers that never start), without waiting for them."""
    import threading

    if code and any(
        t.is_alive() and not t.daemon
        for t in threading.enumerate()
        if t is not threading.main_thread()
    ):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == '__main__':
    _exit(main())
