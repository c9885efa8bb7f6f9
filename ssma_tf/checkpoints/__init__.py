"""Checkpoints: import of the original TF1 checkpoints and the project's own weights."""

from ssma_tf.checkpoints.tf1_import import (
    KIND_ADAPNET_PP, KIND_IMAGENET, KIND_SSMA, CheckpointError, LoadReport, detect_kind, load_tf1_checkpoint,
    read_checkpoint,
)
from ssma_tf.checkpoints.tf1_names import tf1_variable_map

__all__ = [
    "KIND_ADAPNET_PP", "KIND_IMAGENET", "KIND_SSMA", "CheckpointError", "LoadReport", "detect_kind",
    "load_tf1_checkpoint", "read_checkpoint", "tf1_variable_map",
]
