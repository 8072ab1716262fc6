"""A BPNet trained on simulated data with planted motifs, once per session (slow tests only).

`planted_motif_model` (a pytest fixture, registered as a plugin in conftest.py) runs the recipe
the ground-truth tests share: simulate -> make_records -> train. contrib_test checks that
contribution scores concentrate on the planted motifs, variants_test that motif-breaking SNVs
rank above background ones; neither changes what the fixture wrote.
"""

import os

import pytest


@pytest.fixture(scope='session')
def planted_motif_model(tmp_path_factory):
    """The recipe below trained 10 epochs in its own session folder."""
    return train_planted_model(tmp_path_factory.mktemp('planted_motif_model'), epochs=10)


def train_planted_model(root, epochs: int) -> dict:
    """800 peaks on 0.8 Mb (chr1, the validation chromosome, holds 150), 400-bp windows with a
    20-bp jitter margin, a 32-filter 6-layer BPNet trained `epochs` epochs under `root`.

    Returns a dict: files (simulate.DemoFiles), records, info, export_dir.
    """
    from beam_jobs import make_records
    from bpnet_tfx import model as model_lib
    from bpnet_tfx import schema, simulate, trainer

    files = simulate.simulate(
        str(root / 'sim'),
        simulate.SimulationConfig(
            seed=1, chrom_sizes=(('chr1', 150_000), ('chr2', 350_000), ('chr3', 300_000))
        ),
    )
    records = str(root / 'records')
    make_records.run(
        [
            f'--fasta={files.fasta}',
            f'--peaks={files.peaks}',
            f'--pos_bigwig={files.pos_bigwig}',
            f'--neg_bigwig={files.neg_bigwig}',
            f'--output_dir={records}',
            '--valid_chroms=chr1',
            '--sequence_length=400',
            '--max_jitter=20',
            '--runner=DirectRunner',
        ]
    )
    info = schema.RecordsInfo.load(records)
    model_dir = str(root / 'model')
    summary = trainer.train(
        trainer.TrainConfig(
            records_dir=records,
            model_dir=model_dir,
            export_dir=os.path.join(model_dir, 'export'),
            model=model_lib.ModelConfig(
                sequence_length=400, filters=32, num_dilated_layers=6, counts_head='normalized_pool'
            ),
            epochs=epochs,
            batch_size=32,
            learning_rate=4e-3,
            counts_loss_weight=10.0,
            precision='float32',
            input_benchmark_batches=0,
        ),
        info,
    )
    return {'files': files, 'records': records, 'info': info, 'export_dir': summary['export_dir']}
