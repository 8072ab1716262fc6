"""`python -m bpnet_tfx.motifs pipeline`: the interpretation chain on a trained model.

    python -m bpnet_tfx.motifs pipeline --saved_model=DIR --records_dir=DIR [--split=valid] \
        --output_dir=DIR [--motif_db=FILE.meme] [--max_regions=N] [--marginalize]
    python -m bpnet_tfx.motifs pipeline --saved_model=DIR --regions_bed=FILE ...

contrib -> discover -> annotate -> scan -> [marginalize] -> report, all in --output_dir
(`motifs.chain`). Needs the motifs extra (pip install '.[motifs]').
"""

from __future__ import annotations

from absl import flags

from bpnet_tfx.common import cli

_SAVED_MODEL = flags.DEFINE_string('saved_model', None, 'SavedModel folder written by train.')
_RECORDS_DIR = flags.DEFINE_string('records_dir', None, 'Records whose --split to explain.')
_SPLIT = flags.DEFINE_string('split', 'valid', 'Split of --records_dir.')
_REGIONS_BED = flags.DEFINE_string('regions_bed', None, 'BED of regions instead of records.')
_FASTA = flags.DEFINE_string('fasta', None, "Genome FASTA for --regions_bed; default: the model's.")
_OUTPUT_DIR = flags.DEFINE_string('output_dir', None, 'Folder to create for everything.')
_MOTIF_DB = flags.DEFINE_string('motif_db', None, 'MEME database to annotate the motifs with.')
_MAX_REGIONS = flags.DEFINE_integer('max_regions', 0, 'Explain only the first N regions; 0: all.')
_METHOD = flags.DEFINE_enum(
    'method', 'deepshap', ['deepshap', 'ig', 'ism'], 'Contribution method (see contrib).'
)
_NUM_SHUFFLES = flags.DEFINE_integer('num_shuffles', 10, 'Shuffled references per region.')
_WINDOW = flags.DEFINE_integer('window', 400, 'Central bp of each region given to TF-MoDISco.')
_MAX_SEQLETS = flags.DEFINE_integer('max_seqlets', 2000, 'Seqlets per metacluster at most.')
_MARGINALIZE = flags.DEFINE_integer(
    'marginalize', 0, 'Also marginalize each discovered motif over this many backgrounds.'
)
_OVERWRITE = flags.DEFINE_boolean('overwrite', False, 'Replace an existing --output_dir.')


def main(argv):
    del argv
    from bpnet_tfx.motifs import chain

    summary = chain.run_pipeline(
        _SAVED_MODEL.value,
        _OUTPUT_DIR.value,
        records_dir=_RECORDS_DIR.value,
        split=_SPLIT.value,
        regions_bed=_REGIONS_BED.value,
        fasta=_FASTA.value,
        motif_db=_MOTIF_DB.value,
        max_regions=_MAX_REGIONS.value or None,
        contrib_options={'method': _METHOD.value, 'num_shuffles': _NUM_SHUFFLES.value},
        window=_WINDOW.value,
        max_seqlets=_MAX_SEQLETS.value,
        marginalize_backgrounds=_MARGINALIZE.value,
        overwrite=_OVERWRITE.value,
    )
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
