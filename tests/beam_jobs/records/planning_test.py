"""Tests of beam_jobs/records/planning.py: the driver's choice of windows."""

from __future__ import annotations

import numpy as np
import pytest

from beam_jobs.common.errors import RecordsInputError
from beam_jobs.records import planning, splits
from tests.fixtures.genomes import random_bases, write_bigwig, write_fasta


def _write(path, text):
    path.write_text(text)
    return str(path)


# --- The driver's choice: plan_windows ---------------------------------------------------------


@pytest.fixture
def toy(tmp_path):
    """chrA (3000 bp) and chrB (1000 bp) with flat counts, and a task whose peaks are there."""
    rng = np.random.default_rng(0)
    sizes = {'chrA': 3000, 'chrB': 1000}
    fasta = write_fasta(tmp_path / 'g.fa', {c: random_bases(rng, n) for c, n in sizes.items()})
    flat = {c: np.ones(n) for c, n in sizes.items()}
    paths = {name: write_bigwig(tmp_path / f'{name}.bw', flat) for name in ('pos', 'neg')}
    # chrA: 500 (twice), 1500, 2950 (past the end); chrB: 500.
    peaks = _write(
        tmp_path / 'p.bed',
        'chrA\t500\t501\nchrA\t500\t501\nchrA\t1500\t1501\nchrA\t2950\t2951\nchrB\t500\t501\n',
    )
    task = planning.tasks_lib.Task('t', peaks, paths['pos'], paths['neg'])
    return fasta, [task]


def _config(valid='', test='', **kwargs) -> planning.PlanConfig:
    return planning.PlanConfig(
        sequence_length=200,
        output_length=200,
        max_jitter=10,
        valid=splits.parse_chrom_spans(valid, flag='valid_chroms'),
        test=splits.parse_chrom_spans(test, flag='test_chroms'),
        **kwargs,
    )


def test_plan_windows_sets_aside_duplicates_and_windows_past_the_end(toy, tmp_path):
    fasta, task_list = toy
    blacklist = _write(tmp_path / 'bl.bed', 'chrA\t1450\t1460\n')
    plan = planning.plan_windows(_config('chrB'), task_list, fasta, blacklist)
    assert len(plan.peaks) == 5
    assert [(r.region_id, r.split) for r in plan.regions] == [
        ('chrA:400-600', 'train'),
        ('chrB:400-600', 'valid'),
    ]
    assert sorted((r.line, reason) for r, reason in plan.dropped) == [
        (2, 'duplicate'),
        (3, 'blacklisted'),
        (4, 'out_of_bounds'),
    ]
    assert plan.lost_windows == {'chrA:1400-1600', 'chrA:2850-3050'}
    assert plan.background is None and plan.thresholds is None and plan.totals is None


@pytest.mark.parametrize(
    'valid, test, message',
    [
        (
            'chr1',
            '',
            r"^--valid_chroms item 'chr1' names no chromosome of .*g\.fa, which has "
            r'chrA, chrB; pass --valid_chroms with one of its chromosomes or an interval '
            r'of one \(e\.g\. chrA:0-1,000\), or --allow_empty_splits$',
        ),
        (
            'chrB',
            'chrA:0-100',
            r"^--test_chroms item 'chrA:0-100' holds no peak centre \(of 5 "
            r'peaks read\)',
        ),
        (
            'chrA:2900-3000',
            '',
            r'^the valid split has no records: the 1 peak\(s\) with their '
            r'centre in --valid_chroms=chrA:2900-3000 were all rejected '
            r'\(out_of_bounds 1\); pass other --valid_chroms, or '
            r'--allow_empty_splits$',
        ),
    ],
    ids=['no_such_chromosome', 'no_peak_centre', 'all_rejected'],
)
def test_a_split_asked_for_that_can_give_no_record_stops(toy, caplog, valid, test, message):
    fasta, task_list = toy
    with pytest.raises(RecordsInputError, match=message):
        planning.plan_windows(_config(valid, test), task_list, fasta)
    plan = planning.plan_windows(_config(valid, test, allow_empty_splits=True), task_list, fasta)
    assert len(plan.peaks) == 5  # Warned, went on.
    warnings = [r.getMessage() for r in caplog.records if r.levelname == 'WARNING']
    assert len(warnings) == 1 and warnings[0].endswith('(--allow_empty_splits: going on)')
    assert 'pass --' not in warnings[0]
