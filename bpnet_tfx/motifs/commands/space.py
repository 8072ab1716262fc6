"""`python -m bpnet_tfx.motifs space`: two motifs at distances 0..D in shuffled backgrounds.

    python -m bpnet_tfx.motifs space --saved_model=DIR --contrib_dir=DIR \
        --motif_a=NAME=ACGT --motif_b=NAME=ACGT --output_dir=DIR [--max_distance=150]

Per centre-to-centre distance: the predicted counts change of the pair against the sum of the
singles' changes, their ratio, the distance range where the pair departs from additivity and
its sign; spacing.tsv and spacing.png (`motifs.insilico`, `motifs.experiments`).
"""

from __future__ import annotations

from absl import flags

from bpnet_tfx.common import cli

_SAVED_MODEL = flags.DEFINE_string('saved_model', None, 'SavedModel folder written by train.')
_CONTRIB_DIR = flags.DEFINE_string(
    'contrib_dir', None, 'Contrib folder whose windows are shuffled into backgrounds.'
)
_MOTIF_A = flags.DEFINE_string('motif_a', None, 'Motif at the centre: NAME=ACGT (or ACGT).')
_MOTIF_B = flags.DEFINE_string('motif_b', None, 'Motif placed d bp to its right: NAME=ACGT.')
_MAX_DISTANCE = flags.DEFINE_integer('max_distance', 150, 'Largest centre distance in bp.')
_OUTPUT_DIR = flags.DEFINE_string('output_dir', None, 'Folder to create for the results.')
_NUM_BACKGROUNDS = flags.DEFINE_integer('num_backgrounds', 64, 'Shuffled backgrounds.')
_BATCH_SIZE = flags.DEFINE_integer('batch_size', 64, 'Sequences per model call.')
_SEED = flags.DEFINE_integer('seed', 0, 'Seed of the backgrounds.')
_OVERWRITE = flags.DEFINE_boolean('overwrite', False, 'Replace an existing --output_dir.')


def main(argv):
    del argv
    from bpnet_tfx.motifs import experiments

    (a,) = experiments.parse_motifs([_MOTIF_A.value], 'motif_a').items()
    (b,) = experiments.parse_motifs([_MOTIF_B.value], 'motif_b').items()
    summary = experiments.run_space(
        _SAVED_MODEL.value,
        _CONTRIB_DIR.value,
        a,
        b,
        _OUTPUT_DIR.value,
        max_distance=_MAX_DISTANCE.value,
        num_backgrounds=_NUM_BACKGROUNDS.value,
        batch_size=_BATCH_SIZE.value,
        seed=_SEED.value,
        overwrite=_OVERWRITE.value,
    )
    for task, r in summary['interaction'].items():
        kind = 'cooperative' if r['sign'] > 0 else 'competitive'
        print(
            f'space: {task}: {kind} at {r["range"][0]}-{r["range"][1]} bp (peak ratio '
            f'{r["peak_ratio"]:.2f} at {r["peak_distance"]} bp, baseline '
            f'{r["baseline_ratio"]:.2f}) -> {_OUTPUT_DIR.value}/spacing.png'
        )


def run() -> None:
    flags.mark_flags_as_required(['saved_model', 'contrib_dir', 'motif_a', 'motif_b', 'output_dir'])
    cli.start('motifs space', main)
