"""Tests of the per-example losses against tensorflow-probability and numpy."""

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from scipy import special

from bpnet_tfx.modeling import losses


def _reference_nll(counts, logits):
    # Per strand over the length axis, via tfp's Multinomial; summed over strands.
    c = np.moveaxis(counts, 1, -1)
    lg = np.moveaxis(logits, 1, -1)
    dist = tfp.distributions.Multinomial(total_count=c.sum(-1), logits=lg)
    lp = dist.log_prob(c).numpy()
    return -lp.reshape(lp.shape[0], -1).sum(axis=1)


def test_multinomial_nll_matches_tfp_per_example():
    rng = np.random.default_rng(0)
    counts = rng.poisson(1.5, (5, 40, 2)).astype(np.float32)
    counts[2] = 0.0  # An example with no reads has zero NLL.
    logits = rng.normal(size=(5, 40, 2)).astype(np.float32)
    got = losses.multinomial_nll(counts, logits).numpy()
    assert got.shape == (5,)
    np.testing.assert_allclose(got, _reference_nll(counts, logits), rtol=1e-5)
    assert got[2] == 0.0


def test_multinomial_nll_multi_task_sums_tasks_and_strands():
    rng = np.random.default_rng(1)
    counts = rng.poisson(1.0, (3, 20, 2, 2)).astype(np.float32)
    logits = rng.normal(size=(3, 20, 2, 2)).astype(np.float32)
    got = losses.multinomial_nll(counts, logits).numpy()
    np.testing.assert_allclose(got, _reference_nll(counts, logits), rtol=1e-5)


def test_multinomial_nll_closed_form_by_hand():
    # One strand, 3 positions, uniform logits, counts (2, 0, 1): P = 3!/(2!0!1!) * (1/3)^3.
    counts = np.array([[[2.0], [0.0], [1.0]]], np.float32)
    logits = np.zeros_like(counts)
    expected = -(np.log(3.0) - 3 * np.log(3.0))
    np.testing.assert_allclose(
        losses.multinomial_nll(counts, logits).numpy(), [expected], rtol=1e-6
    )


def test_multinomial_nll_is_shift_invariant_in_logits():
    rng = np.random.default_rng(2)
    counts = rng.poisson(2.0, (2, 10, 2)).astype(np.float32)
    logits = rng.normal(size=(2, 10, 2)).astype(np.float32)
    a = losses.multinomial_nll(counts, logits).numpy()
    b = losses.multinomial_nll(counts, logits + 7.0).numpy()
    np.testing.assert_allclose(a, b, rtol=1e-5)


def test_log_counts_mse_per_example():
    y = np.array([[1.0, 2.0], [0.0, 0.0]], np.float32)
    p = np.array([[2.0, 4.0], [1.0, 0.0]], np.float32)
    np.testing.assert_allclose(losses.log_counts_mse(y, p).numpy(), [2.5, 0.5])


def test_keras_wrappers_average_over_batch():
    rng = np.random.default_rng(3)
    counts = rng.poisson(1.5, (4, 30, 2)).astype(np.float32)
    logits = rng.normal(size=(4, 30, 2)).astype(np.float32)
    per_example = losses.multinomial_nll(counts, logits).numpy()
    np.testing.assert_allclose(
        float(losses.MultinomialNLL()(counts, logits)), per_example.mean(), rtol=1e-5
    )
    y = np.log1p(counts.sum(1))
    np.testing.assert_allclose(float(losses.LogCountsMSE()(y, y + 1.0)), 1.0, rtol=1e-6)


def test_multinomial_nll_gradient_is_probs_times_total_minus_counts():
    counts = tf.constant([[[3.0], [1.0], [0.0]]])
    logits = tf.Variable([[[0.5], [-0.2], [0.1]]])
    with tf.GradientTape() as tape:
        nll = tf.reduce_sum(losses.multinomial_nll(counts, logits))
    grad = tape.gradient(nll, logits).numpy()
    probs = special.softmax(logits.numpy(), axis=1)
    np.testing.assert_allclose(grad, 4.0 * probs - counts.numpy(), rtol=1e-5)


def test_joint_multinomial_nll_is_one_multinomial_over_length_and_strands():
    rng = np.random.default_rng(3)
    counts = rng.poisson(1.0, (4, 30, 2)).astype(np.float32)
    logits = rng.normal(size=(4, 30, 2)).astype(np.float32)
    got = losses.joint_multinomial_nll(counts, logits).numpy()
    flat_counts, flat_logits = counts.reshape(4, 60), logits.reshape(4, 60)
    dist = tfp.distributions.Multinomial(total_count=flat_counts.sum(-1), logits=flat_logits)
    np.testing.assert_allclose(got, -dist.log_prob(flat_counts).numpy(), rtol=1e-5)
    # It differs from the per-strand loss: the strands' shares are part of the likelihood.
    assert not np.allclose(got, losses.multinomial_nll(counts, logits).numpy())
    # With tasks: one joint multinomial per task, summed.
    counts4 = np.stack([counts, counts[::-1]], axis=2)  # (4, 30, 2 tasks, 2 strands)
    logits4 = np.stack([logits, logits[::-1]], axis=2)
    np.testing.assert_allclose(
        losses.joint_multinomial_nll(counts4, logits4).numpy(), got + got[::-1], rtol=1e-5
    )
