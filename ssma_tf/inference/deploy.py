"""Exports for fast CPU and ARM inference: OpenVINO IR (float32 or int8) and TFLite (float32 or full int8).

`export_deployed(model, folder, format=...)` writes a folder that `ssma_tf.inference.backends`
opens (`ssma-predict`/`ssma-evaluate --backend openvino|tflite`):

- `model.xml` + `model.bin` (OpenVINO IR, `format="openvino"`) or `model_<precision>.tflite`,
- `assets.extra/ssma_tf.json`: the SavedModel export's metadata (model, classes, colours, size,
  channel order) plus the backend, the precision and the calibration data.

The network is the fast inference copy (`ssma_tf.inference.compiled.optimize_for_inference`: batch
norms folded in float64, sub-pixel upsampling) traced as a concrete function with a fixed input
size (float32 BGR, 0..255, `size` = the config's height × width) that returns the softmax. The
fixed size is what OpenVINO's converter needs: the SavedModel route, with open height and width,
fails on the eASPP's global mean. Inputs of other sizes are resized by the runner, as `Predictor`
does.

`int8=True` quantises after training, calibrated on `calibration_samples` images of the user's
own TFRecords (every modality for SSMA; an expert's own modality), read at the export size without augmentation:
OpenVINO through NNCF's post-training quantisation (weights and activations of convolutions in
int8, the softmax in float), TFLite as full-integer quantisation (every operation in int8, uint8
image inputs, float32 softmax out) for ARM boards, run with `ai_edge_litert`. How much accuracy
that costs is measured, not assumed: `ssma-evaluate --backend openvino` on the validation records
(README, "Deployment").

The runtimes and NNCF are the optional `deploy` extra (`pip install '.[deploy]'` in the clone).
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import time
import warnings
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import keras
import numpy as np
import tensorflow as tf

import ssma_tf
from ssma_tf.constants import DEFAULT_CALIBRATION_SAMPLES, EXPORT_METADATA, SSMA_FUSION
from ssma_tf.errors import Terminated, UserInputError, first_line, raise_if_terminated
from ssma_tf.files import atomic_path, atomic_write, free_bytes
from ssma_tf.inference.backends import require
from ssma_tf.inference.compiled import inference_model
from ssma_tf.inference.export import check_export_output, input_names, interpolation_metadata
from ssma_tf.inference.sizes import check_size
from ssma_tf.keras_compat import check_tensorflow_backend
from ssma_tf.models.factory import is_fusion, model_name, num_modalities
from ssma_tf.native_output import dropping, native_lines_filtered
from ssma_tf.resampling import resize_methods

DEPLOY_FORMATS = ("openvino", "tflite")
OPENVINO_FILE = "model.xml"


class CalibrationError(UserInputError):
    """The calibration records cannot give the asked samples; the message names them."""


@dataclasses.dataclass
class DeployReport:
    """What `export_deployed` wrote.

    Attributes:
        path: the export folder.
        metadata: the content of `assets.extra/ssma_tf.json`.
        seconds: time per stage ("trace", "convert", "calibrate", ...).
    """

    path: str
    metadata: Dict[str, Any]
    seconds: Dict[str, float] = dataclasses.field(default_factory=dict)

    def __str__(self) -> str:
        meta = self.metadata
        model_file = os.path.join(self.path, meta["files"][meta["backend"]])
        sizes = sum(os.path.getsize(os.path.join(self.path, f)) for f in os.listdir(self.path)
                    if os.path.isfile(os.path.join(self.path, f)))
        line = (f"{meta['backend']} {meta['precision']}: {model_file} ({sizes / 2**20:.1f} MiB), "
                f"input {' and '.join(meta['inputs'])} {meta.get('input_dtype', 'float32')} BGR "
                f"1x{meta['size'][0]}x{meta['size'][1]}x3")
        if meta.get("calibration"):
            calibration = meta["calibration"]
            line += f"; calibrated on {calibration['samples']} samples of {', '.join(calibration['records'])}"
        return line


def softmax_function(model: keras.Model, size: Sequence[int], batch: Optional[int] = None):
    """The fast inference copy's softmax as a `tf.function` with a fixed input size.

    Args:
        model: an `AdapNetPP` or `SSMA` with its weights.
        size: (height, width), multiples of 16.
        batch: the batch size of the signature (None: open).

    Returns:
        A `tf.function` of one (AdapNet++) or N (SSMA) float32 (B, H, W, 3) BGR tensors,
        named like the SavedModel's inputs, returning {"probabilities": float32 (B, H, W, C)}.

    Raises:
        UserInputError: Keras runs on another backend than TensorFlow.
    """
    check_tensorflow_backend("softmax_function")
    height, width = check_size(size)
    view = inference_model(model, optimize=True)
    fusion = is_fusion(model)
    specs = [tf.TensorSpec([batch, height, width, 3], tf.float32, name=name) for name in input_names(model)]

    def serve(*images):
        return {"probabilities": view(list(images) if fusion else images[0], training=False)["softmax"]}

    return tf.function(serve, input_signature=specs)


def calibration_batches(
    records: Sequence[str],
    *,
    modalities: int,
    size: Sequence[int],
    samples: int,
    input_modality: str = "modality1",
    modality2_interpolation: Union[str, Sequence[str]] = "nearest",
    say: Optional[Callable[[str], None]] = None,
) -> List[List[np.ndarray]]:
    """The first `samples` images of the records at `size`, as the network takes them.

    Args:
        records: TFRecord files or glob patterns (`ssma_tf.data` schema).
        modalities: the images the network takes: N for SSMA (modalities 1..N of each record),
            1 for AdapNet++ (the record's `input_modality`).
        size: (height, width).
        samples: how many.
        input_modality: AdapNet++: which modality of the records it reads ("modality2" for a
            depth expert, "modality3" for an expert of a third modality, ...).
        modality2_interpolation: how modality 2 and every further one is resized (one method,
            or one per modality after the first).
        say: told which modalities are read when the records hold more than the model reads
            (SSMA over two calibrated on RGB-D-NIR records, an RGB expert on RGB-D records).

    Returns:
        A list of `samples` items, each a list of `modalities` float32 (1, H, W, 3) BGR arrays.

    Raises:
        CalibrationError: no such records, records without the modalities, or fewer than
            `samples` images in them.
    """
    from ssma_tf.data.augment import resize_sample
    from ssma_tf.data.pipeline import check_first_record, naming_damaged_records
    from ssma_tf.data.records import modalities_held
    from ssma_tf.data.schema import modality_key
    from ssma_tf.data.unlabeled import decode_record

    height, width = check_size(size)
    # An expert of modality k reads modalities 1..k of each record and keeps the k-th.
    read = modalities if modalities > 1 else int(input_modality.removeprefix("modality"))
    more = []
    files = _calibration_files(records)
    for path in files:
        held = modalities_held(path)
        if held is not None and held > modalities:  # more than the network takes
            more.append((path, held))
        if held is not None and held < read:
            # Before: the training pipeline's advice ("... or train an AdapNet++ on the records'
            # one modality"), about a config the export may not have.
            reads = f"{modalities} modalities" if modalities > 1 else f"{input_modality} (its input_modality)"
            raise CalibrationError(
                f"calibration records {path} hold {held} modalit{'y' if held == 1 else 'ies'}, the model reads "
                f"{reads}: calibrate with records of the modalities it was trained on (ssma-convert a list "
                "with a column per modality)")
    if more and say:
        # Before: the modalities not read were passed over without a word.
        path, held = more[0]
        reads = f"modalities 1-{modalities}" if modalities > 1 else f"{input_modality} (its input)"
        others = f" (and {len(more) - 1} more files)" if len(more) > 1 else ""
        say(f"calibrating on {reads} of records holding {held} modalities ({path}{others})")
    try:
        # Images only, resized as the evaluation resizes them: records without labels (ssma-convert
        # --unlabeled, often all a deployment target has) calibrate too (before: refused, after
        # the model had loaded; helper 189).
        for path in files:
            check_first_record(path, read, labeled=False)
        dataset = tf.data.TFRecordDataset(files).map(
            lambda serialized: resize_sample(decode_record(serialized, read), height=height, width=width,
                                             modality2_interpolation=modality2_interpolation))
    except (ValueError, OSError, tf.errors.OpError) as error:
        raise CalibrationError(f"calibration records {', '.join(records)}: {error}") from None
    batches = []
    # A damaged record: its file and index (before: TensorFlow's DataLossError traceback).
    with naming_damaged_records(list(records), read, labeled=False):  # images only (helper 257)
        for sample in dataset.take(samples):
            # An expert of modality k keeps the k-th.
            batches.append([np.asarray(sample[modality_key(index)], np.float32)[np.newaxis]
                            for index in range(read if modalities == 1 else 1, read + 1)])
    if len(batches) < samples:
        raise CalibrationError(
            f"calibration records {', '.join(records)} hold {len(batches)} samples, {samples} asked "
            "(--calibration_samples)"
        )
    return batches


def check_calibration_records(records: Sequence[str], samples: int) -> None:
    """Raises CalibrationError when `records` match no file or hold fewer than `samples` records,
    and RecordError when a file is not a record file.

    Counts the records from the files' framing without reading them (beyond each file's first
    record), so that `ssma-export` refuses `--calibration_samples 100` on 16 records before the
    model loads, not after.
    """
    from ssma_tf.data.records import RecordError, count_records, first_example

    total = 0
    for path in _calibration_files(records):
        # Every file, also once enough records are counted: the dataset reads them all, and a
        # list file or an empty file after the first failed there, after the model had loaded
        # (helper 119). A file of another kind frames into an arbitrary count: the error said
        # "hold 1 samples, 100 asked", and fewer samples was the wrong fix.
        if first_example(path) is None:
            raise RecordError("holds no records", path)
        total += count_records(path)[0]
    if total < samples:
        raise CalibrationError(
            f"calibration records {', '.join(records)} hold {total} samples, {samples} asked (--calibration_samples)")


def _calibration_files(records: Sequence[str]) -> List[str]:
    """The files the calibration records' names and patterns match; CalibrationError for none."""
    from ssma_tf.data.pipeline import list_record_files

    try:
        return list_record_files(list(records))
    except FileNotFoundError as error:
        raise CalibrationError(f"calibration records: {error}") from None


def with_full_input_range(samples: List[List[np.ndarray]]) -> List[List[np.ndarray]]:
    """The calibration samples with one pixel at 0 and one at 255 in each input of the first.

    Post-training quantisation takes each tensor's range from the calibration images, the
    network's inputs included. Calibrated on images whose pixels stay below 42, a full-integer
    TFLite file had the input scale 0.0078: it wanted its uint8 input divided by that, not the
    0..255 pixels the docs promise, and the runner clipped every brighter pixel (42 % of a bright
    image's pixels agreed with the float model, 84 % with this). With both ends present the
    input range is 0..255: the TFLite input scale is 1 and its zero point 0, so a uint8 image
    goes in as it is (the OpenVINO export, whose input stays float32, gets the same range). Two
    pixels of one image barely move the ranges inside the network, whose inputs reach 0 and 255
    in most photographs anyway.
    """
    first = []
    for view in samples[0]:
        view = np.array(view, np.float32)
        view[0, 0, 0, :] = 0.0
        view[0, 0, 1, :] = 255.0
        first.append(view)
    return [first] + list(samples[1:])


def export_deployed(
    model: keras.Model,
    output_dir: str,
    *,
    format: str = "openvino",
    size: Sequence[int],
    int8: bool = False,
    calibration: Optional[Sequence[str]] = None,
    calibration_samples: int = DEFAULT_CALIBRATION_SAMPLES,
    input_modality: str = "modality1",
    modality2_interpolation: Union[str, Sequence[str]] = "nearest",
    dataset: Optional[Any] = None,
    overwrite: bool = False,
    log: Optional[Callable[[str], None]] = None,
) -> DeployReport:
    """Writes an OpenVINO or TFLite export folder (see the module docstring).

    Args:
        model: an `AdapNetPP` or `SSMA` with its weights.
        output_dir: the folder to create.
        format: "openvino" or "tflite".
        size: (height, width) of the network input, multiples of 16 (the training size).
        int8: quantise, calibrated on `calibration`.
        calibration: TFRecord files or patterns; needed with `int8`.
        calibration_samples: images to calibrate on (the first of the records).
        input_modality: AdapNet++: which modality of the records it reads.
        modality2_interpolation: SSMA: how modality 2 (and every further one) is resized
            (calibration and runner); one method, or one per modality after the first.
        dataset: a `DatasetInfo` whose class names and colours go into the metadata.
        overwrite: replace an existing `output_dir`; without it, a folder that appears there while
            this export is written (another export) is kept and this one dropped (`OutputPathError`).
        log: called with a line per stage.

    Returns:
        A `DeployReport`.

    Raises:
        ExportError: `output_dir` exists without `overwrite`, or is not an earlier export
            (`check_export_output`).
        CalibrationError: bad calibration records.
        MissingExtraError: the `deploy` extra is not installed.
        ValueError: bad format, size, sample count or dataset.
        UserInputError: Keras runs on another backend than TensorFlow.
    """
    # Before reading calibration records or tracing: on JAX the trace failed deep in
    # TensorFlow (helper 302).
    check_tensorflow_backend("export_deployed")
    say = log or (lambda _: None)
    if format not in DEPLOY_FORMATS:
        raise ValueError(f"format must be one of {DEPLOY_FORMATS}, got {format!r}")
    size = check_size(size)
    resize_methods(modality2_interpolation, num_modalities(model), input_modality)
    if int8 and not calibration:
        raise ValueError("int8 quantisation needs calibration records (--calibration RECORDS)")
    if calibration and not int8:
        raise ValueError("calibration records are only used with int8 (--int8)")
    if int8 and (not isinstance(calibration_samples, int) or calibration_samples < 1):
        raise ValueError(f"calibration_samples must be a positive integer, got {calibration_samples!r}")
    if dataset is not None and dataset.num_classes != model.num_classes:
        raise ValueError(f"dataset {dataset.name} has {dataset.num_classes} classes, the model {model.num_classes}")
    output_dir = os.path.abspath(os.fspath(output_dir))
    check_export_output(output_dir, overwrite)
    # Fail on a missing runtime before minutes of tracing.
    require("openvino" if format == "openvino" else "tflite")
    if format == "openvino" and int8:
        require("nncf")

    report = DeployReport(output_dir, {})
    samples = None
    if int8:
        start = time.monotonic()
        samples = calibration_batches(calibration, modalities=num_modalities(model), size=size,
                                      samples=calibration_samples,
                                      input_modality=input_modality,
                                      modality2_interpolation=modality2_interpolation, say=say)
        samples = with_full_input_range(samples)
        report.seconds["read_calibration"] = time.monotonic() - start
    precision = "int8" if int8 else "float32"
    # Before: replaced an export another command wrote there meanwhile, without `overwrite` (helper 366).
    with atomic_path(output_dir, directory=True, overwrite=overwrite) as staging:
        start = time.monotonic()
        if format == "openvino":
            model_file = _write_openvino(model, size, samples, staging, report, say, shown=output_dir)
        else:
            model_file = f"model_{precision}.tflite"
            _write_tflite(model, size, samples, os.path.join(staging, model_file), report, say)
        say(f"wrote {format} {precision} ({time.monotonic() - start:.0f} s)")
        report.metadata = _metadata(model, size, format, precision, model_file, modality2_interpolation,
                                    input_modality, calibration, len(samples or ()), dataset)
        with atomic_write(os.path.join(staging, EXPORT_METADATA)) as handle:
            json.dump(report.metadata, handle, indent=2)
            handle.write("\n")
    return report


def _write_openvino(model, size, samples, folder: str, report: DeployReport, say, shown: str) -> str:
    ov = require("openvino")
    start = time.monotonic()
    function = softmax_function(model, size, batch=1)
    concrete = function.get_concrete_function()
    report.seconds["trace"] = time.monotonic() - start
    start = time.monotonic()
    try:
        converted = ov.convert_model(concrete)
    except RuntimeError as error:
        # The converter turns a Ctrl-C (or SIGTERM) during its work into its own RuntimeError
        # ("Converting input model ... KeyboardInterrupt"): a traceback and status 1 instead of
        # the commands' "interrupted".
        if "Terminated" in str(error):  # SIGTERM: the commands end with "terminated" (143)
            raise Terminated() from None
        if "KeyboardInterrupt" in str(error):
            raise KeyboardInterrupt from None
        raise
    raise_if_terminated()  # as after the TFLite converter: a SIGTERM lost in a finaliser
    report.seconds["convert"] = time.monotonic() - start
    say(f"converted to OpenVINO ({report.seconds['convert']:.0f} s)")
    if samples is not None:
        nncf = require("nncf")
        start = time.monotonic()
        names = [port.get_any_name() for port in converted.inputs]
        order = list(input_names(model))
        # Feed by name: the converter keeps the signature's names but not always its order.
        data = nncf.Dataset(samples, lambda item: {name: item[order.index(name)] for name in names})
        converted = nncf.quantize(converted, data, subset_size=len(samples))
        report.seconds["calibrate"] = time.monotonic() - start
        say(f"quantised to int8 on {len(samples)} samples ({report.seconds['calibrate']:.0f} s)")
    # float32 weights stay float32 (compress_to_fp16 would halve the file at a rounding cost).
    try:
        ov.save_model(converted, os.path.join(folder, OPENVINO_FILE), compress_to_fp16=False)
    except RuntimeError as error:
        # OpenVINO's writer says "basic_ios::clear: iostream error" for any failed write (a
        # full disk): a traceback before. Named as the commands name a file they cannot write.
        free = free_bytes(folder)
        space = "" if free is None else f"; {free / 1e6:.1f} MB free on that disk"
        raise OSError(errno.EIO, f"OpenVINO could not write the model ({first_line(error)}){space}",
                      os.path.join(shown, OPENVINO_FILE)) from None
    return OPENVINO_FILE


def _write_tflite(model, size, samples, path: str, report: DeployReport, say) -> None:
    start = time.monotonic()
    function = softmax_function(model, size, batch=1)
    concrete = function.get_concrete_function()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], function)
    if samples is not None:
        every = max(1, len(samples) // 10)

        def representative():
            # The calibration takes most of an int8 conversion: minutes at full size, said.
            started = time.monotonic()
            for index, item in enumerate(samples, start=1):
                yield item
                if index % every == 0 or index == len(samples):
                    say(f"calibrated on {index}/{len(samples)} samples ({time.monotonic() - started:.0f} s)")

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        # Full integer: every operation in int8, none left in float; images come as uint8
        # (0..255 as they are: `with_full_input_range`), the softmax leaves as float32.
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.float32
    say("converting to TFLite" + ("" if samples is None else f" int8, calibrating on {len(samples)} samples"))
    with warnings.catch_warnings(), native_lines_filtered(dropping("fully_quantize:")):
        # Both said on every int8 conversion: the uint8 input needs no statistics (it takes
        # 0..255 as they are), and the converter's summary of the types asked for.
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")
        content = converter.convert()
    # A SIGTERM during the conversion may have raised in a finaliser of the converter's, where
    # Python drops the exception: the export was written and the command said nothing (exit 0).
    raise_if_terminated()
    with atomic_write(path, "wb") as handle:
        handle.write(content)
    report.seconds["convert"] = time.monotonic() - start
    say(f"converted to TFLite ({report.seconds['convert']:.0f} s)")


def _metadata(model, size, format, precision, model_file, modality2_interpolation, input_modality,
              calibration, samples, dataset) -> Dict[str, Any]:
    fusion = is_fusion(model)
    return {
        "format": f"ssma_tf {format} export",
        "ssma_tf_version": ssma_tf.__version__,
        "backend": format,
        "files": {format: model_file},
        "precision": precision,
        "model": model_name(model),
        # A baseline's name, as the SavedModel export's metadata (before: a `late` export was
        # told from SSMA by nothing).
        "fusion": getattr(model, "fusion", SSMA_FUSION) if fusion else None,
        "num_classes": int(model.num_classes),
        "inputs": list(input_names(model)),
        "input_dtype": "float32" if format == "openvino" or precision == "float32" else "uint8",
        "channel_order": "BGR",
        "size": list(size),
        "modality2_interpolation": interpolation_metadata(modality2_interpolation, fusion, input_modality),
        "input_modality": None if fusion else input_modality,
        "outputs": {"probabilities": f"float32 [1, {size[0]}, {size[1]}, C]"},
        # Absolute, so that the file tells which records wherever it is read from.
        # The files a pattern matched, as a pattern would not tell them later.
        "calibration": None if not samples else {
            "records": [os.path.abspath(f) for f in _calibration_files(calibration)], "samples": samples},
        "dataset": None if dataset is None else dataset.name,
        "class_names": None if dataset is None else list(dataset.class_names),
        "palette": None if dataset is None else [list(c) for c in dataset.palette],
    }
