"""Predicting image files with a `Predictor` and writing pictures of the predictions.

`predict_files` writes, per sample:

    <output>/class_ids/<name>.png        uint8 class ids
    <output>/color/<name>.png            palette colours
    <output>/overlay/<name>.png          colours blended over modality 1 (void left unpainted)
    <output>/attention/<block>/<name>.png   mean gate of SSMA block latent, skip2, skip1 (jet:
                                         red = features let through, blue = suppressed)
    <output>/label_color/<name>.png      the ground truth in palette colours, when given
    <output>/compare_color/<name>.png    with `compare`: the compared model's prediction
    <output>/improvement/<name>.png      with `compare`: the improvement/error map (Figure 18):
                                         red where this model is wrong, green where the compared
                                         model is wrong and this one right

Samples come from one image (pair), a list file or two folders paired by name
(`ssma_tf.inference.samples.collect_samples`).
Images are read as the TFRecord converter reads them (`ssma_tf.data.convert.load_image_bgr`: grey
images repeated to three channels, 16-bit images reduced to their high byte), so a prediction
sees the same values as training and evaluation did.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, TextIO

import numpy as np
import tensorflow as tf
from PIL import Image

from ssma_tf import visualize
from ssma_tf.data.augment import resize_label
from ssma_tf.data.convert import load_image_bgr, load_label
from ssma_tf.inference.predictor import Prediction, PredictionError, Predictor
from ssma_tf.inference.samples import PREDICT_UNLABELED, PathLike, Sample
from ssma_tf.constants import IGNORE_ID, INPUT_MODALITIES, SSMA_FUSION
from ssma_tf.progress import Progress

# Class-id PNGs are 8-bit.
MAX_CLASSES = 256
# The folders `predict_files` writes under its output (with `--attention` and `--compare`): never
# inputs of a later prediction that reads a folder holding the output (`collect_samples`).
PICTURE_FOLDERS = ("class_ids", "color", "overlay", "label_color", "attention", "compare_color", "improvement")


# ---------------------------------------------------------------------------------------------
# Predicting files.


@dataclasses.dataclass
class PredictionSummary:
    """What `predict_files` did.

    Attributes:
        samples: number of samples predicted.
        seconds: wall time.
        files: paths of the files written, in order.
        improvement: with a compared model, the pixel counts of the improvement/error maps
            summed over the samples (`ssma_tf.visualize.improvement_map`); else None.
    """

    samples: int
    seconds: float
    files: List[str]
    improvement: Optional[Dict[str, int]] = None


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
    compare: Optional[Predictor] = None,
    compare_input_modality: str = "modality1",
) -> PredictionSummary:
    """Predicts image files and writes the pictures listed in the module docstring.

    Args:
        predictor: the `Predictor` (its size and interpolation apply).
        samples: from `sample_from_files`, `samples_from_list` or `samples_from_folders`.
        output_dir: folder for the outputs (created; existing pictures are replaced).
        palette: (C, 3) RGB colours, e.g. `DatasetInfo.palette_array`; None:
            `ssma_tf.visualize.default_palette`.
        original_size: write every picture at its input's size (the probabilities resized
            bilinearly, then each pixel's class: `at_input_size`) instead of the model size.
        attention: SSMA: also write the mean gate of each SSMA block.
        input_modality: AdapNet++ on samples with both modalities: which one the network reads
            ("modality2" for an expert of the second modality); a sample with one image feeds
            that one. Overlays use modality 1 when the sample has it.
        alpha: weight of the colours in the overlay.
        batch_size: samples per network call; only consecutive samples of one size share a call.
        progress: stream for progress lines (e.g. `sys.stderr`), None for silence.
        compress_level: PNG zlib level 0..9.
        compare: a second model's `Predictor` (same classes, same size): also write its
            prediction and the improvement/error map of this model against it (every sample
            needs a label).
        compare_input_modality: as `input_modality`, for a unimodal compared model.

    Returns:
        A `PredictionSummary` (with `compare`, `improvement` sums the map's pixel counts).

    Raises:
        PredictionError: a sample cannot be read or predicted, or has no label to compare
            against (the message names its files); bad options (palette size, attention for
            AdapNet++, ...).
    """
    if input_modality not in INPUT_MODALITIES:
        raise PredictionError(f"input_modality must be one of {INPUT_MODALITIES}, got {input_modality!r}")
    if attention and not predictor.has_gates:
        if not predictor.fusion:
            raise PredictionError("attention maps need an SSMA model")
        if predictor.fusion_method not in (None, SSMA_FUSION):
            raise PredictionError(f"attention maps need an SSMA model; this is the fusion baseline "
                                  f"'{predictor.fusion_method}', which has no SSMA blocks")
        raise PredictionError("attention maps need the TensorFlow model: an exported SSMA has no attention gates")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise PredictionError(f"batch_size must be a positive integer, got {batch_size!r}")
    num_classes = predictor.num_classes
    if num_classes > MAX_CLASSES:
        raise PredictionError(f"class-id PNGs hold at most {MAX_CLASSES} classes, the model has {num_classes}")
    colours = visualize.default_palette(num_classes) if palette is None else np.asarray(palette)
    if palette is not None:
        # Before the model runs (before: a float or out-of-range palette was found by the first
        # picture, after a batch was predicted, and blamed on that sample's image; helper 369).
        try:
            colours = visualize.as_palette(colours)
        except ValueError as error:
            raise PredictionError(f"palette: {error}") from None
    if len(colours) != num_classes:
        raise PredictionError(
            f"the palette has {len(colours)} colours but the model predicts {num_classes} classes "
            "(void included); pick the dataset the model was trained on"
        )
    if compare is not None:
        if compare.num_classes != num_classes:
            raise PredictionError(
                f"the compared model predicts {compare.num_classes} classes, this one {num_classes}: "
                "an improvement map needs models of one dataset"
            )
        unlabelled = [sample.describe() for sample in samples if sample.label is None]
        if unlabelled:
            raise PredictionError(f"an improvement map needs a label for every sample; {unlabelled[0]} has none")
    output_dir = os.fspath(output_dir)
    start = time.monotonic()
    improvement: Dict[str, int] = {}
    reporter = _progress(len(samples), progress)
    written: List[str] = []
    done = 0
    try:
        for group in _groups(samples, batch_size):
            loaded = [_load(sample, predictor.fusion, input_modality, predictor.num_modalities) for sample in group]
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
                        *(batches[1:] if predictor.fusion else [None]),
                        original_size=original_size,
                        probabilities=False,
                        gates=attention,
                    )
                except (ValueError, tf.errors.OpError) as error:
                    names = ", ".join(item.sample.describe() for item in run)
                    raise PredictionError(f"predicting {names} failed: {error}") from error
                reference = None
                if compare is not None:
                    reference = _predict_run(compare, [_load(item.sample, compare.fusion, compare_input_modality,
                                                             compare.num_modalities)
                                                       for item in run], original_size)
                for index, item in enumerate(run):
                    try:
                        written += _write_outputs(
                            item, prediction, index, output_dir, colours, alpha, attention, compress_level
                        )
                        if reference is not None:
                            written += _write_comparison(item, prediction.class_ids[index],
                                                         reference.class_ids[index], output_dir, colours,
                                                         compress_level, improvement)
                    except ValueError as error:
                        raise PredictionError(f"{item.sample.describe()}: {error}") from error
                    # An OSError here is an output that cannot be written (a full disk): it names the
                    # file, and the commands end with it as with any write (before: blamed on the
                    # sample's input images, with the status of bad input).
                done += len(run)
                if reporter is not None:
                    reporter.update(done)
    except BaseException:
        if reporter is not None:
            reporter.clear()  # the error's line on a line of its own (before: glued onto the bar; helper 242)
        raise
    return PredictionSummary(samples=len(samples), seconds=time.monotonic() - start, files=written,
                             improvement=improvement or None)


def _predict_run(predictor: Predictor, run: Sequence["_Loaded"], original_size: bool) -> Prediction:
    """Class ids of a run of same-size samples with another model (the `compare` one)."""
    order = slice(None) if predictor.channel_order == "bgr" else slice(None, None, -1)
    batches = [np.stack([item.network_inputs[i][..., order] for item in run])
               for i in range(len(run[0].network_inputs))]
    try:
        return predictor.predict(batches[0], *(batches[1:] if predictor.fusion else [None]),
                                 original_size=original_size, probabilities=False)
    except (ValueError, tf.errors.OpError) as error:
        names = ", ".join(item.sample.describe() for item in run)
        raise PredictionError(f"predicting {names} with the compared model failed: {error}") from error


def _write_comparison(item: "_Loaded", ids: np.ndarray, reference: np.ndarray, output_dir: str,
                      palette: np.ndarray, compress_level: int, totals: Dict[str, int]) -> List[str]:
    """Writes the compared model's colours and the improvement/error map; adds up its counts."""
    height, width = ids.shape
    if reference.shape != ids.shape:
        raise ValueError(f"the compared model predicted {reference.shape[0]}x{reference.shape[1]}, "
                         f"this one {height}x{width}: give both the same --size")
    label = item.label
    if label.shape != (height, width):
        label = resize_label(label, height, width).numpy()  # as evaluation resizes it
    base = item.overlay_base
    if base.shape[:2] != (height, width):
        base = np.asarray(Image.fromarray(base).resize((width, height), Image.Resampling.BILINEAR))
    picture, counts = visualize.improvement_map(ids, reference, label, base, num_classes=len(palette))
    # Ids past the classes are void, as evaluation takes them; counted so that the command says so
    # (before: not a word, and labels of all such ids scored "0.00%" for both models; helper 294).
    beyond = int(((label >= len(palette)) & (label != IGNORE_ID)).sum())
    if beyond:
        counts = {**counts, "beyond": beyond}
    for key, value in counts.items():
        totals[key] = totals.get(key, 0) + value
    paths = []
    for folder, image in (("compare_color", visualize.colorize(reference, palette)), ("improvement", picture)):
        path = os.path.join(output_dir, folder, *item.sample.name.split("/")) + ".png"
        visualize.save_png(path, image, compress_level=compress_level)
        paths.append(path)
    return paths


@dataclasses.dataclass
class _Loaded:
    """A sample's images in memory: BGR uint8 network inputs, RGB overlay base, label."""

    sample: Sample
    network_inputs: List[np.ndarray]
    overlay_base: np.ndarray
    label: Optional[np.ndarray]


def _load(sample: Sample, fusion: bool, input_modality: str, modalities: int = 2) -> _Loaded:
    """Reads a sample's images; a fusion model of N modalities gets the first N (a model of two
    compared with one of three reads the first two of each line)."""
    def read(path: Optional[str], what: str, reader: Callable) -> Optional[np.ndarray]:
        if path is None:
            return None
        try:
            return reader(path, f"{what} of {sample.where()}")  # its list line, where it has one
        except (OSError, ValueError) as error:
            if path in str(error):  # the reader's message names the sample, the image and the cause
                raise PredictionError(str(error)) from None
            raise PredictionError(f"cannot read {what} {path}: {error}") from None

    paths = sample.modalities
    images = [read(path, f"modality{i}", load_image_bgr) for i, path in enumerate(paths, start=1)]
    label = read(sample.label, "label", lambda path, where: load_label(path, where, unlabeled=PREDICT_UNLABELED))
    if fusion:
        missing = [f"modality{i}" for i, image in enumerate(images[:modalities], start=1) if image is None]
        missing += [f"modality{i}" for i in range(len(images) + 1, modalities + 1)]
        if missing:
            # Two modalities: the flag of the one missing (before: a list file for a missing modality1;
            # helper 369).
            given = (f"--{missing[0]} (an image or a folder)" if len(missing) == 1 and modalities == 2
                     else f"a --list of '{' '.join(f'modality{i}' for i in range(1, modalities + 1))} [label]' lines")
            raise PredictionError(f"{sample.where()}: SSMA needs {' and '.join(missing)} too: give {given}")
        inputs = images[:modalities]
    elif images[0] is not None and images[1] is not None:
        index = int(input_modality.removeprefix("modality")) - 1
        if index >= len(images):
            raise PredictionError(
                f"{sample.where()} has {len(images)} modalities, but the network reads {input_modality}: list "
                f"modality1 ... {input_modality} and a label per line"
            )
        inputs = [images[index]]
    else:
        inputs = [images[0] if images[0] is not None else images[1]]
    present = [(p, image) for p, image in zip(paths, images) if image is not None]
    if label is not None:
        present.append((sample.label, label))
    shapes = {image.shape[:2] for _, image in present}
    if len(shapes) > 1:
        sizes = ", ".join(f"{p} is {image.shape[0]}x{image.shape[1]}" for p, image in present)
        raise PredictionError(f"the images of {sample.where()} differ in size: {sizes}")
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
            label = resize_label(label, height, width).numpy()  # as evaluation resizes it
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
    return Progress(total, stream=stream, prefix="predicted ", log_every=2.0, unit="samples")
