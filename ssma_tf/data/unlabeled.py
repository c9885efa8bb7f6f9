"""Records used without their labels: the mix stream of semi-supervised training, subset files.

The mix stream draws from every training image, as the released DepthMix code did: the labeled
records of `train_data` (those of `labeled_subset` when it is given) and the records of
`unlabeled_data`, each record equally likely. Each sample carries a flag saying whether its
label may be used (`use_ground_truth`). When `unlabeled_data` names the same files as
`train_data` (the usual "12 of 200 labeled" set-up), its records of the labeled subset are left
out of the unlabeled part, so that no image is drawn twice as often as another. Records of
`unlabeled_data` need no `label` feature.
"""

from __future__ import annotations

import os
from typing import Any, Optional, Sequence, Union

import tensorflow as tf

from ssma_tf.data import schema
from ssma_tf.data.augment import AugmentationConfig, augment_sample
from ssma_tf.data.pipeline import FilePatterns, list_record_files
from ssma_tf.data.records import count_records
from ssma_tf.data.records import modalities_held, records_at, records_per_file
from ssma_tf.errors import UserInputError
from ssma_tf.files import atomic_write


class UnlabeledDataError(UserInputError):
    """Unusable records or subset file for semi-supervised training (names the file and key)."""


def write_index_file(path: str, indices: Sequence[int]) -> None:
    """Writes a file of record indices, one a line, as `read_index_file` reads it (atomically:
    a reader sees the old file or the whole new one)."""
    with atomic_write(path) as stream:
        stream.write("".join(f"{int(i)}\n" for i in indices))


def read_index_file(path: str, count: Optional[int] = None) -> list[int]:
    """Reads a file of record indices: one 0-based index a line; blank lines and `#` comments skip.

    Args:
        path: the file.
        count: the number of records the indices refer to (checked when given).

    Returns:
        The indices, in file order.

    Raises:
        UnlabeledDataError: unreadable file, a line that is not one index, an index out of range
            or listed twice, or no index at all; the message names the file and line.
    """
    return list(_index_lines(path, count))


def _index_lines(path: str, count: Optional[int] = None) -> dict[int, int]:
    """`read_index_file`'s indices, in file order, each with its line number."""
    try:
        with open(path, encoding="utf-8-sig") as stream:  # a byte-order mark, as list files allow
            lines = stream.read().splitlines()
    except OSError as error:
        raise UnlabeledDataError(f"cannot read the index file: {error.strerror or error}", path) from error
    except UnicodeDecodeError as error:  # before: a traceback naming neither the file nor the key (helper 310)
        raise UnlabeledDataError(
            f"not UTF-8 text (byte {error.start}): an index file is plain text, one record index a line "
            "(saved as UTF-16? save it as UTF-8)", path) from error
    first_line: dict[int, int] = {}
    for number, line in enumerate(lines, start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        # ASCII digits only: '²' passes isdigit() but not int(), and '３' would be read as 3.
        if len(text.split()) > 1 or not (text.isascii() and text.isdigit()):
            raise UnlabeledDataError(f"line {number}: expected one record index, got {text!r}", path)
        index = int(text)
        if count is not None and index >= count:
            raise UnlabeledDataError(
                f"line {number}: index {index} is beyond the {count} records of train_data", path)
        # A record listed twice is most often a mistyped other index: the run would have trained
        # on one labeled image fewer than the file's lines say.
        if index in first_line:
            raise UnlabeledDataError(
                f"line {number}: index {index} is listed again (first on line {first_line[index]}): "
                f"list each record once", path)
        first_line[index] = number
    if not first_line:
        raise UnlabeledDataError("holds no record index", path)
    return first_line


def read_labeled_subset(path: str, train_data: FilePatterns) -> list[int]:
    """The indices of `labeled_subset`, each checked to be a record of `train_data` with a label.

    Without the check an index beyond the records would be dropped without a word (the run
    trained on fewer labeled images than listed), or end the run in TensorFlow's "End of
    sequence" when no index is left; a listed record without a label stopped the run in
    TensorFlow's "Feature: label (data type: string) is required". Counting walks the files'
    framing only; of the records, only the listed ones are read.

    Raises:
        UnlabeledDataError: as `read_index_file`, or a listed record without a label image (naming
            the line, the record file and the record's place in it).
    """
    files = list_record_files(train_data)
    counts = [count_records(f)[0] for f in files]
    lines = _index_lines(path, sum(counts))
    start = 0
    for file, count in zip(files, counts):
        positions = {index - start: index for index in lines if start <= index < start + count}
        for position, data in sorted(records_at(file, positions).items()):
            try:
                example = tf.train.Example.FromString(data)
            except Exception:  # protobuf's own DecodeError: the reader names the damaged record later
                continue
            features = example.features.feature
            if schema.LABEL not in features or not any(features[schema.LABEL].bytes_list.value):
                index = positions[position]
                raise UnlabeledDataError(
                    f"line {lines[index]}: record {index} ({file}, its record {position}) has no label image; "
                    "the labeled subset lists records of train_data that have labels", path)
        start += count
    return list(lines)


def records_in_set(file_patterns: FilePatterns, key: str = "unlabeled_data") -> int:
    """The number of records in the files of `file_patterns`; an empty set is an error naming `key`."""
    return sum(_records_of(list_record_files(file_patterns), key))


def _records_of(files: Sequence[str], key: str) -> list[int]:
    """The records of each file (every record read, `records_per_file`); none at all is an error
    naming `key`."""
    counts = records_per_file(files)
    if sum(counts) == 0:
        raise UnlabeledDataError(f"key '{key}': the records hold no image", ", ".join(files))
    return counts


def decode_record(serialized: Any, modalities: int = 2) -> dict[str, Any]:
    """A record's modalities (the first `modalities`); the label is all void when it has none."""
    spec = schema.feature_spec(modalities)
    spec[schema.LABEL] = tf.io.FixedLenFeature([], tf.string, default_value="")  # may be absent
    features = tf.io.parse_single_example(serialized, spec)
    height, width = tf.cast(features["height"], tf.int32), tf.cast(features["width"], tf.int32)
    has_label = tf.strings.length(features[schema.LABEL]) > 0
    label = tf.cond(
        has_label,
        lambda: schema.decode_image(features[schema.LABEL], height, width, 1),
        lambda: tf.zeros(tf.stack([height, width]), tf.uint8),
    )
    label = tf.ensure_shape(label, [None, None])
    sample = {schema.LABEL: label}
    for index in range(1, modalities + 1):
        key = schema.modality_key(index)
        sample[key] = schema.decode_image(features[key], height, width, 3)
    return sample


def _check_modalities(files: Sequence[str], modalities: int, depth: bool, key: str) -> None:
    """Fails, naming the file and `key`, unless the first record of each of `files` holds
    `modalities` images (with `depth`, at least 2: modality 2 is the depth). Empty files pass.

    Every file, as training's and adaptation's readers check theirs: the mix stream reaches a
    later file's records only after the shuffle window has passed the files before it, and a
    file of fewer images stopped the run there, after checkpoints were written (helper 272)."""
    for path in files:
        present = modalities_held(path)
        if present is None:
            continue
        if depth and present < 2:
            raise UnlabeledDataError(
                f"key '{key}': records lack modality2: DepthMix and the depth tools need the depth image", path)
        if present < modalities:
            raise UnlabeledDataError(
                f"key '{key}': records hold {present} modalities but the model reads {modalities}: give "
                f"records written from lists with a column per modality", path)


def indexed_records(file_patterns: FilePatterns, keep: Optional[Sequence[int]] = None,
                    drop: Optional[Sequence[int]] = None) -> tf.data.Dataset:
    """The serialized records of the files in order, with `keep` or without `drop` indices."""
    files = list_record_files(file_patterns)
    records = tf.data.TFRecordDataset(files).enumerate()
    if keep is not None:
        wanted = tf.constant(sorted(keep), tf.int64)
        records = records.filter(lambda i, r: tf.reduce_any(tf.equal(wanted, i)))
    if drop:
        unwanted = tf.constant(sorted(drop), tf.int64)
        records = records.filter(lambda i, r: tf.logical_not(tf.reduce_any(tf.equal(unwanted, i))))
    return records.map(lambda i, r: r)


def _shares_files(train_files: Sequence[str], unlabeled_files: Sequence[str]) -> bool:
    """Whether the unlabeled files hold a file of `train_files` again (the same by real path)."""
    return bool({os.path.realpath(f) for f in train_files} & {os.path.realpath(f) for f in unlabeled_files})


def _labeled_among(unlabeled_files: Sequence[str], unlabeled_counts: Sequence[int], train_files: Sequence[str],
                   train_counts: Sequence[int], labeled: Optional[Sequence[int]]) -> list[int]:
    """The indices, in `unlabeled_files`' record order, of the labeled records of `train_files`
    that the unlabeled files hold again: the mix stream draws those once, as labeled.

    `unlabeled_data: [train.tfrecords, extra.tfrecords]` ("the rest of train, and more") drew the
    labeled images twice as often as the others, half the time without their labels, when only
    an unlabeled list equal to `train_data` was recognised. A file is the same file by its real
    path; `labeled` None: every record of `train_files` is labeled. The counts are the records of
    each file, read once by the caller.
    """
    train_real = [os.path.realpath(f) for f in train_files]
    starts = [sum(train_counts[:i]) for i in range(len(train_counts))]
    wanted = None if labeled is None else sorted(set(labeled))
    drop, offset = [], 0
    for path, count in zip(unlabeled_files, unlabeled_counts):
        real = os.path.realpath(path)
        if real in train_real:
            start = starts[train_real.index(real)]
            local = range(count) if wanted is None else [i - start for i in wanted if start <= i < start + count]
            drop.extend(offset + i for i in local)
        offset += count
    return drop


def build_mix_dataset(
    train_data: FilePatterns,
    unlabeled_data: Optional[FilePatterns],
    *,
    labeled: Optional[Sequence[int]],
    height: int,
    width: int,
    batch_size: int,
    num_classes: int,
    augmentation: Optional[AugmentationConfig] = None,
    seed: int = 0,
    modality2_interpolation: Union[str, Sequence[str]] = "nearest",
    shuffle_buffer: int = 256,
    modalities: int = 2,
    depth: bool = True,
    unlabeled_key: str = "unlabeled_data",
) -> tf.data.Dataset:
    """The stream of images to mix: batches of `((modality1, ..., modalityN), label, has_label)`.

    Args:
        train_data: the labeled records.
        unlabeled_data: records used without labels (None: only the labeled ones).
        labeled: indices of the labeled records of `train_data` (None: all).
        height, width: output size.
        batch_size: images per batch (pairs are made inside a batch).
        num_classes: C; label ids >= C are void.
        augmentation: as for the labeled stream (None: none).
        seed: shuffling and augmentation seed.
        modality2_interpolation: resampling of modality 2 ("nearest" keeps depth colours exact),
            or one method per modality after the first (a config's `interpolations`).
        shuffle_buffer: records held for shuffling.
        modalities: N, the images read from each record (at least 2 with `depth`).
        depth: modality 2 is the depth the mixing needs (DepthMix, depth pretraining); False:
            ClassMix, on whatever images the model reads (an RGB-only AdapNet++: one).
        unlabeled_key: the config key `unlabeled_data` came from, for the messages (depth
            pretraining reads `train_data` as its unlabeled records when that key is not set).

    Returns:
        A repeated dataset of `(images, label, has_label, valid)`: `label` int32 (B, H, W),
        `has_label` bool (B,), `valid` bool (B, H, W), False on the border that augmentation
        brings in from outside an image (void in a label; an unlabeled image's pseudo-label
        must leave it out too).

    Raises:
        UnlabeledDataError: records without modality 2 (with `depth`) or with fewer than N
            images, or an empty `unlabeled_data`.

    Records of `train_data` that `unlabeled_data` lists again are drawn once: as labeled when
    they are (`labeled`), else as unlabeled.
    """
    if modalities < (2 if depth else 1):
        raise ValueError(f"the mix stream reads at least {2 if depth else 1} modalities"
                         f"{' (depth is modality 2)' if depth else ''}, got {modalities}")
    train_files = list_record_files(train_data)
    _check_modalities(train_files, modalities, depth, "train_data")
    if unlabeled_data is None:
        labeled_count = len(labeled) if labeled is not None else records_in_set(train_files, "train_data")
        unlabeled_files, unlabeled_count, drop = train_files, 0, None
    else:
        unlabeled_files = list_record_files(unlabeled_data)
        _check_modalities(unlabeled_files, modalities, depth, unlabeled_key)
        # Each file's records are read once (every record: the unlabeled set may be large).
        unlabeled_counts = _records_of(unlabeled_files, unlabeled_key)
        shared = _shares_files(train_files, unlabeled_files)
        train_counts = _records_of(train_files, "train_data") if labeled is None or shared else None
        labeled_count = len(labeled) if labeled is not None else sum(train_counts)
        drop = _labeled_among(unlabeled_files, unlabeled_counts, train_files, train_counts, labeled) if shared else []
        unlabeled_count = sum(unlabeled_counts) - len(drop)
    augmentation = augmentation if augmentation is not None else AugmentationConfig.disabled()

    def stream(records: tf.data.Dataset, flag: bool, offset: int) -> tf.data.Dataset:
        records = records.shuffle(shuffle_buffer, seed=seed + offset, reshuffle_each_iteration=True)
        records = records.repeat()
        indexed = tf.data.Dataset.zip((records, tf.data.Dataset.counter(dtype=tf.int64)))

        def prepare(serialized, index):
            sample_seed = tf.stack([tf.constant(seed + offset, tf.int64), index])
            sample = augment_sample(decode_record(serialized, modalities), height=height, width=width,
                                    config=augmentation, seed=sample_seed,
                                    modality2_interpolation=modality2_interpolation, return_valid=True)
            label = sample["label"]
            label = tf.where(label >= num_classes, tf.zeros_like(label), label)
            images = tuple(sample[schema.modality_key(i)] for i in range(1, modalities + 1))
            return (images, label, tf.constant(flag), sample["valid"])

        return indexed.map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    parts = [stream(indexed_records(train_files, keep=labeled), True, 1)]
    weights = [float(labeled_count)]
    if unlabeled_count > 0:
        parts.append(stream(indexed_records(unlabeled_files, drop=drop), False, 2))
        weights.append(float(unlabeled_count))
    total = sum(weights)
    dataset = tf.data.Dataset.sample_from_datasets(
        parts, weights=[w / total for w in weights], seed=seed, stop_on_empty_dataset=False)
    return dataset.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
