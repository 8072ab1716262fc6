"""DoFns and composite PTransforms of the records job: shard plans to shard files.

The driver cuts the sorted regions of each split and chromosome into chunks of nearby regions
(`plan_shards`) and deals the chunks out to the shard files; a `ShardPlan` lists the chunks of
one file. `WriteShards` turns each plan into its file: `WriteShardFn` opens the FASTA and
bigWigs once per worker (`setup`, copying remote inputs to local disk first), reads each chunk
with one FASTA fetch and one bigWig `values()` call per run of nearby windows
(`WindowReader`), slices the windows out, encodes them (`bpnet_tfx.schema.encode_record`) and
streams them into the file in (chrom, start) order. Records never travel between steps, so no
step holds more than one chunk of records, and the files are the same bytes on every run and
runner. `WriteJobSummary` writes what the driver needs back (records per split, rejections,
training totals for the median) as one JSON file. They live here, not in the job module, so
that remote workers can import them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
import shutil
import tempfile
from typing import Any, Iterable, Iterator, Mapping, Sequence

import apache_beam as beam
import numpy as np

from beam_jobs import files as files_lib
from beam_jobs import regions as regions_lib
from beam_jobs import tfrecord_writer
from beam_jobs.regions import Region
from bpnet_tfx import schema
from bpnet_tfx import sequence

NAMESPACE = 'make_records'  # Metrics namespace of every counter of the job.
REJECTED = 'rejected'  # Tag of (region_id, reason) outputs.
TOTALS = 'totals'  # Tag of (split, float64 array (records, tasks) of total counts) outputs.
OUT_OF_BOUNDS = regions_lib.OUT_OF_BOUNDS
TOO_MANY_N = 'too_many_n'
SUMMARY_FILENAME = '_job_summary.json'  # Read and removed by the driver.
PLANS_FILENAME = '_shard_plans.jsonl'  # Written by the driver, read by the pipeline.

CHUNK_SIZE = 256  # Regions per chunk: the unit of work and of records held in memory.
MAX_CHUNK_SPAN = 1_000_000  # bp from a chunk's first window start to its last window end.
# ISA-L deflate level of the GZIP shard files (0-3; tfrecord_writer.py). On 1000-bp windows
# level 1 compresses about 8x (zlib's level 1: about 7.9x) at about 400 MB/s (zlib's level 1:
# 80-250 MB/s, which took longer than the rest of the job); see benchmarks/bench_make_records.py.
COMPRESSION_LEVEL = 1


def shard_index(key: str, num_shards: int) -> int:
    """Returns a hash of `key` in [0, num_shards), the same in every process and run.

    Python's `hash()` of a string changes per process, so it would deal chunks differently on
    each run.
    """
    digest = hashlib.md5(key.encode()).digest()
    return int.from_bytes(digest[:8], 'big') % num_shards


def _counter(name: str):
    return beam.metrics.Metrics.counter(NAMESPACE, name)


# --- Planning (driver side, no I/O) -------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Chunk:
    """Nearby regions of one split on one chromosome, sorted by (start, end)."""

    split: str
    chrom: str
    regions: tuple[Region, ...]

    @property
    def key(self) -> str:
        first = self.regions[0]
        return f'{self.split}/{first.region_id}'


@dataclasses.dataclass(frozen=True)
class ShardPlan:
    """The chunks of one shard file, in file order (chromosome, then position)."""

    split: str
    shard: int
    num_shards: int
    chunks: tuple[Chunk, ...] = ()

    @property
    def filename(self) -> str:
        return schema.shard_filename(self.split, self.shard, self.num_shards)

    @property
    def num_regions(self) -> int:
        return sum(len(c.regions) for c in self.chunks)

    def to_json(self) -> str:
        return json.dumps({
            'split': self.split, 'shard': self.shard, 'num_shards': self.num_shards,
            'chunks': [{'chrom': c.chrom,
                        'regions': [[r.start, r.end, r.line, r.task] + ([1] if r.background
                                                                        else [])
                                    for r in c.regions]}
                       for c in self.chunks]}, separators=(',', ':'))

    @classmethod
    def from_json(cls, line: str) -> 'ShardPlan':
        d = json.loads(line)
        chunks = tuple(
            Chunk(d['split'], c['chrom'], tuple(
                Region(c['chrom'], r[0], r[1], d['split'], r[2], r[3], len(r) > 4 and r[4] == 1)
                for r in c['regions']))
            for c in d['chunks'])
        return cls(d['split'], d['shard'], d['num_shards'], chunks)


def make_chunks(regions: Iterable[Region], *, chunk_size: int = CHUNK_SIZE,
                max_span: int = MAX_CHUNK_SPAN) -> list[Chunk]:
    """Cuts regions into chunks: sorted runs of at most `chunk_size` regions of one split and
    chromosome spanning at most `max_span` bp (a longer single region is its own chunk)."""
    ordered = sorted(regions, key=lambda r: (r.split, r.chrom, r.start, r.end, r.task, r.line))
    chunks, current = [], []
    for r in ordered:
        if current and (r.split != current[0].split or r.chrom != current[0].chrom
                        or len(current) == chunk_size or r.end - current[0].start > max_span):
            chunks.append(Chunk(current[0].split, current[0].chrom, tuple(current)))
            current = []
        current.append(r)
    if current:
        chunks.append(Chunk(current[0].split, current[0].chrom, tuple(current)))
    return chunks


def plan_shards(regions: Iterable[Region], num_shards: Mapping[str, int], *,
                chunk_size: int = CHUNK_SIZE, max_span: int = MAX_CHUNK_SPAN
                ) -> list[ShardPlan]:
    """Deals each split's chunks out to its shard files; one plan per planned file.

    Chunks are taken in the order of a stable hash of their first region (so a file mixes
    chunks from all over the genome) and each goes to the file with the fewest regions so far
    (ties: the lowest index), which balances the files to within one chunk. The result depends
    only on the regions and `num_shards`.

    Raises:
      ValueError: a split has regions but no shards.
    """
    by_split: dict[str, list[Chunk]] = {s: [] for s in schema.SPLITS}
    for chunk in make_chunks(regions, chunk_size=chunk_size, max_span=max_span):
        by_split[chunk.split].append(chunk)
    plans = []
    for split in schema.SPLITS:
        n = num_shards.get(split, 0)
        if by_split[split] and n <= 0:
            raise ValueError(f'the {split} split has regions but no shards')
        loads = [0] * n
        members: list[list[Chunk]] = [[] for _ in range(n)]
        hashed = sorted(by_split[split], key=lambda c: (shard_index(c.key, 1 << 62), c.key))
        for chunk in hashed:
            i = min(range(n), key=lambda j: (loads[j], j))
            members[i].append(chunk)
            loads[i] += len(chunk.regions)
        for i in range(n):
            ordered = sorted(members[i], key=lambda c: (c.chrom, c.regions[0].start,
                                                        c.regions[0].end))
            plans.append(ShardPlan(split, i, n, tuple(ordered)))
    return plans


# --- Reading windows (worker side) --------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class WindowSpec:
    """What to read for each window.

    Attributes:
      fasta: genome FASTA (local path or URL; a .fai beside it is used, else made).
      counts: per task, the (plus, minus) counts bigWigs.
      control: optional, like `counts`: control tracks, stored as KEY_CONTROL.
      expected: optional, like `counts`: noise-free tracks, stored as KEY_EXPECTED.
      max_jitter: margin J stored on each side of the window.
      max_n_fraction: largest allowed fraction of non-ACGT bases in the stored window.
      output_trim: bases cut from each side of the sequence window for the counts window:
        (sequence_length - output_length) / 2; counts are read only there.
      mark_background: write KEY_IS_BACKGROUND in every record (make_records
        --background_ratio > 0); when False the records do not have the feature.
      run_gap: windows closer than this many bp are read with one fetch. One bigWig
        `values()` call costs about as much as reading 20-40 kb more in the same call (block
        decompression dominates), so nearby windows share a call.
    """

    fasta: str
    counts: tuple[tuple[str, str], ...]
    control: tuple[tuple[str, str], ...] | None = None
    expected: tuple[tuple[str, str], ...] | None = None
    max_jitter: int = 0
    max_n_fraction: float = 0.1
    run_gap: int = 20_000
    output_trim: int = 0
    mark_background: bool = False

    def __post_init__(self):
        for name in ('counts', 'control', 'expected'):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, tuple(tuple(pair) for pair in value))
        for name in ('control', 'expected'):
            value = getattr(self, name)
            if value is not None and len(value) != len(self.counts):
                raise ValueError(f'{name} needs one (plus, minus) pair per task')

    def paths(self) -> list[str]:
        return [self.fasta] + [p for kind in ('counts', 'control', 'expected')
                               for pair in (getattr(self, kind) or ()) for p in pair]


@dataclasses.dataclass
class Window:
    """One extracted window: one_hot (stored_length, 4) and counts (stored_output_length,
    tasks, strands), views into a run's arrays, centred on each other."""

    region: Region
    start: int  # Of the stored sequence window.
    one_hot: np.ndarray
    profile: np.ndarray
    control: np.ndarray | None = None
    expected: np.ndarray | None = None
    is_background: bool | None = None  # None: the record has no KEY_IS_BACKGROUND.

    def encode(self) -> bytes:
        return schema.encode_record(self.region.region_id, self.region.chrom, self.start,
                                    self.one_hot, self.profile, expected=self.expected,
                                    control=self.control, is_background=self.is_background)


def _runs(stored: Sequence[tuple[int, int]], gap: int, max_span: int) -> list[tuple[int, int]]:
    """Groups sorted stored windows into runs read together: [(first index, last index + 1)]."""
    runs = []
    first, end = 0, None
    for i, (s, e) in enumerate(stored):
        if end is not None and (s - end > gap or e - stored[first][0] > max_span):
            runs.append((first, i))
            first, end = i, None
        end = e if end is None else max(end, e)
    if stored:
        runs.append((first, len(stored)))
    return runs


class WindowReader:
    """Reads windows from a FASTA and bigWigs; open once (`open`), read many chunks.

    Not picklable once open: pyfaidx and pyBigWig handles survive neither pickling nor a fork,
    so DoFns open it in `setup`.
    """

    def __init__(self, spec: WindowSpec):
        self.spec = spec
        self._local_dir = None
        self._fasta = None
        self._sizes = None
        self._tracks: dict[str, list[tuple[tuple[str, Any], tuple[str, Any]]]] = {}

    def open(self) -> 'WindowReader':
        import pyBigWig
        import pyfaidx
        paths = self.spec.paths()
        if any(files_lib.is_remote(p) for p in paths):
            self._local_dir = files_lib.make_local_dir()
        local = files_lib.localize(paths, self._local_dir or '', companions=('.fai',))
        self._fasta = pyfaidx.Fasta(local[self.spec.fasta], as_raw=True)
        self._sizes = {name: len(record) for name, record in self._fasta.records.items()}
        for kind in ('counts', 'control', 'expected'):
            pairs = getattr(self.spec, kind)
            if pairs:
                self._tracks[kind] = [tuple((path, pyBigWig.open(local[path])) for path in pair)
                                      for pair in pairs]
        return self

    def close(self) -> None:
        for pairs in self._tracks.values():
            for _, bw in (t for pair in pairs for t in pair):
                try:
                    bw.close()
                except Exception:  # Best effort: the worker is going away anyway.
                    pass
        self._tracks = {}
        if self._fasta is not None:
            try:
                self._fasta.close()
            except Exception:
                pass
            self._fasta = None
        if self._local_dir:
            shutil.rmtree(self._local_dir, ignore_errors=True)
            self._local_dir = None

    def _read_tracks(self, kind: str, chrom: str, start: int, end: int,
                     windows: Sequence[tuple[int, int]]) -> tuple[np.ndarray, list[int]]:
        """(array (n, tasks, strands) float32, offsets): window k = (s, e) of `windows` (the
        counts windows, inside [start, end)) reads as array[offsets[k]:offsets[k] + e - s].
        NaN (no data) reads as 0. The array is the whole run when windows cover it, else the
        windows packed end to end: only their bases are copied.

        Raises:
          RecordsInputError: a negative value inside one of `windows`.
        """
        lengths = [e - s for s, e in windows]
        packed = sum(lengths) < end - start
        if packed:
            offsets = list(itertools.accumulate(lengths, initial=0))[:-1]
        else:
            offsets = [s - start for s, _ in windows]
        out = np.empty((sum(lengths) if packed else end - start, len(self._tracks[kind]), 2),
                       schema.COUNTS_DTYPE)
        for t, pair in enumerate(self._tracks[kind]):
            for strand, (path, bw) in enumerate(pair):
                values = bw.values(chrom, start, end, numpy=True)
                if np.fmin.reduce(values) < 0:  # fmin skips NaN: one pass, no mask.
                    for s, e in windows:
                        low = np.fmin.reduce(values[s - start:e - start], initial=np.inf)
                        if low < 0:
                            raise regions_lib.RecordsInputError(
                                f'{path}: negative counts (min {low:g}) in '
                                f'{chrom}:{s}-{e}; counts must be >= 0')
                # fmax(NaN, 0) = 0: NaN becomes a zero count in the same pass as the copy
                # (values are >= 0 inside every window, checked above).
                column = out[:, t, strand]
                if not packed:
                    np.fmax(values, 0.0, out=column)
                    continue
                for (s, e), o in zip(windows, offsets):
                    np.fmax(values[s - start:e - start], 0.0, out=column[o:o + e - s])
        return out, offsets

    def read(self, chunk: Chunk) -> Iterator[tuple[Region, Window | str]]:
        """Yields (region, Window) per kept region and (region, reason) per rejected one, in
        the chunk's order. Reasons: 'out_of_bounds', 'too_many_n'. Counts are read over the
        counts windows only (each stored window less `output_trim` on both sides)."""
        j, trim = self.spec.max_jitter, self.spec.output_trim
        mark = self.spec.mark_background
        chrom = chunk.chrom
        size = self._sizes.get(chrom)
        inside = []
        for r in chunk.regions:
            if size is None or r.start - j < 0 or r.end + j > size:
                yield r, OUT_OF_BOUNDS
            else:
                inside.append(r)
        stored = [(r.start - j, r.end + j) for r in inside]
        for first, last in _runs(stored, self.spec.run_gap, MAX_CHUNK_SPAN):
            run_start = stored[first][0]
            run_end = max(e for _, e in stored[first:last])
            run_windows = stored[first:last]
            bases = self._fasta[chrom][run_start:run_end]
            # Overlapping windows: encode the run once and slice; sparse ones: each window.
            run_one_hot = (sequence.one_hot(bases)
                           if run_end - run_start <= sum(e - s for s, e in run_windows) else None)
            # Index i of a track array is base run_start + trim + i.
            counts_windows = [(s + trim, e - trim) for s, e in run_windows]
            tracks = {kind: self._read_tracks(kind, chrom, run_start + trim, run_end - trim,
                                              counts_windows)
                      for kind in self._tracks}
            for k, (r, (s, e)) in enumerate(zip(inside[first:last], run_windows)):
                a, b = s - run_start, e - run_start
                n = b - a - 2 * trim  # Counts window length.
                one_hot = (run_one_hot[a:b] if run_one_hot is not None
                           else sequence.one_hot(bases[a:b]))
                if 1.0 - np.count_nonzero(one_hot) / (b - a) > self.spec.max_n_fraction:
                    yield r, TOO_MANY_N
                    continue
                counts = {kind: array[offsets[k]:offsets[k] + n]
                          for kind, (array, offsets) in tracks.items()}
                yield r, Window(r, s, one_hot, counts['counts'], control=counts.get('control'),
                                expected=counts.get('expected'),
                                is_background=r.background if mark else None)


# --- Writing shard files ------------------------------------------------------------------------


class WriteShardFn(beam.DoFn):
    """ShardPlan JSON line -> (split, records written), after writing the plan's GZIP
    TFRecord file. Plans stay JSON text until here: parsing them earlier costs the local
    runner a pickle of every Region at each step boundary.

    Tagged outputs: 'rejected' gives (region_id, reason) for a stored window past a chromosome
    end ('out_of_bounds') or with more than `max_n_fraction` non-ACGT bases ('too_many_n');
    'totals' gives (split, float64 array (records, tasks): total counts over both strands in
    the centred counts window) once per file, for peak records only (background records are
    left out of the median): 8 bytes per record and task for the exact median.
    Records go straight from the reader into the file, so a worker holds at most one run of
    windows.
    """

    def __init__(self, output_dir: str, spec: WindowSpec, output_length: int,
                 totals: bool = True):
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
        path = (os.path.join(self._tmp_dir, plan.filename) if self._tmp_dir
                else f'{dest}.partial-{os.getpid()}-{id(self):x}')
        j, length = self._spec.max_jitter, self._output_length
        totals, rejected, written = [], [], 0
        try:
            with tfrecord_writer.GzipTFRecordWriter(path, COMPRESSION_LEVEL) as writer:
                for chunk in plan.chunks:
                    for region, window in self._reader.read(chunk):
                        if isinstance(window, str):
                            rejected.append((region.region_id, window))
                            continue
                        writer.write(window.encode())
                        written += 1
                        if self._totals and not region.background:
                            centre = window.profile[j:j + length]
                            totals.append(centre.sum(axis=(0, 2), dtype=np.float64))
        except BaseException:
            if not self._tmp_dir and os.path.exists(path):
                os.remove(path)  # A retried bundle must not leave a partial file behind.
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
        yield plan.split, written
        for item in rejected:
            yield beam.pvalue.TaggedOutput(REJECTED, item)
        if totals:
            yield beam.pvalue.TaggedOutput(TOTALS, (plan.split, np.stack(totals)))


def _plan_json(plan: ShardPlan | str) -> str:
    return plan if isinstance(plan, str) else plan.to_json()


class WriteShards(beam.PTransform):
    """Writes one `{split}-SSSSS-of-NNNNN.tfrecord.gz` file per ShardPlan.

    Input: ShardPlan or its JSON line, one per planned file (empty plans give empty files). Output: a tuple of
    PCollections: main (split, records written) per file, 'rejected' (region_id, reason),
    'totals' (split, (records, tasks) array of totals).
    """

    def __init__(self, output_dir: str, spec: WindowSpec, output_length: int,
                 totals: bool = True):
        super().__init__()
        self._fn = WriteShardFn(output_dir, spec, output_length, totals)

    def expand(self, plans):
        # Plans cross the shuffle as JSON (about 25 bytes per region, not a pickled Region),
        # since a local runner holds everything shuffled at once.
        return (plans
                | 'PlansToJson' >> beam.Map(_plan_json)
                | 'SpreadPlans' >> beam.Reshuffle()  # Else one worker gets every file.
                | 'WriteShardFiles' >> beam.ParDo(self._fn).with_outputs(
                    REJECTED, TOTALS, main='shards'))


def summarise(shards: Sequence[tuple[str, int]],
              totals: Sequence[tuple[str, np.ndarray | Sequence[Sequence[float]]]],
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
    train = [np.asarray(t, np.float64) for split, t in totals
             if split == schema.SPLITS[0] and len(t)]
    median = np.median(np.concatenate(train), axis=0).tolist() if train else []
    return {
        'split_counts': split_counts,
        'median_total_counts': median,
        'rejected': sorted([list(r) for r in rejected]),
    }


_SUMMARY_PARTS = ('shards', 'totals', 'rejected')


def _write_summary(path: str, parts: Iterable[tuple[str, Any]]) -> str:
    """Writes the summary of (part name, element) pairs; the 'path' part is only an anchor."""
    by_name = {name: [] for name in _SUMMARY_PARTS}
    for name, item in parts:
        if name in by_name:
            by_name[name].append(item)
    summary = summarise(by_name['shards'], by_name['totals'], by_name['rejected'])
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
        tagged = [pcolls[name] | f'Tag{name.capitalize()}' >> beam.Map(
                      lambda item, name=name: (None, (name, item)))
                  for name in _SUMMARY_PARTS]
        anchor = (pcolls['shards'].pipeline
                  | 'SummaryPath' >> beam.Create([(None, ('path', self._path))]))
        return ((anchor, *tagged)
                | 'FlattenSummaryParts' >> beam.Flatten()
                | 'GatherSummaryParts' >> beam.GroupByKey()
                | 'WriteSummaryFile' >> beam.MapTuple(
                    lambda _, parts, path=self._path: _write_summary(path, parts)))
