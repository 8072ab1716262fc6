"""Evaluation of an exported SavedModel over one split of a records folder.

Metrics are pure functions of all the split's windows (`metrics.py`), pooled in record order;
they do not depend on the batch size. Background records are left out. The thin main
`evaluate.py` turns flags into a call of `evaluate()` and prints `format_table()`.

On records made from the simulator (`simulator.py`), whose metadata names expected bigWigs with
the sequence-determined tracks beside them, every window's log(1 + total) of those tracks over
its output window is correlated with the observed log counts: `sequence_count_pearson_bound`,
what a counts head that knew exactly what the sequence determines would score, next to
`count_pearson` as `oracle_profile_nll` sits next to `profile_nll`.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from bpnet_tfx.common import progress
from bpnet_tfx.common.errors import BpnetError
from bpnet_tfx.genome import bigwig, genome_io
from bpnet_tfx.inference import metrics
from bpnet_tfx.records import schema

AUPRC_SHUFFLE_SEED = 20210101  # fixed: the shuffled-prediction auPRC baseline is reproducible


class EvaluateError(BpnetError):
    """Incompatible model and records, or an empty split, reported in one line."""


def _profile_metrics(nll, uniform, oracle, jsd, true_log_counts, pred_log_counts, bound=None):
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
    if bound is not None:
        out['sequence_count_pearson_bound'] = metrics.pearson(
            np.ravel(true_log_counts), np.ravel(bound)
        )
    return out


class _SequenceTotals:
    """Per window, log(1 + total) of the simulator's sequence-determined tracks over its output
    window, per task and strand; `open` gives None for records without such tracks."""

    def __init__(self, pairs: list[tuple[str, str]], output_offset: int, output_length: int):
        self._handles = [[bigwig.open_bigwig(path) for path in pair] for pair in pairs]
        self._offset, self._length = output_offset, output_length

    @classmethod
    def open(cls, info: schema.RecordsInfo) -> '_SequenceTotals | None':
        from bpnet_tfx.simulate import simulator as simulate

        tasks = info.source.get('tasks') or []
        pairs = [
            simulate.sequence_bigwigs(t.get('expected_pos_bigwig'), t.get('expected_neg_bigwig'))
            for t in tasks
        ]
        if len(pairs) != info.num_tasks or None in pairs or info.num_strands != 2:
            return None
        return cls(pairs, info.output_offset, info.output_length)

    def log_totals(self, region_ids: np.ndarray) -> np.ndarray:
        """(batch, tasks, strands) float64 for windows 'chrom:start-end' (input windows)."""
        out = np.zeros((len(region_ids), len(self._handles), 2))
        for i, region_id in enumerate(region_ids):
            chrom, start, _ = genome_io.parse_region(
                region_id.decode() if isinstance(region_id, bytes) else region_id
            )
            start += self._offset
            for t, pair in enumerate(self._handles):
                for s, bw in enumerate(pair):
                    values = bw.values(chrom, start, start + self._length, numpy=True)
                    out[i, t, s] = np.nansum(values, dtype=np.float64)
        return np.log1p(out)

    def close(self) -> None:
        for bw in (bw for pair in self._handles for bw in pair):
            bw.close()


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

    def __init__(self, info: schema.RecordsInfo, sequence_totals: _SequenceTotals | None = None):
        self.parts: dict[str, list[np.ndarray]] = {
            k: [] for k in ('nll', 'uniform', 'oracle', 'jsd', 'true', 'pred', 'bound')
        }
        self.sequence_totals = sequence_totals
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
        if self.sequence_totals is not None:
            parts['bound'].append(self.sequence_totals.log_totals(batch['region_id']))
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
    from bpnet_tfx.records import dataset as data

    for batch in data.make_eval_dataset(records_dir, info, split, batch_size=batch_size):
        batch = {k: v.numpy() for k, v in batch.items()}
        if 'is_background' in batch:  # Metrics are over peaks; background is counted apart.
            peak = batch['is_background'] == 0
            counter['background'] += int((~peak).sum())
            if not peak.any():
                continue
            batch = {k: v[peak] for k, v in batch.items()}
        yield batch


def _pool_split(
    model, records_dir: str, info: schema.RecordsInfo, split: str, batch_size: int, every: int
) -> tuple[_Pools, dict[str, int]]:
    """Predicts every peak window of the split into the metric pools, with progress lines
    every `every` batches; returns the pools and {'background': records left out}."""
    pools = _Pools(info, _SequenceTotals.open(info))
    counter = {'background': 0}
    report = progress.Progress(
        'evaluate',
        'examples',
        info.split_counts.get(split),
        every=max(1, every) * batch_size,
    )
    try:
        for batch in _peak_batches(records_dir, info, split, batch_size, counter):
            pools.add(batch, model(batch['one_hot'], batch.get('control')))
            report.update(pools.done)
    finally:
        if pools.sequence_totals is not None:
            pools.sequence_totals.close()
    if not pools.done:
        raise EvaluateError(
            f'{records_dir}: the {split} split holds no '
            + ('peak records' if counter['background'] else 'records')
        )
    report.update(pools.done, final=True)
    return pools, counter


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
    profile_auprc, profile_auprc_shuffled, count_pearson, count_spearman,
    sequence_count_pearson_bound (simulated records whose sequence-determined tracks are on
    disk; see the module docstring), n_examples. Overall
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
    from bpnet_tfx.inference import export

    if batch_size < 1:
        raise EvaluateError(f'--batch_size must be >= 1, got {batch_size}')
    model = export.ExportedModel(saved_model)
    info = schema.RecordsInfo.load(records_dir)
    check_model_fits_records(model, info, records_dir, allow_task_mismatch=allow_task_mismatch)
    pools, counter = _pool_split(model, records_dir, info, split, batch_size, progress_every)
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
        arr['bound'],
    )
    overall.update(_auprc_metrics(list(pools.auprc.values())))
    tasks = {}
    oracle, bound = arr['oracle'], arr['bound']
    for t, task in enumerate(info.tasks):
        sl = (slice(None), t)
        task_out = _profile_metrics(
            arr['nll'][sl].sum(-1),
            arr['uniform'][sl].sum(-1),
            None if oracle is None else oracle[sl].sum(-1),
            arr['jsd'][sl],
            arr['true'][sl],
            arr['pred'][sl],
            None if bound is None else bound[sl],
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
                None if bound is None else bound[:, t, s],
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
        'sequence_count_pearson_bound',
        'count_spearman',
        'n_examples',
    )
    # Each column as wide as its heading (at least 9 characters for the numbers).
    widths = {k: max(len(k), 9) + 2 for k in keys}
    rows = [('overall', result['overall'])]
    for task, t in result['tasks'].items():
        rows += [(f'{task} {strand}', v) for strand, v in t['strands'].items()]
    name_width = max(14, *(len(name) + 2 for name, _ in rows))
    lines = [f"{'':{name_width}s}" + ''.join(f'{k:>{widths[k]}s}' for k in keys)]
    for name, values in rows:
        cells = []
        for k in keys:
            v, width = values.get(k), widths[k]
            cells.append(
                f'{"-":>{width}s}'
                if v is None
                else f'{v:>{width}d}'
                if isinstance(v, int)
                else f'{v:>{width}.3f}'
            )
        lines.append(f'{name:{name_width}s}' + ''.join(cells))
    if np.isnan(result['overall']['profile_auprc']):
        reads = metrics.AUPRC_MIN_POS_COUNTS / metrics.AUPRC_POS_MIN
        lines.append(
            "profile_auprc is nan: BPNet's rule labels no position positive (one holding "
            f'{metrics.AUPRC_POS_MIN} of the reads of a window with at least {reads:.1f}, mean '
            'over strands; docs/inference.md); the other metrics count every window.'
        )
    return '\n'.join(lines)
