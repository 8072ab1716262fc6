"""Benchmark: make_records against the reference notebook's per-peak loop, speed and peak memory.

For each peak count it simulates a genome (random sequence; one 1-bp summit every
`--spacing` bp on average; stranded counts only near summits) with numpy + pyBigWig, then
runs, each in a fresh subprocess (benchmarks/children/) so that peak RSS is that run's own,
every approach once a pair, pairs interleaved under common.py's protocol:

- `notebook`: what the reference notebook does: a Python loop over peaks reading each window
  with pyfaidx and pyBigWig, one-hot encoding with a dict lookup per base, and keeping
  everything in RAM as numpy arrays (the time includes building the arrays; the notebook's
  later writing is not counted, which favours it);
- `make_records`: `beam_jobs.make_records.run([...])` with `--runner=DirectRunner` and every
  other flag at its default, as a user runs it (FnApiRunner, one in-process worker; the
  --outlier_quantile pass included, which the notebook does not do);
- `make_records_mt` (when --mode is given, by default multi_threading): the same with
  `--direct_num_workers=N --direct_running_mode=MODE`;
- `read_by_window` / `read_by_run` (smallest size only): make_records' WindowReader reading
  every window without encoding, with one FASTA fetch and one bigWig `values()` call per
  window, or per run of nearby windows (the job's way).

Time is wall-clock around the work in the subprocess (imports of numpy/pyfaidx/pyBigWig for the
notebook, and of beam_jobs for make_records, excluded; make_records never imports
TensorFlow). Peak RSS is the largest resident set of the subprocess or any process it started
(`getrusage(RUSAGE_CHILDREN).ru_maxrss` read by a fresh parent). Prints a line per pair, the
table of ratios (median, min-max, loads) and one JSON line:

    .venv/bin/python -m benchmarks.bench_make_records --peaks=25000,100000
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np

from benchmarks import common

_CHROMS = 8
_LENGTH = 1000  # --sequence_length of both approaches.


def make_data(root: str, num_peaks: int, spacing: int, seed: int = 0) -> dict[str, str]:
    """Writes genome.fa (+ .fai), peaks.bed (1-bp summits), pos.bw and neg.bw under `root`."""
    import pyBigWig

    done = os.path.join(root, 'done')
    files = {
        k: os.path.join(root, name)
        for k, name in (
            ('fasta', 'genome.fa'),
            ('peaks', 'peaks.bed'),
            ('pos', 'pos.bw'),
            ('neg', 'neg.bw'),
        )
    }
    if os.path.exists(done):
        return files
    os.makedirs(root, exist_ok=True)
    rng = np.random.default_rng(seed)
    per_chrom = num_peaks // _CHROMS
    size = per_chrom * spacing + 20_000
    chroms = [(f'chr{i + 1}', size) for i in range(_CHROMS)]
    letters = np.frombuffer(b'ACGT', np.uint8)
    with open(files['fasta'], 'wb') as fa, open(files['fasta'] + '.fai', 'w') as fai:
        for name, n in chroms:
            fa.write(f'>{name}\n'.encode())
            offset = fa.tell()
            lines = n // 60
            body = np.empty((lines, 61), np.uint8)
            body[:, :60] = letters[rng.integers(0, 4, (lines, 60), dtype=np.uint8)]
            body[:, 60] = ord('\n')
            fa.write(body.tobytes())
            fai.write(f'{name}\t{lines * 60}\t{offset}\t60\t61\n')
    chroms = [(name, (n // 60) * 60) for name, n in chroms]
    summits = {
        name: np.sort(rng.choice(np.arange(10_000, n - 10_000), per_chrom, replace=False))
        for name, n in chroms
    }
    with open(files['peaks'], 'w') as f:
        for name, _ in chroms:
            f.writelines(f'{name}\t{s}\t{s + 1}\n' for s in summits[name])
    for strand in ('pos', 'neg'):
        bw = pyBigWig.open(files[strand], 'w')
        bw.addHeader(chroms)
        for name, _ in chroms:
            # About 100 bases with reads within +-600 bp of each summit, 1-20 reads each.
            offsets = rng.integers(-600, 600, (summits[name].size, 100))
            starts = np.unique((summits[name][:, None] + offsets).ravel())
            bw.addEntries(
                name,
                starts.astype(np.int64),
                values=rng.integers(1, 21, starts.size).astype(np.float64),
                span=1,
            )
        bw.close()
    open(done, 'w').close()
    return files


def _shards_mb(records_dir: str) -> float:
    names = [f for f in os.listdir(records_dir) if f.endswith('.tfrecord.gz')]
    return sum(os.path.getsize(os.path.join(records_dir, f)) for f in names) / 1e6


def _child_arm(child: str, peaks: int, args: tuple, flags: tuple = (), writes: bool = False):
    """An arm running benchmarks.children.<child> ARGS [OUTPUT_DIR] FLAGS under peak_rss:
    peaks/s, seconds, peak RSS (and the shards' size when it `writes` records)."""

    def run() -> dict:
        with tempfile.TemporaryDirectory() as tmp:
            out = [os.path.join(tmp, 'records')] if writes else []
            r = common.run_child(f'peak_rss:{child}', *args, *out, *flags)
            result = {'value': peaks / r['seconds'], 'seconds': r['seconds'], 'rss_mb': r['rss_mb']}
            if writes:
                result['shards_mb'] = _shards_mb(out[0])
        return result

    return run


def _arms(sizes: list[int], data: dict[int, dict[str, str]], args) -> tuple[dict, list]:
    """The arms of one pair (every approach at every size) and the ratios reported."""
    arms, ratios = {}, []
    for n in sizes:
        files = (json.dumps(data[n]), str(_LENGTH))
        arms[f'notebook_{n}'] = _child_arm('notebook_records', n, files)
        arms[f'make_records_{n}'] = _child_arm('make_records_run', n, files, writes=True)
        ratios.append(
            common.Ratio(
                f'make_records / notebook, {n:,} peaks',
                f'make_records_{n}',
                f'notebook_{n}',
                '>= 5x',
            )
        )
        if args.mode:
            arms[f'make_records_mt_{n}'] = _child_arm(
                'make_records_run',
                n,
                files,
                (f'--direct_num_workers={args.workers}', f'--direct_running_mode={args.mode}'),
                writes=True,
            )
            ratios.append(
                common.Ratio(
                    f'{args.workers} {args.mode} workers / 1, {n:,} peaks',
                    f'make_records_mt_{n}',
                    f'make_records_{n}',
                )
            )
    small, large = min(sizes), max(sizes)
    if large != small:
        ratios.append(
            common.Ratio(
                f'peak RSS {large:,} / {small:,} peaks',
                f'make_records_{large}.rss_mb',
                f'make_records_{small}.rss_mb',
                '<= 1.2x',
            )
        )
    # Reading alone (no encoding): one FASTA fetch and one values() call per run of nearby
    # windows, against one per window.
    for name, gap in (('read_by_window', 0), ('read_by_run', 20_000)):
        arms[name] = _child_arm(
            'window_reader', small, (json.dumps(data[small]), str(_LENGTH), str(gap))
        )
    ratios.append(
        common.Ratio(f'read by run / by window, {small:,} peaks', 'read_by_run', 'read_by_window')
    )
    return arms, ratios


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument(
        '--peaks', default='25000,100000', help='Comma list of peak counts (default: 25000,100000).'
    )
    parser.add_argument(
        '--spacing',
        type=int,
        default=4000,
        help='Mean bp between summits; the genome grows with the peak count.',
    )
    parser.add_argument(
        '--workers', type=int, default=2, help='--direct_num_workers of the make_records_mt run.'
    )
    parser.add_argument(
        '--mode',
        default='multi_threading',
        choices=('', 'in_memory', 'multi_threading', 'multi_processing'),
        help='--direct_running_mode of the make_records_mt run; empty: no such '
        'run (make_records with the shipped defaults always runs).',
    )
    parser.add_argument(
        '--data_dir',
        default=os.path.join(tempfile.gettempdir(), 'bench_make_records'),
        help='Where simulated inputs are cached between runs.',
    )
    common.add_protocol_flags(parser)
    args = parser.parse_args(argv)
    sizes = [int(x) for x in args.peaks.split(',') if x]
    data = {}
    for n in sizes:
        t = time.perf_counter()
        data[n] = make_data(os.path.join(args.data_dir, f'{n}-{args.spacing}'), n, args.spacing)
        print(f'# data for {n} peaks ready in {time.perf_counter() - t:.1f} s', flush=True)
    arms, ratios = _arms(sizes, data, args)
    result = common.compare(arms, ratios, common.protocol_from_args(args))
    counted = [p for p in result['pairs'] if p['counts']] or result['pairs']
    shards = {n: counted[0]['values'][f'make_records_{n}']['shards_mb'] for n in sizes}
    print('shard files: ' + ', '.join(f'{n:,} peaks {mb:.1f} MB' for n, mb in shards.items()))
    common.report(
        'bench_make_records',
        {'make_records': result},
        spacing_bp=args.spacing,
        sequence_length=_LENGTH,
        workers=args.workers,
        mode=args.mode,
        shards_mb=shards,
    )


if __name__ == '__main__':
    main()
