"""The in-silico commands' runs: inputs checked and loaded, `insilico` run, one folder written.

marginalize/  marginalize.tsv (motif, task, log-counts change, sd, counts), profiles.png,
              summary.json
ablate/       ablation.tsv (one line per instance), per_pattern.tsv, summary.json
space/        spacing.tsv (distance, task, pair, singles, ratio), spacing.png, summary.json
"""

from __future__ import annotations

import csv
import os
import sys
import time
from typing import Any

import numpy as np

from bpnet_tfx.common import folders, progress
from bpnet_tfx.motifs import formats, insilico, instances

_SEQUENCE = set('ACGT')


def parse_motifs(specs: list[str], flag: str = 'motifs') -> dict[str, str]:
    """'NAME=ACGT...' items (or bare sequences, named by themselves) of the flag `flag` ->
    {name: sequence}."""
    out = {}
    for spec in specs:
        name, _, seq = spec.rpartition('=')
        seq = seq.upper()
        if not seq or not set(seq) <= _SEQUENCE:
            raise insilico.InSilicoError(
                f'--{flag}: {spec!r} is not NAME=SEQUENCE with an ACGT sequence'
            )
        out[name or seq] = seq
    return out


def discovered_motifs(discover_dir: str) -> dict[str, str]:
    """{pattern name: consensus of its trimmed CWM} of a discovery folder's positive patterns."""
    _, found = formats.load_discovery(discover_dir)
    return {p.name: p.trimmed().consensus() for p in found if p.sign > 0}


def check_backgrounds(num_backgrounds: int) -> None:
    """Raises InSilicoError for fewer than one background."""
    if num_backgrounds < 1:
        raise insilico.InSilicoError(f'--num_backgrounds must be >= 1, got {num_backgrounds}')


def _setup(saved_model, contrib_dir, output_dir, overwrite, num_backgrounds, batch_size, seed):
    """(model, backgrounds) after the checks every experiment shares (the callers check
    `num_backgrounds`)."""
    output_dir = os.path.abspath(output_dir)
    if os.path.exists(output_dir) and not (overwrite and os.path.isdir(output_dir)):
        raise insilico.InSilicoError(f'{output_dir} exists; pass --overwrite to replace it')
    if batch_size < 1:
        raise insilico.InSilicoError(f'--batch_size must be >= 1, got {batch_size}')
    contrib = formats.load_contrib(contrib_dir)
    from bpnet_tfx.inference import export

    model = export.ExportedModel(saved_model)
    insilico.check_model(model)
    if contrib['one_hot'].shape[1] != model.config.sequence_length:
        raise insilico.InSilicoError(
            f'{contrib_dir} holds {contrib["one_hot"].shape[1]}-bp windows; {saved_model} '
            f'takes {model.config.sequence_length} bp'
        )
    bg = None
    if num_backgrounds:
        bg = insilico.backgrounds(contrib['one_hot'], num_backgrounds, seed)
    return model, contrib, bg


def _write_tsv(path: str, header: list[str], rows) -> None:
    with open(path, 'w', newline='') as f:
        w = csv.writer(f, delimiter='\t', lineterminator='\n')
        w.writerow(header)
        w.writerows(rows)


def _tasks(model) -> list[str]:
    return list(model.info.tasks)


def _write_marginalize_tsv(path: str, result: dict, tasks: list[str]) -> None:
    """marginalize.tsv: one line per motif and task."""
    rows = [
        (
            name,
            seq_r['motif'],
            t,
            f'{seq_r["log_counts_change"][i]:.4f}',
            f'{seq_r["log_counts_sd"][i]:.4f}',
            f'{seq_r["counts"][i]:.2f}',
            f'{seq_r["background_counts"][i]:.2f}',
        )
        for name, seq_r in result.items()
        for i, t in enumerate(tasks)
    ]
    _write_tsv(
        path,
        [
            'motif',
            'sequence',
            'task',
            'log_counts_change',
            'log_counts_sd',
            'counts',
            'background_counts',
        ],
        rows,
    )


def _write_spacing_tsv(path: str, spacing, tasks: list[str]) -> None:
    """spacing.tsv: one line per distance and task."""
    rows = [
        (
            int(d),
            t,
            f'{spacing.pair[k, i]:.3f}',
            f'{spacing.single_a[i]:.3f}',
            f'{spacing.single_b[k, i]:.3f}',
            f'{spacing.ratio[k, i]:.4f}',
        )
        for k, d in enumerate(spacing.distances)
        for i, t in enumerate(tasks)
    ]
    _write_tsv(
        path,
        ['distance', 'task', 'pair_change', 'a_change', 'b_change', 'ratio'],
        rows,
    )


def _write_ablation_tsvs(folder: str, hits, change, per_pattern: dict, tasks: list[str]) -> None:
    """ablation.tsv (one line per instance) and per_pattern.tsv (the mean change per pattern)."""
    _write_tsv(
        os.path.join(folder, 'ablation.tsv'),
        [
            'region',
            'chrom',
            'start',
            'end',
            'strand',
            'pattern',
            *[f'log_counts_change/{t}' for t in tasks],
        ],
        [
            (
                h['region'],
                h['chrom'],
                h['genome_start'],
                h['genome_end'],
                h['strand'],
                h['pattern'],
                *[f'{v:.4f}' for v in c],
            )
            for h, c in zip(hits, change)
        ],
    )
    _write_tsv(
        os.path.join(folder, 'per_pattern.tsv'),
        ['pattern', 'instances', *[f'mean_log_counts_change/{t}' for t in tasks]],
        [(p, len(v), *[f'{x:.4f}' for x in np.mean(v, axis=0)]) for p, v in per_pattern.items()],
    )


def run_marginalize(
    saved_model,
    contrib_dir,
    motifs: dict[str, str],
    output_dir,
    *,
    num_backgrounds=64,
    batch_size=64,
    seed=0,
    overwrite=False,
) -> dict[str, Any]:
    """Marginalization of each motif; writes the marginalize folder. Returns its summary."""
    start = time.perf_counter()
    if not motifs:
        raise insilico.InSilicoError('no motif to insert')
    check_backgrounds(num_backgrounds)
    model, _, bg = _setup(
        saved_model, contrib_dir, output_dir, overwrite, num_backgrounds, batch_size, seed
    )
    report = progress.Progress('marginalize', 'motifs', len(motifs), every=1)
    result = {}
    for k, (name, seq) in enumerate(motifs.items(), 1):
        result.update(insilico.marginalize(model, {name: seq}, bg, batch_size))
        report.update(k)
    tasks = _tasks(model)

    def write(tmp):
        _write_marginalize_tsv(os.path.join(tmp, 'marginalize.tsv'), result, tasks)
        from bpnet_tfx.motifs import syntax_plots

        syntax_plots.marginalization_png(os.path.join(tmp, 'profiles.png'), result, tasks)
        summary = {
            'saved_model': os.path.abspath(saved_model),
            'backgrounds': num_backgrounds,
            'seed': seed,
            'motifs': {
                n: {'sequence': r['motif'], 'log_counts_change': r['log_counts_change'].tolist()}
                for n, r in result.items()
            },
            'tasks': tasks,
            'seconds': round(time.perf_counter() - start, 1),
        }
        formats.write_json(os.path.join(tmp, 'summary.json'), summary)
        return summary

    return folders.write_atomically(os.path.abspath(output_dir), write)


def run_space(
    saved_model,
    contrib_dir,
    motif_a: tuple[str, str],
    motif_b: tuple[str, str],
    output_dir,
    *,
    max_distance=150,
    num_backgrounds=64,
    batch_size=64,
    seed=0,
    overwrite=False,
) -> dict[str, Any]:
    """The spacing experiment of two (name, sequence) motifs; writes the space folder."""
    start = time.perf_counter()
    if max_distance < 1:
        raise insilico.InSilicoError(f'--max_distance must be >= 1, got {max_distance}')
    check_backgrounds(num_backgrounds)
    model, _, bg = _setup(
        saved_model, contrib_dir, output_dir, overwrite, num_backgrounds, batch_size, seed
    )
    limit = model.config.sequence_length // 2 - len(motif_b[1])
    if max_distance > limit:
        raise insilico.InSilicoError(
            f'--max_distance {max_distance} puts motif B past the window end (at most {limit})'
        )
    print(
        f'space: {motif_a[0]} + {motif_b[0]} at distances up to {max_distance} bp over '
        f'{num_backgrounds} backgrounds',
        file=sys.stderr,
        flush=True,
    )
    spacing = insilico.space(model, motif_a[1], motif_b[1], range(max_distance + 1), bg, batch_size)
    tasks = _tasks(model)
    ranges = {t: insilico.interaction_range(spacing, i) for i, t in enumerate(tasks)}

    def write(tmp):
        _write_spacing_tsv(os.path.join(tmp, 'spacing.tsv'), spacing, tasks)
        from bpnet_tfx.motifs import syntax_plots

        syntax_plots.spacing_png(
            os.path.join(tmp, 'spacing.png'), spacing, tasks, ranges, motif_a[0], motif_b[0]
        )
        summary = {
            'saved_model': os.path.abspath(saved_model),
            'motif_a': list(motif_a),
            'motif_b': list(motif_b),
            'backgrounds': num_backgrounds,
            'seed': seed,
            'max_distance': max_distance,
            'tasks': tasks,
            'interaction': ranges,
            'background_counts': spacing.background.tolist(),
            'seconds': round(time.perf_counter() - start, 1),
        }
        formats.write_json(os.path.join(tmp, 'summary.json'), summary)
        return summary

    return folders.write_atomically(os.path.abspath(output_dir), write)


def run_ablate(
    saved_model,
    scan_dir,
    output_dir,
    *,
    batch_size=64,
    seed=0,
    overwrite=False,
) -> dict[str, Any]:
    """Ablation of every scanned instance (instances.tsv rows); writes the ablate folder."""
    start = time.perf_counter()
    scan = instances.load_scan_summary(scan_dir)
    model, contrib, _ = _setup(
        saved_model, scan['contrib_dir'], output_dir, overwrite, None, batch_size, seed
    )
    hits = instances.load_hits(scan_dir, contrib['windows'])
    print(f'ablate: {len(hits)} hits in windows (instances.tsv rows)', file=sys.stderr, flush=True)
    change = insilico.ablate(model, contrib['one_hot'], hits, seed, batch_size)
    tasks = _tasks(model)
    per_pattern = {}
    for h, c in zip(hits, change):
        per_pattern.setdefault(h['pattern'], []).append(c)

    def write(tmp):
        _write_ablation_tsvs(tmp, hits, change, per_pattern, tasks)
        summary = {
            'saved_model': os.path.abspath(saved_model),
            'scan_dir': os.path.abspath(scan_dir),
            'instances': len(hits),
            'seed': seed,
            'tasks': tasks,
            'mean_log_counts_change': {
                p: np.mean(v, axis=0).tolist() for p, v in per_pattern.items()
            },
            'seconds': round(time.perf_counter() - start, 1),
        }
        formats.write_json(os.path.join(tmp, 'summary.json'), summary)
        return summary

    return folders.write_atomically(os.path.abspath(output_dir), write)
