"""The peer side of bench_contrib: bpnet-lite's BPNet trained by its own `fit`, explained by
tangermeme's `deep_lift_shap`. Runs in the peer's own venv (torch, bpnet-lite, tangermeme),
never in the project's:

    .peer-venv/bin/python benchmarks/peer_bpnet_lite.py train WORK_DIR
    .peer-venv/bin/python benchmarks/peer_bpnet_lite.py explain WORK_DIR

WORK_DIR/data.npz (written by bench_contrib from the records) holds train_x (N, 4, L) one-hot,
train_y (N, 2, L) counts, valid_x/valid_y, explain_x (the windows to explain) and the training
settings (epochs, batch_size, learning_rate, counts_loss_weight, filters, layers, seed).
`train` writes WORK_DIR/bpnet.torch (the epoch with the best validation loss, as bpnet-lite
keeps it); `explain` writes WORK_DIR/attributions.npz (observed-base DeepLIFT/SHAP per head,
N x 4 x L) and prints one JSON line with the seconds each head took.
"""

from __future__ import annotations

import json
import os
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


def explain(work: str) -> None:
    import numpy as np
    import torch
    from bpnetlite.bpnet import CountWrapper, ProfileWrapper
    from tangermeme.deep_lift_shap import deep_lift_shap

    data = np.load(os.path.join(work, 'data.npz'))
    s = _settings(data)
    model = torch.load(os.path.join(work, 'bpnet.torch'), weights_only=False).eval()
    x = torch.tensor(data['explain_x'])
    out, seconds = {}, {}
    for head, wrapper in (('counts', CountWrapper(model)), ('profile', ProfileWrapper(model))):
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            start = time.perf_counter()
            attr = deep_lift_shap(
                wrapper,
                x,
                n_shuffles=s['num_shuffles'],
                batch_size=s['pairs_per_call'],
                random_state=s['seed'],
                device='cpu',
                dtype=torch.float32,
            )
            seconds[head] = time.perf_counter() - start
        out[head] = attr.numpy()
    np.savez(os.path.join(work, 'attributions.npz'), **out)
    print(
        json.dumps(
            {'seconds': seconds, 'torch': torch.__version__, 'threads': torch.get_num_threads()}
        )
    )


if __name__ == '__main__':
    {'train': train, 'explain': explain}[sys.argv[1]](sys.argv[2])
