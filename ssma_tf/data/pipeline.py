"""tf.data input pipelines over SSMA / AdapNet++ TFRecords (raw or PNG, one file or shards).

Training: shards are read interleaved, records shuffled, repeated, decoded, jointly augmented
and resized, batched (full batches only) and prefetched. Evaluation: files in the given order,
records in file order, no augmentation, the last partial batch kept.
"""

from __future__ import annotations

import glob
import os
import random
from typing import Optional, Sequence, Tuple, Union

import tensorflow as tf

from ssma_tf.constants import MAX_MODALITIES
from ssma_tf.data import schema
from ssma_tf.data.augment import AugmentationConfig, augment_sample, modality_interpolations, resize_sample
from ssma_tf.modalities.io import InputFileError

FilePatterns = Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]]


def list_record_files(file_patterns: FilePatterns) -> list:
    """Expands file names and glob patterns into the list of record files, in order.

    Each entry is expanded on its own (matches sorted, so shards `-00000-of-N` come in order)
    and the entries keep the order they were given in; duplicates are dropped.

    Raises:
        FileNotFoundError: When an entry matches no file, naming the entry.
    """
    if isinstance(file_patterns, (str, os.PathLike)):
        file_patterns = [file_patterns]
    if not file_patterns:
        raise FileNotFoundError("no TFRecord files given")
    files = []
    for pattern in file_patterns:
        pattern = os.fspath(pattern)
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        matches = [m for m in matches if os.path.isfile(m)]
        if not matches:
            raise FileNotFoundError(f"no TFRecord file matches {pattern!r}")
        files.extend(m for m in matches if m not in files)
    return files


def _check_first_record(path: str, modalities: int) -> None:
    """Fails early, naming the file, when the records lack a feature the pipeline needs."""
    for record in tf.data.TFRecordDataset(path).take(1):
        try:
            example = tf.train.Example.FromString(record.numpy())
        except Exception as error:  # protobuf raises its own DecodeError type
            raise ValueError(f"{path}: first record is not a tf.train.Example ({error})") from None
        present = set(example.features.feature)
        missing = [key for key in schema.feature_spec(modalities) if key not in present]
        if missing:
            held = schema.count_modalities(present)
            hint = ""
            if held and all(key.startswith("modality") for key in missing):
                hint = (f" (they hold {held} modalit{'y' if held == 1 else 'ies'}, the model reads "
                        f"{modalities}; unimodal records? use modalities=1)" if held == 1 else
                        f" (they hold {held} modalities, the model reads {modalities})")
            raise InputFileError(f"{path}: records lack feature(s) {missing}{hint}", path)
        return
    raise ValueError(f"{path}: holds no records")


def build_dataset(
    file_patterns: FilePatterns,
    *,
    modalities: int = 2,
    height: int,
    width: int,
    batch_size: int,
    num_classes: int,
    training: bool,
    augmentation: Optional[AugmentationConfig] = None,
    one_hot: bool = False,
    seed: Optional[int] = None,
    shuffle_buffer: int = 128,
    repeat: Optional[int] = None,
    modality2_interpolation: Union[str, Sequence[str]] = "nearest",
    check_records: bool = True,
) -> tf.data.Dataset:
    """Builds the input pipeline for training or evaluation.

    Args:
        file_patterns: A record file, a glob pattern, or a list of them (e.g. shards).
        modalities: 1 for AdapNet++ (modality 1 only; fusion records work too), 2 for SSMA,
            N for SSMA over N modalities (records with `modality1` .. `modalityN`; more are
            ignored).
        height: Output height (the paper resizes everything to 384).
        width: Output width (768 in the paper).
        batch_size: Samples per batch.
        num_classes: Number of classes C including void (0); ids >= C become void.
        training: True for the shuffled, augmented, repeated training stream; False for one
            deterministic pass without augmentation that keeps the last partial batch.
        augmentation: Training augmentation; None means the paper's defaults. Pass
            `AugmentationConfig.disabled()` to only resize. Ignored when not training.
        one_hot: Return labels one-hot (float32, B x H x W x C) as the original pipeline did;
            by default sparse int32 ids (B x H x W).
        seed: Fixes shuffling and augmentation so that the stream is reproducible.
        shuffle_buffer: Records held for shuffling (serialized, so memory is about this many
            records' size).
        repeat: Number of passes; None means forever when training and once otherwise.
        modality2_interpolation: "nearest" (default, for depth-like maps) or "bilinear", for
            every modality after the first, or a list with one per modality 2, 3, ...
        check_records: Read the first record of the first file to give a clear error when a
            feature is missing.

    Returns:
        A dataset of `(inputs, label)`: `inputs` is float32 B x H x W x 3 (BGR, 0..255), or a
        tuple `(modality1, modality2, ...)` of those when `modalities >= 2`.

    Raises:
        ValueError: On a bad argument or records without the needed features.
        FileNotFoundError: When a pattern matches no file.
    """
    for name, value in (("height", height), ("width", width), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(
            f"num_classes must be an integer >= 2 (void + 1 class), got {num_classes!r}"
        )
    if isinstance(modalities, bool) or not isinstance(modalities, int) or not 1 <= modalities <= MAX_MODALITIES:
        raise ValueError(f"modalities must be an integer in 1..{MAX_MODALITIES}, got {modalities!r}")
    modality2_interpolation = modality_interpolations(modality2_interpolation, modalities - 1)
    if repeat is not None and (
        isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1
    ):
        raise ValueError(f"repeat must be None or a positive integer, got {repeat!r}")
    if not isinstance(shuffle_buffer, int) or shuffle_buffer < 1:
        raise ValueError(f"shuffle_buffer must be a positive integer, got {shuffle_buffer!r}")
    if augmentation is None:
        augmentation = AugmentationConfig()
    elif not isinstance(augmentation, AugmentationConfig):
        raise ValueError(
            "augmentation must be an AugmentationConfig or None, "
            f"got {type(augmentation).__name__}"
        )

    files = list_record_files(file_patterns)
    if check_records:
        _check_first_record(files[0], modalities)
    spec = schema.feature_spec(modalities)
    autotune = tf.data.AUTOTUNE

    def finish(sample) -> Tuple:
        label = sample["label"]
        # As in the original pipeline, where ids >= C one-hot to all zeros: they are void.
        label = tf.where(label >= num_classes, tf.zeros_like(label), label)
        if one_hot:
            label = tf.one_hot(label, num_classes, dtype=tf.float32)
        if modalities == 1:
            inputs = sample["modality1"]
        else:
            inputs = tuple(sample[schema.modality_key(i)] for i in range(1, modalities + 1))
        return inputs, label

    def decode(serialized):
        return schema.decode_parsed(tf.io.parse_single_example(serialized, spec))

    if training:
        if seed is None:
            seed = random.SystemRandom().randrange(2**31)
        if len(files) == 1:
            records = tf.data.TFRecordDataset(files)
        else:
            files_ds = tf.data.Dataset.from_tensor_slices(files)
            files_ds = files_ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
            records = files_ds.interleave(
                tf.data.TFRecordDataset,
                cycle_length=min(len(files), 8),
                block_length=1,
                num_parallel_calls=autotune,
                deterministic=True,
            )
        records = records.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        records = records.repeat(repeat)
        # Each sample's augmentation seed is (seed, position in the stream): reproducible and
        # independent of how many map calls run in parallel.
        indexed = tf.data.Dataset.zip((records, tf.data.Dataset.counter(dtype=tf.int64)))

        def train_map(serialized, index):
            sample_seed = tf.stack([tf.constant(seed, tf.int64), index])
            sample = augment_sample(
                decode(serialized),
                height=height,
                width=width,
                config=augmentation,
                seed=sample_seed,
                modality2_interpolation=modality2_interpolation,
            )
            return finish(sample)

        dataset = indexed.map(train_map, num_parallel_calls=autotune, deterministic=True)
        dataset = dataset.batch(batch_size, drop_remainder=True)
    else:
        records = tf.data.TFRecordDataset(files)
        if repeat is not None:
            records = records.repeat(repeat)

        def eval_map(serialized):
            sample = resize_sample(
                decode(serialized),
                height=height,
                width=width,
                modality2_interpolation=modality2_interpolation,
            )
            return finish(sample)

        dataset = records.map(eval_map, num_parallel_calls=autotune, deterministic=True)
        dataset = dataset.batch(batch_size, drop_remainder=False)
    return dataset.prefetch(autotune)
