"""The reads flags: how reads are counted (shared by reads_to_bigwig and make_records --reads)
and reads_to_bigwig's own command line.

`add_count_flags` defines the assay, shift, filter and region flags; `check_count_flags`
checks them; `rule_for` turns them into the counting rule of a file kind. `parser` is
reads_to_bigwig's parser. No Beam import: the mains set up logging before Beam loads.
"""

from __future__ import annotations

import argparse
from typing import Callable

from beam_jobs.common import arguments, logs
from beam_jobs.common.errors import RecordsInputError
from beam_jobs.reads.plan import DEFAULT_REGION_SIZE
from bpnet_tfx.genome import reads

STRANDS = ('auto', 'stranded', 'unstranded')


def add_count_flags(parser, *, assay_default: str | None = None) -> None:
    """The counting flags, on a parser or argument group."""
    parser.add_argument(
        '--assay',
        choices=tuple(reads.ASSAYS),
        default=assay_default,
        help="Which end of a read marks the event, and its shift (docs/records.md): chip-nexus, "
        "chip-exo, procap: the 5' end (first mates only); chip-seq: the 5' end of every read "
        '(--fragment_shift moves it); atac: Tn5 cuts, +4/-4; dnase: DNase I cuts, +0/+1.',
    )
    parser.add_argument(
        '--shift',
        default=None,
        help="Bases added to plus and minus reads' 5' ends, as +PLUS/-MINUS (e.g. +4/-4), "
        "instead of the assay's; also skips the automatic shift check of atac and dnase.",
    )
    parser.add_argument(
        '--fragment_shift',
        type=int,
        default=0,
        help="chip-seq only: bases each 5' end moves towards the fragment's centre (plus "
        'reads +N, minus reads -N); e.g. half the fragment length.',
    )
    parser.add_argument(
        '--min_mapq', type=int, default=30, help='Smallest mapping quality counted (0: all).'
    )
    parser.add_argument(
        '--dedup',
        choices=reads.DEDUP_MODES,
        default='flag',
        help="Duplicates: 'flag' leaves out reads flagged as duplicates, 'position' keeps one "
        "read per 5' end, strand and mate position in each file, 'none' counts them all.",
    )
    parser.add_argument(
        '--keep_secondary', action='store_true', help='Count secondary alignments too.'
    )
    parser.add_argument(
        '--keep_supplementary', action='store_true', help='Count supplementary alignments too.'
    )
    parser.add_argument(
        '--keep_improper_pairs',
        action='store_true',
        help='Count paired reads that are not flagged as properly paired too.',
    )
    parser.add_argument(
        '--region_size',
        type=int,
        default=DEFAULT_REGION_SIZE,
        help='Bases per counted piece of a contig: a worker holds one piece (about 8 bytes '
        'per base); the output does not depend on it.',
    )


def check_count_flags(args: argparse.Namespace) -> tuple[int, int] | None:
    """Checks the counting flags; returns --shift parsed (None without it).

    Raises:
      RecordsInputError: a bad value.
    """
    if args.assay is None:
        raise RecordsInputError(f'--assay is required with reads: one of {", ".join(reads.ASSAYS)}')
    if args.min_mapq < 0:
        raise RecordsInputError(f'--min_mapq must be >= 0, got {args.min_mapq}')
    if args.region_size <= 0:
        raise RecordsInputError(f'--region_size must be positive, got {args.region_size}')
    if args.fragment_shift and args.assay != 'chip-seq':
        raise RecordsInputError('--fragment_shift is for --assay=chip-seq only')
    if args.fragment_shift and args.shift:
        raise RecordsInputError('give --shift or --fragment_shift, not both')
    if args.shift is None:
        return None
    try:
        return reads.parse_shift(args.shift)
    except ValueError as e:
        raise RecordsInputError(f'--shift: {e}') from None


def rule_for(
    args: argparse.Namespace, shift: tuple[int, int] | None, stranded: bool | None
) -> Callable[[str], reads.CountRule]:
    """kind -> the CountRule of a file of that kind under the flags."""
    filters = reads.ReadFilters(
        min_mapq=args.min_mapq,
        dedup=args.dedup,
        keep_secondary=args.keep_secondary,
        keep_supplementary=args.keep_supplementary,
        keep_improper_pairs=args.keep_improper_pairs,
    )

    def rule(kind: str) -> reads.CountRule:
        return reads.make_rule(
            args.assay,
            filters=filters,
            shift=shift,
            fragment_shift=args.fragment_shift,
            stranded=stranded,
            fragments=kind == 'fragments',
        )

    return rule


def split_paths(text: str) -> list[str]:
    """'a.bam,b.bam' -> ['a.bam', 'b.bam'] (empty items dropped)."""
    return [p.strip() for p in text.split(',') if p.strip()]


def parser(description: str) -> argparse.ArgumentParser:
    """reads_to_bigwig's argument parser; `description` heads its --help."""
    p = arguments.job_parser('reads_to_bigwig', description)
    p.add_argument(
        '--reads',
        required=True,
        help='Comma list of reads files, summed: BAM or CRAM (sorted and indexed), SAM, '
        'tagAlign/BED (.tagAlign, .bed; plain or .gz; strand in column 6), 10x fragments '
        '(.tsv, .tsv.gz).',
    )
    p.add_argument(
        '--output_prefix',
        required=True,
        help='Writes PREFIX.pos.bw and PREFIX.neg.bw, or PREFIX.bw for an unstranded count.',
    )
    add_count_flags(p)
    p.add_argument(
        '--strands',
        choices=STRANDS,
        default='auto',
        help="stranded: plus and minus bigWigs; unstranded: one, both summed; auto: the "
        "assay's (atac and dnase unstranded, the others stranded).",
    )
    p.add_argument(
        '--fasta',
        help="Genome FASTA: the bigWigs' contigs, checked against the reads files', and the "
        'reference of CRAM files (default: the first BAM/SAM header).',
    )
    p.add_argument(
        '--chrom_sizes',
        help='Two-column contig sizes (bp), for tagAlign/BED/fragments files without --fasta.',
    )
    p.add_argument(
        '--peaks',
        help='Optional BED/narrowPeak: the shift check of atac and dnase samples reads around '
        'up to 500 of its peaks (default: the first reads of each file).',
    )
    p.add_argument('--overwrite', action='store_true', help='Replace existing output bigWigs.')
    p.add_argument(
        '--worker_start_timeout',
        type=float,
        default=600.0,
        help="Seconds to wait for the runner's first worker before the job stops (0: no limit).",
    )
    p.add_argument(
        *logs.VERBOSE_FLAGS,
        dest='verbose',
        action='store_true',
        help="Log the job's INFO lines and Beam's warnings to stderr.",
    )
    return p
