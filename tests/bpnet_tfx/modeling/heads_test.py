"""Tests of the profile and counts heads: per-task heads, control inputs, counts-head
starting values, the normalized and the summed counts heads."""

import numpy as np
import pytest

from bpnet_tfx.modeling import config as config_lib
from bpnet_tfx.modeling import heads
from bpnet_tfx.modeling import model as model_lib


def test_multi_task_heads_are_per_task_and_match_a_stack_of_single_heads():
    config = config_lib.ModelConfig(
        sequence_length=64, num_tasks=2, filters=8, num_dilated_layers=2
    )
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
    base = config_lib.ModelConfig(sequence_length=100, filters=8, num_dilated_layers=2)
    with_control = config_lib.ModelConfig(
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


@pytest.mark.parametrize(
    'config, medians, expected',
    [
        (config_lib.ModelConfig(sequence_length=64), (500.0,), (np.log1p(250.0),)),
        (
            config_lib.ModelConfig(sequence_length=64, profile_loss='joint'),
            (500.0,),
            (np.log1p(500.0),),
        ),
        (
            config_lib.ModelConfig(sequence_length=64, num_tasks=2),
            (100.0, 40.0),
            (np.log1p(50.0), np.log1p(20.0)),
        ),
    ],
)
def test_initial_log_counts_per_output_unit(config, medians, expected):
    np.testing.assert_allclose(heads.initial_log_counts(config, medians), expected)


def test_initial_log_counts_needs_one_median_per_task():
    with pytest.raises(ValueError, match='1 median totals for 2 task'):
        heads.initial_log_counts(config_lib.ModelConfig(num_tasks=2), (500.0,))


def test_log_counts_init_sets_only_the_counts_bias():
    config = config_lib.ModelConfig(
        sequence_length=64, num_tasks=2, filters=8, num_dilated_layers=2
    )
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
    plain = model_lib.build_bpnet(config_lib.ModelConfig(**base))
    config = config_lib.ModelConfig(**base, counts_head='normalized_pool')
    model = model_lib.build_bpnet(config)
    # gamma, beta (trainable) and the moving mean and variance per channel, per task.
    assert model.count_params() == plain.count_params() + 2 * 4 * 8
    assert {'counts_norm_0', 'counts_norm_1'} <= {layer.name for layer in model.layers}
    assert config_lib.ModelConfig.from_dict(config.to_dict()) == config
    # At inference the head is the affine map of the moving statistics.
    x = np.random.default_rng(1).integers(0, 2, (3, 64, 4)).astype(np.float32)
    pooled = type(model)(model.inputs, model.get_layer('counts_pool').output)(x).numpy()
    norm = model.get_layer('counts_norm_1')
    norm.moving_mean.assign(np.full(8, 0.3, np.float32))
    norm.moving_variance.assign(np.full(8, 4.0, np.float32))
    w, b = model.get_layer('counts_dense_1').get_weights()
    expected = (pooled - 0.3) / np.sqrt(4.0 + norm.epsilon) @ w + b
    np.testing.assert_allclose(model(x)['log_counts'][:, 1], expected, rtol=1e-5, atol=1e-6)


def _lse(x, axis):
    top = x.max(axis=axis, keepdims=True)
    return np.log(np.exp(x - top).sum(axis=axis, keepdims=True)) + top


@pytest.mark.parametrize('head', ['position_sum', 'profile_sum'])
@pytest.mark.parametrize('profile_loss', ['per_strand', 'joint'])
def test_summed_counts_heads_sum_rates_over_the_output_window(head, profile_loss):
    config = config_lib.ModelConfig(
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
    assert config_lib.ModelConfig.from_dict(config.to_dict()) == config
    rebuilt = type(model).from_config(model.get_config())
    rebuilt.set_weights(model.get_weights())
    np.testing.assert_allclose(rebuilt(x)['log_counts'].numpy(), out, rtol=1e-6)
