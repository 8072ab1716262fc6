"""Contribution scores side by side: our DeepSHAP against bpnet-lite's (tangermeme's
deep_lift_shap with bpnet-lite's rules), windows/s in interleaved pairs under common.py's
protocol, and planted-motif auROC, on the same windows with the same references per window.

    bash scripts/demo.sh      # the demo's records and model
    .venv/bin/python -m benchmarks.bench_contrib [--windows=200 --num_shuffles=10]

1. Ours: `contributions.compute_contributions` (what `python -m bpnet_tfx.contrib` runs) with
   --method=deepshap on the first --windows validation windows of the records, both heads,
   each call timed whole (export loading, tracing, references and writing the folder
   included). Each run also times the same call on the first window alone, so the rate per
   window beyond the first (the 'marginal' rate, what the peer's timing measures) is
   (windows - 1) / (whole - one window); the target is on that rate, the whole call's
   rate is reported beside it.
2. The peer: bpnet-lite's BPNet of the same size (64 filters, 9 dilated layers, or whatever
   the export's model_config.json says) trained by bpnet-lite's own `fit` on the same records
   (train split, validation split for its best-epoch choice) for as many epochs, at the same
   batch size, learning rate and counts loss weight as the export's train_config.json; then
   `bpnetlite.attribute.deep_lift_shap` (tangermeme's, with bpnet-lite's profile logit
   scaling registered, as bpnet-lite calls it; float32, --num_shuffles dinucleotide shuffles
   like ours, the same model inputs per call) on the same windows, each head timed on its own
   after an untimed call on one window (the shuffle's JIT and torch's start-up), warnings
   on. The peer's scores must be complete (summed
   scores within 1% of the output differences to the references, and no tangermeme
   convergence warning of 1% or more), or the benchmark stops: wrong scores are no speed to
   compare against. It runs in a separate venv (--peer_python, default .peer-venv/, created
   on first use with torch, bpnet-lite and tangermeme; PEER_TORCH=<requirement or wheel> picks
   the torch build), never the project's. The trained peer is kept in --peer_dir and reused
   while its settings match.
3. Planted-motif auROC per tool and head (from the last pair's scores): |observed-base
   contribution| of every position of the windows, labelled by the simulator's motif sites
   (motif_sites.tsv beside the demo's FASTA).

Prints a line per pair, the table (targets: ours for both heads, per window after the
first, >= 2.5x the peer's faster head) and one JSON line with the auROCs (ours: profile >= 0.99).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

from benchmarks import common

REPO = common.REPO
PEER_PACKAGES = ('bpnet-lite==1.1.0', 'tangermeme==1.6.0')
MAX_CONVERGENCE_DELTA = 0.01  # the peer's summed scores against its output differences


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
        [python, os.path.join(REPO, 'benchmarks', 'peers', 'bpnet_lite.py'), command, work],
        capture_output=True,
        text=True,
    )
    if proc.returncode:
        sys.exit(f'bench_contrib: the peer failed ({command}):\n{proc.stderr[-3000:]}')
    sys.stderr.write(proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _prepare_peer(args, settings: dict, explain_x: np.ndarray) -> tuple[str, str]:
    """Writes the peer's data (explain_x (N, L, 4) channels first), trains the peer unless a
    model with these settings is in --peer_dir; returns (its python, its work folder)."""
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
        'threads': args.peer_threads,
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
    return python, work


def _check_peer(heads: dict, num_shuffles: int) -> None:
    """Stops unless the peer's scores are complete and used the same references as ours."""
    for head, h in heads.items():
        if h['references'] != num_shuffles:
            sys.exit(
                f'bench_contrib: error: the peer used {h["references"]} references a window for '
                f'its {head} head, ours {num_shuffles}'
            )
        worst = max(h['completeness_delta'], h['tangermeme_relative_delta_max'])
        if worst >= MAX_CONVERGENCE_DELTA:
            sys.exit(
                f'bench_contrib: error: the peer\'s {head} scores miss their output differences '
                f'by {worst:.1%} (at most {MAX_CONVERGENCE_DELTA:.0%}): check that bpnet-lite '
                "registers its profile rule (bpnetlite.attribute); its speed is not comparable"
            )


def _peer_arm(python: str, work: str, num_shuffles: int, n: int, checks: list):
    """One peer run (both heads, each timed); its facts appended to `checks`."""

    def run() -> dict:
        out = _run_peer(python, 'explain', work)
        _check_peer(out['heads'], num_shuffles)
        checks.append(out)
        rates = {h: n / v['seconds'] for h, v in out['heads'].items()}
        both = n / sum(v['seconds'] for v in out['heads'].values())
        return {**rates, 'faster': max(rates.values()), 'both': both}

    return run


def _ours_arm(args, tmp: str, outputs: list):
    """One run of ours (both heads): the whole call on the windows, and the same on their
    first window alone; windows/s of the whole call ('value') and per window beyond the
    first ('marginal': what the peer's timing, after its untimed call on one window,
    measures). The output folder of the whole call is appended to `outputs`."""
    from bpnet_tfx.attribution import contributions

    def call(windows: int) -> dict:
        return contributions.compute_contributions(
            args.saved_model,
            os.path.join(tempfile.mkdtemp(dir=tmp), 'contrib'),
            records_dir=args.records_dir,
            max_regions=windows,
            num_shuffles=args.num_shuffles,
            batch_size=args.batch_size,
            seed=args.seed,
        )

    def run() -> dict:
        one, whole = call(1), call(args.windows)
        outputs.append(whole['output_dir'])
        n = whole['regions']
        return {
            'value': n / whole['seconds'],
            'marginal': (n - 1) / (whole['seconds'] - one['seconds']),
            'seconds': whole['seconds'],
            'one_window_seconds': one['seconds'],
        }

    return run


def _flags() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    demo = os.path.join(REPO, 'demo_output')
    parser.add_argument(
        '--saved_model', default=os.path.join(demo, 'model', 'export'), help='Our export.'
    )
    parser.add_argument(
        '--records_dir', default=os.path.join(demo, 'records'), help="The export's records."
    )
    parser.add_argument(
        '--motif_sites', help='Planted sites; default motif_sites.tsv beside the FASTA.'
    )
    parser.add_argument('--windows', type=int, default=200, help='Validation windows.')
    parser.add_argument(
        '--num_shuffles',
        type=int,
        default=10,
        help="Dinucleotide-shuffled references a window, ours and the peer's alike.",
    )
    parser.add_argument('--batch_size', type=int, default=128, help='Model inputs a call.')
    parser.add_argument('--seed', type=int, default=0, help='Seed of the references.')
    parser.add_argument(
        '--peer_python',
        default=os.path.join(REPO, '.peer-venv', 'bin', 'python'),
        help="The peer venv's python (created when missing).",
    )
    parser.add_argument(
        '--peer_threads', type=int, default=0, help="Torch threads of the peer (0: torch's)."
    )
    parser.add_argument(
        '--peer_dir', default=os.path.join(demo, 'peer'), help='Where the trained peer is kept.'
    )
    parser.add_argument('--retrain_peer', action='store_true', help='Train the peer again.')
    parser.add_argument(
        '--peer_epochs',
        type=int,
        default=0,
        help="Train the peer this many epochs instead of the export's (its speed does not "
        'depend on it; its auROC does, so the JSON says so).',
    )
    common.add_protocol_flags(parser)
    return parser


def _aurocs(args, our_dir: str, peer_work: str) -> dict:
    """Planted-motif auROC of |observed contribution| per tool and head."""
    from bpnet_tfx.attribution import contributions
    from bpnet_tfx.records import schema

    info = schema.RecordsInfo.load(args.records_dir)
    sites = args.motif_sites or os.path.join(
        os.path.dirname(info.source['fasta']), 'motif_sites.tsv'
    )
    result = contributions.load_outputs(our_dir)
    labels = _motif_labels(result['windows'], sites)
    ours = {h: (result['hyp'][h] * result['one_hot']).sum(-1) for h in result['hyp']}
    peer = np.load(os.path.join(peer_work, 'attributions.npz'))
    return {
        'ours': {h: _auroc(labels, np.abs(v)) for h, v in ours.items()},
        'peer': {h: _auroc(labels, np.abs(peer[h].sum(axis=1))) for h in ('profile', 'counts')},
    }


def _windows(args) -> np.ndarray:
    """The one-hot (N, L, 4) of the windows both tools explain: ours, read back from a run."""
    from bpnet_tfx.attribution import contributions

    with tempfile.TemporaryDirectory() as tmp:
        outputs = []
        _ours_arm(args, tmp, outputs)()
        return contributions.load_outputs(outputs[0])['one_hot']


def main() -> None:
    args = _flags().parse_args()
    for path in (args.saved_model, args.records_dir):
        if not os.path.isdir(path):
            sys.exit(f'bench_contrib: error: {path} not found; run `bash scripts/demo.sh` first')
    settings = _train_settings(args.saved_model, args)
    one_hot = _windows(args)  # also our untimed warm-up
    n = len(one_hot)
    python, work = _prepare_peer(args, settings, one_hot)
    outputs, checks = [], []
    with tempfile.TemporaryDirectory() as tmp:
        # Untimed: preparing the peer (its training, in another process) evicts what our
        # first call had warmed; without this the first pair's 'ours' is the slowest of all.
        _ours_arm(args, tmp, [])()
        print(
            f'{n} validation windows, {args.num_shuffles} references each, {args.batch_size} '
            f'model inputs a call; peer trained {settings["epochs"]} epochs, ours '
            f'{settings["our_epochs"]}',
            flush=True,
        )
        arms = {
            'ours': _ours_arm(args, tmp, outputs),
            'peer': _peer_arm(python, work, args.num_shuffles, n, checks),
        }
        ratios = [
            common.Ratio(
                'ours (both heads) / peer faster head, per window after the first',
                'ours.marginal',
                'peer.faster',
                '>= 2.5x',
            ),
            common.Ratio('ours (both heads), whole call / peer faster head', 'ours', 'peer.faster'),
            common.Ratio(
                'ours (both heads) / peer both heads, per window after the first',
                'ours.marginal',
                'peer.both',
            ),
        ]
        result = common.compare(arms, ratios, common.protocol_from_args(args))
        aurocs = _aurocs(args, outputs[-1], work)
    print(
        'planted-motif auROC: '
        + '; '.join(
            f'{tool} ' + ', '.join(f'{h} {v:.4f}' for h, v in heads.items())
            for tool, heads in aurocs.items()
        )
    )
    common.report(
        'bench_contrib',
        {'contrib': result},
        windows=n,
        num_shuffles=args.num_shuffles,
        batch_size=args.batch_size,
        peer_training=settings,
        peer={k: checks[-1][k] for k in ('torch', 'threads')},
        peer_heads=[c['heads'] for c in checks],
        auroc=aurocs,
    )


if __name__ == '__main__':
    main()
