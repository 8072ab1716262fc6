"""Tests of single-region prediction: plot, TSV numbers and one-line errors."""

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pyBigWig
import pytest

from bpnet_tfx import inference, sequence

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def genome(tmp_path):
    rng = np.random.default_rng(0)
    seq = ''.join(np.array(list('ACGT'))[rng.integers(0, 4, 1000)])
    fasta = tmp_path / 'genome.fa'
    fasta.write_text('>chrT\n' + '\n'.join(seq[i:i + 60] for i in range(0, 1000, 60)) + '\n')
    paths = []
    for strand, scale in (('pos', 1.0), ('neg', 2.0)):
        path = str(tmp_path / f'{strand}.bw')
        bw = pyBigWig.open(path, 'w')
        bw.addHeader([('chrT', 1000)])
        values = (scale * (np.arange(1000) % 7)).astype(np.float64)
        bw.addEntries('chrT', 0, values=values, span=1, step=1)
        bw.close()
        paths.append(path)
    return str(fasta), seq, paths[0], paths[1]


def test_predict_region_plot_and_numbers(tiny_export, genome, tmp_path):
    export_dir, model, _, _ = tiny_export
    fasta, seq, pos, neg = genome
    png = str(tmp_path / 'out' / 'plot.png')
    result = inference.predict_region(export_dir, 'chrT:400-600', fasta=fasta, pos_bigwig=pos,
                                    neg_bigwig=neg, output_png=png)
    assert result['note'] == ''
    import matplotlib.image
    img = matplotlib.image.imread(png)
    assert img.shape[:2] == (400, 1200)
    assert img[..., :3].std() > 0.05  # not a blank canvas
    assert os.path.getsize(png) > 10_000
    table = pd.read_csv(result['tsv'], sep='\t')
    assert len(table) == 200 and table['start'].iloc[0] == 400
    out = model(sequence.one_hot(seq[400:600])[None].astype(np.float32), training=False)
    logits = out['profile'].numpy()[0]
    probs = np.exp(logits - logits.max(0)) / np.exp(logits - logits.max(0)).sum(0)
    np.testing.assert_allclose(table['pred_prob_plus'], probs[:, 0], rtol=1e-4)
    np.testing.assert_allclose(table['pred_prob_minus'], probs[:, 1], rtol=1e-4)
    np.testing.assert_array_equal(table['obs_counts_plus'], np.arange(400, 600) % 7)
    np.testing.assert_array_equal(table['obs_counts_minus'], 2 * (np.arange(400, 600) % 7))


def test_other_lengths_are_centred(tiny_export, genome, tmp_path):
    export_dir = tiny_export[0]
    fasta, _, pos, neg = genome
    result = inference.predict_region(export_dir, 'chrT:450-551', fasta=fasta, pos_bigwig=pos,
                                    neg_bigwig=neg, output_png=str(tmp_path / 'p.png'))
    assert result['region'] == 'chrT:400-600'
    assert 'centred window chrT:400-600' in result['note']


@pytest.mark.parametrize('region, message', [
    ('chrT-400-600', 'malformed region'),
    ('chrT:600-400', 'start must be below end'),
    ('chrT:900-1100', 'runs past the end'),
    ('chrX:400-600', "chromosome 'chrX' not in the FASTA"),
])
def test_bad_regions_are_one_line_errors(tiny_export, genome, tmp_path, region, message):
    fasta, _, pos, neg = genome
    with pytest.raises(inference.PredictError, match=message):
        inference.predict_region(tiny_export[0], region, fasta=fasta, pos_bigwig=pos,
                               neg_bigwig=neg, output_png=str(tmp_path / 'p.png'))


def test_cli_error_has_no_traceback(tiny_export, genome, tmp_path):
    fasta, _, _, _ = genome
    proc = subprocess.run(
        [sys.executable, '-m', 'bpnet_tfx.predict', f'--saved_model={tiny_export[0]}',
         f'--fasta={fasta}', '--region=chrT:bad', f'--output_png={tmp_path / "p.png"}'],
        capture_output=True, text=True, timeout=300,
        env=dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL='2'))
    assert proc.returncode == 2
    assert 'predict: error: malformed region' in proc.stderr
    assert 'Traceback' not in proc.stderr
