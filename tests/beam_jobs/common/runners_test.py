"""The records job on runners other than the local one (common/runners.py, docs/runners.md).

Portable runs use Beam's embedded job server (`--job_endpoint=embed`) with LOOPBACK workers
(in this process) or EXTERNAL ones from a worker pool in a process of its own; Dask runs use a
`distributed.LocalCluster` of two worker processes. Each writes the Reb1 records and compares
them byte for byte with the DirectRunner's. The failure cases: a pool whose `python` has no
Beam (workers never start: bounded wait, one line, exit 2; a killed run's temporary folder
removed by the next run) and workers whose reads fail (one line naming runner, step, error and
shard file).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from beam_jobs import make_records
from beam_jobs.common import runners
from beam_jobs.common.errors import RecordsInputError
from beam_jobs.records import windows
from tests.fixtures import paths
from tests.fixtures.mains import main_env, run_main, start_main
from tests.fixtures.paths import shared_data_dir

REPO = pathlib.Path(paths.REPO)
DATA = shared_data_dir()
VENV_BIN = os.path.dirname(sys.executable)
SHARDS = '--num_shards=train=3,valid=2'
_FAIL_READS = (
    'import beam_jobs.records.windows as w\n'
    'def _fail(self, chunk):\n'
    "    raise RuntimeError('worker crashed')\n"
    '    yield\n'
    'w.WindowReader.read = _fail\n'
)

needs_data = pytest.mark.skipif(
    not (DATA / 'peaks.narrowPeak').exists(), reason=f'Reb1 test data not found at {DATA}'
)


def _flags(output_dir, *extra) -> list[str]:
    return [
        f'--fasta={DATA / "chrIV.fa"}',
        f'--peaks={DATA / "peaks.narrowPeak"}',
        f'--pos_bigwig={DATA / "Reb1.pos.bw"}',
        f'--neg_bigwig={DATA / "Reb1.neg.bw"}',
        f'--output_dir={output_dir}',
        '--sequence_length=1000',
        '--max_jitter=50',
        '--valid_chroms=chrIV:0-100,000',
        SHARDS,
        *extra,
    ]


def _shard_bytes(records_dir) -> dict[str, bytes]:
    return {
        os.path.basename(p): pathlib.Path(p).read_bytes()
        for p in sorted(glob.glob(os.path.join(records_dir, '*.tfrecord.gz')))
    }


def _cli(*args, timeout=120, **env) -> subprocess.CompletedProcess:
    return run_main('beam_jobs.make_records', *args, env=main_env(**env), timeout=timeout)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('localhost', 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _worker_pool(tmp_path, *, path_first: str, pythonpath: str):
    """A Beam worker pool in its own process; its workers are `python` from `path_first`."""
    port = _free_port()
    log = open(tmp_path / f'pool-{port}.log', 'w')
    proc = start_main(
        'apache_beam.runners.worker.worker_pool_main',
        f'--service_port={port}',
        stdout=log,
        stderr=log,
        start_new_session=True,
        env=main_env(PATH=f'{path_first}:{os.environ["PATH"]}', PYTHONPATH=pythonpath),
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            with socket.socket() as s:
                if s.connect_ex(('localhost', port)) == 0:
                    break
            assert proc.poll() is None and time.monotonic() < deadline, 'pool did not start'
            time.sleep(0.2)
        yield f'localhost:{port}'
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)  # The pool and the workers it started.
        proc.wait(timeout=30)
        log.close()


def _external(address) -> list[str]:
    return [
        '--runner=PortableRunner',
        '--job_endpoint=embed',
        '--environment_type=EXTERNAL',
        f'--environment_config={address}',
    ]


@pytest.fixture(scope='module')
def direct_shards(tmp_path_factory):
    out = tmp_path_factory.mktemp('direct') / 'records'
    make_records.run(_flags(out, '--runner=DirectRunner'))
    shards = _shard_bytes(out)
    assert len(shards) == 5
    return shards


def _no_leftovers(parent) -> bool:
    return not [p for p in os.listdir(parent) if '.tmp-' in p or '.old-' in p]


# --- Runner names, waiting and errors (no pipeline) --------------------------------------------


@pytest.mark.parametrize(
    'args, expected',
    [
        (['--runner=DaskRunner'], [f'--runner={runners.DASK_RUNNER}', '--dask_npartitions=5']),
        (
            ['--runner', 'DaskRunner', '--dask_npartitions=2'],
            ['--runner', runners.DASK_RUNNER, '--dask_npartitions=2'],
        ),
        (
            [f'--runner={runners.DASK_RUNNER}', '--dask_partition_size=1'],
            [f'--runner={runners.DASK_RUNNER}', '--dask_partition_size=1'],
        ),
        (
            ['--runner=PortableRunner', '--job_endpoint=embed'],
            ['--runner=PortableRunner', '--job_endpoint=embed'],
        ),
        ([], []),
    ],
    ids=['alias', 'alias_two_args', 'full_path_own_partitions', 'portable', 'none'],
)
def test_runner_alias_and_dask_partitions(args, expected):
    pytest.importorskip('distributed', reason='dask is an optional extra: pip install .[dask]')
    assert runners.resolve_args(args, num_plans=5) == expected


def test_dask_runner_without_dask_is_one_line(monkeypatch, tmp_path, capsys):
    real = runners.importlib.util.find_spec
    monkeypatch.setattr(
        runners.importlib.util,
        'find_spec',
        lambda name, *a: None if name == 'distributed' else real(name, *a),
    )
    with pytest.raises(
        RecordsInputError,
        match=r'^--runner=DaskRunner needs dask and distributed: pip install '
        r'"\.\[dask\]"$',
    ):
        runners.resolve_args(['--runner=DaskRunner'], num_plans=1)
    # The job says so before it reads any input.
    monkeypatch.setattr(make_records.planning, 'plan_windows', None)
    assert make_records.main(_flags(tmp_path / 'out', '--runner=DaskRunner')) == 2
    assert capsys.readouterr().err == (
        'make_records: error: --runner=DaskRunner needs dask and '
        'distributed: pip install ".[dask]"\n'
    )
    assert os.listdir(tmp_path) == []


class _FakeResult:
    def __init__(self, finish_after: float | None, error: Exception | None = None):
        self._finish_after, self._error, self.cancelled = finish_after, error, False

    def wait_until_finish(self):
        start = time.monotonic()
        while not self.cancelled and (
            self._finish_after is None or time.monotonic() - start < self._finish_after
        ):
            time.sleep(0.05)
        if self._error:
            raise self._error

    def cancel(self):
        self.cancelled = True


def test_wait_gives_up_on_workers_that_never_start():
    result = _FakeResult(None)
    start = time.monotonic()
    with pytest.raises(
        runners.WorkersDidNotStartError,
        match=r'^no FakeRunner worker ran a step within 1.5 s '
        r'\(--worker_start_timeout\); the run was cancelled',
    ):
        runners.wait_for(result, runner_name='FakeRunner', started=lambda: False, timeout=1.5)
    assert result.cancelled and 1.5 <= time.monotonic() - start < 4


def test_wait_lets_started_runs_take_their_time():
    result = _FakeResult(2.5)  # Longer than the timeout, but a worker has started.
    runners.wait_for(result, runner_name='FakeRunner', started=lambda: True, timeout=1)
    assert not result.cancelled
    with pytest.raises(ValueError, match='boom'):
        runners.wait_for(
            _FakeResult(0.1, ValueError('boom')),
            runner_name='FakeRunner',
            started=lambda: False,
            timeout=0,
        )


def _remote_error() -> RuntimeError:
    """A portable run's error as the job server passes it on: the worker's text."""
    return RuntimeError(
        'Pipeline job-1 failed in state FAILED: Traceback (most recent call last):\n'
        '  File "beam_jobs/records/transforms.py", line 108, in process\n'
        "RuntimeError: worker crashed\n"
        f'{runners.SHARD_NOTE}train-00002-of-00003.tfrecord.gz\n\n'
        'During handling of the above exception, another exception occurred:\n\n'
        'Traceback (most recent call last):\n'
        '  File "apache_beam/runners/common.py", line 1512, in process\n'
        "OSError: disk full [while running 'WriteShards/WriteShardFiles'] "
        "[while running 'WriteShards/WriteShardFiles']\n"
    )


@pytest.mark.parametrize(
    'error, line',
    [
        (
            _remote_error(),
            "PortableRunner run failed in step 'WriteShards/WriteShardFiles': OSError: disk full "
            "(shard file train-00002-of-00003.tfrecord.gz); -v shows the runner's full error",
        ),
        (
            KeyError('x'),
            "PortableRunner run failed (the runner names no step): KeyError: 'x'; -v shows the "
            "runner's full error",
        ),
    ],
    ids=['worker_traceback_text', 'bare_exception'],
)
def test_run_error_is_one_line(error, line):
    assert str(runners.PipelineRunError.from_exception('PortableRunner', error)) == line


# --- Portable runner ---------------------------------------------------------------------------


@needs_data
@pytest.mark.slow  # About 8 s.
def test_portable_loopback_matches_direct_bytes(tmp_path, direct_shards):
    out = tmp_path / 'records'
    make_records.run(
        _flags(
            out, '--runner=PortableRunner', '--job_endpoint=embed', '--environment_type=LOOPBACK'
        )
    )
    assert _shard_bytes(out) == direct_shards
    assert sorted(os.listdir(out))[:2] == ['metadata.json', 'rejected.tsv']
    assert _no_leftovers(tmp_path)


@needs_data
@pytest.mark.slow  # About 15 s: a worker pool and a job in other processes.
def test_portable_external_worker_pool_matches_direct_bytes(tmp_path, direct_shards):
    with _worker_pool(tmp_path, path_first=VENV_BIN, pythonpath=str(REPO)) as address:
        proc = _cli(
            *_flags(tmp_path / 'records'), *_external(address), '--sdk_worker_parallelism=2'
        )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ''
    assert proc.stdout.startswith('make_records: 29 peaks read, 29 records written')
    assert _shard_bytes(tmp_path / 'records') == direct_shards
    assert _no_leftovers(tmp_path)


@needs_data
@pytest.mark.slow  # About 15 s.
def test_failing_workers_are_one_line(tmp_path):
    (tmp_path / 'fail').mkdir()
    (tmp_path / 'fail' / 'sitecustomize.py').write_text(_FAIL_READS)  # Only in the workers.
    with _worker_pool(
        tmp_path, path_first=VENV_BIN, pythonpath=f'{tmp_path / "fail"}:{REPO}'
    ) as address:
        proc = _cli(*_flags(tmp_path / 'records'), *_external(address))
    assert proc.returncode == 1, proc.stderr
    assert re.fullmatch(
        r"make_records: error: PortableRunner run failed in step 'WriteShards/WriteShardFiles': "
        r'RuntimeError: worker crashed \(shard file (train|valid)-0000\d-of-0000\d\.tfrecord'
        r"\.gz\); -v shows the runner's full error\n",
        proc.stderr,
    ), proc.stderr
    assert not (tmp_path / 'records').exists() and _no_leftovers(tmp_path)


@needs_data
@pytest.mark.slow  # About 35 s: a run killed while it waits, then one that times out.
def test_workers_that_never_start_time_out_and_killed_runs_are_cleaned_up(tmp_path):
    bad = tmp_path / 'bin'
    bad.mkdir()
    (bad / 'python').write_text('#!/bin/sh\necho "no apache_beam here" >&2\nexit 1\n')
    (bad / 'python').chmod(0o755)
    out = tmp_path / 'records'
    with _worker_pool(tmp_path, path_first=str(bad), pythonpath=str(REPO)) as address:
        # No limit: this run waits until killed, and leaves its temporary folder.
        waiting = start_main(
            'beam_jobs.make_records',
            *_flags(out),
            *_external(address),
            '--worker_start_timeout=0',
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while not glob.glob(f'{out}.tmp-*/_shard_plans.jsonl'):
            assert waiting.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        time.sleep(2)  # The job is submitted and waits for its workers.
        waiting.kill()
        waiting.wait()
        (stale,) = glob.glob(f'{out}.tmp-*')
        start = time.monotonic()
        proc = _cli(*_flags(out), *_external(address), '--worker_start_timeout=5', timeout=60)
        seconds = time.monotonic() - start
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        f'make_records: WARNING: removed {stale}, left by an earlier run into {out} that did '
        'not finish',
        'make_records: error: no PortableRunner worker ran a step within 5 s '
        '(--worker_start_timeout); the run was cancelled. Check that the workers start: their '
        'environment (--environment_type/--environment_config, a worker pool whose python has '
        'apache_beam and this package) and their logs (-v)',
    ]
    assert seconds < 30
    assert not out.exists() and _no_leftovers(tmp_path)


def test_bad_worker_start_timeout_is_one_line(tmp_path, capsys):
    assert make_records.main(_flags(tmp_path / 'o', '--worker_start_timeout=-1')) == 2
    assert capsys.readouterr().err == (
        'make_records: error: --worker_start_timeout must be >= 0 s (0: no limit), got -1.0\n'
    )


# --- Dask runner -------------------------------------------------------------------------------


@pytest.fixture(scope='module')
def dask_cluster():
    distributed = pytest.importorskip(
        'distributed', reason='the Dask runner needs the optional extra: pip install .[dask]'
    )
    old = os.environ.get('PYTHONPATH')
    os.environ['PYTHONPATH'] = str(REPO)  # The worker processes import beam_jobs.
    try:
        cluster = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        )
    finally:
        if old is None:
            del os.environ['PYTHONPATH']
        else:
            os.environ['PYTHONPATH'] = old
    client = distributed.Client(cluster)
    yield cluster, client
    client.close()
    cluster.close()


@needs_data
@pytest.mark.slow  # About 15 s with the cluster's start.
def test_dask_local_cluster_matches_direct_bytes(tmp_path, direct_shards, dask_cluster):
    import distributed

    cluster, client = dask_cluster
    out = tmp_path / 'records'
    with distributed.get_task_stream(client) as tasks:
        # The short name, which Beam itself refuses, is mapped to the runner's path.
        make_records.run(
            _flags(out, '--runner=DaskRunner', f'--dask_client_address={cluster.scheduler_address}')
        )
    assert _shard_bytes(out) == direct_shards
    assert _no_leftovers(tmp_path)
    # Dask fuses Create -> ReadPlanLines -> ... -> WriteShardFiles into one task per
    # partition (one per shard file): both worker processes wrote files.
    writers = [t['worker'] for t in tasks.data if 'from_sequence' in str(t['key'])]
    assert len(writers) == 5 and len(set(writers)) == 2, writers


@needs_data
@pytest.mark.slow  # About 8 s.
def test_dask_worker_failure_is_one_line(tmp_path, dask_cluster, capsys):
    cluster, client = dask_cluster
    client.run(exec, _FAIL_READS, {})  # In the worker processes only.
    try:
        code = make_records.main(
            _flags(
                tmp_path / 'records',
                '--runner=DaskRunner',
                '-v',
                f'--dask_client_address={cluster.scheduler_address}',
            )
        )
    finally:
        client.restart()  # Fresh workers, without the patch.
    assert code == 1
    err = capsys.readouterr().err
    assert 'Traceback' in err  # -v: the runner's full error first.
    assert re.search(
        r"\nmake_records: error: DaskRunner run failed \(the runner names no step\): "
        r'RuntimeError: worker crashed \(shard file (train|valid)-0000\d-of-0000\d\.tfrecord'
        r"\.gz\); -v shows the runner's full error\n$",
        err,
    ), err
    assert windows.WindowReader.read.__name__ == 'read'  # This process was not patched.
    assert not (tmp_path / 'records').exists() and _no_leftovers(tmp_path)
