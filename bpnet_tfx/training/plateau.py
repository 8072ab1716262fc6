"""The plateau rule: after each epoch, whether it is the best, the learning rate, whether to stop.

Pure functions of the monitored losses, so the rule is tested without training. An epoch
improves when its loss is strictly below the best so far; `stale` counts the epochs since the
best one.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Verdict:
    """What the rule decides after one epoch."""

    improved: bool  # This epoch is the new best.
    stale: int  # Epochs since the best one (0 when this one is it).
    learning_rate: float  # The learning rate for the next epoch.
    stop: bool  # Stop early: `patience` epochs without improvement.


def plateau_learning_rate(lr: float, stale: int, patience: int) -> float:
    """The learning rate after an epoch `stale` epochs past the best one: halved after every
    `patience` epochs without improvement (0: never), down to 1e-6; never raised."""
    if patience and stale and stale % patience == 0:
        return max(lr * 0.5, min(lr, 1e-6))
    return lr


def judge(
    epoch: int,
    loss: float,
    best_epoch: int,
    best_loss: float,
    learning_rate: float,
    *,
    patience: int,
    reduce_lr_patience: int,
) -> Verdict:
    """Applies the rule to `epoch` (1-based) with monitored `loss`.

    Args:
      epoch: the epoch just finished, counted from 1.
      loss: its monitored (validation) loss.
      best_epoch, best_loss: the best epoch before this one (0 and inf for none).
      learning_rate: the rate this epoch trained with.
      patience: stop after this many epochs without improvement (0: never).
      reduce_lr_patience: halve the rate after every this many such epochs (0: never).

    Returns:
      The Verdict.
    """
    improved = loss < best_loss
    stale = 0 if improved else epoch - best_epoch
    return Verdict(
        improved=improved,
        stale=stale,
        learning_rate=plateau_learning_rate(learning_rate, stale, reduce_lr_patience),
        stop=bool(patience) and stale >= patience,
    )
