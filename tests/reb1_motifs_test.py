"""The README's "Your data" steps 1-6 on the real Reb1 ChIP-exo files (29 peaks, yeast chrIV),
each as its own `python -m` process: records with interval splits -> training with the
reference config on 18 records -> evaluation -> a plot -> contributions -> motifs, which must
discover the Reb1 motif (TTACCCG) and name it from a MEME file that holds it among decoys
(`formats.SIGNIFICANT_Q`).
"""

import json

import numpy as np
import pytest

from bpnet_tfx.motifs import meme
from tests.fixtures.mains import run_main_ok as _cli
from tests.fixtures.paths import shared_data_dir

REB1 = 'TTACCCG'


def _database(path) -> None:
    """Reb1 among 39 decoys: its letter-shuffled copy, other yeast factors' consensuses and
    random motifs."""
    rng = np.random.default_rng(0)
    named = {
        'REB1': REB1,
        'REB1_shuffled': ''.join(rng.permutation(list(REB1))),
        'ABF1': 'TCACTATACGA',
        'RAP1': 'ACACCCATACA',
        'CBF1': 'TCACGTGA',
        'MCM1': 'CCTAATTAGG',
        'GCN4': 'ATGACTCAT',
        'MIG1': 'CCCCGGGGAA',
        'TBP': 'TATAAAAG',
    }
    motifs = [
        meme.Motif(f'M{i:04d}', name, meme.consensus_pfm(c))
        for i, (name, c) in enumerate(named.items())
    ]
    for i in range(31):
        pfm = rng.dirichlet(np.full(4, 0.4), int(rng.integers(8, 15)))
        motifs.append(meme.Motif(f'R{i:04d}', f'random{i}', pfm))
    meme.write_meme(str(path), motifs)


@pytest.mark.slow
def test_readme_steps_discover_and_name_the_reb1_motif(tmp_path):
    data = shared_data_dir()
    records, model = tmp_path / 'records', tmp_path / 'model'
    # 1. records, the chromosome split by intervals; jitter as the README shows.
    out = _cli(
        'beam_jobs.make_records',
        '--runner=DirectRunner',
        f'--fasta={data / "chrIV.fa"}',
        f'--peaks={data / "peaks.narrowPeak"}',
        f'--pos_bigwig={data / "Reb1.pos.bw"}',
        f'--neg_bigwig={data / "Reb1.neg.bw"}',
        '--task_name=Reb1',
        '--valid_chroms=chrIV:0-100000',
        '--test_chroms=chrIV:100000-130000',
        '--max_jitter=100',
        f'--output_dir={records}',
    )
    meta = json.loads((records / 'metadata.json').read_text())
    assert meta['split_counts'] == {'train': 18, 'valid': 8, 'test': 3}

    # 2. training with the reference config and the warning's advice for a set this small:
    # --epochs=60 (300 steps), no --patience (8 validation records stop a run too early).
    out = _cli(
        'bpnet_tfx.train',
        '--flagfile=configs/oct4_seed.flags',
        f'--records_dir={records}',
        f'--model_dir={model}',
        '--epochs=60',
    )
    assert 'train: warning: 18 training records are few to learn from' in out.stderr
    first = out.stdout.splitlines()[0]
    assert first.startswith('train: 18 training records, 5 steps/epoch of 4 (--batch_size=512')
    summary = json.loads((model / 'train_summary.json').read_text())
    assert summary['epochs'] == 60 and summary['steps'] == 5 * summary['epochs']
    assert summary['examples_seen'] == 4 * summary['steps']

    # 3. evaluation: the profile beats a flat one on held-out windows.
    result = tmp_path / 'eval_valid.json'
    _cli(
        'bpnet_tfx.evaluate',
        f'--saved_model={model / "export"}',
        f'--records_dir={records}',
        '--split=valid',
        f'--output_json={result}',
    )
    overall = json.loads(result.read_text())['overall']
    assert overall['profile_nll'] < 0.9 * overall['uniform_profile_nll']

    # 4. a plot of one region.
    region = tmp_path / 'region.png'
    _cli(
        'bpnet_tfx.predict',
        f'--saved_model={model / "export"}',
        '--region=chrIV:56312-57312',
        f'--output_png={region}',
    )
    assert region.stat().st_size > 0

    # 5. and 6. as the README shows for few peaks: contributions of every peak, averaged over
    # both strands; TF-MoDISco over the whole window, patterns named from the database.
    contrib = tmp_path / 'contrib'
    _cli(
        'bpnet_tfx.contrib',
        f'--saved_model={model / "export"}',
        f'--regions_bed={data / "peaks.narrowPeak"}',
        '--reverse_complement_average',
        f'--output_dir={contrib}',
    )
    database = tmp_path / 'motifs.meme'
    _database(database)
    _cli(
        'bpnet_tfx.motifs',
        'discover',
        f'--contrib_dir={contrib}',
        '--window=1000',
        f'--motif_db={database}',
        f'--output_dir={tmp_path / "motifs"}',
    )
    lines = (tmp_path / 'motifs' / 'annotations.tsv').read_text().splitlines()
    header = lines[0].split('\t')
    best = [dict(zip(header, line.split('\t'))) for line in lines[1:]]
    named = [
        row['pattern']
        for row in best
        if row['rank'] == '1' and row['match_alt'] == 'REB1' and float(row['q_value']) <= 0.05
    ]
    assert any(p.startswith('profile/pos_') for p in named), lines
