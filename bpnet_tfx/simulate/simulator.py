"""Deterministic simulator of ChIP-nexus-like demo data, written as the files the pipeline reads.

`simulate` draws a random genome with GC-content variation and N stretches, places peaks away from
chromosome ends and Ns, plants 1-3 motif instances (some with one mismatch, which bind more weakly)
near each summit in random orientation, and builds per-strand expected intensities: a sharp
footprint per instance (plus strand upstream, minus strand downstream of the motif, mirrored for
reverse-strand instances exactly as the reverse complement implies), a broad component around each
summit and a uniform background. Observed counts are Poisson draws from the float32 expected
values. It writes genome.fa (+ .fai), genome.chrom.sizes, peaks.bed (1-bp summits), observed and
expected strand bigWigs per task, and motif_sites.tsv listing every planted instance, all from
`numpy.random.default_rng(config.seed)`, so one config always gives the same files.
`ensure_demo_data` keeps one copy per config fingerprint in a cache directory, published by an
atomic rename so that racing processes are safe.

What the sequence determines: an instance's strength (its motif's, times the weak-site factor
and the cooperative boost, `simulated_chrom.cooperative_boosts`; motif_sites.tsv's `boost`
column), and in the designs (`designs.py`) a repressor motif and a GC-following background.
Everything else is noise: a lognormal factor per peak and task, the control's bias field
(unless `bound_with_control`) and the Poisson draw. The `<task>.sequence.{pos,neg}.bw` tracks
hold the expected reads with that noise at its mean, E[observed | genome], from which
`evaluation` reports `sequence_count_pearson_bound`; docs/training.md has the details.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from bpnet_tfx.common import folders
from bpnet_tfx.genome import bigwig
from bpnet_tfx.simulate import chrom as simulated_chrom
from bpnet_tfx.simulate import config as simulation_config
from bpnet_tfx.simulate.config import (  # noqa: F401 (simulate's public names)
    DEMO_CONFIGS,
    MotifSpec,
    SimulationConfig,
    TaskSpec,
)

_MANIFEST = 'simulation.json'
_FASTA_LINE = 60
_BASE_LETTERS = simulated_chrom.BASE_LETTERS
_SITES_HEADER = '#chrom\tstart\tend\tstrand\tmotif\ttask\tmismatches\tpeak\tboost\n'
# File name part of each TaskBigWigs field, in field order: <task>.<kind>.bw.
_BIGWIG_KINDS = ('pos', 'neg', 'expected.pos', 'expected.neg', 'sequence.pos', 'sequence.neg')


class TaskBigWigs(NamedTuple):
    """The bigWigs of one task, plus then minus strand: observed, expected (the intensities the
    observed counts were drawn from) and sequence (the expected reads with every
    non-sequence random factor at its mean)."""

    pos: str
    neg: str
    expected_pos: str
    expected_neg: str
    sequence_pos: str
    sequence_neg: str


@dataclasses.dataclass(frozen=True)
class DemoFiles:
    """Paths of one simulated data set.

    Observed bigWigs hold only non-zero bases (integer-valued floats); read them with
    `numpy.nan_to_num(bw.values(chrom, start, end, numpy=True))`. Expected bigWigs cover every
    base with the float32 intensity the observed counts were drawn from (zero inside N stretches);
    sequence bigWigs (in `task_bigwigs`) likewise with the expected reads the sequence alone
    determines.

    Attributes:
      root: the directory holding everything.
      fasta: genome.fa, 60 bases a line, upper case, with genome.fa.fai beside it.
      chrom_sizes: genome.chrom.sizes, 'chrom<TAB>size' lines.
      peaks: peaks.bed, BED6 of 1-bp summits (name peak_NNNNNN, score 0-1000, strand '.'),
        sorted in chrom_sizes order, then position.
      pos_bigwig: observed plus-strand counts of task 0.
      neg_bigwig: observed minus-strand counts of task 0.
      expected_pos_bigwig: expected plus-strand intensity of task 0.
      expected_neg_bigwig: expected minus-strand intensity of task 0.
      motif_sites: motif_sites.tsv, '#' header, columns chrom, start, end (0-based, half-open),
        strand, motif, task, mismatches, peak (name in peaks.bed), boost (the instance's
        cooperative factor, 1 without a partner in range).
      tasks: task names, in config order.
      task_bigwigs: task name -> TaskBigWigs, every task including task 0.
      control_pos_bigwig, control_neg_bigwig: observed control counts (None without one).
    """

    root: str
    fasta: str
    chrom_sizes: str
    peaks: str
    pos_bigwig: str
    neg_bigwig: str
    expected_pos_bigwig: str
    expected_neg_bigwig: str
    motif_sites: str
    tasks: tuple[str, ...]
    task_bigwigs: Mapping[str, TaskBigWigs] = dataclasses.field(default_factory=dict)
    control_pos_bigwig: str | None = None
    control_neg_bigwig: str | None = None


def _demo_files(root: str, config: SimulationConfig) -> DemoFiles:
    """The paths `simulate` writes under `root` for `config`."""
    task_bigwigs = {
        t.name: TaskBigWigs(*(os.path.join(root, f'{t.name}.{kind}.bw') for kind in _BIGWIG_KINDS))
        for t in config.tasks
    }
    first = task_bigwigs[config.tasks[0].name]
    return DemoFiles(
        root=root,
        fasta=os.path.join(root, 'genome.fa'),
        chrom_sizes=os.path.join(root, 'genome.chrom.sizes'),
        peaks=os.path.join(root, 'peaks.bed'),
        pos_bigwig=first.pos,
        neg_bigwig=first.neg,
        expected_pos_bigwig=first.expected_pos,
        expected_neg_bigwig=first.expected_neg,
        motif_sites=os.path.join(root, 'motif_sites.tsv'),
        tasks=tuple(t.name for t in config.tasks),
        task_bigwigs=task_bigwigs,
        control_pos_bigwig=(
            os.path.join(root, 'control.pos.bw') if config.control_rate > 0 else None
        ),
        control_neg_bigwig=(
            os.path.join(root, 'control.neg.bw') if config.control_rate > 0 else None
        ),
    )


def sequence_bigwigs(expected_pos: str | None, expected_neg: str | None) -> tuple[str, str] | None:
    """The sequence-determined tracks beside a task's expected bigWigs, or None.

    Args:
      expected_pos, expected_neg: a task's `<task>.expected.{pos,neg}.bw` as `simulate` wrote
        them (e.g. from a records folder's metadata.json).

    Returns:
      (`<task>.sequence.pos.bw`, `<task>.sequence.neg.bw`) in the same folder when both exist;
      None for other names (expected tracks not made here) or a simulation made before the
      sequence tracks existed.
    """
    found = []
    for path, strand in ((expected_pos, 'pos'), (expected_neg, 'neg')):
        suffix = f'.expected.{strand}.bw'
        if not path or not os.path.basename(path).endswith(suffix):
            return None
        candidate = path[: -len(suffix)] + f'.sequence.{strand}.bw'
        if not os.path.isfile(candidate):
            return None
        found.append(candidate)
    return found[0], found[1]


def read_motif_sites(path: str) -> list[dict[str, Any]]:
    """Reads motif_sites.tsv: one dict per planted instance, in file order.

    Keys: chrom, start, end (int, 0-based half-open), strand ('+' or '-'), motif, task,
    mismatches (int), peak (name in peaks.bed), boost (float, the cooperative factor) and
    centre (float, the motif centre `(start + end - 1) / 2`).
    """
    with open(path) as f:
        header = f.readline().lstrip('#').rstrip('\n').split('\t')
        rows = [dict(zip(header, line.rstrip('\n').split('\t'))) for line in f if line.strip()]
    for row in rows:
        row['start'], row['end'] = int(row['start']), int(row['end'])
        row['mismatches'] = int(row['mismatches'])
        row['boost'] = float(row['boost'])
        row['centre'] = (row['start'] + row['end'] - 1) / 2
    return rows


def _all_paths(files: DemoFiles) -> list[str]:
    paths = [
        files.fasta,
        files.fasta + '.fai',
        files.chrom_sizes,
        files.peaks,
        files.motif_sites,
        os.path.join(files.root, _MANIFEST),
    ]
    for bigwigs in files.task_bigwigs.values():
        paths.extend(bigwigs)
    paths.extend(p for p in (files.control_pos_bigwig, files.control_neg_bigwig) if p)
    return paths


# ---------------------------------------------------------------------------------------------
# Writing.


def _fasta_record(chrom: str, codes: np.ndarray) -> bytes:
    """One FASTA record with `_FASTA_LINE` bases a line."""
    letters = _BASE_LETTERS[codes]
    full = letters.size // _FASTA_LINE
    body = np.empty((full, _FASTA_LINE + 1), dtype=np.uint8)
    body[:, :_FASTA_LINE] = letters[: full * _FASTA_LINE].reshape(full, _FASTA_LINE)
    body[:, _FASTA_LINE] = ord('\n')
    tail = letters[full * _FASTA_LINE :].tobytes()
    return b'>' + chrom.encode() + b'\n' + body.tobytes() + (tail + b'\n' if tail else b'')


def _open_bigwigs(paths: tuple[str, ...] | list[str], header: list[tuple[str, int]]) -> list:
    """bigWig writers of `paths`, each with the chromosome header."""
    return [bigwig.BigWigWriter(p, header) for p in paths]


def _write_tracks(
    rng: np.random.Generator,
    chrom: str,
    sim: simulated_chrom.Chrom,
    config: SimulationConfig,
    bigwigs: dict[str, list],
    controls: list,
) -> None:
    """Writes one chromosome into every task's bigWigs and the control's, drawing the observed
    counts from `rng` (tasks in config order, then the control)."""
    for task in config.tasks:
        pos_bw, neg_bw, exp_pos_bw, exp_neg_bw, seq_pos_bw, seq_neg_bw = bigwigs[task.name]
        exp_pos, exp_neg = sim.expected[task.name]
        exp_pos_bw.add_runs(chrom, exp_pos)
        exp_neg_bw.add_runs(chrom, exp_neg)
        seq_pos_bw.add_runs(chrom, sim.sequence_expected[task.name][0])
        seq_neg_bw.add_runs(chrom, sim.sequence_expected[task.name][1])
        # Draws from the float32 values stored, so the oracle likelihood is exact.
        pos_bw.add_nonzero(chrom, rng.poisson(exp_pos.astype(np.float64)))
        neg_bw.add_nonzero(chrom, rng.poisson(exp_neg.astype(np.float64)))
    for bw in controls:
        bw.add_nonzero(chrom, rng.poisson(sim.control.astype(np.float64)))


def _write_all(root: str, config: SimulationConfig) -> DemoFiles:
    """Simulates `config` and writes every file into the existing directory `root`."""
    files = _demo_files(root, config)
    rng = np.random.default_rng(config.seed)
    header = list(config.chrom_sizes)
    bigwigs = {task: _open_bigwigs(paths, header) for task, paths in files.task_bigwigs.items()}
    controls = []
    if files.control_pos_bigwig:
        controls = _open_bigwigs((files.control_pos_bigwig, files.control_neg_bigwig), header)
    fai_lines, bed_lines, site_lines = [], [], []
    peak_counts = {}
    n_peaks = 0
    try:
        with open(files.fasta, 'wb') as fasta:
            offset = 0
            for chrom, size in config.chrom_sizes:
                sim = simulated_chrom.simulate_chrom(rng, chrom, size, config)
                record = _fasta_record(chrom, sim.codes)
                header_len = len(chrom) + 2
                fai_lines.append(
                    f'{chrom}\t{size}\t{offset + header_len}\t{_FASTA_LINE}\t{_FASTA_LINE + 1}\n'
                )
                fasta.write(record)
                offset += len(record)
                names = [f'peak_{n_peaks + i:06d}' for i in range(len(sim.summits))]
                for name, summit, score in zip(names, sim.summits, sim.scores):
                    bed_lines.append(f'{chrom}\t{summit}\t{summit + 1}\t{name}\t{score}\t.\n')
                for start, end, strand, motif, task, mismatches, peak, boost in sorted(sim.sites):
                    site_lines.append(
                        f'{chrom}\t{start}\t{end}\t{strand}\t{motif}\t{task}\t'
                        f'{mismatches}\t{names[peak]}\t{boost:g}\n'
                    )
                n_peaks += len(names)
                peak_counts[chrom] = len(names)
                _write_tracks(rng, chrom, sim, config, bigwigs, controls)
    finally:
        for handles in [*bigwigs.values(), controls]:
            for bw in handles:
                bw.close()
    _write_tables(files, config, fai_lines, bed_lines, site_lines, peak_counts)
    return files


def _write_tables(
    files: DemoFiles,
    config: SimulationConfig,
    fai_lines: list[str],
    bed_lines: list[str],
    site_lines: list[str],
    peak_counts: dict[str, int],
) -> None:
    """Writes the FASTA index, chrom sizes, peaks, motif sites and, last, the manifest."""
    with open(files.fasta + '.fai', 'w') as f:
        f.writelines(fai_lines)
    with open(files.chrom_sizes, 'w') as f:
        f.writelines(f'{chrom}\t{size}\n' for chrom, size in config.chrom_sizes)
    with open(files.peaks, 'w') as f:
        f.writelines(bed_lines)
    boosted = sum(1 for line in site_lines if not line.endswith('\t1\n'))
    with open(files.motif_sites, 'w') as f:
        f.write(_SITES_HEADER)
        f.writelines(site_lines)
    manifest = {
        'format_version': simulation_config.FORMAT_VERSION,
        'fingerprint': config.fingerprint(),
        'config': config.to_dict(),
        'peaks_per_chrom': peak_counts,
        'cooperativity': {
            'motifs': list(config.cooperative_motifs),
            'distance': list(config.cooperative_distance),
            'boost': config.cooperative_boost,
            'boosted_sites': boosted,
        },
        'motif_sites': len(site_lines),
    }
    # Written last: its presence marks a complete simulation directory.
    with open(os.path.join(files.root, _MANIFEST), 'w') as f:
        json.dump(manifest, f, indent=1, sort_keys=True)


def _is_complete(files: DemoFiles, config: SimulationConfig) -> bool:
    """Whether `files.root` holds a finished simulation of `config`."""
    try:
        with open(os.path.join(files.root, _MANIFEST)) as f:
            manifest = json.load(f)
    except (OSError, ValueError):
        return False
    return manifest.get('fingerprint') == config.fingerprint() and all(
        os.path.isfile(p) for p in _all_paths(files)
    )


def simulate(out_dir: str, config: SimulationConfig = SimulationConfig()) -> DemoFiles:
    """Simulates a demo data set and writes it to `out_dir`.

    Everything is written to a temporary sibling directory that is then renamed to `out_dir`,
    so readers never see a partial data set. A previous simulation in `out_dir` (one with a
    simulation.json) is replaced.

    Args:
      out_dir: directory to create; may exist if empty or holding an earlier simulation.
      config: what to simulate.

    Returns:
      The paths written.

    Raises:
      FileExistsError: `out_dir` exists, is not empty and holds no earlier simulation.
    """
    out_dir = os.path.abspath(out_dir)
    if (
        os.path.exists(out_dir)
        and os.listdir(out_dir)
        and not os.path.exists(os.path.join(out_dir, _MANIFEST))
    ):
        raise FileExistsError(f'{out_dir} exists and holds no simulation; not replacing it.')
    folders.write_atomically(out_dir, lambda tmp: _write_all(tmp, config))
    return _demo_files(out_dir, config)


def default_cache_dir() -> str:
    """$BPNET_TFX_CACHE if set, else ~/.cache/bpnet_tfx."""
    return os.environ.get('BPNET_TFX_CACHE') or os.path.join(
        os.path.expanduser('~'), '.cache', 'bpnet_tfx'
    )


def ensure_demo_data(
    cache_dir: str | None = None, config: SimulationConfig = SimulationConfig()
) -> DemoFiles:
    """Returns the demo data for `config` from the cache, simulating it first if missing.

    The data live in `<cache_dir>/demo-<config.fingerprint()>/`. A complete copy there is used
    as is (nothing is rewritten). Otherwise the data are simulated beside it and renamed into
    place; if another process wins that race, its copy is used and ours deleted.

    Args:
      cache_dir: cache root; `default_cache_dir()` if None.
      config: what to simulate.

    Returns:
      The paths of the cached data set.
    """
    cache_dir = os.path.abspath(cache_dir or default_cache_dir())
    files = _demo_files(os.path.join(cache_dir, f'demo-{config.fingerprint()}'), config)
    if _is_complete(files, config):
        return files
    with folders.temporary_sibling(files.root) as tmp:
        _write_all(tmp, config)
        # Another process's finished copy wins; a damaged or stale one is replaced.
        folders.publish(tmp, files.root, keep_existing=lambda: _is_complete(files, config))
    return files
