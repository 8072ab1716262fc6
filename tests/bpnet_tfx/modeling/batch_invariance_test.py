"""Outside training, a window's outputs and input gradient are the same bits in any batch:
alone, in batches of other sizes, at other places in them (layers.ROW_ALIGNMENT).

CPU matrix kernels (TensorFlow's own, without oneDNN) compute the rows past their tile's last
full block along another path, so without the alignment a window's outputs changed in the
last bits with the batch around it, and so did predictions, contributions and metrics with
--batch_size, shards or devices."""

import numpy as np
import pytest

from bpnet_tfx.modeling import config as config_lib
from bpnet_tfx.modeling import layers
from bpnet_tfx.modeling import model as model_lib
from tests.fixtures.exactness import assert_same_in_any_batch

CONFIGS = {
    # 'same' padding, a length that is not a multiple of the alignment, the pooled dense head
    'same_global_pool': config_lib.ModelConfig(
        sequence_length=1000, filters=16, num_dilated_layers=4
    ),
    # 'valid' padding, summed counts head (few-filter convolutions: the shifted matmul)
    'valid_profile_sum': config_lib.ModelConfig(
        sequence_length=461,
        output_length=115,
        stem_kernel_size=21,
        profile_kernel_size=75,
        num_dilated_layers=6,
        filters=16,
        counts_head='profile_sum',
    ),
    # two tasks with control tracks (their dense weight) and the normalized pooled head
    'control_normalized_pool': config_lib.ModelConfig(
        sequence_length=250,
        num_tasks=2,
        use_control=True,
        filters=16,
        num_dilated_layers=3,
        counts_head='normalized_pool',
    ),
}


def _inputs(config, rows: int, rng):
    x = rng.integers(0, 2, (rows, config.sequence_length, 4)).astype(np.float32)
    x[1, 17:60] = 0  # a run of N
    if not config.use_control:
        return x
    control = rng.poisson(2.0, (rows, config.output_length or config.sequence_length, 2, 2))
    return {config_lib.INPUT_NAME: x, config_lib.CONTROL_INPUT_NAME: control.astype(np.float32)}


def _rows(inputs, index):
    if isinstance(inputs, dict):
        return {k: v[index] for k, v in inputs.items()}
    return inputs[index]


@pytest.mark.parametrize('name', list(CONFIGS))
def test_a_windows_outputs_and_input_gradient_do_not_depend_on_its_batch(name):
    import tensorflow as tf

    config = CONFIGS[name]
    model = model_lib.build_bpnet(config)
    rng = np.random.default_rng(3)
    inputs = _inputs(config, 13, rng)
    shape = model(_rows(inputs, slice(0, 1)))['profile'].shape[1:]
    weights = tf.constant(rng.normal(size=shape), tf.float32)

    @tf.function(reduce_retracing=False)
    def outputs_and_gradient(batch):
        one_hot = batch[config_lib.INPUT_NAME] if isinstance(batch, dict) else batch
        with tf.GradientTape() as tape:
            tape.watch(one_hot)
            out = model(batch)
            target = tf.reduce_sum(out['profile'] * weights) + tf.reduce_sum(out['log_counts'])
        return out['profile'], out['log_counts'], tape.gradient(target, one_hot)

    def run(batches):
        parts = [outputs_and_gradient(_rows(inputs, b)) for b in batches]
        return [np.concatenate([p[i].numpy() for p in parts]) for i in range(3)]

    alone = run([slice(i, i + 1) for i in range(13)])
    order = rng.permutation(13)
    for batches, rows in (
        ([slice(0, 13)], slice(None)),
        ([slice(0, 5), slice(5, 10), slice(10, 13)], slice(None)),
        ([slice(0, 2), slice(2, 9), slice(9, 13)], slice(None)),
        ([order], np.argsort(order)),
    ):
        for got, want in zip(run(batches), alone):
            assert_same_in_any_batch(got[rows], want, atol=1e-5)  # gradients near 0
    assert np.abs(alone[0]).max() > 0 and np.abs(alone[2]).max() > 0  # profile, gradient


def test_dense_outputs_do_not_depend_on_the_batch_and_equal_the_stock_layer():
    import keras

    rng = np.random.default_rng(5)
    x = rng.normal(size=(50, 64)).astype(np.float32)
    ours, stock = layers.Dense(3), keras.layers.Dense(3)
    ours.build(x.shape)
    stock.build(x.shape)
    stock.set_weights(ours.get_weights())
    alone = np.concatenate([np.asarray(ours(x[i : i + 1])) for i in range(50)])
    for size in (2, 7, 24, 49, 50):
        got = np.concatenate([np.asarray(ours(x[i : i + size])) for i in range(0, 50, size)])
        assert_same_in_any_batch(got, alone)
    np.testing.assert_allclose(alone, np.asarray(stock(x)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        np.asarray(ours(x, training=True)), np.asarray(stock(x)), rtol=1e-5, atol=1e-6
    )
    assert layers.extra_rows(50) == 46 and layers.extra_rows(96) == 0
