"""bpnet-tfx: BPNet on TFRecords and tf.data, trained under tf.distribute, served as SavedModel."""

__version__ = '0.1.0'
