"""Tests of ModelConfig: validation, receptive field, defaults of older configs."""

import pytest

from bpnet_tfx.modeling import config as config_lib


def test_receptive_field():
    # 25 + 2 * (2 + 4 + ... + 512) + 24 = 25 + 2044 + 24.
    assert config_lib.ModelConfig().receptive_field == 2093


@pytest.mark.parametrize('field', ['filters', 'sequence_length', 'num_strands'])
def test_config_rejects_non_positive(field):
    with pytest.raises(ValueError, match=field):
        config_lib.ModelConfig(**{field: 0})


def test_too_short_input_and_odd_crop_are_refused():
    with pytest.raises(ValueError, match='at least 3138 bp'):
        config_lib.ModelConfig(
            sequence_length=2114, output_length=1000, stem_kernel_size=21, profile_kernel_size=75
        )  # 9 dilated layers need 3138 bp
    with pytest.raises(ValueError, match='odd difference'):
        config_lib.ModelConfig(
            sequence_length=2117,
            output_length=1001,
            stem_kernel_size=22,
            profile_kernel_size=75,
            num_dilated_layers=8,
        )  # 1002 left
    with pytest.raises(ValueError, match='must not exceed'):
        config_lib.ModelConfig(sequence_length=100, output_length=120)


def test_counts_head_defaults_to_the_reference_and_rejects_unknown_heads():
    # model_config.json of exports made before the field existed.
    old = {k: v for k, v in config_lib.ModelConfig().to_dict().items() if k != 'counts_head'}
    assert config_lib.ModelConfig.from_dict(old).counts_head == 'global_pool'
    with pytest.raises(ValueError, match='counts_head must be one of'):
        config_lib.ModelConfig(counts_head='mlp')
