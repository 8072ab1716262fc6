"""make_records from reads: its reads flags, and each task's reads counted into bigWigs first.

`add_records_flags` adds --reads, --control_reads, --write_bigwigs, --demo_from_reads and the
counting flags to make_records' parser. `counted_reads` counts every reads track the flags
name (--reads and --control_reads, a tasks spec's `reads` and `control_reads`, or the demo's
simulated BAMs) with the reads job's pipeline on the same runner (counting.py), into a
temporary folder beside --output_dir, and points the job at the counts: the bigWig flags, or a
copy of the tasks spec naming them. The records job then reads them as it reads any bigWig.
`CountedReads.save` puts reads.json (what was counted, how, and the tallies) and, with
--write_bigwigs, the bigWigs into the records folder; the temporary folder goes at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import secrets
import shutil
from typing import Any, Iterator, Sequence

from beam_jobs.common import files as files_lib
from beam_jobs.common.errors import RecordsInputError
from beam_jobs.reads import counting, shift_check
from beam_jobs.reads import flags as reads_flags
from beam_jobs.reads import plan as plan_lib
from bpnet_tfx.genome import reads
from bpnet_tfx.records import schema

READS_FILENAME = 'reads.json'
BIGWIGS_DIR = 'bigwigs'
_LOGGER = logging.getLogger(__name__)


def add_records_flags(parser: argparse.ArgumentParser) -> None:
    """make_records' reads flags."""
    group = parser.add_argument_group(
        'reads (instead of counts bigWigs: counted first by the assay\'s rule, docs/records.md)'
    )
    group.add_argument(
        '--reads',
        help='Comma list of reads files of the task, summed: BAM/CRAM (sorted, indexed), SAM, '
        'tagAlign/BED, fragments; replaces --pos_bigwig and --neg_bigwig. In --tasks_spec: a '
        "task's 'reads' key.",
    )
    group.add_argument(
        '--control_reads',
        help="Comma list of the control's reads files; replaces --control_pos_bigwig and "
        "--control_neg_bigwig. In --tasks_spec: a task's 'control_reads' key.",
    )
    group.add_argument(
        '--write_bigwigs',
        action='store_true',
        help=f'Keep the counted bigWigs in the records folder ({BIGWIGS_DIR}/).',
    )
    group.add_argument(
        '--demo_from_reads',
        action='store_true',
        help="Make the demo's records from its simulated reads (BAM) instead of its bigWigs: "
        'the same records.',
    )
    reads_flags.add_count_flags(group)


@contextlib.contextmanager
def counted_reads(
    args: argparse.Namespace, pipeline_args: Sequence[str], *, demo_output_dir: str
) -> Iterator['CountedReads']:
    """Counts the reads the flags name and rewrites `args` to their bigWigs (see the module
    docstring); yields what to save into the records folder. Without reads, changes nothing.

    Raises:
      RecordsInputError: bad reads flags or files, or a count that fails.
    """
    tracks, spec = _tracks(args, demo_output_dir)
    if not tracks:
        yield CountedReads(None, [], args)
        return
    if not args.fasta:
        raise RecordsInputError('reads need --fasta: the genome the records are cut from')
    shift = reads_flags.check_count_flags(args)
    output_dir = records_output(args.output_dir)
    files_lib.check_output_dir(output_dir, args.overwrite, marker=schema.METADATA_FILENAME)
    for stale in files_lib.remove_stale_dirs(output_dir.rstrip('/') + '.reads-tmp-'):
        _LOGGER.warning('removed %s, left by an earlier run that did not finish', stale)
    folder = f'{output_dir.rstrip("/")}.reads-tmp-{secrets.token_hex(4)}'
    files_lib.make_dir(folder)
    try:
        counted = CountedReads(folder, [], args)
        for track in tracks:
            counted.results.append(_count(track, folder, args, shift, pipeline_args))
        _point_at_counts(args, tracks, counted.results, folder, spec)
        yield counted
    finally:
        files_lib.remove_dir(folder)


def records_output(path: str) -> str:
    return path if files_lib.is_remote(path) else os.path.abspath(path)


def _tracks(args: argparse.Namespace, demo_output_dir: str) -> tuple[list[dict], dict | None]:
    """The reads tracks to count ({'task', 'kind' ('counts'|'control'), 'paths', 'peaks'}),
    and the tasks spec to rewrite (None: the single-task flags)."""
    if args.demo_from_reads:
        return _demo_tracks(args, demo_output_dir)
    if args.tasks_spec:
        return _spec_tracks(args)
    out = []
    for kind, flag, pair in (
        ('counts', 'reads', ('pos_bigwig', 'neg_bigwig')),
        ('control', 'control_reads', ('control_pos_bigwig', 'control_neg_bigwig')),
    ):
        if not getattr(args, flag):
            continue
        given = [f for f in pair if getattr(args, f)]
        if given:
            raise RecordsInputError(f'give --{flag} or --{given[0]}, not both')
        paths = [os.path.abspath(p) for p in reads_flags.split_paths(getattr(args, flag))]
        task = args.task_name or 'task0'
        out.append({'task': task, 'kind': kind, 'paths': paths, 'peaks': args.peaks})
    if out and not args.output_dir:
        raise RecordsInputError('--output_dir is required with your own data')
    if out and not args.peaks:
        raise RecordsInputError('--reads needs --peaks (or a --tasks_spec naming each task\'s)')
    return out, None


def _spec_tracks(args: argparse.Namespace) -> tuple[list[dict], dict | None]:
    """The reads of a tasks spec, and the spec with its paths made absolute."""
    if args.reads or args.control_reads:
        raise RecordsInputError('--tasks_spec names every file of every task; drop --reads')
    path = args.tasks_spec
    try:  # A spec that cannot be read or parsed is the records job's to report.
        spec = _load(path, files_lib.read_text(path))
    except (OSError, ValueError):
        return [], None
    tasks = spec.get('tasks') if isinstance(spec, dict) else None
    if not isinstance(tasks, list) or not any(
        isinstance(t, dict) and ('reads' in t or 'control_reads' in t) for t in tasks
    ):
        return [], None
    folder = (
        os.path.dirname(os.path.abspath(path))
        if not files_lib.is_remote(path)
        else (path.rsplit('/', 1)[0])
    )
    out = []
    for task in tasks:
        if not isinstance(task, dict):
            continue
        for key, value in list(task.items()):
            if key != 'name' and isinstance(value, str):
                task[key] = ','.join(
                    files_lib.resolve(p, folder) for p in reads_flags.split_paths(value)
                )
        for kind, key in (('counts', 'reads'), ('control', 'control_reads')):
            if key in task:
                paths = reads_flags.split_paths(str(task[key]))
                out.append(
                    {
                        'task': task.get('name'),
                        'kind': kind,
                        'paths': paths,
                        'peaks': task.get('peaks'),
                    }
                )
    return out, spec


def _load(path: str, text: str) -> Any:
    """A JSON (.json) or YAML spec; raises ValueError (yaml's errors are ValueErrors here)."""
    if path.endswith('.json'):
        return json.loads(text)
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ValueError(str(e)) from None


def _demo_tracks(args: argparse.Namespace, demo_output_dir: str) -> tuple[list[dict], dict]:
    """The demo's simulated reads, as a tasks spec naming its BAMs and expected bigWigs."""
    given = [f for f in ('fasta', 'tasks_spec', 'peaks', 'reads', 'pos_bigwig') if getattr(args, f)]
    if given:
        raise RecordsInputError(f'--demo_from_reads makes its own data; drop --{given[0]}')
    from bpnet_tfx.simulate import reads as sim_reads
    from bpnet_tfx.simulate import simulator

    demo = simulator.ensure_demo_data(config=simulator.DEMO_CONFIGS[args.demo])
    demo_reads = sim_reads.ensure_demo_reads(demo)
    args.assay = args.assay or 'chip-exo'
    args.output_dir = args.output_dir or demo_output_dir
    args.fasta = os.path.abspath(demo.fasta)
    tasks, out = [], []
    for task in demo.tasks:
        bw = demo.task_bigwigs[task]
        entry = {
            'name': task,
            'peaks': os.path.abspath(demo.peaks),
            'expected_pos_bigwig': os.path.abspath(bw[2]),
            'expected_neg_bigwig': os.path.abspath(bw[3]),
        }
        tasks.append(entry)
        out.append(
            {
                'task': task,
                'kind': 'counts',
                'paths': [demo_reads.bams[task]],
                'peaks': entry['peaks'],
            }
        )
        if demo.control_pos_bigwig:
            out.append(
                {
                    'task': task,
                    'kind': 'control',
                    'paths': [demo_reads.bams['control']],
                    'peaks': entry['peaks'],
                }
            )
    return out, {'tasks': tasks}


def _count(track, folder, args, shift, pipeline_args) -> counting.CountResult:
    """Counts one track into `folder`/<task>.<kind>.{pos,neg}.bw (always stranded)."""
    rule_for = reads_flags.rule_for(args, shift, True)
    plan = plan_lib.plan_count(
        track['paths'],
        rule_for,
        fasta=os.path.abspath(args.fasta) if args.fasta else None,
        region_size=args.region_size,
        stranded=True,
    )
    if shift is None and reads.ASSAYS[args.assay].checks_shift:
        for line in shift_check.check_shift(plan, shift_check.peak_centres(track['peaks'])):
            _LOGGER.info('%s', line)
    label = f'{_label(track["task"])}.{track["kind"]}'
    outputs = [files_lib.join(folder, f'{label}.pos.bw'), files_lib.join(folder, f'{label}.neg.bw')]
    print(
        f'make_records: counting the reads of task {track["task"]} ({track["kind"]}): '
        f'{", ".join(track["paths"])}',
        flush=True,
    )
    result = counting.count_to_bigwigs(
        plan, outputs, pipeline_args, worker_start_timeout=args.worker_start_timeout
    )
    print(f'make_records: {counting.summary_line(result)}', flush=True)
    return result


def _label(name: str) -> str:
    return ''.join(c if c.isalnum() or c in '.-_' else '_' for c in str(name))


def _point_at_counts(args, tracks, results, folder, spec) -> None:
    """Sets the bigWig flags, or writes the tasks spec, naming the counted bigWigs."""
    for track, result in zip(tracks, results):
        pos, neg = result.outputs
        if spec is None:
            prefix = 'control_' if track['kind'] == 'control' else ''
            setattr(args, f'{prefix}pos_bigwig', pos)
            setattr(args, f'{prefix}neg_bigwig', neg)
            continue
        for task in spec['tasks']:
            if task.get('name') == track['task']:
                key = 'reads' if track['kind'] == 'counts' else 'control_reads'
                prefix = 'control_' if track['kind'] == 'control' else ''
                task.pop(key, None)
                task[f'{prefix}pos_bigwig'], task[f'{prefix}neg_bigwig'] = pos, neg
    if spec is not None:
        path = files_lib.join(folder, 'tasks.json')
        files_lib.write_text(path, json.dumps(spec, indent=1) + '\n')
        args.tasks_spec = path


class CountedReads:
    """The counts made for a records job: saved into its folder by `save`."""

    def __init__(self, folder: str | None, results: list, args: argparse.Namespace):
        self.folder = folder
        self.results = results
        self._args = args

    def save(self, records_dir: str) -> None:
        """Writes reads.json and, with --write_bigwigs, the bigWigs into `records_dir`."""
        if not self.results:
            return
        args = self._args
        outputs = []
        if args.write_bigwigs:
            target = files_lib.join(records_dir, BIGWIGS_DIR)
            files_lib.make_dir(target)
            for result in self.results:
                for path in result.outputs:
                    dest = files_lib.join(target, path.rstrip('/').rsplit('/', 1)[-1])
                    _copy(path, dest)
                    outputs.append(dest)
        info = {
            'assay': args.assay,
            'shift': args.shift,
            'fragment_shift': args.fragment_shift,
            'filters': {
                k: getattr(args, k)
                for k in (
                    'min_mapq',
                    'dedup',
                    'keep_secondary',
                    'keep_supplementary',
                    'keep_improper_pairs',
                )
            },
            'counts': [r.to_dict() for r in self.results],
            'bigwigs': outputs,
        }
        files_lib.write_text(
            files_lib.join(records_dir, READS_FILENAME), json.dumps(info, indent=1) + '\n'
        )


def _copy(src: str, dest: str) -> None:
    if not files_lib.is_remote(src) and not files_lib.is_remote(dest):
        shutil.copyfile(src, dest)
        return
    from apache_beam.io.filesystems import FileSystems

    FileSystems.copy([src], [dest])
