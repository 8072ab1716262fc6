"""`python -m bpnet_tfx.motifs pipeline`: the interpretation chain on a trained model.

    python -m bpnet_tfx.motifs pipeline --saved_model=DIR --records_dir=DIR [--split=valid] \
        --output_dir=DIR [--motif_db=FILE.meme] [--max_regions=N] [--marginalize]
    python -m bpnet_tfx.motifs pipeline --saved_model=DIR --regions_bed=FILE ...

contrib -> discover -> annotate -> scan -> [marginalize] -> report, all in --output_dir
(`motifs.chain`). Every flag of a step's own command is a flag here, with the same meaning
(--batch_size and --seed serve contrib and marginalize). Each step's folder is kept once
complete: when a step stops (nothing found, bad input) the finished ones, their report and
summary.json stay, and the same command run again continues from the first unfinished step.
Needs the motifs extra (pip install '.[motifs]').
"""

from __future__ import annotations

from absl import flags

from bpnet_tfx.common import cli
from bpnet_tfx.motifs.commands import scan_flags

# contrib
_SAVED_MODEL = flags.DEFINE_string('saved_model', None, 'SavedModel folder written by train.')
_RECORDS_DIR = flags.DEFINE_string('records_dir', None, 'Records whose --split to explain.')
_SPLIT = flags.DEFINE_string('split', 'valid', 'Split of --records_dir: train, valid or test.')
_REGIONS_BED = flags.DEFINE_string('regions_bed', None, 'BED of regions instead of records.')
_FASTA = flags.DEFINE_string('fasta', None, "Genome FASTA for --regions_bed; default: the model's.")
_CONTROL_POS_BIGWIG = flags.DEFINE_string(
    'control_pos_bigwig',
    None,
    "Plus-strand control bigWig for --regions_bed and a control-track model; default: the "
    "records' one (see contrib).",
)
_CONTROL_NEG_BIGWIG = flags.DEFINE_string(
    'control_neg_bigwig', None, "Minus-strand control bigWig for --regions_bed (see contrib)."
)
_OUTPUT_DIR = flags.DEFINE_string('output_dir', None, 'Folder for every step (made if missing).')
_METHOD = flags.DEFINE_enum(
    'method', 'deepshap', ['deepshap', 'ig', 'ism'], 'Contribution method (see contrib).'
)
_NUM_SHUFFLES = flags.DEFINE_integer(
    'num_shuffles', 10, 'Dinucleotide-shuffled references per region (ig, deepshap).'
)
_STEPS = flags.DEFINE_integer('steps', 20, 'Integration steps per reference (ig).')
_BATCH_SIZE = flags.DEFINE_integer(
    'batch_size',
    128,
    'Model inputs per device call (contrib, marginalize); no result depends on it.',
)
_SEED = flags.DEFINE_integer(
    'seed', 0, 'Seed of the shuffled references (contrib) and backgrounds (marginalize).'
)
_MAX_REGIONS = flags.DEFINE_integer('max_regions', 0, 'Explain only the first N regions; 0: all.')
_REVERSE_COMPLEMENT_AVERAGE = flags.DEFINE_boolean(
    'reverse_complement_average',
    False,
    "Also score each region's reverse complement and average it in (see contrib); twice the work.",
)
_CPU_REPLICAS = flags.DEFINE_integer(
    'cpu_replicas', 1, 'With no GPU: split the CPU into this many logical devices (see contrib).'
)
# discover, annotate
_TARGETS = flags.DEFINE_list(
    'targets', [], "Targets to run TF-MoDISco on (e.g. 'profile,counts'); default: all."
)
_WINDOW = flags.DEFINE_integer('window', 400, 'Central bp of each region given to TF-MoDISco.')
_MAX_SEQLETS = flags.DEFINE_integer('max_seqlets', 2000, 'Seqlets per metacluster at most.')
_MOTIF_DB = flags.DEFINE_string('motif_db', None, 'MEME database to annotate the motifs with.')
_TOP = flags.DEFINE_integer('top', 3, 'Best database matches kept per pattern.')
# scan
_SCAN = scan_flags.define(__name__)
# marginalize
_MARGINALIZE = flags.DEFINE_boolean(
    'marginalize', False, 'Also marginalize each discovered positive motif (see marginalize).'
)
_NUM_BACKGROUNDS = flags.DEFINE_integer(
    'num_backgrounds', 64, 'With --marginalize: shuffled backgrounds per motif.'
)
_OVERWRITE = flags.DEFINE_boolean(
    'overwrite', False, 'Replace an existing --output_dir: start every step afresh.'
)


def _options(chain):
    return chain.PipelineOptions(
        saved_model=_SAVED_MODEL.value,
        output_dir=_OUTPUT_DIR.value,
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
        reverse_complement_average=_REVERSE_COMPLEMENT_AVERAGE.value,
        targets=tuple(_TARGETS.value),
        window=_WINDOW.value,
        max_seqlets=_MAX_SEQLETS.value,
        motif_db=_MOTIF_DB.value,
        top=_TOP.value,
        match_percentile=_SCAN.match_percentile.value,
        contrib_percentile=_SCAN.contrib_percentile.value,
        patterns=tuple(_SCAN.patterns.value),
        min_seqlet_match=_SCAN.min_seqlet_match.value,
        marginalize=_MARGINALIZE.value,
        num_backgrounds=_NUM_BACKGROUNDS.value,
        overwrite=_OVERWRITE.value,
        verbose=cli.verbose(),
    )


def main(argv):
    del argv
    from bpnet_tfx.common import devices
    from bpnet_tfx.motifs import chain

    options = _options(chain)
    chain.check_options(options)  # before the devices, TensorFlow's start
    devices.configure_cpu_replicas(_CPU_REPLICAS.value)
    summary = chain.run_pipeline(options)
    for name, best in (summary['annotation'] or {}).items():
        count = summary['instances'].get(name)
        found = 'not scanned' if count is None else f'{count} instances'
        print(f'pipeline: {name}: {found}, best match {best or "none significant"}')
    print(
        f'pipeline: {summary["regions"]} regions, '
        f'{sum(summary["patterns"].values())} patterns, '
        f'{sum(summary["instances"].values())} instances in {summary["seconds"]:.0f} s -> '
        f'{_OUTPUT_DIR.value}/report.html'
    )


def run() -> None:
    flags.mark_flags_as_required(['saved_model', 'output_dir'])
    cli.start('motifs pipeline', main)
