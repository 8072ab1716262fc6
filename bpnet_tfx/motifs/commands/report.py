"""`python -m bpnet_tfx.motifs report`: renders a discovery folder's HTML report again.

    python -m bpnet_tfx.motifs report --discover_dir=DIR [--scan_dir=DIR] [--output_html=FILE]

With the folder's annotations.tsv (if any) and, with --scan_dir, each pattern's instance
count (`motifs.html_report`).
"""

from __future__ import annotations

import os

from absl import flags

from bpnet_tfx.common import cli

_DISCOVER_DIR = flags.DEFINE_string(
    'discover_dir', None, 'Folder written by python -m bpnet_tfx.motifs discover.'
)
_SCAN_DIR = flags.DEFINE_string(
    'scan_dir', None, 'Folder written by python -m bpnet_tfx.motifs scan (optional).'
)
_OUTPUT_HTML = flags.DEFINE_string(
    'output_html', None, 'Where to write the report; default: DISCOVER_DIR/report.html.'
)


def main(argv):
    del argv
    from bpnet_tfx.motifs import html_report, instances

    counts = None
    if _SCAN_DIR.value:
        counts = instances.instance_counts(_SCAN_DIR.value)
    path = html_report.write_report(
        _DISCOVER_DIR.value, output_html=_OUTPUT_HTML.value, instances=counts
    )
    print(f'report: {os.path.abspath(path)}')


def run() -> None:
    flags.mark_flags_as_required(['discover_dir'])
    cli.start('motifs report', main)
