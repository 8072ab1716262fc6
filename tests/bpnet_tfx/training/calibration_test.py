"""Tests of the normalized counts head's calibration."""

import dataclasses

import numpy as np
import pytest

from bpnet_tfx.modeling import config as config_lib
from bpnet_tfx.modeling import model as model_lib
from bpnet_tfx.training import calibration


def test_calibrate_counts_norm_sets_the_exact_statistics_of_the_first_examples():
    config = config_lib.ModelConfig(
        sequence_length=64, filters=8, num_dilated_layers=2, counts_head='normalized_pool'
    )
    model = model_lib.build_bpnet(config)
    x = np.random.default_rng(0).integers(0, 2, (40, 64, 4)).astype(np.float32)
    batches = (x[i : i + 16] for i in range(0, 40, 16))
    assert calibration.calibrate_counts_norm(model, batches, 30) == 30
    pooled = type(model)(model.inputs, model.get_layer('counts_pool').output)(x[:30]).numpy()
    norm = model.get_layer('counts_norm')
    np.testing.assert_allclose(norm.moving_mean.numpy(), pooled.mean(0), rtol=1e-5)
    np.testing.assert_allclose(norm.moving_variance.numpy(), pooled.var(0), rtol=1e-4)
    # The reference head has nothing to calibrate; fewer than 2 examples are refused.
    plain = model_lib.build_bpnet(dataclasses.replace(config, counts_head='global_pool'))
    assert calibration.calibrate_counts_norm(plain, [x], 30) == 0
    with pytest.raises(ValueError, match='at least 2 examples'):
        calibration.calibrate_counts_norm(model, [x[:1]], 30)
