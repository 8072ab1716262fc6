"""`python -m bpnet_tfx.motifs annotate`: discovered patterns against a MEME database.

    python -m bpnet_tfx.motifs annotate --discover_dir=DIR --motif_db=FILE.meme [--top=3]

Writes DIR/annotations.tsv (the best matches of each pattern: TOMTOM p-, E- and q-values) and
re-renders DIR/report.html with them (`motifs.annotation`).
"""

from __future__ import annotations

from absl import flags

from bpnet_tfx.common import cli

_DISCOVER_DIR = flags.DEFINE_string(
    'discover_dir', None, 'Folder written by python -m bpnet_tfx.motifs discover.'
)
_MOTIF_DB = flags.DEFINE_string('motif_db', None, 'MEME motif database (e.g. JASPAR, MEME format).')
_TOP = flags.DEFINE_integer('top', 3, 'Best database matches kept per pattern.')


def main(argv):
    del argv
    from bpnet_tfx.motifs import annotation

    result = annotation.annotate(_DISCOVER_DIR.value, _MOTIF_DB.value, top=_TOP.value)
    for name, best in result['best'].items():
        named = best or 'no significant match'
        print(f'annotate: {name}: {named} (best q = {result["best_q"][name]:.2g})')
    print(
        f'annotate: {result["patterns"]} patterns against {result["database_motifs"]} '
        f'database motifs in {result["seconds"]:.1f} s -> {result["output"]}'
    )


def run() -> None:
    flags.mark_flags_as_required(['discover_dir', 'motif_db'])
    cli.start('motifs annotate', main)
