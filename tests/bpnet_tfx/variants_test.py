"""Tests of the variants command end to end (in a subprocess, so slow) and the ground truth on
simulated data: SNVs that break planted motifs against SNVs near peaks away from motifs."""

import os

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bpnet_tfx.variant_effects import scoring as variant_effects
from tests.fixtures.genomes import write_genome
from tests.fixtures.mains import run_main_cases

_BAD = {
    'malformed_line': ('chrT\tx\tA\tC\n', 'in.tsv:1: malformed variant line'),
    'none_scored': ('chrZ\t10\tA\tC\n', 'no variant scored (1 read: unknown_chrom 1)'),
    'missing_file': (None, 'no such variants file'),
}


@pytest.fixture(scope='module')
def variants_runs(shared_tiny_export, tmp_path_factory) -> dict:
    """The variants command on the tiny export and the shared genome, every case in one
    Python (run_main_cases): a VCF of one scorable SNV and one REF mismatch ('vcf'), and the
    bad inputs of _BAD. Returns each case's CompletedProcess under its name, and root."""
    root = tmp_path_factory.mktemp('variants_cli')
    genome = write_genome(root)
    flags = [f'--saved_model={shared_tiny_export}', f'--fasta={genome.fasta}']
    seq = genome.seq
    (root / 'in.vcf').write_text(
        '##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\n'
        f'chrT\t300\trs1\t{seq[299]}\t{"A" if seq[299] != "A" else "C"}\n'
        f'chrT\t500\t.\t{"A" if seq[499] != "A" else "C"}\tG\n'
    )
    cases = {
        'vcf': [
            *flags,
            f'--variants={root / "in.vcf"}',
            f'--output={root / "scores.tsv"}',
            '--null_variants=4',
        ]
    }
    for case, (text, _) in _BAD.items():
        (root / case).mkdir()
        path = root / case / 'in.tsv'
        if text is not None:
            path.write_text(text)
        cases[case] = [*flags, f'--variants={path}', f'--output={root / case / "scores.tsv"}']
    procs = run_main_cases('bpnet_tfx.variants', list(cases.values()))
    return {'root': root, **dict(zip(cases, procs))}


@pytest.mark.slow  # a subprocess
def test_command_scores_a_vcf_and_prints_a_summary(variants_runs):
    proc, out = variants_runs['vcf'], variants_runs['root'] / 'scores.tsv'
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'variants: 2 read, 1 scored (ok 1, ref_mismatch 1)' in proc.stdout
    assert str(out) in proc.stdout
    table = pd.read_csv(out, sep='\t')
    assert list(table['status']) == ['ok', 'ref_mismatch']
    assert 'synthetic.jsd_pvalue' in table.columns


@pytest.mark.slow  # a subprocess
def test_bad_input_exits_2_with_one_line_and_no_output(variants_runs):
    tmp_path = variants_runs['root']
    for case, (_, message) in _BAD.items():
        proc = variants_runs[case]
        assert proc.returncode == 2, (case, proc.stderr[-3000:])
        lines = [ln for ln in proc.stderr.strip().splitlines() if 'starting TensorFlow' not in ln]
        assert len(lines) == 1 and lines[0].startswith('variants: error: '), (case, proc.stderr)
        assert message in lines[0], case
        assert not (tmp_path / case / 'scores.tsv').exists(), case
        assert not [p for p in os.listdir(tmp_path / case) if p.startswith('.scores.tsv')], case


def _auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U over ranks, ties averaged)."""
    ranks = stats.rankdata(scores)
    positives = int(labels.sum())
    negatives = labels.size - positives
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def _ground_truth_variants(files, chrom: str, rng) -> tuple[list, list]:
    """(motif-breaking, background) SNVs on `chrom` as (chrom, pos 1-based, ref, alt) rows:
    the middle base of every exact planted instance changed to another base, and one base
    60-150 bp from each peak summit at least 30 bp from every planted instance."""
    import pyfaidx

    genome = pyfaidx.Fasta(files.fasta, as_raw=True, sequence_always_upper=True)
    sites = pd.read_csv(files.motif_sites, sep='\t')
    sites = sites[sites['#chrom'] == chrom]
    breaking = []
    for start, end, mism in zip(sites['start'], sites['end'], sites['mismatches']):
        if mism:
            continue
        p = (start + end) // 2
        ref = genome[chrom][p]
        breaking.append((chrom, p + 1, ref, 'ACGT'[('ACGT'.index(ref) + 2) % 4]))
    peaks = pd.read_csv(files.peaks, sep='\t', header=None)
    peaks = peaks[peaks[0] == chrom]
    near = np.zeros(len(genome[chrom]), bool)
    for start, end in zip(sites['start'], sites['end']):
        near[max(start - 30, 0) : end + 30] = True
    background = []
    for summit in peaks[1]:
        for _ in range(20):
            p = int(summit + rng.choice([-1, 1]) * rng.integers(60, 150))
            if 0 <= p < len(near) and not near[p] and genome[chrom][p] in 'ACGT':
                ref = genome[chrom][p]
                background.append((chrom, p + 1, ref, 'ACGT'[('ACGT'.index(ref) + 2) % 4]))
                break
    return breaking, background


@pytest.mark.slow
def test_motif_breaking_snvs_rank_above_background_snvs(planted_motif_model, tmp_path):
    """Simulated data -> make_records -> train (planted_motif_model, the contrib test's model)
    -> variants: |log2fc_counts| ranks SNVs at the middle of exact planted motifs on the
    validation chromosome above SNVs near peaks away from motifs, and breaking a motif lowers
    counts."""
    files = planted_motif_model['files']
    summary = {'export_dir': planted_motif_model['export_dir']}
    breaking, background = _ground_truth_variants(files, 'chr1', np.random.default_rng(0))
    assert len(breaking) > 100 and len(background) > 100
    path = tmp_path / 'snvs.tsv'
    rows = breaking + background
    path.write_text('chrom\tpos\tref\talt\n' + ''.join('\t'.join(map(str, r)) + '\n' for r in rows))
    out = tmp_path / 'scores.tsv'
    result = variant_effects.score_variants(
        summary['export_dir'], files.fasta, str(path), str(out), batch_size=64
    )
    assert result['scored'] == len(rows)
    table = pd.read_csv(out, sep='\t')
    labels = np.arange(len(rows)) < len(breaking)
    (task,) = result['tasks']
    log2fc = table[f'{task}.log2fc_counts'].to_numpy()
    auroc = _auroc(labels, np.abs(log2fc))
    jsd_auroc = _auroc(labels, table[f'{task}.jsd_profile'].to_numpy())
    negative = float((log2fc[labels] < 0).mean())
    rate = result['scored'] / result['seconds']
    print(
        f'ground truth: {labels.sum()} motif-breaking vs {(~labels).sum()} background SNVs: '
        f'auROC |log2fc_counts| {auroc:.4f}, auROC jsd_profile {jsd_auroc:.4f}, '
        f'motif-breaking log2fc < 0: {negative:.3f}; {rate:.1f} variants/s'
    )
    assert auroc >= 0.95
    assert negative >= 0.9
