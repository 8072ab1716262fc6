"""Tests of the variant scoring Beam job (beam_jobs/score_variants.py and variant_transforms.py):
its merged TSV equals the variants command's output (rows, order, statuses, p-values, values
to 1e-5) whatever the batch size, shards and worker processes; shards are contiguous ranges;
control-track models; remote inputs and output; bad input is one line, exit 2 and no output."""

import gzip
import os

import numpy as np
import pandas as pd
import pytest

from beam_jobs import score_variants
from beam_jobs.variants import transforms as variant_transforms
from bpnet_tfx.variant_effects import scoring as variant_effects
from tests.fixtures.control_models import wide_joint_control_model
from tests.fixtures.genomes import write_fasta, write_genome
from tests.fixtures.mains import run_main


@pytest.fixture(scope='module')
def model_and_genome(tmp_path_factory):
    """(export, FASTA, sequence of chrT): an untrained 200 -> 200 bp model, write_genome's."""
    import keras

    from bpnet_tfx.inference import export
    from bpnet_tfx.modeling import config as config_lib
    from bpnet_tfx.modeling import model as model_lib
    from bpnet_tfx.records import schema

    tmp = tmp_path_factory.mktemp('score_variants')
    keras.utils.set_random_seed(0)
    config = config_lib.ModelConfig(sequence_length=200, filters=8, num_dilated_layers=2)
    info = schema.RecordsInfo(
        sequence_length=200, output_length=200, max_jitter=0, tasks=('synthetic',)
    )
    path = export.export_saved_model(
        model_lib.build_bpnet(config), info, config, str(tmp / 'export')
    )
    genome = write_genome(tmp)
    return path, genome.fasta, genome.seq


def _other(base):
    return 'ACGT'[('ACGT'.index(base) + 1) % 4]


def _vcf_rows(seq, n=14, seed=1):
    """VCF data lines: SNVs, indels, REF = ALT, a multi-allelic record, and every bad status."""
    rng = np.random.default_rng(seed)
    rows = [
        ('chrT', int(p) + 1, f'rs{p}', seq[p], _other(seq[p])) for p in rng.integers(0, 1000, n)
    ]
    rows += [
        ('chrT', 401, '.', _other(seq[400]), seq[400]),  # ref_mismatch
        ('chrZ', 5, '.', 'A', 'C'),  # unknown_chrom
        ('chrU', 300, '.', 'TA', 'T'),  # out_of_bounds: past chrU's 300 bp
        ('chrT', 600, '.', seq[599], '<DEL>'),  # unsupported_allele
        ('chrT', 51, '.', seq[50:53], seq[50]),  # deletion; window past chrT's start: chrom_end
        ('chrT', 900, 'ins', seq[899], seq[899] + 'AC'),  # insertion
        ('chrT', 700, '.', seq[699], f'{_other(seq[699])},{seq[699]}'),  # two ALTs, one REF=ALT
    ]
    return [f'{c}\t{p}\t{i}\t{r}\t{a}\t.\t.\t.\n' for c, p, i, r, a in rows]


def _write_vcf(path, lines):
    text = '##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n' + ''.join(lines)
    half = len(text) // 2  # bgzip's layout: several gzip members
    with open(path, 'wb') as f:
        f.write(gzip.compress(text[:half].encode()) + gzip.compress(text[half:].encode()))
    return str(path)


def _read(path):
    return pd.read_csv(path, sep='\t', keep_default_na=False, na_values=['nan'])


def _assert_same_scores(table, reference):
    assert list(table.columns) == list(reference.columns)
    text = list(variant_effects.ROW_COLUMNS)
    assert table[text].astype(str).values.tolist() == reference[text].astype(str).values.tolist()
    scores = [c for c in reference.columns if c not in text]
    np.testing.assert_allclose(table[scores], reference[scores], rtol=1e-5, atol=1e-5)
    pvalues = [c for c in scores if c.endswith('_pvalue')]
    np.testing.assert_array_equal(table[pvalues], reference[pvalues])


def _job(model_and_genome, variants, out, *flags):
    path, fasta, _ = model_and_genome
    return score_variants.run(
        [
            f'--saved_model={path}',
            f'--fasta={fasta}',
            f'--variants={variants}',
            f'--output_dir={out}',
            '--runner=DirectRunner',
            *flags,
        ]
    )


def _command(model_and_genome, variants, out, **kwargs):
    path, fasta, _ = model_and_genome
    result = variant_effects.score_variants(path, fasta, variants, str(out), **kwargs)
    return result, _read(out)


def test_job_equals_the_command_and_shards_are_input_ranges(model_and_genome, tmp_path):
    vcf = _write_vcf(tmp_path / 'calls.vcf.gz', _vcf_rows(model_and_genome[2]))
    result, expected = _command(model_and_genome, vcf, tmp_path / 'cli.tsv', null_variants=5)
    assert set(expected['status']) == set(variant_effects.STATUSES)
    out = tmp_path / 'out'
    stale = tmp_path / 'out.tmp-0123abcd'  # left by a killed run
    stale.mkdir()
    summary = _job(
        model_and_genome,
        vcf,
        out,
        '--null_variants=5',
        '--batch_size=4',
        '--num_shards=3',
        '--variants_per_chunk=4',
    )
    assert not stale.exists()
    assert sorted(os.listdir(tmp_path)) == ['calls.vcf.gz', 'cli.tsv', 'out']
    names = [f'scores-0000{s}-of-00003.tsv' for s in range(3)]
    assert sorted(os.listdir(out)) == [*names, 'scores.tsv', 'summary.json']
    merged = _read(out / 'scores.tsv')
    _assert_same_scores(merged, expected)
    assert summary['read'] == result['read'] == len(expected) == 22
    assert summary['by_status'] == result['by_status'] and summary['num_shards'] == 3
    shards = [_read(out / n) for n in names]
    assert [len(s) for s in shards] == [7, 7, 8]  # shard_bounds(22, 3)
    pd.testing.assert_frame_equal(pd.concat(shards, ignore_index=True), merged)


@pytest.mark.slow  # Two worker processes, each importing TensorFlow.
def test_job_does_not_depend_on_batch_size_or_workers(model_and_genome, tmp_path):
    vcf = _write_vcf(tmp_path / 'calls.vcf.gz', _vcf_rows(model_and_genome[2], n=6, seed=2))
    _, expected = _command(model_and_genome, vcf, tmp_path / 'cli.tsv', null_variants=3)
    runs = {
        'batch1': ('--batch_size=1',),
        'batch7_two_processes': (
            '--batch_size=7',
            '--variants_per_chunk=2',
            '--num_shards=2',
            '--direct_num_workers=2',
            '--direct_running_mode=multi_processing',
        ),
        'batch3_two_threads': (
            '--batch_size=3',
            '--variants_per_chunk=1',
            '--direct_num_workers=2',
            '--direct_running_mode=multi_threading',
        ),
    }
    for name, flags in runs.items():
        _job(model_and_genome, vcf, tmp_path / name, '--null_variants=3', *flags)
        _assert_same_scores(_read(tmp_path / name / 'scores.tsv'), expected)


@pytest.mark.slow  # A subprocess.
def test_command_line_prints_progress_and_one_summary_line(model_and_genome, tmp_path):
    path, fasta, seq = model_and_genome
    vcf = _write_vcf(tmp_path / 'calls.vcf.gz', _vcf_rows(seq, n=3))
    proc = run_main(
        'beam_jobs.score_variants',
        f'--saved_model={path}',
        f'--fasta={fasta}',
        f'--variants={vcf}',
        f'--output_dir={tmp_path / "out"}',
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith('score_variants: 11 read, 6 scored (ok 6, ref_mismatch 1, ')
    assert 'chrom_end 1' in proc.stdout
    assert proc.stdout.count('\n') == 1 and 'scores.tsv (1 shard)' in proc.stdout
    assert all(line.startswith('score_variants: ') for line in proc.stderr.splitlines())


def test_control_model_matches_the_command_and_worker_errors_are_one_line(tmp_path, capsys):
    m = wide_joint_control_model(tmp_path)
    seq = m['seq']
    fasta = write_fasta(tmp_path / 'two.fa', {'chrA': seq, 'chrB': seq})  # chrB: no control
    model = (m['export'], fasta, seq)
    vcf = _write_vcf(tmp_path / 'a.vcf.gz', [f'chrA\t{p}\t.\t{seq[p - 1]}\tG\n' for p in (90, 131)])
    _, expected = _command(model, vcf, tmp_path / 'cli.tsv')
    _job(model, vcf, tmp_path / 'out', '--batch_size=1')
    _assert_same_scores(_read(tmp_path / 'out' / 'scores.tsv'), expected)

    bad = _write_vcf(tmp_path / 'b.vcf.gz', [f'chrB\t131\t.\t{seq[130]}\tG\n'])
    args = [f'--saved_model={m["export"]}', f'--fasta={fasta}', f'--variants={bad}']
    code = score_variants.main([*args, f'--output_dir={tmp_path / "bad"}'])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert err[-1].startswith('score_variants: error: ') and "'chrB' not in the bigWig" in err[-1]
    assert not (tmp_path / 'bad').exists()
    assert not [n for n in os.listdir(tmp_path) if n.startswith('bad.tmp-')]


def test_remote_inputs_and_output(model_and_genome, fake_remote, tmp_path):
    import shutil

    root, prefix = fake_remote
    path, fasta, seq = model_and_genome
    shutil.copytree(path, root / 'export')
    shutil.copy(fasta, root / 'genome.fa')
    vcf = _write_vcf(root / 'calls.vcf.gz', _vcf_rows(seq, n=3))
    _, expected = _command(model_and_genome, vcf, tmp_path / 'cli.tsv')
    remote = (f'{prefix}export', f'{prefix}genome.fa', seq)
    _job(remote, f'{prefix}calls.vcf.gz', f'{prefix}out', '--num_shards=2')
    _assert_same_scores(_read(root / 'out' / 'scores.tsv'), expected)
    assert sorted(os.listdir(root / 'out')) == [
        'scores-00000-of-00002.tsv',
        'scores-00001-of-00002.tsv',
        'scores.tsv',
        'summary.json',
    ]
    assert sorted(os.listdir(root)) == ['calls.vcf.gz', 'export', 'genome.fa', 'out']


_BAD = {
    'malformed_line': ('chrT\tx\tA\tC\n', (), 'in.tsv:1: malformed variant line'),
    'none_scored': ('chrZ\t10\tA\tC\n', (), 'no variant scored (1 read: unknown_chrom 1)'),
    'empty_file': ('', (), 'in.tsv: no variant to score: the file is empty or holds only'),
    'header_only': (
        '##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\n',
        (),
        'no variant to score: the file is empty or holds only header and comment lines',
    ),
    'unknown_chroms': ('IV\t10\tA\tC\n', (), "chromosome 'IV' not in the FASTA"),
    # chrT starts TGGCC: base 5 is C, its window starts 95 bp before chrT's start.
    'all_at_chrom_ends': ('chrT\t5\tC\tA\n', (), 'chrom_end 1); windows past a chromosome'),
    'missing_file': (None, (), 'no such variants file'),
    'bad_shards': ('chrT\t5\tA\tC\n', ('--num_shards=0',), '--num_shards must be auto or'),
    'bad_batch': ('chrT\t5\tA\tC\n', ('--batch_size=0',), '--batch_size must be at least 1'),
    'not_an_export': ('chrT\t5\tA\tC\n', ('--saved_model=.',), 'is it a bpnet_tfx export?'),
}


@pytest.mark.parametrize('case', sorted(_BAD))
def test_bad_input_is_one_line_exit_2_and_no_output(model_and_genome, tmp_path, capsys, case):
    text, flags, message = _BAD[case]
    path, fasta, _ = model_and_genome
    variants = tmp_path / 'in.tsv'
    if text is not None:
        variants.write_text(text)
    args = [f'--saved_model={path}', f'--fasta={fasta}', f'--variants={variants}']
    code = score_variants.main([*args, f'--output_dir={tmp_path / "out"}', *flags])
    err = capsys.readouterr().err.strip().splitlines()
    # One error line, last; before it at most the progress line of a run that got that far.
    assert code == 2 and [i for i, x in enumerate(err) if 'error' in x] == [len(err) - 1], err
    assert err[-1].startswith('score_variants: error: ') and message in err[-1], err
    assert len(err) == 1 or err[0].startswith('score_variants: 1 variants read from '), err
    assert sorted(os.listdir(tmp_path)) == (['in.tsv'] if text is not None else [])


def test_pad_chrom_ends_scores_the_ends_as_the_command_does(model_and_genome, tmp_path):
    seq = model_and_genome[2]
    rows = [f'chrT\t{p}\t.\t{seq[p - 1]}\t{_other(seq[p - 1])}\n' for p in (20, 500, 990)]
    vcf = _write_vcf(tmp_path / 'ends.vcf.gz', rows)
    _, default = _command(model_and_genome, vcf, tmp_path / 'default.tsv')
    assert list(default['status']) == ['chrom_end', 'ok', 'chrom_end']
    _, expected = _command(model_and_genome, vcf, tmp_path / 'cli.tsv', pad_chrom_ends=True)
    assert list(expected['status']) == ['ok', 'ok', 'ok']
    summary = _job(model_and_genome, vcf, tmp_path / 'out', '--pad_chrom_ends')
    assert summary['by_status'] == {'ok': 3}
    _assert_same_scores(_read(tmp_path / 'out' / 'scores.tsv'), expected)


def test_missing_flags_and_an_existing_output_are_refused(model_and_genome, tmp_path, capsys):
    assert score_variants.main(['--fasta=x']) == 2
    assert 'missing --saved_model, --variants, --output_dir' in capsys.readouterr().err
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'notes.txt').write_text('keep')
    path, fasta, _ = model_and_genome
    args = [f'--saved_model={path}', f'--fasta={fasta}', '--variants=v.tsv', f'--output_dir={out}']
    assert score_variants.main(args) == 2
    assert 'out exists; pass --overwrite' in capsys.readouterr().err
    assert score_variants.main([*args, '--overwrite']) == 2
    assert 'is not a scores folder (no summary.json)' in capsys.readouterr().err
    assert os.listdir(out) == ['notes.txt']


def test_shards_are_contiguous_ranges_and_a_lost_row_is_an_error(tmp_path):
    assert variant_transforms.shard_bounds(22, 3) == [0, 7, 14, 22]
    assert variant_transforms.shard_bounds(5, 5) == [0, 1, 2, 3, 4, 5]
    fn = variant_transforms.WriteScoreShardFn(str(tmp_path), ['chrom', 'pos'], [0, 2, 4])
    (stats,) = fn.process((1, [((3, 'ok'), 'chrT\t4'), ((2, 'ref_mismatch'), 'chrT\t3')]))
    assert stats == {'shard': 1, 'rows': 2, 'by_status': {'ok': 1, 'ref_mismatch': 1}}
    written = (tmp_path / 'scores-00001-of-00002.tsv').read_text()
    assert written == 'chrom\tpos\nchrT\t3\nchrT\t4\n'
    with pytest.raises(RuntimeError, match='shard 0 got 1 rows, not the input rows 0-1'):
        list(fn.process((0, [((1, 'ok'), 'chrT\t2')])))


class _FailingRun:
    """A pipeline whose run fails as a remote worker's does: the error only as text."""

    def __init__(self, text):
        self.text = text

    def run(self):
        return self

    def wait_until_finish(self):
        raise RuntimeError(self.text)


def test_a_remote_workers_input_error_becomes_the_jobs_one_line_error():
    from beam_jobs.common import runners
    from bpnet_tfx.genome.genome_io import GenomeError

    remote = (
        'Traceback (most recent call last):\n  ...\nbpnet_tfx.genome_io.GenomeError: c.bw: '
        "chromosome 'chrB' not in the bigWig [while running 'MakeVariantWindows']\n"
    )
    kwargs = dict(
        runner_name='PortableRunner',
        started=lambda: True,
        timeout=0,
        user_errors=(GenomeError,),
        wrap=score_variants.ScoreVariantsError,
    )
    with pytest.raises(score_variants.ScoreVariantsError) as caught:
        runners.run_and_wait(_FailingRun(remote), **kwargs)
    assert str(caught.value) == "c.bw: chromosome 'chrB' not in the bigWig"
    with pytest.raises(runners.PipelineRunError, match='PortableRunner run failed'):
        runners.run_and_wait(_FailingRun('RuntimeError: worker crashed'), **kwargs)


def test_a_savedmodel_the_workers_cannot_load_is_one_line(model_and_genome, tmp_path, capsys):
    import shutil

    path, fasta, seq = model_and_genome
    broken = tmp_path / 'broken'
    broken.mkdir()
    for name in ('metadata.json', 'model_config.json'):
        shutil.copy(os.path.join(path, name), broken / name)
    (broken / 'saved_model.pb').write_bytes(b'not a graph')
    variants = tmp_path / 'in.tsv'
    variants.write_text(f'chrT\t300\t{seq[299]}\t{_other(seq[299])}\n')
    args = [f'--saved_model={broken}', f'--fasta={fasta}', f'--variants={variants}']
    code = score_variants.main([*args, f'--output_dir={tmp_path / "out"}'])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert err[-1].startswith('score_variants: error: ') and 'cannot load the SavedModel' in err[-1]
    assert sorted(os.listdir(tmp_path)) == ['broken', 'in.tsv']
