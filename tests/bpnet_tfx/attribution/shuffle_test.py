"""Tests of the dinucleotide shuffle: counts kept (N included), uniform over the sequences with
the same dinucleotides, and generators keyed by a window's name."""

import collections

import numpy as np
from scipy import stats

from bpnet_tfx.attribution import shuffle
from bpnet_tfx.genome import sequence


def _dinucleotides(one_hot):
    tokens = shuffle.tokens(one_hot).tolist()
    return collections.Counter(zip(tokens[:-1], tokens[1:]))


def test_dinuc_shuffle_keeps_dinucleotide_counts_including_n():
    rng = np.random.default_rng(0)
    seqs = [''.join(rng.choice(list('ACGT'), 300)) for _ in range(3)]
    seqs[1] = seqs[1][:100] + 'N' * 7 + seqs[1][107:250] + 'nNAn' + seqs[1][254:]
    batch = np.stack([sequence.one_hot(s) for s in seqs])
    out = shuffle.dinuc_shuffle(batch, 6, [np.random.default_rng(i) for i in range(3)])
    assert out.shape == (3, 6, 300, 4) and out.dtype == np.uint8
    for x, shuffles in zip(batch, out):
        for y in shuffles:
            assert _dinucleotides(y) == _dinucleotides(x)
            assert shuffle.tokens(y)[0] == shuffle.tokens(x)[0]
            assert shuffle.tokens(y)[-1] == shuffle.tokens(x)[-1]
            assert set(y.sum(axis=1).tolist()) <= {0, 1}  # still one-hot (or N)
        assert len({y.tobytes() for y in shuffles}) == 6  # different shuffles
    # The same generators give the same shuffles; one sequence alone gives (K, L, 4).
    again = shuffle.dinuc_shuffle(batch[1], 6, np.random.default_rng(1))
    np.testing.assert_array_equal(again, out[1])


def _same_dinucleotide_sequences(seq):
    """Every sequence with `seq`'s first letter and dinucleotide counts (Eulerian trails)."""
    edges = collections.Counter(zip(seq[:-1], seq[1:]))
    found = set()

    def walk(path):
        if len(path) == len(seq):
            found.add(path)
            return
        for (a, b), n in list(edges.items()):
            if a == path[-1] and n:
                edges[a, b] -= 1
                walk(path + b)
                edges[a, b] += 1

    walk(seq[0])
    return sorted(found)


def test_dinuc_shuffle_is_uniform_over_sequences_with_the_same_dinucleotides():
    seq = 'ACAGTACGNATTAC'  # N is a fifth letter
    allowed = _same_dinucleotide_sequences(seq)
    assert len(allowed) == 96
    out = shuffle.dinuc_shuffle(sequence.one_hot(seq), 4000, np.random.default_rng(0))
    drawn = collections.Counter(sequence.decode_one_hot(y) for y in out)
    assert set(drawn) <= set(allowed)
    counts = np.array([drawn[s] for s in allowed])
    assert counts.min() > 0
    # Keeping each letter's original last exit (deeplift's dinuc_shuffle) fails this: p ~ 0.
    assert stats.chisquare(counts).pvalue > 1e-3


def test_keyed_rng_is_stable_across_processes_and_distinct_per_key():
    draw = shuffle.keyed_rng(0, 'chrA:100-300').integers(0, 2**31, 3).tolist()
    # SHA-256 of seed and key, not Python's per-process hash(): the same draw in every run.
    assert draw == [620083180, 163484960, 662541310]
    assert shuffle.keyed_rng(0, 'chrA:100-300').integers(0, 2**31, 3).tolist() == draw
    assert shuffle.keyed_rng(1, 'chrA:100-300').integers(0, 2**31, 3).tolist() != draw
    assert shuffle.keyed_rng(0, 'chrA:100-301').integers(0, 2**31, 3).tolist() != draw
    shuffle.keyed_rng(-3, 'x')  # any integer seed
