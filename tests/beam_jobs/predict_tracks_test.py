"""Tests of the prediction tracks Beam job (beam_jobs/predict_tracks.py, tracks/): its bigWigs
equal `predict --regions_bed`'s (values to 1e-6, the same header and covered bases, the same
regions.bed) at any batch size, shard count and number of worker processes, also for a
multi-task control model; --genome_wide tiles a simulated genome between its N runs and says
what it skipped; shards never split an overlapping pair of windows; bad input is one line,
exit status 2 and no output; a failed run publishes nothing."""

import os
import re

import numpy as np
import pytest

from beam_jobs import predict_tracks
from beam_jobs.tracks import regions as regions_lib
from bpnet_tfx.inference import prediction, tracks
from tests.fixtures import inference_jobs
from tests.fixtures.control_models import wide_joint_control_model
from tests.fixtures.inference_jobs import BED_LINES


@pytest.fixture(scope='module')
def inputs(tmp_path_factory):
    """(export, FASTA, BED): an untrained 260 -> 200 bp model, the small genome, BED_LINES."""
    tmp = tmp_path_factory.mktemp('predict_tracks')
    export = inference_jobs.wide_export(tmp)
    fasta = inference_jobs.small_genome(tmp)
    return export, fasta, inference_jobs.write_bed(tmp / 'regions.bed', BED_LINES)


def _command(export, fasta, bed, prefix, **kwargs):
    return tracks.predict_tracks(export, bed, fasta=fasta, output_prefix=str(prefix), **kwargs)


def _job(export, fasta, prefix, *flags):
    return predict_tracks.run(
        [f'--saved_model={export}', f'--fasta={fasta}', f'--output_prefix={prefix}', *flags]
    )


def _assert_same_outputs(result, expected):
    names = {k: os.path.basename(v) for k, v in result['tracks'].items()}
    assert names == {k: os.path.basename(v) for k, v in expected['tracks'].items()}
    for key, path in expected['tracks'].items():
        inference_jobs.assert_same_track(result['tracks'][key], path, atol=1e-6, rtol=1e-6)
    with open(result['regions_bed']) as a, open(expected['regions_bed']) as b:
        assert a.read() == b.read()
    assert (result['windows'], result['bases']) == (expected['windows'], expected['bases'])


@pytest.mark.slow  # Three whole runs, one with two worker processes.
def test_job_equals_the_command_at_any_batch_size_shards_and_workers(inputs, tmp_path):
    export, fasta, bed = inputs
    expected = _command(export, fasta, bed, tmp_path / 'cli' / 'pred')
    assert expected['merged_regions'] == 5 and expected['windows'] == 14
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
        prefix = tmp_path / name / 'pred'
        result = _job(export, fasta, prefix, f'--regions_bed={bed}', *flags)
        assert result['shards'] == (1 if 'one_shard' in name else 3)
        _assert_same_outputs(result, expected)
        assert sorted(os.listdir(prefix.parent)) == [
            'pred.regions.bed',
            'pred.t.neg.bw',
            'pred.t.pos.bw',
        ]


@pytest.mark.slow  # Three runs: DirectRunner, Portable (LOOPBACK), Dask (2 worker processes).
def test_portable_and_dask_runners_write_the_direct_runners_tracks(inputs, tmp_path):
    export, fasta, bed = inputs
    flags = (f'--regions_bed={bed}', '--num_shards=3')
    direct = _job(export, fasta, tmp_path / 'direct' / 'pred', *flags)
    portable = _job(
        export, fasta, tmp_path / 'portable' / 'pred', *flags, *inference_jobs.PORTABLE_FLAGS
    )
    with inference_jobs.dask_cluster() as address:
        dask = _job(
            export,
            fasta,
            tmp_path / 'dask' / 'pred',
            *flags,
            *inference_jobs.DASK_FLAGS,
            f'--dask_client_address={address}',
        )
    for other in (portable, dask):
        for key, path in direct['tracks'].items():
            got = inference_jobs.track(other['tracks'][key])
            np.testing.assert_equal(got, inference_jobs.track(path))
        with open(other['regions_bed']) as a, open(direct['regions_bed']) as b:
            assert a.read() == b.read()
        assert sorted(os.listdir(os.path.dirname(other['regions_bed']))) == [
            'pred.regions.bed',
            'pred.t.neg.bw',
            'pred.t.pos.bw',
        ]


@pytest.mark.slow  # A whole run.
def test_remote_inputs_and_output(inputs, fake_remote, tmp_path):
    import shutil

    root, prefix = fake_remote
    export, fasta, bed = inputs
    shutil.copytree(export, root / 'export')
    shutil.copy(fasta, root / 'genome.fa')
    shutil.copy(bed, root / 'regions.bed')
    expected = _command(export, fasta, bed, tmp_path / 'cli' / 'pred')
    flags = [f'--regions_bed={prefix}regions.bed', '--num_shards=2']
    result = _job(f'{prefix}export', f'{prefix}genome.fa', f'{prefix}out/pred', *flags)
    assert result['tracks']['t +'] == f'{prefix}out/pred.t.pos.bw'
    assert sorted(os.listdir(root / 'out')) == [
        'pred.regions.bed',
        'pred.t.neg.bw',
        'pred.t.pos.bw',
    ]
    for key, path in expected['tracks'].items():
        local = root / 'out' / os.path.basename(path)
        inference_jobs.assert_same_track(local, path, atol=1e-6, rtol=1e-6)


def _n_runs(fasta_path):
    """{chrom: [(start, end)] of N runs}, straight from the FASTA text."""
    runs, chrom = {}, None
    seqs = {}
    for line in open(fasta_path).read().splitlines():
        if line.startswith('>'):
            chrom = line[1:].split()[0]
            seqs[chrom] = []
        else:
            seqs[chrom].append(line)
    for chrom, parts in seqs.items():
        runs[chrom] = [(m.start(), m.end()) for m in re.finditer('N+', ''.join(parts))]
    return runs, {c: len(''.join(p)) for c, p in seqs.items()}


@pytest.mark.slow  # Two job runs and the command.
def test_genome_wide_tiles_a_simulated_genome_between_its_n_runs(tmp_path, capsys):
    from bpnet_tfx.simulate import simulator as simulate

    config = simulate.SimulationConfig(
        seed=3,
        chrom_sizes=(('chr1', 12_000), ('chr2', 5_000), ('chrM', 150)),
        n_stretch_chroms=('chr1',),
        n_stretches_per_chrom=1,
        n_stretch_length=(1000, 1500),
    )
    files = simulate.simulate(str(tmp_path / 'sim'), config)
    export = inference_jobs.wide_export(tmp_path)
    runs, sizes = _n_runs(files.fasta)
    ((gap_start, gap_end),) = runs['chr1']
    assert not runs['chr2'] and sizes['chrM'] < 200
    result = _job(export, files.fasta, tmp_path / 'gw' / 'pred', '--genome_wide', '--num_shards=3')
    stretches = [('chr1', 0, gap_start), ('chr1', gap_end, 12_000), ('chr2', 0, 5_000)]
    assert open(result['regions_bed']).read() == ''.join(
        f'{c}\t{s}\t{e}\n' for c, s, e in stretches
    )
    assert result['windows'] == sum(-(-(e - s) // 200) for _, s, e in stretches)
    skipped = result['skipped']
    assert (skipped.gaps, skipped.gap_bases) == (1, gap_end - gap_start)
    assert skipped.short_chroms == ['chrM'] and skipped.short_stretches == 0
    out = capsys.readouterr()
    assert f'skipped 1 N run(s) ({gap_end - gap_start:,} bp)' in out.out
    assert '1 chromosome(s) shorter than a window (chrM)' in out.out
    # The command, given the job's regions, writes the same tracks.
    expected = _command(export, files.fasta, result['regions_bed'], tmp_path / 'cli' / 'pred')
    _assert_same_outputs(result, expected)
    chr2 = _job(export, files.fasta, tmp_path / 'chr2' / 'pred', '--genome_wide', '--chroms=chr2')
    assert open(chr2['regions_bed']).read() == 'chr2\t0\t5000\n'
    values = inference_jobs.track(chr2['tracks']['t +'])
    np.testing.assert_array_equal(
        values['chr2'], inference_jobs.track(result['tracks']['t +'])['chr2']
    )
    assert np.isnan(values['chr1']).all()


@pytest.mark.slow  # A whole run, then a run that fails in a worker.
def test_control_model_matches_the_command_and_worker_errors_publish_nothing(tmp_path, capsys):
    m = wide_joint_control_model(tmp_path)
    seq = m['seq']
    fasta = tmp_path / 'two.fa'  # chrB is not in the control bigWig
    fasta.write_text(f'>chrA\n{seq}\n>chrB\n{seq}\n')
    bed = inference_jobs.write_bed(tmp_path / 'a.bed', ['chrA\t10\t15', 'chrA\t40\t290'])
    expected = _command(m['export'], str(fasta), bed, tmp_path / 'cli' / 'pred')
    assert len(expected['tracks']) == 4  # 2 tasks x 2 strands
    result = _job(
        m['export'], fasta, tmp_path / 'job' / 'pred', f'--regions_bed={bed}', '--num_shards=2'
    )
    _assert_same_outputs(result, expected)

    bad = inference_jobs.write_bed(tmp_path / 'b.bed', ['chrA\t10\t15', 'chrB\t100\t140'])
    args = [f'--saved_model={m["export"]}', f'--fasta={fasta}', f'--regions_bed={bad}']
    out = tmp_path / 'bad'
    out.mkdir()
    capsys.readouterr()
    assert predict_tracks.main([*args, f'--output_prefix={out / "pred"}', '--num_shards=2']) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith('predict_tracks: error: ') and "'chrB' not in the bigWig" in err[-1]
    assert os.listdir(out) == []


@pytest.mark.slow  # A subprocess.
def test_command_line_prints_progress_and_one_summary_line(inputs, tmp_path):
    export, fasta, _ = inputs
    args = [f'--saved_model={export}', f'--fasta={fasta}', '--genome_wide', '--num_shards=2']
    proc = inference_jobs.run_cli(
        'beam_jobs.predict_tracks', *args, f'--output_prefix={tmp_path}/p'
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith('predict_tracks: 3 chromosome(s) -> 3 stretches between N runs')
    assert proc.stdout.count('\n') == 1 and proc.stdout.rstrip().endswith(
        'skipped 1 N run(s) (300 bp), 0 stretch(es) shorter than a window (0 bp), '
        '1 chromosome(s) shorter than a window (chrC)'
    )
    assert all(line.startswith('predict_tracks: ') for line in proc.stderr.splitlines())


def test_a_failed_run_publishes_nothing_and_stale_folders_go(inputs, tmp_path, monkeypatch, capsys):
    from beam_jobs.tracks import transforms

    def crash(self, line):
        raise RuntimeError('worker crashed')

    monkeypatch.setattr(transforms.ShardPredictor, '__call__', crash)
    export, fasta, bed = inputs
    (tmp_path / 'pred.tmp-0123abcd').mkdir()  # left by a killed run
    (tmp_path / 'pred.t.pos.bw').write_text('an old track')
    args = [f'--saved_model={export}', f'--fasta={fasta}', f'--regions_bed={bed}']
    assert predict_tracks.main([*args, f'--output_prefix={tmp_path / "pred"}']) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert re.fullmatch(
        r"predict_tracks: error: DirectRunner run failed in step '.*': RuntimeError: worker "
        r"crashed; -v shows the runner's full error",
        err[-1],
    ), err
    assert sorted(os.listdir(tmp_path)) == ['pred.t.pos.bw']
    assert (tmp_path / 'pred.t.pos.bw').read_text() == 'an old track'


_BAD = {
    'no_region_flag': ((), 'give exactly one of --regions_bed and --genome_wide'),
    'both_region_flags': (('--regions_bed={bed}', '--genome_wide'), 'give exactly one of'),
    'chroms_without_genome_wide': (('--regions_bed={bed}', '--chroms=chrA'), '--chroms goes'),
    'bad_shards': (('--regions_bed={bed}', '--num_shards=0'), '--num_shards must be auto or'),
    'bad_batch': (('--regions_bed={bed}', '--batch_size=0'), '--batch_size must be >= 1'),
    'unknown_chrom': (('--genome_wide', '--chroms=chrA,chrZ'), '--chroms: chrZ not in the FASTA'),
    'bad_bed_line': (('--regions_bed={tmp}/bad.bed',), "bad.bed:2: start 'x' is not an integer"),
    'not_an_export': (('--regions_bed={bed}', '--saved_model={tmp}'), 'is it a bpnet_tfx export?'),
    'only_short_chroms': (('--genome_wide', '--chroms=chrC'), 'no stretch of chrC holds a 200-bp'),
}


@pytest.mark.parametrize('case', sorted(_BAD))
def test_bad_input_is_one_line_exit_2_and_no_output(inputs, tmp_path, capsys, case):
    flags, message = _BAD[case]
    export, fasta, bed = inputs
    inference_jobs.write_bed(tmp_path / 'bad.bed', ['chrA\t1\t50', 'chrA\tx\t9'])
    flags = [f.format(bed=bed, tmp=tmp_path) for f in flags]
    args = [f'--saved_model={export}', f'--fasta={fasta}', f'--output_prefix={tmp_path}/o/pred']
    assert predict_tracks.main([*args, *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('predict_tracks: error: '), err
    assert message in err[0], err
    assert sorted(os.listdir(tmp_path)) == ['bad.bed']


def test_missing_flags_are_one_line(capsys):
    assert predict_tracks.main(['--genome_wide']) == 2
    assert capsys.readouterr().err == (
        'predict_tracks: error: missing --saved_model, --output_prefix\n'
    )


# --- Regions and shards (no model) -------------------------------------------------------------


@pytest.mark.parametrize('num_shards', range(1, 12))
def test_shards_tile_the_commands_windows_and_keep_overlapping_pairs(num_shards):
    regions = [('a', 0, 1000), ('a', 1500, 2150), ('b', 0, 450), ('b', 600, 800), ('b', 900, 1300)]
    shards = regions_lib.plan_shards(regions, 200, num_shards)
    want = [(c, w) for c, s, e in regions for w in prediction.tile_windows(s, e, 200)]
    got = [
        (c, w) for shard in shards for c, s, e in shard for w in prediction.tile_windows(s, e, 200)
    ]
    assert got == want  # every window once, in order
    sizes = [sum(regions_lib.window_count(s, e, 200) for _, s, e in shard) for shard in shards]
    assert 0 not in sizes and len(shards) <= num_shards and max(sizes) - min(sizes) <= 2
    for shard in shards:  # a piece ending before its region's end ends on the window grid
        for chrom, s, e in shard:
            region = next(r for r in regions if r[0] == chrom and r[1] <= s < r[2])
            assert e == region[2] or (e - region[1]) % 200 == 0
            assert e - s >= 200


def test_n_runs_are_found_across_read_blocks(tmp_path, monkeypatch):
    from bpnet_tfx.genome import genome_io

    monkeypatch.setattr(regions_lib, '_BLOCK', 7)
    seq = 'ACGTNNNNNNNNNNACGTNACGTACNNNNRYACG' + 'N' * 9
    (tmp_path / 'g.fa').write_text(f'>c\n{seq}\n')
    with genome_io.open_fasta(str(tmp_path / 'g.fa')) as genome:
        assert regions_lib.n_runs(genome, 'c', len(seq), 1) == [
            (4, 14),
            (18, 19),
            (25, 31),
            (34, 43),
        ]
        assert regions_lib.n_runs(genome, 'c', len(seq), 9) == [(4, 14), (34, 43)]
        found = regions_lib.genome_regions(genome, {'c': len(seq)}, ['c'], 5, 5)
    assert found.regions == [('c', 14, 25)]
    assert (found.gaps, found.gap_bases, found.short_stretches, found.short_bases) == (
        3,
        25,
        2,
        7,
    )
