"""The per-task heads of BPNet: profile logits and log counts, with their custom layers.

Each task has a profile head (per-position logits per strand, a convolution over the tower
centre-cropped to the output) and a counts head (log(1 + total counts) per strand, or one
total over both strands with profile_loss='joint'). With control tracks, each task's profile
logits get a learned 1x1 combination of its control profile, raw and smoothed, and its counts
head gets log(1 + control total) per strand as extra features, as in the BPNet paper.

The counts heads (`ModelConfig.counts_head`): 'global_pool' (the reference) maps the tower's
average over positions linearly to log counts; 'normalized_pool' standardizes that average per
channel first (batch normalization, an affine map at inference) and the dense layer's bias can
start at the typical log count (`initial_log_counts`). 'position_sum' and 'profile_sum' sum
per-position rates over the output window instead, so that what the counts see is where the
reads land; they are exact logsumexps, which DeepLIFT pairs (attribution/deeplift.py).
docs/training.md explains each head and the studies behind them.
"""

from __future__ import annotations

import math

import keras
from keras.initializers import Constant

from bpnet_tfx.common import rowwise
from bpnet_tfx.modeling.config import LOG_COUNTS, PROFILE, SUMMED_COUNTS_HEADS, ModelConfig
from bpnet_tfx.modeling.layers import Dense, GlobalAveragePooling1D, conv1d, cropping1d

CONTROL_SMOOTHING = 50  # bp window of the smoothed control profile.
# Batch statistics of the pooled features move fast during training; a short memory keeps the
# inference-time (moving) statistics close to them after a few dozen steps.
COUNTS_NORM_MOMENTUM = 0.9
# The heads compute in float32 under every dtype policy (the body may run in bfloat16 or
# float16): they are a small share of the FLOPs, and their outputs feed the softmax and losses.
HEAD_DTYPE = 'float32'


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
        return rowwise.log1p(rowwise.reduce_sum(x, 1))


def _stack_tasks(per_task: list, shape: tuple[int, ...], name: str):
    """One task: its tensor; several: stacked on a task axis before the strand axis."""
    if len(per_task) == 1:
        return per_task[0]
    joined = keras.layers.Concatenate(dtype=HEAD_DTYPE, name=f'{name}_concat')(per_task)
    return keras.layers.Reshape(shape, dtype=HEAD_DTYPE, name=name)(joined)


def _task_suffix(config: ModelConfig, task: int) -> str:
    # One task keeps the reference layer names, so its weights and checkpoints stay compatible.
    return '' if config.num_tasks == 1 else f'_{task}'


def _head_conv(x, config: ModelConfig, filters: int, name: str, stock=False, zero=False):
    """A head's convolution over the tower (profile_kernel_size), centre-cropped to the output;
    with `zero`, its kernel starts at zero."""
    y = conv1d(
        stock,
        filters,
        config.profile_kernel_size,
        padding=config.padding,
        kernel_initializer='zeros' if zero else 'glorot_uniform',
        dtype=HEAD_DTYPE,
        name=name,
    )(x)
    extra = config.crop_arithmetic()['profile_conv'] - config.output_length
    if extra:
        crop = name.replace('_conv', '_crop')
        y = cropping1d(stock, (extra // 2, extra // 2), dtype=HEAD_DTYPE, name=crop)(y)
    return y


def _control_profile_bias(control, config: ModelConfig, t: int, stock: bool = False):
    """A learned 1x1 combination of task t's control profile, raw and smoothed."""
    suffix = _task_suffix(config, t)
    raw = TaskSlice(t, dtype=HEAD_DTYPE, name=f'control_profile{suffix}')(control)
    smooth = keras.layers.AveragePooling1D(
        CONTROL_SMOOTHING,
        strides=1,
        padding='same',
        dtype=HEAD_DTYPE,
        name=f'control_smooth{suffix}',
    )(raw)
    both = keras.layers.Concatenate(dtype=HEAD_DTYPE, name=f'control_features{suffix}')(
        [raw, smooth]
    )
    return conv1d(
        stock, config.num_strands, 1, dtype=HEAD_DTYPE, name=f'control_profile_weights{suffix}'
    )(both)


def profile_logits(x, config: ModelConfig, control=None, stock: bool = False) -> list:
    """Per task, the profile logits (batch, output_length, strands), with the control's bias."""
    logits = []
    for t in range(config.num_tasks):
        suffix = _task_suffix(config, t)
        task_logits = _head_conv(x, config, config.num_strands, f'profile_conv{suffix}', stock)
        if control is not None:
            bias = _control_profile_bias(control, config, t, stock)
            task_logits = keras.layers.Add(dtype=HEAD_DTYPE, name=f'profile_with_control{suffix}')(
                [task_logits, bias]
            )
        logits.append(task_logits)
    return logits


def profile_head(logits: list, config: ModelConfig):
    """The 'profile' output: the tasks' logits stacked (one task: as they are), in float32."""
    stacked = _stack_tasks(
        logits, (config.output_length, config.num_tasks, config.num_strands), 'profile_tasks'
    )
    # Softmax and losses stay float32 even under a mixed-precision policy.
    return keras.layers.Activation('linear', dtype='float32', name=PROFILE)(stacked)


def initial_log_counts(config: ModelConfig, median_total_counts) -> tuple[float, ...]:
    """Per task, the counts head's starting output: log(1 + median total per output unit).

    Args:
      config: the architecture (per strand or one joint total per task).
      median_total_counts: per task, the median total counts over both strands of the
        training peaks (`schema.RecordsInfo.median_total_counts`).

    Returns:
      One value per task: log(1 + median / strands) per strand, or log(1 + median) joint.
    """
    if len(median_total_counts) != config.num_tasks:
        raise ValueError(f'{len(median_total_counts)} median totals for {config.num_tasks} task(s)')
    share = config.num_strands if config.strands_out > 1 else 1
    return tuple(math.log1p(float(m) / share) for m in median_total_counts)


@keras.saving.register_keras_serializable(package='bpnet_tfx')
class RateSum(keras.layers.Layer):
    """Per-position log rates (batch, length, strands) -> log of their sum over the window,
    plus a trained offset per output unit.

    Inputs: [rates], [rates, profile] or with a last (batch, units) shift (e.g. from the
    control): with `weighted`, the rates are corrections to the profile logits `profile`,
    and the output is the log of the profile-weighted sum of exp(rates):
    logsumexp(profile + rates) - logsumexp(profile). Sums run over positions per strand
    (`joint=False`: (batch, strands)) or over positions and strands (`joint=True`: (batch, 1)).
    """

    def __init__(self, joint: bool, weighted: bool = False, initial_offset=0.0, **kwargs):
        super().__init__(**kwargs)
        self.joint, self.weighted = joint, weighted
        self.initial_offset = float(initial_offset)

    def build(self, input_shape):
        units = 1 if self.joint else input_shape[0][-1]
        self.offset = self.add_weight(
            name='offset', shape=(units,), initializer=Constant(self.initial_offset)
        )

    def _lse(self, x):
        if self.joint:
            return rowwise.reduce_logsumexp(x, (1, 2))[:, None]
        return rowwise.reduce_logsumexp(x, 1)

    def call(self, inputs):
        rates = inputs[0]
        if self.weighted:
            total = self._lse(inputs[1] + rates) - self._lse(inputs[1])
        else:
            total = self._lse(rates)
        total = total + self.offset
        return total + inputs[-1] if len(inputs) > 1 + self.weighted else total

    def get_config(self):
        return {
            **super().get_config(),
            'joint': self.joint,
            'weighted': self.weighted,
            'initial_offset': self.initial_offset,
        }


def _rate_offset(config: ModelConfig, log_counts_init, t: int) -> float:
    """A RateSum offset that makes zero log rates give the starting log count."""
    start = 0.0 if log_counts_init is None else float(log_counts_init[t])
    if config.counts_head == 'profile_sum':
        return start
    units = config.output_length * (config.num_strands if config.strands_out == 1 else 1)
    return start - math.log(units)


def _control_log_total(control, config: ModelConfig, t: int):
    suffix = _task_suffix(config, t)
    return LogTotal(dtype=HEAD_DTYPE, name=f'control_log_total{suffix}')(
        TaskSlice(t, dtype=HEAD_DTYPE, name=f'control_counts{suffix}')(control)
    )


def _summed_counts_head(x, logits: list, config: ModelConfig, control, log_counts_init, stock):
    """'position_sum' (log rates from a convolution) or 'profile_sum' (those rates as
    corrections to the profile logits); the convolution starts at zero."""
    outputs = []
    for t in range(config.num_tasks):
        suffix = _task_suffix(config, t)
        rates = _head_conv(
            x, config, config.num_strands, f'counts_rate_conv{suffix}', stock, zero=True
        )
        inputs = [rates]
        if config.counts_head == 'profile_sum':
            inputs.append(logits[t])
        if control is not None:
            inputs.append(
                Dense(
                    config.strands_out,
                    use_bias=False,
                    kernel_initializer='zeros',
                    dtype=HEAD_DTYPE,
                    name=f'counts_control_weight{suffix}',
                )(_control_log_total(control, config, t))
            )
        outputs.append(
            RateSum(
                config.strands_out == 1,
                config.counts_head == 'profile_sum',
                _rate_offset(config, log_counts_init, t),
                dtype=HEAD_DTYPE,
                name=f'counts_rate_sum{suffix}',
            )(inputs)
        )
    return outputs


def _pooled_counts_head(x, config: ModelConfig, control=None, log_counts_init=None) -> list:
    pooled = GlobalAveragePooling1D(dtype=HEAD_DTYPE, name='counts_pool')(x)
    outputs = []
    for t in range(config.num_tasks):
        suffix = _task_suffix(config, t)
        features = pooled
        if control is not None:
            total = _control_log_total(control, config, t)
            features = keras.layers.Concatenate(dtype=HEAD_DTYPE, name=f'counts_features{suffix}')(
                [pooled, total]
            )
        if config.counts_head == 'normalized_pool':
            # Synchronized: every replica standardizes with the global batch's statistics.
            features = keras.layers.BatchNormalization(
                momentum=COUNTS_NORM_MOMENTUM,
                synchronized=True,
                dtype=HEAD_DTYPE,
                name=f'counts_norm{suffix}',
            )(features)
        bias = 'zeros' if log_counts_init is None else Constant(float(log_counts_init[t]))
        outputs.append(
            Dense(
                config.strands_out,
                bias_initializer=bias,
                dtype=HEAD_DTYPE,
                name=f'counts_dense{suffix}',
            )(features)
        )
    return outputs


def counts_head(
    x, logits: list, config: ModelConfig, control=None, log_counts_init=None, stock=False
):
    """The 'log_counts' output from the tower `x` (and, for 'profile_sum', the tasks' profile
    logits), stacked over tasks like the profile."""
    if config.counts_head in SUMMED_COUNTS_HEADS:
        outputs = _summed_counts_head(x, logits, config, control, log_counts_init, stock)
    else:
        outputs = _pooled_counts_head(x, config, control, log_counts_init)
    stacked = _stack_tasks(outputs, (config.num_tasks, config.strands_out), 'counts_tasks')
    return keras.layers.Activation('linear', dtype='float32', name=LOG_COUNTS)(stacked)
