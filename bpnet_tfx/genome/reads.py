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


def _fast_flags(rule: CountRule) -> list[bool]:
    """Per flag value (12 bits): a read with it counts whenever its mapping quality does, and
    needs no mate key."""
    f = rule.filters
    table = []
    for flag in range(1 << 12):
        paired = flag & _PAIRED
        table.append(
            not flag & f.drop_mask
            and not (paired and not f.keep_improper_pairs and not flag & _PROPER)
            and not (paired and rule.first_mates_only and flag & _READ2)
            and not (paired and f.dedup == 'position')
        )
    return table


def alignment_keys(reads: Iterable[Any], rule: CountRule, start: int, end: int, size: int) -> Keys:
    """The ends of `reads` (pysam AlignedSegments of one contig of length `size`) that count
    in [start, end) after the shift. A region that starts at 0 also tallies the ends shifted
    before the contig's start, the one that ends at `size` those past its end
    ('off_contig'), so each read is tallied once when regions tile the contig.

    Returns:
      Keys; tally: 'reads' (all seen with their end in the region, or dropped), 'counted',
      one entry per drop reason, 'off_contig'.
    """
    # Most reads need only their flag looked up and their end kept (fast); the others go
    # through every check one by one (_SlowReads), tallied where their end falls.
    fast, min_mapq = _fast_flags(rule), rule.filters.min_mapq
    starts, ends = array.array('q'), array.array('q')
    add_start, add_end = starts.append, ends.append
    slow = _SlowReads(rule, start, end, size)
    for read in reads:
        flag = read.flag
        if fast[flag] and read.mapping_quality >= min_mapq:
            if flag & _REVERSE:
                add_end(read.reference_end)
            else:
                add_start(read.reference_start)
        else:
            slow.add(read, flag)
    plus = _as_array(starts) + rule.shift[0]
    minus = _as_array(ends) - 1 + rule.shift[1]
    keys = [slow.keys()]
    for bases, strand in ((plus, PLUS), (minus, MINUS)):
        inside = (bases >= start) & (bases < end)
        keys.append(2 * bases[inside] + strand)
        slow.off += int(
            ((bases < 0) & (start == 0)).sum() + ((bases >= size) & (end == size)).sum()
        )
    keys = np.concatenate(keys)
    mates = None
    if rule.filters.dedup == 'position':
        mates = np.concatenate([slow.mate_keys(), np.full(keys.size - slow.count, -1, np.int64)])
    return Keys(keys, mates, slow.tally(keys.size))


def _as_array(values: array.array) -> np.ndarray:
    return np.frombuffer(values, np.int64) if values else np.zeros(0, np.int64)


class _SlowReads:
    """Reads that need more than a flag lookup: each check in turn, tallied by reason."""

    def __init__(self, rule: CountRule, start: int, end: int, size: int):
        f = rule.filters
        self._rule, self._start, self._end, self._size = rule, start, end, size
        self._mask, self._improper = f.drop_mask, not f.keep_improper_pairs
        self._want_mates = f.dedup == 'position'
        self._keys, self._mates = array.array('q'), array.array('q')
        self._flagged: dict[int, int] = {}
        self.improper = self.second = self.low = self.off = 0

    @property
    def count(self) -> int:
        return len(self._keys)

    def add(self, read: Any, flag: int) -> None:
        start, end = self._start, self._end
        if flag & _UNMAPPED:  # Placed beside its mate: tallied where it is placed.
            if start <= read.reference_start < end:
                self._flagged[flag] = self._flagged.get(flag, 0) + 1
            return
        if flag & _REVERSE:
            base = read.reference_end - 1 + self._rule.shift[1]
        else:
            base = read.reference_start + self._rule.shift[0]
        if not start <= base < end:
            if (base < 0 and start == 0) or (base >= self._size and end == self._size):
                self.off += 1
        elif flag & self._mask:
            self._flagged[flag] = self._flagged.get(flag, 0) + 1
        elif flag & _PAIRED and self._improper and not flag & _PROPER:
            self.improper += 1
        elif flag & _PAIRED and self._rule.first_mates_only and flag & _READ2:
            self.second += 1
        elif read.mapping_quality < self._rule.filters.min_mapq:
            self.low += 1
        else:
            self._keys.append(2 * base + (flag & _REVERSE) // _REVERSE)
            if self._want_mates:
                self._mates.append(
                    2 * read.next_reference_start + (flag & _MATE_REVERSE) // _MATE_REVERSE
                    if flag & _PAIRED
                    else -1
                )

    def keys(self) -> np.ndarray:
        return _as_array(self._keys)

    def mate_keys(self) -> np.ndarray:
        return _as_array(self._mates)

    def tally(self, counted: int) -> dict[str, int]:
        dropped = _drop_reasons(self._flagged, self._mask)
        dropped.update(improper_pair=self.improper, second_mate=self.second, low_mapq=self.low)
        dropped.update(off_contig=self.off, counted=counted)
        tally = {k: v for k, v in dropped.items() if v or k == 'counted'}
        tally['reads'] = sum(tally.values())
        return tally


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
