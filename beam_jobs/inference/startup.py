"""The start of every inference job (predict_tracks, contrib, score_variants): flags parsed
and checked, the runner resolved, the output folder checked and the export's metadata read,
all before any work, so that bad flags or inputs stop the job in one line at once."""

from __future__ import annotations

import argparse
from typing import Callable, Sequence

from beam_jobs.common import arguments, runners
from beam_jobs.common import files as files_lib
from beam_jobs.inference import handler


def start_job(
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None,
    check_flags: Callable[[argparse.Namespace], None],
    output: tuple[str, str] | None = None,
) -> tuple[argparse.Namespace, list[str], handler.ExportInfo]:
    """An inference job's start, before any work: (its flags, the Beam pipeline arguments,
    the export's metadata). Flags are parsed and checked, the runner resolved (a runner Beam
    lacks stops here), the output folder checked when `output` = (the file that marks a
    complete folder, what the folder is called), and the export's metadata read quietly.

    Raises:
      BpnetError, RecordsInputError: as `check_flags`, `arguments.parse` and
        `files.check_output_dir` raise them; schema.SchemaError: not an export.
    """
    args, pipeline_args = arguments.parse(parser, argv)
    check_flags(args)
    runners.resolve_args(pipeline_args, num_plans=0)
    if output is not None:
        marker, kind = output
        files_lib.check_output_dir(args.output_dir, args.overwrite, marker=marker, kind=kind)
    with handler.tensorflow_quiet(args.verbose):
        model = handler.load_export_info(args.saved_model)
    return args, pipeline_args, model
