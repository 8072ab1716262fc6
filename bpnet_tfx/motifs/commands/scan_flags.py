"""The scan step's thresholds as flags, defined once for `motifs scan` and `motifs pipeline`.

`define(module_name)` defines them as flags of the calling command's module, so that its
`--help` lists them, and returns their holders; one command's module calls it, once.
"""

from __future__ import annotations

import dataclasses

from absl import flags


@dataclasses.dataclass(frozen=True)
class ScanFlags:
    """The holders of the scan thresholds' flags."""

    match_percentile: flags.FlagHolder
    contrib_percentile: flags.FlagHolder
    patterns: flags.FlagHolder
    min_seqlet_match: flags.FlagHolder


def define(module_name: str) -> ScanFlags:
    """The scan flags, defined as flags of `module_name`."""
    return ScanFlags(
        match_percentile=flags.DEFINE_float(
            'match_percentile',
            5.0,
            "Least match score, as a percentile of the pattern's own seqlets' scores (0-100).",
            module_name=module_name,
        ),
        contrib_percentile=flags.DEFINE_float(
            'contrib_percentile',
            1.0,
            "Least contribution (L1 over the motif), as a percentile of the seqlets' (0-100).",
            module_name=module_name,
        ),
        patterns=flags.DEFINE_list(
            'patterns',
            [],
            "Patterns to scan (e.g. 'profile/pos_0'); default: all.",
            module_name=module_name,
        ),
        min_seqlet_match=flags.DEFINE_float(
            'min_seqlet_match',
            0.5,
            'Skip patterns whose own seqlets match their CWM at a median below this (0: scan all).',
            module_name=module_name,
        ),
    )
