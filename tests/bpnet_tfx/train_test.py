"""Tests of the train main: dry run, one-line errors, quiet logs, resume after a kill or Ctrl-C,
reruns of a finished run (nothing to do), of other settings (refused) and with --overwrite
(afresh), workers."""

import csv
import json
import os
import re
import subprocess
import sys

import pytest

from tests.fixtures.paths import REPO

# An absl or TensorFlow C++ log line: 'I1204 20:01:02.000 ...', 'W0000 00:00:...', 'INFO:...'.
LOG_LINE = re.compile(r'^([IWEF]\d{4} |INFO:|WARNING:)', re.MULTILINE)
TF_LINE = re.compile(r'^train: starting TensorFlow\.\.\. ready \(\d+\.\d s\)$')


def _messages(stderr: str) -> list[str]:
    """The lines of stderr but the TensorFlow start-up progress line."""
    return [line for line in stderr.strip().splitlines() if not TF_LINE.match(line)]


def _train(*flags, env_extra=None, timeout=300):
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL='2', **(env_extra or {}))
    return subprocess.run(
        [sys.executable, '-m', 'bpnet_tfx.train', *flags],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def _wide_records(tmp_path):
    from tests.fixtures.records import write_records

    path = str(tmp_path / 'wide_records')
    # 96 -> 40 bp with 2 dilated layers, stem 9, profile kernel 25: 8 + 12 + 24 = 44 + 12 spare.
    write_records(
        path,
        split_counts={'train': 48, 'valid': 16},
        sequence_length=96,
        output_length=40,
        max_jitter=6,
        with_expected=True,
        background_every=4,
    )
    return path


@pytest.mark.slow
def test_cli_dry_run_and_one_line_errors(small_records, tmp_path):
    records_dir, _ = small_records
    base = [sys.executable, '-m', 'bpnet_tfx.train', f'--model_dir={tmp_path / "m"}']
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL='2')

    def run(*flags):
        return subprocess.run(
            base + list(flags), capture_output=True, text=True, env=env, timeout=300
        )

    proc = run(f'--records_dir={records_dir}', '--dry_run', '--batch_size=8')
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'parameters: 120,964' in proc.stdout and 'receptive field: 2093 bp' in proc.stdout
    assert not (tmp_path / 'm').exists()  # a dry run writes nothing
    for flags, message in (
        ([f'--records_dir={tmp_path / "nowhere"}'], 'nowhere'),
        ([f'--records_dir={records_dir}', '--batch_size=0'], 'batch_size'),
        ([f'--records_dir={records_dir}', '--counts_loss_weight=x'], 'counts_loss_weight'),
    ):
        proc = run(*flags, '--dry_run')
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert 'Traceback' not in proc.stderr
        assert 'train: error:' in proc.stderr and message in proc.stderr
    proc = run(f'--records_dir={records_dir}', '--no_such_flag=1')
    assert proc.returncode == 2 and proc.stderr.startswith(
        "train: error: Unknown command line flag 'no_such_flag'"
    )


@pytest.mark.slow
def test_model_dir_of_another_architecture_is_refused(small_records, tmp_path):
    records_dir, _ = small_records
    model_dir = tmp_path / 'm'
    model_dir.mkdir()
    (model_dir / 'train_config.json').write_text(json.dumps({'model': {'filters': 3}}))
    proc = subprocess.run(
        [
            sys.executable,
            '-m',
            'bpnet_tfx.train',
            f'--records_dir={records_dir}',
            f'--model_dir={model_dir}',
            '--epochs=1',
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL='2'),
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert _messages(proc.stderr) == [
        f'train: error: {model_dir} holds a run with other settings (train_config.json): '
        '--filters 3 -> 64; rerun with its settings to resume it, pass --overwrite to replace '
        'it, or use a new --model_dir'
    ]


@pytest.mark.slow
def test_run_killed_after_a_checkpoint_resumes_to_the_same_epochs(small_records, tmp_path):
    import signal
    import time

    records_dir, _ = small_records
    model_dir = tmp_path / 'm'
    cmd = [
        sys.executable,
        '-m',
        'bpnet_tfx.train',
        f'--records_dir={records_dir}',
        f'--model_dir={model_dir}',
        '--epochs=4',
        '--batch_size=8',
        '--filters=8',
        '--num_dilated_layers=3',
        '--checkpoint_every_steps=3',
        '--input_benchmark_batches=0',
        '--precision=float32',
    ]
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL='2')
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    index = model_dir / 'checkpoints' / 'checkpoint'
    while not index.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert index.exists() and proc.returncode == -signal.SIGKILL
    assert not (model_dir / 'train_summary.json').exists()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert 'resuming from' in done.stdout
    summary = json.loads((model_dir / 'train_summary.json').read_text())
    assert summary['epochs'] == 4
    rows = list(csv.DictReader(open(model_dir / 'history.csv')))
    assert [int(r['epoch']) for r in rows] == [1, 2, 3, 4]


def _free_ports(n):
    import socket

    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(('127.0.0.1', 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _start_workers(records_dir, model_dir, workers, *flags, quiet=False):
    """Starts one train process per worker of `workers` (host:port), TF_CONFIG for each."""
    procs = []
    for index in range(len(workers)):
        tf_config = {'cluster': {'worker': workers}, 'task': {'type': 'worker', 'index': index}}
        env = {k: v for k, v in os.environ.items() if k != 'TF_CPP_MIN_LOG_LEVEL'}
        if not quiet:
            env['TF_CPP_MIN_LOG_LEVEL'] = '2'
        env.update(PYTHONPATH=REPO, TF_CONFIG=json.dumps(tf_config))
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    '-m',
                    'bpnet_tfx.train',
                    f'--records_dir={records_dir}',
                    f'--model_dir={model_dir}',
                    '--strategy=multi_worker',
                    '--batch_size=8',
                    '--filters=8',
                    '--num_dilated_layers=3',
                    '--input_benchmark_batches=0',
                    '--precision=float32',
                    *flags,
                ],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    return procs


@pytest.mark.slow
def test_two_workers_on_loopback_train_and_only_the_chief_writes(small_records, tmp_path):
    records_dir, _ = small_records
    workers = [f'127.0.0.1:{p}' for p in _free_ports(2)]
    model_dir = tmp_path / 'm'
    procs = _start_workers(records_dir, model_dir, workers, '--epochs=2')
    outs = [p.communicate(timeout=400) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    assert 'train: 2 epochs' in outs[0][0]  # worker 0 is the chief
    assert 'worker done after 2 epochs' in outs[1][0]
    summary = json.loads((model_dir / 'train_summary.json').read_text())
    # MultiWorkerMirroredStrategy's class is CollectiveAllReduceStrategy.
    assert summary['strategy'] == 'CollectiveAllReduceStrategy' and summary['replicas'] == 2
    assert summary['examples_seen'] == 2 * 8 * 8  # 64 records / global batch 8, 2 epochs
    assert (model_dir / 'export' / 'saved_model.pb').exists()
    leftovers = [p.name for p in model_dir.iterdir() if p.name.startswith('.worker')]
    assert leftovers == []  # the other worker's scratch checkpoints are gone


@pytest.mark.slow
def test_cli_dry_run_reports_receptive_field_and_crops(tmp_path):
    records_dir = _wide_records(tmp_path)
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL='2')
    proc = subprocess.run(
        [
            sys.executable,
            '-m',
            'bpnet_tfx.train',
            f'--records_dir={records_dir}',
            f'--model_dir={tmp_path / "m"}',
            '--dry_run',
            '--batch_size=8',
            '--filters=8',
            '--stem_kernel_size=9',
            '--num_dilated_layers=2',
            '--profile_kernel_size=25',
            '--profile_loss=joint',
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'receptive field: 45 bp' in proc.stdout  # 9 + 2 * (2 + 4) + 25 - 1
    assert (
        'input 96 -> stem_conv 88 -> dilated_conv_1 84 -> dilated_conv_2 76 -> '
        'profile_conv 52 -> output 40'
    ) in proc.stdout
    assert 'valid padding, profile loss joint' in proc.stdout
    # Layers that cannot fit the records' lengths: one line, exit 2.
    proc = subprocess.run(
        [
            sys.executable,
            '-m',
            'bpnet_tfx.train',
            f'--records_dir={records_dir}',
            f'--model_dir={tmp_path / "m"}',
            '--dry_run',
            '--num_dilated_layers=5',
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 2 and 'Traceback' not in proc.stderr
    assert 'too short' in proc.stderr


_TINY = [
    '--epochs=2',
    '--batch_size=8',
    '--filters=8',
    '--num_dilated_layers=3',
    '--input_benchmark_batches=0',
]


@pytest.mark.slow
def test_records_without_validation_stop_in_one_line_or_train_with_validation_none(tmp_path):
    from tests.fixtures.records import write_records

    records_dir = str(tmp_path / 'records')
    write_records(records_dir, split_counts={'train': 32}, sequence_length=200)
    base = [f'--records_dir={records_dir}', f'--model_dir={tmp_path / "m"}', *_TINY]
    proc = _train(*base)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = _messages(proc.stderr)
    assert len(lines) == 1 and lines[0].startswith('train: error: ')
    assert records_dir in lines[0] and '--validation=none' in lines[0]
    proc = _train(*base, '--validation=none', '--patience=2')
    assert proc.returncode == 2 and _messages(proc.stderr) == [
        'train: error: --patience needs a validation loss; it cannot be used with --validation=none'
    ]
    proc = _train(*base, '--validation=none')
    assert proc.returncode == 0, proc.stderr[-3000:]
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("train: 2 epochs, no validation: exported the last epoch's weights")
    summary = json.loads((tmp_path / 'm' / 'train_summary.json').read_text())
    assert summary['note'] == "no validation: exported the last epoch's weights"
    assert summary['validation'] == 'none' and summary['epochs'] == 2


@pytest.mark.slow
def test_default_run_prints_progress_only_and_v0_shows_logs(small_records, tmp_path):
    records_dir, _ = small_records
    env = {k: v for k, v in os.environ.items() if k != 'TF_CPP_MIN_LOG_LEVEL'}
    env['PYTHONPATH'] = REPO
    cmd = [sys.executable, '-m', 'bpnet_tfx.train', f'--records_dir={records_dir}', *_TINY]
    proc = subprocess.run(
        cmd + [f'--model_dir={tmp_path / "a"}'],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    output = proc.stdout + proc.stderr
    assert not LOG_LINE.search(output), output[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith('train: 64 training records, 8 steps/epoch of 8')
    assert [ln.split(':')[0] for ln in lines[1:3]] == ['epoch 1/2', 'epoch 2/2']
    assert lines[3] == f"train: exporting epoch 2's weights to {tmp_path / 'a' / 'export'}"
    assert re.fullmatch(r'train: exported in \d+ s', lines[4]), lines
    assert lines[-1].startswith('train: 2 epochs, best epoch') and len(lines) == 6
    assert TF_LINE.match(proc.stderr) and proc.stderr.count('\n') == 1, proc.stderr
    proc = subprocess.run(
        cmd + [f'--model_dir={tmp_path / "b"}', '-v', '0'],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.search(r'^I\d{4} .*train config: ', proc.stderr, re.MULTILINE), proc.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize('victim', [0, 1], ids=['chief_killed', 'worker_killed'])
def test_a_killed_worker_stops_the_other_in_one_line_and_a_rerun_resumes(
    small_records, tmp_path, victim
):
    import signal
    import time

    records_dir, _ = small_records
    workers = [f'127.0.0.1:{p}' for p in _free_ports(2)]
    model_dir = tmp_path / 'm'
    flags = ('--epochs=3', '--checkpoint_every_steps=3')  # 8 steps an epoch
    procs = _start_workers(records_dir, model_dir, workers, *flags, quiet=True)
    index = model_dir / 'checkpoints' / 'checkpoint'
    deadline = time.time() + 300
    while not index.exists() and time.time() < deadline and procs[victim].poll() is None:
        time.sleep(0.05)
    assert index.exists(), procs[victim].communicate()[1][-3000:]
    procs[victim].send_signal(signal.SIGKILL)
    killed = time.time()
    survivor = procs[1 - victim]
    # Not a hang: TensorFlow's coordination service bounds the wait (heartbeats).
    _, err = survivor.communicate(timeout=240)
    waited = time.time() - killed
    procs[victim].wait()
    role = 'chief' if victim == 0 else 'worker'
    print(f'the survivor of a killed {role} exited after {waited:.1f} s')
    assert survivor.returncode == 2, err[-3000:]
    lines = _messages(err)
    assert len(lines) == 1, err[-3000:]
    assert lines[0].startswith(f'train: error: lost worker /job:worker/task:{victim} ('), lines
    assert 'start every worker again with the same command' in lines[0]
    assert re.search(r'resumes from .*/checkpoints/ckpt-\d+ \(step \d+\)$', lines[0]), lines
    assert not (model_dir / 'train_summary.json').exists()

    # Rerunning both (same command, same TF_CONFIG) resumes and finishes the 3 epochs.
    procs = _start_workers(records_dir, model_dir, workers, *flags, quiet=True)
    outs = [p.communicate(timeout=400) for p in procs]
    errs = [_messages(err) for _, err in outs]
    assert [p.returncode for p in procs] == [0, 0] and errs == [[], []], errs
    assert 'train: resuming from ' in outs[0][0] and 'train: 3 epochs' in outs[0][0]
    assert 'worker done after 3 epochs' in outs[1][0]
    rows = list(csv.DictReader(open(model_dir / 'history.csv')))
    assert [int(r['epoch']) for r in rows] == [1, 2, 3]  # each epoch's row once
    summary = json.loads((model_dir / 'train_summary.json').read_text())
    assert summary['epochs'] == 3 and summary['replicas'] == 2
    assert (model_dir / 'export' / 'saved_model.pb').exists()
    assert [p.name for p in model_dir.iterdir() if p.name.startswith('.worker')] == []


def _train_until(line_start, *flags):
    """Runs train until it prints a line starting with `line_start`, then sends it SIGINT."""
    import signal

    from tests.fixtures.mains import interruptible

    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL='2')
    proc = subprocess.Popen(
        interruptible([sys.executable, '-m', 'bpnet_tfx.train', *flags]),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    for line in proc.stdout:
        if line.startswith(line_start):
            proc.send_signal(signal.SIGINT)
            break
    _, err = proc.communicate(timeout=240)
    return proc.returncode, err


@pytest.mark.slow
def test_reruns_finish_resume_after_ctrl_c_refuse_other_settings_or_start_afresh(
    small_records, tmp_path
):
    records_dir, _ = small_records
    model_dir = tmp_path / 'm'
    base = [f'--records_dir={records_dir}', f'--model_dir={model_dir}', *_TINY]
    proc = _train(*base)
    assert proc.returncode == 0, proc.stderr[-3000:]
    history = (model_dir / 'history.csv').read_text()
    summary = (model_dir / 'train_summary.json').read_text()

    # The same command on the finished run: one line, nothing trained or written.
    proc = _train(*base)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout == (
        f'train: {model_dir} holds a finished run (2 epochs) -> {model_dir}/export; nothing to '
        'do (--epochs above 2 trains on, --overwrite trains it again from the start)\n'
    )
    assert (model_dir / 'history.csv').read_text() == history
    assert (model_dir / 'train_summary.json').read_text() == summary

    # Settings that change the weights: refused, naming each difference.
    proc = _train(*base, '--learning_rate=0.002', '--batch_size=16', '--cache')
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert _messages(proc.stderr) == [
        f'train: error: {model_dir} holds a run with other settings (train_config.json): '
        '--batch_size 8 -> 16, --learning_rate 0.001 -> 0.002; rerun with its settings to '
        'resume it, pass --overwrite to replace it, or use a new --model_dir'
    ]

    # More epochs train on; Ctrl-C stops in one line and keeps the last checkpoint.
    code, err = _train_until('epoch 3/40', *base, '--epochs=40')
    assert code == 130, err[-3000:]
    assert _messages(err) == [
        f'train: interrupted: the last checkpoint in {model_dir}/checkpoints is kept; run the '
        'same command again to resume from it'
    ]
    proc = _train(*base, '--epochs=4')
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'train: resuming from ' in proc.stdout
    rows = list(csv.DictReader(open(model_dir / 'history.csv')))
    assert [int(r['epoch']) for r in rows] == [1, 2, 3, 4]

    # --overwrite replaces the run: it starts afresh.
    proc = _train(*base, '--overwrite', '--epochs=1', '--learning_rate=0.002')
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'resuming' not in proc.stdout
    rows = list(csv.DictReader(open(model_dir / 'history.csv')))
    assert [int(r['epoch']) for r in rows] == [1]
    config = json.loads((model_dir / 'train_config.json').read_text())
    assert config['learning_rate'] == 0.002 and config['epochs'] == 1
