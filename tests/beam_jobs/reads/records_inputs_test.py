"""make_records from reads: the same records as from the bigWigs the reads job writes (flags,
tasks spec, controls), the demo from its simulated reads, and bad reads flags in one line."""

from __future__ import annotations

import glob
import json
import os

import numpy as np
import pytest

from beam_jobs import make_records, reads_to_bigwig
from tests.fixtures import reads as reads_fixtures

_WINDOW_FLAGS = ['--sequence_length=200', '--valid_chroms=chrB', '--runner=DirectRunner']


def _shards(folder) -> dict[str, bytes]:
    return {
        os.path.basename(p): open(p, 'rb').read()
        for p in sorted(glob.glob(os.path.join(folder, '*.tfrecord.gz')))
    }


@pytest.fixture
def inputs(tmp_path):
    rng = np.random.default_rng(5)
    d = tmp_path / 'in'
    d.mkdir()
    (d / 'peaks.bed').write_text(
        'chrA\t450\t550\nchrA\t1150\t1250\nchrA\t2400\t2600\nchrB\t650\t750\n'
    )
    return {
        'fasta': reads_fixtures.write_fasta(str(d / 'g.fa')),
        'peaks': str(d / 'peaks.bed'),
        'bam': reads_fixtures.write_alignments(
            str(d / 'a.bam'), reads_fixtures.random_reads(rng, 3000)
        ),
        'tagalign': reads_fixtures.write_tagalign(
            str(d / 'b.tagAlign'), reads_fixtures.random_reads(rng, 500, flags=False)
        ),
        'control': reads_fixtures.write_fragments(
            str(d / 'c.tsv.gz'), reads_fixtures.random_fragments(rng, 800)
        ),
    }


@pytest.mark.slow  # Five jobs.
def test_records_from_reads_equal_records_from_their_bigwigs(inputs, tmp_path):
    count = ['--assay=chip-exo', f'--fasta={inputs["fasta"]}']
    reads_to_bigwig.run(
        [
            f'--reads={inputs["bam"]},{inputs["tagalign"]}',
            *count,
            f'--output_prefix={tmp_path}/bw/t',
        ]
    )
    reads_to_bigwig.run(
        [
            f'--reads={inputs["control"]}',
            *count,
            '--strands=stranded',
            f'--output_prefix={tmp_path}/bw/c',
        ]
    )
    base = [f'--fasta={inputs["fasta"]}', *_WINDOW_FLAGS]
    make_records.run(
        [
            *base,
            f'--peaks={inputs["peaks"]}',
            f'--pos_bigwig={tmp_path}/bw/t.pos.bw',
            f'--neg_bigwig={tmp_path}/bw/t.neg.bw',
            f'--control_pos_bigwig={tmp_path}/bw/c.pos.bw',
            f'--control_neg_bigwig={tmp_path}/bw/c.neg.bw',
            f'--output_dir={tmp_path}/from_bigwigs',
        ]
    )
    expected = _shards(tmp_path / 'from_bigwigs')
    assert expected and sum(len(b) for b in expected.values()) > 100

    info = make_records.run(
        [
            *base,
            '--assay=chip-exo',
            f'--peaks={inputs["peaks"]}',
            f'--reads={inputs["bam"]},{inputs["tagalign"]}',
            f'--control_reads={inputs["control"]}',
            '--write_bigwigs',
            f'--output_dir={tmp_path}/from_reads',
        ]
    )
    out = tmp_path / 'from_reads'
    assert _shards(out) == expected and info.has_control
    assert sorted(os.listdir(out / 'bigwigs')) == [
        'task0.control.neg.bw',
        'task0.control.pos.bw',
        'task0.counts.neg.bw',
        'task0.counts.pos.bw',
    ]
    assert (
        open(out / 'bigwigs' / 'task0.counts.pos.bw', 'rb').read()
        == open(tmp_path / 'bw' / 't.pos.bw', 'rb').read()
    )
    reads_info = json.loads((out / 'reads.json').read_text())
    assert reads_info['assay'] == 'chip-exo' and len(reads_info['counts']) == 2
    assert reads_info['counts'][0]['tallies'][inputs['bam']]['reads'] == 3000 + 300 + 150
    assert not [p for p in os.listdir(tmp_path) if 'reads-tmp' in p]

    # The same from a tasks spec with relative paths.
    spec = tmp_path / 'in' / 'tasks.yaml'
    spec.write_text(
        'tasks:\n  - name: task0\n    peaks: peaks.bed\n    reads: a.bam,b.tagAlign\n'
        '    control_reads: c.tsv.gz\n'
    )
    make_records.run(
        [*base, '--assay=chip-exo', f'--tasks_spec={spec}', f'--output_dir={tmp_path}/from_spec']
    )
    assert _shards(tmp_path / 'from_spec') == expected


@pytest.mark.slow  # Simulates the demo, its reads, and runs the records job twice.
def test_the_demo_from_reads_gives_the_demo_records(tmp_path, monkeypatch):
    monkeypatch.setenv('BPNET_TFX_CACHE', str(tmp_path / 'cache'))
    monkeypatch.chdir(tmp_path)
    make_records.run(['--runner=DirectRunner', '--output_dir=demo'])
    info = make_records.run(['--runner=DirectRunner', '--demo_from_reads', '--output_dir=reads'])
    expected = _shards(tmp_path / 'demo')
    assert len(expected) == 3 and _shards(tmp_path / 'reads') == expected
    assert info.has_expected and not info.source['demo']


@pytest.mark.parametrize(
    'flags, message',
    [
        (
            ['--reads=a.bam', '--pos_bigwig=p.bw', '--neg_bigwig=n.bw'],
            'give --reads or --pos_bigwig, not both',
        ),
        (['--reads=a.bam'], '--assay is required with reads'),
        (
            ['--demo_from_reads', '--peaks=p.bed'],
            '--demo_from_reads makes its own data; drop --peaks',
        ),
        (['--reads=missing.bam', '--assay=chip-exo'], 'missing.bam: reads file not found'),
        (['--reads=a.bam', '--assay=chip-exo', '--peaks='], '--reads needs --peaks'),
    ],
)
def test_bad_reads_flags_are_one_line(inputs, tmp_path, capsys, flags, message):
    argv = [
        f'--fasta={inputs["fasta"]}',
        f'--peaks={inputs["peaks"]}',
        f'--output_dir={tmp_path}/out',
        *flags,
    ]
    if flags[0] == '--demo_from_reads':
        argv = flags
    assert make_records.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('make_records: error: ') and message in err[0], err
    assert not os.path.exists(tmp_path / 'out')
