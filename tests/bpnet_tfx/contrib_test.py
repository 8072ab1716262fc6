"""Tests of the contrib command (in subprocesses, so all slow): BED input end to end, one-line
errors, and contribution mass on planted motifs of simulated data, from records through
training to scores."""

import os

import numpy as np
import pandas as pd
import pyBigWig
import pytest
from scipy import stats

from bpnet_tfx.attribution import contributions
from tests.fixtures.genomes import GENOME_SIZES, write_bigwig, write_genome
from tests.fixtures.mains import run_main_cases


def _control_export(root, fasta) -> str:
    """An untrained single-task model with control tracks whose metadata names no control
    bigWigs."""
    import keras

    from bpnet_tfx.inference import export
    from bpnet_tfx.modeling import model as model_lib
    from bpnet_tfx.records import schema

    keras.utils.set_random_seed(0)
    config = model_lib.ModelConfig(
        sequence_length=200, filters=8, num_dilated_layers=2, use_control=True
    )
    info = schema.RecordsInfo(
        sequence_length=200, max_jitter=0, tasks=('t',), has_control=True, source={'fasta': fasta}
    )
    model = model_lib.build_bpnet(config)
    return export.export_saved_model(model, info, config, str(root / 'control_export'))


def _bad_input_case(root, case, export_dir, fasta) -> tuple[list[str], str]:
    """The flags of one bad-input case (its files in root/case) and its error message."""
    folder = root / case
    folder.mkdir()
    bed = folder / 'regions.bed'
    bed.write_text('chrT\t100\t200\nchrT\t300\n')
    flags = {'saved_model': export_dir, 'regions_bed': str(bed), 'fasta': fasta}
    message = {
        'malformed_line': f'{bed}:2: malformed line: 2 column(s)',
        'no_model': 'nowhere: no such folder',
        'no_fasta': 'missing.fa: no such FASTA file',
    }[case]
    if case == 'no_model':
        bed.write_text('chrT\t100\t200\n')
        flags['saved_model'] = str(folder / 'nowhere')
    if case == 'no_fasta':
        flags['fasta'] = str(folder / 'missing.fa')
    return [*(f'--{k}={v}' for k, v in flags.items()), f'--output_dir={folder / "o"}'], message


BAD_INPUT = ('malformed_line', 'no_model', 'no_fasta')


@pytest.fixture(scope='module')
def contrib_runs(shared_tiny_export, tmp_path_factory) -> dict:
    """The contrib command on tiny exports and the shared genome, every case in one Python
    (run_main_cases): the bad inputs, a model with controls run without and with its control
    bigWigs, and mutagenesis over BED regions. Returns each case's CompletedProcess, flags
    and message under its name, and the files they read under root, genome, control."""
    root = tmp_path_factory.mktemp('contrib_cli')
    genome, export_dir = write_genome(root), shared_tiny_export
    cases = {case: _bad_input_case(root, case, export_dir, genome.fasta) for case in BAD_INPUT}
    control = write_bigwig(root / 'control.bw', {'chrT': np.arange(1000) % 5}, sizes=GENOME_SIZES)
    (root / 'control.bed').write_text('chrT\t400\t600\n')
    with_control = [
        f'--saved_model={_control_export(root, genome.fasta)}',
        f'--regions_bed={root / "control.bed"}',
        '--num_shuffles=2',
        '--steps=2',
    ]
    cases['control_missing'] = ([*with_control, f'--output_dir={root / "o"}'], '')
    cases['control_given'] = (
        [
            *with_control,
            f'--control_pos_bigwig={control}',
            f'--control_neg_bigwig={control}',
            f'--output_dir={root / "o"}',
        ],
        '',
    )
    (root / 'regions.bed').write_text('chrU\t140\t160\tsecond_in_fasta\nchrT\t0\t1000\n')
    cases['ism'] = (
        [
            f'--saved_model={export_dir}',
            f'--regions_bed={root / "regions.bed"}',
            f'--fasta={genome.fasta}',
            f'--output_dir={root / "out"}',
            '--method=ism',
            '--batch_size=256',
        ],
        '',
    )
    procs = run_main_cases('bpnet_tfx.contrib', [flags for flags, _ in cases.values()], timeout=600)
    runs = {name: (proc, *case) for (name, case), proc in zip(cases.items(), procs)}
    return {'root': root, 'genome': genome, 'control': control, **runs}


@pytest.mark.slow  # a subprocess
def test_bed_regions_by_mutagenesis(contrib_runs):
    proc, _, _ = contrib_runs['ism']
    out = contrib_runs['root'] / 'out'
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


@pytest.mark.slow  # a subprocess
def test_bad_input_exits_2_with_one_line_and_no_output(contrib_runs):
    for case in BAD_INPUT:
        proc, _, message = contrib_runs[case]
        assert proc.returncode == 2, (case, proc.stderr[-2000:])
        assert 'Traceback' not in proc.stderr, case
        errors = [ln for ln in proc.stderr.splitlines() if ln.startswith('contrib: error:')]
        assert len(errors) == 1 and message in errors[0], (case, proc.stderr[-2000:])
        folder = contrib_runs['root'] / case
        assert not [p for p in os.listdir(folder) if p.startswith(('o', '.o'))], case


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
    flags = [f'--saved_model={planted_motif_model["export_dir"]}', f'--records_dir={records}']
    out, out_shap = tmp_path / 'contrib', tmp_path / 'contrib_deepshap'
    proc, shap_proc = run_main_cases(  # IG, then DeepSHAP on the same model and windows
        'bpnet_tfx.contrib',
        [
            [*flags, f'--output_dir={out}', '--method=ig', '--num_shuffles=5', '--steps=10'],
            [*flags, f'--output_dir={out_shap}', '--method=deepshap', '--num_shuffles=5'],
        ],
        timeout=600,
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
    assert shap_proc.returncode == 0, shap_proc.stderr[-3000:]
    assert 'contrib: 150 regions (deepshap, 5 shuffled references)' in shap_proc.stdout
    shap = contributions.load_outputs(str(out_shap))
    assert shap['windows'] == result['windows']
    observed = (shap['hyp']['profile'] * shap['one_hot']).sum(-1)
    auroc_shap = _auroc(labels.ravel(), np.abs(observed).ravel())
    print(f'planted-motif auROC of |profile contribution|, deepshap: {auroc_shap:.4f}')
    assert auroc_shap >= 0.9


@pytest.mark.slow  # a subprocess
def test_control_model_needs_its_control_bigwigs(contrib_runs):
    """A model trained with control tracks: without control bigWigs (none recorded in its
    metadata, none given) one error line and no output; with them, scores and a summary
    naming them."""
    proc, _, _ = contrib_runs['control_missing']
    assert proc.returncode == 2 and 'Traceback' not in proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith('contrib: error:')]
    assert errors == [
        'contrib: error: this model was trained with control tracks: give '
        '--control_pos_bigwig and --control_neg_bigwig'
    ], proc.stderr[-2000:]
    proc, _, _ = contrib_runs['control_given']  # run after the refused one: it left nothing
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = contributions.load_outputs(str(contrib_runs['root'] / 'o'))['summary']
    control = contrib_runs['control']
    assert summary['control'] == [[str(control), str(control)]]
