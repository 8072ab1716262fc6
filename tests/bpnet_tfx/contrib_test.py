"""Tests of the contrib command (each a subprocess, so all slow): BED input end to end, one-line
errors, and contribution mass on planted motifs of simulated data, from records through
training to scores."""

import os

import numpy as np
import pandas as pd
import pyBigWig
import pytest
from scipy import stats

from bpnet_tfx.attribution import contributions
from tests.fixtures.genomes import GENOME_SIZES, write_bigwig
from tests.fixtures.mains import run_main, run_main_cases


def _contrib(*flags, timeout=600):
    return run_main('bpnet_tfx.contrib', *flags, timeout=timeout)


@pytest.mark.slow  # a subprocess
def test_bed_regions_by_mutagenesis(tiny_export, genome, tmp_path):
    export_dir = tiny_export[0]
    bed = tmp_path / 'regions.bed'
    bed.write_text('chrU\t140\t160\tsecond_in_fasta\nchrT\t0\t1000\n')
    out = tmp_path / 'out'
    proc = _contrib(
        f'--saved_model={export_dir}',
        f'--regions_bed={bed}',
        f'--fasta={genome.fasta}',
        f'--output_dir={out}',
        '--method=ism',
        '--batch_size=256',
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith('contrib: 2 regions (ism) in ')
    assert 'profile/shap.npz' in proc.stdout and 'counts/contrib.bw' in proc.stdout
    result = contributions.load_outputs(str(out))
    # Rows in the BED's order, each the model's 200-bp window around its interval's centre.
    assert [(w.chrom, w.start, w.end, w.name) for w in result['windows']] == [
        ('chrU', 50, 250, 'second_in_fasta'),
        ('chrT', 400, 600, 'chrT:400-600'),
    ]
    assert result['hyp']['profile'].shape == (2, 200, 4)
    np.testing.assert_allclose(result['hyp']['counts'].sum(-1), 0, atol=1e-5)
    bw = pyBigWig.open(str(out / 'counts' / 'contrib.bw'))
    assert list(bw.chroms().items()) == [('chrT', 1000), ('chrU', 300)]  # FASTA order
    observed = (result['hyp']['counts'] * result['one_hot']).sum(-1)
    np.testing.assert_allclose(bw.values('chrU', 50, 250), observed[0], rtol=1e-6, atol=1e-7)
    bw.close()


def _bad_input_case(tmp_path, case, export_dir, fasta) -> tuple[list[str], str]:
    """The flags of one bad-input case (its files in tmp_path/case) and its error message."""
    folder = tmp_path / case
    folder.mkdir()
    bed = folder / 'regions.bed'
    bed.write_text('chrT\t100\t200\nchrT\t300\n')
    flags = {'saved_model': export_dir, 'regions_bed': str(bed), 'fasta': fasta}
    message = {
        'malformed_line': f'{bed}:2: malformed BED line',
        'no_model': 'nowhere: no such folder',
        'no_fasta': 'missing.fa: no such FASTA file',
    }[case]
    if case == 'no_model':
        bed.write_text('chrT\t100\t200\n')
        flags['saved_model'] = str(folder / 'nowhere')
    if case == 'no_fasta':
        flags['fasta'] = str(folder / 'missing.fa')
    return [*(f'--{k}={v}' for k, v in flags.items()), f'--output_dir={folder / "o"}'], message


@pytest.mark.slow  # a subprocess
def test_bad_input_exits_2_with_one_line_and_no_output(tiny_export, genome, tmp_path):
    cases = {
        case: _bad_input_case(tmp_path, case, tiny_export[0], genome.fasta)
        for case in ('malformed_line', 'no_model', 'no_fasta')
    }
    procs = run_main_cases('bpnet_tfx.contrib', [flags for flags, _ in cases.values()])
    for (case, (_, message)), proc in zip(cases.items(), procs):
        assert proc.returncode == 2, (case, proc.stderr[-2000:])
        assert 'Traceback' not in proc.stderr, case
        errors = [ln for ln in proc.stderr.splitlines() if ln.startswith('contrib: error:')]
        assert len(errors) == 1 and message in errors[0], (case, proc.stderr[-2000:])
        assert not [p for p in os.listdir(tmp_path / case) if p.startswith(('o', '.o'))], case


def _auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U over ranks, ties averaged)."""
    ranks = stats.rankdata(scores)
    positives = int(labels.sum())
    negatives = labels.size - positives
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


@pytest.mark.slow
def test_profile_contributions_concentrate_on_planted_motifs(planted_motif_model, tmp_path):
    """Simulated data -> make_records -> train (planted_motif_model) -> contrib: |observed-base
    profile contribution| ranks planted-motif bases above the other bases of validation
    windows."""
    files, records = planted_motif_model['files'], planted_motif_model['records']
    info = planted_motif_model['info']
    assert info.split_counts['valid'] == 150
    summary = {'export_dir': planted_motif_model['export_dir']}

    out = tmp_path / 'contrib'
    proc = _contrib(
        f'--saved_model={summary["export_dir"]}',
        f'--records_dir={records}',
        f'--output_dir={out}',
        '--method=ig',
        '--num_shuffles=5',
        '--steps=10',
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'contrib: 150 regions (ig, 5 shuffled references x 10 steps)' in proc.stdout
    result = contributions.load_outputs(str(out))
    sites = pd.read_csv(files.motif_sites, sep='\t')
    labels = np.zeros((150, 400), bool)
    for i, w in enumerate(result['windows']):
        here = sites[
            (sites['#chrom'] == w.chrom) & (sites['start'] < w.end) & (sites['end'] > w.start)
        ]
        for start, end in zip(here['start'], here['end']):
            labels[i, max(start - w.start, 0) : end - w.start] = True
    assert 0.02 < labels.mean() < 0.2
    observed = (result['hyp']['profile'] * result['one_hot']).sum(-1)
    auroc = _auroc(labels.ravel(), np.abs(observed).ravel())
    print(f'planted-motif auROC of |profile contribution|: {auroc:.4f}')
    assert auroc >= 0.9
    # The track's header is the genome's; a window no other one overlaps holds its observed
    # contributions.
    bw = pyBigWig.open(str(out / 'profile' / 'contrib.bw'))
    assert bw.chroms() == {'chr1': 150_000, 'chr2': 350_000, 'chr3': 300_000}
    windows = result['windows']
    alone = [
        i
        for i, w in enumerate(windows)
        if not any(v.start < w.end and w.start < v.end for v in windows if v is not w)
    ]
    assert alone
    for i in alone[:5]:
        w = windows[i]
        np.testing.assert_allclose(
            bw.values(w.chrom, w.start, w.end), observed[i], rtol=1e-5, atol=1e-6
        )
    bw.close()
    # DeepSHAP on the same model and windows ranks the motifs as well.
    out_shap = tmp_path / 'contrib_deepshap'
    proc = _contrib(
        f'--saved_model={summary["export_dir"]}',
        f'--records_dir={records}',
        f'--output_dir={out_shap}',
        '--method=deepshap',
        '--num_shuffles=5',
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'contrib: 150 regions (deepshap, 5 shuffled references)' in proc.stdout
    shap = contributions.load_outputs(str(out_shap))
    assert shap['windows'] == result['windows']
    observed = (shap['hyp']['profile'] * shap['one_hot']).sum(-1)
    auroc_shap = _auroc(labels.ravel(), np.abs(observed).ravel())
    print(f'planted-motif auROC of |profile contribution|, deepshap: {auroc_shap:.4f}')
    assert auroc_shap >= 0.9


@pytest.mark.slow  # subprocesses
def test_control_model_needs_its_control_bigwigs(genome, tmp_path):
    """A model trained with control tracks: without control bigWigs (none recorded in its
    metadata, none given) one error line and no output; with them, scores and a summary
    naming them."""
    import keras

    from bpnet_tfx.inference import export
    from bpnet_tfx.modeling import model as model_lib
    from bpnet_tfx.records import schema

    keras.utils.set_random_seed(0)
    config = model_lib.ModelConfig(
        sequence_length=200, filters=8, num_dilated_layers=2, use_control=True
    )
    info = schema.RecordsInfo(
        sequence_length=200,
        max_jitter=0,
        tasks=('t',),
        has_control=True,
        source={'fasta': genome.fasta},
    )
    export_dir = export.export_saved_model(
        model_lib.build_bpnet(config), info, config, str(tmp_path / 'export')
    )
    control = write_bigwig(
        tmp_path / 'control.bw', {'chrT': np.arange(1000) % 5}, sizes=GENOME_SIZES
    )
    bed = tmp_path / 'regions.bed'
    bed.write_text('chrT\t400\t600\n')
    flags = [f'--saved_model={export_dir}', f'--regions_bed={bed}', '--num_shuffles=2', '--steps=2']
    proc = _contrib(*flags, f'--output_dir={tmp_path / "o"}')
    assert proc.returncode == 2 and 'Traceback' not in proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith('contrib: error:')]
    assert errors == [
        'contrib: error: this model was trained with control tracks: give '
        '--control_pos_bigwig and --control_neg_bigwig'
    ], proc.stderr[-2000:]
    assert not [p for p in os.listdir(tmp_path) if p.startswith(('o', '.o'))]
    proc = _contrib(
        *flags,
        f'--control_pos_bigwig={control}',
        f'--control_neg_bigwig={control}',
        f'--output_dir={tmp_path / "o"}',
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = contributions.load_outputs(str(tmp_path / 'o'))['summary']
    assert summary['control'] == [[str(control), str(control)]]
