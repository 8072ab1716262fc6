"""A worker lost in a multi-worker run, reported in one line that says how to resume.

Under MultiWorkerMirroredStrategy every step all-reduces across the workers, so when one worker
dies the others cannot go on. TensorFlow bounds the wait: a worker whose process is gone resets
its connections, and the survivors' next collective fails at once; one that stops answering (a
frozen process, a lost host or network) misses the coordination service's heartbeats, after
which the service aborts every survivor's collectives (times measured: docs/benchmarks.md).
The survivors then get an UnavailableError or DeadlineExceededError from inside a step, whose
message is many lines of gRPC detail. `named_lost_workers` turns it into a
`LostWorkerError`: which worker, why, and which checkpoint a restart of every worker resumes
from.
"""

from __future__ import annotations

import contextlib
import re
from typing import Iterator

import tensorflow as tf

from bpnet_tfx.training.config import TrainError

# What a collective raises when a peer is gone (Aborted: a collective cancelled by another).
PEER_ERRORS = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.AbortedError)
_TASK_RE = re.compile(r'/job:(\w+)/(?:replica:\d+/)?task:(\d+)')
# (text in TensorFlow's message, what it means), most telling first.
_REASONS = (
    ('stopped sending heartbeats', 'it stopped sending heartbeats'),
    ('CoordinationService/Heartbeat', 'the coordination service stopped answering heartbeats'),
    ('Connection reset by peer', 'its connection was reset: its process is gone'),
    ('Connection refused', 'it refuses connections: its process is gone'),
    ('Socket closed', 'its connection closed'),
    ('Deadline Exceeded', 'it did not answer in time'),
)


class LostWorkerError(TrainError):
    """Another worker of a multi-worker run died or stopped answering."""


def _leader(strategy: tf.distribute.Strategy) -> str:
    """The task that runs the coordination service: the chief, or else worker 0."""
    jobs = strategy.cluster_resolver.cluster_spec().jobs
    return '/job:chief/task:0' if 'chief' in jobs else '/job:worker/task:0'


def lost_worker_message(error: Exception, leader: str, latest_checkpoint: str | None) -> str:
    """One line: which worker was lost and why, and what a restart resumes from.

    Args:
      error: what a collective raised.
      leader: the task running the coordination service, named when the error names none.
      latest_checkpoint: the checkpoint a restart resumes from, or None.
    """
    text = str(error)
    # 'Error reported from <task>: The following tasks are unhealthy ...: <tasks>': the
    # lost one follows 'unhealthy'; otherwise the only task named is the peer.
    match = _TASK_RE.search(text, max(text.find('unhealthy'), 0))
    task = f'/job:{match.group(1)}/task:{match.group(2)}' if match else leader
    reason = next((why for key, why in _REASONS if key in text), type(error).__name__)
    if latest_checkpoint:
        step = latest_checkpoint.rsplit('-', 1)[-1]
        resume = f'the run resumes from {latest_checkpoint} (step {step})'
    else:
        resume = 'no checkpoint was written yet, so the run starts again from the beginning'
    return (
        f'lost worker {task} ({reason}); start every worker again with the same command and '
        f'TF_CONFIG: {resume}'
    )


@contextlib.contextmanager
def named_lost_workers(strategy: tf.distribute.Strategy, checkpoint_dir: str) -> Iterator[None]:
    """Turns a multi-worker run's peer failures into a one-line `LostWorkerError`.

    Other strategies, and other errors, pass through unchanged.

    Args:
      strategy: the run's strategy.
      checkpoint_dir: where the chief writes checkpoints (every worker resumes from them).
    """
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        yield
        return
    try:
        yield
    except PEER_ERRORS as e:
        latest = tf.train.latest_checkpoint(checkpoint_dir)
        raise LostWorkerError(lost_worker_message(e, _leader(strategy), latest)) from None
