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

Outputs are per strand whatever the training loss. For a model trained with
profile_loss='joint' (one softmax over length x strands, one total count), `profile_probs` is
still the softmax over positions within each strand (the joint distribution conditioned on the
strand), `counts` splits the predicted total between the strands in proportion to each
strand's share of the joint distribution, `log_counts` is log(1 + counts) per strand and
`log_total_counts` the model's own log(1 + total). So evaluation, prediction and contribution
scores treat both kinds of model alike.
"""

from __future__ import annotations

import json
import os

import keras
import numpy as np
import tensorflow as tf

from bpnet_tfx import model as model_lib
from bpnet_tfx import schema, sequence

MODEL_CONFIG_FILENAME = 'model_config.json'
SIGNATURE = 'serving_default'
SEQUENCE_SIGNATURE = 'serving_sequence'
ONE_HOT_INPUT = 'one_hot'
SEQUENCE_INPUT = 'sequence'
CONTROL_INPUT = 'control'  # Only for models trained with control tracks.
OUTPUTS = ('profile_probs', 'counts', 'profile_logits', 'log_counts', 'log_total_counts')


def per_strand_outputs(logits: tf.Tensor, log_counts: tf.Tensor,
                       joint: bool) -> dict[str, tf.Tensor]:
    """The exported outputs from the model's logits (batch, length, [tasks,] strands) and
    log counts (batch, [tasks,] strands or 1 when `joint`); see the module docstring."""
    logits = tf.cast(logits, tf.float32)
    log_counts = tf.cast(log_counts, tf.float32)
    if joint:
        log_total = log_counts
        share = tf.nn.softmax(tf.reduce_logsumexp(logits, axis=1), axis=-1)
        counts = tf.math.expm1(log_total) * share
        log_counts = tf.math.log1p(counts)
    else:
        log_total = tf.math.log1p(tf.reduce_sum(tf.math.expm1(log_counts), axis=-1,
                                                keepdims=True))
        counts = tf.math.expm1(log_counts)
    return {
        'profile_probs': tf.nn.softmax(logits, axis=1),
        'profile_logits': logits,
        'log_counts': log_counts,
        'counts': counts,
        'log_total_counts': log_total,
    }


def _outputs(model: keras.Model, one_hot: tf.Tensor,
             control: tf.Tensor | None = None) -> dict[str, tf.Tensor]:
    inputs = one_hot if control is None else {model_lib.INPUT_NAME: one_hot,
                                              model_lib.CONTROL_INPUT_NAME: control}
    out = model(inputs, training=False)
    joint = int(out[model_lib.LOG_COUNTS].shape[-1]) != int(out[model_lib.PROFILE].shape[-1])
    return per_strand_outputs(out[model_lib.PROFILE], out[model_lib.LOG_COUNTS], joint)


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
        tf.strings.length(sequences), tf.constant(length, tf.int32),
        message=f'{SEQUENCE_SIGNATURE}: every sequence must be {length} bp long')
    with tf.control_dependencies([check]):
        codes = tf.io.decode_raw(sequences, tf.uint8, fixed_length=length)
    codes = tf.gather(tf.constant(lookup), tf.cast(codes, tf.int32))
    return tf.reshape(tf.one_hot(codes, len(sequence.ALPHABET), dtype=tf.float32),
                      (-1, length, len(sequence.ALPHABET)))


def export_saved_model(model: keras.Model, info: schema.RecordsInfo,
                       config: model_lib.ModelConfig, path: str) -> str:
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
    one_hot_spec = tf.TensorSpec((None, length, config.num_channels), tf.float32,
                                 name=ONE_HOT_INPUT)
    sequence_spec = tf.TensorSpec((None,), tf.string, name=SEQUENCE_INPUT)
    if config.use_control:
        control_spec = tf.TensorSpec((None, config.output_length, config.num_tasks,
                                      config.num_strands),
                                     tf.float32, name=CONTROL_INPUT)
        archive.add_endpoint(
            name=SIGNATURE, fn=lambda one_hot, control: _outputs(model, one_hot, control),
            input_signature=[one_hot_spec, control_spec])
        archive.add_endpoint(
            name=SEQUENCE_SIGNATURE,
            fn=lambda strings, control: _outputs(model, encode_sequences(strings, length),
                                                 control),
            input_signature=[sequence_spec, control_spec])
    else:
        archive.add_endpoint(name=SIGNATURE, fn=lambda one_hot: _outputs(model, one_hot),
                             input_signature=[one_hot_spec])
        archive.add_endpoint(
            name=SEQUENCE_SIGNATURE,
            fn=lambda strings: _outputs(model, encode_sequences(strings, length)),
            input_signature=[sequence_spec])
    archive.write_out(path, verbose=False)
    info.save(path)
    with open(os.path.join(path, MODEL_CONFIG_FILENAME), 'w') as f:
        json.dump(config.to_dict(), f, indent=2, sort_keys=True)
        f.write('\n')
    return path


def load_export_info(path: str) -> tuple[schema.RecordsInfo, model_lib.ModelConfig]:
    """Reads the metadata and model config stored beside a SavedModel.

    Raises:
      schema.SchemaError: a file is missing or unreadable, or the two disagree on the window
        length, tasks or strands.
    """
    if not os.path.isdir(path):
        raise schema.SchemaError(f'{path}: no such folder; expected a SavedModel written by '
                                 'bpnet_tfx.train')
    if not os.path.exists(os.path.join(path, schema.METADATA_FILENAME)):
        raise schema.SchemaError(f'{path}: no {schema.METADATA_FILENAME}; is it a bpnet_tfx '
                                 'export?')
    info = schema.RecordsInfo.load(path)
    config_path = os.path.join(path, MODEL_CONFIG_FILENAME)
    try:
        with open(config_path) as f:
            config = model_lib.ModelConfig.from_dict(json.load(f))
    except FileNotFoundError:
        raise schema.SchemaError(f'{config_path}: not found; is {path} a bpnet_tfx '
                                 'export?') from None
    except (OSError, ValueError, TypeError) as e:
        raise schema.SchemaError(f'{config_path}: cannot read the model config: {e}') from None
    if (info.sequence_length, info.output_length, info.num_tasks, info.num_strands) != (
            config.sequence_length, config.output_length, config.num_tasks,
            config.num_strands):
        raise schema.SchemaError(
            f'{path}: export metadata inconsistent: {MODEL_CONFIG_FILENAME} says '
            f'{config.sequence_length} -> {config.output_length} bp, {config.num_tasks} '
            f'task(s) x {config.num_strands} strand(s), {schema.METADATA_FILENAME} says '
            f'{info.sequence_length} -> {info.output_length} bp, {info.num_tasks} x '
            f'{info.num_strands}')
    return info, config


def load_saved_model(path: str, config: model_lib.ModelConfig, name: str = SIGNATURE):
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
        raise schema.SchemaError(f'{path}: cannot load the SavedModel: '
                                 f'{str(e).splitlines()[0] if str(e) else e!r}') from None
    if name not in loaded.signatures:
        raise schema.SchemaError(f'{path}: no {name!r} signature (it has '
                                 f'{", ".join(sorted(loaded.signatures))})')
    fn = loaded.signatures[name]
    spec = fn.structured_input_signature[1].get(ONE_HOT_INPUT)
    if spec is not None and tuple(spec.shape[1:]) != (config.sequence_length,
                                                      config.num_channels):
        raise schema.SchemaError(
            f'{path}: export metadata inconsistent: the SavedModel takes one-hot windows of '
            f'shape {tuple(spec.shape[1:])}, {MODEL_CONFIG_FILENAME} says '
            f'({config.sequence_length}, {config.num_channels})')
    return loaded, fn
