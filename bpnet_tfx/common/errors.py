"""The one error base class of bpnet_tfx: every error a user can cause derives from it.

A main catches `BpnetError` (see `cli.run`) and prints its message as one line on stderr with
exit status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class BpnetError(ValueError):
    """Bad input, flags or files, reported to the user in one line (file, line, flag...)."""
