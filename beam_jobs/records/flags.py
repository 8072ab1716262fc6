"""The records job's command line: its flags, their checks, and what they name.

`parser` defines the job's own flags (everything else goes to Beam); `check_flags` checks their
values; `inputs` turns the data flags into the FASTA and tasks (or the simulated demo data set
when none is given); `plan_config` and `window_spec` turn the window and split flags into the
driver's window choice (planning.py) and the workers' window reading (windows.py). No Beam
import: `python -m beam_jobs.make_records` sets up logging before Beam loads.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import os
from typing import Sequence

from beam_jobs.common import arguments, logs
from beam_jobs.common import files as files_lib
from beam_jobs.common.errors import RecordsInputError
from beam_jobs.records import encodings, planning, shards, splits, windows
from beam_jobs.records import tasks as tasks_lib
from bpnet_tfx.records import schema

DEMO_OUTPUT_DIR = os.path.join('demo_output', 'records')
_DEFAULT_TASK = 'task0'
_DEFAULT_VALID_CHROMS = 'chr1'
_REQUIRED_DATA_FLAGS = ('fasta', 'peaks', 'pos_bigwig', 'neg_bigwig')
_PAIR_FLAGS = (
    ('expected_pos_bigwig', 'expected_neg_bigwig'),
    ('control_pos_bigwig', 'control_neg_bigwig'),
)
_TASK_FLAGS = ('peaks', 'pos_bigwig', 'neg_bigwig') + tuple(f for p in _PAIR_FLAGS for f in p)

_LOGGER = logging.getLogger(__name__)


def parser(description: str) -> argparse.ArgumentParser:
    """The job's argument parser; `description` heads its --help."""
    parser = arguments.job_parser('make_records', description)
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
        f'reach, e.g. gs:// (default for the demo: ./{DEMO_OUTPUT_DIR}).',
    )
    _add_window_flags(parser)
    _add_encoding_flags(parser)
    _add_split_flags(parser)
    _add_job_flags(parser)
    return parser


def _add_job_flags(parser) -> None:
    """Shards, overwriting, the demo data set, the runner's start timeout and logging."""
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


def tasks_from_flags(args: argparse.Namespace) -> list[tasks_lib.Task] | None:
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
    paths = {f: absolute(getattr(args, f)) for f in _TASK_FLAGS if getattr(args, f)}
    return [tasks_lib.Task(name=args.task_name or _DEFAULT_TASK, **paths)]


def absolute(path: str) -> str:
    return path if files_lib.is_remote(path) else os.path.abspath(path)


def inputs(args: argparse.Namespace) -> tuple[str, list[tasks_lib.Task], bool]:
    """(FASTA, tasks, demo?) from the data flags, or the demo data set without any."""
    task_list = tasks_from_flags(args)
    if task_list is not None:
        return absolute(args.fasta), task_list, False
    _LOGGER.info('no data flags: using the %r demo data set', args.demo)
    fasta, task_list = tasks_lib.demo_tasks(args.demo)
    if args.task_name:
        task_list[0] = tasks_lib.Task(**{**vars(task_list[0]), 'name': args.task_name})
    return fasta, task_list, True


def check_flags(args: argparse.Namespace) -> None:
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


def plan_config(args: argparse.Namespace) -> planning.PlanConfig:
    """The window choice the flags ask for; the split flags are read here, before any input.

    Raises:
      RecordsInputError: a malformed or empty split item, or valid and test items that overlap.
    """
    valid = splits.parse_chrom_spans(args.valid_chroms, flag='valid_chroms')
    test = splits.parse_chrom_spans(args.test_chroms, flag='test_chroms')
    splits.check_disjoint(valid, test)
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


def window_spec(
    args: argparse.Namespace, fasta: str, task_list: Sequence[tasks_lib.Task]
) -> windows.WindowSpec:
    """What the workers read for each window: tracks, jitter margin, N limit, output trim."""

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


def with_encodings(
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
