"""Helpers shared by the benchmark scripts: synthetic records and the notebook baseline."""

from __future__ import annotations

import os
import subprocess
import time

import numpy as np

LENGTH, JITTER = 1000, 0
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_command(args: list[str], *, quiet: bool = False) -> float:
    """Runs a command in the repository (TensorFlow's C++ logs off), echoing it first; stops
    on failure. Returns its wall seconds. `quiet` drops its stdout (stderr still shows)."""
    print('$ ' + ' '.join(args), flush=True)
    start = time.perf_counter()
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONUNBUFFERED='1')
    stdout = subprocess.DEVNULL if quiet else None
    subprocess.run(args, check=True, cwd=REPO, env=env, stdout=stdout)
    return time.perf_counter() - start


def write_records(path: str, n: int, *, unique: int = 5000, seed: int = 0) -> None:
    """n records (train) + 256 (valid); `unique` distinct windows, repeated to reach n."""
    import tensorflow as tf

    from bpnet_tfx.records import codec, schema

    rng = np.random.default_rng(seed)
    os.makedirs(path, exist_ok=True)
    stored = LENGTH + 2 * JITTER
    pool = []
    for i in range(min(unique, n)):
        one_hot = np.eye(4, dtype=np.uint8)[rng.integers(0, 4, stored)]
        profile = rng.poisson(0.25, (stored, 1, 2)).astype(np.float32)
        pool.append((one_hot, profile))
    counts = {'train': n, 'valid': 256}
    shards = {'train': max(1, n // 2000), 'valid': 1}
    for split, count in counts.items():
        writers = [
            tf.io.TFRecordWriter(
                os.path.join(path, schema.shard_filename(split, s, shards[split])),
                options=schema.COMPRESSION,
            )
            for s in range(shards[split])
        ]
        for i in range(count):
            one_hot, profile = pool[i % len(pool)]
            writers[i % len(writers)].write(
                codec.encode_record(
                    f'chrB:{i * stored}-{(i + 1) * stored}', 'chrB', i * stored, one_hot, profile
                )
            )
        for w in writers:
            w.close()
    schema.RecordsInfo(
        sequence_length=LENGTH,
        max_jitter=JITTER,
        tasks=('bench',),
        split_counts=counts,
        num_shards=shards,
        median_total_counts=(500.0,),
        source={'made_by': 'benchmarks/bench_input_pipeline.py'},
    ).save(path)


def notebook_fit_rate(
    records_dir: str,
    batch_size: int,
    steps: int,
    *,
    counts_loss_weight: float = 10.0,
    stock_layers: bool = True,
) -> float:
    """Examples/s of the reference notebook's way: every example as float32 numpy arrays in
    RAM, passed to Keras `model.fit` (float32), on the same model and batch size, built as
    the notebook builds it from stock keras.layers.Conv1D (`stock_layers=False`: with
    bpnet_tfx's faster Conv1D instead, which isolates the gain of the training loop).

    The arrays hold `steps` batches; one warm-up epoch, then one timed epoch.
    """
    import keras

    from bpnet_tfx.modeling import losses
    from bpnet_tfx.modeling import model as model_lib
    from bpnet_tfx.records import dataset as data
    from bpnet_tfx.records import schema

    info = schema.RecordsInfo.load(records_dir)
    n = steps * batch_size
    xs, ys = [], []
    for b in data.make_dataset(
        records_dir, info, 'train', batch_size=batch_size, training=False
    ).take(steps):
        xs.append(b['one_hot'].numpy().astype(np.float32))
        ys.append(b['profile'].numpy()[:, :, 0, :])
    x, y = np.concatenate(xs)[:n], np.concatenate(ys)[:n]
    targets = {'profile': y, 'log_counts': np.log1p(y.sum(axis=1))}
    keras.utils.set_random_seed(0)
    model = model_lib.build_bpnet(
        model_lib.ModelConfig(sequence_length=info.sequence_length), stock_layers=stock_layers
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss={'profile': losses.MultinomialNLL(), 'log_counts': losses.LogCountsMSE()},
        loss_weights={'profile': 1.0, 'log_counts': counts_loss_weight},
    )
    model.fit(x, targets, batch_size=batch_size, epochs=1, verbose=0)  # warm-up epoch
    start = time.perf_counter()
    model.fit(x, targets, batch_size=batch_size, epochs=1, verbose=0)
    return len(x) / (time.perf_counter() - start)
