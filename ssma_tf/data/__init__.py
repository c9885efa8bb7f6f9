"""Data for SSMA and AdapNet++: TFRecord schema, conversion, augmentation and tf.data pipelines.

The names below are imported on first use, not with the package: `ssma_tf.data.datasets` (class
names and palettes) needs no TensorFlow, and the config loader looks datasets up through it
without paying for TensorFlow's start-up.
"""

from ssma_tf import lazy_exports

# Each public name and the module that defines it.
_EXPORTS = {
    "AugmentationConfig": "ssma_tf.config.augmentation",
    "augment_sample": "ssma_tf.data.augment",
    "resize_sample": "ssma_tf.data.augment",
    "format_summary": "ssma_tf.data.convert",
    "read_list_file": "ssma_tf.data.convert",
    "write_tfrecords": "ssma_tf.data.convert",
    "build_dataset": "ssma_tf.data.pipeline",
    "list_record_files": "ssma_tf.data.pipeline",
    "decode_example": "ssma_tf.data.schema",
    "encode_example": "ssma_tf.data.schema",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
