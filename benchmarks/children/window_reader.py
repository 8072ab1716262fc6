"""Reading alone, timed: make_records' WindowReader over every peak's window without encoding,
with one FASTA fetch and one bigWig values() call per window (RUN_GAP 0) or per run of nearby
windows (the job's way).

    python -m benchmarks.children.window_reader FILES_JSON LENGTH RUN_GAP

Prints {"seconds", "n"}.
"""

from __future__ import annotations

import json
import sys
import time

from beam_jobs.records import regions, shards, windows


def main(argv: list[str]) -> None:
    files, length, run_gap = json.loads(argv[0]), int(argv[1]), int(argv[2])
    peaks = regions.read_peaks(files['peaks'], sequence_length=length)
    spec = windows.WindowSpec(files['fasta'], [(files['pos'], files['neg'])], run_gap=run_gap)
    start = time.perf_counter()
    reader = windows.WindowReader(spec).open()
    n = sum(1 for chunk in shards.make_chunks(peaks) for _ in reader.read(chunk))
    print(json.dumps({'seconds': time.perf_counter() - start, 'n': n}))


if __name__ == '__main__':
    main(sys.argv[1:])
