"""Reading windows on the workers: FASTA + bigWigs -> one-hot and stranded counts arrays.

`WindowReader` opens the FASTA and bigWigs once (copying remote inputs to local disk first),
then reads a chunk of nearby regions (`shards.Chunk`) with one FASTA fetch and one bigWig
`values()` call per run of nearby windows (`regions.group_runs`), slices the windows out and
yields a `Window` per kept region, or a reason per rejected one (past a chromosome end, too many
N). `WindowSpec` says what to read. No Beam here: `transforms.WriteShardFn` drives the reader.
"""

from __future__ import annotations

import dataclasses
import itertools
import shutil
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from beam_jobs.common import files as files_lib
from beam_jobs.records import regions as regions_lib
from beam_jobs.records.regions import OUT_OF_BOUNDS, TOO_MANY_N, Region
from beam_jobs.records.shards import MAX_CHUNK_SPAN, Chunk
from bpnet_tfx.genome import sequence
from bpnet_tfx.records import codec, schema


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
      encodings: per record track ('profile', 'control', 'expected'), how it is stored
        (`encodings.choose_encodings`); a track not named is dense float32.
      schema_version: the record schema version to write.
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
    encodings: Mapping[str, schema.TrackEncoding] = dataclasses.field(default_factory=dict)
    schema_version: int = schema.SCHEMA_VERSION

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
        return [self.fasta] + [
            p
            for kind in ('counts', 'control', 'expected')
            for pair in (getattr(self, kind) or ())
            for p in pair
        ]


@dataclasses.dataclass
class Window:
    """One extracted window: sequence tokens (stored_length,) and counts (stored_output_length,
    tasks, strands), views into a run's arrays, centred on each other."""

    region: Region
    start: int  # Of the stored sequence window.
    tokens: np.ndarray
    profile: np.ndarray
    control: np.ndarray | None = None
    expected: np.ndarray | None = None
    is_background: bool | None = None  # None: the record has no KEY_IS_BACKGROUND.

    def encode(self, spec: WindowSpec) -> bytes:
        """The record, as `spec` says to store it.

        Raises:
          RecordsInputError: a value the chosen integer dtype cannot hold.
        """
        try:
            return codec.encode_record(
                self.region.region_id,
                self.region.chrom,
                self.start,
                self.tokens,
                self.profile,
                expected=self.expected,
                control=self.control,
                is_background=self.is_background,
                encodings=spec.encodings,
                version=spec.schema_version,
            )
        except schema.SchemaError as e:
            raise regions_lib.RecordsInputError(
                f'{e} (bigWigs: {", ".join(spec.paths()[1:])}); rerun with a larger '
                '--counts_dtype, or --counts_dtype=float32 for counts that are not integers'
            ) from None


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
                self._tracks[kind] = [
                    tuple((path, pyBigWig.open(local[path])) for path in pair) for pair in pairs
                ]
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

    def _read_tracks(
        self, kind: str, chrom: str, start: int, end: int, windows: Sequence[tuple[int, int]]
    ) -> tuple[np.ndarray, list[int]]:
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
        out = np.empty(
            (sum(lengths) if packed else end - start, len(self._tracks[kind]), 2),
            schema.COUNTS_DTYPE,
        )
        for t, pair in enumerate(self._tracks[kind]):
            for strand, (path, bw) in enumerate(pair):
                values = bw.values(chrom, start, end, numpy=True)
                if np.fmin.reduce(values) < 0:  # fmin skips NaN: one pass, no mask.
                    for s, e in windows:
                        low = np.fmin.reduce(values[s - start : e - start], initial=np.inf)
                        if low < 0:
                            raise regions_lib.RecordsInputError(
                                f'{path}: negative counts (min {low:g}) in '
                                f'{chrom}:{s}-{e}; counts must be >= 0'
                            )
                # fmax(NaN, 0) = 0: NaN becomes a zero count in the same pass as the copy
                # (values are >= 0 inside every window, checked above).
                column = out[:, t, strand]
                if not packed:
                    np.fmax(values, 0.0, out=column)
                    continue
                for (s, e), o in zip(windows, offsets):
                    np.fmax(values[s - start : e - start], 0.0, out=column[o : o + e - s])
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
        for first, last in regions_lib.group_runs(
            stored, gap=self.spec.run_gap, max_span=MAX_CHUNK_SPAN
        ):
            run_start = stored[first][0]
            run_end = max(e for _, e in stored[first:last])
            run_windows = stored[first:last]
            bases = self._fasta[chrom][run_start:run_end]
            # Overlapping windows: encode the run once and slice; sparse ones: each window.
            run_tokens = (
                sequence.tokens(bases)
                if run_end - run_start <= sum(e - s for s, e in run_windows)
                else None
            )
            # Index i of a track array is base run_start + trim + i.
            counts_windows = [(s + trim, e - trim) for s, e in run_windows]
            tracks = {
                kind: self._read_tracks(
                    kind, chrom, run_start + trim, run_end - trim, counts_windows
                )
                for kind in self._tracks
            }
            for k, (r, (s, e)) in enumerate(zip(inside[first:last], run_windows)):
                a, b = s - run_start, e - run_start
                n = b - a - 2 * trim  # Counts window length.
                tokens = run_tokens[a:b] if run_tokens is not None else sequence.tokens(bases[a:b])
                n_bases = np.count_nonzero(tokens == sequence.N_TOKEN)
                if n_bases / (b - a) > self.spec.max_n_fraction:
                    yield r, TOO_MANY_N
                    continue
                counts = {
                    kind: array[offsets[k] : offsets[k] + n]
                    for kind, (array, offsets) in tracks.items()
                }
                yield (
                    r,
                    Window(
                        r,
                        s,
                        tokens,
                        counts['counts'],
                        control=counts.get('control'),
                        expected=counts.get('expected'),
                        is_background=r.background if mark else None,
                    ),
                )
