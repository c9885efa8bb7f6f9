"""Training AdapNet++ and SSMA with the released protocol, on `tf.distribute`, resumable.

What one run does (`train(config)`, or `Trainer(config).train()`):

1. picks the strategy (`ssma_tf.distribute`), builds the input pipeline, then the model, and
   loads its starting weights (`intialize`, or `checkpoint1`/`checkpoint2` for SSMA);
2. optimises the released loss (`ssma_tf.losses.total_loss`) with Adam on the TF1 polynomial
   decay (`schedule_from_config`) for `max_iteration` steps, with a per-variable learning-rate
   factor for the encoders (SSMA stage 2 trains them 10× slower);
3. logs every `skip_step` steps, writes TensorBoard summaries to `log_dir`, checkpoints every
   `save_step` steps and at the end, and exports `<checkpoint>/final.weights.h5` and the whole
   model as `<checkpoint>/final.keras`; `train` also writes the resolved config,
   `<checkpoint>/config.yaml`, before the first step, so the folder describes itself.

A run started again with the same config resumes from the newest checkpoint in `checkpoint`:
weights, optimizer state, step (so the same point of the schedule) and, on a single device, the
position in the input stream. Checkpoints are written by `tf.train.CheckpointManager`, which
updates its state file only after a checkpoint is complete, so a crash during a save leaves the
previous checkpoint as the newest one; a checkpoint that still fails to read (truncated, damaged,
of another model) is reported and skipped for the one before it. What a killed save leaves
behind (`ckpt-N_temp/`, `.partial-*` exports) is removed when the next run starts; a save that
fails (a full disk) removes its partial files, keeps the previous checkpoint and stops the run
(`CheckpointWriteError`). So does a loss that becomes NaN or Inf (`NonFiniteLossError`) or grows
far above its starting level (`DivergenceError`, config key `divergence_factor`).

The SSMA stages of the paper (Section 5.1.2) are configs, not code paths: stage 1 trains one
AdapNet++ per modality; stage 2 an SSMA with `freeze_experts: false` and
`encoder_lr_multiplier: 0.1`; stage 3 an SSMA with the experts frozen (not trainable, batch norms
in inference mode), starting from stage 2's weights (the stage-3 config's `intialize` key,
spelled as in the released configs).

The package's modules, top to bottom (each imports only those below it):

- `trainer`: `Trainer` (the loop: resuming, logging, checkpoints, stopping) and `train`;
- `step`: one replica's share of a step (the supervised pass and its gradients, summing and
  applying them), which the semi-supervised and adaptation trainers reuse;
- `optimizer`: Adam with a learning-rate factor per variable and the released schedule;
- `dataset`: the training input stream of a config.
"""

from ssma_tf.constants import MAX_CHECKPOINTS_TO_KEEP
from ssma_tf.training.dataset import make_train_dataset
from ssma_tf.training.optimizer import AdamWithMultipliers, make_optimizer, schedule_from_config
from ssma_tf.training.step import PREVIEW_IMAGES
from ssma_tf.training.trainer import (
    CheckpointWriteError,
    DivergenceError,
    NonFiniteLossError,
    RecordSet,
    Trainer,
    TrainingStopped,
    TrainResult,
    train,
)

__all__ = [
    "AdamWithMultipliers",
    "CheckpointWriteError",
    "DivergenceError",
    "MAX_CHECKPOINTS_TO_KEEP",
    "NonFiniteLossError",
    "PREVIEW_IMAGES",
    "RecordSet",
    "TrainResult",
    "Trainer",
    "TrainingStopped",
    "make_optimizer",
    "make_train_dataset",
    "schedule_from_config",
    "train",
]
