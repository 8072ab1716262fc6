"""Runs a command and reports its peak memory: the command's last JSON line plus 'rss_mb', the
largest resident set of the command or any process it started (RUSAGE_CHILDREN, read by this
fresh process, so nothing run before counts).

    python -m benchmarks.children.peak_rss COMMAND [ARGS...]
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys


def main(argv: list[str]) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(proc.stderr[-3000:])
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result['rss_mb'] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps(result))


if __name__ == '__main__':
    main(sys.argv[1:])
