"""The scan command's run: every pattern of a discovery folder scanned over a contribution
folder's windows (`scanning`), written as one folder.

  instances.bed     BED6 in genome coordinates, one line per instance (an instance found
                    in two overlapping windows once, with its best match); name = pattern,
                    score = round(1000 x match); sorted by chromosome name and start, so it
                    does not depend on the regions' order
  instances.tsv     every hit per window: region, row, chrom, start, end, strand, pattern,
                    match, contribution, and both as percentiles of the pattern's seqlets
  counts.tsv        per window (regions.bed order), the number of instances of each pattern
  summary.json      settings, per pattern its thresholds and instance count

An instance count is always a count of instances.bed lines: genomic sites (chrom, start,
strand) of a pattern, each once however many overlapping windows hold it. The progress
lines, summary.json and the report count them so; instances.tsv and counts.tsv have a row or
count per window, so a site in two windows is there twice ('window_hits' in summary.json).
"""

from __future__ import annotations

import csv
import os
import sys
import time
from typing import Any

import numpy as np

from bpnet_tfx.common import folders
from bpnet_tfx.common.errors import BpnetError
from bpnet_tfx.motifs import formats, scanning

BED_FILENAME = 'instances.bed'
TSV_FILENAME = 'instances.tsv'
COUNTS_FILENAME = 'counts.tsv'
SUMMARY_FILENAME = 'summary.json'


class ScanError(BpnetError):
    """Bad flags or input of the scan command."""


def check_thresholds(match_percentile: float, contrib_percentile: float) -> None:
    """Raises ScanError for a percentile outside 0..100."""
    if not 0 <= match_percentile <= 100:
        raise ScanError(f'--match_percentile must be within 0..100, got {match_percentile}')
    if not 0 <= contrib_percentile <= 100:
        raise ScanError(f'--contrib_percentile must be within 0..100, got {contrib_percentile}')


def _check(output_dir, overwrite, match_percentile, contrib_percentile):
    if os.path.exists(output_dir) and not (overwrite and os.path.isdir(output_dir)):
        raise ScanError(f'{output_dir} exists; pass --overwrite to replace it')
    check_thresholds(match_percentile, contrib_percentile)


def scan(
    discover_dir: str,
    output_dir: str,
    *,
    contrib_dir: str | None = None,
    match_percentile: float = 5.0,
    contrib_percentile: float = 1.0,
    patterns_wanted: list[str] | None = None,
    min_seqlet_match: float = 0.5,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Scans the discovery folder's patterns over `contrib_dir` (default: the one they were
    discovered in) and writes the folder above.

    Thresholds always come from the seqlets in the discovery's own contribution folder; the
    scanned folder must have the same targets. A pattern whose own seqlets match its CWM at a
    median below `min_seqlet_match` is not scanned (a CWM that does not describe its seqlets
    would call instances anywhere; such patterns are small, incoherent clusters) and is listed
    under 'skipped' with that median.

    Returns:
      The summary (also summary.json), with 'instances' per pattern and 'seconds'.

    Raises:
      ScanError, DiscoveryError: bad arguments or folders; no instance found at all.
    """
    start_time = time.perf_counter()
    output_dir = os.path.abspath(output_dir)
    _check(output_dir, overwrite, match_percentile, contrib_percentile)
    summary, found = formats.load_discovery(discover_dir)
    found = _select_patterns(discover_dir, found, patterns_wanted)
    source = formats.load_contrib(summary['contrib_dir'])
    scanned = formats.load_contrib(contrib_dir) if contrib_dir else source
    _check_targets(contrib_dir, found, scanned)
    settings = (match_percentile, contrib_percentile, min_seqlet_match)
    results, skipped = _scan_all(found, source, scanned, settings, discover_dir)
    total = sum(len(h.row) for *_, h in results)
    if total == 0:
        raise ScanError(
            f'no instance of {len(found)} patterns in {len(scanned["windows"])} windows '
            f'({len(skipped)} skipped as incoherent); lower --match_percentile / '
            '--contrib_percentile / --min_seqlet_match'
        )
    scanned_dir = contrib_dir or summary['contrib_dir']
    out = _summary(discover_dir, scanned_dir, output_dir, scanned, settings, skipped, results)

    def write(tmp: str) -> dict[str, Any]:
        out['instances'] = _write_outputs(tmp, scanned['windows'], results)
        out['seconds'] = round(time.perf_counter() - start_time, 1)
        formats.write_json(os.path.join(tmp, SUMMARY_FILENAME), out)
        return out

    return folders.write_atomically(output_dir, write)


def _summary(discover_dir, contrib_dir, output_dir, scanned, settings, skipped, results):
    """summary.json of a scan folder, less 'instances' and 'seconds'."""
    match_percentile, contrib_percentile, min_seqlet_match = settings
    return {
        'discover_dir': os.path.abspath(discover_dir),
        'discover_dir_relative': os.path.relpath(discover_dir, output_dir),
        'contrib_dir': os.path.abspath(contrib_dir),
        'contrib_dir_relative': os.path.relpath(contrib_dir, output_dir),
        'windows': len(scanned['windows']),
        'match_percentile': match_percentile,
        'contrib_percentile': contrib_percentile,
        'min_seqlet_match': min_seqlet_match,
        'skipped': skipped,
        'patterns': _pattern_summaries(results, scanned['windows']),
    }


def _select_patterns(discover_dir, found, patterns_wanted):
    """The discovered patterns named in `patterns_wanted` (all when None or empty), in
    discovery order; ScanError for an unknown name or nothing to scan."""
    if patterns_wanted:
        known = {p.name for p in found}
        missing = [n for n in patterns_wanted if n not in known]
        if missing:
            raise ScanError(
                f'{discover_dir} has no pattern {missing[0]!r} (it has {", ".join(sorted(known))})'
            )
        found = [p for p in found if p.name in patterns_wanted]
    if not found:
        raise ScanError(f'{discover_dir}: no pattern to scan')
    return found


def _check_targets(contrib_dir, found, scanned) -> None:
    """ScanError unless the scanned contributions have every pattern's target."""
    for p in found:
        if p.target not in scanned['hyp']:
            raise ScanError(
                f'{contrib_dir}: no target {p.target!r} for pattern {p.name} '
                f'(it has {", ".join(scanned["hyp"])})'
            )


def instance_sites(windows, hits) -> set[tuple[str, int, int]]:
    """The genomic sites (chrom, start, strand) of one pattern's hits: its instances, each
    once whichever windows hold it (the module docstring's instance count)."""
    return {
        (windows[int(r)].chrom, windows[int(r)].start + int(s), int(strand))
        for r, s, strand in zip(hits.row, hits.start, hits.strand)
    }


def _pattern_summaries(results, windows) -> dict[str, dict[str, Any]]:
    """The summary's 'patterns': per scanned pattern its core, width, thresholds, instances
    and hits in windows."""
    return {
        p.name: {
            'core': list(p.core()),
            'width': len(core.cwm),
            'match_threshold': t.match,
            'contribution_threshold': t.contribution,
            'seqlets': len(t.seqlet_match),
            'instances': len(instance_sites(windows, h)),
            'window_hits': int(len(h.row)),
        }
        for p, core, t, h in results
    }


def _scan_all(found, source, scanned, settings, discover_dir):
    """([(pattern, trimmed pattern, thresholds, hits)], {skipped pattern: median seqlet
    match}) with progress lines; `settings` = (match percentile, contribution percentile,
    least median seqlet match); thresholds from `source` (the discovery's contributions),
    hits in `scanned`."""
    match_percentile, contrib_percentile, min_seqlet_match = settings
    results, skipped = [], {}
    for i, p in enumerate(found, 1):
        core = p.trimmed()
        try:
            thresholds = scanning.seqlet_thresholds(
                core, _observed(source, p.target), match_percentile, contrib_percentile
            )
        except ValueError as e:
            raise ScanError(f'{discover_dir}: {e}') from None
        median = float(np.median(thresholds.seqlet_match))
        if median < min_seqlet_match:
            skipped[p.name] = round(median, 4)
            print(
                f'scan: {i}/{len(found)} patterns: {p.name}: skipped, its {len(p.seqlets)} '
                f'seqlets match its CWM at a median {median:.2f} < --min_seqlet_match',
                file=sys.stderr,
                flush=True,
            )
            continue
        hits = scanning.find_hits(core, _observed(scanned, p.target), thresholds)
        results.append((p, core, thresholds, hits))
        sites = len(instance_sites(scanned['windows'], hits))
        in_windows = f', {len(hits.row)} hits in windows' if len(hits.row) != sites else ''
        print(
            f'scan: {i}/{len(found)} patterns: {p.name}: {sites} instances{in_windows} '
            f'(match >= {thresholds.match:.3f}, contribution >= {thresholds.contribution:.3g})',
            file=sys.stderr,
            flush=True,
        )
    return results, skipped


def _observed(contrib: dict[str, Any], target: str) -> np.ndarray:
    return contrib['hyp'][target] * contrib['one_hot']


def _write_outputs(folder, windows, results) -> dict[str, int]:
    """Writes instances.tsv, instances.bed and counts.tsv; returns BED lines per pattern."""
    rows, counts = _instance_rows(windows, results)
    _write_tsv(folder, rows)
    per_pattern = _write_bed(folder, rows, [p.name for p, *_ in results])
    with open(os.path.join(folder, COUNTS_FILENAME), 'w', newline='') as f:
        writer = csv.writer(f, delimiter='\t', lineterminator='\n')
        writer.writerow(['region', 'chrom', 'start', 'end'] + [p.name for p, *_ in results])
        for w, c in zip(windows, counts):
            writer.writerow([w.name, w.chrom, w.start, w.end, *c.tolist()])
    return per_pattern


def _instance_rows(windows, results) -> tuple[list[tuple], np.ndarray]:
    """One row per instance in each window (chrom, start, end, pattern, strand, match,
    contribution, their percentiles, region, row), and instances per window and pattern."""
    rows = []
    counts = np.zeros((len(windows), len(results)), np.int64)
    for k, (p, core, thresholds, hits) in enumerate(results):
        width = len(core.cwm)
        match_p, contrib_p = thresholds.percentiles(hits.match, hits.contribution)
        np.add.at(counts[:, k], hits.row, 1)
        for j in range(len(hits.row)):
            w = windows[int(hits.row[j])]
            start = w.start + int(hits.start[j])
            rows.append(
                (
                    w.chrom,
                    start,
                    start + width,
                    p.name,
                    '+-'[int(hits.strand[j])],
                    float(hits.match[j]),
                    float(hits.contribution[j]),
                    float(match_p[j]),
                    float(contrib_p[j]),
                    w.name,
                    int(hits.row[j]),
                )
            )
    return rows, counts


def _write_tsv(folder: str, rows: list[tuple]) -> None:
    """instances.tsv: every instance in every window, in window order."""
    with open(os.path.join(folder, TSV_FILENAME), 'w', newline='') as f:
        writer = csv.writer(f, delimiter='\t', lineterminator='\n')
        writer.writerow(
            [
                'region',
                'row',
                'chrom',
                'start',
                'end',
                'strand',
                'pattern',
                'match',
                'contribution',
                'match_percentile',
                'contrib_percentile',
            ]
        )
        for chrom, start, end, name, strand, m, c, mp, cp, region, row in rows:
            writer.writerow(
                [
                    region,
                    row,
                    chrom,
                    start,
                    end,
                    strand,
                    name,
                    f'{m:.4f}',
                    f'{c:.5g}',
                    f'{100 * mp:.1f}',
                    f'{100 * cp:.1f}',
                ]
            )


def _write_bed(folder: str, rows: list[tuple], names: list[str]) -> dict[str, int]:
    """instances.bed: one line per genomic instance; returns the lines per pattern."""
    best: dict[tuple, tuple] = {}
    for r in rows:  # one BED line per genomic instance: the best match among windows
        key = r[:5]
        if key not in best or r[5] > best[key][5]:
            best[key] = r
    per_pattern: dict[str, int] = {name: 0 for name in names}
    with open(os.path.join(folder, BED_FILENAME), 'w') as f:  # sorted: not in region order
        for r in sorted(best.values(), key=lambda r: (r[0], r[1], r[3], r[4])):
            f.write(f'{r[0]}\t{r[1]}\t{r[2]}\t{r[3]}\t{round(1000 * max(r[5], 0))}\t{r[4]}\n')
            per_pattern[r[3]] += 1
    return per_pattern


def load_instances(scan_dir: str) -> list[dict[str, Any]]:
    """instances.bed of a scan folder as dicts (chrom, start, end, pattern, score, strand)."""
    path = os.path.join(scan_dir, BED_FILENAME)
    if not os.path.isfile(path):
        raise ScanError(f'{scan_dir}: no {BED_FILENAME}; not a folder written by motifs scan')
    out = []
    with open(path) as f:
        for line in f:
            chrom, start, end, name, score, strand = line.rstrip('\n').split('\t')
            out.append(
                {
                    'chrom': chrom,
                    'start': int(start),
                    'end': int(end),
                    'pattern': name,
                    'score': int(score),
                    'strand': strand,
                }
            )
    return out


def instance_counts(scan_dir: str) -> dict[str, int]:
    """Instances per pattern (BED lines) of a scan folder."""
    counts: dict[str, int] = {}
    for hit in load_instances(scan_dir):
        counts[hit['pattern']] = counts.get(hit['pattern'], 0) + 1
    return counts


def load_scan_summary(scan_dir: str) -> dict[str, Any]:
    """summary.json of a scan folder."""
    import json

    try:
        with open(os.path.join(scan_dir, SUMMARY_FILENAME)) as f:
            summary = json.load(f)
        summary['contrib_dir'] = formats.resolve(summary, 'contrib_dir', scan_dir)
    except (OSError, ValueError, KeyError, TypeError):
        raise ScanError(
            f'{scan_dir}: no readable {SUMMARY_FILENAME}; not a folder written by motifs scan'
        ) from None
    return summary


def load_hits(scan_dir: str, windows) -> list[dict[str, Any]]:
    """instances.tsv rows as dicts: region, row, chrom, genome_start, genome_end, strand,
    pattern, and start/end in the row's window."""
    path = os.path.join(scan_dir, TSV_FILENAME)
    out = []
    try:
        with open(path, newline='') as f:
            for r in csv.DictReader(f, delimiter='\t'):
                row = int(r['row'])
                w = windows[row]
                out.append(
                    {
                        'region': r['region'],
                        'row': row,
                        'chrom': r['chrom'],
                        'genome_start': int(r['start']),
                        'genome_end': int(r['end']),
                        'start': int(r['start']) - w.start,
                        'end': int(r['end']) - w.start,
                        'strand': r['strand'],
                        'pattern': r['pattern'],
                    }
                )
    except (OSError, KeyError, ValueError, IndexError) as e:
        raise ScanError(f'{path}: cannot read the instances ({e})') from None
    if not out:
        raise ScanError(f'{path}: no instance to ablate')
    return out
