"""Predicts one region with an exported SavedModel and plots it against the observed profile.

    python -m bpnet_tfx.predict --saved_model=DIR --region=chr1:180924452-180925452 \
        [--fasta=FILE --pos_bigwig=FILE --neg_bigwig=FILE] --output_png=FILE

The figure is the reference experiment's: predicted profile probabilities against observed
counts normalised per strand, plus strand up, minus strand down, titled with the region. The
same numbers go to a TSV beside the PNG. A region of another length than the model's window is
centred: the model sees the window of its own length around the region's midpoint, and the
command says so. --fasta and the bigWigs default to the files the training records were made
from (metadata.json in the export).
"""

from __future__ import annotations

import sys

from absl import app, flags

from bpnet_tfx import inference

_SAVED_MODEL = flags.DEFINE_string('saved_model', None, 'SavedModel folder written by train.')
_REGION = flags.DEFINE_string(
    'region', None, "Region 'chrom:start-end', 0-based half-open like BED (so "
    "chr1:180924452-180925452 is 1000 bp); other lengths are centred on the model window.")
_FASTA = flags.DEFINE_string('fasta', None, 'Genome FASTA; default: the training records\' one.')
_POS_BIGWIG = flags.DEFINE_string('pos_bigwig', None,
                                  'Observed plus-strand bigWig; default: the records\' one.')
_NEG_BIGWIG = flags.DEFINE_string('neg_bigwig', None,
                                  'Observed minus-strand bigWig; default: the records\' one.')
_OUTPUT_PNG = flags.DEFINE_string('output_png', None, 'Where to write the plot.')
_OUTPUT_TSV = flags.DEFINE_string('output_tsv', None,
                                  'Where to write the numbers; default: the PNG path with .tsv.')


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
    from bpnet_tfx import schema
    try:
        result = inference.predict_region(_SAVED_MODEL.value, _REGION.value, fasta=_FASTA.value,
                                pos_bigwig=_POS_BIGWIG.value, neg_bigwig=_NEG_BIGWIG.value,
                                output_png=_OUTPUT_PNG.value, output_tsv=_OUTPUT_TSV.value)
    except (inference.PredictError, schema.SchemaError) as e:
        print(f'predict: error: {e}', file=sys.stderr)
        sys.exit(2)
    print(f"predict: {result['region']}: predicted counts "
          f"{', '.join(f'{c:.1f}' for c in result['predicted_counts'])}"
          + (f"; observed {', '.join(f'{c:.0f}' for c in result['observed_counts'])}"
             if result['observed_counts'] else '')
          + f" -> {result['png']}, {result['tsv']}")


if __name__ == '__main__':
    flags.mark_flags_as_required(['saved_model', 'region', 'output_png'])
    app.run(main)
