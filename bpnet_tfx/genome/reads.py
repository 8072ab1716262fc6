"""Aligned reads to base-resolution counts: the assays' rules, the read filters, the counting.

A read counts at its 5' base: the first aligned base (reference_start) of a plus-strand read,
the last aligned base (reference_end - 1) of a minus-strand one, so soft clips, deletions and
introns (N) move only the minus read's end. The rule's shift (plus, minus) is then added to
the plus and minus 5' bases (`ASSAYS`; docs/records.md). An end is one int64 key,
2 * base + strand (strand 0 plus, 1 minus); `count_keys` turns a region's keys into per-base
counts. `alignment_keys` filters and places the reads of a BAM/CRAM/SAM iterator; the text
formats are in read_files.py. No Beam here.
"""

from __future__ import annotations

import array
import dataclasses
import re
from typing import Any, Iterable, Mapping

import numpy as np

from bpnet_tfx.common.errors import BpnetError

PLUS, MINUS = 0, 1
DEDUP_MODES = ('flag', 'position', 'none')
# Flag bits (SAM spec).
_PAIRED, _PROPER, _UNMAPPED, _REVERSE = 0x1, 0x2, 0x4, 0x10
_MATE_REVERSE, _READ2, _SECONDARY, _QCFAIL = 0x20, 0x80, 0x100, 0x200
_DUPLICATE, _SUPPLEMENTARY = 0x400, 0x800
# Why a read was left out, in the order the reasons are checked.
DROP_REASONS = (
    'unmapped',
    'qc_fail',
    'secondary',
    'supplementary',
    'duplicate',
    'improper_pair',
    'second_mate',
    'low_mapq',
)
_REASON_BITS = {
    'unmapped': _UNMAPPED,
    'qc_fail': _QCFAIL,
    'secondary': _SECONDARY,
    'supplementary': _SUPPLEMENTARY,
    'duplicate': _DUPLICATE,
}
_SHIFT_RE = re.compile(r'^\s*([+-]?\d+)\s*/\s*([+-]?\d+)\s*$')


class ReadsError(BpnetError):
    """A reads file or reads setting that cannot be used, in one line naming the file."""


@dataclasses.dataclass(frozen=True)
class Assay:
    """An assay's counting rule.

    Attributes:
      name: the --assay value.
      shift: (plus, minus) bases added to the 5' bases of plus and minus reads.
      fragments_shift: the same for the ends of a fragments file (10x files are Tn5-adjusted
        already: start + 4, end - 5).
      stranded: whether the counts keep the strand by default (else one track, both summed).
      first_mates_only: of a read pair, only the first mate counts (its 5' end is the
        assay's event; the second mate's is a sonication or fragment end).
      checks_shift: the data can show the shift (Tn5 or DNase I cuts): check it.
    """

    name: str
    shift: tuple[int, int]
    fragments_shift: tuple[int, int]
    stranded: bool
    first_mates_only: bool
    checks_shift: bool = False

    @property
    def expected_lag(self) -> int:
        """Bases from a plus read's 5' end to the minus read's 5' end of one cutting event,
        before the shift; the shift puts both on one base."""
        return self.shift[0] - self.shift[1]


# Tn5 inserts its adapters 9 bp apart on the two strands: the plus read of an insertion starts
# at x, the minus read of the same insertion ends at x + 8; +4/-4 puts both on x + 4, the
# centre of the duplicated 9 bp (the usual "+4/-5" written on BED ends). DNase I cuts both
# strands at one place: the plus read starts at x, the minus read on the other side ends at
# x - 1; +0/+1 puts both on x.
ASSAYS: Mapping[str, Assay] = {
    'chip-nexus': Assay('chip-nexus', (0, 0), (0, 0), True, True),
    'chip-exo': Assay('chip-exo', (0, 0), (0, 0), True, True),
    'chip-seq': Assay('chip-seq', (0, 0), (0, 0), True, False),
    'atac': Assay('atac', (4, -4), (0, 1), False, False, True),
    'dnase': Assay('dnase', (0, 1), (0, 1), False, False, True),
    'procap': Assay('procap', (0, 0), (0, 0), True, True),
}


@dataclasses.dataclass(frozen=True)
class ReadFilters:
    """Which alignments count (unmapped and QC-failed reads never do).

    Attributes:
      min_mapq: smallest mapping quality kept.
      dedup: 'flag' drops reads flagged as duplicates, 'position' keeps one read per 5' end,
        strand and mate position (per input file), 'none' keeps duplicates.
      keep_secondary, keep_supplementary: keep those alignments.
      keep_improper_pairs: keep paired reads not flagged as properly paired.
    """

    min_mapq: int = 30
    dedup: str = 'flag'
    keep_secondary: bool = False
    keep_supplementary: bool = False
    keep_improper_pairs: bool = False

    def __post_init__(self):
        if self.dedup not in DEDUP_MODES:
            raise ValueError(f'dedup must be one of {DEDUP_MODES}, got {self.dedup!r}')

    @property
    def drop_mask(self) -> int:
        """Flag bits any of which leaves a read out."""
        mask = _UNMAPPED | _QCFAIL
        mask |= 0 if self.keep_secondary else _SECONDARY
        mask |= 0 if self.keep_supplementary else _SUPPLEMENTARY
        return mask | (_DUPLICATE if self.dedup == 'flag' else 0)


@dataclasses.dataclass(frozen=True)
class CountRule:
    """What counting does: an assay's rule with the user's shift, strands and filters."""

    assay: str
    shift: tuple[int, int]
    stranded: bool
    first_mates_only: bool
    filters: ReadFilters = ReadFilters()

    @property
    def margin(self) -> int:
        """Largest distance between a read's 5' base and where it counts."""
        return max(abs(self.shift[0]), abs(self.shift[1]))


def parse_shift(text: str) -> tuple[int, int]:
    """'+4/-4' -> (4, -4): bases added to plus and minus 5' ends.

    Raises:
      ValueError: not two signed integers separated by '/'.
    """
    match = _SHIFT_RE.match(text)
    if not match:
        raise ValueError(f"a shift is '+PLUS/-MINUS' in bases, e.g. +4/-4; got {text!r}")
    return int(match.group(1)), int(match.group(2))


def format_shift(shift: tuple[int, int]) -> str:
    return f'{shift[0]:+d}/{shift[1]:+d}'


def make_rule(
    assay: str,
    *,
    filters: ReadFilters = ReadFilters(),
    shift: tuple[int, int] | None = None,
    fragment_shift: int = 0,
    stranded: bool | None = None,
    fragments: bool = False,
) -> CountRule:
    """The rule for `assay`: its shift (for a fragments file, its fragments_shift) unless
    `shift` is given; chip-seq moves both ends `fragment_shift` bases inwards.

    Raises:
      ValueError: an unknown assay, or a fragment shift for another assay than chip-seq.
    """
    if assay not in ASSAYS:
        raise ValueError(f'unknown assay {assay!r}; known: {", ".join(ASSAYS)}')
    rule = ASSAYS[assay]
    if fragment_shift and assay != 'chip-seq':
        raise ValueError('a fragment shift is for --assay=chip-seq only')
    if shift is None:
        shift = rule.fragments_shift if fragments else rule.shift
        shift = (shift[0] + fragment_shift, shift[1] - fragment_shift)
    return CountRule(
        assay=assay,
        shift=tuple(shift),
        stranded=rule.stranded if stranded is None else stranded,
        first_mates_only=rule.first_mates_only,
        filters=filters,
    )


def _drop_reasons(flags: Mapping[int, int], mask: int) -> dict[str, int]:
    """{reason: reads} from {flag: reads} of the reads the flag mask dropped."""
    out: dict[str, int] = {}
    for flag, n in flags.items():
        reason = next(r for r, bit in _REASON_BITS.items() if flag & bit & mask)
        out[reason] = out.get(reason, 0) + n
    return out


@dataclasses.dataclass
class Keys:
    """The ends of one region: keys (2 * base + strand) and, for position dedup, each end's
    mate key (-1 without a mate), with the reads seen and left out."""

    keys: np.ndarray
    mates: np.ndarray | None
    tally: dict[str, int]


def alignment_keys(reads: Iterable[Any], rule: CountRule, start: int, end: int, size: int) -> Keys:
    """The ends of `reads` (pysam AlignedSegments of one contig of length `size`) that count
    in [start, end) after the shift. A region that starts at 0 also tallies the ends shifted
    before the contig's start, the one that ends at `size` those past its end
    ('off_contig'), so each read is tallied once when regions tile the contig.

    Returns:
      Keys; tally: 'reads' (all seen with their end in the region, or dropped), 'counted',
      one entry per drop reason, 'off_contig'.
    """
    f = rule.filters
    mask, min_mapq, improper = f.drop_mask, f.min_mapq, not f.keep_improper_pairs
    first_only, want_mates = rule.first_mates_only, f.dedup == 'position'
    plus, minus = rule.shift
    out, mates = array.array('q'), array.array('q')
    flagged: dict[int, int] = {}
    improper_n = second_n = low_n = off = 0
    for read in reads:
        flag = read.flag
        if flag & _UNMAPPED:  # Placed beside its mate: tallied where it is placed.
            if start <= read.reference_start < end:
                flagged[flag] = flagged.get(flag, 0) + 1
            continue
        if flag & _REVERSE:
            base = read.reference_end - 1 + minus
        else:
            base = read.reference_start + plus
        if not start <= base < end:
            if (base < 0 and start == 0) or (base >= size and end == size):
                off += 1
            continue
        if flag & mask:
            flagged[flag] = flagged.get(flag, 0) + 1
        elif flag & _PAIRED and improper and not flag & _PROPER:
            improper_n += 1
        elif flag & _PAIRED and first_only and flag & _READ2:
            second_n += 1
        elif read.mapping_quality < min_mapq:
            low_n += 1
        else:
            out.append(2 * base + (flag & _REVERSE) // _REVERSE)
            if want_mates:
                mates.append(
                    2 * read.next_reference_start + (flag & _MATE_REVERSE) // _MATE_REVERSE
                    if flag & _PAIRED
                    else -1
                )
    keys = np.frombuffer(out, np.int64) if out else np.zeros(0, np.int64)
    dropped = _drop_reasons(flagged, mask)
    dropped.update(improper_pair=improper_n, second_mate=second_n, low_mapq=low_n)
    dropped.update(off_contig=off, counted=len(keys))
    tally = {k: v for k, v in dropped.items() if v or k == 'counted'}
    tally['reads'] = sum(tally.values())
    if not want_mates:
        return Keys(keys, None, tally)
    return Keys(keys, np.frombuffer(mates, np.int64) if mates else np.zeros(0, np.int64), tally)


def unique_ends(keys: np.ndarray, mates: np.ndarray | None) -> np.ndarray:
    """`keys` with one end per (key, mate key): position deduplication of one file."""
    if mates is None:
        return np.unique(keys)
    return np.unique(np.stack([keys, mates], axis=1), axis=0)[:, 0]


def counted_keys(ends: Keys, rule: CountRule) -> np.ndarray:
    """The keys that count: all of them, or under position deduplication one per (key, mate
    key); the ends dropped as duplicates move from 'counted' to 'duplicate' in the tally."""
    if rule.filters.dedup != 'position':
        return ends.keys
    keys = unique_ends(ends.keys, ends.mates)
    removed = ends.keys.size - keys.size
    if removed:
        add_tallies(ends.tally, {'duplicate': removed, 'counted': -removed})
    return keys


def count_keys(keys: np.ndarray, start: int, length: int) -> np.ndarray:
    """Counts (length, 2) uint32 (plus, minus) of ends keyed 2 * base + strand, bases in
    [start, start + length)."""
    counts = np.bincount(keys - 2 * start, minlength=2 * length)
    return counts.astype(np.uint32).reshape(length, 2)


def add_tallies(total: dict[str, int], more: Mapping[str, int]) -> dict[str, int]:
    """Adds `more` into `total` (in place); returns it."""
    for k, v in more.items():
        total[k] = total.get(k, 0) + int(v)
    return total
