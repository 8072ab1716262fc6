"""Variant effect scores: an exported model's predictions for the reference and alternate
allele of each variant of a VCF or TSV, compared per task (counts fold change, profile JSD).

Windows (as ChromBPNet's variant scorer builds them): for a variant at 0-based position p
(VCF POS - 1) with REF of r bases and ALT of a bases, and a model input of L bases, both
windows start at w = p - L // 2, so the variant's first base is at index L // 2 of the input
(and, the output being centred in the input, at the centre of the output window). The
reference window is the genome's [w, w + L). The alternate window is the same L // 2 bases
of left flank, then ALT, then the genome from p + r on, cut at L bases: a deletion pulls in
r - a more bases of right flank, an insertion drops a - r of them, so the left flank stays
anchored and the input length stays the model's. Bases past a chromosome end are N (zero
rows). Each window is predicted forward and reverse-complemented; the reverse-complement
prediction is mapped back (positions reversed, strands swapped) and the two averaged before
scoring. Control-track models get the control counts of the reference output window for
both alleles.

Scores per task, over the output window and both strands: ref_counts and alt_counts (total
predicted counts), log2fc_counts = log2((alt + 1) / (ref + 1)) (pseudocount 1 count, counts
clipped at 0 first), jsd_profile (Jensen-Shannon distance, base 2, between the ref and alt
profiles, each normalised over length x strands jointly), max_abs_diff_profile (the largest
|alt - ref| of predicted per-base counts). With `null_variants` = N, each scored variant
gets N null SNVs at random positions of its own reference window (not its REF bases), alt a
random other base, seeded by a SHA-256 of the variant's key, scored against the same
reference prediction; the p-values are (1 + #{null |score| >= |score|}) / (N + 1).
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import math
import os
import re
import tempfile
import time
from typing import Iterator, Sequence

import numpy as np

from bpnet_tfx import genome_io, metrics, progress, sequence
from bpnet_tfx.errors import BpnetError

PSEUDOCOUNT = 1.0  # counts added to ref and alt before the log2 fold change
SCORES = ('ref_counts', 'alt_counts', 'log2fc_counts', 'jsd_profile', 'max_abs_diff_profile')
PVALUES = ('log2fc_pvalue', 'jsd_pvalue')
STATUSES = ('ok', 'ref_mismatch', 'unknown_chrom', 'out_of_bounds', 'unsupported_allele')
_ALLELE = re.compile(r'^[ACGTN]+$')


class VariantError(BpnetError):
    """A malformed variants file (names file:line), or nothing to score."""


@dataclasses.dataclass(frozen=True)
class Variant:
    """One REF/ALT pair; `pos` is 1-based as in VCF; `where` is 'file:line'."""

    chrom: str
    pos: int
    ref: str
    alt: str
    variant_id: str
    where: str = ''

    @property
    def key(self) -> str:
        return f'{self.chrom}:{self.pos}:{self.ref}:{self.alt}'


def _open_text(path: str):
    if not os.path.isfile(path):
        raise VariantError(f'{path}: no such variants file')
    with open(path, 'rb') as f:
        magic = f.read(2)
    if magic == b'\x1f\x8b':  # gzip, and bgzip (a series of gzip members)
        return gzip.open(path, 'rt')
    return open(path)


def read_variants(path: str) -> Iterator[Variant]:
    """Variants of a VCF (plain or bgzipped) or of a TSV chrom, pos, ref, alt, in file order.

    A VCF is recognised by '##fileformat=VCF' or a '#CHROM' header; its multi-allelic ALTs
    give one variant each, with the same ID ('.' becomes chrom:pos:ref:alt). A TSV may start
    with a header line (its pos column not a number); '#' lines are comments.

    Raises:
      VariantError: no such file, or a line that cannot be parsed ('file:line: ...').
    """
    vcf = None
    with _open_text(path) as f:
        first = True
        try:
            for number, line in enumerate(f, 1):
                line = line.rstrip('\r\n')
                if line.startswith('##fileformat=VCF') or line.startswith('#CHROM'):
                    vcf = True
                if not line.strip() or line.startswith('#'):
                    continue
                fields = line.split('\t')
                where = f'{path}:{number}'
                if vcf is None:
                    vcf = False
                if vcf:
                    yield from _vcf_line(fields, where)
                    continue
                if first and len(fields) >= 4 and not _is_int(fields[1]):
                    first = False
                    if fields[1].strip().lower() in ('pos', 'position', 'start'):
                        continue  # the header line
                first = False
                yield from _tsv_line(fields, where)
        except (UnicodeDecodeError, EOFError, OSError, gzip.BadGzipFile) as e:
            raise VariantError(f'{path}: cannot read: {e}') from None


def _is_int(text: str) -> bool:
    return bool(re.fullmatch(r'-?\d+', text.strip()))


def _alleles(where: str, chrom: str, pos: str, ref: str, alt: str, vid: str) -> Iterator[Variant]:
    if not chrom or not _is_int(pos) or not ref or not alt:
        raise VariantError(
            f'{where}: malformed variant line; expected chrom, an integer 1-based pos, ref, alt'
        )
    ref = ref.strip().upper()
    for a in alt.strip().split(','):
        a = a.upper()
        key = f'{chrom}:{int(pos)}:{ref}:{a}'
        yield Variant(chrom, int(pos), ref, a, vid if vid and vid != '.' else key, where)


def _vcf_line(fields: Sequence[str], where: str) -> Iterator[Variant]:
    if len(fields) < 5:
        raise VariantError(
            f'{where}: malformed VCF line: {len(fields)} tab-separated fields, '
            'expected at least 5 (CHROM POS ID REF ALT)'
        )
    return _alleles(where, fields[0], fields[1], fields[3], fields[4], fields[2])


def _tsv_line(fields: Sequence[str], where: str) -> Iterator[Variant]:
    if len(fields) < 4:
        raise VariantError(
            f'{where}: malformed TSV line: {len(fields)} tab-separated fields, '
            'expected chrom, pos, ref, alt'
        )
    return _alleles(where, *fields[:4], '')


def variant_status(variant: Variant, genome, sizes: dict[str, int]) -> str:
    """'ok', or why the variant cannot be scored (see STATUSES)."""
    if not _ALLELE.match(variant.ref) or not _ALLELE.match(variant.alt):
        return 'unsupported_allele'  # symbolic (<DEL>), '*', '.', IUPAC codes
    if variant.chrom not in sizes:
        return 'unknown_chrom'
    p = variant.pos - 1
    if p < 0 or p + len(variant.ref) > sizes[variant.chrom]:
        return 'out_of_bounds'
    if genome[variant.chrom][p : p + len(variant.ref)] != variant.ref:
        return 'ref_mismatch'
    return 'ok'


def _padded_bases(genome, chrom: str, start: int, end: int) -> str:
    size = len(genome[chrom])
    lo, hi = max(start, 0), min(end, size)
    if lo >= hi:
        return 'N' * (end - start)
    return 'N' * (lo - start) + genome[chrom][lo:hi] + 'N' * (end - hi)


def variant_windows(genome, variant: Variant, length: int) -> tuple[str, str, int]:
    """(reference, alternate) input sequences of `length` bases and the window's start; see
    the module docstring for how indels are re-centred and trimmed or padded."""
    p = variant.pos - 1
    start = p - length // 2
    ref = _padded_bases(genome, variant.chrom, start, start + length)
    right = length - length // 2 - len(variant.alt)
    rest = p + len(variant.ref)
    alt = ref[: length // 2] + variant.alt
    if right > 0:
        alt += _padded_bases(genome, variant.chrom, rest, rest + right)
    return ref, alt[:length], start


def variant_seed(variant: Variant) -> int:
    """A seed from SHA-256 of the variant's id and key: the same in every process and run."""
    digest = hashlib.sha256(f'{variant.variant_id}\t{variant.key}'.encode()).digest()
    return int.from_bytes(digest[:8], 'little')


def null_windows(ref_one_hot: np.ndarray, variant: Variant, n: int) -> np.ndarray:
    """(n, L, 4) copies of the reference window, each with one random base substituted at a
    random position outside the variant's REF bases (seeded by `variant_seed`)."""
    length = len(ref_one_hot)
    rng = np.random.default_rng(variant_seed(variant))
    lo = length // 2
    hi = min(lo + len(variant.ref), length)
    positions = rng.integers(0, length - (hi - lo), n)
    positions = np.where(positions >= lo, positions + (hi - lo), positions)
    shifts = rng.integers(1, 4, n)
    out = np.repeat(ref_one_hot[None], n, axis=0)
    for i, (at, shift) in enumerate(zip(positions, shifts)):
        row = out[i, at]
        base = int(np.argmax(row)) if row.sum() > 0 else 0
        out[i, at] = 0
        out[i, at, (base + shift) % 4] = 1
    return out


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


def _control_window(controls, chrom: str, start: int, end: int, size: int) -> np.ndarray:
    """(end - start, tasks, strands) control counts; 0 past the chromosome's ends."""
    lo, hi = max(start, 0), min(end, size)
    strands = max(len(p) for p in controls)
    out = np.zeros((end - start, len(controls), strands), np.float32)
    if lo < hi:
        out[lo - start : hi - start] = genome_io.read_tracks(controls, chrom, lo, hi)
    return out


def _header(tasks: Sequence[str], with_pvalues: bool) -> list[str]:
    cols = ['chrom', 'pos', 'ref', 'alt', 'variant_id', 'status']
    names = SCORES + (PVALUES if with_pvalues else ())
    return cols + [f'{t}.{s}' for t in tasks for s in names]


def _format(x: float) -> str:
    return 'nan' if not math.isfinite(x) else f'{x:.6g}'


class _Scorer:
    """Scores batches of variants with one model, genome and (optional) control bigWigs."""

    def __init__(self, model, genome, sizes, controls, null_variants: int, batch_size: int):
        self.model, self.genome, self.sizes, self.controls = model, genome, sizes, controls
        self.null_variants, self.batch_size = null_variants, batch_size
        self.length = model.config.sequence_length
        self.output_length = model.config.output_length
        self.tasks = list(model.info.tasks)[: model.config.num_tasks]

    def _predict(self, one_hot, control):
        preds, weights = [], []
        for i in range(0, len(one_hot), self.batch_size):
            c = None if control is None else control[i : i + self.batch_size]
            p, w = predict_windows(self.model, one_hot[i : i + self.batch_size], c)
            preds.append(p)
            weights.append(w)
        return np.concatenate(preds), np.concatenate(weights)

    def score(self, variants: Sequence[Variant]) -> dict[str, np.ndarray]:
        """Scores (len(variants), tasks) for variants whose status is 'ok'."""
        refs, alts, controls = [], [], []
        crop = (self.length - self.output_length) // 2
        for v in variants:
            ref, alt, start = variant_windows(self.genome, v, self.length)
            refs.append(sequence.one_hot(ref))
            alts.append(sequence.one_hot(alt))
            if self.controls:
                lo = start + crop
                controls.append(
                    _control_window(
                        self.controls, v.chrom, lo, lo + self.output_length, self.sizes[v.chrom]
                    )
                )
        refs, alts = np.stack(refs).astype(np.float32), np.stack(alts).astype(np.float32)
        control = np.stack(controls) if self.controls else None
        n = len(variants)
        pred, weights = self._predict(
            np.concatenate([refs, alts]),
            None if control is None else np.concatenate([control, control]),
        )
        ref_pred, alt_pred = (pred[:n], weights[:n]), (pred[n:], weights[n:])
        scores = effect_scores(ref_pred, alt_pred)
        if self.null_variants:
            k = self.null_variants
            draws = {'log2fc_counts': [], 'jsd_profile': []}
            group = max(1, self.batch_size // k)  # variants whose nulls are built at once
            for lo in range(0, n, group):
                hi = min(lo + group, n)
                nulls = np.concatenate(
                    [null_windows(refs[i], variants[i], k) for i in range(lo, hi)]
                )
                null_pred = self._predict(
                    nulls, None if control is None else np.repeat(control[lo:hi], k, axis=0)
                )
                rep = tuple(np.repeat(a[lo:hi], k, axis=0) for a in ref_pred)
                null = effect_scores(rep, null_pred)
                for score, parts in draws.items():
                    parts.append(np.abs(null[score]).reshape(hi - lo, k, -1))
            for name, score in (('log2fc_pvalue', 'log2fc_counts'), ('jsd_pvalue', 'jsd_profile')):
                observed = np.abs(scores[score])  # (n, T)
                at_least = np.concatenate(draws[score]) >= observed[:, None] - 1e-12
                scores[name] = (1 + at_least.sum(axis=1)) / (k + 1)
        return scores


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
    label: str = 'variants',
) -> dict:
    """Scores every variant of `variants` and writes the TSV `output` (rows in input order),
    written beside it and renamed into place.

    Args:
      saved_model: folder written by train's export.
      fasta: the genome the variants are on.
      variants: VCF (plain or gzip/bgzip) or TSV chrom, pos (1-based), ref, alt.
      output: the TSV to write (columns: see docs/variants.md).
      batch_size: variants per batch (each batch predicts 4 windows per variant: ref, alt,
        each forward and reverse-complemented, plus 2 per null variant).
      control_pos_bigwig, control_neg_bigwig: control bigWigs of a control-track model;
        default the records' ones.
      max_variants: score at most this many variants (rows after splitting ALTs); 0 = all.
      null_variants: null SNVs per variant for the empirical p-values; 0 = no p-values.
      label: the name on progress lines.

    Returns:
      {'read', 'scored', 'by_status' {status: rows}, 'seconds', 'output', 'tasks'}.

    Raises:
      VariantError: a malformed line, bad arguments, or no variant scored.
      genome_io.GenomeError: unreadable FASTA or bigWig; export.ExportError / SchemaError.
    """
    from bpnet_tfx import export

    if batch_size < 1:
        raise VariantError(f'--batch_size must be at least 1, got {batch_size}')
    if null_variants < 0 or max_variants < 0:
        raise VariantError('--null_variants and --max_variants must not be negative')
    started = time.perf_counter()
    model = export.ExportedModel(saved_model)
    controls = model.control_bigwigs(control_pos_bigwig, control_neg_bigwig)
    by_status = {s: 0 for s in STATUSES}
    read = 0
    out_dir = os.path.dirname(os.path.abspath(output))
    os.makedirs(out_dir, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{os.path.basename(output)}.', dir=out_dir)
    try:
        with genome_io.open_fasta(fasta) as genome, os.fdopen(fd, 'w') as f:
            sizes = genome_io.chrom_sizes(genome)
            scorer = _Scorer(model, genome, sizes, controls, null_variants, batch_size)
            names = SCORES + (PVALUES if null_variants else ())
            f.write('\t'.join(_header(scorer.tasks, bool(null_variants))) + '\n')
            shown = progress.Progress(label, 'variants', None, every=max(1000, batch_size))
            pending: list[tuple[Variant, str]] = []
            waiting = 0  # variants of `pending` to score

            def flush():
                ok = [v for v, s in pending if s == 'ok']
                scores = scorer.score(ok) if ok else {}
                i = 0
                for v, status in pending:
                    row = [v.chrom, str(v.pos), v.ref, v.alt, v.variant_id, status]
                    for t in range(len(scorer.tasks)):
                        for name in names:
                            row.append(_format(scores[name][i, t]) if status == 'ok' else 'nan')
                    i += status == 'ok'
                    f.write('\t'.join(row) + '\n')
                pending.clear()

            for v in read_variants(variants):
                if max_variants and read >= max_variants:
                    break
                read += 1
                status = variant_status(v, genome, sizes)
                by_status[status] += 1
                pending.append((v, status))
                waiting += status == 'ok'
                if waiting >= batch_size:
                    flush()
                    waiting = 0
                    shown.update(read)
            flush()
            if not by_status['ok']:  # before the last progress line: the error is one line
                counts = ', '.join(f'{k} {n}' for k, n in by_status.items() if n)
                raise VariantError(
                    f'{variants}: no variant scored ({read} read'
                    + (f': {counts}' if counts else '')
                    + '); check the FASTA matches the variants\' genome build and chromosome '
                    'names'
                )
            shown.update(read, final=True)
        os.replace(tmp, output)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return {
        'read': read,
        'scored': by_status['ok'],
        'by_status': {k: n for k, n in by_status.items() if n},
        'seconds': time.perf_counter() - started,
        'output': output,
        'tasks': scorer.tasks,
    }
