"""Variant effect scores: an exported model's predictions for the reference and alternate
allele of each variant, compared per task (counts fold change, profile JSD, empirical p-values
from null SNVs).

One implementation for the variants command (`score_variants`, a loop over the file) and the
Beam job (beam_jobs/score_variants.py): both turn variants into `VariantInput`s with
`VariantWindows` (alleles.py) and score batches of them with `score_inputs`, which returns the
TSV rows. A window that would run past a chromosome end gets the status 'chrom_end' unless
`pad_chrom_ends`. The windows, scores and p-values are defined in docs/variants.md.
"""

from __future__ import annotations

import itertools
import math
import os
import tempfile
import time
from typing import Callable, Iterable, Iterator, Sequence, TextIO

import numpy as np

from bpnet_tfx.common import progress
from bpnet_tfx.genome import genome_io, sequence
from bpnet_tfx.inference import metrics
from bpnet_tfx.variant_effects.alleles import VariantInput, VariantWindows, null_windows
from bpnet_tfx.variant_effects.statuses import (  # noqa: F401 (the callers' API)
    STATUSES,
    check_options,
    check_scored,
    runs_past_chrom_end,
    variant_status,
)
from bpnet_tfx.variant_effects.variant_files import (  # noqa: F401 (VariantError: the API)
    Variant,
    VariantError,
    read_variants,
)

PSEUDOCOUNT = 1.0  # counts added to ref and alt before the log2 fold change
SCORES = ('ref_counts', 'alt_counts', 'log2fc_counts', 'jsd_profile', 'max_abs_diff_profile')
PVALUES = ('log2fc_pvalue', 'jsd_pvalue')
ROW_COLUMNS = ('chrom', 'pos', 'ref', 'alt', 'variant_id', 'status')


def predict_windows(model, one_hot: np.ndarray, control: np.ndarray | None):
    """Forward and reverse-complement averaged predictions of (B, L, 4) windows.

    Returns (per-base predicted counts (B, O, tasks, strands), profile weights of the same
    shape: probabilities x predicted counts clipped at 1e-6, for the JSD of untrained models
    whose counts may be < 0).
    """
    n = len(one_hot)
    rc = np.ascontiguousarray(sequence.reverse_complement(one_hot))
    if control is not None:
        _, rc_control = sequence.reverse_complement(one_hot, control)
        control = np.concatenate([control, np.ascontiguousarray(rc_control)])
    out = model(np.concatenate([one_hot, rc]).astype(np.float32), control)
    probs, counts = out['profile_probs'], out['counts'][:, None]
    pred = probs * counts
    weights = probs * np.maximum(counts, 1e-6)
    _, pred_back = sequence.reverse_complement(rc, pred[n:])
    _, weights_back = sequence.reverse_complement(rc, weights[n:])
    return 0.5 * (pred[:n] + pred_back), 0.5 * (weights[:n] + weights_back)


def effect_scores(
    ref: tuple[np.ndarray, np.ndarray], alt: tuple[np.ndarray, np.ndarray]
) -> dict[str, np.ndarray]:
    """Scores (B, tasks) of alt against ref predictions (each from `predict_windows`)."""
    (ref_pred, ref_w), (alt_pred, alt_w) = ref, alt
    ref_counts = ref_pred.sum(axis=(1, 3))
    alt_counts = alt_pred.sum(axis=(1, 3))
    log2fc = np.log2(
        (np.maximum(alt_counts, 0) + PSEUDOCOUNT) / (np.maximum(ref_counts, 0) + PSEUDOCOUNT)
    )

    def joint(w):  # (B, O, T, S) -> (B, O * S, T): one distribution over length x strands
        return np.moveaxis(w, 3, 2).reshape(len(w), -1, w.shape[2])

    return {
        'ref_counts': ref_counts,
        'alt_counts': alt_counts,
        'log2fc_counts': log2fc,
        'jsd_profile': metrics.jensen_shannon_distance(joint(ref_w), joint(alt_w)),
        'max_abs_diff_profile': np.abs(alt_pred - ref_pred).max(axis=(1, 3)),
    }


def model_tasks(model) -> list[str]:
    """The task names of an `export.ExportedModel`, as the output columns name them."""
    return list(model.info.tasks)[: model.config.num_tasks]


def header(tasks: Sequence[str], with_pvalues: bool) -> list[str]:
    """The output's columns: ROW_COLUMNS, then `<task>.<score>` per task."""
    names = SCORES + (PVALUES if with_pvalues else ())
    return list(ROW_COLUMNS) + [f'{t}.{s}' for t in tasks for s in names]


def _format(x: float) -> str:
    return 'nan' if not math.isfinite(x) else f'{x:.6g}'


def _predict(model, one_hot: np.ndarray, control: np.ndarray | None, batch_size: int):
    """`predict_windows` over `one_hot` in model calls of `batch_size` windows."""
    preds, weights = [], []
    for i in range(0, len(one_hot), batch_size):
        c = None if control is None else control[i : i + batch_size]
        p, w = predict_windows(model, one_hot[i : i + batch_size], c)
        preds.append(p)
        weights.append(w)
    return np.concatenate(preds), np.concatenate(weights)


def _null_pvalues(model, inputs, refs, control, ref_pred, scores, k: int, batch_size: int):
    """Adds PVALUES to `scores`: k null SNVs per variant (`null_windows`), scored against its
    reference prediction, a few variants' nulls at a time (memory bounded by batch_size)."""
    n = len(inputs)
    draws = {'log2fc_counts': [], 'jsd_profile': []}
    group = max(1, batch_size // k)  # variants whose nulls are built at once
    for lo in range(0, n, group):
        hi = min(lo + group, n)
        nulls = np.concatenate([null_windows(refs[i], inputs[i].variant, k) for i in range(lo, hi)])
        null_pred = _predict(
            model,
            nulls,
            None if control is None else np.repeat(control[lo:hi], k, axis=0),
            batch_size,
        )
        rep = tuple(np.repeat(a[lo:hi], k, axis=0) for a in ref_pred)
        null = effect_scores(rep, null_pred)
        for score, parts in draws.items():
            parts.append(np.abs(null[score]).reshape(hi - lo, k, -1))
    for name, score in (('log2fc_pvalue', 'log2fc_counts'), ('jsd_pvalue', 'jsd_profile')):
        observed = np.abs(scores[score])  # (n, T)
        at_least = np.concatenate(draws[score]) >= observed[:, None] - 1e-12
        scores[name] = (1 + at_least.sum(axis=1)) / (k + 1)


def _score_ok(model, inputs: Sequence[VariantInput], null_variants: int, batch_size: int):
    """Scores (len(inputs), tasks) of 'ok' inputs, p-values included with null_variants."""
    refs = np.stack([sequence.one_hot(x.ref) for x in inputs]).astype(np.float32)
    alts = np.stack([sequence.one_hot(x.alt) for x in inputs]).astype(np.float32)
    control = np.stack([x.control for x in inputs]) if inputs[0].control is not None else None
    n = len(inputs)
    pred, weights = _predict(
        model,
        np.concatenate([refs, alts]),
        None if control is None else np.concatenate([control, control]),
        batch_size,
    )
    ref_pred, alt_pred = (pred[:n], weights[:n]), (pred[n:], weights[n:])
    scores = effect_scores(ref_pred, alt_pred)
    if null_variants:
        _null_pvalues(model, inputs, refs, control, ref_pred, scores, null_variants, batch_size)
    return scores


def score_inputs(
    model, inputs: Sequence[VariantInput], *, null_variants: int = 0, batch_size: int = 64
) -> list[str]:
    """The output rows of `inputs`, in their order: one tab-separated line (no newline) each,
    the columns of `header`; inputs that are not 'ok' get 'nan' scores.

    Args:
      model: an `export.ExportedModel`.
      inputs: from `VariantWindows`.
      null_variants: null SNVs per variant for the p-value columns; 0 = none.
      batch_size: windows per model call (ref and alt count apart; each call also predicts
        their reverse complements). Scores do not depend on it.
    """
    ok = [x for x in inputs if x.status == 'ok']
    scores = _score_ok(model, ok, null_variants, batch_size) if ok else {}
    names = SCORES + (PVALUES if null_variants else ())
    num_tasks = model.config.num_tasks
    rows, i = [], 0
    for x in inputs:
        v = x.variant
        row = [v.chrom, str(v.pos), v.ref, v.alt, v.variant_id, x.status]
        if x.status == 'ok':
            row += [_format(scores[name][i, t]) for t in range(num_tasks) for name in names]
            i += 1
        else:
            row += ['nan'] * (num_tasks * len(names))
        rows.append('\t'.join(row))
    return rows


def summary_line(label: str, read: int, by_status: dict[str, int], seconds: float, output: str):
    """'<label>: 10 read, 9 scored (ok 9, ref_mismatch 1) in 2.0 s (4.5 variants/s) -> out'."""
    statuses = ', '.join(f'{k} {n}' for k, n in by_status.items() if n)
    scored = by_status.get('ok', 0)
    rate = scored / max(seconds, 1e-9)
    return (
        f'{label}: {read} read, {scored} scored ({statuses}) in {seconds:.1f} s '
        f'({rate:.1f} variants/s) -> {output}'
    )


def _batches(inputs: Iterable[VariantInput], batch_size: int) -> Iterator[list[VariantInput]]:
    """Runs of consecutive inputs each holding `batch_size` 'ok' ones (the last: the rest)."""
    pending, waiting = [], 0
    for x in inputs:
        pending.append(x)
        waiting += x.status == 'ok'
        if waiting >= batch_size:
            yield pending
            pending, waiting = [], 0
    if pending:
        yield pending


def _write_beside(output: str, write: Callable[[TextIO], object]) -> object:
    """Calls `write(file)` on a hidden temporary file beside `output`, then renames it into
    place; on any failure the temporary file is removed and `output` left as it was."""
    out_dir = os.path.dirname(os.path.abspath(output))
    os.makedirs(out_dir, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{os.path.basename(output)}.', dir=out_dir)
    try:
        with os.fdopen(fd, 'w') as f:
            result = write(f)
        os.replace(tmp, output)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return result


def _score_into(
    f: TextIO,
    model,
    inputs: Iterable[VariantInput],
    by_status: dict[str, int],
    null_variants: int,
    batch_size: int,
    shown: progress.Progress,
) -> int:
    """Scores `inputs` in batches, writing their rows to `f` and counting their statuses into
    `by_status`; returns how many were read."""
    read = 0
    for batch in _batches(inputs, batch_size):
        read += len(batch)
        for x in batch:
            by_status[x.status] += 1
        rows = score_inputs(model, batch, null_variants=null_variants, batch_size=batch_size)
        f.write(''.join(row + '\n' for row in rows))
        shown.update(read)
    return read


def score_variants(
    saved_model: str,
    fasta: str,
    variants: str,
    output: str,
    *,
    batch_size: int = 64,
    control_pos_bigwig: str | None = None,
    control_neg_bigwig: str | None = None,
    max_variants: int = 0,
    null_variants: int = 0,
    pad_chrom_ends: bool = False,
    label: str = 'variants',
) -> dict:
    """Scores every variant of `variants` and writes the TSV `output` (rows in input order),
    written beside it and renamed into place.

    Args:
      saved_model: folder written by train's export.
      fasta: the genome the variants are on.
      variants: VCF (plain or gzip/bgzip) or TSV chrom, pos (1-based), ref, alt.
      output: the TSV to write (columns: see docs/variants.md).
      batch_size: variants per batch (4 windows each: ref and alt, both strands; plus 2 per
        null variant).
      control_pos_bigwig, control_neg_bigwig: a control-track model's; default the records'.
      max_variants: score at most this many variants (rows after splitting ALTs); 0 = all.
      null_variants: null SNVs per variant for the empirical p-values; 0 = no p-values.
      pad_chrom_ends: score variants whose windows run past a chromosome end with N
        padding; by default their status is 'chrom_end'.
      label: the name on progress lines.

    Returns:
      {'read', 'scored', 'by_status' {status: rows}, 'seconds', 'output', 'tasks'}.

    Raises:
      VariantError: a malformed line, bad arguments, or no variant scored.
      genome_io.GenomeError: unreadable FASTA or bigWig; export.ExportError / SchemaError.
    """
    from bpnet_tfx.inference import export

    check_options(batch_size, null_variants, max_variants)
    if next(read_variants(variants), None) is None:  # before the model loads
        check_scored(variants, 0, {})
    started = time.perf_counter()
    model = export.ExportedModel(saved_model)
    controls = model.control_bigwigs(control_pos_bigwig, control_neg_bigwig)
    config, tasks = model.config, model_tasks(model)
    by_status = dict.fromkeys(STATUSES, 0)

    def write(f: TextIO) -> int:
        with genome_io.open_fasta(fasta) as genome:
            windows = VariantWindows(
                genome, config.sequence_length, config.output_length, controls, pad_chrom_ends
            )
            f.write('\t'.join(header(tasks, bool(null_variants))) + '\n')
            shown = progress.Progress(label, 'variants', None, every=max(1000, batch_size))
            chosen = map(windows, itertools.islice(read_variants(variants), max_variants or None))
            read = _score_into(f, model, chosen, by_status, null_variants, batch_size, shown)
            check_scored(variants, read, by_status, fasta)  # before the last progress line
            shown.update(read, final=True)
        return read

    read = _write_beside(output, write)
    return {
        'read': read,
        'scored': by_status['ok'],
        'by_status': {k: n for k, n in by_status.items() if n},
        'seconds': time.perf_counter() - started,
        'output': output,
        'tasks': tasks,
    }
