"""`python -m bpnet_tfx.motifs marginalize`: each motif inserted into shuffled backgrounds.

    python -m bpnet_tfx.motifs marginalize --saved_model=DIR --contrib_dir=DIR \
        (--discover_dir=DIR | --motifs=NAME=ACGT,...) --output_dir=DIR [--num_backgrounds=64]

Backgrounds are dinucleotide shuffles of --contrib_dir's windows; per motif and task the mean
change in predicted log counts and profile (`motifs.insilico`, `motifs.experiments`).
"""

from __future__ import annotations

from absl import flags

from bpnet_tfx.common import cli

_SAVED_MODEL = flags.DEFINE_string('saved_model', None, 'SavedModel folder written by train.')
_CONTRIB_DIR = flags.DEFINE_string(
    'contrib_dir',
    None,
    "Contrib folder whose windows are shuffled into backgrounds; default: --discover_dir's.",
)
_DISCOVER_DIR = flags.DEFINE_string(
    'discover_dir', None, "Insert the consensus of each positive pattern of this folder."
)
_MOTIFS = flags.DEFINE_list('motifs', [], 'Motifs to insert, NAME=ACGT... (or bare sequences).')
_OUTPUT_DIR = flags.DEFINE_string('output_dir', None, 'Folder to create for the results.')
_NUM_BACKGROUNDS = flags.DEFINE_integer('num_backgrounds', 64, 'Shuffled backgrounds per motif.')
_BATCH_SIZE = flags.DEFINE_integer('batch_size', 64, 'Sequences per model call.')
_SEED = flags.DEFINE_integer('seed', 0, 'Seed of the backgrounds.')
_OVERWRITE = flags.DEFINE_boolean('overwrite', False, 'Replace an existing --output_dir.')


def main(argv):
    del argv
    from bpnet_tfx.motifs import experiments, formats, insilico

    motifs = experiments.parse_motifs(_MOTIFS.value)
    contrib_dir = _CONTRIB_DIR.value
    if _DISCOVER_DIR.value:
        motifs = {**experiments.discovered_motifs(_DISCOVER_DIR.value), **motifs}
        contrib_dir = contrib_dir or formats.load_discovery(_DISCOVER_DIR.value)[0]['contrib_dir']
    if not contrib_dir:
        raise insilico.InSilicoError('give --contrib_dir (or --discover_dir)')
    if not motifs:
        raise insilico.InSilicoError(
            f'no motif to insert: {_DISCOVER_DIR.value} has no positive pattern; give --motifs'
            if _DISCOVER_DIR.value
            else 'no motif to insert: give --motifs or --discover_dir'
        )
    summary = experiments.run_marginalize(
        _SAVED_MODEL.value,
        contrib_dir,
        motifs,
        _OUTPUT_DIR.value,
        num_backgrounds=_NUM_BACKGROUNDS.value,
        batch_size=_BATCH_SIZE.value,
        seed=_SEED.value,
        overwrite=_OVERWRITE.value,
    )
    for name, r in summary['motifs'].items():
        changes = ', '.join(
            f'{t} {c:+.3f}' for t, c in zip(summary['tasks'], r['log_counts_change'])
        )
        print(f'marginalize: {name} ({r["sequence"]}): log counts change {changes}')
    print(f'marginalize: {len(motifs)} motifs in {summary["seconds"]:.0f} s -> {_OUTPUT_DIR.value}')


def run() -> None:
    flags.mark_flags_as_required(['saved_model', 'output_dir'])
    cli.start('motifs marginalize', main)
