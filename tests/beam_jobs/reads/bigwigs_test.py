"""bigWig writing: the bytes do not depend on how the contig was cut into regions."""

from __future__ import annotations

import io

import numpy as np
import pyBigWig

from beam_jobs.reads import bigwigs, transforms
from beam_jobs.reads import plan as plan_lib
from bpnet_tfx.genome import reads

GENOME = (('c1', 5000), ('c2', 3000))


def _write(tmp_path, name, region_size, rows_by_contig):
    plan = plan_lib.CountPlan(
        sources=(plan_lib.Source('r.bam', 'bam', reads.make_rule('chip-exo')),),
        genome=GENOME,
        region_size=region_size,
        fasta=None,
        indexed_contigs=(0, 1),
        stranded=True,
    )
    count_dir = tmp_path / name
    (count_dir / transforms.REGIONS_DIR).mkdir(parents=True)
    summary = []
    for c, rows in rows_by_contig.items():
        for start in range(0, GENOME[c][1], region_size):
            part = rows[(rows[:, 0] >= start) & (rows[:, 0] < start + region_size)]
            if part.size:
                buffer = io.BytesIO()
                np.save(buffer, part)
                path = count_dir / transforms.REGIONS_DIR / transforms.region_filename(c, start)
                path.write_bytes(buffer.getvalue())
            summary.append([c, start, len(part), 0, 0])
    outputs = [str(tmp_path / f'{name}.pos.bw'), str(tmp_path / f'{name}.neg.bw')]
    bigwigs.write_bigwigs(plan, str(count_dir), summary, outputs)
    return [open(p, 'rb').read() for p in outputs]


def test_bytes_do_not_depend_on_the_region_size(tmp_path, monkeypatch):
    monkeypatch.setattr(bigwigs, '_BATCH', 7)  # Many batches, ending anywhere in a region.
    rng = np.random.default_rng(0)
    rows = {}
    for c, (_, size) in enumerate(GENOME):
        where = np.sort(rng.choice(size, 300, replace=False))
        rows[c] = np.stack([where, rng.integers(0, 4, 300), rng.integers(0, 4, 300)], axis=1)
    first = _write(tmp_path, 'a', 10_000, rows)
    assert _write(tmp_path, 'b', 333, rows) == first
    assert _write(tmp_path, 'c', 1000, rows) == first
    bw = pyBigWig.open(str(tmp_path / 'b.neg.bw'))
    values = np.nan_to_num(bw.values('c2', 0, 3000, numpy=True))
    expected = np.zeros(3000)
    expected[rows[1][:, 0]] = rows[1][:, 2]
    np.testing.assert_array_equal(values, expected)


def test_output_names():
    assert bigwigs.output_paths('o/x', True) == ['o/x.pos.bw', 'o/x.neg.bw']
    assert bigwigs.output_paths('o/x', False) == ['o/x.bw']
