"""Tests of beam_jobs/records/splits.py: split flags' items, their checks, split problems."""

from __future__ import annotations

import re

import pytest

from beam_jobs.common.errors import RecordsInputError
from beam_jobs.records import splits
from beam_jobs.records.regions import Region


def _spans(valid='', test=''):
    return (
        splits.parse_chrom_spans(valid, flag='valid_chroms'),
        splits.parse_chrom_spans(test, flag='test_chroms'),
    )


def test_parse_chrom_spans():
    assert splits.parse_chrom_spans('chr1, chrX:5-10,,', flag='f') == (
        splits.ChromSpan('chr1'),
        splits.ChromSpan('chrX', 5, 10),
    )
    assert splits.parse_chrom_spans('', flag='f') == ()
    # A name with ':' but no interval stays a name.
    assert splits.parse_chrom_spans(['HLA-A*01:01'], flag='f') == (splits.ChromSpan('HLA-A*01:01'),)


def test_thousands_separators_inside_intervals():
    assert splits.parse_chrom_spans('chrIV:0-300,000', flag='f') == (
        splits.ChromSpan('chrIV', 0, 300_000),
    )
    assert splits.parse_chrom_spans('chrIV:100,000-1,200,000,chrV,chr1:5-10', flag='f') == (
        splits.ChromSpan('chrIV', 100_000, 1_200_000),
        splits.ChromSpan('chrV'),
        splits.ChromSpan('chr1', 5, 10),
    )
    # Numeric names stay names: Ensembl calls chromosomes 1, 2, ...
    assert splits.parse_chrom_spans('1,2,X:1,000-2,000', flag='f') == (
        splits.ChromSpan('1'),
        splits.ChromSpan('2'),
        splits.ChromSpan('X', 1000, 2000),
    )


@pytest.mark.parametrize(
    'item', ['chrIV:0-300.000', 'chrIV:0-1e5', 'chrIV:10-', 'chr IV', '-', 'chrIV:1,00-2000']
)
def test_an_item_that_is_neither_a_name_nor_an_interval_is_an_error(item):
    with pytest.raises(
        RecordsInputError, match=r'^--valid_chroms: (item|interval) ' + re.escape(repr(item))
    ):
        splits.parse_chrom_spans(f'chr1,{item}', flag='valid_chroms')


def test_split_problems_name_the_item_and_the_fasta_chromosomes():
    peaks = [Region('chrIV', 0, 10), Region('chrIV', 500, 510)]
    sizes = {'chrIV': 300_000, 'chrV': 500, 'chrVI': 1, 'chrVII': 1, 'chrVIII': 1, 'chrIX': 1}
    spans = {
        'valid_chroms': splits.parse_chrom_spans('chr1,chrIV:0-100', flag='f'),
        'test_chroms': splits.parse_chrom_spans('chrV,chrIV:400-600', flag='f'),
    }
    problems = splits.split_problems(spans, peaks, sizes, 'g.fa', defaults=['valid_chroms'])
    assert problems == [
        "--valid_chroms item 'chr1' (the default) names no chromosome of g.fa, which has chrIV, "
        'chrV, chrVI, chrVII, chrVIII, ... (6 in all); pass --valid_chroms with one of its '
        'chromosomes or an interval of one (e.g. chrIV:0-100,000), or --allow_empty_splits',
        "--test_chroms item 'chrV' holds no peak centre (of 2 peaks read); pass --test_chroms "
        'with items that hold peaks, or --allow_empty_splits',
    ]
    assert (
        splits.split_problems({'valid_chroms': spans['valid_chroms'][1:]}, peaks, sizes, 'g.fa')
        == []
    )


def test_empty_interval_is_an_error():
    with pytest.raises(RecordsInputError, match=r"--valid_chroms: interval 'chr1:10-10'"):
        splits.parse_chrom_spans('chr1:10-10', flag='valid_chroms')


def test_overlapping_valid_and_test_is_an_error():
    valid, test = _spans('chr1:0-100', 'chr1:50-200')
    with pytest.raises(RecordsInputError, match='overlaps'):
        splits.check_disjoint(valid, test)
    valid, test = _spans('chr1:0-100', 'chr1:100-200,chr2')
    splits.check_disjoint(valid, test)  # Touching is fine.


def test_unmatched_spans():
    valid, _ = _spans('chr1,chrIV:0-10')
    assert splits.unmatched_spans([Region('chr1', 0, 10)], valid) == [valid[1]]
