"""The Beam jobs' command lines (common/arguments.py, runners.job_main): an argument that is
neither the job's flag nor a Beam pipeline option is refused in one line naming the closest
flag; Ctrl-C is one line and exit status 130, with no output left."""

from __future__ import annotations

import glob
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from beam_jobs import make_records, score_variants
from beam_jobs.common import arguments, runners
from beam_jobs.common.errors import RecordsInputError
from beam_jobs.records import flags as records_flags
from tests.fixtures.mains import interruptible
from tests.fixtures.paths import REPO, shared_data_dir

DATA = shared_data_dir()
_NOT_OURS = 'neither a flag of {} (--help lists them) nor a Beam pipeline option'


def test_misspelled_flags_are_refused_naming_the_closest_flag(tmp_path, capsys):
    out = tmp_path / 'records'
    assert make_records.main([f'--output_dir={out}', '--test_chrom=chrIV']) == 2
    assert capsys.readouterr().err == (
        'make_records: error: unknown flag --test_chrom (did you mean --test_chroms?): '
        + _NOT_OURS.format('make_records')
        + '\n'
    )
    flags = ['--saved_model=m', '--fasta=g.fa', '--variants=v.vcf', f'--output_dir={out}']
    assert score_variants.main([*flags, '--null_variant=10', '--direct_num_workrs', '2']) == 2
    assert capsys.readouterr().err == (
        'score_variants: error: unknown flags --null_variant (did you mean --null_variants?), '
        '--direct_num_workrs (did you mean --direct_num_workers?): '
        + _NOT_OURS.format('score_variants')
        + '\n'
    )
    assert not out.exists()


@pytest.mark.parametrize(
    'beam_args',
    [
        ['--runner=DirectRunner', '--direct_num_workers=2'],
        ['--runner', 'DirectRunner', '--direct_running_mode=multi_processing'],
        ['--runner=PortableRunner', '--job_endpoint=embed', '--environment_type=LOOPBACK'],
        ['--setup_file=./setup.py', '--save_main_session', '--experiments=a,b'],
    ],
)
def test_beam_pipeline_options_go_to_beam(beam_args):
    args, rest = arguments.parse(
        records_flags.parser('records'), ['--valid_chroms=chrIV', *beam_args]
    )
    assert args.valid_chroms == 'chrIV' and rest == beam_args


@pytest.mark.parametrize(
    'argv, message',
    [
        (['stray'], 'unexpected arguments: stray (flags are --name=value)'),
        (
            ['--direct_num_workers=x'],
            "Beam pipeline option: argument --direct_num_workers: invalid int value: 'x'",
        ),
        (['--no_such_option=1'], 'unknown flag --no_such_option: ' + _NOT_OURS.format('records')),
    ],
)
def test_other_arguments_are_one_line(argv, message):
    parser = records_flags.parser('records')
    parser.prog = 'records'
    with pytest.raises(RecordsInputError) as error:
        arguments.parse(parser, argv)
    assert str(error.value) == message


def test_ctrl_c_in_a_job_is_one_line_and_exit_130(capsys):
    def run(argv):
        raise KeyboardInterrupt

    assert runners.job_main('job', run, [], (RecordsInputError,)) == 130
    assert capsys.readouterr().err == (
        'job: interrupted: no output was written (it appears only once complete); run the same '
        'command again\n'
    )


# The job as `python -m beam_jobs.make_records` runs it, with every window read waiting.
_WAITING_JOB = (
    'import sys, time\n'
    'from beam_jobs.common import logs\n'
    'logs.configure(False)\n'
    'from beam_jobs.records import windows\n'
    'def _wait(self, chunk):\n'
    '    time.sleep(300)\n'
    '    yield\n'
    'windows.WindowReader.read = _wait\n'
    'from beam_jobs import make_records\n'
    'from beam_jobs.common import runners\n'
    'runners.exit_job(make_records.main(sys.argv[1:]))\n'
)


@pytest.mark.skipif(not (DATA / 'peaks.narrowPeak').exists(), reason='no Reb1 data')
@pytest.mark.slow  # a job in a subprocess
def test_sigint_during_a_run_is_one_line_exit_130_and_leaves_nothing(tmp_path):
    out = tmp_path / 'records'
    proc = subprocess.Popen(
        interruptible(
            [
                sys.executable,
                '-c',
                _WAITING_JOB,
                f'--fasta={DATA / "chrIV.fa"}',
                f'--peaks={DATA / "peaks.narrowPeak"}',
                f'--pos_bigwig={DATA / "Reb1.pos.bw"}',
                f'--neg_bigwig={DATA / "Reb1.neg.bw"}',
                f'--output_dir={out}',
                '--valid_chroms=chrIV:0-100,000',
            ]
        ),
        cwd=REPO,
        env={**os.environ, 'PYTHONPATH': REPO},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not glob.glob(f'{out}.tmp-*/_shard_plans.jsonl'):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.1)
    time.sleep(1)  # the pipeline runs: its reads wait
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-3000:]
    assert err == (
        'make_records: interrupted: no output was written (it appears only once complete); '
        'run the same command again\n'
    )
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    'job, flag, closest',
    [
        ('predict_tracks', '--regions_beds=x.bed', '--regions_bed'),
        ('contrib', '--num_shuffle=3', '--num_shuffles'),
        ('reads_to_bigwig', '--read=x.bam', '--reads'),
    ],
)
def test_every_job_refuses_a_misspelled_flag_naming_the_closest(job, flag, closest):
    """Each Beam job main parses through arguments.parse: a misspelled flag is one line naming
    the closest flag, before any input is read."""
    import importlib

    from beam_jobs.common.errors import RecordsInputError

    module = importlib.import_module(f'beam_jobs.{job}')
    with pytest.raises(RecordsInputError, match=re.escape(closest)):
        module.run([flag, '--runner=DirectRunner'])
