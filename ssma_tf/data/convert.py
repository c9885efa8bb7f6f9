"""List files of image paths (or samples in memory) to TFRecords in the original SSMA / AdapNet++ schema.

`write_examples` writes samples that are already arrays, without image files.

A list file has one sample per line: `modality1 modality2 label` (fusion), `modality1 ...
modalityN label` (fusion of N modalities: N + 1 columns) or `modality1 label` (unimodal),
separated by spaces, or by tabs or with quotes for paths that hold spaces (`ssma_tf.lists`);
relative paths are relative to the list file's folder. A list of images to be used without labels
(`unlabeled_data`, `target_data`) has the N image columns only and is converted with
`labeled=False` (`ssma-convert --unlabeled`): its records have no `label` feature. Images are read with Pillow and stored as
OpenCV's `imread` would give them (BGR, 3 channels), labels as single-channel uint8 ids, so the
records equal those of the original tools (except for 1-bit and 16-bit labels, whose ids are
kept: OpenCV made 1-bit ids 0 and 255 and kept a 16-bit label's high byte; docs/data.md).
Labels must be stored losslessly (PNG, BMP, TIFF, ...): JPEG changes class ids along every edge.

The list is checked (columns, every file present, duplicate lines) before TensorFlow is loaded,
and the outputs before any image is read. Records are written under temporary names and renamed
only once every sample has been written, so an error never leaves a partial file that looks
complete.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import errno
import glob
import numbers
import os
import re
from typing import Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from ssma_tf.constants import IGNORE_ID, MAX_MODALITIES
from ssma_tf.errors import UserInputError, first_line
from ssma_tf.files import atomic_path, atomic_paths, check_output
from ssma_tf.lists import (
    ListFileError, MissingFileError, comment_hint, missing_path_detail, more_columns_hint, read_lines,
    refuse_listed_outputs, spaces_hint,
)

# TensorFlow (and the schema, which needs it) is imported where records are written: checking a
# list and reading images do not pay for its start-up.

ProgressCallback = Callable[[int, int], None]

# Pillow modes that hold class ids in a single channel ("P" holds palette indices, "1" is a
# bilevel image: ids 0 and 1).
_LABEL_MODES = ("L", "P", "1", "I", "I;16", "I;16B", "I;16L", "I;16N")
# Pillow formats that compress with loss: their class ids change along every edge.
_LOSSY_FORMATS = {"JPEG": "JPEG", "MPO": "JPEG", "WEBP": "WebP", "JPEG2000": "JPEG 2000"}
# TIFF can hold JPEG-compressed strips.
_LOSSY_TIFF_COMPRESSIONS = ("jpeg", "tiff_jpeg", "webp")


class ImageFileError(UserInputError):
    """An image or label cannot be used: unreadable, of the wrong kind or size; names the file."""


@dataclasses.dataclass
class ListCheck:
    """What `check_list` found in a list file.

    Attributes:
        entries: (line number, absolute paths) per sample, in list order.
        duplicates: (line number, number of the earlier line it repeats) per repeated sample.
        labeled: whether each line ends with a label (False: images only).
    """

    entries: List[Tuple[int, Tuple[str, ...]]]
    duplicates: List[Tuple[int, int]]
    labeled: bool = True

    @property
    def modalities(self) -> int:
        """1 for `modality1 label` lines, 2 for `modality1 modality2 label` (or for `modality1
        modality2` lines without labels)."""
        return len(self.entries[0][1]) - (1 if self.labeled else 0)


def check_list(
    path: str, *, check_files: bool = True, modalities: Optional[int] = None, labeled: bool = True
) -> ListCheck:
    """Reads and checks a list file (N images and a label per line), without reading any image.

    Args:
        path: the list file; relative image paths are taken from its folder.
        check_files: also check that every listed file exists.
        modalities: when given, the images every line must have before its label.
        labeled: False for a list of images without labels (N columns a line).

    Returns:
        A `ListCheck`: the samples and the lines that repeat an earlier one (they are converted
        again; reported, as a repeat is more often a slip than meant as oversampling).

    Raises:
        MissingFileError: the list file, or a file it names, does not exist.
        ListFileError: a line with the wrong number of columns (or not `modalities` + 1), lines of
            different lengths, an empty list, a file that is not UTF-8; the message names the file
            and line.
    """
    path = os.fspath(path)
    if modalities is not None and (
        isinstance(modalities, bool) or not isinstance(modalities, int)
        or not 1 <= modalities <= MAX_MODALITIES
    ):
        raise ValueError(f"modalities must be an integer in 1..{MAX_MODALITIES}, got {modalities!r}")
    folder = os.path.dirname(os.path.abspath(path))
    entries = []
    columns = None
    line_of: Dict[Tuple[str, ...], int] = {}
    duplicates = []
    label_columns = 1 if labeled else 0
    and_label = " and a label" if labeled else " (no label: an unlabeled list)"
    for number, parts in read_lines(path):
        if modalities is not None and len(parts) != modalities + label_columns:
            few = "fewer" if len(parts) < modalities + label_columns else "more"
            # Words of a path cut at its spaces are columns too: said when one of them names no file
            # but the path they make does (not for a fusion list given --modalities 1).
            missing = [i for i, p in enumerate(parts) if not os.path.isfile(os.path.join(folder, os.path.expanduser(p)))]
            hint = comment_hint(parts) or (spaces_hint(parts, missing[0], folder) if missing else "")
            raise ListFileError(
                f"{path}, line {number}: has {len(parts)} columns, {few} than the "
                f"{modalities + label_columns} of {modalities} modalit{'y' if modalities == 1 else 'ies'}"
                f"{and_label}{hint}: {parts}", path,
            )
        least, most = 1 + label_columns, MAX_MODALITIES + label_columns
        if not least <= len(parts) <= most:
            hint = comment_hint(parts) or (more_columns_hint(parts, folder) if len(parts) > most else "")
            expected = (
                f"expected 2 columns (modality1 label), 3 (modality1 modality2 label) or up to {most} "
                "(N modalities and a label)" if labeled else
                f"expected 1 column (modality1), 2 (modality1 modality2) or up to {most} (N modalities; "
                "an unlabeled list has no label column)"
            )
            raise ListFileError(f"{path}, line {number}: {expected}, got {len(parts)}{hint}: {parts}", path)
        if columns is None:
            columns = len(parts)
        elif len(parts) != columns:
            hint = comment_hint(parts) or (more_columns_hint(parts, folder) if len(parts) > columns else "")
            raise ListFileError(
                f"{path}, line {number}: has {len(parts)} columns but the lines before it have "
                f"{columns}{hint}; every line of a list has the same modalities", path,
            )
        resolved = tuple(os.path.normpath(os.path.join(folder, os.path.expanduser(p))) for p in parts)
        if check_files:
            for index, p in enumerate(resolved):
                if not os.path.isfile(p):
                    raise MissingFileError(
                        f"{path}, line {number}: image '{p}' {missing_path_detail(p, parts, index, folder)}", path)
        if resolved in line_of:
            duplicates.append((number, line_of[resolved]))
        else:
            line_of[resolved] = number
        entries.append((number, resolved))
    if not entries:
        raise ListFileError(f"{path}: the list is empty", path)
    return ListCheck(entries, duplicates, labeled)


def _list_entries(path: str, modalities: Optional[int] = None) -> List[Tuple[int, Tuple[str, ...]]]:
    """Reads a list file into (line number, resolved paths) entries (`check_list` without files)."""
    return check_list(path, check_files=False, modalities=modalities).entries


def read_list_file(path: str, modalities: Optional[int] = None) -> List[Tuple[str, ...]]:
    """Reads a list file of pairs, triplets or longer lines (N modalities and a label).

    Args:
        path: The list file; relative image paths are taken from its folder.
        modalities: When given, the number of images every line must have before its label.

    Returns:
        One tuple of absolute paths per sample: (modality1, label), (modality1, modality2,
        label) or (modality1, ..., modalityN, label).

    Raises:
        MissingFileError: When the list file does not exist (a `FileNotFoundError`).
        ListFileError: On a line with the wrong number of columns, pairs mixed with triplets,
            an empty list or a file that is not UTF-8; the message names the file and line.
    """
    return [paths for _, paths in _list_entries(path, modalities)]


def _equal_channels(image: Image.Image) -> bool:
    """Whether an RGB (or RGBA) image's three colour channels are equal everywhere (a grey image
    saved as RGB)."""
    pixels = np.asarray(image)[..., :3]
    return bool(np.array_equal(pixels[..., 0], pixels[..., 1]) and np.array_equal(pixels[..., 0], pixels[..., 2]))


def _open_image(path: str, where: str) -> Image.Image:
    if not os.path.isfile(path):
        raise MissingFileError(f"{where}: image {path!r} does not exist", path)
    try:
        image = Image.open(path)
        image.load()
    except UnidentifiedImageError:
        # Pillow's own words name the path a second time ("cannot identify image file '...'").
        raise ImageFileError(f"{where}: cannot read image {path!r}: not an image format Pillow knows (PNG, "
                             "JPEG, TIFF, ...)", path) from None
    except Image.DecompressionBombError as error:
        # Before: a traceback (neither an OSError nor a ValueError), naming no file.
        raise ImageFileError(f"{where}: cannot read image {path!r}: {error}; tile or resize it", path) from None
    except (OSError, ValueError) as error:
        raise ImageFileError(f"{where}: cannot read image {path!r}: {error}", path) from None
    return image


# A grey image with at most this many distinct values looks like class ids: the released datasets
# have up to 38 classes (SUN RGB-D) and 255 for ignored pixels, while a grey depth or NIR image
# holds a continuum of values.
LABEL_LIKE_VALUES = 64


def looks_like_label(path: str, num_classes: Optional[int] = None) -> bool:
    """Whether an image file holds class ids: a palette image, or 8-bit grey with few values.

    A palette image is judged by its header; a grey one is decoded, since a grey depth map is
    single-channel too but has many distinct values (more than `LABEL_LIKE_VALUES`, or than
    `num_classes` where a model of more classes reads it). The callers warn, never refuse.
    """
    try:
        with Image.open(path) as image:
            if image.mode == "P":
                return True
            if image.mode != "L":
                return False
            return np.unique(np.asarray(image)).size <= max(LABEL_LIKE_VALUES, num_classes or 0)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return False  # reading it names the problem


def cannot_be_label(path: str, num_classes: Optional[int] = None) -> bool:
    """Whether an image file cannot hold a label's class ids: a colour image (not grey saved as
    RGB), or 8-bit grey with more distinct values than labels have (`looks_like_label`: a grey
    depth map). Any other single-channel image (palette, 1-bit, 16- or 32-bit) can; so can a
    file that cannot be read (reading it as a label names the problem). `num_classes`: as for
    `looks_like_label` (before: a label of a 100-class model, with 80 ids in it, was no label).
    """
    try:
        with Image.open(path) as image:
            if image.mode == "L":
                return not looks_like_label(path, num_classes)
            if image.mode in _LABEL_MODES or image.mode in ("LA", "La", "PA"):
                # Grey or palette with alpha: the label's own error says to drop the alpha channel
                # (before: first warned of as "a colour image, or ... a depth map"; helper 365).
                return False
            return not (image.mode in ("RGB", "RGBA", "RGBa") and _equal_channels(image))
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return False


_SIXTEEN_BIT_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N")


def sixteen_bit_warning(path: str) -> Optional[str]:
    """A warning when an image read as a modality is 16-bit (raw depth, 16-bit NIR), else None.

    Images are read as OpenCV's `imread(IMREAD_COLOR)` did for the original tools, which keeps
    the high byte of 16 bits: raw depth in millimetres (0..10000) becomes 0..39, nearly black.
    Only the header is read.
    """
    try:
        with Image.open(path) as image:
            mode = image.mode
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None  # reading it names the problem
    if mode not in _SIXTEEN_BIT_MODES:
        return None
    return (f"{path} is a 16-bit image (mode {mode}): as in the original tools only its high byte is kept "
            "(values / 256), so raw depth in millimetres becomes nearly black. Turn raw depth or NIR into "
            "3-channel images first (ssma-prepare jet, hha, ndvi, ...)")


def load_image_bgr(path: str, where: str = "") -> np.ndarray:
    """Reads an image as OpenCV's `imread(path, IMREAD_COLOR)` does: HxWx3 uint8 BGR.

    Gray images are replicated into 3 channels, alpha is dropped, 16-bit images keep their high
    byte, and the EXIF orientation is applied.
    """
    return _read_bgr(path, where)[0]


# What each EXIF orientation but 1 (as stored) does to an image as it is read.
EXIF_TURNS = {2: "mirrored", 3: "turned 180 degrees", 4: "flipped upside down", 5: "transposed",
              6: "turned 90 degrees", 7: "transversed", 8: "turned 270 degrees"}


def exif_orientation(image: Image.Image) -> int:
    """The EXIF orientation an opened image is read with (1: as stored), as `exif_transpose` reads
    it: a value outside 1-8 is none."""
    orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
    return orientation if orientation in EXIF_TURNS else 1


def check_image_mode(image: Image.Image, path: str, where: str = "") -> None:
    """An input image's mode must be one the readers take: 8 or 16 bits, not floating point
    (`load_image_bgr` reads it, and `ssma-predict` checks it before the model runs).

    Raises:
        ImageFileError: naming `where` and the file.
    """
    if image.mode == "F":
        raise ImageFileError(f"{where or path}: image {path!r} is floating point (mode F), expected 8 or 16 bits")


def _read_bgr(path: str, where: str = "") -> Tuple[np.ndarray, bool, int]:
    """`load_image_bgr`, whether the image was 16-bit (only its high byte kept), and the EXIF
    orientation it was turned by (1: none)."""
    stored = _open_image(path, where or path)
    check_image_mode(stored, path, where)
    orientation = exif_orientation(stored)
    image = ImageOps.exif_transpose(stored)
    sixteen_bit = image.mode in _SIXTEEN_BIT_MODES
    if sixteen_bit:
        # OpenCV scales 16-bit data to 8 bits by dropping the low byte.
        gray = (np.clip(np.asarray(image, dtype=np.int64), 0, 65535) >> 8).astype(np.uint8)
        rgb = np.repeat(gray[..., np.newaxis], 3, axis=2)
    else:
        rgb = np.asarray(image.convert("RGB"))
    return np.ascontiguousarray(rgb[..., ::-1]), sixteen_bit, orientation


def unknown_label_ids(histogram: np.ndarray, num_classes: Optional[int]) -> List[int]:
    """The ids of a 256-bin label histogram that are neither a class nor the ignore id (255).

    Training counts both as void; only the first kind hints at a `num_classes` too small.
    """
    if num_classes is None:
        return []
    ids = np.flatnonzero(histogram[num_classes:]) + num_classes
    return [int(i) for i in ids if i != IGNORE_ID]


# More ids past the class count than this in one label: edges of a lossy file, not classes.
JPEG_LIKE_IDS = 4


def unknown_ids_text(unknown: Sequence[int]) -> str:
    """`unknown_label_ids` for an error: "id 7", or "ids 4, 5, 6, 7, 8, ... 254 (21 ids)" with,
    for many of them, the two usual causes (the largest alone hid JPEG's stray ids)."""
    if len(unknown) == 1:
        return f"id {unknown[0]}"
    shown = ", ".join(str(i) for i in unknown[:5]) + (f", ... {unknown[-1]}" if len(unknown) > 5 else "")
    many = ("; many ids past the classes: is the class count too small for these labels, or was a label once "
            "saved as JPEG (stray ids along its edges)?" if len(unknown) > JPEG_LIKE_IDS else "")
    return f"ids {shown} ({len(unknown)} ids{many})"


def class_pixels(histogram: np.ndarray, num_classes: Optional[int]) -> int:
    """The pixels of a 256-bin label histogram whose id is a class: 1 .. num_classes - 1 (1 .. 254
    without a class count). 0 is void, 255 ignored and ids >= num_classes count as void."""
    top = IGNORE_ID if num_classes is None else min(num_classes, IGNORE_ID)
    return int(np.sum(histogram[1:top]))


def class_id_range(num_classes: Optional[int]) -> str:
    """The ids `class_pixels` counts, as text: `1..C-1` (`1` for two classes), or `1..254` without
    a class count."""
    top = IGNORE_ID - 1 if num_classes is None else num_classes - 1
    return "1" if top == 1 else f"1..{top}"


def no_class_pixels_message(num_classes: Optional[int], evaluating: bool = False) -> str:
    """What to say of labels in which `class_pixels` is 0: every pixel void or ignored.
    `evaluating`: of test labels, which nothing trains on (before: "training on these labels
    learns nothing"; helper 232)."""
    classes = class_id_range(num_classes)
    beyond = " and ids >= num_classes void" if num_classes is not None else ""
    then = ("every metric leaves them out (0 or undefined)" if evaluating
            else "training on these labels learns nothing (a loss of 0)")
    return (f"no label pixel has a class id ({classes}): 0 is void, {IGNORE_ID} ignored{beyond}, so {then}. A mask "
            "of background and object (e.g. saved as 0 and 255) needs the ids 1 and 2, and num_classes 3")


# What a label error advises for images without labels, as `ssma-convert` takes them.
CONVERT_UNLABELED = "a list of images without labels (rgb depth) converts with --unlabeled"


def load_label(path: str, where: str = "", unlabeled: str = CONVERT_UNLABELED) -> np.ndarray:
    """Reads a label image of class ids: HxW uint8. `unlabeled`: what the errors advise for images
    without labels, in the words of the command reading them.

    Raises:
        ImageFileError: When the file is stored with loss (JPEG, WebP: ids change along every
            edge), is not single-channel (gray or palette) or holds ids > 255.
    """
    return _load_label_and_colours(path, where, unlabeled)[0]


# The colour (r, g, b) each palette index a label uses stands for, by index.
PaletteColours = Dict[int, Tuple[int, ...]]


def check_label_image(image: Image.Image, path: str, where: str = "", unlabeled: str = CONVERT_UNLABELED) -> None:
    """The checks of a label image its header allows: stored losslessly, and one channel of
    integer class ids (grey or palette); `load_label` makes them, and `ssma-predict` before the
    model runs. `unlabeled`: as `load_label`'s.

    Raises:
        ImageFileError: naming `where`, the file and what to do.
    """
    where = where or path
    lossy = _LOSSY_FORMATS.get(image.format or "")
    if lossy is None and image.format == "TIFF":
        compression = str(image.info.get("compression", "")).lower()
        lossy = "JPEG-compressed TIFF" if compression in _LOSSY_TIFF_COMPRESSIONS else None
    if lossy is not None:
        raise ImageFileError(
            f"{where}: label {path!r} is a {lossy} file, which stores class ids with loss (they "
            "change along every edge); save labels losslessly, e.g. as PNG", path,
        )
    if image.mode not in _LABEL_MODES:
        # Grey or palette with an alpha channel is not a colour label (which the hint said it was).
        if image.mode in ("LA", "La", "PA"):
            hint = "save it without the alpha channel; which ids transparent pixels hold is yours to say"
        elif image.mode == "RGB" and _equal_channels(image):
            hint = "its three channels are equal: a grey label saved as RGB; save it as one channel"
        elif image.mode in ("RGBA", "RGBa") and _equal_channels(image):
            # Before: told to map colours to ids (helper 365).
            hint = ("its three colour channels are equal: a grey label saved as RGBA; save it as one channel, "
                    "without the alpha channel")
        elif image.mode == "F":
            # Before: told to turn colours into ids, which a float image does not hold.
            hint = "one channel of floating-point values; save the class ids as 8-bit integers (mode L)"
        else:
            hint = ("colour labels must be turned into class ids first: docs/your_dataset.md, step 1, maps "
                    f"colours to ids with your palette file; {unlabeled}")
        raise ImageFileError(
            f"{where}: label {path!r} must be a single-channel image of integer class ids (gray or palette), got "
            f"mode {image.mode} with {len(image.getbands())} channel{'s' * (len(image.getbands()) != 1)} ({hint})",
            path,
        )


def _load_label_and_colours(path: str, where: str = "",
                            unlabeled: str = CONVERT_UNLABELED) -> Tuple[np.ndarray, Optional[PaletteColours]]:
    """`load_label`, with the colours of the palette indices the label uses for a palette image
    (None for any other): the ids are its indices, which one file's palette may give other
    colours than another's (`palette_clash`)."""
    where = where or path
    image = _open_image(path, where)
    check_label_image(image, path, where, unlabeled)
    ids = np.asarray(image)  # palette images give their indices, not colours
    if ids.dtype != np.uint8:
        if ids.size and (ids.min() < 0 or ids.max() > 255):
            # Most often a raw 16-bit depth or NIR image in the label column (helper 190: named
            # without a cause, where 8-bit depth there gets the --unlabeled hint).
            raise ImageFileError(f"{where}: label {path!r} has ids outside 0..255 (min {ids.min()}, max {ids.max()}): "
                                 f"is it a {ids.dtype.itemsize * 8}-bit depth or NIR image? "
                                 f"{unlabeled[0].upper()}{unlabeled[1:]}", path)
        ids = ids.astype(np.uint8)
    colours = None
    if image.mode == "P" and image.palette is not None:
        mode, table = image.palette.getdata()
        size = len(mode)  # "RGB" or "RGBA": bytes per entry
        # Python ints: NumPy's uint8 ids wrapped (id 255 × 3 bytes), giving ids of 86 and on the
        # wrong colours and id 255 none (a traceback in the palette checks; helper 90).
        used = [int(i) for i in np.unique(ids)]
        colours = {i: tuple(table[i * size:i * size + 3]) for i in used if (i + 1) * size <= len(table)}
    return np.ascontiguousarray(ids), colours


def palette_clash(seen: Dict[int, Tuple[Tuple[int, ...], str]], other: Tuple[str, PaletteColours]) -> Optional[str]:
    """What to say when a palette label (where, colours) gives an index another colour than the
    labels before it (without `warning:`), or None.

    `seen` maps each index met so far to its colour and where it was first met; `other`'s new
    indices join it. (Compared with the first label alone, two later labels that disagree on an
    index the first does not use passed.)
    """
    where, colours = other
    for index in sorted(colours):
        if index not in seen:
            seen[index] = (colours[index], where)
            continue
        colour, first = seen[index]
        if colour != colours[index]:
            def rgb(colour):
                return "(" + ", ".join(str(c) for c in colour) + ")"
            return (f"the palette labels do not share one palette: id {index} is {rgb(colour)} in "
                    f"{first} but {rgb(colours[index])} in {where}. A palette image's ids are its indices, "
                    "so one colour may be two classes here (files saved with their own palettes, e.g. by an image "
                    "editor or quantize()); map colours to ids with your palette file first (docs/your_dataset.md, "
                    "step 1)")
    return None


def grey_palette_note(where: str, colours: PaletteColours) -> Optional[str]:
    """What to say of a palette label whose used colours are all grey but not grey levels equal to
    their indices (without `warning:`), or None.

    Its ids are its indices, as for any palette label; the original tools (OpenCV's grey reading)
    wrote the grey levels a viewer shows, so the two disagree without a word.
    """
    grey = all(len(set(colour)) == 1 for colour in colours.values())
    differ = [(index, colour[0]) for index, colour in sorted(colours.items()) if colour[0] != index]
    if not colours or not grey or not differ:
        return None
    shown = ", ".join(f"index {index} is grey {level}" for index, level in differ[:3])
    return (f"{where} is a palette image of grey colours ({shown}): its class ids are the palette indices, "
            "as for every palette label, while the original tools and image viewers read the grey levels. If the "
            "grey levels are the ids, save the labels as plain grey (mode L) images")


def _load_sample(
    list_path: str, number: int, paths: Tuple[str, ...], encoding: str, num_classes: Optional[int],
    labeled: bool = True,
) -> Tuple[bytes, Tuple[int, int], np.ndarray, List[int], Optional[PaletteColours], List[Tuple[int, int]]]:
    """Loads, checks and serializes one sample; returns (record, (h, w), class histogram, the
    modalities (1-based) whose image was 16-bit, the palette label's colours or None, and
    (modality, EXIF orientation) of each image turned as read where the sample's other files
    are not turned alike).

    Without a label (`labeled` False) the histogram is all zeros and the record has no label.
    """
    from ssma_tf.data import schema  # TensorFlow: only once records are written

    where = f"{list_path}, line {number}"
    image_paths = paths[:-1] if labeled else paths
    read = [_read_bgr(p, where) for p in image_paths]
    images = [image for image, _, _ in read]
    sixteen_bit = [index for index, (_, deep, _) in enumerate(read, start=1) if deep]
    label, colours = _load_label_and_colours(paths[-1], where) if labeled else (None, None)
    # A camera's EXIF orientation turns its image as read (as OpenCV's), never a label: where the
    # sample's files are not all turned alike, the turned ones may not line up with the others,
    # also when the size stays (orientations 2-4, and 5-8 of a square image).
    orientations = [orientation for _, _, orientation in read] + ([1] if labeled else [])
    turned = ([(index, orientation) for index, (_, _, orientation) in enumerate(read, start=1) if orientation != 1]
              if len(set(orientations)) > 1 else [])
    # Every image has the label's size (modality1's in a list without labels).
    if label is not None:
        size, reference = label.shape, f"label {paths[-1]!r}"
    else:
        size, reference = images[0].shape[:2], f"modality1 {image_paths[0]!r}"
    for p, image in zip(image_paths, images):
        if image.shape[:2] != size:
            with Image.open(p) as stored:
                stored_size = (stored.height, stored.width)
            # A camera's EXIF orientation turns the image as read (as OpenCV does), not its label.
            turned = (f"; the file stores it {stored_size[0]}x{stored_size[1]}, turned by its EXIF orientation as "
                      "images are read (labels are not): save the image turned, or the label to match"
                      if stored_size != image.shape[:2] else "")
            raise ImageFileError(
                f"{where}: image {p!r} is {image.shape[0]}x{image.shape[1]} but {reference} is {size[0]}x{size[1]} "
                f"(height x width){turned}"
            )
    if label is None:
        histogram = np.zeros(256, np.int64)
    else:
        histogram = np.bincount(label.ravel(), minlength=256)
        unknown = unknown_label_ids(histogram, num_classes)
        if unknown:
            raise ImageFileError(
                f"{where}: label {paths[-1]!r} has class {unknown_ids_text(unknown)} but --num_classes is "
                f"{num_classes} (ids must be 0..{num_classes - 1}, or {IGNORE_ID} for ignored pixels)"
            )
    modality2 = images[1] if len(images) >= 2 else None
    record = schema.encode_example(images[0], label, modality2, encoding=encoding,
                                   extra_modalities=images[2:])
    return record, size, histogram, sixteen_bit, colours, turned


def shard_names(output: str, shards: int) -> List[str]:
    """`out.tfrecords` -> `out-00000-of-00004.tfrecords`, ... (one name when shards == 1)."""
    if shards == 1:
        return [output]
    stem, ext = os.path.splitext(output)
    return [f"{stem}-{i:05d}-of-{shards:05d}{ext}" for i in range(shards)]


_SHARD = re.compile(r"^(?P<stem>.*)-\d{5}-of-(?P<count>\d{5})(?P<ext>\.[^./]*)?$")


def shard_set(path: str) -> Tuple[str, str]:
    """The other way round from `shard_names`: (the output name the shards were written for, the
    set): `train-00001-of-00004.tfrecords` is of ('train.tfrecords', 'of-00004'), an unsharded
    `train.tfrecords` of ('train.tfrecords', '')."""
    match = _SHARD.match(path)
    if match is None:
        return path, ""
    return match["stem"] + (match["ext"] or ""), f"of-{match['count']}"


def _loaded(
    list_path: str,
    entries: Sequence[Tuple[int, Tuple[str, ...]]],
    encoding: str,
    num_classes: Optional[int],
    num_workers: int,
    labeled: bool = True,
) -> Iterator[Tuple[bytes, Tuple[int, int], np.ndarray, List[int], Optional[PaletteColours]]]:
    """Yields loaded samples in list order, decoding up to `num_workers` at a time."""
    if num_workers == 1:
        for number, paths in entries:
            yield _load_sample(list_path, number, paths, encoding, num_classes, labeled)
        return
    # Threads suffice: Pillow and zlib release the GIL while decoding and compressing.
    with concurrent.futures.ThreadPoolExecutor(max_workers=num_workers) as pool:
        pending: List[concurrent.futures.Future] = []
        window = 4 * num_workers  # bounds memory while keeping the workers busy
        try:
            for number, paths in entries:
                pending.append(
                    pool.submit(_load_sample, list_path, number, paths, encoding, num_classes, labeled)
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
    checked: Optional[ListCheck] = None,
    modalities: Optional[int] = None,
    labeled: bool = True,
    overwrite: Optional[bool] = None,
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
        checked: `check_list(list_file)`'s result when the caller has it already.
        modalities: When given, the images every line must have (a line with another count is
            a `ListFileError` naming the file and line).
        labeled: False for a list of images without labels (N columns a line): the records
            have no `label` feature, for `unlabeled_data` or `target_data`.
        overwrite: True: existing record files are replaced, as is one that appears while the
            records are written; False: an existing one is an `OutputPathError`, and so is one
            that appears meanwhile (another command writing the same records); None: the files
            there when the call starts are replaced, one that appears meanwhile is an error. Where
            one appeared, it is kept and none of this call's files is put in place.

    Returns:
        A summary: `samples`, `modalities`, `labeled`, `encoding`, `files` (written paths), `image_sizes`
        ({(h, w): count}), `class_histogram` ({id: pixels}), `num_classes` (as given, or None),
        `bytes_written`,
        `duplicates` ((line, earlier line) per line that repeats an earlier one; converted
        again), `sixteen_bit` ((line, modality, path) per 16-bit image, of which only the high
        byte was kept), `palette_clash` (None, or what to say of two palette labels that give one
        id two colours), `grey_palette` (None, or `grey_palette_note` of the first palette label
        of grey colours), `turned` ((line, modality, path, EXIF orientation) per image turned as
        read where its line's other files are not: `turned_images_warning`) and `other_shards`:
        shard files (or the unsharded file) beside the output that this run did not write (left
        from an earlier run with another shard count). An existing output file is replaced
        (unless `overwrite` is False).

    Raises:
        MissingFileError: On a missing list file or image (a `FileNotFoundError`).
        ListFileError: On a bad line, an empty list or a list that is not UTF-8.
        ImageFileError: On an unreadable image, a size mismatch, a lossy or multi-channel label
            or an id >= num_classes. The message names the list file and line.
        OutputPathError: An output that cannot be written (checked before any image is read),
            or one that appeared while the records were written and is not to be replaced.
        ValueError: On bad arguments. No output file is left behind.
    """
    import tensorflow as tf

    from ssma_tf.data import schema

    list_file = os.fspath(list_file)
    output = os.fspath(output)
    if encoding not in schema.ENCODINGS:
        raise ValueError(f"encoding must be one of {schema.ENCODINGS}, got {encoding!r}")
    for name, value in (("shards", shards), ("num_workers", num_workers)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if num_classes is not None and (
        isinstance(num_classes, bool)
        or not isinstance(num_classes, numbers.Integral)
        or not 2 <= num_classes <= 256
    ):
        raise ValueError(f"num_classes must be an integer in 2..256 (void and one class at least), got {num_classes!r}")
    # NumPy's integers are taken (refused before), as Python's for the workers and the summary.
    shards, num_workers = int(shards), int(num_workers)
    num_classes = None if num_classes is None else int(num_classes)
    if num_classes is not None and not labeled:
        raise ValueError("num_classes checks label ids, but labeled=False writes records without labels")
    if checked is None:
        checked = check_list(list_file, modalities=modalities, labeled=labeled)
    elif checked.labeled != labeled:
        raise ValueError(f"the list was checked with labeled={checked.labeled}, not {labeled}")
    entries = checked.entries
    if shards > len(entries):
        raise ListFileError(f"{list_file}: {len(entries)} samples cannot fill {shards} shards", list_file)

    names = shard_names(output, shards)
    for name in names:  # before any image is read: a result is never computed only to be lost
        check_output(name, what="record file", overwrite=overwrite is not False)
    # Which files this call may replace, as they are now: one that appears while the records are
    # written is another command's (before: replaced by the last to finish, both reporting success;
    # helper 366).
    replaced = [bool(overwrite) or (overwrite is None and os.path.exists(name)) for name in names]
    # Before: with --overwrite the list was replaced by the records (helper 147), and an image
    # named through a linked folder was too (its path was compared unresolved).
    refuse_listed_outputs(names, list_file, [p for _, paths in entries for p in paths])
    histogram = np.zeros(256, np.int64)
    sizes: Dict[Tuple[int, int], int] = {}
    sixteen_bit: List[Tuple[int, int, str]] = []
    turned: List[Tuple[int, int, str, int]] = []
    palette_seen: Dict[int, Tuple[Tuple[int, ...], str]] = {}
    clash: Optional[str] = None
    grey_palette: Optional[str] = None
    # Every shard is written under a temporary name and all are renamed once the last sample is
    # in: a failure leaves no shard, new or half-written, and earlier outputs as they were.
    with atomic_paths(names, overwrite=replaced) as temporaries:
        # Sample i goes to shard i * shards // n: contiguous runs of near-equal length.
        total = len(entries)
        writer = None
        current = -1
        try:
            loaded = _loaded(list_file, entries, encoding, num_classes, num_workers, labeled)
            with contextlib.closing(loaded) as samples:
                for index, (record, size, counts, deep, colours, turns) in enumerate(samples):
                    shard = index * shards // total
                    if shard != current:
                        if writer is not None:
                            writer.close()
                        current = shard
                        writer = tf.io.TFRecordWriter(temporaries[shard])
                    writer.write(record)
                    histogram += counts
                    sizes[size] = sizes.get(size, 0) + 1
                    number, paths = entries[index]
                    sixteen_bit.extend((number, modality, paths[modality - 1]) for modality in deep)
                    turned.extend((number, modality, paths[modality - 1], orientation)
                                  for modality, orientation in turns)
                    if colours is not None and clash is None:
                        clash = palette_clash(palette_seen, (f"line {number} ({paths[-1]})", colours))
                    if colours is not None and grey_palette is None:
                        grey_palette = grey_palette_note(f"line {number}: {paths[-1]}", colours)
                    if progress is not None:
                        progress(index + 1, total)
            if writer is not None:
                writer, last = None, writer
                last.close()  # flushes: a full disk can show here too
        except tf.errors.OpError as error:  # the disk is full, the folder went away, ...
            raise _write_failed(error, names[max(current, 0)]) from None
        finally:
            if writer is not None:
                with contextlib.suppress(tf.errors.OpError):
                    writer.close()

    present = np.nonzero(histogram)[0]
    # Shards of an earlier run with another --shards stay beside the new ones and a glob such as
    # `train-*.tfrecords` would read them too: report them.
    stem, ext = os.path.splitext(output)
    digits = "[0-9]" * 5
    pattern = f"{glob.escape(stem)}-{digits}-of-{digits}{glob.escape(ext)}"
    others = sorted(set(glob.glob(pattern)) - set(names))
    if output not in names and os.path.isfile(output):
        others.append(output)  # the unsharded file of an earlier run, beside these shards (helper 154)
    return {
        "samples": len(entries),
        "modalities": checked.modalities,
        "labeled": labeled,
        "encoding": encoding,
        "files": names,
        "image_sizes": dict(sorted(sizes.items())),
        "class_histogram": {int(i): int(histogram[i]) for i in present},
        "num_classes": num_classes,
        "bytes_written": sum(os.path.getsize(name) for name in names),
        "duplicates": list(checked.duplicates),
        "other_shards": others,
        "sixteen_bit": sixteen_bit,
        "turned": turned,
        "palette_clash": clash,
        "grey_palette": grey_palette,
    }


def turned_images_warning(turned: Sequence[Tuple[int, int, str, int]], labeled: bool = True) -> Optional[str]:
    """The warning for images that their EXIF orientation turned as read while their label (or
    the sample's other images) were not (`write_tfrecords`'s `turned`), without `warning:`;
    None when there are none."""
    if not turned:
        return None
    shown = ", ".join(f"line {line}: {path} ({EXIF_TURNS[orientation]})" for line, _, path, orientation in turned[:3])
    more = f" and {len(turned) - 3} more" if len(turned) > 3 else ""
    others = "their label is" if labeled else "the other images of their line are"
    return (f"{len(turned)} image(s) are turned by their EXIF orientation as they are read, as OpenCV and the "
            f"original tools read them, but {others} not ({shown}{more}): if the label was drawn on the image as "
            "stored, their pixels do not line up. If they do not, save the images turned (PIL's "
            "ImageOps.exif_transpose) and the labels to match, and convert again")


def duplicates_warning(duplicates: Sequence[Tuple[int, int]]) -> str:
    """The warning naming the lines that repeat an earlier line of a list (without `warning:`)."""
    shown = ", ".join(f"line {line} repeats line {first}" for line, first in duplicates[:3])
    more = f" and {len(duplicates) - 3} more" if len(duplicates) > 3 else ""
    return (f"{len(duplicates)} duplicate line(s), converted again: {shown}{more}; "
            "delete them unless the repeat is meant")


def write_examples(
    path: Union[str, os.PathLike], samples: Iterable[Mapping[str, Optional[np.ndarray]]], encoding: str = "raw"
) -> int:
    """Writes samples held in memory (arrays, not image files) to one record file.

    The counterpart of `write_tfrecords` for data that is already decoded (from a sensor log, a
    simulator, a test); `decode_example` gives the same mapping back.

    Args:
        path: the record file; an existing one is replaced once every sample is written.
        samples: mappings of `modality1` (HxWx3 uint8 BGR), `modality2` .. `modalityN` (the
            same, without gaps) and `label` (HxW uint8 class ids; absent or None for an image
            used without labels).
        encoding: "raw" (the original raw bytes) or "png".

    Returns:
        The number of records written.

    Raises:
        ValueError: a sample with an unknown key, a gap in its modalities or arrays of the wrong
            shape, dtype or size; the message gives the sample's index. No file is left behind.
        OSError: a failed write (a full disk), naming `path`.
    """
    import tensorflow as tf

    from ssma_tf.data import schema

    path = os.fspath(path)
    if encoding not in schema.ENCODINGS:
        raise ValueError(f"encoding must be one of {schema.ENCODINGS}, got {encoding!r}")
    count = 0
    with atomic_path(path) as temporary:
        try:
            with tf.io.TFRecordWriter(temporary) as writer:
                for sample in samples:
                    writer.write(_encode_mapping(sample, count, encoding))
                    count += 1
        except tf.errors.OpError as error:
            raise _write_failed(error, path) from None
        if count == 0:
            raise ValueError(f"no samples to write to {path}")
    return count


def _encode_mapping(sample: Mapping[str, Optional[np.ndarray]], index: int, encoding: str) -> bytes:
    """One sample of `write_examples` as a serialized record; ValueError naming the sample."""
    from ssma_tf.data import schema

    if not isinstance(sample, Mapping):
        raise ValueError(f"sample {index}: expected a mapping of modality1 .. modalityN and label, "
                         f"got {type(sample).__name__}")
    images = []
    while schema.modality_key(len(images) + 1) in sample:
        images.append(sample[schema.modality_key(len(images) + 1)])
    unknown = sorted(set(sample) - {schema.modality_key(i) for i in range(1, len(images) + 1)} - {schema.LABEL})
    if unknown:
        raise ValueError(f"sample {index}: unknown key(s) {unknown} (expected modality1, modality2, ... numbered "
                         "from 1 without gaps, and label)")
    if not images:
        raise ValueError(f"sample {index}: no modality1")
    images = [np.asarray(image) for image in images]
    label = sample.get(schema.LABEL)
    label = None if label is None else np.asarray(label)
    try:
        return schema.encode_example(images[0], label, images[1] if len(images) > 1 else None,
                                     encoding=encoding, extra_modalities=images[2:])
    except ValueError as error:
        raise ValueError(f"sample {index}: {error}") from None


def _write_failed(error: Exception, path: str) -> OSError:
    """An `OSError` naming the record file (not its temporary) for a failed TensorFlow write."""
    text = first_line(error)
    reason = text.rsplit("; ", 1)[-1]  # TensorFlow writes "<temporary path>; <reason>"
    code = errno.ENOSPC if "No space left" in reason else errno.EIO
    return OSError(code, f"cannot write records: {reason}; nothing was written", path)


def format_summary(summary: Dict[str, object]) -> str:
    """Renders a `write_tfrecords` summary as a few human-readable lines."""
    sizes = ", ".join(f"{h}x{w} ({n})" for (h, w), n in summary["image_sizes"].items())
    histogram = summary["class_histogram"]
    pixels = sum(histogram.values()) or 1
    classes = ", ".join(f"{c}: {n} ({100.0 * n / pixels:.1f}%)" for c, n in histogram.items())
    files = summary["files"]
    labeled = summary.get("labeled", True)
    label = ", label" if labeled else ", no label"
    if summary["modalities"] > 2:
        kind = f"fusion of {summary['modalities']} (modality1 .. modality{summary['modalities']}{label})"
    elif summary["modalities"] == 2:
        kind = f"fusion (modality1, modality2{label})"
    else:
        kind = f"unimodal (modality1{label})"
    lines = [
        f"samples:         {summary['samples']} {kind}",
        f"image size:      {sizes} (height x width)",
        f"class histogram: {classes}" if labeled else "class histogram: none (unlabeled records)",
        f"written:         {summary['bytes_written']:,} bytes, {summary['encoding']} encoding, "
        f"{len(files)} file{'s' if len(files) > 1 else ''}: "
        f"{files[0]}{' ...' if len(files) > 1 else ''}",
    ]
    counts = np.zeros(256, np.int64)
    counts[list(histogram)] = list(histogram.values())
    num_classes = summary.get("num_classes")
    if labeled and not class_pixels(counts, num_classes):
        lines.append(f"warning:         {no_class_pixels_message(num_classes)}")
    elif labeled and counts[0] and counts[IGNORE_ID]:
        # Many datasets make 0 a class and 255 the only ignored id: here 0 is void, never learned.
        # Both void on purpose (void pixels 0, an ignore colour 255, as docs/your_dataset.md maps
        # them) is fine: the note says what is read, and what to do only if 0 is a class.
        lines.append(f"note:            ids 0 and {IGNORE_ID} both occur: 0 is void here (neither learned nor scored) and "
                     f"{IGNORE_ID} ignored, as meant if both mark unlabeled pixels; if 0 is one of your classes (as in "
                     f"Cityscapes trainIds), move every id but {IGNORE_ID} up by one (docs/your_dataset.md)")
    if summary.get("duplicates"):
        lines.append(f"warning:         {duplicates_warning(summary['duplicates'])}")
    if summary.get("other_shards"):
        lines.append(
            f"warning:         {len(summary['other_shards'])} file(s) of an earlier run "
            f"lie beside these, e.g. {summary['other_shards'][0]}; delete them before reading "
            "with a glob"
        )
    return "\n".join(lines)
