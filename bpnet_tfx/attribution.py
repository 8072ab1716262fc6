"""Contribution scores of an exported BPNet, as modisco-lite inputs and bigWig tracks.

Every score is computed through the SavedModel's `serving_default` signature (gradients flow
through a loaded concrete function), so the export alone suffices. Two targets per task, BPNet's:
the profile target sum over positions l and strands s of stop_gradient(softmax_l(z))[l, s] *
z[l, s], where z are the profile logits (the softmax runs over positions, per strand), and the
counts target sum over strands of log_counts (log(1 + counts) per strand). For a model trained
with the joint profile loss (one multinomial over length x strands) the softmax runs over
positions and strands together and the counts target is the model's own log(1 + total)
(`log_total_counts`), as ChromBPNet explains its heads. The logits span the model's output
window (output_length bp, centred in the input); contributions cover the whole input window.

Integrated gradients (`method='ig'`, DeepSHAP-equivalent): each window x gets K
dinucleotide-shuffled references r_k (`dinuc_shuffle`, exact Altschul-Erikson); g_k is the
gradient of the target averaged over S midpoint steps of the straight path from r_k to x
(alpha = (i + 1/2) / S). The hypothetical contribution of base b at position l is the
contribution b would have there, the multipliers projected onto e_b as in DeepSHAP:

    hyp[l, b] = mean_k  g_k[l, :] . (e_b - r_k[l, :])  =  mean_k (g_k[l, b] - g_k[l, :] . r_k[l, :])

and the actual (observed-base) contribution is hyp[l, :] . x[l, :] = mean_k g_k[l, :] .
(x[l, :] - r_k[l, :]), the integrated-gradients attribution of position l averaged over the
references (zero at N). In-silico mutagenesis (`method='ism'`) scores every single-base
substitution: delta[l, b] = score(x with b at l) - score(x) (zero at the observed base), and
hyp[l, b] = delta[l, b] - mean_b' delta[l, b'], so that the observed-base contribution is minus
the mean effect of changing that base. ISM's profile score uses the reference window's own
probabilities as fixed weights, sum p_ref[l, s] * z'[l, s] (the target's stop_gradient at x),
and its counts score is the same sum of log_counts; it needs 3 L + 1 forward passes per window.

Models trained with control tracks take each window's observed control counts as a second
input. The control is context, not an input to explain: it is held fixed at the window's
observed counts for every path point, reference and mutant (never interpolated, shuffled or
mutated), so contributions explain f(x, c) - mean_k f(r_k, c) for the window's control c.
Controls come from the records (made with controls) or, for BED regions, from the control
bigWigs; a control model given neither is refused rather than fed zeros.

Outputs (`compute_contributions`) go to a temporary sibling of the output folder, renamed into
place once complete: regions.bed (one row per window, in row order), ohe.npz (one-hot, N x 4 x L
under 'arr_0'), and per target a folder (`profile`, `counts`; `<task>.profile`... with several
tasks) with shap.npz (hypothetical contributions, N x 4 x L, 'arr_0'; `modisco motifs -s ohe.npz
-a profile/shap.npz`) and contrib.bw (observed-base contributions; where windows overlap, each
base gets the mean over the windows covering it), plus summary.json.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time
from typing import Any, Iterator, Sequence

import numpy as np

from bpnet_tfx import genome_io, schema, sequence
from bpnet_tfx.errors import BpnetError

METHODS = ('ig', 'ism')
HEADS = ('profile', 'counts')
REGIONS_FILENAME = 'regions.bed'
ONE_HOT_FILENAME = 'ohe.npz'
HYPOTHETICAL_FILENAME = 'shap.npz'
BIGWIG_FILENAME = 'contrib.bw'
SUMMARY_FILENAME = 'summary.json'

_NUM_TOKENS = 5  # A, C, G, T and 'other' (N), which keeps its place in dinucleotides
_TOKEN_ROWS = np.concatenate([np.eye(4), np.zeros((1, 4))])


class ContribError(BpnetError):
    """Bad input or an incompatible model, reported in one line."""


# Dinucleotide shuffle.

def _tokens(one_hot: np.ndarray) -> np.ndarray:
    """(..., L, 4) one-hot -> (..., L) int64 tokens: 0..3 for ACGT, 4 for an all-zero row."""
    one_hot = np.asarray(one_hot)
    return np.where(one_hot.sum(axis=-1) > 0, np.argmax(one_hot, axis=-1), 4).astype(np.int64)


def _last_edges(tokens: list[int], out_edges: list[list[int]],
                rng: np.random.Generator) -> list[int]:
    """Wilson's algorithm: a random arborescence of last exit edges, toward the final token.

    Edge i leads from tokens[i] to tokens[i + 1]. Each vertex's last exit edge is drawn
    uniformly among its edge instances along loop-erased random walks, which samples
    arborescences with probability proportional to the product of edge multiplicities; with
    the other edges in random order this makes every Eulerian path equally likely (Kandel et
    al. 1996), hence every sequence with the same dinucleotide counts.

    Returns:
      Per vertex, the position of its last exit edge, or -1 (the final vertex, or absent).
    """
    root = tokens[-1]
    in_tree = [v == root for v in range(_NUM_TOKENS)]
    last = [-1] * _NUM_TOKENS
    for v in range(_NUM_TOKENS):
        u = v
        while not in_tree[u] and out_edges[u]:
            edges = out_edges[u]
            last[u] = edges[int(rng.random() * len(edges))]
            u = tokens[last[u] + 1]
        u = v
        while not in_tree[u] and out_edges[u]:
            in_tree[u] = True
            u = tokens[last[u] + 1]
    return last


def _shuffle_tables(tokens: np.ndarray, num_shuffles: int, rng: np.random.Generator):
    """Each shuffle's successor table (exits grouped by source token, last exit last)."""
    n = tokens.size
    as_list = tokens.tolist()
    out_edges = [[] for _ in range(_NUM_TOKENS)]
    for i, t in enumerate(as_list[:-1]):
        out_edges[t].append(i)
    keys = rng.random((num_shuffles, n - 1))
    for k in range(num_shuffles):
        for position in _last_edges(as_list, out_edges, rng):
            if position >= 0:
                keys[k, position] = 2.0  # after every other exit of its vertex
    order = np.argsort(tokens[:-1] * 4.0 + keys, axis=1, kind='stable')
    successors = tokens[order + 1]
    starts = np.concatenate([[0], np.cumsum(np.bincount(tokens[:-1],
                                                        minlength=_NUM_TOKENS))[:-1]])
    return successors, np.broadcast_to(starts, (num_shuffles, _NUM_TOKENS))


def dinuc_shuffle(one_hot: np.ndarray, num_shuffles: int,
                  rng: np.random.Generator | Sequence[np.random.Generator]) -> np.ndarray:
    """Shuffles sequences keeping their dinucleotide counts exactly (Altschul-Erikson).

    Each shuffle is drawn uniformly from the sequences with the same first base and the same
    count of every dinucleotide (hence of every base, and the same last base), as an Eulerian
    path through the multigraph of the sequence's dinucleotides: a random arborescence of last
    exit edges (Wilson's algorithm), the other exits in random order. N and other all-zero
    rows are a fifth letter: their dinucleotides are kept too. All shuffles are walked in
    lockstep, so a batch costs L vectorised steps.

    Args:
      one_hot: (L, 4) or (B, L, 4) one-hot, ACGT.
      num_shuffles: shuffles per sequence.
      rng: a generator, or (for a batch) one generator per sequence.

    Returns:
      (num_shuffles, L, 4), or (B, num_shuffles, L, 4), of `one_hot`'s dtype.
    """
    one_hot = np.asarray(one_hot)
    single = one_hot.ndim == 2
    batch = one_hot[None] if single else one_hot
    rngs = [rng] * len(batch) if isinstance(rng, np.random.Generator) else list(rng)
    if len(rngs) != len(batch):
        raise ValueError(f'{len(batch)} sequences but {len(rngs)} generators')
    tokens = _tokens(batch)
    b, n = tokens.shape
    out = np.repeat(tokens[:, None], num_shuffles, axis=1).reshape(b * num_shuffles, n)
    if n > 2 and b and num_shuffles:
        tables = [_shuffle_tables(t, num_shuffles, r) for t, r in zip(tokens, rngs)]
        successors = np.concatenate([s for s, _ in tables])
        pointer = np.concatenate([p for _, p in tables]).copy()
        rows = np.arange(len(out))
        current = out[:, 0].copy()
        for j in range(1, n):
            step = successors[rows, pointer[rows, current]]
            pointer[rows, current] += 1
            out[:, j] = current = step
    shuffled = _TOKEN_ROWS.astype(one_hot.dtype)[out].reshape(b, num_shuffles, n, 4)
    return shuffled[0] if single else shuffled


# The model and its targets.

@dataclasses.dataclass(frozen=True)
class Target:
    """One scalar per window to explain: a head of one task."""

    name: str  # output folder: 'profile', 'counts', or '<task>.profile' with several tasks
    task: int
    head: str  # 'profile' or 'counts'


def targets_of(info: schema.RecordsInfo) -> list[Target]:
    """The targets explained for a model trained on `info`'s tasks, in output order."""
    several = info.num_tasks > 1
    return [Target(f'{genome_io.file_label(task)}.{head}' if several else head, t, head)
            for t, task in enumerate(info.tasks) for head in HEADS]


class Scorer:
    """Contribution scores through an exported SavedModel, on the default device.

    Args:
      saved_model: folder written by `export.export_saved_model` (`serving_default` is used).
    """

    def __init__(self, saved_model: str):
        from bpnet_tfx import export
        self.info, self.config = export.load_export_info(saved_model)
        self.saved_model = saved_model
        # `_loaded` stays referenced: a tf.function tracing the signature needs its variables.
        self._loaded, self._serve = export.load_saved_model(saved_model, self.config)
        self.targets = targets_of(self.info)
        self.length = self.config.sequence_length
        self.use_control = self.config.use_control
        self.joint = self.config.profile_loss == 'joint'
        self.control_shape = None
        if self.use_control:
            spec = self._serve.structured_input_signature[1].get(export.CONTROL_INPUT)
            if spec is None:
                raise ContribError(f'{saved_model}: model_config.json says the model takes '
                                   f'control tracks but its {export.SIGNATURE!r} signature '
                                   'has no control input')
            self.control_shape = tuple(int(d) for d in spec.shape[1:])
        self._ig_fn = self._ism_fn = None

    def check_control(self, control: np.ndarray | None, batch: int) -> np.ndarray | None:
        """`control` as float32 (batch, *control_shape), or None for models without controls.

        Raises:
          ContribError: a model trained with control tracks gets none, or of another shape.
        """
        if not self.use_control:
            return None
        if control is None:
            raise ContribError(f'{self.saved_model} was trained with control tracks and needs '
                               'the observed control counts of every window (records made '
                               'with controls, or control bigWigs); scoring without them '
                               'would be silently wrong')
        control = np.asarray(control, np.float32)
        if control.shape != (batch, *self.control_shape):
            raise ContribError(f'{self.saved_model} takes control counts of shape (N, '
                               f'{", ".join(map(str, self.control_shape))}), got '
                               f'{control.shape}')
        return control

    def _outputs(self, one_hot, control=None):
        """(profile logits (N, O, tasks, strands), counts head (N, tasks, strands or 1)).

        The counts head is log_counts per strand, or for a model trained with the joint
        profile loss its own log(1 + total) (`log_total_counts`, last axis 1). `control`
        (N, O, tasks, strands) goes to models trained with control tracks.
        """
        import tensorflow as tf
        inputs = {'one_hot': one_hot}
        if self.use_control:
            inputs['control'] = control
        from bpnet_tfx import export
        out = export.with_task_axis(self._serve(**inputs), self.config.num_tasks)
        log_counts = out['log_total_counts' if self.joint else 'log_counts']
        return tf.cast(out['profile_logits'], tf.float32), tf.cast(log_counts, tf.float32)

    def _profile_weights(self, logits):
        """softmax of logits (N, O, tasks, strands) over positions, per strand; for a joint
        model over positions and strands together (the model's own distribution)."""
        import tensorflow as tf
        axes = (1, 3) if self.joint else 1
        return tf.exp(logits - tf.reduce_logsumexp(logits, axis=axes, keepdims=True))

    def _scores(self, one_hot, profile_weights=None, control=None):
        """Per target, (N,) scores; profile weights default to
        stop_gradient(`_profile_weights`(z))."""
        import tensorflow as tf
        logits, log_counts = self._outputs(one_hot, control)
        if profile_weights is None:
            profile_weights = tf.stop_gradient(self._profile_weights(logits))
        weighted = tf.reduce_sum(profile_weights * logits, axis=(1, 3))  # (N, tasks)
        summed = tf.reduce_sum(log_counts, axis=2)
        return tuple((weighted if t.head == 'profile' else summed)[:, t.task]
                     for t in self.targets)

    def _control_spec(self):
        import tensorflow as tf
        return tf.TensorSpec((None, *self.control_shape), tf.float32)

    def integrated_gradients(self, one_hot: np.ndarray, references: np.ndarray,
                             steps: int, control: np.ndarray | None = None) -> list[np.ndarray]:
        """Hypothetical contributions by integrated gradients from each reference.

        Args:
          one_hot: (B, L, 4) windows.
          references: (B, K, L, 4) references per window (dinucleotide shuffles).
          steps: midpoint-rule steps S along each path; the device runs B x K inputs a step.
          control: (B, L, tasks, strands) observed control counts, for (and only for) models
            trained with control tracks; held fixed along every path, not interpolated.

        Returns:
          Per target, (B, L, 4) float32 hyp (module docstring); one tf.function call.

        Raises:
          ContribError: a model with control tracks gets no control (or one of another shape).
        """
        import tensorflow as tf
        control = self.check_control(control, len(one_hot))
        if self._ig_fn is None:
            length = self.length
            spec = tf.TensorSpec

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
                    with tf.GradientTape(persistent=True,
                                         watch_accessed_variables=False) as tape:
                        tape.watch(point)
                        scores = self._scores(point, control=ctrl)
                    totals = tuple(total + tape.gradient(score, point)
                                   for total, score in zip(totals, scores))
                hyps = []
                for total in totals:
                    grad = tf.reshape(total * scale, shape)
                    hyp = grad - tf.reduce_sum(grad * refs, axis=-1, keepdims=True)
                    hyps.append(tf.reduce_mean(hyp, axis=1))
                return tuple(hyps)

            signature = [spec((None, length, 4), tf.float32),
                         spec((None, None, length, 4), tf.float32), spec((), tf.int32)]
            if self.use_control:
                self._ig_fn = tf.function(ig, input_signature=signature + [self._control_spec()])
            else:
                self._ig_fn = tf.function(lambda x, refs, num_steps: ig(x, refs, num_steps, None),
                                          input_signature=signature)
        args = [tf.constant(one_hot, tf.float32), tf.constant(references, tf.float32),
                tf.constant(steps, tf.int32)]
        if control is not None:
            args.append(tf.constant(control))
        return [h.numpy() for h in self._ig_fn(*args)]

    def mutagenesis(self, one_hot: np.ndarray, batch_size: int,
                    control: np.ndarray | None = None) -> list[np.ndarray]:
        """Hypothetical contributions by in-silico mutagenesis of every base of each window.

        Args:
          one_hot: (B, L, 4) windows.
          batch_size: mutated windows per device call.
          control: (B, L, tasks, strands) observed control counts, for models trained with
            control tracks; every mutant of a window gets that window's control, unmutated.

        Returns:
          Per target, (B, L, 4) float32 hyp = delta - mean over bases of delta.

        Raises:
          ContribError: a model with control tracks gets no control (or one of another shape).
        """
        import tensorflow as tf
        control = self.check_control(control, len(one_hot))
        length = self.length
        if self._ism_fn is None:
            spec = tf.TensorSpec

            def ism(x, positions, bases, weights, ctrl):
                mask = tf.one_hot(positions, length)[:, :, None]
                mutants = x[None] * (1.0 - mask) + mask * tf.one_hot(bases, 4)[:, None, :]
                if ctrl is not None:
                    ctrl = tf.repeat(ctrl[None], tf.shape(mutants)[0], axis=0)
                return self._scores(mutants, weights[None], ctrl)

            signature = [spec((length, 4), tf.float32), spec((None,), tf.int32),
                         spec((None,), tf.int32), spec((None, None, None), tf.float32)]
            if self.use_control:
                self._ism_fn = tf.function(ism, input_signature=signature + [
                    spec(self.control_shape, tf.float32)])
            else:
                self._ism_fn = tf.function(
                    lambda x, positions, bases, weights: ism(x, positions, bases, weights, None),
                    input_signature=signature)
        one_hot = np.asarray(one_hot, np.float32)
        logits, _ = self._outputs(tf.constant(one_hot),
                                  None if control is None else tf.constant(control))
        weights = self._profile_weights(logits)
        reference = [s.numpy() for s in self._scores(
            tf.constant(one_hot), weights, None if control is None else tf.constant(control))]
        out = [np.zeros(one_hot.shape, np.float32) for _ in self.targets]
        for w, x in enumerate(one_hot):
            positions, bases = np.nonzero(x == 0)  # every base but the observed one
            extra = [] if control is None else [tf.constant(control[w])]
            for b in range(0, len(positions), batch_size):
                p, q = positions[b:b + batch_size], bases[b:b + batch_size]
                scores = self._ism_fn(tf.constant(x), tf.constant(p, tf.int32),
                                      tf.constant(q, tf.int32), weights[w], *extra)
                for delta, score, ref in zip(out, scores, reference):
                    delta[w, p, q] = score.numpy() - ref[w]
        return [delta - delta.mean(axis=-1, keepdims=True) for delta in out]


# Windows: from records or from a BED file and a FASTA.

@dataclasses.dataclass(frozen=True)
class Window:
    """One row of the outputs: a model-length window of the genome."""

    chrom: str
    start: int
    end: int
    name: str


def bed_windows(regions_bed: str, sizes: dict[str, int], length: int, *,
                fasta: str = 'the FASTA') -> list[Window]:
    """One window per BED line, in the file's order: the `length`-bp window centred on the
    interval's midpoint (shorter and longer intervals alike), shifted inside the chromosome
    where it would run past an end (`genome_io.bed_windows`); named by the BED's 4th column,
    or 'chrom:start-end' of the window.

    Raises:
      genome_io.GenomeError: a malformed line, a chromosome not in the FASTA, an interval
        past the chromosome's end or a chromosome shorter than the window ('file:line: ...'),
        or no regions.
    """
    return [Window(w.chrom, w.start, w.end, w.name or f'{w.chrom}:{w.start}-{w.end}')
            for w in genome_io.bed_windows(regions_bed, sizes, length, fasta=fasta)]


def _bed_batches(genome, windows: list[Window], batch: int,
                 controls: list[tuple[str, str]] | None = None,
                 control_length: int | None = None
                 ) -> Iterator[tuple[list[Window], np.ndarray, np.ndarray | None]]:
    """Yields (windows, one_hot (B, L, 4), control (B, control_length, tasks, 2) or None);
    control counts come from the (plus, minus) bigWig pair of each task in `controls`, over
    the `control_length` bp centred in each window."""
    for b in range(0, len(windows), batch):
        part = windows[b:b + batch]
        one_hot = np.stack([sequence.one_hot(genome[w.chrom][w.start:w.end]) for w in part])
        control = None
        if controls:
            trim = (part[0].end - part[0].start - control_length) // 2
            try:
                control = np.stack([genome_io.read_tracks(
                    controls, w.chrom, w.start + trim, w.start + trim + control_length)
                    for w in part])
            except genome_io.GenomeError as e:
                raise ContribError(f'control tracks: {e}') from None
        yield part, one_hot, control


def _records_batches(records_dir: str, info: schema.RecordsInfo, split: str, batch: int,
                     limit: int | None
                     ) -> Iterator[tuple[list[Window], np.ndarray, np.ndarray | None]]:
    """Yields (windows, one_hot (B, L, 4), control (B, L, tasks, strands) or None) of the
    split's centred windows; control where the records hold it."""
    import tensorflow as tf

    from bpnet_tfx import data
    done = 0
    elements = iter(data.make_eval_dataset(records_dir, info, split, batch_size=batch))
    while limit is None or done < limit:
        try:
            element = next(elements, None)
        except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as e:
            raise ContribError(f'{records_dir}: reading the {split} records failed (corrupt or '
                               f'truncated shard?): {e.message.splitlines()[0]}') from None
        if element is None:
            return
        ids = [i.decode() for i in element['region_id'].numpy()]
        one_hot = element['one_hot'].numpy()
        control = element['control'].numpy() if 'control' in element else None
        if limit is not None:
            ids, one_hot = ids[:limit - done], one_hot[:limit - done]
            control = None if control is None else control[:limit - done]
        windows = []
        for region_id in ids:
            try:
                chrom, start, end = genome_io.parse_region(region_id)
            except genome_io.GenomeError:
                raise ContribError(f'{records_dir}: record id {region_id!r} is not '
                                   "'chrom:start-end'; cannot place it in the genome") from None
            # Ids name the centred window; one that includes the jitter margin shares its centre.
            start, end = genome_io.centred_window(start, end, info.sequence_length)
            windows.append(Window(chrom, start, end, region_id))
        done += len(windows)
        yield windows, one_hot, control


# Tracks.

def average_overlaps(windows: Sequence[Window], values: np.ndarray,
                     chrom_order: Sequence[str]) -> list[tuple[str, int, np.ndarray]]:
    """Per-base values over the union of the windows, overlaps averaged.

    Args:
      windows: N windows, each `values.shape[1]` bp.
      values: (N, L) per-base values.
      chrom_order: chromosomes in output order (every window's chromosome must be there).

    Returns:
      [(chrom, start, values)] of maximal runs of overlapping windows, sorted by chromosome in
      `chrom_order`, then start; each base appears once, with the mean over the windows
      covering it.
    """
    rank = {c: i for i, c in enumerate(chrom_order)}
    order = sorted(range(len(windows)), key=lambda i: (rank[windows[i].chrom], windows[i].start))
    runs: list[list[Any]] = []  # [chrom, start, end, [window indices]]
    for i in order:
        w = windows[i]
        if runs and runs[-1][0] == w.chrom and w.start < runs[-1][2]:
            runs[-1][2] = max(runs[-1][2], w.end)
            runs[-1][3].append(i)
        else:
            runs.append([w.chrom, w.start, w.end, [i]])
    out = []
    for chrom, start, end, members in runs:
        total = np.zeros(end - start)
        cover = np.zeros(end - start)
        for i in members:
            total[windows[i].start - start:windows[i].end - start] += values[i]
            cover[windows[i].start - start:windows[i].end - start] += 1
        out.append((chrom, start, total / cover))
    return out


def write_bigwig(path: str, header: Sequence[tuple[str, int]], windows: Sequence[Window],
                 values: np.ndarray) -> None:
    """Writes per-base `values` (N, L) of `windows` as a bigWig, overlaps averaged."""
    import pyBigWig
    bw = pyBigWig.open(path, 'w')
    if bw is None:
        raise ContribError(f'{path}: cannot write bigWig')
    try:
        bw.addHeader(list(header))
        for chrom, start, run in average_overlaps(windows, values, [c for c, _ in header]):
            bw.addEntries(chrom, start, values=run.astype(np.float64), span=1, step=1)
    finally:
        bw.close()


# The whole job.

def _progress(done: int, total: int | None, start: float) -> None:
    rate = done / max(time.perf_counter() - start, 1e-9)
    of = f'/{total} ({100 * done / total:.0f}%)' if total else ''
    print(f'contrib: {done}{of} regions, {rate:.2f} regions/s', file=sys.stderr, flush=True)


def _records_header(records_dir: str, info: schema.RecordsInfo, fasta: str | None,
                    windows: list[Window]) -> tuple[list[tuple[str, int]], str]:
    """bigWig header: the FASTA's chromosomes (given, or the records' own if readable), else
    the records' chromosomes in order of appearance, each as long as its last window's end."""
    candidate = fasta or info.source.get('fasta')
    if candidate and os.path.isfile(candidate):
        with genome_io.open_fasta(candidate) as genome:
            sizes = {name: len(genome[name]) for name in genome.keys()}
        bad = next((w for w in windows if w.chrom not in sizes or w.end > sizes[w.chrom]), None)
        if bad is None:
            return list(sizes.items()), candidate
        if fasta:
            raise ContribError(f'{records_dir}: window {bad.name} is not within {fasta}')
    elif fasta:
        raise ContribError(f'{fasta}: no such FASTA file')
    sizes: dict[str, int] = {}
    for w in windows:
        sizes[w.chrom] = max(sizes.get(w.chrom, 0), w.end)
    return list(sizes.items()), 'the records'


def _with_references(batches, num_shuffles: int, seed: int):
    """Yields (windows, one_hot, references, control); the next batch's shuffles are made in
    a thread while the device works on the current one. Window i's references come from
    default_rng([seed, i]), whatever the batching. Only the sequence is shuffled: the control
    stays the window's observed one."""
    def prepare(batch_windows, one_hot, control, first):
        one_hot = one_hot.astype(np.float32)
        rngs = [np.random.default_rng([seed, first + i]) for i in range(len(one_hot))]
        return batch_windows, one_hot, dinuc_shuffle(one_hot, num_shuffles, rngs), control

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending, first = None, 0
        for batch_windows, one_hot, control in batches:
            ready = pool.submit(prepare, batch_windows, one_hot, control, first)
            first += len(batch_windows)
            if pending is not None:
                yield pending.result()
            pending = ready
        if pending is not None:
            yield pending.result()


def _score_all(scorer: Scorer, batches, total: int | None, method: str, num_shuffles: int,
               steps: int, batch_size: int, seed: int, progress_seconds: float):
    """Scores every window of `batches`: (windows, one_hot (N, L, 4), {target: hyp})."""
    windows: list[Window] = []
    one_hots: list[np.ndarray] = []
    hyps: dict[str, list[np.ndarray]] = {t.name: [] for t in scorer.targets}
    start = last_report = time.perf_counter()
    if method == 'ig':
        work = ((w, x, scorer.integrated_gradients(x, refs, steps, control))
                for w, x, refs, control in _with_references(batches, num_shuffles, seed))
    else:
        work = ((w, x, scorer.mutagenesis(x, batch_size, control))
                for w, x, control in ((w, x.astype(np.float32), c) for w, x, c in batches))
    for batch_windows, one_hot, out in work:
        for t, h in zip(scorer.targets, out):
            hyps[t.name].append(h)
        windows.extend(batch_windows)
        one_hots.append(one_hot)
        now = time.perf_counter()
        if now - last_report >= progress_seconds:
            _progress(len(windows), total, start)
            last_report = now
    if windows:
        _progress(len(windows), total, start)
    return (windows, np.concatenate(one_hots) if one_hots else None,
            {k: np.concatenate(v) if v else None for k, v in hyps.items()})


def compute_contributions(saved_model: str, output_dir: str, *,
                          records_dir: str | None = None, split: str = 'valid',
                          regions_bed: str | None = None, fasta: str | None = None,
                          control_pos_bigwig: str | None = None,
                          control_neg_bigwig: str | None = None, method: str = 'ig', num_shuffles: int = 10, steps: int = 20,
                          batch_size: int = 128, seed: int = 0,
                          max_regions: int | None = None, overwrite: bool = False,
                          progress_seconds: float = 30.0) -> dict[str, Any]:
    """Computes contribution scores of every window and writes the output folder.

    Windows come from `records_dir`'s `split` (the centred windows; region ids give their
    coordinates) or from `regions_bed` (`bed_windows`, sequence from `fasta`, by default the
    FASTA the records were made from). Layout and formulas: module docstring. The folder is
    written beside `output_dir` and renamed into place only when complete.

    A model trained with control tracks gets each window's observed control counts, held
    fixed (IG interpolates and ISM mutates the sequence only): the records' control feature,
    or, with `regions_bed`, the control bigWigs (by default each task's files named in the
    model's metadata, as `predict` reads them).

    Args:
      saved_model: the export.
      output_dir: the folder to create.
      records_dir: records folder (give this or `regions_bed`).
      split: the records' split.
      regions_bed: BED of regions.
      fasta: genome FASTA for `regions_bed` (and the bigWig header with records).
      control_pos_bigwig, control_neg_bigwig: control bigWigs for `regions_bed` and a model
        trained with control tracks (given ones apply to every task); default: the
        metadata's.
      method: 'ig' (integrated gradients from dinucleotide shuffles) or 'ism'.
      num_shuffles: K references per window (ig).
      steps: S midpoint steps per path (ig).
      batch_size: model inputs per device call: windows x K path points (ig; at least one
        window), or mutated windows (ism).
      seed: window i's references come from numpy.random.default_rng([seed, i]).
      max_regions: stop after this many windows (None: all).
      overwrite: replace an existing `output_dir` (only once the new one is complete).
      progress_seconds: a progress line on stderr at most this often.

    Returns:
      {'regions', 'seconds', 'output_dir', 'files', 'method', 'num_shuffles', 'steps',
       'targets', 'header_from', 'control' (None, 'records', or the bigWig pairs per task)}.

    Raises:
      ContribError: bad flags or input (one line); schema.SchemaError: unreadable export or
        records.
    """
    start_time = time.perf_counter()
    if bool(records_dir) == bool(regions_bed):
        raise ContribError('give exactly one of --records_dir and --regions_bed')
    if method not in METHODS:
        raise ContribError(f'--method must be one of {", ".join(METHODS)}, got {method!r}')
    for name, value in (('num_shuffles', num_shuffles), ('steps', steps),
                        ('batch_size', batch_size)):
        if value < 1:
            raise ContribError(f'--{name} must be >= 1, got {value}')
    if max_regions is not None and max_regions < 1:
        raise ContribError(f'--max_regions must be >= 1, got {max_regions}')
    output_dir = os.path.abspath(output_dir)
    if os.path.exists(output_dir) and not (overwrite and os.path.isdir(output_dir)):
        raise ContribError(f'{output_dir} exists; pass --overwrite to replace it')
    if regions_bed and not os.path.isfile(regions_bed):
        raise ContribError(f'{regions_bed}: no such BED file')
    if records_dir:
        info = schema.RecordsInfo.load(records_dir)  # before TensorFlow: fails fast
    if fasta and not os.path.isfile(fasta):
        raise ContribError(f'{fasta}: no such FASTA file')
    if records_dir and (control_pos_bigwig or control_neg_bigwig):
        raise ContribError('--control_pos_bigwig/--control_neg_bigwig go with --regions_bed; '
                           'with --records_dir the records\' own control counts are used')

    from bpnet_tfx import export
    export_info, config = export.load_export_info(saved_model)
    length = config.sequence_length
    if (control_pos_bigwig or control_neg_bigwig) and not config.use_control:
        raise ContribError(f'{saved_model} was trained without control tracks; drop '
                           '--control_pos_bigwig/--control_neg_bigwig')
    control_from: Any = None
    if records_dir and config.use_control:
        if not info.has_control:
            raise ContribError(f'{saved_model} was trained with control tracks but '
                               f'{records_dir} holds none; make the records with the same '
                               'control bigWigs, or give --regions_bed and the control bigWigs')
        if info.output_length != config.output_length:
            raise ContribError(f'{saved_model} takes control counts over {config.output_length} '
                               f'bp but {records_dir} holds {info.output_length}-bp counts')
        control_from = 'records'
    controls = None
    if regions_bed and config.use_control:
        try:
            controls = export.control_bigwigs(export_info, config, control_pos_bigwig,
                                              control_neg_bigwig)
        except export.ExportError as e:
            raise ContribError(str(e)) from None
        missing = next((p for pair in controls for p in pair if not os.path.isfile(p)), None)
        if missing:
            raise ContribError(f'{missing}: no such control bigWig; {saved_model} was trained '
                               'with control tracks: give --control_pos_bigwig and '
                               '--control_neg_bigwig')
        control_from = [[os.path.abspath(p) for p in pair] for pair in controls]
    scorer = Scorer(saved_model)
    # Windows per data batch: ig feeds windows x K inputs per step; ism ~3 L mutants a window.
    per_call = (max(1, batch_size // num_shuffles) if method == 'ig'
                else max(1, batch_size // (3 * length)))
    if records_dir:
        if (info.sequence_length, info.num_tasks, info.num_strands) != (
                length, config.num_tasks, config.num_strands):
            raise ContribError(f'{saved_model} takes {length}-bp windows of {config.num_tasks} '
                               f'task(s) x {config.num_strands} strand(s); {records_dir} '
                               f'holds {info.sequence_length}-bp windows of {info.num_tasks} '
                               f'x {info.num_strands}')
        total = info.split_counts.get(split)
        if total is not None and max_regions is not None:
            total = min(total, max_regions)
        batches = _records_batches(records_dir, info, split, per_call, max_regions)
        windows, one_hot, hyps = _score_all(scorer, batches, total, method, num_shuffles,
                                            steps, batch_size, seed, progress_seconds)
        if not windows:
            raise ContribError(f'{records_dir}: the {split} split holds no records')
        header, header_from = _records_header(records_dir, info, fasta, windows)
    else:
        fasta = fasta or export_info.source.get('fasta')
        if not fasta:
            raise ContribError('--fasta is needed: the model\'s metadata names no FASTA')
        with genome_io.open_fasta(fasta) as genome:
            sizes = {name: len(genome[name]) for name in genome.keys()}
            selected = bed_windows(regions_bed, sizes, length, fasta=fasta)[:max_regions]
            batches = _bed_batches(genome, selected, per_call, controls,
                                   scorer.control_shape[0] if controls else None)
            windows, one_hot, hyps = _score_all(scorer, batches, len(selected),
                                                method, num_shuffles, steps, batch_size, seed,
                                                progress_seconds)
        header, header_from = list(sizes.items()), fasta
    targets = targets_of(export_info)

    parent = os.path.dirname(output_dir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f'.{os.path.basename(output_dir)}.tmp-', dir=parent)
    try:
        os.chmod(tmp, 0o755)  # mkdtemp's 0700 is for the scratch folder, not the result
        files = _write_outputs(tmp, windows, one_hot, hyps, header)
        seconds = time.perf_counter() - start_time
        summary = {
            'saved_model': os.path.abspath(saved_model),
            'input': ({'records_dir': os.path.abspath(records_dir), 'split': split}
                      if records_dir else {'regions_bed': os.path.abspath(regions_bed),
                                           'fasta': os.path.abspath(fasta)}),
            'method': method, 'num_shuffles': num_shuffles if method == 'ig' else None,
            'steps': steps if method == 'ig' else None, 'seed': seed,
            'regions': len(windows), 'sequence_length': length, 'control': control_from,
            'targets': [dataclasses.asdict(t) for t in targets],
            'header_from': header_from, 'seconds': round(seconds, 3),
            'files': files,
        }
        with open(os.path.join(tmp, SUMMARY_FILENAME), 'w') as f:
            json.dump(summary, f, indent=2, sort_keys=True)
            f.write('\n')
        if os.path.exists(output_dir):
            aside = tempfile.mkdtemp(prefix=f'.{os.path.basename(output_dir)}.old-', dir=parent)
            os.rename(output_dir, os.path.join(aside, 'old'))
            shutil.rmtree(aside, ignore_errors=True)
        os.rename(tmp, output_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {'regions': len(windows), 'seconds': time.perf_counter() - start_time,
            'output_dir': output_dir,
            'files': {k: os.path.join(output_dir, v) for k, v in files.items()},
            'method': method, 'num_shuffles': num_shuffles, 'steps': steps,
            'targets': [t.name for t in targets], 'header_from': header_from,
            'control': control_from}


def _write_outputs(folder: str, windows: list[Window], one_hot: np.ndarray,
                   hyps: dict[str, np.ndarray],
                   header: list[tuple[str, int]]) -> dict[str, str]:
    """Writes regions.bed, ohe.npz and per target shap.npz + contrib.bw; returns relative
    paths by key ('regions', 'ohe', '<target>.shap', '<target>.bigwig')."""
    files = {'regions': REGIONS_FILENAME, 'ohe': ONE_HOT_FILENAME}
    with open(os.path.join(folder, REGIONS_FILENAME), 'w') as f:
        f.writelines(f'{w.chrom}\t{w.start}\t{w.end}\t{w.name}\n' for w in windows)
    # modisco-lite reads N x 4 x L arrays under 'arr_0'.
    np.savez_compressed(os.path.join(folder, ONE_HOT_FILENAME),
                        np.ascontiguousarray(one_hot.transpose(0, 2, 1)))
    for name, hyp in hyps.items():
        os.makedirs(os.path.join(folder, name))
        files[f'{name}.shap'] = os.path.join(name, HYPOTHETICAL_FILENAME)
        files[f'{name}.bigwig'] = os.path.join(name, BIGWIG_FILENAME)
        np.savez(os.path.join(folder, files[f'{name}.shap']),
                 np.ascontiguousarray(hyp.transpose(0, 2, 1)))
        write_bigwig(os.path.join(folder, files[f'{name}.bigwig']), header, windows,
                     (hyp * one_hot).sum(axis=-1))
    return files


def load_outputs(output_dir: str) -> dict[str, Any]:
    """Reads an output folder back: {'windows', 'one_hot' (N, L, 4), 'hyp': {target: (N, L,
    4)}, 'summary'}; hyp * one_hot summed over the last axis gives observed contributions."""
    with open(os.path.join(output_dir, SUMMARY_FILENAME)) as f:
        summary = json.load(f)
    windows = []
    with open(os.path.join(output_dir, REGIONS_FILENAME)) as f:
        for line in f:
            chrom, start, end, name = line.rstrip('\n').split('\t')
            windows.append(Window(chrom, int(start), int(end), name))
    one_hot = np.load(os.path.join(output_dir, ONE_HOT_FILENAME))['arr_0'].transpose(0, 2, 1)
    hyp = {t['name']: np.load(os.path.join(output_dir, t['name'], HYPOTHETICAL_FILENAME))[
        'arr_0'].transpose(0, 2, 1) for t in summary['targets']}
    return {'windows': windows, 'one_hot': one_hot, 'hyp': hyp, 'summary': summary}
