"""Running an exported SavedModel: evaluation over records and prediction of genome regions.

Only TensorFlow, numpy and the genome readers are needed; nothing here parses flags. The thin
mains `evaluate.py` and `predict.py` turn flags into calls of `evaluate()` and
`predict_region()`.
"""

from __future__ import annotations

import os
import re
from typing import Any

import numpy as np
from absl import logging

from bpnet_tfx import metrics, plots


class EvaluateError(Exception):
    """Incompatible model and records, reported in one line."""


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


def evaluate(saved_model: str, records_dir: str, split: str, *,
             batch_size: int = 256) -> dict[str, Any]:
    """Runs the SavedModel over a split and returns the metrics dict (see module docstring)."""
    import tensorflow as tf

    from bpnet_tfx import data, export, schema

    _, config = export.load_export_info(saved_model)
    info = schema.RecordsInfo.load(records_dir)
    if info.sequence_length != config.sequence_length:
        raise EvaluateError(f'{saved_model} takes {config.sequence_length}-bp windows but '
                            f'{records_dir} holds {info.sequence_length}-bp windows')
    if (info.num_tasks, info.num_strands) != (config.num_tasks, config.num_strands):
        raise EvaluateError(f'{saved_model} predicts {config.num_tasks} task(s) x '
                            f'{config.num_strands} strand(s); {records_dir} holds '
                            f'{info.num_tasks} x {info.num_strands}')
    serve = tf.saved_model.load(saved_model).signatures[export.SIGNATURE]
    parts: dict[str, list[np.ndarray]] = {k: [] for k in
                                          ('nll', 'uniform', 'oracle', 'jsd', 'true', 'pred')}
    uniform_lp = metrics.uniform_log_probs(info.sequence_length)
    for batch in data.make_eval_dataset(records_dir, info, split, batch_size=batch_size):
        out = serve(one_hot=tf.cast(batch['one_hot'], tf.float32))
        logits = out['profile_logits'].numpy()
        log_counts = out['log_counts'].numpy()
        if config.num_tasks == 1:  # Model outputs drop the task axis; restore it.
            logits, log_counts = logits[:, :, None, :], log_counts[:, None, :]
        counts = batch['profile'].numpy()
        parts['nll'].append(metrics.multinomial_nll(counts, metrics.log_softmax(logits)))
        parts['uniform'].append(metrics.multinomial_nll(counts, uniform_lp[..., None, None]))
        if 'expected' in batch:
            parts['oracle'].append(metrics.multinomial_nll(
                counts, metrics.expected_log_probs(batch['expected'].numpy())))
        parts['jsd'].append(metrics.jensen_shannon_distance(
            counts, out['profile_probs'].numpy().reshape(counts.shape)))
        parts['true'].append(np.log1p(counts.sum(axis=1)))
        parts['pred'].append(log_counts)
    if not parts['nll']:
        raise EvaluateError(f'{records_dir}: the {split} split holds no records')
    arr = {k: np.concatenate(v) if v else None for k, v in parts.items()}

    def _summed(x):  # per example, summed over tasks and strands as in the training loss
        return None if x is None else x.reshape(len(x), -1).sum(axis=1)

    result: dict[str, Any] = {
        'saved_model': os.path.abspath(saved_model),
        'records_dir': os.path.abspath(records_dir),
        'split': split,
        'overall': _profile_metrics(_summed(arr['nll']), _summed(arr['uniform']),
                                    _summed(arr['oracle']), arr['jsd'], arr['true'],
                                    arr['pred']),
        'tasks': {},
    }
    for t, task in enumerate(info.tasks):
        sl = (slice(None), t)
        task_out = _profile_metrics(
            arr['nll'][sl].sum(-1), arr['uniform'][sl].sum(-1),
            None if arr['oracle'] is None else arr['oracle'][sl].sum(-1),
            arr['jsd'][sl], arr['true'][sl], arr['pred'][sl])
        task_out['strands'] = {}
        for s, strand in enumerate(info.strands):
            task_out['strands'][strand] = _profile_metrics(
                arr['nll'][:, t, s], arr['uniform'][:, t, s],
                None if arr['oracle'] is None else arr['oracle'][:, t, s],
                arr['jsd'][:, t, s], arr['true'][:, t, s], arr['pred'][:, t, s])
        result['tasks'][task] = task_out
    return result


def format_table(result: dict[str, Any]) -> str:
    """A readable table of the overall and per-strand numbers."""
    keys = ('profile_nll', 'oracle_profile_nll', 'uniform_profile_nll', 'profile_jsd',
            'count_pearson', 'count_spearman', 'n_examples')
    rows = [('overall', result['overall'])]
    for task, t in result['tasks'].items():
        rows += [(f'{task} {strand}', v) for strand, v in t['strands'].items()]
    header = f"{'':14s}" + ''.join(f'{k:>20s}' for k in keys)
    lines = [header]
    for name, values in rows:
        cells = []
        for k in keys:
            v = values.get(k)
            cells.append(f'{"-":>20s}' if v is None else
                         f'{v:>20d}' if isinstance(v, int) else f'{v:>20.3f}')
        lines.append(f'{name:14s}' + ''.join(cells))
    return '\n'.join(lines)


_REGION_RE = re.compile(r'^([^:\s]+):([\d,]+)-([\d,]+)$')


class PredictError(Exception):
    """Bad region or inputs, reported in one line."""


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


def read_window(fasta: str, bigwigs: tuple[str | None, str | None], chrom: str, start: int,
                end: int) -> tuple[np.ndarray, np.ndarray | None]:
    """One-hot sequence (L, 4) and observed counts (L, 2) or None, with one-line errors."""
    import pyBigWig
    import pyfaidx

    from bpnet_tfx import sequence
    try:
        genome = pyfaidx.Fasta(fasta, as_raw=True, sequence_always_upper=True)
    except (OSError, pyfaidx.FastaIndexingError) as e:
        raise PredictError(f'{fasta}: cannot open FASTA: {e}') from None
    with genome:
        if chrom not in genome:
            raise PredictError(f'{fasta}: chromosome {chrom!r} not in the FASTA (it has '
                               f'{", ".join(list(genome.keys())[:5])}, ...)')
        size = len(genome[chrom])
        if start < 0 or end > size:
            raise PredictError(f'region {chrom}:{start}-{end} runs past the end of {chrom} '
                               f'({size:,} bp)')
        one_hot = sequence.one_hot(genome[chrom][start:end])
    if not all(bigwigs):
        return one_hot, None
    tracks = []
    for path in bigwigs:
        try:
            bw = pyBigWig.open(path)
        except (RuntimeError, OSError):
            bw = None
        if bw is None:
            raise PredictError(f'{path}: cannot open bigWig')
        try:
            if chrom not in bw.chroms():
                raise PredictError(f'{path}: chromosome {chrom!r} not in the bigWig')
            tracks.append(np.nan_to_num(bw.values(chrom, start, end, numpy=True)))
        finally:
            bw.close()
    return one_hot, np.stack(tracks, axis=-1).astype(np.float32)


def predict_region(saved_model: str, region: str, *, fasta: str | None = None,
                   pos_bigwig: str | None = None, neg_bigwig: str | None = None,
                   output_png: str, output_tsv: str | None = None) -> dict[str, Any]:
    """Predicts `region`, writes the plot and TSV, and returns a summary dict."""
    import tensorflow as tf

    from bpnet_tfx import export

    info, config = export.load_export_info(saved_model)
    if config.num_tasks != 1 or config.num_strands != 2:
        raise PredictError(f'{saved_model}: plotting supports one task with two strands, this '
                           f'model has {config.num_tasks} x {config.num_strands}')
    fasta = fasta or info.source.get('fasta')
    pos_bigwig = pos_bigwig or info.source.get('pos_bigwig')
    neg_bigwig = neg_bigwig or info.source.get('neg_bigwig')
    if not fasta:
        raise PredictError('--fasta is needed: the model\'s metadata names no FASTA')
    chrom, start, end = parse_region(region)
    w_start, w_end = start, end
    note = ''
    if end - start != config.sequence_length:
        w_start, w_end = centred_window(start, end, config.sequence_length)
        note = (f'region is {end - start} bp, the model takes {config.sequence_length} bp: '
                f'predicting the centred window {chrom}:{w_start}-{w_end}')
        logging.info(note)
        print(f'predict: {note}')
    one_hot, observed = read_window(fasta, (pos_bigwig, neg_bigwig), chrom, w_start, w_end)
    serve = tf.saved_model.load(saved_model).signatures[export.SIGNATURE]
    out = serve(one_hot=tf.constant(one_hot[None].astype(np.float32)))
    probs = out['profile_probs'].numpy()[0]
    counts = out['counts'].numpy()[0]
    positions = np.arange(w_start, w_end)
    title = f'{chrom}:{w_start:,}-{w_end:,}  predicted counts +{counts[0]:.0f} / -{counts[1]:.0f}'
    if observed is not None:
        title += f'  observed +{observed[:, 0].sum():.0f} / -{observed[:, 1].sum():.0f}'
    plots.plot_profiles(output_png, title, positions, probs, observed)
    output_tsv = output_tsv or os.path.splitext(output_png)[0] + '.tsv'
    columns = {'chrom': [chrom] * len(positions), 'start': positions,
               'pred_prob_plus': probs[:, 0], 'pred_prob_minus': probs[:, 1],
               'pred_counts_plus': probs[:, 0] * counts[0],
               'pred_counts_minus': probs[:, 1] * counts[1]}
    if observed is not None:
        columns['obs_counts_plus'] = observed[:, 0]
        columns['obs_counts_minus'] = observed[:, 1]
    import pandas as pd
    pd.DataFrame(columns).to_csv(output_tsv, sep='\t', index=False, float_format='%.6g')
    return {'region': f'{chrom}:{w_start}-{w_end}', 'png': output_png, 'tsv': output_tsv,
            'predicted_counts': counts.tolist(), 'note': note,
            'observed_counts': None if observed is None else observed.sum(0).tolist()}


