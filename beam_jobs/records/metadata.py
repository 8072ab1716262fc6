"""metadata.json of a records folder: the records' shapes and counts, and where they came from."""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import math
from typing import Any, Sequence

import apache_beam as beam

from beam_jobs.records import accounting, planning, transforms, windows
from beam_jobs.records import background as background_lib
from beam_jobs.records import tasks as tasks_lib
from bpnet_tfx.records import schema


def records_info(
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
        extra['background'] = _background(args, plan.background, books)
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
            **_inputs(args, pipeline_args, fasta, task_list, demo, blacklist),
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


def _inputs(
    args: argparse.Namespace,
    pipeline_args: Sequence[str],
    fasta: str,
    task_list: Sequence[tasks_lib.Task],
    demo: bool,
    blacklist: str | None,
) -> dict[str, Any]:
    """metadata.json's source: the input files, flags and versions the records came from."""
    first = task_list[0]
    return {
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
    }


def _background(
    args: argparse.Namespace, sample: background_lib.BackgroundSample, books: accounting.Tally
) -> dict[str, Any]:
    """How the background windows were drawn, and how many made it into the records."""
    return {
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


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return 'unknown'
