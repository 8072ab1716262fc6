"""Tests of devices: the precision rule, the dtype policy context, and splitting inference
batches over devices (one device against two logical CPUs)."""

import keras
import pytest

from bpnet_tfx.common import devices
from tests.fixtures.mains import run_mains


def test_auto_precision_is_float32_and_unknown_names_are_refused():
    assert devices.resolve_precision('auto') == 'float32'
    assert devices.resolve_precision('mixed_bfloat16') == 'mixed_bfloat16'
    with pytest.raises(devices.DeviceError, match='--precision must be one of'):
        devices.resolve_precision('float8')
    with pytest.raises(devices.DeviceError, match='--strategy must be one of'):
        devices.make_strategy('tpu')


def test_dtype_policy_is_set_inside_and_restored_after_even_on_error():
    before = keras.mixed_precision.global_policy().name
    with devices.dtype_policy('mixed_bfloat16') as name:
        assert name == keras.mixed_precision.global_policy().name == 'mixed_bfloat16'
    assert keras.mixed_precision.global_policy().name == before
    with pytest.raises(RuntimeError):
        with devices.dtype_policy('mixed_float16'):
            raise RuntimeError
    assert keras.mixed_precision.global_policy().name == before


def test_multi_worker_needs_tf_config(monkeypatch):
    monkeypatch.delenv('TF_CONFIG', raising=False)
    with pytest.raises(devices.DeviceError, match='TF_CONFIG'):
        devices.make_strategy('multi_worker')
    monkeypatch.setenv('TF_CONFIG', '{not json')
    with pytest.raises(devices.DeviceError, match='not valid JSON'):
        devices.make_strategy('multi_worker')


def test_split_batch_joins_the_parts_in_row_order():
    import numpy as np

    calls = []

    def fn(x, none, y):
        assert none is None
        calls.append(len(x))
        return {'sum': x + y, 'rows': [x * 2, np.arange(len(x))]}

    x, y = np.arange(7.0)[:, None], np.ones((7, 1))
    out = devices.split_batch(fn, (x, None, y), ['/CPU:0'] * 3)
    assert sorted(calls) == [2, 2, 3]  # contiguous runs, one a device
    np.testing.assert_array_equal(out['sum'], x + y)
    np.testing.assert_array_equal(out['rows'][0], x * 2)
    np.testing.assert_array_equal(out['rows'][1], [0, 1, 0, 1, 0, 1, 2])
    calls.clear()
    devices.split_batch(fn, (x[:2], None, y[:2]), ['/CPU:0'] * 3)
    assert calls == [1, 1]  # no empty part
    assert devices.inference_devices()  # at least the CPU


def _on_two_logical_cpus(export_dir, records_dir, bed, fasta, tmp_path):
    """contrib (into c2), evaluate (e2.json) and predict (p2) with --cpu_replicas=2, the three
    mains in one subprocess."""
    common = ['--cpu_replicas=2', f'--saved_model={export_dir}']
    records = [*common, f'--records_dir={records_dir}']
    return run_mains(
        [
            ('bpnet_tfx.contrib', [*records, f'--output_dir={tmp_path / "c2"}', '--batch_size=9']),
            (
                'bpnet_tfx.evaluate',
                [*records, '--batch_size=5', f'--output_json={tmp_path / "e2.json"}'],
            ),
            (
                'bpnet_tfx.predict',
                [
                    *common,
                    f'--regions_bed={bed}',
                    f'--fasta={fasta}',
                    f'--output_prefix={tmp_path / "p2"}',
                    '--batch_size=5',
                ],
            ),
        ],
        timeout=600,
    )


@pytest.mark.slow  # a subprocess
def test_two_logical_cpus_give_the_one_device_outputs(tiny_export, genome, tmp_path):
    """contrib, predict --regions_bed and evaluate with each batch split over 2 logical CPUs
    (configured before TensorFlow starts, in a subprocess that runs the three mains) equal
    this process's one-device results."""
    import json

    import numpy as np
    import pyBigWig

    from bpnet_tfx.attribution import contributions
    from bpnet_tfx.inference import evaluation, tracks

    export_dir, _, records_dir, _ = tiny_export
    fasta = genome.fasta
    bed = tmp_path / 'r.bed'
    bed.write_text('chrT\t100\t700\nchrT\t900\t1000\n')
    one = {
        'contrib': contributions.load_outputs(
            contributions.compute_contributions(
                export_dir, str(tmp_path / 'c1'), records_dir=records_dir, batch_size=9
            )['output_dir']
        ),
        'evaluate': evaluation.evaluate(export_dir, records_dir, 'valid', batch_size=5),
        'tracks': tracks.predict_tracks(
            export_dir, str(bed), fasta=str(fasta), output_prefix=str(tmp_path / 'p1'), batch_size=5
        ),
    }
    contrib, evaluate, predict = _on_two_logical_cpus(export_dir, records_dir, bed, fasta, tmp_path)
    for proc in (contrib, evaluate, predict):
        assert proc.returncode == 0, proc.stderr[-3000:]
    assert ', 2 devices)' in contrib.stdout
    two = contributions.load_outputs(str(tmp_path / 'c2'))
    assert two['windows'] == one['contrib']['windows']
    for target, hyp in one['contrib']['hyp'].items():
        np.testing.assert_allclose(two['hyp'][target], hyp, rtol=1e-5, atol=1e-7)
    metrics = json.loads((tmp_path / 'e2.json').read_text())['overall']
    for key, value in one['evaluate']['overall'].items():
        np.testing.assert_allclose(metrics[key], value, rtol=1e-5, err_msg=key)
    for key, path in one['tracks']['tracks'].items():
        a, b = pyBigWig.open(path), pyBigWig.open(path.replace('p1.', 'p2.'))
        np.testing.assert_allclose(
            b.values('chrT', 0, 1000, numpy=True),
            a.values('chrT', 0, 1000, numpy=True),
            rtol=1e-5,
            atol=1e-7,
            err_msg=key,
        )
        a.close()
        b.close()
