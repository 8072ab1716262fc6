"""Tests of beam_jobs/records/input_checks.py: peaks, FASTA and bigWigs checked together."""

from __future__ import annotations

import numpy as np
import pytest

from beam_jobs.common.errors import RecordsInputError
from beam_jobs.records import input_checks
from beam_jobs.records.regions import Region
from tests.fixtures.genomes import GENOME_SIZES, write_bigwig


def _bigwig(tmp_path, name, sizes, value=1.0):
    """A bigWig of `value` on every base of the chromosomes `sizes` (name -> length)."""
    return write_bigwig(tmp_path / name, {c: np.full(n, value) for c, n in sizes.items()})


def _check(genome, region_list, bigwigs=None):
    return input_checks.check_inputs(
        region_list,
        peaks_path='peaks.bed',
        fasta_path=genome.fasta,
        bigwig_paths=bigwigs or [genome.pos_bigwig, genome.neg_bigwig],
    )


def test_check_inputs_returns_fasta_sizes(genome):
    assert _check(genome, [Region('chrT', 0, 10, line=1)]) == GENOME_SIZES


def test_chrom_missing_from_fasta_with_prefix_hint(genome):
    with pytest.raises(
        RecordsInputError,
        match=r"peaks\.bed:7: chromosome 'T' is not in .*genome\.fa "
        r"\(it has 'chrT'",
    ):
        _check(genome, [Region('T', 0, 10, line=7)])


def test_chrom_missing_from_fasta_without_hint(genome):
    with pytest.raises(RecordsInputError, match=r"peaks\.bed:2: chromosome 'chrM' is not in") as e:
        _check(genome, [Region('chrT', 0, 10, line=1), Region('chrM', 0, 10, line=2)])
    assert 'it has' not in str(e.value)


def test_chrom_missing_from_bigwig(tmp_path, genome):
    pos = _bigwig(tmp_path, 'pos1.bw', {'chrT': 1000})
    with pytest.raises(
        RecordsInputError, match=r"peaks\.bed:3: chromosome 'chrU' is not in .*pos1\.bw"
    ):
        _check(genome, [Region('chrU', 0, 10, line=3)], [pos, genome.neg_bigwig])


def test_bigwig_chrom_length_differs(tmp_path, genome):
    pos = _bigwig(tmp_path, 'hg19.bw', {'chrT': 1004, 'chrU': 300})
    with pytest.raises(
        RecordsInputError,
        match=r'hg19\.bw: chrT is 1004 bp but 1000 bp in .*'
        r'same assembly',
    ):
        _check(genome, [Region('chrU', 0, 10, line=1)], [pos])


def test_negative_bigwig(tmp_path, genome):
    neg = _bigwig(tmp_path, 'negative.bw', GENOME_SIZES, value=-1.0)
    with pytest.raises(RecordsInputError, match=r'negative\.bw: holds negative values'):
        _check(genome, [Region('chrT', 0, 10, line=1)], [genome.pos_bigwig, neg])


def test_missing_bigwig(tmp_path, genome):
    with pytest.raises(RecordsInputError, match=r'gone\.bw: bigWig file not found'):
        _check(genome, [Region('chrT', 0, 10, line=1)], [str(tmp_path / 'gone.bw')])


def test_not_a_bigwig(tmp_path, genome):
    with pytest.raises(RecordsInputError, match=r'genome\.fa: not a readable bigWig'):
        _check(genome, [Region('chrT', 0, 10, line=1)], [genome.fasta])


def test_check_inputs_names_each_tasks_peaks_file(genome):
    with pytest.raises(RecordsInputError, match=r"^b\.bed:4: chromosome 'chrM' is not in"):
        input_checks.check_inputs(
            [Region('chrT', 0, 10, line=1), Region('chrM', 0, 10, line=4, task=1)],
            peaks_path=['a.bed', 'b.bed'],
            fasta_path=genome.fasta,
            bigwig_paths=[genome.pos_bigwig],
        )


def test_check_inputs_names_remote_originals(tmp_path, genome):
    only_chr_u = _bigwig(tmp_path, 'chrU.bw', {'chrU': 300})
    with pytest.raises(RecordsInputError, match=r"chromosome 'chrT' is not in gs://b/pos\.bw$"):
        input_checks.check_inputs(
            [Region('chrT', 0, 10, line=1)],
            peaks_path='p',
            fasta_path=genome.fasta,
            bigwig_paths=[only_chr_u],
            names={only_chr_u: 'gs://b/pos.bw'},
        )


def test_missing_fasta(tmp_path, genome):
    with pytest.raises(RecordsInputError, match=r'gone\.fa: FASTA file not found'):
        input_checks.check_inputs(
            [], peaks_path='p', fasta_path=str(tmp_path / 'gone.fa'), bigwig_paths=[]
        )
