"""The self-contained HTML report of a discovery folder: one file, logos as inline SVG.

Per target and pattern: seqlet count, sign, consensus, logos of the trimmed CWM, hypothetical
CWM and PFM (information content), best database matches (after `annotation`), instance counts
(after `scanning`), and a few example seqlets with the observed-base contribution track
around them. Nothing is fetched when the page opens.
"""

from __future__ import annotations

import html
import os
from typing import Any

import numpy as np

from bpnet_tfx.motifs import formats, logos, patterns

EXAMPLES = 3  # example seqlets shown per pattern
EXAMPLE_FLANK = 20  # bp of contribution track shown either side of an example seqlet

_STYLE = """
body { font-family: sans-serif; margin: 20px; color: #222; }
table { border-collapse: collapse; margin: 8px 0; }
td, th { border: 1px solid #ccc; padding: 3px 8px; font-size: 13px; text-align: left; }
.pattern { border-top: 2px solid #999; margin-top: 18px; padding-top: 6px; }
.logos { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-end; }
.neg { color: #b00; }
code { font-size: 13px; }
"""


def _examples(p: patterns.Pattern, core: patterns.Pattern, contrib) -> str:
    """SVG tracks of the first few seqlets' observed-base contributions (flanks included)."""
    if contrib is None or p.target not in contrib['hyp']:
        return ''
    track = observed(contrib, p.target)
    out = []
    s = core.seqlets
    for k in range(min(EXAMPLES, len(s))):
        row, start, end = int(s.row[k]), int(s.start[k]), int(s.end[k])
        if row >= len(track):
            continue
        lo, hi = max(start - EXAMPLE_FLANK, 0), min(end + EXAMPLE_FLANK, track.shape[1])
        w = contrib['windows'][row]
        strand = '-' if s.revcomp[k] else '+'
        out.append(
            logos.track_svg(
                track[row, lo:hi],
                title=f'{w.chrom}:{w.start + start}-{w.start + end} ({strand})',
                element_id=f'example-{p.meme_name}-{k}',
                width=8.0 * (hi - lo),
                mark=(start - lo, end - lo),
            )
        )
    return '<div class="examples">' + ''.join(out) + '</div>' if out else ''


def _matches_table(matches: list[dict[str, Any]]) -> str:
    if not matches:
        return ''
    rows = ''.join(
        f'<tr><td>{m["rank"]}</td><td>{html.escape(m["match"])}</td>'
        f'<td>{html.escape(m["match_alt"])}</td><td>{float(m["p_value"]):.2e}</td>'
        f'<td>{float(m["q_value"]):.2e}</td><td>{m["strand"]}</td></tr>'
        for m in matches
    )
    return (
        '<table class="matches"><tr><th>rank</th><th>database motif</th><th>name</th>'
        f'<th>p-value</th><th>q-value</th><th>strand</th></tr>{rows}</table>'
    )


def pattern_section(
    p: patterns.Pattern,
    contrib: dict[str, Any] | None,
    matches: list[dict[str, Any]],
    instances: int | None,
) -> str:
    """The report's section of one pattern."""
    core = p.trimmed()
    sign = 'positive' if p.sign > 0 else '<span class="neg">negative</span>'
    if matches and float(matches[0]['q_value']) <= formats.SIGNIFICANT_Q:
        name = html.escape(matches[0]['match_alt'] or matches[0]['match'])
        best = f' &middot; best match <b>{name}</b> (q = {float(matches[0]["q_value"]):.1e})'
    elif matches:
        best = f' &middot; no significant database match (q > {formats.SIGNIFICANT_Q})'
    else:
        best = ''
    counted = {None: '', -1: ' &middot; not scanned (its seqlets do not match its CWM)'}.get(
        instances, f' &middot; {instances} instances'
    )
    return (
        f'<div class="pattern" id="pattern-{p.meme_name}"><h3>{html.escape(p.name)}</h3>'
        f'<p>{len(p.seqlets)} seqlets &middot; {sign} &middot; consensus '
        f'<code>{core.consensus()}</code>{best}{counted}</p>'
        f'<div class="logos">{_logos(p, core)}</div>{_matches_table(matches)}'
        f'{_examples(p, core, contrib)}</div>'
    )


def _logos(p: patterns.Pattern, core: patterns.Pattern) -> str:
    """The SVG logos of a pattern's trimmed core: CWM, its reverse, hypothetical CWM, PFM."""
    rc = patterns.reverse_complement_matrix
    logo_args = dict(column_width=16.0, height=80.0)
    pfm = logos.pfm_heights(core.pfm)
    tallest = float(pfm.sum(axis=1).max())
    # 2 bits full scale, unless the motif is so flat that its logo would look blank.
    pfm_scale, pfm_title = 2.0, 'PFM (bits, 2 full scale)'
    if tallest < 0.5:
        pfm_scale, pfm_title = (
            max(tallest, 1e-3),
            f'PFM (bits, scaled up: {tallest:.2f} full scale)',
        )
    return ''.join(
        [
            logos.logo_svg(core.cwm, title='CWM', element_id=f'cwm-{p.meme_name}', **logo_args),
            logos.logo_svg(
                rc(core.cwm),
                title='CWM (reverse)',
                element_id=f'cwmrc-{p.meme_name}',
                **logo_args,
            ),
            logos.logo_svg(
                core.hcwm,
                title='hypothetical CWM',
                element_id=f'hcwm-{p.meme_name}',
                **logo_args,
            ),
            logos.logo_svg(
                pfm,
                title=pfm_title,
                element_id=f'pfm-{p.meme_name}',
                scale=pfm_scale,
                **logo_args,
            ),
        ]
    )


def render(
    summary: dict[str, Any],
    found: list[patterns.Pattern],
    *,
    contrib: dict[str, Any] | None = None,
    matches: dict[str, list[dict[str, Any]]] | None = None,
    instances: dict[str, int] | None = None,
    extra_html: str = '',
) -> str:
    """The report page as a string."""
    matches = matches or {}
    overview = ''.join(
        f'<tr><td>{html.escape(t)}</td><td>{sum(1 for p in found if p.target == t and p.sign > 0)}'
        f'</td><td>{sum(1 for p in found if p.target == t and p.sign < 0)}</td>'
        f'<td>{sum(len(p.seqlets) for p in found if p.target == t)}</td></tr>'
        for t in summary['targets']
    )
    sections = []
    for target in summary['targets']:
        sections.append(f'<h2>{html.escape(target)}</h2>')
        here = [p for p in found if p.target == target]
        if not here:
            sections.append('<p>No pattern.</p>')
        for p in here:
            count = None if instances is None else instances.get(p.name, -1)
            sections.append(pattern_section(p, contrib, matches.get(p.name, []), count))
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>bpnet-tfx motifs</title>'
        f'<style>{_STYLE}</style></head><body><h1>Motifs</h1>'
        f'<p>Contributions: <code>{html.escape(summary["contrib_dir"])}</code>, '
        f'{summary["rows"]} regions, central {summary["window"]} bp given to TF-MoDISco '
        f'(at most {summary["max_seqlets"]} seqlets per metacluster).</p>'
        '<table><tr><th>target</th><th>positive patterns</th><th>negative patterns</th>'
        f'<th>seqlets</th></tr>{overview}</table>{extra_html}{"".join(sections)}'
        '</body></html>\n'
    )


def write_report(
    discover_dir: str,
    *,
    contrib: dict[str, Any] | None = None,
    output_html: str | None = None,
    instances: dict[str, int] | None = None,
    extra_html: str = '',
) -> str:
    """Renders the report of a discovery folder (with its annotations.tsv if there is one)
    to `output_html` (default: its report.html), written beside and renamed into place."""

    summary, found = formats.load_discovery(discover_dir)
    if contrib is None and os.path.isdir(summary['contrib_dir']):
        contrib = formats.load_contrib(summary['contrib_dir'])
    matches = formats.load_matches(discover_dir)
    page = render(
        summary,
        found,
        contrib=contrib,
        matches=matches,
        instances=instances,
        extra_html=extra_html,
    )
    path = output_html or os.path.join(discover_dir, formats.REPORT_FILENAME)
    tmp = f'{path}.tmp-{os.getpid()}'
    with open(tmp, 'w') as f:
        f.write(page)
    os.replace(tmp, path)
    return path


def observed(contrib: dict[str, Any], target: str) -> np.ndarray:
    """(N, L) observed-base contributions of one target."""
    return (contrib['hyp'][target] * contrib['one_hot']).sum(-1)
