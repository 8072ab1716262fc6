"""Scanned instances against known sites (the simulator's motif_sites.tsv, or any BED of
validated sites): precision and recall per motif and per target.

An instance finds a site when they overlap by at least half the shorter of the two. Each
pattern stands for the known motif most of its instances find (or none); per target, precision
is the share of its patterns' instances that find a site of their pattern's motif, and recall
the share of known sites inside the scanned windows found by such an instance.
"""

from __future__ import annotations

import collections
import csv
from typing import Any, Sequence

from bpnet_tfx.common.errors import BpnetError


def read_sites(path: str) -> list[tuple[str, int, int, str]]:
    """(chrom, start, end, motif) of a motif_sites.tsv (header '#chrom start end strand
    motif ...') or a BED whose 4th column names the motif."""
    out = []
    try:
        with open(path) as f:
            for number, line in enumerate(f, 1):
                if not line.strip() or line.startswith(('#', 'track', 'browser')):
                    continue
                cols = line.rstrip('\n').split('\t')
                motif = cols[4] if len(cols) >= 8 else cols[3]  # motif_sites.tsv or BED
                out.append((cols[0], int(cols[1]), int(cols[2]), motif))
    except (OSError, IndexError, ValueError) as e:
        raise BpnetError(f'{path}: cannot read sites ({e})') from None
    return out


def _finds(a_start, a_end, b_start, b_end) -> bool:
    overlap = min(a_end, b_end) - max(a_start, b_start)
    return overlap >= min(a_end - a_start, b_end - b_start) / 2


def recovery(
    instances: Sequence[dict[str, Any]],
    sites: Sequence[tuple[str, int, int, str]],
    windows: Sequence[Any],
) -> dict[str, Any]:
    """Precision and recall of `instances` (dicts with chrom, start, end, pattern; pattern
    '<target>/<name>') against `sites` within `windows` (objects with chrom, start, end).

    Returns:
      {target: {'precision', 'recall', 'instances', 'sites', 'patterns' ({pattern: motif}),
       'motifs' ({motif: {'precision', 'recall', 'instances', 'sites'}})}}.
    """
    by_chrom = collections.defaultdict(list)
    for w in windows:
        by_chrom[w.chrom].append((w.start, w.end))
    inside = [
        s for s in sites if any(lo <= s[1] and s[2] <= hi for lo, hi in by_chrom.get(s[0], ()))
    ]
    site_index = collections.defaultdict(list)
    for k, s in enumerate(inside):
        site_index[s[0]].append(k)

    def found(hit) -> list[int]:
        return [
            k
            for k in site_index.get(hit['chrom'], ())
            if _finds(hit['start'], hit['end'], inside[k][1], inside[k][2])
        ]

    hits_of = [(h, found(h)) for h in instances]
    out = {}
    for target in sorted({h['pattern'].split('/')[0] for h in instances}):
        mine = [(h, ks) for h, ks in hits_of if h['pattern'].split('/')[0] == target]
        votes: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        for h, ks in mine:
            votes[h['pattern']].update({inside[k][3] for k in ks})
        assigned = {p: (v.most_common(1)[0][0] if v else None) for p, v in votes.items()}
        for h, _ in mine:
            assigned.setdefault(h['pattern'], None)
        out[target] = _scores(mine, inside, assigned)
    return out


def _scores(mine, inside, assigned) -> dict[str, Any]:
    """Precision/recall overall and per motif for one target's hits."""
    true_hits = collections.Counter()
    all_hits = collections.Counter()
    found_sites = set()
    for h, ks in mine:
        motif = assigned[h['pattern']]
        all_hits[motif] += 1
        good = [k for k in ks if inside[k][3] == motif]
        if good:
            true_hits[motif] += 1
            found_sites.update(good)
    sites_of = collections.Counter(s[3] for s in inside)
    found_of = collections.Counter(inside[k][3] for k in found_sites)
    motifs = {
        m: {
            'precision': true_hits[m] / all_hits[m] if all_hits[m] else None,
            'recall': found_of[m] / sites_of[m],
            'instances': all_hits[m],
            'sites': sites_of[m],
        }
        for m in sorted(sites_of)
    }
    total = sum(all_hits.values())
    return {
        'precision': sum(true_hits.values()) / total if total else None,
        'recall': len(found_sites) / len(inside) if inside else None,
        'instances': total,
        'sites': len(inside),
        'patterns': assigned,
        'motifs': motifs,
    }


def write_table(path: str, result: dict[str, Any]) -> None:
    """The recovery as a TSV: target, motif (or 'all'), precision, recall, instances, sites."""
    with open(path, 'w', newline='') as f:
        w = csv.writer(f, delimiter='\t', lineterminator='\n')
        w.writerow(['target', 'motif', 'precision', 'recall', 'instances', 'sites'])
        for target, r in result.items():
            rows = [('all', r), *r['motifs'].items()]
            for motif, s in rows:
                w.writerow(
                    [
                        target,
                        motif,
                        _fmt(s['precision']),
                        _fmt(s['recall']),
                        s['instances'],
                        s['sites'],
                    ]
                )


def _fmt(x) -> str:
    return '' if x is None else f'{x:.4f}'
