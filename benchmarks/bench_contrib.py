"""Contribution scores side by side: our DeepSHAP against tangermeme's deep_lift_shap on
bpnet-lite, windows/s and planted-motif auROC, in one run on the same windows.

    bash scripts/demo.sh      # the demo's records and model
    .venv/bin/python benchmarks/bench_contrib.py [--windows=200 --num_shuffles=20]

1. Ours: `contributions.compute_contributions` (what `python -m bpnet_tfx.contrib` runs) with
   --method=deepshap on the first --windows validation windows of the records, both heads,
   the whole call timed (export loading, tracing, references and writing the folder included).
2. The peer: bpnet-lite's BPNet of the same size (64 filters, 9 dilated layers, or whatever
   the export's model_config.json says) trained by bpnet-lite's own `fit` on the same records
   (train split, validation split for its best-epoch choice) for as many epochs, at the same
   batch size, learning rate and counts loss weight as the export's train_config.json; then
   tangermeme's `deep_lift_shap` (float32, --num_shuffles dinucleotide shuffles, the same
   model inputs per call as ours) on the same windows, each head timed on its own. It runs in
   a separate venv (--peer_python, default .peer-venv/, created on first use with torch,
   bpnet-lite and tangermeme; PEER_TORCH=<requirement or wheel> picks the torch build), never
   the project's. The trained peer is kept in --peer_dir and reused while its settings match.
3. Planted-motif auROC per tool and head: |observed-base contribution| of every position of
   the windows, labelled by the simulator's motif sites (motif_sites.tsv beside the demo's
   FASTA).

Prints a table and one JSON line. The acceptance: ours for both heads at least 2x the peer's
windows/s for its faster head, and our profile auROC at least 0.99.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile

import numpy as np

REPO = os.path.dirname(os.path.abspath(os.path.dirname(__file__)))
sys.path.insert(0, REPO)
PEER_PACKAGES = ('bpnet-lite==1.1.0', 'tangermeme==1.6.0')


def _peer_python(path: str) -> str:
    """The peer venv's python, created (torch, bpnet-lite, tangermeme) if missing."""
    if os.path.exists(path):
        return path
    venv = os.path.dirname(os.path.dirname(path))
    print(f'bench_contrib: creating the peer venv {venv}', file=sys.stderr)
    subprocess.run([sys.executable, '-m', 'venv', venv], check=True)
    pip = [path, '-m', 'pip', 'install', '-q', '--disable-pip-version-check']
    subprocess.run([*pip, os.environ.get('PEER_TORCH', 'torch')], check=True)
    subprocess.run([*pip, *PEER_PACKAGES], check=True)
    return path


def _split_arrays(records_dir: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """One-hot (N, 4, L) float32 and counts (N, 2, L) of a split's centred windows, as
    bpnet-lite takes them (channels first)."""
    from bpnet_tfx.records import dataset as data
    from bpnet_tfx.records import schema

    info = schema.RecordsInfo.load(records_dir)
    xs, ys = [], []
    for batch in data.make_eval_dataset(records_dir, info, split, batch_size=256):
        xs.append(batch['one_hot'].numpy().astype(np.float32).transpose(0, 2, 1))
        ys.append(batch['profile'].numpy()[:, :, 0, :].transpose(0, 2, 1))
    return np.concatenate(xs), np.concatenate(ys)


def _motif_labels(windows, sites_path: str) -> np.ndarray:
    """(N, L) True where a planted motif covers the base."""
    import pandas as pd

    sites = pd.read_csv(sites_path, sep='\t')
    length = windows[0].end - windows[0].start
    labels = np.zeros((len(windows), length), bool)
    for i, w in enumerate(windows):
        here = sites[
            (sites['#chrom'] == w.chrom) & (sites['start'] < w.end) & (sites['end'] > w.start)
        ]
        for start, end in zip(here['start'], here['end']):
            labels[i, max(start - w.start, 0) : end - w.start] = True
    return labels


def _auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U over ranks, ties averaged)."""
    from scipy import stats

    labels, ranks = labels.ravel(), stats.rankdata(scores.ravel())
    pos = int(labels.sum())
    neg = labels.size - pos
    return float((ranks[labels].sum() - pos * (pos + 1) / 2) / (pos * neg))


def _train_settings(saved_model: str, args) -> dict:
    """The peer's training settings: the export's own (model size, train_config.json)."""
    from bpnet_tfx.inference import export

    _, config = export.load_export_info(saved_model)
    train_config = os.path.join(os.path.dirname(os.path.abspath(saved_model)), 'train_config.json')
    with open(train_config) as f:
        ours = json.load(f)
    return {
        'epochs': args.peer_epochs or ours['epochs'],
        'our_epochs': ours['epochs'],
        'batch_size': ours['batch_size'],
        'learning_rate': ours['learning_rate'],
        'counts_loss_weight': float(np.ravel(ours['counts_loss_weight'])[0]),
        'filters': config.filters,
        'layers': config.num_dilated_layers,
        'seed': args.seed,
        'records_dir': os.path.abspath(args.records_dir),
    }


def _run_peer(python: str, command: str, work: str) -> dict:
    proc = subprocess.run(
        [python, os.path.join(REPO, 'benchmarks', 'peer_bpnet_lite.py'), command, work],
        capture_output=True,
        text=True,
    )
    if proc.returncode:
        sys.exit(f'bench_contrib: the peer failed ({command}):\n{proc.stderr[-3000:]}')
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _peer(args, settings: dict, explain_x: np.ndarray) -> tuple[dict, dict]:
    """Trains the peer (unless a model with these settings is in --peer_dir), explains
    `explain_x` (N, L, 4); returns (seconds per head, observed attributions (N, L) per head)."""
    python = _peer_python(args.peer_python)
    work = os.path.abspath(args.peer_dir)
    os.makedirs(work, exist_ok=True)
    stamp = os.path.join(work, 'settings.json')
    trained = os.path.exists(os.path.join(work, 'bpnet.torch')) and os.path.exists(stamp)
    if trained:
        with open(stamp) as f:
            trained = json.load(f) == settings
    train_x, train_y = _split_arrays(args.records_dir, 'train')
    valid_x, valid_y = _split_arrays(args.records_dir, 'valid')
    explain = {
        **settings,
        'num_shuffles': args.num_shuffles,
        'pairs_per_call': max(1, args.batch_size // 2),
    }
    np.savez(
        os.path.join(work, 'data.npz'),
        train_x=train_x,
        train_y=train_y,
        valid_x=valid_x,
        valid_y=valid_y,
        explain_x=np.ascontiguousarray(explain_x.transpose(0, 2, 1)),
        settings=json.dumps(explain),
    )
    if not trained or args.retrain_peer:
        print(f'bench_contrib: training the peer ({settings["epochs"]} epochs)', file=sys.stderr)
        train = _run_peer(python, 'train', work)
        print(f'bench_contrib: peer trained in {train["train_seconds"]:.0f} s', file=sys.stderr)
        with open(stamp, 'w') as f:
            json.dump(settings, f)
    timing = _run_peer(python, 'explain', work)
    attributions = np.load(os.path.join(work, 'attributions.npz'))
    observed = {h: attributions[h].sum(axis=1) for h in ('profile', 'counts')}
    return timing, observed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    demo = os.path.join(REPO, 'demo_output')
    parser.add_argument('--saved_model', default=os.path.join(demo, 'model', 'export'))
    parser.add_argument('--records_dir', default=os.path.join(demo, 'records'))
    parser.add_argument('--motif_sites', help='default: motif_sites.tsv beside the FASTA')
    parser.add_argument('--windows', type=int, default=200, help='Validation windows.')
    parser.add_argument('--num_shuffles', type=int, default=20, help='References a window.')
    parser.add_argument('--batch_size', type=int, default=128, help='Model inputs a call.')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--peer_python', default=os.path.join(REPO, '.peer-venv', 'bin', 'python'))
    parser.add_argument('--peer_dir', default=os.path.join(demo, 'peer'))
    parser.add_argument('--retrain_peer', action='store_true')
    parser.add_argument(
        '--peer_epochs',
        type=int,
        default=0,
        help="Train the peer this many epochs instead of the export's (its speed does not "
        'depend on it; its auROC does, so the table says so).',
    )
    args = parser.parse_args()
    for path in (args.saved_model, args.records_dir):
        if not os.path.isdir(path):
            sys.exit(f'bench_contrib: {path} not found; run `bash scripts/demo.sh` first')

    from bpnet_tfx.attribution import contributions
    from bpnet_tfx.records import schema

    info = schema.RecordsInfo.load(args.records_dir)
    sites = args.motif_sites or os.path.join(
        os.path.dirname(info.source['fasta']), 'motif_sites.tsv'
    )
    with tempfile.TemporaryDirectory() as tmp:
        ours = contributions.compute_contributions(
            args.saved_model,
            os.path.join(tmp, 'contrib'),
            records_dir=args.records_dir,
            max_regions=args.windows,
            num_shuffles=args.num_shuffles,
            batch_size=args.batch_size,
            seed=args.seed,
        )
        result = contributions.load_outputs(ours['output_dir'])
    n = len(result['windows'])
    labels = _motif_labels(result['windows'], sites)
    ours_observed = {h: (result['hyp'][h] * result['one_hot']).sum(-1) for h in result['hyp']}
    settings = _train_settings(args.saved_model, args)
    timing, peer_observed = _peer(args, settings, result['one_hot'])

    rows = [
        {
            'tool': 'bpnet_tfx contrib --method=deepshap',
            'heads': 'profile + counts',
            'windows_per_second': n / ours['seconds'],
            'auroc': {h: _auroc(labels, np.abs(v)) for h, v in ours_observed.items()},
        }
    ]
    for head in ('counts', 'profile'):
        rows.append(
            {
                'tool': 'tangermeme deep_lift_shap, bpnet-lite',
                'heads': head,
                'windows_per_second': n / timing['seconds'][head],
                'auroc': {head: _auroc(labels, np.abs(peer_observed[head]))},
            }
        )
    best_peer = max(r['windows_per_second'] for r in rows[1:])
    ratio = rows[0]['windows_per_second'] / best_peer
    print(
        f'{n} validation windows of {args.records_dir}, {args.num_shuffles} shuffled references, '
        f'{args.batch_size} model inputs a call, CPU ({os.cpu_count()} cores), '
        f'peer torch {timing["torch"]} ({timing["threads"]} threads), peer trained '
        f'{settings["epochs"]} epochs, ours {settings["our_epochs"]}'
    )
    print(f"{'tool':40s} {'heads':18s} {'windows/s':>10s}   planted-motif auROC")
    for r in rows:
        auroc = ', '.join(f'{h} {v:.4f}' for h, v in r['auroc'].items())
        print(f"{r['tool']:40s} {r['heads']:18s} {r['windows_per_second']:10.2f}   {auroc}")
    print(f'ours (both heads) / peer (its faster head): {ratio:.2f}x')
    print(
        json.dumps(
            {
                'benchmark': 'bench_contrib',
                'machine': platform.machine(),
                'cpus': os.cpu_count(),
                'windows': n,
                'num_shuffles': args.num_shuffles,
                'batch_size': args.batch_size,
                'peer_training': settings,
                'results': rows,
                'ratio': round(ratio, 3),
            }
        )
    )


if __name__ == '__main__':
    main()
