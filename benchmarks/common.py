"""What every benchmark shares: the measuring protocol (ours and the baseline interleaved in
pairs, the median ratio and its spread, the load average of each pair), the report (a short
table and one JSON line), and the synthetic records and notebook baseline of the training
benchmarks.

The protocol: a pair runs every arm once, the order reversed from one pair to the next; the
1-minute load average is read before the pair and after each arm. A pair whose largest load is
above the limit (by default the number of cores) is measured again, at most `retries` times,
and then stays in the report as not a result. A comparison is a result only when all its pairs
are; its ratio is the median over the pairs that count, with their min-max.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from typing import Any, Callable, Mapping, Sequence

import numpy as np

LENGTH, JITTER = 1000, 0
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclasses.dataclass(frozen=True)
class Protocol:
    """How a comparison is measured.

    Attributes:
      pairs: pairs that must count (each runs every arm once).
      retries: extra attempts at a pair measured above `max_load`.
      max_load: the largest 1-minute load average a pair may see; None: the number of cores.
      pause_s: seconds to wait before measuring a rejected pair again.
    """

    pairs: int = 3
    retries: int = 2
    max_load: float | None = None
    pause_s: float = 30.0


@dataclasses.dataclass(frozen=True)
class Ratio:
    """One reported ratio: `numerator` / `denominator`, each 'arm' (its value) or 'arm.metric'."""

    name: str
    numerator: str
    denominator: str
    target: str = ''


Arm = Callable[[], 'float | Mapping[str, float]']
MIN_PAIRS = 3  # fewer pairs that count are never a result, whatever --pairs says


def add_protocol_flags(parser: argparse.ArgumentParser) -> None:
    """The protocol's flags, the same in every bench_* script."""
    parser.add_argument('--pairs', type=int, default=3, help='Pairs that must count (>= 3).')
    parser.add_argument(
        '--retries', type=int, default=2, help='Extra attempts at a pair measured under load.'
    )
    parser.add_argument(
        '--max_load',
        type=float,
        default=None,
        help='Largest 1-minute load average a pair may see (default: the number of cores).',
    )
    parser.add_argument(
        '--pause_s', type=float, default=30.0, help='Seconds to wait before a retry.'
    )


def protocol_from_args(args: argparse.Namespace) -> Protocol:
    return Protocol(
        pairs=args.pairs, retries=args.retries, max_load=args.max_load, pause_s=args.pause_s
    )


def _metrics(value: Any) -> dict[str, float]:
    """An arm's result as {metric: value}; a plain number is {'value': number}."""
    if isinstance(value, Mapping):
        return {k: float(v) for k, v in value.items()}
    return {'value': float(value)}


def _lookup(values: Mapping[str, Mapping[str, float]], ref: str) -> float:
    arm, _, metric = ref.partition('.')
    return values[arm][metric or 'value']


def own_cpu_seconds() -> float:
    """CPU seconds of this process and of the children it has waited for."""
    me, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def _run_pair(
    arms: Mapping[str, Arm], order: Sequence[str], load: Callable[[], float]
) -> tuple[dict[str, dict[str, float]], list[float]]:
    """Runs every arm once in `order`; returns (metrics per arm, loads read around them)."""
    loads, values = [load()], {}
    for name in order:
        values[name] = _metrics(arms[name]())
        loads.append(load())
    return values, loads


def compare(
    arms: Mapping[str, Arm],
    ratios: Sequence[Ratio],
    protocol: Protocol = Protocol(),
    *,
    load: Callable[[], float] = lambda: os.getloadavg()[0],
    cores: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
    log: Callable[[str], None] = lambda line: print(line, flush=True),
    cpu: Callable[[], float] = own_cpu_seconds,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, Any]:
    """Measures `arms` in interleaved pairs under `protocol` and summarizes `ratios`.

    Args:
      arms: name -> a function that runs the work once and returns its measure (a number,
        or {metric: number}).
      ratios: what to report, from the arms of one pair.
      protocol: pairs, retries and the load limit.
      load, cores, sleep, log, cpu, clock: the 1-minute load average, the core count
        (default os.cpu_count()), waiting, progress lines, this process tree's CPU seconds
        and the wall clock; tests pass fakes.

    Returns:
      {'max_load', 'protocol', 'pairs': [every attempt: 'pair', 'attempt', 'order', 'loads',
       'load', 'own_cpu' (the cores the benchmark itself kept busy over the pair, part of
       the load), 'counts', 'values', 'ratios'], 'ratios': {name: summary (see
       `summarize`)}, 'result': whether every pair counts}.
    """
    if protocol.pairs < 1 or protocol.retries < 0:
        raise ValueError(f'bad protocol {protocol}')
    max_load = protocol.max_load if protocol.max_load is not None else (cores or os.cpu_count())
    names = list(arms)
    attempts = []
    for pair in range(protocol.pairs):
        order = names if pair % 2 == 0 else names[::-1]
        for attempt in range(protocol.retries + 1):
            if attempt:
                sleep(protocol.pause_s)
            cpu0, wall0 = cpu(), clock()
            values, loads = _run_pair(arms, order, load)
            own = (cpu() - cpu0) / max(clock() - wall0, 1e-9)
            row = {
                'pair': pair,
                'attempt': attempt,
                'order': list(order),
                'loads': [round(x, 2) for x in loads],
                'load': round(max(loads), 2),
                'own_cpu': round(own, 2),
                'counts': max(loads) <= max_load,
                'values': values,
                'ratios': {
                    r.name: _lookup(values, r.numerator) / _lookup(values, r.denominator)
                    for r in ratios
                },
            }
            attempts.append(row)
            log(_pair_line(row, protocol))
            if row['counts']:
                break
    summaries = {r.name: summarize(r, attempts, protocol.pairs) for r in ratios}
    return {
        'max_load': max_load,
        'protocol': dataclasses.asdict(protocol),
        'pairs': attempts,
        'ratios': summaries,
        'result': all(s['result'] for s in summaries.values()),
    }


def summarize(ratio: Ratio, attempts: Sequence[Mapping[str, Any]], pairs: int) -> dict[str, Any]:
    """The median and min-max of a ratio over the attempts that count, and the loads of the
    pairs; a result only when `pairs` pairs (and at least MIN_PAIRS) count."""
    counted = [a for a in attempts if a['counts']]
    values = [a['ratios'][ratio.name] for a in counted]
    return {
        'median': statistics.median(values) if values else None,
        'min': min(values) if values else None,
        'max': max(values) if values else None,
        'values': values,
        'loads': [a['load'] for a in counted],
        'pairs_counted': len(counted),
        'pairs_rejected': len(attempts) - len(counted),
        'result': len(counted) >= max(pairs, MIN_PAIRS),
        'pairs_wanted': max(pairs, MIN_PAIRS),
        'target': ratio.target,
    }


def _pair_line(row: Mapping[str, Any], protocol: Protocol) -> str:
    ratios = ', '.join(f'{k} {v:.3g}' for k, v in row['ratios'].items())
    verdict = 'counts' if row['counts'] else 'load too high, not a result'
    return (
        f"  pair {row['pair'] + 1}/{protocol.pairs} (attempt {row['attempt'] + 1}): "
        f"load {row['load']:.2f} (ours {row['own_cpu']:.1f}): {ratios} [{verdict}]"
    )


def table(comparisons: Mapping[str, Mapping[str, Any]]) -> str:
    """One row per ratio: median, min-max, pairs counted of those tried, their loads, target."""
    lines = [f'{"ratio":44s} {"median":>8s} {"min-max":>15s} {"pairs":>5s}  {"loads":16s} target']
    for comparison in comparisons.values():
        for name, s in comparison['ratios'].items():
            spread = '-'
            if s['median'] is not None:
                spread = f'{s["min"]:.3g}-{s["max"]:.3g}x'
            median = '-' if s['median'] is None else f'{s["median"]:.3g}x'
            loads = ' '.join(f'{x:.1f}' for x in s['loads'])
            tried = s['pairs_counted'] + s['pairs_rejected']
            note = ''
            if not s['result']:
                note = (
                    f'  NOT A RESULT ({s["pairs_counted"]} of {s["pairs_wanted"]} pairs under '
                    'the load limit)'
                )
            lines.append(
                f'{name:44s} {median:>8s} {spread:>15s} {s["pairs_counted"]:>2d}/{tried:<2d}  '
                f'{loads:16s} {s["target"]}{note}'
            )
    return '\n'.join(lines)


def machine() -> dict[str, Any]:
    """What the numbers ran on: processor, cores, memory."""
    memory = os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30
    model = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            names = [line.split(':', 1)[1].strip() for line in f if line.startswith('model name')]
        model = names[0] if names else model
    except OSError:
        pass
    return {
        'cpu': model,
        'cores': os.cpu_count(),
        'memory_gib': round(memory, 1),
        'platform': platform.platform(),
    }


def report(benchmark: str, comparisons: Mapping[str, Mapping[str, Any]], **facts: Any) -> dict:
    """Prints the table and one JSON line: {'benchmark', 'machine', 'comparisons', **facts}."""
    print(table(comparisons))
    out = {'benchmark': benchmark, 'machine': machine(), 'comparisons': comparisons, **facts}
    print(json.dumps(out, sort_keys=True, default=float))
    return out


def run_command(args: list[str], *, quiet: bool = False) -> float:
    """Runs a command in the repository (TensorFlow's C++ logs off), echoing it first; stops
    on failure. Returns its wall seconds. `quiet` drops its stdout (stderr still shows)."""
    print('$ ' + ' '.join(args), flush=True)
    start = time.perf_counter()
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONUNBUFFERED='1')
    stdout = subprocess.DEVNULL if quiet else None
    subprocess.run(args, check=True, cwd=REPO, env=env, stdout=stdout)
    return time.perf_counter() - start


def run_child(name: str, *args: str, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Runs benchmarks.children.<name> ARGS in a fresh Python in the checkout (TensorFlow's C++
    logs off) and returns its last output line, a JSON object. Stops with the child's error.

    `name` may also be 'peak_rss:<child>', which runs the child under children.peak_rss: its
    result then also carries the child's peak resident set ('rss_mb').
    """
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', **(env or {}))
    env['PYTHONPATH'] = os.pathsep.join(p for p in (REPO, env.get('PYTHONPATH')) if p)
    command = []
    if name.startswith('peak_rss:'):
        command = [sys.executable, '-m', 'benchmarks.children.peak_rss']
        name = name.partition(':')[2]
    command += [sys.executable, '-m', f'benchmarks.children.{name}', *args]
    proc = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env)
    if proc.returncode:
        raise RuntimeError(f'benchmarks.children.{name} failed:\n{proc.stderr[-3000:]}')
    return json.loads(proc.stdout.strip().splitlines()[-1])


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
