"""Tests of the SavedModel: both signatures, served by a process with only TensorFlow."""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from bpnet_tfx.genome import sequence
from bpnet_tfx.inference import export
from bpnet_tfx.records import schema
from tests.fixtures.mains import main_env, run_python


def test_encode_sequences_matches_numpy_one_hot():
    seqs = ['ACGTNacgtn', 'RYKM-.acGT', 'TTTTTTTTTT']
    got = export.encode_sequences(tf.constant(seqs), 10).numpy()
    np.testing.assert_array_equal(got, np.stack([sequence.one_hot(s) for s in seqs]))
    assert got.dtype == np.float32
    assert export.encode_sequences(tf.constant([], tf.string), 10).shape == (0, 10, 4)
    with pytest.raises(tf.errors.InvalidArgumentError, match='must be 10 bp long'):
        export.encode_sequences(tf.constant(['ACGT' * 3, 'A' * 10]), 10)


def _tensorflow_only_path(tmp_path) -> str:
    """A folder of links to this environment's packages except Keras and bpnet_tfx.

    `python -S` with it as PYTHONPATH is an environment where only TensorFlow and its own
    dependencies can be imported, as on a serving machine.
    """
    folder = tmp_path / 'tensorflow_only'
    folder.mkdir()
    blocked = ('keras', 'tf_keras', 'bpnet')
    for site in {sysconfig.get_paths()['purelib'], sysconfig.get_paths()['platlib']}:
        for entry in os.listdir(site):
            if (
                entry.lower().replace('-', '_').startswith(blocked)
                or entry.endswith('.pth')
                or entry.endswith('.egg-link')
                or (folder / entry).exists()
            ):
                continue
            os.symlink(os.path.join(site, entry), folder / entry)
    return str(folder)


_SERVE = '''
import importlib.util, json, sys
import numpy as np
import tensorflow as tf

assert importlib.util.find_spec('keras') is None, 'keras is importable'
assert importlib.util.find_spec('bpnet_tfx') is None, 'bpnet_tfx is importable'

export_dir, seq_file, one_hot_file, out_file = sys.argv[1:]
loaded = tf.saved_model.load(export_dir)
report = {'signatures': sorted(loaded.signatures)}
by_string = loaded.signatures['serving_sequence']
by_one_hot = loaded.signatures['serving_default']
report['inputs'] = {name: {k: [spec.dtype.name, spec.shape.as_list()]
                           for k, spec in fn.structured_input_signature[1].items()}
                    for name, fn in loaded.signatures.items()}
seqs = json.load(open(seq_file))
a = by_string(sequence=tf.constant(seqs))
b = by_one_hot(one_hot=tf.constant(np.load(one_hot_file)))
try:
    by_string(sequence=tf.constant(['ACGT']))
    report['wrong_length'] = 'no error'
except tf.errors.InvalidArgumentError as e:
    report['wrong_length'] = e.message.splitlines()[0]
report['modules'] = sorted(m for m in sys.modules if m.split('.')[0] in ('keras', 'bpnet_tfx'))
json.dump(report, open(out_file + '.json', 'w'))
np.savez(out_file, **{'string_' + k: v.numpy() for k, v in a.items()},
         **{'one_hot_' + k: v.numpy() for k, v in b.items()})
'''


@pytest.mark.slow  # a fresh Python process loads the export
def test_string_and_one_hot_signatures_agree_in_fresh_process(tiny_export, tmp_path):
    export_dir, model, _, info = tiny_export
    rng = np.random.default_rng(0)
    length = info.sequence_length
    seqs = [''.join(rng.choice(list('ACGTacgtNnRY-'), length)) for _ in range(3)]
    seqs.append('N' * length)
    one_hot = np.stack([sequence.one_hot(s) for s in seqs]).astype(np.float32)
    (tmp_path / 'seqs.json').write_text(json.dumps(seqs))
    np.save(tmp_path / 'one_hot.npy', one_hot)
    out = tmp_path / 'out.npz'
    # A fresh process where Keras and bpnet_tfx cannot even be imported.
    proc = run_python(
        '-S',
        '-c',
        textwrap.dedent(_SERVE),
        export_dir,
        tmp_path / 'seqs.json',
        tmp_path / 'one_hot.npy',
        out,
        cwd=str(tmp_path),
        env=main_env(PYTHONPATH=_tensorflow_only_path(tmp_path)),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / 'out.npz.json').read_text())
    assert report['modules'] == []  # served with TensorFlow alone: no keras, no bpnet_tfx
    assert report['signatures'] == ['serving_default', 'serving_sequence']
    assert report['inputs'] == {
        'serving_default': {'one_hot': ['float32', [None, length, 4]]},
        'serving_sequence': {'sequence': ['string', [None]]},
    }
    assert f'must be {length} bp long' in report['wrong_length']
    got = np.load(out)
    expected = model(one_hot, training=False)
    for name in export.OUTPUTS:
        np.testing.assert_array_equal(got[f'string_{name}'], got[f'one_hot_{name}'])
    np.testing.assert_allclose(
        got['one_hot_profile_logits'], expected['profile'].numpy(), rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(
        got['one_hot_log_counts'], expected['log_counts'].numpy(), rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(
        got['one_hot_counts'], np.expm1(got['one_hot_log_counts']), rtol=1e-6
    )
    np.testing.assert_allclose(got['one_hot_profile_probs'].sum(axis=1), 1.0, rtol=1e-5)


def _rewrite(path, filename, **changes):
    file = os.path.join(path, filename)
    with open(file) as f:
        d = json.load(f)
    d.update(changes)
    with open(file, 'w') as f:
        json.dump(d, f)


def test_inconsistent_export_metadata_is_refused(tiny_export, tmp_path):
    export_dir = tiny_export[0]
    info, config = export.load_export_info(export_dir)
    assert export.load_saved_model(export_dir, config)[1] is not None
    # model_config.json disagreeing with metadata.json.
    broken = str(tmp_path / 'broken')
    shutil.copytree(export_dir, broken)
    _rewrite(broken, export.MODEL_CONFIG_FILENAME, sequence_length=100, output_length=100)
    with pytest.raises(schema.SchemaError, match='export metadata inconsistent.*100 bp'):
        export.load_export_info(broken)
    # Both files agreeing with each other, not with the SavedModel's input.
    _rewrite(broken, schema.METADATA_FILENAME, sequence_length=100, output_length=100)
    _, config = export.load_export_info(broken)
    with pytest.raises(schema.SchemaError, match=r'takes one-hot windows of shape \(200, 4\)'):
        export.load_saved_model(broken, config)
    with pytest.raises(schema.SchemaError, match='no .serving_x. signature'):
        export.load_saved_model(export_dir, config, 'serving_x')
    with pytest.raises(schema.SchemaError, match='no such folder'):
        export.load_export_info(str(tmp_path / 'nowhere'))


@pytest.mark.slow  # saved_model_cli loads the export in a fresh process
def test_the_saved_model_cli_example_in_the_docs_runs(tiny_export, tmp_path):
    from tests.fixtures.paths import REPO

    export_dir, model, _, info = tiny_export
    docs = open(os.path.join(REPO, 'docs', 'inference.md')).read()
    section = docs.split('### From the shell: `saved_model_cli`', 1)[1]
    script = section.split('```bash\n', 1)[1].split('```', 1)[0]
    assert 'L = 1000' in script and 'demo_output/model/export' in script
    tools = os.path.dirname(sys.executable)  # the environment's python and saved_model_cli
    script = (
        script.replace('L = 1000', f'L = {info.sequence_length}')
        .replace('demo_output/model/export', export_dir)
        .replace('python -c', f'{sys.executable} -c')
        .replace('saved_model_cli run', f'{os.path.join(tools, "saved_model_cli")} run')
    )
    proc = subprocess.run(
        ['bash', '-e', '-c', script],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=str(tmp_path),
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2'),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    length = info.sequence_length
    seqs = ['ACGT' * (length // 4), 'acgtN' * (length // 5)]
    one_hot = np.stack([sequence.one_hot(s) for s in seqs]).astype(np.float32)
    expected = np.expm1(model(one_hot, training=False)['log_counts'].numpy())
    counts = np.load(tmp_path / 'predictions' / 'counts.npy')
    np.testing.assert_allclose(counts, expected, rtol=1e-5, atol=1e-5)
    assert proc.stdout.strip().endswith(']]')  # the last command prints them
