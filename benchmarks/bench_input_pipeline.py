"""Record decoding per core, input pipeline against the training step, records against
in-RAM arrays, and memory.

    .venv/bin/python benchmarks/bench_input_pipeline.py [--parts=decode,pipeline,memory]

Measured in one run:
  0. (decode) records of schema version 1 against version 2 in two regimes (1000 bp single
     task; 2114 -> 1000 with four tasks and controls): training input pipeline examples/s on
     one CPU core, decoded bytes per example and shard bytes (decode_regimes.py). Targets:
     version 2 >= 4x (four-task regime) and >= 2x (single task) examples/s per core, shards
     >= 2x smaller.
On synthetic records of the reference shape (1000 bp, 2 strands):
  1. examples/s of the input pipeline alone (list, interleave, parse, batch, jitter + reverse
     complement) against the model's training step alone (one fixed batch already in memory),
     at the same batch size. Target: pipeline >= 20x the step, so it never starves the model.
  2. end-to-end training examples/s from records (bpnet_tfx.training.trainer) against the reference
     notebook's way: numpy arrays in RAM passed to Keras `model.fit`, same model and batch.
     Target: >= 1.0x.
  3. peak RSS of a training process reading 100,000 records against one reading 10,000
     (fixed number of steps). Target: <= 1.2x (the notebook's arrays grow linearly).
Prints a readable row per measurement and one JSON line at the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import common  # noqa: E402  (benchmarks/ is on sys.path when run as a script)
from common import LENGTH, write_records  # noqa: E402


def _config(records_dir, model_dir, batch_size, **kw):
    from bpnet_tfx.modeling import model as model_lib
    from bpnet_tfx.training import trainer

    return trainer.TrainConfig(
        records_dir=records_dir,
        model_dir=model_dir,
        export_dir=os.path.join(model_dir, 'export'),
        model=model_lib.ModelConfig(sequence_length=LENGTH),
        batch_size=batch_size,
        **kw,
    )


def bench_speed(records_dir: str, batch_size: int, steps: int) -> dict:
    import keras
    import tensorflow as tf

    from bpnet_tfx.modeling import model as model_lib
    from bpnet_tfx.records import dataset as data
    from bpnet_tfx.records import schema
    from bpnet_tfx.training import trainer

    info = schema.RecordsInfo.load(records_dir)
    result = {}

    # 1a. The input pipeline alone (includes augmentation, as in training).
    cfg = _config(
        records_dir,
        tempfile.mkdtemp(),
        batch_size,
        precision='float32',
        input_benchmark_batches=max(steps * 4, 40),
    )
    result['pipeline_examples_per_second'] = trainer.measure_input_pipeline(cfg, info)

    # 1b. The training step alone, on one batch already in memory.
    batch = next(
        iter(data.make_dataset(records_dir, info, 'train', batch_size=batch_size, training=False))
    )
    strategy = trainer.make_strategy('auto')
    keras.mixed_precision.set_global_policy('float32')
    with strategy.scope():
        model = model_lib.build_bpnet(cfg.model)
        optimizer = keras.optimizers.Adam(1e-3)
        optimizer.build(model.trainable_variables)
    train_step, _ = trainer.make_step_functions(
        strategy,
        model,
        optimizer,
        dataclasses.replace(cfg, jitter=False, reverse_complement=False),
        info,
    )
    fixed = strategy.distribute_datasets_from_function(
        lambda ctx: tf.data.Dataset.from_tensors(batch).repeat()
    )
    it = iter(fixed)
    train_step(it, tf.constant(0, tf.int64))
    start = time.perf_counter()
    for i in range(steps):
        train_step(it, tf.constant(i, tf.int64))
    result['step_examples_per_second'] = steps * batch_size / (time.perf_counter() - start)

    # 2a. End to end from records with our loop (timed epochs exclude validation).
    # float32 like the notebook, so the two differ only in how the data arrive (our default
    # precision on this CPU, mixed_bfloat16, is compared in bench_train.py).
    model_dir = tempfile.mkdtemp()
    summary = trainer.train(
        _config(
            records_dir,
            model_dir,
            batch_size,
            epochs=2,
            steps_per_epoch=steps,
            input_benchmark_batches=0,
            shuffle_buffer=2000,
            precision='float32',
        ),
        info,
    )
    result['ours_examples_per_second'] = summary['examples_per_second']

    # 2b. The reference notebook's way: every example as float32 arrays in RAM, model.fit.
    result['notebook_examples_per_second'] = common.notebook_fit_rate(
        records_dir, batch_size, steps
    )
    return result


_MEMORY_CHILD = '''
import resource, sys
sys.path.insert(0, sys.argv[3])
from bpnet_tfx.modeling import model as model_lib
from bpnet_tfx.records import schema
from bpnet_tfx.training import trainer
info = schema.RecordsInfo.load(sys.argv[1])
cfg = trainer.TrainConfig(records_dir=sys.argv[1], model_dir=sys.argv[2],
    export_dir=sys.argv[2] + '/export', model=model_lib.ModelConfig(sequence_length=1000),
    batch_size=64, epochs=1, steps_per_epoch=int(sys.argv[4]), input_benchmark_batches=0)
trainer.train(cfg, info)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
'''


def bench_memory(sizes: list[int], steps: int, workdir: str) -> dict:
    out = {}
    for n in sizes:
        records = os.path.join(workdir, f'records_{n}')
        t0 = time.perf_counter()
        write_records(records, n)
        print(f'  wrote {n:,} records in {time.perf_counter() - t0:.0f} s', flush=True)
        proc = subprocess.run(
            [
                sys.executable,
                '-c',
                _MEMORY_CHILD,
                records,
                os.path.join(workdir, f'model_{n}'),
                REPO,
                str(steps),
            ],
            capture_output=True,
            text=True,
            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2'),
        )
        if proc.returncode:
            raise RuntimeError(proc.stderr[-3000:])
        out[n] = int(proc.stdout.strip().splitlines()[-1]) / 1024  # KiB -> MiB
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--examples', type=int, default=4096, help='Records for the speed runs.')
    parser.add_argument('--batch_size', type=int, default=64, help='Batch size of every run.')
    parser.add_argument('--steps', type=int, default=15, help='Timed training steps per run.')
    parser.add_argument(
        '--memory_sizes',
        default='10000,100000',
        help="Record counts for the memory runs; '' to skip.",
    )
    parser.add_argument(
        '--memory_steps', type=int, default=40, help='Training steps of each memory run.'
    )
    parser.add_argument(
        '--parts',
        default='decode,pipeline,memory',
        help='Comma-separated parts to run: decode (v1 vs v2 per core), pipeline (speed '
        'against the step and the notebook), memory.',
    )
    parser.add_argument(
        '--decode_batches', type=int, default=150, help='Timed batches per decode measurement.'
    )
    parser.add_argument(
        '--decode_rounds', type=int, default=3, help='Alternating v1/v2 rounds (median).'
    )
    args = parser.parse_args()
    parts = set(args.parts.split(','))
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    workdir = tempfile.mkdtemp(prefix='bench_input_')
    result = {'benchmark': 'input_pipeline'}
    if 'decode' in parts:
        result['decode'] = bench_decode(workdir, args.batch_size, args)
    if 'pipeline' in parts:
        result.update(_bench_pipeline(workdir, args))
    if 'memory' in parts:
        result.update(_bench_rss(workdir, args))
    print(json.dumps(result, sort_keys=True))


def bench_decode(workdir: str, batch_size: int, args) -> dict:
    import statistics

    import decode_regimes as dr

    out = {}
    print(
        f'{"decode (one core, batch " + str(batch_size) + ")":34s} {"ex/s":>9s} {"B/example":>10s}'
    )
    for regime in dr.REGIMES:
        records = {v: dr.make_records(workdir, regime, v) for v in (1, 2)}
        runs = {'v1': [], 'v2': [], 'v2 host-finished': []}
        nbytes = {}
        for _ in range(args.decode_rounds):
            for name, version, finish in (
                ('v1', 1, 'device'),
                ('v2', 2, 'device'),
                ('v2 host-finished', 2, 'host'),
            ):
                r = dr.measure(
                    records[version],
                    batches=args.decode_batches,
                    batch_size=batch_size,
                    core=0,
                    finish=finish,
                )
                runs[name].append(r['examples_per_cpu_second'])
                nbytes[name] = r['decoded_bytes']
        row = {name: statistics.median(v) for name, v in runs.items()}
        sizes = {v: dr.shard_bytes(records[v]) for v in (1, 2)}
        for name, rate in row.items():
            print(f'{regime.name + " " + name:34s} {rate:9.0f} {nbytes[name]:10.0f}')
        speedup = row['v2'] / row['v1']
        print(f'{regime.name + " v2 / v1 per core":34s} {speedup:9.2f}x')
        print(
            f'{regime.name + " shard bytes v1 / v2":34s} {sizes[1] / sizes[2]:9.2f}x '
            f'({sizes[1]:,} / {sizes[2]:,})'
        )
        from bpnet_tfx.records import schema

        info = schema.RecordsInfo.load(records[2])
        out[regime.name] = {
            'examples_per_second': row,
            'rounds': runs,
            'decoded_bytes': nbytes,
            'speedup': speedup,
            'shard_bytes': {'v1': sizes[1], 'v2': sizes[2]},
            'encodings': info.track_encodings,
            'records': info.split_counts,
        }
    return out


def _bench_pipeline(workdir: str, args) -> dict:
    records = os.path.join(workdir, 'records')
    write_records(records, args.examples)
    speed = bench_speed(records, args.batch_size, args.steps)
    pipe_vs_step = speed['pipeline_examples_per_second'] / speed['step_examples_per_second']
    ours_vs_nb = speed['ours_examples_per_second'] / speed['notebook_examples_per_second']
    machine = f'{platform.machine()}, {os.cpu_count()} cores'
    print(f'machine: {machine}; batch {args.batch_size}; model: reference BPNet (1000 bp)')
    print(f'{"measurement":52s} {"examples/s":>12s}')
    for key in (
        'pipeline_examples_per_second',
        'step_examples_per_second',
        'ours_examples_per_second',
        'notebook_examples_per_second',
    ):
        print(f'{key:52s} {speed[key]:12.1f}')
    print(f'{"pipeline / training step (target >= 20)":52s} {pipe_vs_step:12.1f}x')
    print(f'{"records loop / notebook model.fit (target >= 1.0)":52s} {ours_vs_nb:12.2f}x')
    return {
        'machine': machine,
        'batch_size': args.batch_size,
        **speed,
        'pipeline_over_step': pipe_vs_step,
        'ours_over_notebook': ours_vs_nb,
    }


def _bench_rss(workdir: str, args) -> dict:
    result = {}
    sizes = [int(s) for s in args.memory_sizes.split(',') if s]
    if sizes:
        rss = bench_memory(sizes, args.memory_steps, workdir)
        for n, mib in rss.items():
            print(f'{f"peak RSS training on {n:,} records":52s} {mib:10.0f} MiB')
        if len(sizes) >= 2:
            ratio = rss[sizes[-1]] / rss[sizes[0]]
            print(f'{f"RSS {sizes[-1]:,} / {sizes[0]:,} (target <= 1.2)":52s} {ratio:12.2f}x')
            result['rss_ratio'] = ratio
        result['peak_rss_mib'] = {str(k): v for k, v in rss.items()}
    return result


if __name__ == '__main__':
    main()
