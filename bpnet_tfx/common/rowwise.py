"""Reductions and transcendental functions whose value for one row of a batch (a window, or one
of its references) is the same bits whatever else the batch holds.

TensorFlow's CPU kernels break that in two ways (tests/bpnet_tfx/modeling/
batch_invariance_test.py, tests/bpnet_tfx/common/rowwise_test.py):
- an axis that is not the innermost is reduced along a path chosen by the sizes of all the
  axes, the batch's among them. Here the reduced axes are moved innermost (one transpose,
  none where they are already there), where each output is summed on its own, in an order
  set by the reduced length alone;
- exp, log, log1p and expm1 take a vectorised path for whole SIMD registers and a scalar one,
  which rounds differently, for the elements past the last whole register of the tensor. Here
  each row is filled out to a multiple of ROW_ELEMENTS elements (with ones) before the op, so
  no row has elements on the scalar path, and the fill is cut off after.
`axis` is an int or a tuple of ints, as in tf.reduce_sum; rows are the first axis; gradients
are TensorFlow's. TensorFlow is imported inside the functions, so importing this module costs
nothing.
"""

from __future__ import annotations

# A multiple of every CPU SIMD width in float32 elements (8 with AVX2, 16 with AVX-512).
ROW_ELEMENTS = 16


def _elementwise(fn, x):
    """fn(x) for a transcendental fn, computed with each row filled to ROW_ELEMENTS."""
    import tensorflow as tf

    size = 1
    for d in x.shape[1:]:
        size = None if d is None or size is None else size * d
    if x.shape.rank == 0 or size is None or size % ROW_ELEMENTS == 0:
        return fn(x)
    flat = tf.reshape(x, (-1, size))
    filled = tf.pad(flat, [[0, 0], [0, -size % ROW_ELEMENTS]], constant_values=1)
    return tf.reshape(fn(filled)[:, :size], _dims(x))


def _dims(x) -> list:
    """x's shape: the static sizes, and the dynamic ones as scalar tensors."""
    import tensorflow as tf

    return [d if d is not None else tf.shape(x)[i] for i, d in enumerate(x.shape)]


def exp(x):
    """tf.exp(x), each row's the same bits in any batch."""
    import tensorflow as tf

    return _elementwise(tf.exp, x)


def log(x):
    """tf.math.log(x), each row's the same bits in any batch."""
    import tensorflow as tf

    return _elementwise(tf.math.log, x)


def log1p(x):
    """tf.math.log1p(x), each row's the same bits in any batch."""
    import tensorflow as tf

    return _elementwise(tf.math.log1p, x)


def expm1(x):
    """tf.math.expm1(x), each row's the same bits in any batch."""
    import tensorflow as tf

    return _elementwise(tf.math.expm1, x)


def _innermost(x, axis):
    """x with the `axis` axes moved last and flattened into one; the sorted axes."""
    import tensorflow as tf

    rank = x.shape.rank
    axes = sorted({a % rank for a in ((axis,) if isinstance(axis, int) else axis)})
    kept = [a for a in range(rank) if a not in axes]
    if axes != list(range(rank - len(axes), rank)):
        x = tf.transpose(x, kept + axes)
    return tf.reshape(x, [*_dims(x)[: len(kept)], -1]), axes


def _keep(y, axes: list[int], keepdims: bool):
    import tensorflow as tf

    for a in axes if keepdims else ():
        y = tf.expand_dims(y, a)
    return y


def reduce_sum(x, axis, keepdims: bool = False):
    """tf.reduce_sum(x, axis, keepdims), each row's sum the same bits in any batch."""
    import tensorflow as tf

    flat, axes = _innermost(x, axis)
    return _keep(tf.reduce_sum(flat, -1), axes, keepdims)


def reduce_mean(x, axis, keepdims: bool = False):
    """tf.reduce_mean(x, axis, keepdims), each row's mean the same bits in any batch."""
    import tensorflow as tf

    flat, axes = _innermost(x, axis)
    return _keep(tf.reduce_mean(flat, -1), axes, keepdims)


def reduce_logsumexp(x, axis, keepdims: bool = False):
    """tf.reduce_logsumexp(x, axis, keepdims) (the same shift by the maximum, which takes no
    gradient), each row's the same bits in any batch."""
    import tensorflow as tf

    flat, axes = _innermost(x, axis)
    top = tf.reduce_max(flat, -1, keepdims=True)
    top = tf.stop_gradient(tf.where(tf.math.is_finite(top), top, tf.zeros_like(top)))
    total = reduce_sum(exp(flat - top), -1, keepdims=True)
    return _keep(tf.squeeze(log(total) + top, -1), axes, keepdims)


def softmax(x, axis):
    """Softmax of x over the `axis` axes together, each row's the same bits in any batch."""
    return exp(x - reduce_logsumexp(x, axis, keepdims=True))
