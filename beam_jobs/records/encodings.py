"""Driver-side choice of how each counts track is stored (schema version 2).

`choose_encodings` picks, per track kind (profile, control, expected), a dtype and a layout
(`bpnet_tfx.records.schema.TrackEncoding`) before the pipeline runs. dtype: the smallest unsigned
integer type that holds every bigWig's maximum (exact, from the bigWig header) when the values
read over a sample of the planned windows are all integers, float32 otherwise (normalised or
noise-free tracks). Layout: sparse (indices and values of the non-zero counts) when the sample's
non-zero fraction makes it at most SPARSE_MAX_RATIO of the dense bytes, dense otherwise.
The workers check every window against the choice (`codec.encode_record` refuses a value
the dtype cannot hold), so a sample that missed a fractional value stops the job with one
line rather than writing a wrong record. No Beam here.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from typing import Sequence

import numpy as np

from beam_jobs.common import files as files_lib
from beam_jobs.common.errors import RecordsInputError
from beam_jobs.records.regions import Region
from bpnet_tfx.records import schema

# Spec field -> the record's track name.
TRACKS = (('counts', 'profile'), ('control', 'control'), ('expected', 'expected'))
SAMPLE_WINDOWS = 512  # Windows read for the integer check and the non-zero fraction.
# Sparse when its bytes are at most this share of the dense bytes: a sparse value costs much
# more to decode than a stored byte (the running sum of the gaps, the scatter), so sparse pays
# only well below the dense size (docs/records.md).
SPARSE_MAX_RATIO = 0.15
AUTO = 'auto'


@dataclasses.dataclass(frozen=True)
class TrackSurvey:
    """What the driver learnt about one track kind's bigWigs.

    Attributes:
      max_value: the largest value in any of the bigWigs (their headers' maxVal).
      integer: every value read in the sampled windows is an integer.
      nonzero_fraction: share of non-zero values in the sampled windows.
    """

    max_value: float
    integer: bool
    nonzero_fraction: float


def sample_windows(regions: Sequence[Region], limit: int = SAMPLE_WINDOWS) -> list[Region]:
    """At most `limit` regions spread evenly over the genome order: the same set whatever
    the order of `regions`."""
    ordered = sorted(regions, key=lambda r: (r.chrom, r.start, r.end, r.task, r.background))
    step = max(1, -(-len(ordered) // limit))
    return ordered[::step]


def survey_track(
    paths: Sequence[str], windows: Sequence[tuple[str, int, int]], names: Sequence[str]
) -> TrackSurvey:
    """Reads the bigWigs `paths` (local) over `windows` (chrom, start, end).

    Windows past a chromosome end or on a chromosome a bigWig lacks are skipped here (the job
    reports them); NaN (no data) counts as zero, as in the records.

    Raises:
      RecordsInputError: a file that is not a readable bigWig.
    """
    import pyBigWig

    max_value, integer, nonzero, total = 0.0, True, 0, 0
    for path, name in zip(paths, names):
        bw = pyBigWig.open(path)
        if bw is None:
            raise RecordsInputError(f'{name}: not a readable bigWig file')
        try:
            max_value = max(max_value, float(bw.header()['maxVal']))
            sizes = bw.chroms()
            for chrom, start, end in windows:
                if chrom not in sizes or start < 0 or end > sizes[chrom]:
                    continue
                values = np.nan_to_num(bw.values(chrom, start, end, numpy=True), nan=0.0)
                integer = integer and bool(np.all(values == np.floor(values)))
                nonzero += int(np.count_nonzero(values))
                total += len(values)
        finally:
            bw.close()
    return TrackSurvey(max_value, integer, nonzero / total if total else 1.0)


def encoding_for(
    survey: TrackSurvey, *, dtype: str, layout: str, values: int
) -> schema.TrackEncoding:
    """The TrackEncoding for a surveyed track under the --counts_dtype/--counts_layout flags
    (AUTO or a fixed choice); `values` is the number of values a record holds of the track."""
    if dtype == AUTO:
        dtype = schema.smallest_count_dtype(survey.max_value) if survey.integer else 'float32'
    if layout == AUTO:
        value_bytes = np.dtype(dtype).itemsize
        index_bytes = np.dtype(schema.sparse_index_dtype(values)).itemsize
        sparse_bytes = survey.nonzero_fraction * (value_bytes + index_bytes)
        layout = 'sparse' if sparse_bytes <= SPARSE_MAX_RATIO * value_bytes else 'dense'
    return schema.TrackEncoding(dtype, layout)


def choose_encodings(
    spec_tracks: dict[str, tuple[tuple[str, str], ...] | None],
    regions: Sequence[Region],
    *,
    margin: int,
    trim: int,
    values_per_track: int,
    dtype: str = AUTO,
    layout: str = AUTO,
) -> dict[str, schema.TrackEncoding]:
    """Per record track ('profile', 'control', 'expected') present in `spec_tracks`, its
    encoding.

    Args:
      spec_tracks: {'counts'|'control'|'expected': per task (plus, minus) bigWig paths, or
        None}, as in `windows.WindowSpec`.
      regions: the planned windows (centred, without margin).
      margin: the jitter margin stored on each side.
      trim: bases cut from each side of the sequence window for the counts window.
      values_per_track: values one record holds of a track (length x tasks x strands).
      dtype, layout: the --counts_dtype and --counts_layout flags.
    """
    windows = [
        (r.chrom, r.start - margin + trim, r.end + margin - trim) for r in sample_windows(regions)
    ]
    out = {}
    local_dir = tempfile.mkdtemp(prefix='make_records-encodings-')
    try:
        for kind, track in TRACKS:
            pairs = spec_tracks.get(kind)
            if not pairs:
                continue
            paths = [p for pair in pairs for p in pair]
            local = files_lib.localize_inputs(paths, local_dir)
            survey = survey_track([local[p] for p in paths], windows, paths)
            # --counts_dtype fixes observed counts (and controls); the simulator's noise-free
            # tracks are never integers.
            kind_dtype = AUTO if kind == 'expected' else dtype
            out[track] = encoding_for(
                survey, dtype=kind_dtype, layout=layout, values=values_per_track
            )
    finally:
        shutil.rmtree(local_dir, ignore_errors=True)
    return out
