"""A variant's two model inputs: the reference and alternate allele windows (ChromBPNet's rule:
the left flank anchored, the right flank trimmed or padded for indels; docs/variants.md), the
control counts of a control-track model, and null SNVs for p-values.

`VariantWindows` checks variants against a FASTA and makes a `VariantInput` of each.
"""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np

from bpnet_tfx.genome import bigwig, genome_io
from bpnet_tfx.variant_effects.statuses import runs_past_chrom_end, variant_status
from bpnet_tfx.variant_effects.variant_files import Variant


def _padded_bases(genome, chrom: str, start: int, end: int) -> str:
    size = len(genome[chrom])
    lo, hi = max(start, 0), min(end, size)
    if lo >= hi:
        return 'N' * (end - start)
    return 'N' * (lo - start) + genome[chrom][lo:hi] + 'N' * (end - hi)


def variant_windows(genome, variant: Variant, length: int) -> tuple[str, str, int]:
    """(reference, alternate) input sequences of `length` bases and the window's start; see
    docs/variants.md for how indels are re-centred and trimmed or padded."""
    p = variant.pos - 1
    start = p - length // 2
    ref = _padded_bases(genome, variant.chrom, start, start + length)
    right = length - length // 2 - len(variant.alt)
    rest = p + len(variant.ref)
    alt = ref[: length // 2] + variant.alt
    if right > 0:
        alt += _padded_bases(genome, variant.chrom, rest, rest + right)
    return ref, alt[:length], start


def variant_seed(variant: Variant) -> int:
    """A seed from SHA-256 of the variant's id and key: the same in every process and run."""
    digest = hashlib.sha256(f'{variant.variant_id}\t{variant.key}'.encode()).digest()
    return int.from_bytes(digest[:8], 'little')


def null_windows(ref_one_hot: np.ndarray, variant: Variant, n: int) -> np.ndarray:
    """(n, L, 4) copies of the reference window, each with one random base substituted at a
    random position outside the variant's REF bases (seeded by `variant_seed`)."""
    length = len(ref_one_hot)
    rng = np.random.default_rng(variant_seed(variant))
    lo = length // 2
    hi = min(lo + len(variant.ref), length)
    positions = rng.integers(0, length - (hi - lo), n)
    positions = np.where(positions >= lo, positions + (hi - lo), positions)
    shifts = rng.integers(1, 4, n)
    out = np.repeat(ref_one_hot[None], n, axis=0)
    for i, (at, shift) in enumerate(zip(positions, shifts)):
        row = out[i, at]
        base = int(np.argmax(row)) if row.sum() > 0 else 0
        out[i, at] = 0
        out[i, at, (base + shift) % 4] = 1
    return out


def _control_window(controls, chrom: str, start: int, end: int, size: int) -> np.ndarray:
    """(end - start, tasks, strands) control counts; 0 past the chromosome's ends."""
    lo, hi = max(start, 0), min(end, size)
    strands = max(len(p) for p in controls)
    out = np.zeros((end - start, len(controls), strands), np.float32)
    if lo < hi:
        out[lo - start : hi - start] = bigwig.read_tracks(controls, chrom, lo, hi)
    return out


@dataclasses.dataclass(frozen=True)
class VariantInput:
    """A variant made ready for the model: its status and, when 'ok', its two windows.

    Attributes:
      variant: the variant.
      status: 'ok', or why it is not scored (see STATUSES).
      ref, alt: the reference and alternate input sequences, L bases each ('' unless ok).
      control: (O, tasks, strands) control counts of the reference output window, for a
        model with control tracks; else None.
    """

    variant: Variant
    status: str
    ref: str = ''
    alt: str = ''
    control: np.ndarray | None = None


class VariantWindows:
    """Checks variants against a FASTA and cuts their windows (`variant_windows`).

    Args:
      genome: an open FASTA (`genome_io.open_fasta`).
      length: the model's input length L.
      output_length: its output length O.
      controls: per task, the (plus, minus) control bigWigs of a control-track model; None
        for a model without.
      pad_chrom_ends: score windows that run past a chromosome end, N-padded; by default
        they get the status 'chrom_end'.
    """

    def __init__(
        self, genome, length: int, output_length: int, controls=None, pad_chrom_ends=False
    ):
        self.genome, self.length, self.output_length = genome, length, output_length
        self.controls, self.pad_chrom_ends = controls, pad_chrom_ends
        self.sizes = genome_io.chrom_sizes(genome)

    def __call__(self, variant: Variant) -> VariantInput:
        """The variant's status and, when 'ok', its windows (and control counts).

        Raises:
          genome_io.GenomeError: a control bigWig cannot be read or lacks the chromosome.
        """
        status = variant_status(variant, self.genome, self.sizes)
        if status == 'ok' and not self.pad_chrom_ends:
            if runs_past_chrom_end(variant, self.length, self.sizes[variant.chrom]):
                status = 'chrom_end'
        if status != 'ok':
            return VariantInput(variant, status)
        ref, alt, start = variant_windows(self.genome, variant, self.length)
        control = None
        if self.controls:
            lo = start + (self.length - self.output_length) // 2
            size = self.sizes[variant.chrom]
            control = _control_window(
                self.controls, variant.chrom, lo, lo + self.output_length, size
            )
        return VariantInput(variant, status, ref, alt, control)
