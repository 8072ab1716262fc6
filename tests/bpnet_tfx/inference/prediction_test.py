"""Tests of prediction: one region (plot, TSV, centring, tiling), bigWig tracks, one-line errors."""

import os

import numpy as np
import pandas as pd
import pyBigWig
import pytest

from bpnet_tfx.common import errors
from bpnet_tfx.genome import sequence
from bpnet_tfx.inference import export, prediction, tracks
from bpnet_tfx.records import schema
from tests.fixtures.exactness import assert_same_in_any_batch
from tests.fixtures.genomes import random_bases, write_fasta
from tests.fixtures.mains import run_main_cases


def test_predict_region_plot_and_numbers(tiny_export, genome, tmp_path):
    export_dir, model, _, _ = tiny_export
    fasta, seq, pos, neg = genome.fasta, genome.seq, genome.pos_bigwig, genome.neg_bigwig
    png = str(tmp_path / 'out' / 'plot.png')
    result = prediction.predict_region(
        export_dir, 'chrT:400-600', fasta=fasta, pos_bigwig=pos, neg_bigwig=neg, output_png=png
    )
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


def test_single_task_bigwig_path_may_contain_a_comma(tiny_export, genome, tmp_path):
    # Only several tasks make --pos_bigwig a comma-separated list; one task's is one path.
    import shutil

    export_dir = tiny_export[0]
    fasta, neg = genome.fasta, genome.neg_bigwig
    odd = str(tmp_path / 'plus,strand.bw')
    shutil.copy(neg, odd)  # the minus track's values, to tell the files apart
    result = prediction.predict_region(
        export_dir,
        'chrT:400-600',
        fasta=fasta,
        pos_bigwig=odd,
        neg_bigwig=neg,
        output_png=str(tmp_path / 'p.png'),
    )
    table = pd.read_csv(result['tsv'], sep='\t')
    np.testing.assert_array_equal(table['obs_counts_plus'], 2 * (np.arange(400, 600) % 7))


def test_other_lengths_are_centred(tiny_export, genome, tmp_path):
    export_dir = tiny_export[0]
    fasta, pos, neg = genome.fasta, genome.pos_bigwig, genome.neg_bigwig
    result = prediction.predict_region(
        export_dir,
        'chrT:450-551',
        fasta=fasta,
        pos_bigwig=pos,
        neg_bigwig=neg,
        output_png=str(tmp_path / 'p.png'),
    )
    assert result['region'] == 'chrT:400-600'
    assert 'centred window chrT:400-600' in result['note']


@pytest.mark.parametrize(
    'region, message',
    [
        ('chrT-400-600', 'malformed region'),
        ('chrT:600-400', 'start must be below end'),
        ('chrT:900-1100', 'runs past the end'),
        ('chrX:400-600', "chromosome 'chrX' not in the FASTA"),
    ],
)
def test_bad_regions_are_one_line_errors(tiny_export, genome, tmp_path, region, message):
    fasta, pos, neg = genome.fasta, genome.pos_bigwig, genome.neg_bigwig
    with pytest.raises(errors.BpnetError, match=message):
        prediction.predict_region(
            tiny_export[0],
            region,
            fasta=fasta,
            pos_bigwig=pos,
            neg_bigwig=neg,
            output_png=str(tmp_path / 'p.png'),
        )


def _keras_counts(model, one_hot: np.ndarray) -> np.ndarray:
    """Per-base predicted counts (windows, L, 2) of the Keras model: softmax x expm1."""
    out = model(one_hot.astype(np.float32), training=False)
    logits = out['profile'].numpy().astype(np.float64)
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    return probs * np.expm1(out['log_counts'].numpy().astype(np.float64))[:, None, :]


def test_long_region_is_tiled_and_stitched(tiny_export, genome, tmp_path):
    export_dir, model, _, _ = tiny_export
    fasta, seq, pos, neg = genome.fasta, genome.seq, genome.pos_bigwig, genome.neg_bigwig
    png = str(tmp_path / 'tiled.png')
    result = prediction.predict_region(
        export_dir, 'chrT:300-750', fasta=fasta, pos_bigwig=pos, neg_bigwig=neg, output_png=png
    )
    # 450 bp with 200-bp windows: 300-500, 500-700 and the last flush with the end, 550-750.
    assert result['mode'] == 'tiled' and result['region'] == 'chrT:300-750'
    assert result['windows'] == ['chrT:300-500', 'chrT:500-700', 'chrT:550-750']
    assert 'tiled with 3 windows of 200 bp' in result['note']
    import matplotlib.image

    img = matplotlib.image.imread(png)
    assert img.shape[:2] == (400, 1200) and img[..., :3].std() > 0.05
    table = pd.read_csv(result['tsv'], sep='\t')
    assert len(table) == 450 and table['start'].iloc[0] == 300 and table['start'].iloc[-1] == 749
    windows = _keras_counts(
        model, np.stack([sequence.one_hot(seq[s : s + 200]) for s in (300, 500, 550)])
    )
    want = np.concatenate(
        [windows[0], windows[1][:50], (windows[1][50:] + windows[2][:150]) / 2, windows[2][150:]]
    )
    np.testing.assert_allclose(
        table[['pred_counts_plus', 'pred_counts_minus']], want, rtol=1e-4, atol=1e-6
    )
    np.testing.assert_allclose(table[['pred_prob_plus', 'pred_prob_minus']].sum(), 1.0, rtol=1e-4)
    np.testing.assert_array_equal(table['obs_counts_plus'], np.arange(300, 750) % 7)


def _export(tmp_path, name, config, **info_kwargs):
    """Exports an untrained model of `config`; returns (path, keras model)."""
    import keras

    from bpnet_tfx.inference import export
    from bpnet_tfx.modeling import model as model_lib

    keras.utils.set_random_seed(0)
    model = model_lib.build_bpnet(config)
    info = schema.RecordsInfo(
        sequence_length=config.sequence_length,
        output_length=config.output_length,
        max_jitter=0,
        **info_kwargs,
    )
    return export.export_saved_model(model, info, config, str(tmp_path / name)), model


def _softmax(logits, axis):
    e = np.exp(logits - logits.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def test_multi_task_plot_has_a_row_per_task(genome, tmp_path):
    import matplotlib.image

    from bpnet_tfx.modeling import config as config_lib

    fasta, seq, pos, neg = genome.fasta, genome.seq, genome.pos_bigwig, genome.neg_bigwig
    # Task b's observed strands are swapped; task c has no observed tracks.
    path, model = _export(
        tmp_path,
        'export',
        config_lib.ModelConfig(sequence_length=200, num_tasks=3, filters=8, num_dilated_layers=2),
        tasks=('a', 'b', 'c'),
        source={
            'fasta': fasta,
            'tasks': [
                {'name': 'a', 'pos_bigwig': pos, 'neg_bigwig': neg},
                {'name': 'b', 'pos_bigwig': neg, 'neg_bigwig': pos},
                {'name': 'c'},
            ],
        },
    )
    png = str(tmp_path / 'three.png')
    result = prediction.predict_region(path, 'chrT:400-600', output_png=png)
    img = matplotlib.image.imread(png)
    assert img.shape[:2] == (3 * 400, 1200)  # 400 pixels a task
    for row in range(3):
        assert img[row * 400 : (row + 1) * 400, :, :3].std() > 0.05  # every row drawn
    assert result['tasks'] == ['a', 'b', 'c'] and np.shape(result['predicted_counts']) == (3, 2)
    table = pd.read_csv(result['tsv'], sep='\t')
    assert 'c.pred_prob_plus' in table and 'c.obs_counts_plus' not in table
    np.testing.assert_array_equal(table['b.obs_counts_plus'], 2 * (np.arange(400, 600) % 7))
    np.testing.assert_array_equal(table['a.obs_counts_minus'], 2 * (np.arange(400, 600) % 7))
    out = model(sequence.one_hot(seq[400:600])[None].astype(np.float32), training=False)
    probs = _softmax(out['profile'].numpy()[0], 0)  # (200, tasks, strands)
    for t, task in enumerate('abc'):
        np.testing.assert_allclose(
            table[[f'{task}.pred_prob_plus', f'{task}.pred_prob_minus']], probs[:, t], rtol=1e-4
        )
    np.testing.assert_allclose(
        result['predicted_counts'], np.expm1(out['log_counts'].numpy()[0]), rtol=1e-4
    )
    assert result['observed_counts'][2] is None
    # Observed bigWigs given on the command line: one per task.
    with pytest.raises(
        errors.BpnetError, match='--pos_bigwig names 2 files but the model has 3 tasks'
    ):
        prediction.predict_region(path, 'chrT:400-600', pos_bigwig=f'{pos},{neg}', output_png=png)
    result = prediction.predict_region(
        path,
        'chrT:400-600',
        pos_bigwig=f'{pos},{pos},{pos}',
        neg_bigwig=f'{neg},{neg},{neg}',
        output_png=png,
    )
    table = pd.read_csv(result['tsv'], sep='\t')
    np.testing.assert_array_equal(table['c.obs_counts_plus'], np.arange(400, 600) % 7)


def test_unstranded_plot_compares_one_strand_with_the_summed_tracks(genome, tmp_path):
    import matplotlib.image

    from bpnet_tfx.modeling import config as config_lib

    fasta, seq, pos, neg = genome.fasta, genome.seq, genome.pos_bigwig, genome.neg_bigwig
    path, model = _export(
        tmp_path,
        'export',
        config_lib.ModelConfig(sequence_length=200, num_strands=1, filters=8, num_dilated_layers=2),
        tasks=('t',),
        strands=('total',),
        source={'fasta': fasta},
    )
    png = str(tmp_path / 'unstranded.png')
    result = prediction.predict_region(
        path, 'chrT:300-750', pos_bigwig=pos, neg_bigwig=neg, output_png=png
    )
    img = matplotlib.image.imread(png)
    assert img.shape[:2] == (400, 1200) and img[..., :3].std() > 0.05
    table = pd.read_csv(result['tsv'], sep='\t')
    assert list(table.columns) == [
        'chrom',
        'start',
        'pred_prob_total',
        'pred_counts_total',
        'obs_counts_total',
    ]
    np.testing.assert_array_equal(table['obs_counts_total'], 3 * (np.arange(300, 750) % 7))
    windows = np.stack([sequence.one_hot(seq[s : s + 200]) for s in (300, 500, 550)])
    out = model(windows.astype(np.float32), training=False)
    counts = _softmax(out['profile'].numpy(), 1) * np.expm1(out['log_counts'].numpy())[:, None]
    want = np.concatenate(
        [counts[0], counts[1][:50], (counts[1][50:] + counts[2][:150]) / 2, counts[2][150:]]
    )[:, 0]
    np.testing.assert_allclose(table['pred_counts_total'], want, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(table['pred_prob_total'].sum(), 1.0, rtol=1e-4)


def test_plot_of_a_wide_input_joint_model(genome, tmp_path):
    """60-bp inputs -> 20-bp outputs, one softmax over length x strands, two tasks: a 40-bp
    region is two output windows, each predicted from the 60 bp around it (N before 0)."""
    from bpnet_tfx.modeling import config as config_lib

    fasta, seq = genome.fasta, genome.seq
    path, model = _export(
        tmp_path,
        'export',
        config_lib.ModelConfig(
            sequence_length=60,
            output_length=20,
            num_tasks=2,
            filters=8,
            stem_kernel_size=5,
            num_dilated_layers=2,
            profile_kernel_size=5,
            profile_loss='joint',
        ),
        tasks=('a', 'b'),
        source={'fasta': fasta},
    )
    result = prediction.predict_region(path, 'chrT:5-45', output_png=str(tmp_path / 'w.png'))
    assert result['windows'] == ['chrT:5-25', 'chrT:25-45']
    padded = np.concatenate([np.zeros((15, 4)), sequence.one_hot(seq[:65])])  # bases -15..65
    x = np.stack([padded[w - 20 + 15 : w + 40 + 15] for w in (5, 25)]).astype(np.float32)
    out = model(x, training=False)
    logits = out['profile'].numpy()  # (2 windows, 20, tasks, strands)
    joint = (
        _softmax(logits.transpose(0, 2, 1, 3).reshape(2, 2, 40), -1)
        .reshape(2, 2, 20, 2)
        .transpose(0, 2, 1, 3)
    )
    want = np.concatenate(joint * np.expm1(out['log_counts'].numpy())[:, None])  # (40, 2, 2)
    table = pd.read_csv(result['tsv'], sep='\t')
    for t, task in enumerate('ab'):
        np.testing.assert_allclose(
            table[[f'{task}.pred_counts_plus', f'{task}.pred_counts_minus']],
            want[:, t],
            rtol=1e-4,
            atol=1e-6,
        )


@pytest.fixture
def two_chromosomes(tmp_path):
    """A FASTA with chrT (1000 bp) before chrA (700 bp): FASTA order is not name order."""
    rng = np.random.default_rng(1)
    seqs = {name: random_bases(rng, n) for name, n in (('chrT', 1000), ('chrA', 700))}
    return write_fasta(tmp_path / 'two.fa', seqs, width=None), seqs


def test_bigwig_tracks_round_trip(tiny_export, two_chromosomes, tmp_path, capsys):
    export_dir, model, _, _ = tiny_export
    fasta, seqs = two_chromosomes
    bed = tmp_path / 'regions.bed'
    bed.write_text(
        'track name=test\n'
        'chrT\t100\t150\tpeak1\n'  # centred: 25-225
        'chrA\t650\t690\n'  # centred 570-770, shifted inside: 500-700
        'chrT\t180\t260\n'  # centred 120-320, overlaps the first
        'chrT\t320\t330\n'  # centred 225-425, touches: merged 25-425
        'chrT\t600\t900\n'  # longer than the window: kept, tiled
        'chrA\t10\t20\n'
    )  # centred -85-115, shifted inside: 0-200
    prefix = str(tmp_path / 'tracks' / 'pred')
    result = tracks.predict_tracks(
        export_dir, str(bed), fasta=fasta, output_prefix=prefix, batch_size=3
    )
    assert result['bed_regions'] == 6 and result['merged_regions'] == 4
    assert 'predict: 6/6 windows (100%)' in capsys.readouterr().err  # the progress line
    merged = [('chrT', 25, 425), ('chrT', 600, 900), ('chrA', 0, 200), ('chrA', 500, 700)]
    assert open(result['regions_bed']).read() == ''.join(f'{c}\t{s}\t{e}\n' for c, s, e in merged)
    windows = {
        ('chrT', 25, 425): [25, 225],
        ('chrT', 600, 900): [600, 700],
        ('chrA', 0, 200): [0],
        ('chrA', 500, 700): [500],
    }
    assert result['windows'] == 6
    assert result['tracks'] == {
        'synthetic +': f'{prefix}.synthetic.pos.bw',
        'synthetic -': f'{prefix}.synthetic.neg.bw',
    }
    bws = [pyBigWig.open(result['tracks'][f'synthetic {s}']) for s in '+-']
    try:
        for bw in bws:
            assert list(bw.chroms().items()) == [('chrT', 1000), ('chrA', 700)]
        for (chrom, start, end), starts in windows.items():
            x = np.stack([sequence.one_hot(seqs[chrom][s : s + 200]) for s in starts])
            forward = _keras_counts(model, x)
            # Reverse complement by hand: reversed, A<->T and C<->G; back: reversed, + <-> -.
            rc = _keras_counts(model, x[:, ::-1, ::-1])[:, ::-1, ::-1]
            per_window = (forward + rc) / 2
            total = np.zeros((end - start, 2))
            cover = np.zeros(end - start)
            for s, p in zip(starts, per_window):
                total[s - start : s - start + 200] += p
                cover[s - start : s - start + 200] += 1
            want = total / cover[:, None]
            for strand, bw in enumerate(bws):
                got = np.array(bw.values(chrom, start, end))
                np.testing.assert_allclose(got, want[:, strand], rtol=1e-4, atol=1e-6)
        # Bases outside the merged regions hold no value.
        assert np.isnan(bws[0].values('chrT', 425, 600)).all()
        assert bws[0].intervals('chrT', 0, 25) is None or not bws[0].intervals('chrT', 0, 25)
    finally:
        for bw in bws:
            bw.close()


@pytest.mark.parametrize(
    'line, message',
    [
        ('chrT\t100', r'bad\.bed:3: malformed line: 2 column\(s\), need at least 3'),
        ('chrT\tten\t200', r"bad\.bed:3: start 'ten' is not an integer"),
        ('chrT\t300\t200', r'bad\.bed:3: start 300 > end 200'),
        ('chrX\t100\t200', r"bad\.bed:3: chromosome 'chrX' not in the FASTA"),
        ('chrA\t600\t800', r'bad\.bed:3: region chrA:600-800 runs past the end of chrA'),
    ],
)
def test_bad_bed_lines_name_file_and_line(tiny_export, two_chromosomes, tmp_path, line, message):
    fasta, _ = two_chromosomes
    bed = tmp_path / 'bad.bed'
    bed.write_text(f'# regions\nchrT\t100\t200\n{line}\n')
    with pytest.raises(errors.BpnetError, match=message):
        tracks.predict_tracks(
            tiny_export[0], str(bed), fasta=fasta, output_prefix=str(tmp_path / 'p')
        )


def _export_of_another_length(export_dir, tmp_path) -> str:
    """The export with both metadata files saying 100 bp; its SavedModel still takes 200."""
    import json
    import shutil

    broken = str(tmp_path / 'broken_export')
    shutil.copytree(export_dir, broken)
    for name in ('model_config.json', 'metadata.json'):
        path = os.path.join(broken, name)
        d = json.load(open(path))
        d['sequence_length'] = d['output_length'] = 100
        json.dump(d, open(path, 'w'))
    return broken


def test_savedmodel_of_another_length_is_refused(tiny_export, genome, tmp_path):
    fasta, pos, neg = genome.fasta, genome.pos_bigwig, genome.neg_bigwig
    broken = _export_of_another_length(tiny_export[0], tmp_path)
    with pytest.raises(schema.SchemaError, match='export metadata inconsistent'):
        prediction.predict_region(
            broken,
            'chrT:400-500',
            fasta=fasta,
            pos_bigwig=pos,
            neg_bigwig=neg,
            output_png=str(tmp_path / 'p.png'),
        )


@pytest.mark.slow  # runs the predict command in a subprocess
def test_cli_errors_exit_2_without_traceback(tiny_export, genome, tmp_path):
    bed = tmp_path / 'r.bed'
    bed.write_text('chrT\t100\t200\nchrT 5\n')
    cases = {
        'predict: error: malformed region': [
            f'--saved_model={tiny_export[0]}',
            '--region=chrT:bad',
            f'--output_png={tmp_path / "p.png"}',
        ],
        f'predict: error: {bed}:2: malformed line: 2 column(s)': [
            f'--saved_model={tiny_export[0]}',
            f'--regions_bed={bed}',
            f'--output_prefix={tmp_path / "t"}',
        ],
        'export metadata inconsistent': [
            f'--saved_model={_export_of_another_length(tiny_export[0], tmp_path)}',
            '--region=chrT:400-500',
            f'--output_png={tmp_path / "p.png"}',
        ],
    }
    procs = run_main_cases(
        'bpnet_tfx.predict', [[f'--fasta={genome.fasta}', *args] for args in cases.values()]
    )
    for want, proc in zip(cases, procs):
        assert proc.returncode == 2, (want, proc.stderr[-2000:])
        assert want in proc.stderr
        assert 'Traceback' not in proc.stderr, want
        errors = [line for line in proc.stderr.splitlines() if 'predict: error:' in line]
        assert len(errors) == 1, proc.stderr
    assert not (tmp_path / 'p.png').exists() and not list(tmp_path.glob('t*'))


def test_model_with_controls_reads_control_bigwigs_or_refuses(genome, tmp_path):
    import keras

    from bpnet_tfx.inference import export
    from bpnet_tfx.modeling import config as config_lib
    from bpnet_tfx.modeling import model as model_lib
    from bpnet_tfx.records import schema

    fasta, seq, pos, neg = genome.fasta, genome.seq, genome.pos_bigwig, genome.neg_bigwig
    keras.utils.set_random_seed(0)
    config = config_lib.ModelConfig(
        sequence_length=200, filters=8, num_dilated_layers=2, use_control=True
    )
    model = model_lib.build_bpnet(config)
    info = schema.RecordsInfo(
        sequence_length=200, max_jitter=0, tasks=('t',), has_control=True, source={'fasta': fasta}
    )
    path = export.export_saved_model(model, info, config, str(tmp_path / 'export'))
    with pytest.raises(errors.BpnetError, match='--control_pos_bigwig'):
        prediction.predict_region(
            path, 'chrT:400-600', pos_bigwig=pos, neg_bigwig=neg, output_png=str(tmp_path / 'a.png')
        )
    # The observed tracks double as control here; the prediction must use them.
    result = prediction.predict_region(
        path,
        'chrT:400-600',
        pos_bigwig=pos,
        neg_bigwig=neg,
        control_pos_bigwig=pos,
        control_neg_bigwig=neg,
        output_png=str(tmp_path / 'b.png'),
    )
    control = np.stack([np.arange(400, 600) % 7, 2 * (np.arange(400, 600) % 7)], -1)
    out = model(
        {
            'one_hot': sequence.one_hot(seq[400:600])[None].astype(np.float32),
            'control': control[None, :, None, :].astype(np.float32),
        }
    )
    np.testing.assert_allclose(
        result['predicted_counts'][0], np.expm1(out['log_counts'].numpy()[0]), rtol=1e-4
    )
    # bigWig tracks read the controls too, reverse-complemented with the sequence.
    bed = tmp_path / 'r.bed'
    bed.write_text('chrT\t400\t600\n')
    with pytest.raises(errors.BpnetError, match='--control_pos_bigwig'):
        tracks.predict_tracks(path, str(bed), fasta=fasta, output_prefix=str(tmp_path / 'x'))
    written = tracks.predict_tracks(
        path,
        str(bed),
        fasta=fasta,
        output_prefix=str(tmp_path / 'tr'),
        control_pos_bigwig=pos,
        control_neg_bigwig=neg,
    )
    x = sequence.one_hot(seq[400:600])[None].astype(np.float32)
    c = control[None, :, None, :].astype(np.float32)
    x_rc, c_rc = sequence.reverse_complement(x, c)

    def counts(one_hot, ctrl):
        o = model({'one_hot': one_hot, 'control': np.ascontiguousarray(ctrl)})
        logits = o['profile'].numpy()[0]
        p = np.exp(logits - logits.max(0)) / np.exp(logits - logits.max(0)).sum(0)
        return p * np.expm1(o['log_counts'].numpy()[0])

    forward = counts(x, c)
    back = counts(np.ascontiguousarray(x_rc), c_rc)[::-1, ::-1]
    expected = 0.5 * (forward + back)
    import pyBigWig

    for s, key in enumerate(('t +', 't -')):
        bw = pyBigWig.open(written['tracks'][key])
        np.testing.assert_allclose(
            bw.values('chrT', 400, 600, numpy=True), expected[:, s], rtol=1e-4, atol=1e-6
        )
        bw.close()
    # Contribution scores take the control as a second input of the same shape.
    from bpnet_tfx.attribution import scorer as attribution

    assert attribution.Scorer(path).control_shape == (200, 1, 2)


def test_tracks_of_a_wide_input_model_read_past_the_output_and_pad_chromosome_ends(
    genome, tmp_path
):
    import keras
    import pyBigWig

    from bpnet_tfx.inference import export
    from bpnet_tfx.modeling import config as config_lib
    from bpnet_tfx.modeling import model as model_lib
    from bpnet_tfx.records import schema

    fasta, seq = genome.fasta, genome.seq
    keras.utils.set_random_seed(0)
    # 60-bp input -> 20-bp output: each output window sees 20 bp more on each side.
    config = config_lib.ModelConfig(
        sequence_length=60,
        output_length=20,
        filters=8,
        stem_kernel_size=5,
        num_dilated_layers=2,
        profile_kernel_size=5,
        profile_loss='joint',
    )
    model = model_lib.build_bpnet(config)
    info = schema.RecordsInfo(
        sequence_length=60, output_length=20, max_jitter=0, tasks=('t',), source={'fasta': fasta}
    )
    path = export.export_saved_model(model, info, config, str(tmp_path / 'export'))
    bed = tmp_path / 'r.bed'
    bed.write_text('chrT\t5\t45\n')  # two output windows: 5-25 and 25-45
    written = tracks.predict_tracks(
        path, str(bed), fasta=fasta, output_prefix=str(tmp_path / 'tr'), reverse_complement=False
    )
    assert written['windows'] == 2 and written['bases'] == 40
    padded = np.concatenate([np.zeros((15, 4)), sequence.one_hot(seq[:65])])  # bases -15..65
    expected = []
    for w in (5, 25):
        x = padded[w - 20 + 15 : w + 40 + 15][None].astype(np.float32)
        out = model(x)
        logits = out['profile'].numpy()[0]  # (20, 2), one softmax over 40 values
        joint = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
        expected.append(joint * np.expm1(out['log_counts'].numpy()[0, 0]))
    expected = np.concatenate(expected)
    for s, key in enumerate(('t +', 't -')):
        bw = pyBigWig.open(written['tracks'][key])
        np.testing.assert_allclose(
            bw.values('chrT', 5, 45, numpy=True), expected[:, s], rtol=1e-4, atol=1e-6
        )
        bw.close()


def test_with_task_axis_restores_the_axis_single_task_exports_drop():
    one = {
        'profile_logits': np.zeros((2, 5, 2)),
        'profile_probs': np.zeros((2, 5, 2)),
        'log_counts': np.zeros((2, 2)),
        'counts': np.zeros((2, 2)),
    }
    out = export.with_task_axis(one, 1)
    assert {k: v.shape for k, v in out.items()} == {
        'profile_logits': (2, 5, 1, 2),
        'profile_probs': (2, 5, 1, 2),
        'log_counts': (2, 1, 2),
        'counts': (2, 1, 2),
    }  # No log_total_counts: not invented.
    assert one['log_counts'].shape == (2, 2)  # The input is left alone.
    three = {'profile_logits': np.zeros((2, 5, 3, 2)), 'log_counts': np.zeros((2, 3, 2))}
    assert {k: v.shape for k, v in export.with_task_axis(three, 3).items()} == {
        'profile_logits': (2, 5, 3, 2),
        'log_counts': (2, 3, 2),
    }


# Tracks: independent of batch size and BED order, equal to direct SavedModel calls.

CHROM_SIZES = {'chrA': 3000, 'chrB': 900}


@pytest.fixture(scope='module')
def long_genome(tmp_path_factory):
    rng = np.random.default_rng(3)
    folder = tmp_path_factory.mktemp('genome')
    seqs = {c: random_bases(rng, n) for c, n in CHROM_SIZES.items()}
    return write_fasta(folder / 'genome.fa', seqs, width=None), seqs


def _untrained_export(folder, sequence_length, output_length):
    import keras

    from bpnet_tfx.inference import export
    from bpnet_tfx.modeling import config as config_lib
    from bpnet_tfx.modeling import model as model_lib

    keras.utils.set_random_seed(1)
    config = config_lib.ModelConfig(
        sequence_length=sequence_length,
        output_length=output_length,
        filters=8,
        stem_kernel_size=5,
        num_dilated_layers=2,
        profile_kernel_size=5,
    )
    model = model_lib.build_bpnet(config)
    info = schema.RecordsInfo(
        sequence_length=sequence_length, output_length=output_length, max_jitter=0, tasks=('t',)
    )
    return export.export_saved_model(model, info, config, str(folder / 'export'))


@pytest.fixture(scope='module', params=[(200, 200), (260, 200)], ids=['200to200', '260to200'])
def export_dir(request, tmp_path_factory):
    return _untrained_export(tmp_path_factory.mktemp('model'), *request.param)


# Regions of one tile and of several tiles; peaks closer than one window merge into one region.
BED_LINES = [
    'chrA\t100\t150',
    'chrA\t180\t260',
    'chrA\t900\t1650',
    'chrA\t2400\t2990',
    'chrB\t10\t20',
    'chrB\t400\t880',
    'chrA\t1700\t1710',
]


def _tracks(export_dir, fasta, folder, lines, batch_size):
    bed = folder / f'regions_{batch_size}.bed'
    bed.write_text(''.join(line + '\n' for line in lines))
    prefix = str(folder / f'b{batch_size}' / 'pred')
    result = tracks.predict_tracks(
        export_dir, str(bed), fasta=fasta, output_prefix=prefix, batch_size=batch_size
    )
    values = {}
    merged = [line.split('\t') for line in open(result['regions_bed']).read().splitlines()]
    for key, path in sorted(result['tracks'].items()):
        bw = pyBigWig.open(path)
        values[key] = {
            (c, int(s), int(e)): bw.values(c, int(s), int(e), numpy=True) for c, s, e in merged
        }
        bw.close()
    return result, values


def _direct(export_dir, seqs, chrom, start, length, input_length):
    """A window's per-base predicted counts by calling the SavedModel: forward and reverse
    complement averaged, input padded with N past chromosome ends."""
    import tensorflow as tf

    loaded = tf.saved_model.load(export_dir)
    serve = loaded.signatures['serving_default']
    margin = (input_length - length) // 2
    seq = seqs[chrom]
    padded = 'N' * margin + seq + 'N' * margin
    x = sequence.one_hot(padded[start : start + input_length])[None].astype(np.float32)
    out = serve(one_hot=tf.constant(x))
    forward = (out['profile_probs'] * out['counts'][:, None]).numpy()[0]
    rc_out = serve(one_hot=tf.constant(np.ascontiguousarray(x[:, ::-1, ::-1])))
    rc = (rc_out['profile_probs'] * rc_out['counts'][:, None]).numpy()[0][::-1, ::-1]
    return (forward + rc) / 2


def test_tracks_do_not_depend_on_batch_size_and_equal_direct_calls(
    export_dir, long_genome, tmp_path
):
    fasta, seqs = long_genome
    _, config = export.load_export_info(export_dir)
    length, input_length = config.output_length, config.sequence_length
    runs = {b: _tracks(export_dir, fasta, tmp_path, BED_LINES, b) for b in (1, 3, 64)}
    result, one = runs[1]
    assert result['windows'] > result['merged_regions'] > 1  # several tiles per region
    for b in (3, 64):  # the same bits on TensorFlow's own CPU kernels (docs/inference.md)
        for key in one:
            for region, values in one[key].items():
                assert_same_in_any_batch(
                    runs[b][1][key][region], values, err_msg=f'batch {b} {key} {region}'
                )
    # Every written window equals a direct SavedModel call on that window.
    for (chrom, start, end), plus in one['t +'].items():
        minus = one['t -'][chrom, start, end]
        starts = prediction.tile_windows(start, end, length)
        total = np.zeros((end - start, 2))
        cover = np.zeros(end - start)
        for w in starts:
            total[w - start : w - start + length] += _direct(
                export_dir, seqs, chrom, w, length, input_length
            )
            cover[w - start : w - start + length] += 1
        want = total / cover[:, None]
        np.testing.assert_allclose(plus, want[:, 0], rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(minus, want[:, 1], rtol=1e-4, atol=1e-6)


def test_tracks_do_not_depend_on_bed_order(export_dir, long_genome, tmp_path):
    fasta, _ = long_genome
    _, forward = _tracks(export_dir, fasta, tmp_path, BED_LINES, 3)
    shuffled = [BED_LINES[i] for i in np.random.default_rng(0).permutation(len(BED_LINES))]
    (tmp_path / 'shuffled').mkdir()
    _, backward = _tracks(export_dir, fasta, tmp_path / 'shuffled', shuffled, 3)
    assert forward.keys() == backward.keys()
    for key in forward:
        assert forward[key].keys() == backward[key].keys()
        for region in forward[key]:
            np.testing.assert_array_equal(forward[key][region], backward[key][region])


def test_default_observed_tracks_of_another_genome_name_their_origin(genome, tmp_path):
    """A FASTA whose chromosome the records' bigWigs lack: the error says the bigWigs are the
    metadata's defaults and how to turn them off; --noobserved then plots predictions only."""
    from bpnet_tfx.modeling import config as config_lib

    seq, pos, neg = genome.seq, genome.pos_bigwig, genome.neg_bigwig
    other = write_fasta(tmp_path / 'other.fa', {'chrZ': seq}, width=None)
    path, _ = _export(
        tmp_path,
        'export',
        config_lib.ModelConfig(sequence_length=200, filters=8, num_dilated_layers=2),
        tasks=('t',),
        source={'fasta': str(other), 'pos_bigwig': pos, 'neg_bigwig': neg},
    )
    with pytest.raises(
        errors.BpnetError,
        match=r"chromosome 'chrZ' not in the bigWig \(the default from the "
        r"records' metadata in .*metadata.json; give --pos_bigwig/"
        r'--neg_bigwig for this genome, or --noobserved',
    ):
        prediction.predict_region(path, 'chrZ:400-600', output_png=str(tmp_path / 'a.png'))
    result = prediction.predict_region(
        path, 'chrZ:400-600', observed=False, output_png=str(tmp_path / 'b.png')
    )
    assert result['observed_counts'] is None
    assert 'obs_counts_plus' not in pd.read_csv(result['tsv'], sep='\t')


def test_failed_tracks_leave_no_bigwig(tiny_export, genome, tmp_path):
    """A model with controls whose control bigWig lacks the chromosome fails mid-run: no
    track, finished or half-written, is left under the prefix."""
    fasta = genome.fasta
    bed = tmp_path / 'r.bed'
    bed.write_text('chrT\t100\t300\n')
    prefix = tmp_path / 'out' / 'pred'
    (tmp_path / 'out').mkdir()
    import unittest.mock

    with unittest.mock.patch.object(tracks, '_open_region', side_effect=errors.BpnetError('boom')):
        with pytest.raises(errors.BpnetError, match='boom'):
            tracks.predict_tracks(tiny_export[0], str(bed), fasta=fasta, output_prefix=str(prefix))
    assert os.listdir(tmp_path / 'out') == []
