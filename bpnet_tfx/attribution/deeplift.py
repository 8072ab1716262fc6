"""DeepLIFT's rescale rule for an exported BPNet: its Keras model rebuilt with every ReLU paired.

`rescale_model(exported)` rebuilds the export's Keras model from model_config.json
(`model.build_bpnet`) with the SavedModel's weights, every relu convolution replaced by one
whose ReLU takes DeepLIFT's rescale rule as its gradient. `paired_outputs(model, x, refs)` calls
it on the N inputs x_i, whose layers record their pre-activations, then on the K references of
each. A ReLU with pre-activations z (of x_i) and z0 (of r_ik) passes back to row r_ik the
multiplier

    m = (relu(z) - relu(z0)) / (z - z0),  or relu'(z) where |z - z0| < RESCALE_EPSILON;

the summed counts heads' logsumexps (`heads.RateSum`) pass back the softmax averaged along the
straight path between the two rows' log rates (`paired_logsumexp`); every other op is linear
in the sequence or fixed and keeps its gradient. So sum over bases of m * (x - r) =
target(x) - target(r) exactly. A window costs 1 + K rows forward and K rows backward per
target, not 2 K, and the multipliers are computed once in the forward pass, shared by every
target (docs/interpretation.md).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import keras

from bpnet_tfx.common import rowwise
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
    """The state of a paired model's call (`paired_outputs`), per thread, as devices trace
    their calls at once (`devices.split_batch`): `mode` None (plain ReLUs and logsumexps),
    'inputs' (the N input rows: each paired layer records its pre-activations in `recorded`)
    or 'references' (their N K references, input-major: each paired layer takes the
    multipliers against the input rows it recorded)."""

    mode = None
    recorded = None

    def pair(self, layer, z):
        """The recorded input rows of `layer`'s z for reference rows z, or None when unpaired;
        records z itself when the input rows pass."""
        if self.mode == 'inputs':
            self.recorded.setdefault(id(layer), []).append(z)
            return None
        if self.mode == 'references':
            return self.recorded[id(layer)].pop(0)
        return None


def _by_input(zr, zx):
    """Reference rows (N K, ...) grouped by input as (N, K, ...), for input rows zx (N, ...)."""
    import tensorflow as tf

    return tf.reshape(zr, tf.concat([[tf.shape(zx)[0], -1], tf.shape(zx)[1:]], axis=0))


def rescale_multiplier(zx, zr, yr=None):
    """DeepLIFT's rescale multiplier of a ReLU at reference rows zr (N K, ...) against their
    input rows zx (N, ...): (relu(zx) - relu(zr)) / (zx - zr), or relu'(zx) where
    |zx - zr| < RESCALE_EPSILON; shaped as zr. yr: relu(zr) when already computed."""
    import tensorflow as tf

    grouped = _by_input(zr, zx)
    yr = _by_input(tf.nn.relu(zr) if yr is None else yr, zx)
    zx = zx[:, None]
    delta = zx - grouped
    ratio = (tf.nn.relu(zx) - yr) / delta  # inf or nan where delta is ~0
    m = tf.where(tf.abs(delta) < RESCALE_EPSILON, tf.cast(zx > 0, zr.dtype), ratio)
    return tf.reshape(m, tf.shape(zr))


def rescale_relu(z, zx=None):
    """relu(z). Given zx, z holds the reference rows of input rows zx (K each, input-major)
    and its gradient is the rescale multiplier (`rescale_multiplier`, computed once here in
    the forward pass, however many targets are differentiated)."""
    import tensorflow as tf

    if zx is None:
        return tf.nn.relu(z)

    @tf.custom_gradient
    def relu(z):
        y = tf.nn.relu(z)
        m = rescale_multiplier(zx, z, y)
        return y, lambda dy: dy * m

    return relu(z)


def logsumexp_multiplier(zx, zr, axes: tuple[int, ...]):
    """DeepLIFT's multiplier of logsumexp over `axes` at reference rows zr (N K, ...) against
    their input rows zx (N, ...): the softmax averaged along the straight path from each
    reference's z to its input's (RATE_PATH_STEPS midpoints), scaled so that
    sum(m * (zx - zr)) equals the difference of the two logsumexps exactly; shaped as zr."""
    import tensorflow as tf

    grouped = _by_input(zr, zx)
    delta = zx[:, None] - grouped
    shifted = [a + 1 for a in axes]
    m = tf.zeros_like(grouped)
    for i in range(RATE_PATH_STEPS):
        m += rowwise.softmax(grouped + (i + 0.5) / RATE_PATH_STEPS * delta, tuple(shifted))
    m /= RATE_PATH_STEPS
    exact = rowwise.reduce_logsumexp(
        zx[:, None], tuple(shifted), keepdims=True
    ) - rowwise.reduce_logsumexp(grouped, tuple(shifted), keepdims=True)
    approx = rowwise.reduce_sum(m * delta, tuple(shifted), keepdims=True)
    tiny = tf.abs(approx) < RESCALE_EPSILON
    m *= tf.where(tiny, tf.ones_like(approx), exact / tf.where(tiny, 1.0, approx))
    return tf.reshape(m, tf.shape(zr))


def paired_logsumexp(z, axes: tuple[int, ...], zx=None):
    """logsumexp of z over `axes` (keeping them). Given zx, z holds the reference rows of
    input rows zx (as `rescale_relu`) and its gradient is `logsumexp_multiplier`."""
    import tensorflow as tf

    if zx is None:
        return rowwise.reduce_logsumexp(z, axes, keepdims=True)

    @tf.custom_gradient
    def lse(z):
        m = logsumexp_multiplier(zx, z, axes)
        return rowwise.reduce_logsumexp(z, axes, keepdims=True), lambda dy: dy * m

    return lse(z)


class PairedRateSum(RateSum):
    """`heads.RateSum` whose logsumexps are `paired_logsumexp`: the rebuilt model's stand-in
    (never saved); `pairing` is shared by all of a model's paired layers."""

    pairing: Pairing | None = None

    def _lse(self, x):
        zx = None if self.pairing is None else self.pairing.pair(self, x)
        return paired_logsumexp(x, (1, 2) if self.joint else (1,), zx)[:, 0]


class RescaleConv1D(layers.Conv1D):
    """`layers.Conv1D` with activation None followed by `rescale_relu`: the rebuilt model's
    stand-in for a relu convolution (never saved); `pairing` is shared by all of a model's."""

    pairing: Pairing | None = None

    def call(self, x):
        z = super().call(x)
        return rescale_relu(z, None if self.pairing is None else self.pairing.pair(self, z))


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
    """Calls a `paired_model` on inputs, then on their references.

    The inputs pass first, each paired layer recording its pre-activations; the references
    pass next, each paired layer pairing them with their input's. A target of the
    references' outputs is then differentiated through the reference rows alone (the input
    rows are not on the tape), and every multiplier is computed once, however many targets.

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

    k = tf.shape(references)[1]
    rows = tf.reshape(references, tf.concat([[-1], tf.shape(one_hot)[1:]], 0))
    inputs, ref_inputs = one_hot, rows
    if control is not None:
        inputs = {INPUT_NAME: one_hot, CONTROL_INPUT_NAME: control}
        ref_inputs = {INPUT_NAME: rows, CONTROL_INPUT_NAME: tf.repeat(control, k, axis=0)}
    pairing = paired.pairing
    pairing.mode, pairing.recorded = 'inputs', {}
    try:
        out_x = paired(inputs, training=False)
        pairing.mode = 'references'
        out_r = paired(ref_inputs, training=False)
    finally:
        pairing.mode = pairing.recorded = None
    return out_x, out_r


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
