"""Checkpoints and weights: every model the project loads is loaded here.

- `resolve`: what a path holds (TF1 or own TF2 checkpoint, Keras weights file) and what to read.
- `loading`: loading weights into a model, building the model a checkpoint or a config names.
- `initialize`: a training run's starting weights (`intialize`, `checkpoint1`/`checkpoint2`,
  `finetune_from`) and the early check that a checkpoint fits the config's model.
- `finetune`: a trained model's weights into one with another class count, class layers fresh.
- `tf1_import`, `tf1_names`: the original TF1 checkpoints, mapped by name through one table.
- `convert`: a TF1 checkpoint written as `.weights.h5` or `.keras`.
- `zoo`: the released models by name (`zoo.yaml`), `load_model` and the models' `from_preset`.
- `reading`: reading checkpoint and weight files, so that a damaged or foreign one is one
  `CheckpointError` naming the file, the variable and the shapes.
"""

from ssma_tf.checkpoints.finetune import FinetuneReport, finetune_weights
from ssma_tf.checkpoints.tf1_import import (
    KIND_ADAPNET_PP, KIND_IMAGENET, KIND_SSMA, CheckpointError, LoadReport, detect_kind, load_tf1_checkpoint,
    read_checkpoint,
)
from ssma_tf.checkpoints.tf1_names import tf1_variable_map
# Imported with the package: it registers `from_preset` on AdapNetPP and SSMA.
from ssma_tf.checkpoints.zoo import load_model, presets

__all__ = [
    "KIND_ADAPNET_PP", "KIND_IMAGENET", "KIND_SSMA", "CheckpointError", "FinetuneReport", "LoadReport",
    "detect_kind", "finetune_weights", "load_model", "load_tf1_checkpoint", "presets", "read_checkpoint",
    "tf1_variable_map",
]
