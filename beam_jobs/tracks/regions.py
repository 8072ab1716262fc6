"""The regions predict_tracks predicts, and their split into shards of windows.

A BED gives the command's merged regions (`genome.bed.bed_windows` with longer lines kept whole,
then `genome.windows.merge_regions`). `--genome_wide` gives every stretch of each chromosome between
runs of at least `min_gap` non-ACGT bases (N runs): a stretch shorter than one window is
skipped, and so is a chromosome shorter than one; nothing runs past a chromosome end, as the
last window of a stretch ends at its end (`genome.windows.tile_windows`). The chromosomes are read
in blocks, so memory holds one block, not a chromosome.

`plan_shards` cuts the windows of all regions, in order, into shards of about equal numbers of
windows. A piece is (chrom, start, end) of consecutive windows of one region, tiled as the
command tiles the region; a cut never separates a region's last window from the one it
overlaps, so every base's windows are in one piece and a piece's values are the command's.
"""

from __future__ import annotations

import dataclasses
from typing import Iterator, Sequence

import numpy as np

from bpnet_tfx.genome import bed as bed_lib
from bpnet_tfx.genome import windows as windows_lib

_ACGT = np.frombuffer(b'ACGT', np.uint8)
_BLOCK = 1 << 22  # bases read at a time when looking for N runs

Region = tuple[str, int, int]


@dataclasses.dataclass(frozen=True)
class GenomeRegions:
    """`genome_regions`' result: the regions and what was skipped."""

    regions: list[Region]
    chroms: list[str]  # the chromosomes looked at
    gaps: int  # N runs of at least min_gap bp
    gap_bases: int
    short_stretches: int  # stretches between gaps shorter than one window
    short_bases: int
    short_chroms: list[str]  # chromosomes shorter than one window

    def skipped(self) -> str:
        """What was not predicted, in words."""
        parts = [
            f'{self.gaps:,} N run(s) ({self.gap_bases:,} bp)',
            f'{self.short_stretches:,} stretch(es) shorter than a window ({self.short_bases:,} bp)',
        ]
        if self.short_chroms:
            shown = ', '.join(self.short_chroms[:5]) + (
                ', ...' if len(self.short_chroms) > 5 else ''
            )
            parts.append(f'{len(self.short_chroms)} chromosome(s) shorter than a window ({shown})')
        return 'skipped ' + ', '.join(parts)


def n_runs(genome, chrom: str, size: int, min_gap: int) -> list[tuple[int, int]]:
    """(start, end) of the runs of non-ACGT bases of `chrom` at least `min_gap` bp long."""
    runs: list[list[int]] = []
    for a in range(0, size, _BLOCK):
        text = genome[chrom][a : min(a + _BLOCK, size)]
        is_n = ~np.isin(np.frombuffer(text.encode('ascii', 'replace'), np.uint8), _ACGT)
        edges = np.flatnonzero(np.diff(np.concatenate([[0], is_n.view(np.int8), [0]])))
        for s, e in zip(edges[::2] + a, edges[1::2] + a):
            if runs and runs[-1][1] == s:  # a run that goes on across the block boundary
                runs[-1][1] = int(e)
            else:
                runs.append([int(s), int(e)])
    return [(s, e) for s, e in runs if e - s >= min_gap]


def _stretches(size: int, gaps: list[tuple[int, int]]) -> Iterator[tuple[int, int]]:
    start = 0
    for s, e in gaps:
        if s > start:
            yield start, s
        start = e
    if start < size:
        yield start, size


def genome_regions(
    genome, sizes: dict[str, int], chroms: Sequence[str], length: int, min_gap: int
) -> GenomeRegions:
    """The stretches of `chroms` (in FASTA order) between N runs of at least `min_gap` bp
    that hold at least one `length`-bp window (module docstring)."""
    regions: list[Region] = []
    gaps = gap_bases = short = short_bases = 0
    short_chroms = []
    for chrom in chroms:
        size = sizes[chrom]
        if size < length:
            short_chroms.append(chrom)
            continue
        found = n_runs(genome, chrom, size, min_gap)
        gaps += len(found)
        gap_bases += sum(e - s for s, e in found)
        for s, e in _stretches(size, found):
            if e - s < length:
                short += 1
                short_bases += e - s
            else:
                regions.append((chrom, s, e))
    return GenomeRegions(regions, list(chroms), gaps, gap_bases, short, short_bases, short_chroms)


def bed_regions(regions_bed: str, sizes: dict[str, int], length: int, fasta: str):
    """(BED lines, merged regions) as `predict --regions_bed` makes them.

    Raises:
      genome_io.GenomeError: a bad BED line ('file:line: ...'), or no regions.
    """
    bed = bed_lib.bed_windows(regions_bed, sizes, length, fasta=fasta, keep_longer=True)
    return len(bed), windows_lib.merge_regions(
        [(w.chrom, w.start, w.end) for w in bed], list(sizes)
    )


def window_count(start: int, end: int, length: int) -> int:
    """How many windows `genome.windows.tile_windows` tiles [start, end) with."""
    return -(-(end - start) // length)


def _cuts(regions: list[Region], length: int, num_shards: int) -> list[int]:
    """Global window indices where shards start and, last, the number of windows; no cut
    separates a region's last window from the one before it that it overlaps."""
    counts = [window_count(s, e, length) for _, s, e in regions]
    firsts = np.concatenate([[0], np.cumsum(counts)]).astype(int)
    total = int(firsts[-1])
    cuts: list[int] = []
    for k in range(num_shards):
        cut = k * total // num_shards
        r = int(np.searchsorted(firsts, cut, side='right')) - 1
        _, s, e = regions[r]
        if counts[r] > 1 and cut - firsts[r] == counts[r] - 1 and (e - s) % length:
            cut += 1
        if not cuts or cut > cuts[-1]:
            cuts.append(cut)
    return [c for c in cuts if c < total] + [total]


def plan_shards(regions: list[Region], length: int, num_shards: int) -> list[list[Region]]:
    """The regions' windows in `num_shards` shards (fewer where a cut would split an
    overlapping pair), each a list of pieces (chrom, start, end) in region order."""
    cuts = _cuts(regions, length, num_shards)
    shards: list[list[Region]] = [[] for _ in range(len(cuts) - 1)]
    first, k = 0, 0
    for chrom, s, e in regions:
        n = window_count(s, e, length)
        i = 0
        while i < n:
            while cuts[k + 1] <= first + i:
                k += 1
            j = min(n, cuts[k + 1] - first)
            piece_end = e if j == n else s + j * length
            shards[k].append((chrom, s + i * length, piece_end))
            i = j
        first += n
    return shards
