"""The first use of modisco-lite's and memelite's numba kernels, announced.

Both packages compile their numba kernels the first time a process calls them: minutes that
would otherwise pass without a line. modisco-lite compiles them in forked children while its
first run goes on and keeps them in numba's cache, so a later process loads them quickly:
`modisco_note` is the note for the line before a process's first TF-MoDISco run. memelite's
TOMTOM caches its kernels on first use: `warm_tomtom` runs it once on two tiny motifs between
a line before and a line after, so its compilation is a phase of its own.
"""

from __future__ import annotations

import sys
import time
import warnings
from typing import Callable

import numpy as np

_USED = {'modisco': False, 'tomtom': False}  # kernels loaded in this process


def modisco_note() -> str:
    """Said before a TF-MoDISco run: that the first run of a process loads (and the first
    run of an install compiles) modisco-lite's kernels; '' once one has run."""
    if _USED['modisco']:
        return ''
    return (
        "; this first run also loads modisco-lite's numba kernels (compiled on first use, "
        'a minute or two, then cached)'
    )


def modisco_ran() -> None:
    """Records that TF-MoDISco has run in this process (its kernels are loaded)."""
    _USED['modisco'] = True


def _tiny_pfm(width: int) -> np.ndarray:
    """A (4, width) float64 PFM, laid out as `annotation.match_patterns` passes them."""
    x = np.arange(1, 4 * width + 1, dtype=np.float64).reshape(width, 4) % 7 + 1
    return np.ascontiguousarray((x / x.sum(1, keepdims=True)).T)


def warm_tomtom(tomtom: Callable, label: str) -> None:
    """Calls `tomtom` once on two tiny motifs, with a progress line before and after, the
    first time in this process."""
    if _USED['tomtom']:
        return
    print(
        f"{label}: loading TOMTOM (memelite): its numba kernels compile on first use "
        "(minutes), then load from numba's cache ...",
        file=sys.stderr,
        flush=True,
    )
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        tomtom([_tiny_pfm(6)], [_tiny_pfm(8)])
    _USED['tomtom'] = True
    print(
        f'{label}: TOMTOM ready in {time.perf_counter() - start:.1f} s',
        file=sys.stderr,
        flush=True,
    )
