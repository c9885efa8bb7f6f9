"""Checking TFRecord files end to end, and naming the file and record of a damaged one.

A record file is checked at three levels:

1. framing: every record is a length, its CRC, the data and the data's CRC (TensorFlow's reader
   checks both CRCs); a file cut short, flipped bytes or a file that is not a TFRecord file at all
   stop the reader at a byte offset;
2. the `tf.train.Example` of each record: `height` and `width` (one positive int64 each),
   `modality1` and `label` (one bytes value each) and, for fusion data, `modality2` .. `modalityN`;
3. the bytes features: raw pixels of exactly height x width x channels bytes, or a PNG file of
   that size (`ssma_tf.data.schema`); with a class count, every label id below it (labels
   that are read: not those of records checked with `labeled=False`).

Records read without their labels (`unlabeled_data`, `target_data`) may lack the `label`
feature: checked with `labeled=False`, a missing label is counted, not a problem. Scene
classification records (`ssma-scene convert`: a `class_id` in place of the label image) are
checked as such: their images, and with a class count every class id below it.

`check_record_files` runs all three over every record (`ssma-check-records`, `ssma-convert
--check`). `find_damaged_record` looks for the first problem only: the training and evaluation
pipelines call it when TensorFlow's reader fails, whose message gives a byte offset but not the
file, so that the error names the file (the shard) and the record index.
"""

from __future__ import annotations

import dataclasses
import io
import os
import re
import struct
from typing import IO, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
from PIL import Image, UnidentifiedImageError

from ssma_tf.constants import IGNORE_ID
from ssma_tf.data import schema
from ssma_tf.data.convert import (
    class_id_range, class_pixels, no_class_pixels_message, unknown_ids_text, unknown_label_ids,
)
from ssma_tf.errors import UserInputError, first_line

# A record is framed by an 8-byte length and a 4-byte CRC of it, then the data and its 4-byte CRC.
_HEADER_BYTES = 12
_FOOTER_BYTES = 4
# The part of TensorFlow's DataLossError that says what happened (the rest names internal ops).
_READER_MESSAGE = re.compile(r"(truncated|corrupted) record at \d+( \(Is this even a TFRecord file\?\))?")


class RecordError(UserInputError):
    """A record file is damaged or holds records of another kind.

    Attributes:
        path: the file (the shard).
        index: the 0-based index of the bad record in that file (None: the file as a whole).
        detail: the message without the file and record.
    """

    def __init__(self, message: str, path: str, index: Optional[int] = None):
        self.index = index
        where = f"{path}: " if index is None else f"{path}, record {index}: "
        super().__init__(where + message, path)
        self.detail = message


@dataclasses.dataclass
class FileReport:
    """What checking one record file found.

    Attributes:
        path: the file.
        records: records read (including the bad ones that could be framed).
        modalities: {images per record (1 unimodal, 2 fusion, N): records}.
        image_sizes: {(height, width): records}.
        class_histogram: pixels per label id (256 entries).
        unlabeled: records without a `label` feature (checked with `labeled=False`).
        scene_classes: {class id: scene classification records}.
        problems: the `RecordError`s found, in file order.
        num_classes: the class count checked against, if any.
        labeled: False when checked as records read without their labels.
        unchecked: records counted but not checked, after `max_problems` problems (their kinds,
            sizes and ids are not in the other counts).
    """

    path: str
    records: int = 0
    modalities: Dict[int, int] = dataclasses.field(default_factory=dict)
    image_sizes: Dict[Tuple[int, int], int] = dataclasses.field(default_factory=dict)
    class_histogram: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(256, np.int64))
    unlabeled: int = 0
    scene_classes: Dict[int, int] = dataclasses.field(default_factory=dict)
    problems: List[RecordError] = dataclasses.field(default_factory=list)
    num_classes: Optional[int] = None
    labeled: bool = True
    unchecked: int = 0

    def describe(self) -> str:
        """One line: records, kind, sizes, ids, and `ok` or the number of problems."""
        kinds = " + ".join(f"{count} {kind_of(m)}" for m, count in sorted(self.modalities.items()))
        sizes = ", ".join(f"{h}x{w} ({n})" for (h, w), n in sorted(self.image_sizes.items()))
        present = np.nonzero(self.class_histogram)[0]
        ids = f"label ids {present.min()}..{present.max()}" if present.size else "no label pixels"
        if self.scene_classes:
            scenes = sum(self.scene_classes.values())
            kinds += f"; {'all' if scenes == self.records else scenes} scene classification"
            ids = f"scene class ids {min(self.scene_classes)}..{max(self.scene_classes)}" + (
                f", {ids}" if present.size else "")
        if self.labeled and present.size and not class_pixels(self.class_histogram, self.num_classes):
            # Not a problem: labels written only to fill the column (unlabeled images) look so too.
            ids += f" (none a class {class_id_range(self.num_classes)}: training learns nothing from these labels)"
        if not self.labeled and unknown_label_ids(self.class_histogram, self.num_classes):
            ids += f" (ids >= num_classes {self.num_classes} not a problem: these labels are not read)"
        if self.unlabeled:
            ids += f", {self.unlabeled} without a label"
        state = "ok" if not self.problems else f"{len(self.problems)} problem(s)"
        if self.unchecked:
            # Before: the capped count read as the file's whole (helpers 147, 154).
            state += (f", then checking stopped: the last {self.unchecked} record(s) were not checked (the kinds, "
                      "sizes and ids are of the others)")
        return f"{self.path}: {self.records} records ({kinds or 'none'}), {sizes or 'no sizes'}, {ids}: {state}"


def reader_message(error: BaseException) -> str:
    """The useful part of a TensorFlow reader error (`corrupted record at 97122`)."""
    match = _READER_MESSAGE.search(str(error))
    return match.group(0) if match else first_line(error)


def count_records(path: str) -> Tuple[int, int]:
    """Walks the framing of a record file without reading the data or checking CRCs.

    Returns:
        (records framed, stray bytes at the end): a file cut inside a header leaves stray bytes,
        which TensorFlow's reader skips without a word; a file cut inside a record counts that
        record (the reader fails there). A foreign file gives an arbitrary count.
    """
    size = os.path.getsize(path)
    count = end = 0
    with open(path, "rb") as handle:
        for start, length in _frames(handle, size):
            count += 1
            end = start + length + _FOOTER_BYTES
    # Bytes after the last whole header: a header cut short (none when a record is cut inside).
    return count, max(size - end, 0)


def records_at(path: str, positions: Sequence[int]) -> Dict[int, bytes]:
    """The data of the records at `positions` (0-based, in the file), read by walking the framing:
    the records between are skipped, not read, and no CRC is checked. A position beyond the file,
    or in a record cut short, is left out of the answer.
    """
    wanted = set(int(p) for p in positions)
    found: Dict[int, bytes] = {}
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        for index, (start, length) in enumerate(_frames(handle, size)):
            if len(found) == len(wanted):
                break
            if index in wanted and start + length <= size:
                handle.seek(start)
                found[index] = handle.read(length)
    return found


def _frames(handle: IO[bytes], size: int) -> Iterator[Tuple[int, int]]:
    """(data offset, data length) of each record whose header a file of `size` bytes holds whole,
    in order, read from the headers alone (the reader may move the handle between records)."""
    offset = 0
    while offset < size:
        handle.seek(offset)
        header = handle.read(_HEADER_BYTES)
        if len(header) < _HEADER_BYTES:
            return
        (length,) = struct.unpack("<Q", header[:8])
        yield offset + _HEADER_BYTES, length
        offset += _HEADER_BYTES + length + _FOOTER_BYTES


def _first_record_quickly(path: str) -> Optional[tf.train.Example]:
    """The first record read with Python's file reading, without its CRCs checked: a TensorFlow
    reader costs 10 to 100 ms a file, which every file of a set of shards paid once each file's
    first record was checked. None where it cannot be read so (an empty, cut or foreign file, a
    record that does not parse): the TensorFlow reader then names what is wrong. A record damaged
    inside is found by the pass over the data (`naming_damaged_records`)."""
    try:
        with open(path, "rb") as handle:
            header = handle.read(_HEADER_BYTES)
            if len(header) < _HEADER_BYTES:
                return None
            (length,) = struct.unpack("<Q", header[:8])
            if _HEADER_BYTES + length + _FOOTER_BYTES > os.path.getsize(path):
                return None
            data = handle.read(length)
        example = tf.train.Example.FromString(data)
    except Exception:  # an OSError, or protobuf's own DecodeError type
        return None
    return example if example.features.feature else None


def first_example(path: str) -> Optional[tf.train.Example]:
    """The first record of a file as a `tf.train.Example`; None for a file without records.

    Reads that record only: a check, before long work, that a file is a record file of this
    project.

    Raises:
        RecordError: the file is not a TFRecord file (or a damaged one), or its first record not
            a `tf.train.Example`.
    """
    quick = _first_record_quickly(path)
    if quick is not None:
        return quick
    try:
        for record in tf.data.TFRecordDataset(path).take(1):
            try:
                return tf.train.Example.FromString(record.numpy())
            except Exception as error:  # protobuf raises its own DecodeError type
                raise RecordError(f"not a tf.train.Example ({type(error).__name__}); is it a record file of "
                                  "this project?", path, 0) from None
    except tf.errors.DataLossError as error:
        raise RecordError(f"damaged ({reader_message(error)}); the file is cut short, overwritten or not "
                          "a TFRecord file: convert it again", path, 0) from None
    return None


def modalities_held(path: str) -> Optional[int]:
    """The images (modalities) the first record of a file holds; None for a file without records.

    Raises:
        RecordError: as `first_example`.
    """
    example = first_example(path)
    return None if example is None else schema.count_modalities(example.features.feature)


def records_per_file(files: Sequence[str]) -> List[int]:
    """The records of each file, read with TensorFlow's reader as the pipelines read them.

    Unlike `count_records`, which only walks the framing, this reads every record, so a damaged
    file fails here as it would in training.

    Raises:
        RecordError: a file TensorFlow's reader stops in, naming it and the first bad record.
    """
    counts = []
    for path in files:
        try:
            counts.append(int(tf.data.TFRecordDataset(path).reduce(np.int64(0), lambda count, _: count + 1)))
        except tf.errors.DataLossError as error:
            # Labels are not judged here: the files may be images read without them.
            found = find_damaged_record([path], labeled=False)
            raise (found or RecordError(f"damaged ({reader_message(error)})", path)) from error
        # The reader passes a record cut inside its header over: refused as `build_dataset` refuses
        # it (helper 256: unlabeled, target and depth-pretraining records trained without it).
        whole_records(path)
    return counts


def whole_records(path: str) -> int:
    """The records framed in `path` (`count_records`), refusing a file that ends with stray bytes:
    one cut inside a record's header, whose last record TensorFlow's reader passes over without a
    word.

    Raises:
        RecordError: naming the file, the stray bytes and the record they follow.
    """
    framed, stray = count_records(path)
    if stray:
        where = f"after record {framed - 1}" if framed else "before any whole record"
        raise RecordError(f"ends with {stray} stray bytes {where}: the file was cut short, its last record lost "
                          "(ssma-check-records shows it)", path)
    return framed


def _feature(example: tf.train.Example, key: str, kind: str) -> Optional[list]:
    if key not in example.features.feature:
        return None
    return list(getattr(example.features.feature[key], kind).value)


def _pixels(data: bytes, name: str, height: int, width: int, channels: int) -> np.ndarray:
    """The uint8 pixels of one bytes feature as the pipeline would decode them; ValueError if not."""
    raw_size = height * width * channels
    if data[: len(schema.PNG_SIGNATURE)] == schema.PNG_SIGNATURE and len(data) != raw_size:
        damaged = (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError)
        try:
            image = Image.open(io.BytesIO(data))
        except damaged as error:
            raise ValueError(f"{name} is a damaged PNG ({error})") from None
        if image.size != (width, height):  # before decoding: a damaged header may claim any size
            raise ValueError(f"{name} is a {image.size[1]}x{image.size[0]} PNG but the record says {height}x{width}")
        try:
            image.load()
        except damaged as error:
            raise ValueError(f"{name} is a damaged PNG ({error})") from None
        if channels == 1 and image.mode != "L":
            # decode_png(channels=1) would turn colours into grey levels, not class ids.
            raise ValueError(f"label is a PNG of mode {image.mode}, not 8-bit gray class ids")
        return np.asarray(image)
    if len(data) != raw_size:
        raise ValueError(
            f"{name} holds {len(data)} bytes: neither raw {height}x{width}x{channels} = {raw_size} bytes nor a PNG file"
        )
    return np.frombuffer(data, np.uint8)


def kind_of(modalities: int) -> str:
    """How reports name records of `modalities` images: unimodal, fusion (2), 3-modality, ..."""
    return {1: "unimodal", 2: "fusion"}.get(modalities, f"{modalities}-modality")


def check_example(
    serialized: bytes, modalities: Optional[int] = None, labeled: bool = True, scenes: bool = False,
    scene_file: bool = False,
) -> Tuple[int, Tuple[int, int], Optional[np.ndarray], Optional[int]]:
    """Checks one serialized record against the schema, decoding its bytes features.

    Args:
        serialized: the record.
        modalities: N to require `modality1` .. `modalityN` (images after them are ignored);
            None: whatever the record holds.
        labeled: False accepts a record without a `label` feature (one that has it is checked).
        scenes: True checks a scene classification record (a `class_id`, no label) as such, its
            class id returned (`ssma-check-records`, with or without `labeled`); False: one is a
            problem where labels are read (the segmentation pipelines' damaged-record search).
        scene_file: with `scenes`, the file's first record, or an earlier one, was a scene
            classification record: a record with neither a label nor a class id is then named as
            a scene record without its class id; otherwise as a segmentation record without its
            label.

    Returns:
        (modalities the record holds, (height, width), label ids as a flat uint8 array, or None
        for a record without a label, the class id of a scene classification record, or None).

    Raises:
        ValueError: what is wrong, without the file's name.
    """
    try:
        example = tf.train.Example.FromString(serialized)
    except Exception as error:  # protobuf raises its own DecodeError type
        raise ValueError(f"not a tf.train.Example ({type(error).__name__})") from None
    sizes = {}
    for key in (schema.HEIGHT, schema.WIDTH):
        values = _feature(example, key, "int64_list")
        if values is None:
            raise ValueError(f"no {key!r} feature (features: {sorted(example.features.feature)})")
        if len(values) != 1 or values[0] < 1:
            raise ValueError(f"{key!r} must be one positive integer, got {values}")
        sizes[key] = int(values[0])
    height, width = sizes[schema.HEIGHT], sizes[schema.WIDTH]
    # At least 1: a record without modality1 is reported below as missing that feature.
    held = schema.count_modalities(example.features.feature)
    present = max(held, 1)
    # Without modality1 (held 0) the loop below names modality1. Before: "no 'modality2'
    # feature: a unimodal record" for a record that lacked modality1 (helper 291).
    if modalities is not None and 0 < held < modalities:
        raise ValueError(f"no {schema.modality_key(present + 1)!r} feature: a {kind_of(present)} record "
                         f"where {kind_of(modalities)} records are needed")
    checked = present if modalities is None else modalities
    keys = [(schema.modality_key(i), 3) for i in range(1, checked + 1)] + [(schema.LABEL, 1)]
    label = None
    for key, channels in keys:
        values = _feature(example, key, "bytes_list")
        if values is None and key == schema.LABEL and schema.CLASS_ID in example.features.feature:
            if not scenes and not labeled:
                continue  # its images serve as an unlabeled segmentation record's
            if not scenes:
                raise ValueError(f"no {key!r} bytes feature: a scene classification record (a {schema.CLASS_ID}, "
                                 "no label image; ssma-scene trains on those)")
            class_id = _feature(example, schema.CLASS_ID, "int64_list")
            if class_id is None or len(class_id) != 1 or class_id[0] < 0:
                raise ValueError(f"a scene classification record's {schema.CLASS_ID!r} must be one integer "
                                 f">= 0, got {class_id}")
            return present, (height, width), None, int(class_id[0])
        if values is None and key == schema.LABEL and not labeled:
            continue
        if values is None and key == schema.LABEL and scenes and scene_file:
            # Helper 277: "no 'label' bytes feature" sent a user of scene records looking for an image.
            raise ValueError(f"no {schema.CLASS_ID!r} feature: a scene classification record holds one integer "
                             "class id")
        if values is None and key == schema.LABEL and scenes:
            # Before: the class_id wording above for segmentation records written without labels
            # (`ssma-convert --unlabeled`), checked without --unlabeled (helper 291).
            raise ValueError(f"no {key!r} bytes feature (records used without labels: --unlabeled)")
        if values is None:
            raise ValueError(f"no {key!r} bytes feature")
        if len(values) != 1:
            raise ValueError(f"{key!r} must hold one bytes value, got {len(values)}")
        pixels = _pixels(values[0], key, height, width, channels)
        if key == schema.LABEL:
            label = pixels.ravel()
    return present, (height, width), label, None


def iterate_records(path: str) -> Iterator[Tuple[int, bytes]]:
    """Yields (index, record) for each record of a file, CRCs checked by TensorFlow's reader.

    Raises:
        RecordError: the reader stopped at a damaged record (its index and byte offset named).
    """
    index = 0
    try:
        for record in tf.data.TFRecordDataset(path):
            yield index, record.numpy()
            index += 1
    except tf.errors.DataLossError as error:
        raise RecordError(
            f"damaged ({reader_message(error)}); the file is cut short, overwritten or not a TFRecord "
            "file: convert it again", path, index,
        ) from None
    except tf.errors.OpError as error:  # unreadable: permissions, a folder, ...
        raise RecordError(f"cannot be read ({reader_message(error)})", path) from None


def check_record_file(
    path: str,
    *,
    modalities: Optional[int] = None,
    num_classes: Optional[int] = None,
    max_problems: Optional[int] = 20,
    on_record: Optional[Callable[[], None]] = None,
    labeled: bool = True,
    scenes: bool = False,
) -> FileReport:
    """Checks every record of one file (see the module docstring).

    Args:
        path: the record file.
        modalities: N requires `modality1` .. `modalityN` in every record and ignores images
            after them; None accepts any count but reports a file that mixes counts.
        num_classes: when given, a label id >= it is a problem (training counts it as void);
            with `labeled=False` not (those labels are not read), only noted in `describe`.
        max_problems: stop after this many problems (None: never).
        on_record: called after each record (a progress bar).
        labeled: False: a record without a `label` feature is counted in `unlabeled`, not a
            problem (records used without labels: `unlabeled_data`, `target_data`).
        scenes: scene classification records are checked as such (see `check_example`).

    Returns:
        The `FileReport`; `problems` is empty for a good file.
    """
    report = FileReport(os.fspath(path), num_classes=num_classes, labeled=labeled)
    if not os.path.isfile(report.path):
        report.problems.append(RecordError("no such file", report.path))
        return report

    def full() -> bool:
        return max_problems is not None and len(report.problems) >= max_problems

    segmentation = 0  # records with a label image
    # A file of scene records: a record without a class id is named as one (see `check_example`).
    first = _first_record_quickly(report.path) if scenes else None
    scene_file = first is not None and schema.CLASS_ID in first.features.feature

    try:
        for index, record in iterate_records(report.path):
            report.records += 1
            if on_record is not None:
                on_record()
            if full():
                report.unchecked += 1
                continue  # keep counting, stop checking
            try:
                present, size, ids, class_id = check_example(record, modalities, labeled=labeled, scenes=scenes,
                                                             scene_file=scene_file or bool(report.scene_classes))
            except ValueError as error:
                report.problems.append(RecordError(str(error), report.path, index))
                continue
            report.modalities[present] = report.modalities.get(present, 0) + 1
            report.image_sizes[size] = report.image_sizes.get(size, 0) + 1
            if class_id is not None:
                report.scene_classes[class_id] = report.scene_classes.get(class_id, 0) + 1
                if num_classes is not None and class_id >= num_classes:
                    report.problems.append(RecordError(
                        f"scene class id {class_id} >= num_classes {num_classes} (the scene classes have "
                        "ids 0..num_classes-1, no void class)", report.path, index))
                continue
            if ids is None:
                report.unlabeled += 1
                continue
            segmentation += 1
            counts = np.bincount(ids, minlength=256)
            report.class_histogram += counts
            # Labels of records read without them are never read: before, their ids >= num_classes
            # were problems under "labels not needed" (helper 291); the summary line notes them.
            unknown = unknown_label_ids(counts, num_classes) if labeled else []
            if unknown:
                report.problems.append(RecordError(
                    f"label {unknown_ids_text(unknown)} >= num_classes {num_classes} ({int(counts[unknown].sum())} "
                    f"pixels; training would count them as void; {IGNORE_ID} marks ignored pixels and is "
                    "not reported)", report.path, index,
                ))
    except RecordError as error:
        report.problems.append(error)
        return report
    framed, stray = count_records(report.path)
    if stray:
        where = f"after record {report.records - 1}" if report.records else "before any whole record"
        report.problems.append(RecordError(
            f"ends with {stray} stray bytes {where}: the file was cut short "
            "(the reader skips them silently, so records may be missing)", report.path,
        ))
    if report.records == 0 and not report.problems:
        report.problems.append(RecordError("holds no records", report.path))
    scene_records = sum(report.scene_classes.values())
    if scene_records and segmentation:
        report.problems.append(RecordError(
            f"mixes {scene_records} scene classification records (a {schema.CLASS_ID}) and {segmentation} segmentation "
            "records (a label image): a file is read either by ssma-scene or by the segmentation commands",
            report.path,
        ))
    if modalities is None and len(report.modalities) > 1:
        report.problems.append(RecordError(
            "mixes " + " and ".join(f"{count} {kind_of(m)}" for m, count in sorted(report.modalities.items(),
                                                                                     reverse=True))
            + " records", report.path,
        ))
    return report


def check_record_files(
    paths: Sequence[str],
    *,
    modalities: Optional[int] = None,
    num_classes: Optional[int] = None,
    max_problems: Optional[int] = 20,
    progress: Optional[Callable[[int, int], None]] = None,
    labeled: bool = True,
    scenes: bool = False,
) -> List[FileReport]:
    """`check_record_file` over several files, with one progress count over all their records.

    Args:
        paths: the record files.
        modalities, num_classes, max_problems, labeled, scenes: as for `check_record_file` (per file).
        progress: called as progress(records done, records in all); the total is counted from
            the files' framing first (quick: no data is read).

    Returns:
        One `FileReport` per file, in order.
    """
    total = sum(count_records(p)[0] for p in paths if os.path.isfile(p))
    done = 0

    def step() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, max(total, done))

    reports = [
        check_record_file(p, modalities=modalities, num_classes=num_classes, max_problems=max_problems,
                          on_record=step, labeled=labeled, scenes=scenes)
        for p in paths
    ]
    if progress is not None:
        progress(done, done)
    return reports


def label_ids_warning(
    paths: Sequence[str], num_classes: int, records: int = 16, what: str = "the records", read: int = 64,
    evaluating: bool = False,
) -> Optional[str]:
    """A warning when the labels of the first `records` labelled records hold no class pixel, or
    ids >= `num_classes`.

    The pipelines count such pixels as void, as the original one-hot encoding did, which is
    right for the ignore id 255 (never reported) and silently wrong when `num_classes` is too
    small. Labels with no pixel of a class 1 .. num_classes - 1 (binary masks saved as 0 and
    255) give a loss of 0 and train nothing.
    Only the label of each record is decoded, and at most `read` records are read in all:
    records without a label, and damaged ones (reported when a run reads them), are passed over.

    `evaluating`: of test labels (what an all-void set means there, not for training).

    Returns:
        The warning (without `warning:`), or None when the labels scanned have class pixels and
        every id is a class, void or 255.
    """
    scanned = seen = beyond = 0
    pixels = outside = classes = 0
    largest = 0
    for path in paths:
        try:
            for _, record in iterate_records(path):
                if scanned >= records or seen >= read:
                    break
                seen += 1
                ids = _label_ids(record)
                if ids is None:
                    continue
                scanned += 1
                counts = np.bincount(ids.ravel(), minlength=256)
                unknown = unknown_label_ids(counts, num_classes)
                if unknown:
                    beyond += 1
                    outside += int(counts[unknown].sum())
                    largest = max(largest, unknown[-1])
                pixels += ids.size
                classes += class_pixels(counts, num_classes)
        except RecordError:
            pass
        if scanned >= records or seen >= read:
            break
    if scanned and not classes:
        return f"the first {scanned} labelled records of {what}: {no_class_pixels_message(num_classes, evaluating)}"
    if not beyond:
        return None
    return (f"{beyond} of the first {scanned} labelled records of {what} have label ids >= num_classes "
            f"{num_classes} other than {IGNORE_ID} (up to {largest}; {100.0 * outside / pixels:.1f}% of the pixels read): they count as "
            "void, as in the original code. If they are classes, num_classes is too small "
            f"(`ssma-check-records --num_classes {num_classes}` lists every such record)")


def _label_ids(serialized: bytes) -> Optional[np.ndarray]:
    """The label ids of a record, flat; None when it has no readable label."""
    try:
        example = tf.train.Example.FromString(serialized)
    except Exception:  # protobuf raises its own DecodeError type
        return None
    sizes = [_feature(example, key, "int64_list") for key in (schema.HEIGHT, schema.WIDTH)]
    label = _feature(example, schema.LABEL, "bytes_list")
    if None in sizes or label is None or len(label) != 1 or any(len(v) != 1 or v[0] < 1 for v in sizes):
        return None
    try:
        return _pixels(label[0], schema.LABEL, int(sizes[0][0]), int(sizes[1][0]), 1).ravel()
    except ValueError:
        return None


def find_damaged_record(
    paths: Sequence[str], modalities: Optional[int] = None, labeled: bool = True
) -> Optional[RecordError]:
    """The first damaged or malformed record in `paths` (None if there is none).

    Used after TensorFlow's reader failed, to say which file and record it was. `labeled=False`
    for records read without their labels (a missing `label` feature is then no problem).
    """
    for path in paths:
        report = check_record_file(path, modalities=modalities, max_problems=1, labeled=labeled)
        if report.problems:
            return report.problems[0]
    return None
