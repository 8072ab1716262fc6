"""DoFns and composite PTransforms of the records job: windows to records to shard files.

`ExtractWindowsFn` turns a `regions.Region` into one serialised record (sequence from the FASTA,
stranded counts from the bigWigs) keyed by its shard, or rejects it with a reason.
`WriteShards` groups records by shard and writes each shard file sorted, so the output is the
same bytes on every run and runner. `WriteJobSummary` writes what the driver needs back from the
pipeline (records per split, rejections, the training median of total counts) as one JSON file.
They live here, not in the job module, so that remote workers can import them.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Iterable, Mapping, Sequence

import apache_beam as beam
import numpy as np

from beam_jobs import regions as regions_lib
from bpnet_tfx import schema
from bpnet_tfx import sequence

NAMESPACE = 'make_records'  # Metrics namespace of every counter of the job.
REJECTED = 'rejected'  # Tag of (region_id, reason) outputs.
TOTALS = 'totals'  # Tag of (split, total counts per task in the centred window) outputs.
OUT_OF_BOUNDS = 'out_of_bounds'
TOO_MANY_N = 'too_many_n'
SUMMARY_FILENAME = '_job_summary.json'  # Read and removed by the driver.


def shard_index(region_id: str, num_shards: int) -> int:
    """Returns the shard of a region: a hash that is the same in every process and run.

    Python's `hash()` of a string changes per process, so it would scatter regions differently
    on each run.
    """
    digest = hashlib.md5(region_id.encode()).digest()
    return int.from_bytes(digest[:8], 'big') % num_shards


def _counter(name: str):
    return beam.metrics.Metrics.counter(NAMESPACE, name)


def _read_track(bigwig, path: str, chrom: str, start: int, end: int) -> np.ndarray:
    """Base-resolution values of [start, end); missing data (NaN) reads as 0."""
    values = np.nan_to_num(bigwig.values(chrom, start, end, numpy=True), nan=0.0)
    if values.size and values.min() < 0:
        raise regions_lib.RecordsInputError(
            f'{path}: negative counts (min {values.min():g}) in {chrom}:{start}-{end}; '
            'counts must be >= 0')
    return values.astype(schema.COUNTS_DTYPE)


class ExtractWindowsFn(beam.DoFn):
    """Region -> ((split, shard), (sort_key, serialised record)).

    Tagged outputs: 'rejected' gives (region_id, reason) for a stored window past a chromosome
    end ('out_of_bounds') or with more than `max_n_fraction` non-ACGT bases ('too_many_n');
    'totals' gives (split, tuple of per-task total counts over both strands in the centred
    window) for each record. The stored window is the region plus `max_jitter` bp each side.
    """

    def __init__(self, fasta_path: str, bigwigs: Sequence[tuple[str, str]], *,
                 max_jitter: int, num_shards: Mapping[str, int], max_n_fraction: float = 0.1,
                 expected_bigwigs: Sequence[tuple[str, str]] | None = None):
        """Args:
          fasta_path: genome FASTA (indexed by pyfaidx on first open).
          bigwigs: per task, the (plus strand, minus strand) counts bigWigs.
          max_jitter: margin J stored on each side of the window.
          num_shards: shards per split; every split a region can be in needs at least one.
          max_n_fraction: largest allowed fraction of non-ACGT bases in the stored window.
          expected_bigwigs: optional, like `bigwigs`, noise-free tracks stored as
            KEY_EXPECTED.
        """
        self._fasta_path = fasta_path
        self._bigwig_paths = tuple(tuple(pair) for pair in bigwigs)
        self._expected_paths = (tuple(tuple(pair) for pair in expected_bigwigs)
                                if expected_bigwigs else None)
        if self._expected_paths is not None and len(self._expected_paths) != len(
                self._bigwig_paths):
            raise ValueError('expected_bigwigs needs one (plus, minus) pair per task')
        self._max_jitter = max_jitter
        self._num_shards = dict(num_shards)
        self._max_n_fraction = max_n_fraction
        self._fasta = None
        self._sizes = None
        self._tracks = None
        self._expected = None

    def setup(self):
        import pyBigWig
        import pyfaidx
        self._fasta = pyfaidx.Fasta(self._fasta_path, as_raw=True)
        self._sizes = {name: len(record) for name, record in self._fasta.records.items()}

        def _open(pairs):
            return [tuple((path, pyBigWig.open(path)) for path in pair) for pair in pairs]

        self._tracks = _open(self._bigwig_paths)
        self._expected = _open(self._expected_paths) if self._expected_paths else None

    def teardown(self):
        for pairs in (self._tracks or [], self._expected or []):
            for _, bw in (t for pair in pairs for t in pair):
                try:
                    bw.close()
                except Exception:  # Best effort: the worker is going away anyway.
                    pass
        if self._fasta is not None:
            try:
                self._fasta.close()
            except Exception:
                pass

    def _reject(self, region: regions_lib.Region, reason: str):
        _counter(f'rejected_{reason}').inc()
        return beam.pvalue.TaggedOutput(REJECTED, (region.region_id, reason))

    @staticmethod
    def _profile(pairs, chrom: str, start: int, end: int) -> np.ndarray:
        """(end - start, tasks, strands) counts from per-task (plus, minus) bigWigs."""
        return np.stack([
            np.stack([_read_track(bw, path, chrom, start, end) for path, bw in pair], axis=-1)
            for pair in pairs
        ], axis=1)

    def process(self, region: regions_lib.Region) -> Iterable[Any]:
        _counter('regions_in').inc()
        start, end = region.start - self._max_jitter, region.end + self._max_jitter
        size = self._sizes.get(region.chrom)
        if size is None or start < 0 or end > size:
            yield self._reject(region, OUT_OF_BOUNDS)
            return
        one_hot = sequence.one_hot(self._fasta[region.chrom][start:end])
        n_fraction = 1.0 - one_hot.sum() / len(one_hot)
        if n_fraction > self._max_n_fraction:
            yield self._reject(region, TOO_MANY_N)
            return
        profile = self._profile(self._tracks, region.chrom, start, end)
        expected = (self._profile(self._expected, region.chrom, start, end)
                    if self._expected is not None else None)
        record = schema.encode_record(region.region_id, region.chrom, start, one_hot, profile,
                                      expected=expected)
        centre = profile[self._max_jitter:len(profile) - self._max_jitter]
        totals = tuple(float(t) for t in centre.sum(axis=(0, 2), dtype=np.float64))
        shard = shard_index(region.region_id, self._num_shards[region.split])
        _counter('records_out').inc()
        _counter(f'records_{region.split}').inc()
        yield (region.split, shard), ((region.chrom, region.start, region.end), record)
        yield beam.pvalue.TaggedOutput(TOTALS, (region.split, totals))


class WriteShardFn(beam.DoFn):
    """((split, shard), iterable of (sort_key, record) or None) -> (split, records written).

    Writes one GZIP TFRecord file with the records in sort-key order; None values are the
    markers that make an empty shard exist.
    """

    def __init__(self, output_dir: str, num_shards: Mapping[str, int]):
        self._output_dir = output_dir
        self._num_shards = dict(num_shards)

    def process(self, element) -> Iterable[tuple[str, int]]:
        import tensorflow as tf  # Local: only the writing workers pay for it.
        (split, index), values = element
        records = sorted((v for v in values if v is not None), key=lambda v: v[0])
        path = os.path.join(self._output_dir,
                            schema.shard_filename(split, index, self._num_shards[split]))
        with tf.io.TFRecordWriter(path, options=schema.COMPRESSION) as writer:
            for _, record in records:
                writer.write(record)
        _counter('shards_written').inc()
        _counter('records_written').inc(len(records))
        yield split, len(records)


def _empty_marker(key):
    return key, None


class WriteShards(beam.PTransform):
    """Writes `{split}-SSSSS-of-NNNNN.tfrecord.gz` files, one per (split, shard) in the plan.

    Input: ((split, shard), (sort_key, serialised record)). Output: (split, records written),
    one element per shard file, empty shards included.
    """

    def __init__(self, output_dir: str, num_shards: Mapping[str, int]):
        super().__init__()
        self._output_dir = output_dir
        self._num_shards = dict(num_shards)

    def expand(self, records):
        keys = [(split, i) for split in schema.SPLITS
                for i in range(self._num_shards.get(split, 0))]
        # A shard no record hashes to still gets its file: one marker per planned shard.
        markers = (records.pipeline
                   | 'ShardKeys' >> beam.Create(keys)
                   | 'EmptyShardMarkers' >> beam.Map(_empty_marker))
        return ((records, markers)
                | 'AddEmptyShards' >> beam.Flatten()
                | 'GroupByShard' >> beam.GroupByKey()
                | 'WriteShardFiles' >> beam.ParDo(WriteShardFn(self._output_dir,
                                                              self._num_shards)))


def summarise(shards: Sequence[tuple[str, int]], totals: Sequence[tuple[str, Sequence[float]]],
              rejected: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """The job summary from the collected outputs (pure; see `WriteJobSummary`).

    Returns:
      {'split_counts': {split: records}, 'median_total_counts': per-task exact median over
       training records (empty without training records), 'rejected': sorted
       [region_id, reason] pairs}.
    """
    split_counts = dict.fromkeys(schema.SPLITS, 0)
    for split, n in shards:
        split_counts[split] += n
    train = [t for split, t in totals if split == schema.SPLITS[0]]
    median = np.median(np.asarray(train, np.float64), axis=0).tolist() if train else []
    return {
        'split_counts': split_counts,
        'median_total_counts': median,
        'rejected': sorted([list(r) for r in rejected]),
    }


def _write_summary(path: str, shards, totals, rejected) -> str:
    summary = summarise(shards, totals, rejected)
    import tensorflow as tf  # gfile: the output folder may be on a remote file system.
    with tf.io.gfile.GFile(path, 'w') as f:
        json.dump(summary, f, indent=1, sort_keys=True)
    return path


class WriteJobSummary(beam.PTransform):
    """Writes `summarise(...)` of the job as JSON to `path`; outputs the path.

    Input: a dict with 'shards' ((split, records written) per shard), 'totals'
    ((split, per-task totals) per record) and 'rejected' ((region_id, reason)) PCollections.
    The median is exact: the training totals are gathered on one worker, a few floats per
    record.
    """

    def __init__(self, path: str):
        super().__init__()
        self._path = path

    def expand(self, pcolls):
        lists = {name: pcolls[name] | f'Collect{name.capitalize()}' >> beam.combiners.ToList()
                 for name in ('shards', 'totals', 'rejected')}
        return (pcolls['shards'].pipeline
                | 'SummaryPath' >> beam.Create([self._path])
                | 'WriteSummaryFile' >> beam.Map(
                    _write_summary,
                    **{name: beam.pvalue.AsSingleton(pc) for name, pc in lists.items()}))
