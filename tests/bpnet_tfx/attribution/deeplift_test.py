"""Tests of DeepLIFT/DeepSHAP: the rebuilt model equals the export, summation to delta per
reference and after averaging (same-padding, wide valid-padding, 2-task, joint-loss and
control models), exact Shapley values on an additive one-ReLU model, batch independence and
reverse-complement averaging."""

import itertools
import math

import numpy as np
import pytest

from bpnet_tfx.attribution import deeplift, shuffle
from bpnet_tfx.attribution import scorer as attribution
from bpnet_tfx.genome import sequence
from tests.fixtures.control_models import wide_joint_control_model

CONFIGS = {
    'same_padding': dict(sequence_length=100, filters=8, num_dilated_layers=2),
    'wide_valid_padding': dict(
        sequence_length=60,
        output_length=20,
        filters=8,
        stem_kernel_size=5,
        num_dilated_layers=2,
        profile_kernel_size=5,
    ),
    'two_tasks': dict(sequence_length=64, num_tasks=2, filters=4, num_dilated_layers=2),
    'joint_loss': dict(sequence_length=64, filters=8, num_dilated_layers=2, profile_loss='joint'),
    'normalized_counts_head': dict(
        sequence_length=64, filters=8, num_dilated_layers=2, counts_head='normalized_pool'
    ),
    'position_sum_counts_head': dict(
        sequence_length=64, num_tasks=2, filters=8, num_dilated_layers=2, counts_head='position_sum'
    ),
}
CONFIGS['profile_sum_valid_joint'] = dict(
    CONFIGS['wide_valid_padding'], profile_loss='joint', counts_head='profile_sum'
)


def _export(tmp_path, seed=0, **kwargs):
    import keras

    from bpnet_tfx.inference import export
    from bpnet_tfx.modeling import config as config_lib
    from bpnet_tfx.modeling import model as model_lib
    from bpnet_tfx.records import schema

    keras.utils.set_random_seed(seed)
    config = config_lib.ModelConfig(**kwargs)
    model = model_lib.build_bpnet(config)
    rng = np.random.default_rng(seed)
    for v in model.variables:  # the summed counts heads' rate convolutions start at zero
        if 'counts_rate_conv' in v.path and 'kernel' in v.path:
            v.assign(rng.normal(0, 0.5, v.shape).astype(np.float32))
    tasks = tuple(f't{i}' for i in range(config.num_tasks))
    info = schema.RecordsInfo(
        sequence_length=config.sequence_length,
        output_length=config.output_length,
        max_jitter=0,
        tasks=tasks,
    )
    return export.export_saved_model(model, info, config, str(tmp_path / 'export'))


def _windows(n, length, seed=0):
    rng = np.random.default_rng(seed)
    return np.eye(4, dtype=np.float32)[rng.integers(0, 4, (n, length))]


def _target_values(scorer, x, refs, control=None):
    """Per target: f(x) (B,) and f(r_k) (B, K), the profile target of every reference with
    x's profile weights (fixed weights make the target linear in the logits)."""
    import tensorflow as tf

    b, k = refs.shape[:2]
    ctrl = None if control is None else tf.constant(control)
    logits, _ = scorer._outputs(tf.constant(x), ctrl)
    weights = scorer._profile_weights(logits)
    fx = [s.numpy() for s in scorer._scores(tf.constant(x), weights, ctrl)]
    rctrl = None if control is None else tf.constant(np.repeat(control, k, axis=0))
    fr = scorer._scores(
        tf.constant(refs.reshape(b * k, *refs.shape[2:])), tf.repeat(weights, k, axis=0), rctrl
    )
    return fx, [s.numpy().reshape(b, k) for s in fr]


def _check_completeness(scorer, x, refs, control=None):
    """Summation to delta per reference and after averaging; returns the worst relative
    error."""
    mults = scorer.deeplift_multipliers(x, refs, control)
    hyps = scorer.deepshap(x, refs, control)
    fx, fr = _target_values(scorer, x, refs, control)
    worst = 0.0
    for m, hyp, f, r in zip(mults, hyps, fx, fr):
        per_ref = (m * (x[:, None] - refs)).sum(axis=(2, 3))
        delta = f[:, None] - r
        scale = np.abs(delta).max()
        assert scale > 1e-4  # a non-trivial difference to explain
        np.testing.assert_allclose(per_ref, delta, rtol=1e-3, atol=1e-3 * scale)
        # Averaged: the observed bases carry it all, except where x has N (a zero row takes
        # no share; its references' bases carry -m_k . r_k there).
        observed = (hyp * x).sum(axis=(1, 2))
        at_n = (x.sum(-1) == 0)[:, None, :, None]
        lost = (np.where(at_n, -m * refs, 0.0)).sum(axis=(2, 3)).mean(axis=1)
        np.testing.assert_allclose(
            observed + lost, f - r.mean(axis=1), rtol=1e-3, atol=1e-3 * scale
        )
        worst = max(worst, float(np.abs(per_ref - delta).max() / scale))
    return worst


@pytest.mark.slow  # exports a model per case
@pytest.mark.parametrize('name', list(CONFIGS))
def test_summation_to_delta(tmp_path, name):
    config = CONFIGS[name]
    scorer = attribution.Scorer(_export(tmp_path, **config))
    x = _windows(3, config['sequence_length'])
    x[1, 10:14] = 0  # an N stretch (window 1)
    refs = shuffle.dinuc_shuffle(x, 4, [np.random.default_rng(i) for i in range(3)])
    worst = _check_completeness(scorer, x, refs)
    print(f'{name}: worst summation-to-delta error {worst:.2e} (relative)')
    hyp = scorer.deepshap(x, refs)
    assert np.all((hyp[0][1] * x[1]).sum(-1)[10:14] == 0)  # N bases contribute nothing


def test_rebuilt_model_computes_what_the_export_computes(tmp_path):
    from bpnet_tfx.inference import export

    exported = export.ExportedModel(_export(tmp_path, **CONFIGS['two_tasks']))
    rebuilt = deeplift.rescale_model(exported)
    x = _windows(4, 64)
    out = rebuilt(x, training=False)
    served = exported(x)
    np.testing.assert_allclose(out['profile'].numpy(), served['profile_logits'], atol=1e-5)
    np.testing.assert_allclose(out['log_counts'].numpy(), served['log_counts'], atol=1e-5)


@pytest.mark.slow  # exports its own model
def test_rebuilt_normalized_counts_head_keeps_its_statistics(tmp_path):
    import keras

    from bpnet_tfx.inference import export
    from bpnet_tfx.modeling import config as config_lib
    from bpnet_tfx.modeling import model as model_lib
    from bpnet_tfx.records import schema

    keras.utils.set_random_seed(0)
    config = config_lib.ModelConfig(**CONFIGS['normalized_counts_head'])
    model = model_lib.build_bpnet(config, log_counts_init=(4.0,))
    norm = model.get_layer('counts_norm')
    rng = np.random.default_rng(3)
    for v in (norm.moving_mean, norm.moving_variance, norm.gamma, norm.beta):
        v.assign(rng.uniform(0.2, 2.0, v.shape).astype(np.float32))
    info = schema.RecordsInfo(sequence_length=64, max_jitter=0, tasks=('t0',))
    exported = export.ExportedModel(
        export.export_saved_model(model, info, config, str(tmp_path / 'export'))
    )
    rebuilt = deeplift.rescale_model(exported)
    x = _windows(4, 64)
    expected = model(x, training=False)['log_counts'].numpy()
    np.testing.assert_allclose(exported(x)['log_counts'][:, 0], expected, rtol=1e-5)  # task axis
    np.testing.assert_allclose(rebuilt(x, training=False)['log_counts'], expected, rtol=1e-5)


@pytest.mark.slow  # exports its own model
@pytest.mark.parametrize('counts_head', ['global_pool', 'profile_sum'])
def test_control_model_summation_to_delta_with_control_held_fixed(tmp_path, counts_head):
    made = wide_joint_control_model(tmp_path, counts_head)
    scorer = attribution.Scorer(made['export'])
    x = np.concatenate([made['x'], _windows(1, 60, seed=4)])
    ctrl = np.concatenate([made['ctrl'], 2.0 * made['ctrl']])
    refs = shuffle.dinuc_shuffle(x, 3, [np.random.default_rng(i) for i in range(2)])
    worst = _check_completeness(scorer, x, refs, ctrl)
    print(f'control model: worst summation-to-delta error {worst:.2e} (relative)')


def test_deepshap_is_the_exact_shapley_value_of_an_additive_relu_model():
    """Stem ReLUs of kernel 1 then linear layers: f is a sum of per-position terms, where
    the rescale rule is exact; Shapley values over positions by enumerating coalitions."""
    import keras
    import tensorflow as tf

    from bpnet_tfx.modeling import layers

    keras.utils.set_random_seed(2)
    length = 6
    inputs = keras.Input((length, 4))
    h = layers.Conv1D(5, 1, activation='relu', name='stem_conv')(inputs)
    h = layers.Conv1D(3, 3, name='linear_conv')(h)
    out = keras.layers.Dense(1, name='dense')(keras.layers.GlobalAveragePooling1D()(h))
    model = keras.Model(inputs, out)
    for v in model.variables:  # biases away from zero, so some units switch between x and r
        v.assign(np.random.default_rng(len(v.path)).normal(size=v.shape).astype(np.float32))
    paired = deeplift.paired_model(model)
    x = _windows(1, length, seed=7)[0]
    refs = _windows(3, length, seed=8)

    def f(batch):
        return model(np.asarray(batch, np.float32)).numpy()[:, 0]

    shapley = np.zeros((len(refs), length))
    for k, r in enumerate(refs):
        for pos in range(length):
            others = [p for p in range(length) if p != pos]
            for size in range(length):
                for coalition in itertools.combinations(others, size):
                    weight = (
                        math.factorial(size)
                        * math.factorial(length - size - 1)
                        / math.factorial(length)
                    )
                    without = r.copy()
                    without[list(coalition)] = x[list(coalition)]
                    with_l = without.copy()
                    with_l[pos] = x[pos]
                    shapley[k, pos] += weight * (f([with_l])[0] - f([without])[0])
    references = tf.constant(refs[None], tf.float32)  # one input, K references
    with tf.GradientTape() as tape:
        tape.watch(references)
        _, out_refs = deeplift.paired_outputs(paired, tf.constant(x[None]), references)
        target = tf.reduce_sum(out_refs)
    m = tape.gradient(target, references).numpy()[0]
    deeplift_scores = (m * (x - refs)).sum(-1)  # (K, L)
    err = np.abs(deeplift_scores - shapley).max()
    print(f'additive ReLU model: max |DeepLIFT - Shapley| = {err:.2e}')
    np.testing.assert_allclose(deeplift_scores, shapley, atol=1e-5)
    hyp = (m - (m * refs).sum(-1, keepdims=True)).mean(0)
    np.testing.assert_allclose((hyp * x).sum(-1), shapley.mean(0), atol=1e-5)


@pytest.mark.parametrize('name', ['same_padding', 'position_sum_counts_head'])
def test_scores_do_not_depend_on_the_batch(tmp_path, name):
    # The summed head's paired logsumexp groups each input's references within the batch.
    scorer = attribution.Scorer(_export(tmp_path, **CONFIGS[name]))
    length = CONFIGS[name]['sequence_length']
    x = _windows(7, length, seed=3)
    regions = [f'chr1:{i * length}-{(i + 1) * length}' for i in range(7)]
    refs = shuffle.dinuc_shuffle(x, 3, [shuffle.keyed_rng(0, r) for r in regions])
    all_at_once = scorer.deepshap(x, refs)
    for i in (0, 4, 6):
        one_ref = shuffle.dinuc_shuffle(x[i : i + 1], 3, [shuffle.keyed_rng(0, regions[i])])
        np.testing.assert_array_equal(one_ref, refs[i : i + 1])
        alone = scorer.deepshap(x[i : i + 1], one_ref)
        for a, b in zip(alone, all_at_once):
            np.testing.assert_allclose(a[0], b[i], rtol=1e-5, atol=1e-6)


@pytest.mark.slow  # exports its own model
@pytest.mark.parametrize('method', ['deepshap', 'ism'])
def test_reverse_complement_average_gives_a_window_and_its_rc_mapped_scores(tmp_path, method):
    made = wide_joint_control_model(tmp_path)
    scorer = attribution.Scorer(made['export'])
    x, ctrl = made['x'], made['ctrl'] * np.array([1.0, 2.0])  # strands differ
    refs = shuffle.dinuc_shuffle(x, 3, np.random.default_rng(0))
    if method == 'deepshap':

        def score(a, r, c):
            return scorer.deepshap(a, r, c)
    else:

        def score(a, r, c):
            return scorer.mutagenesis(a, 64, c)

    rc, rc_ctrl = sequence.reverse_complement(x, ctrl)
    fwd = attribution.reverse_complement_average(score, x, refs, ctrl)
    back = attribution.reverse_complement_average(
        score,
        np.ascontiguousarray(rc),
        sequence.reverse_complement(refs),
        np.ascontiguousarray(rc_ctrl),
    )
    for a, b in zip(fwd, back):
        assert np.abs(a).max() > 0
        np.testing.assert_allclose(sequence.reverse_complement(b), a, rtol=1e-5, atol=1e-6)
    plain = score(x, refs, ctrl)
    assert any(np.abs(p - a).max() > 1e-4 for p, a in zip(plain, fwd))  # it did average
