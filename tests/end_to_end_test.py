"""The command-line chain on the real Reb1 ChIP-exo files: records -> train -> evaluate -> plot.

Every step runs as its own `python -m` process, as a user would run it.
"""

import json

import pytest

from tests.fixtures.mains import run_main_ok as _cli
from tests.fixtures.paths import shared_data_dir


@pytest.mark.slow
def test_reb1_records_train_evaluate_predict(tmp_path):
    data = shared_data_dir()
    records, model = tmp_path / 'records', tmp_path / 'model'
    out = _cli(
        'beam_jobs.make_records',
        f'--fasta={data / "chrIV.fa"}',
        f'--peaks={data / "peaks.narrowPeak"}',
        f'--pos_bigwig={data / "Reb1.pos.bw"}',
        f'--neg_bigwig={data / "Reb1.neg.bw"}',
        '--task_name=Reb1',
        '--valid_chroms=chrIV:0-100000',
        f'--output_dir={records}',
        '--max_jitter=16',
        '--runner=DirectRunner',
    )
    assert '29 peaks read' in out.stdout
    meta = json.loads((records / 'metadata.json').read_text())
    n_train, n_valid = meta['split_counts']['train'], meta['split_counts']['valid']
    assert n_train > 0 and n_valid > 0 and n_train + n_valid == 29

    out = _cli(
        'bpnet_tfx.train',
        f'--records_dir={records}',
        f'--model_dir={model}',
        '--epochs=3',
        '--batch_size=8',
        '--filters=16',
        '--num_dilated_layers=5',
        '--learning_rate=0.004',
        '--counts_loss_weight=auto',
    )
    assert 'train: 3 epochs' in out.stdout
    summary = json.loads((model / 'train_summary.json').read_text())
    assert summary['epochs'] == 3 and summary['strategy'] == 'MirroredStrategy'
    # Fewer than 4 batches of 8: the batch is lowered so that an epoch has 4 steps or more.
    assert summary['batch_size'] == n_train // 4 and summary['steps_per_epoch'] >= 4
    assert summary['examples_seen'] == 3 * summary['steps_per_epoch'] * summary['batch_size']
    history = summary['final']
    assert {'loss', 'val_loss', 'profile_nll', 'val_profile_nll'} <= set(history)
    assert (model / 'export' / 'saved_model.pb').exists()
    assert (model / 'logs').is_dir() and (model / 'history.csv').exists()

    eval_json = tmp_path / 'eval.json'
    out = _cli(
        'bpnet_tfx.evaluate',
        f'--saved_model={model / "export"}',
        f'--records_dir={records}',
        '--split=valid',
        f'--output_json={eval_json}',
    )
    result = json.loads(eval_json.read_text())
    assert result['overall']['n_examples'] == n_valid
    assert 'oracle_profile_nll' not in result['overall']  # real data: no noise-free truth
    # The evaluation's NLL is the training loss's: it equals Keras' best val_profile_nll.
    best = summary['best']['val_profile_nll']
    assert result['overall']['profile_nll'] == pytest.approx(best, rel=1e-3)

    png = tmp_path / 'reb1.png'
    first_valid = None
    for line in (data / 'peaks.narrowPeak').read_text().splitlines():
        cols = line.split('\t')
        summit = int(cols[1]) + int(cols[9])
        if summit < 100_000:
            first_valid = summit
            break
    out = _cli(
        'bpnet_tfx.predict',
        f'--saved_model={model / "export"}',
        f'--region=chrIV:{first_valid - 500}-{first_valid + 500}',
        f'--output_png={png}',
    )
    assert png.stat().st_size > 10_000 and png.with_suffix('.tsv').exists()
    assert 'observed' in out.stdout  # bigWigs found through the export's metadata.json
