"""Label batches as the losses and metrics read them, told apart by their shape.

A label batch beside predictions (B, H, W, C) is one of:
- sparse class ids (B, H, W), as the records and `build_dataset` give them;
- sparse class ids with a trailing axis of one, (B, H, W, 1): how Keras users often keep sparse
  labels (and what a PNG read with one channel gives);
- one-hot or soft labels (B, H, W, C), as the released pipeline fed them.
The class count C is at least 2, so a trailing axis of one is never a class axis. Read as one-hot,
such a label multiplied its ids into every class's term: a loss several times too large and an
mIoU of 0, without an error.

Ids outside [0, C) are void, as id 0 is (docs/architecture.md, "Loss, schedule and
evaluation"). Sparse ids in a floating type must be finite whole numbers (`refuse_fractional_ids`;
255.0 is a whole id, so void): labels resized bilinearly hold 1.75 between ids 1 and 2.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import keras
import numpy as np
from keras import ops

# The words of the refusal of floating sparse labels that are not whole ids, one home for the host's
# `ConfusionMatrix` and for the loss and the Keras metrics: "<count> of the <size> " + _NOT_WHOLE +
# " <example>" + _RESIZE_NEAREST.
_NOT_WHOLE = "sparse labels ({dtype}) are not whole class ids, e.g."
_RESIZE_NEAREST = (": labels resized bilinearly mix neighbouring ids; resize label images with nearest-neighbour "
                   "interpolation")


def has_id_axis(label_shape: Sequence[Optional[int]], prediction_rank: int) -> bool:
    """True when labels of `label_shape` are sparse ids with a trailing axis of one (B, H, W, 1)
    beside predictions of rank `prediction_rank` (B, H, W, C): the reader drops that axis.

    An axis of unknown size is neither: `as_read` decides on it when the batch runs.
    """
    return len(label_shape) == prediction_rank and label_shape[-1] == 1


def as_read(labels: Any, prediction_rank: int, num_classes: int) -> Any:
    """`labels` as the loss and the metrics read them: sparse ids (B, H, W) without the trailing
    axis of one, or one-hot (B, H, W, C) as given.

    A last axis of unknown size (a `tf.function` traced with `[None] * 4`) is told apart when the
    batch runs: of size one, its ids become one-hot rows (all zero for void ids outside [0, C), as
    the released encoding made them); otherwise the labels pass as one-hot, cast to float32.
    """
    if getattr(labels.shape, "rank", 0) is None:
        # Before: "Cannot iterate over a shape with unknown rank", naming nothing.
        raise ValueError(
            "labels of unknown rank (made by tf.numpy_function or tf.py_function, or a model given labels "
            "of two ranks in turn, which Keras then traces with no rank): give them their shape in the "
            "dataset, tf.ensure_shape(label, [H, W]) or [H, W, 1] per element")
    shape = tuple(labels.shape)
    if has_id_axis(shape, prediction_rank):
        return ops.squeeze(_whole_ids(labels), -1)
    if len(shape) == prediction_rank and shape[-1] is None:
        # Checked only where the axis turns out to be of size one: one-hot and soft labels are fractions.
        labels = _whole_ids(labels, only_with_id_axis=True)
        ids = ops.one_hot(ops.cast(labels[..., 0], "int32"), num_classes, dtype="float32")
        return ops.where(ops.shape(labels)[-1] == 1, ids, ops.cast(labels, "float32"))
    if len(shape) == prediction_rank - 1:
        return _whole_ids(labels)
    return labels


def refuse_fractional_ids(labels: np.ndarray) -> None:
    """ValueError where floating sparse labels are not finite whole numbers (before: labels resized
    bilinearly, 1.333 and 2.667, were cut to ids 1 and 2 and counted as classes that are not there, and
    NaN counted as void, without a word; helper 308)."""
    values = labels.astype(np.float64)  # bfloat16 too; float64 holds every float16/32 value exactly
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(values) | (values != np.floor(values))
    if bad.any():
        raise ValueError(f"{int(bad.sum())} of the {labels.size} {_NOT_WHOLE.format(dtype=labels.dtype)} "
                         f"{values[bad][0]:g}{_RESIZE_NEAREST}")


def _whole_ids(labels: Any, only_with_id_axis: bool = False) -> Any:
    """`labels`, sparse ids, refused by `refuse_fractional_ids`'s words where they are floats that are not
    finite whole numbers (before: cut to the id below them by the loss's and the metrics' int32 cast, so
    `fit` trained on and `evaluate` scored classes that are not there, without a word; helper 332).

    Integer labels pass untouched. Floats cost one pass over the batch (`x - floor(x) == 0`, false for
    fractions, NaN and inf alike). NumPy arrays and eager tensors raise ValueError at once. In a
    `tf.function` (Keras' `fit` and `evaluate` on TensorFlow), the step fails with an InvalidArgumentError
    holding the same words, its numbers counted only then. Unchecked: under XLA (`jit_compile=True`, Keras'
    default on a GPU), which compiles an assertion to nothing, and inside a JAX trace, where nothing can
    raise. `only_with_id_axis`: labels whose last axis is known only when the batch runs, checked where it
    is one.
    """
    dtype = keras.backend.standardize_dtype(labels.dtype)
    if not keras.backend.is_float_dtype(dtype) or isinstance(labels, keras.KerasTensor):
        return labels
    if isinstance(labels, np.ndarray):
        refuse_fractional_ids(labels)
        return labels
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        if not tf.executing_eagerly():
            return labels if _in_xla(tf) else _asserted_whole(tf, labels, dtype, only_with_id_axis)
    elif backend == "jax":
        import jax

        if isinstance(labels, jax.core.Tracer):
            return labels
    # An eager tensor: the check on its device, the labels copied to the host only to name the fault.
    if not bool(ops.all(ops.equal(labels - ops.floor(labels), 0))):
        refuse_fractional_ids(ops.convert_to_numpy(labels))
    return labels


def _in_xla(tf: Any) -> bool:
    """True while a `tf.function(jit_compile=True)` is traced. There the assertion would be compiled to
    nothing, but its `tf.cond` kept: on a GPU, a copy of the predicate to the host that the step waits for."""
    try:
        from tensorflow.python.ops import control_flow_util
    except ImportError:  # a TensorFlow that moved it: the check kept, which XLA compiles all the same
        return False
    return control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())


def _asserted_whole(tf: Any, labels: Any, dtype: str, only_with_id_axis: bool) -> Any:
    """`labels` through a `tf.cond` whose other branch fails the step with `refuse_fractional_ids`' words,
    the count and an example computed there only. No string op, which XLA has none of, should a trace
    `_in_xla` cannot tell apart compile the branch (the Assert itself it compiles to nothing)."""
    checked = labels[..., :1] if only_with_id_axis else labels
    fraction = checked - tf.floor(checked)
    whole = tf.reduce_all(tf.equal(fraction, 0))
    if only_with_id_axis:
        whole = tf.logical_or(whole, tf.not_equal(tf.shape(labels)[-1], 1))

    def refuse() -> Any:
        bad = tf.reshape(tf.not_equal(fraction, 0), [-1])
        example = tf.gather(tf.reshape(checked, [-1]), tf.argmax(tf.cast(bad, tf.int32)))
        refusal = tf.debugging.Assert(False, [tf.reduce_sum(tf.cast(bad, tf.int32)), "of the", tf.size(checked),
                                              _NOT_WHOLE.format(dtype=dtype), example, _RESIZE_NEAREST])
        with tf.control_dependencies([refusal]):
            return tf.identity(labels)

    return tf.cond(whole, lambda: labels, refuse)
