"""What the Beam jobs do differently per Beam runner: names, waiting, and failures.

The job's graph is the same on every runner (transforms.py keeps to the transforms Beam's Dask
runner translates). Here: `resolve_args` maps the short name `--runner=DaskRunner`, which Beam
refuses ("Unexpected pipeline runner"), to the runner's class path and gives it one Dask bag
partition per shard file unless the user chose; `wait_for` waits for a started run and cancels
one whose workers never run a step (a worker pool whose `python` lacks Beam waits silently
forever); `run_and_wait` runs a built pipeline that way and turns a worker's input error
into the job's one-line error; `PipelineRunError` is any other failed run as one line:
runner, step, error, shard file; `make_pipeline` runs DirectRunner as FnApiRunner; `job_main`
and `exit_job` are a job's command line (one-line errors, Ctrl-C, exit statuses).
No graph is built here; docs/runners.md has the commands per runner.
"""

from __future__ import annotations

import importlib.util
import logging
import re
import sys
import threading
import time
import traceback
from typing import Any, Callable, Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from beam_jobs.common import logs
from beam_jobs.common.errors import RecordsInputError
from bpnet_tfx.common import interrupts

DASK_RUNNER = 'apache_beam.runners.dask.dask_runner.DaskRunner'
_ALIASES = {'daskrunner': DASK_RUNNER, 'dask': DASK_RUNNER}
_DASK_PARTITION_FLAGS = ('--dask_npartitions', '--dask_partition_size')
SHARD_NOTE = 'make_records: while writing shard file '  # Added to a WriteShardFn error.
_STEP_RE = re.compile(
    r"^(?P<error>[A-Za-z_][\w.]*): (?P<message>.*?)"
    r"(?: \[while running '(?P<step>[^']+)'\])+\s*$",
    re.M,
)
_ERROR_LINE_RE = re.compile(
    r'^(?P<error>[A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt)): '
    r'(?P<message>.+)$',
    re.M,
)
_SHARD_RE = re.compile(re.escape(SHARD_NOTE) + r'(\S+)')
_POLL_S = 1.0
_LOCAL_RUNNERS = ('DirectRunner', 'SwitchingDirectRunner')
_LOGGER = logging.getLogger(__name__)
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a command stopped by Ctrl-C


class WorkersDidNotStartError(RuntimeError):
    """No worker of the runner ran a step within --worker_start_timeout."""


class PipelineRunError(RuntimeError):
    """A run that failed, in one line; the runner's own exception is its __cause__."""

    @classmethod
    def from_exception(cls, runner: str, error: BaseException) -> 'PipelineRunError':
        """The one line for `error`: runner, the step Beam names, the innermost error and the
        shard file being written, where the error text says."""
        text = ''.join(traceback.format_exception(error))
        steps = list(_STEP_RE.finditer(text))
        shard = _SHARD_RE.findall(text)
        if steps:
            found = steps[-1]
            step = re.findall(r"\[while running '([^']+)'\]", found.group(0))[-1]
            where = f" in step '{step}'"
        else:
            lines = list(_ERROR_LINE_RE.finditer(text))
            found = lines[-1] if lines else None
            where = ' (the runner names no step)'
        if found is not None:
            name, message = found.group('error').rsplit('.', 1)[-1], found.group('message')
        else:
            name, message = type(error).__name__, (str(error).strip().splitlines() or [''])[0]
        message = re.sub(r"(?: \[while running '[^']+'\])+", '', message).strip()
        element = f' (shard file {shard[-1]})' if shard else ''
        return cls(
            f'{runner} run failed{where}: {name}: {message}{element}; -v shows the '
            "runner's full error"
        )


def _flag_value(args: Sequence[str], flag: str) -> tuple[int, str] | None:
    """(index, value) of the last `flag=value` or `flag value` in args."""
    found = None
    for i, arg in enumerate(args):
        if arg.startswith(flag + '='):
            found = (i, arg.split('=', 1)[1])
        elif arg == flag and i + 1 < len(args):
            found = (i, args[i + 1])
    return found


def resolve_args(args: list[str], *, num_plans: int) -> list[str]:
    """Beam's arguments with the runner aliases Beam refuses mapped, and the Dask defaults.

    Args:
      args: the pipeline arguments (the ones the job does not define).
      num_plans: shard files to write: with the Dask runner, the number of bag partitions
        (one file per task) unless --dask_npartitions or --dask_partition_size is given.

    Raises:
      RecordsInputError: the Dask runner without dask and distributed installed.
    """
    args = list(args)
    found = _flag_value(args, '--runner')
    if found is None:
        return args
    i, runner = found
    full = _ALIASES.get(runner.lower())
    if full:  # Beam knows the Dask runner only by its path.
        if args[i] == '--runner':
            args[i + 1] = full
        else:
            args[i] = f'--runner={full}'
        runner = full
    if runner == DASK_RUNNER:
        if importlib.util.find_spec('dask') is None or (
            importlib.util.find_spec('distributed') is None
        ):
            raise RecordsInputError(
                f'--runner={found[1]} needs dask and distributed: pip install ".[dask]"'
            )
        if not any(a.split('=', 1)[0] in _DASK_PARTITION_FLAGS for a in args):
            args.append(f'--dask_npartitions={max(num_plans, 1)}')
    return args


def make_pipeline(options: PipelineOptions) -> beam.Pipeline:
    """A pipeline on FnApiRunner when the local DirectRunner is asked for (or none).

    Beam 2.77's DirectRunner first tries the Prism runner, which downloads a binary (slow,
    or a stall, without network) before falling back to FnApiRunner. FnApiRunner honours
    --direct_num_workers and --direct_running_mode. Every other runner is left as given.
    """
    runner = options.view_as(StandardOptions).runner
    if runner is None or runner.rsplit('.', 1)[-1] in _LOCAL_RUNNERS:
        from apache_beam.runners.portability.fn_api_runner import FnApiRunner

        return beam.Pipeline(runner=FnApiRunner(), options=options)
    return beam.Pipeline(options=options)


def runner_name(options: PipelineOptions) -> str:
    """The runner's class name, e.g. 'PortableRunner' ('DirectRunner' when none is given)."""
    runner = options.view_as(StandardOptions).runner
    return (runner or 'DirectRunner').rsplit('.', 1)[-1]


def wait_for(result: Any, *, runner_name: str, started: Callable[[], bool], timeout: float) -> None:
    """Waits until the run `result` finishes; cancels it if `started()` stays False.

    Args:
      result: the PipelineResult of `pipeline.run()`.
      runner_name: for the error message.
      started: whether a worker has run a step (the job's marker file exists).
      timeout: seconds to wait for `started()`; 0: no limit.

    Raises:
      WorkersDidNotStartError: `started()` stayed False for `timeout` s (the run is cancelled).
      Exception: whatever the run raised.
    """
    outcome: dict[str, BaseException] = {}

    def wait():
        try:
            result.wait_until_finish()
        except BaseException as e:  # Re-raised in the caller's thread.
            outcome['error'] = e

    waiter = threading.Thread(target=wait, name='make_records-wait', daemon=True)
    waiter.start()
    try:
        _wait_for_thread(waiter, result, runner_name=runner_name, started=started, timeout=timeout)
    finally:
        _close_dask_client(result)
    if 'error' in outcome:
        raise outcome['error']


def run_and_wait(
    pipeline: beam.Pipeline,
    *,
    runner_name: str,
    started: Callable[[], bool],
    timeout: float,
    user_errors: tuple[type[Exception], ...],
    wrap: Callable[[str], Exception],
) -> None:
    """Runs a built pipeline and waits for it (`wait_for`), with its failures in one line.

    Args:
      pipeline: the pipeline, its steps added.
      runner_name: for the messages.
      started, timeout: see `wait_for`.
      user_errors: the job's one-line input errors: a worker that raises one fails the job
        with its message (recognised by type in-process, by class name in a remote worker's
        error text).
      wrap: makes the job's input error from a message.

    Raises:
      wrap(message): workers that never started, or a worker's input error.
      PipelineRunError: any other failure of the run.
    """
    try:
        wait_for(pipeline.run(), runner_name=runner_name, started=started, timeout=timeout)
    except WorkersDidNotStartError as e:
        raise wrap(str(e)) from None
    except Exception as e:
        if isinstance(e, user_errors):
            text = str(e)
        else:
            names = '|'.join(t.__name__ for t in user_errors)
            match = re.search(rf'\b(?:{names}): (.+)', str(e))
            if match is None:
                raise PipelineRunError.from_exception(runner_name, e) from e
            text = match.group(1)
        raise wrap(re.sub(r" \[while running '[^']*'\]", '', text).strip()) from None


def _wait_for_thread(
    waiter: threading.Thread,
    result: Any,
    *,
    runner_name: str,
    started: Callable[[], bool],
    timeout: float,
) -> None:
    """Joins `waiter`; cancels `result` and raises if `started()` stays False too long."""
    deadline = time.monotonic() + timeout
    seen = not timeout
    while waiter.is_alive():
        waiter.join(_POLL_S)
        if seen or not waiter.is_alive():
            continue
        seen = started()
        if not seen and time.monotonic() > deadline:
            try:
                result.cancel()
            except Exception:  # Best effort: the error below is what the user needs.
                _LOGGER.warning('could not cancel the %s run', runner_name, exc_info=True)
            raise WorkersDidNotStartError(
                f'no {runner_name} worker ran a step within {timeout:g} s '
                '(--worker_start_timeout); the run was cancelled. Check that the workers '
                'start: their environment (--environment_type/--environment_config, a worker '
                'pool whose python has apache_beam and this package) and their logs (-v)'
            )


def _close_dask_client(result: Any) -> None:
    """Closes the client Beam's Dask runner opens for each run and never closes (it would
    keep a LocalCluster of its own alive, or try to reconnect to a closed scheduler)."""
    client = getattr(result, 'client', None)
    if client is not None and type(client).__module__.startswith('distributed'):
        try:
            client.close()
        except Exception:  # Best effort: the run's outcome is what matters.
            _LOGGER.warning('could not close the Dask client', exc_info=True)


def job_main(
    prog: str,
    run: Callable[[Sequence[str] | None], Any],
    argv: Sequence[str] | None,
    input_errors: tuple[type[Exception], ...],
) -> int:
    """A Beam job's main: `run(argv)`; input errors become one line on stderr and exit status
    2, a failed run one line and exit status 1 (with -v, after the runner's full error), Ctrl-C
    one line and exit status 130 (the output folder appears only once complete, and its
    temporary sibling is removed)."""
    interrupted = interrupts.InterruptFlag()
    try:
        with interrupted:
            run(argv)
    except KeyboardInterrupt:
        return _interrupted(prog)
    except input_errors as e:
        if interrupted.seen:  # the runner wrapped the KeyboardInterrupt of a worker thread
            return _interrupted(prog)
        print(f'{prog}: error: {e}', file=sys.stderr)
        return 2
    except PipelineRunError as e:
        if interrupted.seen:
            return _interrupted(prog)
        if logs.verbose_requested(sys.argv[1:] if argv is None else argv):
            traceback.print_exception(e.__cause__ or e, file=sys.stderr)
        print(f'{prog}: error: {e}', file=sys.stderr)
        return 1
    return 0


def _interrupted(prog: str) -> int:
    print(
        f'{prog}: interrupted: no output was written (it appears only once complete); run '
        'the same command again',
        file=sys.stderr,
    )
    return EXIT_INTERRUPTED


def exit_job(code: int) -> None:
    """Exits a job's command line with `code`; after a failed or interrupted run whose runner
    left threads waiting (a job server still waiting for workers that never start, a runner's
    worker threads), without waiting for them."""
    interrupts.exit_now(code)
