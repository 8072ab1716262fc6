"""Evaluation of an exported SavedModel over one split of a records folder.

Metrics are pure functions of all the split's windows (`metrics.py`), pooled in record order;
they do not depend on the batch size. Background records are left out. The thin main
`evaluate.py` turns flags into a call of `evaluate()` and prints `format_table()`.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from bpnet_tfx import metrics, progress, schema
from bpnet_tfx.errors import BpnetError

AUPRC_SHUFFLE_SEED = 20210101  # fixed: the shuffled-prediction auPRC baseline is reproducible


class EvaluateError(BpnetError):
    """Incompatible model and records, or an empty split, reported in one line."""


def _profile_metrics(nll, uniform, oracle, jsd, true_log_counts, pred_log_counts):
    out = {
        'profile_nll': float(np.mean(nll)),
        'uniform_profile_nll': float(np.mean(uniform)),
        'profile_jsd': float(np.nanmean(jsd)) if np.isfinite(jsd).any() else float('nan'),
        'count_pearson': metrics.pearson(np.ravel(true_log_counts), np.ravel(pred_log_counts)),
        'count_spearman': metrics.spearman(np.ravel(true_log_counts), np.ravel(pred_log_counts)),
        'n_examples': int(np.shape(nll)[0]),
    }
    if oracle is not None:
        out['oracle_profile_nll'] = float(np.mean(oracle))
    return out


def _auprc_metrics(pools: list[tuple[list, list, list]]) -> dict[str, float]:
    """auPRC of the labelled positions pooled over `pools` (one per task and strand)."""
    labels, scores, shuffled = (
        np.concatenate([a for pool in pools for a in pool[i]] or [np.zeros(0)]) for i in range(3)
    )
    return {
        'profile_auprc': metrics.average_precision(labels, scores),
        'profile_auprc_shuffled': metrics.average_precision(labels, shuffled),
    }


def check_model_fits_records(
    model, info: schema.RecordsInfo, records_dir: str, *, allow_task_mismatch: bool = False
) -> None:
    """Raises EvaluateError where the model cannot be evaluated on the records as they are.

    Args:
      model: an `export.ExportedModel`.
      info: the records' metadata.
      records_dir: the records folder, for messages.
      allow_task_mismatch: evaluate even when the records' task names differ from the
        model's (tasks are then matched by position).
    """
    config, path = model.config, model.path
    if config.use_control and not info.has_control:
        raise EvaluateError(
            f'{path} was trained with control tracks but {records_dir} '
            'holds none; make the records with the same control bigWigs'
        )
    if (info.sequence_length, info.output_length) != (config.sequence_length, config.output_length):
        raise EvaluateError(
            f'{path} maps {config.sequence_length}-bp windows to '
            f'{config.output_length}-bp profiles but {records_dir} holds '
            f'{info.sequence_length}-bp windows with {info.output_length}-bp '
            'counts'
        )
    if (info.num_tasks, info.num_strands) != (config.num_tasks, config.num_strands):
        raise EvaluateError(
            f'{path} predicts {config.num_tasks} task(s) x '
            f'{config.num_strands} strand(s); {records_dir} holds '
            f'{info.num_tasks} x {info.num_strands}'
        )
    if tuple(model.info.tasks) != tuple(info.tasks) and not allow_task_mismatch:
        raise EvaluateError(
            f'{path} was trained on tasks {", ".join(model.info.tasks)} but '
            f'{records_dir} holds {", ".join(info.tasks)}; pass '
            '--allow_task_mismatch to evaluate them in that order anyway'
        )


class _Pools:
    """Per-window metric parts and, per (task, strand), the labelled positions for auPRC."""

    def __init__(self, info: schema.RecordsInfo):
        self.parts: dict[str, list[np.ndarray]] = {
            k: [] for k in ('nll', 'uniform', 'oracle', 'jsd', 'true', 'pred')
        }
        self.auprc = {
            (t, s): ([], [], []) for t in range(info.num_tasks) for s in range(info.num_strands)
        }
        self.uniform_lp = metrics.uniform_log_probs(info.output_length)
        self.done = 0

    def add(self, batch: dict[str, np.ndarray], out: dict[str, np.ndarray]) -> None:
        """Adds a batch of peak windows and the model's outputs on them."""
        counts, probs = batch['profile'], out['profile_probs']
        parts = self.parts
        parts['nll'].append(
            metrics.multinomial_nll(counts, metrics.log_softmax(out['profile_logits']))
        )
        parts['uniform'].append(metrics.multinomial_nll(counts, self.uniform_lp[..., None, None]))
        if 'expected' in batch:
            parts['oracle'].append(
                metrics.multinomial_nll(counts, metrics.expected_log_probs(batch['expected']))
            )
        parts['jsd'].append(metrics.jensen_shannon_distance(counts, probs))
        parts['true'].append(np.log1p(counts.sum(axis=1)))
        parts['pred'].append(out['log_counts'])
        labels = metrics.auprc_labels(counts)
        # Seeded by the window's index in the split: the baseline is batch-size independent.
        shuffled = metrics.shuffle_positions(probs, seed=AUPRC_SHUFFLE_SEED, first_index=self.done)
        for (t, s), (pool_labels, pool_scores, pool_shuffled) in self.auprc.items():
            keep = labels[:, :, t, s] >= 0
            pool_labels.append(labels[:, :, t, s][keep])
            pool_scores.append(probs[:, :, t, s][keep])
            pool_shuffled.append(shuffled[:, :, t, s][keep])
        self.done += len(counts)

    def arrays(self) -> dict[str, np.ndarray | None]:
        return {k: np.concatenate(v) if v else None for k, v in self.parts.items()}


def _peak_batches(
    records_dir: str, info: schema.RecordsInfo, split: str, batch_size: int, counter: dict[str, int]
):
    """Yields the split's batches as numpy with background records removed (counted in
    `counter['background']`)."""
    from bpnet_tfx import data

    for batch in data.make_eval_dataset(records_dir, info, split, batch_size=batch_size):
        batch = {k: v.numpy() for k, v in batch.items()}
        if 'is_background' in batch:  # Metrics are over peaks; background is counted apart.
            peak = batch['is_background'] == 0
            counter['background'] += int((~peak).sum())
            if not peak.any():
                continue
            batch = {k: v[peak] for k, v in batch.items()}
        yield batch


def evaluate(
    saved_model: str,
    records_dir: str,
    split: str,
    *,
    batch_size: int = 256,
    progress_every: int = 50,
    allow_task_mismatch: bool = False,
) -> dict[str, Any]:
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
      allow_task_mismatch: see `check_model_fits_records`.

    Raises:
      EvaluateError: the model does not fit the records, or the split is empty.
      schema.SchemaError: unreadable metadata, SavedModel or shards, or no such split.
    """
    from bpnet_tfx import export

    if batch_size < 1:
        raise EvaluateError(f'--batch_size must be >= 1, got {batch_size}')
    model = export.ExportedModel(saved_model)
    info = schema.RecordsInfo.load(records_dir)
    check_model_fits_records(model, info, records_dir, allow_task_mismatch=allow_task_mismatch)
    pools = _Pools(info)
    counter = {'background': 0}
    report = progress.Progress(
        'evaluate',
        'examples',
        info.split_counts.get(split),
        every=max(1, progress_every) * batch_size,
    )
    for batch in _peak_batches(records_dir, info, split, batch_size, counter):
        pools.add(batch, model(batch['one_hot'], batch.get('control')))
        report.update(pools.done)
    if not pools.done:
        raise EvaluateError(
            f'{records_dir}: the {split} split holds no '
            + ('peak records' if counter['background'] else 'records')
        )
    report.update(pools.done, final=True)
    result: dict[str, Any] = {
        'saved_model': os.path.abspath(saved_model),
        'records_dir': os.path.abspath(records_dir),
        'split': split,
        'background_skipped': counter['background'],
    }
    result.update(_summarise(pools, info))
    return result


def _summarise(pools: _Pools, info: schema.RecordsInfo) -> dict[str, Any]:
    """{'overall': metrics, 'tasks': {task: metrics + 'strands': {strand: metrics}}}."""
    arr = pools.arrays()

    def _summed(x):  # per example, summed over tasks and strands as in the training loss
        return None if x is None else x.reshape(len(x), -1).sum(axis=1)

    overall = _profile_metrics(
        _summed(arr['nll']),
        _summed(arr['uniform']),
        _summed(arr['oracle']),
        arr['jsd'],
        arr['true'],
        arr['pred'],
    )
    overall.update(_auprc_metrics(list(pools.auprc.values())))
    tasks = {}
    oracle = arr['oracle']
    for t, task in enumerate(info.tasks):
        sl = (slice(None), t)
        task_out = _profile_metrics(
            arr['nll'][sl].sum(-1),
            arr['uniform'][sl].sum(-1),
            None if oracle is None else oracle[sl].sum(-1),
            arr['jsd'][sl],
            arr['true'][sl],
            arr['pred'][sl],
        )
        task_out.update(_auprc_metrics([pools.auprc[t, s] for s in range(info.num_strands)]))
        task_out['strands'] = {}
        for s, strand in enumerate(info.strands):
            strand_out = _profile_metrics(
                arr['nll'][:, t, s],
                arr['uniform'][:, t, s],
                None if oracle is None else oracle[:, t, s],
                arr['jsd'][:, t, s],
                arr['true'][:, t, s],
                arr['pred'][:, t, s],
            )
            strand_out.update(_auprc_metrics([pools.auprc[t, s]]))
            task_out['strands'][strand] = strand_out
        tasks[task] = task_out
    return {'overall': overall, 'tasks': tasks}


def format_table(result: dict[str, Any]) -> str:
    """A readable table of the overall and per-strand numbers."""
    keys = (
        'profile_nll',
        'oracle_profile_nll',
        'uniform_profile_nll',
        'profile_jsd',
        'profile_auprc',
        'profile_auprc_shuffled',
        'count_pearson',
        'count_spearman',
        'n_examples',
    )
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
            cells.append(
                f'{"-":>{width}s}'
                if v is None
                else f'{v:>{width}d}'
                if isinstance(v, int)
                else f'{v:>{width}.3f}'
            )
        lines.append(f'{name:{name_width}s}' + ''.join(cells))
    return '\n'.join(lines)
