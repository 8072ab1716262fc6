"""Evaluation metrics as pure numpy functions over arrays.

Profiles are (batch, length, ...) with the trailing axes (tasks, strands); metrics are computed
per example and per trailing index, so callers can report them per task and strand or summed
the way the training loss sums them.
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
