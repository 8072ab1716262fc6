"""BPNet's losses, per example: multinomial NLL of the profile and MSE of log counts.

Both return one value per example, shape (batch,), and never average over the batch: Keras (or
`tf.nn.compute_average_loss` in a custom loop) does the reduction, which is what keeps
gradients right under a distribution strategy. `multinomial_nll` runs per strand (and per
task): each strand's counts over the window are one multinomial draw from softmax(logits) over
positions, as in the BPNet paper; the per-example value sums the strands' (and tasks') NLLs.
`joint_multinomial_nll` (ChromBPNet, bpnet v2) draws both strands' counts from one softmax
over length x strands.
"""

from __future__ import annotations

import keras
import tensorflow as tf


def multinomial_nll(counts: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """Per-strand multinomial negative log-likelihood, summed over strands and tasks.

    -log P(counts | n, softmax(logits)) with n = counts summed over positions; the
    multinomial coefficient is included, so this equals
    -tfp.distributions.Multinomial(n, logits).log_prob(counts) per strand.

    Args:
      counts: observed counts, (batch, length, ...) with strands (and tasks) as trailing
        axes; non-negative, need not be integers.
      logits: unnormalised log-probabilities over positions, same shape as `counts`.

    Returns:
      (batch,) float32 NLL: for each example the sum over every trailing (task, strand) axis
      of the multinomial NLL over the length axis (axis 1).
    """
    counts = tf.cast(counts, tf.float32)
    log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=1)
    total = tf.reduce_sum(counts, axis=1)
    log_coefficient = tf.math.lgamma(total + 1.0) - tf.reduce_sum(
        tf.math.lgamma(counts + 1.0), axis=1
    )
    # Positions with zero counts add nothing, also where log_probs is -inf.
    log_likelihood = log_coefficient + tf.reduce_sum(
        tf.math.multiply_no_nan(log_probs, counts), axis=1
    )
    nll = -log_likelihood
    return tf.reduce_sum(tf.reshape(nll, [tf.shape(nll)[0], -1]), axis=1)


def joint_multinomial_nll(counts: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """Multinomial NLL with one softmax over positions and strands together.

    Args:
      counts: observed counts, (batch, length, strands), or (batch, length, tasks, strands)
        with one multinomial per task.
      logits: unnormalised log-probabilities over (length, strands), same shape as `counts`.

    Returns:
      (batch,) float32: per example, the NLL of the counts over length x strands (summed over
      tasks), multinomial coefficient included.
    """

    def _joined(x):  # (batch, length, [tasks,] strands) -> (batch, length * strands, [tasks])
        x = tf.cast(x, tf.float32)
        if x.shape.rank == 4:
            x = tf.transpose(x, (0, 2, 1, 3))  # (batch, tasks, length, strands)
            x = tf.reshape(x, [tf.shape(x)[0], tf.shape(x)[1], -1])
            return tf.transpose(x, (0, 2, 1))
        return tf.reshape(x, [tf.shape(x)[0], -1])

    return multinomial_nll(_joined(counts), _joined(logits))


def log_counts_mse(log_counts_true: tf.Tensor, log_counts_pred: tf.Tensor) -> tf.Tensor:
    """Mean squared error of log(1 + total counts), averaged over strands and tasks.

    Args:
      log_counts_true: (batch, ...) log(1 + observed total counts) per (task,) strand.
      log_counts_pred: predicted log(1 + counts), same shape.

    Returns:
      (batch,) float32: per example, the mean over every non-batch axis of the squared error.
    """
    diff = tf.cast(log_counts_true, tf.float32) - tf.cast(log_counts_pred, tf.float32)
    sq = tf.reshape(tf.square(diff), [tf.shape(diff)[0], -1])
    return tf.reduce_mean(sq, axis=1)


class MultinomialNLL(keras.losses.Loss):
    """Keras wrapper of `multinomial_nll`: y_true counts, y_pred profile logits."""

    def __init__(self, name: str = 'multinomial_nll', **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        return multinomial_nll(y_true, y_pred)


class LogCountsMSE(keras.losses.Loss):
    """Keras wrapper of `log_counts_mse`: y_true and y_pred are log(1 + counts)."""

    def __init__(self, name: str = 'log_counts_mse', **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        return log_counts_mse(y_true, y_pred)
