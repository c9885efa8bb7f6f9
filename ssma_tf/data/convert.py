"""List files of image paths to TFRecords in the original SSMA / AdapNet++ schema.

A list file has one sample per line, space separated: `modality1 modality2 label` (fusion),
`modality1 ... modalityN label` (fusion of N modalities: N + 1 columns) or `modality1 label`
(unimodal); relative paths are relative to the list file's folder. Images are
read with Pillow and stored as OpenCV's `imread` would give them (BGR, 3 channels), labels as
single-channel uint8 ids, so the records equal those of the original tools.

Records are written under temporary names and renamed only once every sample has been written,
so an error never leaves a partial file that looks complete.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import glob
import os
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
from PIL import Image, ImageOps, UnidentifiedImageError

from ssma_tf.constants import MAX_MODALITIES
from ssma_tf.data import schema
from ssma_tf.files import atomic_path
from ssma_tf.modalities.io import InputFileError

ProgressCallback = Callable[[int, int], None]

# Pillow modes that hold class ids in a single channel ("P" holds palette indices, "1" is a
# bilevel image: ids 0 and 1).
_LABEL_MODES = ("L", "P", "1", "I", "I;16", "I;16B", "I;16L", "I;16N")


def _list_entries(path: str, modalities: Optional[int] = None) -> List[Tuple[int, Tuple[str, ...]]]:
    """Reads a list file into (line number, resolved paths) entries.

    With `modalities`, every line must have exactly that many images before its label.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"list file {path!r} does not exist")
    folder = os.path.dirname(os.path.abspath(path))
    entries = []
    columns = None
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            parts = line.split()
            if not parts:
                continue  # blank lines (a trailing newline) carry no sample
            if modalities is not None and len(parts) != modalities + 1:
                few = "fewer" if len(parts) < modalities + 1 else "more"
                raise InputFileError(
                    f"{path}, line {number}: has {len(parts)} columns, {few} than the "
                    f"{modalities + 1} of {modalities} modalit{'y' if modalities == 1 else 'ies'} "
                    f"and a label: {line.strip()!r}",
                    path,
                )
            if not 2 <= len(parts) <= MAX_MODALITIES + 1:
                raise ValueError(
                    f"{path}, line {number}: expected 2 columns (modality1 label), 3 "
                    f"(modality1 modality2 label) or up to {MAX_MODALITIES + 1} (N modalities and "
                    f"a label), got {len(parts)}: {line.strip()!r}"
                )
            if columns is None:
                columns = len(parts)
            elif len(parts) != columns:
                raise ValueError(
                    f"{path}, line {number}: has {len(parts)} columns but the lines before it have "
                    f"{columns}; every line of a list has the same modalities"
                )
            resolved = tuple(
                os.path.normpath(os.path.join(folder, os.path.expanduser(p))) for p in parts
            )
            entries.append((number, resolved))
    if not entries:
        raise ValueError(f"{path}: the list is empty")
    return entries


def read_list_file(path: str, modalities: Optional[int] = None) -> List[Tuple[str, ...]]:
    """Reads a list file of pairs, triplets or longer lines (N modalities and a label).

    Args:
        path: The list file; relative image paths are taken from its folder.
        modalities: When given, the number of images every line must have before its label.

    Returns:
        One tuple of absolute paths per sample: (modality1, label), (modality1, modality2,
        label) or (modality1, ..., modalityN, label).

    Raises:
        FileNotFoundError: When the list file does not exist.
        ValueError: On a line with the wrong number of columns (`InputFileError` when it does
            not fit `modalities`), lines of different lengths, or an empty list; the message
            names the file and line.
    """
    return [paths for _, paths in _list_entries(path, modalities)]


def _open_image(path: str, where: str) -> Image.Image:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{where}: image {path!r} does not exist")
    try:
        image = Image.open(path)
        image.load()
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise ValueError(f"{where}: cannot read image {path!r}: {error}") from None
    return image


def load_image_bgr(path: str, where: str = "") -> np.ndarray:
    """Reads an image as OpenCV's `imread(path, IMREAD_COLOR)` does: HxWx3 uint8 BGR.

    Gray images are replicated into 3 channels, alpha is dropped, 16-bit images keep their high
    byte, and the EXIF orientation is applied.
    """
    image = ImageOps.exif_transpose(_open_image(path, where or path))
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        # OpenCV scales 16-bit data to 8 bits by dropping the low byte.
        gray = (np.clip(np.asarray(image, dtype=np.int64), 0, 65535) >> 8).astype(np.uint8)
        rgb = np.repeat(gray[..., np.newaxis], 3, axis=2)
    elif image.mode == "F":
        raise ValueError(
            f"{where or path}: image {path!r} is floating point (mode F), expected 8 or 16 bits"
        )
    else:
        rgb = np.asarray(image.convert("RGB"))
    return np.ascontiguousarray(rgb[..., ::-1])


def load_label(path: str, where: str = "") -> np.ndarray:
    """Reads a label image of class ids: HxW uint8.

    Raises:
        ValueError: When the image is not single-channel (gray or palette) or holds ids > 255.
    """
    where = where or path
    image = _open_image(path, where)
    if image.mode not in _LABEL_MODES:
        raise ValueError(
            f"{where}: label {path!r} must be a single-channel image of class ids "
            f"(gray or palette), got mode {image.mode} with {len(image.getbands())} channels"
        )
    ids = np.asarray(image)  # palette images give their indices, not colours
    if ids.dtype != np.uint8:
        if ids.size and (ids.min() < 0 or ids.max() > 255):
            raise ValueError(f"{where}: label {path!r} has ids outside 0..255 (max {ids.max()})")
        ids = ids.astype(np.uint8)
    return np.ascontiguousarray(ids)


def _load_sample(
    list_path: str, number: int, paths: Tuple[str, ...], encoding: str, num_classes: Optional[int]
) -> Tuple[bytes, Tuple[int, int], np.ndarray]:
    """Loads, checks and serializes one sample; returns (record, (h, w), class histogram)."""
    where = f"{list_path}, line {number}"
    images = [load_image_bgr(p, where) for p in paths[:-1]]
    label = load_label(paths[-1], where)
    for p, image in zip(paths[:-1], images):
        if image.shape[:2] != label.shape:
            raise ValueError(
                f"{where}: image {p!r} is {image.shape[0]}x{image.shape[1]} but label "
                f"{paths[-1]!r} is {label.shape[0]}x{label.shape[1]}"
            )
    histogram = np.bincount(label.ravel(), minlength=256)
    if num_classes is not None and label.size and int(label.max()) >= num_classes:
        raise ValueError(
            f"{where}: label {paths[-1]!r} has class id {int(label.max())} but --num_classes is "
            f"{num_classes} (ids must be 0..{num_classes - 1})"
        )
    modality2 = images[1] if len(images) >= 2 else None
    record = schema.encode_example(images[0], label, modality2, encoding=encoding,
                                   extra_modalities=images[2:])
    return record, label.shape, histogram


def _shard_names(output: str, shards: int) -> List[str]:
    """`out.tfrecords` -> `out-00000-of-00004.tfrecords`, ... (one name when shards == 1)."""
    if shards == 1:
        return [output]
    stem, ext = os.path.splitext(output)
    return [f"{stem}-{i:05d}-of-{shards:05d}{ext}" for i in range(shards)]


def _loaded(
    list_path: str,
    entries: Sequence[Tuple[int, Tuple[str, ...]]],
    encoding: str,
    num_classes: Optional[int],
    num_workers: int,
) -> Iterator[Tuple[bytes, Tuple[int, int], np.ndarray]]:
    """Yields loaded samples in list order, decoding up to `num_workers` at a time."""
    if num_workers == 1:
        for number, paths in entries:
            yield _load_sample(list_path, number, paths, encoding, num_classes)
        return
    # Threads suffice: Pillow and zlib release the GIL while decoding and compressing.
    with concurrent.futures.ThreadPoolExecutor(max_workers=num_workers) as pool:
        pending: List[concurrent.futures.Future] = []
        window = 4 * num_workers  # bounds memory while keeping the workers busy
        try:
            for number, paths in entries:
                pending.append(
                    pool.submit(_load_sample, list_path, number, paths, encoding, num_classes)
                )
                if len(pending) >= window:
                    yield pending.pop(0).result()
            while pending:
                yield pending.pop(0).result()
        finally:
            # On an error, do not decode the rest of the list before the error is reported.
            for future in pending:
                future.cancel()


def write_tfrecords(
    list_file: str,
    output: str,
    encoding: str = "raw",
    shards: int = 1,
    num_workers: int = 1,
    num_classes: Optional[int] = None,
    progress: Optional[ProgressCallback] = None,
    modalities: Optional[int] = None,
) -> Dict[str, object]:
    """Converts a list file of pairs, triplets or N + 1 columns to TFRecords.

    Args:
        list_file: List of `modality1 [modality2 ... modalityN] label` lines.
        output: Record file to write; with `shards` > 1, `out-0000i-of-0000N.ext` files beside it.
        encoding: "raw" (the original format) or "png" (PNG bytes, much smaller).
        shards: Number of files; samples are split into contiguous runs so that reading the
            shards in order gives the list order.
        num_workers: Images decoded (and encoded) in parallel.
        num_classes: When given, a label id >= num_classes is an error.
        progress: Called as progress(done, total) after each sample.
        modalities: When given, the images every line must have (a line with fewer columns is
            an `InputFileError` naming the file and line).

    Returns:
        A summary: `samples`, `modalities`, `encoding`, `files` (written paths), `image_sizes`
        ({(h, w): count}), `class_histogram` ({id: pixels}), `bytes_written`, and
        `other_shards`: shard files beside the output that this run did not write (left from an
        earlier run with another shard count). An existing output file is replaced.

    Raises:
        FileNotFoundError: On a missing list file or image.
        ValueError: On a bad line, unreadable image, size mismatch, a label that is not
            single-channel, an id >= num_classes, an empty list or bad arguments. The message
            names the list file and line. No output file is left behind.
    """
    list_file = os.fspath(list_file)
    output = os.fspath(output)
    if encoding not in schema.ENCODINGS:
        raise ValueError(f"encoding must be one of {schema.ENCODINGS}, got {encoding!r}")
    for name, value in (("shards", shards), ("num_workers", num_workers)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if num_classes is not None and (
        isinstance(num_classes, bool)
        or not isinstance(num_classes, int)
        or not 1 <= num_classes <= 256
    ):
        raise ValueError(f"num_classes must be an integer in 1..256, got {num_classes!r}")
    if modalities is not None and (
        isinstance(modalities, bool) or not isinstance(modalities, int)
        or not 1 <= modalities <= MAX_MODALITIES
    ):
        raise ValueError(f"modalities must be an integer in 1..{MAX_MODALITIES}, got {modalities!r}")
    entries = _list_entries(list_file, modalities)
    if shards > len(entries):
        raise ValueError(f"{list_file}: {len(entries)} samples cannot fill {shards} shards")

    names = _shard_names(output, shards)
    histogram = np.zeros(256, np.int64)
    sizes: Dict[Tuple[int, int], int] = {}
    # Every shard is written under a temporary name and all are renamed once the last sample is
    # in: a failure leaves no shard, new or half-written, and earlier outputs as they were.
    with contextlib.ExitStack() as outputs:
        temporaries = [outputs.enter_context(atomic_path(name)) for name in names]
        # Sample i goes to shard i * shards // n: contiguous runs of near-equal length.
        total = len(entries)
        writer = None
        current = -1
        try:
            loaded = _loaded(list_file, entries, encoding, num_classes, num_workers)
            with contextlib.closing(loaded) as samples:
                for index, (record, size, counts) in enumerate(samples):
                    shard = index * shards // total
                    if shard != current:
                        if writer is not None:
                            writer.close()
                        writer = tf.io.TFRecordWriter(temporaries[shard])
                        current = shard
                    writer.write(record)
                    histogram += counts
                    sizes[size] = sizes.get(size, 0) + 1
                    if progress is not None:
                        progress(index + 1, total)
        finally:
            if writer is not None:
                writer.close()

    present = np.nonzero(histogram)[0]
    # Shards of an earlier run with another --shards stay beside the new ones and a glob such as
    # `train-*.tfrecords` would read them too: report them.
    stem, ext = os.path.splitext(output)
    digits = "[0-9]" * 5
    pattern = f"{glob.escape(stem)}-{digits}-of-{digits}{glob.escape(ext)}"
    others = sorted(set(glob.glob(pattern)) - set(names))
    return {
        "samples": len(entries),
        "modalities": len(entries[0][1]) - 1,
        "encoding": encoding,
        "files": names,
        "image_sizes": dict(sorted(sizes.items())),
        "class_histogram": {int(i): int(histogram[i]) for i in present},
        "bytes_written": sum(os.path.getsize(name) for name in names),
        "other_shards": others,
    }


def format_summary(summary: Dict[str, object]) -> str:
    """Renders a `write_tfrecords` summary as a few human-readable lines."""
    sizes = ", ".join(f"{h}x{w} ({n})" for (h, w), n in summary["image_sizes"].items())
    histogram = summary["class_histogram"]
    pixels = sum(histogram.values()) or 1
    classes = ", ".join(f"{c}: {n} ({100.0 * n / pixels:.1f}%)" for c, n in histogram.items())
    files = summary["files"]
    if summary["modalities"] > 2:
        kind = f"fusion of {summary['modalities']} (modality1 .. modality{summary['modalities']}, label)"
    elif summary["modalities"] == 2:
        kind = "fusion (modality1, modality2, label)"
    else:
        kind = "unimodal (modality1, label)"
    lines = [
        f"samples:         {summary['samples']} {kind}",
        f"image size:      {sizes}",
        f"class histogram: {classes}",
        f"written:         {summary['bytes_written']:,} bytes, {summary['encoding']} encoding, "
        f"{len(files)} file{'s' if len(files) > 1 else ''}: "
        f"{files[0]}{' ...' if len(files) > 1 else ''}",
    ]
    if summary.get("other_shards"):
        lines.append(
            f"warning:         {len(summary['other_shards'])} shard file(s) of an earlier run "
            f"lie beside these, e.g. {summary['other_shards'][0]}; delete them before reading "
            "with a glob"
        )
    return "\n".join(lines)
