"""Data for SSMA and AdapNet++: TFRecord schema, conversion, augmentation and tf.data pipelines."""

from ssma_tf.data.augment import AugmentationConfig, augment_sample, resize_sample
from ssma_tf.data.convert import format_summary, read_list_file, write_tfrecords
from ssma_tf.data.pipeline import build_dataset, list_record_files
from ssma_tf.data.schema import decode_example, encode_example

__all__ = [
    "AugmentationConfig",
    "augment_sample",
    "build_dataset",
    "decode_example",
    "encode_example",
    "format_summary",
    "list_record_files",
    "read_list_file",
    "resize_sample",
    "write_tfrecords",
]
