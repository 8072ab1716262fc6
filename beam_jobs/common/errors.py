"""The one error of the records job a user can cause: bad flags or input files.

`make_records.main` prints its message as one line on stderr with exit status 2; a worker
raises it too, and the driver finds it in the runner's error (records/pipeline.py).
"""

from __future__ import annotations

import contextlib

from bpnet_tfx.common.errors import BpnetError


class RecordsInputError(ValueError):
    """Input files or flags the records job cannot use; the message is one line."""


@contextlib.contextmanager
def records_input_errors():
    """Re-raises a bpnet_tfx user error inside the block (e.g. a malformed BED line from
    bpnet_tfx.genome.bed) as RecordsInputError, with the same one-line message."""
    try:
        yield
    except BpnetError as e:
        raise RecordsInputError(str(e)) from None
