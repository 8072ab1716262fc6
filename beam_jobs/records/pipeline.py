"""Running the records job's Beam pipeline into a temporary folder.

`write_records` writes the shard plans, runs the pipeline (`_run_pipeline`: graph from
transforms.py; runners.make_pipeline and runners.run_and_wait give local runs on FnApiRunner,
a bounded wait for the first worker, and a worker's input error or a failed run as one line),
balances the books (accounting.py) and writes rejected.tsv and metadata.json. make_records
runs it through files.write_into_place, which moves the folder into place once it is done.
"""

from __future__ import annotations

import argparse
import json
import logging
from typing import Any, Callable, Sequence, TypeVar

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, SetupOptions, StandardOptions

from beam_jobs.common import files as files_lib
from beam_jobs.common import runners, shard_plans
from beam_jobs.common.errors import RecordsInputError
from beam_jobs.records import accounting, planning, shards, transforms, windows
from bpnet_tfx.records import schema

_T = TypeVar('_T')
_LOGGER = logging.getLogger(__name__)


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
        >> shard_plans.ReadShardPlans(
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
    p = runners.make_pipeline(options)
    runner_name = runners.runner_name(options)
    tmp_dir = graph_args['tmp_dir']
    _LOGGER.info(
        'running pipeline on %s (%s) into %s',
        runner_name,
        options.view_as(StandardOptions).runner or 'DirectRunner',
        tmp_dir,
    )
    started_path = files_lib.join(tmp_dir, transforms.STARTED_FILENAME)
    _build_pipeline(p, **graph_args)
    # p.run() and a wait of our own, not `with p:`, so that a run whose workers never start
    # can be told apart from a long one, and cancelled.
    runners.run_and_wait(
        p,
        runner_name=runner_name,
        started=lambda: files_lib.exists(started_path),
        timeout=worker_start_timeout,
        user_errors=(RecordsInputError,),
        wrap=RecordsInputError,
    )
    summary_path = files_lib.join(tmp_dir, transforms.SUMMARY_FILENAME)
    summary = json.loads(files_lib.read_text(summary_path))
    files_lib.delete(summary_path)
    if files_lib.exists(started_path):
        files_lib.delete(started_path)
    files_lib.delete(graph_args['plans_path'])
    return summary


def write_records(
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
