"""Tests of batched augmentation: frequencies, alignment of sequence and counts, cropping."""

import numpy as np
import tensorflow as tf

from bpnet_tfx.genome import sequence
from bpnet_tfx.records import augment
from tests.fixtures.records import MINUS_OFFSET, MOTIF, PLUS_OFFSET, synthetic_window


def _batch(n, stored_length, seed=0):
    rng = np.random.default_rng(seed)
    windows = [synthetic_window(rng, stored_length, reverse=bool(i % 2)) for i in range(n)]
    one_hot = np.stack([w[0] for w in windows])
    profile = np.stack([w[1] for w in windows])
    return one_hot, profile


def _motif_site(one_hot):
    """(centre, is_forward) of MOTIF in a decoded window."""
    seq = sequence.decode_one_hot(one_hot)
    fwd = seq.find(MOTIF)
    if fwd >= 0:
        return fwd + len(MOTIF) // 2, True
    rc = sequence.decode_one_hot(sequence.reverse_complement(sequence.one_hot(MOTIF)))
    pos = seq.find(rc)
    assert pos >= 0, 'motif lost'
    return pos + len(MOTIF) - 1 - len(MOTIF) // 2, False


def test_reverse_complement_applied_about_half_the_time():
    rng = np.random.default_rng(0)
    one_hot = rng.integers(0, 2, (4000, 16, 4)).astype(np.uint8)
    profile = rng.poisson(1.0, (4000, 16, 1, 2)).astype(np.float32)
    out_seq, out_prof = augment.random_reverse_complement(
        tf.constant(one_hot), tf.constant(profile), seed=tf.constant([1, 0])
    )
    rc_seq, rc_prof = sequence.reverse_complement(one_hot, profile)
    flipped = np.all(out_seq.numpy() == rc_seq, axis=(1, 2))
    kept = np.all(out_seq.numpy() == one_hot, axis=(1, 2))
    assert np.all(flipped | kept)
    assert 0.45 < flipped.mean() < 0.55
    # Counts flip with their own sequence, never independently.
    np.testing.assert_array_equal(out_prof.numpy()[flipped], rc_prof[flipped])
    np.testing.assert_array_equal(out_prof.numpy()[~flipped], profile[~flipped])


def test_jitter_shifts_uniformly_within_margin():
    length, margin, n = 20, 5, 3000
    positions = np.broadcast_to(
        np.arange(length + 2 * margin, dtype=np.float32), (n, length + 2 * margin)
    )
    one_hot = np.zeros((n, length + 2 * margin, 4), np.uint8)
    profile = positions[:, :, None, None].repeat(2, axis=3)
    _, out = augment.random_jitter(
        tf.constant(one_hot),
        tf.constant(profile),
        sequence_length=length,
        max_jitter=margin,
        seed=tf.constant([3, 0]),
    )
    shifts = out.numpy()[:, 0, 0, 0] - margin
    assert out.shape == (n, length, 1, 2)
    assert set(np.unique(shifts)) == set(range(-margin, margin + 1))
    assert abs(shifts.mean()) < 0.3
    # Each window is contiguous: positions increase by one.
    assert np.all(np.diff(out.numpy()[:, :, 0, 0], axis=1) == 1)


def test_footprint_moves_with_motif_under_jitter_and_reverse_complement():
    length, margin = 80, 12
    one_hot, profile = _batch(64, length + 2 * margin)
    seq, prof = augment.augment_batch(
        tf.constant(one_hot),
        tf.constant(profile),
        sequence_length=length,
        max_jitter=margin,
        seed=tf.constant([5, 6]),
    )
    seq, prof = seq.numpy(), prof.numpy()
    orientations = set()
    for i in range(len(seq)):
        centre, forward = _motif_site(seq[i])
        orientations.add(forward)
        plus, minus = (PLUS_OFFSET, MINUS_OFFSET) if forward else (MINUS_OFFSET, PLUS_OFFSET)
        assert np.argmax(prof[i, :, 0, 0]) == centre - plus
        assert np.argmax(prof[i, :, 0, 1]) == centre + minus
    assert orientations == {True, False}


def test_center_crop_takes_the_middle():
    one_hot, profile = _batch(2, 30)
    s, p = augment.center_crop(
        tf.constant(one_hot), tf.constant(profile), sequence_length=20, max_jitter=5
    )
    np.testing.assert_array_equal(s.numpy(), one_hot[:, 5:25])
    np.testing.assert_array_equal(p.numpy(), profile[:, 5:25])


def test_draws_differ_by_seed_and_repeat_for_the_same_seed():
    one_hot, profile = _batch(64, 40)

    def run(seed):
        s, _ = augment.augment_batch(
            tf.constant(one_hot),
            tf.constant(profile),
            sequence_length=30,
            max_jitter=5,
            seed=tf.constant(seed),
        )
        return s.numpy()

    np.testing.assert_array_equal(run([1, 0]), run([1, 0]))
    assert not np.array_equal(run([1, 0]), run([1, 1]))  # e.g. another replica
    assert not np.array_equal(run([1, 0]), run([2, 0]))  # the next step


def test_narrower_counts_window_stays_aligned_under_jitter_and_reverse_complement():
    # Input 40 bp, output 20 bp, margin 5: the stored counts start 10 bp into the stored
    # sequence. Mark stored sequence position p (an 'A') and stored counts position p - 10
    # (plus strand); after any shift and flip the two marks must stay 10 bp apart in the
    # cut windows (reversed: mirrored about the shared centre).
    n, length, out_len, margin = 64, 40, 20, 5
    rng = np.random.default_rng(0)
    one_hot = np.zeros((n, length + 2 * margin, 4), np.float32)
    profile = np.zeros((n, out_len + 2 * margin, 1, 2), np.float32)
    marks = rng.integers(16, 34, n)
    one_hot[np.arange(n), marks, 0] = 1
    profile[np.arange(n), marks - 10, 0, 0] = 1
    seq, counts = augment.augment_batch(
        tf.constant(one_hot),
        tf.constant(profile),
        sequence_length=length,
        max_jitter=margin,
        seed=tf.constant([3, 4]),
    )
    seq, counts = seq.numpy(), counts.numpy()
    assert seq.shape == (n, length, 4) and counts.shape == (n, out_len, 1, 2)
    flipped = 0
    for i in range(n):
        base_pos = np.flatnonzero(seq[i].sum(-1))
        count_pos = np.argwhere(counts[i, :, 0] > 0)
        if len(count_pos) == 0:  # the mark was shifted out of the 20-bp window
            continue
        ((pos, strand),) = count_pos
        forward = seq[i, base_pos[0], 0] == 1  # still an A: not flipped
        flipped += not forward
        assert strand == (0 if forward else 1)
        assert base_pos[0] - pos == 10
    assert 10 < flipped < 54
    centre = augment.center_crop(
        tf.constant(one_hot), tf.constant(profile), sequence_length=length, max_jitter=margin
    )
    assert centre[0].shape == (n, length, 4) and centre[1].shape == (n, out_len, 1, 2)
