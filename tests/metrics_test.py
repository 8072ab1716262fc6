"""Tests of the numpy metrics against the training loss and hand-computed values."""

import numpy as np
import pytest

from bpnet_tfx import losses, metrics


def test_multinomial_nll_equals_training_loss():
    rng = np.random.default_rng(0)
    counts = rng.poisson(2.0, (6, 50, 1, 2)).astype(np.float32)
    logits = rng.normal(size=(6, 50, 1, 2)).astype(np.float32)
    per_strand = metrics.multinomial_nll(counts, metrics.log_softmax(logits))
    assert per_strand.shape == (6, 1, 2)
    np.testing.assert_allclose(per_strand.reshape(6, -1).sum(1),
                               losses.multinomial_nll(counts, logits).numpy(), rtol=1e-5)


def test_uniform_and_oracle_by_hand():
    counts = np.array([[[2.0], [0.0], [1.0], [1.0]]])  # (1, 4, 1)
    # Uniform over 4 positions: -log(4!/(2!1!1!) * (1/4)^4) = -log(12) + 4 log 4.
    got = metrics.multinomial_nll(counts, metrics.uniform_log_probs(4)[..., None])
    np.testing.assert_allclose(got, [[-np.log(12.0) + 4 * np.log(4.0)]])
    # The oracle uses the expected profile normalised: here (2, 0, 1, 1) / 4.
    expected = np.array([[[2.0], [0.0], [1.0], [1.0]]])
    lp = metrics.expected_log_probs(expected)
    want = -(np.log(12.0) + 2 * np.log(0.5) + 2 * np.log(0.25))
    np.testing.assert_allclose(metrics.multinomial_nll(counts, lp), [[want]], rtol=1e-9)


def test_jensen_shannon_distance_bounds():
    p = np.array([[[1.0], [0.0]], [[1.0], [1.0]]])  # (2, 2, 1)
    same = metrics.jensen_shannon_distance(p, p / p.sum(1, keepdims=True))
    np.testing.assert_allclose(same, 0.0, atol=1e-7)
    disjoint = metrics.jensen_shannon_distance(np.array([[[1.0], [0.0]]]),
                                               np.array([[[0.0], [1.0]]]))
    np.testing.assert_allclose(disjoint, 1.0)
    empty = metrics.jensen_shannon_distance(np.zeros((1, 2, 1)), np.full((1, 2, 1), 0.5))
    assert np.isnan(empty).all()


def test_correlations():
    x = np.arange(10.0)
    assert metrics.pearson(x, 2 * x + 1) == pytest.approx(1.0)
    assert metrics.spearman(x, np.exp(x)) == pytest.approx(1.0)
    assert np.isnan(metrics.pearson(x, np.ones(10)))
