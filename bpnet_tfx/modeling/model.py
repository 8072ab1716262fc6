"""The BPNet Keras model: a stem convolution, a dilated residual tower and per-task heads.

`build_bpnet(config)` composes block functions over the functional API; the heads are in
heads.py, the config in config.py. With one task the task axis is dropped: profile logits are
(batch, length, strands) and log_counts (batch, strands), exactly the reference architecture.

Two regimes. The reference (output_length = sequence_length) pads every convolution 'same',
so outputs are as long as the input. The current one (bpnet v2, ChromBPNet; e.g. 2114 -> 1000)
uses 'valid' convolutions: the stem, each dilated layer (its residual input cropped to match)
and the profile head shrink the window, and the profile logits are then centre-cropped to
output_length; `ModelConfig.crop_arithmetic` gives the lengths.

The convolutions are `layers.Conv1D` (keras.layers.Conv1D's weights and math, with CPU
rewrites); `build_bpnet(config, stock_layers=True)` builds keras.layers.Conv1D instead.
"""

from __future__ import annotations

import keras

from bpnet_tfx.modeling import heads
from bpnet_tfx.modeling.config import (
    CONTROL_INPUT_NAME,
    INPUT_NAME,
    LOG_COUNTS,
    PROFILE,
    ModelConfig,
)
from bpnet_tfx.modeling.layers import conv1d, cropping1d


def _stem(x, config: ModelConfig, stock: bool = False):
    return conv1d(
        stock,
        config.filters,
        config.stem_kernel_size,
        padding=config.padding,
        activation='relu',
        name='stem_conv',
    )(x)


def _dilated_tower(x, config: ModelConfig, stock: bool = False):
    for i in range(1, config.num_dilated_layers + 1):
        conv = conv1d(
            stock,
            config.filters,
            config.dilated_kernel_size,
            padding=config.padding,
            activation='relu',
            dilation_rate=2**i,
            name=f'dilated_conv_{i}',
        )(x)
        if config.valid_padding:  # The residual input loses what the convolution lost.
            lost = (config.dilated_kernel_size - 1) * 2**i
            x = cropping1d(stock, (lost // 2, lost - lost // 2), name=f'residual_crop_{i}')(x)
        x = keras.layers.Add(name=f'residual_add_{i}')([x, conv])
    return x


def build_bpnet(
    config: ModelConfig, stock_layers: bool = False, log_counts_init=None
) -> keras.Model:
    """Builds BPNet.

    Args:
      config: the architecture.
      stock_layers: build the convolutions from keras.layers.Conv1D, as the reference
        notebook does, instead of `layers.Conv1D` (same weights, same outputs).
      log_counts_init: None (zero biases, the reference), or per task the counts head's
        starting output (`heads.initial_log_counts`), its bias's initial value: the head then
        starts at the typical log count instead of 0 and its weights learn only the
        variation between windows (see docs/training.md, counts head).

    Returns:
      A functional `keras.Model` taking a float one-hot batch (batch, sequence_length,
      channels) (and, with `use_control`, a dict {'one_hot': ...,
      'control': (batch, output_length, tasks, strands)}) and returning
      {'profile': logits (batch, output_length[, tasks], strands),
       'log_counts': log(1 + counts) (batch[, tasks], strands), or (batch[, tasks], 1) of the
       total over both strands with profile_loss='joint'}.
    """
    one_hot = keras.Input((config.sequence_length, config.num_channels), name=INPUT_NAME)
    control = None
    inputs = one_hot
    if config.use_control:
        control = keras.Input(
            (config.output_length, config.num_tasks, config.num_strands), name=CONTROL_INPUT_NAME
        )
        inputs = {INPUT_NAME: one_hot, CONTROL_INPUT_NAME: control}
    body = _dilated_tower(_stem(one_hot, config, stock_layers), config, stock_layers)
    logits = heads.profile_logits(body, config, control, stock_layers)
    outputs = {
        PROFILE: heads.profile_head(logits, config),
        LOG_COUNTS: heads.counts_head(body, logits, config, control, log_counts_init, stock_layers),
    }
    return keras.Model(inputs, outputs, name='bpnet')
