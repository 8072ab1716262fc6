"""Tests of variant_effects: VCF/TSV parsing, window building for SNVs and indels, scores
against direct model calls, statuses, batch-size and order independence, null p-values and
control-track models (tiny untrained exports, no subprocesses)."""

import numpy as np
import pandas as pd
import pytest

from bpnet_tfx.genome import sequence
from bpnet_tfx.inference import export
from bpnet_tfx.variant_effects import scoring as variant_effects
from bpnet_tfx.variant_effects.scoring import Variant, VariantError
from tests.fixtures.control_models import wide_joint_control_model
from tests.fixtures.genomes import write_fasta


def _other(base):
    return 'ACGT'[('ACGT'.index(base) + 1) % 4]


def _tsv(path, rows, header=True):
    text = 'chrom\tpos\tref\talt\n' if header else ''
    path.write_text(text + ''.join('\t'.join(map(str, r)) + '\n' for r in rows))
    return str(path)


# Windows.


def test_snv_and_indel_windows_keep_the_left_flank_and_the_length(genome):
    import pyfaidx

    fasta, seq = genome.fasta, genome.seq
    g = pyfaidx.Fasta(fasta, as_raw=True, sequence_always_upper=True)
    L, p = 20, 500  # p 0-based; the variant's first base lands at index 10
    w = p - L // 2
    snv = Variant('chrT', p + 1, seq[p], _other(seq[p]), 'x')
    ref, alt, start = variant_effects.variant_windows(g, snv, L)
    assert start == w and ref == seq[w : w + L]
    assert alt == seq[w:p] + snv.alt + seq[p + 1 : w + L]
    deletion = Variant('chrT', p + 1, seq[p : p + 4], seq[p], 'x')
    _, alt, _ = variant_effects.variant_windows(g, deletion, L)
    assert alt == seq[w : p + 1] + seq[p + 4 : w + L + 3]  # 3 more bases of right flank
    insertion = Variant('chrT', p + 1, seq[p], seq[p] + 'GGG', 'x')
    _, alt, _ = variant_effects.variant_windows(g, insertion, L)
    assert alt == seq[w : p + 1] + 'GGG' + seq[p + 1 : w + L - 3]  # 3 fewer
    for v in (snv, deletion, insertion):
        assert all(len(s) == L for s in variant_effects.variant_windows(g, v, L)[:2])
    edge = Variant('chrT', 3, seq[2], _other(seq[2]), 'x')
    ref, alt, start = variant_effects.variant_windows(g, edge, L)
    assert start == -8 and ref == 'N' * 8 + seq[:12] and alt[10] == edge.alt


def test_null_windows_change_one_base_outside_the_ref_allele_and_are_seeded(genome):
    seq = genome.seq
    ref = sequence.one_hot(seq[:200]).astype(np.float32)
    v = Variant('chrT', 101, seq[100:103], 'A', 'x')
    nulls = variant_effects.null_windows(ref, v, 50)
    changed = (nulls != ref[None]).any(-1)
    assert (changed.sum(-1) == 1).all()
    assert not changed[:, 100:103].any()
    assert (nulls.sum(-1) == 1).all()
    np.testing.assert_array_equal(nulls, variant_effects.null_windows(ref, v, 50))
    other = variant_effects.null_windows(ref, Variant('chrT', 101, seq[100:103], 'C', 'x'), 50)
    assert (other != nulls).any()


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
    _, one = _score(tiny_export, fasta, path, tmp_path, batch_size=1, null_variants=5)
    _, many = _score(tiny_export, fasta, path, tmp_path, batch_size=64, null_variants=5)
    order = rng.permutation(len(rows))
    shuffled = _tsv(tmp_path / 'w.tsv', [rows[i] for i in order])
    _, moved = _score(tiny_export, fasta, shuffled, tmp_path, batch_size=4, null_variants=5)
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
