"""Tests of devices: the precision rule and the dtype policy context."""

import keras
import pytest

from bpnet_tfx import devices


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
