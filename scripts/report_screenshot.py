"""Renders a motifs report in headless Chromium and checks that every logo shows.

    python scripts/report_screenshot.py REPORT.html SCREENSHOT.png [--chromium=chromium]

Chromium (Debian's `chromium` package) loads a copy of the report with a script that records
each logo's box (`svg.logo`) in the page; `--dump-dom` reads the boxes back, `--screenshot`
takes the full page at device scale 1, and each box of the PNG must hold enough pixels of
the letters' colours (not blank). Prints one line per logo, exits 1 if any is blank.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image

# Records every logo's box once laid out (the page's width is fixed by --window-size).
_PROBE = """<script>
window.addEventListener('load', () => {
  const boxes = [...document.querySelectorAll('svg.logo')].map(e => {
    const r = e.getBoundingClientRect();
    return [e.id, r.left + scrollX, r.top + scrollY, r.width, r.height];
  });
  const out = document.createElement('pre');
  out.id = 'logo-boxes';
  out.textContent = JSON.stringify({boxes, height: document.body.scrollHeight});
  document.body.appendChild(out);
});
</script>"""
_LETTER_COLOURS = np.array([[16, 150, 72], [37, 92, 153], [247, 179, 43], [214, 40, 57]])
WIDTH = 1400


def _chromium(binary: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            binary,
            '--headless',
            '--no-sandbox',
            '--disable-gpu',
            '--hide-scrollbars',
            '--force-device-scale-factor=1',
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def logo_boxes(binary: str, probe_html: str) -> tuple[list, int]:
    proc = _chromium(
        binary,
        f'--window-size={WIDTH},1000',
        '--virtual-time-budget=5000',
        '--dump-dom',
        f'file://{probe_html}',
    )
    match = re.search(r'<pre id="logo-boxes">(.*?)</pre>', proc.stdout, re.S)
    if match is None:
        raise SystemExit(f'report_screenshot: chromium gave no layout: {proc.stderr[-500:]}')
    data = json.loads(match.group(1).replace('&quot;', '"'))
    return data['boxes'], int(data['height'])


def coloured_fraction(image: np.ndarray, box) -> float:
    """Share of the box's pixels within 60 (RGB distance) of a letter colour."""
    _, x, y, w, h = box
    part = image[int(y) : int(y + h), int(x) : int(x + w), :3].astype(np.int64)
    if part.size == 0:
        return 0.0
    distance = np.abs(part[:, :, None, :] - _LETTER_COLOURS[None, None]).sum(-1).min(-1)
    return float((distance < 60).mean())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('report')
    parser.add_argument('screenshot')
    parser.add_argument('--chromium', default=shutil.which('chromium') or 'chromium')
    parser.add_argument(
        '--min_fraction',
        type=float,
        default=0.02,
        help='least share of letter-coloured pixels in each logo box',
    )
    args = parser.parse_args()
    if not shutil.which(args.chromium) and not os.path.exists(args.chromium):
        print('report_screenshot: error: no chromium (apt-get install chromium)', file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        probe = os.path.join(tmp, 'probe.html')
        with open(args.report) as f:
            page = f.read()
        with open(probe, 'w') as f:
            f.write(page.replace('</body>', _PROBE + '</body>'))
        boxes, height = logo_boxes(args.chromium, probe)
        shot = _chromium(
            args.chromium,
            f'--window-size={WIDTH},{height + 50}',
            f'--screenshot={os.path.abspath(args.screenshot)}',
            f'file://{os.path.abspath(args.report)}',
        )
        if shot.returncode != 0 or not os.path.exists(args.screenshot):
            print(f'report_screenshot: error: no screenshot: {shot.stderr[-500:]}', file=sys.stderr)
            return 2
    image = np.asarray(Image.open(args.screenshot).convert('RGB'))
    blank = 0
    for box in boxes:
        fraction = coloured_fraction(image, box)
        ok = fraction >= args.min_fraction
        blank += not ok
        print(f'{box[0]}: {"ok" if ok else "BLANK"} ({100 * fraction:.1f}% letter pixels)')
    print(
        f'report_screenshot: {len(boxes) - blank}/{len(boxes)} logos drawn, page '
        f'{image.shape[1]}x{image.shape[0]} px -> {args.screenshot}'
    )
    return 1 if blank or not boxes else 0


if __name__ == '__main__':
    sys.exit(main())
