"""What `train` does with a model folder that already holds a run: nothing, resume, or refuse.

A run's settings are its train_config.json. `finished_run` says whether the run is done for
the --epochs asked (its summary and export are there and no epoch is left, or it stopped
early); `differences` names the settings of a rerun that would change the trained weights, so
a resume can be refused; `clear_run` removes a run for --overwrite (start afresh). The main
calls these before anything trains.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any

from bpnet_tfx.training.config import TrainError

CONFIG_FILENAME = 'train_config.json'
SUMMARY_FILENAME = 'train_summary.json'
# What a run writes into its model folder besides the export (removed by --overwrite).
RUN_FILES = ('checkpoints', 'logs', 'history.csv', SUMMARY_FILENAME, CONFIG_FILENAME)
# Settings a resumed run may change: they leave the weights as they are. --epochs says how
# far to go; the export's place, checkpoint frequency, measurement and caching do not touch the
# weights; outputs do not depend on the devices (strategy, replicas, XLA); a run stopped by a
# corrupt shard resumes with --skip_corrupt_records.
FREE_ON_RESUME = frozenset(
    {
        'epochs',
        'export_dir',
        'model_dir',
        'checkpoint_every_steps',
        'input_benchmark_batches',
        'cache',
        'skip_corrupt_records',
        'strategy',
        'cpu_replicas',
        'jit_compile',
    }
)
# ModelConfig fields that come from the records' metadata.json rather than from a flag.
_FROM_RECORDS = frozenset(
    {'sequence_length', 'output_length', 'num_tasks', 'num_strands', 'num_channels', 'use_control'}
)


def saved_config(model_dir: str) -> dict[str, Any] | None:
    """The settings of the run in `model_dir` (its train_config.json), or None."""
    path = os.path.join(model_dir, CONFIG_FILENAME)
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise TrainError(
            f'{path}: cannot read: {e}; use a new --model_dir or pass --overwrite'
        ) from None


def differences(saved: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """'--learning_rate 0.001 -> 0.002' for each setting of `wanted` (TrainConfig.to_dict())
    that changes the weights and differs from `saved`; settings `saved` lacks are not compared.
    """
    wanted = json.loads(json.dumps(wanted))  # tuples as the saved lists
    found = []
    for key in sorted(set(saved) & set(wanted) - FREE_ON_RESUME - {'model'}):
        old, new = saved[key], wanted[key]
        if key == 'records_dir':
            old, new = os.path.abspath(old), os.path.abspath(new)
        if old != new:
            found.append(f'--{key} {old} -> {new}')
    model_old, model_new = saved.get('model') or {}, wanted.get('model') or {}
    for key in sorted(set(model_old) & set(model_new)):
        if model_old[key] != model_new[key]:
            name = f'{key} (from the records)' if key in _FROM_RECORDS else f'--{key}'
            found.append(f'{name} {model_old[key]} -> {model_new[key]}')
    return found


def check_resumable(model_dir: str, wanted: dict[str, Any]) -> None:
    """Raises TrainError when `model_dir` holds a run whose settings differ from `wanted` in
    what changes the weights."""
    saved = saved_config(model_dir)
    if saved is None:
        return
    found = differences(saved, wanted)
    if found:
        raise TrainError(
            f'{model_dir} holds a run with other settings ({CONFIG_FILENAME}): '
            f'{", ".join(found)}; rerun with its settings to resume it, pass --overwrite to '
            'replace it, or use a new --model_dir'
        )


def finished_run(model_dir: str, epochs: int) -> dict[str, Any] | None:
    """The summary of the run in `model_dir` when nothing is left to do for `epochs`: it wrote
    its summary and export, and did `epochs` epochs or more, or stopped early. Else None."""
    path = os.path.join(model_dir, SUMMARY_FILENAME)
    try:
        with open(path) as f:
            summary = json.load(f)
    except (OSError, json.JSONDecodeError):
        return None
    export_dir = summary.get('export_dir') or ''
    if not os.path.exists(os.path.join(export_dir, 'saved_model.pb')):
        return None
    if summary.get('stopped_early') or summary.get('epochs', 0) >= epochs:
        return summary
    return None


def finished_line(model_dir: str, summary: dict[str, Any]) -> str:
    """What `train` prints instead of training when `finished_run` found the run done."""
    done = summary['epochs']
    if summary.get('stopped_early'):
        how = f'stopped early after {done} epochs'
        more = '--overwrite trains it again from the start'
    else:
        how = f'{done} epochs'
        more = f'--epochs above {done} trains on, --overwrite trains it again from the start'
    return (
        f'train: {model_dir} holds a finished run ({how}) -> {summary["export_dir"]}; '
        f'nothing to do ({more})'
    )


def clear_run(model_dir: str) -> None:
    """Removes the run in `model_dir` (its RUN_FILES) so that training starts afresh; other
    files stay, and so does the export until the new run's replaces it."""
    for name in RUN_FILES:
        path = os.path.join(model_dir, name)
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.remove(path)
