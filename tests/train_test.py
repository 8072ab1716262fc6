"""Tests of training: 1 vs 2 replicas, a short run with export, resume, corrupt shards, CLI."""

import csv
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from bpnet_tfx import model as model_lib
from bpnet_tfx import schema, trainer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run_python(code: str, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([REPO, os.path.join(REPO, 'tests')]),
               TF_CPP_MIN_LOG_LEVEL='2')
    return subprocess.run([sys.executable, '-c', textwrap.dedent(code), *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


def _config(records_dir, model_dir, info, **kw):
    base = dict(records_dir=records_dir, model_dir=model_dir,
                export_dir=os.path.join(model_dir, 'export'), epochs=2, batch_size=16,
                learning_rate=2e-3, counts_loss_weight=1.0, shuffle_buffer=100,
                input_benchmark_batches=2,
                model=model_lib.ModelConfig(sequence_length=info.sequence_length, filters=8,
                                            num_dilated_layers=3))
    base.update(kw)
    return trainer.TrainConfig(**base)


_REPLICA_STEP = '''
import json, sys
import numpy as np
from bpnet_tfx import trainer
trainer.configure_cpu_replicas(2)
import keras, tensorflow as tf
from bpnet_tfx import model as model_lib, schema
from conftest import synthetic_window

rng = np.random.default_rng(0)
windows = [synthetic_window(rng, 64, reverse=bool(i % 2)) for i in range(8)]
batch = {'one_hot': np.stack([w[0] for w in windows]),
         'profile': np.stack([w[1] for w in windows])}
info = schema.RecordsInfo(sequence_length=64, max_jitter=0, tasks=('t',))
cfg = trainer.TrainConfig(records_dir='', model_dir='', export_dir='', batch_size=8,
    counts_loss_weight=3.0, reverse_complement=False, jitter=False,
    model=model_lib.ModelConfig(sequence_length=64, filters=8, num_dilated_layers=2))
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
    proc = _run_python(_REPLICA_STEP, str(out_path))
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
    first, last = (dict(zip(lines[0].split(','), map(float, ln.split(','))))
                   for ln in (lines[1], lines[-1]))
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
    proc = _run_python('''
        import sys
        import numpy as np
        import tensorflow as tf
        loaded = tf.saved_model.load(sys.argv[1])
        out = loaded.signatures['serving_default'](one_hot=tf.constant(np.load(sys.argv[2])))
        # TensorFlow may pull in Keras itself; our package must not be needed.
        assert not any(m.startswith('bpnet_tfx') for m in sys.modules)
        np.savez(sys.argv[3], **{k: v.numpy() for k, v in out.items()})
    ''', export_dir, str(tmp_path / 'x.npy'), str(tmp_path / 'out.npz'))
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = np.load(tmp_path / 'out.npz')
    logits = expected['profile'].numpy()
    np.testing.assert_allclose(got['profile_logits'], logits, rtol=1e-5, atol=1e-5)
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    np.testing.assert_allclose(got['profile_probs'], probs, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(got['log_counts'], expected['log_counts'].numpy(), rtol=1e-5,
                               atol=1e-5)
    np.testing.assert_allclose(got['counts'], np.expm1(expected['log_counts'].numpy()),
                               rtol=1e-4)


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
    from bpnet_tfx import data
    path = data.list_shards(records_dir, split)[0]
    blob = open(path, 'rb').read()
    with open(path, 'wb') as f:
        f.write(blob[:len(blob) // 2])
    return path


def test_corrupt_shard_is_named_or_skipped_and_counted(small_records, tmp_path):
    records_dir, info = small_records
    path = _truncate_first_shard(records_dir, 'train')
    with pytest.raises(trainer.TrainError, match=os.path.basename(path)):
        trainer.train(_config(records_dir, str(tmp_path / 'a'), info, epochs=1,
                              input_benchmark_batches=0), info)
    summary = trainer.train(_config(records_dir, str(tmp_path / 'b'), info, epochs=1,
                                    skip_corrupt_records=True), info)
    skipped = summary['skipped_corrupt_records']['train']
    assert 0 < skipped < 32  # the shard held 32 records; its first part is still read
    assert summary['skipped_corrupt_records']['valid'] == 0


def test_counts_loss_weight_parsing(small_records):
    _, info = small_records
    assert trainer.resolve_counts_loss_weight('10', info) == (10.0,)
    assert trainer.resolve_counts_loss_weight('auto', info) == pytest.approx(
        (info.median_total_counts[0] / 10,))
    for bad in ('ten', '-1', 'nan'):
        with pytest.raises(trainer.TrainError, match='counts_loss_weight'):
            trainer.resolve_counts_loss_weight(bad, info)


def test_cli_dry_run_and_one_line_errors(small_records, tmp_path):
    records_dir, _ = small_records
    base = [sys.executable, '-m', 'bpnet_tfx.train', f'--model_dir={tmp_path / "m"}']
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL='2')

    def run(*flags):
        return subprocess.run(base + list(flags), capture_output=True, text=True, env=env,
                              timeout=300)

    proc = run(f'--records_dir={records_dir}', '--dry_run', '--batch_size=8')
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'parameters: 120,964' in proc.stdout and 'receptive field: 2093 bp' in proc.stdout
    assert not (tmp_path / 'm').exists()  # a dry run writes nothing
    for flags, message in (([f'--records_dir={tmp_path / "nowhere"}'], 'nowhere'),
                           ([f'--records_dir={records_dir}', '--batch_size=0'], 'batch_size'),
                           ([f'--records_dir={records_dir}', '--counts_loss_weight=x'],
                            'counts_loss_weight')):
        proc = run(*flags, '--dry_run')
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert 'Traceback' not in proc.stderr
        assert 'train: error:' in proc.stderr and message in proc.stderr
    proc = run(f'--records_dir={records_dir}', '--no_such_flag=1')
    assert proc.returncode != 0 and 'no_such_flag' in proc.stderr


def test_model_dir_of_another_architecture_is_refused(small_records, tmp_path):
    records_dir, _ = small_records
    model_dir = tmp_path / 'm'
    model_dir.mkdir()
    (model_dir / 'train_config.json').write_text(json.dumps({'model': {'filters': 3}}))
    proc = subprocess.run(
        [sys.executable, '-m', 'bpnet_tfx.train', f'--records_dir={records_dir}',
         f'--model_dir={model_dir}', '--epochs=1'], capture_output=True, text=True,
        env=dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL='2'), timeout=300)
    assert proc.returncode == 2 and 'another architecture' in proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize('precision', ['mixed_bfloat16', 'mixed_float16'])
def test_mixed_precision_trains_with_float32_outputs(small_records, tmp_path, precision):
    import keras
    records_dir, info = small_records
    summary = trainer.train(_config(records_dir, str(tmp_path / precision), info, epochs=1,
                                    precision=precision, input_benchmark_batches=0), info)
    assert summary['precision'] == precision
    assert np.isfinite(summary['final']['loss'])
    assert keras.mixed_precision.global_policy().name == 'float32'  # restored after the run
    import tensorflow as tf
    out = tf.saved_model.load(summary['export_dir']).signatures['serving_default'](
        one_hot=tf.zeros((1, 200, 4)))
    assert out['profile_probs'].dtype == tf.float32
    np.testing.assert_allclose(out['profile_probs'].numpy().sum(axis=1), 1.0, rtol=1e-3)


def test_early_stopping_and_learning_rate_reduction(small_records, tmp_path):
    records_dir, info = small_records
    # A zero learning rate cannot improve on the first epoch.
    summary = trainer.train(_config(records_dir, str(tmp_path / 'm'), info, epochs=10,
                                    learning_rate=0.0, patience=2, reduce_lr_patience=1,
                                    input_benchmark_batches=0), info)
    assert summary['stopped_early'] and summary['epochs'] == 3 and summary['best_epoch'] == 1
    # A rerun of a run that stopped early trains no further.
    again = trainer.train(_config(records_dir, str(tmp_path / 'm'), info, epochs=10,
                                  learning_rate=0.0, patience=2, input_benchmark_batches=0),
                          info)
    assert again['epochs'] == 3 and again['epochs_this_run'] == 0
    rows = list(csv.DictReader(open(tmp_path / 'm' / 'history.csv')))
    assert len(rows) == 3


@pytest.mark.parametrize('patience, expected', [
    (1, [1.0, 1.0, 0.5, 0.25, 0.25, 0.125, 0.0625]),
    (2, [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25]),
    (0, [1.0] * 7)])
def test_plateau_learning_rate_rule(patience, expected):
    # Validation losses 5, 4, 4.5, 4.2, 3, 3.1, 3.2: best at epochs 1, 2 and 5.
    stale = [0, 0, 1, 2, 0, 1, 2]
    rate, rates = 1.0, []
    for s in stale:
        rate = trainer.plateau_learning_rate(rate, s, patience)
        rates.append(rate)
    assert rates == expected
    assert trainer.plateau_learning_rate(1.5e-6, 1, 1) == 1e-6  # Floor...
    assert trainer.plateau_learning_rate(1e-7, 1, 1) == 1e-7  # ...never a raise.


def test_learning_rate_halves_on_plateau(small_records, tmp_path, monkeypatch):
    records_dir, info = small_records
    # A scripted validation loss makes the plateau deterministic: best at epochs 1, 2 and 5.
    losses = iter([5.0, 4.0, 4.5, 4.2, 3.0, 3.1, 3.2])
    real = trainer._evaluate

    def scripted(*args):
        return {**real(*args), 'val_loss': next(losses)}

    monkeypatch.setattr(trainer, '_evaluate', scripted)
    summary = trainer.train(_config(records_dir, str(tmp_path / 'm'), info, epochs=7,
                                    steps_per_epoch=2, learning_rate=0.5,
                                    reduce_lr_patience=1, input_benchmark_batches=0), info)
    rows = list(csv.DictReader(open(tmp_path / 'm' / 'history.csv')))
    assert [float(r['val_loss']) for r in rows] == [5.0, 4.0, 4.5, 4.2, 3.0, 3.1, 3.2]
    assert [float(r['learning_rate']) for r in rows] == pytest.approx(
        [0.5, 0.5, 0.25, 0.125, 0.125, 0.0625, 0.03125])
    assert summary['epochs'] == 7 and summary['best_epoch'] == 5


@pytest.mark.slow
def test_run_killed_after_a_checkpoint_resumes_to_the_same_epochs(small_records, tmp_path):
    import signal
    import time
    records_dir, _ = small_records
    model_dir = tmp_path / 'm'
    cmd = [sys.executable, '-m', 'bpnet_tfx.train', f'--records_dir={records_dir}',
           f'--model_dir={model_dir}', '--epochs=4', '--batch_size=8', '--filters=8',
           '--num_dilated_layers=3', '--checkpoint_every_steps=3',
           '--input_benchmark_batches=0', '--precision=float32']
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL='2')
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    index = model_dir / 'checkpoints' / 'checkpoint'
    while not index.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert index.exists() and proc.returncode == -signal.SIGKILL
    assert not (model_dir / 'train_summary.json').exists()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert 'resuming from' in done.stdout
    summary = json.loads((model_dir / 'train_summary.json').read_text())
    assert summary['epochs'] == 4
    rows = list(csv.DictReader(open(model_dir / 'history.csv')))
    assert [int(r['epoch']) for r in rows] == [1, 2, 3, 4]


def _free_ports(n):
    import socket
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(('127.0.0.1', 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.mark.slow
def test_two_workers_on_loopback_train_and_only_the_chief_writes(small_records, tmp_path):
    records_dir, _ = small_records
    ports = _free_ports(2)
    workers = [f'127.0.0.1:{p}' for p in ports]
    model_dir = tmp_path / 'm'
    procs = []
    for index in range(2):
        tf_config = {'cluster': {'worker': workers}, 'task': {'type': 'worker', 'index': index}}
        env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL='2',
                   TF_CONFIG=json.dumps(tf_config))
        procs.append(subprocess.Popen(
            [sys.executable, '-m', 'bpnet_tfx.train', f'--records_dir={records_dir}',
             f'--model_dir={model_dir}', '--strategy=multi_worker', '--epochs=2',
             '--batch_size=8', '--filters=8', '--num_dilated_layers=3',
             '--input_benchmark_batches=0', '--precision=float32'],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outs = [p.communicate(timeout=400) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    assert 'train: 2 epochs' in outs[0][0]  # worker 0 is the chief
    assert 'worker done after 2 epochs' in outs[1][0]
    summary = json.loads((model_dir / 'train_summary.json').read_text())
    # MultiWorkerMirroredStrategy's class is CollectiveAllReduceStrategy.
    assert summary['strategy'] == 'CollectiveAllReduceStrategy' and summary['replicas'] == 2
    assert summary['examples_seen'] == 2 * 8 * 8  # 64 records / global batch 8, 2 epochs
    assert (model_dir / 'export' / 'saved_model.pb').exists()
    leftovers = [p.name for p in model_dir.iterdir() if p.name.startswith('.worker')]
    assert leftovers == []  # the other worker's scratch checkpoints are gone


def _wide_records(tmp_path, background_every=4):
    from conftest import write_records
    path = str(tmp_path / 'wide_records')
    # 96 -> 40 bp with 2 dilated layers, stem 9, profile kernel 25: 8 + 12 + 24 = 44 + 12 spare.
    info = write_records(path, split_counts={'train': 48, 'valid': 16}, sequence_length=96,
                         output_length=40, max_jitter=6, with_expected=True,
                         background_every=background_every)
    return path, info


def _wide_model(info, **kw):
    return model_lib.ModelConfig(sequence_length=info.sequence_length,
                                 output_length=info.output_length, filters=8,
                                 stem_kernel_size=9, num_dilated_layers=2,
                                 profile_kernel_size=25, **kw)


def test_background_examples_add_no_profile_loss(tmp_path):
    import keras
    import tensorflow as tf
    records_dir, info = _wide_records(tmp_path)
    config = _config(records_dir, str(tmp_path / 'm'), info, model=_wide_model(info),
                     counts_loss_weight=2.0)
    strategy = tf.distribute.get_strategy()
    keras.utils.set_random_seed(0)
    model = model_lib.build_bpnet(config.model)
    optimizer = keras.optimizers.Adam()
    _, eval_step = trainer.make_step_functions(strategy, model, optimizer, config, info)
    batch = next(iter(trainer.data.make_dataset(records_dir, info, 'train', batch_size=48,
                                                training=False)))
    background = batch['is_background'].numpy()
    assert background.sum() == 12  # every 4th record
    peaks_only = {k: tf.boolean_mask(v, background == 0) for k, v in batch.items()}
    bg_only = {k: tf.boolean_mask(v, background == 1) for k, v in batch.items()}
    mixed, peaks, bg = (eval_step(b) for b in (batch, peaks_only, bg_only))
    assert float(bg['profile_nll']) == 0.0 and float(bg['peak_examples']) == 0.0
    # Background loss is the weighted counts MSE alone.
    np.testing.assert_allclose(float(bg['loss']), 2.0 * float(bg['log_counts_mse']), rtol=1e-5)
    np.testing.assert_allclose(float(mixed['profile_nll']), float(peaks['profile_nll']),
                               rtol=1e-5)
    np.testing.assert_allclose(float(mixed['loss']), float(peaks['loss']) + float(bg['loss']),
                               rtol=1e-5)
    assert float(mixed['peak_examples']) == 36 and float(mixed['examples']) == 48


@pytest.mark.slow
@pytest.mark.parametrize('profile_loss', ['per_strand', 'joint'])
def test_wide_input_model_with_background_trains_exports_and_evaluates(tmp_path,
                                                                       profile_loss):
    import tensorflow as tf

    from bpnet_tfx import evaluation
    records_dir, info = _wide_records(tmp_path)
    config = _config(records_dir, str(tmp_path / profile_loss), info, epochs=3,
                     model=_wide_model(info, profile_loss=profile_loss))
    summary = trainer.train(config, info)
    rows = list(csv.DictReader(open(os.path.join(config.model_dir, 'history.csv'))))
    assert float(rows[-1]['val_profile_nll']) < float(rows[0]['val_profile_nll'])  # learns
    out = tf.saved_model.load(summary['export_dir']).signatures['serving_default'](
        one_hot=tf.zeros((2, 96, 4)))
    assert tuple(out['profile_probs'].shape) == (2, 40, 2)
    np.testing.assert_allclose(out['profile_probs'].numpy().sum(axis=1), 1.0, rtol=1e-4)
    # Per-strand counts add up to the total, whichever loss trained the model.
    np.testing.assert_allclose(out['counts'].numpy().sum(-1),
                               np.expm1(out['log_total_counts'].numpy()[:, 0]), rtol=1e-4)
    result = evaluation.evaluate(summary['export_dir'], records_dir, 'valid', batch_size=7)
    assert result['background_skipped'] == 4 and result['overall']['n_examples'] == 12
    overall = result['overall']
    assert overall['profile_nll'] < overall['uniform_profile_nll']
    # The records fix the lengths: a model of other lengths is refused.
    other = _config(records_dir, str(tmp_path / 'other'), info,
                    model=model_lib.ModelConfig(sequence_length=96, filters=8,
                                                num_dilated_layers=2))
    with pytest.raises(trainer.TrainError, match='records hold 96-bp sequences and 40-bp'):
        trainer.train(other, info)


def test_cli_dry_run_reports_receptive_field_and_crops(tmp_path):
    records_dir, _ = _wide_records(tmp_path)
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL='2')
    proc = subprocess.run(
        [sys.executable, '-m', 'bpnet_tfx.train', f'--records_dir={records_dir}',
         f'--model_dir={tmp_path / "m"}', '--dry_run', '--batch_size=8', '--filters=8',
         '--stem_kernel_size=9', '--num_dilated_layers=2', '--profile_kernel_size=25',
         '--profile_loss=joint'], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'receptive field: 45 bp' in proc.stdout  # 9 + 2 * (2 + 4) + 25 - 1
    assert ('input 96 -> stem_conv 88 -> dilated_conv_1 84 -> dilated_conv_2 76 -> '
            'profile_conv 52 -> output 40') in proc.stdout
    assert 'valid padding, profile loss joint' in proc.stdout
    # Layers that cannot fit the records' lengths: one line, exit 2.
    proc = subprocess.run(
        [sys.executable, '-m', 'bpnet_tfx.train', f'--records_dir={records_dir}',
         f'--model_dir={tmp_path / "m"}', '--dry_run', '--num_dilated_layers=5'],
        capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2 and 'Traceback' not in proc.stderr
    assert 'too short' in proc.stderr
