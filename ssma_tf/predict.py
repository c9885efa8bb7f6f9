"""Predicting image files with a `Predictor` and writing pictures of the predictions.

`predict_files` writes, per sample:

    <output>/class_ids/<name>.png        uint8 class ids
    <output>/color/<name>.png            palette colours
    <output>/overlay/<name>.png          colours blended over modality 1 (void left unpainted)
    <output>/attention/<block>/<name>.png   mean gate of SSMA block latent, skip2, skip1 (jet:
                                         red = features let through, blue = suppressed)
    <output>/label_color/<name>.png      the ground truth in palette colours, when given

Samples come from one image (pair), a list file or two folders paired by name (`collect_samples`).
Images are read as the TFRecord converter reads them (`ssma_tf.data.convert.load_image_bgr`: grey
images repeated to three channels, 16-bit images reduced to their high byte), so a prediction
sees the same values as training and evaluation did.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any, Callable, List, Optional, Sequence, TextIO, Tuple

import numpy as np
import tensorflow as tf
from PIL import Image

from ssma_tf import visualize
from ssma_tf.inference import (
    INPUT_MODALITIES, PathLike, Prediction, PredictionError, Predictor, default_palette,
)

# Class-id PNGs are 8-bit.
MAX_CLASSES = 256


# ---------------------------------------------------------------------------------------------
# Samples: pairs of files, list files, folders.


@dataclasses.dataclass(frozen=True)
class Sample:
    """One sample to predict.

    Attributes:
        name: output file name without extension; may hold sub-folders ("scene0/0").
        modality1: the modality-1 image (the image overlays are drawn on).
        modality2: the modality-2 image, or None.
        label: ground-truth class ids, or None.
    """

    name: str
    modality1: Optional[str]
    modality2: Optional[str] = None
    label: Optional[str] = None

    def describe(self) -> str:
        """The sample's files, for error messages."""
        return " + ".join(p for p in (self.modality1, self.modality2) if p)


def sample_from_files(modality1: Optional[PathLike], modality2: Optional[PathLike] = None) -> Sample:
    """One sample from one image (pair); named after the first file given."""
    paths = [None if p is None else os.fspath(p) for p in (modality1, modality2)]
    first = next((p for p in paths if p is not None), None)
    if first is None:
        raise ValueError("give modality1, modality2 or both")
    return Sample(_stem(first), paths[0], paths[1])


def samples_from_list(path: PathLike, fusion: bool) -> List[Sample]:
    """Reads a list file of samples to predict (relative paths are from the list's folder).

    Lines are `modality1 modality2 [label]` for SSMA; for AdapNet++ `image`, `image label` or a
    fusion line `modality1 modality2 label`. Empty lines and lines starting with '#' are skipped.
    Outputs are named by the modality-1 path relative to the folder all of them share.

    Raises:
        PredictionError: the file is unreadable or empty, or a line has a wrong column count
            (the message names the file and the line).
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise PredictionError(f"cannot read the list file {path}: {error}") from None
    allowed = (2, 3) if fusion else (1, 2, 3)
    rows = []
    for number, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if len(fields) not in allowed:
            expected = "modality1 modality2 [label]" if fusion else "image [label] or modality1 modality2 label"
            raise PredictionError(f"{path}, line {number}: expected {expected}, got {len(fields)} columns")
        rows.append([os.path.normpath(os.path.join(folder, os.path.expanduser(f))) for f in fields])
    if not rows:
        raise PredictionError(f"{path} lists no samples")
    if fusion:
        entries = [(r[0], r[1], r[2] if len(r) == 3 else None) for r in rows]
    else:
        entries = [
            (r[0], None, None) if len(r) == 1 else (r[0], None, r[1]) if len(r) == 2 else (r[0], r[1], r[2])
            for r in rows
        ]
    return _named(entries)


def samples_from_folders(
    modality1_dir: Optional[PathLike],
    modality2_dir: Optional[PathLike] = None,
    *,
    modality1_suffix: str = "",
    modality2_suffix: str = "",
    recursive: bool = False,
) -> List[Sample]:
    """Pairs the images of two folders by name (the name without extension and suffix).

    `aachen_000000_000019_leftImg8bit.png` and `aachen_000000_000019_disparity.png` pair up with
    the suffixes `_leftImg8bit` and `_disparity`. One folder alone gives unimodal samples.

    Raises:
        PredictionError: a folder is missing or empty, or a file has no partner.
    """
    from ssma_tf.modalities.batch import index_folder
    from ssma_tf.modalities.io import IMAGE_EXTENSIONS, InputFileError

    folders = [(modality1_dir, modality1_suffix), (modality2_dir, modality2_suffix)]
    try:
        indexes = [
            None if d is None else index_folder(d, IMAGE_EXTENSIONS, suffix, recursive)
            for d, suffix in folders
        ]
    except InputFileError as error:
        raise PredictionError(str(error)) from None
    if indexes[0] is None and indexes[1] is None:
        raise ValueError("give modality1_dir, modality2_dir or both")
    if indexes[0] is not None and indexes[1] is not None:
        for this, other, other_dir in ((0, 1, modality2_dir), (1, 0, modality1_dir)):
            unmatched = sorted(set(indexes[this]) - set(indexes[other]))
            if unmatched:
                key = unmatched[0]
                raise PredictionError(
                    f"{indexes[this][key]} has no partner named '{key}' in {other_dir}"
                    + (f" ({len(unmatched)} files without one)" if len(unmatched) > 1 else "")
                )
    keys = sorted(next(index for index in indexes if index is not None))
    return [
        Sample(
            key,
            None if indexes[0] is None else str(indexes[0][key]),
            None if indexes[1] is None else str(indexes[1][key]),
        )
        for key in keys
    ]


def collect_samples(
    fusion: bool,
    *,
    list_file: Optional[PathLike] = None,
    modality1: Optional[PathLike] = None,
    modality2: Optional[PathLike] = None,
    modality1_suffix: str = "",
    modality2_suffix: str = "",
    recursive: bool = False,
) -> List[Sample]:
    """The samples named by a list file, by one image (pair), or by folders paired by name.

    Args:
        fusion: the model takes two modalities (decides how list lines are read).
        list_file: a list file (then `modality1`/`modality2` must be None).
        modality1, modality2: image files, or folders (both folders when both are given).
        modality1_suffix, modality2_suffix, recursive: see `samples_from_folders`.

    Raises:
        PredictionError: a missing file or folder, a file beside a folder, a bad list.
        ValueError: nothing or too much given.
    """
    if list_file is not None:
        if modality1 is not None or modality2 is not None:
            raise ValueError("give a list file or images/folders, not both")
        return samples_from_list(list_file, fusion)
    given = [(f"modality{i}", os.fspath(p)) for i, p in ((1, modality1), (2, modality2)) if p is not None]
    if not given:
        raise ValueError("give a list file, modality1, modality2 or both")
    folders = [os.path.isdir(path) for _, path in given]
    if not any(folders):
        for what, path in given:
            if not os.path.isfile(path):
                raise PredictionError(f"{what} {path}: no such file or folder")
        return [sample_from_files(modality1, modality2)]
    if not all(folders):
        files = [f"{what} {path}" for (what, path), folder in zip(given, folders) if not folder]
        raise PredictionError(f"{files[0]} is not a folder, but the other input is one")
    return samples_from_folders(
        modality1, modality2, modality1_suffix=modality1_suffix, modality2_suffix=modality2_suffix,
        recursive=recursive,
    )


def _stem(path: str) -> str:
    name = os.path.basename(path)
    return name[: -len(os.path.splitext(name)[1]) or None]


def _named(entries: Sequence[Tuple[str, Optional[str], Optional[str]]]) -> List[Sample]:
    """Names samples by their first image relative to the folder all first images share."""
    firsts = [e[0] for e in entries]
    root = os.path.commonpath([os.path.dirname(p) for p in firsts])
    samples, seen = [], {}
    for modality1, modality2, label in entries:
        name = os.path.splitext(os.path.relpath(modality1, root))[0].replace(os.sep, "/")
        if name in seen:
            raise PredictionError(f"{seen[name]} is listed twice; its outputs would overwrite each other")
        seen[name] = modality1
        samples.append(Sample(name, modality1, modality2, label))
    return samples


# ---------------------------------------------------------------------------------------------
# Predicting files.


@dataclasses.dataclass
class PredictionSummary:
    """What `predict_files` did.

    Attributes:
        samples: number of samples predicted.
        seconds: wall time.
        files: paths of the files written, in order.
    """

    samples: int
    seconds: float
    files: List[str]


def predict_files(
    predictor: Predictor,
    samples: Sequence[Sample],
    output_dir: PathLike,
    *,
    palette: Optional[Any] = None,
    original_size: bool = False,
    attention: bool = False,
    input_modality: str = "modality1",
    alpha: float = 0.5,
    batch_size: int = 1,
    progress: Optional[TextIO] = None,
    compress_level: int = 6,
) -> PredictionSummary:
    """Predicts image files and writes the pictures listed in the module docstring.

    Args:
        predictor: the `Predictor` (its size and interpolation apply).
        samples: from `sample_from_files`, `samples_from_list` or `samples_from_folders`.
        output_dir: folder for the outputs (created; existing pictures are replaced).
        palette: (C, 3) RGB colours, e.g. `DatasetInfo.palette_array`; None: `default_palette`.
        original_size: write every picture at its input's size (class ids resized with nearest
            neighbour) instead of the model size.
        attention: SSMA: also write the mean gate of each SSMA block.
        input_modality: AdapNet++ on samples with both modalities: which one the network reads
            ("modality2" for an expert of the second modality); a sample with one image feeds
            that one. Overlays use modality 1 when the sample has it.
        alpha: weight of the colours in the overlay.
        batch_size: samples per network call; only consecutive samples of one size share a call.
        progress: stream for progress lines (e.g. `sys.stderr`), None for silence.
        compress_level: PNG zlib level 0..9.

    Returns:
        A `PredictionSummary`.

    Raises:
        PredictionError: a sample cannot be read or predicted (the message names its files).
        ValueError: bad options (palette size, attention for AdapNet++, ...).
    """
    if input_modality not in INPUT_MODALITIES:
        raise ValueError(f"input_modality must be one of {INPUT_MODALITIES}, got {input_modality!r}")
    if attention and not predictor.fusion:
        raise ValueError("attention maps need an SSMA model")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    num_classes = predictor.num_classes
    if num_classes > MAX_CLASSES:
        raise ValueError(f"class-id PNGs hold at most {MAX_CLASSES} classes, the model has {num_classes}")
    colours = default_palette(num_classes) if palette is None else np.asarray(palette)
    if colours.ndim != 2 or len(colours) != num_classes:
        raise ValueError(
            f"the palette has {len(colours)} colours but the model predicts {num_classes} classes "
            "(void included); pick the dataset the model was trained on"
        )
    output_dir = os.fspath(output_dir)
    start = time.monotonic()
    reporter = _progress(len(samples), progress)
    written: List[str] = []
    done = 0
    for group in _groups(samples, batch_size):
        loaded = [_load(sample, predictor.fusion, input_modality) for sample in group]
        for run in _same_size_runs(loaded):
            # Images are read in BGR; the predictor takes its own channel order.
            order = slice(None) if predictor.channel_order == "bgr" else slice(None, None, -1)
            batches = [
                np.stack([item.network_inputs[i][..., order] for item in run])
                for i in range(len(run[0].network_inputs))
            ]
            try:
                prediction = predictor.predict(
                    batches[0],
                    batches[1] if predictor.fusion else None,
                    original_size=original_size,
                    probabilities=False,
                    gates=attention,
                )
            except (ValueError, tf.errors.OpError) as error:
                names = ", ".join(item.sample.describe() for item in run)
                raise PredictionError(f"predicting {names} failed: {error}") from error
            for index, item in enumerate(run):
                try:
                    written += _write_outputs(
                        item, prediction, index, output_dir, colours, alpha, attention, compress_level
                    )
                except (ValueError, OSError) as error:
                    raise PredictionError(f"{item.sample.describe()}: {error}") from error
            done += len(run)
            if reporter is not None:
                reporter.update(done)
    return PredictionSummary(samples=len(samples), seconds=time.monotonic() - start, files=written)


@dataclasses.dataclass
class _Loaded:
    """A sample's images in memory: BGR uint8 network inputs, RGB overlay base, label."""

    sample: Sample
    network_inputs: List[np.ndarray]
    overlay_base: np.ndarray
    label: Optional[np.ndarray]


def _load(sample: Sample, fusion: bool, input_modality: str) -> _Loaded:
    from ssma_tf.data.convert import load_image_bgr, load_label

    def read(path: Optional[str], what: str, reader: Callable) -> Optional[np.ndarray]:
        if path is None:
            return None
        try:
            return reader(path, f"{what} of sample '{sample.name}'")
        except (OSError, ValueError) as error:
            raise PredictionError(f"cannot read {what} {path}: {error}") from None

    images = [read(sample.modality1, "modality1", load_image_bgr), read(sample.modality2, "modality2", load_image_bgr)]
    label = read(sample.label, "label", load_label)
    if fusion:
        missing = [f"modality{i}" for i, image in enumerate(images, start=1) if image is None]
        if missing:
            raise PredictionError(f"sample '{sample.name}': SSMA needs {' and '.join(missing)} too")
        inputs = images
    elif images[0] is not None and images[1] is not None:
        inputs = [images[0] if input_modality == "modality1" else images[1]]
    else:
        inputs = [images[0] if images[0] is not None else images[1]]
    present = [(p, image) for p, image in zip((sample.modality1, sample.modality2), images) if image is not None]
    if label is not None:
        present.append((sample.label, label))
    shapes = {image.shape[:2] for _, image in present}
    if len(shapes) > 1:
        sizes = ", ".join(f"{p} is {image.shape[0]}x{image.shape[1]}" for p, image in present)
        raise PredictionError(f"the images of sample '{sample.name}' differ in size: {sizes}")
    base = images[0] if images[0] is not None else images[1]
    return _Loaded(sample, inputs, np.ascontiguousarray(base[..., ::-1]), label)


def _groups(samples: Sequence[Sample], size: int):
    for start in range(0, len(samples), size):
        yield samples[start:start + size]


def _same_size_runs(loaded: Sequence[_Loaded]) -> List[List[_Loaded]]:
    runs: List[List[_Loaded]] = []
    for item in loaded:
        if runs and runs[-1][0].network_inputs[0].shape == item.network_inputs[0].shape:
            runs[-1].append(item)
        else:
            runs.append([item])
    return runs


def _write_outputs(
    item: _Loaded,
    prediction: Prediction,
    index: int,
    output_dir: str,
    palette: np.ndarray,
    alpha: float,
    attention: bool,
    compress_level: int,
) -> List[str]:
    ids = prediction.class_ids[index]
    height, width = ids.shape
    colour = visualize.colorize(ids, palette)
    base = item.overlay_base
    if base.shape[:2] != (height, width):
        # Shown at the model size, as the network saw it.
        base = np.asarray(Image.fromarray(base).resize((width, height), Image.Resampling.BILINEAR))
    pictures = {
        "class_ids": ids.astype(np.uint8),
        "color": colour,
        "overlay": visualize.overlay(base, colour, alpha, where=ids != 0),
    }
    if attention:
        for name, gate in prediction.gates.items():
            pictures[f"attention/{name}"] = visualize.gate_to_image(gate[index], size=(height, width))
    if item.label is not None:
        label = item.label
        if label.shape != (height, width):
            label = np.asarray(Image.fromarray(label).resize((width, height), Image.Resampling.NEAREST))
        # Ids the model does not know count as void, as in evaluation.
        label = np.where(label < len(palette), label, 0)
        pictures["label_color"] = visualize.colorize(label, palette)
    paths = []
    for folder, picture in pictures.items():
        path = os.path.join(output_dir, *folder.split("/"), *item.sample.name.split("/")) + ".png"
        visualize.save_png(path, picture, compress_level=compress_level)
        paths.append(path)
    return paths


def _progress(total: int, stream: Optional[TextIO]):
    if stream is None:
        return None
    from ssma_tf.modalities.batch import Progress

    return Progress(total, stream=stream, prefix="predicted ")
