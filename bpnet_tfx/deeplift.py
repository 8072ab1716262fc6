"""DeepLIFT's rescale rule for an exported BPNet: its Keras model rebuilt with every ReLU paired.

`rescale_model(exported)` rebuilds the export's Keras model from model_config.json
(`model.build_bpnet`) with the SavedModel's weights (matched by variable path and shape), every
relu convolution replaced by one whose ReLU takes DeepLIFT's rescale rule as its gradient. The
rebuilt model is called on a batch of 2 M rows: M inputs x_i, then their M references r_i, so
row i and row i + M are a pair. For a ReLU with pre-activations z (of x_i) and z0 (of r_i), the
gradient passed back to both rows is the multiplier

    m = (relu(z) - relu(z0)) / (z - z0),  or relu'(z) where |z - z0| < RESCALE_EPSILON,

and every other op (convolutions, crops, residual adds, the counts head's average pool and
dense layer, the control features) keeps its own gradient, being linear in the sequence or
fixed. The gradient of a target that is linear in the outputs, taken at the x rows, is then
DeepLIFT's multiplier of x against r: sum over bases of m * (x - r) = target(x) - target(r)
exactly (summation to delta), layer by layer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import keras

from bpnet_tfx import layers
from bpnet_tfx import model as model_lib

if TYPE_CHECKING:
    from bpnet_tfx import export

# Below this |z - z0| a unit's multiplier is its gradient at z (the limit of the ratio).
RESCALE_EPSILON = 1e-6


def rescale_relu(z):
    """relu(z) of a paired batch (2 M, ...) whose gradient is the rescale multiplier of row i
    against row i + M, given to both rows (module docstring)."""
    import tensorflow as tf

    @tf.custom_gradient
    def relu(z):
        y = tf.nn.relu(z)

        def grad(dy):
            zx, zr = tf.split(z, 2)
            yx, yr = tf.split(y, 2)
            delta = zx - zr
            near = tf.abs(delta) < RESCALE_EPSILON
            ratio = (yx - yr) / tf.where(near, tf.ones_like(delta), delta)
            m = tf.where(near, tf.cast(zx > 0, z.dtype), ratio)
            return dy * tf.concat([m, m], axis=0)

        return y, grad

    return relu(z)


class RescaleConv1D(layers.Conv1D):
    """`layers.Conv1D` with activation None followed by `rescale_relu`: the rebuilt model's
    stand-in for a relu convolution (never saved)."""

    def call(self, x):
        return rescale_relu(super().call(x))


def _swap_relu(layer):
    config = layer.get_config()
    if isinstance(layer, layers.Conv1D) and config['activation'] == 'relu':
        return RescaleConv1D.from_config({**config, 'activation': None})
    activation = getattr(layer, 'activation', None)
    if activation not in (None, keras.activations.linear, 'linear'):
        raise NotImplementedError(
            f'DeepLIFT rescale rule: layer {layer.name!r} has activation {activation!r}, '
            'which the rebuilt model cannot pair'
        )
    return layer.__class__.from_config(config)


def paired_model(model: keras.Model) -> keras.Model:
    """A copy of a functional `model` (same weights) whose relu `layers.Conv1D`s apply
    `rescale_relu`: call it on paired batches (module docstring).

    Raises:
      NotImplementedError: a layer with another nonlinear activation.
    """
    copy = keras.models.clone_model(model, clone_function=_swap_relu)
    copy.set_weights(model.get_weights())
    return copy


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
    from bpnet_tfx import export

    rebuilt = paired_model(model_lib.build_bpnet(exported.config))
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
