"""DoFns and PTransforms of the predict_tracks job (beam_jobs/predict_tracks.py).

A shard plan is one JSON line, {"shard": k, "windows": n, "pieces": [[chrom, start, end],
...]} (regions.plan_shards). `PredictShards` runs the plans through RunInference with the
shared handler: each worker process loads the export once and opens the FASTA (and control
bigWigs) once (`ShardPredictor`), and predicts a shard's windows in --batch_size model calls
with the command's own code (`tracks.predict_spans`: tiling, forward and reverse-complement
averaging, overlaps averaged). A shard's values go straight to one float32 file per track in
the job's folder, and only the pieces' places travel on, so no step holds more than one shard
of values and memory does not grow with the genome. `WriteTracks` groups those places by
track and `WriteTrackFn` writes each bigWig alone, its pieces in FASTA order. The DoFns live
here, not in the job's main, so that remote workers can import them.
"""

from __future__ import annotations

import functools
import json
from typing import Any, Iterable, Sequence

import apache_beam as beam
import numpy as np

from beam_jobs.common import files as files_lib
from beam_jobs.inference import handler as inference
from beam_jobs.inference import outputs

NAMESPACE = 'predict_tracks'
VALUES_PREFIX = '_values-'  # The shards' value files in the job's folder; removed at the end.


def _counter(name: str):
    return beam.metrics.Metrics.counter(NAMESPACE, name)


def values_filename(shard: int, label: str) -> str:
    return f'{VALUES_PREFIX}{shard:05d}.{label}.f32'


def plan_windows(line: str) -> int:
    """Windows of a plan line (the progress weight of a shard)."""
    return json.loads(line)['windows']


class ShardPredictor:
    """What a worker process keeps for the job: the model, the opened FASTA and controls.

    Args:
      model: the `export.ExportedModel` (the handler's `model_fn` gets it).
      fasta: the genome FASTA (local or remote: copied to local disk once).
      controls: per task, the (plus, minus) control bigWigs, or None.
      output_dir: the job's folder, where the value files go.
      labels: ((task index, strand index), label) of each track; labels name the files.
      batch_size: windows per model call.
    """

    def __init__(self, model, *, fasta, controls, output_dir, labels, batch_size):
        from bpnet_tfx.genome import genome_io

        self.model, self.output_dir, self.batch_size = model, output_dir, batch_size
        self.labels = labels
        paths = [fasta] + [p for pair in controls or () for p in pair]
        local_dir = files_lib.make_local_dir() if any(map(files_lib.is_remote, paths)) else ''
        local = files_lib.localize(paths, local_dir, companions=('.fai',))
        self.controls = [tuple(local[p] for p in pair) for pair in controls or ()] or None
        self.genome = genome_io.open_fasta(local[fasta])

    def __call__(self, line: str) -> dict[str, Any]:
        """Predicts one shard plan, writes its value files; returns their places."""
        from bpnet_tfx.inference import tracks

        plan = json.loads(line)
        pieces = [tuple(p) for p in plan['pieces']]
        values, places = [], []

        def add(chrom: str, start: int, piece: np.ndarray) -> None:
            places.append((chrom, start, start + len(piece), sum(map(len, values))))
            values.append(piece.astype(np.float32))

        windows = tracks.predict_spans(
            self.model, self.genome, self.controls, pieces, add, batch_size=self.batch_size
        )
        stacked = np.concatenate(values)
        files = {}
        for (t, s), label in self.labels:
            dest = files_lib.join(self.output_dir, values_filename(plan['shard'], label))
            column = np.ascontiguousarray(stacked[:, t, s], '<f4')
            outputs.write_file(dest, column.tofile)
            files[label] = dest
        _counter('windows').inc(windows)
        _counter('shards').inc()
        return {'shard': plan['shard'], 'windows': windows, 'places': places, 'files': files}


def predict_shards(predictor: ShardPredictor, lines: Sequence[str]) -> list[dict[str, Any]]:
    """The handler's batch function: one shard's places per plan line."""
    return [predictor(line) for line in lines]


class PredictShards(beam.PTransform):
    """Plan line -> {'shard', 'windows', 'places': [(chrom, start, end, offset)], 'files':
    {label: path}} after writing the shard's value files (module docstring)."""

    def __init__(
        self, saved_model: str, *, verbose: bool = False, progress_every: int, **predictor: Any
    ):
        """Args: the export, TensorFlow's log lines, windows between progress lines, and
        `ShardPredictor`'s arguments."""
        super().__init__()
        self._handler = inference.ExportedModelHandler(
            saved_model,
            predict_shards,
            batch_size=1,  # a shard a call; the shard's windows go in --batch_size calls
            namespace=NAMESPACE,
            verbose=verbose,
            progress=(NAMESPACE, 'windows'),
            progress_every=progress_every,
            model_fn=functools.partial(ShardPredictor, **predictor),
            weight=plan_windows,
        )

    def expand(self, plans):
        return plans | 'RunShards' >> inference.RunUnbatched(self._handler)


class WriteTrackFn(beam.DoFn):
    """(label, [shard places]) -> {'label', 'windows', 'bases'} after writing the track.

    Raises:
      RuntimeError: the places are not every shard once (a runner that lost or repeated one).
    """

    def __init__(self, output_dir: str, names: dict[str, str], header, num_shards: int):
        """Args:
        output_dir: the job's folder.
        names: per label, the bigWig's base name.
        header: (chrom, size) of every FASTA chromosome, in FASTA order.
        num_shards: how many shards the job has.
        """
        self._output_dir, self._names = output_dir, names
        self._header, self._num_shards = [tuple(c) for c in header], num_shards

    def process(self, element) -> Iterable[dict[str, Any]]:
        label, shards = element
        shards = sorted(shards, key=lambda s: s['shard'])
        if [s['shard'] for s in shards] != list(range(self._num_shards)):
            raise RuntimeError(
                f'track {label} got shards {[s["shard"] for s in shards]}, not 0-'
                f'{self._num_shards - 1} once each'
            )
        rank = {c: i for i, (c, _) in enumerate(self._header)}
        pieces = sorted(
            (rank[chrom], start, end, offset, chrom, s['files'][label])
            for s in shards
            for chrom, start, end, offset in s['places']
        )
        dest = files_lib.join(self._output_dir, self._names[label])
        outputs.write_file(dest, functools.partial(self._write, pieces))
        _counter('tracks_written').inc()
        yield {
            'label': label,
            'windows': sum(s['windows'] for s in shards),
            'bases': sum(end - start for _, start, end, *_ in pieces),
        }

    def _write(self, pieces, path: str) -> None:
        import pyBigWig

        bw = pyBigWig.open(path, 'w')
        try:
            bw.addHeader(self._header)
            for _, start, end, offset, chrom, values_path in pieces:
                values = _read_values(values_path, offset, end - start)
                bw.addEntries(chrom, start, values=values.astype(np.float64), span=1, step=1)
        finally:
            bw.close()


def _read_values(path: str, offset: int, count: int) -> np.ndarray:
    if not files_lib.is_remote(path):
        return np.fromfile(path, '<f4', count=count, offset=4 * offset)
    return np.frombuffer(files_lib.read_range(path, 4 * offset, 4 * count), '<f4')


def _by_label(places: dict[str, Any]) -> Iterable[tuple[str, dict[str, Any]]]:
    for label in places['files']:
        yield label, places


class WriteTracks(beam.PTransform):
    """Shard places -> one stats dict per bigWig written (see WriteTrackFn)."""

    def __init__(self, output_dir: str, names: dict[str, str], header, num_shards: int):
        super().__init__()
        self._fn = WriteTrackFn(output_dir, names, header, num_shards)

    def expand(self, places):
        return (
            places
            | 'KeyPlacesByTrack' >> beam.FlatMap(_by_label)
            | 'GroupPlacesByTrack' >> beam.GroupByKey()
            | 'WriteTrackFiles' >> beam.ParDo(self._fn)
        )


def remove_values(output_dir: str) -> None:
    """Deletes the shards' value files from the job's folder."""
    for path in files_lib.list_files(output_dir):
        if path.rstrip('/').rsplit('/', 1)[-1].startswith(VALUES_PREFIX):
            files_lib.delete(path)
