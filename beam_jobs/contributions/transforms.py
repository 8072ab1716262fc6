"""DoFns and PTransforms of the contrib job (beam_jobs/contrib.py).

A shard plan is one JSON line, {"shard": k, "windows": [[chrom, start, end, name], ...],
"input": path or null}: consecutive rows of the input. BED windows are read from the FASTA on
the workers; records windows come staged by the driver (`input`, an .npz of one_hot and
control). `ScoreShards` runs the plans through RunInference with the shared handler: each
worker process loads the export once as a contribution scorer (`ShardScorer`) and scores a
shard's windows in the command's model calls (`contributions.score_batch`: references from
`shuffle.keyed_rng(seed, window)`, so no score depends on the shard or the worker), and
writes the shard's rows to an .npz in the job's folder; only its place travels on.
`WriteFolder` gathers the places and one writer appends the shards' rows in input order to
the command's `output.FolderWriter`, which writes regions.bed, ohe.npz and per target
shap.npz and contrib.bw. The DoFns live here, not in the job's main, so that remote workers
can import them.
"""

from __future__ import annotations

import functools
import io
import json
import os
import secrets
import shutil
import tempfile
from typing import Any, Iterable, Sequence

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from beam_jobs.common import files as files_lib
from beam_jobs.inference import handler as inference
from beam_jobs.inference import outputs

NAMESPACE = 'contrib'
SCORED_PREFIX = '_scored-'  # The shards' rows in the job's folder; removed at the end.
INPUT_PREFIX = '_input-'  # Records windows staged by the driver; removed at the end.
FILES_FILENAME = '_folder_files.json'  # The folder's files, for the driver; written last.


def _counter(name: str):
    return beam.metrics.Metrics.counter(NAMESPACE, name)


def shard_filename(prefix: str, shard: int) -> str:
    return f'{prefix}{shard:05d}.npz'


def save_arrays(dest: str, **arrays: np.ndarray) -> None:
    """Writes an uncompressed .npz to `dest` (local or remote), whole."""

    def write(path: str) -> None:
        with open(path, 'wb') as f:
            np.savez(f, **arrays)

    outputs.write_file(dest, write)


def load_arrays(path: str) -> dict[str, np.ndarray]:
    if files_lib.is_remote(path):
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            path = io.BytesIO(f.read())
    with np.load(path) as data:
        return dict(data)


def plan_windows(line: str) -> int:
    """Windows of a plan line (the progress weight of a shard)."""
    return len(json.loads(line)['windows'])


class ShardScorer:
    """What a worker process keeps for the job: the scorer, and the opened FASTA (BED input).

    Args:
      model: the `export.ExportedModel` (the handler's `model_fn` gets it).
      fasta: the genome FASTA for BED windows (local or remote), or None (records input).
      controls: per task, the (plus, minus) control bigWigs for BED windows, or None.
      output_dir: the job's folder, where the scored rows go.
      settings: method, num_shuffles, steps, batch_size, seed, reverse_complement_average.
    """

    def __init__(self, model, *, fasta, controls, output_dir, settings: dict[str, Any]):
        from bpnet_tfx.attribution import contributions, scorer
        from bpnet_tfx.genome import genome_io

        self.scorer = scorer.Scorer(model)
        self.output_dir, self.settings = output_dir, dict(settings)
        self.per_call = contributions.windows_per_call(
            settings['method'],
            settings['num_shuffles'],
            settings['batch_size'],
            self.scorer.length,
            settings['reverse_complement_average'],
        )
        self.genome = self.controls = None
        if fasta:
            paths = [fasta] + [p for pair in controls or () for p in pair]
            remote = any(map(files_lib.is_remote, paths))
            local = files_lib.localize(
                paths, files_lib.make_local_dir() if remote else '', companions=('.fai',)
            )
            self.controls = [tuple(local[p] for p in pair) for pair in controls or ()] or None
            self.genome = genome_io.open_fasta(local[fasta])

    def _batches(self, plan: dict[str, Any], windows):
        from bpnet_tfx.attribution import windows as contrib_windows

        if plan['input'] is None:
            shape = self.scorer.control_shape
            yield from contrib_windows.bed_batches(
                self.genome, windows, self.per_call, self.controls, shape[0] if shape else None
            )
            return
        staged = load_arrays(plan['input'])
        for b in range(0, len(windows), self.per_call):
            control = staged['control'][b : b + self.per_call] if 'control' in staged else None
            yield windows[b : b + self.per_call], staged['one_hot'][b : b + self.per_call], control

    def __call__(self, line: str) -> dict[str, Any]:
        """Scores one shard plan, writes its rows; returns their place."""
        from bpnet_tfx.attribution import contributions
        from bpnet_tfx.attribution.output import Window

        plan = json.loads(line)
        windows = [Window(*w) for w in plan['windows']]
        one_hots, hyps = [], []
        for part, one_hot, control in self._batches(plan, windows):
            hyps.append(
                contributions.score_batch(self.scorer, part, one_hot, control, **self.settings)
            )
            one_hots.append(np.asarray(one_hot, np.float32))
        arrays = {'one_hot': np.concatenate(one_hots)}
        for t in range(len(self.scorer.targets)):
            arrays[f'hyp{t}'] = np.concatenate([h[t] for h in hyps]).astype(np.float32)
        path = files_lib.join(self.output_dir, shard_filename(SCORED_PREFIX, plan['shard']))
        save_arrays(path, **arrays)
        _counter('windows').inc(len(windows))
        _counter('shards').inc()
        return {'shard': plan['shard'], 'windows': plan['windows'], 'path': path}


def score_shards(scorer: ShardScorer, lines: Sequence[str]) -> list[dict[str, Any]]:
    """The handler's batch function: one shard's place per plan line."""
    return [scorer(line) for line in lines]


class ScoreShards(beam.PTransform):
    """Plan line -> {'shard', 'windows', 'path'} after writing the shard's rows."""

    def __init__(
        self, saved_model: str, *, verbose: bool = False, progress_every: int, **scorer: Any
    ):
        """Args: the export, TensorFlow's log lines, windows between progress lines, and
        `ShardScorer`'s arguments."""
        super().__init__()
        self._handler = inference.ExportedModelHandler(
            saved_model,
            score_shards,
            batch_size=1,  # a shard a call; its windows go in the command's model calls
            namespace=NAMESPACE,
            verbose=verbose,
            progress=(NAMESPACE, 'regions'),
            progress_every=progress_every,
            model_fn=functools.partial(ShardScorer, **scorer),
            weight=plan_windows,
        )

    def expand(self, plans):
        return plans | 'RunShards' >> inference.RunUnbatched(self._handler)


class WriteFolderFn(beam.DoFn):
    """(None, [shard places]) -> the folder's files (relative paths), after writing them
    into the job's folder from the shards' rows in input order, and their list as
    FILES_FILENAME.

    Raises:
      RuntimeError: the places are not every shard once (a runner that lost or repeated one).
    """

    def __init__(self, output_dir: str, targets: Sequence[str], header, num_shards: int):
        """Args:
        output_dir: the job's folder.
        targets: the target names, in output order.
        header: the bigWigs' (chrom, size) list.
        num_shards: how many shards the job has.
        """
        self._output_dir, self._targets = output_dir, list(targets)
        self._header, self._num_shards = [tuple(c) for c in header], num_shards

    def process(self, element) -> Iterable[dict[str, str]]:
        from bpnet_tfx.attribution import output

        shards = sorted(element[1], key=lambda s: s['shard'])
        if [s['shard'] for s in shards] != list(range(self._num_shards)):
            raise RuntimeError(
                f'the folder got shards {[s["shard"] for s in shards]}, not 0-'
                f'{self._num_shards - 1} once each'
            )
        local = self._local_folder()
        try:
            writer = output.FolderWriter(local, self._targets)
            for shard in shards:
                rows = load_arrays(shard['path'])
                hyps = [rows[f'hyp{t}'] for t in range(len(self._targets))]
                writer.add([output.Window(*w) for w in shard['windows']], rows['one_hot'], hyps)
            files = writer.finish(self._header)
            for name in files.values():
                self._publish(os.path.join(local, name), name)
        finally:
            shutil.rmtree(local, ignore_errors=True)
        files_lib.write_text(files_lib.join(self._output_dir, FILES_FILENAME), json.dumps(files))
        _counter('folders_written').inc()
        yield files

    def _local_folder(self) -> str:
        if files_lib.is_remote(self._output_dir):
            return tempfile.mkdtemp(prefix='contrib-folder-')
        folder = os.path.join(self._output_dir, f'_folder-{os.getpid()}-{secrets.token_hex(4)}')
        os.makedirs(folder)
        return folder

    def _publish(self, path: str, name: str) -> None:
        if files_lib.is_remote(self._output_dir):
            files_lib.publish_file(path, files_lib.join(self._output_dir, name))
            return
        dest = os.path.join(self._output_dir, name)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        os.replace(path, dest)


class WriteFolder(beam.PTransform):
    """Shard places -> the folder's files, written by one worker (see WriteFolderFn)."""

    def __init__(self, output_dir: str, targets: Sequence[str], header, num_shards: int):
        super().__init__()
        self._fn = WriteFolderFn(output_dir, targets, header, num_shards)

    def expand(self, places):
        return (
            places
            | 'KeyPlaces' >> beam.Map(lambda place: (None, place))
            | 'GatherPlaces' >> beam.GroupByKey()
            | 'WriteFolderFiles' >> beam.ParDo(self._fn)
        )


def remove_staged(output_dir: str) -> None:
    """Deletes the staged inputs, the shards' rows and the files list from the job's
    folder."""
    for path in files_lib.list_files(output_dir):
        name = path.rstrip('/').rsplit('/', 1)[-1]
        if name.startswith((SCORED_PREFIX, INPUT_PREFIX)) or name == FILES_FILENAME:
            files_lib.delete(path)
