"""Tests of the contribution scores Beam job (beam_jobs/contrib.py, contributions/): its folder
equals the contrib command's (rows in input order, one-hot, scores to float32 rounding, bigWigs,
regions.bed and summary) at any batch size, shard count and number of worker processes, from a
BED or a records split, also for a multi-task control model; bad input is one line, exit status
2 and no output; a failed run publishes nothing."""

import os
import re

import numpy as np
import pytest

from beam_jobs import contrib
from bpnet_tfx.attribution import contributions, output
from tests.fixtures import inference_jobs
from tests.fixtures.control_models import wide_joint_control_model
from tests.fixtures.inference_jobs import BED_LINES

SETTINGS = {'num_shuffles': 2, 'seed': 3}


@pytest.fixture(scope='module')
def inputs(tmp_path_factory):
    """(export, FASTA, BED): an untrained 260 -> 200 bp model, the small genome, BED_LINES."""
    tmp = tmp_path_factory.mktemp('contrib')
    export = inference_jobs.wide_export(tmp)
    fasta = inference_jobs.small_genome(tmp)
    return export, fasta, inference_jobs.write_bed(tmp / 'regions.bed', BED_LINES)


def _command(export, out, **kwargs):
    contributions.compute_contributions(export, str(out), **{**SETTINGS, **kwargs})
    return out


def _job(export, out, *flags):
    settings = [f'--{k}={v}' for k, v in SETTINGS.items()]
    contrib.run([f'--saved_model={export}', f'--output_dir={out}', *settings, *flags])
    return out


def _assert_same_folder(job, command):
    a, b = contributions.load_outputs(str(job)), contributions.load_outputs(str(command))
    assert a['windows'] == b['windows']
    np.testing.assert_array_equal(a['one_hot'], b['one_hot'])
    assert list(a['hyp']) == list(b['hyp'])
    for target, hyp in b['hyp'].items():
        np.testing.assert_allclose(a['hyp'][target], hyp, rtol=1e-5, atol=1e-6, err_msg=target)
        inference_jobs.assert_same_track(
            job / target / 'contrib.bw', command / target / 'contrib.bw', rtol=1e-5, atol=1e-6
        )
    assert (job / 'regions.bed').read_bytes() == (command / 'regions.bed').read_bytes()
    summary = {k: v for k, v in a['summary'].items() if k not in ('seconds', 'beam_job')}
    assert summary == {k: v for k, v in b['summary'].items() if k != 'seconds'}
    assert sorted(os.listdir(job)) == sorted(os.listdir(command))


@pytest.mark.slow  # Three whole runs, one with two worker processes, and the command.
def test_bed_job_equals_the_command_at_any_batch_size_shards_and_workers(inputs, tmp_path):
    export, fasta, bed = inputs
    command = _command(export, tmp_path / 'cli', regions_bed=bed, fasta=fasta, batch_size=64)
    runs = {
        'batch1_one_shard': ('--batch_size=1', '--num_shards=1'),
        'batch64_three_shards': ('--batch_size=64', '--num_shards=3'),
        'batch1_three_shards_two_processes': (
            '--batch_size=1',
            '--num_shards=3',
            '--direct_num_workers=2',
            '--direct_running_mode=multi_processing',
        ),
    }
    for name, flags in runs.items():
        job = _job(export, tmp_path / name, f'--regions_bed={bed}', f'--fasta={fasta}', *flags)
        _assert_same_folder(job, command)
        summary = output.read_summary(str(job))
        assert summary['regions'] == len(BED_LINES)
        assert summary['beam_job']['shards'] == (1 if 'one_shard' in name else 3)


@pytest.mark.slow  # Three runs: DirectRunner, Portable (LOOPBACK), Dask (2 worker processes).
def test_portable_and_dask_runners_write_the_direct_runners_folder(inputs, tmp_path):
    export, fasta, bed = inputs
    flags = (f'--regions_bed={bed}', f'--fasta={fasta}', '--num_shards=3')
    direct = _job(export, tmp_path / 'direct', *flags)
    portable = _job(export, tmp_path / 'portable', *flags, *inference_jobs.PORTABLE_FLAGS)
    with inference_jobs.dask_cluster() as address:
        dask = _job(
            export,
            tmp_path / 'dask',
            *flags,
            *inference_jobs.DASK_FLAGS,
            f'--dask_client_address={address}',
        )
    for other in (portable, dask):
        a, b = contributions.load_outputs(str(other)), contributions.load_outputs(str(direct))
        assert a['windows'] == b['windows']
        np.testing.assert_array_equal(a['one_hot'], b['one_hot'])
        for target, hyp in b['hyp'].items():
            np.testing.assert_array_equal(a['hyp'][target], hyp)
            np.testing.assert_equal(
                inference_jobs.track(other / target / 'contrib.bw'),
                inference_jobs.track(direct / target / 'contrib.bw'),
            )
        assert (other / 'regions.bed').read_bytes() == (direct / 'regions.bed').read_bytes()
        assert sorted(os.listdir(other)) == sorted(os.listdir(direct))


@pytest.mark.slow  # A whole run and the command.
def test_remote_inputs_and_output(inputs, fake_remote, tmp_path):
    import shutil

    root, prefix = fake_remote
    export, fasta, bed = inputs
    shutil.copytree(export, root / 'export')
    shutil.copy(fasta, root / 'genome.fa')
    shutil.copy(bed, root / 'regions.bed')
    command = _command(export, tmp_path / 'cli', regions_bed=bed, fasta=fasta)
    flags = (f'--regions_bed={prefix}regions.bed', f'--fasta={prefix}genome.fa', '--num_shards=2')
    _job(f'{prefix}export', f'{prefix}out', *flags)
    a, b = contributions.load_outputs(str(root / 'out')), contributions.load_outputs(str(command))
    assert a['windows'] == b['windows']
    for target, hyp in b['hyp'].items():
        np.testing.assert_allclose(a['hyp'][target], hyp, rtol=1e-5, atol=1e-6)
    assert sorted(os.listdir(root / 'out')) == sorted(os.listdir(command))
    assert sorted(os.listdir(root)) == [
        'export',
        'genome.fa',
        'out',
        'regions.bed',
    ]


@pytest.mark.slow  # A job run and the command.
def test_records_job_equals_the_command(tiny_export, tmp_path):
    export, _, records_dir, _ = tiny_export
    settings = dict(method='ig', steps=2, max_regions=7, reverse_complement_average=True)
    command = _command(export, tmp_path / 'cli', records_dir=records_dir, batch_size=8, **settings)
    flags = [f'--{k}={v}' for k, v in settings.items() if k != 'reverse_complement_average']
    job = _job(
        export,
        tmp_path / 'job',
        f'--records_dir={records_dir}',
        '--reverse_complement_average',
        '--batch_size=16',
        '--num_shards=3',
        *flags,
    )
    _assert_same_folder(job, command)
    assert output.read_summary(str(job))['header_from'] == 'the records'


@pytest.mark.slow  # A whole run, then a run that fails in a worker.
def test_control_model_matches_the_command_and_worker_errors_publish_nothing(tmp_path, capsys):
    m = wide_joint_control_model(tmp_path)
    seq = m['seq']
    fasta = tmp_path / 'two.fa'  # chrB is not in the control bigWig
    fasta.write_text(f'>chrA\n{seq}\n>chrB\n{seq}\n')
    bed = inference_jobs.write_bed(tmp_path / 'a.bed', ['chrA\t10\t15', 'chrA\t40\t290'])
    command = _command(m['export'], tmp_path / 'cli', regions_bed=bed, fasta=str(fasta))
    job = _job(m['export'], tmp_path / 'job', f'--regions_bed={bed}', f'--fasta={fasta}')
    _assert_same_folder(job, command)
    assert len(output.read_summary(str(job))['targets']) == 4  # 2 tasks x 2 heads

    bad = inference_jobs.write_bed(tmp_path / 'b.bed', ['chrA\t10\t15', 'chrB\t100\t140'])
    args = [f'--saved_model={m["export"]}', f'--fasta={fasta}', f'--regions_bed={bad}']
    capsys.readouterr()
    assert contrib.main([*args, f'--output_dir={tmp_path / "bad"}', '--num_shards=2']) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith('contrib: error: ') and "'chrB' not in the bigWig" in err[-1], err
    assert not [n for n in os.listdir(tmp_path) if n.startswith('bad')]


@pytest.mark.slow  # A subprocess.
def test_command_line_prints_progress_and_one_summary_line(inputs, tmp_path):
    export, fasta, bed = inputs
    args = [f'--saved_model={export}', f'--fasta={fasta}', f'--regions_bed={bed}']
    proc = inference_jobs.run_cli('beam_jobs.contrib', *args, f'--output_dir={tmp_path}/out')
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith('contrib: 7 regions (deepshap) in 1 shard(s), ')
    assert proc.stdout.count('\n') == 1
    assert all(line.startswith('contrib: ') for line in proc.stderr.splitlines())


def test_a_failed_run_publishes_nothing_and_keeps_the_old_folder(
    inputs, tmp_path, monkeypatch, capsys
):
    from beam_jobs.contributions import transforms

    def crash(self, line):
        raise RuntimeError('worker crashed')

    monkeypatch.setattr(transforms.ShardScorer, '__call__', crash)
    export, fasta, bed = inputs
    old = tmp_path / 'out'
    old.mkdir()
    (old / 'summary.json').write_text('{}')
    (tmp_path / 'out.tmp-0123abcd').mkdir()  # left by a killed run
    args = [f'--saved_model={export}', f'--fasta={fasta}', f'--regions_bed={bed}']
    assert contrib.main([*args, f'--output_dir={old}', '--overwrite']) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert re.fullmatch(
        r"contrib: error: DirectRunner run failed in step '.*': RuntimeError: worker crashed; "
        r"-v shows the runner's full error",
        err[-1],
    ), err
    assert sorted(os.listdir(tmp_path)) == ['out'] and os.listdir(old) == ['summary.json']


_BAD = {
    'no_input': ((), 'give exactly one of --records_dir and --regions_bed'),
    'both_inputs': (('--regions_bed={bed}', '--records_dir={tmp}'), 'give exactly one of'),
    'bad_shards': (('--regions_bed={bed}', '--num_shards=x'), '--num_shards must be auto or'),
    'bad_batch': (('--regions_bed={bed}', '--batch_size=0'), '--batch_size must be >= 1'),
    'missing_bed': (('--regions_bed={tmp}/none.bed',), 'none.bed: no such BED file'),
    'bad_bed_line': (('--regions_bed={tmp}/bad.bed',), "bad.bed:2: start 'x' is not an integer"),
    'controls_with_records': (
        ('--records_dir={tmp}', '--control_pos_bigwig=c.bw'),
        '--control_pos_bigwig/--control_neg_bigwig go with --regions_bed',
    ),
    'not_an_export': (('--regions_bed={bed}', '--saved_model={tmp}'), 'is it a bpnet_tfx export?'),
    'not_records': (('--records_dir={tmp}',), 'metadata.json'),
}


@pytest.mark.parametrize('case', sorted(_BAD))
def test_bad_input_is_one_line_exit_2_and_no_output(inputs, tmp_path, capsys, case):
    flags, message = _BAD[case]
    export, fasta, bed = inputs
    inference_jobs.write_bed(tmp_path / 'bad.bed', ['chrA\t1\t50', 'chrA\tx\t9'])
    flags = [f.format(bed=bed, tmp=tmp_path) for f in flags]
    args = [f'--saved_model={export}', f'--fasta={fasta}', f'--output_dir={tmp_path}/out']
    assert contrib.main([*args, *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('contrib: error: '), err
    assert message in err[0], err
    assert sorted(os.listdir(tmp_path)) == ['bad.bed']


def test_an_existing_output_is_refused_without_overwrite(inputs, tmp_path, capsys):
    export, fasta, bed = inputs
    (tmp_path / 'out').mkdir()
    (tmp_path / 'out' / 'notes.txt').write_text('keep')
    args = [f'--saved_model={export}', f'--regions_bed={bed}', f'--output_dir={tmp_path / "out"}']
    assert contrib.main(args) == 2
    assert 'out exists; pass --overwrite to replace it' in capsys.readouterr().err
    assert contrib.main([*args, '--overwrite']) == 2
    assert 'is not a contrib folder (no summary.json)' in capsys.readouterr().err
    assert os.listdir(tmp_path / 'out') == ['notes.txt']
