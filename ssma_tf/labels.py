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

from typing import Optional, Sequence


def has_id_axis(label_shape: Sequence[Optional[int]], prediction_rank: int) -> bool:
    """True when labels of `label_shape` are sparse ids with a trailing axis of one (B, H, W, 1)
    beside predictions of rank `prediction_rank` (B, H, W, C): the reader drops that axis.

    An axis of unknown size is read as a class axis (one-hot), as before this check.
    """
    return len(label_shape) == prediction_rank and label_shape[-1] == 1
