"""`python -m bpnet_tfx.motifs ablate`: each scanned instance shuffled away, counts change.

    python -m bpnet_tfx.motifs ablate --saved_model=DIR --scan_dir=DIR --output_dir=DIR

Each instance of the scan folder's instances.tsv is replaced by the same bases of a
dinucleotide shuffle of its window; ablation.tsv gives the change in predicted log counts
per instance and task, per_pattern.tsv the means (`motifs.insilico`, `motifs.experiments`).
"""

from __future__ import annotations

from absl import flags

from bpnet_tfx.common import cli

_SAVED_MODEL = flags.DEFINE_string('saved_model', None, 'SavedModel folder written by train.')
_SCAN_DIR = flags.DEFINE_string('scan_dir', None, 'Folder written by motifs scan.')
_OUTPUT_DIR = flags.DEFINE_string('output_dir', None, 'Folder to create for the results.')
_BATCH_SIZE = flags.DEFINE_integer('batch_size', 64, 'Sequences per model call.')
_SEED = flags.DEFINE_integer('seed', 0, 'Seed of the shuffles.')
_OVERWRITE = flags.DEFINE_boolean('overwrite', False, 'Replace an existing --output_dir.')


def main(argv):
    del argv
    from bpnet_tfx.motifs import experiments

    summary = experiments.run_ablate(
        _SAVED_MODEL.value,
        _SCAN_DIR.value,
        _OUTPUT_DIR.value,
        batch_size=_BATCH_SIZE.value,
        seed=_SEED.value,
        overwrite=_OVERWRITE.value,
    )
    for pattern, change in summary['mean_log_counts_change'].items():
        text = ', '.join(f'{t} {c:+.3f}' for t, c in zip(summary['tasks'], change))
        print(f'ablate: {pattern}: mean log counts change {text}')
    print(
        f'ablate: {summary["instances"]} instances in {summary["seconds"]:.0f} s -> '
        f'{_OUTPUT_DIR.value}'
    )


def run() -> None:
    flags.mark_flags_as_required(['saved_model', 'scan_dir', 'output_dir'])
    cli.start('motifs ablate', main)
