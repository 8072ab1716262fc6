"""Records of schema version 1 against version 2: decoding speed per core and size.

Used by bench_input_pipeline.py (`--parts=decode`); the measuring runs in
benchmarks/children/decode_rate.py. Two regimes, from simulated ChIP-nexus-like
data written by the records job exactly as a user's would be (observed counts, no noise-free
track):
  - single: 1000-bp windows, one task, no jitter margin (the reference experiment's shape);
  - paper: 2114 -> 1000, four tasks with a control track each, jitter margin 128 (the BPNet
    paper's setup).
Each measurement runs in a fresh process pinned to one CPU core: the training input pipeline
(`data.make_dataset(training=True)`: interleave, shuffle, repeat, batch, parse + decode; no
augmentation, which runs in the training step) for a fixed number of batches after a warm-up.
The rate is examples per CPU-second of the process (all its threads), which on one core is
examples/s per core and does not count time other processes take from that core.
'decoded bytes' are those of the batch the host hands to the device, per example.
"""

from __future__ import annotations

import dataclasses
import json
import os

from benchmarks import common


@dataclasses.dataclass(frozen=True)
class Regime:
    name: str
    tasks: int
    sequence_length: int
    output_length: int
    max_jitter: int
    control: bool


REGIMES = (
    Regime('single', 1, 1000, 1000, 0, False),
    Regime('paper', 4, 2114, 1000, 128, True),
)


def _simulation(regime: Regime):
    from bpnet_tfx.simulate import simulator as simulate

    base = simulate.SimulationConfig()
    if regime.tasks == 1:
        return base
    motifs = base.tasks[0].motifs
    extra = (
        simulate.MotifSpec('nanog', 'AGCCATCAATG', plus_offset=7, minus_offset=6, strength=80.0),
        simulate.MotifSpec('sox2', 'ACAAAGGAAC', plus_offset=6, minus_offset=8, strength=90.0),
    )
    tasks = tuple(
        simulate.TaskSpec(name=f'task{i}', motifs=(m,)) for i, m in enumerate(motifs + extra)
    )
    return dataclasses.replace(base, tasks=tasks[: regime.tasks], control_rate=0.05)


def make_records(workdir: str, regime: Regime, version: int) -> str:
    """Simulates the regime's data (cached) and writes its records in schema `version`."""
    from beam_jobs import make_records as job
    from bpnet_tfx.simulate import simulator as simulate

    files = simulate.ensure_demo_data(os.path.join(workdir, 'sim'), _simulation(regime))
    tasks = []
    for name in files.tasks:
        bw = files.task_bigwigs[name]
        task = {'name': name, 'peaks': files.peaks, 'pos_bigwig': bw.pos, 'neg_bigwig': bw.neg}
        if regime.control:
            task['control_pos_bigwig'] = files.control_pos_bigwig
            task['control_neg_bigwig'] = files.control_neg_bigwig
        tasks.append(task)
    spec = os.path.join(workdir, f'{regime.name}_tasks.json')
    with open(spec, 'w') as f:
        json.dump({'tasks': tasks}, f)
    out = os.path.join(workdir, f'{regime.name}_v{version}')
    job.run(
        [
            f'--fasta={files.fasta}',
            f'--tasks_spec={spec}',
            f'--output_dir={out}',
            f'--sequence_length={regime.sequence_length}',
            f'--output_length={regime.output_length}',
            f'--max_jitter={regime.max_jitter}',
            f'--schema_version={version}',
            '--overwrite',
            '--runner=DirectRunner',
        ]
    )
    return out


def measure(records: str, *, batches: int, batch_size: int, core: int, finish: str) -> dict:
    """Examples/s and decoded bytes/example of the training input pipeline on one core;
    finish='host' also turns tokens into one-hot and counts into float32 on the host."""
    return common.run_child(
        'decode_rate', records, str(batches), str(batch_size), str(core), finish
    )


def shard_bytes(records: str) -> int:
    return sum(
        os.path.getsize(os.path.join(records, f))
        for f in os.listdir(records)
        if f.endswith('.tfrecord.gz')
    )
