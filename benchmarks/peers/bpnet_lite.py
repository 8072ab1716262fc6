"""The peer side of bench_contrib: bpnet-lite's BPNet trained by its own `fit`, explained by
tangermeme's `deep_lift_shap`. Runs in the peer's own venv (torch, bpnet-lite, tangermeme),
never in the project's:

    .peer-venv/bin/python benchmarks/peers/bpnet_lite.py train WORK_DIR
    .peer-venv/bin/python benchmarks/peers/bpnet_lite.py explain WORK_DIR

WORK_DIR/data.npz (written by bench_contrib from the records) holds train_x (N, 4, L) one-hot,
train_y (N, 2, L) counts, valid_x/valid_y, explain_x (the windows to explain) and the training
settings (epochs, batch_size, learning_rate, counts_loss_weight, filters, layers, seed).
`train` writes WORK_DIR/bpnet.torch (the epoch with the best validation loss, as bpnet-lite
keeps it); `explain` runs bpnet-lite's own `bpnetlite.attribute.deep_lift_shap` (tangermeme's,
with bpnet-lite's rules for its profile logit scaling registered, as bpnet-lite's users call it)
per head with warnings on, after an untimed call on one window, writes WORK_DIR/attributions.npz
(observed-base DeepLIFT/SHAP per head, N x 4 x L) and prints one JSON line: per head the
seconds, the references used, the completeness delta of the averaged scores and tangermeme's
own relative-delta warnings.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
import warnings


def _settings(data) -> dict:
    return json.loads(str(data['settings']))


class _WithLabels:
    """bpnet-lite's DataGenerator (random windows, reverse-complement augmentation) whose
    examples carry the peak label that `BPNet.fit` expects last."""

    def __init__(self, generator):
        self.generator = generator

    def __len__(self):
        return len(self.generator)

    def __getitem__(self, idx):
        x, y = self.generator[idx]
        return x, y, 1


def train(work: str) -> None:
    import numpy as np
    import torch
    from bpnetlite.bpnet import BPNet
    from bpnetlite.io import DataGenerator

    data = np.load(os.path.join(work, 'data.npz'))
    s = _settings(data)
    torch.manual_seed(s['seed'])
    x, y = torch.tensor(data['train_x']), torch.tensor(data['train_y'])
    length = x.shape[-1]
    generator = DataGenerator(
        x,
        y,
        in_window=length,
        out_window=length,
        max_jitter=0,
        reverse_complement=True,
        random_state=s['seed'],
    )
    loader = torch.utils.data.DataLoader(_WithLabels(generator), batch_size=s['batch_size'])
    model = BPNet(
        n_filters=s['filters'],
        n_layers=s['layers'],
        n_outputs=2,
        n_control_tracks=0,
        count_loss_weight=s['counts_loss_weight'],
        trimming=0,
        name=os.path.join(work, 'bpnet'),
        verbose=False,
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=s['learning_rate'])
    start = time.perf_counter()
    model.fit(
        loader,
        optimizer,
        X_valid=torch.tensor(data['valid_x']),
        y_valid=torch.tensor(data['valid_y']),
        max_epochs=s['epochs'],
        batch_size=s['batch_size'],
        dtype='float32',
        device='cpu',
    )
    print(json.dumps({'train_seconds': time.perf_counter() - start}))


def _completeness(wrapper, x, attributions, references) -> float:
    """How far the summed scores are from what DeepLIFT/SHAP promises: the mean over windows
    of |sum of observed-base scores - (f(x) - mean_j f(reference_j))|, over the mean
    |f(x) - f(reference_j)| (a fraction; untimed)."""
    import torch

    n, k = references.shape[:2]
    with torch.no_grad():
        fx = wrapper(x)[:, 0]
        flat = references.reshape(n * k, *references.shape[2:])
        fr = torch.cat([wrapper(flat[i : i + 256])[:, 0] for i in range(0, n * k, 256)])
    differences = fx[:, None] - fr.reshape(n, k)
    deltas = (attributions.sum(dim=(1, 2)) - differences.mean(dim=1)).abs()
    return float(deltas.mean() / differences.abs().mean().clamp_min(1e-12))


def _relative_delta(message: str) -> float:
    """The fraction in tangermeme's 'Convergence deltas are X% of the output differences'
    warning; 0 for any other message."""
    found = re.search(r'Convergence deltas are ([0-9.]+)% of the output differences', message)
    return float(found.group(1)) / 100 if found else 0.0


def _explain_head(wrapper, x, s) -> tuple[dict, object]:
    """bpnet-lite's own deep_lift_shap (tangermeme's, with bpnet-lite's profile logit scaling
    and log/exp rules registered) on one head, timed, warnings recorded, not silenced."""
    import torch
    from bpnetlite.attribute import deep_lift_shap

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        start = time.perf_counter()
        attr, references = deep_lift_shap(
            wrapper,
            x,
            n_shuffles=s['num_shuffles'],
            batch_size=s['pairs_per_call'],
            random_state=s['seed'],
            device='cpu',
            return_references=True,
        )
        seconds = time.perf_counter() - start
    messages = sorted({str(w.message).split(':')[0] for w in caught})
    for message in messages:
        print(f'peer: warning: {message}', file=sys.stderr)
    relative = [_relative_delta(str(w.message)) for w in caught]
    facts = {
        'seconds': seconds,
        'references': int(references.shape[1]),
        'completeness_delta': _completeness(wrapper, x, attr, references),
        'tangermeme_relative_delta_max': max(relative, default=0.0),
        'tangermeme_relative_delta_warnings': sum(r > 0 for r in relative),
        'warnings': messages,
        'dtype': str(attr.dtype).replace('torch.', ''),
    }
    assert attr.dtype == torch.float32, attr.dtype
    return facts, attr


def explain(work: str) -> None:
    import numpy as np
    import torch
    from bpnetlite.bpnet import CountWrapper, ProfileWrapper

    data = np.load(os.path.join(work, 'data.npz'))
    s = _settings(data)
    torch.set_num_threads(s.get('threads') or torch.get_num_threads())
    model = torch.load(os.path.join(work, 'bpnet.torch'), weights_only=False).eval()
    x = torch.tensor(data['explain_x'])
    out, heads = {}, {}
    for head, wrapper in (('counts', CountWrapper(model)), ('profile', ProfileWrapper(model))):
        # Untimed first call: the shuffle's JIT compilation and torch's start-up are paid
        # once a process, so neither head's time carries them (ours is timed whole).
        _explain_head(wrapper, x[:1], {**s, 'num_shuffles': 1})
        heads[head], attr = _explain_head(wrapper, x, s)
        out[head] = attr.numpy()
    np.savez(os.path.join(work, 'attributions.npz'), **out)
    result = {'heads': heads, 'torch': torch.__version__, 'threads': torch.get_num_threads()}
    print(json.dumps(result))


if __name__ == '__main__':
    {'train': train, 'explain': explain}[sys.argv[1]](sys.argv[2])
