"""How a run batches its training records: the effective batch, the steps in an epoch, and
the warning for a training set too small to learn from.

An epoch is one pass over the training records: ceil(records / batch) steps. The batch is the
requested one unless the records hold fewer than `MIN_STEPS` of it; then it is lowered (to a
multiple of the replicas) so that an epoch has at least `MIN_STEPS` steps, a small set is never
repeated within a step, and the run warns that the set is small.
"""

from __future__ import annotations

import dataclasses
import math

# Fewer training records than this many requested batches: the batch is lowered so that an
# epoch has this many steps, and the run warns that the set is small to learn from.
MIN_STEPS = 4
# Optimizer steps the warning suggests a small set trains for.
SUGGESTED_STEPS = 300


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
      The plan; its batch never exceeds `records // MIN_STEPS` when it was lowered, nor
      `records` unless `records` < `replicas` (each replica needs one example).
    """
    if records >= MIN_STEPS * batch_size:
        steps = steps_per_epoch or math.ceil(records / batch_size)
        return BatchPlan(batch_size, batch_size, steps)
    effective = max(replicas, records // MIN_STEPS // replicas * replicas)
    steps = steps_per_epoch or math.ceil(records / effective)
    reason = (
        f'--batch_size={batch_size} lowered: the {records} training records would make '
        f'{math.ceil(records / batch_size)} step(s) an epoch, fewer than {MIN_STEPS}'
    )
    warning = (
        f'{records} training records are few to learn from: add peaks if you can (e.g. a '
        'looser peak-calling threshold), and train for a few hundred steps (here '
        f'--epochs={math.ceil(SUGGESTED_STEPS / steps)}; the export keeps the epoch of the best '
        'validation loss; without --patience, which a validation set this small stops too early)'
    )
    return BatchPlan(batch_size, effective, steps, reason, warning)
