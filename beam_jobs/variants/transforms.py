"""DoFns and composite PTransforms of the variant scoring job (beam_jobs/score_variants.py).

The driver reads the variants file (`variant_files.read_variants`) and writes it as
chunks, one JSON line each: {"first": index of its first variant, "variants": [[chrom, pos,
ref, alt, variant_id], ...]}. On the workers, `VariantWindowsFn` turns a chunk into one
((index, status), `VariantInput`) per variant (`bpnet_tfx.variant_effects.alleles.VariantWindows`:
the allele checks and windows of the variants command); `ScoreVariants` runs them through
RunInference with `beam_jobs.inference.handler.ExportedModelHandler` and
`variant_effects.score_inputs` (the command's scoring), giving ((index, status), TSV row);
`WriteScoreShards` groups the rows by shard (contiguous ranges of input indices), sorts each
shard by index and writes it with the header; `WriteScoreSummary` writes what the driver needs
back (rows per shard and status) as one JSON file. They live here, not in the job module, so
that remote workers can import them.
"""

from __future__ import annotations

import bisect
import functools
import json
import os
import shutil
import tempfile
from typing import Any, Iterable, Sequence

import apache_beam as beam

from beam_jobs.common import files as files_lib
from beam_jobs.inference import handler as inference
from bpnet_tfx.variant_effects import scoring as variant_effects
from bpnet_tfx.variant_effects.variant_files import Variant

NAMESPACE = 'score_variants'  # Metrics namespace of every counter of the job.
SHARD_PATTERN = 'scores-*-of-*.tsv'  # The shard files, beside the merged scores.tsv.
SUMMARY_FILENAME = '_job_summary.json'  # Read and removed by the driver.


def _counter(name: str):
    return beam.metrics.Metrics.counter(NAMESPACE, name)


def shard_filename(shard: int, num_shards: int) -> str:
    return f'scores-{shard:05d}-of-{num_shards:05d}.tsv'


def shard_bounds(total: int, num_shards: int) -> list[int]:
    """Index bounds of the shards: shard s holds input rows [bounds[s], bounds[s + 1])."""
    return [s * total // num_shards for s in range(num_shards + 1)]


class VariantWindowsFn(beam.DoFn):
    """Chunk JSON line -> ((index, status), VariantInput) per variant of the chunk.

    Opens the FASTA once per worker (`setup`; a remote FASTA and control bigWigs are copied
    to local disk first, with the FASTA's .fai).
    """

    def __init__(
        self, fasta: str, length: int, output_length: int, controls=None, pad_chrom_ends=False
    ):
        """Args:
        fasta: the genome FASTA (local path or URL).
        length, output_length: the model's input and output lengths.
        controls: per task, the (plus, minus) control bigWigs, or None.
        pad_chrom_ends: score windows past a chromosome end N-padded (else 'chrom_end').
        """
        self._fasta, self._length, self._output_length = fasta, length, output_length
        self._pad_chrom_ends = pad_chrom_ends
        self._controls = [tuple(pair) for pair in controls] if controls else None
        self._genome = None
        self._windows = None
        self._local_dir = None

    def setup(self):
        from bpnet_tfx.genome import genome_io

        paths = [self._fasta] + [p for pair in self._controls or () for p in pair]
        if any(files_lib.is_remote(p) for p in paths):
            self._local_dir = files_lib.make_local_dir()
        local = files_lib.localize(paths, self._local_dir or '', companions=('.fai',))
        controls = [tuple(local[p] for p in pair) for pair in self._controls or ()]
        self._genome = genome_io.open_fasta(local[self._fasta])
        self._windows = variant_effects.VariantWindows(
            self._genome, self._length, self._output_length, controls or None, self._pad_chrom_ends
        )

    def teardown(self):
        if self._genome is not None:
            try:
                self._genome.close()
            except Exception:  # Best effort: the worker is going away anyway.
                pass
        if self._local_dir:
            shutil.rmtree(self._local_dir, ignore_errors=True)

    def process(self, line: str) -> Iterable[tuple[tuple[int, str], Any]]:
        chunk = json.loads(line)
        for k, fields in enumerate(chunk['variants']):
            x = self._windows(Variant.from_list(fields))
            _counter(f'variants_{x.status}').inc()
            yield (chunk['first'] + k, x.status), x


class WriteScoreShardFn(beam.DoFn):
    """(shard, [((index, status), row), ...]) -> {'shard', 'rows', 'by_status'}, after writing
    the shard file: the header, then the rows by index.

    Raises:
      RuntimeError: the rows are not exactly the shard's indices (a runner that lost or
        repeated elements).
    """

    def __init__(self, output_dir: str, header: Sequence[str], bounds: Sequence[int]):
        self._output_dir = output_dir
        self._header = '\t'.join(header) + '\n'
        self._bounds = list(bounds)

    def process(self, element) -> Iterable[dict]:
        shard, rows = element
        rows = sorted(rows, key=lambda item: item[0][0])
        lo, hi = self._bounds[shard], self._bounds[shard + 1]
        if [key[0] for key, _ in rows] != list(range(lo, hi)):
            raise RuntimeError(
                f'shard {shard} got {len(rows)} rows, not the input rows {lo}-{hi - 1} once each'
            )
        num_shards = len(self._bounds) - 1
        dest = files_lib.join(self._output_dir, shard_filename(shard, num_shards))
        local_dir = tempfile.mkdtemp(prefix='score_variants-out-')
        try:
            path = os.path.join(local_dir, shard_filename(shard, num_shards))
            with open(path, 'w') as f:
                f.write(self._header)
                f.writelines(row + '\n' for _, row in rows)
            files_lib.publish_file(path, dest)  # A retried bundle replaces the whole file.
        finally:
            shutil.rmtree(local_dir, ignore_errors=True)
        by_status: dict[str, int] = {}
        for (_, status), _ in rows:
            by_status[status] = by_status.get(status, 0) + 1
        _counter('rows_written').inc(len(rows))
        _counter('shards_written').inc()
        yield {'shard': shard, 'rows': len(rows), 'by_status': by_status}


def _shard_of(item, bounds: Sequence[int]):
    (index, _), _ = item
    return bisect.bisect_right(bounds, index) - 1, item


class ScoreVariants(beam.PTransform):
    """((index, status), VariantInput) -> ((index, status), TSV row), through RunInference.

    Args:
      saved_model: the export (local or remote).
      batch_size: variants per batch and windows per model call, as the command's flag.
      null_variants: null SNVs per variant for the p-values (0: none).
      verbose: show TensorFlow's load-time lines on the workers.
    """

    def __init__(self, saved_model: str, *, batch_size: int, null_variants: int, verbose=False):
        super().__init__()
        batch_fn = functools.partial(
            variant_effects.score_inputs, null_variants=null_variants, batch_size=batch_size
        )
        self._handler = inference.ExportedModelHandler(
            saved_model,
            batch_fn,
            batch_size=batch_size,
            namespace=NAMESPACE,
            verbose=verbose,
            progress=(NAMESPACE, 'variants'),
        )

    def expand(self, inputs):
        return inputs | 'RunExportedModel' >> inference.RunExportedModel(self._handler)


class WriteScoreShards(beam.PTransform):
    """((index, status), row) -> one stats dict per shard file written (see WriteScoreShardFn).

    Args:
      output_dir: the folder of the shard files (local or remote).
      header: the columns (`variant_effects.header`).
      bounds: `shard_bounds(rows, num_shards)`.
    """

    def __init__(self, output_dir: str, header: Sequence[str], bounds: Sequence[int]):
        super().__init__()
        self._output_dir, self._header, self._bounds = output_dir, list(header), list(bounds)

    def expand(self, rows):
        return (
            rows
            | 'KeyRowsByShard' >> beam.Map(_shard_of, self._bounds)
            | 'GroupRowsByShard' >> beam.GroupByKey()
            | 'WriteShardFiles'
            >> beam.ParDo(WriteScoreShardFn(self._output_dir, self._header, self._bounds))
        )


def _write_summary(path: str, stats: Iterable[dict]) -> str:
    shards = sorted(stats, key=lambda s: s['shard'])
    by_status: dict[str, int] = {}
    for s in shards:
        for status, n in s['by_status'].items():
            by_status[status] = by_status.get(status, 0) + n
    summary = {'shards': shards, 'rows': sum(s['rows'] for s in shards), 'by_status': by_status}
    files_lib.write_text(path, json.dumps(summary, indent=1, sort_keys=True))
    return path


class WriteScoreSummary(beam.PTransform):
    """Per-shard stats -> the job summary JSON at `path` (rows and statuses, per shard and in
    all); outputs the path. An anchor element makes the summary exist with no shards."""

    def __init__(self, path: str):
        super().__init__()
        self._path = path

    def expand(self, stats):
        anchor = stats.pipeline | 'SummaryAnchor' >> beam.Create([(None, None)])
        return (
            (anchor, stats | 'KeyShardStats' >> beam.Map(lambda s: (None, s)))
            | 'FlattenShardStats' >> beam.Flatten()
            | 'GatherShardStats' >> beam.GroupByKey()
            | 'WriteSummaryFile'
            >> beam.MapTuple(
                lambda _, items, path=self._path: _write_summary(
                    path, [s for s in items if s is not None]
                )
            )
        )
