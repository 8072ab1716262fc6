"""The records job: genome FASTA + peaks + stranded bigWigs -> sharded TFRecords + metadata.json.

    python -m beam_jobs.make_records --runner=DirectRunner            # demo data
    python -m beam_jobs.make_records --fasta=g.fa --peaks=p.narrowPeak \\
        --pos_bigwig=pos.bw --neg_bigwig=neg.bw --output_dir=records --valid_chroms=chr1
    python -m beam_jobs.make_records --fasta=g.fa --tasks_spec=tasks.yaml --output_dir=records

The driver reads and checks the peaks of every task (regions.py, tasks.py), sets aside
duplicates, windows past a chromosome end, blacklisted windows and count outliers
(--outlier_quantile), adds GC-matched background windows away from peaks when
--background_ratio > 0 (background.py), cuts the rest into chunks of nearby regions and deals them out to the shard files (transforms.plan_shards), writes the plans
beside the output, and runs the pipeline (transforms.py) into a temporary sibling folder; then
it writes metadata.json and rejected.tsv there and moves the folder into place, so a failed run
leaves no output folder. With no data flags at all it makes (or reuses) the simulated demo data
set. Inputs and the output folder may be remote (gs://...): see files.py. `--runner=DirectRunner`
(the default) runs on Beam's FnApiRunner directly, skipping Beam's attempt to download the Prism
runner; other runners are used as given.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import importlib.metadata
import json
import logging
import math
import os
import re
import secrets
import shutil
import sys
import tempfile
import time
from typing import Any, Mapping, Sequence

import apache_beam as beam
import numpy as np
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.options.pipeline_options import SetupOptions
from apache_beam.options.pipeline_options import StandardOptions

from beam_jobs import background as background_lib
from beam_jobs import files as files_lib
from beam_jobs import regions
from beam_jobs import tasks as tasks_lib
from beam_jobs import transforms
from bpnet_tfx import schema

RecordsInputError = regions.RecordsInputError

REJECTED_FILENAME = 'rejected.tsv'
MERGED = 'merged'  # Not a drop: another task's peak gave the same window (counted apart).
_RECORDS_PER_SHARD = 2000  # Auto sharding: about this many records per file.
_DEMO_OUTPUT_DIR = os.path.join('demo_output', 'records')
_DEFAULT_TASK = 'task0'
_REQUIRED_DATA_FLAGS = ('fasta', 'peaks', 'pos_bigwig', 'neg_bigwig')
_PAIR_FLAGS = (('expected_pos_bigwig', 'expected_neg_bigwig'),
               ('control_pos_bigwig', 'control_neg_bigwig'))
_TASK_FLAGS = ('peaks', 'pos_bigwig', 'neg_bigwig') + tuple(f for p in _PAIR_FLAGS for f in p)
_LOCAL_RUNNERS = ('DirectRunner', 'SwitchingDirectRunner')
_WORKER_ERROR_RE = re.compile(r'RecordsInputError: (.+)')  # In a remote worker's traceback.
_STEP_SUFFIX_RE = re.compile(r" \[while running '[^']*'\]")  # Added by Beam to the message.

_LOGGER = logging.getLogger('beam_jobs.make_records')  # Not __main__ under python -m.


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='make_records', description=__doc__.split('\n\n')[0], allow_abbrev=False,
        epilog='Other flags (--runner, --direct_num_workers, --setup_file, ...) go to Beam.')
    data = parser.add_argument_group(
        'data (give none of them for the demo data set; paths may be gs:// or other URLs)')
    data.add_argument('--fasta', help='Genome FASTA (plain or bgzip; a .fai is made if missing).')
    data.add_argument('--tasks_spec',
                      help='JSON or YAML file naming several tasks, each with its peaks and '
                      'bigWigs (see the README); replaces --peaks and the bigWig flags.')
    data.add_argument('--peaks', help='Peaks: BED3/BED6 (centre = midpoint) or narrowPeak '
                      '(centre = start + column 10); plain or .gz.')
    data.add_argument('--pos_bigwig', help='Plus-strand counts bigWig (base resolution).')
    data.add_argument('--neg_bigwig', help='Minus-strand counts bigWig (base resolution).')
    data.add_argument('--control_pos_bigwig',
                      help='Optional plus-strand control (input) counts, stored as '
                      f'{schema.KEY_CONTROL}.')
    data.add_argument('--control_neg_bigwig', help='Optional minus-strand control counts.')
    data.add_argument('--expected_pos_bigwig',
                      help='Optional plus-strand noise-free track (simulated data).')
    data.add_argument('--expected_neg_bigwig',
                      help='Optional minus-strand noise-free track (simulated data).')
    data.add_argument('--blacklist',
                      help='Optional BED of regions to leave out: stored windows (jitter '
                      'margin included) that overlap one are dropped as blacklisted.')
    parser.add_argument('--task_name', default=None,
                        help=f'Task name stored in metadata.json (default: {_DEFAULT_TASK!r}, '
                        "or the demo data set's task); single-task flags only.")
    parser.add_argument('--output_dir', default=None,
                        help='Records folder to create, local or on a file system the workers '
                        f'reach, e.g. gs:// (default for the demo: ./{_DEMO_OUTPUT_DIR}).')
    parser.add_argument('--sequence_length', '--input_length', type=int, default=1000,
                        help='Model input window length in bp, centred on each peak '
                        '(--input_length is the same flag).')
    parser.add_argument('--output_length', type=int, default=None,
                        help='Counts (model output) window length in bp, centred in the input '
                        'window: positive, at most --sequence_length and of the same parity '
                        '(default: equal to --sequence_length; e.g. 2114 -> 1000).')
    parser.add_argument('--max_jitter', type=int, default=0,
                        help='Extra bp stored on each side of the window for random shifts.')
    parser.add_argument('--valid_chroms', default='chr1',
                        help="Comma list of chromosomes or intervals ('chrIV:0-100000', "
                        '0-based, half-open) whose peak centres go to the valid split '
                        '(default: chr1).')
    parser.add_argument('--test_chroms', default='',
                        help='Like --valid_chroms, for the test split (default: none).')
    parser.add_argument('--num_shards', default='auto',
                        help='Shard files per split: auto (about 1 per '
                        f'{_RECORDS_PER_SHARD} records, at least 1 per split with regions), '
                        'one number for every split with regions, or train=8,valid=1,test=1.')
    parser.add_argument('--max_n_fraction', type=float, default=0.1,
                        help='Reject windows with a larger fraction of N (non-ACGT) bases.')
    parser.add_argument('--outlier_quantile', type=float, default=0.99,
                        help='Drop peaks whose total counts (both strands, counts window) '
                        'exceed 1.2 x this quantile of their task\'s peaks\' totals (bpnet v2); '
                        '0 turns the rule off (1 drops nothing).')
    parser.add_argument('--background_ratio', type=float, default=0.0,
                        help='Add this many GC-matched background windows away from peaks per '
                        'peak window (0: none); they are marked '
                        f'{schema.KEY_IS_BACKGROUND}=1.')
    parser.add_argument('--background_seed', type=int, default=0,
                        help='Seed of the background sampling (same seed, same regions).')
    parser.add_argument('--overwrite', action='store_true',
                        help='Replace an existing --output_dir (only once the new one is done).')
    parser.add_argument('--demo', default='default', choices=('default', 'multitask', 'sparse'),
                        help='Which simulated data set to use when no data flags are given: '
                        "'default' (one task), 'multitask' (two tasks and a control track) or "
                        "'sparse' (the default's peaks over a 6.5x larger genome: room for "
                        'background regions).')
    return parser


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
                + ', '.join('--' + f for f in task_flags))
        if args.task_name is not None:
            raise RecordsInputError('--task_name is for the single-task flags; with '
                                    '--tasks_spec the spec names the tasks')
        missing = [] if args.fasta else ['--fasta']
    else:
        missing = ['--' + f for f in _REQUIRED_DATA_FLAGS if not getattr(args, f)]
    if missing:
        raise RecordsInputError(
            'give all of --fasta, --peaks, --pos_bigwig, --neg_bigwig, or --fasta and '
            '--tasks_spec (or none, for the demo); missing: ' + ', '.join(missing))
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


def _demo_tasks(name: str = 'default') -> tuple[str, list[tasks_lib.Task]]:
    """Makes (or reuses) a simulated demo data set; returns its FASTA and its tasks."""
    from bpnet_tfx import simulate  # Local: only the demo needs the simulator.
    _LOGGER.info('no data flags: using the %r demo data set', name)
    demo = simulate.ensure_demo_data(config=simulate.DEMO_CONFIGS[name])
    control = {}
    if demo.control_pos_bigwig:
        control = {'control_pos_bigwig': os.path.abspath(demo.control_pos_bigwig),
                   'control_neg_bigwig': os.path.abspath(demo.control_neg_bigwig)}
    tasks = []
    for task in demo.tasks:
        bw = demo.task_bigwigs[task]
        tasks.append(tasks_lib.Task(
            name=task, peaks=os.path.abspath(demo.peaks),
            pos_bigwig=os.path.abspath(bw[0]), neg_bigwig=os.path.abspath(bw[1]),
            expected_pos_bigwig=os.path.abspath(bw[2]),
            expected_neg_bigwig=os.path.abspath(bw[3]), **control))
    return os.path.abspath(demo.fasta), tasks


def _check_flags(args: argparse.Namespace) -> None:
    if args.sequence_length <= 0:
        raise RecordsInputError(f'--sequence_length must be positive, got {args.sequence_length}')
    if args.max_jitter < 0:
        raise RecordsInputError(f'--max_jitter must be >= 0, got {args.max_jitter}')
    if not 0.0 <= args.max_n_fraction <= 1.0:
        raise RecordsInputError(
            f'--max_n_fraction must be between 0 and 1, got {args.max_n_fraction}')
    if args.task_name is not None and not args.task_name.strip():
        raise RecordsInputError('--task_name must not be empty')
    if args.output_length is None:
        args.output_length = args.sequence_length
    if not 0 < args.output_length <= args.sequence_length or (
            (args.sequence_length - args.output_length) % 2):
        raise RecordsInputError(
            f'--output_length must be positive, at most --sequence_length '
            f'({args.sequence_length}) and of the same parity, got {args.output_length}')
    if not 0.0 <= args.outlier_quantile <= 1.0:  # NaN fails too.
        raise RecordsInputError(
            f'--outlier_quantile must be between 0 and 1 (0: off), got {args.outlier_quantile}')
    if not 0.0 <= args.background_ratio < math.inf:
        raise RecordsInputError(
            f'--background_ratio must be >= 0 (0: none), got {args.background_ratio}')
    if args.background_seed < 0:
        raise RecordsInputError(f'--background_seed must be >= 0, got {args.background_seed}')


def _plan_shards(flag: str, counts: Mapping[str, int]) -> dict[str, int]:
    """Shards per split from --num_shards and the region counts per split.

    Raises:
      RecordsInputError: a malformed value, or zero shards for a split that has regions.
    """
    flag = flag.strip()
    if flag == 'auto':
        return {s: math.ceil(n / _RECORDS_PER_SHARD) if n else 0 for s, n in counts.items()}
    try:
        if '=' not in flag:
            n = int(flag)
            plan = {s: n if counts[s] else 0 for s in schema.SPLITS}
        else:
            plan = dict.fromkeys(schema.SPLITS, 0)
            for item in flag.split(','):
                split, value = item.split('=')
                if split.strip() not in plan:
                    raise ValueError(split)
                plan[split.strip()] = int(value)
    except ValueError:
        raise RecordsInputError(
            f"--num_shards: cannot read {flag!r}; give 'auto', a number, or "
            "'train=8,valid=1,test=1'") from None
    for split in schema.SPLITS:
        if plan[split] < 0 or (counts[split] and plan[split] == 0):
            raise RecordsInputError(f'--num_shards: the {split} split has {counts[split]} '
                                    f'regions but {plan[split]} shards')
    return plan


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


def _check_output_dir(output_dir: str, overwrite: bool) -> None:
    """Refuses an existing output folder, unless --overwrite and it is a records folder."""
    metadata = files_lib.join(output_dir, schema.METADATA_FILENAME)
    if files_lib.is_remote(output_dir):
        present = files_lib.exists(metadata) or bool(files_lib.list_files(output_dir))
        if present and not overwrite:
            raise RecordsInputError(f'{output_dir} exists; pass --overwrite to replace it')
        if present and not files_lib.exists(metadata):
            raise RecordsInputError(f'{output_dir} exists and is not a records folder (no '
                                    f'{schema.METADATA_FILENAME}); not replacing it')
        return
    if not os.path.lexists(output_dir):
        return
    if not overwrite:
        raise RecordsInputError(f'{output_dir} exists; pass --overwrite to replace it')
    if not os.path.isdir(output_dir) or (
            os.listdir(output_dir) and not os.path.exists(metadata)):
        raise RecordsInputError(f'{output_dir} exists and is not a records folder (no '
                                f'{schema.METADATA_FILENAME}); not replacing it')


def _localize(paths: Sequence[str], local_dir: str) -> dict[str, str]:
    """{path: local path} for the driver's checks; remote inputs are copied to `local_dir`.

    Raises:
      RecordsInputError: a remote input that cannot be read.
    """
    out = {}
    for path in paths:
        try:
            out.update(files_lib.localize([path], tempfile.mkdtemp(dir=local_dir),
                                          companions=('.fai',)))
        except OSError as e:
            message = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise RecordsInputError(f'{path}: cannot read input file: {message}') from None
    return out


def _build_pipeline(p: beam.Pipeline, *, plans_path: str, tmp_dir: str,
                    spec: transforms.WindowSpec, output_length: int, totals: bool) -> None:
    """Adds the job's steps: shard plans -> shard files, plus the job summary file.
    `totals`: whether the workers gather each record's totals for the median."""
    out = (p
           | 'ReadShardPlans' >> beam.io.ReadFromText(plans_path)  # ShardPlan JSON lines.
           | 'WriteShards' >> transforms.WriteShards(tmp_dir, spec, output_length, totals))
    _ = ({'shards': out.shards, 'totals': out[transforms.TOTALS],
          'rejected': out[transforms.REJECTED]}
         | 'WriteJobSummary' >> transforms.WriteJobSummary(
             files_lib.join(tmp_dir, transforms.SUMMARY_FILENAME)))


def _run_pipeline(pipeline_args: Sequence[str], save_main_session: bool,
                  **graph_args) -> dict[str, Any]:
    """Builds and runs the pipeline; returns the job summary it wrote (and removes the file)."""
    options = PipelineOptions(pipeline_args)
    options.view_as(SetupOptions).save_main_session = save_main_session
    p = _make_pipeline(options)
    _LOGGER.info('running pipeline on %s into %s', type(p.runner).__name__,
                 graph_args['tmp_dir'])
    try:
        with p:
            _build_pipeline(p, **graph_args)
    except Exception as e:
        worker_error = _worker_error(e)
        if worker_error is None:
            raise
        raise worker_error from None
    summary_path = files_lib.join(graph_args['tmp_dir'], transforms.SUMMARY_FILENAME)
    summary = json.loads(files_lib.read_text(summary_path))
    _delete(summary_path)
    _delete(graph_args['plans_path'])
    return summary


def _delete(path: str) -> None:
    if files_lib.is_remote(path):
        from apache_beam.io.filesystems import FileSystems
        FileSystems.delete([path])
    else:
        os.remove(path)


class _PeaksAt:
    """The peaks that gave each window: the window's kept region (the first peak there) plus
    the other tasks' peaks merged into it. Only the merged ones are stored, so the driver
    holds nothing per window beyond the regions themselves."""

    def __init__(self, merged: Sequence[regions.Region]):
        self._merged = collections.defaultdict(list)
        for r in merged:
            self._merged[r.window].append(r)

    def __call__(self, first: regions.Region) -> list[regions.Region]:
        return [first, *self._merged.get(first.window, ())]


def _rejected_rows(peaks_at: _PeaksAt, dropped: Sequence[tuple[regions.Region, str]],
                   pipeline_rejected: Sequence[Sequence[str]],
                   windows: Sequence[regions.Region],
                   task_names: Sequence[str]) -> list[tuple[str, str, int, str]]:
    """(region_id, task, peaks file line, reason) of every dropped peak, in task, line order.

    A dropped window drops every peak that gave it (one per task at most). `windows`: the
    regions the pipeline was given, where its rejected region ids are looked up.
    """
    ids = {region_id for region_id, _ in pipeline_rejected}
    by_id = {r.region_id: r for r in windows if ids and r.region_id in ids}
    rows = [(r.region_id, r.task, r.line, reason) for r, reason in dropped]
    for region_id, reason in pipeline_rejected:
        rows += [(region_id, r.task, r.line, reason) for r in peaks_at(by_id[region_id])]
    rows.sort(key=lambda row: (row[1], row[2]))
    return [(region_id, task_names[task], line, reason) for region_id, task, line, reason in rows]


def _rejected_text(rows: Sequence[tuple[str, str, int, str]]) -> str:
    lines = ['region_id\ttask\tline\treason']
    lines += [f'{region_id}\t{task}\t{line}\t{reason}' for region_id, task, line, reason in rows]
    return '\n'.join(lines) + '\n'


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return 'unknown'


def _read_regions(args: argparse.Namespace, task_list: Sequence[tasks_lib.Task],
                  local: Mapping[str, str]
                  ) -> tuple[list[regions.Region], tuple[regions.ChromSpan, ...],
                             tuple[regions.ChromSpan, ...]]:
    """(every peak of every task, valid spans, test spans)."""
    valid = regions.parse_chrom_spans(args.valid_chroms, flag='valid_chroms')
    test = regions.parse_chrom_spans(args.test_chroms, flag='test_chroms')
    regions.check_disjoint(valid, test)
    all_regions = []
    for i, task in enumerate(task_list):
        all_regions += regions.read_peaks(local[task.peaks], sequence_length=args.sequence_length,
                                          valid=valid, test=test, task=i, name=task.peaks)
    for flag, spans in (('valid_chroms', valid), ('test_chroms', test)):
        for span in regions.unmatched_spans(all_regions, spans):
            _LOGGER.warning('--%s item %r contains no peak centre', flag, str(span))
    return all_regions, valid, test


def _drop_outliers(args: argparse.Namespace, kept: Sequence[regions.Region],
                   peaks_at: _PeaksAt, counts_bigwigs: Sequence[str], names: Mapping[str, str]):
    """(kept, outliers, thresholds (tasks,), totals of kept (len(kept), tasks)): the
    --outlier_quantile rule on the kept windows.

    The driver computes the totals itself (exact sums of the bigWigs over each counts window,
    regions.window_totals) rather than the pipeline: the threshold needs every peak's total
    before any record is written, and the pipeline would have to read every window twice or
    rewrite its shards; the driver reads only the counts bigWigs, once, over nearby windows
    together, and no step ever holds records.
    """
    num_tasks = len(counts_bigwigs) // 2
    pairs = [tuple(counts_bigwigs[2 * t:2 * t + 2]) for t in range(num_tasks)]
    totals = regions.window_totals(kept, pairs, trim=(args.sequence_length -
                                                      args.output_length) // 2, names=names)
    has_peak = np.zeros((len(kept), num_tasks), bool)
    for i, r in enumerate(kept):
        for peak in peaks_at(r):
            has_peak[i, peak.task] = True
    candidates = kept
    kept, outliers, thresholds = regions.drop_outliers(candidates, totals, has_peak,
                                                       args.outlier_quantile)
    dropped = {id(r) for r in outliers}
    totals = totals[[i for i, r in enumerate(candidates) if id(r) not in dropped]]
    _LOGGER.info('outlier rule (quantile %g x %g): thresholds %s; %d window(s) dropped',
                 args.outlier_quantile, regions.OUTLIER_FACTOR,
                 ', '.join(f'{t:.1f}' for t in thresholds), len(outliers))
    return kept, outliers, thresholds, totals.reshape(len(kept), num_tasks)


def _median_totals(regions_list: Sequence[regions.Region], totals: np.ndarray,
                   rejected_ids: set[str]) -> list[float]:
    """Per-task median of the totals of the training peak windows the pipeline wrote: what
    the workers' totals would give, from the driver's own exact totals (`window_totals`)."""
    rows = [i for i, r in enumerate(regions_list) if r.split == schema.SPLITS[0]
            and not (rejected_ids and r.region_id in rejected_ids)]
    return np.median(totals[rows], axis=0).tolist() if rows else []


def _sample_background(args: argparse.Namespace, kept: Sequence[regions.Region],
                       all_regions: Sequence[regions.Region], sizes: Mapping[str, int],
                       fasta_path: str, fasta_name: str, blacklist, valid, test
                       ) -> background_lib.BackgroundSample:
    """GC-matched background windows for the kept peak windows (background.py)."""
    import pyfaidx
    try:
        fasta = pyfaidx.Fasta(fasta_path, as_raw=True)
    except Exception as e:  # pyfaidx raises several types for bad inputs.
        message = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise RecordsInputError(f'{fasta_name}: cannot open FASTA: {message}') from None
    with fasta:
        sample = background_lib.sample_background(
            fasta, kept, all_regions, sizes, ratio=args.background_ratio,
            seed=args.background_seed, sequence_length=args.sequence_length,
            max_jitter=args.max_jitter, max_n_fraction=args.max_n_fraction,
            blacklist=blacklist, valid=valid, test=test)
    _LOGGER.info('background: %d window(s) of %d asked for, from %d candidates away from '
                 'peaks; GC KS statistic vs peaks %.4f', len(sample.regions), sample.requested,
                 sample.candidates, sample.ks)
    if len(sample.regions) < sample.requested:
        _LOGGER.warning('background: only %d candidate windows away from peaks, blacklist and '
                        'N-rich sequence; %d asked for (--background_ratio %g): using all',
                        sample.candidates, sample.requested, args.background_ratio)
    return sample


def _pairs(task_list: Sequence[tasks_lib.Task], kind: str):
    pairs = [t.pair(kind) for t in task_list]
    return tuple(pairs) if pairs[0] else None


def run(argv: Sequence[str] | None = None, save_main_session: bool = False
        ) -> schema.RecordsInfo:
    """Runs the records job.

    Args:
      argv: command-line arguments; the ones this job does not define go to Beam.
      save_main_session: pickle the main session for workers (not needed: code is in
        transforms.py, shipped with --setup_file).

    Returns:
      The RecordsInfo written as metadata.json.

    Raises:
      RecordsInputError: bad flags or input files, an existing output folder without
        --overwrite, or bad values met while reading the windows.
    """
    t0 = time.time()
    args, pipeline_args = _parser().parse_known_args(argv)
    _check_flags(args)
    task_list = _tasks_from_flags(args)
    demo = task_list is None
    if demo:
        fasta, task_list = _demo_tasks(args.demo)
        if args.task_name:
            task_list[0] = tasks_lib.Task(**{**vars(task_list[0]), 'name': args.task_name})
    else:
        fasta = _absolute(args.fasta)
    blacklist_path = _absolute(args.blacklist) if args.blacklist else None
    output_dir = _absolute(args.output_dir or _DEMO_OUTPUT_DIR)
    _check_output_dir(output_dir, args.overwrite)
    task_names = [t.name for t in task_list]

    local_dir = files_lib.make_local_dir()
    background = None
    try:
        inputs = [p for t in task_list for p in t.files()]
        inputs += [blacklist_path] if blacklist_path else []
        fasta_sizes = None
        if (files_lib.is_remote(fasta) and files_lib.exists(fasta + '.fai')
                and not args.background_ratio):
            # The index gives the sizes: no need to copy a whole genome to the driver.
            fai = _localize([fasta + '.fai'], local_dir)[fasta + '.fai']
            fasta_sizes = regions.fai_chrom_sizes(fai, name=fasta + '.fai')
        else:
            inputs.insert(0, fasta)
        local = _localize(inputs, local_dir)
        all_regions, valid, test = _read_regions(args, task_list, local)
        kept, duplicates, merged = regions.merge_tasks(all_regions)
        bigwigs = [local[p] for t in task_list for p in t.files()[1:]]
        names = {v: k for k, v in local.items()}
        sizes = regions.check_inputs(
            kept, peaks_path=[t.peaks for t in task_list], fasta_path=local.get(fasta, fasta),
            bigwig_paths=bigwigs, names=names, fasta_sizes=fasta_sizes)
        kept, out_of_bounds = regions.drop_out_of_bounds(kept, sizes, args.max_jitter)
        blacklisted, blacklist = [], None
        if blacklist_path:
            blacklist = regions.read_blacklist(local[blacklist_path], name=blacklist_path)
            kept, blacklisted = regions.drop_blacklisted(kept, blacklist, args.max_jitter)
        peaks_at = _PeaksAt(merged)
        outliers, thresholds, totals = [], None, None
        if 0.0 < args.outlier_quantile < 1.0:
            kept, outliers, thresholds, totals = _drop_outliers(
                args, kept, peaks_at, [local[p] for t in task_list
                                              for p in t.pair('counts')], names)
        if args.background_ratio:
            background = _sample_background(args, kept, all_regions, sizes, local[fasta], fasta,
                                            blacklist, valid, test)
    finally:
        shutil.rmtree(local_dir, ignore_errors=True)
    # A window dropped here drops every task's peak at it.
    dropped = [(r, regions.DUPLICATE) for r in duplicates]
    for reason, lost in ((regions.OUT_OF_BOUNDS, out_of_bounds),
                         (regions.BLACKLISTED, blacklisted),
                         (regions.OUTLIER_COUNTS, outliers)):
        dropped += [(peak, reason) for r in lost for peak in peaks_at(r)]
    background_regions = list(background.regions) if background else []
    counts = regions.split_counts(kept + background_regions)
    num_shards = _plan_shards(args.num_shards, counts)
    plans = transforms.plan_shards(kept + background_regions, num_shards)
    _LOGGER.info('read %d peaks of %d task(s): %d windows and %d background (%s); %d set aside '
                 'before the pipeline', len(all_regions), len(task_list), len(kept),
                 len(background_regions), ', '.join(f'{s} {n}' for s, n in counts.items()),
                 len(dropped))
    spec = transforms.WindowSpec(
        fasta=fasta, counts=_pairs(task_list, 'counts'), control=_pairs(task_list, 'control'),
        expected=_pairs(task_list, 'expected'), max_jitter=args.max_jitter,
        max_n_fraction=args.max_n_fraction,
        output_trim=(args.sequence_length - args.output_length) // 2,
        mark_background=bool(args.background_ratio))

    if not files_lib.is_remote(output_dir):
        os.makedirs(os.path.dirname(output_dir), exist_ok=True)
    token = secrets.token_hex(4)
    tmp_dir = f'{output_dir.rstrip("/")}.tmp-{token}'
    files_lib.make_dir(tmp_dir)
    try:
        plans_path = files_lib.join(tmp_dir, transforms.PLANS_FILENAME)
        files_lib.write_text(plans_path, ''.join(plan.to_json() + '\n' for plan in plans))
        del plans  # The driver keeps only what rejected.tsv and the median need.
        # With the outlier rule the driver has every window's totals: workers need not sum.
        summary = _run_pipeline(pipeline_args, save_main_session, plans_path=plans_path,
                                tmp_dir=tmp_dir, spec=spec, output_length=args.output_length,
                                totals=totals is None)
        if totals is not None:
            summary['median_total_counts'] = _median_totals(
                kept, totals, {region_id for region_id, _ in summary['rejected']})
        background_split = {r.region_id: r.split for r in background_regions}
        background_counts = regions.split_counts(background_regions)
        background_lost = collections.Counter()
        peak_rejected = []
        for region_id, reason in summary['rejected']:
            if region_id in background_split:  # Not a peak: counted apart.
                background_counts[background_split[region_id]] -= 1
                background_lost[reason] += 1
            else:
                peak_rejected.append((region_id, reason))
        rejected = _rejected_rows(peaks_at, dropped, peak_rejected, kept, task_names)
        del kept, totals
        drops = collections.Counter(reason for _, _, _, reason in rejected)
        lost_windows = ({r.region_id for r in out_of_bounds + blacklisted + outliers}
                        | {region_id for region_id, _ in peak_rejected})
        merged = [r for r in merged if r.region_id not in lost_windows]  # In a record.
        split_counts = {s: summary['split_counts'][s] for s in schema.SPLITS}
        written = sum(split_counts.values())
        background_written = sum(background_counts.values())
        peaks_written = written - background_written
        if len(all_regions) != peaks_written + len(merged) + len(rejected):
            raise AssertionError(
                f'bug: {len(all_regions)} peaks read but {peaks_written} written + '
                f'{len(merged)} merged + {len(rejected)} rejected')
        seconds = time.time() - t0
        first = task_list[0]
        extra_source = {}
        if thresholds is not None:
            extra_source['outlier_thresholds'] = dict(zip(task_names, thresholds.tolist()))
        if background is not None:
            extra_source['background'] = {
                'ratio': args.background_ratio, 'seed': args.background_seed,
                'requested': background.requested, 'candidates': background.candidates,
                'sampled': len(background_regions), 'written': background_written,
                'rejected': dict(sorted(background_lost.items())),
                'gc_ks_statistic': None if math.isnan(background.ks) else round(
                    background.ks, 4),
                'gc_bin_width': background_lib.BIN_WIDTH,
            }
        info = schema.RecordsInfo(
            sequence_length=args.sequence_length,
            output_length=args.output_length,
            max_jitter=args.max_jitter,
            tasks=tuple(task_names),
            split_counts=split_counts,
            num_shards=num_shards,
            has_expected=spec.expected is not None,
            has_control=spec.control is not None,
            has_background=bool(args.background_ratio),
            background_counts=background_counts if args.background_ratio else {},
            median_total_counts=summary['median_total_counts'],
            source={
                'fasta': fasta,
                # Task 0's files under the single-task names, which predict.py reads.
                'peaks': first.peaks, 'pos_bigwig': first.pos_bigwig,
                'neg_bigwig': first.neg_bigwig,
                **({'expected_pos_bigwig': first.expected_pos_bigwig,
                    'expected_neg_bigwig': first.expected_neg_bigwig}
                   if first.expected_pos_bigwig else {}),
                'tasks': [{k: v for k, v in vars(t).items() if v} for t in task_list],
                'tasks_spec': args.tasks_spec,
                'blacklist': blacklist_path,
                'demo': demo,
                'flags': vars(args),
                'pipeline_args': list(pipeline_args),
                'created': datetime.datetime.now(datetime.timezone.utc).isoformat(
                    timespec='seconds'),
                'versions': {'apache_beam': beam.__version__,
                             'tensorflow': _version('tensorflow'),
                             'bpnet_tfx': _version('bpnet-tfx')},
                'peaks_read': len(all_regions),
                'records_written': written,
                'peaks_written': peaks_written,
                'peaks_merged': len(merged),
                'peaks_rejected': len(rejected),
                'dropped': dict(sorted(drops.items())),
                **extra_source,
                'compression_level': transforms.COMPRESSION_LEVEL,
                'seconds': round(seconds, 1),
            })
        files_lib.write_text(files_lib.join(tmp_dir, REJECTED_FILENAME), _rejected_text(rejected))
        files_lib.write_text(files_lib.join(tmp_dir, schema.METADATA_FILENAME),
                             json.dumps(info.to_dict(), indent=2, sort_keys=True) + '\n')
        files_lib.replace_dir(tmp_dir, output_dir, last=schema.METADATA_FILENAME, token=token)
    except BaseException:
        files_lib.remove_dir(tmp_dir)
        raise
    if not info.median_total_counts:
        _LOGGER.warning('no training records: median_total_counts is empty')
    _LOGGER.info('wrote %d records in %d shards to %s', written, sum(num_shards.values()),
                 output_dir)
    drop_text = ', '.join(f'{k} {v}' for k, v in sorted(drops.items()))
    background_text = ''
    if background is not None:
        ks = 'n/a' if math.isnan(background.ks) else f'{background.ks:.3f}'
        background_text = (f'; {background_written} background of {background.requested} '
                           f'asked for, GC KS {ks}')
    print(f'make_records: {len(all_regions)} peaks read, {written} records written ('
          + ', '.join(f'{s} {n}' for s, n in split_counts.items()) + background_text
          + (f'), {len(merged)} merged into another task\'s window' if merged else ')')
          + f', {len(rejected)} rejected' + (f' ({drop_text})' if drop_text else '')
          + f', {seconds:.1f} s -> {output_dir}')
    return info


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the job; input errors become one line on stderr and exit status 2."""
    try:
        run(argv)
    except RecordsInputError as e:
        print(f'make_records: error: {e}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    # force: importing Beam already logged a warning, which set up the root logger.
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(name)s: %(message)s',
                        force=True)
    logging.getLogger('apache_beam').setLevel(logging.WARNING)  # Beam's INFO is per bundle.
    sys.exit(main())
