"""The one error of the records job a user can cause: bad flags or input files.

`make_records.main` prints its message as one line on stderr with exit status 2; a worker
raises it too, and the driver finds it in the runner's error (records_pipeline.py).
"""

from __future__ import annotations


class RecordsInputError(ValueError):
    """Input files or flags the records job cannot use; the message is one line."""
