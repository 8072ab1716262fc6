"""Tests of evaluation: numbers from the SavedModel equal an independent computation."""

import numpy as np
import pytest

from bpnet_tfx import data, inference, losses, schema


def test_evaluate_matches_direct_computation(tiny_export):
    export_dir, model, records_dir, info = tiny_export
    result = inference.evaluate(export_dir, records_dir, 'valid', batch_size=5)
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
    np.testing.assert_allclose(overall['uniform_profile_nll'], np.concatenate(uniform).mean(),
                               rtol=1e-5)
    np.testing.assert_allclose(overall['oracle_profile_nll'], np.concatenate(oracle).mean(),
                               rtol=1e-4)
    t, p = np.concatenate(true_lc), np.concatenate(pred_lc)
    np.testing.assert_allclose(overall['count_pearson'], np.corrcoef(t.ravel(), p.ravel())[0, 1],
                               atol=1e-3)
    strands = result['tasks']['synthetic']['strands']
    np.testing.assert_allclose(strands['+']['profile_nll'] + strands['-']['profile_nll'],
                               overall['profile_nll'], rtol=1e-6)
    # The synthetic 'expected' track is the observed counts + 0.01: far better than uniform.
    assert overall['oracle_profile_nll'] < 0.5 * overall['uniform_profile_nll']
    table = inference.format_table(result)
    assert 'oracle_profile_nll' in table and 'synthetic +' in table


def test_evaluate_refuses_records_of_another_length(tiny_export, tmp_path):
    from conftest import write_records
    export_dir, _, _, _ = tiny_export
    other = str(tmp_path / 'other')
    write_records(other, split_counts={'valid': 4}, sequence_length=100)
    with pytest.raises(inference.EvaluateError, match='100-bp'):
        inference.evaluate(export_dir, other, 'valid')
    with pytest.raises(schema.SchemaError, match='no test shards'):
        inference.evaluate(export_dir, tiny_export[2], 'test')

