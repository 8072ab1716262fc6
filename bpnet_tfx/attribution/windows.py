"""Windows of the contrib job: from a records split or from a BED file and a FASTA.

Each window is the model-length window a record's id names (its centred window), or the one
centred on a BED line's interval (`bed.bed_windows`), in input order; batches carry
their one-hot sequence and, for models with control tracks, the control counts. With
`shard=(index, count)` only rows j of the input with j % count == index are kept.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Iterator

import numpy as np

from bpnet_tfx.attribution.output import Window, extent_header
from bpnet_tfx.common.errors import BpnetError
from bpnet_tfx.genome import bed, bigwig, genome_io, sequence
from bpnet_tfx.genome.windows import centred_window
from bpnet_tfx.records import schema


class ContribError(BpnetError):
    """Bad flags or input of the contrib job, reported in one line."""


def bed_windows(
    regions_bed: str, sizes: dict[str, int], length: int, *, fasta: str = 'the FASTA'
) -> list[Window]:
    """One window per BED line, in the file's order: the `length`-bp window centred on the
    interval's midpoint (shorter and longer intervals alike), shifted inside the chromosome
    where it would run past an end (`bed.bed_windows`); named by the BED's 4th column,
    or 'chrom:start-end' of the window.

    Raises:
      genome_io.GenomeError: a malformed line, a chromosome not in the FASTA, an interval
        past the chromosome's end or a chromosome shorter than the window ('file:line: ...'),
        or no regions.
    """
    windows = [
        Window(w.chrom, w.start, w.end, w.name or '')
        for w in bed.bed_windows(regions_bed, sizes, length, fasta=fasta)
    ]
    return [w if w.name else dataclasses.replace(w, name=w.region) for w in windows]


def bed_batches(
    genome,
    windows: list[Window],
    batch: int,
    controls: list[tuple[str, str]] | None = None,
    control_length: int | None = None,
) -> Iterator[tuple[list[Window], np.ndarray, np.ndarray | None]]:
    """Yields (windows, one_hot (B, L, 4), control (B, control_length, tasks, 2) or None);
    control counts come from the (plus, minus) bigWig pair of each task in `controls`, over
    the `control_length` bp centred in each window."""
    for b in range(0, len(windows), batch):
        part = windows[b : b + batch]
        one_hot = np.stack([sequence.one_hot(genome[w.chrom][w.start : w.end]) for w in part])
        control = None
        if controls:
            trim = (part[0].end - part[0].start - control_length) // 2
            try:
                control = np.stack(
                    [
                        bigwig.read_tracks(
                            controls, w.chrom, w.start + trim, w.start + trim + control_length
                        )
                        for w in part
                    ]
                )
            except genome_io.GenomeError as e:
                raise ContribError(f'control tracks: {e}') from None
        yield part, one_hot, control


def _record_window(records_dir: str, region_id: str, length: int) -> Window:
    try:
        chrom, start, end = genome_io.parse_region(region_id)
    except genome_io.GenomeError:
        raise ContribError(
            f'{records_dir}: record id {region_id!r} is not '
            "'chrom:start-end'; cannot place it in the genome"
        ) from None
    # Ids name the centred window; one that includes the jitter margin shares its centre.
    start, end = centred_window(start, end, length)
    return Window(chrom, start, end, region_id)


def records_batches(
    records_dir: str,
    info: schema.RecordsInfo,
    split: str,
    batch: int,
    limit: int | None,
    shard: tuple[int, int] = (0, 1),
) -> Iterator[tuple[list[Window], np.ndarray, np.ndarray | None]]:
    """Yields (windows, one_hot (B, L, 4), control (B, O, tasks, strands) or None) of the
    split's centred windows, the first `limit` (None: all) and of those the rows of `shard`
    (module docstring); control where the records hold it."""
    import tensorflow as tf

    from bpnet_tfx.records import dataset as data

    index, count = shard
    seen = 0  # rows of the split read so far, every shard's
    elements = iter(data.make_eval_dataset(records_dir, info, split, batch_size=batch * count))
    while limit is None or seen < limit:
        try:
            element = next(elements, None)
        except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as e:
            raise ContribError(
                f'{records_dir}: reading the {split} records failed (corrupt or '
                f'truncated shard?): {e.message.splitlines()[0]}'
            ) from None
        if element is None:
            return
        read = len(element['one_hot'])
        keep = read if limit is None else min(read, limit - seen)
        rows = [r for r in range(keep) if (seen + r) % count == index]
        seen += keep
        if not rows:
            continue
        ids = [i.decode() for i in element['region_id'].numpy()[rows]]
        one_hot = element['one_hot'].numpy()[rows]
        control = element['control'].numpy()[rows] if 'control' in element else None
        yield [_record_window(records_dir, i, info.sequence_length) for i in ids], one_hot, control


def records_header(
    records_dir: str, info: schema.RecordsInfo, fasta: str | None, windows: list[Window]
) -> tuple[list[tuple[str, int]], str]:
    """bigWig header: the FASTA's chromosomes (given, or the records' own if readable), else
    the records' chromosomes in order of appearance, each as long as its last window's end."""
    candidate = fasta or info.source.get('fasta')
    if candidate and os.path.isfile(candidate):
        with genome_io.open_fasta(candidate) as genome:
            sizes = genome_io.chrom_sizes(genome)
        bad = next((w for w in windows if w.chrom not in sizes or w.end > sizes[w.chrom]), None)
        if bad is None:
            return list(sizes.items()), candidate
        if fasta:
            raise ContribError(f'{records_dir}: window {bad.name} is not within {fasta}')
    elif fasta:
        raise ContribError(f'{fasta}: no such FASTA file')
    return extent_header(windows), 'the records'


def records_control(model, records_dir: str, info: schema.RecordsInfo) -> str | None:
    """'records' for a control model whose records hold fitting control counts, else None."""
    config = model.config
    if not config.use_control:
        return None
    if not info.has_control:
        raise ContribError(
            f'{model.path} was trained with control tracks but {records_dir} '
            'holds none; make the records with the same control bigWigs, or '
            'give --regions_bed and the control bigWigs'
        )
    if info.output_length != config.output_length:
        raise ContribError(
            f'{model.path} takes control counts over {config.output_length} bp '
            f'but {records_dir} holds {info.output_length}-bp counts'
        )
    return 'records'


def bed_controls(model, pos: str | None, neg: str | None) -> list[tuple[str, str]] | None:
    """Per task, the existing (plus, minus) control bigWigs of a control model (`pos`/`neg`,
    else the metadata's); None for a model without controls."""
    if (pos or neg) and not model.config.use_control:
        raise ContribError(
            f'{model.path} was trained without control tracks; drop '
            '--control_pos_bigwig/--control_neg_bigwig'
        )
    controls = model.control_bigwigs(pos, neg)
    missing = next((p for pair in controls or () for p in pair if not os.path.isfile(p)), None)
    if missing:
        raise ContribError(
            f'{missing}: no such control bigWig; {model.path} was trained '
            'with control tracks: give --control_pos_bigwig and '
            '--control_neg_bigwig'
        )
    return controls
