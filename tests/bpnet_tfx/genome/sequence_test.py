"""Tests of one-hot encoding and the reverse-complement rule."""

import numpy as np
import pytest
import tensorflow as tf

from bpnet_tfx.genome import sequence


def test_one_hot_acgt_order_and_n_rows():
    x = sequence.one_hot('ACGTNacgtnRY')
    assert x.dtype == np.uint8 and x.shape == (12, 4)
    np.testing.assert_array_equal(x[:4], np.eye(4, dtype=np.uint8))
    np.testing.assert_array_equal(x[5:9], np.eye(4, dtype=np.uint8))  # lower case = upper
    for row in (4, 9, 10, 11):  # N, n and IUPAC codes are all-zero rows
        assert x[row].sum() == 0


def test_decode_one_hot_round_trip():
    seq = 'ACGTTGCANNA'
    assert sequence.decode_one_hot(sequence.one_hot(seq)) == seq


def test_reverse_complement_hand_built_example():
    one_hot = sequence.one_hot('AACGN')
    # Counts (length 5, 1 task, strands plus/minus): plus strand 1..5, minus strand 10..50.
    profile = np.stack([np.arange(1, 6), 10 * np.arange(1, 6)], axis=-1)[:, None, :]
    seq_rc, profile_rc = sequence.reverse_complement(one_hot, profile.astype(np.float32))
    assert sequence.decode_one_hot(seq_rc) == 'NCGTT'
    # Positions reversed and strands swapped: new plus = old minus reversed.
    np.testing.assert_array_equal(profile_rc[:, 0, 0], [50, 40, 30, 20, 10])
    np.testing.assert_array_equal(profile_rc[:, 0, 1], [5, 4, 3, 2, 1])


@pytest.mark.parametrize('batch_shape', [(), (3,), (2, 3)])
def test_reverse_complement_twice_is_identity(batch_shape):
    rng = np.random.default_rng(0)
    one_hot = rng.integers(0, 2, (*batch_shape, 50, 4)).astype(np.uint8)
    profile = rng.poisson(2.0, (*batch_shape, 50, 2, 2)).astype(np.float32)
    seq2, prof2 = sequence.reverse_complement(*sequence.reverse_complement(one_hot, profile))
    np.testing.assert_array_equal(seq2, one_hot)
    np.testing.assert_array_equal(prof2, profile)
    # Once is not the identity.
    assert not np.array_equal(sequence.reverse_complement(one_hot), one_hot)


def test_reverse_complement_same_on_tensors_and_arrays():
    rng = np.random.default_rng(1)
    one_hot = rng.integers(0, 2, (4, 30, 4)).astype(np.uint8)
    profile = rng.poisson(1.0, (4, 30, 1, 2)).astype(np.float32)
    np_seq, np_prof = sequence.reverse_complement(one_hot, profile)
    tf_seq, tf_prof = sequence.reverse_complement(tf.constant(one_hot), tf.constant(profile))
    np.testing.assert_array_equal(tf_seq.numpy(), np_seq)
    np.testing.assert_array_equal(tf_prof.numpy(), np_prof)


def test_reverse_complement_of_string_matches_textbook():
    seq = 'ATGCCGTANNAC'
    expected = 'GTNNTACGGCAT'
    assert sequence.decode_one_hot(sequence.reverse_complement(sequence.one_hot(seq))) == expected
