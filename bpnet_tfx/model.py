"""The BPNet Keras model: a stem convolution, a dilated residual tower and per-task heads.

`build_bpnet(config)` composes block functions over the functional API. Each task has a
profile head (per-position logits per strand) and a counts head (log(1 + total counts) per
strand, from a global average pool of the shared tower). With one task the task axis is
dropped: profile logits are (batch, length, strands) and log_counts (batch, strands), exactly
the reference architecture (120,964 parameters for 4 input channels and 2 strands).

With control tracks (`use_control`), the model takes a second input, the control counts
(batch, length, tasks, strands), as in the BPNet paper: each task's profile logits get a
learned 1x1 combination of its control profile, raw and smoothed over 50 bp, and its counts
head gets log(1 + control total) per strand as extra features.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import keras

from bpnet_tfx import schema

PROFILE = schema.TARGET_PROFILE
LOG_COUNTS = schema.TARGET_LOG_COUNTS
INPUT_NAME = 'one_hot'
CONTROL_INPUT_NAME = 'control'
CONTROL_SMOOTHING = 50  # bp window of the smoothed control profile.
# The heads compute in float32 under every dtype policy (the body may run in bfloat16 or
# float16): they are a small share of the FLOPs, and their outputs feed the softmax and losses.
HEAD_DTYPE = 'float32'


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
      use_control: take control counts as a second input (see module docstring).
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
    use_control: bool = False

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.type in (bool, 'bool'):
                if not isinstance(value, bool):
                    raise ValueError(f'ModelConfig.{field.name} must be a bool, got {value!r}')
            elif isinstance(value, bool) or not isinstance(value, int) or value < 1:
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


@keras.saving.register_keras_serializable(package='bpnet_tfx')
class TaskSlice(keras.layers.Layer):
    """(batch, length, tasks, strands) -> (batch, length, strands) of one task."""

    def __init__(self, task: int, **kwargs):
        super().__init__(**kwargs)
        self.task = task

    def call(self, x):
        return x[:, :, self.task, :]

    def get_config(self):
        return {**super().get_config(), 'task': self.task}


@keras.saving.register_keras_serializable(package='bpnet_tfx')
class LogTotal(keras.layers.Layer):
    """(batch, length, strands) counts -> (batch, strands) log(1 + total over positions)."""

    def call(self, x):
        return keras.ops.log1p(keras.ops.sum(x, axis=1))


def _stack_tasks(per_task: list, shape: tuple[int, ...], name: str):
    """One task: its tensor; several: stacked on a task axis before the strand axis."""
    if len(per_task) == 1:
        return per_task[0]
    joined = keras.layers.Concatenate(dtype=HEAD_DTYPE, name=f'{name}_concat')(per_task)
    return keras.layers.Reshape(shape, dtype=HEAD_DTYPE, name=name)(joined)


def _task_suffix(config: ModelConfig, task: int) -> str:
    # One task keeps the reference layer names, so its weights and checkpoints stay compatible.
    return '' if config.num_tasks == 1 else f'_{task}'


def _profile_head(x, config: ModelConfig, control=None):
    logits = []
    for t in range(config.num_tasks):
        suffix = _task_suffix(config, t)
        task_logits = keras.layers.Conv1D(config.num_strands, config.profile_kernel_size,
                                          padding='same', dtype=HEAD_DTYPE,
                                          name=f'profile_conv{suffix}')(x)
        if control is not None:
            raw = TaskSlice(t, dtype=HEAD_DTYPE, name=f'control_profile{suffix}')(control)
            smooth = keras.layers.AveragePooling1D(CONTROL_SMOOTHING, strides=1,
                                                   padding='same', dtype=HEAD_DTYPE,
                                                   name=f'control_smooth{suffix}')(raw)
            both = keras.layers.Concatenate(dtype=HEAD_DTYPE,
                                            name=f'control_features{suffix}')([raw, smooth])
            bias = keras.layers.Conv1D(config.num_strands, 1, dtype=HEAD_DTYPE,
                                       name=f'control_profile_weights{suffix}')(both)
            task_logits = keras.layers.Add(dtype=HEAD_DTYPE,
                                           name=f'profile_with_control{suffix}')(
                [task_logits, bias])
        logits.append(task_logits)
    stacked = _stack_tasks(logits, (config.sequence_length, config.num_tasks,
                                    config.num_strands), 'profile_tasks')
    # Softmax and losses stay float32 even under a mixed-precision policy.
    return keras.layers.Activation('linear', dtype='float32', name=PROFILE)(stacked)


def _counts_head(x, config: ModelConfig, control=None):
    pooled = keras.layers.GlobalAveragePooling1D(dtype=HEAD_DTYPE, name='counts_pool')(x)
    outputs = []
    for t in range(config.num_tasks):
        suffix = _task_suffix(config, t)
        features = pooled
        if control is not None:
            total = LogTotal(dtype=HEAD_DTYPE, name=f'control_log_total{suffix}')(
                TaskSlice(t, dtype=HEAD_DTYPE, name=f'control_counts{suffix}')(control))
            features = keras.layers.Concatenate(dtype=HEAD_DTYPE,
                                                name=f'counts_features{suffix}')([pooled, total])
        outputs.append(keras.layers.Dense(config.num_strands, dtype=HEAD_DTYPE,
                                          name=f'counts_dense{suffix}')(features))
    stacked = _stack_tasks(outputs, (config.num_tasks, config.num_strands), 'counts_tasks')
    return keras.layers.Activation('linear', dtype='float32', name=LOG_COUNTS)(stacked)


def build_bpnet(config: ModelConfig) -> keras.Model:
    """Builds BPNet.

    Args:
      config: the architecture.

    Returns:
      A functional `keras.Model` taking a float one-hot batch (batch, length, channels) (and,
      with `use_control`, a dict {'one_hot': ..., 'control': (batch, length, tasks, strands)})
      and returning {'profile': logits (batch, length[, tasks], strands),
                     'log_counts': log(1 + counts) (batch[, tasks], strands)}.
    """
    one_hot = keras.Input((config.sequence_length, config.num_channels), name=INPUT_NAME)
    control = None
    inputs = one_hot
    if config.use_control:
        control = keras.Input((config.sequence_length, config.num_tasks, config.num_strands),
                             name=CONTROL_INPUT_NAME)
        inputs = {INPUT_NAME: one_hot, CONTROL_INPUT_NAME: control}
    body = _dilated_tower(_stem(one_hot, config), config)
    outputs = {PROFILE: _profile_head(body, config, control),
               LOG_COUNTS: _counts_head(body, config, control)}
    return keras.Model(inputs, outputs, name='bpnet')
