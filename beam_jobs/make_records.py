"""The records job: genome FASTA + peaks + stranded bigWigs -> sharded TFRecords + metadata.json.

    python -m beam_jobs.make_records --runner=DirectRunner            # demo data
    python -m beam_jobs.make_records --fasta=g.fa --peaks=p.narrowPeak \\
        --pos_bigwig=pos.bw --neg_bigwig=neg.bw --output_dir=records --valid_chroms=chr1
    python -m beam_jobs.make_records --fasta=g.fa --tasks_spec=tasks.yaml --output_dir=records

The driver reads its flags (records/flags.py), reads and checks the peaks of every task and
chooses the windows (planning.py: duplicates, windows past a chromosome end, blacklisted
windows and count outliers set aside, GC-matched background windows added), deals them out to
the shard files (shards.py), writes the plans beside the output and runs the pipeline
(transforms.py, run by records/pipeline.py) into a temporary sibling folder; then it balances
the books (accounting.py), writes metadata.json (records/metadata.py) and rejected.tsv there
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

from beam_jobs.common import logs  # No Beam import: it must come first on the command line.

if __name__ == '__main__':  # Before Beam's import logs its 'apitools not found' warning.
    logs.configure(logs.verbose_requested(sys.argv[1:]))

import logging
import time
from typing import Sequence

from beam_jobs.common import arguments, runners
from beam_jobs.common import files as files_lib
from beam_jobs.reads import records_inputs as reads_inputs
from beam_jobs.records import (
    accounting,
    planning,
    regions,
    shards,
    splits,
)
from beam_jobs.records import (
    flags as records_flags,
)
from beam_jobs.records import (
    metadata as records_metadata,
)
from beam_jobs.records import (
    pipeline as records_pipeline,
)
from beam_jobs.records import tasks as tasks_lib
from bpnet_tfx.records import schema

RecordsInputError = regions.RecordsInputError

_LOGGER = logging.getLogger('beam_jobs.make_records')  # Not __main__ under python -m.


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
    parser = records_flags.parser(__doc__.split('\n\n')[0])
    reads_inputs.add_records_flags(parser)
    args, pipeline_args = arguments.parse(parser, argv)
    records_flags.check_flags(args)
    runners.resolve_args(pipeline_args, num_plans=0)  # A runner Beam lacks stops us here.
    # Reads (--reads, a spec's reads, --demo_from_reads) are counted into bigWigs first.
    demo_dir = records_flags.DEMO_OUTPUT_DIR
    with reads_inputs.counted_reads(args, pipeline_args, demo_output_dir=demo_dir) as counted:
        return _run(args, pipeline_args, save_main_session, t0, counted)


def _run(
    args,
    pipeline_args: Sequence[str],
    save_main_session: bool,
    t0: float,
    counted: reads_inputs.CountedReads,
) -> schema.RecordsInfo:
    """The records job once the flags are read and any reads counted."""
    config = records_flags.plan_config(args)
    num_shards_flag = shards.parse_num_shards(args.num_shards)
    fasta, task_list, demo = records_flags.inputs(args)
    blacklist = records_flags.absolute(args.blacklist) if args.blacklist else None
    output_dir = records_flags.absolute(args.output_dir or records_flags.DEMO_OUTPUT_DIR)
    files_lib.check_output_dir(output_dir, args.overwrite, marker=schema.METADATA_FILENAME)

    plan, num_shards = _plan(config, task_list, fasta, blacklist, num_shards_flag)
    spec = records_flags.with_encodings(
        args, records_flags.window_spec(args, fasta, task_list), plan
    )

    inputs = dict(fasta=fasta, task_list=task_list, demo=demo, blacklist=blacklist)
    metadata = _metadata(args, pipeline_args, inputs, plan, num_shards, spec, t0)

    def write(tmp_dir: str) -> tuple[accounting.Tally, schema.RecordsInfo]:
        counted.save(tmp_dir)  # reads.json and --write_bigwigs' bigWigs, when from reads.
        return records_pipeline.write_records(
            tmp_dir,
            args=args,
            pipeline_args=pipeline_args,
            save_main_session=save_main_session,
            plan=plan,
            num_shards=num_shards,
            spec=spec,
            task_names=[t.name for t in task_list],
            metadata=metadata,
        )

    books, info = files_lib.write_into_place(output_dir, write, last=schema.METADATA_FILENAME)
    _report(books, info, plan, num_shards, output_dir)
    return info


def _metadata(args, pipeline_args, inputs: dict, plan, num_shards, spec, t0: float):
    """books -> the RecordsInfo to write as metadata.json, its seconds counted from `t0`."""

    def metadata(books: accounting.Tally) -> schema.RecordsInfo:
        return records_metadata.records_info(
            args,
            pipeline_args,
            **inputs,
            plan=plan,
            books=books,
            num_shards=num_shards,
            spec=spec,
            seconds=time.time() - t0,
        )

    return metadata


def _plan(
    config: planning.PlanConfig,
    task_list: Sequence[tasks_lib.Task],
    fasta: str,
    blacklist: str | None,
    num_shards_flag: str | int | dict[str, int],
) -> tuple[planning.WindowPlan, dict[str, int]]:
    """The driver's window choice and the shard files per split it needs."""
    plan = planning.plan_windows(config, task_list, fasta, blacklist)
    counts = splits.split_counts(plan.regions)
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
    return plan, num_shards


def _report(
    books: accounting.Tally,
    info: schema.RecordsInfo,
    plan: planning.WindowPlan,
    num_shards: dict[str, int],
    output_dir: str,
) -> None:
    """The job's closing log lines and its summary line on stdout."""
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


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the job; input errors become one line on stderr and exit status 2, a failed run
    one line and exit status 1 (with -v, after the runner's full error)."""
    return runners.job_main('make_records', run, argv, (RecordsInputError,))


if __name__ == '__main__':
    runners.exit_job(main())
