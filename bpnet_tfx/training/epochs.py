"""The epoch loop of a training run: train an epoch, validate, apply the plateau rule, record.

`EpochRunner.run` trains one epoch with the distributed train step (checkpointing every N
steps) and validates; `train_epochs` runs the epochs a run has left, lets `plateau.judge`
pick the best epoch, the learning rate and an early stop, and writes history and checkpoints.
The trainer builds the step functions, datasets and checkpointer and hands them in.
"""

from __future__ import annotations

import collections
import time
from typing import Any, Callable

import keras
import tensorflow as tf

from bpnet_tfx.training import checkpointing, history, plateau


class EpochRunner:
    """Trains epochs from one iterator that serves the whole run, then validates each.

    Throughput leaves out the run's first step (tracing, warm-up) and validation.

    Args:
      train_step: train_step(iterator, step) -> per-batch sums (trainer's step function).
      iterator: the distributed training iterator.
      ckpt: holds the epoch and step counters and saves.
      steps_per_epoch: optimizer steps in an epoch.
      checkpoint_every_steps: also save every this many steps (0: each epoch only).
      input_rate: examples/s of the input pipeline alone.
      evaluate: () -> validation means {'val_loss', ...}; None: no validation.
      data_error: turns an unreadable-record error into the error to raise.

    Attributes:
      input_rate: examples/s of the input pipeline alone, copied into every row.
      train_seconds, train_examples, timed_examples: totals over the epochs run.
    """

    def __init__(
        self,
        train_step: Callable,
        iterator: Any,
        ckpt: checkpointing.Checkpointer,
        *,
        steps_per_epoch: int,
        checkpoint_every_steps: int = 0,
        input_rate: float = float('nan'),
        evaluate: Callable[[], dict[str, float]] | None = None,
        data_error: Callable[[Exception], Exception] | None = None,
    ):
        self._train_step, self._iterator, self._ckpt = train_step, iterator, ckpt
        self.steps_per_epoch, self._every = steps_per_epoch, checkpoint_every_steps
        self.input_rate, self._evaluate, self._data_error = input_rate, evaluate, data_error
        self._compiled = False
        self.train_seconds, self.train_examples, self.timed_examples = 0.0, 0, 0.0

    @property
    def validates(self) -> bool:
        return self._evaluate is not None

    def run(self, epoch: int) -> tuple[dict[str, float], float]:
        """Trains epoch `epoch` (0-based; a resumed one from its next step) and validates.

        Returns:
          (history row of example-weighted means, the epoch's training seconds including a
          first step's tracing). The row's examples_per_second is over the steps after the
          run's first, NaN when the epoch had none.
        """
        ckpt = self._ckpt
        done_in_epoch = ckpt.steps_done - epoch * self.steps_per_epoch
        sums = collections.defaultdict(float)
        timed, t0 = 0.0, time.perf_counter()
        started = t0
        try:
            for _ in range(max(done_in_epoch, 0), self.steps_per_epoch):
                out = self._train_step(self._iterator, ckpt.step.value())
                ckpt.step.assign_add(1)
                for k, v in out.items():
                    sums[k] += float(v)
                if not self._compiled:
                    self._compiled, t0 = True, time.perf_counter()
                else:
                    timed += float(out['examples'])
                if self._every and ckpt.steps_done % self._every == 0:
                    ckpt.save()
        except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as e:
            if self._data_error is None:
                raise
            raise self._data_error(e) from None
        seconds = time.perf_counter() - t0
        self.train_seconds += seconds
        self.train_examples += int(sums['examples'])
        self.timed_examples += timed
        row = means(sums)
        # An epoch of one step, the run's first, has no timed step: no rate rather than 0.
        row['examples_per_second'] = timed / max(seconds, 1e-9) if timed else float('nan')
        row['input_examples_per_second'] = self.input_rate
        wall = time.perf_counter() - started
        if self._evaluate is not None:
            row.update(self._evaluate())
        return row, wall


def train_epochs(
    runner: EpochRunner,
    ckpt: checkpointing.Checkpointer,
    optimizer: keras.optimizers.Optimizer,
    *,
    epochs: int,
    patience: int = 0,
    reduce_lr_patience: int = 0,
    writer: history.History | None = None,
    report: Callable[..., None],
) -> list[dict[str, float]]:
    """Runs the epochs left up to `epochs`; returns their history rows.

    With validation, each epoch is judged on its val_loss (`plateau.judge`): the best one's
    weights are kept, the learning rate may be halved, and the run may stop early (for good:
    a rerun trains no further). Without validation nothing is judged.
    `report(event, **values)` gets 'learning_rate', 'epoch' and 'early_stop' (see trainer).
    """
    if writer:
        writer.truncate(ckpt.epochs_done)
    rows = []
    while ckpt.epochs_done < epochs and not ckpt.stopped_early:
        epoch = ckpt.epochs_done + 1  # 1-based from here on
        row, seconds = runner.run(epoch - 1)
        lr = float(optimizer.learning_rate.numpy())
        verdict = None
        if runner.validates:
            verdict = plateau.judge(
                epoch,
                row['val_loss'],
                ckpt.best['epoch'],
                ckpt.best['val_loss'],
                lr,
                patience=patience,
                reduce_lr_patience=reduce_lr_patience,
            )
            if verdict.improved:
                ckpt.record_best(row['val_loss'], epoch, row)
            if verdict.learning_rate != lr:
                optimizer.learning_rate.assign(verdict.learning_rate)
                report('learning_rate', stale=verdict.stale, learning_rate=verdict.learning_rate)
        row['learning_rate'] = float(optimizer.learning_rate.numpy())
        ckpt.epoch.assign(epoch)
        if writer:
            writer.write(epoch, row)
        rows.append(row)
        ckpt.save()
        ckpt.save_best_record()
        report('epoch', epoch=epoch, epochs=epochs, row=row, seconds=seconds)
        if verdict and verdict.stop:
            report(
                'early_stop',
                epoch=epoch,
                monitor='val_loss',
                stale=verdict.stale,
                best_epoch=ckpt.best['epoch'],
            )
            ckpt.save_best_record(stopped_early=True)
            break
    return rows


def means(sums: dict[str, float]) -> dict[str, float]:
    """Example-weighted means of step sums; profile NLLs are over peak (non-background)
    examples, everything else over all examples."""
    out = {}
    for k, v in sums.items():
        if k in ('examples', 'peak_examples'):
            continue
        n = sums['peak_examples'] if k.startswith('profile_nll') else sums['examples']
        out[k] = v / max(n, 1)
    return out
