"""Tests of the contrib job: windows from BED lines and records, overlap averaging, the output
folder, control tracks from records or bigWigs, and invariance: a window's scores depend on
neither the batch size nor its place in the input."""

import os

import numpy as np
import pyBigWig
import pytest

from bpnet_tfx.attribution import (
    contributions,
    shuffle,
)
from bpnet_tfx.attribution import (
    output as contrib_output,
)
from bpnet_tfx.attribution import (
    scorer as attribution,
)
from bpnet_tfx.common import errors
from tests.fixtures.control_models import CONTROL_STARTS, wide_joint_control_model, window_controls
from tests.fixtures.exactness import assert_same_in_any_batch
from tests.fixtures.genomes import write_fasta


def _window_rngs(windows, seed=0):
    """The generators of the windows' references: keyed by 'chrom:start-end'."""
    return [shuffle.keyed_rng(seed, f'{w.chrom}:{w.start}-{w.end}') for w in windows]


def test_overlapping_windows_are_averaged_once_per_base():
    W = contributions.Window
    windows = [
        W('b', 10, 14, 'w0'),
        W('a', 0, 4, 'w1'),
        W('b', 12, 16, 'w2'),
        W('b', 16, 20, 'w3'),
        W('b', 30, 34, 'w4'),
    ]
    values = np.array([[1, 1, 1, 1], [5, 5, 5, 5], [3, 3, 3, 3], [7, 7, 7, 7], [2, 2, 2, 2]], float)
    runs = list(contrib_output.average_overlaps(windows, values, ['a', 'b']))
    # Windows that touch (b:12-16, b:16-20) share a run, as prediction.merge_regions merges
    # them; each base still has the mean of the windows covering it. A gap starts a new run.
    assert [(c, s, v.tolist()) for c, s, v in runs] == [
        ('a', 0, [5, 5, 5, 5]),
        ('b', 10, [1, 1, 2, 2, 3, 3, 7, 7, 7, 7]),
        ('b', 30, [2, 2, 2, 2]),
    ]
    order = [3, 0, 4, 2, 1]  # the input order does not matter
    again = list(
        contrib_output.average_overlaps([windows[i] for i in order], values[order], ['a', 'b'])
    )
    assert [(c, s, v.tolist()) for c, s, v in again] == [(c, s, v.tolist()) for c, s, v in runs]


SIZES = {'chrA': 1000, 'chrB': 150}


@pytest.mark.parametrize(
    'line,expected',
    [
        ('chrA\t500\t501', ('chrA', 400, 600)),  # a summit: centred
        ('chrA\t100\t900\tpeak7', ('chrA', 400, 600)),  # longer: resized around its centre
        ('chrA\t0\t20', ('chrA', 0, 200)),  # would start before 0: shifted inside
        ('chrA\t990\t1000', ('chrA', 800, 1000)),  # would run past the end: shifted inside
    ],
)
def test_bed_lines_become_centred_model_windows(tmp_path, line, expected):
    bed = tmp_path / 'r.bed'
    bed.write_text('track name=x\n' + line + '\n')
    [window] = contributions.bed_windows(str(bed), SIZES, 200)
    assert (window.chrom, window.start, window.end) == expected
    assert window.name == (
        'peak7' if 'peak7' in line else f'{expected[0]}:{expected[1]}-{expected[2]}'
    )


@pytest.mark.parametrize(
    'line,message',
    [
        ('chrA\t10', r'r.bed:2: malformed line: 2 column\(s\), need at least 3'),
        ('chrA\tten\t20', "r.bed:2: start 'ten' is not an integer"),
        ('chrZ\t10\t20', "r.bed:2: chromosome 'chrZ' not in"),
        ('chrA\t900\t1001', 'r.bed:2: region chrA:900-1001 runs past the end of chrA'),
        ('chrB\t10\t20', 'r.bed:2: chrB is 150 bp, shorter than'),
    ],
)
def test_bad_bed_lines_name_file_and_line(tmp_path, line, message):
    bed = tmp_path / 'r.bed'
    bed.write_text('chrA\t1\t2\n' + line + '\n')
    with pytest.raises(errors.BpnetError, match=message):
        contributions.bed_windows(str(bed), SIZES, 200)


def test_records_to_modisco_inputs_and_tracks(tiny_export, tmp_path):
    export_dir, _, records_dir, info = tiny_export
    out_dir = str(tmp_path / 'contrib')
    result = contributions.compute_contributions(
        export_dir,
        out_dir,
        records_dir=records_dir,
        method='ig',
        num_shuffles=3,
        steps=4,
        batch_size=12,
    )
    assert result['regions'] == 16 and result['targets'] == ['profile', 'counts']
    assert sorted(os.listdir(tmp_path)) == ['contrib', 'export', 'records']  # no temp left
    out = contributions.load_outputs(out_dir)
    import tensorflow as tf

    from bpnet_tfx.records import dataset as data

    batch = next(iter(data.make_eval_dataset(records_dir, info, 'valid', batch_size=16)))
    np.testing.assert_array_equal(out['one_hot'], batch['one_hot'].numpy())
    # Ids in the test records span the stored window (200 bp + 2 x 10 margin): centred.
    ids = [i.decode() for i in batch['region_id'].numpy()]
    assert [w.name for w in out['windows']] == ids
    assert (out['windows'][0].start, out['windows'][0].end) == (10, 210)
    modisco = np.load(os.path.join(out_dir, 'profile', 'shap.npz'))['arr_0']
    assert modisco.shape == (16, 4, 200) and modisco.dtype == np.float32
    assert np.load(os.path.join(out_dir, 'ohe.npz'))['arr_0'].shape == (16, 4, 200)
    # Reference: each window's shuffles come from keyed_rng(seed, 'chrom:start-end').
    x = out['one_hot'][:2].astype(np.float32)
    refs = shuffle.dinuc_shuffle(x, 3, _window_rngs(out['windows'][:2]))
    want = attribution.Scorer(export_dir).integrated_gradients(x, refs, 4)
    np.testing.assert_allclose(out['hyp']['profile'][:2], want[0], rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(out['hyp']['counts'][:2], want[1], rtol=1e-4, atol=1e-7)
    # Tracks: header from the records' chromosomes; values are the observed contributions.
    bw = pyBigWig.open(result['files']['counts.bigwig'])
    assert bw.chroms() == {'chrvalid': 15 * 220 + 210}
    observed = (out['hyp']['counts'] * out['one_hot']).sum(-1)
    for i in (0, 5, 15):
        w = out['windows'][i]
        np.testing.assert_allclose(
            bw.values(w.chrom, w.start, w.end), observed[i], rtol=1e-6, atol=1e-7
        )
    bw.close()
    del tf


def test_deepshap_and_reverse_complement_averaging_from_records(tiny_export, tmp_path):
    """deepshap scores each window against its keyed references; with
    reverse_complement_average the job's scores are the mean of the window's and its reverse
    complement's (against the references' reverse complements), mapped back."""
    from bpnet_tfx.genome import sequence

    export_dir, _, records_dir, _ = tiny_export
    runs = {
        rc: contributions.compute_contributions(
            export_dir,
            str(tmp_path / f'contrib_{rc}'),
            records_dir=records_dir,
            method='deepshap',
            num_shuffles=3,
            batch_size=12,
            max_regions=4,
            reverse_complement_average=rc,
        )
        for rc in (False, True)
    }
    assert runs[True]['reverse_complement_average'] and runs[True]['method'] == 'deepshap'
    plain, averaged = (contributions.load_outputs(runs[rc]['output_dir']) for rc in (False, True))
    assert plain['summary']['steps'] is None and plain['summary']['num_shuffles'] == 3
    assert averaged['summary']['reverse_complement_average']
    x = plain['one_hot'].astype(np.float32)
    refs = shuffle.dinuc_shuffle(x, 3, _window_rngs(plain['windows']))
    scorer = attribution.Scorer(export_dir)
    want = scorer.deepshap(x, refs)
    rc_want = scorer.deepshap(
        np.ascontiguousarray(sequence.reverse_complement(x)), sequence.reverse_complement(refs)
    )
    for t, name in enumerate(('profile', 'counts')):
        np.testing.assert_allclose(plain['hyp'][name], want[t], rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(
            averaged['hyp'][name],
            0.5 * (want[t] + sequence.reverse_complement(rc_want[t])),
            rtol=1e-4,
            atol=1e-6,
        )


def test_existing_output_is_kept_unless_overwrite(tiny_export, tmp_path):
    export_dir, _, records_dir, _ = tiny_export
    out_dir = tmp_path / 'contrib'
    out_dir.mkdir()
    (out_dir / 'keep').write_text('x')
    with pytest.raises(errors.BpnetError, match='exists; pass --overwrite'):
        contributions.compute_contributions(str(export_dir), str(out_dir), records_dir=records_dir)
    result = contributions.compute_contributions(
        str(export_dir),
        str(out_dir),
        records_dir=records_dir,
        method='ism',
        max_regions=2,
        overwrite=True,
    )
    assert result['regions'] == 2 and not (out_dir / 'keep').exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ['contrib', 'export', 'records']


def test_bed_input_fails_before_writing_anything(tiny_export, tmp_path):
    export_dir = tiny_export[0]
    fasta = write_fasta(tmp_path / 'g.fa', {'chrA': 'ACGT' * 100})
    bed = tmp_path / 'r.bed'
    bed.write_text('chrA\t10\t20\nchrA\t390\t401\n')
    with pytest.raises(errors.BpnetError, match='r.bed:2: region chrA:390-401 runs past the end'):
        contributions.compute_contributions(
            export_dir, str(tmp_path / 'out'), regions_bed=str(bed), fasta=str(fasta)
        )
    assert not (tmp_path / 'out').exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith('.out')]
    for kwargs, message in (
        ({'regions_bed': str(bed), 'fasta': str(tmp_path / 'no.fa')}, 'no.fa: no such FASTA'),
        ({'regions_bed': str(tmp_path / 'no.bed')}, 'no.bed: no such BED'),
        ({}, 'exactly one of'),
        ({'records_dir': str(tmp_path), 'method': 'deeplift'}, 'method'),
    ):
        with pytest.raises(errors.BpnetError, match=message):
            contributions.compute_contributions(export_dir, str(tmp_path / 'out'), **kwargs)


def test_corrupt_records_are_one_line_errors(tiny_export, tmp_path):
    export_dir, _, records_dir, _ = tiny_export
    from bpnet_tfx.records import dataset as data

    shard = data.list_shards(records_dir, 'valid')[0]
    blob = open(shard, 'rb').read()
    with open(shard, 'wb') as f:
        f.write(blob[: len(blob) // 2])
    with pytest.raises(errors.BpnetError, match='reading the valid records failed'):
        contributions.compute_contributions(
            export_dir, str(tmp_path / 'out'), records_dir=records_dir, num_shuffles=2, steps=2
        )
    assert not (tmp_path / 'out').exists()


@pytest.mark.slow  # control_model trains
def test_control_model_from_records_and_from_bed_agree(control_model, tmp_path):
    """The records' control feature and the control bigWigs named in the model's metadata
    give the same windows the same control, hence the same scores."""
    export_dir = control_model['export']
    from_records = contributions.compute_contributions(
        export_dir,
        str(tmp_path / 'records_out'),
        records_dir=control_model['records'],
        method='ig',
        num_shuffles=2,
        steps=3,
        batch_size=4,
    )
    assert from_records['regions'] == 6 and from_records['control'] == 'records'
    bed = tmp_path / 'windows.bed'
    bed.write_text(''.join(f'chrA\t{s}\t{s + 200}\tchrA:{s}-{s + 200}\n' for s in CONTROL_STARTS))
    from_bed = contributions.compute_contributions(
        export_dir,
        str(tmp_path / 'bed_out'),
        regions_bed=str(bed),
        method='ig',
        num_shuffles=2,
        steps=3,
        batch_size=4,
    )
    assert from_bed['control'] == [[control_model['control_pos'], control_model['control_neg']]] * 2
    a, b = (contributions.load_outputs(str(tmp_path / d)) for d in ('records_out', 'bed_out'))
    assert [w.name for w in a['windows']] == [w.name for w in b['windows']]
    assert a['summary']['control'] == 'records'
    for name in ('a.profile', 'a.counts', 'b.profile', 'b.counts'):
        np.testing.assert_allclose(a['hyp'][name], b['hyp'][name], rtol=1e-5, atol=1e-7)
    # Both equal the scorer fed the observed control counts.
    x = b['one_hot'][:3].astype(np.float32)
    refs = shuffle.dinuc_shuffle(x, 2, _window_rngs(b['windows'][:3]))
    want = attribution.Scorer(export_dir).integrated_gradients(
        x, refs, 3, window_controls(control_model, CONTROL_STARTS[:3])
    )
    np.testing.assert_allclose(b['hyp']['b.counts'][:3], want[3], rtol=1e-4, atol=1e-7)
    # Control bigWigs given on the command line win over the metadata's.
    swapped = contributions.compute_contributions(
        export_dir,
        str(tmp_path / 'swapped'),
        regions_bed=str(bed),
        num_shuffles=2,
        steps=3,
        control_pos_bigwig=control_model['control_neg'],
        control_neg_bigwig=control_model['control_pos'],
        max_regions=1,
    )
    assert swapped['control'][0] == [control_model['control_neg'], control_model['control_pos']]
    other = contributions.load_outputs(str(tmp_path / 'swapped'))['hyp']['a.profile'][0]
    assert np.abs(other - b['hyp']['a.profile'][0]).max() > 1e-6


@pytest.mark.slow  # control_model trains
def test_control_model_without_its_control_tracks_is_a_one_line_error(control_model, tmp_path):
    import json
    import shutil

    from tests.fixtures.records import write_records

    export_dir = control_model['export']
    bed = tmp_path / 'r.bed'
    bed.write_text('chrA\t100\t300\n')
    # The metadata's control bigWig is gone.
    gone = tmp_path / 'moved.bw'
    shutil.copy(control_model['control_neg'], gone)
    no_control = str(tmp_path / 'export_without_control')
    shutil.copytree(export_dir, no_control)
    meta_path = os.path.join(no_control, 'metadata.json')
    meta = json.load(open(meta_path))
    for task in meta['source']['tasks']:
        task['control_neg_bigwig'] = str(tmp_path / 'deleted.bw')
    json.dump(meta, open(meta_path, 'w'))
    cases = [
        (
            dict(saved_model=no_control, regions_bed=str(bed)),
            'deleted.bw: no such control bigWig; .* trained with control tracks',
        ),
        (dict(saved_model=no_control, regions_bed=str(bed), control_neg_bigwig=str(gone)), None),
        (
            dict(
                saved_model=export_dir,
                regions_bed=str(bed),
                control_pos_bigwig=str(tmp_path / 'typo.bw'),
            ),
            'typo.bw: no such control bigWig',
        ),
        (
            dict(
                saved_model=export_dir,
                records_dir=control_model['records'],
                control_pos_bigwig=control_model['control_pos'],
            ),
            'go with --regions_bed',
        ),
    ]
    plain = str(tmp_path / 'plain_records')
    write_records(plain, split_counts={'valid': 2})
    cases.append(
        (
            dict(saved_model=export_dir, records_dir=plain),
            'trained with control tracks but .*plain_records holds none',
        )
    )
    for kwargs, message in cases:
        out = str(tmp_path / 'out')
        saved_model = kwargs.pop('saved_model')
        if message is None:
            result = contributions.compute_contributions(
                saved_model, out, num_shuffles=2, steps=2, **kwargs
            )
            assert result['control'] == [[control_model['control_pos'], str(gone)]] * 2
            shutil.rmtree(out)
            continue
        with pytest.raises(errors.BpnetError, match=message) as error:
            contributions.compute_contributions(saved_model, out, **kwargs)
        assert '\n' not in str(error.value)
        assert not os.path.exists(out)


@pytest.mark.slow  # exports its own model
def test_wide_input_joint_loss_control_model_from_a_bed(tmp_path):
    """From a BED line: the window 100-160, its control the 20 bp centred in it (120-140)."""
    wide = wide_joint_control_model(tmp_path)
    path, x, ctrl = wide['export'], wide['x'], wide['ctrl']
    scorer = attribution.Scorer(path)
    bed = tmp_path / 'r.bed'
    bed.write_text('chrA\t125\t135\n')
    out = contributions.compute_contributions(
        path, str(tmp_path / 'out'), regions_bed=str(bed), method='ig', num_shuffles=3, steps=5
    )
    result = contributions.load_outputs(out['output_dir'])
    assert (result['windows'][0].start, result['windows'][0].end) == (100, 160)
    want = scorer.integrated_gradients(
        x, shuffle.dinuc_shuffle(x, 3, [shuffle.keyed_rng(0, 'chrA:100-160')]), 5, ctrl
    )
    np.testing.assert_allclose(result['hyp']['b.counts'], want[3], rtol=1e-4, atol=1e-7)


# Invariance: a window's scores depend only on the window (and the seed).

# Overlapping and touching windows on two chromosomes, one shifted inside each end, one
# window named twice.
BED_LINES = [
    ('chrT', 380, 420, 'a'),
    ('chrU', 140, 160, 'b'),
    ('chrT', 450, 470, None),
    ('chrT', 100, 101, None),
    ('chrT', 0, 1000, 'whole'),
    ('chrU', 0, 10, None),
    ('chrT', 990, 1000, None),
    ('chrT', 455, 465, 'again'),
    ('chrT', 200, 201, None),
]


def _bed(path, lines):
    path.write_text(
        ''.join('\t'.join(str(c) for c in line if c is not None) + '\n' for line in lines)
    )
    return str(path)


def _scored(export_dir, out, **kwargs):
    contributions.compute_contributions(export_dir, str(out), num_shuffles=3, steps=3, **kwargs)
    return contributions.load_outputs(str(out))


def _inputs(source, tiny_export, genome, tmp_path):
    if source == 'bed':
        return {'regions_bed': _bed(tmp_path / 'r.bed', BED_LINES), 'fasta': genome.fasta}
    return {'records_dir': tiny_export[2]}


@pytest.mark.slow  # several whole runs
@pytest.mark.parametrize('source', ['bed', 'records'])
@pytest.mark.parametrize('method', ['ig', 'ism', 'deepshap'])
def test_scores_do_not_depend_on_the_batch_size(tiny_export, genome, tmp_path, method, source):
    inputs = _inputs(source, tiny_export, genome, tmp_path)
    # ISM: 3 windows (600 mutants each); 2,000 also groups several windows in a call.
    sizes, limit = ((1, 7, 128), None) if method != 'ism' else ((1, 7, 128, 2000), 3)
    runs = [
        _scored(
            tiny_export[0],
            tmp_path / f'batch{b}',
            method=method,
            batch_size=b,
            max_regions=limit,
            **inputs,
        )
        for b in sizes
    ]
    for run in runs[1:]:  # the same bits on TensorFlow's own CPU kernels (docs/inference.md)
        assert run['windows'] == runs[0]['windows']
        for name, hyp in runs[0]['hyp'].items():
            assert_same_in_any_batch(run['hyp'][name], hyp, atol=1e-5)


def _track(path):
    """{chrom: per-base values} of a bigWig, over every chromosome of its header, in order."""
    bw = pyBigWig.open(str(path))
    try:
        return {c: bw.values(c, 0, n, numpy=True) for c, n in bw.chroms().items()}
    finally:
        bw.close()


@pytest.mark.slow  # several whole runs
def test_a_shuffled_bed_gives_each_window_the_same_scores_and_the_same_tracks(
    tiny_export, genome, tmp_path
):
    order = np.random.default_rng(1).permutation(len(BED_LINES))
    runs = [
        _scored(
            tiny_export[0],
            tmp_path / name,
            batch_size=7,
            fasta=genome.fasta,
            regions_bed=_bed(tmp_path / f'{name}.bed', lines),
        )
        for name, lines in (('original', BED_LINES), ('shuffled', [BED_LINES[i] for i in order]))
    ]
    original, shuffled = runs
    # Rows in the shuffled BED's order; each window's scores as in the original order (to
    # float32 rounding: windows share device calls with other neighbours).
    assert shuffled['windows'] == [original['windows'][i] for i in order]
    np.testing.assert_array_equal(shuffled['one_hot'], original['one_hot'][order])
    for name, hyp in original['hyp'].items():
        np.testing.assert_allclose(shuffled['hyp'][name], hyp[order], rtol=1e-5, atol=1e-6)
        tracks = [_track(tmp_path / run / name / 'contrib.bw') for run in ('original', 'shuffled')]
        assert list(tracks[1]) == list(tracks[0]) == ['chrT', 'chrU']
        for chrom, values in tracks[0].items():
            np.testing.assert_allclose(tracks[1][chrom], values, rtol=1e-5, atol=1e-6)
    # A window named twice (lines 'chrT 450 470' and 'again') is scored alike both times.
    names = [w.name for w in original['windows']]
    twice = [names.index('chrT:360-560'), names.index('again')]
    np.testing.assert_array_equal(
        original['hyp']['profile'][twice[0]], original['hyp']['profile'][twice[1]]
    )


@pytest.mark.slow  # several whole runs
@pytest.mark.parametrize('source', ['bed', 'records'])
def test_max_regions_keeps_the_first_windows_in_input_order(tiny_export, genome, tmp_path, source):
    inputs = _inputs(source, tiny_export, genome, tmp_path)
    full = _scored(tiny_export[0], tmp_path / 'all', batch_size=7, **inputs)
    first = _scored(tiny_export[0], tmp_path / 'first', batch_size=7, max_regions=4, **inputs)
    assert first['windows'] == full['windows'][:4]
    if source == 'bed':
        assert [w.name for w in first['windows']] == ['a', 'b', 'chrT:360-560', 'chrT:0-200']
    for name, hyp in full['hyp'].items():
        np.testing.assert_allclose(first['hyp'][name], hyp[:4], rtol=1e-5, atol=1e-6)


def _folder_equal(one, other):
    """Two contrib folders hold the same rows, arrays, tracks and settings."""
    a, b = contributions.load_outputs(str(one)), contributions.load_outputs(str(other))
    assert a['windows'] == b['windows']
    np.testing.assert_array_equal(a['one_hot'], b['one_hot'])
    for target in a['hyp']:
        np.testing.assert_array_equal(a['hyp'][target], b['hyp'][target])
        np.testing.assert_equal(
            _track(os.path.join(one, target, 'contrib.bw')),
            _track(os.path.join(other, target, 'contrib.bw')),
        )
    assert (one / 'regions.bed').read_bytes() == (other / 'regions.bed').read_bytes()
    drop = ('seconds',)
    assert {k: v for k, v in a['summary'].items() if k not in drop} == {
        k: v for k, v in b['summary'].items() if k not in drop
    }


@pytest.mark.parametrize('source', ['bed', 'records'])
def test_merged_shards_equal_a_one_shot_run(source, tiny_export, genome, tmp_path):
    inputs = _inputs(source, tiny_export, genome, tmp_path)
    settings = dict(num_shuffles=2, batch_size=7, max_regions=5, **inputs)
    whole = tmp_path / 'whole'
    contributions.compute_contributions(tiny_export[0], str(whole), **settings)
    shards = [tmp_path / f'shard{i}' for i in range(3)]
    for i in (2, 0, 1):
        result = contributions.compute_contributions(
            tiny_export[0], str(shards[i]), shard_index=i, num_shards=3, **settings
        )
        assert result['regions'] == len(range(i, 5, 3))  # rows i, i + 3, ...
    merged = tmp_path / 'merged'
    result = contributions.merge_contributions([str(s) for s in shards[::-1]], str(merged))
    assert result['regions'] == 5 and result['shards'] == 3
    _folder_equal(whole, merged)
    with pytest.raises(errors.BpnetError, match='every shard of the run once'):
        contributions.merge_contributions([str(s) for s in shards[:2]], str(tmp_path / 'm2'))
    other = tmp_path / 'other'
    contributions.compute_contributions(
        tiny_export[0], str(other), shard_index=1, num_shards=3, seed=1, **settings
    )
    with pytest.raises(errors.BpnetError, match=r'seed differ'):
        contributions.merge_contributions(
            [str(shards[0]), str(other), str(shards[2])], str(tmp_path / 'm3')
        )
    assert not (tmp_path / 'm2').exists() and not (tmp_path / 'm3').exists()
