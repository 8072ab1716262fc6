"""The resumable state of a training run in <model_dir>/checkpoints, and its best weights.

A `Checkpointer` saves the model, optimizer, epoch and step (every epoch, and every N steps
when asked), restores the latest save when a run restarts, and keeps the best epoch's record
(best.json: monitored loss, epoch, its history row, whether the run stopped early) and
weights (best.weights.h5). Under multi-worker training every worker saves, because saving may
involve collective ops, but only the chief writes the model folder: the others save into a
scratch folder that `close` removes.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from typing import Any

import keras
import tensorflow as tf


def replace_file(path: str, text: str) -> None:
    """Writes `text` to `path` through a temporary sibling and a rename, so that a reader
    (another worker, a resumed run) sees the old file or the new one, never a partial one."""
    tmp = f'{path}.tmp-{os.getpid()}'
    with open(tmp, 'w', newline='') as f:
        f.write(text)
    os.replace(tmp, path)


def checkpoint_dir(model_dir: str) -> str:
    """Where a run's checkpoints live: <model_dir>/checkpoints (the chief's, read by all)."""
    return os.path.join(model_dir, 'checkpoints')


class Checkpointer:
    """Checkpoints of one run; build it inside `strategy.scope()` (it owns the step counters).

    Attributes:
      epoch, step: int64 variables, epochs and optimizer steps done.
      best: {'val_loss', 'epoch'[, 'row', 'stopped_early']} of the best epoch so far.
    """

    def __init__(
        self,
        model_dir: str,
        model: keras.Model,
        optimizer: keras.optimizers.Optimizer,
        *,
        chief: bool = True,
        task_id: int = 0,
        max_to_keep: int = 2,
    ):
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name='epoch')
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name='step')
        self.best: dict[str, Any] = {'val_loss': math.inf, 'epoch': 0}
        self.dir = checkpoint_dir(model_dir)
        self.best_weights_path = os.path.join(self.dir, 'best.weights.h5')
        self._state_path = os.path.join(self.dir, 'best.json')
        self._model, self._chief = model, chief
        self._scratch = None if chief else os.path.join(model_dir, f'.worker-{task_id}-scratch')
        os.makedirs(self.dir, exist_ok=True)
        self._checkpoint = tf.train.Checkpoint(
            model=model, optimizer=optimizer, epoch=self.epoch, step=self.step
        )
        save_dir = os.path.join(self._scratch, 'checkpoints') if self._scratch else self.dir
        self._manager = tf.train.CheckpointManager(
            self._checkpoint, save_dir, max_to_keep=max_to_keep
        )

    @property
    def epochs_done(self) -> int:
        return int(self.epoch.numpy())

    @property
    def steps_done(self) -> int:
        return int(self.step.numpy())

    def restore(self) -> str | None:
        """Restores the chief's latest checkpoint and best record; returns its path, or None."""
        latest = tf.train.latest_checkpoint(self.dir)  # Every worker resumes from the chief's.
        if not latest:
            return None
        self._checkpoint.restore(latest).assert_existing_objects_matched()
        if os.path.exists(self._state_path):
            with open(self._state_path) as f:
                self.best = json.load(f)
        return latest

    def save(self) -> None:
        """Saves the state, numbered by the step."""
        self._manager.save(checkpoint_number=self.steps_done)

    def record_best(self, loss: float, epoch: int, row: dict[str, float]) -> None:
        """Makes `epoch` the best one and keeps its weights (the chief writes them)."""
        self.best = {'val_loss': loss, 'epoch': epoch, 'row': row}
        if self._chief:
            self._model.save_weights(self.best_weights_path)

    def save_best_record(self, stopped_early: bool = False) -> None:
        """Writes best.json (the chief only); `stopped_early` ends the run for good."""
        if stopped_early:
            self.best['stopped_early'] = True
        if self._chief:
            replace_file(self._state_path, json.dumps(self.best))

    @property
    def stopped_early(self) -> bool:
        return bool(self.best.get('stopped_early'))

    def load_best_weights(self) -> bool:
        """Loads the best epoch's weights into the model; False when none were kept."""
        if not os.path.exists(self.best_weights_path):
            return False
        self._model.load_weights(self.best_weights_path)
        return True

    def close(self) -> None:
        """Removes a non-chief worker's scratch checkpoints."""
        if self._scratch:
            shutil.rmtree(self._scratch, ignore_errors=True)
