"""Log output of the Beam jobs' command lines: progress and summary only, unless -v.

Importing Apache Beam logs a warning through the root logger ('apitools not found, ...', from
its BigQuery client) and Beam logs INFO per bundle; neither helps a user. So `python -m
beam_jobs.make_records` calls `configure` before Beam is imported: by default only the job's
own warnings and errors reach stderr (and Python warnings are hidden); with -v/--verbose the
job's INFO lines and Beam's warnings and errors come back. A library caller of
`make_records.run()` keeps its own logging: nothing here runs on import.
"""

from __future__ import annotations

import argparse
import logging
import warnings
from typing import Sequence

VERBOSE_FLAGS = ('-v', '--verbose')


def verbose_requested(argv: Sequence[str]) -> bool:
    """Whether argv asks for -v/--verbose (read before the job's own parser runs)."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument(*VERBOSE_FLAGS, action='store_true')
    return parser.parse_known_args(list(argv))[0].verbose


def configure(verbose: bool, prog: str = 'make_records') -> None:
    """Sets up the root logger for the command line of job `prog`; call before apache_beam
    is imported."""
    if verbose:
        logging.basicConfig(
            level=logging.WARNING,
            force=True,
            format='%(asctime)s %(name)s: %(levelname)s: %(message)s',
        )
        logging.getLogger('beam_jobs').setLevel(logging.INFO)
        logging.getLogger('apache_beam').setLevel(logging.WARNING)  # Its INFO is per bundle.
        return
    # Root at CRITICAL drops what libraries log through it (Beam's import-time warning, a
    # portable job's error messages); the job's own loggers still pass warnings to the root's
    # handler.
    logging.basicConfig(
        level=logging.CRITICAL, force=True, format=f'{prog}: %(levelname)s: %(message)s'
    )
    logging.getLogger('beam_jobs').setLevel(logging.WARNING)
    # A failed run logs its worker's traceback several times over (the SDK harness, the job
    # server, the runner); the job's main() says what failed in one line instead.
    logging.getLogger('apache_beam').setLevel(logging.CRITICAL)
    warnings.filterwarnings('ignore')
