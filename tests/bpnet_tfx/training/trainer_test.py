"""Tests of trainer: 1 vs 2 replicas, short run, export, resume, corrupt shards, no validation."""

import csv
import json
import os
import textwrap

import numpy as np
import pytest

from bpnet_tfx.common import devices
from bpnet_tfx.modeling import config as config_lib
from bpnet_tfx.modeling import model as model_lib
from bpnet_tfx.records import dataset as data
from bpnet_tfx.records import schema
from bpnet_tfx.training import calibration, trainer
from bpnet_tfx.training import inputs as train_data
from tests.fixtures.mains import run_python


def _config(records_dir, model_dir, info, **kw):
    base = dict(
        records_dir=records_dir,
        model_dir=model_dir,
        export_dir=os.path.join(model_dir, 'export'),
        epochs=2,
        batch_size=16,
        learning_rate=2e-3,
        counts_loss_weight=1.0,
        shuffle_buffer=100,
        input_benchmark_batches=2,
        model=config_lib.ModelConfig(
            sequence_length=info.sequence_length, filters=8, num_dilated_layers=3
        ),
    )
    base.update(kw)
    return trainer.TrainConfig(**base)


_REPLICA_STEP = '''
import json, sys
import numpy as np
from bpnet_tfx.common import devices
from bpnet_tfx.training import trainer
devices.configure_cpu_replicas(2)
import keras, tensorflow as tf
from bpnet_tfx.modeling import config as config_lib
from bpnet_tfx.modeling import model as model_lib
from bpnet_tfx.records import schema
from tests.fixtures.records import synthetic_window

rng = np.random.default_rng(0)
windows = [synthetic_window(rng, 64, reverse=bool(i % 2)) for i in range(8)]
batch = {'one_hot': np.stack([w[0] for w in windows]),
         'profile': np.stack([w[1] for w in windows])}
info = schema.RecordsInfo(sequence_length=64, max_jitter=0, tasks=('t',))
cfg = trainer.TrainConfig(records_dir='', model_dir='', export_dir='', batch_size=8,
    counts_loss_weight=3.0, reverse_complement=False, jitter=False,
    model=config_lib.ModelConfig(sequence_length=64, filters=8, num_dilated_layers=2))
cpus = [d.name for d in tf.config.list_logical_devices('CPU')]
out = {}
for n in (1, 2):
    strategy = tf.distribute.MirroredStrategy(cpus[:n],
        cross_device_ops=tf.distribute.ReductionToOneDevice())
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = model_lib.build_bpnet(cfg.model)
        optimizer = keras.optimizers.SGD(0.01)
        optimizer.build(model.trainable_variables)
    before = [w.copy() for w in model.get_weights()]
    def dataset_fn(ctx):
        ds = tf.data.Dataset.from_tensor_slices(batch).shard(ctx.num_input_pipelines,
                                                             ctx.input_pipeline_id)
        return ds.batch(ctx.get_per_replica_batch_size(8))
    train_step, _ = trainer.make_step_functions(strategy, model, optimizer, cfg, info)
    dist = strategy.distribute_datasets_from_function(dataset_fn)
    per_replica = [int(t.shape[0]) for t in
                   strategy.experimental_local_results(next(iter(dist))['one_hot'])]
    it = iter(dist)
    sums = train_step(it, tf.constant(0, tf.int64))
    after = model.get_weights()
    out[n] = {'replicas': strategy.num_replicas_in_sync, 'per_replica_batch': per_replica,
              'loss': float(sums['loss']) / float(sums['examples']),
              'examples': float(sums['examples']),
              'delta': [float(np.abs(a - b).max()) for a, b in zip(after, before)],
              'weights': [a.tolist() for a in after]}
json.dump(out, open(sys.argv[1], 'w'))
'''


@pytest.mark.slow
def test_one_step_on_two_replicas_equals_one_replica(tmp_path):
    out_path = tmp_path / 'out.json'
    proc = run_python('-c', _REPLICA_STEP, out_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(out_path.read_text())
    assert out['1']['replicas'] == 1 and out['2']['replicas'] == 2
    assert out['1']['examples'] == out['2']['examples'] == 8
    assert out['1']['per_replica_batch'] == [8] and out['2']['per_replica_batch'] == [4, 4]
    np.testing.assert_allclose(out['1']['loss'], out['2']['loss'], rtol=1e-5)
    assert max(out['1']['delta']) > 1e-4  # the step really moved the weights
    for w1, w2 in zip(out['1']['weights'], out['2']['weights']):
        np.testing.assert_allclose(np.array(w1), np.array(w2), rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_short_training_learns_exports_and_reloads_in_fresh_process(small_records, tmp_path):
    records_dir, info = small_records
    model_dir = str(tmp_path / 'model')
    config = _config(records_dir, model_dir, info, epochs=4)
    summary = trainer.train(config, info)
    assert summary['epochs'] == 4 and summary['replicas'] == 1
    assert summary['examples_seen'] == 4 * 4 * 16  # 64 records, batch 16
    assert summary['examples_per_second'] > 0 and summary['input_examples_per_second'] > 0
    history = [json.loads(json.dumps(r)) for r in [summary['final']]]
    assert history[0]['loss'] < 1e4
    lines = open(os.path.join(model_dir, 'history.csv')).read().splitlines()
    assert len(lines) == 5 and 'val_profile_nll' in lines[0]
    first, last = (
        dict(zip(lines[0].split(','), map(float, ln.split(',')))) for ln in (lines[1], lines[-1])
    )
    assert last['profile_nll'] < first['profile_nll']  # it learns
    export_dir = summary['export_dir']
    assert schema.RecordsInfo.load(export_dir) == info

    # The Keras model with the best weights, on a fixed input.
    model = model_lib.build_bpnet(config.model)
    model.load_weights(os.path.join(model_dir, 'checkpoints', 'best.weights.h5'))
    x = np.random.default_rng(0).integers(0, 2, (3, 200, 4)).astype(np.float32)
    expected = model(x, training=False)
    np.save(tmp_path / 'x.npy', x)

    # A fresh process that imports only TensorFlow and numpy.
    proc = run_python(
        '-c',
        textwrap.dedent(
            '''
        import sys
        import numpy as np
        import tensorflow as tf
        loaded = tf.saved_model.load(sys.argv[1])
        out = loaded.signatures['serving_default'](one_hot=tf.constant(np.load(sys.argv[2])))
        # TensorFlow may pull in Keras itself; our package must not be needed.
        assert not any(m.startswith('bpnet_tfx') for m in sys.modules)
        np.savez(sys.argv[3], **{k: v.numpy() for k, v in out.items()})
    '''
        ),
        export_dir,
        str(tmp_path / 'x.npy'),
        str(tmp_path / 'out.npz'),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = np.load(tmp_path / 'out.npz')
    logits = expected['profile'].numpy()
    np.testing.assert_allclose(got['profile_logits'], logits, rtol=1e-5, atol=1e-5)
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    np.testing.assert_allclose(got['profile_probs'], probs, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(
        got['log_counts'], expected['log_counts'].numpy(), rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(got['counts'], np.expm1(expected['log_counts'].numpy()), rtol=1e-4)


@pytest.mark.slow
def test_rerun_resumes_from_last_checkpoint(small_records, tmp_path):
    records_dir, info = small_records
    model_dir = str(tmp_path / 'model')
    first = trainer.train(_config(records_dir, model_dir, info, epochs=2), info)
    assert first['epochs'] == 2 and first['epochs_this_run'] == 2
    second = trainer.train(_config(records_dir, model_dir, info, epochs=3), info)
    assert second['epochs'] == 3 and second['epochs_this_run'] == 1
    assert second['examples_seen'] == 4 * 16
    lines = open(os.path.join(model_dir, 'history.csv')).read().splitlines()
    assert [ln.split(',')[0] for ln in lines[1:]] == ['1', '2', '3']


def _truncate_first_shard(records_dir, split):
    path = data.list_shards(records_dir, split)[0]
    blob = open(path, 'rb').read()
    with open(path, 'wb') as f:
        f.write(blob[: len(blob) // 2])
    return path


@pytest.mark.slow
def test_corrupt_shard_is_named_or_skipped_and_counted(small_records, tmp_path):
    records_dir, info = small_records
    path = _truncate_first_shard(records_dir, 'train')
    with pytest.raises(trainer.TrainError, match=os.path.basename(path)):
        trainer.train(
            _config(records_dir, str(tmp_path / 'a'), info, epochs=1, input_benchmark_batches=0),
            info,
        )
    summary = trainer.train(
        _config(records_dir, str(tmp_path / 'b'), info, epochs=1, skip_corrupt_records=True), info
    )
    skipped = summary['skipped_corrupt_records']['train']
    assert 0 < skipped < 32  # the shard held 32 records; its first part is still read
    assert summary['skipped_corrupt_records']['valid'] == 0


def test_counts_loss_weight_parsing(small_records):
    _, info = small_records
    assert trainer.resolve_counts_loss_weight('10', info) == (10.0,)
    assert trainer.resolve_counts_loss_weight('auto', info) == pytest.approx(
        (info.median_total_counts[0] / 10,)
    )
    for bad in ('ten', '-1', 'nan'):
        with pytest.raises(trainer.TrainError, match='counts_loss_weight'):
            trainer.resolve_counts_loss_weight(bad, info)


def test_init_counts_bias_starts_the_counts_head_at_the_median(small_records, tmp_path):
    import dataclasses

    import tensorflow as tf

    records_dir, info = small_records
    config = trainer.TrainConfig(
        records_dir=records_dir,
        model_dir=str(tmp_path / 'model'),
        export_dir=str(tmp_path / 'model' / 'export'),
        model=config_lib.ModelConfig(sequence_length=200, filters=8, num_dilated_layers=2),
        init_counts_bias=True,
    )
    strategy = tf.distribute.get_strategy()
    model, _, _ = trainer._build(config, info, strategy, 'float32', True)
    np.testing.assert_allclose(
        model.get_layer('counts_dense').bias.numpy(),
        [np.log1p(info.median_total_counts[0] / 2)] * 2,
        rtol=1e-6,
    )
    plain, _, _ = trainer._build(
        dataclasses.replace(config, init_counts_bias=False), info, strategy, 'float32', True
    )
    np.testing.assert_array_equal(plain.get_layer('counts_dense').bias.numpy(), [0.0, 0.0])
    # The normalized head always starts there: its centred features cannot carry the mean.
    normalized = dataclasses.replace(
        config,
        init_counts_bias=False,
        model=dataclasses.replace(config.model, counts_head='normalized_pool'),
    )
    model, _, _ = trainer._build(normalized, info, strategy, 'float32', True)
    np.testing.assert_allclose(
        model.get_layer('counts_dense').bias.numpy(),
        [np.log1p(info.median_total_counts[0] / 2)] * 2,
        rtol=1e-6,
    )
    # So do the summed heads: flat zero log rates over the 200-bp window sum to the median.
    for head, offset in (('position_sum', -np.log(200)), ('profile_sum', 0.0)):
        summed = dataclasses.replace(
            normalized, model=dataclasses.replace(config.model, counts_head=head)
        )
        model, _, _ = trainer._build(summed, info, strategy, 'float32', True)
        np.testing.assert_allclose(
            model.get_layer('counts_rate_sum').offset.numpy(),
            [np.log1p(info.median_total_counts[0] / 2) + offset] * 2,
            rtol=1e-6,
        )
    old = dataclasses.replace(info, median_total_counts=())
    with pytest.raises(trainer.TrainError, match='--init_counts_bias needs median_total_counts'):
        trainer._build(config, old, strategy, 'float32', True)


@pytest.mark.slow
@pytest.mark.parametrize('precision', ['mixed_bfloat16', 'mixed_float16'])
def test_mixed_precision_trains_with_float32_outputs(small_records, tmp_path, precision):
    import keras

    records_dir, info = small_records
    config = _config(
        records_dir,
        str(tmp_path / precision),
        info,
        epochs=1,
        precision=precision,
        input_benchmark_batches=0,
    )
    with pytest.raises(trainer.TrainError, match='dtype policy'):
        trainer.train(config, info)  # The caller sets the policy config.precision names.
    with devices.dtype_policy(precision):
        summary = trainer.train(config, info)
    assert summary['precision'] == precision
    assert np.isfinite(summary['final']['loss'])
    assert keras.mixed_precision.global_policy().name == 'float32'  # restored after the run
    import tensorflow as tf

    out = tf.saved_model.load(summary['export_dir']).signatures['serving_default'](
        one_hot=tf.zeros((1, 200, 4))
    )
    assert out['profile_probs'].dtype == tf.float32
    np.testing.assert_allclose(out['profile_probs'].numpy().sum(axis=1), 1.0, rtol=1e-3)


@pytest.mark.slow
def test_early_stopping_and_learning_rate_reduction(small_records, tmp_path):
    records_dir, info = small_records
    # A zero learning rate cannot improve on the first epoch.
    summary = trainer.train(
        _config(
            records_dir,
            str(tmp_path / 'm'),
            info,
            epochs=10,
            learning_rate=0.0,
            patience=2,
            reduce_lr_patience=1,
            input_benchmark_batches=0,
        ),
        info,
    )
    assert summary['stopped_early'] and summary['epochs'] == 3 and summary['best_epoch'] == 1
    # A rerun of a run that stopped early trains no further.
    again = trainer.train(
        _config(
            records_dir,
            str(tmp_path / 'm'),
            info,
            epochs=10,
            learning_rate=0.0,
            patience=2,
            input_benchmark_batches=0,
        ),
        info,
    )
    assert again['epochs'] == 3 and again['epochs_this_run'] == 0
    rows = list(csv.DictReader(open(tmp_path / 'm' / 'history.csv')))
    assert len(rows) == 3


@pytest.mark.slow
def test_learning_rate_halves_on_plateau(small_records, tmp_path, monkeypatch):
    records_dir, info = small_records
    # A scripted validation loss makes the plateau deterministic: best at epochs 1, 2 and 5.
    losses = iter([5.0, 4.0, 4.5, 4.2, 3.0, 3.1, 3.2])
    real = train_data.evaluate

    def scripted(*args):
        return {**real(*args), 'val_loss': next(losses)}

    monkeypatch.setattr(train_data, 'evaluate', scripted)
    summary = trainer.train(
        _config(
            records_dir,
            str(tmp_path / 'm'),
            info,
            epochs=7,
            steps_per_epoch=2,
            learning_rate=0.5,
            reduce_lr_patience=1,
            input_benchmark_batches=0,
        ),
        info,
    )
    rows = list(csv.DictReader(open(tmp_path / 'm' / 'history.csv')))
    assert [float(r['val_loss']) for r in rows] == [5.0, 4.0, 4.5, 4.2, 3.0, 3.1, 3.2]
    assert [float(r['learning_rate']) for r in rows] == pytest.approx(
        [0.5, 0.5, 0.25, 0.125, 0.125, 0.0625, 0.03125]
    )
    assert summary['epochs'] == 7 and summary['best_epoch'] == 5


def _wide_records(tmp_path, background_every=4):
    from tests.fixtures.records import write_records

    path = str(tmp_path / 'wide_records')
    # 96 -> 40 bp with 2 dilated layers, stem 9, profile kernel 25: 8 + 12 + 24 = 44 + 12 spare.
    info = write_records(
        path,
        split_counts={'train': 48, 'valid': 16},
        sequence_length=96,
        output_length=40,
        max_jitter=6,
        with_expected=True,
        background_every=background_every,
    )
    return path, info


def _wide_model(info, **kw):
    return config_lib.ModelConfig(
        sequence_length=info.sequence_length,
        output_length=info.output_length,
        filters=8,
        stem_kernel_size=9,
        num_dilated_layers=2,
        profile_kernel_size=25,
        **kw,
    )


def test_background_examples_add_no_profile_loss(tmp_path):
    import keras
    import tensorflow as tf

    records_dir, info = _wide_records(tmp_path)
    config = _config(
        records_dir, str(tmp_path / 'm'), info, model=_wide_model(info), counts_loss_weight=2.0
    )
    strategy = tf.distribute.get_strategy()
    keras.utils.set_random_seed(0)
    model = model_lib.build_bpnet(config.model)
    optimizer = keras.optimizers.Adam()
    _, eval_step = trainer.make_step_functions(strategy, model, optimizer, config, info)
    batch = next(iter(data.make_dataset(records_dir, info, 'train', batch_size=48, training=False)))
    background = batch['is_background'].numpy()
    assert background.sum() == 12  # every 4th record
    peaks_only = {k: tf.boolean_mask(v, background == 0) for k, v in batch.items()}
    bg_only = {k: tf.boolean_mask(v, background == 1) for k, v in batch.items()}
    mixed, peaks, bg = (eval_step(b) for b in (batch, peaks_only, bg_only))
    assert float(bg['profile_nll']) == 0.0 and float(bg['peak_examples']) == 0.0
    # Background loss is the weighted counts MSE alone.
    np.testing.assert_allclose(float(bg['loss']), 2.0 * float(bg['log_counts_mse']), rtol=1e-5)
    np.testing.assert_allclose(float(mixed['profile_nll']), float(peaks['profile_nll']), rtol=1e-5)
    np.testing.assert_allclose(
        float(mixed['loss']), float(peaks['loss']) + float(bg['loss']), rtol=1e-5
    )
    assert float(mixed['peak_examples']) == 36 and float(mixed['examples']) == 48


@pytest.mark.slow
@pytest.mark.parametrize('profile_loss', ['per_strand', 'joint'])
def test_wide_input_model_with_background_trains_exports_and_evaluates(tmp_path, profile_loss):
    import tensorflow as tf

    from bpnet_tfx.inference import evaluation

    records_dir, info = _wide_records(tmp_path)
    config = _config(
        records_dir,
        str(tmp_path / profile_loss),
        info,
        epochs=3,
        model=_wide_model(info, profile_loss=profile_loss),
    )
    summary = trainer.train(config, info)
    rows = list(csv.DictReader(open(os.path.join(config.model_dir, 'history.csv'))))
    assert float(rows[-1]['val_profile_nll']) < float(rows[0]['val_profile_nll'])  # learns
    out = tf.saved_model.load(summary['export_dir']).signatures['serving_default'](
        one_hot=tf.zeros((2, 96, 4))
    )
    assert tuple(out['profile_probs'].shape) == (2, 40, 2)
    np.testing.assert_allclose(out['profile_probs'].numpy().sum(axis=1), 1.0, rtol=1e-4)
    # Per-strand counts add up to the total, whichever loss trained the model.
    np.testing.assert_allclose(
        out['counts'].numpy().sum(-1), np.expm1(out['log_total_counts'].numpy()[:, 0]), rtol=1e-4
    )
    result = evaluation.evaluate(summary['export_dir'], records_dir, 'valid', batch_size=7)
    assert result['background_skipped'] == 4 and result['overall']['n_examples'] == 12
    overall = result['overall']
    assert overall['profile_nll'] < overall['uniform_profile_nll']
    # The records fix the lengths: a model of other lengths is refused.
    other = _config(
        records_dir,
        str(tmp_path / 'other'),
        info,
        model=config_lib.ModelConfig(sequence_length=96, filters=8, num_dilated_layers=2),
    )
    with pytest.raises(trainer.TrainError, match='records hold 96-bp sequences and 40-bp'):
        trainer.train(other, info)


def test_records_without_validation_are_refused_unless_validation_none(tmp_path):
    from tests.fixtures.records import write_records

    records_dir = str(tmp_path / 'records')
    info = write_records(records_dir, split_counts={'train': 32}, sequence_length=200)
    with pytest.raises(trainer.TrainError, match='no validation records') as raised:
        trainer.check_run(_config(records_dir, str(tmp_path / 'm'), info), info, 1)
    message = str(raised.value)
    assert records_dir in message and '--validation=none' in message and '\n' not in message
    none = _config(records_dir, str(tmp_path / 'm'), info, validation='none')
    assert trainer.check_run(none, info, 1) is False
    for flag in ('patience', 'reduce_lr_patience'):
        with pytest.raises(trainer.TrainError, match=f'--{flag} needs a validation loss'):
            trainer.check_run(
                _config(records_dir, str(tmp_path / 'm'), info, validation='none', **{flag: 2}),
                info,
                1,
            )


@pytest.mark.slow
def test_validation_none_exports_the_last_epochs_weights(tmp_path):
    import tensorflow as tf

    from tests.fixtures.records import write_records

    records_dir = str(tmp_path / 'records')
    info = write_records(records_dir, split_counts={'train': 32}, sequence_length=200)
    model_dir = str(tmp_path / 'm')
    events = []
    summary = trainer.train(
        _config(
            records_dir, model_dir, info, epochs=3, validation='none', input_benchmark_batches=0
        ),
        info,
        progress=lambda event, **values: events.append(event),
    )
    assert summary['validation'] == 'none' and summary['exported'] == 'last_epoch'
    assert summary['note'] == "no validation: exported the last epoch's weights"
    assert summary['best_epoch'] is None and summary['monitor'] is None
    assert 'val_loss' not in summary['final']
    assert json.load(open(os.path.join(model_dir, 'train_summary.json')))['note'] == summary['note']
    assert events.count('epoch') == 3 and 'start' in events
    assert not os.path.exists(os.path.join(model_dir, 'checkpoints', 'best.weights.h5'))
    # The export's outputs are those of the weights in the last (epoch 3) checkpoint.
    model = model_lib.build_bpnet(_config(records_dir, model_dir, info).model)
    ckpt_dir = os.path.join(model_dir, 'checkpoints')
    epoch = tf.Variable(0, dtype=tf.int64)
    tf.train.Checkpoint(model=model, epoch=epoch).restore(
        tf.train.latest_checkpoint(ckpt_dir)
    ).expect_partial()
    assert int(epoch.numpy()) == 3
    x = np.random.default_rng(0).integers(0, 2, (2, 200, 4)).astype(np.float32)
    served = tf.saved_model.load(summary['export_dir']).signatures['serving_default'](
        one_hot=tf.constant(x)
    )
    np.testing.assert_allclose(
        served['profile_logits'].numpy(),
        model(x, training=False)['profile'].numpy(),
        rtol=1e-5,
        atol=1e-5,
    )
    untrained = model_lib.build_bpnet(_config(records_dir, model_dir, info).model)
    assert not np.allclose(
        served['profile_logits'].numpy(), untrained(x, training=False)['profile'].numpy(), atol=1e-3
    )


@pytest.mark.slow
@pytest.mark.parametrize('validation', ['records', 'none'])
def test_normalized_counts_head_exports_calibrated_statistics(small_records, tmp_path, validation):
    """The export's counts normalization holds the exact mean and variance of the pooled
    features of the first training windows (centred) under the exported weights."""
    import keras

    from bpnet_tfx.attribution import deeplift
    from bpnet_tfx.inference import export

    records_dir, info = small_records
    model_dir = str(tmp_path / 'm')
    config = _config(
        records_dir,
        model_dir,
        info,
        validation=validation,
        input_benchmark_batches=0,
        model=config_lib.ModelConfig(
            sequence_length=200, filters=8, num_dilated_layers=3, counts_head='normalized_pool'
        ),
    )
    summary = trainer.train(config, info)
    rebuilt = deeplift.rescale_model(export.ExportedModel(summary['export_dir']))
    pooled = keras.Model(rebuilt.input, rebuilt.get_layer('counts_pool').output)
    windows = [
        pooled(batch['one_hot'].numpy().astype(np.float32)).numpy()
        for batch in data.make_eval_dataset(records_dir, info, 'train', batch_size=16)
    ]
    features = np.concatenate(windows)[: calibration.COUNTS_NORM_EXAMPLES]
    assert len(features) == 64  # every training window (fewer than 512)
    norm = rebuilt.get_layer('counts_norm')
    np.testing.assert_allclose(norm.moving_mean.numpy(), features.mean(0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(norm.moving_variance.numpy(), features.var(0), rtol=1e-3, atol=1e-8)
