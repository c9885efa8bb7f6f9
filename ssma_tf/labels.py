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
evaluation").
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from keras import ops


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
        return ops.squeeze(labels, -1)
    if len(shape) == prediction_rank and shape[-1] is None:
        ids = ops.one_hot(ops.cast(labels[..., 0], "int32"), num_classes, dtype="float32")
        return ops.where(ops.shape(labels)[-1] == 1, ids, ops.cast(labels, "float32"))
    return labels
