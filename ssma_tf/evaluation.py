"""Evaluating AdapNet++ and SSMA: the released mIoU and the paper's extra metrics.

`evaluate(config)` builds the model a config describes, loads `checkpoint` (an original TF1
AdapNet++ or SSMA checkpoint, one of the project's own checkpoints or a `.weights.h5`), runs it
over `test_data` and returns the metrics of `ssma_tf.metrics.ConfusionMatrix`: `mIoU` in the
released definition (void left out, absent classes counted as 0), per-class IoU, the mean over
present classes, pixel accuracy, global IoU, FPR and FNR.

The counting happens on the device: one compiled function per batch predicts, takes the argmax and
adds the batch's confusion matrix to an int64 variable, so neither probabilities nor labels are
copied to the host. The function has a fixed signature (batch size unknown), so it is traced
once, also for the last, smaller batch. It runs the model's fast inference copy
(`ssma_tf.inference.compiled.optimize_for_inference`: batch norms folded, sub-pixel upsampling),
the path `bench/inference.py` measures as `default`.

Optional multi-scale and left-right flip testing (`eval_scales`, `eval_flip`), which the original
code lacks, average the softmax of every scaled and flipped view at the input resolution.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time
from typing import Any, Callable, Optional, Sequence, Union

import keras
import tensorflow as tf

from ssma_tf.checkpoints.initialize import check_checkpoint_fits, other_input_modality_warning
from ssma_tf.checkpoints.loading import load_weights, model_from_config
from ssma_tf.constants import SSMA_FUSION
from ssma_tf.data.pipeline import config_dataset
from ssma_tf.data.datasets import dataset_info_or_none
from ssma_tf.data.pipeline import list_record_files, naming_damaged_records
from ssma_tf.data.records import label_ids_warning
from ssma_tf.resampling import resize_methods
from ssma_tf.distribute import configure_devices
from ssma_tf.inference.compiled import optimize_for_inference
from ssma_tf.inference.rewrites import check_precision
from ssma_tf.inference.sizes import rounded_size
from ssma_tf.metrics import (
    ConfusionMatrix, batch_confusion_matrix, check_class_axis, non_finite_pixels, non_finite_warning,
)
from ssma_tf.models import SSMA, AdapNetPP, FusionBaseline
from ssma_tf.models.factory import build_model


def make_eval_dataset(config: Any) -> tf.data.Dataset:
    """The evaluation stream of a config: `test_data` once, in order, resized, no augmentation.

    Args:
        config: a `RunConfig` (evaluation mode, or training mode with `test_data`).

    Returns:
        Batches of `(inputs, labels)`; the last batch may be smaller.
    """
    if config.test_data is None:
        raise ValueError(f"{config.source}: evaluation needs test_data")
    return config_dataset(config, config.test_data, training=False, batch_size=config.batch_size)


def scaled_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """The input size of one test scale: `scale` × the size, rounded to a multiple of 16."""
    return rounded_size(height * scale, width * scale)


def predict_probabilities(
    model: keras.Model,
    inputs: Any,
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
    modality2_interpolation: Union[str, Sequence[str]] = "nearest",
    input_modality: str = "modality1",
) -> tf.Tensor:
    """The model's softmax at the input resolution, averaged over scales and flips.

    Args:
        model: an `AdapNetPP` (inputs: one batch) or `SSMA` (inputs: a list of N batches).
        inputs: (B, H, W, 3) floats, or a tuple/list of N for SSMA; H, W static.
        scales: input scales; each view is resized (bilinear, modality 2 and on as
            `modality2_interpolation` says), predicted, and its softmax resized back (bilinear).
        flip: also predict the left-right mirrored view of every scale and mirror it back.
        modality2_interpolation: "nearest" or "bilinear" for every modality after the first,
            or a list of one per modality.
        input_modality: AdapNet++: the modality it reads, resized as that modality is (an
            expert of depth: `modality2_interpolation`).

    Returns:
        float32 (B, H, W, C) probabilities.
    """
    fusion = isinstance(inputs, (tuple, list))
    views = list(inputs) if fusion else [inputs]
    height, width = int(views[0].shape[1]), int(views[0].shape[2])
    methods = resize_methods(modality2_interpolation, len(views), input_modality)
    total, count = None, 0
    for scale in scales:
        size = scaled_size(height, width, scale)
        resized = views
        if size != (height, width):
            resized = [tf.image.resize(v, size, method=m) for v, m in zip(views, methods)]
        for mirrored in (False, True) if flip else (False,):
            batch = [tf.reverse(v, axis=[2]) for v in resized] if mirrored else resized
            probs = tf.cast(model(batch if fusion else batch[0], training=False), tf.float32)
            if mirrored:
                probs = tf.reverse(probs, axis=[2])
            if size != (height, width):
                probs = tf.image.resize(probs, (height, width), method="bilinear")
            total = probs if total is None else total + probs
            count += 1
    return total if count == 1 else total / float(count)


@dataclasses.dataclass
class EvaluationResult:
    """The outcome of an evaluation.

    Attributes:
        metrics: `ConfusionMatrix.summary()` (JSON-serialisable; `mIoU` is the released one)
            plus `checkpoint`, `scales`, `flip`, `seconds` and `non_finite_pixels` (pixels whose
            probabilities were NaN or inf, counted as predictions of void).
        confusion: the accumulated confusion matrix.
        class_names: names used in the table (None: `class_<id>`).
    """

    metrics: dict
    confusion: ConfusionMatrix
    class_names: Optional[list] = None

    @property
    def miou(self) -> float:
        """The released mIoU in percent."""
        return float(self.metrics["mIoU"])

    def table(self) -> str:
        """The per-class table and summary; its last line is `mIoU: <value>`."""
        return self.confusion.format_table(self.class_names)


def _progress_line(batches: int, images: int, seconds: float) -> str:
    """An evaluation's progress line: batches and images so far, and the rate."""
    return (f"evaluated {batches} batch{'es' if batches != 1 else ''} ({images} image{'s' if images != 1 else ''}, "
            f"{images / max(seconds, 1e-9):.2f} images/s)")


class Evaluator:
    """Accumulates a confusion matrix of a model over datasets, on the device.

    Args:
        model: an `AdapNetPP` or `SSMA`.
        num_classes: C, void included.
        element_spec: the `(inputs, labels)` element spec of the datasets it will see; fixes the
            compiled function's signature so that it is traced exactly once.
        scales, flip, modality2_interpolation, input_modality: as for `predict_probabilities`.
        jit_compile: compile the prediction with XLA.
        optimize: for an `AdapNetPP`, `SSMA` or fusion baseline, predict with its fast inference copy
            (`ssma_tf.inference.compiled.optimize_for_inference`: batch norms folded into the convolutions,
            sub-pixel upsampling; the same probabilities to float32 rounding). The copy is made
            once, here: build a new evaluator after changing the model's weights. Other models are
            used as they are.
        precision: "float32" (default: reproduces the original's numbers) or "bfloat16" (faster on
            hardware with bfloat16 units, see `ssma_tf.inference.rewrites`; needs `optimize` and an `AdapNetPP`,
            `SSMA` or `FusionBaseline`).

    Attributes:
        eval_function: the compiled per-batch function (its tracing count shows it is traced once).
        network: the model the predictions come from (the fast copy, or `model`).
        non_finite: how many pixels had probabilities that are not all finite (NaN or inf), until `reset`.
    """

    def __init__(
        self,
        model: keras.Model,
        num_classes: int,
        element_spec: Any,
        *,
        scales: Sequence[float] = (1.0,),
        flip: bool = False,
        modality2_interpolation: Union[str, Sequence[str]] = "nearest",
        input_modality: str = "modality1",
        jit_compile: bool = False,
        optimize: bool = True,
        precision: str = "float32",
    ):
        self.model = model
        self.network = model
        # Before any work: a model of fewer classes than counted scored low without a word.
        check_class_axis(getattr(model, "num_classes", None), num_classes)
        # The fusion baselines too, as `ssma-predict` runs them (before: `ssma-evaluate --precision
        # bfloat16` of a baseline was this error's traceback, which predicting did not meet).
        fast = optimize and isinstance(model, (AdapNetPP, SSMA, FusionBaseline))
        if check_precision(precision) != "float32" and not fast:
            raise ValueError(f"precision={precision!r} needs optimize=True and an AdapNetPP, SSMA or fusion baseline")
        if fast:
            self.network = optimize_for_inference(model, precision=precision)
        network = self.network
        self.num_classes = int(num_classes)
        self.scales = tuple(float(s) for s in scales)
        self.flip = bool(flip)
        if not self.scales or any(s <= 0 for s in self.scales):
            raise ValueError(f"scales must be positive numbers, got {list(scales)}")
        self.counts = tf.Variable(
            tf.zeros((self.num_classes, self.num_classes), tf.int64), trainable=False, name="confusion"
        )
        self.images = tf.Variable(0, dtype=tf.int64, trainable=False, name="images")
        self.non_finite = tf.Variable(0, dtype=tf.int64, trainable=False, name="non_finite_pixels")

        def predict(inputs):
            return predict_probabilities(network, inputs, self.scales, self.flip, modality2_interpolation,
                                         input_modality)

        if jit_compile:
            predict = tf.function(predict, jit_compile=True)

        def eval_function(inputs, labels):
            probs = predict(inputs)
            counts = batch_confusion_matrix(labels, probs, self.num_classes)
            self.counts.assign_add(tf.cast(counts, tf.int64))
            self.images.assign_add(tf.cast(tf.shape(labels)[0], tf.int64))
            # Counted because a NaN row's argmax is 0, void (before: a damaged network scored mIoU 0.000, as if
            # it predicted void everywhere, without a word; helper 308).
            finite = tf.reduce_all(tf.math.is_finite(probs), axis=-1)
            self.non_finite.assign_add(tf.reduce_sum(tf.cast(tf.logical_not(finite), tf.int64)))

        # Each Evaluator traces its own function once. TensorFlow counts traces per function body
        # (`__code__`) across instances and warned "5 out of the last 5 calls ... triggered
        # tf.function retracing" once a process had evaluated five models (`ssma_tf.cli.fusion_table`);
        # a partial has no `__code__`, so its traces are counted for this Evaluator alone.
        self.eval_function = tf.function(functools.partial(eval_function), input_signature=list(element_spec))

    def reset(self) -> None:
        """Forgets the counts."""
        self.counts.assign(tf.zeros_like(self.counts))
        self.images.assign(0)
        self.non_finite.assign(0)

    def run(
        self,
        dataset: tf.data.Dataset,
        *,
        skip_step: Optional[int] = None,
        log: Optional[Callable[[str], None]] = None,
    ) -> ConfusionMatrix:
        """Evaluates every batch of `dataset` (counts add up over calls until `reset`).

        Args:
            dataset: batches of `(inputs, labels)` matching the element spec.
            skip_step: report progress every this many batches (None: never).
            log: where progress lines go (default `print`).

        Returns:
            A `ConfusionMatrix` holding the counts so far.
        """
        log = log or (lambda line: print(line, flush=True))
        start = time.perf_counter()
        batches = 0
        for inputs, labels in dataset:
            self.eval_function(inputs, labels)
            batches += 1
            if skip_step and batches % skip_step == 0:
                log(_progress_line(batches, int(self.images.numpy()), time.perf_counter() - start))
        confusion = ConfusionMatrix(self.num_classes)
        confusion.update_from_matrix(self.counts.numpy(), int(self.images.numpy()))
        return confusion


def _warn_of_label_problems(config: Any, log: Callable[[str], None]) -> None:
    """Logs a warning when the first test labels hold no class pixel or ids >= num_classes: every metric
    leaves those pixels out."""
    warning = label_ids_warning(list_record_files(config.test_data), config.num_classes, what="test_data",
                                evaluating=True)
    if warning:
        log(f"warning: {warning}")


def _class_names(config: Any) -> Optional[list]:
    # An own dataset is described in the config's `palette` file, not the shipped one.
    info = dataset_info_or_none(config.dataset, getattr(config, "palette", None), config.num_classes)
    return list(info.class_names) if info is not None else None


def evaluate(
    config: Any,
    *,
    model: Optional[keras.Model] = None,
    log: Optional[Callable[[str], None]] = None,
    precision: str = "float32",
) -> EvaluationResult:
    """Evaluates `config.checkpoint` on `config.test_data`.

    Args:
        config: an evaluation `RunConfig` (`ssma_tf.config.load_config(path, "eval")`).
        model: a model with weights already loaded (skips building and loading).
        log: where progress lines go (default `print`).
        precision: "float32" or "bfloat16" (see `Evaluator`).

    Returns:
        The `EvaluationResult`.
    """
    log = log or (lambda line: print(line, flush=True))
    started = time.perf_counter()
    if model is None:
        # Before any TensorFlow work: CUDA reads the device list once, when it starts.
        configure_devices(config.gpu_id)
        check_checkpoint_fits(config, config.checkpoint)  # seconds, not the minutes of a build
    dataset = make_eval_dataset(config)
    _warn_of_label_problems(config, log)
    if config.checkpoint:
        swapped = other_input_modality_warning(config, str(config.checkpoint))
        if swapped is not None:
            log(f"warning: {swapped}")
    if model is None and str(config.checkpoint).endswith(".keras"):
        # The file holds the network itself, pruned widths included.
        model = model_from_config(config)
        log(f"loaded {config.checkpoint}")
    if model is None:
        model = build_model(config)
        log(f"loaded {load_weights(model, config.checkpoint)}")
    jit_compile = config.xla
    if jit_compile and precision == "bfloat16" and not tf.config.list_logical_devices("GPU"):
        # XLA's CPU code runs bfloat16 without oneDNN's AMX kernels: 0.263 s an image where bfloat16
        # alone took 0.119 and float32 0.206 (helper 218).
        jit_compile = False
        log("xla is not used with bfloat16 on a CPU: XLA compiles it without the bfloat16 matrix units' kernels, "
            "slower than float32")
    evaluator = Evaluator(
        model,
        config.num_classes,
        dataset.element_spec,
        scales=config.eval_scales,
        flip=config.eval_flip,
        modality2_interpolation=config.interpolations,
        input_modality=config.input_modality or "modality1",
        jit_compile=jit_compile,
        precision=precision,
    )
    if evaluator.network is not model:
        log(f"inference copy: {evaluator.network.folded_batch_norms} batch norms folded, "
            f"{evaluator.network.subpixel_layers} upsamplings in sub-pixel form, {precision}")
    with naming_damaged_records(config.test_data):  # a damaged record: its file and index
        confusion = evaluator.run(dataset, skip_step=config.skip_step, log=log)
    names = _class_names(config)
    metrics = confusion.summary(names)
    seconds = time.perf_counter() - started
    metrics.update(
        checkpoint=config.checkpoint,
        scales=list(config.eval_scales),
        flip=bool(config.eval_flip),
        precision=precision,
        seconds=round(seconds, 3),
    )
    non_finite = int(evaluator.non_finite.numpy())
    metrics["non_finite_pixels"] = non_finite
    warning = non_finite_warning(non_finite, int(confusion.matrix.sum()))
    if warning:
        log(f"warning: {warning}" + (f" (checkpoint {config.checkpoint})" if config.checkpoint else ""))
    if confusion.num_pixels == 0:
        log("warning: the test data holds no labelled (non-void) pixel; every metric is 0 or undefined")
    return EvaluationResult(metrics, confusion, names)


def evaluate_exported(
    config: Any,
    folder: str,
    backend: str,
    *,
    log: Optional[Callable[[str], None]] = None,
    threads: Optional[int] = None,
) -> EvaluationResult:
    """Evaluates an OpenVINO or TFLite export (`ssma-export --format ...`) on `config.test_data`.

    The same records, resizing and released mIoU as `evaluate`, so a quantised model's accuracy is
    measured, not assumed. The export's size, classes, modalities and fusion must be the
    config's; multi-scale and flip testing are not offered here.

    Args:
        config: an evaluation `RunConfig` (its `checkpoint` is not used).
        folder: the export folder.
        backend: "openvino" or "tflite".
        log: where progress lines go (default `print`).
        threads: CPU threads of the runtime (None: its default).

    Returns:
        The `EvaluationResult`; `metrics` name the export, its fusion, the backend and the precision.

    Raises:
        ExportedModelError: the folder holds no such export, or it does not fit the config.
        MissingExtraError: the runtime is not installed.
    """
    from ssma_tf.inference.backends import ExportedModelError, load_exported

    log = log or (lambda line: print(line, flush=True))
    started = time.perf_counter()
    exported = load_exported(folder, backend, threads)
    meta = exported.metadata
    log(f"loaded {folder} ({backend}, {exported.precision})")
    # The fusion the export holds (None: an AdapNet++; metadata without it: SSMA's), compared with
    # the config's (before: a late-fusion export scored under a cmode or SSMA config without a
    # word). A config read from the export's own metadata (`export_config`) has its fusion.
    fusion = (meta.get("fusion") or SSMA_FUSION) if config.is_fusion and meta["model"] == config.model else None
    mismatches = [
        f"{what} {theirs} (the config has {ours})"
        for what, theirs, ours in (
            ("size", tuple(exported.size), (config.height, config.width)),
            ("classes", exported.num_classes, config.num_classes),
            ("model", meta["model"], config.model),
            ("modalities", exported.num_modalities, config.num_modalities),
            ("fusion", fusion, fusion if fusion is None else (config.fusion or SSMA_FUSION)),
            # An expert exported for one modality, evaluated on another's images.
            ("input_modality", meta.get("input_modality") or "modality1",
             "modality1" if config.is_fusion else (config.input_modality or "modality1")),
        )
        if theirs != ours
    ]
    if not mismatches:
        # How the records are resized for the network: the config's here, the export's metadata
        # when it runs alone (before: not compared, and one export scored two mIoUs).
        reads = "modality1" if config.is_fusion else (config.input_modality or "modality1")
        theirs = resize_methods(meta.get("modality2_interpolation") or "nearest", exported.num_modalities, reads)
        ours = resize_methods(config.interpolations, config.num_modalities, reads)
        if theirs != ours:
            mismatches.append(f"resize methods {list(theirs)} (the config has {list(ours)}: its "
                              "modality2_interpolation or modality_interpolations)")
    if mismatches:
        raise ExportedModelError(f"{folder} does not fit {config.source}: it has {'; '.join(mismatches)}", folder)
    if tuple(config.eval_scales) != (1.0,) or config.eval_flip:
        raise ExportedModelError(
            f"{config.source}: eval_scales/eval_flip need the TensorFlow backend (the export has a fixed size)",
            config.source,
        )
    dataset = make_eval_dataset(config)
    _warn_of_label_problems(config, log)
    counts = tf.zeros((config.num_classes, config.num_classes), tf.int64)
    images = non_finite = 0
    # The rate from the first batch on, as the TensorFlow path's (before: from before the export was
    # loaded and compiled, 13x too low on six images; helper 232).
    looping = time.perf_counter()
    with naming_damaged_records(config.test_data):  # a damaged record: its file and index
        for batch, (inputs, labels) in enumerate(dataset, start=1):
            views = [v.numpy() for v in inputs] if isinstance(inputs, (tuple, list)) else [inputs.numpy()]
            probabilities = exported(views)
            non_finite += non_finite_pixels(probabilities)  # as `Evaluator` counts them
            counts += tf.cast(batch_confusion_matrix(labels, probabilities, config.num_classes), tf.int64)
            images += int(labels.shape[0])
            if config.skip_step and batch % config.skip_step == 0:
                log(_progress_line(batch, images, time.perf_counter() - looping))
    confusion = ConfusionMatrix(config.num_classes)
    confusion.update_from_matrix(counts.numpy(), images)
    names = _class_names(config)
    stored = meta.get("class_names")
    if names is None and isinstance(stored, list) and len(stored) == config.num_classes:
        # The export's own names (an own dataset's palette file is not at hand when the export is
        # evaluated on its own; before: the table and JSON said class_1, class_2, ...).
        names = [str(name) for name in stored]
    metrics = confusion.summary(names)
    metrics.update(
        checkpoint=os.fspath(folder),
        fusion=fusion,  # which network the export is, as its metadata says (None: an AdapNet++)
        backend=backend,
        precision=exported.precision,
        scales=[1.0],
        flip=False,
        seconds=round(time.perf_counter() - started, 3),
        non_finite_pixels=non_finite,
    )
    warning = non_finite_warning(non_finite, int(confusion.matrix.sum()))
    if warning:
        log(f"warning: {warning} (the export {os.fspath(folder)})")
    return EvaluationResult(metrics, confusion, names)
