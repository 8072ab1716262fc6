"""Tests of variant effect scoring: scores against direct model calls, statuses, batch-size and
order independence, null p-values and control-track models (tiny untrained exports, no
subprocesses)."""

import os

import numpy as np
import pandas as pd
import pytest

from bpnet_tfx.genome import sequence
from bpnet_tfx.inference import export
from bpnet_tfx.variant_effects import scoring as variant_effects
from bpnet_tfx.variant_effects.variant_files import VariantError
from tests.fixtures.control_models import wide_joint_control_model
from tests.fixtures.genomes import write_fasta


def _other(base):
    return 'ACGT'[('ACGT'.index(base) + 1) % 4]


def _tsv(path, rows, header=True):
    text = 'chrom\tpos\tref\talt\n' if header else ''
    path.write_text(text + ''.join('\t'.join(map(str, r)) + '\n' for r in rows))
    return str(path)


# Scores.


def _score(tiny_export, fasta, path, tmp_path, **kwargs):
    out = tmp_path / f'scores{len(list(tmp_path.iterdir()))}.tsv'
    result = variant_effects.score_variants(tiny_export[0], fasta, path, str(out), **kwargs)
    return result, pd.read_csv(out, sep='\t', keep_default_na=False, na_values=['nan'])


def test_scores_match_direct_predictions_and_statuses_keep_rows(tiny_export, genome, tmp_path):
    fasta, seq, last = genome.fasta, genome.seq, genome.seqs['chrU'][-1]
    rows = [
        ('chrT', 400, seq[399], _other(seq[399])),
        ('chrT', 401, _other(seq[400]), seq[400]),  # REF disagrees with the FASTA
        ('chrZ', 5, 'A', 'C'),
        ('chrU', 300, last + 'A', last),  # runs past chrU's 300 bp
        ('chrT', 600, seq[599], '<DEL>'),
        ('chrT', 700, seq[699:702], seq[699]),  # a deletion
        ('chrT', 800, seq[799], seq[799]),  # REF = ALT: no effect
    ]
    result, table = _score(tiny_export, fasta, _tsv(tmp_path / 'v.tsv', rows), tmp_path)
    assert list(table['status']) == [
        'ok',
        'ref_mismatch',
        'unknown_chrom',
        'out_of_bounds',
        'unsupported_allele',
        'ok',
        'ok',
    ]
    assert result['read'] == 7 and result['scored'] == 3
    assert result['by_status'] == {
        'ok': 3,
        'ref_mismatch': 1,
        'unknown_chrom': 1,
        'out_of_bounds': 1,
        'unsupported_allele': 1,
    }
    assert list(table.columns[:6]) == ['chrom', 'pos', 'ref', 'alt', 'variant_id', 'status']
    assert list(table.columns[6:]) == [f'synthetic.{s}' for s in variant_effects.SCORES]
    assert table.iloc[1, 6:].isna().all()
    assert not table.iloc[[0, 5, 6], 6:].isna().any().any()

    model = export.ExportedModel(tiny_export[0])
    p = 399
    ref = sequence.one_hot(seq[p - 100 : p + 100])[None]
    alt = ref.copy()
    alt[0, 100] = sequence.one_hot(rows[0][3])[0]
    ref_pred = model.predicted_counts(ref, reverse_complement=True)
    alt_pred = model.predicted_counts(alt, reverse_complement=True)
    r, a = ref_pred.sum(), alt_pred.sum()
    row = table.iloc[0]
    np.testing.assert_allclose(row['synthetic.ref_counts'], r, rtol=1e-5)
    np.testing.assert_allclose(row['synthetic.alt_counts'], a, rtol=1e-5)
    np.testing.assert_allclose(
        row['synthetic.log2fc_counts'],
        np.log2((max(a, 0) + 1) / (max(r, 0) + 1)),
        rtol=1e-4,
        atol=1e-6,
    )
    np.testing.assert_allclose(
        row['synthetic.max_abs_diff_profile'], np.abs(alt_pred - ref_pred).max(), rtol=1e-4
    )
    assert 0 < row['synthetic.jsd_profile'] <= 1
    same = table.iloc[6]
    assert same['synthetic.log2fc_counts'] == 0 and same['synthetic.jsd_profile'] == 0
    assert same['synthetic.max_abs_diff_profile'] == 0


def test_scores_do_not_depend_on_batch_size_or_order(tiny_export, genome, tmp_path):
    fasta, seq = genome.fasta, genome.seq
    rng = np.random.default_rng(1)
    rows = [('chrT', int(p) + 1, seq[p], _other(seq[p])) for p in rng.integers(0, 1000, 9)]
    rows.append(('chrT', 51, seq[50:53], seq[50]))
    rows.append(('chrT', 900, seq[899], seq[899] + 'AC'))
    path = _tsv(tmp_path / 'v.tsv', rows)
    pad = dict(null_variants=5, pad_chrom_ends=True)  # the N-padded windows at the ends too
    _, one = _score(tiny_export, fasta, path, tmp_path, batch_size=1, **pad)
    _, many = _score(tiny_export, fasta, path, tmp_path, batch_size=64, **pad)
    order = rng.permutation(len(rows))
    shuffled = _tsv(tmp_path / 'w.tsv', [rows[i] for i in order])
    _, moved = _score(tiny_export, fasta, shuffled, tmp_path, batch_size=4, **pad)
    assert set(one['status']) == {'ok'}
    moved = moved.set_index('variant_id').loc[one['variant_id']].reset_index()
    scores = [c for c in one.columns if '.' in c]
    for other in (many, moved):
        assert list(other['variant_id']) == list(one['variant_id'])
        np.testing.assert_allclose(other[scores], one[scores], rtol=1e-4, atol=1e-6)


def test_null_pvalues_are_empirical_fractions(tiny_export, genome, tmp_path):
    fasta, seq = genome.fasta, genome.seq
    rows = [('chrT', p + 1, seq[p], _other(seq[p])) for p in (200, 450, 700)]
    _, table = _score(tiny_export, fasta, _tsv(tmp_path / 'v.tsv', rows), tmp_path, null_variants=9)
    for name in ('synthetic.log2fc_pvalue', 'synthetic.jsd_pvalue'):
        p = table[name].to_numpy()
        assert ((p > 0) & (p <= 1)).all()
        np.testing.assert_allclose(p * 10, np.round(p * 10), atol=1e-4)  # multiples of 1/10
    result, first = _score(
        tiny_export, fasta, str(tmp_path / 'v.tsv'), tmp_path, null_variants=9, max_variants=2
    )
    assert result['read'] == 2 and len(first) == 2
    np.testing.assert_allclose(first.iloc[:, 6:], table.iloc[:2, 6:], rtol=1e-4, atol=1e-6)


def test_no_variant_scored_is_an_error_and_writes_nothing(tiny_export, genome, tmp_path):
    fasta = genome.fasta
    path = _tsv(tmp_path / 'v.tsv', [('chrZ', 5, 'A', 'C'), ('chrT', 5000, 'A', 'C')])
    out = tmp_path / 'out' / 'scores.tsv'
    with pytest.raises(VariantError, match=r'no variant scored \(2 read: unknown_chrom 1, out_of'):
        variant_effects.score_variants(tiny_export[0], fasta, path, str(out))
    assert list((tmp_path / 'out').iterdir()) == []


def test_windows_past_a_chromosome_end_get_their_own_status_unless_padded(
    tiny_export, genome, tmp_path
):
    fasta, seq = (
        genome.fasta,
        genome.seq,
    )  # chrT: 1000 bp; the model's input: 200 bp, the variant at index 100
    rows = [
        ('chrT', 101, seq[100], _other(seq[100])),  # window [0, 200): inside
        ('chrT', 100, seq[99], _other(seq[99])),  # [-1, 199): past the start
        ('chrT', 901, seq[900], _other(seq[900])),  # [800, 1000): inside
        ('chrT', 902, seq[901], _other(seq[901])),  # [801, 1001): past the end
        ('chrT', 899, seq[898:901], seq[898]),  # ref [798, 998), alt reads to 1000: inside
        ('chrT', 900, seq[899:902], seq[899]),  # ref [799, 999), alt reads to 1001: past
    ]
    path = _tsv(tmp_path / 'v.tsv', rows)
    result, table = _score(tiny_export, fasta, path, tmp_path)
    expected = ['ok', 'chrom_end', 'ok', 'chrom_end', 'ok', 'chrom_end']
    assert list(table['status']) == expected
    assert result['by_status'] == {'ok': 3, 'chrom_end': 3}
    assert table.iloc[[1, 3, 5], 6:].isna().all().all()
    line = variant_effects.summary_line('variants', 6, result['by_status'], 1.0, 'o.tsv')
    assert 'ok 3, chrom_end 3' in line
    padded, table_padded = _score(tiny_export, fasta, path, tmp_path, pad_chrom_ends=True)
    assert padded['by_status'] == {'ok': 6}
    assert not table_padded.iloc[:, 6:].isna().any().any()
    scores = [c for c in table.columns if '.' in c]
    np.testing.assert_allclose(
        table_padded.iloc[[0, 2, 4]][scores], table.iloc[[0, 2, 4]][scores], rtol=1e-6
    )
    ends = _tsv(tmp_path / 'ends.tsv', [rows[1], rows[3]])
    with pytest.raises(VariantError, match=r'\(2 read: chrom_end 2\); .*--pad_chrom_ends scores'):
        variant_effects.score_variants(tiny_export[0], fasta, ends, str(tmp_path / 'x.tsv'))


@pytest.mark.parametrize(
    'text',
    ['', '##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\n', 'chrom\tpos\tref\talt\n'],
    ids=['empty', 'vcf_header_only', 'tsv_header_only'],
)
def test_a_file_without_variants_says_so_before_the_model_loads(genome, tmp_path, text):
    path = tmp_path / 'v.vcf'
    path.write_text(text)
    with pytest.raises(VariantError) as e:  # no export there: the file is checked first
        variant_effects.score_variants(str(tmp_path), genome.fasta, str(path), str(tmp_path / 'o'))
    assert str(e.value) == (
        f'{path}: no variant to score: the file is empty or holds only header and comment lines'
    )
    assert not [n for n in os.listdir(tmp_path) if n.startswith(('o', '.o'))]


def test_unknown_chromosomes_are_named_with_the_fastas_names(tiny_export, genome, tmp_path):
    fasta = genome.fasta
    path = _tsv(tmp_path / 'v.tsv', [('chrT', 5000, 'A', 'C'), ('IV', 5, 'A', 'C')])
    with pytest.raises(VariantError) as e:
        variant_effects.score_variants(tiny_export[0], fasta, path, str(tmp_path / 'o.tsv'))
    assert str(e.value) == (
        f'{path}: no variant scored (2 read: unknown_chrom 1, out_of_bounds 1); '
        f"chromosome 'IV' not in the FASTA {fasta} (it has chrT, chrU); "
        "positions past a chromosome's end: check the genome build"
    )


def test_control_model_reads_the_control_at_the_locus(tmp_path):
    m = wide_joint_control_model(tmp_path)
    seq = m['seq']
    fasta = write_fasta(tmp_path / 'g.fa', {'chrA': seq})  # the export's own FASTA
    p = 130  # 0-based: input window 100-160, output window 120-140, as m['x'], m['ctrl']
    path = _tsv(tmp_path / 'v.tsv', [('chrA', p + 1, seq[p], _other(seq[p]))])
    out = tmp_path / 'scores.tsv'
    variant_effects.score_variants(m['export'], fasta, path, str(out))
    table = pd.read_csv(out, sep='\t')
    model = export.ExportedModel(m['export'])
    ref = model.predicted_counts(m['x'], m['ctrl'], reverse_complement=True)
    np.testing.assert_allclose(
        table[['a.ref_counts', 'b.ref_counts']].to_numpy()[0], ref.sum(axis=(0, 1, 3)), rtol=1e-5
    )
