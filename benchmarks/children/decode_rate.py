"""Decoding speed of records on one pinned CPU core: the training input pipeline
(`data.make_dataset(training=True)`) for BATCHES batches after a warm-up, in examples per
CPU-second of this process (which on one core is examples/s per core, whatever other processes
take from it) and per wall second; and the bytes per example of the batch handed to the device.

    python -m benchmarks.children.decode_rate RECORDS BATCHES BATCH_SIZE CORE FINISH

FINISH: 'device' (tokens and counts leave as stored) or 'host' (turned into one-hot and float32
on the host too). Prints {"examples_per_cpu_second", "examples_per_second", "decoded_bytes"}.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time


def _cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main(argv: list[str]) -> None:
    records, batches, batch_size = argv[0], int(argv[1]), int(argv[2])
    os.sched_setaffinity(0, {int(argv[3])})  # before TensorFlow sizes its thread pools
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
    from bpnet_tfx.records import dataset as data
    from bpnet_tfx.records import schema

    info = schema.RecordsInfo.load(records)
    ds = data.make_dataset(records, info, 'train', batch_size=batch_size, training=True, seed=0)
    if argv[4] == 'host':
        ds = ds.map(data.model_inputs)
    it = iter(ds)
    first = next(it)
    nbytes = sum(v.numpy().nbytes for v in first.values()) / batch_size
    for _ in range(20):
        next(it)
    start, start_cpu = time.perf_counter(), _cpu_seconds()
    for _ in range(batches):
        next(it)
    n = batches * batch_size
    result = {
        'examples_per_cpu_second': n / (_cpu_seconds() - start_cpu),
        'examples_per_second': n / (time.perf_counter() - start),
        'decoded_bytes': nbytes,
    }
    print(json.dumps(result))


if __name__ == '__main__':
    main(sys.argv[1:])
