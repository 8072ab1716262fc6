"""Tests of the BPNet body: parameter counts, shapes, layer names, valid padding, dtypes."""

import numpy as np
import pytest

from bpnet_tfx.modeling import config as config_lib
from bpnet_tfx.modeling import model as model_lib


def test_reference_parameter_count():
    model = model_lib.build_bpnet(config_lib.ModelConfig())
    assert model.count_params() == 120_964


def test_reference_notebook_single_strand_five_channel_parameter_count():
    # The reference notebook's variant: A, G, C, T, N inputs; one profile and one count output.
    config = config_lib.ModelConfig(num_channels=5, num_strands=1)
    assert model_lib.build_bpnet(config).count_params() == 120_898


def test_output_shapes_single_and_multi_task():
    single = model_lib.build_bpnet(config_lib.ModelConfig(sequence_length=100))
    out = single(np.zeros((3, 100, 4), np.float32))
    assert tuple(out['profile'].shape) == (3, 100, 2)
    assert tuple(out['log_counts'].shape) == (3, 2)
    multi = model_lib.build_bpnet(config_lib.ModelConfig(sequence_length=100, num_tasks=3))
    out = multi(np.zeros((3, 100, 4), np.float32))
    assert tuple(out['profile'].shape) == (3, 100, 3, 2)
    assert tuple(out['log_counts'].shape) == (3, 3, 2)
    # Shared body, one head conv/dense with tasks x strands outputs.
    assert multi.count_params() == 120_964 - 2 * (25 * 64 + 1) - 2 * 65 + 6 * (25 * 64 + 1) + 6 * 65


def test_every_layer_named_and_config_round_trip():
    config = config_lib.ModelConfig(filters=8, num_dilated_layers=3)
    model = model_lib.build_bpnet(config)
    names = [layer.name for layer in model.layers]
    assert 'stem_conv' in names and 'dilated_conv_3' in names and 'profile_conv' in names
    assert config_lib.ModelConfig.from_dict(config.to_dict()) == config
    rebuilt = model.__class__.from_config(model.get_config())
    assert rebuilt.count_params() == model.count_params()


@pytest.mark.parametrize('layers,stem,profile', [(8, 21, 75), (6, 21, 75), (4, 11, 25), (2, 5, 3)])
def test_valid_padding_crop_arithmetic_gives_the_output_length(layers, stem, profile):
    output_length = 50
    probe = config_lib.ModelConfig(
        sequence_length=5000,
        output_length=50,
        filters=4,
        stem_kernel_size=stem,
        num_dilated_layers=layers,
        profile_kernel_size=profile,
    )
    needed = probe.required_input_length
    # stem - 1 + 2 * (2 + 4 + ... + 2**layers) + profile - 1 bases are lost.
    assert needed == output_length + stem - 1 + 2 * (2 ** (layers + 1) - 2) + profile - 1
    for extra in (0, 10):  # exactly enough, and 10 bp more (cropped 5 + 5)
        config = config_lib.ModelConfig(
            sequence_length=needed + extra,
            output_length=50,
            filters=4,
            stem_kernel_size=stem,
            num_dilated_layers=layers,
            profile_kernel_size=profile,
        )
        lengths = config.crop_arithmetic()
        assert lengths['profile_conv'] == output_length + extra and lengths['output'] == 50
        model = model_lib.build_bpnet(config)
        out = model(np.zeros((2, needed + extra, 4), np.float32))
        assert tuple(out['profile'].shape) == (2, 50, 2)
        assert tuple(out['log_counts'].shape) == (2, 2)
        # Every layer's output is as long as the arithmetic says.
        for name, length in lengths.items():
            if name not in ('input', 'output'):
                assert model.get_layer(name).output.shape[1] == length, name
        # Valid padding changes lengths, not parameters.
        same = config_lib.ModelConfig(
            sequence_length=needed + extra,
            filters=4,
            stem_kernel_size=stem,
            num_dilated_layers=layers,
            profile_kernel_size=profile,
        )
        assert model.count_params() == model_lib.build_bpnet(same).count_params()


def test_valid_padding_output_is_centred_and_translation_equivariant():
    config = config_lib.ModelConfig(
        sequence_length=60,
        output_length=20,
        filters=4,
        stem_kernel_size=5,
        num_dilated_layers=2,
        profile_kernel_size=5,
    )
    model = model_lib.build_bpnet(config)
    x = np.random.default_rng(1).integers(0, 2, (1, 80, 4)).astype(np.float32)
    # Output position i of the window starting at s sees the same bases as output
    # position i - 4 of the window starting at s + 4.
    a = model(x[:, 0:60])['profile'].numpy()
    b = model(x[:, 4:64])['profile'].numpy()
    np.testing.assert_allclose(a[:, 4:], b[:, :-4], rtol=1e-5, atol=1e-5)


def test_chip_nexus_2114_regime_and_joint_counts_head():
    config = config_lib.ModelConfig(
        sequence_length=2114,
        output_length=1000,
        stem_kernel_size=21,
        profile_kernel_size=75,
        num_dilated_layers=8,
        profile_loss='joint',
    )
    assert config.receptive_field == 1115 and config.required_input_length == 2114
    out = model_lib.build_bpnet(config)(np.zeros((1, 2114, 4), np.float32))
    assert tuple(out['profile'].shape) == (1, 1000, 2)
    assert tuple(out['log_counts'].shape) == (1, 1)  # one total over both strands
    with pytest.raises(ValueError, match='profile_loss'):
        config_lib.ModelConfig(profile_loss='pooled')
    assert config_lib.ModelConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize('num_tasks,use_control', [(1, False), (2, True)])
def test_mixed_precision_body_bfloat16_heads_float32(num_tasks, use_control):
    import keras
    import tensorflow as tf

    config = config_lib.ModelConfig(
        sequence_length=64,
        num_tasks=num_tasks,
        filters=8,
        num_dilated_layers=2,
        use_control=use_control,
    )
    float32_params = model_lib.build_bpnet(config).count_params()
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy('mixed_bfloat16')
    try:
        model = model_lib.build_bpnet(config)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    assert model.count_params() == float32_params
    computes = {layer.name: layer.compute_dtype for layer in model.layers}
    assert computes['stem_conv'] == computes['dilated_conv_2'] == 'bfloat16'
    heads = [n for n in computes if n.startswith(('profile', 'counts', 'control_', 'log_'))]
    assert len(heads) >= 4 and {computes[n] for n in heads} == {'float32'}
    rng = np.random.default_rng(0)
    x = rng.integers(0, 2, (2, 64, 4)).astype(np.float32)
    inputs = x
    if use_control:
        inputs = {
            config_lib.INPUT_NAME: x,
            config_lib.CONTROL_INPUT_NAME: rng.poisson(1.0, (2, 64, num_tasks, 2)).astype(
                np.float32
            ),
        }
    out = model(inputs)
    assert out['profile'].dtype == out['log_counts'].dtype == tf.float32
    # The profile conv runs in float32 on the bfloat16 body: its logits are not rounded to
    # bfloat16, and match a float32 conv of the body's features.
    body = type(model)(model.inputs, [model.get_layer('residual_add_2').output])(inputs)
    assert body.dtype == tf.bfloat16
    conv = model.get_layer('profile_conv' + ('_0' if num_tasks > 1 else ''))
    expected = tf.nn.convolution(tf.cast(body, tf.float32), conv.kernel, padding='SAME') + conv.bias
    logits = out['profile'].numpy()
    logits = logits[:, :, 0] if num_tasks > 1 else logits
    if not use_control:
        np.testing.assert_allclose(logits, expected.numpy(), rtol=1e-5, atol=1e-5)
        rounded = tf.cast(tf.cast(expected, tf.bfloat16), tf.float32).numpy()
        assert not np.allclose(logits, rounded, rtol=1e-5, atol=1e-5)
