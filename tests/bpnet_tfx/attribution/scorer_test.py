"""Tests of the scorers: integrated gradients and in-silico mutagenesis against direct
computations through the Keras model or the SavedModel, per task and head, with control tracks
held fixed, and for a wide-input joint-loss model."""

import numpy as np
import pytest

from bpnet_tfx.attribution import scorer as attribution
from bpnet_tfx.attribution import shuffle
from bpnet_tfx.common import errors
from bpnet_tfx.genome import sequence
from tests.fixtures import control_models
from tests.fixtures.control_models import wide_joint_control_model, window_controls


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
    refs = shuffle.dinuc_shuffle(x, 4, [np.random.default_rng(i) for i in range(3)])
    hyp = scorer.integrated_gradients(x, refs, 5)
    for t, head in enumerate(('profile', 'counts')):
        assert hyp[t].shape == x.shape
        for i in range(3):
            np.testing.assert_allclose(
                hyp[t][i], _reference_hyp(model, x[i], refs[i], 5, head), rtol=1e-4, atol=1e-6
            )
    assert np.all((hyp[0][1] * x[1]).sum(-1)[50:60] == 0)  # N bases contribute nothing


def test_integrated_gradients_of_a_wide_model_match_a_direct_computation(tmp_path):
    """tiny_export's 8 filters run as shifted matmuls on a CPU; 16 take the dilated
    convolutions and their custom gradients, which must survive the SavedModel round trip
    (the scorer differentiates the loaded signature on a persistent tape, per target)."""
    import keras

    from bpnet_tfx.inference import export
    from bpnet_tfx.modeling import config as config_lib
    from bpnet_tfx.modeling import layers
    from bpnet_tfx.modeling import model as model_lib
    from bpnet_tfx.records import schema

    keras.utils.set_random_seed(3)
    config = config_lib.ModelConfig(sequence_length=100, filters=16, num_dilated_layers=2)
    model = model_lib.build_bpnet(config)
    dilated = [
        layer
        for layer in model.layers
        if isinstance(layer, layers.Conv1D) and layer.dilation_rate > 1
    ]
    assert len(dilated) == 2 and not any(layer.uses_shifted_matmul() for layer in dilated)
    info = schema.RecordsInfo(sequence_length=100, max_jitter=0, tasks=('t',))
    path = export.export_saved_model(model, info, config, str(tmp_path / 'export'))
    x = _windows(2, 100, seed=4)
    refs = shuffle.dinuc_shuffle(x, 2, [np.random.default_rng(i) for i in range(2)])
    hyp = attribution.Scorer(path).integrated_gradients(x, refs, 3)
    for t, head in enumerate(('profile', 'counts')):
        for i in range(2):
            np.testing.assert_allclose(
                hyp[t][i], _reference_hyp(model, x[i], refs[i], 3, head), rtol=1e-4, atol=1e-6
            )


def test_every_task_of_a_multi_task_model_gets_its_own_targets(tmp_path):
    import keras
    import tensorflow as tf

    from bpnet_tfx.inference import export
    from bpnet_tfx.modeling import config as config_lib
    from bpnet_tfx.modeling import model as model_lib
    from bpnet_tfx.records import schema

    keras.utils.set_random_seed(1)
    config = config_lib.ModelConfig(
        sequence_length=64, num_tasks=2, filters=4, num_dilated_layers=1
    )
    model = model_lib.build_bpnet(config)
    info = schema.RecordsInfo(sequence_length=64, max_jitter=0, tasks=('Oct4', 'Sox 2'))
    path = export.export_saved_model(model, info, config, str(tmp_path / 'export'))
    scorer = attribution.Scorer(path)
    assert [t.name for t in scorer.targets] == [
        'Oct4.profile',
        'Oct4.counts',
        'Sox_2.profile',
        'Sox_2.counts',
    ]
    x = _windows(1, 64)
    refs = shuffle.dinuc_shuffle(x, 2, np.random.default_rng(0))
    hyp = scorer.integrated_gradients(x, refs, 3)
    points = tf.constant(
        refs[0][:, None] + ((np.arange(3) + 0.5) / 3)[:, None, None] * (x[0] - refs[0][:, None]),
        tf.float32,
    )  # (K, S, L, 4)
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
    refs = shuffle.dinuc_shuffle(x, 3, [np.random.default_rng(i) for i in range(2)])
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
        np.testing.assert_allclose(
            got[0, [7, 120]], delta - delta.mean(1, keepdims=True), rtol=1e-3, atol=1e-5
        )


# Models trained with control tracks (fixtures in control_models.py).


@pytest.mark.slow  # control_model trains
def test_control_model_scores_hold_the_observed_control_fixed(control_model):
    import tensorflow as tf

    scorer = attribution.Scorer(control_model['export'])
    assert [t.name for t in scorer.targets] == ['a.profile', 'a.counts', 'b.profile', 'b.counts']
    x = np.stack([sequence.one_hot(control_model['seq'][s : s + 200]) for s in (100, 1300)]).astype(
        np.float32
    )
    control = window_controls(control_model, (100, 1300))
    refs = shuffle.dinuc_shuffle(x, 3, [np.random.default_rng(i) for i in range(2)])
    hyp = scorer.integrated_gradients(x, refs, 4, control)
    serve = control_models.serve(control_model['export'])

    def direct(i, head, task, ctrl):
        """IG hyp of window i from the signature, with `ctrl` at every path point."""
        alphas = (np.arange(4) + 0.5) / 4
        points = tf.constant(
            refs[i][:, None] + alphas[:, None, None] * (x[i] - refs[i][:, None]), tf.float32
        )  # (K, S, L, 4)
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

    for t, (task, head) in enumerate(
        [(0, 'profile'), (0, 'counts'), (1, 'profile'), (1, 'counts')]
    ):
        np.testing.assert_allclose(
            hyp[t][1], direct(1, head, task, control[1]), rtol=1e-4, atol=1e-6
        )
    # The control matters: the same sequence with the other window's control scores otherwise.
    moved = scorer.integrated_gradients(x, refs, 4, control[::-1])
    assert np.abs(moved[0] - hyp[0]).max() > 1e-3 * np.abs(hyp[0]).max()
    np.testing.assert_allclose(
        moved[0][0], direct(0, 'profile', 0, control[1]), rtol=1e-4, atol=1e-6
    )
    # Completeness with the control fixed: observed-base counts contributions sum to
    # f(x, c) - mean_k f(r_k, c).
    hyp = scorer.integrated_gradients(x, refs, 256, control)

    def f(z, ctrl):
        return serve(z, ctrl)['log_counts'].numpy().sum(-1)  # (N, tasks)

    expected = f(x, control) - f(refs.reshape(-1, 200, 4), np.repeat(control, 3, axis=0)).reshape(
        2, 3, 2
    ).mean(axis=1)
    for task, t in ((0, 1), (1, 3)):
        np.testing.assert_allclose(
            (hyp[t] * x).sum(axis=(1, 2)), expected[:, task], rtol=0.02, atol=1e-4
        )


@pytest.mark.slow  # control_model trains
def test_control_model_mutagenesis_keeps_the_control(control_model):
    scorer = attribution.Scorer(control_model['export'])
    x = sequence.one_hot(control_model['seq'][700:900])[None].astype(np.float32)
    control = window_controls(control_model, (700,))
    hyp = scorer.mutagenesis(x, 150, control)
    serve = control_models.serve(control_model['export'])
    ref = serve(x, control)
    logits_ref = ref['profile_logits'].numpy()[0]
    weights = np.exp(logits_ref - logits_ref.max(0))
    weights /= weights.sum(0)
    for position in (3, 111):
        mutants = np.repeat(x, 4, axis=0)
        mutants[:, position] = np.eye(4)
        out = serve(mutants, np.repeat(control, 4, axis=0))
        profile = (
            weights[None, :, 1] * (out['profile_logits'].numpy()[:, :, 1] - logits_ref[None, :, 1])
        ).sum(axis=(1, 2))
        counts = (out['log_counts'].numpy()[:, 0] - ref['log_counts'].numpy()[:, 0]).sum(-1)
        for got, delta in ((hyp[2], profile), (hyp[1], counts)):
            np.testing.assert_allclose(got[0, position], delta - delta.mean(), rtol=1e-3, atol=1e-5)


@pytest.mark.slow  # control_model trains
def test_control_model_without_control_is_refused(control_model):
    scorer = attribution.Scorer(control_model['export'])
    x = sequence.one_hot(control_model['seq'][100:300])[None].astype(np.float32)
    refs = shuffle.dinuc_shuffle(x, 2, [np.random.default_rng(0)])
    with pytest.raises(
        errors.BpnetError, match='trained with control tracks and needs the observed control counts'
    ):
        scorer.integrated_gradients(x, refs, 2)
    with pytest.raises(errors.BpnetError, match='trained with control tracks'):
        scorer.mutagenesis(x, 10)
    with pytest.raises(
        errors.BpnetError,
        match=r'control counts of shape \(N, 200, 2, '
        r'2\), got \(1, 200, 1, 2\)',
    ):
        scorer.integrated_gradients(x, refs, 2, np.zeros((1, 200, 1, 2)))


@pytest.mark.slow  # exports its own model
def test_wide_input_joint_loss_control_model(tmp_path):
    """60-bp inputs -> 20-bp outputs, one softmax over length x strands and one total count
    per task, with control tracks: IG explains the joint distribution's target and the model's
    log(1 + total); ISM's weights are the joint distribution too."""
    import tensorflow as tf

    wide = wide_joint_control_model(tmp_path)
    model, x, ctrl = wide['model'], wide['x'], wide['ctrl']
    scorer = attribution.Scorer(wide['export'])
    assert scorer.control_shape == (20, 2, 2)
    refs = shuffle.dinuc_shuffle(x, 3, [np.random.default_rng(1)])
    hyp = scorer.integrated_gradients(x, refs, 5, ctrl)
    points = tf.constant(
        (
            refs[0][:, None] + ((np.arange(5) + 0.5) / 5)[:, None, None] * (x[0] - refs[0][:, None])
        ).reshape(-1, 60, 4),
        tf.float32,
    )
    for t, (task, head) in enumerate(
        [(0, 'profile'), (0, 'counts'), (1, 'profile'), (1, 'counts')]
    ):
        with tf.GradientTape() as tape:
            tape.watch(points)
            out = model({'one_hot': points, 'control': tf.constant(np.repeat(ctrl, 15, axis=0))})
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
    z0, z1 = (
        model({'one_hot': m, 'control': ctrl})['profile'].numpy()[0, :, 1] for m in (x, mutant)
    )
    w0 = np.exp(z0 - z0.max()) / np.exp(z0 - z0.max()).sum()
    delta = (w0 * (z1 - z0)).sum()
    base = int(np.argmax(mutant[0, 30]))
    observed = int(np.argmax(x[0, 30]))
    np.testing.assert_allclose(
        ism[2][0, 30, base] - ism[2][0, 30, observed], delta, rtol=1e-3, atol=1e-5
    )
