"""RunInference over a bpnet_tfx export: the model handler every scale-out job shares.

Beam 2.77's TensorFlow model handler (`apache_beam.ml.inference.tensorflow_inference`) cannot
serve our exports under Keras 3 / TensorFlow 2.21: it loads a model with
`tf.keras.models.load_model`, which in Keras 3 refuses SavedModel folders ("Keras 3 only
supports V3 `.keras` files and legacy H5 format files"); with TF_USE_LEGACY_KERAS=1 (tf_keras)
it loads the export as a plain trackable object that its inference function cannot call (our
export's entry points are named signatures, one-hot and string inputs, an optional control
input); and the module imports tensorflow_hub, which is not a dependency of the project. So
`ExportedModelHandler` is a `ModelHandler` of ours: it loads the export once per worker
process as `inference.export.ExportedModel` (the wrapper every inference path uses: control
checks, task axis) and hands each batch to a job's `batch_fn(model, examples)`, which returns
one output per example. Nothing here knows about variants: prediction or contribution jobs
pass their own `batch_fn` (docs/runners.md), and a `model_fn` that builds what a worker keeps
beside the model (an opened FASTA, a contribution scorer) once per process. Batches are
`batch_size` examples (fewer at the end of a bundle): Beam's BatchElements with its minimum and
maximum both set, so memory per call is bounded and the same on every runner.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import tempfile
from typing import Any, Callable, Iterable, Iterator, Sequence

import apache_beam as beam
from apache_beam.ml.inference.base import KeyedModelHandler, ModelHandler, RunInference

from beam_jobs.common import files as files_lib
from bpnet_tfx.common import progress as progress_lib
from bpnet_tfx.records import schema

BatchFn = Callable[[Any, Sequence[Any]], Sequence[Any]]


def local_export(saved_model: str) -> str:
    """A local path to the export: the path itself, or a fresh local copy of a remote one."""
    if not files_lib.is_remote(saved_model):
        return saved_model
    return files_lib.copy_tree_to_local(saved_model, tempfile.mkdtemp(prefix='bpnet-export-'))


@dataclasses.dataclass(frozen=True)
class ExportInfo:
    """What a driver needs of an export without loading its graph: `info` (the records'
    metadata), `config` (the model config) and `control_bigwigs`, as on `ExportedModel`."""

    info: Any
    config: Any
    path: str = ''

    def control_bigwigs(self, pos: str | None = None, neg: str | None = None):
        from bpnet_tfx.inference import export

        return export.control_bigwigs(self.info, self.config, pos, neg)


def load_export_info(saved_model: str) -> ExportInfo:
    """The metadata and model config of a local or remote export (`export.load_export_info`),
    read in a second instead of the seconds a SavedModel takes to load: the workers load it.

    Raises:
      schema.SchemaError: not an export, or its files disagree.
    """
    from bpnet_tfx.inference import export

    if not files_lib.is_remote(saved_model):
        return ExportInfo(*export.load_export_info(saved_model), path=saved_model)
    local = tempfile.mkdtemp(prefix='bpnet-export-info-')
    try:
        for name in (schema.METADATA_FILENAME, export.MODEL_CONFIG_FILENAME):
            path = files_lib.join(saved_model, name)
            if files_lib.exists(path):
                files_lib.copy_to_local(path, local)
        if not os.listdir(local):
            raise schema.SchemaError(
                f'{saved_model}: no {schema.METADATA_FILENAME}; is it a bpnet_tfx export?'
            )
        return ExportInfo(*export.load_export_info(local), path=saved_model)
    finally:
        shutil.rmtree(local, ignore_errors=True)


@contextlib.contextmanager
def tensorflow_quiet(verbose: bool = False) -> Iterator[None]:
    """A block in which TensorFlow's import-time lines on stderr are hidden, unless `verbose`
    (they ignore TF_CPP_MIN_LOG_LEVEL: see bpnet_tfx.common.cli.native_stderr_hidden)."""
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '1' if verbose else '3')
    if verbose:
        yield
        return
    from bpnet_tfx.common import cli

    with cli.native_stderr_hidden():
        yield


def load_export(saved_model: str, verbose: bool = False):
    """`export.ExportedModel` of a local or remote export, TensorFlow's load-time chatter on
    stderr hidden unless `verbose`.

    Raises:
      schema.SchemaError: not an export; OSError: a remote one cannot be read.
    """
    with tensorflow_quiet(verbose):
        from bpnet_tfx.inference import export

        return export.ExportedModel(local_export(saved_model))


class ExportedModelHandler(ModelHandler):
    """Examples -> `batch_fn(model, examples)` outputs, with an `export.ExportedModel`.

    Args:
      saved_model: the export folder (local, or gs:// etc. where the workers can read it:
        copied to the worker's disk once per process).
      batch_fn: `(model, examples) -> outputs`, one output per example in order; a module
        function (or functools.partial of one), so that it pickles to remote workers.
      batch_size: examples per batch.
      namespace: the metrics namespace of RunInference's counters and latencies.
      verbose: show TensorFlow's load-time log lines.
      progress: (label, unit): a progress line on stderr every `progress_every` examples
        each worker has done ('score_variants: 2000 variants, 4.1 variants/s'); None: none.
      progress_every: see `progress`.
      model_fn: `model_fn(ExportedModel)` -> what `batch_fn` gets as its model, made once per
        worker process (default: the ExportedModel itself); a module function or partial.
      weight: `weight(example)` -> how many units one example counts for in the progress
        line (default 1: examples).
    """

    def __init__(
        self,
        saved_model: str,
        batch_fn: BatchFn,
        *,
        batch_size: int,
        namespace: str = 'bpnet_tfx',
        verbose: bool = False,
        progress: tuple[str, str] | None = None,
        progress_every: int = 1000,
        model_fn: Callable[[Any], Any] | None = None,
        weight: Callable[[Any], int] | None = None,
    ):
        super().__init__(min_batch_size=batch_size, max_batch_size=batch_size)
        self._saved_model = saved_model
        self._batch_fn = batch_fn
        self._namespace = namespace
        self._verbose = verbose
        self._progress_args = progress
        self._progress_every = progress_every
        self._progress = None  # Made in the worker, at its first batch.
        self._done = 0
        self._model_fn = model_fn
        self._weight = weight

    def load_model(self):
        # Several SDK processes may share a worker's GPU: each takes memory as it needs it,
        # not all of it at start (TensorFlow's default).
        os.environ.setdefault('TF_FORCE_GPU_ALLOW_GROWTH', 'true')
        model = load_export(self._saved_model, self._verbose)
        return self._model_fn(model) if self._model_fn else model

    def run_inference(
        self, batch: Sequence[Any], model, inference_args: dict[str, Any] | None = None
    ) -> Iterable[Any]:
        if self._progress_args and self._progress is None:  # Its clock starts now.
            label, unit = self._progress_args
            self._progress = progress_lib.Progress(label, unit, None, every=self._progress_every)
        outputs = list(self._batch_fn(model, list(batch)))
        if len(outputs) != len(batch):
            raise ValueError(
                f'batch_fn returned {len(outputs)} outputs for a batch of {len(batch)} examples'
            )
        if self._progress is not None:
            self._done += sum(map(self._weight, batch)) if self._weight else len(batch)
            self._progress.update(self._done)
        return outputs

    def get_metrics_namespace(self) -> str:
        return self._namespace

    def update_model_path(self, model_path: str | None = None):
        self._saved_model = model_path or self._saved_model


@beam.ptransform_fn
def RunExportedModel(keyed, handler: ExportedModelHandler):
    """(key, example) -> (key, output) through RunInference with `handler`; keys pass through
    untouched, so outputs can be put back in order or grouped after the (unordered) run."""
    return keyed | 'RunInference' >> RunInference(KeyedModelHandler(handler))


def _as_batch(example: Any) -> list[Any]:
    return [example]


@beam.ptransform_fn
def RunUnbatched(examples, handler: ExportedModelHandler):
    """example -> output through RunInference with `handler`, one example a call, without
    Beam's BatchElements: Beam 2.77's Dask runner drops what a DoFn emits in finish_bundle,
    where BatchElements flushes a bundle's last batch, so batched elements are lost there.
    For jobs whose examples are whole shards of work."""
    return (
        examples
        | 'OneExampleBatches' >> beam.Map(_as_batch)
        | 'RunInference' >> RunInference(handler.with_no_batching())
    )
