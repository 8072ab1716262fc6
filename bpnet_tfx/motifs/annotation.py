"""Annotation: each discovered pattern compared with a MEME motif database by TOMTOM.

The query is the pattern's PFM over its trimmed core (as modisco-lite's report does); the
statistics are TOMTOM's complete-score p-values of the best alignment (both strands, overhangs
allowed) from memelite (the `motifs` extra). Per pattern the `top` best database motifs are
written to annotations.tsv in the discovery folder with their p-value, E-value (p x the
database's size) and q-value (Benjamini-Hochberg over the database, per pattern).
"""

from __future__ import annotations

import csv
import os
import sys
import time
import warnings
from typing import Any

import numpy as np

from bpnet_tfx.common.errors import BpnetError
from bpnet_tfx.motifs import formats, kernels, meme, patterns

COLUMNS = (
    'pattern',
    'rank',
    'match',
    'match_alt',
    'p_value',
    'e_value',
    'q_value',
    'strand',
    'offset',
    'overlap',
)

MIN_RELIABLE_DATABASE = 25  # memelite: below this, p-values depend strongly on the targets


class AnnotationError(BpnetError):
    """Bad flags or input of annotation."""


def _tomtom():
    try:
        from memelite.tomtom import tomtom
    except ImportError as e:
        raise AnnotationError(
            f"memelite is not installed ({e}); install the motifs extra: pip install '.[motifs]'"
        ) from None
    return tomtom


def benjamini_hochberg(p_values: np.ndarray) -> np.ndarray:
    """q-values of a vector of p-values (Benjamini-Hochberg step-up), same order."""
    p = np.asarray(p_values, np.float64)
    n = p.size
    order = np.argsort(p)
    ranked = p[order] * n / np.arange(1, n + 1)
    q = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(n)
    out[order] = np.minimum(q, 1.0)
    return out


def match_patterns(
    queries: list[patterns.Pattern], database: list[meme.Motif], top: int
) -> dict[str, list[dict[str, Any]]]:
    """{pattern name: its `top` best database matches, best first}."""
    tomtom = _tomtom()
    kernels.warm_tomtom(tomtom, 'annotate')  # a first compilation is a phase with its lines
    qs = [np.ascontiguousarray(p.trimmed().pfm.T) for p in queries]
    ts = [np.ascontiguousarray(m.pfm.T) for m in database]
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # the small-database warning is ours to give
        p_values, _, offsets, overlaps, strands = tomtom(qs, ts)
    out = {}
    for i, pattern in enumerate(queries):
        q_values = benjamini_hochberg(p_values[i])
        best = np.argsort(p_values[i], kind='stable')[:top]
        out[pattern.name] = [
            {
                'pattern': pattern.name,
                'rank': rank,
                'match': database[j].name,
                'match_alt': database[j].alt_name,
                'p_value': float(p_values[i, j]),
                'e_value': float(p_values[i, j] * len(database)),
                'q_value': float(q_values[j]),
                'strand': '-' if strands[i, j] else '+',
                'offset': int(offsets[i, j]),
                'overlap': int(overlaps[i, j]),
            }
            for rank, j in enumerate(best, 1)
        ]
    return out


def check_inputs(motif_db: str, top: int) -> list[meme.Motif]:
    """The database's motifs, after checking `top`, the database and that memelite is
    installed; raises AnnotationError or MemeError."""
    if top < 1:
        raise AnnotationError(f'--top must be >= 1, got {top}')
    database = meme.read_meme(motif_db)
    _tomtom()
    return database


def annotate(discover_dir: str, motif_db: str, *, top: int = 3) -> dict[str, Any]:
    """Matches every pattern of a discovery folder against `motif_db`; writes
    annotations.tsv there and re-renders its report.html with the matches.

    Returns:
      {'patterns', 'database_motifs', 'best' ({pattern: best match label, or None when its
       q-value exceeds formats.SIGNIFICANT_Q}), 'best_q', 'seconds',
       'output'}.

    Raises:
      AnnotationError: bad `top`, no memelite; MemeError for a bad database;
        DiscoveryError for a folder that is not a discovery folder.
    """
    start = time.perf_counter()
    summary, found = formats.load_discovery(discover_dir)
    database = check_inputs(motif_db, top)
    if not found:
        raise AnnotationError(f'{discover_dir}: no pattern to annotate')
    if len(database) < MIN_RELIABLE_DATABASE:
        print(
            f'annotate: warning: {motif_db} holds {len(database)} motifs; TOMTOM p-values '
            f'use the database as background and are unreliable below {MIN_RELIABLE_DATABASE}',
            file=sys.stderr,
        )
    matches = match_patterns(found, database, min(top, len(database)))
    path = os.path.join(discover_dir, formats.ANNOTATIONS_FILENAME)
    tmp = f'{path}.tmp-{os.getpid()}'
    with open(tmp, 'w', newline='') as f:
        writer = csv.DictWriter(f, COLUMNS, delimiter='\t', lineterminator='\n')
        writer.writeheader()
        for rows in matches.values():
            for row in rows:
                writer.writerow(
                    {k: (f'{v:.4g}' if isinstance(v, float) else v) for k, v in row.items()}
                )
    os.replace(tmp, path)
    from bpnet_tfx.motifs import html_report

    html_report.write_report(discover_dir)
    return {
        'patterns': len(found),
        'database_motifs': len(database),
        'best': {
            name: (rows[0]['match_alt'] or rows[0]['match'])
            if rows[0]['q_value'] <= formats.SIGNIFICANT_Q
            else None
            for name, rows in matches.items()
        },
        'best_q': {name: rows[0]['q_value'] for name, rows in matches.items()},
        'seconds': time.perf_counter() - start,
        'output': path,
    }
