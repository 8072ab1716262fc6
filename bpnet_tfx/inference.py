"""Running an exported SavedModel: evaluation over records and prediction of genome regions.

Only TensorFlow, numpy and the genome readers are needed; nothing here parses flags. The thin
mains `evaluate.py` and `predict.py` turn flags into calls of `evaluate()`, `predict_region()`
and `predict_tracks()`.

Windows and regions. The model sees windows of its own length L. `predict_region` centres a
shorter region's window on the region's midpoint, and tiles a longer region with L-bp windows
(see `tile_windows`): windows start at the region's start every L bp and the last one ends at
the region's end, so it may overlap the one before; where windows overlap, the per-base
predicted counts (profile probabilities x predicted total counts) are averaged, so every base
gets exactly one value. `predict_tracks` takes a BED file: each interval shorter than L becomes
the L-bp window centred on its midpoint (BPNet's convention; longer intervals are kept whole),
shifted inside the chromosome if needed; these are sorted in FASTA order, merged where they
overlap or touch, and every merged interval is tiled as above, so bases covered by several
BED lines are predicted once, not double counted. Tracks average the forward prediction with
the reverse-complement one (predicted on the reverse-complemented one-hot, then reversed
along positions with plus and minus swapped back, `sequence.reverse_complement`).
"""

from __future__ import annotations

import gzip
import os
import re
import sys
import time
from typing import Any, Iterator

import numpy as np
from absl import logging

from bpnet_tfx import metrics, plots
from bpnet_tfx.errors import BpnetError

AUPRC_SHUFFLE_SEED = 20210101  # fixed: the shuffled-prediction auPRC baseline is reproducible


class EvaluateError(BpnetError):
    """Incompatible model and records, reported in one line."""


class PredictError(BpnetError):
    """Bad region, BED line or inputs, reported in one line."""


class _Progress:
    """A progress line on stderr every `every` items or `percent` % of `total`, and at the end."""

    def __init__(self, label: str, unit: str, total: int | None, *, every: int | None = None,
                 percent: float = 5.0):
        self._label, self._unit, self._total = label, unit, total
        if every is None:
            every = max(1, int(total * percent / 100)) if total else 1000
        self._every = every
        self._next = every
        self._last = 0
        self._start = time.perf_counter()

    def update(self, done: int, *, final: bool = False) -> None:
        if (done < self._next and not final) or done == self._last:
            return
        self._last = done
        while self._next <= done:
            self._next += self._every
        rate = done / max(time.perf_counter() - self._start, 1e-9)
        of = f'/{self._total}' if self._total else ''
        pct = f' ({100 * done / self._total:.0f}%)' if self._total else ''
        print(f'{self._label}: {done}{of} {self._unit}{pct}, {rate:.1f} {self._unit}/s',
              file=sys.stderr, flush=True)


def with_task_axis(outputs: dict[str, Any], num_tasks: int) -> dict[str, Any]:
    """A SavedModel's outputs (numpy arrays or tensors) with the task axis: single-task models
    drop it, so (batch, L, strands) profiles become (batch, L, 1, strands) and (batch, strands)
    counts (batch, 1, strands). Keys an export lacks (log_total_counts, in exports made
    before it was added) are left out."""
    out = dict(outputs)
    if num_tasks == 1:
        for k in ('profile_logits', 'profile_probs'):
            if k in out:
                out[k] = out[k][:, :, None]
        for k in ('log_counts', 'counts', 'log_total_counts'):
            if k in out:
                out[k] = out[k][:, None]
    return out


class _Model:
    """An exported SavedModel with its metadata; outputs as numpy with a task axis."""

    def __init__(self, saved_model: str):
        from bpnet_tfx import export
        self.info, self.config = export.load_export_info(saved_model)
        self._loaded, self._serve = export.load_saved_model(saved_model, self.config)

    def __call__(self, one_hot: np.ndarray,
                 control: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """(batch, L, 4) one-hot [and (batch, L, tasks, strands) control counts] ->
        profile_logits/profile_probs (batch, L, tasks, strands), log_counts/counts
        (batch, tasks, strands).

        Raises:
          PredictError: the model was trained with control tracks and none are given.
        """
        import tensorflow as tf
        inputs = {'one_hot': tf.constant(one_hot, tf.float32)}
        if self.config.use_control:
            if control is None:
                raise PredictError(
                    'this model was trained with control tracks and needs them as input '
                    '(control bigWigs, or records made with controls); predicting without '
                    'them would be silently wrong')
            inputs['control'] = tf.constant(control, tf.float32)
        out = {k: v.numpy() for k, v in self._serve(**inputs).items()}
        return with_task_axis(out, self.config.num_tasks)

    def predicted_counts(self, one_hot: np.ndarray, control: np.ndarray | None = None, *,
                         reverse_complement: bool = False) -> np.ndarray:
        """Per-base predicted counts (batch, L, tasks, strands): probabilities x total counts.

        With `reverse_complement`, the mean of the forward prediction and the prediction on the
        reverse-complemented one-hot (and control, whose strands swap) mapped back (positions
        reversed, strands swapped).
        """
        from bpnet_tfx import sequence
        one_hot = np.asarray(one_hot, np.float32)
        n = len(one_hot)
        if reverse_complement:
            if control is None:
                rc = sequence.reverse_complement(one_hot)
            else:
                rc, rc_control = sequence.reverse_complement(one_hot, control)
                control = np.concatenate([control, rc_control])
            one_hot = np.concatenate([one_hot, np.ascontiguousarray(rc)])
        out = self(one_hot, control)
        pred = out['profile_probs'] * out['counts'][:, None]
        if not reverse_complement:
            return pred
        _, back = sequence.reverse_complement(one_hot[n:], pred[n:])
        return 0.5 * (pred[:n] + back)


# Evaluation.

def _profile_metrics(nll, uniform, oracle, jsd, true_log_counts, pred_log_counts):
    out = {
        'profile_nll': float(np.mean(nll)),
        'uniform_profile_nll': float(np.mean(uniform)),
        'profile_jsd': float(np.nanmean(jsd)) if np.isfinite(jsd).any() else float('nan'),
        'count_pearson': metrics.pearson(np.ravel(true_log_counts), np.ravel(pred_log_counts)),
        'count_spearman': metrics.spearman(np.ravel(true_log_counts),
                                           np.ravel(pred_log_counts)),
        'n_examples': int(np.shape(nll)[0]),
    }
    if oracle is not None:
        out['oracle_profile_nll'] = float(np.mean(oracle))
    return out


def _auprc_metrics(pools: list[tuple[list, list, list]]) -> dict[str, float]:
    """auPRC of the labelled positions pooled over `pools` (one per task and strand)."""
    labels, scores, shuffled = (np.concatenate([a for pool in pools for a in pool[i]]
                                               or [np.zeros(0)]) for i in range(3))
    return {'profile_auprc': metrics.average_precision(labels, scores),
            'profile_auprc_shuffled': metrics.average_precision(labels, shuffled)}


def evaluate(saved_model: str, records_dir: str, split: str, *, batch_size: int = 256,
             progress_every: int = 50) -> dict[str, Any]:
    """Runs the SavedModel over a split and returns the metrics dict.

    Keys, overall and per task and strand (`tasks.<task>.strands.<strand>`): profile_nll,
    uniform_profile_nll, oracle_profile_nll (records with expected tracks only), profile_jsd,
    profile_auprc, profile_auprc_shuffled, count_pearson, count_spearman, n_examples. Overall
    NLLs are per window summed over tasks and strands, as the training loss sums them; the
    auPRC pools the labelled positions of every kept window (and, per task and overall, of
    every strand and task), as BPNet does. Background records are left out of every metric
    (`background_skipped` counts them). Profile NLLs are per strand for every model, also one
    trained with the joint loss, so the two kinds of model compare directly.

    Args:
      saved_model: folder written by `export.export_saved_model`.
      records_dir: records folder written by make_records.
      split: the split to evaluate.
      batch_size: windows per prediction batch.
      progress_every: a progress line on stderr every this many batches.

    Raises:
      EvaluateError: the model does not fit the records, or the split is empty.
      schema.SchemaError: unreadable metadata, SavedModel or shards.
    """
    from bpnet_tfx import data, schema

    model = _Model(saved_model)
    config = model.config
    info = schema.RecordsInfo.load(records_dir)
    if config.use_control and not info.has_control:
        raise EvaluateError(f'{saved_model} was trained with control tracks but {records_dir} '
                            'holds none; make the records with the same control bigWigs')
    if (info.sequence_length, info.output_length) != (config.sequence_length,
                                                      config.output_length):
        raise EvaluateError(f'{saved_model} maps {config.sequence_length}-bp windows to '
                            f'{config.output_length}-bp profiles but {records_dir} holds '
                            f'{info.sequence_length}-bp windows with {info.output_length}-bp '
                            'counts')
    if (info.num_tasks, info.num_strands) != (config.num_tasks, config.num_strands):
        raise EvaluateError(f'{saved_model} predicts {config.num_tasks} task(s) x '
                            f'{config.num_strands} strand(s); {records_dir} holds '
                            f'{info.num_tasks} x {info.num_strands}')
    parts: dict[str, list[np.ndarray]] = {k: [] for k in
                                          ('nll', 'uniform', 'oracle', 'jsd', 'true', 'pred')}
    # Per (task, strand): labels, predicted and shuffled probabilities of labelled positions.
    auprc = {(t, s): ([], [], []) for t in range(info.num_tasks)
             for s in range(info.num_strands)}
    uniform_lp = metrics.uniform_log_probs(info.output_length)
    progress = _Progress('evaluate', 'examples', info.split_counts.get(split),
                         every=max(1, progress_every) * batch_size)
    done = background = 0
    for batch in data.make_eval_dataset(records_dir, info, split, batch_size=batch_size):
        if 'is_background' in batch:  # Metrics are over peaks; background is counted apart.
            peak = batch['is_background'].numpy() == 0
            background += int((~peak).sum())
            if not peak.any():
                continue
            batch = {k: v.numpy()[peak] for k, v in batch.items()}
        batch = {k: np.asarray(v) for k, v in batch.items()}
        control = batch.get('control')
        out = model(batch['one_hot'], control)
        counts = batch['profile']
        parts['nll'].append(metrics.multinomial_nll(counts,
                                                    metrics.log_softmax(out['profile_logits'])))
        parts['uniform'].append(metrics.multinomial_nll(counts, uniform_lp[..., None, None]))
        if 'expected' in batch:
            parts['oracle'].append(metrics.multinomial_nll(
                counts, metrics.expected_log_probs(batch['expected'])))
        probs = out['profile_probs']
        parts['jsd'].append(metrics.jensen_shannon_distance(counts, probs))
        parts['true'].append(np.log1p(counts.sum(axis=1)))
        parts['pred'].append(out['log_counts'])
        labels = metrics.auprc_labels(counts)
        shuffled = metrics.shuffle_positions(probs, seed=AUPRC_SHUFFLE_SEED, first_index=done)
        for (t, s), (pool_labels, pool_scores, pool_shuffled) in auprc.items():
            keep = labels[:, :, t, s] >= 0
            pool_labels.append(labels[:, :, t, s][keep])
            pool_scores.append(probs[:, :, t, s][keep])
            pool_shuffled.append(shuffled[:, :, t, s][keep])
        done += len(counts)
        progress.update(done)
    if not parts['nll']:
        raise EvaluateError(f'{records_dir}: the {split} split holds no '
                            + ('peak records' if background else 'records'))
    progress.update(done, final=True)
    arr = {k: np.concatenate(v) if v else None for k, v in parts.items()}

    def _summed(x):  # per example, summed over tasks and strands as in the training loss
        return None if x is None else x.reshape(len(x), -1).sum(axis=1)

    overall = _profile_metrics(_summed(arr['nll']), _summed(arr['uniform']),
                               _summed(arr['oracle']), arr['jsd'], arr['true'], arr['pred'])
    overall.update(_auprc_metrics(list(auprc.values())))
    result: dict[str, Any] = {
        'saved_model': os.path.abspath(saved_model),
        'records_dir': os.path.abspath(records_dir),
        'split': split,
        'background_skipped': background,
        'overall': overall,
        'tasks': {},
    }
    for t, task in enumerate(info.tasks):
        sl = (slice(None), t)
        task_out = _profile_metrics(
            arr['nll'][sl].sum(-1), arr['uniform'][sl].sum(-1),
            None if arr['oracle'] is None else arr['oracle'][sl].sum(-1),
            arr['jsd'][sl], arr['true'][sl], arr['pred'][sl])
        task_out.update(_auprc_metrics([auprc[t, s] for s in range(info.num_strands)]))
        task_out['strands'] = {}
        for s, strand in enumerate(info.strands):
            strand_out = _profile_metrics(
                arr['nll'][:, t, s], arr['uniform'][:, t, s],
                None if arr['oracle'] is None else arr['oracle'][:, t, s],
                arr['jsd'][:, t, s], arr['true'][:, t, s], arr['pred'][:, t, s])
            strand_out.update(_auprc_metrics([auprc[t, s]]))
            task_out['strands'][strand] = strand_out
        result['tasks'][task] = task_out
    return result


def format_table(result: dict[str, Any]) -> str:
    """A readable table of the overall and per-strand numbers."""
    keys = ('profile_nll', 'oracle_profile_nll', 'uniform_profile_nll', 'profile_jsd',
            'profile_auprc', 'profile_auprc_shuffled', 'count_pearson', 'count_spearman',
            'n_examples')
    width = max(len(k) for k in keys) + 2
    rows = [('overall', result['overall'])]
    for task, t in result['tasks'].items():
        rows += [(f'{task} {strand}', v) for strand, v in t['strands'].items()]
    name_width = max(14, *(len(name) + 2 for name, _ in rows))
    lines = [f"{'':{name_width}s}" + ''.join(f'{k:>{width}s}' for k in keys)]
    for name, values in rows:
        cells = []
        for k in keys:
            v = values.get(k)
            cells.append(f'{"-":>{width}s}' if v is None else
                         f'{v:>{width}d}' if isinstance(v, int) else f'{v:>{width}.3f}')
        lines.append(f'{name:{name_width}s}' + ''.join(cells))
    return '\n'.join(lines)


# Regions, windows and the genome.

_REGION_RE = re.compile(r'^([^:\s]+):([\d,]+)-([\d,]+)$')


def parse_region(text: str) -> tuple[str, int, int]:
    """Parses 'chrom:start-end' into (chrom, start, end); commas in numbers are allowed.

    Raises:
      PredictError: malformed text or start >= end.
    """
    m = _REGION_RE.match(text.strip()) if text else None
    if not m:
        raise PredictError(f"malformed region {text!r}; expected 'chrom:start-end', e.g. "
                           'chr1:180924452-180925452')
    chrom, start, end = m.group(1), int(m.group(2).replace(',', '')), \
        int(m.group(3).replace(',', ''))
    if start >= end:
        raise PredictError(f'region {text!r}: start must be below end')
    return chrom, start, end


def centred_window(start: int, end: int, length: int) -> tuple[int, int]:
    """The window of `length` bp centred on the midpoint of [start, end)."""
    centre = (start + end) // 2
    return centre - length // 2, centre - length // 2 + length


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
        total[w - start:w - start + length] += value
        cover[w - start:w - start + length] += 1
    if (cover == 0).any():
        raise ValueError('the windows leave bases of the region uncovered')
    return total / cover.reshape(-1, *([1] * (total.ndim - 1)))


def _open_fasta(fasta: str):
    import pyfaidx
    try:
        return pyfaidx.Fasta(fasta, as_raw=True, sequence_always_upper=True)
    except (OSError, pyfaidx.FastaIndexingError, ValueError) as e:
        raise PredictError(f'{fasta}: cannot open FASTA: {e}') from None


def _check_interval(genome, fasta: str, chrom: str, start: int, end: int, where: str) -> None:
    if chrom not in genome:
        raise PredictError(f'{where}chromosome {chrom!r} not in the FASTA {fasta} (it has '
                           f'{", ".join(list(genome.keys())[:5])}, ...)')
    size = len(genome[chrom])
    if start < 0 or end > size:
        raise PredictError(f'{where}region {chrom}:{start}-{end} runs past the end of {chrom} '
                           f'({size:,} bp)')


def padded_one_hot(genome, chrom: str, start: int, end: int) -> np.ndarray:
    """One-hot (end - start, 4) of [start, end), with all-zero (N) rows past either end of
    the chromosome: a model with a wider input than output still predicts bases near ends."""
    from bpnet_tfx import sequence
    size = len(genome[chrom])
    out = np.zeros((end - start, 4), np.float32)
    lo, hi = max(start, 0), min(end, size)
    if lo < hi:
        out[lo - start:hi - start] = sequence.one_hot(genome[chrom][lo:hi])
    return out


def control_bigwigs(info, config, pos: str | None = None,
                    neg: str | None = None) -> list[tuple[str, str]] | None:
    """Per task, the (plus, minus) control bigWigs a model with control tracks needs.

    Given paths apply to every task; otherwise each task's files from the records' metadata.

    Raises:
      PredictError: the model needs controls and they are neither given nor recorded.
    """
    if not config.use_control:
        return None
    tasks = info.source.get('tasks') or [{}] * config.num_tasks
    pairs = [(pos or t.get('control_pos_bigwig'), neg or t.get('control_neg_bigwig'))
             for t in tasks[:config.num_tasks]]
    if len(pairs) != config.num_tasks or not all(all(p) for p in pairs):
        raise PredictError('this model was trained with control tracks: give '
                           '--control_pos_bigwig and --control_neg_bigwig')
    return pairs


def read_tracks(pairs: list[tuple[str, str]], chrom: str, start: int,
                end: int) -> np.ndarray:
    """(end - start, len(pairs), 2) float32 counts from (plus, minus) bigWig pairs."""
    import pyBigWig
    out = np.zeros((end - start, len(pairs), 2), np.float32)
    for t, pair in enumerate(pairs):
        for s, path in enumerate(pair):
            try:
                bw = pyBigWig.open(path)
            except (RuntimeError, OSError):
                bw = None
            if bw is None:
                raise PredictError(f'{path}: cannot open bigWig')
            try:
                if chrom not in bw.chroms():
                    raise PredictError(f'{path}: chromosome {chrom!r} not in the bigWig')
                out[:, t, s] = np.nan_to_num(bw.values(chrom, start, end, numpy=True))
            finally:
                bw.close()
    return out


# One region: plot and TSV.

def _observed_bigwigs(info, config, pos: str | None,
                      neg: str | None) -> list[tuple[str, ...] | None]:
    """Per task, the observed bigWigs to plot: (plus, minus), or (plus[, minus]) to be summed
    for an unstranded model; None where a task has none (it is plotted without).

    Given paths are comma-separated lists, one file per task (for a single-task model, the
    whole value is the one path, commas included); otherwise each task's files from the
    records' metadata.

    Raises:
      PredictError: a given list names another number of files than the model has tasks.
    """
    n = config.num_tasks
    given = []
    for flag, value in (('pos_bigwig', pos), ('neg_bigwig', neg)):
        paths = ([value] if n == 1 else value.split(',')) if value else [None] * n
        if len(paths) != n:
            raise PredictError(f'--{flag} names {len(paths)} files but the model has {n} '
                               f'tasks ({", ".join(info.tasks)}): give one per task, '
                               'comma-separated, in that order')
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
    return pairs


def _read_observed(paths: tuple[str, ...], num_strands: int, chrom: str, start: int,
                   end: int) -> np.ndarray:
    """(end - start, strands) observed counts; one strand sums the given bigWigs."""
    track = read_tracks([paths], chrom, start, end)[:, 0, :len(paths)]
    return track.sum(axis=-1, keepdims=True) if num_strands == 1 else track


def _strand_label(name: str, index: int) -> str:
    return {'+': 'plus', '-': 'minus'}.get(name) or re.sub(r'\W', '', name) or f'strand{index}'


def predict_region(saved_model: str, region: str, *, fasta: str | None = None,
                   pos_bigwig: str | None = None, neg_bigwig: str | None = None,
                   control_pos_bigwig: str | None = None,
                   control_neg_bigwig: str | None = None,
                   output_png: str, output_tsv: str | None = None) -> dict[str, Any]:
    """Predicts `region`, writes the plot and TSV, and returns a summary dict.

    A region of the model's output length O is one window. A shorter one is replaced by the
    window centred on it; a longer one is tiled (`tile_windows`), the per-base predicted counts
    of overlapping windows averaged. A model whose input is wider than its output sees each
    window's input reaching (L - O) / 2 bp further on each side (N past a chromosome end).
    The plotted and tabulated `pred_prob_*` are each task's and strand's predicted counts as a
    fraction of the plotted span's (the model's softmax for one window), against the observed
    counts as fractions of the span's observed counts. The plot has one row per task, both
    strands in it (plus up, minus down; an unstranded model's one strand up). Predictions are
    the forward strand's (no reverse-complement averaging).

    Observed tracks: `pos_bigwig`/`neg_bigwig` (comma-separated, one per task), by default
    each task's files from the records' metadata; a task without both is plotted without
    them. An unstranded model is compared with the sum of the given strands.

    Returns:
      {'region', 'mode' ('window', 'centred' or 'tiled'), 'windows' (their 'chrom:start-end'),
       'png', 'tsv', 'tasks', 'strands', 'predicted_counts' (per task, per strand, over the
       span), 'observed_counts' (per task, per strand, or None for a task without observed
       tracks; None if no task has any), 'note'}. TSV columns: chrom, start and per task and
       strand pred_prob_<strand>, pred_counts_<strand>, obs_counts_<strand> (strand 'plus',
       'minus'; with several tasks prefixed '<task>.').

    Raises:
      PredictError: bad region, files or model; schema.SchemaError: unreadable export.
    """
    model = _Model(saved_model)
    info, config = model.info, model.config
    fasta = fasta or info.source.get('fasta')
    if not fasta:
        raise PredictError('--fasta is needed: the model\'s metadata names no FASTA')
    observed_paths = _observed_bigwigs(info, config, pos_bigwig, neg_bigwig)
    controls = control_bigwigs(info, config, control_pos_bigwig, control_neg_bigwig)
    chrom, start, end = parse_region(region)
    length, input_length = config.output_length, config.sequence_length
    offset = (input_length - length) // 2
    mode, note = 'window', ''
    if end - start < length:
        note = f'region is {end - start} bp, shorter than the model\'s {length} bp: '
        start, end = centred_window(start, end, length)
        mode = 'centred'
        note += f'predicting the centred window {chrom}:{start}-{end}'
    starts = [start] if end - start == length else tile_windows(start, end, length)
    if len(starts) > 1:
        mode = 'tiled'
        note = (f'region is {end - start} bp, longer than the model\'s {length} bp: tiled with '
                f'{len(starts)} windows of {length} bp (overlaps averaged)')
    if note:
        logging.info(note)
        print(f'predict: {note}')
    with _open_fasta(fasta) as genome:
        _check_interval(genome, fasta, chrom, start, end, '')
        one_hot = padded_one_hot(genome, chrom, start - offset, end + offset)
    observed = [None if paths is None else
                _read_observed(paths, config.num_strands, chrom, start, end)
                for paths in observed_paths]
    control = None
    if controls:
        track = read_tracks(controls, chrom, start, end)
        control = np.stack([track[w - start:w - start + length] for w in starts])
    out = model(np.stack([one_hot[w - start:w - start + input_length] for w in starts]),
                control)
    window_probs, window_counts = out['profile_probs'], out['counts']  # (W, O, T, S), (W, T, S)
    pred = stitch(window_probs * window_counts[:, None], starts, start, end)  # (span, T, S)
    counts = pred.sum(axis=0)
    # Fractions of the span's predicted counts; counts clipped at a tiny positive weight, as an
    # untrained model may predict log_counts < 0. For one window this is the softmax itself.
    weighted = stitch(window_probs * np.maximum(window_counts, 1e-6)[:, None], starts, start,
                      end)
    probs = weighted / weighted.sum(axis=0)
    positions = np.arange(start, end)
    strands = info.strands
    title = f'{chrom}:{start:,}-{end:,}'
    if mode == 'tiled':
        title += f' ({len(starts)} windows of {length} bp)'
    row_titles = []
    for t, task in enumerate(info.tasks):
        row = '' if config.num_tasks == 1 else f'{task}:  '
        row += 'predicted counts ' + ', '.join(f'{s}: {c:.0f}' for s, c in
                                              zip(strands, counts[t]))
        if observed[t] is not None:
            row += '  observed ' + ', '.join(f'{s}: {c:.0f}' for s, c in
                                             zip(strands, observed[t].sum(axis=0)))
        row_titles.append(row)
    plots.plot_profiles(output_png, title, positions, probs, observed, tasks=info.tasks,
                        strands=strands, row_titles=row_titles,
                        span='region' if mode == 'tiled' else 'window',
                        boundaries=starts[1:] if mode == 'tiled' else ())
    output_tsv = output_tsv or os.path.splitext(output_png)[0] + '.tsv'
    columns: dict[str, Any] = {'chrom': [chrom] * len(positions), 'start': positions}
    for t, task in enumerate(info.tasks):
        prefix = '' if config.num_tasks == 1 else f'{task}.'
        for kind, values in (('pred_prob', probs[:, t]), ('pred_counts', pred[:, t]),
                             ('obs_counts', observed[t])):
            if values is not None:
                for s, strand in enumerate(strands):
                    columns[f'{prefix}{kind}_{_strand_label(strand, s)}'] = values[:, s]
    import pandas as pd
    pd.DataFrame(columns).to_csv(output_tsv, sep='\t', index=False, float_format='%.6g')
    has_observed = any(o is not None for o in observed)
    return {'region': f'{chrom}:{start}-{end}', 'mode': mode,
            'windows': [f'{chrom}:{w}-{w + length}' for w in starts],
            'png': output_png, 'tsv': output_tsv, 'tasks': list(info.tasks),
            'strands': list(strands), 'predicted_counts': counts.tolist(), 'note': note,
            'observed_counts': [None if o is None else o.sum(axis=0).tolist()
                                for o in observed] if has_observed else None}


# Many regions: bigWig tracks.

def read_bed(path: str) -> Iterator[tuple[int, str, int, int]]:
    """Yields (line number, chrom, start, end) of a BED file (plain or gzipped).

    Blank, '#', 'track' and 'browser' lines are skipped; extra columns are ignored.

    Raises:
      PredictError: an unreadable file, or a line without chrom, start < end, as
        'file:line: ...'.
    """
    opener = gzip.open if path.endswith('.gz') else open
    try:
        f = opener(path, 'rt')
    except OSError as e:
        raise PredictError(f'{path}: cannot open BED: {e.strerror or e}') from None
    with f:
        try:
            for number, line in enumerate(f, 1):
                if not line.strip() or line.startswith(('#', 'track', 'browser')):
                    continue
                cols = line.rstrip('\r\n').split('\t')
                if len(cols) < 3:
                    cols = line.split()
                try:
                    chrom, start, end = cols[0], int(cols[1]), int(cols[2])
                except (IndexError, ValueError):
                    raise PredictError(f'{path}:{number}: malformed BED line {line.strip()!r}; '
                                       'expected chrom, start, end') from None
                if not chrom or start < 0 or start >= end:
                    raise PredictError(f'{path}:{number}: malformed BED line {line.strip()!r}; '
                                       'needs 0 <= start < end')
                yield number, chrom, start, end
        except (OSError, UnicodeDecodeError, EOFError) as e:
            raise PredictError(f'{path}: cannot read BED: {e}') from None


def merge_regions(intervals: list[tuple[str, int, int]],
                  chrom_order: list[str]) -> list[tuple[str, int, int]]:
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


def _file_label(name: str) -> str:
    return re.sub(r'[^\w.-]', '_', name)


def track_paths(output_prefix: str, tasks: tuple[str, ...],
                strands: tuple[str, ...]) -> dict[tuple[str, str], str]:
    """{(task, strand): '<prefix>.<task>.<pos|neg>.bw'} of the tracks `predict_tracks` writes.

    Strands '+' and '-' are named 'pos' and 'neg', like the observed bigWig flags.
    """
    labels = {'+': 'pos', '-': 'neg'}
    return {(task, strand): f'{output_prefix}.{_file_label(task)}.'
                            f'{labels.get(strand) or _file_label(strand)}.bw'
            for task in tasks for strand in strands}


def predict_tracks(saved_model: str, regions_bed: str, *, fasta: str | None = None,
                   output_prefix: str, batch_size: int = 64,
                   reverse_complement: bool = True, control_pos_bigwig: str | None = None,
                   control_neg_bigwig: str | None = None) -> dict[str, Any]:
    """Writes bigWig tracks of predicted counts per task and strand over the BED's regions.

    Each track holds, at every base of the merged regions (see the module docstring), the
    predicted counts: profile probabilities x predicted total counts, averaged over the forward
    and reverse-complement predictions and over overlapping windows. The header lists every
    FASTA chromosome with its size, in FASTA order; entries are sorted the same way. Also
    writes '<prefix>.regions.bed', the merged regions predicted. Windows of the model's output
    length tile the regions; for a model whose input is wider than its output, each window's
    input extends beyond it on both sides (N past a chromosome end).

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
      PredictError: bad BED line (file:line), region or files; schema.SchemaError: unreadable
        export.
    """
    import pyBigWig

    model = _Model(saved_model)
    info, config = model.info, model.config
    controls = control_bigwigs(info, config, control_pos_bigwig, control_neg_bigwig)
    # Outputs tile the regions; each window's input reaches `offset` bp further on each side
    # (N past chromosome ends) when the model's input is wider than its output.
    length, input_length = config.output_length, config.sequence_length
    offset = (input_length - length) // 2
    fasta = fasta or info.source.get('fasta')
    if not fasta:
        raise PredictError('--fasta is needed: the model\'s metadata names no FASTA')
    with _open_fasta(fasta) as genome:
        sizes = {name: len(genome[name]) for name in genome.keys()}
        windows = []
        for number, chrom, start, end in read_bed(regions_bed):
            where = f'{regions_bed}:{number}: '
            _check_interval(genome, fasta, chrom, start, end, where)
            if sizes[chrom] < length:
                raise PredictError(f'{where}{chrom} is {sizes[chrom]:,} bp, shorter than the '
                                   f'model\'s {length}-bp window')
            if end - start < length:
                start, end = centred_window(start, end, length)
                shift = max(0, -start) - max(0, end - sizes[chrom])
                start, end = start + shift, end + shift
            windows.append((chrom, start, end))
        if not windows:
            raise PredictError(f'{regions_bed}: no regions')
        merged = merge_regions(windows, list(sizes))
        jobs = [(k, w) for k, (_, s, e) in enumerate(merged) for w in tile_windows(s, e, length)]
        os.makedirs(os.path.dirname(os.path.abspath(output_prefix)), exist_ok=True)
        paths = track_paths(output_prefix, info.tasks, info.strands)
        tracks = {key: pyBigWig.open(path, 'w') for key, path in paths.items()}
        try:
            for bw in tracks.values():
                bw.addHeader(list(sizes.items()))
            pending: dict[int, list] = {}  # merged index -> [one_hot, summed counts, coverage]
            left = np.bincount([k for k, _ in jobs], minlength=len(merged))
            written = 0
            progress = _Progress('predict', 'windows', len(jobs))
            for b in range(0, len(jobs), batch_size):
                batch = jobs[b:b + batch_size]
                for k, _ in batch:
                    if k not in pending:
                        chrom, s, e = merged[k]
                        pending[k] = [padded_one_hot(genome, chrom, s - offset, e + offset),
                                      np.zeros((e - s, info.num_tasks, info.num_strands)),
                                      np.zeros(e - s),
                                      read_tracks(controls, chrom, s, e) if controls else None]
                x = np.stack([pending[k][0][w - merged[k][1]:w - merged[k][1] + input_length]
                              for k, w in batch])
                control = None
                if controls:
                    control = np.stack([
                        pending[k][3][w - merged[k][1]:w - merged[k][1] + length]
                        for k, w in batch])
                pred = model.predicted_counts(x, control, reverse_complement=reverse_complement)
                for (k, w), p in zip(batch, pred):
                    offset = w - merged[k][1]
                    pending[k][1][offset:offset + length] += p
                    pending[k][2][offset:offset + length] += 1
                    left[k] -= 1
                while written < len(merged) and left[written] == 0:
                    _, sums, cover, _ = pending.pop(written)
                    values = sums / cover[:, None, None]
                    chrom, s, _ = merged[written]
                    for t, task in enumerate(info.tasks):
                        for st, strand in enumerate(info.strands):
                            tracks[task, strand].addEntries(
                                chrom, s, values=values[:, t, st].astype(np.float64).tolist(),
                                span=1, step=1)
                    written += 1
                progress.update(b + len(batch), final=b + len(batch) == len(jobs))
        finally:
            for bw in tracks.values():
                bw.close()
    regions_out = f'{output_prefix}.regions.bed'
    with open(regions_out, 'w') as f:
        f.writelines(f'{c}\t{s}\t{e}\n' for c, s, e in merged)
    return {'tracks': {f'{task} {strand}': path for (task, strand), path in paths.items()},
            'regions_bed': regions_out, 'bed_regions': len(windows),
            'merged_regions': len(merged), 'windows': len(jobs),
            'bases': int(sum(e - s for _, s, e in merged))}
