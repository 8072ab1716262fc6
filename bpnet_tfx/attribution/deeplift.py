"""DeepLIFT's rescale rule for an exported BPNet: its Keras model rebuilt with every ReLU paired.

`rescale_model(exported)` rebuilds the export's Keras model from model_config.json
(`model.build_bpnet`) with the SavedModel's weights, every relu convolution replaced by one
whose ReLU takes DeepLIFT's rescale rule as its gradient. `paired_outputs(model, x, refs)` calls
it on one batch of N (1 + K) rows: the N inputs x_i, then the K references of each. A ReLU with
pre-activations z (of x_i) and z0 (of r_ik) passes back to row r_ik the multiplier

    m = (relu(z) - relu(z0)) / (z - z0),  or relu'(z) where |z - z0| < RESCALE_EPSILON;

the summed counts heads' logsumexps (`heads.RateSum`) pass back the softmax averaged along the
straight path between the two rows' log rates (`paired_logsumexp`); every other op is linear
in the sequence or fixed and keeps its gradient. So sum over bases of m * (x - r) =
target(x) - target(r) exactly, and a window costs 1 + K rows forward and backward, not 2 K
(docs/interpretation.md).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import keras

from bpnet_tfx.modeling import layers
from bpnet_tfx.modeling.config import CONTROL_INPUT_NAME, INPUT_NAME
from bpnet_tfx.modeling.heads import RateSum
from bpnet_tfx.modeling.model import build_bpnet

if TYPE_CHECKING:
    from bpnet_tfx.inference import export

# Below this |z - z0| a unit's multiplier is its gradient at z (the limit of the ratio).
RESCALE_EPSILON = 1e-6
# Midpoints of the straight path that average a logsumexp's softmax (its multiplier).
RATE_PATH_STEPS = 16


class Pairing(threading.local):
    """How many input rows lead the batch a paired model is being called on (a tensor while
    `paired_outputs` traces the call, None otherwise: then the ReLUs are plain); per thread,
    as devices trace their calls at once (`devices.split_batch`)."""

    inputs = None


def _input_and_reference_rows(z, inputs: int):
    """A paired batch's `inputs` input rows as (N, 1, ...) and their references as (N, K, ...)."""
    import tensorflow as tf

    grouped = tf.concat([[inputs, -1], tf.shape(z)[1:]], axis=0)
    return z[:inputs][:, None], tf.reshape(z[inputs:], grouped)


def rescale_relu(z, inputs=None):
    """relu(z) of a batch of `inputs` input rows followed by their references (K rows each,
    input-major), whose gradient at each reference row is the rescale multiplier against its
    input row; the input rows get no gradient (module docstring). With `inputs` None, relu."""
    import tensorflow as tf

    if inputs is None:
        return tf.nn.relu(z)

    @tf.custom_gradient
    def relu(z):
        y = tf.nn.relu(z)

        def grad(dy):
            zx, zr = _input_and_reference_rows(z, inputs)
            delta = zx - zr
            near = tf.abs(delta) < RESCALE_EPSILON
            ratio = (tf.nn.relu(zx) - tf.nn.relu(zr)) / tf.where(near, tf.ones_like(delta), delta)
            m = tf.where(near, tf.cast(zx > 0, z.dtype), ratio)
            m = tf.reshape(m, tf.shape(dy[inputs:]))
            return tf.concat([tf.zeros_like(dy[:inputs]), dy[inputs:] * m], axis=0)

        return y, grad

    return relu(z)


def _softmax_over(t, axes: list[int]):
    """Softmax of t over its consecutive `axes` together."""
    import tensorflow as tf

    shape = tf.shape(t)
    flat = tf.concat([shape[: axes[0]], [-1], shape[axes[-1] + 1 :]], 0)
    return tf.reshape(tf.nn.softmax(tf.reshape(t, flat), axis=axes[0]), shape)


def paired_logsumexp(z, axes: tuple[int, ...], inputs=None):
    """logsumexp of z over `axes` (keeping them) for a batch of `inputs` input rows followed by
    their references, K each (as `rescale_relu`). At each reference row the gradient is the
    DeepLIFT multiplier of its logsumexp against its input row: the softmax averaged along
    the straight path from the reference's z to the input's (RATE_PATH_STEPS midpoints),
    scaled so that sum(m * (z - z0)) equals the difference of the two logsumexps exactly.
    The input rows get no gradient. With `inputs` None, plain logsumexp."""
    import tensorflow as tf

    if inputs is None:
        return tf.reduce_logsumexp(z, axis=axes, keepdims=True)

    @tf.custom_gradient
    def lse(z):
        y = tf.reduce_logsumexp(z, axis=axes, keepdims=True)

        def grad(dy):
            zx, zr = _input_and_reference_rows(z, inputs)
            delta = zx - zr
            shifted = [a + 1 for a in axes]
            m = tf.zeros_like(zr)
            for i in range(RATE_PATH_STEPS):
                m += _softmax_over(zr + (i + 0.5) / RATE_PATH_STEPS * delta, shifted)
            m /= RATE_PATH_STEPS
            exact = tf.reduce_logsumexp(zx, shifted, keepdims=True) - tf.reduce_logsumexp(
                zr, shifted, keepdims=True
            )
            approx = tf.reduce_sum(m * delta, shifted, keepdims=True)
            tiny = tf.abs(approx) < RESCALE_EPSILON
            m *= tf.where(tiny, tf.ones_like(approx), exact / tf.where(tiny, 1.0, approx))
            m = tf.reshape(m, tf.shape(z[inputs:]))
            return tf.concat([tf.zeros_like(z[:inputs]), dy[inputs:] * m], axis=0)

        return y, grad

    return lse(z)


class PairedRateSum(RateSum):
    """`heads.RateSum` whose logsumexps are `paired_logsumexp`: the rebuilt model's stand-in
    (never saved); `pairing` is shared by all of a model's paired layers."""

    pairing: Pairing | None = None

    def _lse(self, x):
        inputs = None if self.pairing is None else self.pairing.inputs
        return paired_logsumexp(x, (1, 2) if self.joint else (1,), inputs)[:, 0]


class RescaleConv1D(layers.Conv1D):
    """`layers.Conv1D` with activation None followed by `rescale_relu`: the rebuilt model's
    stand-in for a relu convolution (never saved); `pairing` is shared by all of a model's."""

    pairing: Pairing | None = None

    def call(self, x):
        inputs = None if self.pairing is None else self.pairing.inputs
        return rescale_relu(super().call(x), inputs)


def _swap_relu(layer, pairing: Pairing):
    config = layer.get_config()
    if isinstance(layer, layers.Conv1D) and config['activation'] == 'relu':
        swapped = RescaleConv1D.from_config({**config, 'activation': None})
        swapped.pairing = pairing
        return swapped
    if isinstance(layer, RateSum):
        swapped = PairedRateSum.from_config(config)
        swapped.pairing = pairing
        return swapped
    activation = getattr(layer, 'activation', None)
    if activation not in (None, keras.activations.linear, 'linear'):
        raise NotImplementedError(
            f'DeepLIFT rescale rule: layer {layer.name!r} has activation {activation!r}, '
            'which the rebuilt model cannot pair'
        )
    return layer.__class__.from_config(config)


def paired_model(model: keras.Model) -> keras.Model:
    """A copy of a functional `model` (same weights) whose relu `layers.Conv1D`s apply
    `rescale_relu`: call it through `paired_outputs` (module docstring).

    Raises:
      NotImplementedError: a layer with another nonlinear activation.
    """
    pairing = Pairing()
    copy = keras.models.clone_model(model, clone_function=lambda layer: _swap_relu(layer, pairing))
    copy.set_weights(model.get_weights())
    copy.pairing = pairing
    return copy


def paired_outputs(paired: keras.Model, one_hot, references, control=None):
    """Calls a `paired_model` on inputs and their references in one batch.

    Args:
      paired: a model from `paired_model` or `rescale_model`.
      one_hot: (N, L, 4) inputs x.
      references: (N, K, L, 4) references r (watch this tensor on the gradient tape).
      control: (N, ...) control counts of a model with control tracks, the same for an input
        and its references; None otherwise.

    Returns:
      (outputs of the inputs (N rows), outputs of the references (N K rows, input-major)),
      each the model's own structure (a tensor or dict); the gradient of a target linear in
      the references' outputs, at `references`, is the DeepLIFT multiplier of each x against
      each of its references.
    """
    import tensorflow as tf

    n, k = tf.shape(references)[0], tf.shape(references)[1]
    rows = tf.concat(
        [one_hot, tf.reshape(references, tf.concat([[-1], tf.shape(one_hot)[1:]], 0))], 0
    )
    inputs = rows
    if control is not None:
        inputs = {
            INPUT_NAME: rows,
            CONTROL_INPUT_NAME: tf.concat([control, tf.repeat(control, k, axis=0)], 0),
        }
    paired.pairing.inputs = n
    try:
        out = paired(inputs, training=False)
    finally:
        paired.pairing.inputs = None
    return tf.nest.map_structure(lambda t: t[:n], out), tf.nest.map_structure(lambda t: t[n:], out)


def rescale_model(exported: export.ExportedModel) -> keras.Model:
    """The export's model, rebuilt with `rescale_relu` in place of every ReLU.

    Args:
      exported: a loaded export; its model_config.json gives the architecture, its
        SavedModel the weights.

    Returns:
      A keras.Model with build_bpnet's inputs and outputs (float32) and the export's weights;
      forward, it computes what the export computes.

    Raises:
      export.ExportError: the SavedModel's variables do not fit the rebuilt model.
    """
    from bpnet_tfx.inference import export

    rebuilt = paired_model(build_bpnet(exported.config))
    # The export tracks the Keras model, so its variables keep their Keras paths.
    saved = {v.name.removesuffix(':0'): v for v in exported.variables}
    for v in rebuilt.variables:
        source = saved.pop(v.path, None)
        if source is None or tuple(source.shape) != tuple(v.shape):
            raise export.ExportError(
                f'{exported.path}: the SavedModel has no variable {v.path!r} of shape '
                f'{tuple(v.shape)}; cannot rebuild its Keras model for DeepLIFT'
            )
        v.assign(source)
    if saved:
        raise export.ExportError(
            f'{exported.path}: the SavedModel has variables the rebuilt model lacks: '
            f'{", ".join(sorted(saved))}'
        )
    return rebuilt
