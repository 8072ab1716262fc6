"""What a reads count reads and where: the files checked, the genome, the regions.

`plan_count` checks every reads file on the driver (its kind by name; BAM/CRAM sorted and
indexed; contigs with reads present in the FASTA or chrom.sizes with the same length) and
returns a `CountPlan`: the files, one counting rule per file (a fragments file has the
assay's fragments shift), the genome's contigs (the bigWigs' header, in FASTA order) and the
regions the indexed files are counted in: each contig cut into `region_size` pieces, so a
worker holds one region's counts. No Beam here.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Sequence

from beam_jobs.common.errors import RecordsInputError
from bpnet_tfx.genome import genome_io, read_files, reads

DEFAULT_REGION_SIZE = 4_000_000
TALLY_KEY = (-1, 0)  # Region key of the tallies of files read start to end.


@dataclasses.dataclass(frozen=True)
class Source:
    """One reads file, its kind, and the rule its reads are counted by."""

    path: str
    kind: str
    rule: reads.CountRule

    @property
    def indexed(self) -> bool:
        return self.kind in read_files.INDEXED_KINDS


@dataclasses.dataclass(frozen=True)
class CountPlan:
    """A count: sources (summed), genome (contig, length) in output order, region size.

    Attributes:
      sources: the reads files.
      genome: (contig, length) of the output bigWigs' header, in order.
      region_size: bases per region of a contig.
      fasta: the reference of CRAM files (None without one).
      indexed_contigs: indices into `genome` of the contigs the indexed files hold reads on.
      stranded: write plus and minus tracks (else one, both summed).
    """

    sources: tuple[Source, ...]
    genome: tuple[tuple[str, int], ...]
    region_size: int
    fasta: str | None
    indexed_contigs: tuple[int, ...]
    stranded: bool

    def regions(self, contigs: Sequence[int] | None = None) -> list[tuple[int, int, int]]:
        """(contig index, start, end) of the regions of `contigs` (default: all)."""
        out = []
        for c in range(len(self.genome)) if contigs is None else contigs:
            size = self.genome[c][1]
            out.extend(
                (c, s, min(s + self.region_size, size)) for s in range(0, size, self.region_size)
            )
        return out

    def region_of(self, contig: int, base: int) -> tuple[int, int]:
        """(contig index, region start) of a base."""
        return contig, base - base % self.region_size


def fasta_sizes(path: str) -> dict[str, int]:
    """{contig: length} of a FASTA (its .fai, made when missing), in file order.

    Raises:
      RecordsInputError: a missing or unreadable FASTA.
    """
    try:
        with genome_io.open_fasta(path) as fasta:
            return genome_io.chrom_sizes(fasta)
    except genome_io.GenomeError as e:
        raise RecordsInputError(str(e)) from None


def _alignment_contigs(path: str, fasta: str | None, kind: str) -> dict[str, int]:
    """{contig: length} of the contigs of a BAM/CRAM/SAM that hold reads (SAM and CRAM, whose
    index gives no counts: all in its header)."""
    f = read_files.open_alignments(path, fasta)
    try:
        sizes = read_files.alignment_contigs(f, path)
        if kind != 'bam':
            return sizes
        return {c: sizes[c] for c in read_files.contigs_with_reads(f)}
    finally:
        f.close()


def plan_count(
    paths: Sequence[str],
    rule_for,
    *,
    fasta: str | None = None,
    chrom_sizes: str | None = None,
    region_size: int = DEFAULT_REGION_SIZE,
    stranded: bool = True,
) -> CountPlan:
    """Checks the reads files and plans their count.

    Args:
      paths: local reads files, summed.
      rule_for: kind -> CountRule ('fragments' files get the assay's fragments shift).
      fasta: genome FASTA: the output's contigs, and the reference of CRAM files.
      chrom_sizes: a chrom.sizes file, where no FASTA is given.
      region_size: bases per counted region.
      stranded: write plus and minus tracks.

    Raises:
      RecordsInputError: a bad file (see read_files), text files with neither FASTA nor
        chrom.sizes, reads on contigs the genome lacks, or no reads file.
    """
    if not paths:
        raise RecordsInputError('no reads file given')
    if region_size <= 0:
        raise RecordsInputError(f'--region_size must be positive, got {region_size}')
    try:
        kinds = [read_files.file_kind(p) for p in paths]
        for p in paths:
            if not os.path.isfile(p):
                raise reads.ReadsError(f'{p}: reads file not found')
        genome, name = _genome(paths, kinds, fasta, chrom_sizes)
        with_reads: set[str] = set()
        for p, kind in zip(paths, kinds):
            if kind in read_files.ALIGNMENT_KINDS:
                contigs = _alignment_contigs(p, fasta, kind)
                read_files.check_contigs(p, contigs, genome, name)
                if kind != 'sam':
                    with_reads.update(contigs)
    except reads.ReadsError as e:
        raise RecordsInputError(str(e)) from None
    names = list(genome)
    return CountPlan(
        sources=tuple(Source(p, k, rule_for(k)) for p, k in zip(paths, kinds)),
        genome=tuple(genome.items()),
        region_size=region_size,
        fasta=fasta,
        indexed_contigs=tuple(sorted(names.index(c) for c in with_reads)),
        stranded=stranded,
    )


def _genome(paths, kinds, fasta, chrom_sizes) -> tuple[dict[str, int], str]:
    """The output's contigs and the name of the file they come from."""
    if fasta:
        return fasta_sizes(fasta), fasta
    if chrom_sizes:
        return read_files.read_chrom_sizes(chrom_sizes), chrom_sizes
    first = next((p for p, k in zip(paths, kinds) if k in read_files.ALIGNMENT_KINDS), None)
    if first is None:
        raise RecordsInputError(
            'tagAlign, BED and fragments files name no contig lengths: give --fasta or '
            '--chrom_sizes'
        )
    f = read_files.open_alignments(first, None, need_index=False)
    try:
        return read_files.alignment_contigs(f, first), first
    finally:
        f.close()
