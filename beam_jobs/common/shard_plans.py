"""Reading a job's shard plans back on the workers: the driver writes one JSON line per shard
to a file, and `ReadShardPlans` reads each line from its byte range (the graph holds one small
(path, offset, size) tuple per shard, not the plans). Every Beam job that plans shards on the
driver (records, variants, tracks, contributions) begins its pipeline with it."""

from __future__ import annotations

import os
from typing import Iterable, Sequence

import apache_beam as beam
import numpy as np

from beam_jobs.common import files as files_lib


class ReadShardPlanFn(beam.DoFn):
    """(plans file, byte offset, size) -> the ShardPlan JSON line stored there.

    Its `setup` also writes `started_path` (once per worker), which tells the driver that the
    runner's workers run at all.
    """

    def __init__(self, started_path: str | None = None):
        self._started_path = started_path

    def setup(self):
        if self._started_path:
            files_lib.write_text(self._started_path, f'{os.getpid()}\n')

    def process(self, place: tuple[str, int, int]) -> Iterable[str]:
        path, offset, size = place
        yield files_lib.read_range(path, offset, size).decode()


class ReadShardPlans(beam.PTransform):
    """Begins the pipeline: one ShardPlan JSON line per shard file, read by the workers.

    Input: the pipeline. Output: str, one JSON line per plan. The lines stay in `path` (about
    25 bytes per region); the graph holds only where each one is.
    """

    def __init__(self, path: str, sizes: Sequence[int], started_path: str | None = None):
        """Args:
        path: the plans file (local or remote), the lines back to back.
        sizes: the byte size of each line, newline included, in file order.
        started_path: a file for the first worker to write (see ReadShardPlanFn).
        """
        super().__init__()
        offsets = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)[:-1]]) if sizes else []
        self._places = [(path, int(o), int(n)) for o, n in zip(offsets, sizes)]
        self._started_path = started_path

    def expand(self, pbegin):
        return (
            pbegin
            | 'PlanPlaces' >> beam.Create(self._places)
            | 'ReadPlanLines' >> beam.ParDo(ReadShardPlanFn(self._started_path))
        )
