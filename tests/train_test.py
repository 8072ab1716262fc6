"""Tests of training: one step on 1 vs 2 replicas, a short run, export reloaded elsewhere."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from bpnet_tfx import model as model_lib
from bpnet_tfx import schema, train

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
                reverse_complement=True, jitter=True, cache=False, steps_per_epoch=None,
                cpu_replicas=1, seed=0,
                model=model_lib.ModelConfig(sequence_length=info.sequence_length, filters=8,
                                            num_dilated_layers=3))
    base.update(kw)
    return train.TrainConfig(**base)


_REPLICA_STEP = '''
import json, sys
import numpy as np
from bpnet_tfx import train
train.configure_cpu_replicas(2)
import keras, tensorflow as tf
from bpnet_tfx import augment, data, model as model_lib
from conftest import synthetic_window

rng = np.random.default_rng(0)
windows = [synthetic_window(rng, 64, reverse=bool(i % 2)) for i in range(8)]
one_hot = np.stack([w[0] for w in windows])
profile = np.stack([w[1] for w in windows])
targets = data.model_targets(tf.constant(profile), 1)
ds = tf.data.Dataset.from_tensors((one_hot, targets))
cfg = train.TrainConfig(records_dir='', model_dir='', export_dir='', epochs=1, batch_size=8,
    learning_rate=0.01, counts_loss_weight=3.0, shuffle_buffer=1, reverse_complement=False,
    jitter=False, cache=False, steps_per_epoch=None, cpu_replicas=2, seed=0,
    model=model_lib.ModelConfig(sequence_length=64, filters=8, num_dilated_layers=2))
cpus = [d.name for d in tf.config.list_logical_devices('CPU')]
out = {}
for n in (1, 2):
    strategy = tf.distribute.MirroredStrategy(cpus[:n],
        cross_device_ops=tf.distribute.ReductionToOneDevice())
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = train.build_and_compile(cfg, optimizer=keras.optimizers.SGD(0.01))
    before = [w.copy() for w in model.get_weights()]
    hist = model.fit(ds, epochs=1, verbose=0)
    after = model.get_weights()
    out[n] = {'replicas': strategy.num_replicas_in_sync, 'loss': hist.history['loss'][0],
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
    np.testing.assert_allclose(out['1']['loss'], out['2']['loss'], rtol=1e-5)
    assert max(out['1']['delta']) > 1e-4  # the step really moved the weights
    for w1, w2 in zip(out['1']['weights'], out['2']['weights']):
        np.testing.assert_allclose(np.array(w1), np.array(w2), rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_short_training_learns_exports_and_reloads_in_fresh_process(small_records, tmp_path):
    records_dir, info = small_records
    model_dir = str(tmp_path / 'model')
    config = _config(records_dir, model_dir, info, epochs=4)
    summary = train.train(config, info)
    assert summary['epochs'] == 4 and summary['replicas'] == 1
    assert summary['examples_per_second'] > 0
    assert summary['final']['loss'] < summary['best']['loss'] * 1.5
    written = json.loads(open(os.path.join(model_dir, 'train_summary.json')).read())
    assert written['parameters'] == summary['parameters']
    export_dir = summary['export_dir']
    assert schema.RecordsInfo.load(export_dir) == info

    # The Keras model with the best weights, on a fixed input.
    import keras
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
        fn = loaded.signatures['serving_default']
        out = fn(one_hot=tf.constant(np.load(sys.argv[2])))
        assert 'bpnet_tfx' not in sys.modules and 'keras' not in ''.join(
            m for m in sys.modules if m.startswith('bpnet'))
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
    del keras


def test_counts_loss_weight_parsing(small_records):
    _, info = small_records
    assert train.resolve_counts_loss_weight('10', info) == 10.0
    assert train.resolve_counts_loss_weight('auto', info) == pytest.approx(
        info.median_total_counts[0] / 10)
    for bad in ('ten', '-1', 'nan'):
        with pytest.raises(train.TrainError, match='counts_loss_weight'):
            train.resolve_counts_loss_weight(bad, info)


def test_cli_dry_run_and_one_line_errors(small_records, tmp_path):
    records_dir, _ = small_records
    base = [sys.executable, '-m', 'bpnet_tfx.train', f'--records_dir={records_dir}',
            f'--model_dir={tmp_path / "m"}']
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL='2')
    proc = subprocess.run(base + ['--dry_run', '--batch_size=8'], capture_output=True,
                          text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'parameters: 120,964' in proc.stdout
    assert not (tmp_path / 'm').exists()  # a dry run writes nothing
    proc = subprocess.run(base[:3] + [f'--records_dir={tmp_path / "nowhere"}',
                                      f'--model_dir={tmp_path / "m"}', '--dry_run'],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2
    assert 'Traceback' not in proc.stderr
    assert 'train: error:' in proc.stderr and 'nowhere' in proc.stderr
