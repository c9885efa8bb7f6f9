"""Deployable exports: a TensorFlow SavedModel with a uint8 serving signature, and TFLite files.

`export_saved_model` writes a SavedModel whose `serving_default` signature takes uint8 BGR image
batches (as OpenCV reads them) and returns

- `class_ids`: int32 (B, H, W), the argmax of the softmax, and
- `probabilities`: float32 (B, H, W, C), the softmax,

both at the size of the input images. Inputs are named `image` (AdapNet++) or `modality1` and
`modality2` (SSMA, the two of the same size). With a `size`, images of any height and width are
resized inside to that size (bilinearly; SSMA's modality 2 as `modality2_interpolation` says) and
the probabilities resized back bilinearly before the argmax. Without one, height and width must be
multiples of 16 (the encoder downsamples by 16); other sizes fail with an `InvalidArgumentError`.

Next to the SavedModel files, `assets.extra/ssma_tf.json` describes the export (model, classes,
colours, size, channel order) and, when asked, `model_float32.tflite` / `model_float16.tflite`
hold TFLite conversions of the same signature. The whole folder is written under a temporary name
and renamed at the end, so an interrupted export never leaves a folder that looks complete.

Batch-norm folding (`fold_batch_norm=True`, `ssma_tf.inference.batch_norm_folding`) multiplies
each batch norm that directly follows a convolution into the convolution's kernel and turns it into
a bias add, so that the exported graph runs one fused convolution where it ran a convolution, a
multiply and an add. The export checks that the folded graph gives the same probabilities (to
`FOLD_TOLERANCE`) before writing anything. It is off by default: on a CPU the exported AdapNet++ ran no faster with it (TensorFlow 2.21, 384×768),
and the TFLite converter folds batch norms by itself.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import keras
import numpy as np
import tensorflow as tf

import ssma_tf
from ssma_tf.constants import EXPORT_METADATA, SSMA_FUSION
from ssma_tf.errors import UserInputError, first_line, raise_if_terminated
from ssma_tf.files import atomic_path, atomic_write
from ssma_tf.inference.batch_norm_folding import FoldingError, fold_batch_norms
from ssma_tf.inference.compiled import inference_model
from ssma_tf.inference.predictor import at_input_size
from ssma_tf.inference.sizes import SIZE_MULTIPLE, check_size
from ssma_tf.keras_compat import check_tensorflow_backend
from ssma_tf.models.factory import is_fusion, model_name, num_modalities
from ssma_tf.resampling import resize_methods

SIGNATURE_KEY = "serving_default"
TFLITE_TYPES = ("float32", "float16")
# Largest difference of any probability between the folded and the original graph.
FOLD_TOLERANCE = 1e-4


class ExportError(UserInputError):
    """The export cannot be written as asked (existing output, folding that changes outputs)."""


# What the exports write at the top of their folder: a SavedModel (with its LiteRT files), an
# OpenVINO IR or a LiteRT file, and the metadata (`EXPORT_METADATA`) in assets.extra/.
_EXPORT_ENTRY = re.compile(r"^(saved_model\.pb|fingerprint\.pb|variables|assets|assets\.extra|model\.xml|model\.bin|"
                           r"model_\w+\.tflite)$")
# Inside assets.extra/ the metadata alone; inside variables/ the SavedModel's variables.
_METADATA_NAME = re.compile("^" + re.escape(os.path.basename(EXPORT_METADATA)) + "$")
_VARIABLES_ENTRY = re.compile(r"^variables\.(index|data-\d{5}-of-\d{5})$")
_NO_ENTRY = re.compile(r"(?!)")  # the SavedModel's assets/: the export writes nothing there


def check_export_output(output_dir: Union[str, "os.PathLike[str]"], overwrite: bool) -> None:
    """Refuses an output that an export must not replace, before any work.

    An existing output is replaced only with `overwrite`, and only when it is an earlier export
    (it holds `assets.extra/ssma_tf.json`) or an empty folder: `--overwrite` pointed at a training
    run, or at the folder above one, deleted it with everything in it.

    Raises:
        ExportError: naming the folder.
    """
    path = os.path.abspath(os.fspath(output_dir))
    if not os.path.lexists(path):
        return
    if not overwrite:
        raise ExportError(f"{path} exists; pass overwrite=True (--overwrite) to replace it", path)
    if os.path.isdir(path) and os.path.isfile(os.path.join(path, EXPORT_METADATA)):
        # The export's own files only: predictions or notes put beside them were deleted with it.
        others = sorted(name for name in os.listdir(path) if not _EXPORT_ENTRY.match(name))
        # Inside its folders too: a serving warm-up file put in assets.extra/ went with it without
        # a word (helper 223), and a file put in assets/ (helper 296).
        for folder, entry in (("assets", _NO_ENTRY), ("assets.extra", _METADATA_NAME), ("variables", _VARIABLES_ENTRY)):
            inside = os.path.join(path, folder)
            if os.path.isdir(inside) and not os.path.islink(inside):
                others += sorted(f"{folder}/{name}" for name in os.listdir(inside) if not entry.match(name))
        if others:
            more = f" and {len(others) - 3} more" if len(others) > 3 else ""
            raise ExportError(f"{path} holds files that are not part of its export ({', '.join(others[:3])}{more}): "
                              "--overwrite would delete them with it; move them out, or give a new folder", path)
        return
    if os.path.isdir(path) and not os.listdir(path):
        return
    raise ExportError(f"{path} is not an export (it has no {EXPORT_METADATA}): --overwrite replaces an earlier export "
                      "only, never other files; give a new folder, or delete this one yourself", path)


# ---------------------------------------------------------------------------------------------
# The serving function.


def input_names(model: keras.Model) -> Tuple[str, ...]:
    """Names of the serving inputs: ("image",) or ("modality1", "modality2", ...)."""
    return tuple(f"modality{i}" for i in range(1, num_modalities(model) + 1)) if is_fusion(model) else ("image",)


def serving_function(
    model: keras.Model,
    size: Optional[Sequence[int]] = None,
    modality2_interpolation: Union[str, Sequence[str]] = "nearest",
    input_modality: str = "modality1",
) -> Tuple[Callable[..., Dict[str, tf.Tensor]], List[tf.TensorSpec]]:
    """The function the SavedModel serves, and its input signature (see the module docstring).

    Args:
        model: an `AdapNetPP` or `SSMA` (or a folded copy).
        size: (height, width) to resize inputs to inside the graph, multiples of 16; None: inputs
            must already have multiples of 16 and are used as they are.
        modality2_interpolation: "nearest" or "bilinear", for SSMA's modality 2 (and every
            further one), or a list with one per modality after the first.
        input_modality: AdapNet++: the modality its `image` is, resized as that modality.

    Returns:
        (function of uint8 (B, H, W, 3) tensors returning `class_ids` and `probabilities`,
        the list of `tf.TensorSpec`s of its inputs).

    Raises:
        UserInputError: Keras runs on another backend than TensorFlow.
    """
    check_tensorflow_backend("serving_function")
    methods = resize_methods(modality2_interpolation, num_modalities(model), input_modality)
    size = None if size is None else check_size(size)
    view = inference_model(model)
    fusion = is_fusion(model)
    names = input_names(model)

    def serve(*images: tf.Tensor) -> Dict[str, tf.Tensor]:
        input_size = tf.shape(images[0])[1:3]
        for index, image in enumerate(images[1:], start=2):
            tf.debugging.assert_equal(
                tf.shape(images[0])[:3], tf.shape(image)[:3],
                message=f"modality1 and modality{index} must have the same batch size, height and width",
            )
        views = [tf.cast(image, tf.float32) for image in images]
        if size is not None:
            views = [tf.image.resize(v, size, method=m) for v, m in zip(views, methods)]
        else:
            tf.debugging.assert_equal(
                tf.math.floormod(input_size, SIZE_MULTIPLE), 0,
                message=f"height and width must be multiples of {SIZE_MULTIPLE} "
                "(this model was exported without a size to resize to)",
            )
        probabilities = view(views if fusion else views[0], training=False)["softmax"]
        if size is not None:
            class_ids, probabilities = at_input_size(probabilities, input_size)
        else:
            class_ids = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
        return {"class_ids": class_ids, "probabilities": probabilities}

    signature = [tf.TensorSpec([None, None, None, 3], tf.uint8, name=name) for name in names]
    return serve, signature


# ---------------------------------------------------------------------------------------------
# Writing the export.


@dataclasses.dataclass
class ExportReport:
    """What `export_saved_model` wrote.

    Attributes:
        path: the SavedModel folder.
        metadata: the content of `assets.extra/ssma_tf.json`.
        folded: number of batch norms folded (0 without folding).
        fold_difference: largest probability difference of the folded graph (None without).
        tflite: TFLite type ("float32", "float16") → file.
        seconds: time per stage ("saved_model", "tflite_float32", ...).
    """

    path: str
    metadata: Dict[str, Any]
    folded: int = 0
    fold_difference: Optional[float] = None
    tflite: Dict[str, str] = dataclasses.field(default_factory=dict)
    seconds: Dict[str, float] = dataclasses.field(default_factory=dict)

    def __str__(self) -> str:
        lines = [f"SavedModel: {self.path} (signature '{SIGNATURE_KEY}', inputs {', '.join(self.metadata['inputs'])})"]
        if self.folded:
            lines.append(
                f"folded {self.folded} batch norms into their convolutions "
                f"(largest probability difference {self.fold_difference:.2e})"
            )
        for kind, path in self.tflite.items():
            lines.append(f"TFLite {kind}: {path} ({os.path.getsize(path) / 2**20:.1f} MiB)")
        return "\n".join(lines)


def export_saved_model(
    model: keras.Model,
    output_dir: str,
    *,
    size: Optional[Sequence[int]] = None,
    modality2_interpolation: Union[str, Sequence[str]] = "nearest",
    fold_batch_norm: bool = False,
    tflite: Sequence[str] = (),
    dataset: Optional[Any] = None,
    input_modality: str = "modality1",
    overwrite: bool = False,
    log: Optional[Callable[[str], None]] = None,
) -> ExportReport:
    """Writes a SavedModel (and optionally TFLite files) for serving; see the module docstring.

    Args:
        model: an `AdapNetPP` or `SSMA` with its weights.
        output_dir: the SavedModel folder to create.
        size: (height, width) inputs are resized to inside the graph (e.g. the training size);
            None: inputs must have multiples of 16 as height and width.
        modality2_interpolation: "nearest" or "bilinear", for SSMA's modality 2 (and every further
            one) when resizing, or a list with one per modality after the first.
        fold_batch_norm: fold batch norms into the preceding convolutions (checked to change no
            probability by more than `FOLD_TOLERANCE`).
        tflite: any of "float32", "float16": also write `model_<type>.tflite`, converted from the
            SavedModel.
        dataset: a `DatasetInfo` whose class names and colours go into the metadata.
        input_modality: AdapNet++: the modality its `image` input is (an expert of the second
            modality takes depth, HHA, ...); recorded in the metadata.
        overwrite: replace an existing `output_dir`; without it, a folder that appears there while
            this export is written (another export) is kept and this one dropped (`OutputPathError`).
        log: called with a line per stage (e.g. `print`).

    Returns:
        An `ExportReport`.

    Raises:
        ExportError: `output_dir` exists without `overwrite` or is not an earlier export
            (`check_export_output`), folding changes the outputs, a
            bad TFLite type, or a dataset of another class count.
        ValueError: bad size or interpolation.
        UserInputError: Keras runs on another backend than TensorFlow.
    """
    # Before any folder is made: on JAX, tracing the serving function failed with a
    # TracerArrayConversionError (helper 302).
    check_tensorflow_backend("export_saved_model")
    say = log or (lambda _: None)
    output_dir = os.path.abspath(os.fspath(output_dir))
    size = None if size is None else check_size(size)
    unknown = [t for t in tflite if t not in TFLITE_TYPES]
    if unknown:
        raise ExportError(f"TFLite types must be among {TFLITE_TYPES}, got {unknown}")
    if dataset is not None and dataset.num_classes != model.num_classes:
        raise ExportError(
            f"dataset {dataset.name} has {dataset.num_classes} classes, the model {model.num_classes}"
        )
    check_export_output(output_dir, overwrite)

    report = ExportReport(path=output_dir, metadata={})
    exported = model
    if fold_batch_norm:
        start = time.monotonic()
        try:
            exported, report.folded = fold_batch_norms(model)
        except FoldingError as error:
            raise ExportError(str(error)) from None
        report.fold_difference = fold_difference(model, exported, size or (4 * SIZE_MULTIPLE, 8 * SIZE_MULTIPLE))
        report.seconds["fold"] = time.monotonic() - start
        if not report.fold_difference <= FOLD_TOLERANCE:
            raise ExportError(
                f"folding batch norms changes the probabilities by up to {report.fold_difference:.3g} "
                f"(more than {FOLD_TOLERANCE}); export without folding"
            )
        # Named once, in the report's summary (`ExportReport.__str__`; before, here as well).

    # The folder appears complete or not at all; an older export there is replaced only then, and
    # only with `overwrite` (before: an export another command wrote meanwhile; helper 366).
    with atomic_path(output_dir, directory=True, overwrite=overwrite) as staging:
        start = time.monotonic()
        serve, signature = serving_function(exported, size, modality2_interpolation, input_modality)
        archive = keras.export.ExportArchive()
        # No `archive.track(model)`: the endpoint tracks the variables it uses, and tracking the
        # model too would store every weight twice (as the Keras variable and as the TF one).
        # The first endpoint also becomes `serving_default`; naming it so keeps one signature.
        archive.add_endpoint(SIGNATURE_KEY, serve, input_signature=signature)
        try:
            archive.write_out(staging, verbose=False)
        except tf.errors.OpError as error:
            # A full disk or a file-size limit: TensorFlow's own error type, with a traceback;
            # as an OSError naming the folder it ends the command with one line (its partial
            # files go with the staging folder).
            raise OSError(None, first_line(error), os.fspath(output_dir)) from error
        report.seconds["saved_model"] = time.monotonic() - start
        say(f"wrote the SavedModel ({report.seconds['saved_model']:.0f} s)")

        for kind in tflite:
            start = time.monotonic()
            path = os.path.join(staging, f"model_{kind}.tflite")
            convert_to_tflite(staging, path, kind)
            report.tflite[kind] = os.path.join(output_dir, os.path.basename(path))
            report.seconds[f"tflite_{kind}"] = time.monotonic() - start
            say(f"converted to TFLite {kind} ({report.seconds[f'tflite_{kind}']:.0f} s)")

        raise_if_terminated()  # the SavedModel writer's objects drop a SIGTERM's exception too
        report.metadata = _metadata(model, size, modality2_interpolation, report, dataset, input_modality)
        with atomic_write(os.path.join(staging, EXPORT_METADATA)) as handle:
            json.dump(report.metadata, handle, indent=2)
            handle.write("\n")
    return report


def fold_difference(model: keras.Model, folded: keras.Model, size: Sequence[int], seed: int = 0) -> float:
    """Largest absolute probability difference between two models on one random input."""
    height, width = check_size(size)
    rng = np.random.default_rng(seed)
    count = num_modalities(model)
    images = [tf.constant(rng.uniform(0, 255, (1, height, width, 3)), tf.float32) for _ in range(count)]
    inputs = images if count >= 2 else images[0]
    outputs = [inference_model(m)(inputs, training=False)["softmax"] for m in (model, folded)]
    return float(tf.reduce_max(tf.abs(outputs[0] - outputs[1])))


def convert_to_tflite(saved_model_dir: str, output_path: str, kind: str = "float32") -> int:
    """Converts a SavedModel's serving signature to a TFLite file.

    Args:
        saved_model_dir: the SavedModel folder.
        output_path: the `.tflite` file to write.
        kind: "float32", or "float16" (weights stored in half precision: half the size; the
            interpreter computes in float32 on CPUs without half-precision arithmetic).

    Returns:
        The file size in bytes.
    """
    if kind not in TFLITE_TYPES:
        raise ExportError(f"kind must be one of {TFLITE_TYPES}, got {kind!r}")
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir, signature_keys=[SIGNATURE_KEY])
    if kind == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    content = converter.convert()
    # A SIGTERM during the conversion raises in a finaliser of its objects, where Python drops the
    # exception: before, the export went on, was published, and the command then said "terminated"
    # (helper 183), as `deploy` already guarded against.
    raise_if_terminated()
    with atomic_write(output_path, "wb") as handle:
        handle.write(content)
    return len(content)


def interpolation_metadata(modality2_interpolation: Union[str, Sequence[str]], fusion: bool,
                           input_modality: Optional[str]) -> Union[str, Sequence[str], None]:
    """The metadata's `modality2_interpolation`, which an export's runner resizes by: SSMA's, and
    an expert's of modality 2 or on (before: left out for any AdapNet++, which its runner then
    resized "nearest" whatever the export was made with); None for an expert of modality 1."""
    return modality2_interpolation if fusion or (input_modality or "modality1") != "modality1" else None


def _metadata(
    model: keras.Model,
    size: Optional[Tuple[int, int]],
    modality2_interpolation: Union[str, Sequence[str]],
    report: ExportReport,
    dataset: Optional[Any],
    input_modality: str = "modality1",
) -> Dict[str, Any]:
    fusion = is_fusion(model)
    return {
        "format": "ssma_tf SavedModel export",
        "ssma_tf_version": ssma_tf.__version__,
        "model": model_name(model),
        "fusion": getattr(model, "fusion", SSMA_FUSION) if fusion else None,  # a baseline's name
        "num_classes": int(model.num_classes),
        "signature": SIGNATURE_KEY,
        "inputs": list(input_names(model)),
        "input_dtype": "uint8",
        "channel_order": "BGR",
        "size": None if size is None else list(size),
        "size_multiple": None if size is not None else SIZE_MULTIPLE,
        "modality2_interpolation": interpolation_metadata(modality2_interpolation, fusion, input_modality),
        "input_modality": None if fusion else input_modality,
        "outputs": {"class_ids": "int32 [B, H, W]", "probabilities": "float32 [B, H, W, C]"},
        "batch_norm_folded": report.folded,
        "dataset": None if dataset is None else dataset.name,
        "class_names": None if dataset is None else list(dataset.class_names),
        "palette": None if dataset is None else [list(c) for c in dataset.palette],
        "tflite": {kind: os.path.basename(path) for kind, path in report.tflite.items()},
    }
