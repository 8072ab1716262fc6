"""`python -m bpnet_tfx.motifs scan`: motif instances by CWM scanning of contribution scores.

    python -m bpnet_tfx.motifs scan --discover_dir=DIR --output_dir=DIR \
        [--contrib_dir=DIR] [--match_percentile=5] [--contrib_percentile=1]

Writes instances.bed, instances.tsv, counts.tsv (instances per pattern per region) and
summary.json (`motifs.instances`, `motifs.scanning`).
"""

from __future__ import annotations

from absl import flags

from bpnet_tfx.common import cli

_DISCOVER_DIR = flags.DEFINE_string(
    'discover_dir', None, 'Folder written by python -m bpnet_tfx.motifs discover.'
)
_OUTPUT_DIR = flags.DEFINE_string('output_dir', None, 'Folder to create for the instances.')
_CONTRIB_DIR = flags.DEFINE_string(
    'contrib_dir', None, 'Contrib folder to scan; default: the one the patterns came from.'
)
_MATCH_PERCENTILE = flags.DEFINE_float(
    'match_percentile',
    5.0,
    "Least match score, as a percentile of the pattern's own seqlets' scores (0-100).",
)
_CONTRIB_PERCENTILE = flags.DEFINE_float(
    'contrib_percentile',
    1.0,
    "Least contribution (L1 over the motif), as a percentile of the seqlets' (0-100).",
)
_PATTERNS = flags.DEFINE_list(
    'patterns', [], "Patterns to scan (e.g. 'profile/pos_0'); default: all."
)
_MIN_SEQLET_MATCH = flags.DEFINE_float(
    'min_seqlet_match',
    0.5,
    "Skip patterns whose own seqlets match their CWM at a median below this (0: scan all).",
)
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
        match_percentile=_MATCH_PERCENTILE.value,
        contrib_percentile=_CONTRIB_PERCENTILE.value,
        patterns_wanted=_PATTERNS.value or None,
        min_seqlet_match=_MIN_SEQLET_MATCH.value,
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
