"""Fast tests of the motifs libraries: MEME files, patterns, CWM scanning, recovery, logos and
the report, in-silico helpers. No modisco-lite or memelite run here (motifs_slow_test.py)."""

from __future__ import annotations

import os

import h5py
import numpy as np
import pytest

from bpnet_tfx.attribution import contributions
from bpnet_tfx.genome import sequence
from bpnet_tfx.motifs import (
    annotation,
    html_report,
    insilico,
    logos,
    meme,
    patterns,
    recovery,
    scanning,
)

MOTIF = 'CTTTGCATAACAATG'


# MEME files.


def test_meme_round_trip(tmp_path):
    motifs = meme.demo_database(decoys=5)
    path = str(tmp_path / 'db.meme')
    meme.write_meme(path, motifs)
    back = meme.read_meme(path)
    assert [m.name for m in back] == [m.name for m in motifs]
    assert [m.alt_name for m in back] == [m.alt_name for m in motifs]
    for a, b in zip(back, motifs):
        np.testing.assert_allclose(a.pfm, b.pfm / b.pfm.sum(1, keepdims=True), atol=1e-5)
    assert back[0].alt_name == 'klf4' and back[2].alt_name == 'oct4_sox2'
    assert np.argmax(back[2].pfm, 1).tolist() == ['ACGT'.index(b) for b in MOTIF]


@pytest.mark.parametrize(
    'text, message',
    [
        ('hello\n', 'db.meme:1: not a MEME file'),
        (
            'MEME version 4\nALPHABET= ACDEFGHIKLMNPQRSTVWY\n',
            'db.meme:2: alphabet ACDEFGHIKLMNPQRSTVWY is not ACGT',
        ),
        (
            'MEME version 4\nMOTIF a\nletter-probability matrix: w= 3\n0.25 0.25 0.25 0.25\n\n',
            'db.meme:5: motif a has 1 of its w= 3 rows',
        ),
        (
            'MEME version 4\nMOTIF a\nletter-probability matrix: w= 1\n0.5 0.5 0.5\n',
            'db.meme:4: a matrix row needs 4 non-negative probabilities',
        ),
        (
            'MEME version 4\nMOTIF a\nletter-probability matrix: w= 1\n0.9 0.5 0.5 0.1\n',
            'db.meme:4: matrix row sums to 2.000, not 1',
        ),
        ('MEME version 4\n\n', 'db.meme: no motif with a letter-probability matrix'),
        (
            'MEME version 4\nMOTIF a\nletter-probability matrix: w= 1\n1 0 0 0\n'
            'MOTIF a\nletter-probability matrix: w= 1\n1 0 0 0\n',
            'db.meme: motif name a appears twice',
        ),
    ],
)
def test_bad_meme_files_name_file_and_line(tmp_path, text, message):
    path = tmp_path / 'db.meme'
    path.write_text(text)
    with pytest.raises(meme.MemeError) as e:
        meme.read_meme(str(path))
    assert message in str(e.value)


def test_meme_without_width_reads_rows_until_blank(tmp_path):
    path = tmp_path / 'db.meme'
    path.write_text(
        'MEME version 4\n\nMOTIF m1 NAME1\nletter-probability matrix:\n\n1 0 0 0\n0 1 0 0\n'
        '\nMOTIF m2\nletter-probability matrix: alength= 4 w= 1\n0 0 0 1\nURL x\n'
    )
    m1, m2 = meme.read_meme(str(path))
    assert (m1.name, m1.alt_name, m1.pfm.shape, m1.label) == ('m1', 'NAME1', (2, 4), 'm1 (NAME1)')
    assert m2.pfm.tolist() == [[0, 0, 0, 1]]


# Patterns.


def _pattern(cwm, rows=(0, 1), starts=(10, 20), revcomp=(False, True), name='profile/pos_0'):
    cwm = np.asarray(cwm, float)
    width = len(cwm)
    seqlets = patterns.Seqlets(
        np.array(rows), np.array(starts), np.array(starts) + width, np.array(revcomp)
    )
    pfm = np.abs(cwm) + 0.01
    return patterns.Pattern(
        name, name.split('/')[0], 1, cwm, cwm * 2, pfm / pfm.sum(1, keepdims=True), seqlets
    )


def _motif_cwm(motif=MOTIF, flank=5, scale=1.0):
    core = sequence.one_hot(motif).astype(float) * scale
    pad = np.full((flank, 4), 0.01)
    return np.concatenate([pad, core, pad])


def test_trim_keeps_the_core_and_moves_seqlets_on_both_strands():
    p = _pattern(_motif_cwm(flank=5))
    assert p.core() == (5, 20)
    core = p.trimmed()
    assert core.consensus() == MOTIF
    # Forward seqlet at 10 (pattern positions 5..20 -> 15..30); the reverse one at 20..45 reads
    # backwards: pattern position k is window position 44 - k, so 5..20 -> 25..40.
    assert core.seqlets.start.tolist() == [15, 25]
    assert core.seqlets.end.tolist() == [30, 40]
    assert p.meme_motif().alt_name == MOTIF and p.meme_motif().name == 'profile.pos_0'


def test_reverse_complement_matrix_twice_is_identity():
    m = np.random.default_rng(0).random((7, 4))
    np.testing.assert_array_equal(
        patterns.reverse_complement_matrix(patterns.reverse_complement_matrix(m)), m
    )
    one_hot = sequence.one_hot('AACGT')
    np.testing.assert_array_equal(
        patterns.reverse_complement_matrix(one_hot), sequence.reverse_complement(one_hot)
    )


def test_read_modisco_h5_layout(tmp_path):
    path = str(tmp_path / 'm.h5')
    cwm = _motif_cwm()
    with h5py.File(path, 'w') as f:
        for meta, n in (('pos_patterns', 2), ('neg_patterns', 1)):
            for i in range(n):
                g = f.create_group(f'{meta}/pattern_{i}')
                g['sequence'] = np.abs(cwm)
                g['contrib_scores'] = cwm * (1 if meta == 'pos_patterns' else -1)
                g['hypothetical_contribs'] = cwm
                s = g.create_group('seqlets')
                s['example_idx'] = np.array([3, 4])
                s['start'] = np.array([0, 7])
                s['end'] = np.array([25, 32])
                s['is_revcomp'] = np.array([False, True])
    found = patterns.read_modisco_h5(path, 'counts', row_offset=300)
    assert [p.name for p in found] == ['counts/pos_0', 'counts/pos_1', 'counts/neg_0']
    assert [p.sign for p in found] == [1, 1, -1]
    assert found[0].seqlets.start.tolist() == [300, 307]
    assert found[0].seqlets.row.tolist() == [3, 4]
    bad = tmp_path / 'bad.h5'
    bad.write_text('not hdf5')
    with pytest.raises(patterns.PatternsError, match='cannot read modisco results'):
        patterns.read_modisco_h5(str(bad), 'counts')


# CWM scanning.


def _reference_jaccard(q, t):
    """BPNet's continuous Jaccard of one window, written out position by position."""
    qn = q / np.abs(q).sum()
    tn = t / np.abs(t).sum()
    inter = union = 0.0
    for i in range(q.shape[0]):
        for j in range(4):
            inter += min(abs(qn[i, j]), abs(tn[i, j])) * np.sign(qn[i, j]) * np.sign(tn[i, j])
            union += max(abs(qn[i, j]), abs(tn[i, j]))
    return inter / union, np.abs(t).sum()


def _contribution_tracks(rng, n=6, length=120, sites=()):
    """Noise contributions on random one-hot sequences with MOTIF-shaped bumps at `sites`
    (row, start, reverse, scale)."""
    one_hot = sequence.one_hot(''.join(rng.choice(list('ACGT'), n * length))).reshape(n, length, 4)
    observed = one_hot * rng.normal(0, 0.02, (n, length, 1))
    for row, start, reverse, scale in sites:
        m = sequence.one_hot(MOTIF).astype(float)
        if reverse:
            m = patterns.reverse_complement_matrix(m)
        one_hot[row, start : start + len(MOTIF)] = m
        observed[row, start : start + len(MOTIF)] = m * scale
    return one_hot.astype(np.float32), observed


def test_scan_scores_match_a_direct_computation():
    rng = np.random.default_rng(1)
    _, observed = _contribution_tracks(rng, n=2, length=40, sites=[(0, 10, False, 1.0)])
    cwm = sequence.one_hot(MOTIF) * 0.8 + rng.normal(0, 0.05, (len(MOTIF), 4))
    match, contribution = scanning.scan_scores(cwm, observed)
    assert match.shape == (2, 40 - len(MOTIF) + 1, 2)
    for row in range(2):
        for offset in (0, 10, 17):
            window = observed[row, offset : offset + len(MOTIF)]
            m, c = _reference_jaccard(cwm, window)
            m_rc, _ = _reference_jaccard(patterns.reverse_complement_matrix(cwm), window)
            assert match[row, offset, 0] == pytest.approx(m, rel=1e-9)
            assert match[row, offset, 1] == pytest.approx(m_rc, rel=1e-9)
            assert contribution[row, offset] == pytest.approx(c, rel=1e-9)
    assert match[0, 10, 0] > 0.7 and match[0, 10, 0] == match[0].max()


def test_find_hits_recovers_planted_sites_and_strands_without_duplicates():
    rng = np.random.default_rng(2)
    sites = [(0, 10, False, 1.0), (0, 60, True, 0.8), (2, 30, False, 0.5), (4, 90, True, 1.2)]
    _, observed = _contribution_tracks(rng, sites=sites)
    cwm = sequence.one_hot(MOTIF).astype(float)
    # Seqlets at the first two sites set the thresholds.
    p = patterns.Pattern(
        'profile/pos_0',
        'profile',
        1,
        cwm,
        cwm,
        cwm,
        patterns.Seqlets(
            np.array([0, 0]), np.array([10, 60]), np.array([25, 75]), np.array([False, True])
        ),
    )
    thresholds = scanning.seqlet_thresholds(p, observed, 5, 1)
    assert thresholds.match > 0.9
    hits = scanning.find_hits(
        p, observed, dataclasses_replace(thresholds, match=0.9, contribution=1.0)
    )
    found = sorted(zip(hits.row.tolist(), hits.start.tolist(), hits.strand.tolist()))
    assert found == [(0, 10, 0), (0, 60, 1), (2, 30, 0), (4, 90, 1)]
    m, c = thresholds.percentiles(hits.match, hits.contribution)
    assert ((m >= 0) & (m <= 1)).all() and ((c >= 0) & (c <= 1)).all()


def dataclasses_replace(obj, **kw):
    import dataclasses

    return dataclasses.replace(obj, **kw)


def test_seqlets_outside_the_windows_are_an_error():
    cwm = sequence.one_hot(MOTIF).astype(float)
    p = _pattern(cwm, rows=(0,), starts=(500,), revcomp=(False,))
    with pytest.raises(ValueError, match='no seqlet lies within the scanned windows'):
        scanning.seqlet_thresholds(p, np.zeros((1, 100, 4)), 5, 1)


# Recovery against known sites.


def test_recovery_counts_precision_and_recall_per_motif():
    windows = [
        contributions.Window('chr1', 0, 1000, 'w0'),
        contributions.Window('chr2', 0, 500, 'w1'),
    ]
    sites = [
        ('chr1', 100, 115, 'a'),
        ('chr1', 300, 311, 'b'),
        ('chr2', 50, 65, 'a'),
        ('chr2', 900, 915, 'a'),
    ]  # the last lies outside every window
    hits = [
        {'chrom': 'chr1', 'start': 102, 'end': 117, 'pattern': 'profile/pos_0'},  # finds a
        {'chrom': 'chr2', 'start': 70, 'end': 85, 'pattern': 'profile/pos_0'},  # misses
        {'chrom': 'chr1', 'start': 300, 'end': 311, 'pattern': 'profile/pos_1'},  # finds b
        {'chrom': 'chr1', 'start': 100, 'end': 115, 'pattern': 'counts/pos_0'},
    ]
    r = recovery.recovery(hits, sites, windows)
    assert r['profile']['patterns'] == {'profile/pos_0': 'a', 'profile/pos_1': 'b'}
    assert r['profile']['precision'] == pytest.approx(2 / 3)
    assert r['profile']['recall'] == pytest.approx(2 / 3)
    assert r['profile']['motifs']['a'] == {
        'precision': 0.5,
        'recall': 0.5,
        'instances': 2,
        'sites': 2,
    }
    assert r['counts']['recall'] == pytest.approx(1 / 3)


# Logos and the report.


def test_pfm_heights_are_information_content():
    pfm = np.array([[1.0, 0, 0, 0], [0.25, 0.25, 0.25, 0.25]])
    heights = logos.pfm_heights(pfm)
    assert heights[0, 0] == pytest.approx(2.0, abs=0.05)  # the pseudocount takes a little
    assert heights[1].sum() == pytest.approx(0.0, abs=1e-9)


def test_logo_svg_draws_one_glyph_per_nonzero_letter():
    heights = np.array([[0.5, 0, 0, 0], [0, -0.3, 0.2, 0]])
    svg = logos.logo_svg(heights, title='t', element_id='x')
    assert svg.startswith('<svg') and 'id="x"' in svg
    # A: 2 paths, C: 1, G: 2
    assert svg.count(logos.COLOURS['A']) == 2
    assert svg.count(logos.COLOURS['C']) == 1
    assert svg.count(logos.COLOURS['G']) == 2
    assert logos.COLOURS['T'] not in svg


def test_report_is_self_contained_with_every_logo(tmp_path):
    rng = np.random.default_rng(3)
    one_hot, observed = _contribution_tracks(rng, n=2, length=60, sites=[(0, 10, False, 1.0)])
    found = [
        _pattern(_motif_cwm(), rows=(0,), starts=(5,), revcomp=(False,)),
        _pattern(-_motif_cwm(), rows=(1,), starts=(5,), revcomp=(True,), name='counts/neg_0'),
    ]
    found[1] = dataclasses_replace(found[1], sign=-1)
    contrib = {
        'one_hot': one_hot,
        'hyp': {'profile': observed, 'counts': observed},
        'windows': [
            contributions.Window('chr1', 1000, 1060, 'a'),
            contributions.Window('chr1', 2000, 2060, 'b'),
        ],
    }
    summary = {
        'contrib_dir': '/x',
        'rows': 2,
        'window': 60,
        'max_seqlets': 10,
        'targets': {'profile': [], 'counts': []},
    }
    matches = {
        'profile/pos_0': [
            {
                'rank': 1,
                'match': 'SIM0003',
                'match_alt': 'oct4_sox2',
                'p_value': 1e-9,
                'q_value': 1e-7,
                'strand': '+',
            }
        ]
    }
    page = html_report.render(
        summary, found, contrib=contrib, matches=matches, instances={'profile/pos_0': 7}
    )
    for kind in ('cwm', 'cwmrc', 'hcwm', 'pfm'):
        for p in found:
            assert f'id="{kind}-{p.meme_name}"' in page
    assert 'best match <b>oct4_sox2</b>' in page and '7 instances' in page
    assert 'not scanned (its seqlets do not match its CWM)' in page  # counts/neg_0
    weak = {'counts/neg_0': [dict(matches['profile/pos_0'][0], q_value=0.3)]}
    flat = dataclasses_replace(
        found[1], pfm=np.full_like(found[1].pfm, 0.25) + 0.01 * (np.arange(4) == 0)
    )
    flat_page = html_report.render(summary, [flat], contrib=contrib, matches=weak)
    assert 'no significant database match (q > 0.05)' in flat_page
    assert 'PFM (bits, scaled up: ' in flat_page
    assert 'chr1:1010-1025 (+)' in page  # the example seqlet, trimmed, in genome coordinates
    assert 'negative' in page
    assert 'http' not in page.replace('http://www.w3.org/2000/svg', '')


def test_benjamini_hochberg_matches_the_step_up_rule():
    p = np.array([0.01, 0.04, 0.03, 0.2])
    q = annotation.benjamini_hochberg(p)
    # sorted 0.01, 0.03, 0.04, 0.2 -> 0.04, 0.06, 0.0533, 0.2, then the running minimum from the end
    np.testing.assert_allclose(q, [0.04, 0.16 / 3, 0.16 / 3, 0.2])


# In-silico helpers.


def test_backgrounds_keep_dinucleotides_and_do_not_depend_on_count():
    one_hot = sequence.one_hot('ACGTTGCAACGGTTAACCAGT' * 3)[None].astype(np.float32)
    a = insilico.backgrounds(one_hot, 3, seed=1)
    b = insilico.backgrounds(one_hot, 5, seed=1)
    np.testing.assert_array_equal(a, b[:3])
    np.testing.assert_array_equal(a.sum(1), np.repeat(one_hot.sum(1), 3, 0))
    assert not np.array_equal(a[0], a[1])


def test_insert_centres_the_motif_and_refuses_what_does_not_fit():
    bg = np.zeros((2, 40, 4), np.float32)
    out = insilico.insert(bg, 'ACGTA', 20)
    assert sequence.decode_one_hot(out[0, 18:23]) == 'ACGTA'
    assert out[:, :18].sum() == 0 and bg.sum() == 0
    with pytest.raises(insilico.InSilicoError, match='does not fit'):
        insilico.insert(bg, 'ACGTA', 39)


def test_interaction_range_finds_the_boosted_distances():
    d = np.arange(10, 101)
    pair = np.where((d >= 20) & (d <= 40), 2.0, 1.0)[:, None] * 30.0
    spacing = insilico.Spacing(
        d, pair, np.array([10.0]), np.full((len(d), 1), 20.0), np.array([5.0])
    )
    r = insilico.interaction_range(spacing)
    assert r['range'] == [20, 40] and r['sign'] == 1
    assert r['peak_ratio'] == pytest.approx(2.0) and r['baseline_ratio'] == pytest.approx(1.0)
    competitive = insilico.Spacing(
        d,
        pair[::-1] * 0 + np.where(d < 30, 10.0, 30.0)[:, None],
        np.array([10.0]),
        np.full((len(d), 1), 20.0),
        np.array([5.0]),
    )
    r = insilico.interaction_range(competitive)
    assert r['sign'] == -1 and r['range'] == [10, 29]


def test_core_stops_at_a_long_gap_but_spans_short_ones():
    weak, strong = np.full((1, 4), 0.001), sequence.one_hot('A').astype(float)
    # strong x5, gap 2, strong x3, gap 8, a partner's edge x4 at 40% of the peak
    cwm = np.concatenate(
        [weak, *[strong] * 5, weak, weak, *[strong] * 3, *[weak] * 8, *[strong * 0.4] * 4]
    )
    p = _pattern(cwm)
    assert p.core() == (1, 11)
    assert p.core(threshold=0.5) == (1, 11)


def test_interaction_range_prefers_a_sustained_run_to_a_spike():
    d = np.arange(13, 101)
    ratio = np.full(len(d), 1.1)
    ratio[d <= 15] = 1.03  # the motifs nearly touching: a deeper but short dip
    ratio[(d >= 20) & (d <= 40)] = 1.15
    spacing = insilico.Spacing(
        d, ratio[:, None] * 10.0, np.array([4.0]), np.full((len(d), 1), 6.0), np.array([1.0])
    )
    r = insilico.interaction_range(spacing)
    assert r['range'] == [20, 40] and r['sign'] == 1


def test_command_flag_defaults_are_the_library_defaults():
    """The mains' flag defaults, read from their source (importing them would define flags in
    this process), equal the defaults of the library functions they call."""
    import ast
    import inspect

    from bpnet_tfx.motifs import chain, discovery, instances

    def flag_defaults(module: str) -> dict:
        """Its DEFINEs' defaults, with those of the shared flag modules whose `define` it calls
        (as flags_test.defined_flags reads them)."""
        path = os.path.join(os.path.dirname(instances.__file__), 'commands', module)
        calls = [c for c in ast.walk(ast.parse(open(path).read())) if isinstance(c, ast.Call)]
        out = {
            call.args[0].value: call.args[1].value
            for call in calls
            if getattr(call.func, 'attr', '').startswith('DEFINE')
            and len(call.args) > 1
            and isinstance(call.args[1], ast.Constant)
        }
        for call in calls:
            if getattr(call.func, 'attr', '') == 'define' and isinstance(call.func.value, ast.Name):
                out.update(flag_defaults(f'{call.func.value.id}.py'))
        return out

    def defaults(fn) -> dict:
        return {k: p.default for k, p in inspect.signature(fn).parameters.items()}

    for module, fn, names in (
        ('scan.py', instances.scan, ('match_percentile', 'contrib_percentile', 'min_seqlet_match')),
        ('discover.py', discovery.discover, ('window', 'max_seqlets')),
        (
            'pipeline.py',
            chain.PipelineOptions,
            ('window', 'max_seqlets', 'match_percentile', 'contrib_percentile', 'min_seqlet_match')
            + ('method', 'num_shuffles', 'steps', 'batch_size', 'seed', 'top', 'num_backgrounds'),
        ),
    ):
        flags, lib = flag_defaults(module), defaults(fn)
        for name in names:
            assert flags[name] == lib[name], (module, name)
