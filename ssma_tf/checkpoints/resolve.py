"""What a checkpoint path holds, and which file or prefix to read.

A config's `checkpoint`, `intialize`, `checkpoint1` and `checkpoint2`, and the `--checkpoint`
flags, may name

- an original TF1 checkpoint prefix (AdapNet++, SSMA or the ImageNet initialisation, told apart
  by their variable names in `ssma_tf.checkpoints.tf1_import`),
- one of the project's own `tf.train.Checkpoint`s (a prefix, or a training directory: its newest
  checkpoint), told from a TF1 one by the object graph TF2 stores with it,
- a Keras `.weights.h5` or `.keras` file (e.g. `<checkpoint>/final.weights.h5` of a training run).
"""

from __future__ import annotations

import os
import re

from ssma_tf.checkpoints.reading import (
    OBJECT_GRAPH_KEY, CheckpointError, folder_checkpoint, latest_checkpoint, list_variables, state_file_advice,
    why_no_checkpoint,
)
from ssma_tf.config.runs import export_kind, exported_backend, prune_folder
from ssma_tf.constants import FINAL_WEIGHTS, RUN_CONFIG, WEIGHTS_SUFFIXES
from ssma_tf.files import checkpoint_prefix

FORMAT_TF1 = "tf1"
FORMAT_TF2 = "tf2"
FORMAT_KERAS = "keras"


def resolve_weights(path: str) -> tuple[str, str]:
    """Says what `path` holds and which file or prefix to read.

    Args:
        path: a TF1/TF2 checkpoint prefix (a pasted `.index`, `.meta` or `.data-…` part is
            accepted), a directory with a `checkpoint` state file or one checkpoint, or a
            `.weights.h5`/`.keras` file.

    Returns:
        `(format, resolved)`: format is `FORMAT_TF1`, `FORMAT_TF2` or `FORMAT_KERAS`; resolved is
        the prefix or file to read.

    Raises:
        CheckpointError: nothing at `path`, or its index or state file is damaged.
    """
    path = checkpoint_prefix(path)
    if os.path.isdir(path):
        try:
            return _resolve(path)
        except CheckpointError as error:
            raise with_earlier_checkpoint(error, path) from None
    return _resolve(path)


def with_earlier_checkpoint(error: CheckpointError, folder: str) -> CheckpointError:
    """`error` about the newest checkpoint of `folder`, which cannot be read, with the folder's
    next older checkpoint named: a run stopped while saving (a full disk) keeps a whole one
    before it. The error as it is for any other."""
    failed = error.path
    number = re.fullmatch(r"ckpt-(\d+)", os.path.basename(failed or ""))
    if (getattr(error, "older_named", False) or not os.path.isdir(folder) or number is None
            or not str(error).startswith("cannot read the checkpoint ")):
        return error  # named already, or not about a checkpoint of the folder (its state file, say)
    older = []
    for name in os.listdir(folder):
        match = re.fullmatch(r"ckpt-(\d+)\.index", name)
        if match and int(match.group(1)) < int(number.group(1)):
            older.append((int(match.group(1)), os.path.join(folder, name[: -len(".index")])))
    if not older:
        return error
    named = CheckpointError(f"{error}; the folder holds an older checkpoint, {max(older)[1]}: give it by its prefix "
                            "(--checkpoint, or the config's checkpoint) to use it", path=failed)
    named.older_named = True
    return named


def _resolve(path: str) -> tuple[str, str]:
    """`resolve_weights` of a path without a pasted suffix."""
    if path.endswith(WEIGHTS_SUFFIXES):
        if not os.path.isfile(path):
            raise CheckpointError(f"no weights file at {path}")
        return FORMAT_KERAS, path
    if os.path.isdir(path):
        # A run's newest checkpoint, else its final weights, else the one checkpoint of an
        # unpacked release (a folder of `model.ckpt.*` without a state file).
        latest = latest_checkpoint(path)
        final = os.path.join(path, FINAL_WEIGHTS)
        if latest is None and os.path.isfile(final):
            return FORMAT_KERAS, final
        latest = latest or folder_checkpoint(path)
        if latest is None:
            what = _what_folder(path)
            raise CheckpointError(
                f"{path} is a directory without a 'checkpoint' state file, a {FINAL_WEIGHTS} or a single "
                f"checkpoint (*.index){what}" if what else
                f"{path} is a directory without weights to read (no {FINAL_WEIGHTS}): {why_no_checkpoint(path)}"
            )
        path = latest
    if not os.path.isfile(path + ".index"):
        raise CheckpointError(
            state_file_advice(path)  # a folder's `checkpoint` state file given for the checkpoint
            or f"no checkpoint at {path} (expected {path}.index, a checkpoint directory, or a "
            f"{'/'.join(WEIGHTS_SUFFIXES)} file)"
        )
    names = list_variables(path)  # a damaged index is a CheckpointError naming the path
    return (FORMAT_TF2 if OBJECT_GRAPH_KEY in names else FORMAT_TF1), path


def _what_folder(path: str) -> str:
    """What a folder without weights is, when it says: an export of `ssma-export` (run it with
    its backend) or a training run that has not saved yet."""
    backend = exported_backend(path)
    if backend in ("openvino", "tflite"):
        return f": it is {export_kind(backend)} export of ssma-export; run it with --backend {backend}"
    if backend is not None:
        return ": it is an export of ssma-export (a SavedModel: load it with tf.saved_model.load), not weights"
    pruned = prune_folder(path)
    if pruned:
        return f": it is {pruned}"
    if os.path.isfile(os.path.join(path, RUN_CONFIG)):
        return ": it is a training run that has not saved a checkpoint yet"
    return ""
