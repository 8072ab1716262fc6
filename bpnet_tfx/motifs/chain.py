"""The interpretation chain in one folder, as bpnet-lite's `pipeline` runs it:

  contrib/          python -m bpnet_tfx.contrib's folder (contributions.compute_contributions)
  discover/         TF-MoDISco per target, MEME files, annotations.tsv (discovery, annotation)
  scan/             instances.bed, instances.tsv, counts.tsv (instances)
  marginalize/      each discovered motif in shuffled backgrounds (experiments), optional
  report.html       the report with matches and instance counts
  summary.json      what ran, with each step's summary

The whole folder is built beside `output_dir` and renamed into place once complete; the steps'
folders refer to each other by relative paths, so they keep working after the rename.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from bpnet_tfx.attribution import contributions
from bpnet_tfx.common import folders
from bpnet_tfx.common.errors import BpnetError
from bpnet_tfx.motifs import annotation, discovery, experiments, formats, html_report, instances


def _step(number: int, total: int, text: str) -> None:
    print(f'pipeline: step {number}/{total}: {text}', file=sys.stderr, flush=True)


def _check(output_dir: str, overwrite: bool, motif_db: str | None) -> None:
    """Raises BpnetError for an output folder in the way, an unreadable motif database or a
    missing modisco-lite, before hours of work."""
    if os.path.exists(output_dir) and not (overwrite and os.path.isdir(output_dir)):
        raise BpnetError(f'{output_dir} exists; pass --overwrite to replace it')
    if motif_db:
        from bpnet_tfx.motifs import meme

        meme.read_meme(motif_db)  # a bad database stops before hours of work
    discovery.import_modisco()


def _marginalize(saved_model: str, paths: dict[str, str], num_backgrounds: int) -> Any:
    """Step 4 of 5: each discovered motif in shuffled backgrounds; the summary's
    'marginalize'."""
    _step(4, 5, 'marginalization of each discovered motif')
    margin = experiments.run_marginalize(
        saved_model,
        paths['contrib'],
        experiments.discovered_motifs(paths['discover']),
        paths['marginalize'],
        num_backgrounds=num_backgrounds,
    )
    return margin['motifs']


def run_pipeline(
    saved_model: str,
    output_dir: str,
    *,
    records_dir: str | None = None,
    split: str = 'valid',
    regions_bed: str | None = None,
    fasta: str | None = None,
    motif_db: str | None = None,
    max_regions: int | None = None,
    contrib_options: dict[str, Any] | None = None,
    window: int = 400,
    max_seqlets: int = 2000,
    marginalize_backgrounds: int = 0,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Runs contrib -> discover -> annotate (with `motif_db`) -> scan -> [marginalize] ->
    report into `output_dir`. Returns the summary (also summary.json).

    Raises:
      BpnetError: bad arguments or inputs of any step (nothing is left behind).
    """
    start = time.perf_counter()
    output_dir, contrib_options = os.path.abspath(output_dir), contrib_options or {}
    _check(output_dir, overwrite, motif_db)
    total = 4 + bool(marginalize_backgrounds)
    regions = dict(records_dir=records_dir, split=split, regions_bed=regions_bed, fasta=fasta)

    def write(tmp: str) -> dict[str, Any]:
        paths = {k: os.path.join(tmp, k) for k in ('contrib', 'discover', 'scan', 'marginalize')}
        _step(1, total, 'contribution scores')
        contrib = contributions.compute_contributions(
            saved_model, paths['contrib'], **regions, max_regions=max_regions, **contrib_options
        )
        _step(2, total, 'motif discovery (TF-MoDISco)')
        found = discovery.discover(
            paths['contrib'], paths['discover'], window=window, max_seqlets=max_seqlets
        )
        annotated = annotation.annotate(paths['discover'], motif_db) if motif_db else None
        _step(3, total, 'CWM scanning')
        scanned = instances.scan(paths['discover'], paths['scan'])
        summary = {
            'saved_model': os.path.abspath(saved_model),
            'regions': contrib['regions'],
            'patterns': {t: len(v) for t, v in found['targets'].items()},
            'annotation': None if annotated is None else annotated['best'],
            'instances': scanned['instances'],
        }
        if marginalize_backgrounds:
            summary['marginalize'] = _marginalize(saved_model, paths, marginalize_backgrounds)
        _step(total, total, 'report')
        report = os.path.join(tmp, 'report.html')
        html_report.write_report(
            paths['discover'], output_html=report, instances=scanned['instances']
        )
        summary['seconds'] = round(time.perf_counter() - start, 1)
        formats.write_json(os.path.join(tmp, 'summary.json'), summary)
        return summary

    return folders.write_atomically(output_dir, write)
