"""Data for SSMA and AdapNet++: TFRecord schema, conversion, augmentation and tf.data pipelines.

- `schema`: one sample as a `tf.train.Example` (encode and decode, raw or PNG bytes);
- `convert`: list files of image paths, or samples in memory (`write_examples`), to TFRecords
  (`ssma-convert`);
- `records`: checking record files end to end, naming a damaged record's file and index;
- `augment`: the paper's joint augmentation of every modality and the label, and resizing;
- `pipeline`: the training and evaluation `tf.data` pipelines over record files;
- `unlabeled`: records used without their labels (semi-supervised training's mix stream);
- `datasets`: class names and palettes of the known datasets (`datasets.yaml`), no TensorFlow;
- `scene`: scene classification lists, records and pipeline (Section 5.9);
- `synthetic`: the synthetic RGB-D street scenes of the demos and tests.

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
    "write_examples": "ssma_tf.data.convert",
    "write_tfrecords": "ssma_tf.data.convert",
    "build_dataset": "ssma_tf.data.pipeline",
    "list_record_files": "ssma_tf.data.pipeline",
    "decode_example": "ssma_tf.data.schema",
    "encode_example": "ssma_tf.data.schema",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
