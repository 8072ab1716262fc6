"""Conv1D, the convolution layer BPNet is built from, its CPU rewrites, and Cropping1D.

`Conv1D` has `keras.layers.Conv1D`'s weights and math; on a machine without a GPU it computes
a few-filter convolution as a matmul and a shifted sum, and a dilated one with a custom
gradient: a forward convolution and a matmul a tap where the CPU kernels cannot differentiate
a dilated convolution (checked once, `stock_dilated_gradients`), and at dilations above 16,
where their kernel gradient is slower than at 16, the kernel gradient at 16 over interleaved
sub-sequences. Outside training, every convolution (and the dense layers') runs over a
multiple of ROW_ALIGNMENT rows a window, so a window's outputs and input gradient are the
same bits in any batch (`_aligned_conv`). All forms are exact (same outputs and gradients
as tf.nn.conv1d, up to float rounding); TensorFlow is imported inside the functions, so
importing this module costs only Keras.
"""

from __future__ import annotations

import concurrent.futures

import keras
import numpy as np

from bpnet_tfx.common import rowwise


@keras.saving.register_keras_serializable(package='bpnet_tfx')
class Conv1D(keras.layers.Layer):
    """`keras.layers.Conv1D`'s math and weights (kernel (kernel_size, in, filters), bias;
    'same' or 'valid'; dilation; optional relu) as tf.nn.conv1d + bias_add + relu.

    The stock layer goes through tf.nn.convolution and a broadcast add; this form passes the
    dilation straight to the convolution op and lets TensorFlow's graph optimiser fuse the
    bias and relu into it. When no GPU is visible, two rewrites replace the convolution op:
    a layer with few filters (the profile head: 2 strands from 64 channels) is one matmul and
    a shifted sum (`_shifted_matmul_conv`), and where TensorFlow's CPU kernels lack dilated
    backward kernels (without oneDNN; `stock_dilated_gradients` checks once a process), a
    dilated one takes its gradients without them (`_dilated_conv`); where they have them, a
    dilation that is a larger multiple of 16 takes its kernel gradient at 16 the same way,
    which those kernels do faster (`kernel_gradient_dilation`). With a GPU the stock ops
    (cuDNN's kernels) run. Called outside training (`training` not true), every device takes
    `_aligned_conv` instead, whose outputs for a window do not depend on its batch; a
    SavedModel traced so serves the same bits on any CPU. Outputs and gradients equal the
    stock layer's for the same weights
    (layers_test); how much faster each form trains, and on which machine, is in
    docs/benchmarks.md. `model.build_bpnet(config, stock_layers=True)` builds the stock
    version.

    Registered as 'bpnet_tfx>Conv1D', the name it had when it lived in model.py, so configs
    saved then still deserialise.
    """

    # At most this many filters, a kernel wider than 1 is computed by _shifted_matmul_conv.
    SHIFTED_MATMUL_MAX_FILTERS = 8

    def __init__(
        self,
        filters: int,
        kernel_size: int,
        *,
        padding: str = 'same',
        dilation_rate: int = 1,
        activation: str | None = None,
        kernel_initializer: str = 'glorot_uniform',
        **kwargs,
    ):
        super().__init__(**kwargs)
        if padding not in ('same', 'valid') or activation not in (None, 'relu'):
            raise ValueError(f'unsupported padding {padding!r} or activation {activation!r}')
        self.filters, self.kernel_size = filters, kernel_size
        self.padding, self.dilation_rate, self.activation = padding, dilation_rate, activation
        self.kernel_initializer = kernel_initializer

    def build(self, input_shape):
        self.kernel = self.add_weight(
            name='kernel',
            initializer=self.kernel_initializer,
            shape=(self.kernel_size, input_shape[-1], self.filters),
        )
        self.bias = self.add_weight(name='bias', shape=(self.filters,), initializer='zeros')

    def uses_shifted_matmul(self) -> bool:
        """Whether this layer computes as `_shifted_matmul_conv`: a few-filter convolution
        wider than 1, on a machine without a GPU."""
        import tensorflow as tf

        few = 1 < self.kernel_size and self.filters <= self.SHIFTED_MATMUL_MAX_FILTERS
        return few and not tf.config.list_logical_devices('GPU')

    def call(self, x, training=None):
        import tensorflow as tf

        padding = self.padding.upper()
        if not training and x.dtype == tf.float32 and x.shape[1] is not None:
            y = _aligned_conv(
                x, self.kernel, self.bias, padding, self.dilation_rate, self.uses_shifted_matmul()
            )
        else:
            y = tf.nn.bias_add(self._unaligned_conv(x, padding), self.bias)
        return tf.nn.relu(y) if self.activation == 'relu' else y

    def _unaligned_conv(self, x, padding: str):
        """The convolution (no bias) in training, and outside it for inputs that
        `_aligned_conv` does not take (float16 or bfloat16, a length known only at run time).
        """
        import tensorflow as tf

        # The two rewrites below are for CPUs (docs/benchmarks.md); with GPUs visible, the
        # stock ops (cuDNN's kernels) run.
        cpu = not tf.config.list_logical_devices('GPU')
        kernel_dilation = (
            cpu and x.dtype != tf.float16 and kernel_gradient_dilation(self.dilation_rate)
        )
        if self.uses_shifted_matmul():
            return _shifted_matmul_conv(x, self.kernel, padding, self.dilation_rate)
        if kernel_dilation:
            return _dilated_conv(x, self.kernel, padding, self.dilation_rate, kernel_dilation)
        if x.dtype == tf.float16 and self.dilation_rate > 1:
            # TensorFlow's CPU kernel for float16 has no dilation: tf.nn.convolution (what
            # the stock layer calls) emulates it.
            return tf.nn.convolution(x, self.kernel, padding=padding, dilations=self.dilation_rate)
        return tf.nn.conv1d(x, self.kernel, stride=1, padding=padding, dilations=self.dilation_rate)

    def compute_output_shape(self, input_shape):
        length = input_shape[1]
        if self.padding == 'valid' and length is not None:
            length -= (self.kernel_size - 1) * self.dilation_rate
        return (input_shape[0], length, self.filters)

    def get_config(self):
        return {
            **super().get_config(),
            'filters': self.filters,
            'kernel_size': self.kernel_size,
            'padding': self.padding,
            'dilation_rate': self.dilation_rate,
            'activation': self.activation,
            'kernel_initializer': self.kernel_initializer,
        }


_STOCK_DILATED_GRADIENTS: list[bool] = []  # The check's answer, once a process.

# Outside training, every convolution and matmul of the model runs over a multiple of this
# many rows a window (positions; examples for the counts head's dense layer). CPU matrix
# kernels round the rows past the last full block of their tile along another path, so a
# window's outputs depended on its place in the batch (batch_invariance_test); 48 is a
# multiple of every CPU tile height seen (24 with AVX2, 48 with AVX-512).
ROW_ALIGNMENT = 48


def extra_rows(rows: int) -> int:
    """How many rows to add to `rows` to reach a multiple of ROW_ALIGNMENT."""
    return -rows % ROW_ALIGNMENT


def _aligned_conv(x, kernel, bias, padding: str, dilation: int, few: bool):
    """tf.nn.conv1d(x, kernel, padding, dilations=dilation) + bias computed over a multiple
    of ROW_ALIGNMENT positions a window, forward and backward, so each window's outputs and
    input gradient are the same in any batch.

    Forward, the convolution is padded inside the op with extra zeros on the right (or, with
    `few`, x is, and `_shifted_matmul_conv` runs), the bias follows (the graph optimiser fuses
    it into the convolution) and the extra positions are cut off. Backward, the input
    gradient is the convolution of dy with the kernel reversed along its taps and its channel
    axes swapped, padded to x's length plus its extra rows and cut to x's; the kernel
    gradient is `_tap_kernel_gradient`'s. The gradient reads only the inputs: one that reads
    the function's own output (a relu's mask, say) is lost when a SavedModel of the layer is
    differentiated on a persistent tape, and the stock gradients of the forward ops run
    instead (scorer_test's wide model). x must have a static length.
    """
    import tensorflow as tf

    taps = kernel.shape[0]
    span = (taps - 1) * dilation
    left = span // 2 if padding == 'SAME' else 0
    right = span - left if padding == 'SAME' else 0
    length = x.shape[1]
    out_length = length + left + right - span
    extra_out = extra_rows(out_length)

    @tf.custom_gradient
    def conv(x, kernel, bias):
        if few:
            # x's rows to a multiple of the alignment, and at least extra_out beyond it.
            more = extra_rows(length) + (ROW_ALIGNMENT if extra_rows(length) < extra_out else 0)
            xp = tf.pad(x, [[0, 0], [0, more], [0, 0]])
            y = _shifted_matmul_conv(xp, kernel, padding, dilation, rowwise_sum=True)
        else:
            y = _padded_conv(x, kernel, left, right + extra_out, dilation)
        y = tf.slice(tf.nn.bias_add(y, bias), [0, 0, 0], [-1, out_length, -1])

        def grad(dy):
            dx = _input_gradient(
                dy, kernel, span - left, span - right + extra_rows(length), dilation
            )
            dx = tf.slice(dx, [0, 0, 0], [-1, length, -1])
            dk = _tap_kernel_gradient(x, dy, kernel.shape, left, dilation)
            return dx, dk, tf.reduce_sum(dy, (0, 1))

        return y, grad

    # Tensors, not the variables: custom_gradient then differentiates through the reads.
    return conv(x, tf.convert_to_tensor(kernel), tf.convert_to_tensor(bias))


def _padded_conv(x, kernel, before: int, after: int, dilation: int):
    """tf.nn.conv1d(x, kernel, dilations=dilation) with `before` and `after` zeros padded
    inside the op (explicit padding: no Pad op)."""
    import tensorflow as tf

    y = tf.nn.conv2d(
        tf.expand_dims(x, 1),
        tf.expand_dims(kernel, 0),
        strides=1,
        padding=[[0, 0], [0, 0], [before, after], [0, 0]],
        dilations=[1, dilation],
    )
    return tf.squeeze(y, 1)


def _input_gradient(dy, kernel, before: int, after: int, dilation: int):
    """A convolution's input gradient: dy convolved with the kernel reversed along its taps
    and its channel axes swapped, padded inside the op (`_padded_conv`)."""
    import tensorflow as tf

    flipped = tf.transpose(tf.reverse(kernel, [0]), (0, 2, 1))
    return _padded_conv(dy, flipped, before, after, dilation)


# Where the CPU kernels differentiate dilated convolutions, larger multiples of this dilation
# take their kernel gradient at this one (kernel_gradient_dilation).
KERNEL_GRADIENT_DILATION = 16


def kernel_gradient_dilation(dilation: int) -> int:
    """The `kernel_dilation` of `_dilated_conv` for a dilated layer on a CPU, or 0 where the
    stock op and its own gradients run.

    Where the CPU kernels cannot differentiate a dilated convolution, every dilation takes
    1: gradients that need no dilated backward kernel. Where they can (oneDNN), their kernel
    gradient is nearly 2x slower at dilations above 16 than at 16 (docs/benchmarks.md,
    training), so a larger multiple of 16 takes it at 16, on dilation / 16 sub-sequences;
    the forward op stays the stock one.
    """
    if dilation <= 1:
        return 0
    if not stock_dilated_gradients():
        return 1
    k = KERNEL_GRADIENT_DILATION
    return k if dilation > k and dilation % k == 0 else 0


def stock_dilated_gradients() -> bool:
    """Whether this machine's CPU kernels differentiate a dilated convolution correctly:
    checked once a process on a tiny one against the rewrite's gradients (`_dilated_conv`).
    oneDNN's kernels can; TensorFlow's own cannot ('Current CPU implementations do not yet
    support dilation rates larger than 1'), and there dilated layers take the rewrite."""
    if not _STOCK_DILATED_GRADIENTS:
        # A thread of its own runs eagerly with no tape paused, even while a function
        # traces or a layer is called (tf.init_scope would pause every tape).
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            _STOCK_DILATED_GRADIENTS.append(pool.submit(_check_dilated_gradients).result())
    return _STOCK_DILATED_GRADIENTS[0]


def _check_dilated_gradients() -> bool:
    import tensorflow as tf

    with tf.device('/CPU:0'):
        x = tf.reshape(tf.range(2 * 13 * 3, dtype=tf.float32) % 7 - 3.0, (2, 13, 3))
        kernel = tf.reshape(tf.range(3 * 3 * 4, dtype=tf.float32) % 5 - 2.0, (3, 3, 4))
        weights = tf.sin(tf.range(13, dtype=tf.float32))[:, None]
        grads = []
        for conv in (tf.nn.conv1d, lambda a, k, **kw: _dilated_conv(a, k, 'SAME', 3)):
            try:
                with tf.GradientTape() as tape:
                    tape.watch([x, kernel])
                    y = conv(x, kernel, stride=1, padding='SAME', dilations=3)
                    loss = tf.reduce_sum(y * weights)
                grads.append([g.numpy() for g in tape.gradient(loss, [x, kernel])])
            except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError):
                grads.append(None)
    return grads[0] is not None and all(
        np.allclose(a, b, rtol=1e-4, atol=1e-4) for a, b in zip(*grads)
    )


def _interleaved(t, m: int):
    """(batch, length, c) with length a multiple of m -> (batch * m, 1, length / m, c): the m
    interleaved sub-sequences (positions r, r + m, r + 2m, ... for each r < m)."""
    import tensorflow as tf

    batch, length, channels = tf.shape(t)[0], tf.shape(t)[1], tf.shape(t)[2]
    t = tf.transpose(tf.reshape(t, (batch, length // m, m, channels)), (0, 2, 1, 3))
    return tf.reshape(t, (batch * m, 1, length // m, channels))


def _dilated_conv(x, kernel, padding: str, dilation: int, kernel_dilation: int = 1):
    """tf.nn.conv1d(x, kernel, padding, dilations=dilation) with gradients that need no
    dilated backward kernel (`kernel_dilation` 1) or whose kernel gradient is taken at
    `kernel_dilation` (a divisor of `dilation`, above 1).

    TensorFlow's CPU kernels without oneDNN (the default on AMD processors, for one) cannot
    take input or kernel gradients of a dilated convolution ('Current CPU implementations do
    not yet support dilation rates larger than 1'), though they run it forward. With
    `kernel_dilation` 1 nothing here needs them:
    - the input gradient is the forward dilated convolution of dy with the kernel reversed
      along its taps and its channel axes swapped, padded inside the op (explicit padding:
      the span less the forward padding on each side), which costs no Pad op;
    - the kernel gradient is one matmul a tap, over the positions where that tap reads x
      (`_tap_kernel_gradient`).
    oneDNN's kernel gradient is faster at 16 than at larger dilations (kernel_gradient_dilation);
    `kernel_dilation` above 1 is for such kernels: the input gradient is the stock op's and the
    kernel gradient one at `kernel_dilation` over interleaved sub-sequences (`_kernel_gradient`).
    """
    import tensorflow as tf

    taps = kernel.shape[0]
    span = (taps - 1) * dilation
    left = span // 2 if padding == 'SAME' else 0
    right = span - left if padding == 'SAME' else 0

    @tf.custom_gradient
    def conv(x, kernel):
        y = tf.nn.conv1d(x, kernel, stride=1, padding=padding, dilations=dilation)

        def grad(dy):
            if kernel_dilation > 1:  # The CPU kernels differentiate dilated convolutions.
                dx = tf.nn.conv1d_transpose(
                    dy, kernel, tf.shape(x), strides=1, padding=padding, dilations=dilation
                )
                dk = _kernel_gradient(x, dy, kernel.shape, padding, dilation, kernel_dilation)
                return dx, dk
            dx = _input_gradient(dy, kernel, span - left, span - right, dilation)
            return dx, _tap_kernel_gradient(x, dy, kernel.shape, left, dilation)

        return y, grad

    # A tensor, not the variable: custom_gradient then differentiates through the read.
    return conv(x, tf.convert_to_tensor(kernel))


def _tap_kernel_gradient(x, dy, kernel_shape, left: int, dilation: int):
    """The kernel gradient of a dilated convolution whose output position t reads x at
    t + k * dilation - left for tap k: for each tap, the x rows it reads times the dy rows
    that read them, one matmul over batch and positions (contracting over both at once),
    with no padding or transpose of x or dy, which cost as much as the matmuls on CPUs
    without oneDNN."""
    import tensorflow as tf

    taps, channels, filters = kernel_shape
    length, out_length = tf.shape(x)[1], tf.shape(dy)[1]
    grads = []
    for k in range(taps):
        offset = k * dilation - left
        first = max(0, -offset)  # the first output position whose tap k lies inside x
        count = tf.maximum(tf.minimum(out_length, length - offset) - first, 0)
        # Clipped starts: a tap that reads none of x (its offset beyond x) slices nothing.
        xs = tf.slice(x, [0, tf.minimum(first + offset, length), 0], [-1, count, -1])
        ds = tf.slice(dy, [0, tf.minimum(first, out_length), 0], [-1, count, -1])
        grads.append(
            tf.matmul(
                tf.reshape(xs, (-1, channels)), tf.reshape(ds, (-1, filters)), transpose_a=True
            )
        )
    return tf.stack(grads)


def _kernel_gradient(x, dy, kernel_shape, padding: str, dilation: int, kernel_dilation: int):
    """The kernel gradient of tf.nn.conv1d(x, kernel, padding, dilations=dilation) for output
    gradient dy, taken at `kernel_dilation` over the m = dilation / kernel_dilation interleaved
    sub-sequences of x: a tap k * dilation away in x is k * kernel_dilation away in its
    sub-sequence. x is filled with zeros to a multiple of m, and dy to the matching length.
    With an even `kernel_dilation`, 'SAME' pads each sub-sequence as it pads x (in units of
    m), so the op keeps `padding`; otherwise x is first padded as 'SAME' pads it (the extra
    base at the end) and the op is 'VALID'."""
    import tensorflow as tf

    taps, channels, filters = kernel_shape
    span = (taps - 1) * dilation
    m = dilation // kernel_dilation
    left = right = 0
    if padding == 'SAME' and kernel_dilation % 2:
        left, right, padding = span // 2, span - span // 2, 'VALID'
    padded = tf.shape(x)[1] + left + right
    total = (padded + m - 1) // m * m
    xp = tf.pad(x, [[0, 0], [left, right + total - padded], [0, 0]])
    out_length = total - span if padding == 'VALID' else total
    dyp = tf.pad(dy, [[0, 0], [0, out_length - tf.shape(dy)[1]], [0, 0]])
    dk = tf.raw_ops.Conv2DBackpropFilter(
        input=_interleaved(xp, m),
        filter_sizes=[1, taps, channels, filters],
        out_backprop=_interleaved(dyp, m),
        strides=[1, 1, 1, 1],
        padding=padding,
        dilations=[1, 1, kernel_dilation, 1],
    )
    return dk[0]


def _shifted_matmul_conv(x, kernel, padding: str, dilation: int, rowwise_sum: bool = False):
    """tf.nn.conv1d(x, kernel, padding, dilations) as one matmul and a shifted sum.

    With z[b, f, k, t] = sum_c x[b, t, c] kernel[k, c, f] (one matmul over every tap k) and
    x padded to length Lp, the convolution is y[b, t, f] = sum_k z[b, f, k, t + k * d]. Laid
    out flat over (k, t), that element sits at k * (Lp + d) + t: padding the flat axis by
    K * d and viewing it as (K, Lp + d) lines every tap up under its output position, so the
    sum over k is one reduce_sum, and every op has a cheap gradient (reshape, pad, slice).
    With `rowwise_sum` that sum is a matmul with a ones vector, whose sums, unlike
    reduce_sum's over a middle axis, are the same bits in any batch.
    """
    import tensorflow as tf

    taps, channels, filters = kernel.shape
    span = (taps - 1) * dilation
    left = span // 2 if padding == 'SAME' else 0
    right = span - left if padding == 'SAME' else 0
    batch, length = tf.shape(x)[0], tf.shape(x)[1]
    padded = length + left + right
    out_length = padded - span
    z = tf.matmul(
        tf.reshape(x, (-1, channels)),
        tf.reshape(tf.transpose(kernel, (1, 2, 0)), (channels, filters * taps)),
    )
    z = tf.transpose(tf.reshape(z, (batch, length, filters * taps)), (0, 2, 1))
    z = tf.pad(
        tf.reshape(z, (batch, filters, taps, length)), [[0, 0], [0, 0], [0, 0], [left, right]]
    )
    flat = tf.pad(
        tf.reshape(z, (batch, filters, taps * padded)), [[0, 0], [0, 0], [0, taps * dilation]]
    )
    aligned = tf.reshape(flat, (batch, filters, taps, padded + dilation))
    # tf.slice, not [..., :out_length]: Slice's gradient is a Pad, StridedSlice's a
    # StridedSliceGrad, which costs the head's backward pass several times as much on a CPU.
    aligned = tf.slice(aligned, [0, 0, 0, 0], [-1, -1, -1, out_length])
    if rowwise_sum:  # a ones-vector matmul per (window, filter), in the same order in any batch
        ones = tf.ones((batch, filters, 1, taps), aligned.dtype)
        summed = tf.squeeze(tf.matmul(ones, aligned), 2)
    else:
        summed = tf.reduce_sum(aligned, axis=2)
    return tf.transpose(summed, (0, 2, 1))


def conv1d(stock: bool, filters: int, kernel_size: int, **kwargs):
    """A Conv1D layer: ours, or with `stock` keras.layers.Conv1D (the same math)."""
    return (keras.layers.Conv1D if stock else Conv1D)(filters, kernel_size, **kwargs)


@keras.saving.register_keras_serializable(package='bpnet_tfx')
class Cropping1D(keras.layers.Cropping1D):
    """`keras.layers.Cropping1D` (same config, same outputs) with the crop as tf.slice.

    The stock layer crops with a strided slice, whose gradient (StridedSliceGrad) is several
    times slower on a CPU than Slice's (a Pad); in a model with valid convolutions every
    residual connection and head is cropped, so that gradient is a large share of a training
    step (docs/benchmarks.md).
    """

    def call(self, inputs):
        import tensorflow as tf

        left, right = self.cropping
        length = tf.shape(inputs)[1] - left - right
        return tf.slice(inputs, [0, left, 0], [-1, length, -1])


def cropping1d(stock: bool, cropping: tuple[int, int], **kwargs):
    """A Cropping1D layer: ours, or with `stock` keras.layers.Cropping1D (the same outputs)."""
    return (keras.layers.Cropping1D if stock else Cropping1D)(cropping, **kwargs)


@keras.saving.register_keras_serializable(package='bpnet_tfx')
class Dense(keras.layers.Dense):
    """`keras.layers.Dense` (same config, same weights) whose matmul, outside training, runs
    over a multiple of ROW_ALIGNMENT examples (zeros added, their outputs cut off), so an
    example's output is the same in any batch (`_aligned_conv`)."""

    def call(self, inputs, training=None):
        import tensorflow as tf

        if training or inputs.shape.rank != 2:
            return super().call(inputs, training=training)
        rows = tf.shape(inputs)[0]
        y = super().call(tf.pad(inputs, [[0, extra_rows(rows)], [0, 0]]), training=training)
        return y[:rows]


@keras.saving.register_keras_serializable(package='bpnet_tfx')
class GlobalAveragePooling1D(keras.layers.GlobalAveragePooling1D):
    """`keras.layers.GlobalAveragePooling1D` (same config, same outputs) whose mean over
    positions, outside training, is `rowwise.reduce_mean`'s: the same bits in any batch."""

    def call(self, inputs, mask=None, training=None):
        if training or mask is not None or self.data_format != 'channels_last':
            return super().call(inputs, mask=mask)
        return rowwise.reduce_mean(inputs, 1, keepdims=self.keepdims)
