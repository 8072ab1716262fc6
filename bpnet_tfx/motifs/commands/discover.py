"""`python -m bpnet_tfx.motifs discover`: TF-MoDISco on every target of a contrib folder.

    python -m bpnet_tfx.motifs discover --contrib_dir=DIR --output_dir=DIR \
        [--targets=profile,counts] [--window=400] [--max_seqlets=2000] [--motif_db=FILE --top=3]

Writes per target modisco.h5 and motifs.meme, summary.json and report.html
(`motifs.discovery`); with --motif_db the patterns are also annotated (`motifs annotate`).
Needs the motifs extra (pip install '.[motifs]').
"""

from __future__ import annotations

from absl import flags

from bpnet_tfx.common import cli

_CONTRIB_DIR = flags.DEFINE_string(
    'contrib_dir', None, 'Folder written by python -m bpnet_tfx.contrib.'
)
_OUTPUT_DIR = flags.DEFINE_string('output_dir', None, 'Folder to create for the results.')
_TARGETS = flags.DEFINE_list(
    'targets', [], "Targets of --contrib_dir to run (e.g. 'profile,counts'); default: all."
)
_WINDOW = flags.DEFINE_integer(
    'window', 400, 'Central bp of each region given to TF-MoDISco (modisco motifs -w).'
)
_MAX_SEQLETS = flags.DEFINE_integer(
    'max_seqlets', 2000, 'Seqlets per metacluster at most (modisco motifs -n).'
)
_MAX_REGIONS = flags.DEFINE_integer('max_regions', 0, 'Use only the first N regions; 0: all.')
_MOTIF_DB = flags.DEFINE_string(
    'motif_db', None, 'MEME motif database to annotate the patterns with (optional).'
)
_TOP = flags.DEFINE_integer('top', 3, 'With --motif_db: best database matches kept per pattern.')
_OVERWRITE = flags.DEFINE_boolean(
    'overwrite', False, 'Replace an existing --output_dir once the new one is done.'
)


def main(argv):
    del argv
    from bpnet_tfx.motifs import annotation, discovery

    if _MOTIF_DB.value:  # before the discovery, not after it
        annotation.check_inputs(_MOTIF_DB.value, _TOP.value)
    summary = discovery.discover(
        _CONTRIB_DIR.value,
        _OUTPUT_DIR.value,
        targets=_TARGETS.value or None,
        window=_WINDOW.value,
        max_seqlets=_MAX_SEQLETS.value,
        max_regions=_MAX_REGIONS.value or None,
        overwrite=_OVERWRITE.value,
        verbose=cli.verbose(),
    )
    found = {t: len(ps) for t, ps in summary['targets'].items()}
    line = ', '.join(f'{t} {n}' for t, n in found.items())
    if _MOTIF_DB.value:
        result = annotation.annotate(_OUTPUT_DIR.value, _MOTIF_DB.value, top=_TOP.value)
        line += f'; annotated against {result["database_motifs"]} database motifs'
    print(
        f'discover: patterns per target: {line} ({summary["rows"]} regions, '
        f'{summary["seconds"]:.0f} s) -> {_OUTPUT_DIR.value}/report.html'
    )


def run() -> None:
    flags.mark_flags_as_required(['contrib_dir', 'output_dir'])
    cli.start('motifs discover', main)
