"""Tests of layers.Conv1D and Cropping1D: stock Keras math, exact CPU rewrites, saved configs
still load."""

import numpy as np
import pytest

from bpnet_tfx.modeling import config as config_lib
from bpnet_tfx.modeling import layers
from bpnet_tfx.modeling import model as model_lib


@pytest.mark.parametrize(
    'config',
    [
        config_lib.ModelConfig(sequence_length=200, filters=16),
        config_lib.ModelConfig(
            sequence_length=500,
            output_length=100,
            stem_kernel_size=21,
            profile_kernel_size=75,
            num_dilated_layers=6,
            filters=16,
        ),
        config_lib.ModelConfig(sequence_length=200, num_tasks=2, use_control=True, filters=16),
    ],
    ids=['reference', 'valid_padding', 'two_tasks_control'],
)
def test_our_conv_layer_equals_stock_keras_conv1d(config):
    # build_bpnet's Conv1D (tf.nn.conv1d + bias_add + relu) is keras.layers.Conv1D's math:
    # the same weights in the same order, the same outputs.
    ours = model_lib.build_bpnet(config)
    stock = model_lib.build_bpnet(config, stock_layers=True)
    assert {type(layer).__name__ for layer in stock.layers} & {'Conv1D'}
    assert [w.shape for w in ours.get_weights()] == [w.shape for w in stock.get_weights()]
    stock.set_weights(ours.get_weights())
    rng = np.random.default_rng(1)
    x = rng.integers(0, 2, (3, config.sequence_length, 4)).astype(np.float32)
    inputs = (
        x
        if not config.use_control
        else {
            config_lib.INPUT_NAME: x,
            config_lib.CONTROL_INPUT_NAME: rng.poisson(2.0, (3, config.output_length, 2, 2)).astype(
                np.float32
            ),
        }
    )
    want = stock(inputs)
    for got in (ours(inputs), ours(inputs, training=True)):  # aligned rows, and training
        for key in want:
            np.testing.assert_allclose(
                np.asarray(got[key]), np.asarray(want[key]), rtol=1e-4, atol=1e-4
            )
    assert isinstance(ours.get_layer('dilated_conv_2'), layers.Conv1D)
    crops = [layer for layer in ours.layers if 'Cropping1D' in type(layer).__name__]
    assert all(isinstance(layer, layers.Cropping1D) for layer in crops)
    assert not any(isinstance(layer, layers.Cropping1D) for layer in stock.layers)
    assert bool(crops) == (config.output_length not in (0, config.sequence_length))
    layer = ours.get_layer('dilated_conv_2')
    assert layers.Conv1D.from_config(layer.get_config()).get_config() == layer.get_config()


def _reference_conv(x, kernel, padding: str, dilation: int):
    """The dilated convolution as a dilation-1 one with zeros between the kernel's taps: an
    independent computation whose gradients every CPU kernel can take (TensorFlow's without
    oneDNN cannot differentiate tf.nn.conv1d at dilations above 1)."""
    import tensorflow as tf

    taps = kernel.shape[0]
    wide = tf.scatter_nd(
        [[k * dilation] for k in range(taps)],
        kernel,
        ((taps - 1) * dilation + 1, *kernel.shape[1:]),
    )
    return tf.nn.conv1d(x, wide, stride=1, padding=padding.upper())


@pytest.mark.parametrize('training', [True, None])
@pytest.mark.parametrize('padding', ['same', 'valid'])
@pytest.mark.parametrize('taps,dilation,filters', [(25, 1, 2), (4, 1, 1), (3, 4, 2), (6, 3, 8)])
def test_few_filter_conv_equals_conv1d_with_gradients(padding, taps, dilation, filters, training):
    # The profile head's matmul-and-shifted-sum form: outputs, input and kernel gradients as
    # tf.nn.conv1d's, for odd and even kernels, with dilation, at the largest filter count;
    # in training and outside it (over aligned rows, `_aligned_conv`).
    import tensorflow as tf

    assert filters <= layers.Conv1D.SHIFTED_MATMUL_MAX_FILTERS
    rng = np.random.default_rng(taps * dilation + filters)
    x = tf.constant(rng.normal(size=(3, 41, 5)).astype(np.float32))
    kernel = tf.Variable(rng.normal(size=(taps, 5, filters)).astype(np.float32))
    layer = layers.Conv1D(filters, taps, padding=padding, dilation_rate=dilation)
    layer.build(x.shape)
    layer.kernel.assign(kernel)
    weights = tf.constant(
        rng.normal(size=(3, 41 - (0 if padding == 'same' else (taps - 1) * dilation), filters)),
        tf.float32,
    )
    results = []
    for conv in (
        lambda v: layer(v, training=training),
        lambda v: _reference_conv(v, layer.kernel, padding, dilation),
    ):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = conv(x)
            loss = tf.reduce_sum(y * weights)
        results.append([y, *tape.gradient(loss, [x, layer.kernel])])
    for got, want in zip(*results):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    'padding,taps,dilation',
    [
        (padding, taps, dilation)
        for padding in ('same', 'valid')
        for taps, dilation in [(3, 2), (4, 3), (25, 8), (3, 32), (4, 64), (3, 48)]
    ]
    + [('same', 3, 160), ('same', 4, 400)],
)
@pytest.mark.parametrize('training', [True, None])
def test_dilated_conv_gradients_equal_the_reference(padding, taps, dilation, training):
    # Dilated layers take their gradients without dilated backward kernels: outputs, input
    # and kernel gradients as the zero-inserted reference's, for a length that is not a
    # multiple of the dilation, odd and even kernels, the reference's stem-sized kernel,
    # dilations that are not powers of two, and 'same' taps that reach past the input (some
    # read none of it); the kernel gradient taken a tap at a time (kernel_dilation 1, every
    # CPU) and at 16 (where the stock kernels differentiate: oneDNN's are faster there);
    # the layer in training and outside it (over aligned rows, `_aligned_conv`).
    import tensorflow as tf

    rng = np.random.default_rng(taps + dilation)
    x = tf.constant(rng.normal(size=(3, 301, 5)).astype(np.float32))
    layer = layers.Conv1D(16, taps, padding=padding, dilation_rate=dilation)
    layer.build(x.shape)
    out_length = 301 - (0 if padding == 'same' else (taps - 1) * dilation)
    weights = tf.constant(rng.normal(size=(3, out_length, 16)), tf.float32)
    results = []
    for conv in (
        lambda v: tf.nn.bias_add(_reference_conv(v, layer.kernel, padding, dilation), layer.bias),
        # the stock kernels or the rewrite, as the start-up check chose, or the aligned form
        lambda v: layer(v, training=training),
        *(
            lambda v, k=k: tf.nn.bias_add(
                layers._dilated_conv(v, layer.kernel, padding.upper(), dilation, k), layer.bias
            )
            for k in (1, 16)
            if dilation % k == 0 and (k == 1 or layers.stock_dilated_gradients())
        ),
    ):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = conv(x)
            loss = tf.reduce_sum(y * weights)
        results.append([y, *tape.gradient(loss, [x, layer.kernel, layer.bias])])
    for other in results[1:]:
        for got, want in zip(other, results[0]):
            np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4, atol=1e-3)


def test_the_start_up_check_says_whether_the_stock_dilated_gradients_work():
    # Dilated layers take the rewrite only where the CPU's own kernels fail or differ: the
    # check's answer is what a stock gradient of another shape does on this machine.
    import tensorflow as tf

    rng = np.random.default_rng(7)
    x = tf.constant(rng.normal(size=(2, 50, 6)).astype(np.float32))
    kernel = tf.constant(rng.normal(size=(4, 6, 5)).astype(np.float32))
    grads = []
    for conv in (
        lambda v, k: tf.nn.conv1d(v, k, stride=1, padding='SAME', dilations=4),
        lambda v, k: _reference_conv(v, k, 'same', 4),
    ):
        try:
            with tf.GradientTape() as tape:
                tape.watch([x, kernel])
                loss = tf.reduce_sum(conv(x, kernel) ** 2)
            grads.append([g.numpy() for g in tape.gradient(loss, [x, kernel])])
        except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError):
            grads.append(None)
    works = grads[0] is not None and all(
        np.allclose(a, b, rtol=1e-4, atol=1e-3) for a, b in zip(*grads)
    )
    assert layers.stock_dilated_gradients() is works


def test_dilated_layers_take_the_kernel_gradient_at_16_only_where_the_stock_kernels_work():
    # Without working dilated gradients every dilation takes the rewrite at 1; with them only
    # larger multiples of 16 take it (at 16), and the rest run the stock op.
    dilations = (1, 2, 8, 16, 24, 32, 48, 512)
    got = [layers.kernel_gradient_dilation(d) for d in dilations]
    if layers.stock_dilated_gradients():
        assert got == [0, 0, 0, 0, 0, 16, 16, 16]
    else:
        assert got == [0, 1, 1, 1, 1, 1, 1, 1]


def test_a_dilated_model_trains_in_a_compiled_step():
    # The whole tower under tf.function, as the trainer runs it: gradients exist and are
    # finite at every dilation (TensorFlow's stock CPU gradient fails here without oneDNN).
    import tensorflow as tf

    config = config_lib.ModelConfig(sequence_length=300, filters=8, num_dilated_layers=7)
    model = model_lib.build_bpnet(config)
    x = tf.constant(np.random.default_rng(0).integers(0, 2, (2, 300, 4)), tf.float32)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            out = model(x, training=True)
            loss = tf.reduce_sum(out['profile'] ** 2) + tf.reduce_sum(out['log_counts'])
        return tape.gradient(loss, model.trainable_variables)

    grads = step()
    assert len(grads) == len(model.trainable_variables)
    assert all(g is not None and np.isfinite(g.numpy()).all() for g in grads)


def test_config_saved_when_conv1d_lived_in_model_py_still_loads():
    # Keras 3 stored the module next to the registered name; the registered name wins.
    import keras

    config = {
        'filters': 4,
        'kernel_size': 3,
        'padding': 'valid',
        'dilation_rate': 2,
        'activation': 'relu',
        'name': 'dilated_conv_1',
        'trainable': True,
        'dtype': 'float32',
    }
    old = {
        'module': 'bpnet_tfx.modeling.model',
        'class_name': 'Conv1D',
        'config': config,
        'registered_name': 'bpnet_tfx>Conv1D',
    }
    layer = keras.saving.deserialize_keras_object(old)
    assert type(layer) is layers.Conv1D
    got = layer.get_config()
    assert {k: got[k] for k in config if k != 'dtype'} == {
        k: v for k, v in config.items() if k != 'dtype'
    }
    assert keras.saving.serialize_keras_object(layer)['registered_name'] == 'bpnet_tfx>Conv1D'


@pytest.mark.parametrize('cropping', [(0, 0), (3, 5), (7, 0)])
def test_our_cropping_equals_stock_keras_cropping_with_its_gradient(cropping):
    import keras
    import tensorflow as tf

    x = tf.constant(np.random.default_rng(0).normal(size=(2, 20, 3)), tf.float32)
    weights = tf.cos(tf.range(20 - sum(cropping), dtype=tf.float32))[None, :, None]
    results = []
    for layer in (layers.Cropping1D(cropping), keras.layers.Cropping1D(cropping)):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(y * weights)
        results.append((y.numpy(), tape.gradient(loss, x).numpy()))
    (y, dx), (want_y, want_dx) = results
    assert y.shape == (2, 20 - sum(cropping), 3)
    np.testing.assert_array_equal(y, want_y)
    np.testing.assert_array_equal(dx, want_dx)
    assert dx[:, : cropping[0]].sum() == 0 and np.abs(dx[:, cropping[0]]).sum() > 0
    layer = layers.Cropping1D(cropping, name='c')
    assert (
        keras.saving.deserialize_keras_object(
            keras.saving.serialize_keras_object(layer)
        ).get_config()
        == layer.get_config()
    )
