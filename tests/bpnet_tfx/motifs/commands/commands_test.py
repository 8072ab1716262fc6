"""The motifs commands as a user runs them (subprocesses, so all slow): bad input exits 2 with
one line and leaves nothing; the whole chain on a model trained on simulated data names both
planted motifs, finds their sites, and its report renders in headless Chromium."""

from __future__ import annotations

import csv
import json
import os
import shutil

import pytest

from bpnet_tfx.motifs import instances, meme, recovery
from tests.fixtures import simulated_models
from tests.fixtures.mains import main_env, run_main, run_main_cases, run_python
from tests.fixtures.paths import REPO

SCREENSHOT = os.path.join(REPO, 'scripts', 'report_screenshot.py')


def _motifs(*args, timeout=1200):
    return run_main('bpnet_tfx.motifs', *args, timeout=timeout, env=main_env(PYTHONUNBUFFERED='1'))


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """A small BPNet trained on simulated data with the two demo motifs (and the
    cooperative rule), its records, the simulation and a motif database."""
    root = tmp_path_factory.mktemp('motifs_trained')
    # 10 epochs (the shared fixture's) leave the contributions too weak to test recall.
    model = simulated_models.train_planted_model(root, epochs=25)
    db = str(root / 'db.meme')
    meme.write_meme(db, meme.demo_database())
    return {
        'root': root,
        'export': model['export_dir'],
        'records': model['records'],
        'files': model['files'],
        'db': db,
    }


@pytest.mark.slow
def test_pipeline_names_both_motifs_and_finds_their_sites(trained, tmp_path):
    out = tmp_path / 'interpretation'
    flags = (
        f'--saved_model={trained["export"]}',
        f'--records_dir={trained["records"]}',
        f'--output_dir={out}',
        f'--motif_db={trained["db"]}',
        '--num_shuffles=5',
        '--window=200',
        '--marginalize',
        '--num_backgrounds=8',
    )
    proc = _motifs('pipeline', *flags)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'pipeline: step 6/6: report' in proc.stderr
    assert f'-> {out}/report.html' in proc.stdout
    for name in (
        'contrib/ohe.npz',
        'discover/profile/modisco.h5',
        'discover/counts/motifs.meme',
        'discover/annotations.tsv',
        'scan/instances.bed',
        'scan/counts.tsv',
        'marginalize/marginalize.tsv',
        'report.html',
        'summary.json',
    ):
        assert (out / name).is_file(), name
    summary = json.loads((out / 'summary.json').read_text())
    named = {best for best in summary['annotation'].values()}
    assert {'oct4_sox2', 'klf4'} <= named, summary['annotation']
    from bpnet_tfx.attribution import contributions

    windows = contributions.load_outputs(str(out / 'contrib'))['windows']
    hits = instances.load_instances(str(out / 'scan'))
    with open(trained['files'].motif_sites) as f:
        planted = list(csv.DictReader(f, delimiter='\t'))
    exact = [
        (s['#chrom'], int(s['start']), int(s['end']), s['motif'])
        for s in planted
        if s['mismatches'] == '0'
    ]
    result = recovery.recovery(hits, recovery.read_sites(trained['files'].motif_sites), windows)
    strong = recovery.recovery(hits, exact, windows)
    print(
        json.dumps(
            {t: (r['precision'], r['recall'], strong[t]['recall']) for t, r in result.items()}
        )
    )
    # This small model (25 epochs on 650 windows) scores the one-mismatch sites (35% of the
    # strength) weakly; the demo's numbers are in docs/benchmarks.md. Its training is
    # reproducible on one machine, not across machines (another CPU sums in another order).
    # Training seeds 0-3 on one machine gave profile precision 0.85-1.0, recall 0.79-0.87 and
    # exact-site recall 0.91-0.99; one run whose read order still followed the threads' timing
    # gave exact-site recall 0.77. The bounds sit below the seeds' range, far above chance.
    assert result['profile']['precision'] >= 0.7 and strong['profile']['recall'] >= 0.85
    assert result['profile']['recall'] >= 0.6
    with open(out / 'marginalize' / 'marginalize.tsv') as f:
        changes = {
            r['motif']: float(r['log_counts_change']) for r in csv.DictReader(f, delimiter='\t')
        }
    oct4 = [m for m, best in summary['annotation'].items() if best == 'oct4_sox2']
    assert all(changes[m] > 0.1 for m in oct4), changes  # a binding motif raises the counts
    for root, _, names in os.walk(out):  # no output names the steps' temporary folders
        for name in names:
            text = open(os.path.join(root, name), errors='replace').read()
            assert '.tmp-' not in name and '.tmp-' not in text, name
    again = _motifs('pipeline', *flags)  # finished: every step kept, only the report again
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stderr.count('done before, kept') == 5, again.stderr[-3000:]
    assert json.loads((out / 'summary.json').read_text())['steps'] == summary['steps']
    chromium = shutil.which('chromium')
    if chromium is None:
        pytest.skip('no chromium (apt-get install chromium) for the screenshot check')
    shot = run_python(SCREENSHOT, out / 'report.html', tmp_path / 'report.png')
    print(shot.stdout[-2000:])
    assert shot.returncode == 0, shot.stdout[-2000:] + shot.stderr[-2000:]
    assert f'{4 * len(summary["annotation"])}/{4 * len(summary["annotation"])} logos drawn' in (
        shot.stdout
    )


@pytest.mark.slow
def test_screenshot_check_flags_a_blank_logo(tmp_path):
    if shutil.which('chromium') is None:
        pytest.skip('no chromium (apt-get install chromium)')
    from bpnet_tfx.motifs import logos

    page = tmp_path / 'page.html'
    page.write_text(
        '<html><body>'
        + logos.logo_svg([[1.0, 0, 0, 0], [0, 0.5, 0.5, 0]], element_id='drawn')
        + logos.logo_svg([[0.0, 0, 0, 0]], element_id='blank')
        + '</body></html>'
    )
    shot = run_python(SCREENSHOT, page, tmp_path / 'page.png')
    assert shot.returncode == 1
    assert 'drawn: ok' in shot.stdout and 'blank: BLANK' in shot.stdout


BAD = [
    (
        ['discover', '--contrib_dir=/nonexistent', '--output_dir={tmp}/o'],
        'motifs discover: error: /nonexistent: no such contribution folder',
    ),
    (  # the database is read before hours of discovery, not after them
        [
            'discover',
            '--contrib_dir=/nonexistent',
            '--output_dir={tmp}/o',
            '--motif_db={tmp}/x.meme',
        ],
        'x.meme:1: not a MEME file',
    ),
    (
        ['annotate', '--discover_dir={tmp}', '--motif_db={tmp}/x.meme'],
        'not a folder written by python -m bpnet_tfx.motifs discover',
    ),
    (['scan', '--discover_dir={tmp}', '--output_dir={tmp}/o'], 'motifs scan: error: '),
    (
        ['scan', '--discover_dir={tmp}', '--output_dir={tmp}/o', '--match_percentile=150'],
        '--match_percentile must be within 0..100',
    ),
    (
        [
            'marginalize',
            '--saved_model={tmp}',
            '--motifs=a=ACGN',
            '--contrib_dir={tmp}',
            '--output_dir={tmp}/o',
        ],
        'is not NAME=SEQUENCE',
    ),
    (
        [
            'space',
            '--saved_model={tmp}',
            '--contrib_dir={tmp}',
            '--motif_a=A',
            '--motif_b=C',
            '--output_dir={tmp}/o',
            '--max_distance=0',
        ],
        '--max_distance must be >= 1',
    ),
    (
        ['ablate', '--saved_model={tmp}', '--scan_dir={tmp}', '--output_dir={tmp}/o'],
        'not a folder written by motifs scan',
    ),
    (
        [
            'pipeline',
            '--saved_model={tmp}',
            '--records_dir={tmp}',
            '--output_dir={tmp}/o',
            '--motif_db={tmp}/x.meme',
        ],
        'x.meme:1: not a MEME file',
    ),
    (
        [
            'pipeline',
            '--saved_model={tmp}',
            '--records_dir={tmp}',
            '--output_dir={tmp}/o',
            '--min_seqlet_match=0.2',
            '--match_percentile=150',
        ],
        'motifs pipeline: error: --match_percentile must be within 0..100, got 150.0',
    ),
    (['nonsense'], "motifs: error: unknown command 'nonsense'"),
]


@pytest.mark.slow  # a subprocess
def test_bad_input_exits_2_with_one_line_and_no_output(tmp_path):
    folders = [tmp_path / str(i) for i in range(len(BAD))]
    for folder in folders:
        folder.mkdir()
        (folder / 'x.meme').write_text('not meme\n')
    procs = run_main_cases(
        'bpnet_tfx.motifs',
        [[a.format(tmp=folder) for a in args] for folder, (args, _) in zip(folders, BAD)],
        env=main_env(PYTHONUNBUFFERED='1'),
    )
    for folder, (args, message), proc in zip(folders, BAD, procs):
        assert proc.returncode == 2, (args, proc.stderr[-2000:])
        errors = [line for line in proc.stderr.splitlines() if 'error' in line]
        assert errors and message in errors[0], (args, proc.stderr[-2000:])
        assert 'Traceback' not in proc.stderr, args
        assert not [p for p in os.listdir(folder) if p.startswith(('o', '.o'))], args
