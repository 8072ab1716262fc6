"""Contribution scores of an exported BPNet for motif discovery (modisco-lite) and browsing.

    python -m bpnet_tfx.contrib --saved_model=DIR --records_dir=DIR [--split=valid] \
        --output_dir=DIR
    python -m bpnet_tfx.contrib --saved_model=DIR --regions_bed=FILE [--fasta=FILE] \
        [--control_pos_bigwig=FILE --control_neg_bigwig=FILE] --output_dir=DIR \
        [--method=ig|ism] [--reverse_complement_average] [--cpu_replicas=N]
    python -m bpnet_tfx.contrib ... --num_shards=S --shard_index=I --output_dir=DIR_I
    python -m bpnet_tfx.contrib --merge=DIR_0,...,DIR_S-1 --output_dir=DIR

Per window and head (profile, counts), hypothetical contributions by DeepSHAP (DeepLIFT's
rescale rule) against --num_shuffles dinucleotide-shuffled references (with --method=ig, by
integrated gradients from the same references x --steps path steps; with --method=ism, by
in-silico mutagenesis of every base), with --reverse_complement_average also of each
window's reverse complement, mapped back and averaged in; formulas in scorer.py, the job in
contributions.py. --records_dir takes the split's centred windows; --regions_bed one window per
BED line, centred on the line's interval and resized to the model's length. Writes
OUTPUT_DIR/regions.bed (input order), ohe.npz, and per head <head>/shap.npz (N x 4 x L under
'arr_0', for `modisco motifs -s ohe.npz -a <head>/shap.npz`) and <head>/contrib.bw
(observed-base contributions, overlapping windows averaged), plus summary.json. A window's
scores depend only on the window and --seed: not on --batch_size, its place in the input,
or the devices (each batch is split over every visible GPU, or --cpu_replicas logical CPUs).
Scores stream to disk as they are computed. The folder appears only once complete. For a large
peak set, run S shards (on S hosts) with --num_shards=S and --shard_index=0..S-1 (rows j
with j % S == I), then --merge their folders: the merged folder equals a one-shot run's.
Bad input stops with one line on stderr and exit
status 2.

Models trained with control tracks score each window with its observed control counts held
fixed (only the sequence is interpolated or mutated): from the records with --records_dir, or
from control bigWigs with --regions_bed (--control_pos_bigwig/--control_neg_bigwig, by default
the files the training records were made from). Without them the command stops with an error.
"""

from __future__ import annotations

import glob
import os

from absl import flags

from bpnet_tfx.attribution import contributions
from bpnet_tfx.attribution import scorer as attribution
from bpnet_tfx.common import cli

_SAVED_MODEL = flags.DEFINE_string('saved_model', None, 'SavedModel folder written by train.')
_RECORDS_DIR = flags.DEFINE_string(
    'records_dir', None, 'Records folder whose --split windows to explain.'
)
_SPLIT = flags.DEFINE_string('split', 'valid', 'Split of --records_dir: train, valid or test.')
_REGIONS_BED = flags.DEFINE_string(
    'regions_bed',
    None,
    'BED file of regions to explain instead of --records_dir; each line '
    "becomes the model-length window centred on its interval.",
)
_FASTA = flags.DEFINE_string(
    'fasta',
    None,
    'Genome FASTA for --regions_bed; default: the '
    "training records' one. With --records_dir: the bigWig header.",
)
_CONTROL_POS_BIGWIG = flags.DEFINE_string(
    'control_pos_bigwig',
    None,
    'Plus-strand control bigWig for --regions_bed, for models '
    "trained with control tracks (every task); default: each task's from the records' "
    'metadata. With --records_dir the records\' control counts are used.',
)
_CONTROL_NEG_BIGWIG = flags.DEFINE_string(
    'control_neg_bigwig',
    None,
    'Minus-strand control bigWig for --regions_bed; default: the records\' one.',
)
_OUTPUT_DIR = flags.DEFINE_string('output_dir', None, 'Folder to create for the outputs.')
_METHOD = flags.DEFINE_enum(
    'method',
    'deepshap',
    attribution.METHODS,
    'deepshap: DeepLIFT (rescale rule) multipliers against dinucleotide-shuffled '
    'references, one backward pass for all of them; '
    'ig: integrated gradients from the same references; '
    'ism: in-silico mutagenesis (3 x length forward passes a window).',
)
_NUM_SHUFFLES = flags.DEFINE_integer(
    'num_shuffles', 10, 'Dinucleotide-shuffled references per window (ig, deepshap).'
)
_STEPS = flags.DEFINE_integer('steps', 20, 'Integration steps per reference (ig).')
_BATCH_SIZE = flags.DEFINE_integer(
    'batch_size',
    128,
    'Model inputs per device call: windows x num_shuffles path points (ig), '
    'windows x (1 + num_shuffles) (deepshap), or mutated windows (ism), split over the '
    'devices. Raise it on GPUs.',
)
_SEED = flags.DEFINE_integer(
    'seed',
    0,
    'Seed of the shuffled references; with a window\'s '
    'chrom:start-end it fixes that window\'s references.',
)
_MAX_REGIONS = flags.DEFINE_integer(
    'max_regions', 0, 'Explain only the first this many windows; 0: all.'
)
_REVERSE_COMPLEMENT_AVERAGE = flags.DEFINE_boolean(
    'reverse_complement_average',
    False,
    'Also score each window\'s reverse complement (control strands swapped) and average it '
    'in, mapped back (positions reversed, bases complemented); twice the work.',
)
_OVERWRITE = flags.DEFINE_boolean(
    'overwrite', False, 'Replace an existing --output_dir once the new one is done.'
)
_CPU_REPLICAS = flags.DEFINE_integer(
    'cpu_replicas',
    1,
    'With no GPU: split the CPU into this many logical devices and split each batch over '
    'them (GPUs: every visible GPU is used).',
)
_SHARD_INDEX = flags.DEFINE_integer(
    'shard_index',
    0,
    'With --num_shards: score only input rows j with j % num_shards == shard_index '
    '(one host\'s part of a genome-scale run).',
)
_NUM_SHARDS = flags.DEFINE_integer(
    'num_shards', 1, 'Split the input rows round robin into this many shards (see --merge).'
)
_MERGE = flags.DEFINE_list(
    'merge',
    None,
    'Instead of scoring: join the folders of every shard of one run (comma-separated, or '
    'a quoted glob) into --output_dir, as a one-shot run writes it.',
)


def _merge() -> None:
    shard_dirs = sorted(d for item in _MERGE.value for d in (glob.glob(item) or [item]))
    result = contributions.merge_contributions(
        shard_dirs, _OUTPUT_DIR.value, overwrite=_OVERWRITE.value
    )
    print(
        f"contrib: merged {result['shards']} shards, {result['regions']} regions in "
        f"{result['seconds']:.1f} s -> {result['output_dir']}/"
    )


def _check_flags() -> None:
    """Before TensorFlow starts."""
    if not _MERGE.value and not _SAVED_MODEL.value:
        cli.fail('contrib', '--saved_model is needed (or --merge)')


def main(argv):
    del argv  # cli.run refuses extra arguments.
    if _MERGE.value:
        _merge()
        return
    from bpnet_tfx.common import devices

    devices.configure_cpu_replicas(_CPU_REPLICAS.value)
    result = contributions.compute_contributions(
        _SAVED_MODEL.value,
        _OUTPUT_DIR.value,
        records_dir=_RECORDS_DIR.value,
        split=_SPLIT.value,
        regions_bed=_REGIONS_BED.value,
        fasta=_FASTA.value,
        control_pos_bigwig=_CONTROL_POS_BIGWIG.value,
        control_neg_bigwig=_CONTROL_NEG_BIGWIG.value,
        method=_METHOD.value,
        num_shuffles=_NUM_SHUFFLES.value,
        steps=_STEPS.value,
        batch_size=_BATCH_SIZE.value,
        seed=_SEED.value,
        max_regions=_MAX_REGIONS.value or None,
        overwrite=_OVERWRITE.value,
        reverse_complement_average=_REVERSE_COMPLEMENT_AVERAGE.value,
        shard_index=_SHARD_INDEX.value,
        num_shards=_NUM_SHARDS.value,
    )
    how = {
        'ig': f"ig, {result['num_shuffles']} shuffled references x {result['steps']} steps",
        'deepshap': f"deepshap, {result['num_shuffles']} shuffled references",
    }.get(result['method'], result['method'])
    if result['reverse_complement_average']:
        how += ', reverse complement averaged'
    if _NUM_SHARDS.value > 1:
        how += f', shard {_SHARD_INDEX.value} of {_NUM_SHARDS.value}'
    if result['devices'] > 1:
        how += f", {result['devices']} devices"
    print(
        f"contrib: {result['regions']} regions ({how}) in {result['seconds']:.1f} s -> "
        f"{result['output_dir']}/ ("
        + ', '.join(os.path.relpath(p, result['output_dir']) for p in result['files'].values())
        + ')'
    )


if __name__ == '__main__':
    flags.mark_flags_as_required(['output_dir'])
    cli.start('contrib', main, checks=_check_flags)
