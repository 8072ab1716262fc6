"""Running a reads count: the pipeline (transforms.CountReads), then the bigWigs.

`count_to_bigwigs` makes a temporary sibling folder of the outputs, runs the count on the
runner the pipeline arguments name (runners.make_pipeline / run_and_wait: FnApiRunner for
local runs, a bounded wait for the first worker, a worker's input error as one line), writes
the bigWigs from the region files (bigwigs.py) and removes the folder; a failed run leaves
neither. Shared by `python -m beam_jobs.reads_to_bigwig` and make_records --reads.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import secrets
import time
from typing import Sequence

from apache_beam.options.pipeline_options import PipelineOptions, SetupOptions

from beam_jobs.common import files as files_lib
from beam_jobs.common import runners
from beam_jobs.common.errors import RecordsInputError
from beam_jobs.reads import bigwigs, transforms
from beam_jobs.reads.plan import CountPlan
from bpnet_tfx.genome import reads

_LOGGER = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class CountResult:
    """What a count wrote: the bigWigs, per-file tallies, totals per strand, seconds."""

    outputs: tuple[str, ...]
    tallies: dict[str, dict[str, int]]
    plus: int
    minus: int
    regions: int
    seconds: float

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def count_to_bigwigs(
    plan: CountPlan,
    outputs: Sequence[str],
    pipeline_args: Sequence[str],
    *,
    worker_start_timeout: float = 600.0,
    save_main_session: bool = False,
) -> CountResult:
    """Counts `plan` into the bigWigs `outputs` (plus and minus, or one unstranded).

    Raises:
      RecordsInputError: a worker's input error (a bad line, an unreadable region), workers
        that did not start, or no read counted.
      PipelineRunError: any other failure of the run.
    """
    t0 = time.time()
    count_dir = f'{outputs[0]}.count-tmp-{secrets.token_hex(4)}'
    files_lib.make_dir(count_dir)
    try:
        files_lib.make_dir(files_lib.join(count_dir, transforms.REGIONS_DIR))
        summary = _run(plan, count_dir, pipeline_args, worker_start_timeout, save_main_session)
        regions = summary['regions']
        plus, minus = sum(r[3] for r in regions), sum(r[4] for r in regions)
        tallies = {plan.sources[int(i)].path: t for i, t in sorted(summary['tallies'].items())}
        if not plus + minus:
            raise RecordsInputError(
                f'no read counted in {", ".join(s.path for s in plan.sources)} '
                f'({_tally_text(tallies)}); check the filters (--min_mapq, --dedup, ...) and '
                'the contig names'
            )
        _LOGGER.info(
            'counted %d + %d ends in %d regions; writing bigWigs', plus, minus, len(regions)
        )
        bigwigs.write_bigwigs(plan, count_dir, regions, outputs)
    finally:
        files_lib.remove_dir(count_dir)
    return CountResult(
        tuple(outputs), tallies, plus, minus, len(regions), round(time.time() - t0, 1)
    )


def _tally_text(tallies: dict[str, dict[str, int]]) -> str:
    total: dict[str, int] = {}
    for t in tallies.values():
        reads.add_tallies(total, t)
    return ', '.join(f'{k} {v}' for k, v in sorted(total.items())) or 'no reads'


def summary_line(result: CountResult) -> str:
    """The closing line: reads counted and left out, outputs, time."""
    total: dict[str, int] = {}
    for t in result.tallies.values():
        reads.add_tallies(total, t)
    left = {k: v for k, v in total.items() if k not in ('reads', 'counted')}
    left_text = ', '.join(f'{k} {v:,}' for k, v in sorted(left.items())) or 'none'
    return (
        f'counted {total.get("counted", 0):,} of {total.get("reads", 0):,} reads of '
        f'{len(result.tallies)} file(s) (left out: {left_text}) into {", ".join(result.outputs)} '
        f'in {result.seconds:.1f} s'
    )


def _run(plan, count_dir, pipeline_args, worker_start_timeout, save_main_session) -> dict:
    """Runs the count into `count_dir`; returns its summary."""
    num = len(plan.regions(plan.indexed_contigs)) + len(plan.sources)
    options = PipelineOptions(runners.resolve_args(list(pipeline_args), num_plans=num))
    options.view_as(SetupOptions).save_main_session = save_main_session
    p = runners.make_pipeline(options)
    name = runners.runner_name(options)
    _ = p | 'CountReads' >> transforms.CountReads(plan, count_dir)
    started = files_lib.join(count_dir, transforms.STARTED_FILENAME)
    _LOGGER.info('counting %d file(s) on %s into %s', len(plan.sources), name, count_dir)
    runners.run_and_wait(
        p,
        runner_name=name,
        started=lambda: files_lib.exists(started),
        timeout=worker_start_timeout,
        user_errors=(RecordsInputError,),
        wrap=RecordsInputError,
    )
    return json.loads(files_lib.read_text(files_lib.join(count_dir, transforms.SUMMARY_FILENAME)))
