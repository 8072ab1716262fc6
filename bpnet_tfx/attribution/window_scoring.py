"""Scoring every window of the contrib job's input into its output folder's writer.

`score_records` and `score_bed` feed the windows of a records split or a BED (those of one
shard) in batches to the scorer, each batch split over the model's devices; the next batch's
shuffled references are made in a thread while the device works (`shuffle.keyed_rng` per
window, so scores do not depend on batching). `Settings` says how every window is scored.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses

import numpy as np

from bpnet_tfx.attribution import output as contrib_output
from bpnet_tfx.attribution import scorer as attribution
from bpnet_tfx.attribution import shuffle
from bpnet_tfx.attribution import windows as contrib_windows
from bpnet_tfx.attribution.windows import ContribError, bed_windows
from bpnet_tfx.common import progress
from bpnet_tfx.genome import genome_io
from bpnet_tfx.records import schema


@dataclasses.dataclass(frozen=True)
class Settings:
    """How every window is scored (the arguments of `compute_contributions`)."""

    method: str
    num_shuffles: int
    steps: int
    batch_size: int
    seed: int
    reverse_complement_average: bool = False
    shard: tuple[int, int] = (0, 1)  # (index, count)

    @property
    def uses_references(self) -> bool:
        return self.method in ('ig', 'deepshap')

    def windows_per_call(self, length: int) -> int:
        """Windows per data batch: ig feeds windows x K inputs a step, deepshap windows x
        (1 + K) (each window before its references), ism ~3 L mutants a window; twice as
        many with the reverse complements."""
        per_window = {'ig': self.num_shuffles, 'deepshap': 1 + self.num_shuffles}.get(
            self.method, 3 * length
        )
        if self.reverse_complement_average:
            per_window *= 2
        return max(1, self.batch_size // per_window)


def _with_references(batches, num_shuffles: int, seed: int):
    """Yields (windows, one_hot, references, control); the next batch's shuffles are made in
    a thread while the device works on the current one. Each window's references come from
    `shuffle.keyed_rng(seed, window.region)`, whatever the batching and order. Only the
    sequence is shuffled: the control stays the window's observed one."""

    def prepare(batch_windows, one_hot, control):
        one_hot = one_hot.astype(np.float32)
        rngs = [shuffle.keyed_rng(seed, w.region) for w in batch_windows]
        return batch_windows, one_hot, shuffle.dinuc_shuffle(one_hot, num_shuffles, rngs), control

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending = None
        for batch_windows, one_hot, control in batches:
            ready = pool.submit(prepare, batch_windows, one_hot, control)
            if pending is not None:
                yield pending.result()
            pending = ready
        if pending is not None:
            yield pending.result()


def _scorer_call(scorer: attribution.Scorer, settings: Settings):
    """(one_hot, references, control) -> per target hyp, the batch split over the model's
    devices (reverse complement averaged where asked)."""
    from bpnet_tfx.common import devices

    score = {
        'ig': lambda x, refs, c: scorer.integrated_gradients(x, refs, settings.steps, c),
        'deepshap': scorer.deepshap,
        'ism': lambda x, refs, c: scorer.mutagenesis(x, settings.batch_size, c),
    }[settings.method]

    def split(x, refs, c):
        return devices.split_batch(score, (x, refs, c), scorer.model.devices)

    if not settings.reverse_complement_average:
        return split
    return lambda x, refs, c: attribution.reverse_complement_average(split, x, refs, c)


def _score_all(
    scorer: attribution.Scorer,
    batches,
    total: int | None,
    settings: Settings,
    writer: contrib_output.FolderWriter,
) -> int:
    """Scores every window of `batches` into `writer`; returns how many."""
    score = _scorer_call(scorer, settings)
    if settings.uses_references:
        work = (
            (w, x, score(x, refs, control))
            for w, x, refs, control in _with_references(
                batches, settings.num_shuffles, settings.seed
            )
        )
    else:
        work = ((w, x, score(x, None, c)) for w, x, c in batches)
    report = progress.Progress('contrib', 'regions', total)
    for batch_windows, one_hot, out in work:
        writer.add(batch_windows, one_hot, out)
        report.update(len(writer.windows))
    report.update(len(writer.windows), final=True)
    return len(writer.windows)


def _shard_rows(total: int, shard: tuple[int, int]) -> int:
    """How many of `total` input rows fall to `shard` (rows j with j % count == index)."""
    index, count = shard
    return max(0, (total - index + count - 1) // count)


def score_records(
    scorer: attribution.Scorer,
    settings: Settings,
    writer: contrib_output.FolderWriter,
    records_dir: str,
    info: schema.RecordsInfo,
    split: str,
    max_regions: int | None,
    fasta: str | None,
) -> tuple[list[tuple[str, int]], str]:
    """Scores the first `max_regions` centred windows of the records' `split` (those of the
    shard); returns the bigWig header and where it came from."""
    check_records_fit(scorer.config, scorer.model.path, records_dir, info)
    total = info.split_counts.get(split)
    if total is not None and max_regions is not None:
        total = min(total, max_regions)
    batches = contrib_windows.records_batches(
        records_dir,
        info,
        split,
        settings.windows_per_call(scorer.length),
        max_regions,
        settings.shard,
    )
    total = None if total is None else _shard_rows(total, settings.shard)
    if not _score_all(scorer, batches, total, settings, writer):
        raise ContribError(
            f'{records_dir}: the {split} split holds no records'
            + (shard_note(settings.shard) if settings.shard[1] > 1 else '')
        )
    return contrib_windows.records_header(records_dir, info, fasta, writer.windows)


def shard_note(shard: tuple[int, int]) -> str:
    return f' for --shard_index={shard[0]} of --num_shards={shard[1]}'


def score_bed(
    scorer: attribution.Scorer,
    settings: Settings,
    writer: contrib_output.FolderWriter,
    regions_bed: str,
    fasta: str | None,
    max_regions: int | None,
    controls: list[tuple[str, str]] | None,
) -> tuple[list[tuple[str, int]], str]:
    """Scores the windows of the BED's first `max_regions` lines (those of the shard); the
    header is the FASTA's (by default the one the model's records were made from)."""
    fasta = fasta or scorer.info.source.get('fasta')
    if not fasta:
        raise ContribError('--fasta is needed: the model\'s metadata names no FASTA')
    index, count = settings.shard
    with genome_io.open_fasta(fasta) as genome:
        sizes = genome_io.chrom_sizes(genome)
        selected = bed_windows(regions_bed, sizes, scorer.length, fasta=fasta)[:max_regions]
        if index >= len(selected):
            raise ContribError(
                f'{regions_bed}: {len(selected)} windows leave none{shard_note(settings.shard)}'
            )
        selected = selected[index::count]
        batches = contrib_windows.bed_batches(
            genome,
            selected,
            settings.windows_per_call(scorer.length),
            controls,
            scorer.control_shape[0] if controls else None,
        )
        _score_all(scorer, batches, len(selected), settings, writer)
    return list(sizes.items()), fasta


def check_records_fit(config, model_path: str, records_dir: str, info: schema.RecordsInfo):
    """Raises ContribError unless the records hold windows of the model's length, tasks and
    strands."""
    if (info.sequence_length, info.num_tasks, info.num_strands) != (
        config.sequence_length,
        config.num_tasks,
        config.num_strands,
    ):
        raise ContribError(
            f'{model_path} takes {config.sequence_length}-bp windows of '
            f'{config.num_tasks} task(s) x {config.num_strands} strand(s); '
            f'{records_dir} holds {info.sequence_length}-bp windows of '
            f'{info.num_tasks} x {info.num_strands}'
        )


def score_batch(
    scorer: attribution.Scorer,
    windows: list[contrib_output.Window],
    one_hot: np.ndarray,
    control: np.ndarray | None,
    settings: Settings,
) -> list[np.ndarray]:
    """Per target hyp (B, L, 4) of one batch of windows, scored as the command scores them
    (each window's references from `shuffle.keyed_rng(seed, window.region)`)."""
    score = _scorer_call(scorer, settings)
    if not settings.uses_references:
        return score(one_hot, None, control)
    batches = [(windows, one_hot, control)]
    ((_, x, refs, c),) = _with_references(batches, settings.num_shuffles, settings.seed)
    return score(x, refs, c)
