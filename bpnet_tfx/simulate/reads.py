"""The simulator's reads: its observed counts as a sorted, indexed BAM and as a fragments file.

Each count at base x of the plus-strand track becomes a read whose first aligned base is x,
each of the minus-strand track a read whose last aligned base is x, so counting the reads' 5'
ends (the chip-exo rule: no shift) gives back the bigWigs the simulator wrote. Lengths and
CIGARs vary (soft clips at either end, an insertion, a deletion, an intron), shortened at the
contig ends. The fragments file pairs each minus end with the nearest open plus end at most
`MAX_FRAGMENT` bp before it (ends left without a partner are not written). The reads are
derived from the simulator's files, so its outputs stay as they are.
"""

from __future__ import annotations

import collections
import dataclasses
import gzip
import os
from typing import Iterator, Sequence

import numpy as np

from bpnet_tfx.common import folders

MAX_FRAGMENT = 1000
READ_LENGTH = (20, 50)  # Aligned bases, drawn uniformly from [low, high).
READS_VERSION = 1  # Bump when the reads written for one data set change.
# (CIGAR format, reference span) of the read shapes: L aligned bases, the 5' end first for a
# plus read (a minus read's 5' end is the right end of its CIGAR).
_SHAPES = ('{L}M', '3S{L}M', '{L}M4S', '{a}M2I{b}M', '{a}M3D{b}M', '{a}M150N{b}M')
_EXTRA_SPAN = (0, 0, 0, 0, 3, 150)


@dataclasses.dataclass(frozen=True)
class ChromCounts:
    """One contig's observed counts: (size,) int64 per strand."""

    chrom: str
    size: int
    plus: np.ndarray
    minus: np.ndarray


def counts_from_bigwigs(pos_bigwig: str, neg_bigwig: str) -> Iterator[ChromCounts]:
    """The integer counts of a pair of the simulator's bigWigs, contig by contig."""
    import pyBigWig

    pos, neg = pyBigWig.open(pos_bigwig), pyBigWig.open(neg_bigwig)
    try:
        for chrom, size in pos.chroms().items():
            yield ChromCounts(
                chrom,
                size,
                np.nan_to_num(pos.values(chrom, 0, size, numpy=True)).astype(np.int64),
                np.nan_to_num(neg.values(chrom, 0, size, numpy=True)).astype(np.int64),
            )
    finally:
        pos.close()
        neg.close()


def _cigars(rng: np.random.Generator, n: int, room: np.ndarray) -> tuple[list[str], np.ndarray]:
    """n CIGARs of varied shapes and their reference spans, each span at most `room`."""
    length = rng.integers(*READ_LENGTH, size=n)
    shape = rng.integers(0, len(_SHAPES), size=n)
    span = length + np.asarray(_EXTRA_SPAN)[shape]
    plain = span > room
    shape[plain] = 0
    length[plain] = np.minimum(length[plain], room[plain])
    span[plain] = length[plain]
    a = length // 2
    cigars = [
        _SHAPES[s].format(L=n_, a=a_, b=n_ - a_)
        for s, n_, a_ in zip(shape.tolist(), length.tolist(), a.tolist())
    ]
    return cigars, span


def _mirror(cigar: str) -> str:
    """A plus read's CIGAR with its ends swapped (the 5' end on the right)."""
    import re

    return ''.join(reversed(re.findall(r'\d+[MIDNS]', cigar)))


def sam_lines(counts: ChromCounts, rng: np.random.Generator, first_name: int) -> list[tuple]:
    """(start, line) of every read of one contig, unsorted."""
    out = []
    for strand, track in ((0, counts.plus), (16, counts.minus)):
        ends = np.repeat(np.flatnonzero(track), track[track > 0])
        room = counts.size - ends if strand == 0 else ends + 1
        cigars, span = _cigars(rng, ends.size, room)
        starts = ends if strand == 0 else ends - span + 1
        for i, (start, cigar) in enumerate(zip(starts.tolist(), cigars)):
            cigar = cigar if strand == 0 else _mirror(cigar)
            name = f'r{first_name + len(out) + i:09d}'
            out.append(
                (
                    start,
                    f'{name}\t{strand}\t{counts.chrom}\t{start + 1}\t60\t{cigar}\t*\t0\t0\t*\t*\n',
                )
            )
    return out


def write_bam(path: str, chroms: Sequence[ChromCounts], *, seed: int = 0) -> int:
    """Writes the reads of `chroms` as a coordinate-sorted BAM with its .bai; returns the
    number of reads."""
    import pysam

    rng = np.random.default_rng(seed)
    sam = path + '.unsorted.sam'
    n = 0
    with open(sam, 'w') as f:
        f.write('@HD\tVN:1.6\tSO:unsorted\n')
        for c in chroms:
            f.write(f'@SQ\tSN:{c.chrom}\tLN:{c.size}\n')
        for c in chroms:
            lines = sam_lines(c, rng, n)
            lines.sort()
            f.writelines(line for _, line in lines)
            n += len(lines)
    try:
        pysam.sort('-o', path, '--no-PG', sam)
        pysam.index(path)
    finally:
        os.remove(sam)
    return n


def fragments(counts: ChromCounts) -> list[tuple[int, int]]:
    """(start, end) fragments pairing minus ends with the nearest open plus end before them."""
    events = [
        (int(x), 0) for x in np.repeat(np.flatnonzero(counts.plus), counts.plus[counts.plus > 0])
    ]
    events += [
        (int(x), 1) for x in np.repeat(np.flatnonzero(counts.minus), counts.minus[counts.minus > 0])
    ]
    events.sort()
    open_ends: collections.deque[int] = collections.deque()
    out = []
    for x, strand in events:
        if strand == 0:
            open_ends.append(x)
            continue
        while open_ends and x - open_ends[0] >= MAX_FRAGMENT:
            open_ends.popleft()
        if open_ends:
            out.append((open_ends.pop(), x + 1))
    out.sort()
    return out


def write_fragments(path: str, chroms: Sequence[ChromCounts]) -> int:
    """Writes a gzipped 10x-style fragments file (barcode 'SIM', count 1); returns the number
    of fragments."""
    n = 0
    with gzip.open(path, 'wt', compresslevel=6) as f:
        f.write('# simulated fragments: chrom, start, end, barcode, count\n')
        for c in chroms:
            frags = fragments(c)
            f.writelines(f'{c.chrom}\t{s}\t{e}\tSIM\t1\n' for s, e in frags)
            n += len(frags)
    return n


@dataclasses.dataclass(frozen=True)
class DemoReads:
    """The reads of a demo data set: per task (and 'control'), a BAM and a fragments file."""

    root: str
    bams: dict[str, str]
    fragments: dict[str, str]


def _demo_reads_files(root: str, names: Sequence[str]) -> DemoReads:
    return DemoReads(
        root,
        {n: os.path.join(root, f'{n}.bam') for n in names},
        {n: os.path.join(root, f'{n}.fragments.tsv.gz') for n in names},
    )


def ensure_demo_reads(demo) -> DemoReads:
    """The reads of a simulated data set (`simulator.DemoFiles`), written beside it once:
    `<demo root>-reads-v<READS_VERSION>/`."""
    pairs = {t: demo.task_bigwigs[t][:2] for t in demo.tasks}
    if demo.control_pos_bigwig:
        pairs['control'] = (demo.control_pos_bigwig, demo.control_neg_bigwig)
    root = f'{demo.root.rstrip(os.sep)}-reads-v{READS_VERSION}'
    files = _demo_reads_files(root, list(pairs))
    if all(os.path.exists(p + '.bai') for p in files.bams.values()):
        return files

    def write(tmp: str) -> None:
        out = _demo_reads_files(tmp, list(pairs))
        for name, (pos, neg) in pairs.items():
            chroms = list(counts_from_bigwigs(pos, neg))
            write_bam(out.bams[name], chroms)
            write_fragments(out.fragments[name], chroms)

    folders.write_atomically(root, write)
    return files
