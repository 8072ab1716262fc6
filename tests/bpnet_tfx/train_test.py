"""Tests of the train main: dry run, one-line errors, quiet logs, resume after a kill, workers."""

import csv
import json
import os
import re

import pytest

from tests.fixtures.mains import main_env, run_main, run_main_cases, start_main

# An absl or TensorFlow C++ log line: 'I1204 20:01:02.000 ...', 'W0000 00:00:...', 'INFO:...'.
LOG_LINE = re.compile(r'^([IWEF]\d{4} |INFO:|WARNING:)', re.MULTILINE)


def _train(*flags, **kwargs):
    return run_main('bpnet_tfx.train', *flags, **kwargs)


_TINY = [
    '--epochs=2',
    '--batch_size=8',
    '--filters=8',
    '--num_dilated_layers=3',
    '--input_benchmark_batches=0',
]


def _cli_case_folders(root) -> dict[str, str]:
    """The records and model folders the dry runs and one-line errors read."""
    from tests.fixtures.records import write_records, write_small_records

    folders = {name: str(root / name) for name in ('records', 'wide', 'no_valid', 'arch')}
    write_small_records(folders['records'])
    # 96 -> 40 bp with 2 dilated layers, stem 9, profile kernel 25: 8 + 12 + 24 = 44 + 12 spare.
    write_records(
        folders['wide'],
        split_counts={'train': 48, 'valid': 16},
        sequence_length=96,
        output_length=40,
        max_jitter=6,
        with_expected=True,
        background_every=4,
    )
    write_records(folders['no_valid'], split_counts={'train': 32}, sequence_length=200)
    os.makedirs(folders['arch'])
    with open(os.path.join(folders['arch'], 'train_config.json'), 'w') as f:
        json.dump({'model': {'filters': 3}}, f)
    return folders


@pytest.fixture(scope='module')
def cli_cases(tmp_path_factory) -> dict:
    """The train command's dry runs and one-line errors, all run in one Python (they stop
    before training): each case's CompletedProcess under its name, the folders under theirs,
    and `root`, where the dry runs were told to write (they must not)."""
    root = tmp_path_factory.mktemp('train_cli')
    folders = _cli_case_folders(root)
    records, model = f'--records_dir={folders["records"]}', f'--model_dir={root / "m"}'
    wide = [f'--records_dir={folders["wide"]}', f'--model_dir={root / "w"}', '--dry_run']
    no_valid = [f'--records_dir={folders["no_valid"]}', f'--model_dir={root / "v"}', *_TINY]
    cases = {
        'dry_run': [model, records, '--dry_run', '--batch_size=8'],
        'nowhere': [model, f'--records_dir={root / "nowhere"}', '--dry_run'],
        'batch_size': [model, records, '--batch_size=0', '--dry_run'],
        'counts_loss_weight': [model, records, '--counts_loss_weight=x', '--dry_run'],
        'unknown_flag': [model, records, '--no_such_flag=1'],
        'another_architecture': [records, f'--model_dir={folders["arch"]}', '--epochs=1'],
        'receptive_field': [
            *wide,
            '--batch_size=8',
            '--filters=8',
            '--stem_kernel_size=9',
            '--num_dilated_layers=2',
            '--profile_kernel_size=25',
            '--profile_loss=joint',
        ],
        'too_short': [*wide, '--num_dilated_layers=5'],
        'no_validation': no_valid,
        'patience': [*no_valid, '--validation=none', '--patience=2'],
    }
    procs = run_main_cases('bpnet_tfx.train', list(cases.values()))
    return {'root': root, **folders, **dict(zip(cases, procs))}


@pytest.mark.slow
def test_cli_dry_run_and_one_line_errors(cli_cases):
    dry = cli_cases['dry_run']
    assert dry.returncode == 0, dry.stderr[-2000:]
    assert 'parameters: 120,964' in dry.stdout and 'receptive field: 2093 bp' in dry.stdout
    assert not (cli_cases['root'] / 'm').exists()  # a dry run writes nothing
    for name in ('nowhere', 'batch_size', 'counts_loss_weight'):
        proc = cli_cases[name]
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert 'Traceback' not in proc.stderr
        assert 'train: error:' in proc.stderr and name in proc.stderr
    unknown = cli_cases['unknown_flag']
    assert unknown.returncode != 0 and 'no_such_flag' in unknown.stderr


@pytest.mark.slow
def test_model_dir_of_another_architecture_is_refused(cli_cases):
    proc = cli_cases['another_architecture']
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
def test_cli_dry_run_reports_receptive_field_and_crops(cli_cases):
    proc, too_short = cli_cases['receptive_field'], cli_cases['too_short']
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


@pytest.mark.slow
def test_records_without_validation_stop_in_one_line_or_train_with_validation_none(
    cli_cases, tmp_path
):
    records_dir = cli_cases['no_valid']
    proc, patience = cli_cases['no_validation'], cli_cases['patience']
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('train: error: ')
    assert records_dir in lines[0] and '--validation=none' in lines[0]
    assert patience.returncode == 2 and patience.stderr.strip().splitlines() == [
        'train: error: --patience needs a validation loss; it cannot be used with --validation=none'
    ]
    proc = _train(
        f'--records_dir={records_dir}', f'--model_dir={tmp_path / "m"}', *_TINY, '--validation=none'
    )
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
    resumed = re.search(r'resumes from .*/checkpoints/ckpt-\d+ \(step (\d+)\)$', lines[0])
    assert resumed, lines
    assert not (model_dir / 'train_summary.json').exists()
    _rerun_resumes_and_only_the_chief_writes(
        records_dir, model_dir, workers, flags, int(resumed.group(1))
    )


def _rerun_resumes_and_only_the_chief_writes(records_dir, model_dir, workers, flags, step):
    """Reruns both workers (same command, same TF_CONFIG): they resume from `step` and finish
    the 3 epochs; only the chief wrote the model folder."""
    procs = _start_workers(records_dir, model_dir, workers, *flags, quiet=True)
    outs = [p.communicate(timeout=400) for p in procs]
    errs = [err[-3000:] for _, err in outs]
    assert [p.returncode for p in procs] == [0, 0] and errs == ['', ''], errs
    assert 'train: resuming from ' in outs[0][0] and 'train: 3 epochs' in outs[0][0]
    assert 'worker done after 3 epochs' in outs[1][0]  # worker 0 is the chief
    rows = list(csv.DictReader(open(model_dir / 'history.csv')))
    assert [int(r['epoch']) for r in rows] == [1, 2, 3]  # each epoch's row once
    summary = json.loads((model_dir / 'train_summary.json').read_text())
    assert summary['epochs'] == 3 and summary['replicas'] == 2
    # MultiWorkerMirroredStrategy's class is CollectiveAllReduceStrategy; this run took the
    # steps after `step`, each of the global batch of 8 (64 records: 8 steps an epoch).
    assert summary['strategy'] == 'CollectiveAllReduceStrategy'
    assert summary['examples_seen'] == (3 * 8 - step) * 8
    assert (model_dir / 'export' / 'saved_model.pb').exists()
    # The other worker's scratch checkpoints are gone.
    assert [p.name for p in model_dir.iterdir() if p.name.startswith('.worker')] == []
