"""DoFns and composite PTransforms of the records job: shard plans to shard files.

The driver deals the windows out to shard files (shards.py) and writes the plans, one JSON line
each, to a file; `common.shard_plans.ReadShardPlans` reads each line back, and `WriteShards`
turns each `ShardPlan` into its file: `WriteShardFn` opens a `windows.WindowReader` once per
worker (`setup`), reads each chunk of the plan, encodes the windows
(`bpnet_tfx.records.codec.encode_record`) and streams them into the file in (chrom, start) order.
Records never travel between steps, so no step holds more than one chunk of records, and the
files are the same bytes on every run and runner. `WriteJobSummary` writes what the driver
needs back (records per split, rejections, training totals for the median:
`accounting.summarise`) as one JSON file. They live here, not in the job module, so that remote
workers can import them.

Only Create, ParDo, Flatten, GroupByKey and Reshuffle are used, and no ParDo has tagged
outputs: Beam's Dask runner translates nothing else (a `Read` becomes a missing input, and the
outputs of a multi-output ParDo reach every consumer mixed). So WriteShardFn has one output of
(part, item) pairs, split into PCollections by plain ParDos (docs/runners.md).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Any, Iterable

import apache_beam as beam
import numpy as np

from beam_jobs.common import files as files_lib
from beam_jobs.common.runners import SHARD_NOTE
from beam_jobs.records import accounting
from beam_jobs.records import writer as tfrecord_writer
from beam_jobs.records.shards import ShardPlan
from beam_jobs.records.windows import WindowReader, WindowSpec

NAMESPACE = 'make_records'  # Metrics namespace of every counter of the job.
REJECTED = 'rejected'  # Tag of (region_id, reason) outputs.
TOTALS = 'totals'  # Tag of (split, float64 array (records, tasks) of total counts) outputs.
SHARDS = 'shards'  # Part name of (split, records written) outputs, one per file.
SUMMARY_FILENAME = '_job_summary.json'  # Read and removed by the driver.
STARTED_FILENAME = '_workers_started'  # Written by the first worker to run; the driver waits
# for it (--worker_start_timeout) and removes it.
# ISA-L deflate level of the GZIP shard files (0-3; records/writer.py): level 1 compresses
# about as well as zlib's level 1, several times faster (docs/benchmarks.md).
COMPRESSION_LEVEL = 1


def _counter(name: str):
    return beam.metrics.Metrics.counter(NAMESPACE, name)


class WriteShardFn(beam.DoFn):
    """ShardPlan JSON line -> (split, records written), after writing the plan's GZIP
    TFRecord file. Plans stay JSON text until here: parsing them earlier costs the local
    runner a pickle of every Region at each step boundary.

    Outputs are (part, item) pairs: 'shards' gives (split, records written) per file;
    'rejected' gives (region_id, reason) for a stored window past a chromosome
    end ('out_of_bounds') or with more than `max_n_fraction` non-ACGT bases ('too_many_n');
    'totals' gives (split, float64 array (records, tasks): total counts over both strands in
    the centred counts window) once per file, for peak records only (background records are
    left out of the median): 8 bytes per record and task for the exact median.
    Records go straight from the reader into the file, so a worker holds at most one run of
    windows.
    """

    def __init__(self, output_dir: str, spec: WindowSpec, output_length: int, totals: bool = True):
        """Args:
        output_dir: folder of the shard files (local or remote).
        spec: what to read for each window.
        output_length: O, the counts window length, for the centred window of the totals.
        totals: emit the 'totals' output; off when the caller has the totals already.
        """
        self._output_dir = output_dir
        self._spec = spec
        self._output_length = output_length
        self._totals = totals
        self._reader = None
        self._tmp_dir = None

    def setup(self):
        self._reader = WindowReader(self._spec).open()
        if files_lib.is_remote(self._output_dir):
            self._tmp_dir = tempfile.mkdtemp(prefix='make_records-out-')

    def teardown(self):
        if self._reader is not None:
            self._reader.close()
        if self._tmp_dir:
            shutil.rmtree(self._tmp_dir, ignore_errors=True)

    def process(self, plan_json: str) -> Iterable[Any]:
        plan = ShardPlan.from_json(plan_json)
        dest = files_lib.join(self._output_dir, plan.filename)
        # A local file is written under a name of its own and renamed into place, so two
        # attempts at one plan (a retried or speculative bundle) never interleave their bytes.
        path = (
            os.path.join(self._tmp_dir, plan.filename)
            if self._tmp_dir
            else f'{dest}.partial-{os.getpid()}-{id(self):x}'
        )
        j, length = self._spec.max_jitter, self._output_length
        totals, rejected, written = [], [], 0
        try:
            with tfrecord_writer.GzipTFRecordWriter(path, COMPRESSION_LEVEL) as writer:
                for chunk in plan.chunks:
                    for region, window in self._reader.read(chunk):
                        if isinstance(window, str):
                            rejected.append((region.region_id, window))
                            continue
                        writer.write(window.encode(self._spec))
                        written += 1
                        if self._totals and not region.background:
                            centre = window.profile[j : j + length]
                            totals.append(centre.sum(axis=(0, 2), dtype=np.float64))
        except BaseException as e:
            if not self._tmp_dir and os.path.exists(path):
                os.remove(path)  # A retried bundle must not leave a partial file behind.
            e.add_note(SHARD_NOTE + plan.filename)  # Names the element in the one-line error.
            raise
        if self._tmp_dir:
            files_lib.publish_file(path, dest)
        else:
            os.replace(path, dest)
        _counter('regions_in').inc(plan.num_regions)
        _counter('records_out').inc(written)
        _counter(f'records_{plan.split}').inc(written)
        for reason in sorted({reason for _, reason in rejected}):
            _counter(f'rejected_{reason}').inc(sum(1 for _, x in rejected if x == reason))
        _counter('shards_written').inc()
        yield SHARDS, (plan.split, written)
        for item in rejected:
            yield REJECTED, item
        if totals:
            yield TOTALS, (plan.split, np.stack(totals))


def _plan_json(plan: ShardPlan | str) -> str:
    return plan if isinstance(plan, str) else plan.to_json()


def _select(pair: tuple[str, Any], part: str) -> Iterable[Any]:
    if pair[0] == part:
        yield pair[1]


class WriteShards(beam.PTransform):
    """Writes one `{split}-SSSSS-of-NNNNN.tfrecord.gz` file per ShardPlan.

    Input: ShardPlan or its JSON line, one per planned file (empty plans give empty files).
    Output: a dict of PCollections: 'shards' (split, records written) per file, 'rejected'
    (region_id, reason), 'totals' (split, (records, tasks) array of totals).
    """

    def __init__(self, output_dir: str, spec: WindowSpec, output_length: int, totals: bool = True):
        super().__init__()
        self._fn = WriteShardFn(output_dir, spec, output_length, totals)

    def expand(self, plans):
        # Plans cross the shuffle as JSON (about 25 bytes per region, not a pickled Region),
        # since a local runner holds everything shuffled at once.
        parts = (
            plans
            | 'PlansToJson' >> beam.Map(_plan_json)
            | 'SpreadPlans' >> beam.Reshuffle()  # Else one worker gets every file.
            | 'WriteShardFiles' >> beam.ParDo(self._fn)
        )
        # Plain ParDos, not with_outputs(): the Dask runner mixes up a ParDo's tagged outputs.
        return {
            part: parts | f'Select{part.capitalize()}' >> beam.FlatMap(_select, part)
            for part in (SHARDS, REJECTED, TOTALS)
        }


_SUMMARY_PARTS = (SHARDS, TOTALS, REJECTED)


def _write_summary(path: str, parts: Iterable[tuple[str, Any]]) -> str:
    """Writes the summary of (part name, element) pairs; the 'path' part is only an anchor."""
    by_name = {name: [] for name in _SUMMARY_PARTS}
    for name, item in parts:
        if name in by_name:
            by_name[name].append(item)
    summary = accounting.summarise(by_name['shards'], by_name['totals'], by_name['rejected'])
    files_lib.write_text(path, json.dumps(summary, indent=1, sort_keys=True))
    return path


class WriteJobSummary(beam.PTransform):
    """Writes `summarise(...)` of the job as JSON to `path`; outputs the path.

    Input: a dict with 'shards' ((split, records written) per file), 'totals'
    ((split, (records, tasks) array of totals) per file) and 'rejected' ((region_id, reason))
    PCollections. The median is exact: the training totals are gathered on one worker, a few
    floats per record (not the records). One GroupByKey gathers all three (an anchor element
    makes the group exist when they are empty): three `ToList`s and side inputs cost about a
    second of pipeline construction and start-up on the local runner.
    """

    def __init__(self, path: str):
        super().__init__()
        self._path = path

    def expand(self, pcolls):
        tagged = [
            pcolls[name]
            | f'Tag{name.capitalize()}' >> beam.Map(lambda item, name=name: (None, (name, item)))
            for name in _SUMMARY_PARTS
        ]
        anchor = pcolls['shards'].pipeline | 'SummaryPath' >> beam.Create(
            [(None, ('path', self._path))]
        )
        return (
            (anchor, *tagged)
            | 'FlattenSummaryParts' >> beam.Flatten()
            | 'GatherSummaryParts' >> beam.GroupByKey()
            | 'WriteSummaryFile'
            >> beam.MapTuple(lambda _, parts, path=self._path: _write_summary(path, parts))
        )
