"""ModelConfig, the architecture of a BPNet model, and the names of its inputs and outputs.

The config checks itself (positive sizes, known head and loss names, an input long enough for
the requested output) and gives the window length after each block (`crop_arithmetic`). It is
saved beside checkpoints and exports as model_config.json (`to_dict`, `from_dict`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from bpnet_tfx.records import schema

PROFILE = schema.TARGET_PROFILE
LOG_COUNTS = schema.TARGET_LOG_COUNTS
INPUT_NAME = 'one_hot'
CONTROL_INPUT_NAME = 'control'
PROFILE_LOSSES = ('per_strand', 'joint')
# 'global_pool': the reference counts head, a dense layer over the tower's average;
# 'normalized_pool': the same average standardized per channel (batch normalization) first;
# 'position_sum' / 'profile_sum': a sum of per-position rates over the output window
# (modeling/heads.py).
COUNTS_HEADS = ('global_pool', 'normalized_pool', 'position_sum', 'profile_sum')
# The heads that sum per-position rates over the output window.
SUMMED_COUNTS_HEADS = ('position_sum', 'profile_sum')


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
      use_control: take control counts as a second input (modeling/heads.py).
      output_length: profile output length in bp; 0 means sequence_length ('same' padding
        throughout); shorter means 'valid' convolutions and a centre crop.
      profile_loss: 'per_strand' (a multinomial per strand, counts per strand) or 'joint'
        (one multinomial over length x strands, one total count per task).
      counts_head: 'global_pool' (the reference: a dense layer over the tower's average over
        positions, plus the control's log total) or 'normalized_pool' (those features
        standardized per channel by batch normalization before the dense layer; an affine
        map at inference), 'position_sum' (the log of a sum over the output window of
        per-position rates) or 'profile_sum' (the rates weighted by the profile's softmax).
        See modeling/heads.py.
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
    def padding(self) -> str:
        """The convolutions' padding: 'valid' (output shorter than input) or 'same'."""
        return 'valid' if self.valid_padding else 'same'

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
