"""DNA sequence encoding and the one reverse-complement rule for sequences and stranded counts.

One-hot rows are ACGT; N (and any other IUPAC code) is an all-zero row; lower case (soft-masked)
bases encode like upper case. Tokens are the compact form the records store: one uint8 a base,
A=0, C=1, G=2, T=3 and N_TOKEN=4 for anything else; `tf.one_hot(tokens, 4)` turns them into
exactly `one_hot(seq)`, since an index past the depth gives an all-zero row.
`reverse_complement` uses only slicing, so the same function serves numpy arrays in the records
job and tensors in the TensorFlow augmentation.
"""

from __future__ import annotations

from typing import Any

import numpy as np

ALPHABET = 'ACGT'

# Byte -> its one-hot row (ACGT, either case; anything else all zero), each row read as one
# uint32 so that encoding is a single 1-D gather rather than a gather of rows.
_ROWS = np.zeros((256, 4), dtype=np.uint8)
for _i, _base in enumerate(ALPHABET):
    _ROWS[ord(_base), _i] = 1
    _ROWS[ord(_base.lower()), _i] = 1
_ROWS_AS_UINT32 = _ROWS.view(np.uint32).ravel()

N_TOKEN = len(ALPHABET)  # The token of N and every other non-ACGT code.
_TOKENS = np.full(256, N_TOKEN, dtype=np.uint8)
for _i, _base in enumerate(ALPHABET):
    _TOKENS[ord(_base)] = _TOKENS[ord(_base.lower())] = _i
_TOKEN_ROWS = np.eye(N_TOKEN + 1, N_TOKEN, dtype=np.uint8)  # Row N_TOKEN is all zero.


def one_hot(seq: str | bytes) -> np.ndarray:
    """Encodes a DNA string as a (length, 4) uint8 array in ACGT order.

    Args:
      seq: the sequence; any case. Characters other than ACGT (N, IUPAC codes) give zero rows.

    Returns:
      uint8 array of shape (len(seq), 4).
    """
    if isinstance(seq, str):
        seq = seq.encode('ascii', errors='replace')
    codes = np.frombuffer(seq, dtype=np.uint8)
    return _ROWS_AS_UINT32.take(codes).view(np.uint8).reshape(len(codes), 4)


def tokens(seq: str | bytes) -> np.ndarray:
    """Encodes a DNA string as (length,) uint8 tokens: A, C, G, T = 0..3, anything else N_TOKEN.

    `one_hot_from_tokens(tokens(seq))` equals `one_hot(seq)`.
    """
    if isinstance(seq, str):
        seq = seq.encode('ascii', errors='replace')
    return _TOKENS.take(np.frombuffer(seq, dtype=np.uint8))


def tokens_from_one_hot(x: np.ndarray) -> np.ndarray:
    """(length, 4) one-hot (ACGT, zero rows for N) -> (length,) uint8 tokens.

    Raises:
      ValueError: a row that is neither one-hot nor all zero.
    """
    x = np.asarray(x)
    sums = x.sum(axis=-1)
    if np.any((sums != 0) & (sums != 1)) or np.any((x != 0) & (x != 1)):
        raise ValueError('one-hot rows must hold a single 1 (ACGT) or be all zero (N)')
    return np.where(sums > 0, np.argmax(x, axis=-1), N_TOKEN).astype(np.uint8)


def one_hot_from_tokens(t: np.ndarray) -> np.ndarray:
    """(..., length) tokens -> (..., length, 4) uint8 one-hot; N_TOKEN gives a zero row."""
    return _TOKEN_ROWS[np.asarray(t, dtype=np.intp)]


def decode_one_hot(x: np.ndarray) -> str:
    """Inverse of `one_hot`: (length, 4) array to a string, zero rows as 'N'."""
    x = np.asarray(x)
    letters = np.array(list(ALPHABET + 'N'))
    idx = np.where(x.sum(axis=-1) > 0, np.argmax(x, axis=-1), 4)
    return ''.join(letters[idx])


def reverse_complement(one_hot_seq: Any, profile: Any = None) -> Any:
    """Reverse complement of a window: the sequence and, if given, its stranded counts.

    Works on numpy arrays and TensorFlow tensors alike (slicing only), with any leading batch
    axes. The sequence is reversed along positions and its ACGT channels reversed (A<->T,
    C<->G). Counts are reversed along positions and their strand axis is reversed, which swaps
    plus and minus: a read on the plus strand of the forward window is on the minus strand of
    the reverse-complemented one.

    Args:
      one_hot_seq: (..., length, 4) one-hot in ACGT order.
      profile: optional (..., length, tasks, strands) counts.

    Returns:
      The reverse-complemented sequence if `profile` is None, else a pair
      (sequence, profile).
    """
    seq_rc = one_hot_seq[..., ::-1, ::-1]
    if profile is None:
        return seq_rc
    return seq_rc, profile[..., ::-1, :, ::-1]
