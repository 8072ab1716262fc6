"""Tests of the pipeline's chain (motifs.chain): a step that stops keeps the finished steps,
their report and a summary naming the step; a rerun continues from the first unfinished step;
a rerun with other settings for a finished step is refused; no output names a temporary path.

contrib and TF-MoDISco are stood in for by the hand-made folders of folders_test (the steps'
own libraries are tested there and in the slow pipeline run); scan and the report run for real.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest

from bpnet_tfx.attribution import contributions
from bpnet_tfx.common.errors import BpnetError
from bpnet_tfx.motifs import chain, discovery
from tests.fixtures.motif_folders import SITES, write_discovery


@pytest.fixture
def stand_ins(folders, monkeypatch):
    """contrib copies the hand-made contrib folder, discover writes the hand-made discovery
    folder (each published by rename, as the libraries do); returns their calls."""
    contrib_dir, _, _ = folders
    calls = {'contrib': 0, 'discover': 0}

    def contrib(saved_model, output_dir, **kwargs):
        calls['contrib'] += 1
        shutil.copytree(contrib_dir, output_dir + '.partial')
        os.rename(output_dir + '.partial', output_dir)
        return {'regions': 4}

    def discover(contrib_dir, output_dir, **kwargs):
        calls['discover'] += 1
        write_discovery(output_dir + '.partial', contrib_dir, SITES[:3])
        os.rename(output_dir + '.partial', output_dir)
        return {'targets': {'profile': [{'name': 'profile/pos_0'}]}}

    monkeypatch.setattr(contributions, 'compute_contributions', contrib)
    monkeypatch.setattr(discovery, 'discover', discover)
    return calls


def _options(tmp_path, **changes):
    here = str(tmp_path)
    settings = dict(saved_model=here, output_dir=f'{here}/out', records_dir=here, window=200)
    return chain.PipelineOptions(**{**settings, **changes})


def _files(folder):
    return sorted(
        os.path.relpath(os.path.join(d, f), folder) for d, _, fs in os.walk(folder) for f in fs
    )


def _no_temporary_path(folder):
    for name in _files(folder):
        assert '.tmp-' not in name and '.partial' not in name, name
        if name.endswith(('.json', '.html', '.tsv', '.bed')):
            assert '.tmp-' not in open(os.path.join(folder, name)).read(), name


def test_a_stopped_step_keeps_the_finished_ones_and_a_rerun_continues(stand_ins, tmp_path):
    out = tmp_path / 'out'
    with pytest.raises(BpnetError) as stopped:  # no pattern passes: scan finds nothing
        chain.run_pipeline(_options(tmp_path, min_seqlet_match=1.01))
    message = str(stopped.value)
    assert message.startswith('step 3/4 (scan) stopped: no instance of 1 patterns in 4 windows')
    assert 'lower --match_percentile / --contrib_percentile / --min_seqlet_match' in message
    assert message.endswith(
        f'; kept contrib/, discover/, report.html, summary.json in {out}: the same command '
        'continues from scan'
    )
    assert set(os.listdir(out)) == {'contrib', 'discover', 'report.html', 'summary.json'}
    record = json.loads((out / 'summary.json').read_text())
    assert sorted(record['steps']) == ['contrib', 'discover']
    assert record['stopped']['step'] == 'scan' and 'no instance' in record['stopped']['error']
    assert (record['regions'], record['patterns'], record['instances']) == (4, {'profile': 1}, {})
    assert 'instances' not in (out / 'report.html').read_text()  # not scanned yet
    _no_temporary_path(out)

    summary = chain.run_pipeline(_options(tmp_path))  # the default threshold: it continues
    assert stand_ins == {'contrib': 1, 'discover': 1}  # the finished steps were kept
    assert summary['instances'] == {'profile/pos_0': len(SITES)}
    assert summary['regions'] == 4 and summary['patterns'] == {'profile': 1}
    assert 'stopped' not in summary
    record = json.loads((out / 'summary.json').read_text())
    assert sorted(record['steps']) == ['contrib', 'discover', 'scan'] and 'stopped' not in record
    assert {k: record[k] for k in ('regions', 'patterns', 'instances')} == {
        k: summary[k] for k in ('regions', 'patterns', 'instances')
    }
    assert f'{len(SITES)} instances' in (out / 'report.html').read_text()
    _no_temporary_path(out)

    again = chain.run_pipeline(_options(tmp_path))  # finished: nothing runs
    assert stand_ins == {'contrib': 1, 'discover': 1}
    assert again['instances'] == summary['instances']


def test_a_rerun_with_other_settings_is_refused_and_overwrite_starts_afresh(stand_ins, tmp_path):
    chain.run_pipeline(_options(tmp_path))
    before = _files(tmp_path / 'out')
    with pytest.raises(BpnetError) as refused:
        chain.run_pipeline(_options(tmp_path, window=300, max_regions=3))
    assert str(refused.value) == (
        f'{tmp_path / "out"} holds a run whose contrib step had other settings: '
        '--max_regions=unset (now 3); pass --overwrite to start again, or choose another '
        '--output_dir'
    )
    assert _files(tmp_path / 'out') == before
    with pytest.raises(BpnetError, match=r'discover step had other settings: --window=200 \(now'):
        chain.run_pipeline(_options(tmp_path, window=300))
    chain.run_pipeline(_options(tmp_path, window=300, overwrite=True))
    assert stand_ins == {'contrib': 2, 'discover': 2}


def test_a_step_that_stops_first_leaves_nothing(stand_ins, tmp_path, monkeypatch):
    def no_records(*args, **kwargs):
        raise contributions.ContribError(f'{tmp_path}: no metadata.json')

    monkeypatch.setattr(contributions, 'compute_contributions', no_records)
    with pytest.raises(BpnetError) as stopped:
        chain.run_pipeline(_options(tmp_path))
    assert str(stopped.value) == f'step 1/4 (contrib) stopped: {tmp_path}: no metadata.json'
    assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize(
    'changes, message',
    [
        ({'window': 20}, '--window must be at least 40 bp, got 20'),
        ({'match_percentile': 101.0}, '--match_percentile must be within 0..100, got 101.0'),
        ({'marginalize': True, 'num_backgrounds': 0}, '--num_backgrounds must be >= 1, got 0'),
        ({'top': 0, 'motif_db': 'x.meme'}, '--top must be >= 1, got 0'),
        ({'fasta': '/nonexistent.fa'}, '--fasta=/nonexistent.fa: no such file or folder'),
    ],
)
def test_later_steps_flags_are_checked_before_any_work(stand_ins, tmp_path, changes, message):
    with pytest.raises(BpnetError) as refused:
        chain.run_pipeline(_options(tmp_path, **changes))
    assert str(refused.value) == message
    assert stand_ins == {'contrib': 0, 'discover': 0}
    assert not (tmp_path / 'out').exists()


def test_an_existing_folder_that_is_not_a_pipelines_is_refused(stand_ins, tmp_path):
    (tmp_path / 'out').mkdir()
    (tmp_path / 'out' / 'notes.txt').write_text('keep')
    with pytest.raises(BpnetError, match='out exists; pass --overwrite to replace it'):
        chain.run_pipeline(_options(tmp_path))
    assert os.listdir(tmp_path / 'out') == ['notes.txt']
