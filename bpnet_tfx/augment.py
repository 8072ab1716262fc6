"""Batched augmentation as tensor ops: random reverse complement and random jitter.

Each function takes a whole batch: one-hot (batch, stored_length, 4) and counts
(batch, stored_length, tasks, strands), and draws one random choice per example. The sequence
and its counts always move together, so a motif's footprint stays aligned with the motif.
Evaluation and prediction use `center_crop` only.
"""

from __future__ import annotations

import tensorflow as tf

from bpnet_tfx import sequence


def center_crop(one_hot: tf.Tensor, profile: tf.Tensor, *, sequence_length: int,
                max_jitter: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Cuts the centred window of `sequence_length` from windows stored with a margin.

    Args:
      one_hot: (batch, sequence_length + 2 * max_jitter, 4).
      profile: (batch, sequence_length + 2 * max_jitter, tasks, strands).
      sequence_length: model window length.
      max_jitter: margin stored on each side.

    Returns:
      (one_hot, profile) of length `sequence_length`.
    """
    return (one_hot[:, max_jitter:max_jitter + sequence_length],
            profile[:, max_jitter:max_jitter + sequence_length])


def random_jitter(one_hot: tf.Tensor, profile: tf.Tensor, *, sequence_length: int,
                  max_jitter: int, seed: int | None = None) -> tuple[tf.Tensor, tf.Tensor]:
    """Cuts a window of `sequence_length` at a random shift in [-max_jitter, max_jitter].

    The shift is drawn per example and applied to the sequence and its counts together.

    Args:
      one_hot: (batch, sequence_length + 2 * max_jitter, 4).
      profile: (batch, sequence_length + 2 * max_jitter, tasks, strands).
      sequence_length: model window length.
      max_jitter: largest shift in bp; 0 gives the centred window.
      seed: optional op seed.

    Returns:
      (one_hot, profile) of length `sequence_length`.
    """
    if max_jitter == 0:
        return center_crop(one_hot, profile, sequence_length=sequence_length, max_jitter=0)
    batch = tf.shape(one_hot)[0]
    starts = tf.random.uniform([batch, 1], 0, 2 * max_jitter + 1, dtype=tf.int32, seed=seed)
    positions = starts + tf.range(sequence_length, dtype=tf.int32)[tf.newaxis, :]
    return (tf.gather(one_hot, positions, batch_dims=1),
            tf.gather(profile, positions, batch_dims=1))


def random_reverse_complement(one_hot: tf.Tensor, profile: tf.Tensor, *,
                              probability: float = 0.5,
                              seed: int | None = None) -> tuple[tf.Tensor, tf.Tensor]:
    """Reverse-complements each example with `probability` (counts reversed, strands swapped).

    Args:
      one_hot: (batch, length, 4).
      profile: (batch, length, tasks, strands).
      probability: chance that an example is flipped.
      seed: optional op seed.

    Returns:
      (one_hot, profile), same shapes and dtypes.
    """
    batch = tf.shape(one_hot)[0]
    flip = tf.random.uniform([batch], seed=seed) < probability
    one_hot_rc, profile_rc = sequence.reverse_complement(one_hot, profile)
    return (tf.where(flip[:, None, None], one_hot_rc, one_hot),
            tf.where(flip[:, None, None, None], profile_rc, profile))
