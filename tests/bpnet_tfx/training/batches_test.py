"""Tests of batches: the batch never exceeds the training records, an epoch is one pass, and a
training set too small to learn from warns."""

import math
import os

import pytest

from bpnet_tfx.modeling import model as model_lib
from bpnet_tfx.training import batches, trainer


def test_a_batch_larger_than_the_records_becomes_the_records():
    plan = batches.plan_batches(18, 512)
    assert (plan.requested, plan.batch_size, plan.steps_per_epoch) == (512, 18, 1)
    assert plan.reason == '--batch_size=512 is more than the 18 training records'
    assert '18 training records are fewer than 4 batches of 512' in plan.warning
    assert '--batch_size=2' in plan.warning and '\n' not in plan.warning


def test_an_epoch_is_one_pass_over_the_records():
    for records, batch in ((2492, 64), (100, 7), (64, 16), (65, 16), (1, 1)):
        plan = batches.plan_batches(records, batch)
        assert plan.batch_size == batch and plan.reason is None
        assert plan.steps_per_epoch == math.ceil(records / batch)
        # One pass: the epoch's batches cover every record, and less than one batch more.
        assert records <= plan.steps_per_epoch * batch < records + batch
    assert batches.plan_batches(100, 7, steps_per_epoch=3).steps_per_epoch == 3


def test_the_batch_stays_a_multiple_of_the_replicas():
    plan = batches.plan_batches(18, 512, replicas=4)
    assert (plan.batch_size, plan.steps_per_epoch) == (16, 2)
    assert 'rounded to a multiple of the 4 replicas' in plan.reason
    # Fewer records than replicas: one example per replica.
    assert batches.plan_batches(3, 8, replicas=4).batch_size == 4


def test_the_warning_comes_below_a_few_batches_only():
    assert batches.plan_batches(4 * 512, 512).warning is None
    assert batches.plan_batches(4 * 512 - 1, 512).warning is not None
    assert batches.plan_batches(2492, 64).warning is None  # the demo


@pytest.mark.slow
def test_small_training_set_trains_whole_passes_and_reports_truthfully(small_records, tmp_path):
    records_dir, info = small_records  # 64 training records
    events = []
    model_dir = str(tmp_path / 'model')
    config = trainer.TrainConfig(
        records_dir=records_dir,
        model_dir=model_dir,
        export_dir=os.path.join(model_dir, 'export'),
        epochs=3,
        batch_size=512,
        counts_loss_weight=1.0,
        input_benchmark_batches=0,
        model=model_lib.ModelConfig(
            sequence_length=info.sequence_length, filters=8, num_dilated_layers=2
        ),
    )
    summary = trainer.train(config, info, progress=lambda event, **v: events.append((event, v)))
    assert [e for e, _ in events][:2] == ['warning', 'start']
    assert '64 training records are fewer than 4 batches of 512' in events[0][1]['message']
    start = events[1][1]
    assert (start['batch_size'], start['steps_per_epoch']) == (64, 1)
    assert start['batch_reason'] == '--batch_size=512 is more than the 64 training records'
    assert summary['examples_seen'] == 3 * 64  # three passes, not three steps of 512
    assert (summary['steps'], summary['batch_size'], summary['requested_batch_size']) == (
        3,
        64,
        512,
    )
    epochs = [v for e, v in events if e == 'epoch']
    assert len(epochs) == 3 and all(v['seconds'] > 0 for v in epochs)
    # The run's first step (tracing) is not timed: no rate rather than 0 examples/s.
    assert math.isnan(epochs[0]['row']['examples_per_second'])
    assert epochs[1]['row']['examples_per_second'] > 0
