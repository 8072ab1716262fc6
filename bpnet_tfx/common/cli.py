"""What every command-line main shares: quiet defaults, one-line errors, exit status 2.

`start(name, main)` runs an absl main: a flag absl cannot parse (an unknown or misspelled flag,
a missing value or flagfile, a required flag left out) is one line '<name>: error: ...' with
absl's suggestion and exit status 2. `run(name, main)` wraps the main: cheap `checks` of flags
and files first, then a progress line while TensorFlow starts, then the main. By default a run
prints only its own progress lines and summary: absl INFO, TensorFlow's C++ INFO/WARNING/ERROR
lines (the CUDA probe's `failed call to cuInit` on machines without a GPU) and Python warnings
are hidden; `-v 0` (absl's `--verbosity`, any value) shows them all. A `BpnetError` becomes
'<name>: error: <message>' on stderr and exit status 2; Ctrl-C one line (what was kept, how to
go on) and exit status 130.
"""

from __future__ import annotations

import contextlib
import logging as std_logging
import os
import re
import sys
import tempfile
import time
import warnings
from typing import Callable, Iterator, NoReturn

from bpnet_tfx.common import interrupts
from bpnet_tfx.common.errors import BpnetError


def verbose() -> bool:
    """Whether the user asked for log output with absl's -v/--verbosity."""
    from absl import flags

    return bool(flags.FLAGS.is_parsed() and flags.FLAGS['verbosity'].present)


EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a command stopped by Ctrl-C
_INTERRUPTED = (
    'no output was written (outputs appear only once complete); run the same command again'
)


def quiet_logs(name: str = '') -> None:
    """Hides library chatter unless -v was given, and starts TensorFlow. Call before TensorFlow
    is imported; `name` (the command) heads the start-up progress line.

    TF_CPP_MIN_LOG_LEVEL is set only when the user has not set it.
    """
    if verbose():
        return
    from absl import logging

    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
    logging.set_verbosity(logging.WARNING)
    for logger in ('tensorflow', 'absl', 'apache_beam', 'keras', 'h5py', 'matplotlib'):
        std_logging.getLogger(logger).setLevel(std_logging.ERROR)
    warnings.filterwarnings('ignore')
    _import_tensorflow_silently(name)


def _import_tensorflow_silently(name: str = '') -> None:
    """Imports TensorFlow with its native stderr hidden (`native_stderr_hidden`); with `name`,
    on one progress line: '<name>: starting TensorFlow... ready (6.1 s)'."""
    if 'tensorflow' in sys.modules:
        return
    start = time.perf_counter()
    if name:
        print(f'{name}: starting TensorFlow...', end='', file=sys.stderr, flush=True)
    try:
        with native_stderr_hidden():
            import tensorflow  # noqa: F401
    except BaseException:
        if name:
            print(file=sys.stderr, flush=True)  # end the progress line
        raise
    if name:
        print(f' ready ({time.perf_counter() - start:.1f} s)', file=sys.stderr, flush=True)


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
        except (BpnetError, KeyboardInterrupt):
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


def flag_error_line(error: Exception) -> str:
    """absl's flag-parse error in one line, its suggestion kept ('Did you mean: epochs?')."""
    text = ' '.join(line.strip() for line in str(error).splitlines() if line.strip())
    text = re.sub(r'^ERROR::\s*', '', text)
    required = r'flag --(\w+)=None: Flag --\1 must have a value other than None\.'
    text = re.sub(required, r'--\1 is required', text)
    return text.replace(' ?', '?') + '; --helpshort lists the flags'


def flags_parser(name: str, flag_values=None) -> Callable[[list[str]], list[str]]:
    """The `flags_parser` for absl's `app.run`: parse errors become `fail(name, ...)`.

    `flag_values`: the absl FlagValues to parse into; default absl's FLAGS.
    """

    def parse(argv: list[str]) -> list[str]:
        from absl import flags

        try:
            return (flags.FLAGS if flag_values is None else flag_values)(argv)
        except (flags.Error, ValueError) as e:  # '--nodry=3' is absl's ValueError
            fail(name, flag_error_line(e))

    return parse


def start(
    name: str,
    main: Callable[[list[str]], None],
    *,
    checks: Callable[[], None] | None = None,
    interrupted: str | Callable[[], str] | None = None,
) -> None:
    """Runs the absl `main` as command `name` (see `run`), with flag errors in one line.

    Use as `cli.start('predict', main)` under `if __name__ == '__main__':`.
    """
    from absl import app

    wrapped = run(name, main, checks=checks, interrupted=interrupted)
    try:
        app.run(wrapped, flags_parser=flags_parser(name))
    except SystemExit as e:
        if e.code == EXIT_INTERRUPTED:
            # An interrupted library may have left threads running: leave without them.
            interrupts.exit_now(EXIT_INTERRUPTED)
        raise


def run(
    name: str,
    main: Callable[[list[str]], None],
    *,
    checks: Callable[[], None] | None = None,
    interrupted: str | Callable[[], str] | None = None,
) -> Callable[[list[str]], None]:
    """Wraps an absl `main(argv)`: extra arguments refused, `checks()` (cheap checks of flags
    and files) before TensorFlow starts, quiet logs, user errors in one line, Ctrl-C in one.

    Args:
      name: the command, first on every line it prints.
      main: the absl main.
      checks: raises BpnetError for flags or files that cannot work; must not import
        TensorFlow.
      interrupted: what a Ctrl-C leaves and how to go on (or a function saying it, called
        then); default: nothing was written, run the command again.
    """

    def stop() -> NoReturn:
        said = interrupted() if callable(interrupted) else interrupted
        print(f'{name}: interrupted: {said or _INTERRUPTED}', file=sys.stderr, flush=True)
        sys.exit(EXIT_INTERRUPTED)

    def wrapped(argv: list[str]) -> None:
        flag = interrupts.InterruptFlag()
        try:
            with flag:
                if len(argv) > 1:
                    fail(name, f'unexpected arguments: {" ".join(argv[1:])}')
                if checks is not None:
                    checks()
                quiet_logs(name)
                main(argv)
        except KeyboardInterrupt:
            stop()
        except Exception as e:
            # Ctrl-C inside a library's bookkeeping can surface as another error.
            if flag.seen:
                stop()
            if isinstance(e, BpnetError):
                fail(name, str(e))
            raise

    return wrapped
