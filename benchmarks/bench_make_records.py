"""Benchmark: make_records against the reference notebook's per-peak loop, speed and peak memory.

For each peak count it simulates a genome (random sequence; one 1-bp summit every
`--spacing` bp on average; stranded counts only near summits) with numpy + pyBigWig, then
runs, each in a fresh subprocess so that peak RSS is that run's own:

- `notebook`: what the reference notebook does: a Python loop over peaks reading each window
  with pyfaidx and pyBigWig, one-hot encoding with a dict lookup per base, and keeping
  everything in RAM as numpy arrays (the time includes building the arrays; the notebook's
  later writing is not counted, which favours it);
- `make_records`: `beam_jobs.make_records.run([...])` with `--runner=DirectRunner` and every
  other flag at its default, as a user runs it (FnApiRunner, one in-process worker; the
  --outlier_quantile pass included, which the notebook does not do);
- `make_records_mt` (when --mode is given, by default multi_threading): the same with
  `--direct_num_workers=N --direct_running_mode=MODE`;
- `read_by_window` / `read_by_run` (smallest size only): `windows.WindowReader` reading
  every window without encoding, with one FASTA fetch and one bigWig `values()` call per
  window, or per run of nearby windows (the job's way).

Time is wall-clock around the work in the subprocess (imports of numpy/pyfaidx/pyBigWig for the
notebook, and of beam_jobs for make_records, excluded; make_records never imports
TensorFlow). Peak RSS is the largest resident set of the subprocess or any process it started
(`getrusage(RUSAGE_CHILDREN).ru_maxrss` read by a fresh parent). Prints one
table row per measurement and one JSON line at the end:

    .venv/bin/python benchmarks/bench_make_records.py --peaks=25000,100000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
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


_NOTEBOOK = r'''
import json, sys, time
import numpy as np, pyBigWig, pyfaidx
files = json.loads(sys.argv[1]); length = int(sys.argv[2])
t0 = time.perf_counter()
fasta = pyfaidx.Fasta(files['fasta'])
pos, neg = pyBigWig.open(files['pos']), pyBigWig.open(files['neg'])
mapping = {'A': [1, 0, 0, 0], 'C': [0, 1, 0, 0], 'G': [0, 0, 1, 0], 'T': [0, 0, 0, 1]}
seqs, profiles = [], []
for line in open(files['peaks']):
    chrom, start, end = line.split()[:3]
    centre = (int(start) + int(end)) // 2
    s, e = centre - length // 2, centre - length // 2 + length
    seq = str(fasta[chrom][s:e]).upper()
    seqs.append(np.array([mapping.get(b, [0, 0, 0, 0]) for b in seq], dtype=np.uint8))
    profiles.append(np.stack([np.nan_to_num(np.array(pos.values(chrom, s, e))),
                              np.nan_to_num(np.array(neg.values(chrom, s, e)))], axis=-1))
X, y = np.stack(seqs), np.stack(profiles).astype(np.float32)
print(json.dumps({'seconds': time.perf_counter() - t0, 'n': len(X)}))
'''

_MAKE_RECORDS = r'''
import json, sys, time
files = json.loads(sys.argv[1]); length = int(sys.argv[2]); out = sys.argv[3]
runner_flags = sys.argv[4:]
from beam_jobs import make_records
t0 = time.perf_counter()
info = make_records.run([
    f'--fasta={files["fasta"]}', f'--peaks={files["peaks"]}', f'--pos_bigwig={files["pos"]}',
    f'--neg_bigwig={files["neg"]}', f'--output_dir={out}', f'--sequence_length={length}',
    '--valid_chroms=chr1', '--runner=DirectRunner', *runner_flags])
print(json.dumps({'seconds': time.perf_counter() - t0, 'n': sum(info.split_counts.values())}))
'''


_READER = r'''
import json, sys, time
files = json.loads(sys.argv[1]); length = int(sys.argv[2]); run_gap = int(sys.argv[3])
from beam_jobs.records import regions, shards, windows
peaks = regions.read_peaks(files['peaks'], sequence_length=length)
spec = windows.WindowSpec(files['fasta'], [(files['pos'], files['neg'])], run_gap=run_gap)
t0 = time.perf_counter()
reader = windows.WindowReader(spec).open()
n = sum(1 for chunk in shards.make_chunks(peaks) for _ in reader.read(chunk))
print(json.dumps({'seconds': time.perf_counter() - t0, 'n': n}))
'''


def _measure(code: str, *args: str) -> dict:
    """Runs `code` in a fresh Python via a wrapper that reports its children's peak RSS."""
    wrapper = (
        'import resource, subprocess, sys, json\n'
        'p = subprocess.run(sys.argv[1:], capture_output=True, text=True, cwd=%r)\n'
        'if p.returncode: sys.exit(p.stderr[-3000:])\n'
        'r = json.loads(p.stdout.strip().splitlines()[-1])\n'
        'r["rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024\n'
        'print(json.dumps(r))\n' % REPO
    )
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL='2')
    proc = subprocess.run(
        [sys.executable, '-c', wrapper, sys.executable, '-c', code, *args],
        capture_output=True,
        text=True,
        env=env,
    )
    if proc.returncode:
        raise RuntimeError(proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])


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
    args = parser.parse_args(argv)
    sizes = [int(x) for x in args.peaks.split(',') if x]
    results = []
    print(f'{"peaks":>8} {"approach":<14} {"seconds":>8} {"peaks/s":>9} {"peak RSS MB":>12}')
    for n in sizes:
        t = time.perf_counter()
        files = make_data(os.path.join(args.data_dir, f'{n}-{args.spacing}'), n, args.spacing)
        print(f'# data for {n} peaks ready in {time.perf_counter() - t:.1f} s', flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            runs = {
                'notebook': _measure(_NOTEBOOK, json.dumps(files), str(_LENGTH)),
                'make_records': _measure(
                    _MAKE_RECORDS, json.dumps(files), str(_LENGTH), os.path.join(tmp, 'records')
                ),
            }
            if args.mode:
                runs['make_records_mt'] = _measure(
                    _MAKE_RECORDS,
                    json.dumps(files),
                    str(_LENGTH),
                    os.path.join(tmp, 'records_mt'),
                    f'--direct_num_workers={args.workers}',
                    f'--direct_running_mode={args.mode}',
                )
            records_dir = os.path.join(tmp, 'records')
            shards_mb = (
                sum(
                    os.path.getsize(os.path.join(records_dir, f))
                    for f in os.listdir(records_dir)
                    if f.endswith('.tfrecord.gz')
                )
                / 1e6
            )
        for name, r in runs.items():
            r.update(peaks=n, approach=name, peaks_per_s=n / r['seconds'])
            results.append(r)
            print(
                f'{n:>8} {name:<14} {r["seconds"]:>8.1f} {r["peaks_per_s"]:>9.0f} '
                f'{r["rss_mb"]:>12.0f}',
                flush=True,
            )
        for name in runs:
            if name != 'notebook':
                ratio = runs['notebook']['seconds'] / runs[name]['seconds']
                runs[name]['speedup'] = ratio
                print(f'{n:>8} {"speed-up":<14} {ratio:>8.1f}x  ({name})')
        runs['make_records']['shards_mb'] = shards_mb
        print(f'{n:>8} {"shard files":<14} {shards_mb:>8.1f} MB')
        if n == min(sizes):
            # Reading alone (no encoding, one process): one FASTA fetch and one values() call
            # per run of nearby windows, against one per window.
            for name, gap in (('read_by_window', 0), ('read_by_run', 20_000)):
                r = _measure(_READER, json.dumps(files), str(_LENGTH), str(gap))
                r.update(peaks=n, approach=name, peaks_per_s=n / r['seconds'])
                results.append(r)
                print(
                    f'{n:>8} {name:<14} {r["seconds"]:>8.1f} {r["peaks_per_s"]:>9.0f} '
                    f'{r["rss_mb"]:>12.0f}',
                    flush=True,
                )
    ours = {r['peaks']: r for r in results if r['approach'] == 'make_records'}
    summary = {
        'benchmark': 'make_records',
        'spacing_bp': args.spacing,
        'sequence_length': _LENGTH,
        'workers': args.workers,
        'mode': args.mode,
        'cpus': os.cpu_count(),
        'results': results,
    }
    if len(ours) > 1:
        small, large = ours[min(ours)], ours[max(ours)]
        summary['rss_ratio'] = large['rss_mb'] / small['rss_mb']
        # Throughput without the fixed start-up (imports, pipeline set-up, worker start).
        summary['marginal_peaks_per_s'] = (large['peaks'] - small['peaks']) / (
            large['seconds'] - small['seconds']
        )
        print(
            f'make_records peak RSS {large["peaks"]} / {small["peaks"]} peaks: '
            f'{summary["rss_ratio"]:.2f}x; marginal {summary["marginal_peaks_per_s"]:.0f} '
            'peaks/s'
        )
    print(json.dumps(summary))


if __name__ == '__main__':
    main()
