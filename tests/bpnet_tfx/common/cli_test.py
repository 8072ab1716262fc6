"""The mains' shared command line (cli.py): quiet default runs (-v 0 shows logs), one-line user
and flag errors with exit status 2, Ctrl-C in one line with exit status 130, cheap checks before
TensorFlow starts, and the start-up progress line."""

import os
import re
import signal
import subprocess
import sys
import time

import pytest
from absl import flags

from bpnet_tfx.common import cli, errors
from tests.fixtures.mains import interruptible, main_env, run_main
from tests.fixtures.paths import REPO

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
        assert re.match(rf'{name}: starting TensorFlow\.\.\. ready \(\d+\.\d s\)\n', proc.stderr)
        assert f'{name}: ' in proc.stdout  # the summary
    proc = _run(*commands['evaluate'], '-v', '0')
    assert proc.returncode == 0
    assert any(LOG_LINE.match(line) for line in proc.stderr.splitlines()), proc.stderr


def test_run_turns_user_errors_into_one_line_and_exit_2(capsys, monkeypatch):
    monkeypatch.setattr(cli, 'quiet_logs', lambda *_: None)  # no global logging changes here

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
    monkeypatch.setattr(cli, 'quiet_logs', lambda *_: None)

    def main(argv):
        raise KeyError('a bug')

    with pytest.raises(KeyError):
        cli.run('tool', main)(['tool'])


def _flag_values():
    values = flags.FlagValues()
    flags.DEFINE_integer('epochs', 1, 'Passes.', flag_values=values)
    flags.DEFINE_string('marginalize', None, 'Backgrounds.', flag_values=values)
    flags.DEFINE_bool('dry_run', False, 'Dry.', flag_values=values)
    flags.mark_flag_as_required('marginalize', flag_values=values)
    return values


@pytest.mark.parametrize(
    'argv, line',
    [
        (
            ['--epoch=1', '--marginalize=a'],
            "Unknown command line flag 'epoch'. Did you mean: epochs?",
        ),
        (
            ['--flagfile=/no/such.flags', '--marginalize=a'],
            "Unable to open flagfile: [Errno 2] No such file or directory: '/no/such.flags'",
        ),
        (['--marginalize'], 'Missing value for flag --marginalize'),
        ([], '--marginalize is required'),
        (
            ['--marginalize=a', '--epochs=x'],
            "flag --epochs=x: invalid literal for int() with base 10: 'x'",
        ),
        (['--marginalize=a', '--nodry_run=3'], '--nodry_run=3 does not take an argument'),
    ],
)
def test_flag_parse_errors_are_one_line_and_exit_2(capsys, argv, line):
    parse = cli.flags_parser('tool', _flag_values())
    with pytest.raises(SystemExit) as exit_info:
        parse(['tool', *argv])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == f'tool: error: {line}; --helpshort lists the flags\n'


def test_flags_that_parse_pass_through():
    values = _flag_values()
    assert cli.flags_parser('tool', values)(['tool', '--marginalize=a', '--epochs=3']) == ['tool']
    assert values.epochs == 3


def test_ctrl_c_is_one_line_and_exit_130(capsys, monkeypatch):
    monkeypatch.setattr(cli, 'quiet_logs', lambda *_: None)

    def main(argv):
        raise KeyboardInterrupt

    for interrupted, said in (
        (
            None,
            'no output was written (outputs appear only once complete); run the same command again',
        ),
        (
            lambda: 'the checkpoint is kept; run it again to resume',
            'the checkpoint is kept; run it again to resume',
        ),
    ):
        with pytest.raises(SystemExit) as exit_info:
            cli.run('tool', main, interrupted=interrupted)(['tool'])
        assert exit_info.value.code == 130
        assert capsys.readouterr().err == f'tool: interrupted: {said}\n'


def test_ctrl_c_that_a_library_turns_into_another_error_is_still_an_interrupt(capsys, monkeypatch):
    """SIGINT landing inside library bookkeeping (TensorFlow entering a variable scope) can
    surface as another exception ('Improper nesting of variable_scope'): still one line and
    130. The same error without a SIGINT is not an interrupt."""
    monkeypatch.setattr(cli, 'quiet_logs', lambda *_: None)

    def interrupted_main(argv):
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)  # the handler raises here
        except KeyboardInterrupt:
            raise RuntimeError('Improper nesting of variable_scope.') from None

    # Python's own handler, as an interactive shell leaves it (a background job ignores SIGINT).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(SystemExit) as exit_info:
            cli.run('tool', interrupted_main)(['tool'])
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)
    assert exit_info.value.code == 130
    assert capsys.readouterr().err.startswith('tool: interrupted: ')

    def failing_main(argv):
        raise RuntimeError('Improper nesting of variable_scope.')

    with pytest.raises(RuntimeError, match='Improper nesting'):
        cli.run('tool', failing_main)(['tool'])


def test_checks_run_before_tensorflow_starts(capsys, monkeypatch):
    started = []
    monkeypatch.setattr(cli, 'quiet_logs', lambda *_: started.append(True))

    def checks():
        raise errors.BpnetError('in.vcf: no variant in the file')

    with pytest.raises(SystemExit) as exit_info:
        cli.run('tool', lambda argv: None, checks=checks)(['tool'])
    assert exit_info.value.code == 2 and started == []
    assert capsys.readouterr().err == 'tool: error: in.vcf: no variant in the file\n'


@pytest.mark.slow  # subprocesses; none of them starts TensorFlow
def test_mains_refuse_bad_flags_and_files_in_one_line_before_tensorflow(tmp_path):
    vcf = tmp_path / 'header_only.vcf'
    vcf.write_text('##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\n')
    cases = [
        (
            ('bpnet_tfx.train', '--epoch=1'),
            "train: error: Unknown command line flag 'epoch'. Did you mean: epochs?",
        ),
        (
            ('bpnet_tfx.motifs', 'scan', '--flagfile=/no/such.flags'),
            'motifs scan: error: Unable to open flagfile',
        ),
        (
            ('bpnet_tfx.predict', '--saved_model'),
            'predict: error: Missing value for flag --saved_model',
        ),
        (
            ('bpnet_tfx.train', f'--records_dir={tmp_path}/none', f'--model_dir={tmp_path}/m'),
            f'train: error: {tmp_path}/none: not found',
        ),
        (
            (
                'bpnet_tfx.variants',
                '--saved_model=m',
                '--fasta=g.fa',
                f'--variants={vcf}',
                f'--output={tmp_path}/s.tsv',
            ),
            f'variants: error: {vcf}: no variant to score: the file is empty',
        ),
    ]
    for args, start in cases:
        proc = _run(*args)
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert proc.stderr.startswith(start) and proc.stderr.count('\n') == 1, proc.stderr
        assert not os.path.exists(tmp_path / 'm') and not os.path.exists(tmp_path / 's.tsv')


@pytest.mark.slow  # a subprocess that starts TensorFlow
def test_ctrl_c_during_a_command_is_one_line_and_exit_130(tiny_export, genome, tmp_path):
    """SIGINT once contrib has started (its TensorFlow start-up line): one line, status 130,
    and no output folder."""
    export_dir, _, _, _ = tiny_export
    fasta = genome.fasta
    bed = tmp_path / 'many.bed'
    bed.write_text(''.join(f'chrT\t{i}\t{i + 100}\n' for i in range(0, 900, 3)))
    env = {k: v for k, v in os.environ.items() if k != 'TF_CPP_MIN_LOG_LEVEL'}
    proc = subprocess.Popen(
        interruptible(
            [
                sys.executable,
                '-m',
                'bpnet_tfx.contrib',
                f'--saved_model={export_dir}',
                f'--regions_bed={bed}',
                f'--fasta={fasta}',
                f'--output_dir={tmp_path}/contrib',
                '--method=ism',
                '--batch_size=1',
            ]
        ),
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    first = proc.stderr.readline()
    assert first.startswith('contrib: starting TensorFlow... ready'), first
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    assert err == (
        'contrib: interrupted: no output was written (outputs appear only once complete); '
        'run the same command again\n'
    ), err[-3000:]
    assert [name for name in os.listdir(tmp_path) if 'contrib' in name] == []
