"""Which variants can be scored: the statuses of the output's `status` column, the check of
one variant against the FASTA and the model's window, and the one-line errors for options
that cannot work or a file of which no variant could be scored (`scoring` uses them for the
variants command and the Beam job alike). Pure Python: no TensorFlow or Beam.
"""

from __future__ import annotations

import os
import re

from bpnet_tfx.genome import genome_io
from bpnet_tfx.variant_effects.variant_files import Variant, VariantError, read_variants

STATUSES = (
    'ok',
    'ref_mismatch',
    'unknown_chrom',
    'out_of_bounds',
    'chrom_end',
    'unsupported_allele',
)
_ALLELE = re.compile(r'^[ACGTN]+$')


def variant_status(variant: Variant, genome, sizes: dict[str, int]) -> str:
    """'ok', or why the variant cannot be scored (see STATUSES)."""
    if not _ALLELE.match(variant.ref) or not _ALLELE.match(variant.alt):
        return 'unsupported_allele'  # symbolic (<DEL>), '*', '.', IUPAC codes
    if variant.chrom not in sizes:
        return 'unknown_chrom'
    p = variant.pos - 1
    if p < 0 or p + len(variant.ref) > sizes[variant.chrom]:
        return 'out_of_bounds'
    if genome[variant.chrom][p : p + len(variant.ref)] != variant.ref:
        return 'ref_mismatch'
    return 'ok'


def runs_past_chrom_end(variant: Variant, length: int, size: int) -> bool:
    """Whether the variant's reference or alternate window (`variant_windows`) reaches past
    either end of its chromosome of `size` bases (a deletion's alternate window reaches
    r - a bases further right than the reference one)."""
    p = variant.pos - 1
    start = p - length // 2
    right = length - length // 2 - len(variant.alt)
    alt_end = p + len(variant.ref) + right if right > 0 else start
    return start < 0 or max(start + length, alt_end) > size


def check_options(batch_size: int, null_variants: int, max_variants: int) -> None:
    """Raises VariantError for a batch size below 1 or a negative count."""
    if batch_size < 1:
        raise VariantError(f'--batch_size must be at least 1, got {batch_size}')
    if null_variants < 0 or max_variants < 0:
        raise VariantError('--null_variants and --max_variants must not be negative')


_NOT_SCORED_HINTS = {
    'ref_mismatch': "check the FASTA matches the variants' genome build",
    'out_of_bounds': "positions past a chromosome's end: check the genome build",
    'chrom_end': 'windows past a chromosome end: --pad_chrom_ends scores them N-padded',
    'unsupported_allele': 'only alleles of A, C, G, T and N are scored',
}


def _unknown_chroms_note(path: str, fasta: str | None) -> str:
    """The first chromosome of `path` missing from `fasta`, with the FASTA's names, as
    predict says it (`genome_io.check_interval`); a general note for files not on disk."""
    if fasta and os.path.isfile(fasta) and os.path.isfile(path):
        with genome_io.open_fasta(fasta) as genome:
            sizes = genome_io.chrom_sizes(genome)
        for v in read_variants(path):
            try:
                genome_io.check_interval(sizes, fasta, v.chrom, 0, 0)
            except genome_io.GenomeError as e:
                return str(e)
    return f'chromosomes not in the FASTA {fasta}' if fasta else 'chromosomes not in the FASTA'


def check_scored(path: str, read: int, by_status: dict[str, int], fasta: str | None = None):
    """Raises VariantError when no variant of the `read` rows of `path` was scored: for an
    empty file, or with the counts per status and what to check for each (the FASTA's
    chromosome names for unknown ones, when `fasta` and `path` are local files)."""
    if by_status.get('ok'):
        return
    if not read:
        raise VariantError(
            f'{path}: no variant to score: the file is empty or holds only header and comment lines'
        )
    counts = ', '.join(f'{k} {n}' for k, n in by_status.items() if n)
    hints = [
        _unknown_chroms_note(path, fasta) if k == 'unknown_chrom' else _NOT_SCORED_HINTS[k]
        for k, n in by_status.items()
        if n
    ]
    raise VariantError(f'{path}: no variant scored ({read} read: {counts}); ' + '; '.join(hints))
