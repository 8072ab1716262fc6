"""make_records as a user runs it, timed from the call to the records in place (the import of
beam_jobs excluded; the job never imports TensorFlow).

    python -m benchmarks.children.make_records_run FILES_JSON LENGTH OUTPUT_DIR [RUNNER_FLAGS...]

FILES_JSON: {"fasta", "peaks", "pos", "neg"}. Prints {"seconds", "n"}.
"""

from __future__ import annotations

import json
import sys
import time

from beam_jobs import make_records


def main(argv: list[str]) -> None:
    files, length, out = json.loads(argv[0]), int(argv[1]), argv[2]
    start = time.perf_counter()
    info = make_records.run(
        [
            f'--fasta={files["fasta"]}',
            f'--peaks={files["peaks"]}',
            f'--pos_bigwig={files["pos"]}',
            f'--neg_bigwig={files["neg"]}',
            f'--output_dir={out}',
            f'--sequence_length={length}',
            '--valid_chroms=chr1',
            '--runner=DirectRunner',
            *argv[3:],
        ]
    )
    n = sum(info.split_counts.values())
    print(json.dumps({'seconds': time.perf_counter() - start, 'n': n}))


if __name__ == '__main__':
    main(sys.argv[1:])
