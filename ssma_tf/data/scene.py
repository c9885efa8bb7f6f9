"""Scene classification data (Section 5.9): list files of `modality1 ... modalityN class_id`, records, pipeline.

A list line holds the N images of one scene and its class id (an integer 0..C−1), space
separated, paths relative to the list file's folder. Records use the segmentation schema's image
features (`height`, `width`, `modality1` .. `modalityN`, raw or PNG bytes, BGR) and an int64
`class_id` instead of a label image.
"""

from __future__ import annotations

import contextlib
import dataclasses
import numbers
import os
import random
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from ssma_tf.constants import MAX_MODALITIES
from ssma_tf.data import schema
from ssma_tf.data.convert import load_image_bgr
from ssma_tf.data.pipeline import DATA_ERRORS, list_record_files
from ssma_tf.data.records import RecordError, check_record_file, first_example
from ssma_tf.errors import first_line
from ssma_tf.files import atomic_path
from ssma_tf.lists import comment_hint, missing_path_detail, more_columns_hint, read_lines, refuse_listed_outputs
from ssma_tf.modalities.io import InputFileError
from ssma_tf.resampling import resize_methods

CLASS_ID = schema.CLASS_ID


def read_scene_list(path: str, modalities: Optional[int] = None) -> List[Tuple[Tuple[str, ...], int]]:
    """Reads a scene list: one `(image paths, class id)` per line.

    The lines are read as every list file of the package is (`ssma_tf.lists`: fields separated
    by spaces or tabs, or quoted; `#` comments), the image paths first, the class id last.

    Args:
        path: the list file; relative paths are taken from its folder.
        modalities: when given, the images every line must have before its class id.

    Raises:
        MissingFileError, ListFileError, InputFileError: a missing, unreadable or empty file, a
            line with too few columns or other columns than the lines before it, or a class id
            that is not a non-negative integer; the message names the file and the line.
    """
    return [(images, class_id) for _, images, class_id in read_scene_lines(path, modalities)]


def read_scene_lines(path: str, modalities: Optional[int], check_files: bool = False,
                     num_classes: Optional[int] = None) -> List[Tuple[int, Tuple[str, ...], int]]:
    """`read_scene_list` with each entry's line number first; with `check_files`, every image
    must exist, and with `num_classes` every class id be below it (named with its line, before
    any image is decoded: before, a missing image or a class id too large at the end of a list
    was found after decoding every image before it). A column count or path that looks like a
    path cut at its spaces, a comment after the paths or a Windows path gets the hint that the
    segmentation lists' errors give."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    entries: List[Tuple[int, Tuple[str, ...], int]] = []
    for number, parts in read_lines(path):
        where = f"{path}, line {number}"
        # Columns counted as columns (before: "has 4 columns, expected 4 modalities and a class id").
        if len(parts) > MAX_MODALITIES + 1:
            raise InputFileError(f"{where}: has {len(parts)} columns, more than {MAX_MODALITIES + 1} "
                                 f"(at most {MAX_MODALITIES} modalities and a class id)", path)
        expected = len(entries[0][1]) + 1 if entries else None if modalities is None else modalities + 1
        hint = comment_hint(parts) or (more_columns_hint(parts, folder, len(parts) - 1)
                                       if expected is not None and len(parts) > expected else "")
        # The first line's count where there is one (before: "expected 3 or more" where the lines
        # before it had 4; helper 137).
        if modalities is None and not entries and len(parts) < 3:
            raise InputFileError(f"{where}: has {len(parts)} columns, expected 3 or more (2 or more modalities "
                                 f"and a class id){hint}", path)
        if modalities is not None and len(parts) != modalities + 1:
            raise InputFileError(f"{where}: has {len(parts)} columns, expected {modalities + 1} ({modalities} "
                                 f"modalities and a class id){hint}", path)
        if entries and len(parts) != len(entries[0][1]) + 1:
            raise InputFileError(
                f"{where}: has {len(parts)} columns but the lines before it have {len(entries[0][1]) + 1}{hint}", path
            )
        if not (parts[-1].isascii() and parts[-1].isdigit()):  # not '²' (int() refuses it) nor '３'
            raise InputFileError(f"{where}: the class id must be a non-negative integer, got {parts[-1]!r}"
                                 f"{comment_hint(parts)}", path)
        class_id = int(parts[-1])
        if class_id >= 2 ** 63:  # a record's int64 (before: "Value out of range", after the images before it)
            raise InputFileError(f"{where}: the class id must be a non-negative integer below 2**63, got {class_id}",
                                 path)
        if num_classes is not None and class_id >= num_classes:
            raise InputFileError(f"{where}: class id {class_id} but num_classes is {num_classes}", path)
        images = tuple(os.path.normpath(os.path.join(folder, os.path.expanduser(p))) for p in parts[:-1])
        if check_files:
            for index, image in enumerate(images):
                if not os.path.isfile(image):
                    raise InputFileError(
                        f"{where}: image '{image}' {missing_path_detail(image, parts, index, folder)}", path)
        entries.append((number, images, class_id))
    if not entries:
        raise InputFileError(f"{path}: the list is empty", path)
    return entries


def encode_scene(images: Sequence[np.ndarray], class_id: int, encoding: str = "png") -> bytes:
    """Serializes one scene: N HxWx3 uint8 BGR images and its class id."""
    if not images:
        raise ValueError("a scene needs at least one image")
    if isinstance(class_id, bool) or not isinstance(class_id, numbers.Integral) or class_id < 0:
        # Helper 115: -1 was written, then counted as the last class by the evaluation.
        raise ValueError(f"the class id must be an integer >= 0, got {class_id!r}")
    height, width = images[0].shape[:2]
    for index, image in enumerate(images, start=1):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape != (height, width, 3):
            raise ValueError(
                f"modality{index} must be {height}x{width}x3 uint8 like modality1, got {image.shape} {image.dtype}"
            )
    # The segmentation schema's image features, with a one-pixel stand-in label that is dropped.
    label = np.zeros((height, width), np.uint8)
    example = tf.train.Example.FromString(
        schema.encode_example(images[0], label, images[1] if len(images) > 1 else None, encoding=encoding,
                              extra_modalities=images[2:])
    )
    features = example.features.feature
    del features[schema.LABEL]
    features[CLASS_ID].int64_list.value.append(int(class_id))
    return example.SerializeToString(deterministic=True)  # its features in key order: the same bytes each run


def write_scene_records(
    list_file: str, output: str, modalities: Optional[int] = None, num_classes: Optional[int] = None,
    encoding: str = "png", progress: Optional[Callable[[int, int], None]] = None,
) -> Dict[str, object]:
    """Converts a scene list to one TFRecord file (written under a temporary name, then renamed).

    `progress(done, total)` is called after each scene (`ssma_tf.progress.Progress` is one).

    Returns:
        `samples`, `modalities`, `class_histogram` ({id: scenes}) and `order_warning`
        (`ClassIds.order_warning`: the list's lines grouped by class; None when mixed).

    Raises:
        InputFileError: a bad list line (see `read_scene_list`), a class id >= `num_classes`.
        ValueError, FileNotFoundError: an unreadable image or images of different sizes, naming
            the list file and line.
    """
    entries = read_scene_lines(list_file, modalities, check_files=True, num_classes=num_classes)
    # As ssma-convert refuses them (helper 277: with --overwrite, the list or an image was replaced
    # by the records).
    refuse_listed_outputs([output], list_file, [image for _, images, _ in entries for image in images],
                          error=InputFileError)
    histogram: Dict[int, int] = {}
    with contextlib.ExitStack() as stack:
        temporary = stack.enter_context(atomic_path(os.fspath(output)))
        with tf.io.TFRecordWriter(temporary) as writer:
            for number, paths, class_id in entries:
                where = f"{list_file}, line {number}"
                images = [load_image_bgr(p, where) for p in paths]
                for path, image in zip(paths[1:], images[1:]):
                    if image.shape[:2] != images[0].shape[:2]:
                        # Each image by its file, as ssma-convert says it (before: "modality2 must
                        # be 16x32x3 uint8 like modality1, got (32, 32, 3) uint8"; helper 205).
                        raise InputFileError(
                            f"{where}: image '{path}' is {image.shape[0]}x{image.shape[1]} but '{paths[0]}' "
                            f"(modality 1) is {images[0].shape[0]}x{images[0].shape[1]} (height x width)", list_file)
                try:
                    writer.write(encode_scene(images, class_id, encoding))
                except ValueError as error:
                    raise InputFileError(f"{where}: {error}", list_file) from None
                histogram[class_id] = histogram.get(class_id, 0) + 1
                if progress is not None:
                    progress(sum(histogram.values()), len(entries))
    ids = ClassIds(np.array([class_id for _, _, class_id in entries], np.int64),
                   [(os.fspath(output), index) for index in range(len(entries))])
    return {"samples": len(entries), "modalities": len(entries[0][1]),
            "class_histogram": dict(sorted(histogram.items())), "order_warning": ids.order_warning()}


# Records the training stream shuffles within (`build_scene_dataset`).
SHUFFLE_BUFFER = 256


@dataclasses.dataclass
class ClassIds:
    """The class ids of scene records, from a pass over the ids only.

    Attributes:
        ids: every record's class id, the files in order.
        places: for each id, its file and 0-based record index in that file.
    """

    ids: np.ndarray
    places: List[Tuple[str, int]]

    def where(self, position: int) -> Tuple[str, int]:
        return self.places[position]

    def order_warning(self, window: int = SHUFFLE_BUFFER) -> Optional[str]:
        """A warning when the records come grouped by class (a list written folder by folder)
        and are too many for the training stream's shuffle to mix: each batch then holds one
        class for many steps. None when the order is mixed enough or the records are few.

        Grouped means fewer than half the class changes a random order of the same ids gives."""
        count = len(self.ids)
        if count <= window:
            return None  # the shuffle holds every record
        _, counts = np.unique(self.ids, return_counts=True)
        expected = (count - 1) * (1.0 - float(np.sum((counts / count) ** 2)))
        changes = int(np.count_nonzero(np.diff(self.ids)))
        if expected < 1 or changes >= 0.5 * expected:
            return None
        return (f"the {count} scene records come grouped by class ({changes} class changes where a random order "
                f"gives about {expected:.0f}), and training shuffles within {window} records: its batches hold "
                "one class for many steps; shuffle the list's lines before ssma-scene convert")


def class_ids(file_patterns, modalities: Optional[int] = None) -> ClassIds:
    """Every class id of scene records, in order, with where each is.

    Args:
        modalities: the images every record must hold (`modality1` ... `modalityN`); None: not
            checked.

    Raises:
        RecordError: a damaged record or one without a class id, naming its file and index
            (before: TensorFlow's bare DataLossError).
        InputFileError: a record without one of the `modalities` images, naming its file and
            index (before: a file mixing records of 2 and 3 modalities passed the check of its
            first record, and training or evaluation ended in a TensorFlow traceback; helper 137).
    """
    ids, places = [], []
    keys = [schema.modality_key(index) for index in range(1, (modalities or 0) + 1)]
    spec = {CLASS_ID: tf.io.FixedLenFeature([], tf.int64),
            **{key: tf.io.FixedLenFeature([], tf.string, default_value="") for key in keys}}

    def parse(record):
        features = tf.io.parse_single_example(record, spec)
        held = tf.stack([tf.strings.length(features[key]) > 0 for key in keys]) if keys else tf.zeros([0], tf.bool)
        return features[CLASS_ID], held

    for path in list_record_files(file_patterns):
        dataset = tf.data.TFRecordDataset(path).map(parse)
        try:
            batches = [(values.numpy(), held.numpy()) for values, held in dataset.batch(4096)]
        except DATA_ERRORS as error:
            report = check_record_file(path, scenes=True, max_problems=1)
            if report.problems:
                raise report.problems[0] from None
            raise RecordError(f"cannot read its class ids: {first_line(error)}", path) from None
        values = np.concatenate([v for v, _ in batches] or [np.zeros(0, np.int64)])
        if keys and batches:
            held = np.concatenate([h for _, h in batches])
            lacking = np.argwhere(~held)
            if len(lacking):
                record, image = (int(i) for i in lacking[0])
                report = check_record_file(path, scenes=True, max_problems=1)
                problem = report.problems[0] if report.problems else None
                said = "" if problem is None else problem.detail if problem.index is None else str(problem)
                mixed = f" (the file {said})" if said else ""
                raise InputFileError(f"{path}, record {record}: holds no {keys[image]}, which the model reads "
                                     f"({modalities} modalities){mixed}", path)
        ids.append(values)
        places.extend((path, index) for index in range(len(values)))
    return ClassIds(np.concatenate(ids) if ids else np.zeros(0, np.int64), places)


@contextlib.contextmanager
def naming_damaged_scene_records(file_patterns) -> Iterator[None]:
    """Runs a loop over scene records of `file_patterns` (training's `fit`, the evaluation); a
    damaged record that fails it becomes the `RecordError` naming its file, index and fault.

    The check before the loop reads the class ids only (`class_ids`): an image of the wrong byte
    count, or a record that is not an Example, failed the loop with TensorFlow's traceback, exit 1
    (helper 256). Other errors, and one with no damaged record behind it, are raised as they are.
    """
    try:
        yield
    except DATA_ERRORS as error:
        for path in list_record_files(file_patterns):
            report = check_record_file(path, scenes=True, max_problems=1)
            if report.problems:
                raise report.problems[0] from error
        raise


def scene_feature_spec(modalities: int) -> dict:
    """The features of a scene record: the segmentation records' without the label image, and
    the class id."""
    spec = {key: value for key, value in schema.feature_spec(modalities).items() if key != schema.LABEL}
    spec[CLASS_ID] = tf.io.FixedLenFeature([], tf.int64)
    return spec


def check_scene_records(files: Sequence[str], modalities: int, fix: Optional[str] = None) -> None:
    """Checks the first record of every file (not of the first file only: a set mixing files of
    2 and 3 modalities, or segmentation records, was a TensorFlow traceback halfway through).

    Raises:
        InputFileError: naming the file and what its records hold, with `fix` (as for
            `build_scene_dataset`) where the modalities differ.
    """
    wanted = list(scene_feature_spec(modalities))
    for path in files:
        example = first_example(path)  # a file of another kind, or a damaged one: named here
        if example is None:
            raise InputFileError(f"{path}: holds no records", path)
        present = example.features.feature
        missing = [key for key in wanted if key not in present]
        if CLASS_ID in missing and schema.LABEL in present:
            # Before: "lack feature(s) ['class_id'] (they hold 2 modalities, the model reads 2)".
            raise InputFileError(
                f"{path}: these are segmentation records (a label image per record, no class_id); scene "
                "classification reads records written by ssma-scene convert from 'modality1 ... class_id' lines",
                path)
        if missing:
            held = schema.count_modalities(present)
            then = f": {fix.format(held=held)}" if fix and CLASS_ID not in missing else ""
            raise InputFileError(f"{path}: records lack feature(s) {missing} (they hold {held} modalities, the "
                                 f"model reads {modalities}{then})", path)


def build_scene_dataset(
    file_patterns, *, modalities: int, height: int, width: int, batch_size: int, training: bool,
    seed: Optional[int] = None, interpolation: str = "nearest", fix: Optional[str] = None,
) -> tf.data.Dataset:
    """Batches of `((modality1, ..., modalityN), class_id)`: float32 (B, H, W, 3) BGR, int32 (B,).

    Training shuffles, repeats and flips left-right at random (every modality alike); evaluation
    reads once in order. Images are resized to `height` × `width` (modality 1 bilinearly, the
    others as `interpolation` says).

    `fix`: what the message says to do when the records hold another number of modalities
    (`{held}` stands for it; e.g. "give --modalities {held}").

    Raises:
        InputFileError: a file whose first record lacks a modality or the class id (naming it).
    """
    files = list_record_files(file_patterns)
    check_scene_records(files, modalities, fix)
    spec = scene_feature_spec(modalities)

    methods = resize_methods(interpolation, modalities)  # bilinear colour, then the others'

    def decode(serialized):
        features = tf.io.parse_single_example(serialized, spec)
        views = []
        for index, method in enumerate(methods, start=1):
            image = schema.decode_image(features[schema.modality_key(index)], features[schema.HEIGHT],
                                        features[schema.WIDTH], 3)
            views.append(tf.image.resize(tf.cast(image, tf.float32), (height, width), method=method))
        return tuple(views), tf.cast(features[CLASS_ID], tf.int32)

    records = tf.data.TFRecordDataset(files)
    if training:
        records = records.shuffle(SHUFFLE_BUFFER, seed=seed, reshuffle_each_iteration=True).repeat()
    dataset = records.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if training:
        # Unseeded, the flips differ from run to run as the shuffle's do (before: always seed 0).
        generator = tf.random.Generator.from_seed(random.SystemRandom().randrange(2**31) if seed is None else seed)

        def flip(views, class_id):
            mirrored = generator.uniform([]) < 0.5
            return tuple(tf.cond(mirrored, lambda v=v: tf.reverse(v, [1]), lambda v=v: v) for v in views), class_id

        dataset = dataset.map(flip)
    return dataset.batch(batch_size, drop_remainder=training).prefetch(tf.data.AUTOTUNE)
