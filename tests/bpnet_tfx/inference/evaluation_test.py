"""Tests of evaluation: numbers from the SavedModel equal an independent computation."""

import json
import os

import numpy as np
import pytest

from bpnet_tfx.genome import sequence
from bpnet_tfx.inference import evaluation, metrics
from bpnet_tfx.modeling import losses
from bpnet_tfx.records import codec, schema
from bpnet_tfx.records import dataset as data
from tests.fixtures.genomes import write_bigwig
from tests.fixtures.mains import run_main


def test_evaluate_matches_direct_computation(tiny_export):
    export_dir, model, records_dir, info = tiny_export
    result = evaluation.evaluate(export_dir, records_dir, 'valid', batch_size=5)
    nll, uniform, oracle, true_lc, pred_lc = [], [], [], [], []
    for batch in data.make_eval_dataset(records_dir, info, 'valid', batch_size=16):
        out = model(batch['one_hot'].numpy().astype(np.float32), training=False)
        counts = batch['profile'].numpy()[:, :, 0, :]
        nll.append(losses.multinomial_nll(counts, out['profile']).numpy())
        uniform.append(losses.multinomial_nll(counts, np.zeros_like(counts)).numpy())
        expected = batch['expected'].numpy()[:, :, 0, :]
        oracle.append(losses.multinomial_nll(counts, np.log(expected)).numpy())
        true_lc.append(np.log1p(counts.sum(1)))
        pred_lc.append(out['log_counts'].numpy())
    overall = result['overall']
    assert overall['n_examples'] == 16
    np.testing.assert_allclose(overall['profile_nll'], np.concatenate(nll).mean(), rtol=1e-4)
    np.testing.assert_allclose(
        overall['uniform_profile_nll'], np.concatenate(uniform).mean(), rtol=1e-5
    )
    np.testing.assert_allclose(
        overall['oracle_profile_nll'], np.concatenate(oracle).mean(), rtol=1e-4
    )
    t, p = np.concatenate(true_lc), np.concatenate(pred_lc)
    np.testing.assert_allclose(
        overall['count_pearson'], np.corrcoef(t.ravel(), p.ravel())[0, 1], atol=1e-3
    )
    strands = result['tasks']['synthetic']['strands']
    np.testing.assert_allclose(
        strands['+']['profile_nll'] + strands['-']['profile_nll'], overall['profile_nll'], rtol=1e-6
    )
    # The synthetic 'expected' track is the observed counts + 0.01: far better than uniform.
    assert overall['oracle_profile_nll'] < 0.5 * overall['uniform_profile_nll']
    table = evaluation.format_table(result)
    assert 'oracle_profile_nll' in table and 'synthetic +' in table


def test_evaluate_refuses_records_of_another_length(tiny_export, tmp_path):
    from tests.fixtures.records import write_records

    export_dir, _, _, _ = tiny_export
    other = str(tmp_path / 'other')
    write_records(other, split_counts={'valid': 4}, sequence_length=100)
    with pytest.raises(evaluation.EvaluateError, match='100-bp'):
        evaluation.evaluate(export_dir, other, 'valid')
    with pytest.raises(
        schema.SchemaError, match="no 'test' split .*the records hold: train, valid"
    ):
        evaluation.evaluate(export_dir, tiny_export[2], 'test')


# A hand-checked set: two 8-bp windows and a model whose outputs are written down.
HAND_SEQUENCES = ('AAAACCGT', 'GGTTACGT')
HAND_COUNTS = np.array(
    [  # (window, position, strand)
        [[150, 2], [3, 0], [2, 120], [1, 0], [0, 1], [44, 15], [0, 0], [0, 2]],  # 200 / 140
        [[10, 0], [0, 4], [5, 0], [0, 0], [3, 0], [0, 6], [0, 0], [2, 0]],  # 20 / 10: no auPRC
    ],
    np.float32,
)
# Profile logits are the same for every window (a bias); log_counts = composition @ W + b.
HAND_LOGITS = np.array(
    [
        [0.0, 5.0],
        [3.0, 1.0],
        [1.0, 0.0],
        [2.5, -1.0],
        [-1.0, 0.5],
        [0.5, 2.0],
        [2.0, 0.2],
        [-0.5, -2.0],
    ],
    np.float32,
)
HAND_COUNTS_KERNEL = np.array([[4, 3], [0, 1], [1, 0], [0, 3]], np.float32)  # rows A, C, G, T
HAND_COUNTS_BIAS = np.array([1.0, 0.5], np.float32)


@pytest.fixture
def hand_export(tmp_path):
    """Records of the two hand windows and a SavedModel of the hand-written model."""
    import keras
    import tensorflow as tf

    from bpnet_tfx.inference import export
    from bpnet_tfx.modeling import config as config_lib

    records_dir = str(tmp_path / 'hand_records')
    os.makedirs(records_dir)
    with tf.io.TFRecordWriter(
        os.path.join(records_dir, schema.shard_filename('valid', 0, 1)), options=schema.COMPRESSION
    ) as w:
        for i, (seq, counts) in enumerate(zip(HAND_SEQUENCES, HAND_COUNTS)):
            w.write(
                codec.encode_record(
                    f'chrH:{8 * i}-{8 * i + 8}',
                    'chrH',
                    8 * i,
                    sequence.one_hot(seq),
                    counts[:, None, :],
                    expected=counts[:, None, :] + 0.5,
                )
            )
    info = schema.RecordsInfo(
        sequence_length=8,
        max_jitter=0,
        tasks=('hand',),
        split_counts={'valid': 2},
        num_shards={'valid': 1},
        has_expected=True,
    )
    info.save(records_dir)

    inputs = keras.Input((8, 4), name='one_hot')
    flat = keras.layers.Flatten()(inputs)
    logits = keras.layers.Dense(16, kernel_initializer='zeros', name='bias')(flat)
    logits = keras.layers.Reshape((8, 2), name='profile')(logits)
    pooled = keras.layers.GlobalAveragePooling1D()(inputs)
    log_counts = keras.layers.Dense(2, name='log_counts')(pooled)
    model = keras.Model(inputs, {'profile': logits, 'log_counts': log_counts})
    model.get_layer('bias').set_weights([np.zeros((32, 16), np.float32), HAND_LOGITS.reshape(16)])
    model.get_layer('log_counts').set_weights([HAND_COUNTS_KERNEL, HAND_COUNTS_BIAS])
    config = config_lib.ModelConfig(sequence_length=8, filters=1, num_dilated_layers=1)
    path = export.export_saved_model(model, info, config, str(tmp_path / 'hand_export'))
    return path, records_dir


def _hand_expected() -> dict[str, dict[str, float]]:
    """The metrics of the hand set, computed with scipy and by hand, not with bpnet_tfx."""
    from scipy import spatial, stats

    probs = np.exp(HAND_LOGITS) / np.exp(HAND_LOGITS).sum(0)  # (8, 2), both windows
    totals = HAND_COUNTS.sum(1)  # (2, 2)
    expected = HAND_COUNTS + 0.5
    nll = np.array(
        [
            [
                -stats.multinomial.logpmf(HAND_COUNTS[w, :, s], totals[w, s], probs[:, s])
                for s in range(2)
            ]
            for w in range(2)
        ]
    )
    uniform = np.array(
        [
            [
                -stats.multinomial.logpmf(HAND_COUNTS[w, :, s], totals[w, s], np.full(8, 1 / 8))
                for s in range(2)
            ]
            for w in range(2)
        ]
    )
    oracle = np.array(
        [
            [
                -stats.multinomial.logpmf(
                    HAND_COUNTS[w, :, s], totals[w, s], expected[w, :, s] / expected[w, :, s].sum()
                )
                for s in range(2)
            ]
            for w in range(2)
        ]
    )
    jsd = np.array(
        [
            [
                spatial.distance.jensenshannon(
                    HAND_COUNTS[w, :, s] / totals[w, s], probs[:, s], base=2
                )
                for s in range(2)
            ]
            for w in range(2)
        ]
    )
    composition = np.array([[seq.count(b) / 8 for b in 'ACGT'] for seq in HAND_SEQUENCES])
    pred_lc = composition @ HAND_COUNTS_KERNEL + HAND_COUNTS_BIAS  # (3.125, 2.625), (1.875, 2.125)
    true_lc = np.log1p(totals)

    # auPRC by hand. Only window 0 is kept (window 1: (20 + 10) / 2 < 2.5 / 0.015 counts).
    # Plus labels [1, 1, -, 0, 0, 1, 0, 0]; by logit: p1+ p3- p6- p5+ p0+ p7- p4-.
    # Minus labels [-, 0, 1, 0, -, 1, 0, -]; by logit: p5+ p1- p6- p2+ p3-.
    auprc_plus = (1 / 1 + 2 / 4 + 3 / 5) / 3
    auprc_minus = (1 / 1 + 2 / 4) / 2
    # Both strands pooled, ranked by probability: +p1 +p3 +p6 -p5 +p5 +p0 -p1 +p7 +p4 -p6 -p2
    # -p3, positives at ranks 1, 4, 5, 6, 11.
    ranked = sorted(
        [(probs[p, 0], p, '+') for p in (0, 1, 3, 4, 5, 6, 7)]
        + [(probs[p, 1], p, '-') for p in (1, 2, 3, 5, 6)],
        reverse=True,
    )
    assert [f'{s}{p}' for _, p, s in ranked] == [
        '+1',
        '+3',
        '+6',
        '-5',
        '+5',
        '+0',
        '-1',
        '+7',
        '+4',
        '-6',
        '-2',
        '-3',
    ]
    auprc_both = (1 / 1 + 2 / 4 + 3 / 5 + 4 / 6 + 5 / 11) / 5

    def _strand(s, auprc):
        return {
            'profile_nll': nll[:, s].mean(),
            'uniform_profile_nll': uniform[:, s].mean(),
            'oracle_profile_nll': oracle[:, s].mean(),
            'profile_jsd': jsd[:, s].mean(),
            'count_pearson': 1.0,
            'count_spearman': 1.0,
            'n_examples': 2,
            'profile_auprc': auprc,
        }

    overall = {
        'profile_nll': nll.sum(1).mean(),
        'uniform_profile_nll': uniform.sum(1).mean(),
        'oracle_profile_nll': oracle.sum(1).mean(),
        'profile_jsd': jsd.mean(),
        'count_pearson': np.corrcoef(true_lc.ravel(), pred_lc.ravel())[0, 1],
        # True ranks 4 3 2 1, predicted 4 3 1 2: 1 - 6 * 2 / (4 * 15).
        'count_spearman': 0.8,
        'n_examples': 2,
        'profile_auprc': auprc_both,
    }
    return {'overall': overall, '+': _strand(0, auprc_plus), '-': _strand(1, auprc_minus)}


def _check(got: dict, want: dict) -> None:
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-5), key


def test_evaluate_hand_checked_set(hand_export):
    export_dir, records_dir = hand_export
    result = evaluation.evaluate(export_dir, records_dir, 'valid', batch_size=1)
    want = _hand_expected()
    _check(result['overall'], want['overall'])
    task = result['tasks']['hand']
    _check(task, {k: v for k, v in want['overall'].items() if k != 'count_spearman'})
    for strand in '+-':
        _check(task['strands'][strand], want[strand])
    # The shuffled baseline: window 0's predictions permuted with the fixed seed.
    probs = np.exp(HAND_LOGITS) / np.exp(HAND_LOGITS).sum(0)
    shuffled = metrics.shuffle_positions(
        np.stack([probs, probs]), seed=evaluation.AUPRC_SHUFFLE_SEED
    )[0]
    labels = metrics.auprc_labels(HAND_COUNTS)[0]
    keep = labels >= 0
    assert result['overall']['profile_auprc_shuffled'] == pytest.approx(
        metrics.average_precision(labels[keep], shuffled[keep]), rel=1e-6
    )
    assert task['strands']['+']['profile_auprc_shuffled'] == pytest.approx(
        metrics.average_precision(labels[:, 0][keep[:, 0]], shuffled[:, 0][keep[:, 0]])
    )
    assert 'profile_auprc' in evaluation.format_table(result)


@pytest.mark.slow  # runs the evaluate command in a subprocess
def test_evaluate_cli_json_and_progress(hand_export, tmp_path):
    export_dir, records_dir = hand_export
    out_json = tmp_path / 'eval' / 'valid.json'
    proc = run_main(
        'bpnet_tfx.evaluate',
        f'--saved_model={export_dir}',
        f'--records_dir={records_dir}',
        '--batch_size=1',
        '--progress_every=1',
        f'--output_json={out_json}',
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'evaluate: 1/2 examples (50%)' in proc.stderr
    assert 'evaluate: 2/2 examples (100%)' in proc.stderr
    result = json.loads(out_json.read_text())
    _check(result['overall'], _hand_expected()['overall'])
    assert set(result['tasks']['hand']['strands']) == {'+', '-'}
    assert 'profile_auprc_shuffled' in proc.stdout


def _flat(result, prefix=''):
    """{'overall.profile_nll': value, ...} of every number in an evaluation result."""
    out = {}
    for key, value in result.items():
        if isinstance(value, dict):
            out.update(_flat(value, f'{prefix}{key}.'))
        elif isinstance(value, (int, float)):
            out[f'{prefix}{key}'] = value
    return out


def test_metrics_do_not_depend_on_batch_size(tmp_path):
    """Every number, including the shuffled-auPRC baseline and background counts, is the
    same for batch sizes 1, 7 and 256 (batches that split, straddle and hold the split)."""
    import keras

    from bpnet_tfx.inference import export
    from bpnet_tfx.modeling import config as config_lib
    from bpnet_tfx.modeling import model as model_lib
    from tests.fixtures.records import write_records

    records = str(tmp_path / 'records')
    info = write_records(
        records,
        split_counts={'train': 4, 'valid': 30},
        sequence_length=200,
        with_expected=True,
        background_every=4,
    )
    keras.utils.set_random_seed(0)
    config = config_lib.ModelConfig(sequence_length=200, filters=8, num_dilated_layers=2)
    path = export.export_saved_model(
        model_lib.build_bpnet(config), info, config, str(tmp_path / 'export')
    )
    runs = {
        b: _flat(evaluation.evaluate(path, records, 'valid', batch_size=b)) for b in (1, 7, 256)
    }
    assert runs[1]['background_skipped'] == 7 and runs[1]['overall.n_examples'] == 23
    for b in (7, 256):
        assert runs[b].keys() == runs[1].keys()
        for key, value in runs[1].items():
            np.testing.assert_allclose(runs[b][key], value, rtol=1e-5, atol=1e-6, err_msg=key)


def test_records_of_other_task_names_are_refused_unless_allowed(tiny_export, tmp_path):
    from tests.fixtures.records import write_records

    export_dir = tiny_export[0]
    other = str(tmp_path / 'other')
    write_records(other, split_counts={'valid': 4}, sequence_length=200)
    meta = json.load(open(os.path.join(other, 'metadata.json')))
    meta['tasks'] = ['oct4']
    json.dump(meta, open(os.path.join(other, 'metadata.json'), 'w'))
    with pytest.raises(
        evaluation.EvaluateError,
        match='trained on tasks synthetic but .* holds oct4; pass --allow_task_mismatch',
    ):
        evaluation.evaluate(export_dir, other, 'valid')
    result = evaluation.evaluate(export_dir, other, 'valid', allow_task_mismatch=True)
    assert result['overall']['n_examples'] == 4


def test_a_model_folder_given_for_its_export_is_named(tiny_export, tmp_path):
    import shutil

    model_dir = tmp_path / 'model'
    shutil.copytree(tiny_export[0], model_dir / 'export')
    with pytest.raises(schema.SchemaError, match=f'did you mean --saved_model={model_dir}/export'):
        evaluation.evaluate(str(model_dir), tiny_export[2], 'valid')


def test_sequence_count_pearson_bound_reads_the_simulators_tracks(tiny_export, tmp_path):
    """With `<task>.sequence.{pos,neg}.bw` beside the expected bigWigs the metadata names, the
    bound is the Pearson correlation of log(1 + their total over each output window) with the
    observed log counts; without them there is no bound."""
    export_dir, _, records_dir, info = tiny_export
    plain = evaluation.evaluate(export_dir, records_dir, 'valid')
    assert 'sequence_count_pearson_bound' not in plain['overall']
    assert 'sequence_count_pearson_bound' in evaluation.format_table(plain)  # Shown as '-'.

    rng = np.random.default_rng(5)
    sizes = {'chrvalid': 16 * info.stored_length + 500}
    tracks = {}
    for kind in ('expected.pos', 'expected.neg', 'sequence.pos', 'sequence.neg'):
        tracks[kind] = rng.gamma(0.5, 2.0, sizes['chrvalid']).astype(np.float32)
        write_bigwig(tmp_path / f'synthetic.{kind}.bw', {'chrvalid': tracks[kind]})
    meta_path = os.path.join(records_dir, schema.METADATA_FILENAME)
    with open(meta_path) as f:
        meta = json.load(f)
    meta['source']['tasks'] = [
        {
            'name': 'synthetic',
            'expected_pos_bigwig': str(tmp_path / 'synthetic.expected.pos.bw'),
            'expected_neg_bigwig': str(tmp_path / 'synthetic.expected.neg.bw'),
        }
    ]
    with open(meta_path, 'w') as f:
        json.dump(meta, f)
    result = evaluation.evaluate(export_dir, records_dir, 'valid', batch_size=3)

    true, bound = [], []
    for batch in data.make_eval_dataset(records_dir, info, 'valid', batch_size=16):
        true.append(np.log1p(batch['profile'].numpy().sum(1)))
        for region_id in batch['region_id'].numpy():
            start = int(region_id.decode().split(':')[1].split('-')[0]) + info.output_offset
            window = slice(start, start + info.output_length)
            bound.append(
                [
                    [np.log1p(tracks['sequence.pos'][window].sum(dtype=np.float64))],
                    [np.log1p(tracks['sequence.neg'][window].sum(dtype=np.float64))],
                ]
            )
    true = np.concatenate(true)  # (windows, tasks, strands)
    bound = np.array(bound).transpose(0, 2, 1)
    overall = result['overall']
    np.testing.assert_allclose(
        overall['sequence_count_pearson_bound'],
        np.corrcoef(true.ravel(), bound.ravel())[0, 1],
        rtol=1e-9,
    )
    strand = result['tasks']['synthetic']['strands']['-']
    np.testing.assert_allclose(
        strand['sequence_count_pearson_bound'],
        np.corrcoef(true[:, 0, 1], bound[:, 0, 1])[0, 1],
        rtol=1e-9,
    )
    # Everything else is as without the tracks.
    assert overall['count_pearson'] == pytest.approx(plain['overall']['count_pearson'])
    line = evaluation.format_table(result).splitlines()[1]
    assert f'{overall["sequence_count_pearson_bound"]:.3f}' in line


@pytest.mark.slow
def test_trained_counts_head_reaches_most_of_the_sequence_bound(tmp_path):
    """Simulated data (planted motifs, the cooperative rule, lognormal peak factors) ->
    make_records -> train a small model with the shipped counts head (profile_sum) ->
    evaluate: the log-count Pearson on the validation chromosome is far above chance and at
    least 0.65 of what the sequence determines (sequence_count_pearson_bound). (This small
    model, 8 epochs at learning rate 4e-3, reached 0.74-0.88 of it over five runs, seeds 0-3;
    normalized_pool 0.84-0.89; the reference global_pool 0.54.)"""
    from beam_jobs import make_records
    from bpnet_tfx.modeling import config as config_lib
    from bpnet_tfx.simulate import simulator as simulate
    from bpnet_tfx.training import trainer

    files = simulate.simulate(
        str(tmp_path / 'sim'),
        simulate.SimulationConfig(
            seed=2, chrom_sizes=(('chr1', 200_000), ('chr2', 400_000), ('chr3', 400_000))
        ),
    )
    paths = files.task_bigwigs['demo']
    records = str(tmp_path / 'records')
    make_records.run(
        [
            f'--fasta={files.fasta}',
            f'--peaks={files.peaks}',
            f'--pos_bigwig={paths.pos}',
            f'--neg_bigwig={paths.neg}',
            f'--expected_pos_bigwig={paths.expected_pos}',
            f'--expected_neg_bigwig={paths.expected_neg}',
            f'--output_dir={records}',
            '--valid_chroms=chr1',
            '--sequence_length=400',
            '--runner=DirectRunner',
        ]
    )
    info = schema.RecordsInfo.load(records)
    model_dir = str(tmp_path / 'model')
    summary = trainer.train(
        trainer.TrainConfig(
            records_dir=records,
            model_dir=model_dir,
            export_dir=os.path.join(model_dir, 'export'),
            model=config_lib.ModelConfig(
                sequence_length=400,
                filters=32,
                num_dilated_layers=6,
                counts_head='profile_sum',
            ),
            epochs=8,
            batch_size=32,
            learning_rate=4e-3,
            precision='float32',
            input_benchmark_batches=0,
        ),
        info,
    )
    result = evaluation.evaluate(summary['export_dir'], records, 'valid')
    overall = result['overall']
    pearson, bound = overall['count_pearson'], overall['sequence_count_pearson_bound']
    print(f'count Pearson {pearson:.3f}, sequence bound {bound:.3f} ({pearson / bound:.2f})')
    assert overall['n_examples'] >= 180
    assert bound > 0.8  # The simulator's counts follow the sequence.
    assert pearson > 0.6  # Chance is 0 (about +-0.07 at this many windows).
    assert pearson >= 0.65 * bound


def test_a_nan_auprc_is_explained_under_the_table(hand_export):
    export_dir, records_dir = hand_export
    result = evaluation.evaluate(export_dir, records_dir, 'valid', batch_size=1)
    assert 'is nan' not in evaluation.format_table(result)
    # The same windows with a tenth of the reads: none reaches 166.7 reads, none is labelled.
    assert metrics.auprc_labels(HAND_COUNTS / 10).max() == -1
    low = {**result, 'overall': {**result['overall'], 'profile_auprc': float('nan')}}
    note = evaluation.format_table(low).splitlines()[-1]
    assert note.startswith("profile_auprc is nan: BPNet's rule labels no position positive")
    assert '0.015 of the reads of a window with at least 166.7' in note
