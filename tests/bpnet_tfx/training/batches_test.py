"""Tests of batches: the batch never exceeds the training records, an epoch is one pass, and a
training set too small to learn from warns."""

import math
import os

import pytest

from bpnet_tfx.modeling import model as model_lib
from bpnet_tfx.training import batches, trainer


def test_a_batch_the_records_cannot_fill_a_few_times_is_lowered():
    plan = batches.plan_batches(18, 512)
    assert (plan.requested, plan.batch_size, plan.steps_per_epoch) == (512, 4, 5)
    assert plan.reason == (
        '--batch_size=512 lowered: the 18 training records would make 1 step(s) an epoch, '
        'fewer than 4'
    )
    assert plan.warning.startswith('18 training records are few to learn from')
    assert '--epochs=60' in plan.warning and '\n' not in plan.warning
    # Never more than the records, at least MIN_STEPS steps.
    for records in range(1, 200):
        for batch in (1, 2, 8, 64, 512):
            plan = batches.plan_batches(records, batch)
            assert plan.batch_size <= min(records, batch)
            assert plan.steps_per_epoch >= min(records, batches.MIN_STEPS)


def test_an_epoch_is_one_pass_over_the_records():
    for records, batch in ((2492, 64), (100, 7), (64, 16), (65, 16), (4, 1)):
        plan = batches.plan_batches(records, batch)
        assert plan.batch_size == batch and plan.reason is None
        assert plan.steps_per_epoch == math.ceil(records / batch)
        # One pass: the epoch's batches cover every record, and less than one batch more.
        assert records <= plan.steps_per_epoch * batch < records + batch
    assert batches.plan_batches(100, 7, steps_per_epoch=3).steps_per_epoch == 3


def test_the_batch_stays_a_multiple_of_the_replicas():
    plan = batches.plan_batches(18, 512, replicas=2)
    assert (plan.batch_size, plan.steps_per_epoch) == (4, 5)
    assert batches.plan_batches(40, 512, replicas=4).batch_size == 8
    # Fewer records than MIN_STEPS batches of one example per replica: one each.
    assert batches.plan_batches(6, 8, replicas=4).batch_size == 4


def test_only_sets_of_fewer_than_a_few_batches_are_lowered_and_warned():
    assert batches.plan_batches(4 * 512, 512) == batches.BatchPlan(512, 512, 4)
    assert batches.plan_batches(4 * 512 - 1, 512).warning is not None
    assert batches.plan_batches(2492, 64).warning is None  # the demo
    assert batches.plan_batches(64, 16).batch_size == 16


def _train(small_records, tmp_path, **config):
    """Trains a tiny model on `small_records` (64 training records); returns the summary and
    the progress events."""
    records_dir, info = small_records
    events = []
    model_dir = str(tmp_path / 'model')
    config = trainer.TrainConfig(
        records_dir=records_dir,
        model_dir=model_dir,
        export_dir=os.path.join(model_dir, 'export'),
        counts_loss_weight=1.0,
        input_benchmark_batches=0,
        model=model_lib.ModelConfig(
            sequence_length=info.sequence_length, filters=8, num_dilated_layers=2
        ),
        **config,
    )
    summary = trainer.train(config, info, progress=lambda event, **v: events.append((event, v)))
    return summary, events


@pytest.mark.slow
def test_small_training_set_trains_whole_passes_and_reports_truthfully(small_records, tmp_path):
    summary, events = _train(small_records, tmp_path, epochs=3, batch_size=512)
    assert [e for e, _ in events][:2] == ['warning', 'start']
    assert '64 training records are few to learn from' in events[0][1]['message']
    start = events[1][1]
    assert (start['batch_size'], start['steps_per_epoch']) == (16, 4)
    assert start['batch_reason'].startswith('--batch_size=512 lowered')
    assert summary['examples_seen'] == 3 * 64  # three passes, not three steps of 512
    assert (summary['steps'], summary['batch_size'], summary['requested_batch_size']) == (
        12,
        16,
        512,
    )
    epochs = [v for e, v in events if e == 'epoch']
    assert len(epochs) == 3 and all(v['seconds'] > 0 for v in epochs)
    assert all(v['row']['examples_per_second'] > 0 for v in epochs)


@pytest.mark.slow
def test_an_epoch_of_one_step_reports_no_rate_rather_than_zero(small_records, tmp_path):
    _, events = _train(small_records, tmp_path, epochs=2, batch_size=16, steps_per_epoch=1)
    epochs = [v for e, v in events if e == 'epoch']
    # The run's first step (tracing) is not timed: its epoch has no rate, and takes seconds.
    assert math.isnan(epochs[0]['row']['examples_per_second']) and epochs[0]['seconds'] > 0
    assert epochs[1]['row']['examples_per_second'] > 0
