"""Peak memory of contrib in the number of windows: scores stream to disk, so 4x the windows
should not mean 4x the memory.

    .venv/bin/python -m benchmarks.bench_contrib_memory [--windows=250 --factor=4]

Builds an untrained BPNet (--filters, --layers, 1000-bp windows) and a random genome with
N x --factor BED windows, then runs `contributions.compute_contributions` (DeepSHAP, 2
references) over the first N and over all N x factor windows, each in a fresh process
(benchmarks/children/contrib_memory.py), in interleaved pairs under common.py's protocol, and
reads each child's peak RSS. What the scores would take if held in memory (one-hot and two
hypothetical arrays, float32, N x 1000 x 4) is printed beside it. Prints a line per pair, the
table and one JSON line.
"""

from __future__ import annotations

import argparse
import os
import tempfile

from benchmarks import common, workloads

_LENGTH = 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--windows', type=int, default=250, help='Windows of the small run.')
    parser.add_argument('--factor', type=int, default=4, help='The large run: this x windows.')
    parser.add_argument('--filters', type=int, default=8, help='Filters of the model.')
    parser.add_argument('--layers', type=int, default=2, help='Dilated layers of the model.')
    common.add_protocol_flags(parser)
    args = parser.parse_args()

    from bpnet_tfx.modeling import model as model_lib

    sizes = (args.windows, args.windows * args.factor)
    with tempfile.TemporaryDirectory() as tmp:
        genome = workloads.random_genome(tmp, (sizes[1] + 1) * _LENGTH, chrom='chrM1')
        bed = workloads.tiled_bed(tmp, genome, _LENGTH, sizes[1])
        config = model_lib.ModelConfig(
            sequence_length=_LENGTH, filters=args.filters, num_dilated_layers=args.layers
        )
        export = workloads.untrained_export(tmp, config, tasks=('m',))

        def arm(n):
            def run() -> float:
                out = tempfile.mkdtemp(dir=tmp, prefix=f'out{n}_')
                return common.run_child(
                    'contrib_memory', export, os.path.join(out, 'c'), bed, genome.fasta, str(n)
                )['rss_mib']

            return run

        result = common.compare(
            {f'windows_{n}': arm(n) for n in sizes},
            [
                common.Ratio(
                    f'contrib peak RSS {sizes[1]:,} / {sizes[0]:,} windows',
                    f'windows_{sizes[1]}',
                    f'windows_{sizes[0]}',
                    'flat',
                )
            ],
            common.protocol_from_args(args),
        )
    held = {n: 3 * n * _LENGTH * 4 * 4 / 2**20 for n in sizes}
    print(', '.join(f'scores of {n:,} windows held in RAM: {m:.0f} MiB' for n, m in held.items()))
    common.report(
        'bench_contrib_memory',
        {'memory': result},
        windows=list(sizes),
        scores_in_ram_mib={str(n): m for n, m in held.items()},
        model={'filters': args.filters, 'layers': args.layers, 'length': _LENGTH},
    )


if __name__ == '__main__':
    main()
