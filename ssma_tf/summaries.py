"""TensorBoard summaries written with TensorFlow alone (the `tensorboard` package is optional).

`tf.summary.scalar` and `tf.summary.image` live in the `tensorboard` package, which is not a
dependency of this project. The event files only need `tf.summary.write` (in TensorFlow's core)
and the metadata that tells TensorBoard's scalar and image plugins what a tensor is, so that a
TensorBoard installed anywhere reads the logs as usual: `pip install '.[tensorboard]'` in the clone,
then `tensorboard --logdir <checkpoint>/logs` (TensorFlow 2.21 no longer installs it).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import summary_pb2

_SCALAR_METADATA = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"),
    data_class=summary_pb2.DATA_CLASS_SCALAR,
)
_IMAGE_METADATA = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="images"),
    data_class=summary_pb2.DATA_CLASS_BLOB_SEQUENCE,
)


def write_scalar(tag: str, value: float, step: int) -> None:
    """Writes one scalar to the default summary writer (a no-op without one).

    Args:
        tag: the series name, e.g. "loss/total".
        value: the value.
        step: the training step.
    """
    tf.summary.write(
        tag, tf.constant(float(value), tf.float32), step=step, metadata=_SCALAR_METADATA
    )


def write_images(tag: str, images: Any, step: int, max_outputs: int = 3) -> None:
    """Writes a few RGB images to the default summary writer, as TensorBoard's image plugin does.

    Args:
        tag: the series name.
        images: uint8 (N, H, W, 3).
        step: the training step.
        max_outputs: at most this many images are written.
    """
    images = np.asarray(images)
    # Checked whole, then cut (before: one (H, W, 3) image cut along its height first, and the
    # error showed (3, W, 3); helper 235).
    if images.ndim != 4 or images.shape[-1] not in (1, 3, 4) or images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 (N, H, W, 1|3|4), got {images.dtype} {images.shape}")
    images = images[:max_outputs]
    # The image plugin's layout: width and height as strings, then one PNG per image.
    encoded = [tf.io.encode_png(image).numpy() for image in images]
    blob = [str(images.shape[2]).encode(), str(images.shape[1]).encode()] + encoded
    tf.summary.write(tag, tf.constant(blob, tf.string), step=step, metadata=_IMAGE_METADATA)


def write_session_start(writer: Any, step: int) -> bool:
    """Writes a `SessionLog.START` event at `step` into `writer`'s event file; whether it could.

    TensorBoard treats every START after a run's first as a restart and drops what it read of that
    run at `step` and after (its "purge orphaned data"). A trainer starting at step `s` writes one at
    `s + 1`: after a stop without a save (SIGKILL, out of memory), the steps logged after the
    checkpoint it resumes from would otherwise be drawn twice, with other values. `tf.summary` has
    no call for it; the event goes through the writer's resource as it is (`ImportEvent`). A writer
    without one (`tf.summary.create_noop_writer()`) is left alone.
    """
    from tensorflow.core.util import event_pb2

    resource = getattr(writer, "_resource", None)
    if resource is None:
        return False
    event = event_pb2.Event(step=int(step), session_log=event_pb2.SessionLog(status=event_pb2.SessionLog.START))
    event.wall_time = time.time()
    tf.raw_ops.ImportEvent(writer=resource, event=event.SerializeToString())
    return True
