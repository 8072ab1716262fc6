"""Tests of contribution scores: the dinucleotide shuffle, IG and ISM against direct
computations, windows from BED lines, overlap averaging, and the output folder."""

import collections
import os

import numpy as np
import pyBigWig
import pytest
from scipy import stats

from bpnet_tfx import attribution, errors, sequence


def _dinucleotides(one_hot):
    tokens = attribution._tokens(one_hot).tolist()
    return collections.Counter(zip(tokens[:-1], tokens[1:]))


def test_dinuc_shuffle_keeps_dinucleotide_counts_including_n():
    rng = np.random.default_rng(0)
    seqs = [''.join(rng.choice(list('ACGT'), 300)) for _ in range(3)]
    seqs[1] = seqs[1][:100] + 'N' * 7 + seqs[1][107:250] + 'nNAn' + seqs[1][254:]
    batch = np.stack([sequence.one_hot(s) for s in seqs])
    out = attribution.dinuc_shuffle(batch, 6, [np.random.default_rng(i) for i in range(3)])
    assert out.shape == (3, 6, 300, 4) and out.dtype == np.uint8
    for x, shuffles in zip(batch, out):
        for y in shuffles:
            assert _dinucleotides(y) == _dinucleotides(x)
            assert attribution._tokens(y)[0] == attribution._tokens(x)[0]
            assert attribution._tokens(y)[-1] == attribution._tokens(x)[-1]
            assert set(y.sum(axis=1).tolist()) <= {0, 1}  # still one-hot (or N)
        assert len({y.tobytes() for y in shuffles}) == 6  # different shuffles
    # The same generators give the same shuffles; one sequence alone gives (K, L, 4).
    again = attribution.dinuc_shuffle(batch[1], 6, np.random.default_rng(1))
    np.testing.assert_array_equal(again, out[1])


def _same_dinucleotide_sequences(seq):
    """Every sequence with `seq`'s first letter and dinucleotide counts (Eulerian trails)."""
    edges = collections.Counter(zip(seq[:-1], seq[1:]))
    found = set()

    def walk(path):
        if len(path) == len(seq):
            found.add(path)
            return
        for (a, b), n in list(edges.items()):
            if a == path[-1] and n:
                edges[a, b] -= 1
                walk(path + b)
                edges[a, b] += 1

    walk(seq[0])
    return sorted(found)


def test_dinuc_shuffle_is_uniform_over_sequences_with_the_same_dinucleotides():
    seq = 'ACAGTACGNATTAC'  # N is a fifth letter
    allowed = _same_dinucleotide_sequences(seq)
    assert len(allowed) == 96
    out = attribution.dinuc_shuffle(sequence.one_hot(seq), 4000, np.random.default_rng(0))
    drawn = collections.Counter(sequence.decode_one_hot(y) for y in out)
    assert set(drawn) <= set(allowed)
    counts = np.array([drawn[s] for s in allowed])
    assert counts.min() > 0
    # Keeping each letter's original last exit (deeplift's dinuc_shuffle) fails this: p ~ 0.
    assert stats.chisquare(counts).pvalue > 1e-3


def _reference_hyp(model, x, refs, steps, head):
    """IG hyp of one window straight from the Keras model, one reference at a time."""
    import tensorflow as tf
    hyp = np.zeros(x.shape)
    for ref in refs:
        alphas = (np.arange(steps) + 0.5) / steps
        points = tf.constant(ref + alphas[:, None, None] * (x - ref), tf.float32)
        with tf.GradientTape() as tape:
            tape.watch(points)
            out = model(points, training=False)
            if head == 'profile':
                logits = out['profile']
                target = tf.reduce_sum(tf.stop_gradient(tf.nn.softmax(logits, axis=1)) * logits)
            else:
                target = tf.reduce_sum(out['log_counts'])
        grad = tape.gradient(target, points).numpy().mean(axis=0)
        hyp += grad - (grad * ref).sum(axis=-1, keepdims=True)
    return hyp / len(refs)


def _windows(n, length, seed=0):
    rng = np.random.default_rng(seed)
    return np.eye(4, dtype=np.float32)[rng.integers(0, 4, (n, length))]


def test_integrated_gradients_match_a_direct_computation(tiny_export):
    export_dir, model, _, info = tiny_export
    scorer = attribution.Scorer(export_dir)
    assert [t.name for t in scorer.targets] == ['profile', 'counts']
    x = _windows(3, info.sequence_length)
    x[1, 50:60] = 0  # an N stretch
    refs = attribution.dinuc_shuffle(x, 4, [np.random.default_rng(i) for i in range(3)])
    hyp = scorer.integrated_gradients(x, refs, 5)
    for t, head in enumerate(('profile', 'counts')):
        assert hyp[t].shape == x.shape
        for i in range(3):
            np.testing.assert_allclose(hyp[t][i], _reference_hyp(model, x[i], refs[i], 5, head),
                                       rtol=1e-4, atol=1e-6)
    assert np.all((hyp[0][1] * x[1]).sum(-1)[50:60] == 0)  # N bases contribute nothing


def test_every_task_of_a_multi_task_model_gets_its_own_targets(tmp_path):
    import keras
    import tensorflow as tf

    from bpnet_tfx import export, schema
    from bpnet_tfx import model as model_lib
    keras.utils.set_random_seed(1)
    config = model_lib.ModelConfig(sequence_length=64, num_tasks=2, filters=4,
                                   num_dilated_layers=1)
    model = model_lib.build_bpnet(config)
    info = schema.RecordsInfo(sequence_length=64, max_jitter=0, tasks=('Oct4', 'Sox 2'))
    path = export.export_saved_model(model, info, config, str(tmp_path / 'export'))
    scorer = attribution.Scorer(path)
    assert [t.name for t in scorer.targets] == ['Oct4.profile', 'Oct4.counts',
                                                'Sox_2.profile', 'Sox_2.counts']
    x = _windows(1, 64)
    refs = attribution.dinuc_shuffle(x, 2, np.random.default_rng(0))
    hyp = scorer.integrated_gradients(x, refs, 3)
    points = tf.constant(refs[0][:, None] + ((np.arange(3) + 0.5) / 3)[:, None, None]
                         * (x[0] - refs[0][:, None]), tf.float32)  # (K, S, L, 4)
    with tf.GradientTape() as tape:
        tape.watch(points)
        logits = model(tf.reshape(points, (-1, 64, 4)))['profile'][:, :, 1]  # task 'Sox 2'
        target = tf.reduce_sum(tf.stop_gradient(tf.nn.softmax(logits, axis=1)) * logits)
    grad = tape.gradient(target, points).numpy().mean(axis=1)
    want = (grad - (grad * refs[0]).sum(-1, keepdims=True)).mean(axis=0)
    np.testing.assert_allclose(hyp[2][0], want, rtol=1e-4, atol=1e-6)


def test_counts_contributions_add_up_to_the_output_difference(tiny_export):
    """Completeness: observed-base contributions sum to mean_k f(x) - f(r_k)."""
    export_dir, model, _, info = tiny_export
    x = _windows(2, info.sequence_length, seed=1)
    refs = attribution.dinuc_shuffle(x, 3, [np.random.default_rng(i) for i in range(2)])
    hyp = attribution.Scorer(export_dir).integrated_gradients(x, refs, 64)[1]
    total = (hyp * x).sum(axis=(1, 2))

    def f(z):
        return model(z.reshape(-1, *x.shape[1:]), training=False)['log_counts'].numpy().sum(-1)

    expected = f(x) - f(refs).reshape(2, 3).mean(axis=1)
    np.testing.assert_allclose(total, expected, rtol=0.02, atol=1e-4)


def test_mutagenesis_matches_single_mutants(tiny_export):
    export_dir, model, _, info = tiny_export
    x = _windows(2, info.sequence_length, seed=2)
    x[0, 7] = 0  # N: all four bases are substitutions
    hyp_profile, hyp_counts = attribution.Scorer(export_dir).mutagenesis(x, batch_size=97)
    np.testing.assert_allclose(hyp_counts.sum(-1), 0, atol=1e-5)  # centred per position

    def outputs(z):
        out = model(z[None], training=False)
        return out['profile'].numpy()[0], out['log_counts'].numpy()[0].sum()

    logits_ref, counts_ref = outputs(x[0])
    weights = np.exp(logits_ref - logits_ref.max(0))
    weights /= weights.sum(0)
    delta_profile, delta_counts = np.zeros((2, 4)), np.zeros((2, 4))
    for j, position in enumerate((7, 120)):
        for b in range(4):
            mutant = x[0].copy()
            mutant[position] = np.eye(4)[b]
            logits, counts = outputs(mutant)
            delta_profile[j, b] = (weights * (logits - logits_ref)).sum()
            delta_counts[j, b] = counts - counts_ref
    for got, delta in ((hyp_profile, delta_profile), (hyp_counts, delta_counts)):
        np.testing.assert_allclose(got[0, [7, 120]], delta - delta.mean(1, keepdims=True),
                                   rtol=1e-3, atol=1e-5)


def test_overlapping_windows_are_averaged_once_per_base():
    W = attribution.Window
    windows = [W('b', 10, 14, 'w0'), W('a', 0, 4, 'w1'), W('b', 12, 16, 'w2'),
               W('b', 16, 20, 'w3')]
    values = np.array([[1, 1, 1, 1], [5, 5, 5, 5], [3, 3, 3, 3], [7, 7, 7, 7]], float)
    runs = attribution.average_overlaps(windows, values, ['a', 'b'])
    assert [(c, s, v.tolist()) for c, s, v in runs] == [
        ('a', 0, [5, 5, 5, 5]), ('b', 10, [1, 1, 2, 2, 3, 3]), ('b', 16, [7, 7, 7, 7])]


SIZES = {'chrA': 1000, 'chrB': 150}


@pytest.mark.parametrize('line,expected', [
    ('chrA\t500\t501', ('chrA', 400, 600)),  # a summit: centred
    ('chrA\t100\t900\tpeak7', ('chrA', 400, 600)),  # longer: resized around its centre
    ('chrA\t0\t20', ('chrA', 0, 200)),  # would start before 0: shifted inside
    ('chrA\t990\t1000', ('chrA', 800, 1000)),  # would run past the end: shifted inside
])
def test_bed_lines_become_centred_model_windows(tmp_path, line, expected):
    bed = tmp_path / 'r.bed'
    bed.write_text('track name=x\n' + line + '\n')
    [window] = attribution.bed_windows(str(bed), SIZES, 200)
    assert (window.chrom, window.start, window.end) == expected
    assert window.name == ('peak7' if 'peak7' in line else f'{expected[0]}:{expected[1]}-'
                           f'{expected[2]}')


@pytest.mark.parametrize('line,message', [
    ('chrA\t10', 'r.bed:2: malformed BED line'),
    ('chrA\tten\t20', 'r.bed:2: malformed BED line'),
    ('chrZ\t10\t20', "r.bed:2: chromosome 'chrZ' not in"),
    ('chrA\t900\t1001', 'r.bed:2: region chrA:900-1001 runs past the end of chrA'),
    ('chrB\t10\t20', 'r.bed:2: chrB is 150 bp, shorter than'),
])
def test_bad_bed_lines_name_file_and_line(tmp_path, line, message):
    bed = tmp_path / 'r.bed'
    bed.write_text('chrA\t1\t2\n' + line + '\n')
    with pytest.raises(errors.BpnetError, match=message):
        attribution.bed_windows(str(bed), SIZES, 200)


def test_records_to_modisco_inputs_and_tracks(tiny_export, tmp_path):
    export_dir, _, records_dir, info = tiny_export
    out_dir = str(tmp_path / 'contrib')
    result = attribution.compute_contributions(export_dir, out_dir, records_dir=records_dir,
                                               num_shuffles=3, steps=4, batch_size=12,
                                               progress_seconds=0)
    assert result['regions'] == 16 and result['targets'] == ['profile', 'counts']
    assert sorted(os.listdir(tmp_path)) == ['contrib', 'export', 'records']  # no temp left
    out = attribution.load_outputs(out_dir)
    import tensorflow as tf

    from bpnet_tfx import data
    batch = next(iter(data.make_eval_dataset(records_dir, info, 'valid', batch_size=16)))
    np.testing.assert_array_equal(out['one_hot'], batch['one_hot'].numpy())
    # Ids in the test records span the stored window (200 bp + 2 x 10 margin): centred.
    ids = [i.decode() for i in batch['region_id'].numpy()]
    assert [w.name for w in out['windows']] == ids
    assert (out['windows'][0].start, out['windows'][0].end) == (10, 210)
    modisco = np.load(os.path.join(out_dir, 'profile', 'shap.npz'))['arr_0']
    assert modisco.shape == (16, 4, 200) and modisco.dtype == np.float32
    assert np.load(os.path.join(out_dir, 'ohe.npz'))['arr_0'].shape == (16, 4, 200)
    # Reference: window i's shuffles come from default_rng([seed, i]) whatever the batching.
    x = out['one_hot'][:2].astype(np.float32)
    refs = attribution.dinuc_shuffle(x, 3, [np.random.default_rng([0, i]) for i in range(2)])
    want = attribution.Scorer(export_dir).integrated_gradients(x, refs, 4)
    np.testing.assert_allclose(out['hyp']['profile'][:2], want[0], rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(out['hyp']['counts'][:2], want[1], rtol=1e-4, atol=1e-7)
    # Tracks: header from the records' chromosomes; values are the observed contributions.
    bw = pyBigWig.open(result['files']['counts.bigwig'])
    assert bw.chroms() == {'chrvalid': 15 * 220 + 210}
    observed = (out['hyp']['counts'] * out['one_hot']).sum(-1)
    for i in (0, 5, 15):
        w = out['windows'][i]
        np.testing.assert_allclose(bw.values(w.chrom, w.start, w.end), observed[i], rtol=1e-6,
                                   atol=1e-7)
    bw.close()
    del tf


def test_existing_output_is_kept_unless_overwrite(tiny_export, tmp_path):
    export_dir, _, records_dir, _ = tiny_export
    out_dir = tmp_path / 'contrib'
    out_dir.mkdir()
    (out_dir / 'keep').write_text('x')
    with pytest.raises(errors.BpnetError, match='exists; pass --overwrite'):
        attribution.compute_contributions(str(export_dir), str(out_dir),
                                          records_dir=records_dir)
    result = attribution.compute_contributions(str(export_dir), str(out_dir),
                                               records_dir=records_dir, method='ism',
                                               max_regions=2, overwrite=True)
    assert result['regions'] == 2 and not (out_dir / 'keep').exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ['contrib', 'export', 'records']


def test_bed_input_fails_before_writing_anything(tiny_export, tmp_path):
    export_dir = tiny_export[0]
    fasta = tmp_path / 'g.fa'
    fasta.write_text('>chrA\n' + 'ACGT' * 100 + '\n')
    bed = tmp_path / 'r.bed'
    bed.write_text('chrA\t10\t20\nchrA\t390\t401\n')
    with pytest.raises(errors.BpnetError, match='r.bed:2: region chrA:390-401 runs '
                       'past the end'):
        attribution.compute_contributions(export_dir, str(tmp_path / 'out'),
                                          regions_bed=str(bed), fasta=str(fasta))
    assert not (tmp_path / 'out').exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith('.out')]
    for kwargs, message in (({'regions_bed': str(bed), 'fasta': str(tmp_path / 'no.fa')},
                             'no.fa: no such FASTA'),
                            ({'regions_bed': str(tmp_path / 'no.bed')}, 'no.bed: no such BED'),
                            ({}, 'exactly one of'),
                            ({'records_dir': str(tmp_path), 'method': 'deeplift'}, 'method')):
        with pytest.raises(errors.BpnetError, match=message):
            attribution.compute_contributions(export_dir, str(tmp_path / 'out'), **kwargs)


def test_corrupt_records_are_one_line_errors(tiny_export, tmp_path):
    export_dir, _, records_dir, _ = tiny_export
    from bpnet_tfx import data
    shard = data.list_shards(records_dir, 'valid')[0]
    blob = open(shard, 'rb').read()
    with open(shard, 'wb') as f:
        f.write(blob[:len(blob) // 2])
    with pytest.raises(errors.BpnetError, match='reading the valid records failed'):
        attribution.compute_contributions(export_dir, str(tmp_path / 'out'),
                                          records_dir=records_dir, num_shuffles=2, steps=2)
    assert not (tmp_path / 'out').exists()


# Models trained with control tracks.

CONTROL_STARTS = (100, 400, 700, 1000, 1300, 1600)  # the valid windows (200 bp) on chrA


def _write_bigwig(path, chrom, values):
    bw = pyBigWig.open(str(path), 'w')
    bw.addHeader([(chrom, len(values))])
    bw.addEntries(chrom, 0, values=np.asarray(values, np.float64), span=1, step=1)
    bw.close()


@pytest.fixture(scope='module')
def control_model(tmp_path_factory):
    """A 2-task BPNet trained briefly with control tracks, and what it was trained on.

    A 2,000-bp genome (chrA), control bigWigs of a smooth varying rate, records (10-bp jitter
    margin) of the windows in CONTROL_STARTS holding the control counts read from those
    bigWigs, and an export whose metadata names the FASTA and the control bigWigs.

    Returns a dict: export, records, fasta, seq, control_pos, control_neg, control (2000, 2).
    """
    from bpnet_tfx import model as model_lib
    from bpnet_tfx import schema, trainer
    import tensorflow as tf
    root = tmp_path_factory.mktemp('control_model')
    rng = np.random.default_rng(5)
    seq = ''.join(rng.choice(list('ACGT'), 2000))
    fasta = root / 'genome.fa'
    fasta.write_text('>chrA\n' + '\n'.join(seq[i:i + 60] for i in range(0, 2000, 60)) + '\n')
    rate = 2 + 1.5 * np.sin(np.arange(2000) / 40.0)
    control = np.stack([rng.poisson(rate), rng.poisson(rate[::-1])], -1).astype(np.float32)
    paths = {s: root / f'control_{s}.bw' for s in ('pos', 'neg')}
    for k, s in enumerate(('pos', 'neg')):
        _write_bigwig(paths[s], 'chrA', control[:, k])
    records = root / 'records'
    records.mkdir()
    tasks = ('a', 'b')
    source_tasks = [{'name': t, 'control_pos_bigwig': str(paths['pos']),
                     'control_neg_bigwig': str(paths['neg'])} for t in tasks]
    totals = []
    for split, starts in (('train', CONTROL_STARTS * 2), ('valid', CONTROL_STARTS)):
        with tf.io.TFRecordWriter(str(records / schema.shard_filename(split, 0, 1)),
                                  options=schema.COMPRESSION) as writer:
            for s in starts:
                lo, hi = s - 10, s + 210
                ctrl = np.repeat(control[lo:hi, None], 2, axis=1)  # (220, tasks, 2)
                profile = rng.poisson(1.0 + ctrl).astype(np.float32)
                totals.append(profile[10:210].sum(axis=(0, 2)))
                writer.write(schema.encode_record(
                    f'chrA:{s}-{s + 200}', 'chrA', lo, sequence.one_hot(seq[lo:hi]), profile,
                    control=ctrl))
    info = schema.RecordsInfo(
        sequence_length=200, max_jitter=10, tasks=tasks, has_control=True,
        split_counts={'train': 12, 'valid': 6}, num_shards={'train': 1, 'valid': 1},
        median_total_counts=tuple(np.median(totals, axis=0).tolist()),
        source={'fasta': str(fasta), 'tasks': source_tasks})
    info.save(str(records))
    model_dir = root / 'model'
    summary = trainer.train(trainer.TrainConfig(
        records_dir=str(records), model_dir=str(model_dir),
        export_dir=str(model_dir / 'export'),
        model=model_lib.ModelConfig(sequence_length=200, num_tasks=2, filters=8,
                                    num_dilated_layers=2, use_control=True),
        epochs=2, batch_size=4, learning_rate=4e-3, counts_loss_weight=1.0,
        input_benchmark_batches=0, precision='float32'), info)
    return {'export': summary['export_dir'], 'records': str(records), 'fasta': str(fasta),
            'seq': seq, 'control_pos': str(paths['pos']), 'control_neg': str(paths['neg']),
            'control': control}


def _serve(export_dir):
    """The SavedModel's serving_default, called directly: (one_hot, control) -> outputs."""
    import tensorflow as tf
    loaded = tf.saved_model.load(export_dir)
    fn = loaded.signatures['serving_default']

    def call(one_hot, control):
        out = fn(one_hot=tf.constant(one_hot, tf.float32),
                 control=tf.constant(control, tf.float32))
        return {k: v for k, v in out.items()}
    call.loaded = loaded  # keeps the variables alive
    return call


def _window_controls(control_model, starts):
    """(N, 200, 2 tasks, 2) observed control counts of the windows at `starts`."""
    c = control_model['control']
    return np.stack([np.repeat(c[s:s + 200, None], 2, axis=1) for s in starts])


def test_control_model_scores_hold_the_observed_control_fixed(control_model):
    import tensorflow as tf
    scorer = attribution.Scorer(control_model['export'])
    assert [t.name for t in scorer.targets] == ['a.profile', 'a.counts', 'b.profile',
                                                'b.counts']
    x = np.stack([sequence.one_hot(control_model['seq'][s:s + 200])
                  for s in (100, 1300)]).astype(np.float32)
    control = _window_controls(control_model, (100, 1300))
    refs = attribution.dinuc_shuffle(x, 3, [np.random.default_rng(i) for i in range(2)])
    hyp = scorer.integrated_gradients(x, refs, 4, control)
    serve = _serve(control_model['export'])

    def direct(i, head, task, ctrl):
        """IG hyp of window i from the signature, with `ctrl` at every path point."""
        alphas = (np.arange(4) + 0.5) / 4
        points = tf.constant(refs[i][:, None] + alphas[:, None, None]
                             * (x[i] - refs[i][:, None]), tf.float32)  # (K, S, L, 4)
        with tf.GradientTape() as tape:
            tape.watch(points)
            out = serve(tf.reshape(points, (-1, 200, 4)), np.repeat(ctrl[None], 12, axis=0))
            if head == 'profile':
                z = out['profile_logits'][:, :, task]
                target = tf.reduce_sum(tf.stop_gradient(tf.nn.softmax(z, axis=1)) * z)
            else:
                target = tf.reduce_sum(out['log_counts'][:, task])
        grad = tape.gradient(target, points).numpy().mean(axis=1)
        return (grad - (grad * refs[i]).sum(-1, keepdims=True)).mean(axis=0)

    for t, (task, head) in enumerate([(0, 'profile'), (0, 'counts'), (1, 'profile'),
                                      (1, 'counts')]):
        np.testing.assert_allclose(hyp[t][1], direct(1, head, task, control[1]), rtol=1e-4,
                                   atol=1e-6)
    # The control matters: the same sequence with the other window's control scores otherwise.
    moved = scorer.integrated_gradients(x, refs, 4, control[::-1])
    assert np.abs(moved[0] - hyp[0]).max() > 1e-3 * np.abs(hyp[0]).max()
    np.testing.assert_allclose(moved[0][0], direct(0, 'profile', 0, control[1]), rtol=1e-4,
                               atol=1e-6)
    # Completeness with the control fixed: observed-base counts contributions sum to
    # f(x, c) - mean_k f(r_k, c).
    hyp = scorer.integrated_gradients(x, refs, 256, control)

    def f(z, ctrl):
        return serve(z, ctrl)['log_counts'].numpy().sum(-1)  # (N, tasks)

    expected = f(x, control) - f(refs.reshape(-1, 200, 4), np.repeat(control, 3, axis=0)
                                 ).reshape(2, 3, 2).mean(axis=1)
    for task, t in ((0, 1), (1, 3)):
        np.testing.assert_allclose((hyp[t] * x).sum(axis=(1, 2)), expected[:, task],
                                   rtol=0.02, atol=1e-4)


def test_control_model_mutagenesis_keeps_the_control(control_model):
    scorer = attribution.Scorer(control_model['export'])
    x = sequence.one_hot(control_model['seq'][700:900])[None].astype(np.float32)
    control = _window_controls(control_model, (700,))
    hyp = scorer.mutagenesis(x, 150, control)
    serve = _serve(control_model['export'])
    ref = serve(x, control)
    logits_ref = ref['profile_logits'].numpy()[0]
    weights = np.exp(logits_ref - logits_ref.max(0))
    weights /= weights.sum(0)
    for position in (3, 111):
        mutants = np.repeat(x, 4, axis=0)
        mutants[:, position] = np.eye(4)
        out = serve(mutants, np.repeat(control, 4, axis=0))
        profile = (weights[None, :, 1] * (out['profile_logits'].numpy()[:, :, 1]
                                          - logits_ref[None, :, 1])).sum(axis=(1, 2))
        counts = (out['log_counts'].numpy()[:, 0] - ref['log_counts'].numpy()[:, 0]).sum(-1)
        for got, delta in ((hyp[2], profile), (hyp[1], counts)):
            np.testing.assert_allclose(got[0, position], delta - delta.mean(), rtol=1e-3,
                                       atol=1e-5)


def test_control_model_without_control_is_refused(control_model):
    scorer = attribution.Scorer(control_model['export'])
    x = sequence.one_hot(control_model['seq'][100:300])[None].astype(np.float32)
    refs = attribution.dinuc_shuffle(x, 2, [np.random.default_rng(0)])
    with pytest.raises(errors.BpnetError, match='trained with control tracks and '
                       'needs the observed control counts'):
        scorer.integrated_gradients(x, refs, 2)
    with pytest.raises(errors.BpnetError, match='trained with control tracks'):
        scorer.mutagenesis(x, 10)
    with pytest.raises(errors.BpnetError, match=r'control counts of shape \(N, 200, 2, '
                       r'2\), got \(1, 200, 1, 2\)'):
        scorer.integrated_gradients(x, refs, 2, np.zeros((1, 200, 1, 2)))


def test_control_model_from_records_and_from_bed_agree(control_model, tmp_path):
    """The records' control feature and the control bigWigs named in the model's metadata
    give the same windows the same control, hence the same scores."""
    export_dir = control_model['export']
    from_records = attribution.compute_contributions(
        export_dir, str(tmp_path / 'records_out'), records_dir=control_model['records'],
        num_shuffles=2, steps=3, batch_size=4, progress_seconds=0)
    assert from_records['regions'] == 6 and from_records['control'] == 'records'
    bed = tmp_path / 'windows.bed'
    bed.write_text(''.join(f'chrA\t{s}\t{s + 200}\tchrA:{s}-{s + 200}\n'
                           for s in CONTROL_STARTS))
    from_bed = attribution.compute_contributions(
        export_dir, str(tmp_path / 'bed_out'), regions_bed=str(bed), num_shuffles=2, steps=3,
        batch_size=4, progress_seconds=0)
    assert from_bed['control'] == [[control_model['control_pos'],
                                    control_model['control_neg']]] * 2
    a, b = (attribution.load_outputs(str(tmp_path / d)) for d in ('records_out', 'bed_out'))
    assert [w.name for w in a['windows']] == [w.name for w in b['windows']]
    assert a['summary']['control'] == 'records'
    for name in ('a.profile', 'a.counts', 'b.profile', 'b.counts'):
        np.testing.assert_allclose(a['hyp'][name], b['hyp'][name], rtol=1e-5, atol=1e-7)
    # Both equal the scorer fed the observed control counts.
    x = b['one_hot'][:3].astype(np.float32)
    refs = attribution.dinuc_shuffle(x, 2, [np.random.default_rng([0, i]) for i in range(3)])
    want = attribution.Scorer(export_dir).integrated_gradients(
        x, refs, 3, _window_controls(control_model, CONTROL_STARTS[:3]))
    np.testing.assert_allclose(b['hyp']['b.counts'][:3], want[3], rtol=1e-4, atol=1e-7)
    # Control bigWigs given on the command line win over the metadata's.
    swapped = attribution.compute_contributions(
        export_dir, str(tmp_path / 'swapped'), regions_bed=str(bed), num_shuffles=2, steps=3,
        control_pos_bigwig=control_model['control_neg'],
        control_neg_bigwig=control_model['control_pos'], max_regions=1, progress_seconds=0)
    assert swapped['control'][0] == [control_model['control_neg'], control_model['control_pos']]
    other = attribution.load_outputs(str(tmp_path / 'swapped'))['hyp']['a.profile'][0]
    assert np.abs(other - b['hyp']['a.profile'][0]).max() > 1e-6


def test_control_model_without_its_control_tracks_is_a_one_line_error(control_model, tmp_path):
    import json
    import shutil

    from conftest import write_records
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
        (dict(saved_model=no_control, regions_bed=str(bed)),
         'deleted.bw: no such control bigWig; .* trained with control tracks'),
        (dict(saved_model=no_control, regions_bed=str(bed), control_neg_bigwig=str(gone)),
         None),
        (dict(saved_model=export_dir, regions_bed=str(bed),
              control_pos_bigwig=str(tmp_path / 'typo.bw')), 'typo.bw: no such control bigWig'),
        (dict(saved_model=export_dir, records_dir=control_model['records'],
              control_pos_bigwig=control_model['control_pos']), 'go with --regions_bed'),
    ]
    plain = str(tmp_path / 'plain_records')
    write_records(plain, split_counts={'valid': 2})
    cases.append((dict(saved_model=export_dir, records_dir=plain),
                  'trained with control tracks but .*plain_records holds none'))
    for kwargs, message in cases:
        out = str(tmp_path / 'out')
        saved_model = kwargs.pop('saved_model')
        if message is None:
            result = attribution.compute_contributions(saved_model, out, num_shuffles=2,
                                                       steps=2, **kwargs)
            assert result['control'] == [[control_model['control_pos'], str(gone)]] * 2
            shutil.rmtree(out)
            continue
        with pytest.raises(errors.BpnetError, match=message) as error:
            attribution.compute_contributions(saved_model, out, **kwargs)
        assert '\n' not in str(error.value)
        assert not os.path.exists(out)


def test_wide_input_joint_loss_control_model(tmp_path):
    """60-bp inputs -> 20-bp outputs, one softmax over length x strands and one total count
    per task, with control tracks: IG explains the joint distribution's target and the model's
    log(1 + total); from a BED, the control is read over the 20 bp centred in each window."""
    import keras
    import tensorflow as tf

    from bpnet_tfx import export, schema
    from bpnet_tfx import model as model_lib
    keras.utils.set_random_seed(3)
    config = model_lib.ModelConfig(sequence_length=60, output_length=20, num_tasks=2,
                                   filters=8, stem_kernel_size=5, num_dilated_layers=2,
                                   profile_kernel_size=5, profile_loss='joint',
                                   use_control=True)
    model = model_lib.build_bpnet(config)
    rng = np.random.default_rng(0)
    seq = ''.join(rng.choice(list('ACGT'), 300))
    fasta = tmp_path / 'g.fa'
    fasta.write_text('>chrA\n' + seq + '\n')
    control = rng.poisson(3, 300).astype(np.float32)
    _write_bigwig(tmp_path / 'c.bw', 'chrA', control)
    info = schema.RecordsInfo(sequence_length=60, output_length=20, max_jitter=0,
                              tasks=('a', 'b'), has_control=True,
                              source={'fasta': str(fasta), 'tasks': [
                                  {'control_pos_bigwig': str(tmp_path / 'c.bw'),
                                   'control_neg_bigwig': str(tmp_path / 'c.bw')}] * 2})
    path = export.export_saved_model(model, info, config, str(tmp_path / 'export'))
    scorer = attribution.Scorer(path)
    assert scorer.control_shape == (20, 2, 2)
    x = sequence.one_hot(seq[100:160])[None].astype(np.float32)
    ctrl = np.broadcast_to(control[120:140, None, None], (1, 20, 2, 2)).astype(np.float32)
    refs = attribution.dinuc_shuffle(x, 3, [np.random.default_rng(1)])
    hyp = scorer.integrated_gradients(x, refs, 5, ctrl)
    points = tf.constant((refs[0][:, None] + ((np.arange(5) + 0.5) / 5)[:, None, None]
                          * (x[0] - refs[0][:, None])).reshape(-1, 60, 4), tf.float32)
    for t, (task, head) in enumerate([(0, 'profile'), (0, 'counts'), (1, 'profile'),
                                      (1, 'counts')]):
        with tf.GradientTape() as tape:
            tape.watch(points)
            out = model({'one_hot': points,
                         'control': tf.constant(np.repeat(ctrl, 15, axis=0))})
            if head == 'profile':
                z = out['profile'][:, :, task]  # (15, 20, 2): one softmax over 40 values
                w = tf.reshape(tf.nn.softmax(tf.reshape(z, (15, 40))), (15, 20, 2))
                target = tf.reduce_sum(tf.stop_gradient(w) * z)
            else:
                target = tf.reduce_sum(out['log_counts'][:, task])  # (15, 1): log(1 + total)
        grad = tape.gradient(target, points).numpy().reshape(3, 5, 60, 4).mean(axis=1)
        want = (grad - (grad * refs[0]).sum(-1, keepdims=True)).mean(axis=0)
        np.testing.assert_allclose(hyp[t][0], want, rtol=1e-4, atol=1e-6)
    # ISM's reference weights are the joint distribution too: centred deltas, one mutant.
    ism = scorer.mutagenesis(x, 64, ctrl)
    mutant = x.copy()
    mutant[0, 30] = np.roll(x[0, 30], 1)
    z0, z1 = (model({'one_hot': m, 'control': ctrl})['profile'].numpy()[0, :, 1]
              for m in (x, mutant))
    w0 = np.exp(z0 - z0.max()) / np.exp(z0 - z0.max()).sum()
    delta = (w0 * (z1 - z0)).sum()
    base = int(np.argmax(mutant[0, 30]))
    observed = int(np.argmax(x[0, 30]))
    np.testing.assert_allclose(ism[2][0, 30, base] - ism[2][0, 30, observed], delta,
                               rtol=1e-3, atol=1e-5)
    # From a BED line: the window 100-160, its control the 20 bp centred in it (120-140).
    bed = tmp_path / 'r.bed'
    bed.write_text('chrA\t125\t135\n')
    out = attribution.compute_contributions(path, str(tmp_path / 'out'), regions_bed=str(bed),
                                            num_shuffles=3, steps=5, progress_seconds=0)
    result = attribution.load_outputs(out['output_dir'])
    assert (result['windows'][0].start, result['windows'][0].end) == (100, 160)
    want = scorer.integrated_gradients(
        x, attribution.dinuc_shuffle(x, 3, [np.random.default_rng([0, 0])]), 5, ctrl)
    np.testing.assert_allclose(result['hyp']['b.counts'], want[3], rtol=1e-4, atol=1e-7)
