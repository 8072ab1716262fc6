"""The per-epoch record of a training run: history.csv and TensorBoard scalars (model folder)."""

from __future__ import annotations

import csv
import io
import os

import tensorflow as tf

from bpnet_tfx.training import checkpointing


class History:
    """history.csv and TensorBoard scalars (<model_dir>/logs), one row per epoch."""

    def __init__(self, model_dir: str):
        self._csv_path = os.path.join(model_dir, 'history.csv')
        self._tb = tf.summary.create_file_writer(os.path.join(model_dir, 'logs'))

    def truncate(self, last_epoch: int) -> None:
        """Drops rows after `last_epoch`: a run killed after logging but before its
        checkpoint logs that epoch again when it resumes."""
        if not os.path.exists(self._csv_path):
            return
        with open(self._csv_path, newline='') as f:
            rows = list(csv.DictReader(f))
        keep = [r for r in rows if int(r['epoch']) <= last_epoch]
        if len(keep) == len(rows):
            return
        text = io.StringIO()
        if keep:
            w = csv.DictWriter(text, fieldnames=list(keep[0]))
            w.writeheader()
            w.writerows(keep)
        checkpointing.replace_file(self._csv_path, text.getvalue())

    def write(self, epoch: int, row: dict[str, float]) -> None:
        new = not os.path.exists(self._csv_path)
        with open(self._csv_path, 'a', newline='') as f:
            w = csv.DictWriter(f, fieldnames=['epoch', *sorted(row)])
            if new:
                w.writeheader()
            w.writerow({'epoch': epoch, **row})
        with self._tb.as_default():
            for k, v in row.items():
                tf.summary.scalar(k, v, step=epoch)
        self._tb.flush()
