"""Sequence logos and contribution tracks as inline SVG (no fonts, no plotting library).

Letters are drawn as fixed outlines in a unit box, scaled to their height, so a report looks
the same in every browser. Positive heights stack up from the axis and negative ones down,
each column's smallest letter nearest the axis.
"""

from __future__ import annotations

import html

import numpy as np

COLOURS = {'A': '#109648', 'C': '#255C99', 'G': '#F7B32B', 'T': '#D62839'}
# Outlines in a unit box, y down (0 = top of the letter); several paths per letter.
_GLYPHS = {
    'A': [
        'M0,1 L0.38,0 L0.62,0 L1,1 L0.78,1 L0.68,0.72 L0.32,0.72 L0.22,1 Z',
        'M0.38,0.56 L0.62,0.56 L0.5,0.22 Z',
    ],
    'C': ['M0.95,0.28 A0.5,0.5 0 1 0 0.95,0.72 L0.78,0.64 A0.31,0.33 0 1 1 0.78,0.36 Z'],
    'G': [
        'M0.95,0.28 A0.5,0.5 0 1 0 0.97,0.66 L0.8,0.6 A0.31,0.33 0 1 1 0.78,0.36 Z',
        'M0.52,0.5 L0.98,0.5 L0.98,0.66 L0.52,0.66 Z',
    ],
    'T': ['M0,0 L1,0 L1,0.17 L0.59,0.17 L0.59,1 L0.41,1 L0.41,0.17 L0,0.17 Z'],
}


def information_content(pfm: np.ndarray, pseudocount: float = 1e-3) -> np.ndarray:
    """Bits per position of a (W, 4) PFM against a uniform background."""
    p = (np.asarray(pfm, np.float64) + pseudocount) / (1 + 4 * pseudocount)
    p = p / p.sum(axis=1, keepdims=True)
    return 2 + (p * np.log2(p)).sum(axis=1)


def pfm_heights(pfm: np.ndarray) -> np.ndarray:
    """Letter heights of an information-content logo: frequency x bits."""
    pfm = np.asarray(pfm, np.float64)
    return pfm / pfm.sum(axis=1, keepdims=True) * information_content(pfm)[:, None]


def _letter(base: str, x: float, y: float, width: float, height: float) -> str:
    fill = COLOURS[base]
    transform = f'translate({x:.2f},{y:.2f}) scale({width:.2f},{height:.3f})'
    return ''.join(
        f'<path d="{d}" fill="{fill}" transform="{transform}" fill-rule="evenodd"/>'
        for d in _GLYPHS[base]
    )


def logo_svg(
    heights: np.ndarray,
    *,
    title: str = '',
    element_id: str = '',
    column_width: float = 16.0,
    height: float = 90.0,
    scale: float | None = None,
) -> str:
    """A logo of (W, 4) letter heights (ACGT) as an <svg> element.

    Args:
      heights: signed heights; positives stack above the axis, negatives below.
      title: text above the logo.
      element_id: the svg's id (for tests and the screenshot check).
      column_width: px per position.
      height: px of the plotting area.
      scale: value the full plotting area stands for (default: the largest stack).
    """
    heights = np.nan_to_num(np.asarray(heights, np.float64))
    pos = np.clip(heights, 0, None).sum(axis=1)
    neg = np.clip(heights, None, 0).sum(axis=1)
    has_neg = bool((neg < 0).any())
    span = scale or max(float(pos.max() - (neg.min() if has_neg else 0)), 1e-12)
    px = height / span
    top = 18.0
    axis = top + float(pos.max()) * px if has_neg else top + height
    width = column_width * len(heights) + 10
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="logo" id="{html.escape(element_id)}" '
        f'width="{width:.0f}" height="{top + height + 6:.0f}" '
        f'viewBox="0 0 {width:.0f} {top + height + 6:.0f}">',
        f'<text x="2" y="12" font-size="11" font-family="sans-serif">{html.escape(title)}</text>',
    ]
    for i, row in enumerate(heights):
        x = 5 + i * column_width
        up, down = axis, axis
        for b in np.argsort(np.abs(row)):  # smallest first, nearest the axis
            h = row[b] * px
            if h > 0:
                up -= h
                parts.append(_letter('ACGT'[b], x, up, column_width * 0.94, h))
            elif h < 0:
                parts.append(_letter('ACGT'[b], x, down, column_width * 0.94, -h))
                down -= h
    parts.append(
        f'<line x1="5" x2="{width - 5:.0f}" y1="{axis:.1f}" y2="{axis:.1f}" stroke="#888"/>'
    )
    parts.append('</svg>')
    return ''.join(parts)


def track_svg(
    values: np.ndarray,
    *,
    title: str = '',
    element_id: str = '',
    width: float = 600.0,
    height: float = 60.0,
    mark: tuple[int, int] | None = None,
) -> str:
    """A per-base track (e.g. contributions around a seqlet) as bars; `mark` shades
    [start, end)."""
    values = np.nan_to_num(np.asarray(values, np.float64))
    n = max(len(values), 1)
    step = width / n
    span = max(float(np.abs(values).max()), 1e-12)
    top, mid = 14.0, 14.0 + height / 2
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="track" id="{html.escape(element_id)}" '
        f'width="{width + 10:.0f}" height="{top + height + 4:.0f}">',
        f'<text x="2" y="11" font-size="10" font-family="sans-serif">{html.escape(title)}</text>',
    ]
    if mark is not None:
        parts.append(
            f'<rect x="{5 + mark[0] * step:.1f}" y="{top}" '
            f'width="{(mark[1] - mark[0]) * step:.1f}" height="{height}" fill="#eee"/>'
        )
    for i, v in enumerate(values):
        h = v / span * height / 2
        y = mid - h if h > 0 else mid
        colour = '#255C99' if v >= 0 else '#D62839'
        parts.append(
            f'<rect x="{5 + i * step:.2f}" y="{y:.2f}" width="{max(step * 0.9, 0.5):.2f}" '
            f'height="{abs(h):.2f}" fill="{colour}"/>'
        )
    parts.append(f'<line x1="5" x2="{width + 5:.0f}" y1="{mid}" y2="{mid}" stroke="#888"/>')
    parts.append('</svg>')
    return ''.join(parts)
