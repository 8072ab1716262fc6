"""Shared fixtures: tiny records folders written straight through the schema (no Beam)."""

from __future__ import annotations

import os
import pathlib
import shutil

import numpy as np
import pytest

from bpnet_tfx import schema, sequence

# Fixtures of tests/fake_remote.py, tests/control_models.py (control_model: trained once) and
# tests/simulated_models.py (planted_motif_model: simulated, recorded and trained once).
pytest_plugins = ['fake_remote', 'control_models', 'simulated_models']

MOTIF = 'GATTACAGG'
PLUS_OFFSET, MINUS_OFFSET = 6, 9  # Footprint peaks: c - 6 on plus, c + 9 on minus.


def shared_data_dir() -> pathlib.Path:
    """The read-only Reb1 ChIP-exo data set beside the checkout (or $BPNET_TFX_SHARED_DATA)."""
    env = os.environ.get('BPNET_TFX_SHARED_DATA')
    if env:
        return pathlib.Path(env)
    return (
        pathlib.Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'reb1-chipexo-chrIV-300k'
    )


def synthetic_window(
    rng: np.random.Generator, stored_length: int, *, reverse: bool = False, total: float = 200.0
) -> tuple[np.ndarray, np.ndarray, int]:
    """A random sequence with MOTIF at the centre and its stranded footprint as counts.

    Returns (one_hot (L, 4), profile (L, 1, 2), motif_centre).
    """
    bases = np.array(list('ACGT'))[rng.integers(0, 4, stored_length)]
    motif = MOTIF
    centre = stored_length // 2
    if reverse:
        motif = sequence.decode_one_hot(sequence.reverse_complement(sequence.one_hot(MOTIF)))
    start = centre - len(MOTIF) // 2
    bases[start : start + len(MOTIF)] = list(motif)
    profile = np.zeros((stored_length, 1, 2), np.float32)
    plus, minus = (PLUS_OFFSET, MINUS_OFFSET) if not reverse else (MINUS_OFFSET, PLUS_OFFSET)
    profile[centre - plus, 0, 0] = total / 2
    profile[centre + minus, 0, 1] = total / 2
    profile += rng.poisson(0.05, profile.shape).astype(np.float32)
    return sequence.one_hot(''.join(bases)), profile, centre


def write_records(
    records_dir: str,
    *,
    split_counts: dict[str, int],
    sequence_length: int = 200,
    max_jitter: int = 0,
    num_shards: int = 2,
    seed: int = 0,
    with_expected: bool = False,
    output_length: int = 0,
    background_every: int = 0,
    version: int = schema.SCHEMA_VERSION,
    encodings: dict[str, schema.TrackEncoding] | None = None,
    integer_counts: bool = False,
) -> schema.RecordsInfo:
    """Writes a records folder of synthetic windows, as make_records would lay it out.

    With `output_length`, the counts are the centred output_length (+ margins) of each window;
    with `background_every` = k, every k-th record is a background region (random sequence,
    sparse noise counts) and every record carries the background flag. `version` and
    `encodings` choose the schema version and the tracks' encodings; `integer_counts` makes
    the footprint counts integers, so that integer dtypes hold them.
    """
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    os.makedirs(records_dir, exist_ok=True)
    stored = sequence_length + 2 * max_jitter
    output_length = output_length or sequence_length
    cut = (sequence_length - output_length) // 2
    totals = []
    background_counts = {}
    for split, n in split_counts.items():
        writers = [
            tf.io.TFRecordWriter(
                os.path.join(records_dir, schema.shard_filename(split, i, num_shards)),
                options=schema.COMPRESSION,
            )
            for i in range(num_shards)
        ]
        for i in range(n):
            total = float(rng.integers(50, 400))
            one_hot, profile, _ = synthetic_window(
                rng,
                stored,
                reverse=bool(i % 2),
                total=2 * (total // 2) if integer_counts else total,
            )
            background = bool(background_every) and i % background_every == background_every - 1
            if background:
                one_hot = sequence.one_hot(''.join(rng.choice(list('ACGT'), stored)))
                profile = rng.poisson(0.05, profile.shape).astype(np.float32)
                background_counts[split] = background_counts.get(split, 0) + 1
            profile = profile[cut : stored - cut]
            expected = profile + 0.01 if with_expected else None
            record = schema.encode_record(
                f'chr{split}:{i * stored}-{(i + 1) * stored}',
                f'chr{split}',
                i * stored,
                one_hot,
                profile,
                expected,
                is_background=background if background_every else None,
                encodings=encodings,
                version=version,
            )
            writers[i % num_shards].write(record)
            if split == 'train' and not background:
                totals.append(float(profile[max_jitter : max_jitter + output_length].sum()))
        for w in writers:
            w.close()
    info = schema.RecordsInfo(
        sequence_length=sequence_length,
        max_jitter=max_jitter,
        tasks=('synthetic',),
        split_counts=dict(split_counts),
        num_shards={s: num_shards for s in split_counts},
        has_expected=with_expected,
        output_length=output_length,
        has_background=bool(background_every),
        background_counts=background_counts,
        median_total_counts=(float(np.median(totals)),) if totals else (),
        source={'made_by': 'tests/conftest.py write_records'},
        schema_version=version,
        track_encodings={k: v.to_dict() for k, v in (encodings or {}).items()},
    )
    info.save(records_dir)
    return info


@pytest.fixture
def small_records(tmp_path) -> tuple[str, schema.RecordsInfo]:
    """64 train and 16 valid windows of 200 bp with a 10-bp jitter margin."""
    path = str(tmp_path / 'records')
    info = write_records(
        path,
        split_counts={'train': 64, 'valid': 16},
        sequence_length=200,
        max_jitter=10,
        with_expected=True,
    )
    return path, info


@pytest.fixture(scope='session')
def _tiny_export_once(tmp_path_factory):
    """tiny_export's model and SavedModel, built and exported once per session (read-only)."""
    import keras

    from bpnet_tfx import export
    from bpnet_tfx import model as model_lib

    root = tmp_path_factory.mktemp('tiny_export')
    info = write_records(
        str(root / 'records'),
        split_counts={'train': 64, 'valid': 16},
        sequence_length=200,
        max_jitter=10,
        with_expected=True,
    )
    keras.utils.set_random_seed(0)
    config = model_lib.ModelConfig(
        sequence_length=info.sequence_length, filters=8, num_dilated_layers=2
    )
    model = model_lib.build_bpnet(config)
    return export.export_saved_model(model, info, config, str(root / 'export')), model


@pytest.fixture
def tiny_export(_tiny_export_once, small_records, tmp_path):
    """An untrained small BPNet for the small_records windows, exported as a SavedModel.

    The export is a copy, in this test's tmp_path, of one made once per session; the model
    object is shared, so tests must not change its weights.

    Returns (export_dir, keras_model, records_dir, info).
    """
    import keras

    source, model = _tiny_export_once
    records_dir, info = small_records
    keras.utils.set_random_seed(0)  # Each test starts from the same global seeds as before.
    path = shutil.copytree(source, tmp_path / 'export')
    return str(path), model, records_dir, info
