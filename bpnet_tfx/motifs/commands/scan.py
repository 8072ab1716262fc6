"""`python -m bpnet_tfx.motifs scan`: motif instances by CWM scanning of contribution scores.

    python -m bpnet_tfx.motifs scan --discover_dir=DIR --output_dir=DIR \
        [--contrib_dir=DIR] [--match_percentile=5] [--contrib_percentile=1]

Writes instances.bed, instances.tsv, counts.tsv (instances per pattern per region) and
summary.json (`motifs.instances`, `motifs.scanning`).
"""

from __future__ import annotations

from absl import flags

from bpnet_tfx.common import cli
from bpnet_tfx.motifs.commands import scan_flags

_DISCOVER_DIR = flags.DEFINE_string(
    'discover_dir', None, 'Folder written by python -m bpnet_tfx.motifs discover.'
)
_OUTPUT_DIR = flags.DEFINE_string('output_dir', None, 'Folder to create for the instances.')
_CONTRIB_DIR = flags.DEFINE_string(
    'contrib_dir', None, 'Contrib folder to scan; default: the one the patterns came from.'
)
_SCAN = scan_flags.define(__name__)
_OVERWRITE = flags.DEFINE_boolean(
    'overwrite', False, 'Replace an existing --output_dir once the new one is done.'
)


def main(argv):
    del argv
    from bpnet_tfx.motifs import instances

    summary = instances.scan(
        _DISCOVER_DIR.value,
        _OUTPUT_DIR.value,
        contrib_dir=_CONTRIB_DIR.value,
        match_percentile=_SCAN.match_percentile.value,
        contrib_percentile=_SCAN.contrib_percentile.value,
        patterns_wanted=_SCAN.patterns.value or None,
        min_seqlet_match=_SCAN.min_seqlet_match.value,
        overwrite=_OVERWRITE.value,
    )
    skipped = f', {len(summary["skipped"])} skipped' if summary['skipped'] else ''
    print(
        f'scan: {sum(summary["instances"].values())} instances of '
        f'{len(summary["patterns"])} patterns{skipped} in {summary["windows"]} regions '
        f'({summary["seconds"]:.1f} s) -> {_OUTPUT_DIR.value}/instances.bed'
    )


def run() -> None:
    flags.mark_flags_as_required(['discover_dir', 'output_dir'])
    cli.start('motifs scan', main)
