"""The shift check: the lag between plus and minus ends of one cut, found in ATAC-like reads
(raw, shifted, 10x fragments), and the job stopped when it disagrees with the assay."""

from __future__ import annotations

import numpy as np
import pytest

from beam_jobs.common.errors import RecordsInputError
from beam_jobs.reads import plan as plan_lib
from beam_jobs.reads import shift_check
from bpnet_tfx.genome import reads
from tests.fixtures import reads as reads_fixtures


def _plan(path, shift=None):
    return plan_lib.plan_count(
        [path],
        lambda kind: reads.make_rule('atac', shift=shift, fragments=kind == 'fragments'),
        chrom_sizes=reads_fixtures.write_chrom_sizes(path + '.sizes'),
    )


@pytest.mark.parametrize('shifted, lag', [((0, 0), 8), ((4, -5), -1), ((4, -4), 0)])
def test_the_lag_of_tn5_reads(tmp_path, shifted, lag):
    bam = reads_fixtures.write_alignments(
        str(tmp_path / 'atac.bam'),
        reads_fixtures.tn5_reads(np.random.default_rng(0), shift=shifted),
    )
    source = _plan(bam).sources[0]
    keys, where = shift_check.sample_keys(source, reads_fixtures.CONTIGS, None, None)
    found = shift_check.lag_of(keys, where)
    assert found.clear and found.lag == lag and found.ends == keys.size > 10_000
    # Around peaks: the same lag from fewer reads.
    peaks = [('chrA', 1000), ('chrA', 2200), ('chrB', 700)]
    keys, where = shift_check.sample_keys(source, reads_fixtures.CONTIGS, peaks, None)
    assert where == 'around 3 peaks' and shift_check.lag_of(keys, where).lag == lag


def test_unshifted_reads_pass_and_shifted_ones_stop_the_job(tmp_path):
    rng = np.random.default_rng(1)
    raw = reads_fixtures.write_alignments(str(tmp_path / 'raw.bam'), reads_fixtures.tn5_reads(rng))
    lines = shift_check.check_shift(_plan(raw))
    assert lines == [
        f'{raw}: shift +4/-4 agrees with the data (ends +8 bp apart in the first 1,000,000 reads)'
    ]
    done = reads_fixtures.write_alignments(
        str(tmp_path / 'done.bam'), reads_fixtures.tn5_reads(rng, shift=(4, -5))
    )
    with pytest.raises(RecordsInputError) as e:
        shift_check.check_shift(_plan(done))
    message = str(e.value)
    assert message.startswith(
        f'{done}: in the first 1,000,000 reads, minus-strand read ends sit -1 bp'
    )
    assert "--assay=atac's shift +4/-4 is for +8 bp" in message
    assert 'give --shift=+0/+1 to count these reads' in message


def test_10x_fragments_agree_with_the_fragments_shift(tmp_path):
    frags = reads_fixtures.tn5_fragments(np.random.default_rng(2))
    path = reads_fixtures.write_fragments(str(tmp_path / 'fragments.tsv.gz'), frags)
    plan = _plan(path)
    assert plan.sources[0].rule.shift == (0, 1)
    assert shift_check.check_shift(plan) == [
        f'{path}: shift +0/+1 agrees with the data (ends -1 bp apart in the first 1,000,000 lines)'
    ]


def test_no_clear_offset_warns_and_goes_on(tmp_path, caplog):
    bam = reads_fixtures.write_alignments(
        str(tmp_path / 'flat.bam'),
        reads_fixtures.random_reads(np.random.default_rng(0), 300, flags=False),
    )
    assert shift_check.check_shift(_plan(bam)) == [
        f'{bam}: shift not checked (no clear offset in the first 1,000,000 reads)'
    ]
    assert 'could not tell the shift from the data' in caplog.text


def test_suggested_shifts_split_the_lag():
    assert shift_check.suggested_shift(8) == (4, -4)
    assert shift_check.suggested_shift(-1) == (0, 1)
    assert shift_check.suggested_shift(0) == (0, 0)
    assert shift_check.suggested_shift(7) == (4, -3)
