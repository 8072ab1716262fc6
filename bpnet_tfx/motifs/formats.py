"""The motifs folders' formats: file names, the discovery summary and patterns, the
annotation table, reading a contribution folder. Discovery and annotation write these files;
the report, scanning and the in-silico experiments read them through this module."""

from __future__ import annotations

import csv
import json
import os
from typing import Any

from bpnet_tfx.attribution import output as contrib_output
from bpnet_tfx.common.errors import BpnetError
from bpnet_tfx.motifs import patterns

SUMMARY_FILENAME = 'summary.json'
MODISCO_FILENAME = 'modisco.h5'
MEME_FILENAME = 'motifs.meme'
REPORT_FILENAME = 'report.html'
ANNOTATIONS_FILENAME = 'annotations.tsv'
SIGNIFICANT_Q = 0.05  # a database match names a pattern only at this q-value or below


class DiscoveryError(BpnetError):
    """Bad flags or input of motif discovery."""


def load_contrib(contrib_dir: str) -> dict[str, Any]:
    """`contrib_output.load_outputs`, with one-line errors for a folder that is not one."""
    if not os.path.isdir(contrib_dir):
        raise DiscoveryError(f'{contrib_dir}: no such contribution folder')
    if not os.path.isfile(os.path.join(contrib_dir, contrib_output.SUMMARY_FILENAME)):
        raise DiscoveryError(
            f'{contrib_dir}: no {contrib_output.SUMMARY_FILENAME}; not a folder written by '
            'python -m bpnet_tfx.contrib'
        )
    try:
        return contrib_output.load_outputs(contrib_dir)
    except (OSError, KeyError, ValueError) as e:
        raise DiscoveryError(f'{contrib_dir}: cannot read the contribution folder: {e}') from None


def write_json(path: str, value: Any) -> None:
    with open(path, 'w') as f:
        json.dump(value, f, indent=2, sort_keys=True)
        f.write('\n')


def resolve(summary: dict[str, Any], key: str, folder: str) -> str:
    """The folder `summary[key]` names, found first by its path relative to `folder` (so
    folders moved together, like the pipeline's, keep finding each other)."""
    relative = summary.get(f'{key}_relative')
    if relative is not None and os.path.isdir(os.path.join(folder, relative)):
        return os.path.normpath(os.path.join(folder, relative))
    return summary[key]


def load_discovery(discover_dir: str) -> tuple[dict[str, Any], list[patterns.Pattern]]:
    """(summary, patterns of every target) of a discovery folder; the summary's
    'contrib_dir' resolved (`resolve`).

    Raises:
      DiscoveryError: not a discovery folder.
    """
    path = os.path.join(discover_dir, SUMMARY_FILENAME)
    try:
        with open(path) as f:
            summary = json.load(f)
        targets = dict(summary['targets'])
        summary['contrib_dir'] = resolve(summary, 'contrib_dir', discover_dir)
    except (OSError, ValueError, KeyError, TypeError):
        raise DiscoveryError(
            f'{discover_dir}: no readable {SUMMARY_FILENAME}; not a folder written by '
            'python -m bpnet_tfx.motifs discover'
        ) from None
    found = []
    for target in targets:
        h5 = os.path.join(discover_dir, target, MODISCO_FILENAME)
        found.extend(patterns.read_modisco_h5(h5, target, row_offset=summary['window_offset']))
    return summary, found


def load_matches(discover_dir: str) -> dict[str, list[dict[str, Any]]]:
    """annotations.tsv of a discovery folder as {pattern: rows best first}; {} if absent."""
    path = os.path.join(discover_dir, ANNOTATIONS_FILENAME)
    if not os.path.isfile(path):
        return {}
    out: dict[str, list[dict[str, Any]]] = {}
    with open(path, newline='') as f:
        for row in csv.DictReader(f, delimiter='\t'):
            out.setdefault(row['pattern'], []).append(row)
    return out
