"""Prediction of genome regions with an exported SavedModel: one region's plot, or bigWig tracks.

Windows and regions. The model predicts output windows of its own length O (its input, L >= O
bp, reaches (L - O) / 2 bp further on each side; N past a chromosome end). `predict_region`
centres a shorter region's window on the region's midpoint, and tiles a longer region with
O-bp windows (`tile_windows`): windows start at the region's start every O bp and the last
one ends at the region's end, so it may overlap the one before; where windows overlap, the
per-base predicted counts (profile probabilities x predicted total counts) are averaged, so
every base gets exactly one value. `tracks.predict_tracks` takes a BED file: each interval shorter
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
from typing import Any

import numpy as np

from bpnet_tfx.common.errors import BpnetError
from bpnet_tfx.genome import bigwig, genome_io
from bpnet_tfx.genome.windows import centred_window, stitch, tile_windows

# merge_regions is re-exported, as tile_windows and stitch are: callers tile regions from here.
from bpnet_tfx.genome.windows import merge_regions as merge_regions
from bpnet_tfx.inference import plots


class PredictError(BpnetError):
    """Bad region, flags or inputs, reported in one line."""


def fasta_of(model, fasta: str | None) -> str:
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
    track = bigwig.read_tracks([paths], chrom, start, end, origin=origin)[:, 0]
    return track.sum(axis=-1, keepdims=True) if num_strands == 1 else track


def _strand_label(name: str, index: int) -> str:
    return {'+': 'plus', '-': 'minus'}.get(name) or re.sub(r'\W', '', name) or f'strand{index}'


def _region_windows(start: int, end: int, length: int) -> tuple[int, int, list[int], str, str]:
    """(start, end, window starts, mode, note) of a region for a model of output `length`."""
    mode, note = 'window', ''
    if end - start < length:
        note = f'region is {end - start} bp, shorter than the model\'s {length} bp: '
        start, end = centred_window(start, end, length)
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


def _tiled_region(region: str, length: int) -> tuple[str, int, int, list[int], str, str]:
    """(chrom, start, end, window starts, mode, note) of a 'chrom:start-end' region for a
    model of output `length`; prints the note."""
    chrom, start, end = genome_io.parse_region(region)
    start, end, starts, mode, note = _region_windows(start, end, length)
    note = note.replace('{chrom}', chrom)
    if note:
        print(f'predict: {note}')
    return chrom, start, end, starts, mode, note


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
        track = bigwig.read_tracks(controls, chrom, start, end)
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

    Windows: module docstring. The plotted and tabulated `pred_prob_*` are each task's and
    strand's predicted counts as a fraction of the span's (the model's softmax for one window),
    against the observed counts as fractions of the span's observed counts; one plot row per
    task. Predictions are the forward strand's (no reverse-complement averaging).

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
    from bpnet_tfx.inference import export

    model = export.ExportedModel(saved_model)
    fasta = fasta_of(model, fasta)
    observed_paths, origin = (
        (_observed_bigwigs(model, pos_bigwig, neg_bigwig))
        if observed
        else ([None] * model.config.num_tasks, '')
    )
    controls = model.control_bigwigs(control_pos_bigwig, control_neg_bigwig)
    chrom, start, end, starts, mode, note = _tiled_region(region, model.config.output_length)
    with genome_io.open_fasta(fasta) as genome:
        genome_io.check_interval(genome_io.chrom_sizes(genome), fasta, chrom, start, end)
        pred, probs = _predict_span(model, genome, controls, chrom, start, end, starts)
    strands = model.config.num_strands
    observed_counts = [
        None if p is None else _read_observed(p, strands, chrom, start, end, origin)
        for p in observed_paths
    ]
    span = _Span(model, chrom, start, end, starts, mode)
    _plot(span, output_png, pred, probs, observed_counts)
    output_tsv = output_tsv or os.path.splitext(output_png)[0] + '.tsv'
    _write_tsv(span, output_tsv, pred, probs, observed_counts)
    return _summary(span, output_png, output_tsv, pred, observed_counts, note)


@dataclasses.dataclass(frozen=True)
class _Span:
    """The predicted span of `predict_region` and how it was tiled."""

    model: Any
    chrom: str
    start: int
    end: int
    starts: list[int]
    mode: str


def _summary(span: _Span, output_png: str, output_tsv: str, pred, observed, note: str):
    """`predict_region`'s returned dict (its docstring lists the keys)."""
    model, chrom = span.model, span.chrom
    has_observed = any(o is not None for o in observed)
    length = model.config.output_length
    return {
        'region': f'{chrom}:{span.start}-{span.end}',
        'mode': span.mode,
        'windows': [f'{chrom}:{w}-{w + length}' for w in span.starts],
        'png': output_png,
        'tsv': output_tsv,
        'tasks': list(model.info.tasks),
        'strands': list(model.info.strands),
        'predicted_counts': pred.sum(axis=0).tolist(),
        'note': note,
        'observed_counts': [None if o is None else o.sum(axis=0).tolist() for o in observed]
        if has_observed
        else None,
    }


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
