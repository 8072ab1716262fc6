"""The motifs commands' folders through their libraries, on small hand-made inputs: a contrib
folder with planted motif contributions and a discovery folder in modisco-lite's layout, so
scan, report and the in-silico runs are tested without modisco-lite (fast)."""

from __future__ import annotations

import csv
import os

import numpy as np
import pytest

from bpnet_tfx.attribution import contributions
from bpnet_tfx.motifs import (
    discovery,
    experiments,
    formats,
    html_report,
    insilico,
    instances,
    recovery,
)
from tests.fixtures.motif_folders import LENGTH, MOTIF, SITES, write_contrib


def test_scan_writes_instances_bed_tsv_and_counts(folders, tmp_path):
    contrib_dir, discover_dir, windows = folders
    out = str(tmp_path / 'scan')
    summary = instances.scan(discover_dir, out)
    assert summary['instances'] == {'profile/pos_0': len(SITES)}
    assert summary['skipped'] == {}
    hits = instances.load_instances(out)
    expected = sorted(
        (windows[r].chrom, windows[r].start + a, '-' if rc else '+') for r, a, rc in SITES
    )
    assert sorted((h['chrom'], h['start'], h['strand']) for h in hits) == expected
    assert all(h['end'] - h['start'] == len(MOTIF) for h in hits)
    with open(os.path.join(out, instances.COUNTS_FILENAME)) as f:
        rows = list(csv.DictReader(f, delimiter='\t'))
    assert [int(r['profile/pos_0']) for r in rows] == [1, 1, 1, 2]
    assert [r['region'] for r in rows] == [w.name for w in windows]
    sites = [
        (windows[r].chrom, windows[r].start + a, windows[r].start + a + 15, 'm')
        for r, a, _ in SITES
    ]
    r = recovery.recovery(hits, sites, windows)['profile']
    assert (r['precision'], r['recall']) == (1.0, 1.0)
    again = instances.scan(discover_dir, str(tmp_path / 'scan2'))
    assert (
        open(os.path.join(out, 'instances.bed')).read()
        == open(os.path.join(tmp_path, 'scan2', 'instances.bed')).read()
    )
    assert again['patterns'] == summary['patterns']


def test_scan_bad_inputs_leave_nothing(folders, tmp_path):
    contrib_dir, discover_dir, _ = folders
    with pytest.raises(instances.ScanError, match='--match_percentile must be within 0..100'):
        instances.scan(discover_dir, str(tmp_path / 'o'), match_percentile=120)
    with pytest.raises(instances.ScanError, match="no pattern 'profile/pos_9'"):
        instances.scan(discover_dir, str(tmp_path / 'o'), patterns_wanted=['profile/pos_9'])
    with pytest.raises(discovery.DiscoveryError, match='not a folder written by'):
        instances.scan(contrib_dir, str(tmp_path / 'o'))
    with pytest.raises(instances.ScanError, match=r'\(1 skipped as incoherent\)'):
        instances.scan(discover_dir, str(tmp_path / 'o'), min_seqlet_match=1.01)
    with pytest.raises(instances.ScanError, match='exists; pass --overwrite'):
        instances.scan(discover_dir, contrib_dir)
    assert not [p for p in os.listdir(tmp_path) if p.startswith(('o', '.o'))]


def test_folders_moved_together_still_find_each_other(folders, tmp_path):
    contrib_dir, discover_dir, _ = folders
    moved = tmp_path / 'moved'
    moved.mkdir()
    os.rename(contrib_dir, moved / 'contrib')
    os.rename(discover_dir, moved / 'discover')
    summary, found = formats.load_discovery(str(moved / 'discover'))
    assert summary['contrib_dir'] == str(moved / 'contrib')
    assert [p.name for p in found] == ['profile/pos_0']


def test_report_of_a_discovery_folder(folders, tmp_path):
    _, discover_dir, _ = folders
    path = html_report.write_report(discover_dir, instances={'profile/pos_0': 5})
    page = open(path).read()
    assert path == os.path.join(discover_dir, 'report.html')
    assert 'id="cwm-profile.pos_0"' in page and '5 instances' in page
    assert 'chr1:40-55 (+)' in page  # the first seqlet, with its contribution track
    assert page.count('<svg') == 4 + 3


@pytest.mark.slow  # three experiments twice (~15 s)
def test_in_silico_runs_do_not_depend_on_batch_size(tiny_export, folders, tmp_path):
    export_dir, *_ = tiny_export
    contrib_dir, discover_dir, _ = folders
    scan_dir = str(tmp_path / 'scan')
    instances.scan(discover_dir, scan_dir)
    outs = {}
    for batch in (3, 64):
        outs[batch] = (
            experiments.run_marginalize(
                export_dir,
                contrib_dir,
                {'m': MOTIF},
                str(tmp_path / f'marg{batch}'),
                num_backgrounds=5,
                batch_size=batch,
            ),
            experiments.run_ablate(
                export_dir, scan_dir, str(tmp_path / f'abl{batch}'), batch_size=batch
            ),
            experiments.run_space(
                export_dir,
                contrib_dir,
                ('a', MOTIF),
                ('b', 'GGCCACACCCA'),
                str(tmp_path / f'space{batch}'),
                max_distance=30,
                num_backgrounds=4,
                batch_size=batch,
            ),
        )
    # Batches of another size change only float rounding inside the model's kernels.
    small, large = outs[3], outs[64]
    for name in ('m',):
        np.testing.assert_allclose(
            small[0]['motifs'][name]['log_counts_change'],
            large[0]['motifs'][name]['log_counts_change'],
            rtol=1e-5,
            atol=1e-6,
        )
    for pattern, change in small[1]['mean_log_counts_change'].items():
        np.testing.assert_allclose(
            change, large[1]['mean_log_counts_change'][pattern], rtol=1e-5, atol=1e-6
        )
    tables = {}
    for batch in (3, 64):
        with open(tmp_path / f'space{batch}' / 'spacing.tsv') as f:
            rows = list(csv.DictReader(f, delimiter='\t'))
        tables[batch] = np.array(
            [[float(r[k]) for k in ('pair_change', 'a_change', 'b_change')] for r in rows]
        )
    np.testing.assert_allclose(tables[3], tables[64], atol=2e-3)  # written to 3 decimals
    with open(tmp_path / 'space3' / 'spacing.tsv') as f:
        rows = list(csv.DictReader(f, delimiter='\t'))
    assert [int(r['distance']) for r in rows] == list(range(13, 31))
    assert os.path.getsize(tmp_path / 'space3' / 'spacing.png') > 1000
    assert os.path.getsize(tmp_path / 'marg3' / 'profiles.png') > 1000
    ablated = outs[3][1]
    assert ablated['instances'] == len(SITES)


def test_in_silico_numbers_match_direct_model_calls(tiny_export, folders, tmp_path):
    export_dir, *_ = tiny_export
    contrib_dir, *_ = folders
    from bpnet_tfx.inference import export

    model = export.ExportedModel(export_dir)
    contrib = formats.load_contrib(contrib_dir)
    bg = insilico.backgrounds(contrib['one_hot'], 4, seed=0)
    result = insilico.marginalize(model, {'m': MOTIF}, bg, batch_size=2)['m']
    with_motif = insilico.insert(bg, MOTIF, LENGTH // 2)
    c0 = model(bg)['counts'].sum(-1)
    c1 = model(with_motif)['counts'].sum(-1)
    np.testing.assert_allclose(
        result['log_counts_change'], (np.log(c1 + 1) - np.log(c0 + 1)).mean(0), rtol=1e-5
    )


def test_in_silico_bad_inputs(tiny_export, folders, tmp_path):
    export_dir, *_ = tiny_export
    contrib_dir, *_ = folders
    with pytest.raises(insilico.InSilicoError, match='not NAME=SEQUENCE'):
        experiments.parse_motifs(['oct4=ACGN'])
    with pytest.raises(insilico.InSilicoError, match='past the window end'):
        experiments.run_space(
            export_dir,
            contrib_dir,
            ('a', MOTIF),
            ('b', MOTIF),
            str(tmp_path / 'o'),
            max_distance=500,
            num_backgrounds=2,
        )
    with pytest.raises(insilico.InSilicoError, match='--num_backgrounds must be >= 1'):
        experiments.run_marginalize(
            export_dir, contrib_dir, {'m': MOTIF}, str(tmp_path / 'o'), num_backgrounds=0
        )
    with pytest.raises(instances.ScanError, match='not a folder written by motifs scan'):
        experiments.run_ablate(export_dir, contrib_dir, str(tmp_path / 'o'))
    assert not [p for p in os.listdir(tmp_path) if p.startswith(('o', '.o'))]


def test_scan_does_not_depend_on_region_order(folders, tmp_path):
    contrib_dir, discover_dir, windows = folders
    contrib = contributions.load_outputs(contrib_dir)
    order = [3, 1, 0, 2]
    shuffled = write_contrib(
        str(tmp_path / 'shuffled'),
        contrib['one_hot'][order],
        {'profile': contrib['hyp']['profile'][order]},
        [windows[i] for i in order],
    )
    a = instances.scan(discover_dir, str(tmp_path / 'a'))
    b = instances.scan(discover_dir, str(tmp_path / 'b'), contrib_dir=shuffled)
    assert a['instances'] == b['instances']
    assert (tmp_path / 'a' / 'instances.bed').read_text() == (
        tmp_path / 'b' / 'instances.bed'
    ).read_text()


def test_instance_counts_are_genomic_sites_in_lines_summary_and_report(folders, tmp_path, capsys):
    """A site in two overlapping windows is one instance everywhere a count is given (the
    progress line, summary.json, instances.bed, the report); instances.tsv lists both hits."""
    contrib_dir, discover_dir, windows = folders
    contrib = contributions.load_outputs(contrib_dir)
    shift = 10  # a fifth window: the fourth's, 10 bp to the right; both hold its two sites
    w = windows[3]
    overlapping = write_contrib(
        str(tmp_path / 'overlapping'),
        np.concatenate([contrib['one_hot'], np.roll(contrib['one_hot'][3:], -shift, 1)]),
        {
            'profile': np.concatenate(
                [contrib['hyp']['profile'], np.roll(contrib['hyp']['profile'][3:], -shift, 1)]
            )
        },
        [*windows, contributions.Window(w.chrom, w.start + shift, w.end + shift, 'peak3b')],
    )
    capsys.readouterr()
    out = str(tmp_path / 'scan')
    summary = instances.scan(discover_dir, out, contrib_dir=overlapping)
    line = [x for x in capsys.readouterr().err.splitlines() if 'profile/pos_0:' in x]
    assert len(line) == 1 and f'profile/pos_0: {len(SITES)} instances, ' in line[0], line
    assert f'{len(SITES) + 2} hits in windows' in line[0]
    assert summary['instances'] == {'profile/pos_0': len(SITES)}
    assert summary['patterns']['profile/pos_0']['instances'] == len(SITES)
    assert summary['patterns']['profile/pos_0']['window_hits'] == len(SITES) + 2
    assert instances.instance_counts(out) == {'profile/pos_0': len(SITES)}
    with open(os.path.join(out, instances.TSV_FILENAME)) as f:
        assert len(f.readlines()) == 1 + len(SITES) + 2
    page = open(html_report.write_report(discover_dir, instances=summary['instances'])).read()
    assert f'{len(SITES)} instances' in page
