"""Peak memory of contrib: DeepSHAP (2 references, batch 64) over the first N windows of a BED
file, then this process's own peak resident set.

    python -m benchmarks.children.contrib_memory EXPORT OUTPUT_DIR BED FASTA N

Prints {"rss_mib", "seconds"}.
"""

from __future__ import annotations

import json
import resource
import sys


def main(argv: list[str]) -> None:
    from bpnet_tfx.attribution import contributions

    export, out, bed, fasta, n = argv[0], argv[1], argv[2], argv[3], int(argv[4])
    result = contributions.compute_contributions(
        export, out, regions_bed=bed, fasta=fasta, max_regions=n, num_shuffles=2, batch_size=64
    )
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({'rss_mib': rss_kib / 1024, 'seconds': result['seconds']}))


if __name__ == '__main__':
    main(sys.argv[1:])
