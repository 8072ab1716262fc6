"""The variant scoring job: `python -m bpnet_tfx.variants` as an Apache Beam pipeline.

    python -m beam_jobs.score_variants --saved_model=model/export --fasta=genome.fa \\
        --variants=calls.vcf.gz --output_dir=scores [--null_variants=100] \\
        [--runner=DataflowRunner ...]

Same flags, rows and scores as the variants command (bpnet_tfx.variant_effects.variant_files and
variant_effects do the parsing, windows and scoring for both), for millions of variants over
many workers. The driver checks the export's metadata files (the workers load the SavedModel)
and the FASTA, reads the variants file once (`read_variants`: a malformed line stops the job
before any worker starts) and writes it in chunks into a temporary sibling of --output_dir;
the pipeline (variants/transforms.py) makes each variant's
windows, scores them through RunInference with the export (variants/handler.py) and writes the rows
as shard files, contiguous ranges of the input in input order; the driver then merges the
shards into scores.tsv, writes summary.json and moves the folder into place, so a failed run
leaves no output. `--runner=DirectRunner` (the default) runs Beam's FnApiRunner in-process;
other runners as given, with the inputs and --output_dir where the workers reach them
(gs://...) and the code shipped with --setup_file=./setup.py (docs/runners.md). The command
line prints progress and the summary; -v brings back INFO logs, Beam's warnings and
TensorFlow's log lines.
"""

from __future__ import annotations

import sys

from beam_jobs.common import logs  # No Beam import: it must come first on the command line.

if __name__ == '__main__':  # Before Beam's import logs its 'apitools not found' warning.
    logs.configure(logs.verbose_requested(sys.argv[1:]), prog='score_variants')

import argparse
import itertools
import json
import logging
import math
import os
import re
import shutil
import tempfile
import time
from typing import Any, Sequence

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions, SetupOptions

from beam_jobs.common import arguments, runners, shard_plans
from beam_jobs.common import files as files_lib
from beam_jobs.common.errors import RecordsInputError
from beam_jobs.inference import startup
from beam_jobs.variants import transforms as variant_transforms
from bpnet_tfx.common.errors import BpnetError
from bpnet_tfx.genome import genome_io
from bpnet_tfx.genome.genome_io import GenomeError
from bpnet_tfx.records.schema import SchemaError
from bpnet_tfx.variant_effects import scoring as variant_effects
from bpnet_tfx.variant_effects import variant_files
from bpnet_tfx.variant_effects.variant_files import VariantError

PROG = 'score_variants'
MERGED_FILENAME = 'scores.tsv'
SUMMARY_FILENAME = 'summary.json'  # Written last: a folder holding it is complete.
CHUNKS_FILENAME = '_variant_chunks.jsonl'
STARTED_FILENAME = '_workers_started'
VARIANTS_PER_SHARD = 100_000  # --num_shards=auto
_REQUIRED = ('saved_model', 'fasta', 'variants', 'output_dir')
_LOGGER = logging.getLogger('beam_jobs.score_variants')


class ScoreVariantsError(BpnetError):
    """Flags or inputs the job cannot use, or a worker's input error; one line."""


def _parser() -> argparse.ArgumentParser:
    parser = arguments.job_parser(PROG, __doc__.split('\n\n')[0])
    add = parser.add_argument
    add('--saved_model', help='SavedModel folder written by train (local or gs://...).')
    add('--fasta', help='Genome FASTA the variants are on (a .fai is made if missing).')
    add('--variants', help='VCF (plain or bgzipped) or TSV chrom, pos (1-based), ref, alt.')
    add(
        '--output_dir',
        help=f'Folder to create: {MERGED_FILENAME} (all rows, input order), '
        'the shards scores-SSSSS-of-NNNNN.tsv (consecutive runs of rows) and '
        f'{SUMMARY_FILENAME}.',
    )
    add(
        '--batch_size',
        type=int,
        default=64,
        help='Variants per batch (4 windows each: ref and alt, forward and RC).',
    )
    add(
        '--null_variants',
        type=int,
        default=0,
        help='Null SNVs per variant, in its own window, for empirical p-values; 0 = none.',
    )
    add(
        '--max_variants',
        type=int,
        default=0,
        help='Score only the first this many variants (after splitting ALTs); 0 = all.',
    )
    add(
        '--control_pos_bigwig',
        help="Plus-strand control bigWig, for models trained with control tracks; default: "
        "the records' one.",
    )
    add('--control_neg_bigwig', help="Minus-strand control bigWig; default: the records' one.")
    add(
        '--pad_chrom_ends',
        action='store_true',
        help='Score variants whose windows run past a chromosome end, with N past the end; by '
        "default they keep their row with status 'chrom_end' and no scores.",
    )
    _add_job_flags(parser)
    return parser


def _add_job_flags(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add(
        '--num_shards',
        default='auto',
        help=f'Shard files of rows: auto (1 per {VARIANTS_PER_SHARD:,} variants) or a number '
        '(at most the number of variants).',
    )
    add(
        '--variants_per_chunk',
        type=int,
        default=1000,
        help='Variants per work item: the unit the runner spreads over workers.',
    )
    add(
        '--skip_merge',
        action='store_true',
        help=f'Write the shards only, no {MERGED_FILENAME} (for catalogues too big for one file).',
    )
    add('--overwrite', action='store_true', help='Replace an existing --output_dir when done.')
    add(
        '--worker_start_timeout',
        type=float,
        default=600.0,
        help="Seconds to wait for the runner's first worker to run a step before the job is "
        'cancelled (0: no limit). Raise it where workers install packages first (Dataflow '
        'with --setup_file: 1800).',
    )
    add(
        *logs.VERBOSE_FLAGS,
        dest='verbose',
        action='store_true',
        help="Show INFO logs, Beam's warnings and TensorFlow's log lines (default: progress "
        'and the summary only).',
    )


def _absolute(path: str | None) -> str | None:
    return path if not path or files_lib.is_remote(path) else os.path.abspath(path)


def _check_flags(args: argparse.Namespace) -> None:
    missing = ['--' + f for f in _REQUIRED if not getattr(args, f)]
    if missing:
        raise ScoreVariantsError(f'missing {", ".join(missing)}')
    variant_effects.check_options(args.batch_size, args.null_variants, args.max_variants)
    if args.num_shards != 'auto' and not re.fullmatch(r'[1-9]\d*', args.num_shards):
        raise ScoreVariantsError(
            f'--num_shards must be auto or a positive number, got {args.num_shards}'
        )
    if args.variants_per_chunk < 1:
        raise ScoreVariantsError(
            f'--variants_per_chunk must be at least 1, got {args.variants_per_chunk}'
        )
    if not 0.0 <= args.worker_start_timeout < math.inf:
        raise ScoreVariantsError(
            f'--worker_start_timeout must be >= 0 s (0: no limit), got {args.worker_start_timeout}'
        )
    if bool(args.control_pos_bigwig) != bool(args.control_neg_bigwig):
        raise ScoreVariantsError(
            'give both --control_pos_bigwig and --control_neg_bigwig, or neither'
        )
    for name in ('saved_model', 'fasta', 'variants', 'output_dir'):
        setattr(args, name, _absolute(getattr(args, name)))
    args.control_pos_bigwig = _absolute(args.control_pos_bigwig)
    args.control_neg_bigwig = _absolute(args.control_neg_bigwig)


def _check_fasta(fasta: str) -> None:
    """Opens a local FASTA once on the driver: an unreadable one is one line before any
    worker starts, and its .fai is made here, not by several workers at once."""
    if files_lib.is_remote(fasta):
        return
    with genome_io.open_fasta(fasta):
        pass


def _write_chunks(args: argparse.Namespace, path: str) -> tuple[int, list[int]]:
    """Reads the variants file and writes it as chunk lines to `path`, streaming through a
    local file (a remote variants file is copied first); returns (variants read, byte size
    of each line)."""
    local_dir = tempfile.mkdtemp(prefix='score_variants-in-')
    try:
        variants = args.variants
        if files_lib.is_remote(variants):
            try:
                variants = files_lib.copy_to_local(variants, local_dir)
            except OSError as e:
                raise ScoreVariantsError(f'{args.variants}: cannot read: {e}') from None
        chosen = itertools.islice(variant_files.read_variants(variants), args.max_variants or None)
        local = os.path.join(local_dir, CHUNKS_FILENAME)
        sizes, read = [], 0
        with open(local, 'w') as f:
            while batch := list(itertools.islice(chosen, args.variants_per_chunk)):
                chunk = {'first': read, 'variants': [v.to_list() for v in batch]}
                line = json.dumps(chunk, separators=(',', ':')) + '\n'  # ASCII: json escapes
                f.write(line)
                sizes.append(len(line))
                read += len(batch)
        files_lib.publish_file(local, path)
    finally:
        shutil.rmtree(local_dir, ignore_errors=True)
    return read, sizes


def _num_shards(flag: str, read: int) -> int:
    wanted = math.ceil(read / VARIANTS_PER_SHARD) if flag == 'auto' else int(flag)
    return max(1, min(wanted, read))


def _build_pipeline(p: beam.Pipeline, args, *, tmp_dir: str, model, controls, plan) -> None:
    """Adds the job's steps: chunk lines -> windows -> RunInference -> shard files -> summary."""
    config = model.config
    header = variant_effects.header(variant_effects.model_tasks(model), bool(args.null_variants))
    inputs = (
        p
        | 'ReadVariantChunks'
        >> shard_plans.ReadShardPlans(
            files_lib.join(tmp_dir, CHUNKS_FILENAME),
            plan['sizes'],
            files_lib.join(tmp_dir, STARTED_FILENAME),
        )
        | 'SpreadChunks' >> beam.Reshuffle()
        | 'MakeVariantWindows'
        >> beam.ParDo(
            variant_transforms.VariantWindowsFn(
                args.fasta,
                config.sequence_length,
                config.output_length,
                controls,
                pad_chrom_ends=args.pad_chrom_ends,
            )
        )
    )
    stats = (
        inputs
        | 'ScoreVariants'
        >> variant_transforms.ScoreVariants(
            args.saved_model,
            batch_size=args.batch_size,
            null_variants=args.null_variants,
            verbose=args.verbose,
        )
        | 'WriteScoreShards'
        >> variant_transforms.WriteScoreShards(
            tmp_dir,
            header,
            variant_transforms.shard_bounds(plan['read'], plan['num_shards']),
        )
    )
    _ = stats | 'WriteJobSummary' >> variant_transforms.WriteScoreSummary(
        files_lib.join(tmp_dir, variant_transforms.SUMMARY_FILENAME)
    )


def _run_pipeline(args, pipeline_args: Sequence[str], save_main_session: bool, **graph) -> dict:
    """Builds and runs the pipeline; returns the job summary it wrote (and removes the file).

    Raises:
      ScoreVariantsError: a worker's input error, or workers that never started.
      runners.PipelineRunError: any other failure of the run, as one line.
    """
    options = PipelineOptions(runners.resolve_args(list(pipeline_args), num_plans=0))
    options.view_as(SetupOptions).save_main_session = save_main_session
    p = runners.make_pipeline(options)
    tmp_dir = graph['tmp_dir']
    started = files_lib.join(tmp_dir, STARTED_FILENAME)
    from bpnet_tfx.inference.export import (
        ExportError,  # TensorFlow: imported by now (load_export_info).
    )

    _build_pipeline(p, args, **graph)
    runners.run_and_wait(
        p,
        runner_name=runners.runner_name(options),
        started=lambda: files_lib.exists(started),
        timeout=args.worker_start_timeout,
        user_errors=(GenomeError, ExportError, SchemaError, VariantError),
        wrap=ScoreVariantsError,
    )
    summary_path = files_lib.join(tmp_dir, variant_transforms.SUMMARY_FILENAME)
    summary = json.loads(files_lib.read_text(summary_path))
    for path in (summary_path, started, files_lib.join(tmp_dir, CHUNKS_FILENAME)):
        if files_lib.exists(path):
            files_lib.delete(path)
    return summary


def _merge(tmp_dir: str, num_shards: int) -> None:
    """Writes scores.tsv: the header once, then every shard's rows in shard order."""
    local_dir = tempfile.mkdtemp(prefix='score_variants-merge-')
    try:
        merged = os.path.join(local_dir, MERGED_FILENAME)
        with open(merged, 'wb') as out:
            for s in range(num_shards):
                name = variant_transforms.shard_filename(s, num_shards)
                with FileSystems.open(
                    files_lib.join(tmp_dir, name), compression_type=CompressionTypes.UNCOMPRESSED
                ) as f:
                    header = f.readline()
                    if s == 0:
                        out.write(header)
                    shutil.copyfileobj(f, out, 16 << 20)
        files_lib.publish_file(merged, files_lib.join(tmp_dir, MERGED_FILENAME))
    finally:
        shutil.rmtree(local_dir, ignore_errors=True)


def _score(tmp_dir: str, args, pipeline_args, save_main_session: bool, model, controls):
    """Chunks -> pipeline -> checks -> scores.tsv and summary.json, all in `tmp_dir`."""
    read, sizes = _write_chunks(args, files_lib.join(tmp_dir, CHUNKS_FILENAME))
    if not read:
        variant_effects.check_scored(args.variants, 0, {})
    plan = {'read': read, 'sizes': sizes, 'num_shards': _num_shards(args.num_shards, read)}
    print(
        f'{PROG}: {read} variants read from {args.variants} in {len(sizes)} chunk(s); '
        f'scoring into {plan["num_shards"]} shard(s)',
        file=sys.stderr,
        flush=True,
    )
    summary = _run_pipeline(
        args,
        pipeline_args,
        save_main_session,
        tmp_dir=tmp_dir,
        model=model,
        controls=controls,
        plan=plan,
    )
    if summary['rows'] != read or len(summary['shards']) != plan['num_shards']:
        raise runners.PipelineRunError(
            f'{PROG}: the run wrote {summary["rows"]} rows in {len(summary["shards"])} shards '
            f'for {read} variants in {plan["num_shards"]} shards'
        )
    by_status = {s: summary['by_status'].get(s, 0) for s in variant_effects.STATUSES}
    variant_effects.check_scored(args.variants, read, by_status, args.fasta)
    if not args.skip_merge:
        _merge(tmp_dir, plan['num_shards'])
    return read, {k: n for k, n in by_status.items() if n}, plan['num_shards']


def run(argv: Sequence[str] | None = None, save_main_session: bool = False) -> dict[str, Any]:
    """Runs the variant scoring job.

    Args:
      argv: command-line arguments; the ones this job does not define go to Beam.
      save_main_session: pickle the main session for workers (not needed: the code is in
        variants/transforms.py and variants/handler.py, shipped with --setup_file).

    Returns:
      The summary written as summary.json: {'read', 'scored', 'by_status', 'num_shards',
      'seconds', 'output_dir', 'tasks', ...}.

    Raises:
      BpnetError: bad flags or inputs (a malformed variants line, an export or FASTA that
        cannot be read, no variant scored, a worker's input error), one line.
      RecordsInputError: an existing --output_dir without --overwrite, or a runner Beam lacks.
      runners.PipelineRunError: the run failed.
    """
    started = time.perf_counter()
    args, pipeline_args, model = startup.start_job(
        _parser(), argv, _check_flags, output=(SUMMARY_FILENAME, 'scores folder')
    )
    controls = model.control_bigwigs(args.control_pos_bigwig, args.control_neg_bigwig)
    _check_fasta(args.fasta)

    def write(tmp_dir: str) -> dict[str, Any]:
        read, by_status, num_shards = _score(
            tmp_dir, args, pipeline_args, save_main_session, model, controls
        )
        summary = {
            'read': read,
            'scored': by_status.get('ok', 0),
            'by_status': by_status,
            'num_shards': num_shards,
            'tasks': variant_effects.model_tasks(model),
            'seconds': round(time.perf_counter() - started, 2),
            'output_dir': args.output_dir,
            'flags': vars(args),
            'pipeline_args': list(pipeline_args),
        }
        files_lib.write_text(
            files_lib.join(tmp_dir, SUMMARY_FILENAME), json.dumps(summary, indent=1) + '\n'
        )
        return summary

    summary = files_lib.write_into_place(args.output_dir, write, last=SUMMARY_FILENAME)
    _print_summary(args, summary)
    return summary


def _print_summary(args, summary: dict[str, Any]) -> None:
    output = files_lib.join(
        args.output_dir,
        variant_transforms.SHARD_PATTERN if args.skip_merge else MERGED_FILENAME,
    )
    print(
        variant_effects.summary_line(
            PROG, summary['read'], summary['by_status'], summary['seconds'], output
        )
        + f" ({summary['num_shards']} shard{'s' if summary['num_shards'] > 1 else ''})"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the job; input errors become one line on stderr and exit status 2, a failed run
    one line and exit status 1 (with -v, after the runner's full error)."""
    return runners.job_main(PROG, run, argv, (BpnetError, RecordsInputError))


if __name__ == '__main__':
    runners.exit_job(main())
