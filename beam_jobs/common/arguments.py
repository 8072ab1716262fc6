"""A Beam job's command line: its own flags, and the rest only if they are Beam options.

`parse(parser, argv)` splits argv into the job's flags and the pipeline arguments, as
`parse_known_args` does, but refuses an argument that neither the job nor any Beam
`PipelineOptions` class defines (a misspelled `--test_chrom`), naming it and the closest flag
(Beam itself would only log 'Discarding unparseable args' and run on). Every job main parses
through it, with a parser from `job_parser`. Import after `logs.configure`: it loads Beam's
options.
"""

from __future__ import annotations

import argparse
import difflib
import importlib.util
from typing import Sequence

from beam_jobs.common.errors import RecordsInputError

_DASK_NAMES = ('dask', 'daskrunner', 'apache_beam.runners.dask.dask_runner.daskrunner')


def job_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """A job's argument parser: `description` heads its --help, no abbreviated flags, and an
    epilog saying where the other flags go."""
    return argparse.ArgumentParser(
        prog=prog,
        description=description,
        allow_abbrev=False,
        epilog='Other flags (--runner, --direct_num_workers, --setup_file, ...) go to Beam.',
    )


def parse(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None
) -> tuple[argparse.Namespace, list[str]]:
    """(the job's flags, the Beam pipeline arguments) of `argv` (None: sys.argv[1:]).

    Raises:
      RecordsInputError: an argument that is no flag of the job nor a Beam pipeline option,
        or a Beam option's value that Beam cannot parse; one line, with the closest flag.
    """
    try:
        args, rest = _one_line_errors(parser).parse_known_args(argv)
    except RecordsInputError:
        # A misspelled flag is the likelier cause of a missing required one: name it first.
        _refuse_unknown(parser, _optional(parser).parse_known_args(argv)[1])
        raise
    _refuse_unknown(parser, rest)
    return args, rest


def _refuse_unknown(parser: argparse.ArgumentParser, rest: Sequence[str]) -> None:
    beam_parser = _beam_parser(rest)
    unknown = beam_parser.parse_known_args(rest)[1]
    if unknown:
        raise RecordsInputError(_unknown_message(unknown, parser, beam_parser))


def _one_line_errors(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """`parser`, whose errors (a missing required flag, a bad value) raise one line instead
    of printing the usage and exiting."""

    def error(message: str):
        raise RecordsInputError(message)

    parser.error = error
    return parser


def _optional(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """A copy of `parser` with no required flag (to find unknown arguments on their own)."""
    import copy

    relaxed = copy.deepcopy(parser)
    for action in relaxed._actions:
        action.required = False
    return relaxed


def _beam_parser(args: Sequence[str]) -> argparse.ArgumentParser:
    """The parser Beam's `PipelineOptions` builds from every options class (the Dask runner's
    too, when it is asked for and installed); its errors raise RecordsInputError."""
    from apache_beam.options.pipeline_options import PipelineOptions

    if _asks_for_dask(args) and importlib.util.find_spec('distributed') is not None:
        import apache_beam.runners.dask.dask_runner  # noqa: F401  (defines DaskOptions)
    found = []
    # get_all_options hands its parser, every options class added, to this callback.
    PipelineOptions([]).get_all_options(add_extra_args_fn=found.append)
    beam_parser = found[0]

    def error(message: str):
        if not message.startswith('ambiguous option: '):  # as Beam's own parser
            raise RecordsInputError(f'Beam pipeline option: {message}')

    beam_parser.error = error  # argparse would print its usage and exit
    return beam_parser


def _asks_for_dask(args: Sequence[str]) -> bool:
    for i, arg in enumerate(args):
        if arg.startswith('--runner='):
            value = arg.split('=', 1)[1]
        elif arg == '--runner' and i + 1 < len(args):
            value = args[i + 1]
        else:
            continue
        if value.lower() in _DASK_NAMES:
            return True
    return False


def _flags(parser: argparse.ArgumentParser) -> list[str]:
    return [s for a in parser._actions for s in a.option_strings if s.startswith('--')]


def _unknown_message(
    unknown: Sequence[str],
    parser: argparse.ArgumentParser,
    beam_parser: argparse.ArgumentParser,
) -> str:
    """'unknown flag --test_chrom (did you mean --test_chroms?); ...' for `unknown`."""
    names = [a.split('=', 1)[0] for a in unknown if a.startswith('-')]
    if not names:
        return f'unexpected arguments: {" ".join(unknown)} (flags are --name=value)'
    own, beam = _flags(parser), _flags(beam_parser)
    described = []
    for name in names:
        # Beam has hundreds of options: only a near miss of one is worth naming.
        close = difflib.get_close_matches(name, own, n=1) or difflib.get_close_matches(
            name, beam, n=1, cutoff=0.8
        )
        described.append(f'{name} (did you mean {close[0]}?)' if close else name)
    plural = 's' if len(names) > 1 else ''
    return (
        f'unknown flag{plural} {", ".join(described)}: neither a flag of {parser.prog} '
        '(--help lists them) nor a Beam pipeline option'
    )
