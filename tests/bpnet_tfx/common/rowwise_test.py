"""Tests of common.rowwise: TensorFlow's values, and each row's the same bits in any batch."""

import numpy as np
import pytest

from bpnet_tfx.common import rowwise

# (name, our function, TensorFlow's, row shape): shapes where the stock ops, on CPUs without
# oneDNN, gave a row different bits in a batch of 13 than alone (a middle axis reduced with
# few outputs, or rows whose size is not a multiple of the SIMD width).
CASES = [
    ('sum taps', lambda x: rowwise.reduce_sum(x, 2), 'reduce_sum', (2, 75, 118), 2),
    ('sum positions', lambda x: rowwise.reduce_sum(x, 1, keepdims=True), None, (250, 2), 1),
    ('mean', lambda x: rowwise.reduce_mean(x, 1), 'reduce_mean', (67, 16), 1),
    ('logsumexp', lambda x: rowwise.reduce_logsumexp(x, 1), 'reduce_logsumexp', (115, 2), 1),
    ('logsumexp joint', lambda x: rowwise.reduce_logsumexp(x, (1, 3)), None, (115, 2, 2), (1, 3)),
    ('softmax', lambda x: rowwise.softmax(x, 1), 'softmax', (115, 2), 1),
    ('exp', rowwise.exp, 'exp', (3,), None),
    ('log1p', lambda x: rowwise.log1p(abs(x)), 'log1p', (2,), None),
    ('expm1', rowwise.expm1, 'expm1', (5, 3), None),
    ('log', lambda x: rowwise.log(abs(x)), 'log', (7,), None),
]


def _stock(name, axis):
    import tensorflow as tf

    return {
        'reduce_sum': lambda x: tf.reduce_sum(x, axis),
        'reduce_mean': lambda x: tf.reduce_mean(x, axis),
        'reduce_logsumexp': lambda x: tf.reduce_logsumexp(x, axis),
        'softmax': lambda x: tf.nn.softmax(x, axis),
        'exp': tf.exp,
        'log1p': lambda x: tf.math.log1p(abs(x)),
        'expm1': tf.math.expm1,
        'log': lambda x: tf.math.log(abs(x)),
    }[name]


@pytest.mark.parametrize('case', CASES, ids=[c[0] for c in CASES])
def test_each_row_is_the_same_in_any_batch_and_equals_tensorflows(case):
    import tensorflow as tf

    _, ours, stock, row_shape, axis = case
    rng = np.random.default_rng(len(row_shape))
    x = tf.constant(rng.normal(size=(13, *row_shape)).astype(np.float32) * 3)
    fn = tf.function(ours)
    alone = np.concatenate([fn(x[i : i + 1]).numpy() for i in range(13)])
    for sizes in ((13,), (5, 5, 3), (2, 7, 4)):
        parts, start = [], 0
        for size in sizes:
            parts.append(fn(x[start : start + size]).numpy())
            start += size
        np.testing.assert_array_equal(np.concatenate(parts), alone)
    if stock is not None:
        np.testing.assert_allclose(alone, _stock(stock, axis)(x).numpy(), rtol=2e-6, atol=1e-4)


def test_keepdims_shapes_and_the_logsumexp_gradient_are_tensorflows():
    import tensorflow as tf

    x = tf.constant(np.random.default_rng(0).normal(size=(3, 9, 2, 5)).astype(np.float32))
    for axis in (1, (1, 3), -1, (0, 2)):
        for keepdims in (False, True):
            got = rowwise.reduce_logsumexp(x, axis, keepdims=keepdims)
            want = tf.reduce_logsumexp(x, axis, keepdims=keepdims)
            assert got.shape == want.shape
            np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = rowwise.reduce_logsumexp(x, 1)
    np.testing.assert_allclose(
        tape.gradient(y, x).numpy(), tf.nn.softmax(x, 1).numpy(), rtol=1e-5, atol=1e-7
    )
    inf = tf.constant([[-np.inf, -np.inf], [0.0, -np.inf]])
    np.testing.assert_array_equal(rowwise.reduce_logsumexp(inf, 1).numpy(), [-np.inf, 0.0])
