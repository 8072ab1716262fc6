"""Genome-scale prediction tracks: `python -m bpnet_tfx.predict --regions_bed` as a Beam job.

    python -m beam_jobs.predict_tracks --saved_model=model/export --fasta=genome.fa \\
        (--regions_bed=peaks.bed | --genome_wide [--chroms=chr1,chr2]) --output_prefix=out/pred \\
        [--runner=DataflowRunner ...]

Writes the command's files: PREFIX.<task>.<pos|neg>.bw (predicted counts per base, forward and
reverse-complement averaged, overlapping windows averaged) and PREFIX.regions.bed (the regions
predicted), with the command's values. --regions_bed takes the command's regions (each line
widened to the model's window, overlaps merged); --genome_wide every stretch of every
chromosome (or --chroms) between N runs of at least --min_gap bp, and says what it skipped.
The driver plans shards of windows (tracks/regions.py) and writes them to a temporary folder
beside the prefix; each worker predicts whole shards through RunInference with the shared
model handler and writes their values to files, and one writer per track assembles its bigWig
in FASTA order (tracks/transforms.py), so no process holds more than a shard of values. The
files are moved into place only when all are written: a failed run leaves none. The command
line prints progress and a summary; -v brings back INFO logs, Beam's warnings and TensorFlow's
log lines. Other runners: docs/runners.md.
"""

from __future__ import annotations

import sys

from beam_jobs.common import logs  # No Beam import: it must come first on the command line.

if __name__ == '__main__':  # Before Beam's import logs its 'apitools not found' warning.
    logs.configure(logs.verbose_requested(sys.argv[1:]), prog='predict_tracks')

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
from beam_jobs.inference import outputs, startup
from beam_jobs.tracks import regions as regions_lib
from beam_jobs.tracks import transforms
from bpnet_tfx.common.errors import BpnetError
from bpnet_tfx.genome import genome_io
from bpnet_tfx.genome.genome_io import GenomeError
from bpnet_tfx.inference import prediction, tracks
from bpnet_tfx.records.schema import SchemaError

PROG = 'predict_tracks'
PLANS_FILENAME = '_shard_plans.jsonl'
STARTED_FILENAME = '_workers_started'
WINDOWS_PER_SHARD = 1000  # --num_shards=auto
_PATH_FLAGS = (
    'saved_model',
    'fasta',
    'regions_bed',
    'output_prefix',
    'control_pos_bigwig',
    'control_neg_bigwig',
)


class PredictTracksError(BpnetError):
    """Flags or inputs the job cannot use, or a worker's input error; one line."""


def _parser() -> argparse.ArgumentParser:
    parser = arguments.job_parser(PROG, __doc__.split('\n\n')[0])
    add = parser.add_argument
    add('--saved_model', help='SavedModel folder written by train (local or gs://...).')
    add('--fasta', help="Genome FASTA; default: the training records' one.")
    add('--regions_bed', help='BED file of regions to predict (as predict --regions_bed).')
    add(
        '--genome_wide',
        action='store_true',
        help='Predict every chromosome (or --chroms) instead of --regions_bed, skipping N runs.',
    )
    add('--chroms', help='With --genome_wide: comma-separated chromosomes; default: all.')
    add(
        '--min_gap',
        type=int,
        default=0,
        help='With --genome_wide: runs of non-ACGT bases at least this many bp long are not '
        "predicted (shorter ones are, as N); 0: the model's output length.",
    )
    add(
        '--output_prefix',
        help='Tracks go to PREFIX.<task>.<pos|neg>.bw, the regions to PREFIX.regions.bed.',
    )
    add('--batch_size', type=int, default=64, help='Windows per model call.')
    add(
        '--control_pos_bigwig',
        help="Plus-strand control bigWig, for models trained with control tracks; default: "
        "the records' one.",
    )
    add('--control_neg_bigwig', help="Minus-strand control bigWig; default: the records' one.")
    add(
        '--num_shards',
        default='auto',
        help=f'Shards of windows, the units of work: auto (1 per {WINDOWS_PER_SHARD:,} '
        'windows) or a number (at most the number of windows).',
    )
    add(
        '--worker_start_timeout',
        type=float,
        default=600.0,
        help="Seconds to wait for the runner's first worker to run a step before the job is "
        'cancelled (0: no limit).',
    )
    add(
        *logs.VERBOSE_FLAGS,
        dest='verbose',
        action='store_true',
        help="Show INFO logs, Beam's warnings and TensorFlow's log lines.",
    )
    return parser


def _absolute(path: str | None) -> str | None:
    return path if not path or files_lib.is_remote(path) else os.path.abspath(path)


def _check_flags(args: argparse.Namespace) -> None:
    missing = ['--' + f for f in ('saved_model', 'output_prefix') if not getattr(args, f)]
    if missing:
        raise PredictTracksError(f'missing {", ".join(missing)}')
    if bool(args.regions_bed) == args.genome_wide:
        raise PredictTracksError('give exactly one of --regions_bed and --genome_wide')
    if args.chroms and not args.genome_wide:
        raise PredictTracksError('--chroms goes with --genome_wide')
    problem = outputs.check_num_shards(args.num_shards)
    for bad, message in (
        (args.batch_size < 1, f'--batch_size must be >= 1, got {args.batch_size}'),
        (args.min_gap < 0, f'--min_gap must be >= 0 bp, got {args.min_gap}'),
        (problem is not None, problem),
        (
            not 0.0 <= args.worker_start_timeout < math.inf,
            f'--worker_start_timeout must be >= 0 s (0: no limit), got {args.worker_start_timeout}',
        ),
    ):
        if bad:
            raise PredictTracksError(message)
    for name in _PATH_FLAGS:
        setattr(args, name, _absolute(getattr(args, name)))


def _local(path: str, local_dir: str) -> str:
    """A local copy of a remote input (the driver reads it), or the path itself."""
    if not files_lib.is_remote(path):
        return path
    return files_lib.localize_inputs([path], local_dir)[path]


def _regions(args, genome, sizes: dict[str, int], fasta: str, length: int) -> dict[str, Any]:
    """{'regions', 'note', ...}: the BED's merged regions or the genome's stretches."""
    if not args.genome_wide:
        bed = _local(args.regions_bed, args.local_dir)
        read, merged = regions_lib.bed_regions(bed, sizes, length, fasta)
        note = f'{read} BED regions -> {len(merged)} merged regions'
        return {'regions': merged, 'bed_regions': read, 'note': note}
    chroms = args.chroms.split(',') if args.chroms else list(sizes)
    unknown = [c for c in chroms if c not in sizes]
    if unknown:
        raise PredictTracksError(
            f'--chroms: {", ".join(unknown)} not in the FASTA {fasta} (it has '
            f'{", ".join(list(sizes)[:5])}{", ..." if len(sizes) > 5 else ""})'
        )
    chroms = [c for c in sizes if c in set(chroms)]
    found = regions_lib.genome_regions(genome, sizes, chroms, length, args.min_gap or length)
    if not found.regions:
        raise PredictTracksError(
            f'{fasta}: no stretch of {", ".join(chroms[:5])} holds a {length}-bp window '
            f'between N runs; {found.skipped()}'
        )
    note = f'{len(chroms)} chromosome(s) -> {len(found.regions)} stretches between N runs'
    return {'regions': found.regions, 'note': note, 'skipped': found}


def _write_plans(path: str, shards: list[list[tuple[str, int, int]]], length: int) -> list[int]:
    """Writes one plan line per shard; returns each line's byte size."""
    sizes = []
    local_dir = files_lib.make_local_dir()
    try:
        local = os.path.join(local_dir, PLANS_FILENAME)
        with open(local, 'w') as f:
            for k, pieces in enumerate(shards):
                windows = sum(regions_lib.window_count(s, e, length) for _, s, e in pieces)
                line = json.dumps({'shard': k, 'windows': windows, 'pieces': pieces}) + '\n'
                f.write(line)
                sizes.append(len(line))
        files_lib.publish_file(local, path)
    finally:
        shutil.rmtree(local_dir, ignore_errors=True)
    return sizes


def _run_pipeline(args, pipeline_args, save_main_session, *, tmp_dir, plan) -> None:
    """Builds and runs plans -> PredictShards -> WriteTracks (module docstring)."""
    options = PipelineOptions(runners.resolve_args(list(pipeline_args), num_plans=plan['shards']))
    options.view_as(SetupOptions).save_main_session = save_main_session
    p = runners.make_pipeline(options)
    started = files_lib.join(tmp_dir, STARTED_FILENAME)
    _ = (
        p
        | 'ReadShardPlans'
        >> shard_plans.ReadShardPlans(
            files_lib.join(tmp_dir, PLANS_FILENAME), plan['sizes'], started
        )
        | 'SpreadShards' >> beam.Reshuffle()
        | 'PredictShards'
        >> transforms.PredictShards(
            args.saved_model,
            verbose=args.verbose,
            progress_every=max(1, plan['windows'] // 20),
            fasta=plan['fasta'],
            controls=plan['controls'],
            output_dir=tmp_dir,
            labels=plan['labels'],
            batch_size=args.batch_size,
        )
        | 'WriteTracks'
        >> transforms.WriteTracks(tmp_dir, plan['names'], plan['header'], plan['shards'])
    )
    from bpnet_tfx.inference.export import ExportError  # TensorFlow: imported by now.

    runners.run_and_wait(
        p,
        runner_name=runners.runner_name(options),
        started=lambda: files_lib.exists(started),
        timeout=args.worker_start_timeout,
        user_errors=(GenomeError, ExportError, SchemaError, prediction.PredictError),
        wrap=PredictTracksError,
    )


def _plan(args, model) -> dict[str, Any]:
    """Reads the FASTA and regions on the driver; the shards and what the workers need."""
    fasta = prediction.fasta_of(model, args.fasta)
    controls = model.control_bigwigs(args.control_pos_bigwig, args.control_neg_bigwig)
    length = model.config.output_length
    with genome_io.open_fasta(_local(fasta, args.local_dir)) as genome:
        sizes = genome_io.chrom_sizes(genome)
        found = _regions(args, genome, sizes, fasta, length)
    regions = found['regions']
    windows = sum(regions_lib.window_count(s, e, length) for _, s, e in regions)
    shards = regions_lib.plan_shards(
        regions, length, outputs.num_shards(args.num_shards, windows, WINDOWS_PER_SHARD)
    )
    info = model.info
    paths = tracks.track_paths(os.path.basename(args.output_prefix), info.tasks, info.strands)
    labels, names = [], {}
    for t, task in enumerate(info.tasks):
        for s, strand in enumerate(info.strands):
            name = paths[task, strand]
            label = name[len(os.path.basename(args.output_prefix)) + 1 : -len('.bw')]
            labels.append(((t, s), label))
            names[label] = name
    return {
        **found,
        'fasta': fasta,
        'controls': controls,
        'header': list(sizes.items()),
        'windows': windows,
        'bases': sum(e - s for _, s, e in regions),
        'shard_pieces': shards,
        'shards': len(shards),
        'labels': labels,
        'names': names,
        'tracks': {f'{t} {s}': paths[t, s] for t in info.tasks for s in info.strands},
    }


def _predict(tmp_dir: str, args, pipeline_args, save_main_session, plan) -> tuple[dict, list]:
    """Plans file -> pipeline -> checks -> regions.bed, all in `tmp_dir`; returns (summary,
    the base names to publish)."""
    length = plan.pop('length')
    plan['sizes'] = _write_plans(
        files_lib.join(tmp_dir, PLANS_FILENAME), plan.pop('shard_pieces'), length
    )
    print(
        f'{PROG}: {plan["note"]}; {plan["windows"]:,} windows over {plan["bases"]:,} bp in '
        f'{plan["shards"]} shard(s)'
        + (f'; {plan["skipped"].skipped()}' if 'skipped' in plan else ''),
        file=sys.stderr,
        flush=True,
    )
    _run_pipeline(args, pipeline_args, save_main_session, tmp_dir=tmp_dir, plan=plan)
    transforms.remove_values(tmp_dir)
    names = list(plan['names'].values())
    missing = [n for n in names if not files_lib.exists(files_lib.join(tmp_dir, n))]
    if missing:
        raise runners.PipelineRunError(f'{PROG}: the run wrote no {", ".join(missing)}')
    regions_name = os.path.basename(args.output_prefix) + '.regions.bed'
    files_lib.write_text(
        files_lib.join(tmp_dir, regions_name),
        ''.join(f'{c}\t{s}\t{e}\n' for c, s, e in plan['regions']),
    )
    return plan, [*names, regions_name]


def run(argv: Sequence[str] | None = None, save_main_session: bool = False) -> dict[str, Any]:
    """Runs the job.

    Args:
      argv: command-line arguments; the ones this job does not define go to Beam.
      save_main_session: pickle the main session for workers (not needed: the DoFns are in
        tracks/transforms.py, shipped with --setup_file).

    Returns:
      {'tracks': {'<task> <strand>': path}, 'regions_bed', 'merged_regions', 'windows',
       'bases', 'shards', 'seconds', 'note'} and, with a BED, 'bed_regions'; genome-wide,
       'skipped' (regions.GenomeRegions).

    Raises:
      BpnetError: bad flags or inputs (one line), a worker's input error.
      RecordsInputError: a runner Beam lacks.
      runners.PipelineRunError: the run failed.
    """
    started = time.perf_counter()
    args, pipeline_args, model = startup.start_job(_parser(), argv, _check_flags)
    args.local_dir = tempfile.mkdtemp(prefix='predict_tracks-in-')
    try:
        plan = {**_plan(args, model), 'length': model.config.output_length}
    finally:
        shutil.rmtree(args.local_dir, ignore_errors=True)
    summary = outputs.write_prefix_files(
        args.output_prefix,
        lambda tmp: _predict(tmp, args, pipeline_args, save_main_session, plan),
        last=os.path.basename(args.output_prefix) + '.regions.bed',
    )
    parent = outputs.parent_of(args.output_prefix)
    result = {
        'tracks': {k: files_lib.join(parent, v) for k, v in summary['tracks'].items()},
        'regions_bed': args.output_prefix + '.regions.bed',
        'merged_regions': len(summary['regions']),
        'seconds': round(time.perf_counter() - started, 2),
        **{k: summary[k] for k in ('windows', 'bases', 'shards', 'note')},
        **{k: summary[k] for k in ('bed_regions', 'skipped') if k in summary},
    }
    skipped = f'; {result["skipped"].skipped()}' if 'skipped' in result else ''
    print(
        f'{PROG}: {summary["note"]}, {result["windows"]:,} windows, {result["bases"]:,} bases '
        f'in {result["shards"]} shard(s), {result["seconds"]:.1f} s -> '
        + ', '.join(result['tracks'].values())
        + skipped
    )
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the job; input errors become one line on stderr and exit status 2, a failed run
    one line and exit status 1 (with -v, after the runner's full error)."""
    return runners.job_main(PROG, run, argv, (BpnetError, RecordsInputError))


if __name__ == '__main__':
    sys.exit(main())
