"""Peak memory of contrib in the number of windows: scores stream to disk, so 4x the windows
should not mean 4x the memory.

    .venv/bin/python benchmarks/bench_contrib_memory.py [--windows=250 --factor=4]

Builds an untrained BPNet (--filters, --layers, 1000-bp windows) and a random genome with
N x --factor BED windows, then runs `contributions.compute_contributions` (DeepSHAP, 2
references) over the first N and over all N x factor windows, each in a fresh subprocess, and
reads each child's peak RSS. What the scores would take if held in memory (one-hot and two
hypothetical arrays, float32, N x 1000 x 4) is printed beside it. Prints a row per run and
one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.abspath(os.path.dirname(__file__)))

_CHILD = '''
import sys
sys.path.insert(0, {repo!r})
from bpnet_tfx.attribution import contributions
contributions.compute_contributions(
    {export!r}, {out!r}, regions_bed={bed!r}, fasta={fasta!r}, max_regions={n},
    num_shuffles=2, batch_size=64,
)
import resource
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
'''


def _setup(folder: str, windows: int, filters: int, layers: int) -> tuple[str, str, str]:
    import keras
    import numpy as np

    from bpnet_tfx.inference import export
    from bpnet_tfx.modeling import model as model_lib
    from bpnet_tfx.records import schema

    length = 1000
    rng = np.random.default_rng(0)
    fasta = os.path.join(folder, 'genome.fa')
    size = windows * length + length
    with open(fasta, 'w') as f:
        f.write('>chrM1\n' + ''.join(rng.choice(list('ACGT'), size)) + '\n')
    bed = os.path.join(folder, 'windows.bed')
    with open(bed, 'w') as f:
        f.writelines(f'chrM1\t{i * length}\t{(i + 1) * length}\n' for i in range(windows))
    keras.utils.set_random_seed(0)
    config = model_lib.ModelConfig(
        sequence_length=length, filters=filters, num_dilated_layers=layers
    )
    info = schema.RecordsInfo(sequence_length=length, max_jitter=0, tasks=('m',))
    path = export.export_saved_model(
        model_lib.build_bpnet(config), info, config, os.path.join(folder, 'export')
    )
    return path, bed, fasta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--windows', type=int, default=250)
    parser.add_argument('--factor', type=int, default=4)
    parser.add_argument('--filters', type=int, default=8)
    parser.add_argument('--layers', type=int, default=2)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        export, bed, fasta = _setup(tmp, args.windows * args.factor, args.filters, args.layers)
        for n in (args.windows, args.windows * args.factor):
            code = _CHILD.format(
                repo=REPO,
                export=export,
                out=os.path.join(tmp, f'out{n}'),
                bed=bed,
                fasta=fasta,
                n=n,
            )
            proc = subprocess.run(
                [sys.executable, '-c', code],
                capture_output=True,
                text=True,
                env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3'),
            )
            if proc.returncode:
                sys.exit(proc.stderr[-3000:])
            peak = int(proc.stdout.split()[-1]) / 1024  # ru_maxrss is in KiB on Linux
            held = 3 * n * 1000 * 4 * 4 / 2**20
            rows.append({'windows': n, 'peak_rss_mib': round(peak, 1), 'scores_mib': held})
            print(
                f'{n:6d} windows: peak RSS {peak:7.1f} MiB (scores held in RAM would be '
                f'{held:.0f} MiB)'
            )
    ratio = rows[1]['peak_rss_mib'] / rows[0]['peak_rss_mib']
    print(f'peak RSS {rows[1]["windows"]} / {rows[0]["windows"]} windows: {ratio:.2f}x')
    print(json.dumps({'benchmark': 'bench_contrib_memory', 'rows': rows, 'ratio': round(ratio, 3)}))


if __name__ == '__main__':
    main()
