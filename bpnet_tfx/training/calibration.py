"""Calibration of the 'normalized_pool' counts head: its normalization's statistics set from
the current weights, which the trainer runs before validating and exporting."""

from __future__ import annotations

import keras
import tensorflow as tf

from bpnet_tfx.modeling.config import CONTROL_INPUT_NAME, INPUT_NAME
from bpnet_tfx.records import dataset as data
from bpnet_tfx.records import schema
from bpnet_tfx.training.config import TrainConfig

# Examples whose pooled features set the normalization's statistics after each epoch
# (`calibrate_counts_norm`); docs/training.md has how many are enough.
COUNTS_NORM_EXAMPLES = 512


def counts_norm_layers(model: keras.Model) -> list:
    """The counts heads' normalization layers (one per task; none for 'global_pool')."""
    return [layer for layer in model.layers if layer.name.startswith('counts_norm')]


def calibrate_counts_norm(model: keras.Model, batches, max_examples: int) -> int:
    """Sets each counts normalization's moving mean and variance to the exact statistics of its
    input over the first `max_examples` examples of `batches` (no training, no gradient).

    The moving averages that batch normalization keeps while training trail the tower, whose
    weights change every step; the counts head's pooled features vary little next to their
    size, so that lag alone costs accuracy at inference. Calibrating with the current weights
    before validating and exporting removes it ("precise batch normalization").

    Args:
      model: a model from `build_bpnet`; nothing happens without normalization layers.
      batches: iterable of model inputs (a float one-hot batch, or the dict of inputs with a
        control), e.g. centred training windows.
      max_examples: examples to use (at least 2).

    Returns:
      The examples used (0 without normalization layers).
    """
    norms = counts_norm_layers(model)
    if not norms:
        return 0
    features = keras.Model(model.input, [layer.input for layer in norms])
    sums = [0.0] * len(norms)
    squares = [0.0] * len(norms)
    n = 0
    for inputs in batches:
        outs = features(inputs, training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        take = min(max_examples - n, int(keras.ops.shape(outs[0])[0]))
        for i, out in enumerate(outs):
            x = keras.ops.convert_to_numpy(out)[:take].astype('float64')
            sums[i] = sums[i] + x.sum(axis=0)
            squares[i] = squares[i] + (x * x).sum(axis=0)
        n += take
        if n >= max_examples:
            break
    if n < 2:
        raise ValueError(f'calibrate_counts_norm needs at least 2 examples, got {n}')
    for layer, total, square in zip(norms, sums, squares):
        mean = total / n
        layer.moving_mean.assign(mean.astype('float32'))
        layer.moving_variance.assign((square / n - mean * mean).clip(min=0).astype('float32'))
    return n


def calibrate(model: keras.Model, config: TrainConfig, info: schema.RecordsInfo) -> None:
    """With counts_head='normalized_pool': the normalization's statistics from the first
    training windows (centred, unaugmented) under the current weights."""
    if not counts_norm_layers(model):
        return
    n = COUNTS_NORM_EXAMPLES
    batches = data.make_eval_dataset(
        config.records_dir, info, 'train', batch_size=min(config.batch_size, n)
    )

    def _inputs():
        for batch in batches:
            x = tf.cast(batch['one_hot'], tf.float32)
            if config.model.use_control:
                x = {INPUT_NAME: x, CONTROL_INPUT_NAME: batch['control']}
            yield x

    calibrate_counts_norm(model, _inputs(), n)
