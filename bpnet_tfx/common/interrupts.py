"""Ctrl-C in a command: remembered wherever it lands, and an exit that cannot hang.

Python raises KeyboardInterrupt at whatever line the main thread runs when SIGINT arrives.
Inside a library's bookkeeping (TensorFlow entering a variable scope, a runner's worker
thread) it can come out as another exception; `InterruptFlag` remembers that SIGINT came, so
the command still reports an interrupt. `exit_now` leaves without waiting for threads that an
interrupted library left running.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import NoReturn


class InterruptFlag:
    """Within `with`, SIGINT raises KeyboardInterrupt as Python's default does and is
    remembered in `seen`: code it interrupts may turn it into another exception."""

    def __init__(self):
        self.seen = False
        self._previous = None

    def _handler(self, signum, frame):
        self.seen = True
        raise KeyboardInterrupt

    def __enter__(self):
        # Only over Python's own handler: a SIGINT ignored (a job started in the background)
        # or handled by someone else stays so.
        main = threading.current_thread() is threading.main_thread()
        if main and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False


def exit_now(code: int) -> NoReturn:
    """Exits with `code`; after a failed or interrupted run that left threads of its own
    running (a thread pool's worker inside TensorFlow, a job server still waiting for its
    workers), without waiting for them."""
    if code and any(
        t.is_alive() and not t.daemon
        for t in threading.enumerate()
        if t is not threading.main_thread()
    ):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
