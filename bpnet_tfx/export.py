"""Exports a trained BPNet as a SavedModel that needs only TensorFlow to serve.

The SavedModel's `serving_default` signature takes a one-hot batch (batch, length, 4) float32
(ACGT, N = zero row) and returns named outputs: `profile_probs` (softmax over positions, per
strand), `counts` (predicted total counts per strand), `profile_logits` and `log_counts`.
`metadata.json` of the training records and the model config are copied next to it, so the
export alone says what windows it expects.
"""

from __future__ import annotations

import json
import os

import keras
import tensorflow as tf

from bpnet_tfx import model as model_lib
from bpnet_tfx import schema

MODEL_CONFIG_FILENAME = 'model_config.json'
SIGNATURE = 'serving_default'


def _outputs(model: keras.Model, one_hot: tf.Tensor) -> dict[str, tf.Tensor]:
    out = model(one_hot, training=False)
    logits = tf.cast(out[model_lib.PROFILE], tf.float32)
    log_counts = tf.cast(out[model_lib.LOG_COUNTS], tf.float32)
    return {
        'profile_probs': tf.nn.softmax(logits, axis=1),
        'profile_logits': logits,
        'log_counts': log_counts,
        'counts': tf.math.expm1(log_counts),
    }


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
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name=SIGNATURE,
        fn=lambda one_hot: _outputs(model, one_hot),
        input_signature=[tf.TensorSpec((None, config.sequence_length, config.num_channels),
                                       tf.float32, name='one_hot')])
    archive.write_out(path, verbose=False)
    info.save(path)
    with open(os.path.join(path, MODEL_CONFIG_FILENAME), 'w') as f:
        json.dump(config.to_dict(), f, indent=2, sort_keys=True)
        f.write('\n')
    return path


def load_export_info(path: str) -> tuple[schema.RecordsInfo, model_lib.ModelConfig]:
    """Reads the metadata and model config stored beside a SavedModel."""
    info = schema.RecordsInfo.load(path)
    config_path = os.path.join(path, MODEL_CONFIG_FILENAME)
    try:
        with open(config_path) as f:
            config = model_lib.ModelConfig.from_dict(json.load(f))
    except FileNotFoundError:
        raise schema.SchemaError(f'{config_path}: not found; is {path} a bpnet_tfx '
                                 'export?') from None
    return info, config

