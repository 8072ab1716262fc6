"""The records job: genome FASTA + peaks + stranded bigWigs -> sharded TFRecords + metadata.json.

    python -m beam_jobs.make_records --runner=DirectRunner            # demo data
    python -m beam_jobs.make_records --fasta=g.fa --peaks=p.narrowPeak \\
        --pos_bigwig=pos.bw --neg_bigwig=neg.bw --output_dir=records --valid_chroms=chr1

The driver parses and checks the peaks (regions.py), plans the shards from the region counts,
runs the pipeline (transforms.py) into a temporary sibling folder, then writes metadata.json and
rejected.tsv there and moves the folder into place; a failed run leaves no output folder. With
no data flags at all it makes (or reuses) the simulated demo data set. `--runner=DirectRunner`
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
import time
from typing import Any, Mapping, Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.options.pipeline_options import SetupOptions
from apache_beam.options.pipeline_options import StandardOptions

from beam_jobs import regions
from beam_jobs import transforms
from bpnet_tfx import schema

RecordsInputError = regions.RecordsInputError

REJECTED_FILENAME = 'rejected.tsv'
_RECORDS_PER_SHARD = 2000  # Auto sharding: about this many records per file.
_DEMO_OUTPUT_DIR = os.path.join('demo_output', 'records')
_DEFAULT_TASK = 'task0'
_REQUIRED_DATA_FLAGS = ('fasta', 'peaks', 'pos_bigwig', 'neg_bigwig')
_EXPECTED_FLAGS = ('expected_pos_bigwig', 'expected_neg_bigwig')
_LOCAL_RUNNERS = ('DirectRunner', 'SwitchingDirectRunner')
_WORKER_ERROR_RE = re.compile(r'RecordsInputError: (.+)')  # In a remote worker's traceback.
_STEP_SUFFIX_RE = re.compile(r" \[while running '[^']*'\]")  # Added by Beam to the message.

_LOGGER = logging.getLogger('beam_jobs.make_records')  # Not __main__ under python -m.


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='make_records', description=__doc__.split('\n\n')[0], allow_abbrev=False,
        epilog='Other flags (--runner, --direct_num_workers, --setup_file, ...) go to Beam.')
    data = parser.add_argument_group('data (give none of them for the demo data set)')
    data.add_argument('--fasta', help='Genome FASTA (plain or bgzip; a .fai is made if missing).')
    data.add_argument('--peaks', help='Peaks: BED3/BED6 (centre = midpoint) or narrowPeak '
                      '(centre = start + column 10); plain or .gz.')
    data.add_argument('--pos_bigwig', help='Plus-strand counts bigWig (base resolution).')
    data.add_argument('--neg_bigwig', help='Minus-strand counts bigWig (base resolution).')
    data.add_argument('--expected_pos_bigwig',
                      help='Optional plus-strand noise-free track (simulated data).')
    data.add_argument('--expected_neg_bigwig',
                      help='Optional minus-strand noise-free track (simulated data).')
    parser.add_argument('--task_name', default=None,
                        help=f'Task name stored in metadata.json (default: {_DEFAULT_TASK!r}, '
                        "or the demo data set's task).")
    parser.add_argument('--output_dir', default=None,
                        help='Records folder to create, on a file system the driver and the '
                        f'workers share (default for the demo: ./{_DEMO_OUTPUT_DIR}).')
    parser.add_argument('--sequence_length', type=int, default=1000,
                        help='Model window length in bp, centred on each peak.')
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
    parser.add_argument('--overwrite', action='store_true',
                        help='Replace an existing --output_dir (only once the new one is done).')
    return parser


def _data_flags_given(args: argparse.Namespace) -> list[str]:
    """Returns the data flags given; checks that they make a complete set (or none: demo).

    Raises:
      RecordsInputError: some but not all of the data flags, or --output_dir missing.
    """
    given = [f for f in _REQUIRED_DATA_FLAGS + _EXPECTED_FLAGS if getattr(args, f)]
    if not given:
        return given
    missing = [f for f in _REQUIRED_DATA_FLAGS if not getattr(args, f)]
    if missing:
        raise RecordsInputError(
            'give all of --fasta, --peaks, --pos_bigwig, --neg_bigwig (or none, for the demo); '
            'missing: ' + ', '.join('--' + f for f in missing))
    if bool(args.expected_pos_bigwig) != bool(args.expected_neg_bigwig):
        raise RecordsInputError('give both --expected_pos_bigwig and --expected_neg_bigwig, '
                                'or neither')
    if not args.output_dir:
        raise RecordsInputError('--output_dir is required with your own data')
    return given


def _demo_files() -> tuple[dict[str, str], str]:
    """Makes (or reuses) the simulated demo data; returns its files and its task name."""
    from bpnet_tfx import simulate  # Local: only the demo needs the simulator.
    _LOGGER.info('no data flags: using the demo data set')
    demo = simulate.ensure_demo_data()
    files = {'fasta': demo.fasta, 'peaks': demo.peaks, 'pos_bigwig': demo.pos_bigwig,
             'neg_bigwig': demo.neg_bigwig, 'expected_pos_bigwig': demo.expected_pos_bigwig,
             'expected_neg_bigwig': demo.expected_neg_bigwig}
    return {k: os.path.abspath(os.fspath(v)) for k, v in files.items()}, demo.tasks[0]


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
    if not os.path.lexists(output_dir):
        return
    if not overwrite:
        raise RecordsInputError(f'{output_dir} exists; pass --overwrite to replace it')
    if not os.path.isdir(output_dir) or (
            os.listdir(output_dir)
            and not os.path.exists(os.path.join(output_dir, schema.METADATA_FILENAME))):
        raise RecordsInputError(f'{output_dir} exists and is not a records folder (no '
                                f'{schema.METADATA_FILENAME}); not replacing it')


def _replace_dir(tmp_dir: str, output_dir: str) -> None:
    """Moves the finished `tmp_dir` to `output_dir`, replacing an old one only at the end."""
    old = None
    if os.path.exists(output_dir):
        old = f'{output_dir}.old-{secrets.token_hex(4)}'
        os.rename(output_dir, old)
    os.rename(tmp_dir, output_dir)
    if old:
        shutil.rmtree(old, ignore_errors=True)


def _build_pipeline(p: beam.Pipeline, kept: Sequence[regions.Region], files: Mapping[str, str],
                    args: argparse.Namespace, num_shards: Mapping[str, int],
                    tmp_dir: str) -> None:
    """Adds the job's steps: regions -> windows -> shard files, plus the job summary file."""
    expected = None
    if 'expected_pos_bigwig' in files:
        expected = [(files['expected_pos_bigwig'], files['expected_neg_bigwig'])]
    windows = (
        p
        | 'CreateRegions' >> beam.Create(kept)
        | 'SpreadRegions' >> beam.Reshuffle()  # Else Create fuses with extraction on one worker.
        | 'ExtractWindows' >> beam.ParDo(transforms.ExtractWindowsFn(
            files['fasta'], [(files['pos_bigwig'], files['neg_bigwig'])],
            max_jitter=args.max_jitter, num_shards=num_shards,
            max_n_fraction=args.max_n_fraction, expected_bigwigs=expected)
        ).with_outputs(transforms.REJECTED, transforms.TOTALS, main='records'))
    shards = windows.records | 'WriteShards' >> transforms.WriteShards(tmp_dir, num_shards)
    _ = ({'shards': shards, 'totals': windows[transforms.TOTALS],
          'rejected': windows[transforms.REJECTED]}
         | 'WriteJobSummary' >> transforms.WriteJobSummary(
             os.path.join(tmp_dir, transforms.SUMMARY_FILENAME)))


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
    summary_path = os.path.join(graph_args['tmp_dir'], transforms.SUMMARY_FILENAME)
    with open(summary_path) as f:
        summary = json.load(f)
    os.remove(summary_path)
    return summary


def _rejected_rows(kept: Sequence[regions.Region], duplicates: Sequence[regions.Region],
                   pipeline_rejected: Sequence[Sequence[str]]) -> list[tuple[str, int, str]]:
    """(region_id, peaks file line, reason) of every dropped peak, in line order."""
    lines = {r.region_id: r.line for r in kept}  # Region ids are unique once deduplicated.
    rows = [(r.region_id, r.line, regions.DUPLICATE) for r in duplicates]
    rows += [(region_id, lines[region_id], reason) for region_id, reason in pipeline_rejected]
    return sorted(rows, key=lambda row: row[1])


def _write_rejected(path: str, rows: Sequence[tuple[str, int, str]]) -> None:
    with open(path, 'w') as f:
        f.write('region_id\tline\treason\n')
        for region_id, line, reason in rows:
            f.write(f'{region_id}\t{line}\t{reason}\n')


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return 'unknown'


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
    given = _data_flags_given(args)
    demo = not given
    output_dir = os.path.abspath(args.output_dir or _DEMO_OUTPUT_DIR)
    _check_output_dir(output_dir, args.overwrite)
    if demo:
        files, task = _demo_files()
    else:
        files, task = {f: os.path.abspath(getattr(args, f)) for f in given}, _DEFAULT_TASK
    task = args.task_name or task

    valid = regions.parse_chrom_spans(args.valid_chroms, flag='valid_chroms')
    test = regions.parse_chrom_spans(args.test_chroms, flag='test_chroms')
    regions.check_disjoint(valid, test)
    all_regions = regions.read_peaks(files['peaks'], sequence_length=args.sequence_length,
                                     valid=valid, test=test)
    kept, duplicates = regions.drop_duplicates(all_regions)
    regions.check_inputs(kept, peaks_path=files['peaks'], fasta_path=files['fasta'],
                         bigwig_paths=[files[f] for f in ('pos_bigwig', 'neg_bigwig')
                                       + _EXPECTED_FLAGS if f in files])
    for flag, spans in (('valid_chroms', valid), ('test_chroms', test)):
        for span in regions.unmatched_spans(kept, spans):
            _LOGGER.warning('--%s item %r contains no peak centre', flag, str(span))
    counts = regions.split_counts(kept)
    num_shards = _plan_shards(args.num_shards, counts)
    _LOGGER.info('parsed %d peaks from %s: %s; %d duplicates dropped', len(all_regions),
                 files['peaks'], ', '.join(f'{s} {n}' for s, n in counts.items()),
                 len(duplicates))

    os.makedirs(os.path.dirname(output_dir), exist_ok=True)
    tmp_dir = f'{output_dir}.tmp-{secrets.token_hex(4)}'
    os.makedirs(tmp_dir)
    try:
        summary = _run_pipeline(pipeline_args, save_main_session, kept=kept, files=files,
                                args=args, num_shards=num_shards, tmp_dir=tmp_dir)
        rejected = _rejected_rows(kept, duplicates, summary['rejected'])
        dropped = collections.Counter(reason for _, _, reason in rejected)
        split_counts = {s: summary['split_counts'][s] for s in schema.SPLITS}
        written = sum(split_counts.values())
        assert len(all_regions) == written + len(rejected), (
            f'bug: {len(all_regions)} peaks read but {written} written + {len(rejected)} '
            'rejected')
        seconds = time.time() - t0
        info = schema.RecordsInfo(
            sequence_length=args.sequence_length,
            max_jitter=args.max_jitter,
            tasks=(task,),
            split_counts=split_counts,
            num_shards=num_shards,
            has_expected='expected_pos_bigwig' in files,
            median_total_counts=summary['median_total_counts'],
            source={
                **files,
                'demo': demo,
                'flags': vars(args),
                'pipeline_args': list(pipeline_args),
                'created': datetime.datetime.now(datetime.timezone.utc).isoformat(
                    timespec='seconds'),
                'versions': {'apache_beam': beam.__version__,
                             'tensorflow': _version('tensorflow'),
                             'bpnet_tfx': _version('bpnet-tfx')},
                'peaks_read': len(all_regions),
                'dropped': dict(sorted(dropped.items())),
                'seconds': round(seconds, 1),
            })
        _write_rejected(os.path.join(tmp_dir, REJECTED_FILENAME), rejected)
        info.save(tmp_dir)
        _replace_dir(tmp_dir, output_dir)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    if not info.median_total_counts:
        _LOGGER.warning('no training records: median_total_counts is empty')
    _LOGGER.info('wrote %d records in %d shards to %s', written, sum(num_shards.values()),
                 output_dir)
    drops = ', '.join(f'{k} {v}' for k, v in sorted(dropped.items()))
    print(f'make_records: {len(all_regions)} peaks read, {written} records written ('
          + ', '.join(f'{s} {n}' for s, n in split_counts.items())
          + f'), {len(rejected)} rejected' + (f' ({drops})' if drops else '')
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
