"""Figures: predicted against observed profiles, one row of panels per task."""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

ROW_HEIGHT_PIXELS = 400
WIDTH_PIXELS = 1200
_DPI = 100
_PREDICTED_COLOURS = ('tab:blue', 'tab:orange')
_OBSERVED_COLOURS = ('0.6', '0.8')


def plot_profiles(
    path: str,
    title: str,
    positions: np.ndarray,
    probs: np.ndarray,
    observed: Sequence[np.ndarray | None] | None,
    *,
    tasks: Sequence[str] = ('',),
    strands: Sequence[str] = ('+', '-'),
    row_titles: Sequence[str] | None = None,
    span: str = 'window',
    boundaries: Sequence[int] = (),
) -> None:
    """One row per task: predicted probabilities against observed fractions.

    With two strands the plus strand points up and the minus strand down; with one
    (unstranded) the profile points up.

    Args:
      path: the PNG to write (1200 x 400 pixels per task).
      title: the figure title (with one task, followed by its row title).
      positions: (L,) genome coordinates of the rows.
      probs: (L, tasks, strands) predicted fraction of the span's counts per task and strand.
      observed: per task, (L, strands) observed counts, normalised here per strand, or None
        (not plotted); or None for no task.
      tasks: task names, one per row.
      strands: strand names (1 or 2), for the legend.
      row_titles: per task, the title of its row (default: the task name).
      span: what the fractions are of, for the axis label ('window' or 'region').
      boundaries: where tiled windows start, drawn as faint vertical lines.
    """
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    probs = np.asarray(probs)
    num_tasks, num_strands = probs.shape[1], probs.shape[2]
    if num_strands not in (1, 2):
        raise ValueError(f'plot_profiles draws 1 or 2 strands, got {num_strands}')
    if observed is None:
        observed = [None] * num_tasks
    row_titles = list(row_titles) if row_titles is not None else list(tasks)
    fig, axes = plt.subplots(
        num_tasks,
        1,
        squeeze=False,
        sharex=True,
        figsize=(WIDTH_PIXELS / _DPI, num_tasks * ROW_HEIGHT_PIXELS / _DPI),
        dpi=_DPI,
    )
    for t, ax in enumerate(axes[:, 0]):
        _draw_row(ax, positions, probs[:, t], observed[t], strands, boundaries)
        row_title = f'{title}  {row_titles[t]}' if num_tasks == 1 else row_titles[t]
        _label_row(ax, row_title, num_tasks, num_strands, span)
    axes[-1, 0].set_xlabel('position (bp)')
    if num_tasks > 1:
        fig.suptitle(title)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def _label_row(ax, row_title: str, num_tasks: int, num_strands: int, span: str) -> None:
    """A row's axis label, title, legend and plain x ticks."""
    how = '\n(+ strand up, - strand down)' if num_strands == 2 else ''
    ax.set_ylabel(f'fraction of {span} counts{how}')
    ax.set_title(row_title, fontsize=10 if num_tasks > 1 else None)
    ax.legend(loc='upper right', fontsize=8, ncol=num_strands)
    ax.ticklabel_format(axis='x', style='plain', useOffset=False)


def _draw_row(
    ax,
    positions: np.ndarray,
    probs: np.ndarray,
    observed: np.ndarray | None,
    strands: Sequence[str],
    boundaries: Sequence[int],
) -> None:
    """Draws one task's curves on `ax`: observed fractions (if any) filled, predicted
    probabilities as lines, the minus strand (of two) pointing down, window starts dotted.

    Args:
      probs: (L, strands) predicted fractions of one task.
      observed: (L, strands) observed counts of that task, normalised here per strand, or None.
    """
    signs = (1, -1) if probs.shape[1] == 2 else (1,)
    if observed is not None:
        totals = observed.sum(axis=0)
        norm = observed / np.where(totals > 0, totals, 1.0)
        for s, sign in enumerate(signs):
            ax.fill_between(
                positions,
                sign * norm[:, s],
                step='mid',
                color=_OBSERVED_COLOURS[s],
                label=f'observed {strands[s]}',
            )
    for s, sign in enumerate(signs):
        ax.plot(
            positions,
            sign * probs[:, s],
            color=_PREDICTED_COLOURS[s],
            lw=1.2,
            label=f'predicted {strands[s]}',
        )
    for x in boundaries:
        ax.axvline(x, color='0.5', lw=0.5, ls=':')
    ax.axhline(0, color='black', lw=0.5)
