"""Tests of a variant's windows: SNVs and indels keep the left flank and the length; null SNVs
change one base outside REF and are seeded; statuses."""

import numpy as np

from bpnet_tfx.genome import sequence
from bpnet_tfx.variant_effects import alleles
from bpnet_tfx.variant_effects.variant_files import Variant

_SEQ = ''.join(np.random.default_rng(0).choice(list('ACGT'), 1000))


def _other(base):
    return 'ACGT'[('ACGT'.index(base) + 1) % 4]


def test_snv_and_indel_windows_keep_the_left_flank_and_the_length():
    seq = _SEQ
    g = {'chrT': seq}  # what an open FASTA gives: chromosome -> sliceable bases
    L, p = 20, 500  # p 0-based; the variant's first base lands at index 10
    w = p - L // 2
    snv = Variant('chrT', p + 1, seq[p], _other(seq[p]), 'x')
    ref, alt, start = alleles.variant_windows(g, snv, L)
    assert start == w and ref == seq[w : w + L]
    assert alt == seq[w:p] + snv.alt + seq[p + 1 : w + L]
    deletion = Variant('chrT', p + 1, seq[p : p + 4], seq[p], 'x')
    _, alt, _ = alleles.variant_windows(g, deletion, L)
    assert alt == seq[w : p + 1] + seq[p + 4 : w + L + 3]  # 3 more bases of right flank
    insertion = Variant('chrT', p + 1, seq[p], seq[p] + 'GGG', 'x')
    _, alt, _ = alleles.variant_windows(g, insertion, L)
    assert alt == seq[w : p + 1] + 'GGG' + seq[p + 1 : w + L - 3]  # 3 fewer
    for v in (snv, deletion, insertion):
        assert all(len(s) == L for s in alleles.variant_windows(g, v, L)[:2])
    edge = Variant('chrT', 3, seq[2], _other(seq[2]), 'x')
    ref, alt, start = alleles.variant_windows(g, edge, L)
    assert start == -8 and ref == 'N' * 8 + seq[:12] and alt[10] == edge.alt


def test_null_windows_change_one_base_outside_the_ref_allele_and_are_seeded():
    seq = _SEQ
    ref = sequence.one_hot(seq[:200]).astype(np.float32)
    v = Variant('chrT', 101, seq[100:103], 'A', 'x')
    nulls = alleles.null_windows(ref, v, 50)
    changed = (nulls != ref[None]).any(-1)
    assert (changed.sum(-1) == 1).all()
    assert not changed[:, 100:103].any()
    assert (nulls.sum(-1) == 1).all()
    np.testing.assert_array_equal(nulls, alleles.null_windows(ref, v, 50))
    other = alleles.null_windows(ref, Variant('chrT', 101, seq[100:103], 'C', 'x'), 50)
    assert (other != nulls).any()


def test_variant_status_names_why_a_variant_is_not_scored():
    g, sizes = {'chrT': _SEQ}, {'chrT': 1000}
    ok = Variant('chrT', 10, _SEQ[9:11], 'A', 'x')
    assert alleles.variant_status(ok, g, sizes) == 'ok'
    cases = {
        'ref_mismatch': Variant('chrT', 10, _other(_SEQ[9]), 'A', 'x'),
        'unknown_chrom': Variant('chrZ', 10, 'A', 'C', 'x'),
        'out_of_bounds': Variant('chrT', 1000, _SEQ[999] + 'A', 'C', 'x'),
        'unsupported_allele': Variant('chrT', 10, _SEQ[9], '<DEL>', 'x'),
    }
    assert {alleles.variant_status(v, g, sizes) for v in cases.values()} == set(cases)
    for status, v in cases.items():
        assert alleles.variant_status(v, g, sizes) == status
