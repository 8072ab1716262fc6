"""The device check: its time budget skips parts that would start late, bad flags end in one
line, and its dry run (what CI runs) goes through every part on the CPU and writes one JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from benchmarks import device_check
from tests.fixtures.paths import REPO


def test_the_budget_runs_parts_until_the_time_is_spent_then_skips_and_names_them():
    now = [0.0]
    budget = device_check.Budget(10.0, clock=lambda: now[0])

    def part(seconds):
        def run():
            now[0] += seconds
            return {'rate': seconds}

        return run

    assert budget.run('a', part(4.0)) == {'rate': 4.0}
    assert budget.run('b', part(7.0)) == {'rate': 7.0}  # starts at 4 s: inside the budget
    assert budget.run('c', part(1.0)) is None  # would start at 11 s
    assert budget.run('d', part(1.0)) is None
    assert budget.skipped == ['c', 'd'] and now[0] == 11.0


@pytest.mark.parametrize(
    'argv, message',
    [
        (['--output=/no/such/folder/x.json'], '--output=/no/such/folder/x.json: no folder'),
        (['--precisions=float32,float8'], "--precisions: 'float8' is not one of"),
    ],
)
def test_bad_flags_end_in_one_line_with_status_2(argv, message, tmp_path, capsys):
    if not argv[0].startswith('--output'):
        argv = [*argv, f'--output={tmp_path / "x.json"}']
    assert device_check.main([*argv, '--verbose']) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('device_check: error: ') and message in err[0]
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_the_dry_run_measures_every_part_and_writes_one_json(tmp_path):
    out = tmp_path / 'device_check.json'
    proc = subprocess.run(
        [
            'bash',
            os.path.join(REPO, 'benchmarks', 'device_check.sh'),
            '--dry_run',
            f'--output={out}',
            '--budget_s=100000',
            '--precisions=float32,mixed_bfloat16',
        ],
        capture_output=True,
        text=True,
        env={
            **{k: v for k, v in os.environ.items() if k != 'TF_CPP_MIN_LOG_LEVEL'},
            'PYTHON': sys.executable,
            'DEVICE_CHECK_TIMEOUT_S': '900',
        },
        timeout=960,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    # Quiet by default: no TensorFlow chatter (the CUDA probe's error on a CPU machine).
    assert 'error' not in proc.stderr.lower(), proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result['dry_run'] and result['skipped'] == []
    assert set(result['train']) == {
        'float32',
        'float32_xla',
        'mixed_bfloat16',
        'mixed_bfloat16_xla',
    }
    for run in result['train'].values():
        assert run['examples_per_second'] > 0
    assert result['train']['mixed_bfloat16']['precision'] == 'mixed_bfloat16'
    feed = result['feed']
    assert feed['pipeline_examples_per_second'] > 0 and feed['step_examples_per_second'] > 0
    assert feed['pipeline_over_step'] == pytest.approx(
        feed['pipeline_examples_per_second'] / feed['step_examples_per_second']
    )
    sizes = result['sizes']
    assert [c['windows'] for c in result['contrib']] == [sizes['contrib_windows']]
    assert [v['variants'] for v in result['variants']] == [sizes['variants']]
    assert all(c['windows_per_second'] > 0 for c in result['contrib'])
    assert all(v['variants_per_second'] > 0 for v in result['variants'])
    assert result['machine']['cores'] >= 1 and len(result['load']) == 2
    assert 'device_check: ' in proc.stdout and str(out) in proc.stdout
