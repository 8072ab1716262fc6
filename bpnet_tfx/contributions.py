"""The contrib job: contribution scores of every window of records or a BED, as one folder.

Windows come from a records split (the centred windows; region ids give their coordinates) or
from a BED file (each line the model-length window centred on it, `genome_io.bed_windows`), in
input order; `max_regions` keeps the first N. Window 'chrom:start-end' draws its references
from `shuffle.keyed_rng(seed, 'chrom:start-end')`, so its scores depend on neither the batch
size nor where it sits in the input (nor on whether it came from records or a BED). Scores and
their formulas: `attribution`.

The folder is written to a temporary sibling of the output folder and renamed into place once
complete: regions.bed (one row per window, in input order), ohe.npz (one-hot, N x 4 x L under
'arr_0'), and per target a folder (`profile`, `counts`; `<task>.profile`... with several
tasks) with shap.npz (hypothetical contributions, N x 4 x L, 'arr_0'; `modisco motifs -s
ohe.npz -a profile/shap.npz`) and contrib.bw (observed-base contributions; where windows
overlap, each base gets the mean over the windows covering it), plus summary.json.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import os
import time
from typing import Any, Iterator, Sequence

import numpy as np

from bpnet_tfx import (
    attribution,
    folders,
    genome_io,
    prediction,
    progress,
    schema,
    sequence,
    shuffle,
)
from bpnet_tfx.errors import BpnetError

REGIONS_FILENAME = 'regions.bed'
ONE_HOT_FILENAME = 'ohe.npz'
HYPOTHETICAL_FILENAME = 'shap.npz'
BIGWIG_FILENAME = 'contrib.bw'
SUMMARY_FILENAME = 'summary.json'


class ContribError(BpnetError):
    """Bad flags or input of the contrib job, reported in one line."""


@dataclasses.dataclass(frozen=True)
class Window:
    """One row of the outputs: a model-length window of the genome."""

    chrom: str
    start: int
    end: int
    name: str

    @property
    def region(self) -> str:
        """'chrom:start-end': the window's identity, which seeds its references."""
        return f'{self.chrom}:{self.start}-{self.end}'


@dataclasses.dataclass(frozen=True)
class _Settings:
    """How every window is scored (the arguments of `compute_contributions`)."""

    method: str
    num_shuffles: int
    steps: int
    batch_size: int
    seed: int
    reverse_complement_average: bool = False

    @property
    def uses_references(self) -> bool:
        return self.method in ('ig', 'deepshap')

    def windows_per_call(self, length: int) -> int:
        """Windows per data batch: ig feeds windows x K inputs a step, deepshap windows x 2 K
        (each reference beside its window), ism ~3 L mutants a window; twice as many with
        the reverse complements."""
        per_window = {'ig': self.num_shuffles, 'deepshap': 2 * self.num_shuffles}.get(
            self.method, 3 * length
        )
        if self.reverse_complement_average:
            per_window *= 2
        return max(1, self.batch_size // per_window)


@dataclasses.dataclass(frozen=True)
class _Scored:
    """Every window scored: rows in input order, and the bigWig header."""

    windows: list[Window]
    one_hot: np.ndarray  # (N, L, 4)
    hyps: dict[str, np.ndarray]  # per target, (N, L, 4)
    header: list[tuple[str, int]]
    header_from: str  # the FASTA, or 'the records'


# Windows: from records or from a BED file and a FASTA.


def bed_windows(
    regions_bed: str, sizes: dict[str, int], length: int, *, fasta: str = 'the FASTA'
) -> list[Window]:
    """One window per BED line, in the file's order: the `length`-bp window centred on the
    interval's midpoint (shorter and longer intervals alike), shifted inside the chromosome
    where it would run past an end (`genome_io.bed_windows`); named by the BED's 4th column,
    or 'chrom:start-end' of the window.

    Raises:
      genome_io.GenomeError: a malformed line, a chromosome not in the FASTA, an interval
        past the chromosome's end or a chromosome shorter than the window ('file:line: ...'),
        or no regions.
    """
    windows = [
        Window(w.chrom, w.start, w.end, w.name or '')
        for w in genome_io.bed_windows(regions_bed, sizes, length, fasta=fasta)
    ]
    return [w if w.name else dataclasses.replace(w, name=w.region) for w in windows]


def _bed_batches(
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
                        genome_io.read_tracks(
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
    start, end = genome_io.centred_window(start, end, length)
    return Window(chrom, start, end, region_id)


def _records_batches(
    records_dir: str, info: schema.RecordsInfo, split: str, batch: int, limit: int | None
) -> Iterator[tuple[list[Window], np.ndarray, np.ndarray | None]]:
    """Yields (windows, one_hot (B, L, 4), control (B, O, tasks, strands) or None) of the
    split's centred windows, the first `limit` (None: all); control where the records hold
    it."""
    import tensorflow as tf

    from bpnet_tfx import data

    done = 0
    elements = iter(data.make_eval_dataset(records_dir, info, split, batch_size=batch))
    while limit is None or done < limit:
        try:
            element = next(elements, None)
        except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as e:
            raise ContribError(
                f'{records_dir}: reading the {split} records failed (corrupt or '
                f'truncated shard?): {e.message.splitlines()[0]}'
            ) from None
        if element is None:
            return
        keep = len(element['one_hot']) if limit is None else limit - done
        ids = [i.decode() for i in element['region_id'].numpy()[:keep]]
        one_hot = element['one_hot'].numpy()[:keep]
        control = element['control'].numpy()[:keep] if 'control' in element else None
        windows = [_record_window(records_dir, i, info.sequence_length) for i in ids]
        done += len(windows)
        yield windows, one_hot, control


def _records_header(
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
    sizes: dict[str, int] = {}
    for w in windows:
        sizes[w.chrom] = max(sizes.get(w.chrom, 0), w.end)
    return list(sizes.items()), 'the records'


# Scoring.


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


def _score_all(
    scorer: attribution.Scorer, batches, total: int | None, settings: _Settings
) -> tuple[list[Window], np.ndarray | None, dict[str, np.ndarray | None]]:
    """Scores every window of `batches`: (windows, one_hot (N, L, 4), {target: hyp})."""
    windows: list[Window] = []
    one_hots: list[np.ndarray] = []
    hyps: dict[str, list[np.ndarray]] = {t.name: [] for t in scorer.targets}
    methods = {
        'ig': lambda x, refs, c: scorer.integrated_gradients(x, refs, settings.steps, c),
        'deepshap': scorer.deepshap,
        'ism': lambda x, refs, c: scorer.mutagenesis(x, settings.batch_size, c),
    }
    score = methods[settings.method]
    if settings.reverse_complement_average:
        forward = score

        def score(x, refs, c):
            return attribution.reverse_complement_average(forward, x, refs, c)

    if settings.uses_references:
        work = (
            (w, x, score(x, refs, control))
            for w, x, refs, control in _with_references(
                batches, settings.num_shuffles, settings.seed
            )
        )
    else:
        work = (
            (w, x, score(x, None, control))
            for w, x, control in ((w, x.astype(np.float32), c) for w, x, c in batches)
        )
    report = progress.Progress('contrib', 'regions', total)
    for batch_windows, one_hot, out in work:
        for t, h in zip(scorer.targets, out):
            hyps[t.name].append(h)
        windows.extend(batch_windows)
        one_hots.append(one_hot)
        report.update(len(windows))
    report.update(len(windows), final=True)
    return (
        windows,
        np.concatenate(one_hots) if one_hots else None,
        {k: np.concatenate(v) if v else None for k, v in hyps.items()},
    )


def _score_records(
    scorer: attribution.Scorer,
    settings: _Settings,
    records_dir: str,
    info: schema.RecordsInfo,
    split: str,
    max_regions: int | None,
    fasta: str | None,
) -> _Scored:
    """Scores the first `max_regions` centred windows of the records' `split`."""
    config = scorer.config
    if (info.sequence_length, info.num_tasks, info.num_strands) != (
        config.sequence_length,
        config.num_tasks,
        config.num_strands,
    ):
        raise ContribError(
            f'{scorer.model.path} takes {config.sequence_length}-bp windows of '
            f'{config.num_tasks} task(s) x {config.num_strands} strand(s); '
            f'{records_dir} holds {info.sequence_length}-bp windows of '
            f'{info.num_tasks} x {info.num_strands}'
        )
    total = info.split_counts.get(split)
    if total is not None and max_regions is not None:
        total = min(total, max_regions)
    batches = _records_batches(
        records_dir, info, split, settings.windows_per_call(scorer.length), max_regions
    )
    windows, one_hot, hyps = _score_all(scorer, batches, total, settings)
    if not windows:
        raise ContribError(f'{records_dir}: the {split} split holds no records')
    header, header_from = _records_header(records_dir, info, fasta, windows)
    return _Scored(windows, one_hot, hyps, header, header_from)


def _score_bed(
    scorer: attribution.Scorer,
    settings: _Settings,
    regions_bed: str,
    fasta: str | None,
    max_regions: int | None,
    controls: list[tuple[str, str]] | None,
) -> _Scored:
    """Scores the windows of the BED's first `max_regions` lines; the header is the FASTA's
    (by default the one the model's records were made from)."""
    fasta = fasta or scorer.info.source.get('fasta')
    if not fasta:
        raise ContribError('--fasta is needed: the model\'s metadata names no FASTA')
    with genome_io.open_fasta(fasta) as genome:
        sizes = genome_io.chrom_sizes(genome)
        selected = bed_windows(regions_bed, sizes, scorer.length, fasta=fasta)[:max_regions]
        batches = _bed_batches(
            genome,
            selected,
            settings.windows_per_call(scorer.length),
            controls,
            scorer.control_shape[0] if controls else None,
        )
        windows, one_hot, hyps = _score_all(scorer, batches, len(selected), settings)
    return _Scored(windows, one_hot, hyps, list(sizes.items()), fasta)


# Checks before any work.


def _check_arguments(
    output_dir: str,
    settings: _Settings,
    *,
    records_dir: str | None,
    regions_bed: str | None,
    fasta: str | None,
    control_given: bool,
    max_regions: int | None,
    overwrite: bool,
) -> None:
    """Raises ContribError for flags that cannot work, before anything is loaded."""
    if bool(records_dir) == bool(regions_bed):
        raise ContribError('give exactly one of --records_dir and --regions_bed')
    if settings.method not in attribution.METHODS:
        raise ContribError(
            f'--method must be one of {", ".join(attribution.METHODS)}, got {settings.method!r}'
        )
    for name in ('num_shuffles', 'steps', 'batch_size'):
        if getattr(settings, name) < 1:
            raise ContribError(f'--{name} must be >= 1, got {getattr(settings, name)}')
    if max_regions is not None and max_regions < 1:
        raise ContribError(f'--max_regions must be >= 1, got {max_regions}')
    if os.path.exists(output_dir) and not (overwrite and os.path.isdir(output_dir)):
        raise ContribError(f'{output_dir} exists; pass --overwrite to replace it')
    if regions_bed and not os.path.isfile(regions_bed):
        raise ContribError(f'{regions_bed}: no such BED file')
    if fasta and not os.path.isfile(fasta):
        raise ContribError(f'{fasta}: no such FASTA file')
    if records_dir and control_given:
        raise ContribError(
            '--control_pos_bigwig/--control_neg_bigwig go with --regions_bed; '
            'with --records_dir the records\' own control counts are used'
        )


def _records_control(model, records_dir: str, info: schema.RecordsInfo) -> str | None:
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


def _bed_controls(model, pos: str | None, neg: str | None) -> list[tuple[str, str]] | None:
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


# The whole job.


def compute_contributions(
    saved_model: str,
    output_dir: str,
    *,
    records_dir: str | None = None,
    split: str = 'valid',
    regions_bed: str | None = None,
    fasta: str | None = None,
    control_pos_bigwig: str | None = None,
    control_neg_bigwig: str | None = None,
    method: str = 'deepshap',
    num_shuffles: int = 10,
    steps: int = 20,
    batch_size: int = 128,
    seed: int = 0,
    max_regions: int | None = None,
    overwrite: bool = False,
    reverse_complement_average: bool = False,
) -> dict[str, Any]:
    """Computes contribution scores of every window and writes the output folder.

    Windows and layout: module docstring. A model trained with control tracks gets each
    window's observed control counts, held fixed: the records' control feature, or, with
    `regions_bed`, the control bigWigs (by default each task's files named in the model's
    metadata, as `predict` reads them).

    Args:
      saved_model, output_dir: the export; the folder to create.
      records_dir, split: records folder and its split (give this or `regions_bed`).
      regions_bed: BED of regions.
      fasta: genome FASTA for `regions_bed`, by default the records' (with records: the
        bigWig header).
      control_pos_bigwig, control_neg_bigwig: control bigWigs for `regions_bed` and a model
        trained with control tracks (given ones apply to every task); default: the
        metadata's.
      method: 'ig' (integrated gradients from dinucleotide shuffles), 'deepshap' (DeepLIFT
        rescale multipliers against the same shuffles) or 'ism'.
      num_shuffles, steps: K references per window (ig, deepshap), S midpoint steps per
        path (ig).
      batch_size: model inputs per device call: windows x K path points (ig; at least one
        window), windows x 2 K (deepshap: the references beside their window), or mutated
        windows (ism); halved in windows with `reverse_complement_average`. Scores do not
        depend on it.
      seed: window 'chrom:start-end' draws its references from shuffle.keyed_rng(seed,
        'chrom:start-end').
      max_regions: only the first this many windows, in input order (None: all).
      overwrite: replace an existing `output_dir` (only once the new one is complete).
      reverse_complement_average: score each window and its reverse complement (control
        strands swapped; against its references' reverse complements) and average, the
        reverse complement's scores mapped back (`attribution.reverse_complement_average`).

    Returns:
      {'regions', 'seconds', 'output_dir', 'files', 'method', 'num_shuffles', 'steps',
       'reverse_complement_average', 'targets', 'header_from', 'control' (None, 'records',
       or the bigWig pairs per task)}.

    Raises:
      BpnetError: bad flags or input (one line), an unreadable export or records.
    """
    start_time = time.perf_counter()
    settings = _Settings(
        method, num_shuffles, steps, batch_size, seed, bool(reverse_complement_average)
    )
    output_dir = os.path.abspath(output_dir)
    _check_arguments(
        output_dir,
        settings,
        records_dir=records_dir,
        regions_bed=regions_bed,
        fasta=fasta,
        control_given=bool(control_pos_bigwig or control_neg_bigwig),
        max_regions=max_regions,
        overwrite=overwrite,
    )
    info = schema.RecordsInfo.load(records_dir) if records_dir else None  # before TensorFlow
    from bpnet_tfx import export

    scorer = attribution.Scorer(export.ExportedModel(saved_model))
    if records_dir:
        control_from = _records_control(scorer.model, records_dir, info)
        scored = _score_records(scorer, settings, records_dir, info, split, max_regions, fasta)
        source = {'records_dir': os.path.abspath(records_dir), 'split': split}
    else:
        controls = _bed_controls(scorer.model, control_pos_bigwig, control_neg_bigwig)
        control_from = (
            None if controls is None else [[os.path.abspath(p) for p in pair] for pair in controls]
        )
        scored = _score_bed(scorer, settings, regions_bed, fasta, max_regions, controls)
        source = {
            'regions_bed': os.path.abspath(regions_bed),
            'fasta': os.path.abspath(scored.header_from),
        }
    ig = method == 'ig'
    shuffled = settings.uses_references
    files = _write_folder(
        output_dir,
        scored,
        start_time,
        {
            'saved_model': os.path.abspath(saved_model),
            'input': source,
            'method': method,
            'num_shuffles': num_shuffles if shuffled else None,
            'steps': steps if ig else None,
            'reverse_complement_average': settings.reverse_complement_average,
            'seed': seed,
            'regions': len(scored.windows),
            'sequence_length': scorer.length,
            'control': control_from,
            'targets': [dataclasses.asdict(t) for t in scorer.targets],
            'header_from': scored.header_from,
        },
    )
    return {
        'regions': len(scored.windows),
        'seconds': time.perf_counter() - start_time,
        'output_dir': output_dir,
        'files': {k: os.path.join(output_dir, v) for k, v in files.items()},
        'method': method,
        'num_shuffles': num_shuffles,
        'steps': steps,
        'reverse_complement_average': settings.reverse_complement_average,
        'targets': [t.name for t in scorer.targets],
        'header_from': scored.header_from,
        'control': control_from,
    }


# The output folder.


def _write_folder(
    output_dir: str, scored: _Scored, start_time: float, summary: dict[str, Any]
) -> dict[str, str]:
    """Writes the outputs and summary.json ('seconds' since `start_time`, 'files' added) to a
    temporary sibling of `output_dir` and renames it into place (replacing an old one only
    then); returns the files' paths relative to the folder."""

    def write(tmp: str) -> dict[str, str]:
        files = _write_outputs(tmp, scored)
        full = {**summary, 'files': files, 'seconds': round(time.perf_counter() - start_time, 3)}
        with open(os.path.join(tmp, SUMMARY_FILENAME), 'w') as f:
            json.dump(full, f, indent=2, sort_keys=True)
            f.write('\n')
        return files

    return folders.write_atomically(output_dir, write)


def _write_outputs(folder: str, scored: _Scored) -> dict[str, str]:
    """Writes regions.bed, ohe.npz and per target shap.npz + contrib.bw; returns relative
    paths by key ('regions', 'ohe', '<target>.shap', '<target>.bigwig')."""
    files = {'regions': REGIONS_FILENAME, 'ohe': ONE_HOT_FILENAME}
    with open(os.path.join(folder, REGIONS_FILENAME), 'w') as f:
        f.writelines(f'{w.chrom}\t{w.start}\t{w.end}\t{w.name}\n' for w in scored.windows)
    # modisco-lite reads N x 4 x L arrays under 'arr_0'.
    np.savez_compressed(
        os.path.join(folder, ONE_HOT_FILENAME),
        np.ascontiguousarray(scored.one_hot.transpose(0, 2, 1)),
    )
    for name, hyp in scored.hyps.items():
        os.makedirs(os.path.join(folder, name))
        files[f'{name}.shap'] = os.path.join(name, HYPOTHETICAL_FILENAME)
        files[f'{name}.bigwig'] = os.path.join(name, BIGWIG_FILENAME)
        np.savez(
            os.path.join(folder, files[f'{name}.shap']),
            np.ascontiguousarray(hyp.transpose(0, 2, 1)),
        )
        write_bigwig(
            os.path.join(folder, files[f'{name}.bigwig']),
            scored.header,
            scored.windows,
            (hyp * scored.one_hot).sum(axis=-1),
        )
    return files


def average_overlaps(
    windows: Sequence[Window], values: np.ndarray, chrom_order: Sequence[str]
) -> list[tuple[str, int, np.ndarray]]:
    """Per-base values over the union of the windows, overlaps averaged.

    Args:
      windows: N windows, each `values.shape[1]` bp.
      values: (N, L) per-base values.
      chrom_order: chromosomes in output order (every window's chromosome must be there).

    Returns:
      [(chrom, start, values)] of the windows' union, merged where windows overlap or touch
      and sorted (`prediction.merge_regions`); each base once, with the mean over the windows
      covering it (`prediction.stitch`), whatever the windows' order.
    """
    rank = {c: i for i, c in enumerate(chrom_order)}
    order = sorted(
        range(len(windows)),
        key=lambda i: (rank[windows[i].chrom], windows[i].start, windows[i].end),
    )
    merged = prediction.merge_regions(
        [(w.chrom, w.start, w.end) for w in windows], list(chrom_order)
    )
    out, k = [], 0
    for chrom, start, end in merged:  # the sorted windows fall into the merged regions in turn
        members = []
        while k < len(order) and windows[order[k]].chrom == chrom and windows[order[k]].start < end:
            members.append(order[k])
            k += 1
        out.append(
            (
                chrom,
                start,
                prediction.stitch(values[members], [windows[i].start for i in members], start, end),
            )
        )
    return out


def write_bigwig(
    path: str, header: Sequence[tuple[str, int]], windows: Sequence[Window], values: np.ndarray
) -> None:
    """Writes per-base `values` (N, L) of `windows` as a bigWig, overlaps averaged."""
    import pyBigWig

    bw = pyBigWig.open(path, 'w')
    if bw is None:
        raise ContribError(f'{path}: cannot write bigWig')
    try:
        bw.addHeader(list(header))
        for chrom, start, run in average_overlaps(windows, values, [c for c, _ in header]):
            bw.addEntries(chrom, start, values=run.astype(np.float64), span=1, step=1)
    finally:
        bw.close()


def load_outputs(output_dir: str) -> dict[str, Any]:
    """Reads an output folder back: {'windows', 'one_hot' (N, L, 4), 'hyp': {target: (N, L,
    4)}, 'summary'}; hyp * one_hot summed over the last axis gives observed contributions."""
    with open(os.path.join(output_dir, SUMMARY_FILENAME)) as f:
        summary = json.load(f)
    windows = []
    with open(os.path.join(output_dir, REGIONS_FILENAME)) as f:
        for line in f:
            chrom, start, end, name = line.rstrip('\n').split('\t')
            windows.append(Window(chrom, int(start), int(end), name))
    one_hot = np.load(os.path.join(output_dir, ONE_HOT_FILENAME))['arr_0'].transpose(0, 2, 1)
    hyp = {
        t['name']: np.load(os.path.join(output_dir, t['name'], HYPOTHETICAL_FILENAME))[
            'arr_0'
        ].transpose(0, 2, 1)
        for t in summary['targets']
    }
    return {'windows': windows, 'one_hot': one_hot, 'hyp': hyp, 'summary': summary}
