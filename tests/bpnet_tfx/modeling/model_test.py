"""Tests of the BPNet architecture: parameter counts, shapes, config round trip."""

import dataclasses

import numpy as np
import pytest

from bpnet_tfx.modeling import model as model_lib


def test_reference_parameter_count():
    model = model_lib.build_bpnet(model_lib.ModelConfig())
    assert model.count_params() == 120_964


def test_reference_notebook_single_strand_five_channel_parameter_count():
    # The reference notebook's variant: A, G, C, T, N inputs; one profile and one count output.
    config = model_lib.ModelConfig(num_channels=5, num_strands=1)
    assert model_lib.build_bpnet(config).count_params() == 120_898


def test_output_shapes_single_and_multi_task():
    single = model_lib.build_bpnet(model_lib.ModelConfig(sequence_length=100))
    out = single(np.zeros((3, 100, 4), np.float32))
    assert tuple(out['profile'].shape) == (3, 100, 2)
    assert tuple(out['log_counts'].shape) == (3, 2)
    multi = model_lib.build_bpnet(model_lib.ModelConfig(sequence_length=100, num_tasks=3))
    out = multi(np.zeros((3, 100, 4), np.float32))
    assert tuple(out['profile'].shape) == (3, 100, 3, 2)
    assert tuple(out['log_counts'].shape) == (3, 3, 2)
    # Shared body, one head conv/dense with tasks x strands outputs.
    assert multi.count_params() == 120_964 - 2 * (25 * 64 + 1) - 2 * 65 + 6 * (25 * 64 + 1) + 6 * 65


def test_every_layer_named_and_config_round_trip():
    config = model_lib.ModelConfig(filters=8, num_dilated_layers=3)
    model = model_lib.build_bpnet(config)
    names = [layer.name for layer in model.layers]
    assert 'stem_conv' in names and 'dilated_conv_3' in names and 'profile_conv' in names
    assert model_lib.ModelConfig.from_dict(config.to_dict()) == config
    rebuilt = model.__class__.from_config(model.get_config())
    assert rebuilt.count_params() == model.count_params()


def test_receptive_field():
    # 25 + 2 * (2 + 4 + ... + 512) + 24 = 25 + 2044 + 24.
    assert model_lib.ModelConfig().receptive_field == 2093


@pytest.mark.parametrize('field', ['filters', 'sequence_length', 'num_strands'])
def test_config_rejects_non_positive(field):
    with pytest.raises(ValueError, match=field):
        model_lib.ModelConfig(**{field: 0})


def test_multi_task_heads_are_per_task_and_match_a_stack_of_single_heads():
    config = model_lib.ModelConfig(sequence_length=64, num_tasks=2, filters=8, num_dilated_layers=2)
    model = model_lib.build_bpnet(config)
    names = {layer.name for layer in model.layers}
    assert {'profile_conv_0', 'profile_conv_1', 'counts_dense_0', 'counts_dense_1'} <= names
    x = np.random.default_rng(0).integers(0, 2, (2, 64, 4)).astype(np.float32)
    out = model(x)
    body = model.get_layer('residual_add_2').output
    probe = type(model)(model.inputs, [body])
    features = probe(x)
    conv1 = model.get_layer('profile_conv_1')
    np.testing.assert_allclose(
        out['profile'].numpy()[:, :, 1, :], conv1(features).numpy(), rtol=1e-5, atol=1e-5
    )


def test_control_inputs_add_exactly_the_control_weights():
    base = model_lib.ModelConfig(sequence_length=100, filters=8, num_dilated_layers=2)
    with_control = model_lib.ModelConfig(
        sequence_length=100, filters=8, num_dilated_layers=2, use_control=True
    )
    plain = model_lib.build_bpnet(base).count_params()
    model = model_lib.build_bpnet(with_control)
    # Profile: 1x1 conv over (raw, smoothed) x 2 strands -> 2 strands; counts: 2 more inputs.
    assert model.count_params() == plain + (4 * 2 + 2) + 2 * 2
    rng = np.random.default_rng(0)
    x = rng.integers(0, 2, (2, 100, 4)).astype(np.float32)
    control = rng.poisson(1.0, (2, 100, 1, 2)).astype(np.float32)
    out = model({'one_hot': x, 'control': control})
    assert tuple(out['profile'].shape) == (2, 100, 2)
    # The control changes the prediction (its weights are not zero at initialisation).
    out2 = model({'one_hot': x, 'control': control * 3})
    assert not np.allclose(out['log_counts'].numpy(), out2['log_counts'].numpy())
    rebuilt = type(model).from_config(model.get_config())
    assert rebuilt.count_params() == model.count_params()


@pytest.mark.parametrize('layers,stem,profile', [(8, 21, 75), (6, 21, 75), (4, 11, 25), (2, 5, 3)])
def test_valid_padding_crop_arithmetic_gives_the_output_length(layers, stem, profile):
    output_length = 50
    probe = model_lib.ModelConfig(
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
        config = model_lib.ModelConfig(
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
        same = model_lib.ModelConfig(
            sequence_length=needed + extra,
            filters=4,
            stem_kernel_size=stem,
            num_dilated_layers=layers,
            profile_kernel_size=profile,
        )
        assert model.count_params() == model_lib.build_bpnet(same).count_params()


def test_valid_padding_output_is_centred_and_translation_equivariant():
    config = model_lib.ModelConfig(
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


def test_too_short_input_and_odd_crop_are_refused():
    with pytest.raises(ValueError, match='at least 3138 bp'):
        model_lib.ModelConfig(
            sequence_length=2114, output_length=1000, stem_kernel_size=21, profile_kernel_size=75
        )  # 9 dilated layers need 3138 bp
    with pytest.raises(ValueError, match='odd difference'):
        model_lib.ModelConfig(
            sequence_length=2117,
            output_length=1001,
            stem_kernel_size=22,
            profile_kernel_size=75,
            num_dilated_layers=8,
        )  # 1002 left
    with pytest.raises(ValueError, match='must not exceed'):
        model_lib.ModelConfig(sequence_length=100, output_length=120)


def test_chip_nexus_2114_regime_and_joint_counts_head():
    config = model_lib.ModelConfig(
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
        model_lib.ModelConfig(profile_loss='pooled')
    assert model_lib.ModelConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize('num_tasks,use_control', [(1, False), (2, True)])
def test_mixed_precision_body_bfloat16_heads_float32(num_tasks, use_control):
    import keras
    import tensorflow as tf

    config = model_lib.ModelConfig(
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
            model_lib.INPUT_NAME: x,
            model_lib.CONTROL_INPUT_NAME: rng.poisson(1.0, (2, 64, num_tasks, 2)).astype(
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


@pytest.mark.parametrize(
    'config, medians, expected',
    [
        (model_lib.ModelConfig(sequence_length=64), (500.0,), (np.log1p(250.0),)),
        (
            model_lib.ModelConfig(sequence_length=64, profile_loss='joint'),
            (500.0,),
            (np.log1p(500.0),),
        ),
        (
            model_lib.ModelConfig(sequence_length=64, num_tasks=2),
            (100.0, 40.0),
            (np.log1p(50.0), np.log1p(20.0)),
        ),
    ],
)
def test_initial_log_counts_per_output_unit(config, medians, expected):
    np.testing.assert_allclose(model_lib.initial_log_counts(config, medians), expected)


def test_initial_log_counts_needs_one_median_per_task():
    with pytest.raises(ValueError, match='1 median totals for 2 task'):
        model_lib.initial_log_counts(model_lib.ModelConfig(num_tasks=2), (500.0,))


def test_log_counts_init_sets_only_the_counts_bias():
    config = model_lib.ModelConfig(sequence_length=64, num_tasks=2, filters=8, num_dilated_layers=2)
    x = np.random.default_rng(0).integers(0, 2, (3, 64, 4)).astype(np.float32)
    plain = model_lib.build_bpnet(config)
    started = model_lib.build_bpnet(config, log_counts_init=(5.0, 3.0))
    assert started.count_params() == plain.count_params()
    np.testing.assert_array_equal(plain.get_layer('counts_dense_0').bias.numpy(), [0.0, 0.0])
    np.testing.assert_array_equal(started.get_layer('counts_dense_0').bias.numpy(), [5.0, 5.0])
    np.testing.assert_array_equal(started.get_layer('counts_dense_1').bias.numpy(), [3.0, 3.0])
    # With the other weights equal, the outputs differ by exactly the biases.
    started.set_weights(plain.get_weights())
    started.get_layer('counts_dense_0').bias.assign([5.0, 5.0])
    started.get_layer('counts_dense_1').bias.assign([3.0, 3.0])
    diff = started(x)['log_counts'].numpy() - plain(x)['log_counts'].numpy()
    np.testing.assert_allclose(
        diff, np.broadcast_to([[5.0, 5.0], [3.0, 3.0]], diff.shape), atol=1e-5
    )


def test_normalized_counts_head_adds_only_the_normalization():
    base = dict(sequence_length=64, num_tasks=2, filters=8, num_dilated_layers=2)
    plain = model_lib.build_bpnet(model_lib.ModelConfig(**base))
    config = model_lib.ModelConfig(**base, counts_head='normalized_pool')
    model = model_lib.build_bpnet(config)
    # gamma, beta (trainable) and the moving mean and variance per channel, per task.
    assert model.count_params() == plain.count_params() + 2 * 4 * 8
    assert {'counts_norm_0', 'counts_norm_1'} <= {layer.name for layer in model.layers}
    assert model_lib.ModelConfig.from_dict(config.to_dict()) == config
    # At inference the head is the affine map of the moving statistics.
    x = np.random.default_rng(1).integers(0, 2, (3, 64, 4)).astype(np.float32)
    pooled = type(model)(model.inputs, model.get_layer('counts_pool').output)(x).numpy()
    norm = model.get_layer('counts_norm_1')
    norm.moving_mean.assign(np.full(8, 0.3, np.float32))
    norm.moving_variance.assign(np.full(8, 4.0, np.float32))
    w, b = model.get_layer('counts_dense_1').get_weights()
    expected = (pooled - 0.3) / np.sqrt(4.0 + norm.epsilon) @ w + b
    np.testing.assert_allclose(model(x)['log_counts'][:, 1], expected, rtol=1e-5, atol=1e-6)


def test_counts_head_defaults_to_the_reference_and_rejects_unknown_heads():
    # model_config.json of exports made before the field existed.
    old = {k: v for k, v in model_lib.ModelConfig().to_dict().items() if k != 'counts_head'}
    assert model_lib.ModelConfig.from_dict(old).counts_head == 'global_pool'
    with pytest.raises(ValueError, match='counts_head must be one of'):
        model_lib.ModelConfig(counts_head='mlp')


def test_calibrate_counts_norm_sets_the_exact_statistics_of_the_first_examples():
    config = model_lib.ModelConfig(
        sequence_length=64, filters=8, num_dilated_layers=2, counts_head='normalized_pool'
    )
    model = model_lib.build_bpnet(config)
    x = np.random.default_rng(0).integers(0, 2, (40, 64, 4)).astype(np.float32)
    batches = (x[i : i + 16] for i in range(0, 40, 16))
    assert model_lib.calibrate_counts_norm(model, batches, 30) == 30
    pooled = type(model)(model.inputs, model.get_layer('counts_pool').output)(x[:30]).numpy()
    norm = model.get_layer('counts_norm')
    np.testing.assert_allclose(norm.moving_mean.numpy(), pooled.mean(0), rtol=1e-5)
    np.testing.assert_allclose(norm.moving_variance.numpy(), pooled.var(0), rtol=1e-4)
    # The reference head has nothing to calibrate; fewer than 2 examples are refused.
    plain = model_lib.build_bpnet(dataclasses.replace(config, counts_head='global_pool'))
    assert model_lib.calibrate_counts_norm(plain, [x], 30) == 0
    with pytest.raises(ValueError, match='at least 2 examples'):
        model_lib.calibrate_counts_norm(model, [x[:1]], 30)


def _lse(x, axis):
    top = x.max(axis=axis, keepdims=True)
    return np.log(np.exp(x - top).sum(axis=axis, keepdims=True)) + top


@pytest.mark.parametrize('head', ['position_sum', 'profile_sum'])
@pytest.mark.parametrize('profile_loss', ['per_strand', 'joint'])
def test_summed_counts_heads_sum_rates_over_the_output_window(head, profile_loss):
    config = model_lib.ModelConfig(
        sequence_length=60,
        output_length=20,
        num_tasks=2,
        filters=8,
        stem_kernel_size=5,
        num_dilated_layers=2,
        profile_kernel_size=5,
        profile_loss=profile_loss,
        counts_head=head,
    )
    model = model_lib.build_bpnet(config, log_counts_init=(5.0, 3.0))
    x = np.random.default_rng(2).integers(0, 2, (3, 60, 4)).astype(np.float32)
    # The rate convolutions start at zero: every window starts at the initial log count.
    np.testing.assert_allclose(
        model(x)['log_counts'].numpy()[..., 0], [[5.0, 3.0]] * 3, rtol=1e-6, atol=1e-6
    )
    rng = np.random.default_rng(3)
    for t in (0, 1):
        conv = model.get_layer(f'counts_rate_conv_{t}')
        conv.kernel.assign(rng.normal(0, 0.5, conv.kernel.shape).astype(np.float32))
    names = [f'{layer}_{t}' for t in (0, 1) for layer in ('counts_rate_crop', 'profile_crop')]
    parts = type(model)(model.inputs, [model.get_layer(n).output for n in names])(x)
    rates, logits = [p.numpy() for p in parts[0::2]], [p.numpy() for p in parts[1::2]]
    assert rates[0].shape == (3, 20, 2)  # the output window, as the profile
    axis = (1, 2) if profile_loss == 'joint' else 1
    out = model(x)['log_counts'].numpy()
    for t, start in enumerate((5.0, 3.0)):
        if head == 'position_sum':
            units = 20 * (2 if profile_loss == 'joint' else 1)
            expected = _lse(rates[t], axis) + start - np.log(units)
        else:
            expected = _lse(logits[t] + rates[t], axis) - _lse(logits[t], axis) + start
        np.testing.assert_allclose(out[:, t], expected.reshape(3, -1), rtol=1e-5, atol=1e-5)
    assert model_lib.ModelConfig.from_dict(config.to_dict()) == config
    rebuilt = type(model).from_config(model.get_config())
    rebuilt.set_weights(model.get_weights())
    np.testing.assert_allclose(rebuilt(x)['log_counts'].numpy(), out, rtol=1e-6)
