"""How a run batches its training records: the effective batch, the steps in an epoch, and
the warning for a training set too small to learn from.

An epoch is one pass over the training records: ceil(records / batch) steps of the effective
batch, which is the requested one unless that exceeds the records (then the records, rounded
down to a multiple of the replicas), so a small set is never repeated within one step.
"""

from __future__ import annotations

import dataclasses
import math

# Fewer training records than this many requested batches: too few optimizer steps per epoch
# to learn from, so the run warns.
MIN_BATCHES = 4
# The batch the warning suggests gives an epoch about this many steps.
SUGGESTED_STEPS = 8


@dataclasses.dataclass(frozen=True)
class BatchPlan:
    """A run's batching.

    Attributes:
      requested: the --batch_size asked for (global, over all replicas).
      batch_size: the global batch the run trains with.
      steps_per_epoch: optimizer steps in an epoch.
      reason: why batch_size differs from requested, or None.
      warning: one line on a training set too small to learn from (with what to do), or None.
    """

    requested: int
    batch_size: int
    steps_per_epoch: int
    reason: str | None = None
    warning: str | None = None


def plan_batches(
    records: int, batch_size: int, replicas: int = 1, steps_per_epoch: int | None = None
) -> BatchPlan:
    """The batching of a run over `records` training records.

    Args:
      records: training records (> 0).
      batch_size: requested global batch (a multiple of `replicas`).
      replicas: replicas the batch is split over.
      steps_per_epoch: an explicit --steps_per_epoch, or None for one pass over the records.

    Returns:
      The plan; `batch_size` never exceeds `records` unless `records` < `replicas` (each
      replica needs one example).
    """
    effective, reason = batch_size, None
    if batch_size > records:
        effective = max(replicas, records // replicas * replicas)
        reason = f'--batch_size={batch_size} is more than the {records} training records'
        if effective != records:
            reason += f', rounded to a multiple of the {replicas} replicas'
    steps = steps_per_epoch or math.ceil(records / effective)
    return BatchPlan(batch_size, effective, steps, reason, _warning(records, batch_size, steps))


def _warning(records: int, batch_size: int, steps: int) -> str | None:
    """The small-data warning, when `records` hold fewer than MIN_BATCHES requested batches."""
    if records >= MIN_BATCHES * batch_size:
        return None
    suggested = max(1, records // SUGGESTED_STEPS)
    return (
        f'{records} training records are fewer than {MIN_BATCHES} batches of {batch_size}, so '
        f'an epoch is {steps} optimizer step{"s" if steps != 1 else ""} and the model may learn '
        f'little: add training peaks if you can, or pass --batch_size={suggested} (about '
        f'{SUGGESTED_STEPS} steps an epoch) and enough --epochs for a few hundred steps, with '
        '--patience to stop when the validation loss no longer improves'
    )
