"""Figures of the in-silico experiments (matplotlib, Agg): marginalization profiles and the
spacing curve (BPNet Fig. 5-style)."""

from __future__ import annotations

from typing import Any

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    return plt


def marginalization_png(path: str, result: dict[str, Any], tasks: list[str]) -> None:
    """Per motif (rows) and task (columns), the mean change of the predicted profile around
    the insertion, plus strand up and minus strand down."""
    plt = _pyplot()
    names = list(result)
    fig, axes = plt.subplots(
        len(names), len(tasks), figsize=(4 * len(tasks), 2.2 * len(names)), squeeze=False
    )
    for r, name in enumerate(names):
        change = result[name]['profile_change']  # (positions, tasks, strands)
        x = np.arange(len(change)) - len(change) // 2
        for c, task in enumerate(tasks):
            ax = axes[r][c]
            ax.plot(x, change[:, c, 0], color='#255C99', label='+')
            if change.shape[-1] > 1:
                ax.plot(x, -change[:, c, 1], color='#D62839', label='- (flipped)')
            ax.axvline(0, color='#888', lw=0.5)
            d = result[name]['log_counts_change'][c]
            ax.set_title(f'{name} in {task}: log counts {d:+.2f}', fontsize=8)
            ax.tick_params(labelsize=7)
    axes[-1][0].set_xlabel('bp from the motif centre')
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def spacing_png(path, spacing, tasks, ranges, name_a: str, name_b: str) -> None:
    """Per task: counts change of the pair and of the sum of the singles against distance,
    and their ratio with the detected interaction range shaded."""
    plt = _pyplot()
    fig, axes = plt.subplots(2, len(tasks), figsize=(6 * len(tasks), 5), squeeze=False)
    d = spacing.distances
    for c, task in enumerate(tasks):
        top, bottom = axes[0][c], axes[1][c]
        top.plot(d, spacing.pair[:, c], label=f'{name_a} + {name_b} (pair)')
        top.plot(d, spacing.single_a[c] + spacing.single_b[:, c], label='sum of singles')
        top.set_ylabel('predicted counts change')
        top.set_title(task, fontsize=9)
        top.legend(fontsize=7)
        bottom.plot(d, spacing.ratio[:, c], color='k')
        bottom.axhline(1.0, color='#888', lw=0.5)
        lo, hi = ranges[task]['range']
        bottom.axvspan(
            lo,
            hi,
            color='#F7B32B',
            alpha=0.3,
            label=f'interaction {lo}-{hi} bp ({"+" if ranges[task]["sign"] > 0 else "-"})',
        )
        bottom.set_ylabel('pair / sum of singles')
        bottom.set_xlabel(f'{name_b} centre - {name_a} centre (bp)')
        bottom.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
