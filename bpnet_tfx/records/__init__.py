"""The record contract (schema), its wire format, the tf.data dataset and augmentation."""
