"""Dinucleotide shuffles of one-hot sequences (exact Altschul-Erikson), in numpy.

The references of integrated gradients (`attribution`): each shuffle is drawn uniformly from
the sequences with the same first base and the same count of every dinucleotide, N kept as a
fifth letter. `keyed_rng` gives the generator of one window from the window's name and a seed,
so a window gets the same shuffles wherever it sits among the others.
"""

from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np

_NUM_TOKENS = 5  # A, C, G, T and 'other' (N), which keeps its place in dinucleotides
_TOKEN_ROWS = np.concatenate([np.eye(4), np.zeros((1, 4))])


def keyed_rng(seed: int, key: str) -> np.random.Generator:
    """A generator seeded by a stable hash (SHA-256, not `hash()`) of `seed` and `key`.

    The same (seed, key) gives the same stream in every process and on every machine; any
    integer seed is accepted.
    """
    digest = hashlib.sha256(f'{seed}\0{key}'.encode()).digest()
    return np.random.default_rng(int.from_bytes(digest, 'big'))


def tokens(one_hot: np.ndarray) -> np.ndarray:
    """(..., L, 4) one-hot -> (..., L) int64 tokens: 0..3 for ACGT, 4 for an all-zero row."""
    one_hot = np.asarray(one_hot)
    return np.where(one_hot.sum(axis=-1) > 0, np.argmax(one_hot, axis=-1), 4).astype(np.int64)


def _last_edges(
    as_list: list[int], out_edges: list[list[int]], rng: np.random.Generator
) -> list[int]:
    """Wilson's algorithm: a random arborescence of last exit edges, toward the final token.

    Edge i leads from as_list[i] to as_list[i + 1]. Each vertex's last exit edge is drawn
    uniformly among its edge instances along loop-erased random walks, which samples
    arborescences with probability proportional to the product of edge multiplicities; with
    the other edges in random order this makes every Eulerian path equally likely (Kandel et
    al. 1996), hence every sequence with the same dinucleotide counts.

    Returns:
      Per vertex, the position of its last exit edge, or -1 (the final vertex, or absent).
    """
    root = as_list[-1]
    in_tree = [v == root for v in range(_NUM_TOKENS)]
    last = [-1] * _NUM_TOKENS
    for v in range(_NUM_TOKENS):
        u = v
        while not in_tree[u] and out_edges[u]:
            edges = out_edges[u]
            last[u] = edges[int(rng.random() * len(edges))]
            u = as_list[last[u] + 1]
        u = v
        while not in_tree[u] and out_edges[u]:
            in_tree[u] = True
            u = as_list[last[u] + 1]
    return last


def _shuffle_tables(sequence_tokens: np.ndarray, num_shuffles: int, rng: np.random.Generator):
    """Each shuffle's successor table (exits grouped by source token, last exit last)."""
    n = sequence_tokens.size
    as_list = sequence_tokens.tolist()
    out_edges = [[] for _ in range(_NUM_TOKENS)]
    for i, t in enumerate(as_list[:-1]):
        out_edges[t].append(i)
    keys = rng.random((num_shuffles, n - 1))
    for k in range(num_shuffles):
        for position in _last_edges(as_list, out_edges, rng):
            if position >= 0:
                keys[k, position] = 2.0  # after every other exit of its vertex
    order = np.argsort(sequence_tokens[:-1] * 4.0 + keys, axis=1, kind='stable')
    successors = sequence_tokens[order + 1]
    starts = np.concatenate(
        [[0], np.cumsum(np.bincount(sequence_tokens[:-1], minlength=_NUM_TOKENS))[:-1]]
    )
    return successors, np.broadcast_to(starts, (num_shuffles, _NUM_TOKENS))


def dinuc_shuffle(
    one_hot: np.ndarray, num_shuffles: int, rng: np.random.Generator | Sequence[np.random.Generator]
) -> np.ndarray:
    """Shuffles sequences keeping their dinucleotide counts exactly (Altschul-Erikson).

    Each shuffle is drawn uniformly from the sequences with the same first base and the same
    count of every dinucleotide (hence of every base, and the same last base), as an Eulerian
    path through the multigraph of the sequence's dinucleotides: a random arborescence of last
    exit edges (Wilson's algorithm), the other exits in random order. N and other all-zero
    rows are a fifth letter: their dinucleotides are kept too. All shuffles are walked in
    lockstep, so a batch costs L vectorised steps.

    Args:
      one_hot: (L, 4) or (B, L, 4) one-hot, ACGT.
      num_shuffles: shuffles per sequence.
      rng: a generator, or (for a batch) one generator per sequence.

    Returns:
      (num_shuffles, L, 4), or (B, num_shuffles, L, 4), of `one_hot`'s dtype.

    Raises:
      ValueError: a batch gets another number of generators than it has sequences.
    """
    one_hot = np.asarray(one_hot)
    single = one_hot.ndim == 2
    batch = one_hot[None] if single else one_hot
    rngs = [rng] * len(batch) if isinstance(rng, np.random.Generator) else list(rng)
    if len(rngs) != len(batch):
        raise ValueError(f'{len(batch)} sequences but {len(rngs)} generators')
    batch_tokens = tokens(batch)
    b, n = batch_tokens.shape
    out = np.repeat(batch_tokens[:, None], num_shuffles, axis=1).reshape(b * num_shuffles, n)
    if n > 2 and b and num_shuffles:
        tables = [_shuffle_tables(t, num_shuffles, r) for t, r in zip(batch_tokens, rngs)]
        successors = np.concatenate([s for s, _ in tables])
        pointer = np.concatenate([p for _, p in tables]).copy()
        rows = np.arange(len(out))
        current = out[:, 0].copy()
        for j in range(1, n):
            step = successors[rows, pointer[rows, current]]
            pointer[rows, current] += 1
            out[:, j] = current = step
    shuffled = _TOKEN_ROWS.astype(one_hot.dtype)[out].reshape(b, num_shuffles, n, 4)
    return shuffled[0] if single else shuffled
