"""Evaluation metrics as pure numpy functions over arrays.

Profiles are (batch, length, ...) with the trailing axes (tasks, strands); metrics are computed
per example and per trailing index, so callers can report them per task and strand or summed
the way the training loss sums them. The profile auPRC follows BPNet's evaluation
(kundajelab/bpnet `bpnet/metrics.py`, `eval_profile` at bin size 1): positions are labelled
from the observed fractions, windows with too few counts are left out, and the average
precision is computed over the labelled positions of all kept windows pooled.
"""

from __future__ import annotations

import numpy as np
from scipy import special, stats


def log_softmax(logits: np.ndarray, axis: int = 1) -> np.ndarray:
    """Numerically stable log-softmax over `axis`."""
    logits = np.asarray(logits, np.float64)
    return logits - special.logsumexp(logits, axis=axis, keepdims=True)


def multinomial_nll(counts: np.ndarray, log_probs: np.ndarray) -> np.ndarray:
    """Multinomial NLL of each profile over the length axis, coefficient included.

    Args:
      counts: (batch, length, ...) observed counts.
      log_probs: (batch, length, ...) log-probabilities over positions (log-softmax of
        logits), or broadcastable to `counts`.

    Returns:
      (batch, ...) NLL per example and trailing index (e.g. per strand); summing the trailing
      axes gives the training loss's per-example value.
    """
    counts = np.asarray(counts, np.float64)
    log_probs = np.broadcast_to(np.asarray(log_probs, np.float64), counts.shape)
    total = counts.sum(axis=1)
    coefficient = special.gammaln(total + 1) - special.gammaln(counts + 1).sum(axis=1)
    with np.errstate(invalid='ignore'):
        terms = np.where(counts > 0, counts * log_probs, 0.0)
    return -(coefficient + terms.sum(axis=1))


def uniform_log_probs(length: int) -> np.ndarray:
    """Log-probabilities of a flat profile over `length` positions, shaped (1, length, 1...)."""
    return np.full((1, length), -np.log(length))


def expected_log_probs(expected: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Log-probabilities of the true (noise-free) intensities, normalised per profile."""
    expected = np.maximum(np.asarray(expected, np.float64), 0.0) + eps
    return np.log(expected) - np.log(expected.sum(axis=1, keepdims=True))


def jensen_shannon_distance(counts: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Jensen-Shannon distance (base 2, in [0, 1]) between observed and predicted profiles.

    Args:
      counts: (batch, length, ...) observed counts; normalised per profile.
      probs: (batch, length, ...) predicted probabilities.

    Returns:
      (batch, ...) distances; NaN where a profile has no counts.
    """
    counts = np.asarray(counts, np.float64)
    total = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid='ignore', divide='ignore'):
        p = counts / total
    q = np.asarray(probs, np.float64)
    q = q / q.sum(axis=1, keepdims=True)
    m = 0.5 * (p + q)

    def _kl(a, b):
        with np.errstate(invalid='ignore', divide='ignore'):
            return np.where(a > 0, a * (np.log2(a) - np.log2(b)), 0.0).sum(axis=1)

    js = 0.5 * _kl(p, m) + 0.5 * _kl(q, m)
    return np.sqrt(np.clip(js, 0.0, 1.0))


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation of two 1-D arrays; NaN if either is constant or too short."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.size < 2 or np.std(x) == 0 or np.std(y) == 0:
        return float('nan')
    return float(stats.pearsonr(x, y)[0])


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation of two 1-D arrays; NaN if either is constant or too short."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.size < 2 or np.std(x) == 0 or np.std(y) == 0:
        return float('nan')
    return float(stats.spearmanr(x, y)[0])


# BPNet's profile auPRC thresholds (BPNetMetricSingleProfile defaults).
AUPRC_POS_MIN = 0.015  # a position holding at least this fraction of the window's counts: positive
AUPRC_NEG_MAX = 0.005  # at most this fraction: negative; in between: ambiguous, ignored
AUPRC_MIN_POS_COUNTS = 2.5  # a kept window has >= this / AUPRC_POS_MIN counts (166.7)


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """Average precision (area under the precision-recall step curve), as sklearn computes it.

    AP = sum_n (R_n - R_{n-1}) P_n over the distinct score thresholds n in decreasing order,
    tied scores forming one threshold (sklearn's `average_precision_score`).

    Args:
      labels: 1-D, true (1) / false (0).
      scores: 1-D, same size; higher means more likely positive.

    Returns:
      The average precision in [0, 1]; NaN when there is no positive.
    """
    labels = np.ravel(np.asarray(labels)).astype(bool)
    scores = np.ravel(np.asarray(scores, np.float64))
    if labels.shape != scores.shape:
        raise ValueError(f'labels {labels.shape} and scores {scores.shape} differ in shape')
    positives = int(labels.sum())
    if positives == 0:
        return float('nan')
    order = np.argsort(-scores, kind='stable')
    scores, labels = scores[order], labels[order]
    # The last index of each run of equal scores closes one threshold.
    last = np.r_[np.flatnonzero(np.diff(scores)), scores.size - 1]
    tp = np.cumsum(labels)[last]
    precision = tp / (last + 1)
    recall = tp / positives
    return float(np.sum(np.diff(recall, prepend=0.0) * precision))


def auprc_labels(
    counts: np.ndarray,
    *,
    pos_min: float = AUPRC_POS_MIN,
    neg_max: float = AUPRC_NEG_MAX,
    min_pos_counts: float = AUPRC_MIN_POS_COUNTS,
) -> np.ndarray:
    """BPNet's per-position labels for the profile auPRC.

    A position is positive when it holds at least `pos_min` of its profile's counts, negative
    when it holds at most `neg_max`, ambiguous in between. A window is kept only when its total
    counts, averaged over strands (the last axis) as in BPNet, are at least
    `min_pos_counts / pos_min` (2.5 / 0.015 = 166.7), so that every positive is backed by at
    least `min_pos_counts` reads; all positions of other windows are ignored.

    Args:
      counts: (batch, length, ..., strands) observed counts, e.g. (batch, length, tasks,
        strands).

    Returns:
      int8 array shaped like `counts`: 1 positive, 0 negative, -1 ignored (ambiguous, or the
      window was left out).
    """
    counts = np.asarray(counts, np.float64)
    total = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid='ignore', divide='ignore'):
        fracs = np.where(total > 0, counts / total, 0.0)
    labels = np.full(counts.shape, -1, np.int8)
    labels[fracs <= neg_max] = 0
    labels[fracs >= pos_min] = 1
    kept = total.mean(axis=-1, keepdims=True) >= min_pos_counts / pos_min
    return np.where(kept, labels, np.int8(-1))


def shuffle_positions(x: np.ndarray, *, seed: int, first_index: int = 0) -> np.ndarray:
    """Permutes each window of `x` along positions (axis 1): the auPRC's random baseline.

    Window i of the batch gets a permutation drawn from `seed` and `first_index + i` alone, so
    the result for a window does not depend on how the data were batched. All trailing
    entries of a window (tasks, strands) share its permutation.

    Args:
      x: (batch, length, ...) predictions.
      seed: the fixed seed.
      first_index: the index of the batch's first window in the whole data set.

    Returns:
      An array like `x`.
    """
    x = np.asarray(x)
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        perm = np.random.default_rng((seed, first_index + i)).permutation(x.shape[1])
        out[i] = x[i][perm]
    return out
