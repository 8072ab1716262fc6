"""Tests of beam_jobs/records/input_checks.py: peaks, FASTA and bigWigs checked together."""

from __future__ import annotations

import numpy as np
import pyBigWig
import pytest

from beam_jobs.common.errors import RecordsInputError
from beam_jobs.records import input_checks
from beam_jobs.records.regions import Region


def _fasta(tmp_path, chroms):
    path = tmp_path / 'genome.fa'
    path.write_text(''.join(f'>{name}\n{"ACGT" * (size // 4)}\n' for name, size in chroms))
    return str(path)


def _bigwig(tmp_path, name, chroms, value=1.0):
    path = str(tmp_path / name)
    bw = pyBigWig.open(path, 'w')
    bw.addHeader(list(chroms))
    for chrom, size in chroms:
        bw.addEntries(chrom, 0, values=np.full(size, value, np.float64), span=1, step=1)
    bw.close()
    return path


@pytest.fixture
def genome(tmp_path):
    chroms = [('chr1', 400), ('chr2', 200)]
    return {
        'fasta': _fasta(tmp_path, chroms),
        'pos': _bigwig(tmp_path, 'pos.bw', chroms),
        'neg': _bigwig(tmp_path, 'neg.bw', chroms),
    }


def _check(genome, region_list, bigwigs=None):
    return input_checks.check_inputs(
        region_list,
        peaks_path='peaks.bed',
        fasta_path=genome['fasta'],
        bigwig_paths=bigwigs or [genome['pos'], genome['neg']],
    )


def test_check_inputs_returns_fasta_sizes(genome):
    assert _check(genome, [Region('chr1', 0, 10, line=1)]) == {'chr1': 400, 'chr2': 200}


def test_chrom_missing_from_fasta_with_prefix_hint(genome):
    with pytest.raises(
        RecordsInputError,
        match=r"peaks\.bed:7: chromosome '1' is not in .*genome\.fa "
        r"\(it has 'chr1'",
    ):
        _check(genome, [Region('1', 0, 10, line=7)])


def test_chrom_missing_from_fasta_without_hint(genome):
    with pytest.raises(RecordsInputError, match=r"peaks\.bed:2: chromosome 'chrM' is not in") as e:
        _check(genome, [Region('chr1', 0, 10, line=1), Region('chrM', 0, 10, line=2)])
    assert 'it has' not in str(e.value)


def test_chrom_missing_from_bigwig(tmp_path, genome):
    pos = _bigwig(tmp_path, 'pos1.bw', [('chr1', 400)])
    with pytest.raises(
        RecordsInputError, match=r"peaks\.bed:3: chromosome 'chr2' is not in .*pos1\.bw"
    ):
        _check(genome, [Region('chr2', 0, 10, line=3)], [pos, genome['neg']])


def test_bigwig_chrom_length_differs(tmp_path, genome):
    pos = _bigwig(tmp_path, 'hg19.bw', [('chr1', 404), ('chr2', 200)])
    with pytest.raises(
        RecordsInputError,
        match=r'hg19\.bw: chr1 is 404 bp but 400 bp in .*'
        r'same assembly',
    ):
        _check(genome, [Region('chr2', 0, 10, line=1)], [pos])


def test_negative_bigwig(tmp_path, genome):
    neg = _bigwig(tmp_path, 'negative.bw', [('chr1', 400), ('chr2', 200)], value=-1.0)
    with pytest.raises(RecordsInputError, match=r'negative\.bw: holds negative values'):
        _check(genome, [Region('chr1', 0, 10, line=1)], [genome['pos'], neg])


def test_missing_bigwig(tmp_path, genome):
    with pytest.raises(RecordsInputError, match=r'gone\.bw: bigWig file not found'):
        _check(genome, [Region('chr1', 0, 10, line=1)], [str(tmp_path / 'gone.bw')])


def test_not_a_bigwig(tmp_path, genome):
    with pytest.raises(RecordsInputError, match=r'genome\.fa: not a readable bigWig'):
        _check(genome, [Region('chr1', 0, 10, line=1)], [genome['fasta']])


def test_check_inputs_names_each_tasks_peaks_file(genome):
    with pytest.raises(RecordsInputError, match=r"^b\.bed:4: chromosome 'chrM' is not in"):
        input_checks.check_inputs(
            [Region('chr1', 0, 10, line=1), Region('chrM', 0, 10, line=4, task=1)],
            peaks_path=['a.bed', 'b.bed'],
            fasta_path=genome['fasta'],
            bigwig_paths=[genome['pos']],
        )


def test_check_inputs_names_remote_originals(tmp_path, genome):
    only_chr2 = _bigwig(tmp_path, 'chr2.bw', [('chr2', 200)])
    with pytest.raises(RecordsInputError, match=r"chromosome 'chr1' is not in gs://b/pos\.bw$"):
        input_checks.check_inputs(
            [Region('chr1', 0, 10, line=1)],
            peaks_path='p',
            fasta_path=genome['fasta'],
            bigwig_paths=[only_chr2],
            names={only_chr2: 'gs://b/pos.bw'},
        )


def test_missing_fasta(tmp_path, genome):
    with pytest.raises(RecordsInputError, match=r'gone\.fa: FASTA file not found'):
        input_checks.check_inputs(
            [], peaks_path='p', fasta_path=str(tmp_path / 'gone.fa'), bigwig_paths=[]
        )
