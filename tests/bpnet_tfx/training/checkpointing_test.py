"""Tests of checkpointing.Checkpointer: save and restore, best record and weights, scratch."""

import os

import keras
import numpy as np

from bpnet_tfx.modeling import config as config_lib
from bpnet_tfx.modeling import model as model_lib
from bpnet_tfx.training import checkpointing

_CONFIG = config_lib.ModelConfig(sequence_length=32, filters=4, num_dilated_layers=1)


def _state(model_dir, chief=True):
    model = model_lib.build_bpnet(_CONFIG)
    optimizer = keras.optimizers.Adam()
    optimizer.build(model.trainable_variables)
    return model, checkpointing.Checkpointer(
        str(model_dir), model, optimizer, chief=chief, task_id=1
    )


def test_restore_brings_back_weights_counters_and_best(tmp_path):
    model, ckpt = _state(tmp_path)
    assert ckpt.restore() is None  # nothing saved yet
    ckpt.epoch.assign(2)
    ckpt.step.assign(7)
    ckpt.record_best(1.5, 2, {'val_loss': 1.5})
    ckpt.save()
    ckpt.save_best_record(stopped_early=True)
    weights = model.get_weights()

    again, resumed = _state(tmp_path)
    assert resumed.restore().endswith('ckpt-7')
    assert (resumed.epochs_done, resumed.steps_done) == (2, 7)
    assert resumed.best['epoch'] == 2 and resumed.stopped_early
    for got, want in zip(again.get_weights(), weights):
        np.testing.assert_array_equal(got, want)
    fresh, other = _state(tmp_path / 'other')
    assert not other.load_best_weights()
    fresh.set_weights([w * 0 for w in weights])
    fresh_ckpt = checkpointing.Checkpointer(str(tmp_path), fresh, keras.optimizers.Adam())
    assert fresh_ckpt.load_best_weights()
    np.testing.assert_array_equal(fresh.get_weights()[0], weights[0])


def test_a_non_chief_worker_saves_to_scratch_and_writes_nothing_else(tmp_path):
    _, ckpt = _state(tmp_path, chief=False)
    ckpt.record_best(1.0, 1, {})
    ckpt.save()
    ckpt.save_best_record()
    scratch = tmp_path / '.worker-1-scratch' / 'checkpoints'
    assert any(p.name.startswith('ckpt-0') for p in scratch.iterdir())
    assert os.listdir(tmp_path / 'checkpoints') == []  # best weights and best.json: chief's
    ckpt.close()
    assert not (tmp_path / '.worker-1-scratch').exists()
