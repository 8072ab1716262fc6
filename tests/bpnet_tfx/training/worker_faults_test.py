"""Tests of bpnet_tfx/training/worker_faults.py: a lost worker named in one line (the messages are
TensorFlow 2.21's, seen when a worker of a 2-worker run was killed or frozen)."""

import pytest
import tensorflow as tf

from bpnet_tfx.training import worker_faults

RESET = (
    'Graph execution error:\n\nDetected at node adam/CollectiveReduceV2 defined at ...\n'
    'Collective ops is aborted by: recvmsg:Connection reset by peer\n'
    'Additional GRPC error information from remote target /job:worker/replica:0/task:1 while '
    'calling /tensorflow.WorkerService/RecvBuf:\n:UNKNOWN:Error received from peer '
    '{grpc_message:"recvmsg:Connection reset by peer", grpc_status:14}\n'
    'The error could be from a previous operation. Restart your program to reset.'
)
UNHEALTHY = (
    'Collective ops is aborted by: Error reported from /job:worker/task:0: The following '
    'tasks are unhealthy (stopped sending heartbeats):\n/job:worker/replica:0/task:1\n'
    'The tasks have crashed. Check the task logs for an earlier error.'
)
LEADER_GONE = (
    'Graph execution error:\nCollective ops is aborted by: Deadline Exceeded\n'
    'RPC: /tensorflow.CoordinationService/Heartbeat\nThe error could be from a previous '
    'operation. Restart your program to reset.'
)


@pytest.mark.parametrize(
    'text, error, task, reason',
    [
        (RESET, tf.errors.UnavailableError, 'task:1', 'its connection was reset'),
        (UNHEALTHY, tf.errors.UnavailableError, 'task:1', 'it stopped sending heartbeats'),
        (
            LEADER_GONE,
            tf.errors.DeadlineExceededError,
            'task:0',
            'the coordination service stopped answering heartbeats',
        ),
    ],
)
def test_lost_worker_is_named_with_its_reason_and_the_checkpoint_to_resume_from(
    text, error, task, reason
):
    line = worker_faults.lost_worker_message(
        error(None, None, text), '/job:worker/task:0', '/m/checkpoints/ckpt-3'
    )
    assert line.startswith(f'lost worker /job:worker/{task} ({reason}')
    assert line.endswith(
        'start every worker again with the same command and TF_CONFIG: the run resumes '
        'from /m/checkpoints/ckpt-3 (step 3)'
    )
    assert '\n' not in line


def test_without_a_checkpoint_the_run_starts_again():
    line = worker_faults.lost_worker_message(
        tf.errors.UnavailableError(None, None, RESET), '/job:worker/task:0', None
    )
    assert line.endswith(
        'no checkpoint was written yet, so the run starts again from the beginning'
    )


def test_other_strategies_and_other_errors_pass_through(tmp_path):
    with pytest.raises(tf.errors.UnavailableError):
        with worker_faults.named_lost_workers(tf.distribute.get_strategy(), str(tmp_path)):
            raise tf.errors.UnavailableError(None, None, RESET)
