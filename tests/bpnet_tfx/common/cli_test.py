"""Default runs of the inference mains print progress and a summary only; -v 0 shows logs."""

import re

import pytest

from bpnet_tfx.common import cli, errors
from tests.fixtures.mains import main_env, run_main

# absl / TensorFlow C++ log lines ('I0000 00:00:...', 'W1204 ...'), Python logging, warnings.
LOG_LINE = re.compile(r'^([IWEF]\d{4} |INFO:|WARNING:|ERROR:|.*Warning: )')


def _run(module, *args):
    return run_main(module, *args, env=main_env(tf_logs=True))  # what a user's shell gives


@pytest.mark.slow
def test_default_runs_are_quiet_and_verbosity_brings_logs_back(tiny_export, genome, tmp_path):
    export_dir, _, records_dir, _ = tiny_export
    fasta = genome.fasta
    bed = tmp_path / 'r.bed'
    bed.write_text('chrT\t100\t300\nchrT\t500\t600\n')
    commands = {
        'evaluate': [
            'bpnet_tfx.evaluate',
            f'--saved_model={export_dir}',
            f'--records_dir={records_dir}',
        ],
        'predict': [
            'bpnet_tfx.predict',
            f'--saved_model={export_dir}',
            f'--regions_bed={bed}',
            f'--fasta={fasta}',
            f'--output_prefix={tmp_path}/tracks/p',
        ],
        'contrib': [
            'bpnet_tfx.contrib',
            f'--saved_model={export_dir}',
            f'--regions_bed={bed}',
            f'--fasta={fasta}',
            f'--output_dir={tmp_path}/contrib',
            '--num_shuffles=2',
            '--steps=2',
        ],
    }
    for name, args in commands.items():
        proc = _run(*args)
        assert proc.returncode == 0, proc.stderr[-2000:]
        lines = (proc.stdout + proc.stderr).splitlines()
        assert [line for line in lines if LOG_LINE.match(line)] == [], name
        assert all(line.startswith(f'{name}:') for line in proc.stderr.splitlines()), proc.stderr
        assert f'{name}: ' in proc.stdout  # the summary
    proc = _run(*commands['evaluate'], '-v', '0')
    assert proc.returncode == 0
    assert any(LOG_LINE.match(line) for line in proc.stderr.splitlines()), proc.stderr


def test_run_turns_user_errors_into_one_line_and_exit_2(capsys, monkeypatch):
    monkeypatch.setattr(cli, 'quiet_logs', lambda: None)  # no global logging changes here

    def main(argv):
        raise errors.BpnetError('peaks.bed:3: malformed line')

    with pytest.raises(SystemExit) as exit_info:
        cli.run('tool', main)(['tool'])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == 'tool: error: peaks.bed:3: malformed line\n'
    with pytest.raises(SystemExit):
        cli.run('tool', main)(['tool', 'extra'])
    assert 'unexpected arguments: extra' in capsys.readouterr().err


def test_bugs_keep_their_traceback(monkeypatch):
    monkeypatch.setattr(cli, 'quiet_logs', lambda: None)

    def main(argv):
        raise KeyError('a bug')

    with pytest.raises(KeyError):
        cli.run('tool', main)(['tool'])
