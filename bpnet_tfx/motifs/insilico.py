"""In-silico syntax experiments through an exported model: marginalization, ablation, spacing.

Backgrounds are dinucleotide shuffles (`shuffle.dinuc_shuffle`) of windows of a contribution
folder, background i drawn from `shuffle.keyed_rng(seed, 'background:i')`, so results do not
depend on the batch size. Predicted counts are the export's total counts per task (both
strands summed); profiles are its per-base predicted counts (probabilities x counts).

- marginalize: each motif inserted at the window centre of every background; per task the
  mean change in log counts and the mean change of the profile around the insertion.
- ablate: each scanned instance replaced by the same bases of a shuffle of its window; per
  instance the change in log counts.
- space: motif A at the centre, motif B with its centre d bp to the right; per distance the
  counts change of the pair against the sum of the singles' changes (BPNet Fig. 5):
  ratio(d) = mean(c_AB - c_0) / (mean(c_A - c_0) + mean(c_B(d) - c_0)), 1 for independent
  (additive) motifs, > 1 cooperative, < 1 competitive.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from bpnet_tfx.attribution import shuffle
from bpnet_tfx.common.errors import BpnetError
from bpnet_tfx.genome import sequence


class InSilicoError(BpnetError):
    """Bad flags or input of an in-silico experiment."""


def check_model(model) -> None:
    """In-silico inputs have no observed control: models trained with controls are refused."""
    if model.config.use_control:
        raise InSilicoError(
            f'{model.path} was trained with control tracks; in-silico sequences have no '
            'observed control, so its predictions on them would be made up'
        )


def backgrounds(one_hot: np.ndarray, count: int, seed: int) -> np.ndarray:
    """`count` dinucleotide shuffles of `one_hot` rows (N, L, 4): background i shuffles row
    i mod N with `shuffle.keyed_rng(seed, 'background:i')`. Returns (count, L, 4) float32."""
    out = np.empty((count, *one_hot.shape[1:]), np.float32)
    for i in range(count):
        rng = shuffle.keyed_rng(seed, f'background:{i}')
        out[i] = shuffle.dinuc_shuffle(one_hot[i % len(one_hot)].astype(np.float32), 1, rng)[0]
    return out


def insert(one_hot: np.ndarray, motif: str, centre: int) -> np.ndarray:
    """Copies of (N, L, 4) `one_hot` with `motif` written so that its centre base
    (index len // 2) sits at `centre`."""
    start = centre - len(motif) // 2
    if start < 0 or start + len(motif) > one_hot.shape[1]:
        raise InSilicoError(
            f'motif {motif} centred at {centre} does not fit a {one_hot.shape[1]}-bp window'
        )
    out = np.array(one_hot, np.float32, copy=True)
    out[:, start : start + len(motif)] = sequence.one_hot(motif)
    return out


def predict(model, one_hot: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(total counts (N, tasks), per-base counts (N, O, tasks, strands)) in batches."""
    counts, profiles = [], []
    for lo in range(0, len(one_hot), batch_size):
        out = model(np.asarray(one_hot[lo : lo + batch_size], np.float32))
        counts.append(out['counts'].sum(axis=-1))
        profiles.append(out['profile_probs'] * out['counts'][:, None])
    return np.concatenate(counts), np.concatenate(profiles)


def marginalize(model, motifs: dict[str, str], bg: np.ndarray, batch_size: int, flank: int = 50):
    """Per motif: {'log_counts_change' (tasks,), 'log_counts_sd' (tasks,), 'profile_change'
    ((2 flank + 1), tasks, strands) around the insertion (output coordinates), 'counts'
    (tasks,) mean with the motif, 'background_counts' (tasks,)}."""
    length = bg.shape[1]
    centre = length // 2
    c0, p0 = predict(model, bg, batch_size)
    out_len = p0.shape[1]
    out_centre = centre - (length - out_len) // 2
    lo, hi = max(out_centre - flank, 0), min(out_centre + flank + 1, out_len)
    result = {}
    for name, motif in motifs.items():
        c1, p1 = predict(model, insert(bg, motif, centre), batch_size)
        change = np.log(c1 + 1) - np.log(c0 + 1)
        result[name] = {
            'motif': motif,
            'log_counts_change': change.mean(axis=0),
            'log_counts_sd': change.std(axis=0),
            'profile_change': (p1 - p0).mean(axis=0)[lo:hi],
            'counts': c1.mean(axis=0),
            'background_counts': c0.mean(axis=0),
        }
    return result


@dataclasses.dataclass(frozen=True)
class Spacing:
    """The spacing experiment's curves, per distance d and task."""

    distances: np.ndarray  # (D,) centre-to-centre bp
    pair: np.ndarray  # (D, tasks) mean c_AB - c_0
    single_a: np.ndarray  # (tasks,) mean c_A - c_0
    single_b: np.ndarray  # (D, tasks) mean c_B(d) - c_0
    background: np.ndarray  # (tasks,) mean c_0

    @property
    def ratio(self) -> np.ndarray:
        """(D, tasks) pair change over the sum of the singles' changes."""
        return self.pair / (self.single_a[None] + self.single_b)


def space(model, motif_a: str, motif_b: str, distances, bg: np.ndarray, batch_size: int):
    """Motif A centred in each background, B centred d bp to its right, for each d."""
    centre = bg.shape[1] // 2
    minimum = (len(motif_a) + len(motif_b) + 1) // 2
    distances = np.array([d for d in distances if d >= minimum], np.int64)
    if not len(distances):
        raise InSilicoError(
            f'no distance leaves the motifs apart (centres at least {minimum} bp apart)'
        )
    c0, _ = predict(model, bg, batch_size)
    with_a = insert(bg, motif_a, centre)
    ca, _ = predict(model, with_a, batch_size)
    pair, single_b = [], []
    for d in distances:
        cb, _ = predict(model, insert(bg, motif_b, centre + int(d)), batch_size)
        cab, _ = predict(model, insert(with_a, motif_b, centre + int(d)), batch_size)
        pair.append((cab - c0).mean(axis=0))
        single_b.append((cb - c0).mean(axis=0))
    return Spacing(
        distances, np.array(pair), (ca - c0).mean(axis=0), np.array(single_b), c0.mean(axis=0)
    )


def interaction_range(spacing: Spacing, task: int = 0) -> dict[str, Any]:
    """Where the pair departs from what the motifs do at most distances.

    The baseline is the median ratio over all distances; the distances split into runs where
    the ratio stays on one side of it, and the run with the largest summed departure is the
    interaction (a sustained effect, not a spike where the motifs nearly touch). Its range is
    the contiguous distances around the run's extreme whose departure reaches half of it;
    its sign is +1 above the baseline (cooperative), -1 below (competitive).
    """
    ratio = spacing.ratio[:, task]
    baseline = float(np.median(ratio))
    excess = ratio - baseline
    sides = np.sign(excess)
    starts = np.flatnonzero(np.concatenate([[True], sides[1:] != sides[:-1]]))
    ends = np.concatenate([starts[1:], [len(ratio)]])
    best = max(zip(starts, ends), key=lambda r: np.abs(excess[r[0] : r[1]]).sum())
    run = np.abs(excess[best[0] : best[1]])
    peak = int(best[0] + np.argmax(run))
    lo = hi = peak
    while lo > best[0] and abs(excess[lo - 1]) >= 0.5 * abs(excess[peak]):
        lo -= 1
    while hi < best[1] - 1 and abs(excess[hi + 1]) >= 0.5 * abs(excess[peak]):
        hi += 1
    return {
        'range': [int(spacing.distances[lo]), int(spacing.distances[hi])],
        'sign': 1 if excess[peak] > 0 else -1,
        'peak_distance': int(spacing.distances[peak]),
        'peak_ratio': float(ratio[peak]),
        'baseline_ratio': baseline,
    }


def ablate(model, one_hot: np.ndarray, hits: list[dict[str, Any]], seed: int, batch_size: int):
    """Per hit (dicts with 'row', 'start', 'end', and a 'region' name), the change in log
    counts per task when its bases are replaced by the same bases of a dinucleotide shuffle
    of its window (`shuffle.keyed_rng(seed, region)`). Returns (H, tasks)."""
    rows = sorted({h['row'] for h in hits})
    originals = np.asarray(one_hot[rows], np.float32)
    c0, _ = predict(model, originals, batch_size)
    base = dict(zip(rows, c0))
    shuffled = {}
    for r in rows:
        region = next(h['region'] for h in hits if h['row'] == r)
        rng = shuffle.keyed_rng(seed, region)
        shuffled[r] = shuffle.dinuc_shuffle(np.asarray(one_hot[r], np.float32), 1, rng)[0]
    edited = np.empty((len(hits), *one_hot.shape[1:]), np.float32)
    for k, h in enumerate(hits):
        edited[k] = one_hot[h['row']]
        edited[k, h['start'] : h['end']] = shuffled[h['row']][h['start'] : h['end']]
    c1, _ = predict(model, edited, batch_size)
    before = np.stack([base[h['row']] for h in hits])
    return np.log(c1 + 1) - np.log(before + 1)
