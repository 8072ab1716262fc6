"""Which split a window goes to: the --valid_chroms / --test_chroms items and their checks.

An item is a chromosome or a chromosome interval ('chrIV:0-100,000', 0-based, half-open,
thousands separators allowed); `parse_chrom_spans` reads a flag's items into `ChromSpan`s,
`check_disjoint` refuses valid and test items that overlap, and `assign_split` puts a window
in the split whose items contain its centre (train otherwise). `split_problems` lists the
items that can give no region (no such chromosome in the FASTA, or no peak centre inside), so
a typo stops the job before any window is read. No Beam here.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Collection, Iterable, Mapping, Protocol, Sequence

from beam_jobs.common.errors import RecordsInputError
from bpnet_tfx.records import schema

TRAIN, VALID, TEST = schema.SPLITS


class Region(Protocol):
    """What the split checks read of a region (regions.Region has it; no import: regions
    imports this module)."""

    chrom: str
    centre: int
    split: str


_SPAN_RE = re.compile(r'^(?P<chrom>.+):(?P<start>\d[\d,]*)-(?P<end>\d[\d,]*)$')
_GROUPED_RE = re.compile(r'^\d{1,3}(,\d{3})+$')  # 300,000
_IN_NUMBER_RE = re.compile(r':[\d,]*\d$|:[\d,]+-[\d,]*\d$')  # Ends inside an interval.
_GROUP_RE = re.compile(r'^(\d{3}(-|$)|\d+-[\d,]*$)')  # What follows a comma in a number.


@dataclasses.dataclass(frozen=True)
class ChromSpan:
    """A whole chromosome (`end` None) or the interval [start, end) of one."""

    chrom: str
    start: int = 0
    end: int | None = None

    def contains(self, chrom: str, position: int) -> bool:
        return (
            chrom == self.chrom
            and position >= self.start
            and (self.end is None or position < self.end)
        )

    def overlaps(self, other: 'ChromSpan') -> bool:
        if self.chrom != other.chrom:
            return False
        inf = float('inf')
        return max(self.start, other.start) < min(
            inf if self.end is None else self.end, inf if other.end is None else other.end
        )

    def __str__(self) -> str:
        return self.chrom if self.end is None else f'{self.chrom}:{self.start}-{self.end}'


def _split_items(text: str) -> list[str]:
    """Splits a comma list, keeping thousands separators inside an interval's numbers.

    A comma belongs to a number when the text before it ends in the digits of an interval
    ('chrIV:0-300' or 'chrIV:100') and the text after it is three digits followed by the end,
    '-' or another comma, or digits then '-' (the rest of a start; its grouping is checked
    later): 'chrIV:0-300,000,chrV' is 'chrIV:0-300,000' and 'chrV'. So '1:0-100,2' is chromosome
    1's interval and chromosome 2, but 'X:0-100,200' is X:0-100200.
    """
    items: list[str] = []
    for piece in text.split(','):
        if items and _IN_NUMBER_RE.search(items[-1]) and _GROUP_RE.match(piece):
            items[-1] += ',' + piece
        else:
            items.append(piece)
    return items


def _parse_span(item: str, flag: str) -> ChromSpan:
    """One item: a chromosome name, or 'chrom:start-end' with optional thousands commas.

    Raises:
      RecordsInputError: an empty interval, badly grouped digits, an interval-like item that
        is not one ('chrIV:0-1e5', 'chrIV:0-300.000'), or whitespace inside a name.
    """
    m = _SPAN_RE.match(item)
    if m is not None:
        start, end = (_coordinate(m.group(g), item, flag) for g in ('start', 'end'))
        if start >= end:
            raise RecordsInputError(f'--{flag}: interval {item!r} is empty (start >= end)')
        return ChromSpan(m.group('chrom'), start, end)
    # A plain name; names may contain ':' (e.g. HLA contigs), so only a last part with a '-'
    # and digits reads as a failed interval.
    tail = item.rsplit(':', 1)[1] if ':' in item else ''
    if (
        any(c.isspace() for c in item)
        or not any(c.isalnum() for c in item)
        or ('-' in tail and any(c.isdigit() for c in tail))
    ):
        raise RecordsInputError(
            f'--{flag}: item {item!r} is neither a chromosome name nor an interval '
            "chrom:start-end (0-based, half-open; digits, commas allowed: 'chrIV:0-100,000')"
        )
    return ChromSpan(item)


def _coordinate(text: str, item: str, flag: str) -> int:
    if ',' in text and not _GROUPED_RE.match(text):
        raise RecordsInputError(
            f'--{flag}: interval {item!r}: {text!r} is not a number (commas must separate '
            'groups of three digits)'
        )
    return int(text.replace(',', ''))


def parse_chrom_spans(items: str | Sequence[str], *, flag: str) -> tuple[ChromSpan, ...]:
    """Parses a `--valid_chroms`-style list: chromosome names or 'chrom:start-end' intervals.

    Args:
      items: a comma-separated string or a sequence of items; empty items are ignored.
        Numbers may hold thousands separators ('chrIV:0-300,000'; see `_split_items`).
      flag: the flag's name, for error messages.

    Returns:
      The spans, in the order given.

    Raises:
      RecordsInputError: an item that is neither a chromosome name nor an interval, or an
        interval with start >= end.
    """
    if isinstance(items, str):
        items = _split_items(items)
    return tuple(_parse_span(item, flag) for item in (i.strip() for i in items) if item)


def check_disjoint(valid: Sequence[ChromSpan], test: Sequence[ChromSpan]) -> None:
    """Raises RecordsInputError when a valid item and a test item overlap."""
    for v in valid:
        for t in test:
            if v.overlaps(t):
                raise RecordsInputError(
                    f'--valid_chroms item {str(v)!r} overlaps --test_chroms item {str(t)!r}; '
                    'a region can only be in one split'
                )


def assign_split(
    chrom: str, position: int, valid: Sequence[ChromSpan], test: Sequence[ChromSpan]
) -> str:
    """Returns the split whose spans contain `position` on `chrom`; 'train' when none does."""
    if any(s.contains(chrom, position) for s in valid):
        return VALID
    if any(s.contains(chrom, position) for s in test):
        return TEST
    return TRAIN


def split_counts(regions: Iterable[Region]) -> dict[str, int]:
    """Returns {split: number of regions} over all three splits."""
    counts = dict.fromkeys(schema.SPLITS, 0)
    for r in regions:
        counts[r.split] += 1
    return counts


def unmatched_spans(regions: Sequence[Region], spans: Sequence[ChromSpan]) -> list[ChromSpan]:
    """Returns the spans that contain no region's centre (likely a typo in a split flag)."""
    return [s for s in spans if not any(s.contains(r.chrom, r.centre) for r in regions)]


def split_problems(
    spans: Mapping[str, Sequence[ChromSpan]],
    regions: Sequence[Region],
    sizes: Mapping[str, int],
    fasta_name: str,
    defaults: Collection[str] = (),
) -> list[str]:
    """One line per split item that can give no region: it names no chromosome of the FASTA,
    or it contains no peak centre (a typo in --valid_chroms or --test_chroms, or the default
    --valid_chroms=chr1 on a genome without chr1).

    Args:
      spans: {flag name: its items}, e.g. {'valid_chroms': ..., 'test_chroms': ...}.
      regions: every peak read.
      sizes: {chromosome: length} of the FASTA, in FASTA order.
      fasta_name: the FASTA, for messages.
      defaults: the flags left at their default value (their items say so).
    """
    names = list(sizes)
    shown = ', '.join(names[:5]) + (f', ... ({len(names)} in all)' if len(names) > 5 else '')
    example = f'{names[0]}:0-{sizes[names[0]] // 3:,}' if names else 'chr1:0-1,000,000'
    problems = []
    for flag, items in spans.items():
        unmatched = set(unmatched_spans(regions, items))
        for span in items:
            what = f'--{flag} item {str(span)!r}'
            if flag in defaults:
                what += ' (the default)'
            if span.chrom not in sizes:
                problems.append(
                    f'{what} names no chromosome of {fasta_name}, which has {shown}; pass '
                    f'--{flag} with one of its chromosomes or an interval of one (e.g. '
                    f'{example}), or --allow_empty_splits'
                )
            elif span in unmatched:
                problems.append(
                    f'{what} holds no peak centre (of {len(regions)} peaks read); pass '
                    f'--{flag} with items that hold peaks, or --allow_empty_splits'
                )
    return problems
