"""The BPNet Keras model: a stem convolution, a dilated residual tower and per-task heads.

`build_bpnet(config)` composes block functions over the functional API. Each task has a
profile head (per-position logits per strand) and a counts head (log(1 + total counts) per
strand, from a global average pool of the shared tower). With one task the task axis is
dropped: profile logits are (batch, length, strands) and log_counts (batch, strands), exactly
the reference architecture (120,964 parameters for 4 input channels and 2 strands).

With control tracks (`use_control`), the model takes a second input, the control counts
(batch, output_length, tasks, strands), as in the BPNet paper: each task's profile logits get
a learned 1x1 combination of its control profile, raw and smoothed over 50 bp, and its counts
head gets log(1 + control total) per strand as extra features.

Two regimes. The reference (output_length = sequence_length) pads every convolution 'same',
so outputs are as long as the input. The current one (bpnet v2, ChromBPNet; e.g. 2114 -> 1000)
uses 'valid' convolutions: the stem, each dilated layer (its residual input cropped to match)
and the profile head shrink the window, and the profile logits are then centre-cropped to
output_length; the pooled counts heads pool the whole tower output. `crop_arithmetic` gives the
lengths; an input too short for the requested output is refused.

The convolutions are `layers.Conv1D` (keras.layers.Conv1D's weights and math, with CPU
rewrites); `build_bpnet(config, stock_layers=True)` builds keras.layers.Conv1D instead.

The counts head. The reference ('global_pool') maps the tower's average over positions
linearly to log counts. Those averages vary little between windows next to their size (most of
a window is background, so a peak moves a channel's average by a few percent), so a dense
layer trained with Adam learns the differences between windows slowly and, with a zero bias,
first spends its weights on the typical log count. 'normalized_pool' standardizes the pooled
features per channel (batch normalization over the global batch, synchronized across replicas;
at inference a fixed affine map, so the head stays linear in the pooled features), and the
trainer can start the dense layer's bias at the typical log count (`log_counts_init`,
`initial_log_counts`); docs/training.md has the study behind this.

Two heads sum rates over the output window instead of pooling the whole tower, so that what
the counts see is where the reads land: reads that a motif in the flanks of a wide input puts
outside the window do not count. 'position_sum' gives each output position a log rate from a
convolution like the profile head's (kernel profile_kernel_size over the tower, cropped to
the output) and predicts the log of their sum. 'profile_sum' uses those log rates as
corrections to the profile logits: log sum_p softmax(profile)_p exp(rate_p), the rates
averaged where the profile head puts the reads. Both start flat (the rate convolution's
kernel at zero, so every window starts at the typical log count), add the control's log
total through a dense layer that starts at zero, and are exact logsumexps, which DeepLIFT
pairs (bpnet_tfx/attribution/deeplift.py).

`profile_loss='joint'` (ChromBPNet's choice) makes the strands share one multinomial over
length x strands, so the counts head predicts one log(1 + total) over both strands per task
(last axis of size 1) instead of one per strand.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import keras
from keras.initializers import Constant

from bpnet_tfx.modeling.layers import Conv1D  # model.Conv1D stays importable (README names it)
from bpnet_tfx.records import schema

PROFILE = schema.TARGET_PROFILE
LOG_COUNTS = schema.TARGET_LOG_COUNTS
INPUT_NAME = 'one_hot'
CONTROL_INPUT_NAME = 'control'
CONTROL_SMOOTHING = 50  # bp window of the smoothed control profile.
PROFILE_LOSSES = ('per_strand', 'joint')
# 'global_pool': the reference counts head, a dense layer over the tower's average;
# 'normalized_pool': the same average standardized per channel (batch normalization) first;
# 'position_sum' / 'profile_sum': a sum of per-position rates over the output window (module
# docstring).
COUNTS_HEADS = ('global_pool', 'normalized_pool', 'position_sum', 'profile_sum')
# The heads that sum per-position rates over the output window.
SUMMED_COUNTS_HEADS = ('position_sum', 'profile_sum')
# Batch statistics of the pooled features move fast during training; a short memory keeps the
# inference-time (moving) statistics close to them after a few dozen steps.
COUNTS_NORM_MOMENTUM = 0.9
# Examples whose pooled features set the normalization's statistics after each epoch
# (`calibrate_counts_norm`); 512 and all 2,492 demo training windows gave the same validation
# counts (docs/training.md).
COUNTS_NORM_EXAMPLES = 512
# The heads compute in float32 under every dtype policy (the body may run in bfloat16 or
# float16): they are a small share of the FLOPs, and their outputs feed the softmax and losses.
HEAD_DTYPE = 'float32'


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Architecture of a BPNet model. Defaults are the reference experiment's.

    Attributes:
      sequence_length: input length in bp.
      num_channels: input channels (4 for ACGT).
      num_tasks: tasks; each gets its own profile and counts outputs.
      num_strands: strands per task (2 for stranded ChIP-nexus, 1 for unstranded data).
      filters: channels of every convolution in the body.
      stem_kernel_size: kernel of the first convolution.
      num_dilated_layers: dilated residual layers, dilations 2, 4, ..., 2**num_dilated_layers.
      dilated_kernel_size: kernel of each dilated convolution.
      profile_kernel_size: kernel of the profile head convolution.
      use_control: take control counts as a second input (see module docstring).
      output_length: profile output length in bp; 0 means sequence_length ('same' padding
        throughout); shorter means 'valid' convolutions and a centre crop.
      profile_loss: 'per_strand' (a multinomial per strand, counts per strand) or 'joint'
        (one multinomial over length x strands, one total count per task).
      counts_head: 'global_pool' (the reference: a dense layer over the tower's average over
        positions, plus the control's log total) or 'normalized_pool' (those features
        standardized per channel by batch normalization before the dense layer; an affine
        map at inference), 'position_sum' (the log of a sum over the output window of
        per-position rates) or 'profile_sum' (the rates weighted by the profile's softmax).
        See the module docstring.
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
    output_length: int = 0
    profile_loss: str = 'per_strand'
    counts_head: str = 'global_pool'

    def __post_init__(self):
        if self.output_length == 0 and isinstance(self.sequence_length, int):
            object.__setattr__(self, 'output_length', self.sequence_length)
        if self.profile_loss not in PROFILE_LOSSES:
            raise ValueError(
                f'ModelConfig.profile_loss must be one of {PROFILE_LOSSES}, got '
                f'{self.profile_loss!r}'
            )
        if self.counts_head not in COUNTS_HEADS:
            raise ValueError(
                f'ModelConfig.counts_head must be one of {COUNTS_HEADS}, got {self.counts_head!r}'
            )
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.type in (str, 'str'):
                continue
            if field.type in (bool, 'bool'):
                if not isinstance(value, bool):
                    raise ValueError(f'ModelConfig.{field.name} must be a bool, got {value!r}')
            elif isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(
                    f'ModelConfig.{field.name} must be a positive integer, got {value!r}'
                )
        if self.output_length > self.sequence_length:
            raise ValueError(
                f'ModelConfig.output_length ({self.output_length}) must not exceed '
                f'sequence_length ({self.sequence_length})'
            )
        if self.valid_padding:
            lengths = self.crop_arithmetic()
            if lengths['profile_conv'] < self.output_length:
                raise ValueError(
                    f'a {self.sequence_length}-bp input is too short for {self.output_length}-bp '
                    f'outputs with these layers: valid convolutions leave '
                    f'{lengths["profile_conv"]} bp; the input must be at least '
                    f'{self.required_input_length} bp (output + receptive field - 1)'
                )
            if (lengths['profile_conv'] - self.output_length) % 2:
                raise ValueError(
                    f'the profile head leaves {lengths["profile_conv"]} bp, which cannot be '
                    f'centre-cropped to {self.output_length} bp (odd difference); change '
                    'sequence_length or output_length by 1'
                )

    @property
    def valid_padding(self) -> bool:
        """Whether convolutions are 'valid' (output shorter than input)."""
        return self.output_length < self.sequence_length

    @property
    def strands_out(self) -> int:
        """Units of each task's counts head: one per strand, or one total for 'joint'."""
        return 1 if self.profile_loss == 'joint' else self.num_strands

    @property
    def required_input_length(self) -> int:
        """The shortest input giving output_length bases with valid convolutions."""
        return self.output_length + self.receptive_field - 1

    def crop_arithmetic(self) -> dict[str, int]:
        """Window length after each block: stem, each dilated layer, profile head, output.

        With 'same' padding every entry is sequence_length. With 'valid' padding a kernel k
        with dilation d removes (k - 1) * d bases; the profile logits are then centre-cropped
        to output_length ('output').
        """
        length = self.sequence_length
        shrink = self.valid_padding
        out = {'input': length}
        length -= (self.stem_kernel_size - 1) if shrink else 0
        out['stem_conv'] = length
        for i in range(1, self.num_dilated_layers + 1):
            length -= (self.dilated_kernel_size - 1) * 2**i if shrink else 0
            out[f'dilated_conv_{i}'] = length
        length -= (self.profile_kernel_size - 1) if shrink else 0
        out['profile_conv'] = length
        out['output'] = self.output_length
        return out

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


def _padding(config: ModelConfig) -> str:
    return 'valid' if config.valid_padding else 'same'


def _conv(stock: bool, filters: int, kernel_size: int, **kwargs):
    """A Conv1D layer: ours, or with `stock` keras.layers.Conv1D (the same math)."""
    return (keras.layers.Conv1D if stock else Conv1D)(filters, kernel_size, **kwargs)


def _stem(x, config: ModelConfig, stock: bool = False):
    return _conv(
        stock,
        config.filters,
        config.stem_kernel_size,
        padding=_padding(config),
        activation='relu',
        name='stem_conv',
    )(x)


def _dilated_tower(x, config: ModelConfig, stock: bool = False):
    for i in range(1, config.num_dilated_layers + 1):
        conv = _conv(
            stock,
            config.filters,
            config.dilated_kernel_size,
            padding=_padding(config),
            activation='relu',
            dilation_rate=2**i,
            name=f'dilated_conv_{i}',
        )(x)
        if config.valid_padding:  # The residual input loses what the convolution lost.
            lost = (config.dilated_kernel_size - 1) * 2**i
            x = keras.layers.Cropping1D((lost // 2, lost - lost // 2), name=f'residual_crop_{i}')(x)
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


def _head_conv(x, config: ModelConfig, filters: int, name: str, stock=False, zero=False):
    """A head's convolution over the tower (profile_kernel_size), centre-cropped to the output;
    with `zero`, its kernel starts at zero."""
    y = _conv(
        stock,
        filters,
        config.profile_kernel_size,
        padding=_padding(config),
        kernel_initializer='zeros' if zero else 'glorot_uniform',
        dtype=HEAD_DTYPE,
        name=name,
    )(x)
    extra = config.crop_arithmetic()['profile_conv'] - config.output_length
    if extra:
        crop = name.replace('_conv', '_crop')
        y = keras.layers.Cropping1D((extra // 2, extra // 2), dtype=HEAD_DTYPE, name=crop)(y)
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
    return _conv(
        stock, config.num_strands, 1, dtype=HEAD_DTYPE, name=f'control_profile_weights{suffix}'
    )(both)


def _task_logits(x, config: ModelConfig, control=None, stock: bool = False) -> list:
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


def _profile_head(logits: list, config: ModelConfig):
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
            return keras.ops.logsumexp(x, axis=(1, 2))[:, None]
        return keras.ops.logsumexp(x, axis=1)

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
                keras.layers.Dense(
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
    pooled = keras.layers.GlobalAveragePooling1D(dtype=HEAD_DTYPE, name='counts_pool')(x)
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
            keras.layers.Dense(
                config.strands_out,
                bias_initializer=bias,
                dtype=HEAD_DTYPE,
                name=f'counts_dense{suffix}',
            )(features)
        )
    return outputs


def _counts_head(
    x, logits: list, config: ModelConfig, control=None, log_counts_init=None, stock=False
):
    if config.counts_head in SUMMED_COUNTS_HEADS:
        outputs = _summed_counts_head(x, logits, config, control, log_counts_init, stock)
    else:
        outputs = _pooled_counts_head(x, config, control, log_counts_init)
    stacked = _stack_tasks(outputs, (config.num_tasks, config.strands_out), 'counts_tasks')
    return keras.layers.Activation('linear', dtype='float32', name=LOG_COUNTS)(stacked)


def build_bpnet(
    config: ModelConfig, stock_layers: bool = False, log_counts_init=None
) -> keras.Model:
    """Builds BPNet.

    Args:
      config: the architecture.
      stock_layers: build the convolutions from keras.layers.Conv1D, as the reference
        notebook does, instead of `layers.Conv1D` (same weights, same outputs).
      log_counts_init: None (zero biases, the reference), or per task the counts head's
        starting output (`initial_log_counts`), its bias's initial value: the head then
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
    logits = _task_logits(body, config, control, stock_layers)
    outputs = {
        PROFILE: _profile_head(logits, config),
        LOG_COUNTS: _counts_head(body, logits, config, control, log_counts_init, stock_layers),
    }
    return keras.Model(inputs, outputs, name='bpnet')


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
