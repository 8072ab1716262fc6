"""bigWig tracks of predicted counts over a BED file's regions (`predict --regions_bed`).

Each BED interval shorter than the model's output length O becomes the O-bp window centred on
its midpoint (longer ones are kept whole), shifted inside the chromosome if needed; these are
sorted in FASTA order, merged where they overlap or touch, and every merged region is tiled
with O-bp windows (`genome.windows.tile_windows`), overlaps averaged, so every base gets one value.
Tracks average the forward prediction with the reverse-complement one. Windows are predicted
in batches (each split over the model's devices, `export.ExportedModel`), and every merged
region is written as soon as its last window is in, so memory holds only the regions being
predicted. Every value depends only on its window: not on the batch size, the devices, or the
order of the BED's lines.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np

from bpnet_tfx.common import progress
from bpnet_tfx.genome import bed as bed_files
from bpnet_tfx.genome import bigwig, genome_io
from bpnet_tfx.genome.windows import merge_regions, tile_windows
from bpnet_tfx.inference.prediction import PredictError, fasta_of


def track_paths(
    output_prefix: str, tasks: tuple[str, ...], strands: tuple[str, ...]
) -> dict[tuple[str, str], str]:
    """{(task, strand): '<prefix>.<task>.<pos|neg>.bw'} of the tracks `predict_tracks` writes.

    Strands '+' and '-' are named 'pos' and 'neg', like the observed bigWig flags.
    """
    labels = {'+': 'pos', '-': 'neg'}
    return {
        (task, strand): f'{output_prefix}.{genome_io.file_label(task)}.'
        f'{labels.get(strand) or genome_io.file_label(strand)}.bw'
        for task in tasks
        for strand in strands
    }


@dataclasses.dataclass
class _Region:
    """A merged region being predicted: its input, and the sums of its windows' predictions."""

    chrom: str
    start: int
    end: int
    one_hot: np.ndarray  # (end - start + 2 * margin, 4): the input span, N past chromosome ends
    control: np.ndarray | None  # (end - start, tasks, strands) observed control counts
    sums: np.ndarray  # (end - start, tasks, strands) summed window predictions
    cover: np.ndarray  # (end - start,) windows covering each base
    windows_left: int


@dataclasses.dataclass(frozen=True)
class _Window:
    """One model call's worth of a merged region: the output window [start, start + O)."""

    region: int  # index into the merged regions
    start: int


class _TrackWriter:
    """Every task's and strand's track, each written beside its final name and renamed into
    place when done (`bigwig.BigWigWriter`), so a failed run leaves no half-written bigWig."""

    def __init__(self, paths: dict[tuple[str, str], str], sizes: dict[str, int]):
        os.makedirs(os.path.dirname(os.path.abspath(next(iter(paths.values())))), exist_ok=True)
        self.tracks: dict[tuple[str, str], bigwig.BigWigWriter] = {}
        try:
            for key, path in paths.items():
                self.tracks[key] = bigwig.BigWigWriter(path, sizes.items(), temporary=True)
        except BaseException:
            self.close(ok=False)
            raise

    def add(self, region: _Region, tasks, strands) -> None:
        values = region.sums / region.cover[:, None, None]
        for t, task in enumerate(tasks):
            for s, strand in enumerate(strands):
                self.tracks[task, strand].add_values(region.chrom, region.start, values[:, t, s])

    def close(self, ok: bool) -> None:
        for track in self.tracks.values():
            track.close(ok)

    def __enter__(self) -> _TrackWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(ok=exc_type is None)


def predict_tracks(
    saved_model: str,
    regions_bed: str,
    *,
    fasta: str | None = None,
    output_prefix: str,
    batch_size: int = 64,
    reverse_complement: bool = True,
    control_pos_bigwig: str | None = None,
    control_neg_bigwig: str | None = None,
) -> dict[str, Any]:
    """Writes bigWig tracks of predicted counts per task and strand over the BED's regions.

    Each track holds, at every base of the merged regions (module docstring), the predicted
    counts (probabilities x total counts), averaged over strands of the sequence and over
    overlapping windows; its header and entries follow the FASTA's order. Also writes
    '<prefix>.regions.bed', the merged regions. Values do not depend on `batch_size` or on
    the order of the BED's lines.

    Args:
      saved_model: the export.
      regions_bed: BED file of regions (0-based, half-open).
      fasta: genome FASTA; default: the one the training records were made from.
      output_prefix: tracks go to '<prefix>.<task>.<pos|neg>.bw'.
      batch_size: windows per prediction batch.
      reverse_complement: average with the reverse-complement prediction.

    Returns:
      {'tracks': {'<task> <strand>': path}, 'regions_bed', 'bed_regions', 'merged_regions',
       'windows', 'bases'}.

    Raises:
      BpnetError: bad BED line (file:line), region, flags or files.
    """
    from bpnet_tfx.inference import export

    if batch_size < 1:
        raise PredictError(f'--batch_size must be >= 1, got {batch_size}')
    model = export.ExportedModel(saved_model)
    controls = model.control_bigwigs(control_pos_bigwig, control_neg_bigwig)
    fasta = fasta_of(model, fasta)
    length = model.config.output_length
    with genome_io.open_fasta(fasta) as genome:
        sizes = genome_io.chrom_sizes(genome)
        bed = bed_files.bed_windows(regions_bed, sizes, length, fasta=fasta, keep_longer=True)
        merged = merge_regions([(w.chrom, w.start, w.end) for w in bed], list(sizes))
        paths = track_paths(output_prefix, model.info.tasks, model.info.strands)
        with _TrackWriter(paths, sizes) as writer:
            windows = _predict_merged(
                model, genome, controls, merged, writer, batch_size, reverse_complement
            )
    regions_out = f'{output_prefix}.regions.bed'
    with open(regions_out, 'w') as f:
        f.writelines(f'{c}\t{s}\t{e}\n' for c, s, e in merged)
    return {
        'tracks': {f'{task} {strand}': path for (task, strand), path in paths.items()},
        'regions_bed': regions_out,
        'bed_regions': len(bed),
        'merged_regions': len(merged),
        'windows': windows,
        'bases': int(sum(e - s for _, s, e in merged)),
    }


def _open_region(
    model, genome, controls, chrom: str, start: int, end: int, windows: int
) -> _Region:
    config = model.config
    margin = (config.sequence_length - config.output_length) // 2
    shape = (end - start, config.num_tasks, config.num_strands)
    return _Region(
        chrom,
        start,
        end,
        one_hot=genome_io.padded_one_hot(genome, chrom, start - margin, end + margin),
        control=bigwig.read_tracks(controls, chrom, start, end) if controls else None,
        sums=np.zeros(shape),
        cover=np.zeros(end - start),
        windows_left=windows,
    )


def _predict_merged(
    model,
    genome,
    controls,
    merged: list[tuple[str, int, int]],
    writer: _TrackWriter,
    batch_size: int,
    reverse_complement: bool,
    show_progress: bool = True,
) -> int:
    """Predicts every window of the merged regions in batches; each region is written as soon
    as its last window is in, in order. Returns the number of windows."""
    config, info = model.config, model.info
    length, input_length = config.output_length, config.sequence_length
    tiles = [tile_windows(s, e, length) for _, s, e in merged]
    jobs = [_Window(k, w) for k, starts in enumerate(tiles) for w in starts]
    pending: dict[int, _Region] = {}
    written = 0
    report = progress.Progress('predict', 'windows', len(jobs)) if show_progress else None
    for b in range(0, len(jobs), batch_size):
        batch = jobs[b : b + batch_size]
        for job in batch:
            if job.region not in pending:
                pending[job.region] = _open_region(
                    model, genome, controls, *merged[job.region], len(tiles[job.region])
                )
        # Positions within a region: the input span starts `margin` bp before the region.
        where = [(pending[job.region], job.start - pending[job.region].start) for job in batch]
        x = np.stack([region.one_hot[at : at + input_length] for region, at in where])
        control = (
            None
            if not controls
            else np.stack([region.control[at : at + length] for region, at in where])
        )
        pred = model.predicted_counts(x, control, reverse_complement=reverse_complement)
        for (region, at), p in zip(where, pred):
            region.sums[at : at + length] += p
            region.cover[at : at + length] += 1
            region.windows_left -= 1
        while written in pending and pending[written].windows_left == 0:
            writer.add(pending.pop(written), info.tasks, info.strands)
            written += 1
        if report:
            report.update(b + len(batch), final=b + len(batch) == len(jobs))
    return len(jobs)


def predict_spans(
    model, genome, controls, spans: list[tuple[str, int, int]], add, *, batch_size: int
) -> int:
    """Predicts regions as `predict_tracks` predicts its merged regions (tiled, forward and
    reverse complement averaged, overlaps averaged), without a progress line; calls
    `add(chrom, start, values)` with each region's (end - start, tasks, strands) float64
    values, in order. For jobs that write the tracks elsewhere (beam_jobs.predict_tracks).
    Returns the number of windows."""

    class _Collect:
        def add(self, region: _Region, tasks, strands) -> None:
            add(region.chrom, region.start, region.sums / region.cover[:, None, None])

    return _predict_merged(
        model,
        genome,
        controls,
        spans,
        _Collect(),
        batch_size=batch_size,
        reverse_complement=True,
        show_progress=False,
    )
