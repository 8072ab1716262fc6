"""CWM scanning: motif instances in contribution scores, as BPNet's `cwm-scan` finds them.

Each pattern's trimmed CWM q (W, 4) slides over the observed-base contributions t of every
window, both strands (the CWM and its reverse complement). At each offset:

  match        = continuous Jaccard similarity of the L1-normalised q and t:
                 sum min(|q|, |t|) sign(q) sign(t) / sum max(|q|, |t|)
  contribution = sum |t| over the W x 4 window (its L1 norm)

The thresholds come from the pattern's own seqlets, scored the same way where modisco-lite
placed them: an offset is a hit when its match reaches the `match_percentile` (default 5)
and its contribution the `contrib_percentile` (default 1) of the seqlets' scores, as BPNet's
`match_weighted_p >= 0.2, contrib_weighted_p >= 0.01` does with 20 and 1. The lower match
default keeps weaker sites, whose one mismatched base lowers the match more than their
contribution (the recovery on the demo: docs/motifs.md). Hits of one pattern in one window
that overlap by half the width or more keep only the best match (the best strand included).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from bpnet_tfx.motifs import patterns

ROWS_PER_BLOCK = 64  # windows scored at once: bounds memory at ~ROWS x L x W x 8 x 8 bytes


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """A pattern's thresholds and the seqlet scores they came from."""

    match: float
    contribution: float
    seqlet_match: np.ndarray  # sorted
    seqlet_contribution: np.ndarray  # sorted

    def percentiles(self, match: np.ndarray, contribution: np.ndarray):
        """Each hit's scores as fractions of the seqlets' scores at or below them."""
        m = np.searchsorted(self.seqlet_match, match, side='right') / len(self.seqlet_match)
        c = np.searchsorted(self.seqlet_contribution, contribution, side='right') / len(
            self.seqlet_contribution
        )
        return m, c


def _jaccard(query: np.ndarray, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(match, contribution) of windows (..., W, 4) against an L1-normalised query (W, 4)."""
    l1 = np.abs(windows).sum(axis=(-2, -1))
    normed = windows / np.maximum(l1, 1e-30)[..., None, None]
    aq, an = np.abs(query), np.abs(normed)
    inter = (np.minimum(aq, an) * np.sign(query) * np.sign(normed)).sum(axis=(-2, -1))
    union = np.maximum(aq, an).sum(axis=(-2, -1))
    return inter / np.maximum(union, 1e-30), l1


def scan_scores(cwm: np.ndarray, observed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Match and contribution at every offset and strand.

    Args:
      cwm: (W, 4) the trimmed CWM.
      observed: (N, L, 4) observed-base contributions (hypothetical x one-hot).

    Returns:
      match (N, L - W + 1, 2) (strand 0: the CWM, 1: its reverse complement) and
      contribution (N, L - W + 1).
    """
    q = np.asarray(cwm, np.float64)
    queries = [q / np.abs(q).sum(), patterns.reverse_complement_matrix(q) / np.abs(q).sum()]
    width = len(q)
    n, length = observed.shape[:2]
    match = np.empty((n, length - width + 1, 2))
    contribution = np.empty((n, length - width + 1))
    for lo in range(0, n, ROWS_PER_BLOCK):
        block = np.asarray(observed[lo : lo + ROWS_PER_BLOCK], np.float64)
        windows = np.lib.stride_tricks.sliding_window_view(block, width, axis=1)
        windows = windows.transpose(0, 1, 3, 2)  # (B, offsets, W, 4)
        for strand, query in enumerate(queries):
            match[lo : lo + len(block), :, strand], l1 = _jaccard(query, windows)
        contribution[lo : lo + len(block)] = l1
    return match, contribution


def seqlet_thresholds(
    core: patterns.Pattern,
    observed: np.ndarray,
    match_percentile: float,
    contrib_percentile: float,
) -> Thresholds:
    """Thresholds from the scores of the (trimmed) pattern's own seqlets."""
    s = core.seqlets
    width = len(core.cwm)
    ok = (s.start >= 0) & (s.start + width <= observed.shape[1]) & (s.row < len(observed))
    if not ok.any():
        raise ValueError(f'{core.name}: no seqlet lies within the scanned windows')
    windows = np.stack([observed[r, a : a + width] for r, a in zip(s.row[ok], s.start[ok])])
    q = np.asarray(core.cwm, np.float64)
    forward = q / np.abs(q).sum()
    reverse = patterns.reverse_complement_matrix(forward)
    m_f, l1 = _jaccard(forward, windows)
    m_r, _ = _jaccard(reverse, windows)
    match = np.where(s.revcomp[ok], m_r, m_f)
    return Thresholds(
        match=float(np.percentile(match, match_percentile)),
        contribution=float(np.percentile(l1, contrib_percentile)),
        seqlet_match=np.sort(match),
        seqlet_contribution=np.sort(l1),
    )


@dataclasses.dataclass(frozen=True)
class Hits:
    """Instances of one pattern: row, start (bp in the window), strand (0 +, 1 -), scores."""

    row: np.ndarray
    start: np.ndarray
    strand: np.ndarray
    match: np.ndarray
    contribution: np.ndarray


def _suppress(row, start, score, width) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression: best score first, dropping hits of
    the same row overlapping a kept one by half the width or more."""
    keep = []
    taken: dict[int, list[int]] = {}
    for i in np.lexsort((start, row, -score)):
        kept = taken.setdefault(int(row[i]), [])
        if all(abs(int(start[i]) - k) > width // 2 for k in kept):
            kept.append(int(start[i]))
            keep.append(int(i))
    return np.array(sorted(keep, key=lambda i: (row[i], start[i])), np.int64)


def find_hits(core: patterns.Pattern, observed: np.ndarray, thresholds: Thresholds) -> Hits:
    """Offsets passing both thresholds, best strand each, overlaps suppressed."""
    match, contribution = scan_scores(core.cwm, observed)
    strand = np.argmax(match, axis=-1)
    best = np.take_along_axis(match, strand[..., None], axis=-1)[..., 0]
    row, start = np.nonzero((best >= thresholds.match) & (contribution >= thresholds.contribution))
    keep = _suppress(row, start, best[row, start], len(core.cwm))
    row, start = row[keep], start[keep]
    return Hits(row, start, strand[row, start], best[row, start], contribution[row, start])
