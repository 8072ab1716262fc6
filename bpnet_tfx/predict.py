"""Predicts genome regions with an exported SavedModel: a plot of one region, or bigWig tracks.

    python -m bpnet_tfx.predict --saved_model=DIR --region=chr1:180924452-180925452 \
        [--fasta=FILE --pos_bigwig=FILE --neg_bigwig=FILE] --output_png=FILE
    python -m bpnet_tfx.predict --saved_model=DIR --regions_bed=FILE [--fasta=FILE] \
        --output_prefix=PREFIX

--region: the reference experiment's figure, predicted profile probabilities against observed
counts normalised per strand, plus strand up, minus strand down (an unstranded model's one
strand up), titled with the region; one row of the figure per task; the same numbers go to a
TSV beside the PNG. A region shorter than the model's window is centred
(the model sees the window of its own length around the region's midpoint); a longer one is
tiled with model-length windows whose per-base predicted counts are stitched (overlaps
averaged); the command says which. --fasta and the bigWigs default to the files the training
records were made from (metadata.json in the export), each task's own; for a multi-task
model, --pos_bigwig/--neg_bigwig take one file per task, comma-separated.

--regions_bed: bigWig tracks PREFIX.<task>.pos.bw / .neg.bw of predicted counts per base
(profile probabilities x predicted total counts, forward and reverse-complement averaged) over
the BED's regions, each widened to the model window around its centre, overlapping regions
merged so every base gets one value; plus PREFIX.regions.bed, the merged regions. Batches are
split over every visible GPU (or --cpu_replicas logical CPUs); tracks do not depend on it.
Bad input stops with one line on stderr and exit status 2. Default runs print progress
lines and a summary only; -v 0 shows the logs.
"""

from __future__ import annotations

from absl import flags

from bpnet_tfx.common import cli

_SAVED_MODEL = flags.DEFINE_string('saved_model', None, 'SavedModel folder written by train.')
_REGION = flags.DEFINE_string(
    'region',
    None,
    "Region 'chrom:start-end', 0-based half-open like BED (so "
    "chr1:180924452-180925452 is 1000 bp); shorter ones are centred on the model window, "
    'longer ones tiled with model windows.',
)
_REGIONS_BED = flags.DEFINE_string(
    'regions_bed',
    None,
    'BED file of regions to write predicted bigWig tracks for, instead of --region.',
)
_FASTA = flags.DEFINE_string('fasta', None, 'Genome FASTA; default: the training records\' one.')
_POS_BIGWIG = flags.DEFINE_string(
    'pos_bigwig',
    None,
    'Observed plus-strand bigWig (several tasks: one per task, '
    "comma-separated); default: the records' ones.",
)
_NEG_BIGWIG = flags.DEFINE_string(
    'neg_bigwig',
    None,
    'Observed minus-strand bigWig (several tasks: one per task, '
    "comma-separated); default: the records' ones.",
)
_CONTROL_POS_BIGWIG = flags.DEFINE_string(
    'control_pos_bigwig',
    None,
    'Plus-strand control bigWig, for models trained with control '
    'tracks; default: the records\' one.',
)
_CONTROL_NEG_BIGWIG = flags.DEFINE_string(
    'control_neg_bigwig', None, 'Minus-strand control bigWig; default: the records\' one.'
)
_OBSERVED = flags.DEFINE_bool(
    'observed',
    True,
    'With --region: plot the observed bigWigs beside the prediction; '
    '--noobserved plots predictions only (e.g. on a genome the records were not made from).',
)
_OUTPUT_PNG = flags.DEFINE_string('output_png', None, 'With --region: where to write the plot.')
_OUTPUT_TSV = flags.DEFINE_string(
    'output_tsv', None, 'Where to write the numbers; default: the PNG path with .tsv.'
)
_OUTPUT_PREFIX = flags.DEFINE_string(
    'output_prefix', None, 'With --regions_bed: tracks go to PREFIX.<task>.<pos|neg>.bw.'
)
_BATCH_SIZE = flags.DEFINE_integer(
    'batch_size', 64, 'Windows per prediction batch with --regions_bed, split over the devices.'
)
_CPU_REPLICAS = flags.DEFINE_integer(
    'cpu_replicas',
    1,
    'With no GPU: split the CPU into this many logical devices and split each batch over '
    'them (GPUs: every visible GPU is used).',
)


def _check_flags() -> None:
    """The flags' combinations, before TensorFlow starts."""
    if bool(_REGION.value) == bool(_REGIONS_BED.value):
        cli.fail('predict', 'give exactly one of --region and --regions_bed')
    if _REGION.value and not _OUTPUT_PNG.value:
        cli.fail('predict', '--region needs --output_png')
    if _REGIONS_BED.value and not _OUTPUT_PREFIX.value:
        cli.fail('predict', '--regions_bed needs --output_prefix')


def main(argv):
    del argv  # cli.run refuses extra arguments.
    from bpnet_tfx.common import devices
    from bpnet_tfx.inference import prediction, tracks

    devices.configure_cpu_replicas(_CPU_REPLICAS.value)

    if _REGIONS_BED.value:
        result = tracks.predict_tracks(
            _SAVED_MODEL.value,
            _REGIONS_BED.value,
            fasta=_FASTA.value,
            output_prefix=_OUTPUT_PREFIX.value,
            batch_size=_BATCH_SIZE.value,
            control_pos_bigwig=_CONTROL_POS_BIGWIG.value,
            control_neg_bigwig=_CONTROL_NEG_BIGWIG.value,
        )
        print(
            f"predict: {result['bed_regions']} BED regions -> {result['merged_regions']} "
            f"merged regions, {result['windows']} windows, {result['bases']:,} bases -> "
            + ', '.join(result['tracks'].values())
        )
        return
    result = prediction.predict_region(
        _SAVED_MODEL.value,
        _REGION.value,
        fasta=_FASTA.value,
        pos_bigwig=_POS_BIGWIG.value,
        neg_bigwig=_NEG_BIGWIG.value,
        observed=_OBSERVED.value,
        control_pos_bigwig=_CONTROL_POS_BIGWIG.value,
        control_neg_bigwig=_CONTROL_NEG_BIGWIG.value,
        output_png=_OUTPUT_PNG.value,
        output_tsv=_OUTPUT_TSV.value,
    )
    several = len(result['tasks']) > 1
    for t, task in enumerate(result['tasks']):
        observed = (result['observed_counts'] or [None] * len(result['tasks']))[t]
        print(
            f"predict: {result['region']}: {f'{task}: ' if several else ''}predicted counts "
            f"{', '.join(f'{c:.1f}' for c in result['predicted_counts'][t])}"
            + (f"; observed {', '.join(f'{c:.0f}' for c in observed)}" if observed else '')
        )
    print(f"predict: {result['png']}, {result['tsv']}")


if __name__ == '__main__':
    flags.mark_flags_as_required(['saved_model'])
    cli.start('predict', main, checks=_check_flags)
