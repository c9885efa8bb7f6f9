"""Evaluation metrics from a confusion matrix, with the released definition of mIoU.

The released evaluation (docs/architecture.md, "Loss, schedule and evaluation"): prediction =
argmax of the softmax, set to 0 (void) wherever the ground truth is void; TP, FP and FN per class
over the whole set; and

    mIoU = 100 / (C−1) · Σ_{c=1}^{C−1} TP_c / (TP_c + FP_c + FN_c + 1e-10)

so class 0 is left out and a class absent from both ground truth and prediction counts as 0 (it is
not skipped). Labels ≥ C are void, as the original one-hot encoding made them all-zero rows.

Next to it this module gives what the paper reports beside mIoU and what people usually compare
with. All of them are percentages over the non-void pixels (ground truth 1..C−1):

- per-class IoU: TP / (TP + FP + FN), undefined (NaN) for a class absent from ground truth and
  prediction;
- mean IoU over present classes: the mean of the defined per-class IoUs;
- pixel accuracy: Σ TP / number of non-void pixels;
- global IoU: Σ_c TP_c / Σ_c (TP_c + FP_c + FN_c) over classes 1..C−1, i.e. the IoU of the
  pooled counts, which weights classes by their size;
- FPR_c = FP / (FP + TN) and FNR_c = FN / (FN + TP), with TN counted over non-void pixels, and
  their means over the classes where they are defined.

Rows of the matrix are ground truth, columns prediction.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Optional, Sequence

import keras
import numpy as np
from keras import ops

from ssma_tf import SERIALIZATION_PACKAGE
from ssma_tf.constants import generic_class_names
from ssma_tf.labels import as_read, has_id_axis, refuse_fractional_ids

# The released constant in the mIoU denominator (only matters for absent classes: 0 / 1e-10 = 0).
IOU_EPSILON = 1e-10


def check_one_hot_channels(shape: Any, num_classes: int) -> None:
    """Raises ValueError when one-hot labels of `shape` (a last axis of None: not known) do not
    have `num_classes` channels: ids on 3 channels (a label PNG read as RGB) would count as void."""
    if shape[-1] is not None and int(shape[-1]) != int(num_classes):
        raise ValueError(f"one-hot labels must have {num_classes} channels, got shape {tuple(shape)}")


def _flatten_labels(labels: np.ndarray, rank: int, num_classes: int) -> np.ndarray:
    """Sparse int64 ground truth with every void pixel (id 0, ids outside [0, C)) set to 0."""
    if has_id_axis(labels.shape, rank + 1):
        labels = labels[..., 0]
    if labels.ndim == rank + 1:
        check_one_hot_channels(labels.shape, num_classes)
        # As released: argmax of the one-hot label, so an all-zero row (id >= C) is void.
        ids = np.argmax(labels, axis=-1)
    elif labels.ndim == rank:
        if np.issubdtype(labels.dtype, np.floating) or labels.dtype.name == "bfloat16":
            refuse_fractional_ids(labels)
        ids = labels.astype(np.int64)
        ids[(ids < 0) | (ids >= num_classes)] = 0
    else:
        raise ValueError(f"labels of shape {labels.shape} do not fit predictions of rank {rank}")
    return ids.astype(np.int64)


def non_finite_pixels(probabilities: Any) -> int:
    """How many pixels of NumPy probabilities (..., C) are not all finite (NaN or inf): what
    `non_finite_warning` is given, and what the `Evaluator` counts on the device."""
    return int((~np.isfinite(np.asarray(probabilities)).all(axis=-1)).sum())


def non_finite_warning(count: int, pixels: int) -> Optional[str]:
    """The warning for `count` of `pixels` pixels whose predicted probabilities are not all finite (None for
    none): their argmax is no prediction, and an all-NaN row's is 0, void (before: a damaged network
    scored mIoU 0 as if it predicted void everywhere, without a word; helper 308)."""
    if count <= 0:
        return None
    return (f"the network gave non-finite probabilities (NaN or inf) at {count} of {pixels} pixels "
            f"({100.0 * count / max(pixels, 1):.1f} %): they count as predictions of void (class 0), or of an "
            "arbitrary class where only some classes are NaN; its weights may be damaged or its precision "
            "overflowed")


def _refuse_float_ids(labels: np.ndarray, preds: np.ndarray) -> None:
    """ValueError where floating predictions are class ids, not probabilities: they have the
    shape of sparse labels (before: their argmax was taken over the image's width, and with a
    width of C classes the metrics were of pixel positions, without a word; helper 203)."""
    sparse = labels.shape in (preds.shape, preds.shape + (1,))
    # One-hot (or soft) labels have the predictions' shape too: floating values in [0, 1], each
    # pixel's summing to 1 at most (0: void). Integer labels are ids (helper 213: ids of 0 and 1,
    # at most one 1 in a row of the image, passed for one-hot, and a width of C was counted).
    integer = np.issubdtype(labels.dtype, np.integer)
    looks_one_hot = labels.shape == preds.shape and labels.size and labels.min() >= 0 and labels.max() <= 1 \
        and labels.sum(axis=-1, dtype=np.float64).max() <= 1 + 1e-6
    if sparse and not (looks_one_hot and not integer):
        if integer and looks_one_hot:
            # Integer one-hot labels beside probabilities, or ids beside float ids (helper 220).
            raise ValueError(f"the labels ({labels.dtype}, shape {labels.shape}) have the shape of the predictions: "
                             "integer labels of that shape are class ids; give one-hot labels as floats, or cast "
                             "class-id predictions to integers")
        if labels.shape == preds.shape and labels.max() > 1 and not _whole_above_one(preds):
            # Colour label images beside probabilities of 3 classes, as integers or as the floats
            # `keras.utils.img_to_array` gives (before: the valid probabilities were blamed as class
            # ids in a floating type; helpers 308, 320).
            raise ValueError(f"the labels ({labels.dtype}, shape {labels.shape}) have the shape of the predictions "
                             f"and hold values up to {labels.max()}: colour label images? give class ids (B, H, W) "
                             "or (B, H, W, 1)")
        raise ValueError(f"the predictions ({preds.dtype}, shape {preds.shape}) have the shape of the labels "
                         f"{labels.shape}: class ids in a floating type, not probabilities or logits over a last "
                         "axis of classes; cast them to integers")


def _whole_above_one(preds: np.ndarray) -> bool:
    """True where floating predictions look like class ids: finite whole numbers, some above 1 (probabilities
    are in [0, 1]; logits are rarely all whole)."""
    values = preds.astype(np.float64)
    return bool(values.size and np.isfinite(values).all() and (values == np.floor(values)).all() and values.max() > 1)


class ConfusionMatrix:
    """Streaming confusion matrix over an evaluation set, and the metrics computed from it.

    Args:
        num_classes: C, void (class 0) included.
        class_names: optional C names (index 0 is void) for `summary` and `format_table`.

    Example:
        cm = ConfusionMatrix(12)
        for images, labels in dataset:
            cm.update(labels, model(images, training=False))
        print(cm.format_table())
    """

    def __init__(self, num_classes: int, class_names: Optional[Sequence[str]] = None):
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        self.num_classes = int(num_classes)
        self.class_names = self._check_names(class_names)
        self.reset()

    def _check_names(self, class_names: Optional[Sequence[str]]) -> Optional[list[str]]:
        if class_names is None:
            return None
        names = [str(n) for n in class_names]
        if len(names) != self.num_classes:
            raise ValueError(
                f"expected {self.num_classes} class names (void first), got {len(names)}"
            )
        return names

    def reset(self) -> None:
        """Forgets everything counted so far."""
        self.matrix = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)
        self.num_images = 0

    # --- Counting -----------------------------------------------------------------------------

    def update(self, labels: Any, predictions: Any) -> None:
        """Adds a batch.

        Args:
            labels: ground truth, sparse ids (B, H, W) or (B, H, W, 1), or one-hot (B, H, W, C) as floats;
                NumPy or tensors. Ids outside [0, C) are void.
            predictions: integer class ids (B, H, W), or float probabilities or logits
                (B, H, W, C) whose argmax is the prediction, or the models' training-time
                output dict (its "softmax").

        Warns:
            RuntimeWarning: probabilities that are not all finite (NaN or inf) at some pixels.

        Raises:
            ValueError: on shapes that do not match, predicted ids outside [0, C), or floating sparse labels
                that are not whole numbers.
        """
        # The models' training-time dict counts by its softmax, as the Keras metrics below take it
        # (before: "labels of shape (2, 8, 8) do not fit predictions of rank 0"; helper 278).
        preds, labels = np.asarray(_main_output(predictions)), np.asarray(labels)  # a tensor's copy made once
        # bfloat16 (ml_dtypes, from a bfloat16 tensor) is no NumPy floating type: it was taken for
        # class ids and the labels blamed for the rank.
        if np.issubdtype(preds.dtype, np.floating) or preds.dtype.name == "bfloat16":
            _refuse_float_ids(labels, preds)
            check_class_axis(preds.shape[-1], self.num_classes)
            warning = non_finite_warning(non_finite_pixels(preds), preds.size // preds.shape[-1])
            if warning:
                warnings.warn(warning, RuntimeWarning, stacklevel=2)
            preds = np.argmax(preds, axis=-1)
        gt = _flatten_labels(labels, preds.ndim, self.num_classes)
        if gt.shape != preds.shape:
            raise ValueError(f"labels {gt.shape} and predictions {preds.shape} differ in shape")
        preds = preds.astype(np.int64)
        if preds.size and (preds.min() < 0 or preds.max() >= self.num_classes):
            raise ValueError(
                f"predicted ids must be in [0, {self.num_classes}), "
                f"got {preds.min()}..{preds.max()}"
            )
        # As released: no prediction is counted on void ground truth.
        preds = np.where(gt == 0, 0, preds)
        counts = np.bincount(
            (gt * self.num_classes + preds).ravel(), minlength=self.num_classes**2
        )
        self.matrix += counts.reshape(self.num_classes, self.num_classes)
        self.num_images += int(gt.shape[0]) if gt.ndim >= 3 else 1

    def update_from_matrix(self, matrix: Any, num_images: int = 0) -> None:
        """Adds counts computed elsewhere, e.g. by `batch_confusion_matrix` on the device.

        Args:
            matrix: (C, C) counts, rows ground truth, columns prediction.
            num_images: how many images the counts cover.
        """
        matrix = np.asarray(matrix)
        if matrix.dtype == object:  # Python ints beyond uint64 (helper 220: NumPy's TypeError)
            matrix = matrix.astype(np.float64)
        if matrix.shape != self.matrix.shape:
            raise ValueError(f"expected a {self.matrix.shape} matrix, got {matrix.shape}")
        # Before: a fraction was cut (1.7 counted 1) and a negative count added as it was.
        # Nor were inf and counts beyond int64 refused: cast, they became -2^63 (helper 213).
        with np.errstate(invalid="ignore", over="ignore"):
            too_big = matrix >= 2.0**63 if np.issubdtype(matrix.dtype, np.floating) else matrix > np.iinfo(np.int64).max
            bad = np.argwhere(~np.isfinite(matrix) | (matrix < 0) | (matrix != np.floor(matrix)) | too_big) \
                if matrix.size else ()
        if len(bad):
            row, column = (int(i) for i in bad[0])
            value = matrix[row, column].item()
            raise ValueError(f"counts must be whole numbers in 0..2^63-1, but the matrix holds {value!r} at row {row}, "
                             f"column {column} (ground truth {row}, prediction {column})")
        matrix = matrix.astype(np.int64)
        room = np.iinfo(np.int64).max - self.matrix  # the running total overflowed without a word
        if np.any(matrix > room):
            row, column = (int(i) for i in np.argwhere(matrix > room)[0])
            raise ValueError(f"adding {matrix[row, column]} at row {row}, column {column} would take the count past "
                             "2^63-1")
        self.matrix += matrix
        self.num_images += int(num_images)

    def merge(self, other: "ConfusionMatrix") -> None:
        """Adds the counts of another accumulator (e.g. from another worker)."""
        self.update_from_matrix(other.matrix, other.num_images)

    # --- Counts per class (index 0 is void; only non-void ground truth rows count) ------------

    @property
    def _valid(self) -> np.ndarray:
        return self.matrix[1:, :].astype(np.float64)

    @property
    def true_positives(self) -> np.ndarray:
        """TP per class (length C; entry 0 is 0 since void is never counted)."""
        tp = np.diag(self.matrix).astype(np.float64).copy()
        tp[0] = 0
        return tp

    @property
    def false_positives(self) -> np.ndarray:
        """FP per class: predicted c on non-void pixels of another class."""
        fp = np.concatenate([[0.0], self._valid.sum(axis=0)[1:]]) - self.true_positives
        fp[0] = 0
        return fp

    @property
    def false_negatives(self) -> np.ndarray:
        """FN per class: ground truth c predicted as anything else (void included)."""
        fn = self.matrix.sum(axis=1).astype(np.float64) - self.true_positives
        fn[0] = 0
        return fn

    @property
    def num_pixels(self) -> int:
        """Number of non-void ground-truth pixels counted."""
        return int(self.matrix[1:, :].sum())

    @property
    def true_negatives(self) -> np.ndarray:
        """TN per class over the non-void pixels."""
        tn = self.num_pixels - self.true_positives - self.false_positives - self.false_negatives
        tn[0] = 0
        return tn

    # --- Metrics (percent) --------------------------------------------------------------------

    def miou(self) -> float:
        """The released mIoU: 100/(C−1) Σ_{c≥1} TP/(TP+FP+FN+1e-10), absent classes count 0."""
        tp, fp, fn = self.true_positives, self.false_positives, self.false_negatives
        per_class = tp[1:] / (tp[1:] + fp[1:] + fn[1:] + IOU_EPSILON)
        return float(100.0 * per_class.sum() / (self.num_classes - 1))

    def iou(self) -> np.ndarray:
        """Per-class IoU in percent (length C); NaN for void and for absent classes."""
        tp, fp, fn = self.true_positives, self.false_positives, self.false_negatives
        return _ratio(tp, tp + fp + fn)

    def mean_iou_present(self) -> float:
        """Mean IoU over the classes 1..C−1 present in ground truth or prediction."""
        return _nanmean(self.iou()[1:])

    def pixel_accuracy(self) -> float:
        """Percent of non-void pixels predicted correctly."""
        return float(_ratio(self.true_positives.sum(), float(self.num_pixels)))

    def global_iou(self) -> float:
        """Σ TP / Σ (TP + FP + FN) over classes 1..C−1, in percent."""
        tp, fp, fn = self.true_positives, self.false_positives, self.false_negatives
        return float(_ratio(tp[1:].sum(), (tp + fp + fn)[1:].sum()))

    def fpr(self) -> np.ndarray:
        """Per-class false positive rate FP / (FP + TN) in percent; NaN for void."""
        fp = self.false_positives
        return _ratio(fp, fp + self.true_negatives)

    def fnr(self) -> np.ndarray:
        """Per-class false negative rate FN / (FN + TP) in percent; NaN for void and absent."""
        fn = self.false_negatives
        return _ratio(fn, fn + self.true_positives)

    # --- Reports ------------------------------------------------------------------------------

    def _names(self, class_names: Optional[Sequence[str]]) -> list[str]:
        names = self._check_names(class_names) or self.class_names
        return names or generic_class_names(self.num_classes)

    def summary(self, class_names: Optional[Sequence[str]] = None) -> dict[str, Any]:
        """All metrics as a JSON-serialisable dict (undefined values are None).

        Args:
            class_names: C names (void first); default the constructor's, else `class_<id>`.

        Returns:
            A dict with `mIoU` (released definition), `mean_iou_present`, `pixel_accuracy`,
            `global_iou`, `mean_fpr`, `mean_fnr` (percent), the counts `num_images`,
            `num_pixels` (non-void), `num_classes`, and `per_class`: a list (classes 1..C−1) of
            dicts with `id`, `name`, `iou`, `fpr`, `fnr`, `tp`, `fp`, `fn`, `gt_pixels`.
        """
        names = self._names(class_names)
        iou, fpr, fnr = self.iou(), self.fpr(), self.fnr()
        tp, fp, fn = self.true_positives, self.false_positives, self.false_negatives
        per_class = [
            {
                "id": c,
                "name": names[c],
                "iou": _json_float(iou[c]),
                "fpr": _json_float(fpr[c]),
                "fnr": _json_float(fnr[c]),
                "tp": int(tp[c]),
                "fp": int(fp[c]),
                "fn": int(fn[c]),
                "gt_pixels": int(tp[c] + fn[c]),
            }
            for c in range(1, self.num_classes)
        ]
        return {
            "mIoU": _json_float(self.miou()),
            "mean_iou_present": _json_float(self.mean_iou_present()),
            "pixel_accuracy": _json_float(self.pixel_accuracy()),
            "global_iou": _json_float(self.global_iou()),
            "mean_fpr": _json_float(_nanmean(fpr[1:])),
            "mean_fnr": _json_float(_nanmean(fnr[1:])),
            "num_images": int(self.num_images),
            "num_pixels": self.num_pixels,
            "num_classes": self.num_classes,
            "per_class": per_class,
        }

    def format_table(self, class_names: Optional[Sequence[str]] = None, digits: int = 2) -> str:
        """A text table of the per-class metrics and the summary, ending with `mIoU: <value>`.

        Args:
            class_names: C names (void first); default the constructor's, else `class_<id>`.
            digits: decimals of the percentages in the table (the last line always has 3).

        Returns:
            The table as one string (no trailing newline).
        """
        s = self.summary(class_names)
        width = max([len("class")] + [len(row["name"]) for row in s["per_class"]])
        num = 7 + digits

        def pct(value: Optional[float]) -> str:
            return f"{'-':>{num}}" if value is None else f"{value:>{num}.{digits}f}"

        lines = [
            f"{'id':>3}  {'class':<{width}}  {'IoU':>{num}}  {'FPR':>{num}}  {'FNR':>{num}}"
            f"  {'pixels':>12}"
        ]
        for row in s["per_class"]:
            lines.append(
                f"{row['id']:>3}  {row['name']:<{width}}  {pct(row['iou'])}  {pct(row['fpr'])}"
                f"  {pct(row['fnr'])}  {row['gt_pixels']:>12}"
            )
        lines.append("")
        lines.append(f"images: {s['num_images']}, non-void pixels: {s['num_pixels']}")
        for label, key in (
            ("mean IoU over present classes", "mean_iou_present"),
            ("pixel accuracy", "pixel_accuracy"),
            ("global IoU", "global_iou"),
            ("mean FPR", "mean_fpr"),
            ("mean FNR", "mean_fnr"),
        ):
            lines.append(f"{label}: {pct(s[key]).strip()}")
        lines.append(f"mIoU: {s['mIoU']:.3f}")
        return "\n".join(lines)


def check_class_axis(predicted: Optional[int], num_classes: int) -> None:
    """Raises ValueError when predictions of `predicted` classes (their last axis; None: not known)
    are counted as `num_classes`: the classes past theirs would count as never predicted, a lower
    mIoU without a word (and fewer would fold classes together)."""
    if predicted is not None and int(predicted) != int(num_classes):
        raise ValueError(f"the predictions have {predicted} classes (their last axis), but the confusion matrix "
                         f"counts {num_classes}: give it the model's num_classes")


def batch_confusion_matrix(labels: Any, predictions: Any, num_classes: int, compilable: bool = False) -> Any:
    """The (C, C) confusion counts of one batch, with backend ops (usable inside `tf.function`).

    Counting on the device avoids copying the (B, H, W, C) probabilities to the host; add the
    result to a `ConfusionMatrix` with `update_from_matrix` (sum it over replicas first when
    evaluating with `tf.distribute`). Same conventions as `ConfusionMatrix.update`.

    Args:
        labels: sparse ids (B, H, W) or (B, H, W, 1), or one-hot (B, H, W, C) as floats. Sparse
            floats that are not whole ids are refused as `ConfusionMatrix.update` refuses them (in a
            `tf.function`, when the batch runs; unchecked under XLA and JAX: `ssma_tf.labels`).
        predictions: probabilities or logits (B, H, W, C).
        num_classes: C.
        compilable: count with an op of a fixed output size, which XLA compiles (the Keras
            metrics, which `compile(jit_compile=...)` may put under XLA: Keras' default on a
            GPU); on TensorFlow's CPU kernels it is slower than the bincount used otherwise
            (33 against 1.7 ms for 8 images at 384×768). JAX always counts this way.

    Returns:
        An int32 tensor (C, C), rows ground truth, columns prediction.
    """
    predictions = _main_output(predictions)  # as `ConfusionMatrix.update`
    check_class_axis(predictions.shape[-1], num_classes)
    preds = ops.cast(ops.argmax(predictions, axis=-1), "int32")
    labels = as_read(labels, len(predictions.shape), num_classes)
    if len(labels.shape) == len(predictions.shape):
        # As `ConfusionMatrix.update` (before: labels read as RGB counted every pixel as void,
        # metrics of 0 without a word; C + 1 channels dropped pixels under XLA).
        check_one_hot_channels(labels.shape, num_classes)
        gt = ops.cast(ops.argmax(labels, axis=-1), "int32")
    else:
        gt = ops.cast(labels, "int32")
        gt = ops.where(ops.logical_or(gt < 0, gt >= num_classes), ops.zeros_like(gt), gt)
    preds = ops.where(gt == 0, ops.zeros_like(preds), preds)
    flat = ops.reshape(gt * num_classes + preds, (-1,))
    if compilable or keras.backend.backend() == "jax":
        # XLA (and JAX's compiler) takes a bincount only with a fixed length, which Keras'
        # bincount does not pass (before: `fit` with these metrics failed under XLA and on JAX:
        # "DenseBincount must be a compile-time constant"); a segment sum has one.
        counts = ops.segment_sum(ops.ones_like(flat), flat, num_segments=num_classes * num_classes)
    else:
        counts = ops.bincount(flat, minlength=num_classes * num_classes)
    return ops.cast(ops.reshape(counts, (num_classes, num_classes)), "int32")


# --- Keras metrics ------------------------------------------------------------------------------


def _main_output(y_pred: Any) -> Any:
    """The softmax of the models' training-time output dict, or `y_pred` itself."""
    return y_pred["softmax"] if isinstance(y_pred, dict) else y_pred


def _safe_ratio(numerator: Any, denominator: Any) -> Any:
    """100 · numerator / denominator with backend ops, NaN where the denominator is 0."""
    defined = denominator > 0
    value = 100.0 * numerator / ops.where(defined, denominator, ops.ones_like(denominator))
    return ops.where(defined, value, ops.full_like(value, math.nan))


def _ops_nanmean(values: Any) -> Any:
    """The mean of the defined (non-NaN) entries, NaN if there are none."""
    defined = ops.logical_not(ops.isnan(values))
    count = ops.sum(ops.cast(defined, values.dtype))
    total = ops.sum(ops.where(defined, values, ops.zeros_like(values)))
    return ops.where(count > 0, total / ops.maximum(count, 1.0), ops.cast(math.nan, values.dtype))


def _wide_float() -> str:
    """float64, or float32 on JAX without 64-bit mode (which would truncate float64 to it, with a
    warning at every call)."""
    if keras.backend.backend() == "jax":
        import jax

        return "float64" if jax.config.jax_enable_x64 else "float32"
    return "float64"


# The unit of a metric's high count variable: its low one holds the rest (see ConfusionMatrixMetric).
_COUNT_UNIT = 1 << 20


class ConfusionMatrixMetric(keras.metrics.Metric):
    """Base of the Keras metrics: a (C, C) confusion matrix counted as `ConfusionMatrix` does.

    `update_state` counts a batch with `batch_confusion_matrix` (the released conventions: void
    ground truth never counted, ids outside [0, C) void) into a variable, so `model.fit` and
    `model.evaluate` accumulate over a whole epoch and the result is the set's metric, not a mean
    over batches. `y_pred` is the softmax (B, H, W, C), or the dict the models return while
    training (its `softmax` is used). Subclasses turn the per-class counts into one number with
    the same formulas as the `ConfusionMatrix` method of the same name.

    Args:
        num_classes: C, void (class 0) included.
        name: the metric's name in logs.
        dtype: the dtype of the result (ratios are computed in float64 where the backend has
            it, so that they match the NumPy accumulator on full-size sets).

    The counts are kept exactly past 2**31 pixels a cell (about 2,500 full Cityscapes images for
    a frequent class) on every backend: as two int32 variables, whole multiples of 2**20 and the
    rest, because JAX without 64-bit mode truncates int64 variables to int32 (before: the counts
    wrapped round to negative numbers there, and the metric was wrong without a word).
    """

    def __init__(self, num_classes: int, name: Optional[str] = None, dtype: Any = None):
        if int(num_classes) < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        super().__init__(name=name, dtype=dtype)
        self.num_classes = int(num_classes)
        shape = (self.num_classes, self.num_classes)
        self.counts_high = self.add_variable(shape=shape, initializer="zeros", dtype="int32", aggregation="sum",
                                             name="confusion_high")
        self.counts_low = self.add_variable(shape=shape, initializer="zeros", dtype="int32", aggregation="sum",
                                            name="confusion_low")

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        if sample_weight is not None:
            raise ValueError(f"{type(self).__name__} counts pixels and takes no sample_weight")
        predictions = _main_output(y_pred)
        if predictions.shape[-1] is not None and predictions.shape[-1] != self.num_classes:
            # More classes than the model's would count as never predicted (a lower mIoU, silently).
            raise ValueError(f"{type(self).__name__} {self.name!r} counts {self.num_classes} classes, but the model "
                             f"predicts {predictions.shape[-1]}: give the metrics the model's num_classes")
        counts = batch_confusion_matrix(y_true, predictions, self.num_classes, compilable=True)
        # Only additions: under a distribution strategy every replica's are summed (the low part
        # stays within a few multiples of 2**20 however many replicas add to it).
        total = self.counts_low + counts
        carry = total // _COUNT_UNIT
        self.counts_high.assign_add(carry)
        self.counts_low.assign_add(counts - carry * _COUNT_UNIT)

    def reset_state(self) -> None:
        # ops.zeros, not zeros_like: JAX takes no Keras variable there.
        self.counts_high.assign(ops.zeros(self.counts_high.shape, "int32"))
        self.counts_low.assign(ops.zeros(self.counts_low.shape, "int32"))

    @property
    def counts(self) -> Any:
        """The (C, C) confusion counts, float64 where the backend has it (exact up to 2**53)."""
        wide = _wide_float()
        return ops.cast(self.counts_high, wide) * float(_COUNT_UNIT) + ops.cast(self.counts_low, wide)

    def class_counts(self) -> tuple[Any, Any, Any, Any]:
        """TP, FP, FN and TN per class (float64, length C, entry 0 = void = 0), as `ConfusionMatrix`."""
        matrix = self.counts
        not_void = ops.concatenate([ops.zeros((1,), matrix.dtype), ops.ones((self.num_classes - 1,), matrix.dtype)])
        tp = ops.diagonal(matrix) * not_void
        # Columns summed over non-void ground-truth rows only, rows over every column.
        fp = (ops.sum(matrix[1:, :], axis=0) - tp) * not_void
        fn = (ops.sum(matrix, axis=1) - tp) * not_void
        tn = (ops.sum(matrix[1:, :]) - tp - fp - fn) * not_void
        return tp, fp, fn, tn

    def result(self) -> Any:
        return ops.cast(self.result_from_counts(*self.class_counts()), self.dtype)

    def result_from_counts(self, tp: Any, fp: Any, fn: Any, tn: Any) -> Any:
        """The metric from per-class counts; what subclasses define."""
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {"num_classes": self.num_classes, "name": self.name, "dtype": self.dtype}


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class ReleasedMeanIoU(ConfusionMatrixMetric):
    """The released mIoU in percent (`ConfusionMatrix.miou`): void left out, absent classes 0."""

    def __init__(self, num_classes: int, name: str = "miou", dtype: Any = None):
        super().__init__(num_classes, name=name, dtype=dtype)

    def result_from_counts(self, tp, fp, fn, tn):
        per_class = tp[1:] / (tp[1:] + fp[1:] + fn[1:] + IOU_EPSILON)
        return 100.0 * ops.sum(per_class) / (self.num_classes - 1)


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class MeanIoUPresent(ConfusionMatrixMetric):
    """Mean IoU over classes present in ground truth or prediction (`ConfusionMatrix.mean_iou_present`)."""

    def __init__(self, num_classes: int, name: str = "mean_iou_present", dtype: Any = None):
        super().__init__(num_classes, name=name, dtype=dtype)

    def result_from_counts(self, tp, fp, fn, tn):
        return _ops_nanmean(_safe_ratio(tp, tp + fp + fn)[1:])


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class PixelAccuracy(ConfusionMatrixMetric):
    """Percent of non-void pixels predicted correctly (`ConfusionMatrix.pixel_accuracy`)."""

    def __init__(self, num_classes: int, name: str = "pixel_accuracy", dtype: Any = None):
        super().__init__(num_classes, name=name, dtype=dtype)

    def result_from_counts(self, tp, fp, fn, tn):
        return _safe_ratio(ops.sum(tp), ops.sum(self.counts[1:, :]))


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class GlobalIoU(ConfusionMatrixMetric):
    """Σ TP / Σ (TP + FP + FN) over the non-void classes (`ConfusionMatrix.global_iou`)."""

    def __init__(self, num_classes: int, name: str = "global_iou", dtype: Any = None):
        super().__init__(num_classes, name=name, dtype=dtype)

    def result_from_counts(self, tp, fp, fn, tn):
        return _safe_ratio(ops.sum(tp[1:]), ops.sum((tp + fp + fn)[1:]))


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class MeanFalsePositiveRate(ConfusionMatrixMetric):
    """Mean over classes of FP / (FP + TN) (`ConfusionMatrix.fpr`, `summary()["mean_fpr"]`)."""

    def __init__(self, num_classes: int, name: str = "mean_fpr", dtype: Any = None):
        super().__init__(num_classes, name=name, dtype=dtype)

    def result_from_counts(self, tp, fp, fn, tn):
        return _ops_nanmean(_safe_ratio(fp, fp + tn)[1:])


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class MeanFalseNegativeRate(ConfusionMatrixMetric):
    """Mean over classes of FN / (FN + TP) (`ConfusionMatrix.fnr`, `summary()["mean_fnr"]`)."""

    def __init__(self, num_classes: int, name: str = "mean_fnr", dtype: Any = None):
        super().__init__(num_classes, name=name, dtype=dtype)

    def result_from_counts(self, tp, fp, fn, tn):
        return _ops_nanmean(_safe_ratio(fn, fn + tp)[1:])


def released_metrics(num_classes: int) -> list[ConfusionMatrixMetric]:
    """The released mIoU and the extra metrics, ready for `model.compile(metrics=...)`."""
    return [
        cls(num_classes)
        for cls in (ReleasedMeanIoU, MeanIoUPresent, PixelAccuracy, GlobalIoU, MeanFalsePositiveRate,
                    MeanFalseNegativeRate)
    ]


def _ratio(numerator: Any, denominator: Any) -> Any:
    """100 · numerator / denominator, NaN where the denominator is 0."""
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    safe = np.where(denominator > 0, denominator, 1.0)
    return np.where(denominator > 0, 100.0 * numerator / safe, np.nan)


def _nanmean(values: np.ndarray) -> float:
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else math.nan


def _json_float(value: Any) -> Optional[float]:
    value = float(value)
    return None if math.isnan(value) else value
