"""What every command-line main shares: quiet defaults, one-line errors, exit status 2.

`run(name, main)` is what each absl main passes to `app.run`. By default a run prints only its
own progress lines and summary: absl INFO, TensorFlow's C++ INFO/WARNING/ERROR lines (the
CUDA probe's `failed call to cuInit` on machines without a GPU) and Python warnings are hidden;
`-v 0` (absl's `--verbosity`, any value) shows them all. A `BpnetError` becomes
'<name>: error: <message>' on stderr and exit status 2.
"""

from __future__ import annotations

import contextlib
import logging as std_logging
import os
import sys
import tempfile
import warnings
from typing import Callable, Iterator, NoReturn

from bpnet_tfx.common.errors import BpnetError


def verbose() -> bool:
    """Whether the user asked for log output with absl's -v/--verbosity."""
    from absl import flags

    return bool(flags.FLAGS.is_parsed() and flags.FLAGS['verbosity'].present)


def quiet_logs() -> None:
    """Hides library chatter unless -v was given. Call before TensorFlow is imported.

    TF_CPP_MIN_LOG_LEVEL is set only when the user has not set it.
    """
    if verbose():
        return
    from absl import logging

    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
    logging.set_verbosity(logging.WARNING)
    for name in ('tensorflow', 'absl', 'apache_beam', 'keras', 'h5py', 'matplotlib'):
        std_logging.getLogger(name).setLevel(std_logging.ERROR)
    warnings.filterwarnings('ignore')
    _import_tensorflow_silently()


def _import_tensorflow_silently() -> None:
    """Imports TensorFlow with its native stderr hidden (`native_stderr_hidden`)."""
    if 'tensorflow' not in sys.modules:
        with native_stderr_hidden():
            import tensorflow  # noqa: F401


@contextlib.contextmanager
def native_stderr_hidden() -> Iterator[None]:
    """Hides what native code writes to file descriptor 2 inside the block, unless -v was given.

    TensorFlow's libraries log lines while they load (the CUDA probe's 'I0000 ...
    cudart_stub.cc') before absl::InitializeLog, ignoring TF_CPP_MIN_LOG_LEVEL, so only the
    descriptor can hide them. They are shown after all if the block fails with anything but
    a user error.
    """
    if verbose():
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        replay = False
        try:
            yield
        except BpnetError:
            raise
        except BaseException:
            replay = True
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            if replay:
                capture.seek(0)
                sys.stderr.write(capture.read().decode(errors='replace'))


def fail(name: str, message: str) -> NoReturn:
    """Prints '<name>: error: <message>' on stderr and exits with status 2."""
    print(f'{name}: error: {message}', file=sys.stderr, flush=True)
    sys.exit(2)


def run(name: str, main: Callable[[list[str]], None]) -> Callable[[list[str]], None]:
    """Wraps an absl `main(argv)`: quiet logs, extra arguments refused, user errors in one line.

    Use as `app.run(cli.run('predict', main))`.
    """

    def wrapped(argv: list[str]) -> None:
        quiet_logs()
        if len(argv) > 1:
            fail(name, f'unexpected arguments: {" ".join(argv[1:])}')
        try:
            main(argv)
        except BpnetError as e:
            fail(name, str(e))

    return wrapped
