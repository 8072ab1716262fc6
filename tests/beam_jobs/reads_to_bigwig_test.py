"""The reads job end to end: counts of mixed files equal independent counts, the same bytes on
every runner, worker count and region size, and bad input as one line, exit 2, no output."""

from __future__ import annotations

import os

import numpy as np
import pyBigWig
import pytest

from beam_jobs import reads_to_bigwig
from tests.fixtures import reads as reads_fixtures
from tests.fixtures.reads import CONTIGS


def _values(path):
    bw = pyBigWig.open(path)
    try:
        assert bw.chroms() == dict(CONTIGS)
        return {c: np.nan_to_num(bw.values(c, 0, n, numpy=True)) for c, n in CONTIGS}
    finally:
        bw.close()


@pytest.fixture
def mixed(tmp_path):
    """A BAM with every flag (800 reads, 80 copies, 40 unmapped), a SAM, a tagAlign and a
    fragments file, and the FASTA."""
    rng = np.random.default_rng(11)
    d = tmp_path / 'in'
    d.mkdir()
    paths = [
        reads_fixtures.write_alignments(str(d / 'a.bam'), reads_fixtures.random_reads(rng, 800)),
        reads_fixtures.write_alignments(str(d / 'b.sam'), reads_fixtures.random_reads(rng, 300)),
        reads_fixtures.write_tagalign(
            str(d / 'c.tagAlign.gz'), reads_fixtures.random_reads(rng, 300, flags=False)
        ),
        reads_fixtures.write_fragments(
            str(d / 'd.fragments.tsv'), reads_fixtures.random_fragments(rng, 300)
        ),
    ]
    return paths, reads_fixtures.write_fasta(str(d / 'g.fa'))


def _expected(paths, shift, **filters):
    total = {c: np.zeros((n, 2), np.int64) for c, n in CONTIGS}
    for path in paths:
        if path.endswith(('.bam', '.sam')):
            counts = reads_fixtures.independent_counts(path, shift=shift, **filters)
        else:
            counts = reads_fixtures.text_counts(path, shift, fragments=path.endswith('.tsv'))
        for c in total:
            total[c] += counts[c]
    return total


@pytest.mark.slow  # Runs the job (a few seconds).
def test_mixed_files_are_summed_by_the_rules(mixed, tmp_path, capsys):
    paths, fasta = mixed
    prefix = str(tmp_path / 'out' / 'x')
    result = reads_to_bigwig.run(
        [
            f'--reads={",".join(paths)}',
            '--assay=chip-seq',
            '--fragment_shift=3',
            f'--fasta={fasta}',
            f'--output_prefix={prefix}',
            '--region_size=1000',
        ]
    )
    expected = _expected(paths, (3, -3))
    plus, minus = _values(prefix + '.pos.bw'), _values(prefix + '.neg.bw')
    for c, _ in CONTIGS:
        np.testing.assert_array_equal(plus[c], expected[c][:, 0])
        np.testing.assert_array_equal(minus[c], expected[c][:, 1])
    assert result.plus + result.minus == sum(int(e.sum()) for e in expected.values()) > 1000
    assert sorted(os.listdir(tmp_path / 'out')) == ['x.neg.bw', 'x.pos.bw']
    tally = result.tallies[paths[0]]
    assert tally['reads'] == 800 + 80 + 40 and tally['duplicate'] > 0 and tally['low_mapq'] > 0
    assert result.tallies[paths[3]]['reads'] == 600  # Two ends per fragment.
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert (
        lines[0]
        == 'reads_to_bigwig: counting 4 file(s) by the chip-seq rule (5 regions of indexed files)'
    )
    assert lines[1].startswith('reads_to_bigwig: counted ') and 'of 4 file(s) (left out: ' in out
    assert len(lines) == 2


@pytest.mark.slow  # Runs the job four times, once in worker processes.
def test_the_same_bytes_on_every_runner_and_region_size(mixed, tmp_path):
    paths, fasta = mixed
    runs = {
        'one region': ['--region_size=100000'],
        'small regions': ['--region_size=700'],
        'in memory': ['--region_size=1000', '--direct_running_mode=in_memory'],
        'two workers': [
            '--region_size=1000',
            '--direct_running_mode=multi_processing',
            '--direct_num_workers=2',
        ],
    }
    blobs = {}
    for name, extra in runs.items():
        prefix = str(tmp_path / name.replace(' ', '_') / 'x')
        reads_to_bigwig.run(
            [
                f'--reads={",".join(paths)}',
                '--assay=atac',
                '--shift=+4/-4',
                f'--fasta={fasta}',
                f'--output_prefix={prefix}',
                *extra,
            ]
        )
        blobs[name] = open(prefix + '.bw', 'rb').read()  # atac: one unstranded track.
    assert len(set(blobs.values())) == 1
    expected = _expected(paths, (4, -4))
    values = _values(str(tmp_path / 'one_region' / 'x.bw'))
    for c, _ in CONTIGS:
        np.testing.assert_array_equal(values[c], expected[c].sum(axis=1))


def _fails(argv, capsys, tmp_path, message):
    assert reads_to_bigwig.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('reads_to_bigwig: error: '), err
    assert message in err[0], err[0]
    written = [n for _, _, names in os.walk(tmp_path) for n in names if n.endswith('.bw')]
    leftovers = [d for d, _, _ in os.walk(tmp_path) if 'count-tmp' in d]
    assert not written and not leftovers


def test_bad_reads_files_are_one_line_and_write_nothing(tmp_path, capsys):
    some = reads_fixtures.random_reads(np.random.default_rng(1), 50, flags=False)
    unsorted = reads_fixtures.write_alignments(str(tmp_path / 'u.bam'), some, sort=False)
    unindexed = reads_fixtures.write_alignments(str(tmp_path / 'n.bam'), some, index=False)
    good = reads_fixtures.write_alignments(str(tmp_path / 'g.bam'), some)
    other_genome = reads_fixtures.write_fasta(str(tmp_path / 'o.fa'), (('chr1', 5000),))
    tagalign = reads_fixtures.write_tagalign(str(tmp_path / 't.tagAlign'), some)
    out = f'--output_prefix={tmp_path}/out/x'
    cases = [
        ([f'--reads={unsorted}', '--assay=chip-exo'], 'u.bam: not sorted by coordinate'),
        ([f'--reads={unindexed}', '--assay=chip-exo'], 'n.bam: no index beside it'),
        (
            [f'--reads={good}', '--assay=chip-exo', f'--fasta={other_genome}'],
            'g.bam: contig(s) chrA, chrB with reads are not in',
        ),
        ([f'--reads={tagalign}', '--assay=chip-exo'], 'give --fasta or --chrom_sizes'),
        ([f'--reads={good}', '--assay=atac', '--shift=4'], "--shift: a shift is '+PLUS/-MINUS'"),
        ([f'--reads={good}'], '--assay is required with reads'),
        ([f'--reads={good}', '--assay=atac', '--fragment_shift=5'], 'for --assay=chip-seq only'),
        (
            [f'--reads={tmp_path}/missing.bam', '--assay=chip-exo'],
            'missing.bam: reads file not found',
        ),
    ]
    for argv, message in cases:
        _fails([*argv, out], capsys, tmp_path, message)


@pytest.mark.slow  # The bad line is met by a worker.
def test_a_bad_fragments_line_met_by_a_worker_is_one_line(tmp_path, capsys):
    path = reads_fixtures.write_fragments(
        str(tmp_path / 'f.tsv'), reads_fixtures.random_fragments(np.random.default_rng(0), 20)
    )
    with open(path, 'a') as f:
        f.write('chrA\t100\tnot-a-number\tB\t1\n')
    sizes = reads_fixtures.write_chrom_sizes(str(tmp_path / 'c.sizes'))
    argv = [
        f'--reads={path}',
        '--assay=atac',
        '--shift=+0/+1',
        f'--chrom_sizes={sizes}',
        f'--output_prefix={tmp_path}/out/x',
    ]
    _fails(
        argv, capsys, tmp_path, f"{path}:23: start '100' or end 'not-a-number' is not an integer"
    )


def test_outputs_are_not_replaced_without_overwrite(tmp_path, capsys):
    good = reads_fixtures.write_alignments(
        str(tmp_path / 'g.bam'), reads_fixtures.random_reads(np.random.default_rng(1), 50)
    )
    (tmp_path / 'x.pos.bw').write_text('old')
    assert (
        reads_to_bigwig.main(
            [f'--reads={good}', '--assay=chip-exo', f'--output_prefix={tmp_path}/x']
        )
        == 2
    )
    assert 'x.pos.bw exists; give --overwrite' in capsys.readouterr().err
    assert (tmp_path / 'x.pos.bw').read_text() == 'old'


@pytest.mark.slow  # A fresh Python running the job.
def test_the_command_line_is_quiet_unless_verbose(tmp_path):
    import subprocess
    import sys

    from tests.fixtures.paths import REPO

    bam = reads_fixtures.write_alignments(
        str(tmp_path / 'g.bam'), reads_fixtures.random_reads(np.random.default_rng(1), 200)
    )
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL='2')
    proc = subprocess.run(
        [
            sys.executable,
            '-m',
            'beam_jobs.reads_to_bigwig',
            f'--reads={bam}',
            '--assay=chip-exo',
            f'--output_prefix={tmp_path}/x',
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ''
    assert [line.split(' ')[1] for line in proc.stdout.splitlines()] == ['counting', 'counted']


@pytest.mark.slow  # Runs the job twice.
def test_a_cram_counts_as_its_bam(tmp_path):
    import pysam

    fasta = reads_fixtures.write_fasta(str(tmp_path / 'g.fa'))
    pysam.faidx(fasta)
    bam = reads_fixtures.write_alignments(
        str(tmp_path / 'r.bam'), reads_fixtures.random_reads(np.random.default_rng(4), 400)
    )
    cram = str(tmp_path / 'r.cram')
    pysam.view('-C', '-T', fasta, '-o', cram, bam, catch_stdout=False)
    pysam.index(cram)
    for path, name in ((bam, 'bam'), (cram, 'cram')):
        reads_to_bigwig.run(
            [
                f'--reads={path}',
                '--assay=procap',
                f'--fasta={fasta}',
                f'--output_prefix={tmp_path}/{name}',
            ]
        )
    expected = reads_fixtures.independent_counts(bam, first_mates_only=True)
    for strand, suffix in enumerate(('.pos.bw', '.neg.bw')):
        values = _values(f'{tmp_path}/cram{suffix}')
        assert (
            open(f'{tmp_path}/cram{suffix}', 'rb').read()
            == open(f'{tmp_path}/bam{suffix}', 'rb').read()
        )
        for c, _ in CONTIGS:
            np.testing.assert_array_equal(values[c], expected[c][:, strand])
