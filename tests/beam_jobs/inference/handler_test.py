"""Tests of beam_jobs.inference.handler: the RunInference model handler over an export runs any
batch function (here plain forward + reverse-complement predictions, not variants), keyed
outputs follow their inputs whatever the batch size, and a remote export is copied first."""

import os
import shutil

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that

from beam_jobs.inference import handler as inference
from bpnet_tfx.inference import export


def _predicted_counts(model, windows):
    """A prediction job's batch function: per-base counts, forward and RC averaged."""
    return list(model.predicted_counts(np.stack(windows), reverse_complement=True))


def _windows(n, length, seed=0):
    rng = np.random.default_rng(seed)
    return np.eye(4, dtype=np.float32)[rng.integers(0, 4, (n, length))]


def _match_direct(expected):
    def check(actual):
        got = dict(actual)
        assert sorted(got) == sorted(expected)
        for key, want in expected.items():
            np.testing.assert_allclose(got[key], want, rtol=1e-5, atol=1e-6)

    return check


@pytest.mark.parametrize('batch_size', [1, 3])
def test_handler_runs_a_prediction_batch_fn_and_keys_follow_outputs(tiny_export, batch_size):
    path = tiny_export[0]
    model = export.ExportedModel(path)
    windows = _windows(7, model.config.sequence_length)
    expected = {
        f'w{i}': model.predicted_counts(w[None], reverse_complement=True)[0]
        for i, w in enumerate(windows)
    }
    handler = inference.ExportedModelHandler(path, _predicted_counts, batch_size=batch_size)
    with test_pipeline.TestPipeline(runner=FnApiRunner()) as p:
        out = (
            p
            | beam.Create([(f'w{i}', w) for i, w in enumerate(windows)])
            | inference.RunExportedModel(handler)
        )
        assert_that(out, _match_direct(expected))


def test_handler_refuses_a_batch_fn_that_drops_outputs(tiny_export):
    handler = inference.ExportedModelHandler(
        tiny_export[0], lambda model, batch: batch[:-1], batch_size=2
    )
    with pytest.raises(ValueError, match='returned 1 outputs for a batch of 2 examples'):
        handler.run_inference(['a', 'b'], model=None)
    assert handler.batch_elements_kwargs() == {'min_batch_size': 2, 'max_batch_size': 2}


def test_remote_export_is_copied_to_local_disk(tiny_export, fake_remote):
    root, prefix = fake_remote
    shutil.copytree(tiny_export[0], root / 'models' / 'export')
    local = inference.local_export(f'{prefix}models/export')
    assert local != tiny_export[0] and os.path.isdir(os.path.join(local, 'variables'))
    windows = _windows(2, 200)
    np.testing.assert_allclose(
        inference.load_export(f'{prefix}models/export')(windows)['counts'],
        export.ExportedModel(tiny_export[0])(windows)['counts'],
        rtol=1e-6,
    )
    with pytest.raises(FileNotFoundError, match='no such folder'):
        inference.local_export(f'{prefix}models/missing')
