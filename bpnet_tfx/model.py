"""The BPNet Keras model: a stem convolution, a dilated residual tower and two heads.

`build_bpnet(config)` composes block functions over the functional API. The profile head gives
per-position logits for every task and strand; the counts head gives log(1 + total counts) per
task and strand from a global average pool of the tower. With one task the task axis is
dropped: profile logits are (batch, length, strands) and log_counts (batch, strands), exactly
the reference architecture (120,964 parameters for 4 input channels and 2 strands).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import keras

from bpnet_tfx import schema

PROFILE = schema.TARGET_PROFILE
LOG_COUNTS = schema.TARGET_LOG_COUNTS
INPUT_NAME = 'one_hot'


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Architecture of a BPNet model. Defaults are the reference experiment's.

    Attributes:
      sequence_length: input and output length in bp ('same' padding throughout).
      num_channels: input channels (4 for ACGT).
      num_tasks: tasks; each gets its own profile and counts outputs.
      num_strands: strands per task (2 for stranded ChIP-nexus, 1 for unstranded data).
      filters: channels of every convolution in the body.
      stem_kernel_size: kernel of the first convolution.
      num_dilated_layers: dilated residual layers, dilations 2, 4, ..., 2**num_dilated_layers.
      dilated_kernel_size: kernel of each dilated convolution.
      profile_kernel_size: kernel of the profile head convolution.
    """

    sequence_length: int = 1000
    num_channels: int = 4
    num_tasks: int = 1
    num_strands: int = 2
    filters: int = 64
    stem_kernel_size: int = 25
    num_dilated_layers: int = 9
    dilated_kernel_size: int = 3
    profile_kernel_size: int = 25

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f'ModelConfig.{field.name} must be a positive integer, '
                                 f'got {value!r}')

    @property
    def receptive_field(self) -> int:
        """Input bases that influence one output position of the profile head."""
        rf = self.stem_kernel_size
        for i in range(1, self.num_dilated_layers + 1):
            rf += (self.dilated_kernel_size - 1) * 2**i
        return rf + self.profile_kernel_size - 1

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> 'ModelConfig':
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f'unknown ModelConfig fields: {sorted(unknown)}')
        return cls(**d)


def _stem(x, config: ModelConfig):
    return keras.layers.Conv1D(config.filters, config.stem_kernel_size, padding='same',
                               activation='relu', name='stem_conv')(x)


def _dilated_tower(x, config: ModelConfig):
    for i in range(1, config.num_dilated_layers + 1):
        conv = keras.layers.Conv1D(config.filters, config.dilated_kernel_size, padding='same',
                                   activation='relu', dilation_rate=2**i,
                                   name=f'dilated_conv_{i}')(x)
        x = keras.layers.Add(name=f'residual_add_{i}')([x, conv])
    return x


def _profile_head(x, config: ModelConfig):
    outputs = config.num_tasks * config.num_strands
    logits = keras.layers.Conv1D(outputs, config.profile_kernel_size, padding='same',
                                 name='profile_conv')(x)
    if config.num_tasks > 1:
        logits = keras.layers.Reshape((config.sequence_length, config.num_tasks,
                                       config.num_strands), name='profile_tasks')(logits)
    # Softmax and losses stay float32 even under a mixed-precision policy.
    return keras.layers.Activation('linear', dtype='float32', name=PROFILE)(logits)


def _counts_head(x, config: ModelConfig):
    outputs = config.num_tasks * config.num_strands
    pooled = keras.layers.GlobalAveragePooling1D(name='counts_pool')(x)
    log_counts = keras.layers.Dense(outputs, name='counts_dense')(pooled)
    if config.num_tasks > 1:
        log_counts = keras.layers.Reshape((config.num_tasks, config.num_strands),
                                          name='counts_tasks')(log_counts)
    return keras.layers.Activation('linear', dtype='float32', name=LOG_COUNTS)(log_counts)


def build_bpnet(config: ModelConfig) -> keras.Model:
    """Builds BPNet.

    Args:
      config: the architecture.

    Returns:
      A functional `keras.Model` taking a float one-hot batch (batch, length, channels) and
      returning {'profile': logits (batch, length[, tasks], strands),
                 'log_counts': log(1 + counts) (batch[, tasks], strands)}.
    """
    inputs = keras.Input((config.sequence_length, config.num_channels), name=INPUT_NAME)
    body = _dilated_tower(_stem(inputs, config), config)
    outputs = {PROFILE: _profile_head(body, config), LOG_COUNTS: _counts_head(body, config)}
    return keras.Model(inputs, outputs, name='bpnet')
