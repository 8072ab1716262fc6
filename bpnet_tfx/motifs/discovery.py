"""Motif discovery: TF-MoDISco (modisco-lite) on each target of a contribution folder.

For every target of `python -m bpnet_tfx.contrib`'s folder (the profile and counts heads, per
task), modisco-lite runs on the central `window` bp of every row, as `modisco motifs -w`
does, with its own defaults otherwise (2 Leiden runs, seqlet FDR 0.05). The folder written:

  <target>/modisco.h5     modisco-lite's results, readable by its own tools
  <target>/motifs.meme    one MEME motif per pattern: its PFM over the trimmed core
  summary.json            inputs, settings, per target the patterns and seqlet counts
  report.html             the self-contained report (`html_report.write_report`)

modisco-lite is the `motifs` extra (`pip install '.[motifs]'`); without it discovery stops
with one line saying so. It runs in this process; its numba kernels compile on first use
(`kernels`), which the line before the first target says.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import time
from typing import Any

import numpy as np

from bpnet_tfx.common import folders
from bpnet_tfx.motifs import formats, kernels, meme, patterns
from bpnet_tfx.motifs.formats import DiscoveryError  # noqa: F401 (raised here)

MIN_WINDOW = 2 * 20  # bp: modisco-lite's 20-bp sliding window, with room on both sides


def import_modisco():
    """modisco-lite's TFMoDISco module, or a DiscoveryError naming the extra to install."""
    try:
        from modiscolite import io as modisco_io
        from modiscolite import tfmodisco
    except ImportError as e:
        raise DiscoveryError(
            f'modisco-lite is not installed ({e}); install the motifs extra: '
            "pip install '.[motifs]'"
        ) from None
    return tfmodisco, modisco_io


def crop_offset(length: int, window: int) -> int:
    """bp from a row's start to its central `window` bp (modisco-lite's `-w` crop)."""
    return length // 2 - window // 2


def check_settings(window: int, max_seqlets: int, max_regions: int | None) -> None:
    """Raises DiscoveryError for settings no contribution folder can take."""
    if max_seqlets < 1:
        raise DiscoveryError(f'--max_seqlets must be >= 1, got {max_seqlets}')
    if window < MIN_WINDOW:
        raise DiscoveryError(f'--window must be at least {MIN_WINDOW} bp, got {window}')
    if max_regions is not None and max_regions < 1:
        raise DiscoveryError(f'--max_regions must be >= 1, got {max_regions}')


def _check(contrib, targets, window, max_seqlets, output_dir, overwrite, contrib_dir):
    """The targets to run, after checking every argument; raises DiscoveryError."""
    if os.path.exists(output_dir) and not (overwrite and os.path.isdir(output_dir)):
        raise DiscoveryError(f'{output_dir} exists; pass --overwrite to replace it')
    length = contrib['one_hot'].shape[1]
    if not MIN_WINDOW <= window <= length:
        raise DiscoveryError(
            f'--window must be between 40 and the windows\' length ({length} bp), got {window}'
        )
    known = list(contrib['hyp'])
    chosen = targets or known
    unknown = [t for t in chosen if t not in known]
    if unknown:
        raise DiscoveryError(
            f'{contrib_dir} has no target {unknown[0]!r} (it has {", ".join(known)})'
        )
    return chosen


def _run_modisco(tfmodisco, one_hot, hyp, max_seqlets, verbose):
    """TFMoDISco with `modisco motifs`' defaults; its prints are hidden unless `verbose`."""
    sink = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
    with sink:
        return tfmodisco.TFMoDISco(
            one_hot=one_hot,
            hypothetical_contribs=hyp,
            max_seqlets_per_metacluster=max_seqlets,
            sliding_window_size=20,
            flank_size=5,
            trim_to_window_size=30,
            initial_flank_to_add=10,
            final_flank_to_add=0,
            target_seqlet_fdr=0.05,
            n_leiden_runs=2,
            verbose=verbose,
        )


def discover_target(
    contrib: dict[str, Any], target: str, folder: str, window: int, max_seqlets: int, verbose
) -> list[patterns.Pattern]:
    """Runs modisco-lite on one target; writes <target>/modisco.h5 and motifs.meme under
    `folder`; returns the patterns (seqlet coordinates in the full windows)."""
    tfmodisco, modisco_io = import_modisco()
    length = contrib['one_hot'].shape[1]
    lo = crop_offset(length, window)
    one_hot = np.ascontiguousarray(contrib['one_hot'][:, lo : lo + window], np.float32)
    hyp = np.ascontiguousarray(contrib['hyp'][target][:, lo : lo + window], np.float32)
    pos, neg = _run_modisco(tfmodisco, one_hot, hyp, max_seqlets, verbose)
    os.makedirs(os.path.join(folder, target))
    h5 = os.path.join(folder, target, formats.MODISCO_FILENAME)
    modisco_io.save_hdf5(h5, pos, neg, window)
    found = patterns.read_modisco_h5(h5, target, row_offset=lo)
    meme.write_meme(
        os.path.join(folder, target, formats.MEME_FILENAME), [p.meme_motif() for p in found]
    )
    return found


def _discover_all(contrib, chosen, folder, window, max_seqlets, verbose):
    """{target: its patterns} of every chosen target, with a line before and after each (the
    first in a process also compiles modisco-lite's numba kernels)."""
    found: dict[str, list[patterns.Pattern]] = {}
    rows = len(contrib['one_hot'])
    for i, target in enumerate(chosen, 1):
        t0 = time.perf_counter()
        print(
            f'discover: {i}/{len(chosen)} targets: {target}: TF-MoDISco on {rows} rows x '
            f'{window} bp{kernels.modisco_note()} ...',
            file=sys.stderr,
            flush=True,
        )
        found[target] = discover_target(contrib, target, folder, window, max_seqlets, verbose)
        kernels.modisco_ran()
        seqlets = sum(len(p.seqlets) for p in found[target])
        print(
            f'discover: {i}/{len(chosen)} targets: {target}: {len(found[target])} patterns '
            f'from {seqlets} seqlets in {time.perf_counter() - t0:.0f} s',
            file=sys.stderr,
            flush=True,
        )
    return found


def _no_pattern_hints(contrib, window, max_regions, rows, all_rows) -> str:
    """What may help when modisco-lite finds no pattern, naming only this command's flags."""
    length = int(contrib['one_hot'].shape[1])
    hints = []
    if max_regions is not None and rows == max_regions:
        hints.append(f'raise --max_regions (now {max_regions} of {all_rows} rows)')
    elif contrib['summary'].get('max_regions') == all_rows:
        hints.append(f'score more regions with contrib (it scored only the first {all_rows})')
    if window < length:
        hints.append(f'widen --window (now {window} of {length} bp)')
    return ' or '.join(hints) or 'every region was used in full: train the model longer'


def pattern_summary(p: patterns.Pattern) -> dict[str, Any]:
    """The summary.json entry of one pattern."""
    lo, hi = p.core()
    return {
        'name': p.name,
        'sign': p.sign,
        'seqlets': len(p.seqlets),
        'width': len(p.cwm),
        'core': [lo, hi],
        'consensus': p.trimmed().consensus(),
    }


def _shapes(contrib: dict[str, Any], window: int, max_seqlets: int) -> dict[str, int]:
    """summary.json's rows, sequence length, window (and its offset) and max_seqlets."""
    length = int(contrib['one_hot'].shape[1])
    return {
        'rows': len(contrib['one_hot']),
        'sequence_length': length,
        'window': window,
        'window_offset': crop_offset(length, window),
        'max_seqlets': max_seqlets,
    }


def discover(
    contrib_dir: str,
    output_dir: str,
    *,
    targets: list[str] | None = None,
    window: int = 400,
    max_seqlets: int = 2000,
    max_regions: int | None = None,
    overwrite: bool = False,
    verbose: bool = False,
) -> dict[str, Any]:
    """Runs TF-MoDISco on each target of a contribution folder and writes the folder above.

    Args:
      contrib_dir: written by `python -m bpnet_tfx.contrib`.
      output_dir: the folder to create (appears only once complete).
      targets: targets to run (None: all of the folder's).
      window: central bp of each row given to modisco-lite.
      max_seqlets: seqlets per metacluster at most (modisco-lite's `-n`).
      max_regions: only the first this many rows (None: all).
      overwrite: replace an existing `output_dir`.
      verbose: show modisco-lite's own output.

    Returns:
      The summary (also written as summary.json), with 'seconds'.

    Raises:
      DiscoveryError: bad arguments, an unreadable contribution folder, no modisco-lite, or
        no pattern found in any target.
    """
    start_time = time.perf_counter()
    output_dir = os.path.abspath(output_dir)
    check_settings(window, max_seqlets, max_regions)
    contrib = formats.load_contrib(contrib_dir)
    chosen = _check(contrib, targets, window, max_seqlets, output_dir, overwrite, contrib_dir)
    all_rows = len(contrib['one_hot'])
    if max_regions is not None:
        contrib['one_hot'] = contrib['one_hot'][:max_regions]
        contrib['hyp'] = {k: v[:max_regions] for k, v in contrib['hyp'].items()}
    import_modisco()  # before any work: a missing extra is a one-line error
    rows = len(contrib['one_hot'])

    def write(tmp: str) -> dict[str, Any]:
        found = _discover_all(contrib, chosen, tmp, window, max_seqlets, verbose)
        if not any(found.values()):
            raise DiscoveryError(
                f'{contrib_dir}: modisco-lite found no pattern in {rows} rows of '
                f'{", ".join(chosen)}; '
                + _no_pattern_hints(contrib, window, max_regions, rows, all_rows)
            )
        summary = {
            'contrib_dir': os.path.abspath(contrib_dir),
            'contrib_dir_relative': os.path.relpath(contrib_dir, output_dir),
            **_shapes(contrib, window, max_seqlets),
            'targets': {t: [pattern_summary(p) for p in ps] for t, ps in found.items()},
            'seconds': round(time.perf_counter() - start_time, 1),
        }
        formats.write_json(os.path.join(tmp, formats.SUMMARY_FILENAME), summary)
        from bpnet_tfx.motifs import html_report

        html_report.write_report(tmp, contrib=contrib)
        return summary

    return folders.write_atomically(output_dir, write)
