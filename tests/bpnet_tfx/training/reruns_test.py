"""What a rerun of train finds in its model folder (training/reruns.py): the settings that may
change on a resume, a finished run, a run to replace."""

import json
import os

import pytest

from bpnet_tfx.training import reruns
from bpnet_tfx.training.config import TrainError


def _config(**changes):
    config = {
        'records_dir': 'records',
        'model_dir': 'm',
        'export_dir': 'm/export',
        'epochs': 2,
        'batch_size': 8,
        'learning_rate': 0.001,
        'counts_loss_weight': (10.0,),
        'strategy': 'auto',
        'cpu_replicas': 1,
        'skip_corrupt_records': False,
        'model': {'filters': 64, 'sequence_length': 200, 'use_control': False},
    }
    model = changes.pop('model', {})
    config.update(changes)
    config['model'] = {**config['model'], **model}
    return config


def test_differences_name_what_changes_the_weights_only():
    saved = json.loads(json.dumps(_config()))
    assert reruns.differences(saved, _config()) == []  # a tuple saved as a list is the same
    free = _config(
        epochs=9, export_dir='x', strategy='mirrored', cpu_replicas=4, skip_corrupt_records=True
    )
    assert reruns.differences(saved, free) == []
    assert reruns.differences(saved, _config(records_dir=os.path.abspath('records'))) == []
    changed = _config(
        learning_rate=0.002,
        counts_loss_weight=(5.0,),
        model={'filters': 32, 'sequence_length': 1000},
    )
    assert reruns.differences(saved, changed) == [
        '--counts_loss_weight [10.0] -> [5.0]',
        '--learning_rate 0.001 -> 0.002',
        '--filters 64 -> 32',
        'sequence_length (from the records) 200 -> 1000',
    ]
    # Settings an older train_config.json lacks are not compared.
    assert reruns.differences({'model': {'filters': 64}}, _config(batch_size=4)) == []


def test_check_resumable_refuses_other_settings_in_one_line(tmp_path):
    reruns.check_resumable(str(tmp_path), _config())  # no run there
    (tmp_path / 'train_config.json').write_text(json.dumps(_config()))
    reruns.check_resumable(str(tmp_path), _config(epochs=5))
    with pytest.raises(TrainError) as error:
        reruns.check_resumable(str(tmp_path), _config(batch_size=16))
    assert str(error.value) == (
        f'{tmp_path} holds a run with other settings (train_config.json): --batch_size 8 -> 16; '
        'rerun with its settings to resume it, pass --overwrite to replace it, or use a new '
        '--model_dir'
    )
    (tmp_path / 'train_config.json').write_text('{')
    with pytest.raises(TrainError, match='train_config.json: cannot read'):
        reruns.check_resumable(str(tmp_path), _config())


def _finished(tmp_path, epochs, stopped_early=False):
    export = tmp_path / 'export'
    export.mkdir(exist_ok=True)
    (export / 'saved_model.pb').write_bytes(b'')
    summary = {'epochs': epochs, 'stopped_early': stopped_early, 'export_dir': str(export)}
    (tmp_path / 'train_summary.json').write_text(json.dumps(summary))
    return summary


def test_finished_run_until_more_epochs_are_asked_for(tmp_path):
    assert reruns.finished_run(str(tmp_path), 2) is None  # no summary
    summary = _finished(tmp_path, 2)
    assert reruns.finished_run(str(tmp_path), 2) == summary
    assert reruns.finished_run(str(tmp_path), 1) == summary
    assert reruns.finished_run(str(tmp_path), 3) is None  # trains on
    assert reruns.finished_line(str(tmp_path), summary) == (
        f'train: {tmp_path} holds a finished run (2 epochs) -> {tmp_path}/export; nothing to do '
        '(--epochs above 2 trains on, --overwrite trains it again from the start)'
    )
    early = _finished(tmp_path, 2, stopped_early=True)
    assert reruns.finished_run(str(tmp_path), 10) == early  # stopped for good
    assert 'stopped early after 2 epochs' in reruns.finished_line(str(tmp_path), early)
    (tmp_path / 'export' / 'saved_model.pb').unlink()
    assert reruns.finished_run(str(tmp_path), 2) is None  # no export: resume and export


def test_clear_run_removes_the_run_and_keeps_other_files(tmp_path):
    for name in ('checkpoints', 'logs', 'export'):
        (tmp_path / name).mkdir()
        (tmp_path / name / 'f').write_text('x')
    for name in ('history.csv', 'train_summary.json', 'train_config.json', 'notes.txt'):
        (tmp_path / name).write_text('x')
    reruns.clear_run(str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == ['export', 'notes.txt']
