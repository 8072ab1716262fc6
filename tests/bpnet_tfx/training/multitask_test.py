"""Multi-task models with a control track, end to end on simulated data."""

import dataclasses
import os

import pytest

from beam_jobs import make_records
from bpnet_tfx.inference import evaluation, export
from bpnet_tfx.modeling import config as config_lib
from bpnet_tfx.records import schema
from bpnet_tfx.simulate import simulator as simulate
from bpnet_tfx.training import trainer


@pytest.fixture(scope='module')
def multitask_run(tmp_path_factory):
    """Two tasks with different motifs plus a control: records, a short training, an export."""
    root = tmp_path_factory.mktemp('multitask')
    config = dataclasses.replace(
        simulate.DEMO_CONFIGS['multitask'],
        chrom_sizes=(('chr1', 150_000), ('chr2', 300_000), ('chr3', 300_000)),
        n_stretch_chroms=(),
    )
    files = simulate.simulate(str(root / 'sim'), config)
    spec = root / 'tasks.json'
    import json

    spec.write_text(
        json.dumps(
            {
                'tasks': [
                    {
                        'name': t,
                        'peaks': files.peaks,
                        'pos_bigwig': files.task_bigwigs[t].pos,
                        'neg_bigwig': files.task_bigwigs[t].neg,
                        'expected_pos_bigwig': files.task_bigwigs[t].expected_pos,
                        'expected_neg_bigwig': files.task_bigwigs[t].expected_neg,
                        'control_pos_bigwig': files.control_pos_bigwig,
                        'control_neg_bigwig': files.control_neg_bigwig,
                    }
                    for t in files.tasks
                ]
            }
        )
    )
    records = str(root / 'records')
    make_records.run(
        [
            f'--fasta={files.fasta}',
            f'--tasks_spec={spec}',
            f'--output_dir={records}',
            '--sequence_length=400',
            '--max_jitter=10',
            '--runner=DirectRunner',
        ]
    )
    info = schema.RecordsInfo.load(records)
    model_dir = str(root / 'model')
    cfg = trainer.TrainConfig(
        records_dir=records,
        model_dir=model_dir,
        export_dir=os.path.join(model_dir, 'export'),
        model=config_lib.ModelConfig(
            sequence_length=400, num_tasks=2, filters=32, num_dilated_layers=5, use_control=True
        ),
        epochs=3,  # already far closer to the oracle than to uniform, what the test asks
        batch_size=32,
        learning_rate=4e-3,
        counts_loss_weight=trainer.resolve_counts_loss_weight('auto', info),
        input_benchmark_batches=0,
        precision='float32',
    )
    summary = trainer.train(cfg, info)
    return records, info, summary


@pytest.mark.slow
def test_each_task_learns_its_own_footprints(multitask_run):
    records, info, summary = multitask_run
    assert info.tasks == ('oct4', 'klf4') and info.has_control
    assert {'profile_nll/oct4', 'profile_nll/klf4', 'val_log_counts_mse/klf4'} <= set(
        summary['final']
    )
    result = evaluation.evaluate(summary['export_dir'], records, 'valid')
    for task in info.tasks:
        m = result['tasks'][task]
        gap_to_oracle = m['profile_nll'] - m['oracle_profile_nll']
        gap_to_uniform = m['uniform_profile_nll'] - m['profile_nll']
        assert gap_to_oracle < gap_to_uniform, (task, m)


@pytest.mark.slow
def test_a_model_trained_with_controls_refuses_records_without_them(multitask_run, tmp_path):
    _, _, summary = multitask_run
    from tests.fixtures.records import write_records

    plain = str(tmp_path / 'plain')
    write_records(plain, split_counts={'valid': 4}, sequence_length=400)
    with pytest.raises(evaluation.EvaluateError, match='trained with control tracks'):
        evaluation.evaluate(summary['export_dir'], plain, 'valid')
    model = export.ExportedModel(summary['export_dir'])
    import numpy as np

    with pytest.raises(export.ExportError, match='needs the observed control counts'):
        model(np.zeros((1, 400, 4), np.float32))
