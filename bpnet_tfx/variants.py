"""Scores the effect of variants (VCF or TSV) with an exported SavedModel.

    python -m bpnet_tfx.variants --saved_model=DIR --fasta=FILE --variants=FILE \
        --output=scores.tsv [--batch_size=64 --null_variants=0 --max_variants=0 \
        --control_pos_bigwig=FILE --control_neg_bigwig=FILE --pad_chrom_ends]

Per variant and task: predicted counts of ref and alt, their log2 fold change, the profile
JSD and the largest per-base change, forward and reverse-complement averaged, with optional
empirical p-values from null SNVs in the same window (see bpnet_tfx.variant_effects.scoring and
docs/variants.md). Variants that cannot be scored (REF not matching the FASTA, unknown
chromosome, off the chromosome, a window running past a chromosome end unless
--pad_chrom_ends, symbolic alleles) keep their row with the reason in `status`. Bad input
stops with one line on stderr and exit status 2; a missing or empty variants file, or a
malformed first line, before TensorFlow starts.
"""

from __future__ import annotations

import contextlib

from absl import flags

from bpnet_tfx.common import cli

_SAVED_MODEL = flags.DEFINE_string('saved_model', None, 'SavedModel folder written by train.')
_FASTA = flags.DEFINE_string('fasta', None, 'Genome FASTA the variants are on.')
_VARIANTS = flags.DEFINE_string(
    'variants',
    None,
    'VCF (plain or bgzipped) or TSV with columns chrom, pos (1-based), ref, alt.',
)
_OUTPUT = flags.DEFINE_string('output', None, 'Scores TSV to write (renamed into place).')
_BATCH_SIZE = flags.DEFINE_integer(
    'batch_size', 64, 'Variants per batch (4 windows each: ref and alt, forward and RC).'
)
_NULL_VARIANTS = flags.DEFINE_integer(
    'null_variants',
    0,
    'Null SNVs per variant, in its own window, for empirical p-values; 0 = no p-values.',
)
_MAX_VARIANTS = flags.DEFINE_integer(
    'max_variants', 0, 'Score only the first this many variants (after splitting ALTs); 0 = all.'
)
_CONTROL_POS_BIGWIG = flags.DEFINE_string(
    'control_pos_bigwig',
    None,
    "Plus-strand control bigWig, for models trained with control tracks; "
    "default: the records' one.",
)
_CONTROL_NEG_BIGWIG = flags.DEFINE_string(
    'control_neg_bigwig', None, "Minus-strand control bigWig; default: the records' one."
)
_PAD_CHROM_ENDS = flags.DEFINE_boolean(
    'pad_chrom_ends',
    False,
    'Score variants whose windows run past a chromosome end, with N past the end; by '
    "default they keep their row with status 'chrom_end' and no scores.",
)


def _check_variants_file() -> None:
    """Before TensorFlow starts (variant_files is pure Python): a variants file that exists and
    whose first variant parses."""
    from bpnet_tfx.variant_effects import variant_files

    with contextlib.closing(variant_files.read_variants(_VARIANTS.value)) as variants:
        if next(variants, None) is None:
            raise variant_files.VariantError(
                f'{_VARIANTS.value}: no variant to score: the file is empty or holds only '
                'header and comment lines'
            )


def main(argv):
    del argv  # cli.run refuses extra arguments.
    from bpnet_tfx.variant_effects import scoring as variant_effects

    result = variant_effects.score_variants(
        _SAVED_MODEL.value,
        _FASTA.value,
        _VARIANTS.value,
        _OUTPUT.value,
        batch_size=_BATCH_SIZE.value,
        control_pos_bigwig=_CONTROL_POS_BIGWIG.value,
        control_neg_bigwig=_CONTROL_NEG_BIGWIG.value,
        max_variants=_MAX_VARIANTS.value,
        null_variants=_NULL_VARIANTS.value,
        pad_chrom_ends=_PAD_CHROM_ENDS.value,
    )
    print(
        variant_effects.summary_line(
            'variants', result['read'], result['by_status'], result['seconds'], result['output']
        )
    )


if __name__ == '__main__':
    flags.mark_flags_as_required(['saved_model', 'fasta', 'variants', 'output'])
    cli.start('variants', main, checks=_check_variants_file)
