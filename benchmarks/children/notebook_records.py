"""The reference notebook's way to make training data, timed: a Python loop over the peaks
reading each window with pyfaidx and pyBigWig, one-hot encoding by a dict lookup per base, and
everything kept in RAM as numpy arrays (bench_make_records' baseline).

    python -m benchmarks.children.notebook_records FILES_JSON LENGTH

FILES_JSON: {"fasta", "peaks", "pos", "neg"}. Prints {"seconds", "n"}.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import pyBigWig
import pyfaidx

_MAPPING = {'A': [1, 0, 0, 0], 'C': [0, 1, 0, 0], 'G': [0, 0, 1, 0], 'T': [0, 0, 0, 1]}


def main(argv: list[str]) -> None:
    files, length = json.loads(argv[0]), int(argv[1])
    start = time.perf_counter()
    fasta = pyfaidx.Fasta(files['fasta'])
    pos, neg = pyBigWig.open(files['pos']), pyBigWig.open(files['neg'])
    seqs, profiles = [], []
    with open(files['peaks']) as peaks:
        for line in peaks:
            chrom, first, last = line.split()[:3]
            centre = (int(first) + int(last)) // 2
            s, e = centre - length // 2, centre - length // 2 + length
            seq = str(fasta[chrom][s:e]).upper()
            seqs.append(np.array([_MAPPING.get(b, [0, 0, 0, 0]) for b in seq], dtype=np.uint8))
            profiles.append(
                np.stack(
                    [
                        np.nan_to_num(np.array(pos.values(chrom, s, e))),
                        np.nan_to_num(np.array(neg.values(chrom, s, e))),
                    ],
                    axis=-1,
                )
            )
    x, y = np.stack(seqs), np.stack(profiles).astype(np.float32)
    print(json.dumps({'seconds': time.perf_counter() - start, 'n': len(x), 'bytes': y.nbytes}))


if __name__ == '__main__':
    main(sys.argv[1:])
