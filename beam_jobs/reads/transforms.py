"""DoFns and the composite PTransform of a reads count: reads files to per-region count files.

`CountReads` is the whole graph. Indexed files (BAM, CRAM) are counted region by region
(`CountRegionFn`: every indexed file's reads of one region, each deduplicated on its own,
summed); files read start to end (SAM, tagAlign/BED, fragments) are streamed by
`StreamEndsFn`, which sends each chunk's ends to the region they fall in. A GroupByKey on the
region gathers both, and `WriteRegionFn` sums them into the region's counts and writes its
non-zero bases (int64 rows: base, plus, minus) as one .npy file; `WriteCountSummary` writes
the regions written and the reads tallied as one JSON file for the driver, which writes the
bigWigs in order (bigwigs.py). A worker holds one region's counts (or one chunk of a file's
ends); counts are sums, so the files are the same on every runner, worker count and region
order. Only Create, ParDo, Flatten, GroupByKey and Reshuffle are used (the Dask runner
translates nothing else).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from typing import Any, Iterable

import apache_beam as beam
import numpy as np

from beam_jobs.common import files as files_lib
from beam_jobs.common.errors import RecordsInputError
from beam_jobs.reads.plan import TALLY_KEY, CountPlan
from bpnet_tfx.genome import read_files, reads

NAMESPACE = 'reads_to_bigwig'
REGIONS_DIR = 'regions'
SUMMARY_FILENAME = '_count_summary.json'
STARTED_FILENAME = '_workers_started'


def region_filename(contig: int, start: int) -> str:
    return f'{contig:06d}-{start:012d}.npy'


def _counter(name: str):
    return beam.metrics.Metrics.counter(NAMESPACE, name)


class _LocalInputs:
    """Local copies of remote inputs (BAM/CRAM with their index), made once per worker."""

    def __init__(self, plan: CountPlan, started_path: str | None):
        self._plan = plan
        self._started_path = started_path
        self._local_dir = None
        self.paths: dict[str, str] = {}

    def open(self) -> None:
        if self._started_path:
            files_lib.write_text(self._started_path, f'{os.getpid()}\n')
        paths = [s.path for s in self._plan.sources]
        paths += [self._plan.fasta] if self._plan.fasta else []
        if any(files_lib.is_remote(p) for p in paths):
            self._local_dir = files_lib.make_local_dir()
        self.paths = files_lib.localize(
            paths, self._local_dir or '', companions=('.bai', '.crai', '.fai')
        )

    def close(self) -> None:
        if self._local_dir:
            shutil.rmtree(self._local_dir, ignore_errors=True)


class CountRegionFn(beam.DoFn):
    """(contig index, start, end) -> ((contig, start), part): the summed counts of every
    indexed file in the region, part = {'counts': (n, 3) int64 rows (base, plus, minus) of the
    non-zero bases, 'tallies': {source index: tally}}."""

    def __init__(self, plan: CountPlan, started_path: str | None = None):
        self._plan = plan
        self._inputs = _LocalInputs(plan, started_path)
        self._files = {}

    def setup(self):
        self._inputs.open()
        fasta = self._inputs.paths.get(self._plan.fasta) if self._plan.fasta else None
        for i, s in enumerate(self._plan.sources):
            if s.indexed:
                self._files[i] = read_files.open_alignments(self._inputs.paths[s.path], fasta)

    def teardown(self):
        for f in self._files.values():
            f.close()
        self._files = {}
        self._inputs.close()

    def process(self, region: tuple[int, int, int]) -> Iterable[tuple[tuple[int, int], dict]]:
        contig, start, end = region
        chrom, size = self._plan.genome[contig]
        total = np.zeros((end - start, 2), np.uint32)
        tallies = {}
        for i, f in self._files.items():
            rule = self._plan.sources[i].rule
            lo, hi = max(0, start - rule.margin), min(size, end + rule.margin)
            try:
                ends = reads.alignment_keys(f.fetch(chrom, lo, hi), rule, start, end, size)
            except (OSError, ValueError) as e:
                raise RecordsInputError(
                    f'{self._plan.sources[i].path}: cannot read {chrom}:{lo}-{hi}: {e}'
                ) from None
            total += reads.count_keys(reads.counted_keys(ends, rule), start, end - start)
            tallies[i] = ends.tally
        _counter('regions_counted').inc()
        yield (contig, start), {'counts': _sparse(total, start), 'tallies': tallies}


def _sparse(counts: np.ndarray, start: int) -> np.ndarray:
    """(n, 3) int64 rows (base, plus, minus) of the non-zero bases of (length, 2) counts."""
    where = np.flatnonzero(counts[:, 0] | counts[:, 1])
    out = np.empty((where.size, 3), np.int64)
    out[:, 0] = where + start
    out[:, 1:] = counts[where]
    return out


class StreamEndsFn(beam.DoFn):
    """Source index -> ((contig, region start), part) per region each chunk of ends touches,
    part = {'ends': {source index: (keys, mates or None)}}; then (TALLY_KEY, {'tallies':
    {source index: tally}}) once per file."""

    def __init__(self, plan: CountPlan, started_path: str | None = None):
        self._plan = plan
        self._inputs = _LocalInputs(plan, started_path)

    def setup(self):
        self._inputs.open()

    def teardown(self):
        self._inputs.close()

    def process(self, index: int) -> Iterable[tuple[tuple[int, int], dict]]:
        source = self._plan.sources[index]
        path = self._inputs.paths[source.path]
        sizes = dict(self._plan.genome)
        tally: dict[str, int] = {}
        try:
            if source.kind == 'sam':
                chunks = _sam_chunks(path, source.rule, self._plan.genome, tally)
            else:
                chunks = read_files.text_chunks(path, source.kind, sizes, source.rule)
            for chunk in chunks:
                if source.kind != 'sam':
                    reads.add_tallies(
                        tally,
                        {
                            'reads': chunk.lines * (2 if source.kind == 'fragments' else 1),
                            'counted': chunk.keys.size,
                            'off_contig': chunk.off_contig,
                        },
                    )
                yield from self._by_region(index, chunk, source.rule.filters.dedup == 'position')
        except reads.ReadsError as e:
            raise RecordsInputError(str(e).replace(path, source.path)) from None
        _counter('files_streamed').inc()
        yield TALLY_KEY, {'tallies': {index: {k: v for k, v in tally.items() if v}}}

    def _by_region(self, index, chunk, want_mates):
        size = self._plan.region_size
        region = chunk.codes * (1 << 40) + (chunk.keys // 2) // size
        order = np.argsort(region, kind='stable')
        region, keys, mates = region[order], chunk.keys[order], chunk.mates[order]
        bounds = np.flatnonzero(np.diff(region)) + 1
        for lo, hi in zip(np.concatenate([[0], bounds]), np.concatenate([bounds, [region.size]])):
            if lo == hi:
                continue
            r = int(region[lo])
            key = (r >> 40, (r & ((1 << 40) - 1)) * size)
            yield key, {'ends': {index: (keys[lo:hi], mates[lo:hi] if want_mates else None)}}


def _sam_chunks(path, rule, genome, tally, chunk=read_files.CHUNK_LINES):
    """Chunks of a SAM file's ends, by contig, as read_files.TextChunk."""
    import itertools

    f = read_files.open_alignments(path)
    names = {c: i for i, (c, _) in enumerate(genome)}
    try:
        unplaced = 0
        for chrom, group in itertools.groupby(f, key=lambda r: r.reference_name):
            if chrom is None:
                unplaced += sum(1 for _ in group)
                continue
            size = dict(genome)[chrom]
            while True:
                batch = list(itertools.islice(group, chunk))
                if not batch:
                    break
                ends = reads.alignment_keys(batch, rule, -size, 2 * size, size)
                keys = ends.keys
                inside = (keys >= 0) & (keys < 2 * size)
                off = int((~inside).sum())
                ends.tally['counted'] -= off
                reads.add_tallies(tally, {**ends.tally, 'off_contig': off})
                yield read_files.TextChunk(
                    np.full(int(inside.sum()), names[chrom], np.int64),
                    keys[inside],
                    ends.mates[inside]
                    if ends.mates is not None
                    else np.full(len(keys), -1)[inside],
                    len(batch),
                    off,
                )
        reads.add_tallies(tally, {'unmapped': unplaced, 'reads': unplaced})
    finally:
        f.close()


class WriteRegionFn(beam.DoFn):
    """((contig, start), parts) -> (contig, start, non-zero bases, plus total, minus total,
    {source index: tally}) after writing the region's file (none for TALLY_KEY)."""

    def __init__(self, plan: CountPlan, output_dir: str, started_path: str | None = None):
        self._plan = plan
        self._output_dir = output_dir
        self._started_path = started_path
        self._tmp_dir = None

    def setup(self):
        if self._started_path:  # Also here: a count may have no region to count.
            files_lib.write_text(self._started_path, f'{os.getpid()}\n')
        if files_lib.is_remote(self._output_dir):
            self._tmp_dir = tempfile.mkdtemp(prefix='reads_to_bigwig-')

    def teardown(self):
        if self._tmp_dir:
            shutil.rmtree(self._tmp_dir, ignore_errors=True)

    def process(self, element):
        (contig, start), parts = element
        tallies: dict[int, dict[str, int]] = {}
        if (contig, start) == TALLY_KEY:
            for part in parts:
                for i, t in part['tallies'].items():
                    reads.add_tallies(tallies.setdefault(i, {}), t)
            yield (contig, start, 0, 0, 0, tallies)
            return
        counts: list[np.ndarray] = []
        ends: dict[int, list] = {}
        for part in parts:
            for i, t in part.get('tallies', {}).items():
                reads.add_tallies(tallies.setdefault(i, {}), t)
            if 'counts' in part:
                counts.append(part['counts'])
            for i, pair in part.get('ends', {}).items():
                ends.setdefault(i, []).append(pair)
        if len(counts) == 1 and not ends:
            # One indexed count of the region: its rows are already the sparse total.
            yield self._written(contig, start, counts[0], tallies)
            return
        length = min(self._plan.region_size, self._plan.genome[contig][1] - start)
        total = np.zeros((length, 2), np.int64)
        for rows in counts:
            total[rows[:, 0] - start] += rows[:, 1:]
        for i, pairs in sorted(ends.items()):
            keys = np.concatenate([k for k, _ in pairs])
            mates = np.concatenate([m for _, m in pairs]) if pairs[0][1] is not None else None
            found = reads.Keys(keys, mates, {})
            total += reads.count_keys(
                reads.counted_keys(found, self._plan.sources[i].rule), start, length
            )
            reads.add_tallies(tallies.setdefault(i, {}), found.tally)
        yield self._written(contig, start, _sparse(total, start), tallies)

    def _written(self, contig: int, start: int, rows: np.ndarray, tallies: dict) -> tuple:
        """Writes a region's non-zero rows (if any); its summary row."""
        if rows.size:
            self._write(region_filename(contig, start), rows)
        _counter('regions_written').inc()
        return (contig, start, len(rows), int(rows[:, 1].sum()), int(rows[:, 2].sum()), tallies)

    def _write(self, name: str, rows: np.ndarray) -> None:
        dest = files_lib.join(files_lib.join(self._output_dir, REGIONS_DIR), name)
        buffer = io.BytesIO()
        np.save(buffer, rows)
        local = (
            os.path.join(self._tmp_dir, name)
            if self._tmp_dir
            else f'{dest}.partial-{os.getpid()}-{id(self):x}'
        )
        with open(local, 'wb') as f:
            f.write(buffer.getvalue())
        if self._tmp_dir:
            files_lib.publish_file(local, dest)
        else:
            os.replace(local, dest)


def _write_summary(path: str, rows: Iterable[Any]) -> str:
    regions, tallies = [], {}
    for contig, start, n, plus, minus, t in rows:
        if (contig, start) != TALLY_KEY:
            regions.append([contig, start, n, plus, minus])
        for i, tally in t.items():
            reads.add_tallies(tallies.setdefault(str(i), {}), tally)
    regions.sort()
    files_lib.write_text(path, json.dumps({'regions': regions, 'tallies': tallies}, sort_keys=True))
    return path


class CountReads(beam.PTransform):
    """The whole count: pipeline -> the summary file's path, once every region file is
    written into `output_dir`/regions."""

    def __init__(self, plan: CountPlan, output_dir: str):
        super().__init__()
        self._plan = plan
        self._output_dir = output_dir

    def expand(self, pbegin):
        plan, started = self._plan, files_lib.join(self._output_dir, STARTED_FILENAME)
        indexed = any(s.indexed for s in plan.sources)
        regions = plan.regions(plan.indexed_contigs) if indexed else []
        streamed = [i for i, s in enumerate(plan.sources) if not s.indexed]
        counted = (
            pbegin
            | 'Regions' >> beam.Create(regions)
            | 'SpreadRegions' >> beam.Reshuffle()
            | 'CountRegions' >> beam.ParDo(CountRegionFn(plan, started))
        )
        ends = (
            pbegin
            | 'StreamedFiles' >> beam.Create(streamed)
            | 'SpreadFiles' >> beam.Reshuffle()
            | 'StreamEnds' >> beam.ParDo(StreamEndsFn(plan, started))
        )
        # An anchor: the summary is written even when no region holds a read.
        anchor = pbegin | 'SummaryAnchor' >> beam.Create([(TALLY_KEY, {'tallies': {}})])
        summary = files_lib.join(self._output_dir, SUMMARY_FILENAME)
        return (
            (counted, ends, anchor)
            | 'FlattenParts' >> beam.Flatten()
            | 'GroupByRegion' >> beam.GroupByKey()
            | 'WriteRegions' >> beam.ParDo(WriteRegionFn(plan, self._output_dir, started))
            | 'KeySummary' >> beam.Map(lambda row: (None, row))
            | 'GatherSummary' >> beam.GroupByKey()
            | 'WriteSummary' >> beam.MapTuple(lambda _, rows: _write_summary(summary, rows))
        )
