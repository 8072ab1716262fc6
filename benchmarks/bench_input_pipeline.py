"""Record decoding per core, input pipeline against the training step, records against
in-RAM arrays, and memory.

    .venv/bin/python -m benchmarks.bench_input_pipeline [--parts=decode,pipeline,memory]

Each part measures its arms in interleaved pairs under common.py's protocol:
  decode: records of schema version 1 against version 2 in two regimes (1000 bp single task;
     2114 -> 1000 with four tasks and controls): training input pipeline examples per
     CPU-second on one pinned core, and decoded bytes per example (decode_regimes.py); shard
     bytes once. Targets: version 2 >= 4x (four-task regime) and >= 2x (single task) per core,
     shards >= 2x smaller.
On synthetic records of the reference shape (1000 bp, 2 strands):
  pipeline: examples/s of the input pipeline alone (list, interleave, parse, batch, jitter +
     reverse complement) against the model's training step alone (one fixed batch already in
     memory), at the same batch size; target: pipeline >= 20x the step, so it never starves
     the model. And end-to-end training examples/s from records (bpnet_tfx.training.trainer,
     float32) against the reference notebook's way (numpy arrays in RAM passed to Keras
     `model.fit`), same model and batch; target >= 1.0x.
  memory: peak RSS of a training process reading 100,000 records against one reading 10,000
     (fixed number of steps), each in a fresh process; target <= 1.2x (the notebook's arrays
     grow linearly).
Prints a line per pair, the table of ratios and one JSON line.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from benchmarks import common, decode_regimes, workloads


def _pipeline_arms(records_dir: str, batch_size: int, steps: int) -> dict:
    """Input pipeline alone, training step alone, our loop from records, the notebook."""
    from bpnet_tfx.records import schema
    from bpnet_tfx.training import trainer

    info = schema.RecordsInfo.load(records_dir)
    config = workloads.train_config(
        records_dir,
        tempfile.mkdtemp(),
        batch_size,
        precision='float32',
        input_benchmark_batches=max(steps * 4, 40),
    )
    step = workloads.step_timer(config)

    def ours() -> float:
        # float32 like the notebook, so the two differ only in how the data arrive.
        summary = trainer.train(
            workloads.train_config(
                records_dir,
                tempfile.mkdtemp(),
                batch_size,
                epochs=2,
                steps_per_epoch=steps,
                input_benchmark_batches=0,
                shuffle_buffer=2000,
                precision='float32',
            ),
            info,
        )
        return summary['examples_per_second']  # timed epochs exclude validation

    return {
        'pipeline': lambda: trainer.measure_input_pipeline(config, info),
        'step': lambda: step(steps),
        'ours': ours,
        'notebook': lambda: common.notebook_fit_rate(records_dir, batch_size, steps),
    }


def _bench_pipeline(workdir: str, args, protocol: common.Protocol) -> dict:
    records = os.path.join(workdir, 'records')
    common.write_records(records, args.examples)
    print(f'pipeline: batch {args.batch_size}, reference BPNet (1000 bp)', flush=True)
    return common.compare(
        _pipeline_arms(records, args.batch_size, args.steps),
        [
            common.Ratio('input pipeline / training step', 'pipeline', 'step', '>= 20x'),
            common.Ratio('records loop / notebook model.fit', 'ours', 'notebook', '>= 1.0x'),
        ],
        protocol,
    )


def _bench_decode(workdir: str, args, protocol: common.Protocol) -> tuple[dict, dict]:
    """Per regime: v1, v2 and v2 finished on the host, examples per CPU-second on one core."""
    results, sizes = {}, {}
    targets = {'single': '>= 2x', 'paper': '>= 4x'}
    for regime in decode_regimes.REGIMES:
        records = {v: decode_regimes.make_records(workdir, regime, v) for v in (1, 2)}

        def arm(version, finish, records=records):
            def run() -> dict:
                r = decode_regimes.measure(
                    records[version],
                    batches=args.decode_batches,
                    batch_size=args.batch_size,
                    core=0,
                    finish=finish,
                )
                return {'value': r['examples_per_cpu_second'], 'bytes': r['decoded_bytes']}

            return run

        print(f'decode, {regime.name} regime (one core, batch {args.batch_size})', flush=True)
        results[regime.name] = common.compare(
            {'v1': arm(1, 'device'), 'v2': arm(2, 'device'), 'v2_host': arm(2, 'host')},
            [
                common.Ratio(
                    f'{regime.name}: v2 / v1 per core', 'v2', 'v1', targets.get(regime.name, '')
                ),
                common.Ratio(f'{regime.name}: v2 host-finished / v2', 'v2_host', 'v2'),
                common.Ratio(f'{regime.name}: decoded bytes v1 / v2', 'v1.bytes', 'v2.bytes'),
            ],
            protocol,
        )
        sizes[regime.name] = {f'v{v}': decode_regimes.shard_bytes(records[v]) for v in (1, 2)}
    return results, sizes


def _bench_rss(workdir: str, args, protocol: common.Protocol) -> dict | None:
    sizes = [int(s) for s in args.memory_sizes.split(',') if s]
    if len(sizes) < 2:
        return None
    arms = {}
    for n in sizes:
        records = os.path.join(workdir, f'records_{n}')
        t0 = time.perf_counter()
        common.write_records(records, n)
        print(f'  wrote {n:,} records in {time.perf_counter() - t0:.0f} s', flush=True)

        def run(records=records, n=n) -> float:
            model_dir = tempfile.mkdtemp(dir=workdir, prefix=f'model_{n}_')
            child = common.run_child('train_memory', records, model_dir, str(args.memory_steps))
            return child['rss_mib']

        arms[f'train_{n}'] = run
    small, large = sizes[0], sizes[-1]
    ratio = common.Ratio(
        f'peak RSS training on {large:,} / {small:,} records',
        f'train_{large}',
        f'train_{small}',
        '<= 1.2x',
    )
    return common.compare(arms, [ratio], protocol)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--examples', type=int, default=4096, help='Records for the speed runs.')
    parser.add_argument('--batch_size', type=int, default=64, help='Batch size of every run.')
    parser.add_argument('--steps', type=int, default=15, help='Timed training steps per run.')
    parser.add_argument(
        '--memory_sizes',
        default='10000,100000',
        help="Record counts for the memory runs (the first and last compared); '' to skip.",
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
    common.add_protocol_flags(parser)
    args = parser.parse_args()
    protocol = common.protocol_from_args(args)
    parts = set(args.parts.split(','))
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    workdir = tempfile.mkdtemp(prefix='bench_input_')
    comparisons, facts = {}, {'batch_size': args.batch_size}
    if 'decode' in parts:
        decode, facts['decode_shard_bytes'] = _bench_decode(workdir, args, protocol)
        comparisons.update({f'decode_{k}': v for k, v in decode.items()})
    if 'pipeline' in parts:
        comparisons['pipeline'] = _bench_pipeline(workdir, args, protocol)
    if 'memory' in parts:
        memory = _bench_rss(workdir, args, protocol)
        if memory:
            comparisons['memory'] = memory
    common.report('bench_input_pipeline', comparisons, **facts)


if __name__ == '__main__':
    main()
