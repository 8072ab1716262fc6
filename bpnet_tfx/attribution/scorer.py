"""Contribution scores of an exported BPNet: integrated gradients, DeepSHAP and ISM, as
modisco-lite inputs (hypothetical contributions) and bigWig tracks (observed-base ones).

Two targets per task, BPNet's: the profile target, sum of stop_gradient(softmax(z)) * z over
the profile logits z of the output window (over positions and strands together for a model
trained with the joint loss), and the counts target, the sum of log_counts over strands (the
joint model's own log(1 + total)). IG and ISM run through the SavedModel's signature, DeepSHAP
through the Keras model rebuilt from the export (`deeplift`); the export alone suffices. A
control-track model's control counts are held fixed at the window's observed ones for every
reference, path point and mutant; a control model given none is refused. The formulas (the
hypothetical contribution of each base, the references, the ISM centring) are in
docs/interpretation.md. The scorers run on the default device; `contributions` runs them over
records or BED regions and writes the output folder.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np

from bpnet_tfx.common import rowwise
from bpnet_tfx.genome import genome_io
from bpnet_tfx.records import schema

if TYPE_CHECKING:  # export imports TensorFlow; the scorers import it only when built
    from bpnet_tfx.inference import export

METHODS = ('ig', 'ism', 'deepshap')
HEADS = ('profile', 'counts')


@dataclasses.dataclass(frozen=True)
class Target:
    """One scalar per window to explain: a head of one task."""

    name: str  # output folder: 'profile', 'counts', or '<task>.profile' with several tasks
    task: int
    head: str  # 'profile' or 'counts'


def targets_of(info: schema.RecordsInfo) -> list[Target]:
    """The targets explained for a model trained on `info`'s tasks, in output order."""
    several = info.num_tasks > 1
    return [
        Target(f'{genome_io.file_label(task)}.{head}' if several else head, t, head)
        for t, task in enumerate(info.tasks)
        for head in HEADS
    ]


def reverse_complement_average(
    score,
    one_hot: np.ndarray,
    references: np.ndarray | None = None,
    control: np.ndarray | None = None,
) -> list[np.ndarray]:
    """The mean of a window's scores and its reverse complement's, mapped back.

    Args:
      score: (one_hot, references, control) -> per target (B, L, 4) hyp, e.g. a Scorer
        method; called once on 2 B windows.
      one_hot: (B, L, 4) windows.
      references: (B, K, L, 4) references, or None (ism); the reverse complement is scored
        against the references' reverse complements.
      control: (B, O, tasks, strands) control counts or None; reverse complemented with the
        window (positions reversed, strands swapped, `sequence.reverse_complement`).

    Returns:
      Per target, (B, L, 4): (hyp(x) + rc(hyp(rc(x)))) / 2, where rc of an (L, 4) hyp
      reverses positions and complements channels. So x and rc(x) (with rc references and
      control) get each other's scores mapped: rc(out(x)) = out(rc(x)).
    """
    from bpnet_tfx.genome import sequence

    n = len(one_hot)

    def both(a, b):
        return np.ascontiguousarray(np.concatenate([a, b]))

    if control is not None:
        rc, rc_control = sequence.reverse_complement(one_hot, control)
        control = both(control, rc_control)
    else:
        rc = sequence.reverse_complement(one_hot)
    if references is not None:
        references = both(references, sequence.reverse_complement(references))
    hyps = score(both(one_hot, rc), references, control)
    return [0.5 * (h[:n] + sequence.reverse_complement(h[n:])) for h in hyps]


class Scorer:
    """Contribution scores of an exported model, on the default device.

    Args:
      model: the export, loaded (`export.ExportedModel`) or its folder.

    Raises:
      schema.SchemaError: a folder that is not a readable export.
    """

    def __init__(self, model: export.ExportedModel | str):
        from bpnet_tfx.inference import export

        self.model = (
            model if isinstance(model, export.ExportedModel) else (export.ExportedModel(model))
        )
        self.info, self.config = self.model.info, self.model.config
        self.targets = targets_of(self.info)
        self.length = self.config.sequence_length
        self.use_control = self.config.use_control
        self.control_shape = self.model.control_shape
        self.joint = self.config.profile_loss == 'joint'
        self._ig_fn = self._ism_fn = self._paired = None
        self._deepshap_fns = {}

    def _outputs(self, one_hot, control=None):
        """(profile logits (N, O, tasks, strands), counts head (N, tasks, strands or 1)).

        The counts head is log_counts per strand, or for a model trained with the joint
        profile loss its own log(1 + total) (`log_total_counts`, last axis 1). `control`
        (N, O, tasks, strands) goes to models trained with control tracks.
        """
        import tensorflow as tf

        out = self.model.outputs(one_hot, control)
        log_counts = out['log_total_counts' if self.joint else 'log_counts']
        return tf.cast(out['profile_logits'], tf.float32), tf.cast(log_counts, tf.float32)

    def _profile_weights(self, logits):
        """softmax of logits (N, O, tasks, strands) over positions, per strand; for a joint
        model over positions and strands together (the model's own distribution)."""

        axes = (1, 3) if self.joint else 1
        return rowwise.softmax(logits, axes)

    def _scores(self, one_hot, profile_weights=None, control=None):
        """Per target, (N,) scores; profile weights default to
        stop_gradient(`_profile_weights`(z))."""
        import tensorflow as tf

        logits, log_counts = self._outputs(one_hot, control)
        if profile_weights is None:
            profile_weights = tf.stop_gradient(self._profile_weights(logits))
        return self._targets_of(logits, log_counts, profile_weights)

    def _targets_of(self, logits, log_counts, profile_weights):
        """Per target, (N,) scores of the heads' outputs (`_outputs`) with these weights."""

        weighted = rowwise.reduce_sum(profile_weights * logits, (1, 3))  # (N, tasks)
        summed = rowwise.reduce_sum(log_counts, 2)
        return tuple((weighted if t.head == 'profile' else summed)[:, t.task] for t in self.targets)

    def _with_control_spec(self, fn, signature):
        """`fn(*args, ctrl)` as a tf.function of `signature`, whose last spec (the control
        input) is kept for models trained with control tracks and dropped (ctrl=None) for
        the others."""
        import tensorflow as tf

        if self.use_control:
            return tf.function(fn, input_signature=signature)
        return tf.function(lambda *args: fn(*args, None), input_signature=signature[:-1])

    def _ig_function(self):
        """The traced IG of a batch: (x, refs, steps[, control]) -> per target (B, L, 4)."""
        import tensorflow as tf

        length = self.length

        def ig(x, refs, num_steps, ctrl):
            shape = tf.shape(refs)
            flat_refs = tf.reshape(refs, (-1, length, 4))
            diff = tf.reshape(x[:, None] - refs, (-1, length, 4))
            if ctrl is not None:  # window b's control beside each of its K references
                ctrl = tf.repeat(ctrl, shape[1], axis=0)
            scale = 1.0 / tf.cast(num_steps, tf.float32)
            totals = tuple(tf.zeros_like(flat_refs) for _ in self.targets)
            for i in tf.range(num_steps):
                point = flat_refs + (tf.cast(i, tf.float32) + 0.5) * scale * diff
                with tf.GradientTape(persistent=True, watch_accessed_variables=False) as tape:
                    tape.watch(point)
                    scores = self._scores(point, control=ctrl)
                totals = tuple(
                    total + tape.gradient(score, point) for total, score in zip(totals, scores)
                )
            hyps = []
            for total in totals:
                grad = tf.reshape(total * scale, shape)
                hyp = grad - rowwise.reduce_sum(grad * refs, -1, keepdims=True)
                hyps.append(rowwise.reduce_mean(hyp, 1))
            return tuple(hyps)

        spec = tf.TensorSpec
        control = spec((None, *(self.control_shape or ())), tf.float32)
        return self._with_control_spec(
            ig,
            [
                spec((None, length, 4), tf.float32),
                spec((None, None, length, 4), tf.float32),
                spec((), tf.int32),
                control,
            ],
        )

    def integrated_gradients(
        self,
        one_hot: np.ndarray,
        references: np.ndarray,
        steps: int,
        control: np.ndarray | None = None,
    ) -> list[np.ndarray]:
        """Hypothetical contributions by integrated gradients from each reference.

        Args:
          one_hot: (B, L, 4) windows.
          references: (B, K, L, 4) references per window (dinucleotide shuffles).
          steps: midpoint-rule steps S along each path; the device runs B x K inputs a step.
          control: (B, O, tasks, strands) observed control counts, for (and only for) models
            trained with control tracks; held fixed along every path, not interpolated.

        Returns:
          Per target, (B, L, 4) float32 hyp (module docstring); one tf.function call.

        Raises:
          export.ExportError: a model with control tracks gets no control (or one of another
            shape).
        """
        import tensorflow as tf

        control = self.model.check_control(control, len(one_hot))
        if self._ig_fn is None:
            self._ig_fn = self._ig_function()
        args = [
            tf.constant(one_hot, tf.float32),
            tf.constant(references, tf.float32),
            tf.constant(steps, tf.int32),
        ]
        if control is not None:
            args.append(tf.constant(control))
        return [h.numpy() for h in self._ig_fn(*args)]

    def _deepshap_function(self, averaged: bool):
        """The traced DeepSHAP of a batch: (x, refs[, control]) -> per target (B, L, 4) hyp
        (`averaged`), else the (B, K, L, 4) DeepLIFT multipliers of x against each reference
        (rescale rule, `deeplift`)."""
        import tensorflow as tf

        from bpnet_tfx.attribution import deeplift

        if self._paired is None:
            self._paired = deeplift.rescale_model(self.model)
        model, several = self._paired, self.config.num_tasks > 1

        def deepshap(x, refs, ctrl):
            k = tf.shape(refs)[1]
            with tf.GradientTape(persistent=True, watch_accessed_variables=False) as tape:
                tape.watch(refs)
                out_x, out_r = deeplift.paired_outputs(model, x, refs, ctrl)
                logits_x, logits, log_counts = (
                    out_x['profile'],
                    out_r['profile'],
                    out_r['log_counts'],
                )
                if not several:
                    logits_x, logits = logits_x[:, :, None], logits[:, :, None]
                    log_counts = log_counts[:, None]
                # The window's own weights, fixed, for each of its references: the target is
                # linear in the logits, so f(x) - f(r) is explained with one set of weights
                # (as ism scores mutants).
                weights = tf.stop_gradient(self._profile_weights(logits_x))
                scores = self._targets_of(logits, log_counts, tf.repeat(weights, k, axis=0))
            multipliers = [tape.gradient(s, refs) for s in scores]
            if not averaged:
                return tuple(multipliers)
            return tuple(
                rowwise.reduce_mean(m - rowwise.reduce_sum(m * refs, -1, keepdims=True), 1)
                for m in multipliers
            )

        spec = tf.TensorSpec
        control = spec((None, *(self.control_shape or ())), tf.float32)
        return self._with_control_spec(
            deepshap,
            [
                spec((None, self.length, 4), tf.float32),
                spec((None, None, self.length, 4), tf.float32),
                control,
            ],
        )

    def _call_deepshap(self, averaged, one_hot, references, control):
        import tensorflow as tf

        control = self.model.check_control(control, len(one_hot))
        if averaged not in self._deepshap_fns:
            self._deepshap_fns[averaged] = self._deepshap_function(averaged)
        args = [tf.constant(one_hot, tf.float32), tf.constant(references, tf.float32)]
        if control is not None:
            args.append(tf.constant(control))
        return [m.numpy() for m in self._deepshap_fns[averaged](*args)]

    def deeplift_multipliers(
        self, one_hot: np.ndarray, references: np.ndarray, control: np.ndarray | None = None
    ) -> list[np.ndarray]:
        """DeepLIFT multipliers (rescale rule) of each window against each of its references.

        Args:
          one_hot: (B, L, 4) windows.
          references: (B, K, L, 4) references per window; the device runs B (1 + K) inputs.
          control: (B, O, tasks, strands) control counts of control models, the same for a
            window and its references.

        Returns:
          Per target, (B, K, L, 4) float32 m_k, with sum over l of m_k[l] . (x[l] - r_k[l])
          = f(x) - f(r_k), f the target with x's profile weights (module docstring).

        Raises:
          export.ExportError: control tracks missing or misshapen, or an export whose
            variables do not fit its model config.
        """
        return self._call_deepshap(False, one_hot, references, control)

    def deepshap(
        self, one_hot: np.ndarray, references: np.ndarray, control: np.ndarray | None = None
    ) -> list[np.ndarray]:
        """Hypothetical contributions by DeepSHAP: DeepLIFT multipliers against each
        reference, projected onto every base and averaged over the references (on the
        device, in the same call).

        Args: as `deeplift_multipliers`.

        Returns:
          Per target, (B, L, 4) float32 hyp = mean_k (m_k - m_k . r_k) (module docstring).
        """
        return self._call_deepshap(True, one_hot, references, control)

    def _ism_function(self):
        """The traced scores of one window's mutants: (x, positions, bases, weights[,
        control]) -> per target (M,) scores of x with base bases[m] at positions[m]."""
        import tensorflow as tf

        length = self.length

        def ism(x, positions, bases, weights, ctrl):
            mask = tf.one_hot(positions, length)[:, :, None]
            mutants = x[None] * (1.0 - mask) + mask * tf.one_hot(bases, 4)[:, None, :]
            if ctrl is not None:
                ctrl = tf.repeat(ctrl[None], tf.shape(mutants)[0], axis=0)
            return self._scores(mutants, weights[None], ctrl)

        spec = tf.TensorSpec
        return self._with_control_spec(
            ism,
            [
                spec((length, 4), tf.float32),
                spec((None,), tf.int32),
                spec((None,), tf.int32),
                spec((None, None, None), tf.float32),
                spec(self.control_shape, tf.float32),
            ],
        )

    def mutagenesis(
        self, one_hot: np.ndarray, batch_size: int, control: np.ndarray | None = None
    ) -> list[np.ndarray]:
        """Hypothetical contributions by in-silico mutagenesis of every base of each window.

        Args:
          one_hot: (B, L, 4) windows.
          batch_size: mutated windows per device call.
          control: (B, O, tasks, strands) observed control counts, for models trained with
            control tracks; every mutant of a window gets that window's control, unmutated.

        Returns:
          Per target, (B, L, 4) float32 hyp = delta - mean over bases of delta.

        Raises:
          export.ExportError: a model with control tracks gets no control (or one of another
            shape).
        """
        import tensorflow as tf

        control = self.model.check_control(control, len(one_hot))
        if self._ism_fn is None:
            self._ism_fn = self._ism_function()
        one_hot = np.asarray(one_hot, np.float32)
        ctrl = None if control is None else tf.constant(control)
        logits, _ = self._outputs(tf.constant(one_hot), ctrl)
        weights = self._profile_weights(logits)
        reference = [s.numpy() for s in self._scores(tf.constant(one_hot), weights, ctrl)]
        out = [np.zeros(one_hot.shape, np.float32) for _ in self.targets]
        for w, x in enumerate(one_hot):
            positions, bases = np.nonzero(x == 0)  # every base but the observed one
            extra = [] if control is None else [tf.constant(control[w])]
            for b in range(0, len(positions), batch_size):
                p, q = positions[b : b + batch_size], bases[b : b + batch_size]
                scores = self._ism_fn(
                    tf.constant(x),
                    tf.constant(p, tf.int32),
                    tf.constant(q, tf.int32),
                    weights[w],
                    *extra,
                )
                for delta, score, ref in zip(out, scores, reference):
                    delta[w, p, q] = score.numpy() - ref[w]
        return [delta - delta.mean(axis=-1, keepdims=True) for delta in out]
