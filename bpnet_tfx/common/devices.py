"""Where work computes: logical CPU replicas, the training strategy and dtype policy, and the
devices inference splits its batches over.

A main (train.py, a benchmark) decides these before it builds anything and hands the strategy
to `trainer.train`, which runs under whatever Keras dtype policy is set. Inference (evaluate,
predict, contrib) splits each batch over every visible GPU, or every logical CPU
(`split_batch`); its mains take --cpu_replicas too. `configure_cpu_replicas`
must run before TensorFlow initialises its devices, and a multi-worker strategy must exist
before any TensorFlow op runs.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
from typing import Any, Callable, Iterator, Sequence

import keras
import numpy as np
import tensorflow as tf

from bpnet_tfx.common.errors import BpnetError

STRATEGIES = ('auto', 'mirrored', 'multi_worker', 'one_device')
PRECISIONS = ('auto', 'float32', 'mixed_float16', 'mixed_bfloat16')


class DeviceError(BpnetError):
    """A bad --strategy, --precision, --cpu_replicas or TF_CONFIG, reported in one line."""


def configure_cpu_replicas(n: int) -> None:
    """Splits the first CPU into `n` logical devices; must run before TensorFlow starts."""
    if n < 1:
        raise DeviceError(f'--cpu_replicas must be >= 1, got {n}')
    if n == 1 or tf.config.list_physical_devices('GPU'):
        return
    cpu = tf.config.list_physical_devices('CPU')[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n)]
    )


def make_strategy(name: str = 'auto') -> tf.distribute.Strategy:
    """Returns the strategy.

    'auto'/'mirrored' mirror over the visible GPUs (or the logical CPUs); 'multi_worker' is
    MultiWorkerMirroredStrategy configured from the TF_CONFIG environment variable (one
    process per host, each mirroring over its own GPUs); 'one_device' uses one device.
    """
    if name not in STRATEGIES:
        raise DeviceError(f'--strategy must be one of {", ".join(STRATEGIES)}, got {name!r}')
    if name == 'multi_worker':
        if not os.environ.get('TF_CONFIG'):
            raise DeviceError(
                '--strategy=multi_worker needs the TF_CONFIG environment '
                'variable (cluster and this task); see README'
            )
        try:
            json.loads(os.environ['TF_CONFIG'])
        except json.JSONDecodeError as e:
            raise DeviceError(f'TF_CONFIG is not valid JSON: {e}') from None
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices('GPU')
    if name == 'one_device':
        device = (gpus or tf.config.list_logical_devices('CPU'))[0]
        return tf.distribute.OneDeviceStrategy(device.name)
    if gpus:
        return tf.distribute.MirroredStrategy([d.name for d in gpus])
    cpus = [d.name for d in tf.config.list_logical_devices('CPU')]
    return tf.distribute.MirroredStrategy(
        devices=cpus, cross_device_ops=tf.distribute.ReductionToOneDevice()
    )


def strategy_devices(strategy: tf.distribute.Strategy) -> list[str]:
    """The devices `strategy` computes on; the default strategy's is the first device."""
    try:
        return list(strategy.extended.worker_devices)
    except RuntimeError:  # The default strategy places ops where TensorFlow would.
        devices = tf.config.list_logical_devices('GPU') or tf.config.list_logical_devices('CPU')
        return [devices[0].name]


def resolve_precision(name: str) -> str:
    """Maps --precision to a Keras dtype policy; 'auto' is float32 on every device.

    A faster policy becomes the default only while its validation loss after a fixed number
    of steps stays within 1% of float32's. mixed_bfloat16 has not met that rule (its loss is
    higher, even with the heads in float32), so it is asked for with --precision, e.g. on
    GPUs where it is much faster. The measurements behind this choice, with their machines,
    are in docs/benchmarks.md (benchmarks/studies/precision.py makes them).
    """
    if name not in PRECISIONS:
        raise DeviceError(f'--precision must be one of {", ".join(PRECISIONS)}, got {name!r}')
    return 'float32' if name == 'auto' else name


@contextlib.contextmanager
def dtype_policy(name: str) -> Iterator[str]:
    """Sets the Keras global dtype policy of `name` (resolved) and restores the previous one.

    Yields:
      The policy's name, e.g. 'float32' for 'auto'.
    """
    policy = resolve_precision(name)
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        yield policy
    finally:
        keras.mixed_precision.set_global_policy(previous)


def inference_devices() -> list[str]:
    """The devices inference splits its batches over: every visible GPU, else every logical
    CPU (one unless `configure_cpu_replicas` split it)."""
    found = tf.config.list_logical_devices('GPU') or tf.config.list_logical_devices('CPU')
    return [d.name for d in found]


def _rows(batch: Any, lo: int, hi: int) -> Any:
    return None if batch is None else batch[lo:hi]


def _concatenate(parts: list[Any]) -> Any:
    """Joins per-device results along the first axis: arrays, or lists, tuples or dicts of
    them (the structure of each part)."""
    first = parts[0]
    if isinstance(first, dict):
        return {k: _concatenate([p[k] for p in parts]) for k in first}
    if isinstance(first, (list, tuple)):
        return type(first)(_concatenate(list(p)) for p in zip(*parts))
    return np.concatenate([np.asarray(p) for p in parts])


def split_batch(fn: Callable[..., Any], batches: Sequence[Any], devices: Sequence[str]) -> Any:
    """Runs `fn` on a batch split over `devices`, and joins the results in row order.

    Each device gets a contiguous run of rows of every array in `batches` (None stays None),
    at most one run a device and none empty, and computes `fn(*runs)` under `tf.device`, in
    a thread of its own so that the devices work at once. With one device (or one row) `fn`
    runs on the whole batch as it is. Rows must not depend on each other, so the result is
    the one-device result.

    Args:
      fn: (*batches) -> an array (rows first) or a list, tuple or dict of them.
      batches: arrays with the same number of rows, or None.
      devices: device names (`inference_devices`).

    Returns:
      `fn`'s result for the whole batch, numpy arrays in the same structure.
    """
    rows = next(len(b) for b in batches if b is not None)
    parts = min(len(devices), rows)
    if parts <= 1:
        return fn(*batches)
    bounds = [rows * i // parts for i in range(parts + 1)]

    def run(i: int) -> Any:
        with tf.device(devices[i]):
            return fn(*(_rows(b, bounds[i], bounds[i + 1]) for b in batches))

    with concurrent.futures.ThreadPoolExecutor(parts) as pool:
        results = list(pool.map(run, range(parts)))
    return _concatenate(results)
