"""Tests of the train main: dry run, one-line errors, quiet logs, resume after a kill, workers."""

import csv
import json
import re

import pytest

from tests.fixtures.mains import main_env, run_main, run_main_cases, start_main

# An absl or TensorFlow C++ log line: 'I1204 20:01:02.000 ...', 'W0000 00:00:...', 'INFO:...'.
LOG_LINE = re.compile(r'^([IWEF]\d{4} |INFO:|WARNING:)', re.MULTILINE)


def _train(*flags, **kwargs):
    return run_main('bpnet_tfx.train', *flags, **kwargs)


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
    errors = (
        ([f'--records_dir={tmp_path / "nowhere"}'], 'nowhere'),
        ([f'--records_dir={records_dir}', '--batch_size=0'], 'batch_size'),
        ([f'--records_dir={records_dir}', '--counts_loss_weight=x'], 'counts_loss_weight'),
    )
    model_dir = f'--model_dir={tmp_path / "m"}'
    dry, *procs, unknown = run_main_cases(
        'bpnet_tfx.train',
        [
            [model_dir, f'--records_dir={records_dir}', '--dry_run', '--batch_size=8'],
            *([model_dir, *flags, '--dry_run'] for flags, _ in errors),
            [model_dir, f'--records_dir={records_dir}', '--no_such_flag=1'],
        ],
    )
    assert dry.returncode == 0, dry.stderr[-2000:]
    assert 'parameters: 120,964' in dry.stdout and 'receptive field: 2093 bp' in dry.stdout
    assert not (tmp_path / 'm').exists()  # a dry run writes nothing
    for (_, message), proc in zip(errors, procs):
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert 'Traceback' not in proc.stderr
        assert 'train: error:' in proc.stderr and message in proc.stderr
    assert unknown.returncode != 0 and 'no_such_flag' in unknown.stderr


@pytest.mark.slow
def test_model_dir_of_another_architecture_is_refused(small_records, tmp_path):
    records_dir, _ = small_records
    model_dir = tmp_path / 'm'
    model_dir.mkdir()
    (model_dir / 'train_config.json').write_text(json.dumps({'model': {'filters': 3}}))
    proc = _train(f'--records_dir={records_dir}', f'--model_dir={model_dir}', '--epochs=1')
    assert proc.returncode == 2 and 'another architecture' in proc.stderr


@pytest.mark.slow
def test_run_killed_after_a_checkpoint_resumes_to_the_same_epochs(small_records, tmp_path):
    import signal
    import time

    records_dir, _ = small_records
    model_dir = tmp_path / 'm'
    flags = [
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
    proc = start_main('bpnet_tfx.train', *flags)
    deadline = time.time() + 240
    index = model_dir / 'checkpoints' / 'checkpoint'
    while not index.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert index.exists() and proc.returncode == -signal.SIGKILL
    assert not (model_dir / 'train_summary.json').exists()
    done = _train(*flags)
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
        procs.append(
            start_main(
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
                env=main_env(tf_logs=quiet, TF_CONFIG=json.dumps(tf_config)),
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
    dirs = [f'--records_dir={records_dir}', f'--model_dir={tmp_path / "m"}', '--dry_run']
    proc, too_short = run_main_cases(
        'bpnet_tfx.train',
        [
            [
                *dirs,
                '--batch_size=8',
                '--filters=8',
                '--stem_kernel_size=9',
                '--num_dilated_layers=2',
                '--profile_kernel_size=25',
                '--profile_loss=joint',
            ],
            [*dirs, '--num_dilated_layers=5'],  # layers that cannot fit the records' lengths
        ],
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'receptive field: 45 bp' in proc.stdout  # 9 + 2 * (2 + 4) + 25 - 1
    assert (
        'input 96 -> stem_conv 88 -> dilated_conv_1 84 -> dilated_conv_2 76 -> '
        'profile_conv 52 -> output 40'
    ) in proc.stdout
    assert 'valid padding, profile loss joint' in proc.stdout
    # Layers that cannot fit the records' lengths: one line, exit 2.
    assert too_short.returncode == 2 and 'Traceback' not in too_short.stderr
    assert 'too short' in too_short.stderr


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
    proc, patience = run_main_cases(
        'bpnet_tfx.train', [base, [*base, '--validation=none', '--patience=2']]
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('train: error: ')
    assert records_dir in lines[0] and '--validation=none' in lines[0]
    assert patience.returncode == 2 and patience.stderr.strip().splitlines() == [
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
    env = main_env(tf_logs=True)  # what a user's shell gives
    flags = [f'--records_dir={records_dir}', *_TINY]
    proc = _train(*flags, f'--model_dir={tmp_path / "a"}', env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    output = proc.stdout + proc.stderr
    assert not LOG_LINE.search(output), output[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith('train: 64 training records, 8 steps/epoch of 8')
    assert [ln.split(':')[0] for ln in lines[1:3]] == ['epoch 1/2', 'epoch 2/2']
    assert lines[-1].startswith('train: 2 epochs, best epoch') and len(lines) == 4
    assert proc.stderr == ''
    # -v 0 brings the logs back (a dry run logs the config too, without training again).
    proc = _train(*flags, f'--model_dir={tmp_path / "b"}', '--dry_run', '-v', '0', env=env)
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
    lines = err.strip().splitlines()
    assert len(lines) == 1, err[-3000:]
    assert lines[0].startswith(f'train: error: lost worker /job:worker/task:{victim} ('), lines
    assert 'start every worker again with the same command' in lines[0]
    assert re.search(r'resumes from .*/checkpoints/ckpt-\d+ \(step \d+\)$', lines[0]), lines
    assert not (model_dir / 'train_summary.json').exists()

    # Rerunning both (same command, same TF_CONFIG) resumes and finishes the 3 epochs.
    procs = _start_workers(records_dir, model_dir, workers, *flags, quiet=True)
    outs = [p.communicate(timeout=400) for p in procs]
    errs = [err[-3000:] for _, err in outs]
    assert [p.returncode for p in procs] == [0, 0] and errs == ['', ''], errs
    assert 'train: resuming from ' in outs[0][0] and 'train: 3 epochs' in outs[0][0]
    assert 'worker done after 3 epochs' in outs[1][0]
    rows = list(csv.DictReader(open(model_dir / 'history.csv')))
    assert [int(r['epoch']) for r in rows] == [1, 2, 3]  # each epoch's row once
    summary = json.loads((model_dir / 'train_summary.json').read_text())
    assert summary['epochs'] == 3 and summary['replicas'] == 2
    assert (model_dir / 'export' / 'saved_model.pb').exists()
    assert [p.name for p in model_dir.iterdir() if p.name.startswith('.worker')] == []
