"""Genome-scale inference jobs against their commands, in interleaved pairs under common.py's
protocol: windows per second, and the genome-wide job's peak memory against its windows.

    .venv/bin/python -m benchmarks.bench_inference_jobs [--sequence_length=2114 \\
        --output_length=1000 --filters=64 --genome_mb=2 --peaks=500 --workers=1,2 \\
        --genome_wide_mb=1,4] [--smoke --pairs=1]

An untrained model (stem kernel 21, 8 dilated layers, profile kernel 75 for 2114 -> 1000 bp,
otherwise the library's defaults; --smoke: 260 -> 200 bp, 2 layers; untrained weights cost what
trained ones do) exported to a temporary folder, and a random genome of --genome_mb Mb in two
chromosomes with N runs. Comparisons:

- tracks: `beam_jobs.predict_tracks` (--runner=DirectRunner in-process, or N worker processes,
  for each --workers value) against `predict --regions_bed` (`tracks.predict_tracks`) on the
  same --peaks BED lines; the job's last tracks against the command's (max |difference|);
- contrib: `beam_jobs.contrib` against `contributions.compute_contributions` on the same BED
  (deepshap, --num_shuffles references); the job's last scores against the command's;
- genome_wide: `beam_jobs.predict_tracks --genome_wide` (in-process) on a random genome of each
  --genome_wide_mb size: the peak resident memory of the largest against the smallest, which
  should stay flat as the windows grow.

Every run is a fresh process (this module with --_child), so each pays its own imports and
export loading, and its peak memory (ru_maxrss) is its own. Windows/s is the windows over the
wall time of the call (export loading, pipeline building and writing included). Prints a line
per pair, the table and one JSON line. --smoke runs a tiny version: a check that the script
works, no numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

from benchmarks import common, workloads


def _export(folder: str, args) -> str:
    from bpnet_tfx.modeling import model as model_lib

    shape = {'sequence_length': args.sequence_length, 'output_length': args.output_length}
    if (args.sequence_length, args.output_length) == (2114, 1000):
        shape.update(stem_kernel_size=21, num_dilated_layers=8, profile_kernel_size=75)
    elif args.smoke:
        shape.update(stem_kernel_size=5, num_dilated_layers=2, profile_kernel_size=5)
    config = model_lib.ModelConfig(filters=args.filters, **shape)
    return workloads.untrained_export(folder, config, tasks=('t',))


def _genome(path: str, size: int, seed: int = 0) -> dict[str, int]:
    """Two random chromosomes of size/2 bp, each with an N run of 1% of it in the middle."""
    rng = np.random.default_rng(seed)
    sizes = {'chr1': size // 2, 'chr2': size - size // 2}
    with open(path, 'w') as f:
        for chrom, n in sizes.items():
            seq = np.array(list('ACGT'))[rng.integers(0, 4, n)]
            seq[n // 2 : n // 2 + n // 100] = 'N'
            text = ''.join(seq)
            f.write(f'>{chrom}\n' + '\n'.join(text[i : i + 60] for i in range(0, n, 60)) + '\n')
    return sizes


def _bed(path: str, sizes: dict[str, int], peaks: int, width: int, seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    chroms = list(sizes)
    with open(path, 'w') as f:
        for k in range(peaks):
            chrom = chroms[k % len(chroms)]
            start = int(rng.integers(width, sizes[chrom] // 2 - width))  # left of the N run
            f.write(f'{chrom}\t{start}\t{start + 1}\n')


def _job_flags(workers: int) -> list[str]:
    flags = ['--runner=DirectRunner']
    if workers > 1:
        flags += [f'--direct_num_workers={workers}', '--direct_running_mode=multi_processing']
    return flags


def _child(spec: dict) -> dict:
    """One measurement in this process: runs it and returns seconds, windows and peak memory."""
    start = time.perf_counter()
    kind, out = spec['kind'], spec['out']
    if kind == 'tracks_command':
        from bpnet_tfx.inference import tracks

        windows = tracks.predict_tracks(
            spec['export'], spec['bed'], fasta=spec['fasta'], output_prefix=out
        )['windows']
    elif kind == 'contrib_command':
        from bpnet_tfx.attribution import contributions

        windows = contributions.compute_contributions(
            spec['export'],
            out,
            regions_bed=spec['bed'],
            fasta=spec['fasta'],
            num_shuffles=spec['num_shuffles'],
        )['regions']
    elif kind == 'contrib_job':
        from beam_jobs import contrib

        windows = contrib.run([*spec['flags'], f'--output_dir={out}'])['regions']
    else:
        from beam_jobs import predict_tracks

        windows = predict_tracks.run([*spec['flags'], f'--output_prefix={out}'])['windows']
    seconds = time.perf_counter() - start
    mb = 1 / 1024  # ru_maxrss is in KiB on Linux
    return {
        'value': windows / seconds,
        'seconds': seconds,
        'windows': windows,
        'peak_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * mb,
        'workers_peak_mb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * mb,
    }


def _measure(spec: dict) -> dict:
    """Runs `spec` in a fresh Python (this module with --_child); its result line."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3')
    env['PYTHONPATH'] = os.pathsep.join(p for p in (common.REPO, env.get('PYTHONPATH')) if p)
    command = [sys.executable, '-m', 'benchmarks.bench_inference_jobs', '--_child']
    proc = subprocess.run(
        [*command, json.dumps(spec)], capture_output=True, text=True, cwd=common.REPO, env=env
    )
    if proc.returncode:
        sys.exit(f'bench_inference_jobs: {spec["kind"]} failed:\n{proc.stderr[-3000:]}')
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _arm(tmp: str, name: str, spec: dict, outputs: dict):
    """One fresh-process run of `spec` into a new output, its path kept in outputs[name]."""

    def run() -> dict:
        out = os.path.join(tempfile.mkdtemp(dir=tmp, prefix=f'{name}-'), 'out')
        outputs[name] = out
        return _measure({**spec, 'out': out})

    return run


def _tracks_difference(a_prefix: str, b_prefix: str) -> float:
    """Max |difference| of two predicted track sets where both have values."""
    import pyBigWig

    worst = 0.0
    for strand in ('pos', 'neg'):
        a, b = (pyBigWig.open(f'{p}.t.{strand}.bw') for p in (a_prefix, b_prefix))
        for chrom, n in a.chroms().items():
            x, y = a.values(chrom, 0, n, numpy=True), b.values(chrom, 0, n, numpy=True)
            both = ~np.isnan(x) & ~np.isnan(y)
            worst = max(worst, float(np.abs(x[both] - y[both]).max(initial=0.0)))
        a.close()
        b.close()
    return worst


def _contrib_difference(a_dir: str, b_dir: str) -> float:
    """Max |difference| of two contribution folders' hypothetical scores, every target."""
    from bpnet_tfx.attribution import contributions

    a, b = contributions.load_outputs(a_dir), contributions.load_outputs(b_dir)
    if a['windows'] != b['windows'] or set(a['hyp']) != set(b['hyp']):
        return float('inf')
    return max(float(np.abs(a['hyp'][t] - b['hyp'][t]).max()) for t in a['hyp'])


def _job_vs_command(tmp, what: str, specs: dict, workers, protocol) -> tuple[dict, dict]:
    """Compares the job at each worker count against the command; (comparison, max |diff|)."""
    outputs = {}
    arms = {name: _arm(tmp, name, spec, outputs) for name, spec in specs.items()}
    ratios = [
        common.Ratio(f'{what} job, {w} worker(s) / command, windows/s', f'job_{w}w', 'command')
        for w in workers
    ]
    print(f'{what}: the job at {workers} worker(s) against the command', flush=True)
    result = common.compare(arms, ratios, protocol)
    differ = _tracks_difference if what == 'tracks' else _contrib_difference
    diffs = {f'{w}w': differ(outputs[f'job_{w}w'], outputs['command']) for w in workers}
    print(f"  the job's {what} against the command's: max |diff| {diffs}", flush=True)
    return result, diffs


def _genome_arm(mb: float) -> str:
    """An arm's name for a genome of `mb` Mb (no dot: common.Ratio reads 'arm.metric')."""
    return f'genome_{round(mb * 1000)}kb'


def _genome_wide(tmp: str, args, export: str, protocol) -> dict:
    """The genome-wide job in-process on each genome size: peak RSS largest / smallest."""
    arms, outputs = {}, {}
    for mb in args.genome_wide_mb:
        genome = os.path.join(tmp, f'genome_{mb}.fa')
        _genome(genome, int(mb * 1e6), seed=2)
        flags = [f'--saved_model={export}', f'--fasta={genome}', '--genome_wide']
        spec = {'kind': 'genome_wide_job', 'flags': [*flags, '--runner=DirectRunner']}
        arms[_genome_arm(mb)] = _arm(tmp, _genome_arm(mb), spec, outputs)
    small, large = (_genome_arm(f(args.genome_wide_mb)) for f in (min, max))
    ratios = [
        common.Ratio(
            f'genome-wide peak RSS {large} / {small}',
            f'{large}.peak_mb',
            f'{small}.peak_mb',
            'flat',
        ),
        common.Ratio(
            f'genome-wide windows {large} / {small}', f'{large}.windows', f'{small}.windows'
        ),
    ]
    print(f'genome_wide: peak memory at {args.genome_wide_mb} Mb', flush=True)
    return common.compare(arms, ratios, protocol)


def _comparisons(args, tmp: str) -> tuple[dict, dict]:
    export = _export(tmp, args)
    fasta = os.path.join(tmp, 'genome.fa')
    sizes = _genome(fasta, int(args.genome_mb * 1e6))
    bed = os.path.join(tmp, 'peaks.bed')
    _bed(bed, sizes, args.peaks, args.sequence_length)
    base = {'export': export, 'fasta': fasta, 'bed': bed, 'num_shuffles': args.num_shuffles}
    shared = [f'--saved_model={export}', f'--fasta={fasta}', f'--regions_bed={bed}']
    protocol = common.protocol_from_args(args)
    tracks = {'command': {**base, 'kind': 'tracks_command'}}
    contrib = {'command': {**base, 'kind': 'contrib_command'}}
    for w in args.workers:
        flags = [*shared, *_job_flags(w)]
        tracks[f'job_{w}w'] = {**base, 'kind': 'tracks_job', 'flags': flags}
        contrib[f'job_{w}w'] = {
            **base,
            'kind': 'contrib_job',
            'flags': [*flags, f'--num_shuffles={args.num_shuffles}'],
        }
    comparisons, diffs = {}, {}
    for what, specs in (('tracks', tracks), ('contrib', contrib)):
        comparisons[what], diffs[what] = _job_vs_command(tmp, what, specs, args.workers, protocol)
    comparisons['genome_wide'] = _genome_wide(tmp, args, export, protocol)
    return comparisons, diffs


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    add = parser.add_argument
    add('--sequence_length', type=int, default=2114, help='Model input length, bp.')
    add('--output_length', type=int, default=1000, help='Model output length, bp.')
    add('--filters', type=int, default=64, help='Model filters.')
    add('--genome_mb', type=float, default=2.0, help='Random genome size for the BED rows, Mb.')
    add('--peaks', type=int, default=500, help='BED lines (1-bp summits).')
    add('--num_shuffles', type=int, default=10, help='Contrib references per window.')
    add('--workers', default='1,2', help='Worker processes of the jobs, comma-separated.')
    add('--genome_wide_mb', default='1,4', help='Genome sizes of the memory comparison, Mb.')
    add('--smoke', action='store_true', help='A tiny run that checks the script, no numbers.')
    add('--_child', help=argparse.SUPPRESS)
    common.add_protocol_flags(parser)
    return parser


def main() -> None:
    args = _parser().parse_args()
    if args._child:
        print(json.dumps(_child(json.loads(args._child))))
        return
    if args.smoke:
        args.sequence_length, args.output_length, args.filters = 260, 200, 8
        args.genome_mb, args.peaks, args.num_shuffles = 0.02, 12, 2
        args.genome_wide_mb = '0.01,0.02'
    args.workers = [int(w) for w in args.workers.split(',')]
    args.genome_wide_mb = [float(m) for m in args.genome_wide_mb.split(',')]
    if len(set(args.genome_wide_mb)) < 2:
        sys.exit('bench_inference_jobs: error: --genome_wide_mb needs two sizes or more')
    with tempfile.TemporaryDirectory(prefix='bench_inference_jobs-') as tmp:
        comparisons, diffs = _comparisons(args, tmp)
    common.report(
        'bench_inference_jobs',
        comparisons,
        settings={k: v for k, v in vars(args).items() if k != '_child'},
        max_abs_diff_job_vs_command=diffs,
    )


if __name__ == '__main__':
    main()
