"""Evaluates an exported BPNet SavedModel on one split of a records folder.

    python -m bpnet_tfx.evaluate --saved_model=DIR --records_dir=DIR --split=valid \
        --output_json=FILE

Reports, overall and per task and strand: profile_nll (the training loss's multinomial NLL),
uniform_profile_nll (a flat profile), oracle_profile_nll (the simulator's noise-free profile,
when the records carry it: the floor no model can beat), profile_jsd, count_pearson and
count_spearman on log(1 + total counts), and n_examples. 'Overall' profile NLLs are per example
summed over tasks and strands, exactly as the training loss sums them.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import numpy as np
from absl import app, flags, logging

from bpnet_tfx import metrics

_SAVED_MODEL = flags.DEFINE_string('saved_model', None, 'SavedModel folder written by train.')
_RECORDS_DIR = flags.DEFINE_string('records_dir', None, 'Records folder to evaluate on.')
_SPLIT = flags.DEFINE_string('split', 'valid', 'Split to evaluate: train, valid or test.')
_OUTPUT_JSON = flags.DEFINE_string('output_json', None,
                                   'Where to write the metrics; default: print only.')
_BATCH_SIZE = flags.DEFINE_integer('batch_size', 256, 'Examples per prediction batch.')


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


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
    from bpnet_tfx import schema
    start = time.perf_counter()
    try:
        result = evaluate(_SAVED_MODEL.value, _RECORDS_DIR.value, _SPLIT.value,
                          batch_size=_BATCH_SIZE.value)
    except (EvaluateError, schema.SchemaError) as e:
        print(f'evaluate: error: {e}', file=sys.stderr)
        sys.exit(2)
    except OSError as e:
        print(f'evaluate: error: cannot load {_SAVED_MODEL.value}: {e}', file=sys.stderr)
        sys.exit(2)
    print(format_table(result))
    if _OUTPUT_JSON.value:
        os.makedirs(os.path.dirname(os.path.abspath(_OUTPUT_JSON.value)), exist_ok=True)
        with open(_OUTPUT_JSON.value, 'w') as f:
            json.dump(result, f, indent=2, sort_keys=True)
            f.write('\n')
    logging.info('evaluated %d examples in %.1f s', result['overall']['n_examples'],
                 time.perf_counter() - start)
    print(f"evaluate: {result['overall']['n_examples']} {result['split']} examples, "
          f"{time.perf_counter() - start:.1f} s"
          + (f' -> {_OUTPUT_JSON.value}' if _OUTPUT_JSON.value else ''))


if __name__ == '__main__':
    flags.mark_flags_as_required(['saved_model', 'records_dir'])
    app.run(main)
