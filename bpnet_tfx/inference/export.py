"""Exports a trained BPNet as a SavedModel that needs only TensorFlow to serve.

Two signatures return the same named outputs: `profile_probs` (softmax over positions, per
strand), `counts` (predicted total counts per strand, expm1 of `log_counts`), `profile_logits`
and `log_counts`. `serving_default` takes `one_hot`, a float32 batch (batch, length, 4) in ACGT
order with N as a zero row. `serving_sequence` takes `sequence`, a batch of DNA strings
(tf.string, shape (batch,)) of exactly the model's length, and one-hot encodes them inside the
graph (ACGT in any case; N and any other character give a zero row, as `sequence.one_hot`
does); a string of another length fails with an InvalidArgumentError naming the length wanted.
`metadata.json` of the training records and the model config are copied next to it, so the
export alone says what windows it expects. A model trained with control tracks takes a
second input in both signatures, `control`: float32 (batch, output_length, tasks, strands)
counts. Profile outputs are output_length long, centred in the input window.

Outputs are per strand whatever the training loss: for a model trained with
profile_loss='joint', `profile_probs` is the joint softmax conditioned on each strand, `counts`
splits the predicted total by each strand's share, and `log_total_counts` is the model's own
log(1 + total); so evaluation, prediction and contributions treat both kinds alike.
"""

from __future__ import annotations

import json
import os
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from bpnet_tfx.common import devices as devices_lib
from bpnet_tfx.common import rowwise
from bpnet_tfx.common.errors import BpnetError
from bpnet_tfx.genome import sequence
from bpnet_tfx.modeling.config import (
    CONTROL_INPUT_NAME,
    INPUT_NAME,
    LOG_COUNTS,
    PROFILE,
    ModelConfig,
)
from bpnet_tfx.records import schema

MODEL_CONFIG_FILENAME = 'model_config.json'
SIGNATURE = 'serving_default'
SEQUENCE_SIGNATURE = 'serving_sequence'
ONE_HOT_INPUT = 'one_hot'
SEQUENCE_INPUT = 'sequence'
CONTROL_INPUT = 'control'  # Only for models trained with control tracks.
OUTPUTS = ('profile_probs', 'counts', 'profile_logits', 'log_counts', 'log_total_counts')


def per_strand_outputs(
    logits: tf.Tensor, log_counts: tf.Tensor, joint: bool
) -> dict[str, tf.Tensor]:
    """The exported outputs from the model's logits (batch, length, [tasks,] strands) and
    log counts (batch, [tasks,] strands or 1 when `joint`); see the module docstring."""
    logits = tf.cast(logits, tf.float32)
    log_counts = tf.cast(log_counts, tf.float32)
    if joint:
        log_total = log_counts
        share = rowwise.softmax(rowwise.reduce_logsumexp(logits, 1), -1)
        counts = rowwise.expm1(log_total) * share
        log_counts = rowwise.log1p(counts)
    else:
        counts = rowwise.expm1(log_counts)
        log_total = rowwise.log1p(rowwise.reduce_sum(counts, -1, keepdims=True))
    return {
        'profile_probs': rowwise.softmax(logits, 1),
        'profile_logits': logits,
        'log_counts': log_counts,
        'counts': counts,
        'log_total_counts': log_total,
    }


def _outputs(
    model: keras.Model, one_hot: tf.Tensor, control: tf.Tensor | None = None
) -> dict[str, tf.Tensor]:
    inputs = one_hot if control is None else {INPUT_NAME: one_hot, CONTROL_INPUT_NAME: control}
    out = model(inputs, training=False)
    joint = int(out[LOG_COUNTS].shape[-1]) != int(out[PROFILE].shape[-1])
    return per_strand_outputs(out[PROFILE], out[LOG_COUNTS], joint)


def encode_sequences(sequences: tf.Tensor, length: int) -> tf.Tensor:
    """One-hot encodes a batch of DNA strings with TensorFlow ops, as `sequence.one_hot` does.

    Args:
      sequences: (batch,) tf.string, each exactly `length` ASCII characters.
      length: the model's window length in bp.

    Returns:
      (batch, length, 4) float32 in ACGT order; lower case encodes like upper case, N and any
      other byte give an all-zero row.

    Raises:
      tf.errors.InvalidArgumentError: (when run) a string of another length.
    """
    # Byte -> ACGT index, 4 for anything else; tf.one_hot maps index 4 of depth 4 to zeros.
    lookup = np.full(256, len(sequence.ALPHABET), np.int32)
    for i, base in enumerate(sequence.ALPHABET):
        lookup[ord(base)] = lookup[ord(base.lower())] = i
    check = tf.debugging.assert_equal(
        tf.strings.length(sequences),
        tf.constant(length, tf.int32),
        message=f'{SEQUENCE_SIGNATURE}: every sequence must be {length} bp long',
    )
    with tf.control_dependencies([check]):
        codes = tf.io.decode_raw(sequences, tf.uint8, fixed_length=length)
    codes = tf.gather(tf.constant(lookup), tf.cast(codes, tf.int32))
    return tf.reshape(
        tf.one_hot(codes, len(sequence.ALPHABET), dtype=tf.float32),
        (-1, length, len(sequence.ALPHABET)),
    )


def export_saved_model(
    model: keras.Model, info: schema.RecordsInfo, config: ModelConfig, path: str
) -> str:
    """Writes `model` as a SavedModel at `path`, with metadata.json and model_config.json.

    Args:
      model: the trained Keras model.
      info: metadata of the records it was trained on.
      config: its architecture.
      path: the export folder; replaced if it exists.

    Returns:
      `path`.
    """
    if tf.io.gfile.exists(path):
        tf.io.gfile.rmtree(path)
    length = config.sequence_length
    archive = keras.export.ExportArchive()
    archive.track(model)
    one_hot_spec = tf.TensorSpec(
        (None, length, config.num_channels), tf.float32, name=ONE_HOT_INPUT
    )
    sequence_spec = tf.TensorSpec((None,), tf.string, name=SEQUENCE_INPUT)
    if config.use_control:
        control_spec = tf.TensorSpec(
            (None, config.output_length, config.num_tasks, config.num_strands),
            tf.float32,
            name=CONTROL_INPUT,
        )
        archive.add_endpoint(
            name=SIGNATURE,
            fn=lambda one_hot, control: _outputs(model, one_hot, control),
            input_signature=[one_hot_spec, control_spec],
        )
        archive.add_endpoint(
            name=SEQUENCE_SIGNATURE,
            fn=lambda strings, control: _outputs(model, encode_sequences(strings, length), control),
            input_signature=[sequence_spec, control_spec],
        )
    else:
        archive.add_endpoint(
            name=SIGNATURE,
            fn=lambda one_hot: _outputs(model, one_hot),
            input_signature=[one_hot_spec],
        )
        archive.add_endpoint(
            name=SEQUENCE_SIGNATURE,
            fn=lambda strings: _outputs(model, encode_sequences(strings, length)),
            input_signature=[sequence_spec],
        )
    archive.write_out(path, verbose=False)
    info.save(path)
    with open(os.path.join(path, MODEL_CONFIG_FILENAME), 'w') as f:
        json.dump(config.to_dict(), f, indent=2, sort_keys=True)
        f.write('\n')
    return path


def _not_an_export(path: str, problem: str) -> schema.SchemaError:
    """The error for a folder that is not an export; a model folder's export is suggested."""
    inner = os.path.join(path, 'export')
    if os.path.exists(os.path.join(inner, MODEL_CONFIG_FILENAME)):
        return schema.SchemaError(
            f'{path}: {problem}; it is a model folder: did you mean --saved_model={inner}?'
        )
    return schema.SchemaError(f'{path}: {problem}; is it a bpnet_tfx export?')


def load_export_info(path: str) -> tuple[schema.RecordsInfo, ModelConfig]:
    """Reads the metadata and model config stored beside a SavedModel.

    Raises:
      schema.SchemaError: a file is missing or unreadable (a model folder given for its
        export is named as such), or the two disagree on the window length, tasks or strands.
    """
    if not os.path.isdir(path):
        raise schema.SchemaError(
            f'{path}: no such folder; expected a SavedModel written by bpnet_tfx.train'
        )
    if not os.path.exists(os.path.join(path, schema.METADATA_FILENAME)):
        raise _not_an_export(path, f'no {schema.METADATA_FILENAME}')
    info = schema.RecordsInfo.load(path)
    config_path = os.path.join(path, MODEL_CONFIG_FILENAME)
    try:
        with open(config_path) as f:
            config = ModelConfig.from_dict(json.load(f))
    except FileNotFoundError:
        raise _not_an_export(path, f'no {MODEL_CONFIG_FILENAME}') from None
    except (OSError, ValueError, TypeError) as e:
        raise schema.SchemaError(f'{config_path}: cannot read the model config: {e}') from None
    if (info.sequence_length, info.output_length, info.num_tasks, info.num_strands) != (
        config.sequence_length,
        config.output_length,
        config.num_tasks,
        config.num_strands,
    ):
        raise schema.SchemaError(
            f'{path}: export metadata inconsistent: {MODEL_CONFIG_FILENAME} says '
            f'{config.sequence_length} -> {config.output_length} bp, {config.num_tasks} '
            f'task(s) x {config.num_strands} strand(s), {schema.METADATA_FILENAME} says '
            f'{info.sequence_length} -> {info.output_length} bp, {info.num_tasks} x '
            f'{info.num_strands}'
        )
    return info, config


def load_saved_model(path: str, config: ModelConfig, name: str = SIGNATURE):
    """Loads the SavedModel at `path` and checks its signature `name` takes `config`'s windows.

    Returns:
      (loaded, fn): the loaded object and its concrete function, called with `one_hot=` (or
      `sequence=`, and `control=` for models with control tracks) keyword arguments. Keep
      `loaded` alive as long as `fn` is used: the function refers to its variables.

    Raises:
      schema.SchemaError: the SavedModel cannot be read, has no such signature, or its
        one-hot input is of another length than the export's model_config.json says.
    """
    try:
        loaded = tf.saved_model.load(path)
    except (OSError, ValueError, tf.errors.OpError) as e:
        raise schema.SchemaError(
            f'{path}: cannot load the SavedModel: {str(e).splitlines()[0] if str(e) else e!r}'
        ) from None
    if name not in loaded.signatures:
        raise schema.SchemaError(
            f'{path}: no {name!r} signature (it has {", ".join(sorted(loaded.signatures))})'
        )
    fn = loaded.signatures[name]
    spec = fn.structured_input_signature[1].get(ONE_HOT_INPUT)
    if spec is not None and tuple(spec.shape[1:]) != (config.sequence_length, config.num_channels):
        raise schema.SchemaError(
            f'{path}: export metadata inconsistent: the SavedModel takes one-hot windows of '
            f'shape {tuple(spec.shape[1:])}, {MODEL_CONFIG_FILENAME} says '
            f'({config.sequence_length}, {config.num_channels})'
        )
    return loaded, fn


class ExportError(BpnetError):
    """Inputs that do not fit an exported model (missing or misshapen control tracks)."""


def with_task_axis(outputs: dict[str, Any], num_tasks: int) -> dict[str, Any]:
    """A SavedModel's outputs (numpy arrays or tensors) with the task axis: single-task models
    drop it, so (batch, L, strands) profiles become (batch, L, 1, strands) and (batch, strands)
    counts (batch, 1, strands). Keys an export lacks are left out."""
    out = dict(outputs)
    if num_tasks == 1:
        for k in ('profile_logits', 'profile_probs'):
            if k in out:
                out[k] = out[k][:, :, None]
        for k in ('log_counts', 'counts', 'log_total_counts'):
            if k in out:
                out[k] = out[k][:, None]
    return out


class ExportedModel:
    """An export loaded once: its metadata, model config and `serving_default` signature.

    Every inference path (evaluation, prediction, contribution scores) calls the model
    through this wrapper, so control tracks are checked and the task axis restored alike, and
    each batch is split over `devices` (`devices.split_batch`).

    Args:
      path: folder written by `export_saved_model`.
      devices: device names to split batches over; default every visible GPU, else every
        logical CPU (`devices.inference_devices`).

    Raises:
      schema.SchemaError: not an export, or its files disagree.
    """

    def __init__(self, path: str, devices: list[str] | None = None):
        self.path = path
        self.devices = devices or devices_lib.inference_devices()
        self.info, self.config = load_export_info(path)
        # `_loaded` stays referenced: the signature needs its variables.
        self._loaded, self.signature = load_saved_model(path, self.config)
        self.control_shape = None
        if self.config.use_control:
            spec = self.signature.structured_input_signature[1].get(CONTROL_INPUT)
            if spec is None:
                raise schema.SchemaError(
                    f'{path}: {MODEL_CONFIG_FILENAME} says the model takes control tracks but '
                    f'its {SIGNATURE!r} signature has no control input'
                )
            self.control_shape = tuple(int(d) for d in spec.shape[1:])

    @property
    def variables(self) -> list[tf.Variable]:
        """The SavedModel's variables (the trained weights), as loaded."""
        return list(self._loaded.variables)

    def check_control(self, control: np.ndarray | None, batch: int) -> np.ndarray | None:
        """`control` as float32 (batch, *control_shape), or None for models without controls.

        Raises:
          ExportError: a model trained with control tracks gets none, or of another shape.
        """
        if not self.config.use_control:
            return None
        if control is None:
            raise ExportError(
                f'{self.path} was trained with control tracks and needs the '
                'observed control counts of every window (records made with '
                'controls, or control bigWigs); outputs without them would '
                'be silently wrong'
            )
        control = np.asarray(control, np.float32)
        if control.shape != (batch, *self.control_shape):
            raise ExportError(
                f'{self.path} takes control counts of shape (N, '
                f'{", ".join(map(str, self.control_shape))}), got '
                f'{control.shape}'
            )
        return control

    def outputs(self, one_hot, control=None) -> dict[str, tf.Tensor]:
        """The signature's outputs as tensors with the task axis (traceable in a
        tf.function); `control` must already be checked."""
        inputs = {ONE_HOT_INPUT: one_hot}
        if self.config.use_control:
            inputs[CONTROL_INPUT] = control
        return with_task_axis(self.signature(**inputs), self.config.num_tasks)

    def __call__(
        self, one_hot: np.ndarray, control: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        """(batch, L, 4) one-hot [and (batch, O, tasks, strands) control counts] -> numpy
        profile_logits/profile_probs (batch, O, tasks, strands), log_counts/counts (batch,
        tasks, strands), log_total_counts (batch, tasks, 1).

        Raises:
          ExportError: control tracks missing or misshapen.
        """
        control = self.check_control(control, len(one_hot))

        def call(x, c):
            out = self.outputs(tf.constant(x, tf.float32), None if c is None else tf.constant(c))
            return {k: v.numpy() for k, v in out.items()}

        return devices_lib.split_batch(call, (one_hot, control), self.devices)

    def predicted_counts(
        self,
        one_hot: np.ndarray,
        control: np.ndarray | None = None,
        *,
        reverse_complement: bool = False,
    ) -> np.ndarray:
        """Per-base predicted counts (batch, O, tasks, strands): probabilities x total counts.

        With `reverse_complement`, the mean of the forward prediction and the prediction on the
        reverse-complemented one-hot (and control, whose strands swap) mapped back (positions
        reversed, strands swapped).
        """
        one_hot = np.asarray(one_hot, np.float32)
        n = len(one_hot)
        if reverse_complement:
            if control is None:
                rc = sequence.reverse_complement(one_hot)
            else:
                rc, rc_control = sequence.reverse_complement(one_hot, control)
                control = np.concatenate([control, rc_control])
            one_hot = np.concatenate([one_hot, np.ascontiguousarray(rc)])
        out = self(one_hot, control)
        pred = out['profile_probs'] * out['counts'][:, None]
        if not reverse_complement:
            return pred
        _, back = sequence.reverse_complement(one_hot[n:], pred[n:])
        return 0.5 * (pred[:n] + back)

    def control_bigwigs(
        self, pos: str | None = None, neg: str | None = None
    ) -> list[tuple[str, str]] | None:
        """`control_bigwigs` of this export."""
        return control_bigwigs(self.info, self.config, pos, neg)


def control_bigwigs(
    info: schema.RecordsInfo,
    config: ModelConfig,
    pos: str | None = None,
    neg: str | None = None,
) -> list[tuple[str, str]] | None:
    """Per task, the (plus, minus) control bigWigs a model with control tracks needs: the
    given paths for every task, otherwise each task's files from the records' metadata; None
    for a model without controls.

    Raises:
      ExportError: the model needs controls and they are neither given nor recorded.
    """
    if not config.use_control:
        return None
    n = config.num_tasks
    tasks = info.source.get('tasks') or [{}] * n
    pairs = [
        (pos or t.get('control_pos_bigwig'), neg or t.get('control_neg_bigwig')) for t in tasks[:n]
    ]
    if len(pairs) != n or not all(all(p) for p in pairs):
        raise ExportError(
            'this model was trained with control tracks: give '
            '--control_pos_bigwig and --control_neg_bigwig'
        )
    return pairs
