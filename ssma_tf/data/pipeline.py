"""tf.data input pipelines over SSMA / AdapNet++ TFRecords (raw or PNG, one file or shards).

Training: shards are read interleaved, records shuffled, repeated, decoded, jointly augmented
and resized, batched (full batches only) and prefetched. Evaluation: files in the given order,
records in file order, no augmentation, the last partial batch kept.

A damaged record stops TensorFlow's reader with a byte offset but no file name; the loops that
iterate these datasets run inside `naming_damaged_records`, which then finds the file (the shard)
and the record index (`ssma_tf.data.records`) and raises a `RecordError` naming them.
"""

from __future__ import annotations

import contextlib
import numbers
import os
import random
import warnings
from typing import Any, Iterator, Optional, Sequence, Tuple, Union

import tensorflow as tf

from ssma_tf.constants import MAX_MODALITIES
from ssma_tf.data import schema
from ssma_tf.data.augment import AugmentationConfig, augment_sample, resize_sample
from ssma_tf.data.convert import shard_set
from ssma_tf.resampling import modality_interpolations
from ssma_tf.data.records import (
    RecordError, count_records, find_damaged_record, first_example, label_ids_warning, modalities_held, whole_records,
)
from ssma_tf.files import matched_files
from ssma_tf.lists import MissingFileError

FilePatterns = Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]]


def list_record_files(file_patterns: FilePatterns, several_sets: bool = False) -> list:
    """Expands file names and glob patterns into the list of record files, in order.

    Each entry is expanded on its own (matches sorted, so shards `-00000-of-N` come in order)
    and the entries keep the order they were given in; duplicates are dropped.

    Args:
        file_patterns: file names and glob patterns.
        several_sets: accept files of two conversions of one name (`train.tfrecords` with
            `--shards 1` and 3, say); refused otherwise, since a pattern such as `train*` then
            reads every record twice (a conversion with another `--shards` leaves the old set).

    Raises:
        MissingFileError: When an entry matches no file, naming the entry (a
            `FileNotFoundError`).
        RecordError: the files hold two conversions of one name (without `several_sets`).
    """
    if isinstance(file_patterns, (str, os.PathLike)):
        file_patterns = [file_patterns]
    if not file_patterns:
        raise MissingFileError("no TFRecord files given")
    files = []
    for pattern in file_patterns:
        pattern = os.fspath(pattern)
        # A file that exists is itself, even where its name reads as a pattern ("data [v2]/...":
        # before, no match, or another file's, `data 2/...`, read silently).
        matches = matched_files(pattern)
        if not matches and os.path.isdir(pattern):
            raise MissingFileError(f"{pattern!r} is a folder; give its record files, e.g. "
                                   f"'{os.path.join(pattern, '*.tfrecords')}'", pattern)
        if not matches:
            raise MissingFileError(f"no TFRecord file matches {pattern!r}", pattern)
        # One file under two spellings (./a, a, a link to it) is read once, as documented (before:
        # compared as text, so evaluation counted its records twice).
        seen = {os.path.realpath(f) for f in files}
        for match in matches:
            if os.path.realpath(match) not in seen:
                seen.add(os.path.realpath(match))
                files.append(match)
    if not several_sets:
        sets: dict = {}
        for path in files:
            name, kind = shard_set(path)
            sets.setdefault(name, {}).setdefault(kind, path)
        for name, kinds in sets.items():
            if len(kinds) > 1:
                shown = ", ".join(f"{path} ({kind or 'unsharded'})" for kind, path in kinds.items())
                raise RecordError(
                    f"{', '.join(map(repr, map(os.fspath, file_patterns)))} matches {len(kinds)} conversions of "
                    f"this name, {shown}: every record would be read {len(kinds)} times; remove the older ones "
                    "(ssma-convert named them) or give one set's files", name)
    return files


# Reader and decoding errors that a damaged record can cause (other errors are not looked into).
# A record that is not an Example, holding bytes that are not UTF-8, fails as a UnicodeDecodeError:
# TensorFlow's message quotes the record's bytes (helper 256: a traceback, exit 1).
DATA_ERRORS = (tf.errors.DataLossError, tf.errors.InvalidArgumentError, UnicodeDecodeError)


@contextlib.contextmanager
def naming_damaged_records(
    file_patterns: FilePatterns, modalities: Optional[int] = None, labeled: bool = True
) -> Iterator[None]:
    """Runs a loop over a dataset of `file_patterns`; a damaged record becomes a `RecordError`.

    TensorFlow's reader names neither the file nor the record (`corrupted record at 97122`), so
    when it (or the decoding) fails, the files are checked in order and the error names the first
    bad record's file and index. If no record is bad, the original error is raised again.

    Args:
        file_patterns: the files the dataset reads, as given to `build_dataset`.
        modalities: as given to `build_dataset` (None: each record says).
        labeled: False for records read without their labels (`unlabeled_data`, `target_data`):
            one without a `label` feature is then not damaged. Nested blocks, one per record
            set, check the inner set first and pass the original error on when it has no bad
            record.

    Raises:
        RecordError: naming the file, the record index and what is wrong.
    """
    try:
        yield
    except DATA_ERRORS as error:
        if isinstance(error, tf.errors.InvalidArgumentError) and not _may_be_a_record(error):
            raise
        found = find_damaged_record(list_record_files(file_patterns), modalities, labeled=labeled)
        if found is None:
            raise
        raise found from error


def modalities_in_records(file_patterns: FilePatterns) -> Optional[int]:
    """The images (modalities) a record of `file_patterns` holds, from the first file's first
    record; None when no file is there to read, or it holds no record or is damaged (its reader
    names it then)."""
    try:
        files = list_record_files(file_patterns)
    except (MissingFileError, OSError):
        return None
    return _modalities_or_none(files[0]) if files else None


def modalities_per_file(file_patterns: FilePatterns) -> list[int]:
    """The images (modalities) the first record of each file of `file_patterns` holds, in the
    files' order; a file without records, or damaged (its reader names it), is left out, and no
    file there to read gives []."""
    try:
        files = list_record_files(file_patterns)
    except (MissingFileError, OSError):
        return []
    return [count for count in map(_modalities_or_none, files) if count is not None]


def _modalities_or_none(path: str) -> Optional[int]:
    """`modalities_held`, None for a damaged file."""
    try:
        return modalities_held(path)
    except (RecordError, OSError):
        return None


def _may_be_a_record(error: tf.errors.OpError) -> bool:
    """Whether an InvalidArgumentError can come from parsing or decoding a record."""
    text = str(error)
    return any(word in text for word in ("ParseExample", "ParseSingleExample", "Feature", "DecodeRaw", "DecodePng",
                                         "decode", "Input to reshape", "PNG"))


def check_first_record(path: str, modalities: int, labeled: bool = True) -> None:
    """Fails early, naming the file, when the records lack a feature the pipeline needs.

    `labeled=False`: records read without their labels (`unlabeled_data`, `target_data`), which
    need no `label` feature.
    """
    example = first_example(path)  # a file of another kind, or a damaged one: named here
    if example is None:
        raise RecordError("holds no records", path)
    present = set(example.features.feature)
    missing = [key for key in schema.feature_spec(modalities)
               if key not in present and (labeled or key != schema.LABEL)]
    held = schema.count_modalities(present)
    if missing == [schema.MODALITY2]:
        raise RecordError(
            "no modality2: these are unimodal records (modality1, label) but the config reads a "
            "second modality (model: SSMA, or input_modality: modality2). Convert a list of "
            "'modality1 modality2 label' lines, or use an AdapNet++ on the records' one modality "
            "(model: AdapNet_pp with input_modality: modality1)", path, 0,
        )
    if missing and held and all(key.startswith("modality") for key in missing):
        raise RecordError(
            f"records lack feature(s) {missing} (they hold {held} modalities, the model reads "
            f"{modalities}): convert a list with a column per modality, or read only the modalities "
            "the records hold (an SSMA's config key modalities, an AdapNet++'s input_modality)", path, 0,
        )
    if missing == [schema.LABEL] and schema.CLASS_ID not in present:
        # Before: "lacks feature(s) ['label'] (it has [...])", which named no cause.
        raise RecordError("has no label: these records hold images only (ssma-convert --unlabeled writes "
                          "them, for unlabeled_data or target_data); training and evaluation need records "
                          "converted from lists with a label column", path, 0)
    if missing == [schema.LABEL] and schema.CLASS_ID in present:
        raise RecordError("these are scene classification records (a class_id per record, no label "
                          "image): segmentation reads records written by ssma-convert; ssma-scene "
                          "train reads these", path, 0)
    if missing:
        raise RecordError(f"lacks feature(s) {missing} (it has {sorted(present)})", path, 0)


class LabelIdsWarning(UserWarning):
    """Labels that a `build_dataset` call would train or score on nothing or fewer classes."""


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
    keep_indices: Optional[Sequence[int]] = None,
    warn_label_ids: bool = True,
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
        seed: An integer (or None for a random one) that fixes shuffling and augmentation so that the
            stream is reproducible.
        shuffle_buffer: Records held for shuffling (serialized, so memory is about this many
            records' size).
        repeat: Number of passes; None means forever when training and once otherwise.
        modality2_interpolation: "nearest" (default, for depth-like maps) or "bilinear", for
            every modality after the first, or a list/tuple with one per modality 2, 3, ...
        check_records: Read the first record of each file to give a clear error, naming the
            file, when a feature is missing.
        keep_indices: Training only: use only these records, by 0-based index over the files
            in order (a labeled subset, `labeled_subset`).
        warn_label_ids: With `check_records`, warn (`LabelIdsWarning`) when the labels of the
            first records hold ids >= `num_classes` other than 255, which count as void (a
            `num_classes` too small drops classes without an error), or no class pixel at all.
            The commands warn in their own words and turn it off.

    Returns:
        A dataset of `(inputs, label)`: `inputs` is float32 B x H x W x 3 (BGR, 0..255), or a
        tuple `(modality1, modality2, ...)` of those when `modalities >= 2`.

    Raises:
        ValueError: On a bad argument.
        RecordError: When the first record lacks a needed feature or is damaged (a ValueError).
        MissingFileError: When a pattern matches no file (a FileNotFoundError).
    """
    # NumPy's integers are counts too (a class count read from an array; refused before).
    for name, value in (("height", height), ("width", width), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or num_classes < 2:
        raise ValueError(
            f"num_classes must be an integer >= 2 (void + 1 class), got {num_classes!r}"
        )
    height, width, batch_size, num_classes = int(height), int(width), int(batch_size), int(num_classes)
    if (isinstance(modalities, bool) or not isinstance(modalities, numbers.Integral)
            or not 1 <= modalities <= MAX_MODALITIES):
        raise ValueError(f"modalities must be an integer in 1..{MAX_MODALITIES}, got {modalities!r}")
    modalities = int(modalities)
    modality2_interpolation = modality_interpolations(modality2_interpolation, modalities - 1)
    # NumPy's integers too, as the other counts (before: "np.int64(2)" called no integer; helper 238).
    if repeat is not None and (
        isinstance(repeat, bool) or not isinstance(repeat, numbers.Integral) or repeat < 1
    ):
        raise ValueError(f"repeat must be None or a positive integer, got {repeat!r}")
    if isinstance(shuffle_buffer, bool) or not isinstance(shuffle_buffer, numbers.Integral) or shuffle_buffer < 1:
        raise ValueError(f"shuffle_buffer must be a positive integer, got {shuffle_buffer!r}")
    # Before: a seed of 1.5 (or "3") was accepted here and failed only when the first batch was built, as
    # "Cannot convert 1.5 to EagerTensor of dtype int64"; helper 362.
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
        raise ValueError(f"seed must be None or an integer, got {seed!r}")
    repeat = None if repeat is None else int(repeat)
    shuffle_buffer = int(shuffle_buffer)
    seed = None if seed is None else int(seed)
    if keep_indices is not None and not training:
        # Before: ignored, every record evaluated, and the check for labels turned off (helper 238).
        raise ValueError("keep_indices selects training records only; an evaluation reads every record")
    if augmentation is None:
        augmentation = AugmentationConfig()
    elif not isinstance(augmentation, AugmentationConfig):
        raise ValueError(
            "augmentation must be an AugmentationConfig or None, "
            f"got {type(augmentation).__name__}"
        )

    files = list_record_files(file_patterns)
    framed = {}  # path: records framed, walked once (the evaluation's count reads it too)
    if check_records:
        # Every file's first record (before: the first file's only, and a set mixing 3- and
        # 2-modality files, or scene records, was a TensorFlow traceback at the other file's batch).
        for path in files:
            # With `keep_indices` (checked to be labeled records by `read_labeled_subset`), the
            # other records need no label (before: a file of unlabeled images was refused).
            check_first_record(path, modalities, labeled=keep_indices is None)
            # A file cut inside a record's header: TensorFlow's reader passed the cut record over
            # without a word, in training and evaluation alike (helper 147).
            framed[path] = whole_records(path)
        if warn_label_ids:
            warning = label_ids_warning(files, num_classes, what=files[0] if len(files) == 1 else f"{files[0]} ...")
            if warning:
                warnings.warn(warning, LabelIdsWarning, stacklevel=2)
    if keep_indices is not None:
        # Before: an index past the records (or negative) matched none, without a word: a subset
        # trained on fewer records than asked, or a stream meant to run forever gave no batch
        # (helper 341).
        indices = list(keep_indices)
        if not indices:
            raise ValueError("keep_indices is empty: give the indices of the records to train on, or None for all")
        total = sum(framed[path] if path in framed else count_records(path)[0] for path in files)
        for index in indices:
            if isinstance(index, bool) or not isinstance(index, numbers.Integral) or not 0 <= index < total:
                raise ValueError(f"keep_indices holds {index!r}, not a record index in 0..{total - 1} (the "
                                 f"{total} records of {files[0] if len(files) == 1 else f'{len(files)} files'})")
        keep_indices = indices
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
        if keep_indices is not None:
            # Indices count over the files in order, so they are read in order, then filtered.
            wanted = tf.constant(sorted(set(int(i) for i in keep_indices)), tf.int64)
            records = tf.data.TFRecordDataset(files).enumerate().filter(
                lambda i, _: tf.reduce_any(tf.equal(wanted, i))).map(lambda _, record: record)
        elif len(files) == 1:
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
        # The batch count, from the files' framing: Keras' `evaluate` and `fit(validation_data=)`
        # then show a total, and no longer warn that the input "ran out of data" at its end.
        if repeat is None or repeat >= 0:
            samples = sum((framed[path] if path in framed else count_records(path)[0]) for path in files) * (
                1 if repeat is None else repeat)
            dataset = dataset.apply(tf.data.experimental.assert_cardinality(-(-samples // batch_size)))
    return dataset.prefetch(autotune)


def config_dataset(
    config: Any,
    file_patterns: FilePatterns,
    *,
    training: bool,
    batch_size: int,
    augmentation: Optional[AugmentationConfig] = None,
    seed: Optional[int] = None,
    keep_indices: Optional[Sequence[int]] = None,
) -> tf.data.Dataset:
    """`build_dataset` with what a run config says about its records and its model's inputs.

    The image size, class count, label form, modality count and interpolations come from the
    config. An AdapNet++ expert of modality k > 1 (`input_modality: modalityk`, SSMA's stage 1)
    reads records of k images and gets only the k-th; a fusion model gets every modality.

    Args:
        config: a `RunConfig` (or anything with its attributes).
        file_patterns, training, batch_size, augmentation, seed, keep_indices: as for
            `build_dataset`.
    """
    modalities = config.record_modalities
    dataset = build_dataset(
        file_patterns,
        modalities=modalities,
        height=config.height,
        width=config.width,
        batch_size=batch_size,
        num_classes=config.num_classes,
        training=training,
        augmentation=augmentation,
        one_hot=config.one_hot_labels,
        seed=seed,
        modality2_interpolation=config.interpolations,
        keep_indices=keep_indices,
        warn_label_ids=False,  # training and evaluation say it at the start, in their words
    )
    if not config.is_fusion and modalities > 1:
        dataset = dataset.map(lambda inputs, labels: (inputs[modalities - 1], labels))
    return dataset
