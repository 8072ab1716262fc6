"""The shift the data show, for assays whose reads mark cuts (atac, dnase).

One cut (a Tn5 insertion, a DNase I cut) gives a plus-strand read starting at some base x and
a minus-strand read ending at x + lag: lag 8 for Tn5 (its 9 bp duplication), -1 for DNase I.
Over many cuts, plus ends at x and minus ends at x + lag coincide far more often than at other
offsets, so the offset where they coincide most shows the lag of the data as they are: 8 on
unshifted ATAC reads, -1 once they were shifted by +4/-5 (as many pipelines and 10x fragments
files do). `check_shift` samples ends of one file (around peaks when given and the file is
indexed, else its first reads), finds that offset, and stops the job when the assay's shift
expects another; --shift skips the check. No Beam here.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
from typing import Sequence

import numpy as np

from beam_jobs.common.errors import RecordsInputError
from beam_jobs.reads.plan import CountPlan, Source
from bpnet_tfx.common.errors import BpnetError
from bpnet_tfx.genome import genome_io, read_files, reads

MAX_LAG = 20  # Offsets looked at, in bp, either way.
MAX_PEAKS = 500
PEAK_HALF_WINDOW = 500  # bp on each side of a peak centre.
MAX_READS = 1_000_000
MIN_PAIRS = 100  # Coinciding ends beyond the other offsets' level needed to tell the lag.
_LOGGER = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Lag:
    """The offset where plus and minus ends coincide most, and whether it stands out."""

    lag: int
    clear: bool
    ends: int
    where: str  # 'around N peaks' or 'in the first N reads'


def _raw(rule: reads.CountRule) -> reads.CountRule:
    return dataclasses.replace(rule, shift=(0, 0))


def sample_keys(
    source: Source, genome: Sequence[tuple[str, int]], peaks, fasta: str | None
) -> tuple[np.ndarray, str]:
    """Unshifted end keys (contig * 2**40 + 2 * base + strand) of a sample of `source`'s
    reads, and where they come from."""
    sizes = dict(genome)
    names = {c: i for i, (c, _) in enumerate(genome)}
    rule = _raw(source.rule)
    out = []
    if source.indexed and peaks:
        step = max(1, len(peaks) // MAX_PEAKS)
        chosen = [p for p in peaks[::step] if p[0] in sizes][:MAX_PEAKS]
        f = read_files.open_alignments(source.path, fasta)
        try:
            for chrom, centre in chosen:
                lo = max(0, centre - PEAK_HALF_WINDOW)
                hi = min(sizes[chrom], centre + PEAK_HALF_WINDOW)
                ends = reads.alignment_keys(f.fetch(chrom, lo, hi), rule, lo, hi, sizes[chrom])
                out.append(ends.keys + (names[chrom] << 40))
        finally:
            f.close()
        where = f'around {len(chosen)} peaks'
    elif source.kind in read_files.ALIGNMENT_KINDS:
        f = read_files.open_alignments(source.path, fasta, need_index=False)
        try:
            reads_iter = itertools.islice(f.fetch(until_eof=True), MAX_READS)
            for chrom, group in itertools.groupby(reads_iter, key=lambda r: r.reference_name):
                if chrom in sizes:
                    size = sizes[chrom]
                    ends = reads.alignment_keys(list(group), rule, 0, size, size)
                    out.append(ends.keys + (names[chrom] << 40))
        finally:
            f.close()
        where = f'in the first {MAX_READS:,} reads'
    else:
        for chunk in read_files.text_chunks(source.path, source.kind, sizes, rule, MAX_READS):
            out.append(chunk.keys + (chunk.codes << 40))
            break
        where = f'in the first {MAX_READS:,} lines'
    keys = np.concatenate(out) if out else np.zeros(0, np.int64)
    return keys, where


def lag_of(keys: np.ndarray, where: str) -> Lag:
    """The offset (minus end - plus end, bp) at which ends coincide most."""
    plus, plus_n = np.unique(keys[keys % 2 == 0] // 2, return_counts=True)
    minus, minus_n = np.unique(keys[keys % 2 == 1] // 2, return_counts=True)
    pairs = np.zeros(2 * MAX_LAG + 1)
    for i, lag in enumerate(range(-MAX_LAG, MAX_LAG + 1)):
        _, a, b = np.intersect1d(plus + lag, minus, assume_unique=True, return_indices=True)
        pairs[i] = np.dot(plus_n[a].astype(np.float64), minus_n[b])
    best = int(np.argmax(pairs))
    baseline = float(np.median(pairs))
    excess = pairs[best] - baseline
    # Stands out: well above the other offsets' noise and their level, from enough pairs.
    clear = excess > max(5 * math.sqrt(baseline + 1), 0.2 * baseline, MIN_PAIRS)
    return Lag(best - MAX_LAG, bool(clear), int(keys.size), where)


def suggested_shift(lag: int) -> tuple[int, int]:
    """A shift that puts both ends of one cut on one base: the lag split evenly."""
    return math.ceil(lag / 2), -math.floor(lag / 2)


def check_shift(plan: CountPlan, peaks=None) -> list[str]:
    """Checks each file's lag against its rule; returns one report line per file.

    Args:
      plan: the count (its sources' rules hold the assay's shift).
      peaks: optional [(chrom, centre)] to sample around.

    Raises:
      RecordsInputError: a file whose data clearly show another lag than its shift expects.
    """
    lines = []
    for source in plan.sources:
        keys, where = sample_keys(source, plan.genome, peaks, plan.fasta)
        found = lag_of(keys, where)
        shift = source.rule.shift
        expected = shift[0] - shift[1]
        if not found.clear:
            _LOGGER.warning(
                '%s: could not tell the shift from the data (no offset between plus and minus '
                'read ends stands out %s); counting with --assay=%s\'s %s',
                source.path,
                where,
                source.rule.assay,
                reads.format_shift(shift),
            )
            lines.append(f'{source.path}: shift not checked (no clear offset {where})')
            continue
        if found.lag != expected:
            suggest = reads.format_shift(suggested_shift(found.lag))
            raise RecordsInputError(
                f'{source.path}: {where}, minus-strand read ends sit {found.lag:+d} bp from the '
                f'plus-strand ends of the same cuts, but --assay={source.rule.assay}\'s shift '
                f'{reads.format_shift(shift)} is for {expected:+d} bp (are the reads shifted '
                f'already?); give --shift={suggest} to count these reads, or '
                f'--shift={reads.format_shift(shift)} to keep the assay\'s'
            )
        lines.append(
            f'{source.path}: shift {reads.format_shift(shift)} agrees with the data '
            f'(ends {found.lag:+d} bp apart {where})'
        )
    return lines


def peak_centres(path: str | None) -> list[tuple[str, int]] | None:
    """(chrom, centre) of each peak of a BED/narrowPeak (None without a file).

    Raises:
      RecordsInputError: an unreadable file or a bad line.
    """
    if not path:
        return None
    try:
        return [(b.chrom, (b.start + b.end) // 2) for b in genome_io.read_bed(path)]
    except BpnetError as e:
        raise RecordsInputError(str(e)) from None
