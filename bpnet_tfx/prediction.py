"""Prediction of genome regions with an exported SavedModel: one region's plot, or bigWig tracks.

Windows and regions. The model predicts output windows of its own length O (its input, L >= O
bp, reaches (L - O) / 2 bp further on each side; N past a chromosome end). `predict_region`
centres a shorter region's window on the region's midpoint, and tiles a longer region with
O-bp windows (`tile_windows`): windows start at the region's start every O bp and the last
one ends at the region's end, so it may overlap the one before; where windows overlap, the
per-base predicted counts (profile probabilities x predicted total counts) are averaged, so
every base gets exactly one value. `predict_tracks` takes a BED file: each interval shorter
than O becomes the O-bp window centred on its midpoint (BPNet's convention; longer intervals
are kept whole), shifted inside the chromosome if needed; these are sorted in FASTA order,
merged where they overlap or touch, and every merged interval is tiled as above, so bases
covered by several BED lines are predicted once, not double counted. Tracks average the
forward prediction with the reverse-complement one (predicted on the reverse-complemented
one-hot, then reversed along positions with plus and minus swapped back,
`sequence.reverse_complement`). Every value depends only on its window: not on the batch
size, nor on the order of the BED's lines.
"""

from __future__ import annotations

import dataclasses
import os
import re
import secrets
from typing import Any

import numpy as np

from bpnet_tfx import genome_io, plots, progress
from bpnet_tfx.errors import BpnetError


class PredictError(BpnetError):
    """Bad region, flags or inputs, reported in one line."""


def tile_windows(start: int, end: int, length: int) -> list[int]:
    """Starts of the `length`-bp windows tiling [start, end) (which is at least `length` long).

    Windows start at `start` every `length` bp; the last one ends exactly at `end`, so it
    overlaps the one before it unless the region's length is a multiple of `length`.
    """
    if end - start < length:
        raise ValueError(f'[{start}, {end}) is shorter than one {length}-bp window')
    starts = list(range(start, end - length + 1, length))
    if starts[-1] + length < end:
        starts.append(end - length)
    return starts


def stitch(values: np.ndarray, starts: list[int], start: int, end: int) -> np.ndarray:
    """Per-base mean of window values (windows, length, ...) placed at `starts` over [start, end).

    Raises:
      ValueError: a base of [start, end) no window covers.
    """
    length = values.shape[1]
    total = np.zeros((end - start, *values.shape[2:]), np.float64)
    cover = np.zeros(end - start, np.int64)
    for value, w in zip(values, starts):
        total[w - start : w - start + length] += value
        cover[w - start : w - start + length] += 1
    if (cover == 0).any():
        raise ValueError('the windows leave bases of the region uncovered')
    return total / cover.reshape(-1, *([1] * (total.ndim - 1)))


def merge_regions(
    intervals: list[tuple[str, int, int]], chrom_order: list[str]
) -> list[tuple[str, int, int]]:
    """Sorts intervals by (chromosome in `chrom_order`, start) and merges overlapping or
    adjacent ones."""
    rank = {c: i for i, c in enumerate(chrom_order)}
    merged: list[list] = []
    for chrom, start, end in sorted(intervals, key=lambda x: (rank[x[0]], x[1], x[2])):
        if merged and merged[-1][0] == chrom and start <= merged[-1][2]:
            merged[-1][2] = max(merged[-1][2], end)
        else:
            merged.append([chrom, start, end])
    return [tuple(m) for m in merged]


def _fasta_of(model, fasta: str | None) -> str:
    fasta = fasta or model.info.source.get('fasta')
    if not fasta:
        raise PredictError('--fasta is needed: the model\'s metadata names no FASTA')
    return fasta


# One region: plot and TSV.


def _observed_bigwigs(
    model, pos: str | None, neg: str | None
) -> tuple[list[tuple[str, ...] | None], str]:
    """Per task, the observed bigWigs to plot: (plus, minus), or (plus[, minus]) to be summed
    for an unstranded model; None where a task has none (it is plotted without). Also where
    they came from, for messages.

    Given paths are comma-separated lists, one file per task (for a single-task model, the
    whole value is the one path, commas included); otherwise each task's files from the
    records' metadata.

    Raises:
      PredictError: a given list names another number of files than the model has tasks.
    """
    info, config = model.info, model.config
    n = config.num_tasks
    given = []
    for flag, value in (('pos_bigwig', pos), ('neg_bigwig', neg)):
        paths = ([value] if n == 1 else value.split(',')) if value else [None] * n
        if len(paths) != n:
            raise PredictError(
                f'--{flag} names {len(paths)} files but the model has {n} '
                f'tasks ({", ".join(info.tasks)}): give one per task, '
                'comma-separated, in that order'
            )
        given.append(paths)
    recorded = info.source.get('tasks') or []
    pairs: list[tuple[str, ...] | None] = []
    for t in range(n):
        meta = dict(recorded[t]) if t < len(recorded) else {}
        if t == 0:  # Single-task metadata names task 0's files at the top level.
            meta = {k: meta.get(k) or info.source.get(k) for k in ('pos_bigwig', 'neg_bigwig')}
        pair = (given[0][t] or meta.get('pos_bigwig'), given[1][t] or meta.get('neg_bigwig'))
        if config.num_strands == 1:
            pairs.append(tuple(p for p in pair if p) or None)
        else:
            pairs.append(pair if all(pair) else None)
    origin = (
        'given with --pos_bigwig/--neg_bigwig'
        if pos or neg
        else f"the default from the records' metadata in {model.path}/metadata.json; give "
        '--pos_bigwig/--neg_bigwig for this genome, or --noobserved to plot '
        'predictions only'
    )
    return pairs, origin


def _read_observed(
    paths: tuple[str, ...], num_strands: int, chrom: str, start: int, end: int, origin: str
) -> np.ndarray:
    """(end - start, strands) observed counts; one strand sums the given bigWigs."""
    track = genome_io.read_tracks([paths], chrom, start, end, origin=origin)[:, 0]
    return track.sum(axis=-1, keepdims=True) if num_strands == 1 else track


def _strand_label(name: str, index: int) -> str:
    return {'+': 'plus', '-': 'minus'}.get(name) or re.sub(r'\W', '', name) or f'strand{index}'


def _region_windows(start: int, end: int, length: int) -> tuple[int, int, list[int], str, str]:
    """(start, end, window starts, mode, note) of a region for a model of output `length`."""
    mode, note = 'window', ''
    if end - start < length:
        note = f'region is {end - start} bp, shorter than the model\'s {length} bp: '
        start, end = genome_io.centred_window(start, end, length)
        mode = 'centred'
    starts = [start] if end - start == length else tile_windows(start, end, length)
    if mode == 'centred':
        note += f'predicting the centred window {{chrom}}:{start}-{end}'
    elif len(starts) > 1:
        mode = 'tiled'
        note = (
            f'region is {end - start} bp, longer than the model\'s {length} bp: tiled with '
            f'{len(starts)} windows of {length} bp (overlaps averaged)'
        )
    return start, end, starts, mode, note


def _predict_span(
    model, genome, controls, chrom: str, start: int, end: int, starts: list[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Stitched predicted counts and the span's profile fractions, both (span, tasks, strands)."""
    length = model.config.output_length
    offset = (model.config.sequence_length - length) // 2
    input_length = model.config.sequence_length
    one_hot = genome_io.padded_one_hot(genome, chrom, start - offset, end + offset)
    control = None
    if controls:
        track = genome_io.read_tracks(controls, chrom, start, end)
        control = np.stack([track[w - start : w - start + length] for w in starts])
    out = model(np.stack([one_hot[w - start : w - start + input_length] for w in starts]), control)
    window_probs, window_counts = out['profile_probs'], out['counts']  # (W, O, T, S), (W, T, S)
    pred = stitch(window_probs * window_counts[:, None], starts, start, end)
    # Fractions of the span's predicted counts; counts clipped at a tiny positive weight, as an
    # untrained model may predict log_counts < 0. For one window this is the softmax itself.
    weighted = stitch(window_probs * np.maximum(window_counts, 1e-6)[:, None], starts, start, end)
    return pred, weighted / weighted.sum(axis=0)


def predict_region(
    saved_model: str,
    region: str,
    *,
    fasta: str | None = None,
    pos_bigwig: str | None = None,
    neg_bigwig: str | None = None,
    observed: bool = True,
    control_pos_bigwig: str | None = None,
    control_neg_bigwig: str | None = None,
    output_png: str,
    output_tsv: str | None = None,
) -> dict[str, Any]:
    """Predicts `region`, writes the plot and TSV, and returns a summary dict.

    A region of the model's output length O is one window. A shorter one is replaced by the
    window centred on it; a longer one is tiled (`tile_windows`), the per-base predicted counts
    of overlapping windows averaged. The plotted and tabulated `pred_prob_*` are each task's
    and strand's predicted counts as a fraction of the plotted span's (the model's softmax for
    one window), against the observed counts as fractions of the span's observed counts. The
    plot has one row per task, both strands in it (plus up, minus down; an unstranded model's
    one strand up). Predictions are the forward strand's (no reverse-complement averaging).

    Observed tracks: `pos_bigwig`/`neg_bigwig` (comma-separated, one per task), by default
    each task's files from the records' metadata; a task without both is plotted without
    them; `observed=False` plots predictions only. An unstranded model is compared with the
    sum of the given strands.

    Returns:
      {'region', 'mode' ('window', 'centred' or 'tiled'), 'windows' (their 'chrom:start-end'),
       'png', 'tsv', 'tasks', 'strands', 'predicted_counts' (per task, per strand, over the
       span), 'observed_counts' (per task, per strand, or None for a task without observed
       tracks; None if no task has any), 'note'}. TSV columns: chrom, start and per task and
       strand pred_prob_<strand>, pred_counts_<strand>, obs_counts_<strand> (strand 'plus',
       'minus'; with several tasks prefixed '<task>.').

    Raises:
      BpnetError: bad region, files or model.
    """
    from bpnet_tfx import export

    model = export.ExportedModel(saved_model)
    fasta = _fasta_of(model, fasta)
    observed_paths, origin = (
        (_observed_bigwigs(model, pos_bigwig, neg_bigwig))
        if observed
        else ([None] * model.config.num_tasks, '')
    )
    controls = model.control_bigwigs(control_pos_bigwig, control_neg_bigwig)
    chrom, start, end = genome_io.parse_region(region)
    start, end, starts, mode, note = _region_windows(start, end, model.config.output_length)
    note = note.replace('{chrom}', chrom)
    if note:
        print(f'predict: {note}')
    with genome_io.open_fasta(fasta) as genome:
        genome_io.check_interval(genome_io.chrom_sizes(genome), fasta, chrom, start, end)
        pred, probs = _predict_span(model, genome, controls, chrom, start, end, starts)
    observed_counts = [
        None
        if paths is None
        else _read_observed(paths, model.config.num_strands, chrom, start, end, origin)
        for paths in observed_paths
    ]
    span = _Span(model, chrom, start, end, starts, mode)
    _plot(span, output_png, pred, probs, observed_counts)
    output_tsv = output_tsv or os.path.splitext(output_png)[0] + '.tsv'
    _write_tsv(span, output_tsv, pred, probs, observed_counts)
    has_observed = any(o is not None for o in observed_counts)
    length = model.config.output_length
    return {
        'region': f'{chrom}:{start}-{end}',
        'mode': mode,
        'windows': [f'{chrom}:{w}-{w + length}' for w in starts],
        'png': output_png,
        'tsv': output_tsv,
        'tasks': list(model.info.tasks),
        'strands': list(model.info.strands),
        'predicted_counts': pred.sum(axis=0).tolist(),
        'note': note,
        'observed_counts': [None if o is None else o.sum(axis=0).tolist() for o in observed_counts]
        if has_observed
        else None,
    }


@dataclasses.dataclass(frozen=True)
class _Span:
    """The predicted span of `predict_region` and how it was tiled."""

    model: Any
    chrom: str
    start: int
    end: int
    starts: list[int]
    mode: str


def _plot(span: _Span, output_png: str, pred, probs, observed) -> None:
    info, config = span.model.info, span.model.config
    strands = info.strands
    counts = pred.sum(axis=0)
    title = f'{span.chrom}:{span.start:,}-{span.end:,}'
    if span.mode == 'tiled':
        title += f' ({len(span.starts)} windows of {config.output_length} bp)'
    row_titles = []
    for t, task in enumerate(info.tasks):
        row = '' if config.num_tasks == 1 else f'{task}:  '
        row += 'predicted counts ' + ', '.join(f'{s}: {c:.0f}' for s, c in zip(strands, counts[t]))
        if observed[t] is not None:
            row += '  observed ' + ', '.join(
                f'{s}: {c:.0f}' for s, c in zip(strands, observed[t].sum(axis=0))
            )
        row_titles.append(row)
    plots.plot_profiles(
        output_png,
        title,
        np.arange(span.start, span.end),
        probs,
        observed,
        tasks=info.tasks,
        strands=strands,
        row_titles=row_titles,
        span='region' if span.mode == 'tiled' else 'window',
        boundaries=span.starts[1:] if span.mode == 'tiled' else (),
    )


def _write_tsv(span: _Span, output_tsv: str, pred, probs, observed) -> None:
    import pandas as pd

    info, config = span.model.info, span.model.config
    positions = np.arange(span.start, span.end)
    columns: dict[str, Any] = {'chrom': [span.chrom] * len(positions), 'start': positions}
    for t, task in enumerate(info.tasks):
        prefix = '' if config.num_tasks == 1 else f'{task}.'
        for kind, values in (
            ('pred_prob', probs[:, t]),
            ('pred_counts', pred[:, t]),
            ('obs_counts', observed[t]),
        ):
            if values is not None:
                for s, strand in enumerate(info.strands):
                    columns[f'{prefix}{kind}_{_strand_label(strand, s)}'] = values[:, s]
    pd.DataFrame(columns).to_csv(output_tsv, sep='\t', index=False, float_format='%.6g')


# Many regions: bigWig tracks.


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
    """Writes the tracks beside their final names and renames them into place when done, so
    a failed run leaves no half-written bigWig."""

    def __init__(self, paths: dict[tuple[str, str], str], sizes: dict[str, int]):
        import pyBigWig

        os.makedirs(os.path.dirname(os.path.abspath(next(iter(paths.values())))), exist_ok=True)
        token = secrets.token_hex(4)
        self.paths = paths
        self.tmp = {key: f'{path}.tmp-{token}' for key, path in paths.items()}
        self.tracks = {key: pyBigWig.open(path, 'w') for key, path in self.tmp.items()}
        for bw in self.tracks.values():
            bw.addHeader(list(sizes.items()))

    def add(self, region: _Region, tasks, strands) -> None:
        values = region.sums / region.cover[:, None, None]
        for t, task in enumerate(tasks):
            for s, strand in enumerate(strands):
                self.tracks[task, strand].addEntries(
                    region.chrom,
                    region.start,
                    values=values[:, t, s].astype(np.float64),
                    span=1,
                    step=1,
                )

    def close(self, ok: bool) -> None:
        for bw in self.tracks.values():
            bw.close()
        for key, tmp in self.tmp.items():
            if ok:
                os.replace(tmp, self.paths[key])
            elif os.path.exists(tmp):
                os.remove(tmp)


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

    Each track holds, at every base of the merged regions (see the module docstring), the
    predicted counts: profile probabilities x predicted total counts, averaged over the forward
    and reverse-complement predictions and over overlapping windows. The header lists every
    FASTA chromosome with its size, in FASTA order; entries are sorted the same way. Also
    writes '<prefix>.regions.bed', the merged regions predicted. Values do not depend on
    `batch_size` or on the order of the BED's lines.

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
    from bpnet_tfx import export

    if batch_size < 1:
        raise PredictError(f'--batch_size must be >= 1, got {batch_size}')
    model = export.ExportedModel(saved_model)
    controls = model.control_bigwigs(control_pos_bigwig, control_neg_bigwig)
    fasta = _fasta_of(model, fasta)
    length = model.config.output_length
    with genome_io.open_fasta(fasta) as genome:
        sizes = genome_io.chrom_sizes(genome)
        bed = genome_io.bed_windows(regions_bed, sizes, length, fasta=fasta, keep_longer=True)
        merged = merge_regions([(w.chrom, w.start, w.end) for w in bed], list(sizes))
        paths = track_paths(output_prefix, model.info.tasks, model.info.strands)
        writer = _TrackWriter(paths, sizes)
        ok = False
        try:
            windows = _predict_merged(
                model,
                genome,
                controls,
                merged,
                writer,
                batch_size=batch_size,
                reverse_complement=reverse_complement,
            )
            ok = True
        finally:
            writer.close(ok)
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
        control=genome_io.read_tracks(controls, chrom, start, end) if controls else None,
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
    *,
    batch_size: int,
    reverse_complement: bool,
) -> int:
    """Predicts every window of the merged regions in batches; each region is written as soon
    as its last window is in, in order. Returns the number of windows."""
    config, info = model.config, model.info
    length, input_length = config.output_length, config.sequence_length
    tiles = [tile_windows(s, e, length) for _, s, e in merged]
    jobs = [_Window(k, w) for k, starts in enumerate(tiles) for w in starts]
    pending: dict[int, _Region] = {}
    written = 0
    report = progress.Progress('predict', 'windows', len(jobs))
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
        report.update(b + len(batch), final=b + len(batch) == len(jobs))
    return len(jobs)
