"""Batched augmentation as tensor ops: random reverse complement and random jitter.

Each function takes a whole batch: one-hot (batch, stored_length, 4) and counts
(batch, stored_output_length, tasks, strands), and draws one random choice per example. The
counts window may be narrower than the sequence window (models whose input is wider than their
output); both are centred on the same base and stored with the same margin. The sequence and its
counts always move together, so a motif's footprint stays aligned with the motif.
Random draws are stateless, from a seed pair: the training step passes (step, replica id) so
that replicas draw differently and a resumed run repeats the same draws. They run inside the
distributed training step, on the accelerator when there is one. Evaluation and prediction use
`center_crop` only.
"""

from __future__ import annotations

import tensorflow as tf

from bpnet_tfx.genome import sequence


def _output_length(profile: tf.Tensor, max_jitter: int) -> int:
    return profile.shape[1] - 2 * max_jitter


def center_crop(
    one_hot: tf.Tensor, profile: tf.Tensor, *, sequence_length: int, max_jitter: int
) -> tuple[tf.Tensor, tf.Tensor]:
    """Cuts the centred windows from windows stored with a margin.

    Args:
      one_hot: (batch, sequence_length + 2 * max_jitter, 4).
      profile: (batch, output_length + 2 * max_jitter, tasks, strands).
      sequence_length: model input length.
      max_jitter: margin stored on each side.

    Returns:
      (one_hot of length `sequence_length`, profile of length output_length).
    """
    output_length = _output_length(profile, max_jitter)
    return (
        one_hot[:, max_jitter : max_jitter + sequence_length],
        profile[:, max_jitter : max_jitter + output_length],
    )


def random_jitter(
    one_hot: tf.Tensor,
    profile: tf.Tensor,
    *,
    sequence_length: int,
    max_jitter: int,
    seed: tf.Tensor,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Cuts windows at a random shift in [-max_jitter, max_jitter].

    The shift is drawn per example and applied to the sequence and its counts together.

    Args:
      one_hot: (batch, sequence_length + 2 * max_jitter, 4).
      profile: (batch, output_length + 2 * max_jitter, tasks, strands).
      sequence_length: model input length.
      max_jitter: largest shift in bp; 0 gives the centred window.
      seed: int32/int64 tensor of shape [2] for the stateless draw.

    Returns:
      (one_hot of length `sequence_length`, profile of length output_length).
    """
    if max_jitter == 0:
        return center_crop(one_hot, profile, sequence_length=sequence_length, max_jitter=0)
    output_length = _output_length(profile, max_jitter)
    batch = tf.shape(one_hot)[0]
    starts = tf.random.stateless_uniform([batch, 1], seed, 0, 2 * max_jitter + 1, dtype=tf.int32)
    positions = starts + tf.range(sequence_length, dtype=tf.int32)[tf.newaxis, :]
    out_positions = starts + tf.range(output_length, dtype=tf.int32)[tf.newaxis, :]
    return (
        tf.gather(one_hot, positions, batch_dims=1),
        tf.gather(profile, out_positions, batch_dims=1),
    )


def random_reverse_complement(
    one_hot: tf.Tensor, profile: tf.Tensor, *, seed: tf.Tensor, probability: float = 0.5
) -> tuple[tf.Tensor, tf.Tensor]:
    """Reverse-complements each example with `probability` (counts reversed, strands swapped).

    Args:
      one_hot: (batch, length, 4).
      profile: (batch, length, tasks, strands).
      seed: int32/int64 tensor of shape [2] for the stateless draw.
      probability: chance that an example is flipped.

    Returns:
      (one_hot, profile), same shapes and dtypes.
    """
    batch = tf.shape(one_hot)[0]
    flip = tf.random.stateless_uniform([batch], seed) < probability
    one_hot_rc, profile_rc = sequence.reverse_complement(one_hot, profile)
    return (
        tf.where(flip[:, None, None], one_hot_rc, one_hot),
        tf.where(flip[:, None, None, None], profile_rc, profile),
    )


def augment_batch(
    one_hot: tf.Tensor,
    profile: tf.Tensor,
    *,
    sequence_length: int,
    max_jitter: int,
    seed: tf.Tensor,
    jitter: bool = True,
    reverse_complement: bool = True,
    control: tf.Tensor | None = None,
) -> tuple[tf.Tensor, ...]:
    """Training augmentation of stored windows: random jitter, then random reverse complement.

    Args:
      one_hot: (batch, sequence_length + 2 * max_jitter, 4).
      profile: (batch, output_length + 2 * max_jitter, tasks, strands).
      sequence_length: model input length.
      max_jitter: margin stored on each side.
      seed: [2] seed tensor; the two draws use seeds derived from it.
      jitter: shift windows randomly within the margin (else take the centre).
      reverse_complement: flip half of the examples.
      control: optional control counts shaped like `profile`; they move with the profile.

    Returns:
      (one_hot of length `sequence_length`, profile of length output_length), plus the
      control when given.
    """
    tasks = profile.shape[2]
    tracks = profile if control is None else tf.concat([profile, control], axis=2)
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=2)
    if jitter:
        one_hot, tracks = random_jitter(
            one_hot, tracks, sequence_length=sequence_length, max_jitter=max_jitter, seed=seeds[0]
        )
    else:
        one_hot, tracks = center_crop(
            one_hot, tracks, sequence_length=sequence_length, max_jitter=max_jitter
        )
    if reverse_complement:
        one_hot, tracks = random_reverse_complement(one_hot, tracks, seed=seeds[1])
    if control is None:
        return one_hot, tracks
    return one_hot, tracks[:, :, :tasks], tracks[:, :, tasks:]
