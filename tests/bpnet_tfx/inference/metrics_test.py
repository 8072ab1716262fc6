"""Tests of the numpy metrics against the training loss and hand-computed values."""

import numpy as np
import pytest

from bpnet_tfx.inference import metrics
from bpnet_tfx.modeling import losses


def test_multinomial_nll_equals_training_loss():
    rng = np.random.default_rng(0)
    counts = rng.poisson(2.0, (6, 50, 1, 2)).astype(np.float32)
    logits = rng.normal(size=(6, 50, 1, 2)).astype(np.float32)
    per_strand = metrics.multinomial_nll(counts, metrics.log_softmax(logits))
    assert per_strand.shape == (6, 1, 2)
    np.testing.assert_allclose(
        per_strand.reshape(6, -1).sum(1), losses.multinomial_nll(counts, logits).numpy(), rtol=1e-5
    )


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
    disjoint = metrics.jensen_shannon_distance(
        np.array([[[1.0], [0.0]]]), np.array([[[0.0], [1.0]]])
    )
    np.testing.assert_allclose(disjoint, 1.0)
    empty = metrics.jensen_shannon_distance(np.zeros((1, 2, 1)), np.full((1, 2, 1), 0.5))
    assert np.isnan(empty).all()


def test_correlations():
    x = np.arange(10.0)
    assert metrics.pearson(x, 2 * x + 1) == pytest.approx(1.0)
    assert metrics.spearman(x, np.exp(x)) == pytest.approx(1.0)
    assert np.isnan(metrics.pearson(x, np.ones(10)))


@pytest.mark.parametrize(
    'labels, scores, want',
    [
        # Distinct scores: precision 1/1, 2/3, 3/4 at the three positives.
        ([1, 0, 1, 1, 0], [0.9, 0.8, 0.7, 0.6, 0.1], (1 + 2 / 3 + 3 / 4) / 3),
        # Tied 0.7s form one threshold (sklearn): recall 1/3 at precision 1, then 1 at 3/4.
        ([1, 0, 1, 1, 0], [0.9, 0.8, 0.7, 0.7, 0.1], 1 / 3 + 2 / 3 * 3 / 4),
        # A tie of a positive with a negative counts as precision 1/2, whatever the input order.
        ([0, 1], [0.5, 0.5], 0.5),
        ([1, 0], [0.5, 0.5], 0.5),
        ([1, 1, 0], [0.1, 0.2, 0.9], (1 / 2 + 2 / 3) / 2),
        ([1, 1], [0.3, 0.1], 1.0),
    ],
)
def test_average_precision_by_hand(labels, scores, want):
    assert metrics.average_precision(np.array(labels), np.array(scores)) == pytest.approx(want)


def test_average_precision_without_positives_is_nan():
    assert np.isnan(metrics.average_precision(np.zeros(3), np.arange(3.0)))
    assert np.isnan(metrics.average_precision(np.zeros(0), np.zeros(0)))


def test_auprc_labels_by_hand():
    counts = np.zeros((3, 8, 1, 2))
    # Window 0: plus totals 200, so 3 counts = 0.015 (positive), 2 = 0.01 (ambiguous),
    # 1 = 0.005 (negative); minus totals 140 (alone below 166.7, but the mean over strands,
    # 170, keeps the window, as in BPNet).
    counts[0, :, 0, 0] = [150, 3, 2, 1, 0, 44, 0, 0]
    counts[0, :, 0, 1] = [2, 0, 120, 0, 1, 15, 0, 2]
    counts[1, :, 0, 0] = [100, 0, 0, 0, 0, 60, 0, 0]  # mean over strands 80: left out
    counts[1, :, 0, 1] = [0, 0, 0, 0, 0, 0, 0, 0]
    labels = metrics.auprc_labels(counts)
    assert labels.shape == counts.shape and labels.dtype == np.int8
    np.testing.assert_array_equal(labels[0, :, 0, 0], [1, 1, -1, 0, 0, 1, 0, 0])
    # 2/140 = 0.0143 and 1/140 = 0.0071 are ambiguous.
    np.testing.assert_array_equal(labels[0, :, 0, 1], [-1, 0, 1, 0, -1, 1, 0, -1])
    assert (labels[1:] == -1).all()


def test_shuffle_positions_is_a_fixed_per_window_permutation():
    x = np.random.default_rng(1).normal(size=(5, 12, 1, 2))
    a = metrics.shuffle_positions(x, seed=7)
    np.testing.assert_array_equal(np.sort(a, axis=1), np.sort(x, axis=1))
    assert not np.array_equal(a, x)
    # Both strands of a window move together.
    idx = [int(np.flatnonzero(x[0, :, 0, 0] == v)[0]) for v in a[0, :, 0, 0]]
    np.testing.assert_array_equal(a[0, :, 0, 1], x[0, idx, 0, 1])
    # The same whatever the batching, and reproducible.
    np.testing.assert_array_equal(metrics.shuffle_positions(x[2:], seed=7, first_index=2), a[2:])
    np.testing.assert_array_equal(metrics.shuffle_positions(x, seed=7), a)
