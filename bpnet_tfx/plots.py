"""Figures: predicted against observed stranded profiles."""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np


def plot_profiles(path: str, title: str, positions: np.ndarray, probs: np.ndarray,
                  observed: np.ndarray | None, *, span: str = 'window',
                  boundaries: Sequence[int] = ()) -> None:
    """Plus strand up, minus strand down: predicted probabilities vs observed fractions.

    Args:
      path: the PNG to write (1200 x 400 pixels).
      title: the figure title.
      positions: (L,) genome coordinates of the rows.
      probs: (L, 2) predicted fraction of the span's counts per strand.
      observed: (L, 2) observed counts, normalised here per strand; or None.
      span: what the fractions are of, for the axis label ('window' or 'region').
      boundaries: where tiled windows start, drawn as faint vertical lines.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(12, 4), dpi=100)
    if observed is not None:
        totals = observed.sum(axis=0)
        norm = observed / np.where(totals > 0, totals, 1.0)
        ax.fill_between(positions, norm[:, 0], step='mid', color='0.6', label='observed +')
        ax.fill_between(positions, -norm[:, 1], step='mid', color='0.8', label='observed -')
    ax.plot(positions, probs[:, 0], color='tab:blue', lw=1.2, label='predicted +')
    ax.plot(positions, -probs[:, 1], color='tab:orange', lw=1.2, label='predicted -')
    for x in boundaries:
        ax.axvline(x, color='0.5', lw=0.5, ls=':')
    ax.axhline(0, color='black', lw=0.5)
    ax.set_xlabel('position (bp)')
    ax.set_ylabel(f'fraction of {span} counts\n(+ strand up, - strand down)')
    ax.set_title(title)
    ax.legend(loc='upper right', fontsize=8, ncol=2)
    ax.ticklabel_format(axis='x', style='plain', useOffset=False)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
