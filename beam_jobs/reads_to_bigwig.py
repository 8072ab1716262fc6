"""The reads job: aligned reads -> base-resolution counts bigWigs, by each assay's rule.

    python -m beam_jobs.reads_to_bigwig --reads=rep1.bam,rep2.bam --assay=chip-exo \\
        --output_prefix=out/Reb1                       # out/Reb1.pos.bw, out/Reb1.neg.bw
    python -m beam_jobs.reads_to_bigwig --reads=atac.fragments.tsv.gz --assay=atac \\
        --fasta=genome.fa --output_prefix=out/atac     # out/atac.bw (unstranded)

Counts the 5' end of every read that passes the filters, after the assay's shift, summed
over the files (docs/records.md has the rules). The driver checks the files (plan.py) and,
for atac and dnase without --shift, that the data show the assay's shift (shift_check.py);
the count runs as a Beam pipeline split by contig and region (transforms.py, counting.py) on
the runner the Beam flags name, and the bigWigs are written in order and moved into place
(bigwigs.py). Bad input is one line and exit status 2, and writes nothing.
"""

from __future__ import annotations

import sys

from beam_jobs.common import logs  # No Beam import: it must come first on the command line.

if __name__ == '__main__':  # Before Beam's import logs its 'apitools not found' warning.
    logs.configure(logs.verbose_requested(sys.argv[1:]), prog='reads_to_bigwig')

import os
from typing import Sequence

from beam_jobs.common import arguments, runners
from beam_jobs.common import files as files_lib
from beam_jobs.common.errors import RecordsInputError
from beam_jobs.reads import bigwigs, counting, shift_check
from beam_jobs.reads import flags as reads_flags
from beam_jobs.reads import plan as plan_lib
from bpnet_tfx.genome import reads


def run(argv: Sequence[str] | None = None, save_main_session: bool = False) -> counting.CountResult:
    """Runs the reads job; returns what it wrote.

    Raises:
      RecordsInputError: bad flags or reads files, outputs in the way without --overwrite, a
        shift the data disagree with, or no read counted.
    """
    args, pipeline_args = arguments.parse(reads_flags.parser(__doc__.split('\n\n')[0]), argv)
    shift = reads_flags.check_count_flags(args)
    runners.resolve_args(pipeline_args, num_plans=0)  # A runner Beam lacks stops us here.
    stranded = None if args.strands == 'auto' else args.strands == 'stranded'
    rule_for = reads_flags.rule_for(args, shift, stranded)
    plan = plan_lib.plan_count(
        [os.path.abspath(p) for p in reads_flags.split_paths(args.reads)],
        rule_for,
        fasta=os.path.abspath(args.fasta) if args.fasta else None,
        chrom_sizes=args.chrom_sizes,
        region_size=args.region_size,
        stranded=rule_for('bam').stranded,
    )
    prefix = (
        args.output_prefix
        if files_lib.is_remote(args.output_prefix)
        else (os.path.abspath(args.output_prefix))
    )
    outputs = bigwigs.output_paths(prefix, plan.stranded)
    _check_outputs(outputs, args.overwrite)
    if not files_lib.is_remote(prefix):
        os.makedirs(os.path.dirname(prefix), exist_ok=True)
    if shift is None and reads.ASSAYS[args.assay].checks_shift:
        for line in shift_check.check_shift(plan, shift_check.peak_centres(args.peaks)):
            print(f'reads_to_bigwig: {line}', file=sys.stderr)
    print(
        f'reads_to_bigwig: counting {len(plan.sources)} file(s) by the {args.assay} rule '
        f'({len(plan.regions(plan.indexed_contigs))} regions of indexed files)',
        flush=True,
    )
    result = counting.count_to_bigwigs(
        plan,
        outputs,
        pipeline_args,
        worker_start_timeout=args.worker_start_timeout,
        save_main_session=save_main_session,
    )
    print(f'reads_to_bigwig: {counting.summary_line(result)}')
    return result


def _check_outputs(outputs: Sequence[str], overwrite: bool) -> None:
    there = [p for p in outputs if files_lib.exists(p)]
    if there and not overwrite:
        raise RecordsInputError(f'{there[0]} exists; give --overwrite to replace it')


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the job; input errors are one line on stderr and exit status 2."""
    return runners.job_main('reads_to_bigwig', run, argv, (RecordsInputError,))


if __name__ == '__main__':
    sys.exit(main())
