"""The training loop: one run of a config, resumable, with logs, checkpoints and safe stops.

See the package's docstring (`ssma_tf.training`) for what a run does.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import gc
import glob
import json
import logging
import math
import os
import random
import re
import shutil
import sys
import time
import weakref
from typing import Any, Callable, Iterable, Iterator, NamedTuple, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from ssma_tf.checkpoints import CheckpointError
from ssma_tf.checkpoints.initialize import (
    backbone_weights_replaced_by, check_checkpoint_fits, check_finetune_source, initialize_model,
    swapped_expert_warnings, unfinished_run_warnings, unread_backbone_weights_line,
)
from ssma_tf.checkpoints.finetune import train_fresh_layers
from ssma_tf.checkpoints.loading import seed_generator_states
from ssma_tf.checkpoints.reading import check_tf2_shapes, reading, state_file_is_damaged
from ssma_tf.checkpoints.resolve import FORMAT_TF1, resolve_weights
from ssma_tf.config import ConfigError, refuse_pretraining
from ssma_tf.config.adaptation import AdaptationConfig
from ssma_tf.config.augmentation import AugmentationConfig
from ssma_tf.config.keys import EVAL
from ssma_tf.config.run import DECLARED, DEFAULTS, derived_log_dir
from ssma_tf.config.runs import (
    final_files_current, final_record, newest_checkpoint, saved_run_config, update_run_config, write_final_record,
    write_run_config,
)
from ssma_tf.config.semi_supervised import SemiSupervisedConfig
from ssma_tf.constants import (
    ADAPNET_PP_BACKBONE, END_TO_END_FUSIONS, FINAL_MODEL, FINAL_RECORD, FINAL_WEIGHTS, RUN_CONFIG, SSMA_FUSION,
)
from ssma_tf.data.datasets import dataset_info_or_none
from ssma_tf.data.pipeline import list_record_files, modalities_in_records, naming_damaged_records
from ssma_tf.data.records import label_ids_warning
from ssma_tf.distribute import (
    agreed_value,
    check_same_start,
    create_strategy,
    first_replica,
    is_chief,
    replica_mean,
    synchronize_batch_norms,
    task_id,
)
from ssma_tf.errors import first_line, raise_if_terminated
from ssma_tf.files import (
    TEMPORARY_PREFIX, LockedError, atomic_path, atomic_write, file_sizes, folder_lock_path, free_bytes, give_lock,
    file_times, matched_files, remove_path, rewritten_files, take_lock, writer_running,
)
from ssma_tf.keras_compat import check_tensorflow_backend
from ssma_tf.layers.initializers import overwritten_weights
from ssma_tf.losses import decayed_weights
from ssma_tf.models.factory import build_model
from ssma_tf.progress import Progress, format_duration
from ssma_tf.recalibration import recalibrate_batch_norm
from ssma_tf.summaries import write_images, write_scalar, write_session_start
from ssma_tf.training.dataset import make_train_dataset
from ssma_tf.training.optimizer import make_optimizer, schedule_from_config
from ssma_tf.training.step import PREVIEW_IMAGES, apply_gradients, preview_classes, supervised_pass
from ssma_tf.visualize import default_palette

# Object-graph key of the step counter in our checkpoints (read before the model is built).
_STEP_KEY = "step/.ATTRIBUTES/VARIABLE_VALUE"
# The seed an unseeded run drew at its start (`Trainer._choose_run_seed`).
_RUN_SEED = "run_seed"
_RUN_SEED_KEY = f"{_RUN_SEED}/.ATTRIBUTES/VARIABLE_VALUE"
# Steps whose mean loss is compared with the starting level for `divergence_factor`: one noisy
# batch is not a divergence.
DIVERGENCE_WINDOW = 5
# What `tf.train.CheckpointManager` leaves of a save that did not finish: the shards of
# `ckpt-N` are written to `ckpt-N_temp/` and merged into `ckpt-N.index`/`.data-*` at the end.
_PARTIAL_SAVE = re.compile(r"^ckpt-\d+_temp$")
# Keys that shape the input batches, named when a resumed run's streams restart because their
# batches changed shape since the checkpoint (the saved position would fail the first step).
_STREAM_KEYS = ("batch_size", "height", "width")
# Keys naming the records the saved input positions are in (`_stream_changes`).
_RECORD_KEYS = ("train_data", "labeled_subset", "unlabeled_data", "target_data")
# The checkpoint entry holding the element specs of the input streams it saved the position of.
_STREAMS_KEY = "streams/.ATTRIBUTES/VARIABLE_VALUE"
# The name under which a checkpoint written on one replica holds the training stream's position.
_DATA_KEY = "data"
# The checkpoint entry holding the record keys its streams read (`Trainer._records_read`).
_RECORDS_KEY = "records/.ATTRIBUTES/VARIABLE_VALUE"
# The entries of `_RECORDS_KEY`'s text holding the size and the modification time of each
# record file matched (checkpoints written before 2026-12-06 hold no times).
_SIZES = "file_sizes"
_TIMES = "file_times"
_FILE_ENTRIES = (_SIZES, _TIMES)
# What TensorFlow raises for a saved input position that does not fit the pipeline now ("Failed
# to restore dataset iterator": NotFound for a node it lacks); others (a checksum, DataLoss) are
# a damaged checkpoint, skipped for the one before.
_OTHER_PIPELINE = (tf.errors.NotFoundError, tf.errors.InvalidArgumentError, tf.errors.FailedPreconditionError)


class TrainingStopped(RuntimeError):
    """Training stopped early on purpose; the message says why and which checkpoint is kept."""


class NonFiniteLossError(TrainingStopped):
    """The loss became NaN or Inf; training stopped without writing another checkpoint."""


class DivergenceError(TrainingStopped):
    """The loss grew far above its starting level (`divergence_factor`); stopped without saving."""


class CheckpointWriteError(TrainingStopped):
    """A checkpoint or the exported weights could not be written (e.g. a full disk).

    The partial files are removed and the previous checkpoint is kept.
    """


# Keys of the poly schedule besides max_iteration (noted on its own) whose change a resume notes.
_SCHEDULE_KEYS = ("learning_rate", "end_learning_rate", "power")
# What a resumed run reads besides the network, said when it differs from the run's start (a
# change of data, method, optimizer or dropout settings went on without a word, and config.yaml
# then gave the new value as the whole run's).
_INPUT_KEYS = ("train_data", "labeled_subset", "unlabeled_data", "semi_supervised", "target_data",
               "importance_weights", "adaptation", "augmentation", "weight_decay", "aux_loss_weights",
               "encoder_lr_multiplier", "dropout_keep_prob", "adam_epsilon", "recalibrate_batch_norm",
               # The resampling of modality 2 and on, and the seed of the random choices (helper 133).
               "modality2_interpolation", "modality_interpolations", "seed", "one_hot_labels",
               # float32 <-> mixed_bfloat16 (mixed_float16 is refused: its loss scale; helper 298).
               "mixed_precision")

# The weights a fresh run starts from, which a resumed run does not read (it goes on from its
# checkpoint): a change is said, and config.yaml keeps what the run started from (helper 321).
_STARTING_KEYS = ("initialize", "checkpoint1", "checkpoint2", "checkpoints", "finetune_from", "backbone_weights")
# Of those, the experts' weights, said as `checkpoints` or as `checkpoint1`/`checkpoint2`.
_EXPERT_KEYS = ("checkpoint1", "checkpoint2", "checkpoints")

# A key a run's config.yaml lacks, and the sections it may hold (see `_changed_inputs`).
_DEFAULT = object()
_SECTIONS_OF = {"augmentation": AugmentationConfig, "semi_supervised": SemiSupervisedConfig,
                "adaptation": AdaptationConfig}


def _changed_inputs(saved: dict, current: dict) -> list[str]:
    """`key old -> new` for each of `_INPUT_KEYS` whose value the run's `config.yaml` (`saved`)
    gives otherwise than the config now; a long value only as `key changed`.

    A key the run's config.yaml lacks was unset when the run started, or did not exist yet: it
    is taken at its default, so setting it now is a change and a newer version's key is not. A
    section (`semi_supervised`, `adaptation`, `augmentation`) is compared key by key in the same
    way, and its changed keys are named (`semi_supervised.confidence 0.968 -> 0.9`).
    """
    lines = []
    for key in _INPUT_KEYS:
        old, new = _as_written(key, saved[key] if key in saved else _DEFAULT), current.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            pairs = [(f"{key}.{name}", old.get(name), new.get(name)) for name in {**old, **new}
                     if old.get(name) != new.get(name)]
        elif key in _SECTIONS_OF and (old is None) != (new is None):
            # A section set or unset: said so, with its keys that are not at their defaults
            # (before: "semi_supervised changed", where a depth run's colouring had flipped;
            # helper 138).
            section, defaults = old if new is None else new, _SECTIONS_OF[key]().to_dict()
            given = ", ".join(f"{name} {_shown(value)}" for name, value in section.items()
                              if value != defaults.get(name))
            was, now = ("set", "unset") if new is None else ("unset", "set")
            line = f"{key} {was} -> {now}" + (f" ({given})" if given else "")
            lines.append(line if len(line) <= 160 else f"{key} {was} -> {now}")
            continue
        else:
            pairs = [(key, old, new)] if old != new else []
        lines.extend(_change_line(name, before, after) for name, before, after in pairs)
    return lines


def _change_line(name: str, before: Any, after: Any) -> str:
    """`name old -> new` in a resume's note; a long value only as `name changed`."""
    line = f"{name} {_shown(before)} -> {_shown(after)}"
    return line if len(line) <= 160 else f"{name} changed"


def _changed_starting_weights(saved: dict, current: dict) -> tuple[list[str], dict]:
    """For each of `_STARTING_KEYS` whose value the run's `config.yaml` (`saved`) gives otherwise
    than the config now, `key old -> new` (a long value as `key changed`); and every such key's
    value as the run started, to keep (all of them where one differs: `checkpoints` and
    `checkpoint1`/`checkpoint2` say the same thing two ways)."""
    before = {key: _as_written(key, saved[key] if key in saved else _DEFAULT) for key in _STARTING_KEYS}
    # The experts as `checkpoints` or as `checkpoint1`/`checkpoint2`: the same weights (helper 324).
    same_experts = _experts(before) == _experts(current)
    lines = []
    for key in _STARTING_KEYS:
        old, new = before[key], current.get(key)
        if key in _EXPERT_KEYS and same_experts:
            continue
        if old != new:
            lines.append(_change_line(key, old, new))
    if not lines:
        return [], {}
    return lines, {key: tuple(old) if isinstance(old, list) else old for key, old in before.items()}



def _experts(values: dict) -> Optional[list]:
    """The experts' weights a config's values name, as `RunConfig.expert_checkpoints` reads them."""
    if values.get("checkpoints") is not None:
        return list(values["checkpoints"])
    if values.get("checkpoint1") is not None:
        return [values.get("checkpoint1"), values.get("checkpoint2")]
    return None


def _text(value: Any) -> str:
    """A string variable's value as read from a checkpoint (bytes) as text."""
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _as_list(value: Any) -> Optional[list]:
    """A config value as a list (a record key's one pattern or several), None when unset."""
    return None if value is None else list(value) if isinstance(value, (list, tuple)) else [value]


@contextlib.contextmanager
def _quiet_restore() -> Iterator[list]:
    """Keeps TensorFlow's "Value in checkpoint could not be found" lines (one per variable of the
    checkpoint, logged when a restore that failed is collected) off the log. The block adds to
    the list it gets when its restore failed: the leftovers are then collected here (a full
    collection takes a while in a process holding a model: not after every restore)."""
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    failed: list = []
    try:
        yield failed
    finally:
        if failed:
            gc.collect()
        logger.setLevel(level)


def _iterator_problem(error: tf.errors.OpError) -> str:
    """TensorFlow's refusal of a saved input position, without the checkpoint's path (named
    beside it), its advice about the dataset definition (the cause is named beside it) and the op."""
    text = re.sub(r"^Error when restoring from checkpoint or SavedModel at \S+: ", "", first_line(error))
    return re.sub(r"\.? Make sure the dataset definition.*$|\s*\[Op:\w+\].*$", "", text)


def _matched_files(value: Any) -> list[str]:
    """The files a record key's pattern(s) match, in order (none when unset)."""
    # A path holding `[` is a file before it is a pattern (`matched_files`): before, its size was
    # not recorded for the resume check (helper 131).
    return sorted({path for pattern in _as_list(value) or [] for path in matched_files(pattern)})


def _shown(value: Any, none: str = "unset") -> str:
    """A config value in a note or an error: booleans as YAML writes them, None as `none` ("none"
    for a training mode that is off), a tuple as YAML's list."""
    if isinstance(value, tuple):
        value = list(value)
    return none if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def _another_run(config: Any, key: str, before: Any, now: Any, hint: str = "") -> CheckpointError:
    """The error for a checkpoint folder that holds a run of another `key` (its network's shape
    or its training mode) than the config's: a new run needs a folder of its own."""
    return CheckpointError(
        f"{config.checkpoint} holds a run with {key}: {_shown(before, 'none')} (its {RUN_CONFIG}), but the config "
        f"{config.where(key.split('.')[0])} trains with {key}: {_shown(now, 'none')}; give another checkpoint folder "
        f"for a new run{hint}")


def _finished_run_note(differ: Sequence[str]) -> str:
    """The note on keys given to a finished run that differ from its `config.yaml`.

    Keys evaluation reads can be given to ssma-evaluate; keys only training reads did nothing
    (before, `recalibrate_batch_norm` on a finished run got the evaluation hint, and a user took
    the batch norms for recalibrated).
    """
    training_only = [key for key in differ if key in DECLARED and EVAL[0] not in DECLARED[key].modes]
    note = (f"note: {', '.join(differ)} differ{'s' if len(differ) == 1 else ''} from the run's {RUN_CONFIG}, "
            "which keeps the values it was trained with")
    if len(training_only) < len(differ):
        note += " (ssma-evaluate takes others as flags, e.g. --test_data)"
    if training_only:
        one = len(training_only) == 1
        note += (f"; {', '.join(training_only)} act{'s' if one else ''} only while training, and this run has "
                 f"finished: nothing was done with {'it' if one else 'them'} (raise max_iteration to train on)")
        if "recalibrate_batch_norm" in training_only:
            note += "; to recalibrate the finished weights' batch norms, see docs/training.md"
    return note


def _as_written(key: str, value: Any) -> Any:
    """A run's config.yaml value as `RunConfig.to_dict` writes it today: `_DEFAULT` becomes the
    key's default, and a section gains the keys added since, at their defaults."""
    if value is _DEFAULT:
        value = DEFAULTS[key]
        if isinstance(value, (AugmentationConfig, SemiSupervisedConfig, AdaptationConfig)):
            return value.to_dict()
        return list(value) if isinstance(value, tuple) else value
    if key in _SECTIONS_OF and isinstance(value, dict):
        try:
            return _SECTIONS_OF[key].from_dict(value).to_dict()
        except ValueError:
            return value  # a key since removed: compared as written
    return value


def _method(section: Any, default: str) -> Optional[str]:
    """The method of a `semi_supervised` or `adaptation` section, as a config or as the dict a
    run's config.yaml holds (None: no such section; `default`: a section without the key)."""
    if section is None or section is False:
        return None
    if isinstance(section, dict):
        return str(section.get("method", default))
    return str(getattr(section, "method", default))


@dataclasses.dataclass
class TrainResult:
    """What a training run did.

    Attributes:
        start_step: the step the run started (or resumed) at.
        final_step: the step reached (`max_iteration` unless stopped early).
        losses: the total loss of every step this run took, in order.
        checkpoint: the newest checkpoint prefix written or resumed from (None if none).
        weights: the exported `final.weights.h5` (None on non-chief workers or when stopped early).
    """

    start_step: int
    final_step: int
    losses: list[float]
    checkpoint: Optional[str]
    weights: Optional[str]


def _palette(config: Any) -> np.ndarray:
    """Colours for the predicted masks in TensorBoard: the dataset's, else the prediction pictures'."""
    info = dataset_info_or_none(config.dataset, getattr(config, "palette", None), config.num_classes)
    return info.palette_array if info is not None else default_palette(config.num_classes)


class RecordSet(NamedTuple):
    """A set of records a run reads: its config key, whether labels are read, the images read, and
    whether its labels are only evaluated (`target_val_data`), not trained on."""

    key: str
    labeled: bool
    modalities: int
    evaluated: bool = False


class Trainer:
    """One training run of a config (see the module docstring).

    Building a `Trainer` does everything up to the first step: strategy, input pipeline, model,
    starting weights or resumption, optimizer, checkpoint manager, summary writer and the
    compiled step. `train()` then runs the remaining steps.

    Args:
        config: a training `RunConfig` (`ssma_tf.config.load_config(path, "train")`).
        strategy: the `tf.distribute` strategy; default `create_strategy(config.gpu_id)`.
        log: where log lines go (default: printed by the chief, flushed).
        max_to_keep: checkpoints kept in `config.checkpoint` (default the config's
            `keep_checkpoints`, `ssma_tf.constants.MAX_CHECKPOINTS_TO_KEEP` unless set).
        model_fn: builds the model to train instead of `build_model(config)` (called in the
            strategy's scope), e.g. a pruned network (`ssma_tf.pruning`); its weights are the start
            unless the config names starting weights or the run resumes.

    Attributes:
        model, optimizer, strategy, manager (the `tf.train.CheckpointManager`), step (the
        int64 step variable), train_function (the compiled step; its tracing count shows that
        it is traced once).
        PRETRAINING: the config's `pretraining` this trainer runs (None: segmentation); a
            config of another is refused.
        SECTION: the config's training-mode section this trainer runs (`semi_supervised`,
            `adaptation`; None: neither); a config with another is refused.
    """

    PRETRAINING: Optional[str] = None
    SECTION: Optional[str] = None
    # What the run's seed draws (`run_seed`): its streams' order and augmentation, and a
    # subclass's per-step random choices (`step_seed`). Named in the log of an unseeded run.
    SEEDED_CHOICES: str = "the training stream's order and augmentation"

    def __init__(
        self,
        config: Any,
        *,
        strategy: Optional[tf.distribute.Strategy] = None,
        log: Optional[Callable[[str], None]] = None,
        max_to_keep: Optional[int] = None,
        model_fn: Optional[Callable[[], keras.Model]] = None,
    ):
        # Its steps are tf.functions and its checkpoints tf.train's (before: TensorFlow's
        # "Checkpoint was expecting a trackable object", from `make three-modalities` too).
        check_tensorflow_backend("Trainer")
        if config.mode != "train":
            raise ValueError(f"{config.source}: Trainer needs a config loaded in train mode")
        if self.PRETRAINING is None:
            # `ssma-train -c <depth run>/config.yaml` went on as a 2-class segmentation run.
            refuse_pretraining(config)
        elif config.pretraining != self.PRETRAINING:
            raise ConfigError(f"is not set, but {type(self).__name__} runs {self.PRETRAINING} pretraining",
                              key="pretraining", source=config.source)
        for section in ("semi_supervised", "adaptation"):
            # Before: `training.train` of a config with such a section trained with the supervised
            # loss alone, recorded the section in config.yaml, and `ssma-train` could not resume
            # the run (helper 138). Depth pretraining reads `semi_supervised.depth_encoding`.
            if (getattr(config, section) is not None and section != self.SECTION
                    and not (section == "semi_supervised" and self.PRETRAINING)):
                raise ConfigError(f"is set, but {type(self).__name__} trains without it: train with "
                                  f"ssma_tf.{section}.trainer.train (as ssma-train does)", key=section,
                                  source=config.where(section))
        if not os.path.isabs(config.checkpoint):
            # A config built in code may hold a relative folder (the config reader makes paths
            # absolute); TensorFlow's state file then names checkpoints relative to the working
            # folder, and resuming joined the folder twice.
            config = dataclasses.replace(config, checkpoint=os.path.abspath(config.checkpoint))
        if config.log_dir is None:
            # As the config reader derives it: a config built in code without it wrote no
            # TensorBoard summaries, without a word (helper 171).
            config = dataclasses.replace(config, log_dir=derived_log_dir(config.checkpoint))
        self.config = config
        self.strategy = strategy if strategy is not None else create_strategy(config.gpu_id)
        self.chief = is_chief(self.strategy)
        self._log = log if log is not None else self._print
        replicas = self.strategy.num_replicas_in_sync
        if config.batch_size % replicas:
            raise ConfigError(
                f"must be a multiple of the {replicas} replicas training together, got "
                f"{config.batch_size}",
                key="batch_size",
                source=config.where("batch_size"),
            )

        if config.initialize is not None:
            check_checkpoint_fits(config, config.initialize)  # before minutes of model building
        # Multi-replica iterators cannot be checkpointed (tf.distribute limitation).
        self.saves_data_position = replicas == 1
        # Non-chief workers must take part in saving but write to a private scratch directory.
        self._directory = (
            config.checkpoint
            if self.chief
            else os.path.join(config.checkpoint, f".worker{task_id(self.strategy)}-scratch")
        )
        # One process trains a folder at a time: two runs into one folder both saved ckpt-4, ckpt-8,
        # ... and the last writer's final.* won, each exiting 0 (helper 200). Taken before what an
        # interrupted save left is removed, and the restore; given back when `train` returns.
        self._take_folder_lock()
        try:
            self._remove_partial_saves()
            self._resume_from = self._checkpoints_newest_first()
            if self._resume_from and _is_tf1_checkpoint(self._resume_from[0]):
                raise CheckpointError(
                    f"{config.checkpoint} holds checkpoints of the original TF1 code "
                    f"({self._resume_from[0]}), which cannot be resumed (they lack the optimizer "
                    "state of this port); start from their weights with `intialize` and give "
                    "`checkpoint` a new directory"
                )
            if config.finetune_from is not None and not self._resume_from:
                # Before minutes of model building, as `intialize`'s check; a resumed run does not
                # read its source (helper 338).
                check_finetune_source(config, config.finetune_from)
            # A stream that cannot take up its saved position starts afresh with another shuffle:
            # on several replicas, and on one from a checkpoint written by several (which holds no
            # position; before, such a resume read the run's first batches again without a word).
            # A subclass's own streams (adaptation's target images, the semi-supervised mix) add the
            # same offset to their seeds.
            # Of the newest checkpoint whose step reads, which the restore falls back to: a damaged
            # newest one gave offset 0, the run's first batches again (helper 133).
            self.stream_seed_offset = 0
            readable: Optional[str] = None  # that checkpoint: its kept seed too (`_choose_run_seed`)
            for prefix in self._resume_from:
                step = _read_step(prefix)
                if step is not None:
                    if not (self.saves_data_position and _holds_data_position(prefix)):
                        self.stream_seed_offset = step
                    readable = prefix
                    break
            # config.yaml as the run last started it (empty on a fresh start).
            self._saved_config = saved_run_config(config.checkpoint) if self._resume_from else {}
            # The seed of the streams and the per-step draws: the config's, or one drawn at the
            # run's start and kept in its checkpoints (`_choose_run_seed`).
            self.run_seed, self._seed_kept = self._choose_run_seed(readable)
            # Python's, NumPy's and the backend's generators too (the weights' initialisation,
            # dropout): a run given the seed an unseeded run drew repeats it.
            keras.utils.set_random_seed(self.run_seed)
            # The input pipeline before the model: a bad record file fails in seconds, not minutes.
            self.dataset = self._distributed_stream(_DATA_KEY, self.stream_seed_offset)

            with self.strategy.scope():
                # Resumed: `_restore` loads every weight of the model, or the run stops.
                with overwritten_weights(enabled=bool(self._resume_from)):
                    # An ImageNet backbone that the starting checkpoint replaces is not read (helper 338).
                    built = (config if backbone_weights_replaced_by(config) is None
                             else dataclasses.replace(config, backbone_weights=None))
                    self.model = self._new_model(built) if model_fn is None else model_fn()
                if getattr(config, "finetune_from", None) is not None:
                    # The class layers finetune_from starts afresh train, before the optimizer is
                    # built and on resuming too (before: inside frozen experts they stayed frozen,
                    # random for the whole run; average and maximum fusion trained nothing).
                    train_fresh_layers(self.model)
                if replicas > 1:
                    synchronize_batch_norms(self.model)
                self.optimizer = self._make_optimizer()
                self.optimizer.build(self.model.trainable_variables)
                self.step = tf.Variable(
                    0, dtype=tf.int64, trainable=False, name="step",
                    aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
                )
            if self.chief:
                self._warn_of_label_problems()
            self.iterator = iter(self.dataset)
            self.schedule = schedule_from_config(config)
            # What a subclass checkpoints besides the model (a mean teacher, a class prior).
            self._extras = self._build_extras()

            tracked: dict[str, Any] = {"model": self.model, "optimizer": self.optimizer, "step": self.step}
            # The state of the dropout's random numbers: Keras keeps it out of the model's checkpoint,
            # so a resumed run dropped other units than the uninterrupted one would have.
            self._random_seeds = seed_generator_states(self.model)
            if self._random_seeds:
                tracked["random_seeds"] = self._random_seeds
            tracked.update(self._extras)
            # Read back before the streams are built (`_choose_run_seed`), not restored.
            self._run_seed_variable = tf.Variable(self.run_seed, dtype=tf.int64, trainable=False, name=_RUN_SEED)
            tracked[_RUN_SEED] = self._run_seed_variable
            # The records the streams read, with their files' sizes: globbed and measured once.
            self._records = self._records_read()
            if self.saves_data_position:
                # The input streams' positions (`_input_streams`), restored on their own (`_restore_positions`).
                tracked.update({key: getattr(self, attribute) for key, (_, attribute) in self._input_streams().items()})
                # What the saved positions' batches look like, to tell on resuming whether they fit.
                self._streams = tf.Variable(self._streams_text(), trainable=False, dtype=tf.string)
                tracked["streams"] = self._streams
                # And which records they read, so that a position is never restored into others.
                tracked["records"] = tf.Variable(json.dumps(self._records), trainable=False, dtype=tf.string)
            self.checkpoint = tf.train.Checkpoint(**tracked)
            self.manager = tf.train.CheckpointManager(
                self.checkpoint, self._directory, step_counter=self.step,
                max_to_keep=config.keep_checkpoints if max_to_keep is None else max_to_keep,
            )
            self._saving_step: Optional[int] = None
            # Batches the moving statistics were recalibrated on since the last checkpoint (a finished
            # run recalibrated in Python): said in final.json, so that an export of them cut short is
            # recalibrated again, not done from the checkpoint's statistics (helper 320).
            self._recalibrated_since_save: Optional[int] = None
            self.resumed_from = self._restore()
            # The step this process starts from: the summaries' restart mark (`writer`) is after it.
            self._started_at = int(self.step.numpy())
            # The last step whose loss passed the NaN and divergence checks (a checkpoint's passed).
            self._checked_step = int(self.step.numpy())
            # The newest checkpoint known to be complete: the one resumed from, then each one saved.
            self.last_checkpoint: Optional[str] = self.resumed_from
            if self.resumed_from is None:
                for warning in swapped_expert_warnings(config, modalities_in_records) + unfinished_run_warnings(config):
                    self._log(f"warning: {warning}")
                unread = unread_backbone_weights_line(config)
                if unread is not None:
                    self._log(unread)
                for message in initialize_model(self.model, config):
                    self._log(f"initialised from {message}")
            check_same_start(self.strategy, int(self.step.numpy()), self.model.weights, config.checkpoint,
                             config.cluster_settings())
            if config.mixed_precision == "mixed_float16" and not tf.config.list_logical_devices("GPU"):
                # A CPU computes float16 convolutions without fast kernels: a 64x64 AdapNet++ step took
                # 14.6 s where float32 took 0.5 (helper 218).
                self._log("warning: mixed_precision: mixed_float16 on a machine without a GPU: a CPU computes "
                          "float16 convolutions about 30x slower than float32; give mixed_bfloat16 (fast where the "
                          "processor has Intel AMX) or leave mixed_precision out")
            if config.seed is None:
                self._log(self._seed_note())

            # Made at the first summary (`writer`): a finished run given again wrote an empty events
            # file into its folder, "left as it was" (helper 133).
            self._writer: Any = None
            self._summaries_off = False  # a summary write failed: the run goes on without them
            self._palette = _palette(config)
            # The encoders' rate, for the log: frozen encoders have none.
            trains_encoders = any(encoder.trainable_variables for encoder in self.model.encoders)
            self._encoder_factor = config.encoder_lr_multiplier if trains_encoders else 1.0
            self.train_function = self._make_train_function()
        except BaseException:
            self._give_folder_lock()  # a trainer that failed to start holds nothing
            raise

    # --- Setup ----------------------------------------------------------------------------------

    def _take_folder_lock(self) -> None:
        """Takes the lock of the folder this process trains (`ssma_tf.files.take_lock`)."""
        try:
            lock = take_lock(folder_lock_path(self._directory, "train"), wait=False)
        except LockedError as error:
            raise ConfigError(f"{self._directory} is being trained by another process ({error.holder}): wait for it "
                              "to end, or give another checkpoint folder", key="checkpoint",
                              source=self.config.where("checkpoint")) from None
        # Given back by `_give_folder_lock`, or when the trainer is collected.
        self._folder_lock = weakref.finalize(self, give_lock, lock)

    def _give_folder_lock(self) -> None:
        """Gives the folder's lock back (once: the finaliser is dead after its first call). A
        trainer kept after its run (a notebook) no longer keeps another process out."""
        self._folder_lock()

    def _print(self, line: str) -> None:
        if self.chief:
            print(line, flush=True)

    def _remove_partial_saves(self) -> None:
        """Removes what killed saves and exports left in `config.checkpoint` (chief only).

        A run killed while saving leaves `ckpt-N_temp/` (as large as a checkpoint, which can keep
        a full disk full) and, while exporting, `.partial-*` files; no other run writes there. A
        `.partial-*` of a process that still runs (an `ssma-export` or `ssma-evaluate --json` into
        the run folder) is its work in progress, and stays (before: removed as "left by an
        interrupted save", the export then failing with a traceback; helper 366).
        """
        directory = self.config.checkpoint
        if not self.chief or not os.path.isdir(directory):
            return
        for name in sorted(os.listdir(directory)):
            path = os.path.join(directory, name)
            if _PARTIAL_SAVE.match(name) and os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            elif name.startswith(TEMPORARY_PREFIX):
                if writer_running(path):
                    self._log(f"left {path} alone: the process that is writing it still runs")
                    continue
                remove_path(path)
            else:
                continue
            self._log(f"removed {path}, left by an interrupted save")

    def _model_inputs(self, modalities: Sequence[Any]) -> Any:
        """What the model takes from the modality batches a training mode reads itself.

        Args:
            modalities: batches of modality 1, 2, ..., at least `config.record_modalities` of
                them (a stream may carry more: DepthMix reads depth from modality 2).

        Returns:
            For SSMA, a tuple of its N modalities; for an AdapNet++ expert, the batch of the one
            its `input_modality` names. Used for the semi-supervised mix stream and the
            adaptation's target views.
        """
        needed = self.config.record_modalities
        if len(modalities) < needed:
            raise ValueError(f"{len(modalities)} modality batches for a model that reads modality {needed}")
        if self.config.is_fusion:
            return tuple(modalities[:needed])
        return modalities[needed - 1]

    def _previewed_input(self, modalities: Sequence[Any]) -> Any:
        """The batch a preview shows of `modalities`: the first image the model reads (SSMA's
        modality 1, an expert's own modality; before: modality 1 for every model)."""
        inputs = self._model_inputs(modalities)
        return inputs[0] if self.config.is_fusion else inputs

    def _new_model(self, config: Any) -> keras.Model:
        """A fresh network of `config` (the trainer's model, a subclass's teacher)."""
        return build_model(config)

    def _make_dataset(self, context: tf.distribute.InputContext, seed_offset: int) -> tf.data.Dataset:
        """The training stream of one input pipeline (a subclass may train on other data)."""
        return make_train_dataset(self.config, context, seed_offset, seed=self.run_seed)

    def _make_optimizer(self) -> keras.optimizers.Optimizer:
        """The optimizer (built in the strategy's scope); a subclass may train with another."""
        return make_optimizer(self.config, self.model, aggregate_gradients=False)  # the step all-reduces

    def _build_extras(self) -> dict[str, Any]:
        """Objects a subclass checkpoints with the run, by name (built after the model; none here).

        Its input streams are not among them: `_input_streams` names those.
        """
        return {}

    def _checkpoints_newest_first(self) -> list[str]:
        """The checkpoints listed in `config.checkpoint`'s state file, newest first.

        A damaged state file is moved aside (to `checkpoint.damaged`, so that the checkpoint
        manager starts a new one) and the `ckpt-N` checkpoints in the folder are used instead.
        """
        if state_file_is_damaged(self.config.checkpoint):
            # TensorFlow would ignore it with a warning and the run would start afresh.
            state_file = os.path.join(self.config.checkpoint, "checkpoint")
            self._log(f"warning: the checkpoint state file {state_file} is damaged; moved it to "
                      "checkpoint.damaged and looking for ckpt-N checkpoints instead")
            if self.chief:
                os.replace(state_file, state_file + ".damaged")
            found = glob.glob(os.path.join(glob.escape(self.config.checkpoint), "ckpt-*.index"))
            numbered = [(int(m.group(1)), p[: -len(".index")]) for p in found
                        if (m := re.search(r"ckpt-(\d+)\.index$", p))]
            paths = [p for _, p in sorted(numbered)]
            if paths and self.chief:
                # A new state file listing them, read by the checkpoint manager: before, it
                # started an empty one, so the found checkpoints were neither fallbacks for a
                # later resume ("none of the checkpoints can be read" beside a good ckpt-9) nor
                # ever rotated away.
                # With their times: the manager keeps paths without one forever and unlisted.
                tf.compat.v1.train.update_checkpoint_state(
                    self.config.checkpoint, paths[-1], all_model_checkpoint_paths=paths,
                    all_model_checkpoint_timestamps=[os.path.getmtime(p + ".index") for p in paths])
            return paths[::-1]
        state = tf.train.get_checkpoint_state(self.config.checkpoint)
        if state is None:
            return []
        paths = list(state.all_model_checkpoint_paths) or [state.model_checkpoint_path]
        if state.model_checkpoint_path and state.model_checkpoint_path not in paths:
            paths.append(state.model_checkpoint_path)
        resolved = [p if os.path.isabs(p) else os.path.join(self.config.checkpoint, p) for p in paths]
        return [p for p in reversed(resolved) if p]

    def _choose_run_seed(self, readable: Optional[str]) -> tuple[int, bool]:
        """The seed of this run's streams and per-step draws, and whether it was kept in the
        checkpoints (not given, not drawn now); `readable` is the newest checkpoint whose step
        reads, which the restore takes unless it is damaged further on (`_take_kept_seed`).

        Without a seed in the config, a fresh start draws one and its checkpoints keep it: a
        resume goes on with it, and two unseeded runs differ. Before, the semi-supervised,
        adaptation and depth-pretraining streams and draws took seed 0, alike in every unseeded
        run (helper 284), and a resumed supervised run augmented with a new seed. A run resumed
        without the seed it last started with draws a new one (`_reseeded`); one whose
        checkpoints hold none (written before 2026-12-07) draws one too.
        In a cluster every worker takes the chief's (each drew its own).
        """
        if self.config.seed is not None:
            return agreed_value(self.strategy, int(self.config.seed)), False
        seed = None
        if readable is not None and not self._reseeded(self._saved_config):
            seed = _read_run_seed(readable)
        kept = seed is not None
        if not kept:
            seed = random.SystemRandom().randrange(2**31)
        return agreed_value(self.strategy, seed), kept

    def _seed_note(self) -> str:
        """The log's line of an unseeded run's seed (`_choose_run_seed`)."""
        if self._seed_kept:
            return (f"note: seed unset: {self.SEEDED_CHOICES} go on with seed {self.run_seed}, drawn when the run "
                    "started and kept in its checkpoints")
        return (f"note: seed unset: drew seed {self.run_seed} for the weights' initialisation, dropout, "
                f"{self.SEEDED_CHOICES}, kept in the run's checkpoints for a resume; --set seed={self.run_seed} "
                "repeats the run")

    def _take_kept_seed(self, prefix: str, names: set[str], saved: dict[str, Any]) -> None:
        """Takes the seed an unseeded run's checkpoint `prefix` keeps, when another was chosen
        (`_choose_run_seed` read a newer checkpoint, damaged past its step, which the restore
        skips): its streams are built again with it, before their positions are restored
        (helper 306: the run went on with the skipped checkpoint's seed)."""
        if self.config.seed is not None or self._reseeded(saved) or _RUN_SEED_KEY not in names:
            return
        kept = int(tf.train.load_variable(prefix, _RUN_SEED_KEY))
        if kept == self.run_seed:
            return
        self.run_seed, self._seed_kept = kept, True  # every worker reads the same folder
        self._run_seed_variable.assign(self.run_seed)
        self._restart_streams(self._input_streams())

    def _restore(self) -> Optional[str]:
        """Restores the newest readable checkpoint; returns its prefix (None: a fresh start)."""
        saved = self._saved_config
        if saved and "log_dir" not in saved:
            # Not written when derived (`write_run_config`): the folder's own, wherever it is now.
            saved["log_dir"] = derived_log_dir(self.config.checkpoint)
        self._check_same_network(saved)
        skipped, reasons = [], []
        for prefix in self._resume_from:
            try:
                with reading(prefix):
                    names = {name for name, _ in tf.train.list_variables(prefix)}
                    restart = self._stream_changes(prefix, names, saved)
                    core = tf.train.Checkpoint(model=self.model, optimizer=self.optimizer, step=self.step,
                                               **self._extras)
                    # Another model's checkpoint: one line, not TensorFlow's warning flood.
                    check_tf2_shapes(core, prefix, self.model)
                    status = core.restore(prefix)
                    status.assert_existing_objects_matched()
                    status.expect_partial()  # the input positions are restored below, when saved
                    self._take_kept_seed(prefix, names, saved)
                    restored: set[str] = set()
                    if not restart:
                        restart, restored = self._restore_positions(prefix, names)
                    if (self._random_seeds and any(n.startswith("random_seeds/") for n in names)
                            and not self._reseeded(saved)):
                        tf.train.Checkpoint(random_seeds=self._random_seeds).restore(prefix).expect_partial()
            # A damaged file can fail anywhere in TensorFlow's reading (an IndexError for a
            # truncated `.data` file): every failure means "try the one before".
            except (CheckpointError, tf.errors.OpError, ValueError, AssertionError, IndexError) as error:
                skipped.append(prefix)
                reasons.append(f"{os.path.basename(prefix)}: {first_line(error)}")
                self._log(f"warning: cannot resume from {prefix} ({first_line(error)}); trying an older one")
                continue
            step = int(self.step.numpy())
            # Each stream whose position was not taken up starts afresh, shuffled with this step
            # added to its seeds. Decided here, after the streams were built: before, one that
            # restarts for a reason found only now (records or batches changed, a pipeline that
            # no longer restores) read the run's first batches again (helper 261).
            afresh = [key for key in self._input_streams() if key not in restored]
            if afresh and self.stream_seed_offset != step:
                self.stream_seed_offset = step
                self._restart_streams(afresh)
            # With several replicas the stream restarts anyway; a change of its batches' shape
            # is named there too (before: only on one replica; helper 133).
            reshaped = f"; {restart}" if restart and not self.saves_data_position else ""
            position = "" if self.saves_data_position else (
                f" (input stream restarted: data position is not saved with several replicas{reshaped})"
            )
            if self.saves_data_position and not _has_data_position(names):
                position = (f" (input stream restarted: {os.path.basename(prefix)} holds no data position, as a "
                            "checkpoint written on several replicas)")
            if restart and self.saves_data_position:
                # The saved position holds batches of the old shape: the first step would fail.
                position = f" (input streams restarted: {restart})"
            self._log(f"resumed from {prefix} at step {step}{position}")
            ended = saved.get("max_iteration")
            # A rate that does not follow the schedule (SAC's constant one) has no schedule to note (helper 345).
            scheduled = self._follows_schedule()
            if (scheduled and isinstance(ended, int) and ended != int(self.config.max_iteration)
                    and step < self.config.max_iteration):
                # The poly schedule is a function of step / max_iteration: a new end moves the
                # rate of every step left (up, for a finished run extended), as in TF1.
                self._log(f"note: max_iteration {ended} -> {self.config.max_iteration} since the run last started: the "
                          f"learning rate follows the schedule to the new end ({float(self.learning_rate()):.4g} "
                          "at this step)")
            changed = [f"{key} {saved[key]:g} -> {getattr(self.config, key):g}" for key in _SCHEDULE_KEYS
                       if isinstance(saved.get(key), (int, float)) and saved[key] != getattr(self.config, key)]
            if scheduled and changed and step < self.config.max_iteration:
                # As a new max_iteration: the rate jumps to the new schedule's at this step.
                self._log(f"note: {', '.join(changed)} since the run last started: the learning rate follows the new "
                          f"schedule ({float(self.learning_rate()):.4g} at this step)")
            # Nothing to compare with in a folder without config.yaml (written by an older version).
            changed_inputs = _changed_inputs(saved, self.config.to_dict()) if saved else []
            if changed_inputs and step < self.config.max_iteration:
                self._log(f"note: since the run last started, {'; '.join(changed_inputs)}: the run goes on with the "
                          "new values")
            # Before: not read, without a word, and config.yaml then named the new weights as the
            # run's start (helper 321: a stage-3 run's `intialize` corrected after it had started).
            starting, kept = _changed_starting_weights(saved, self.config.to_dict()) if saved else ([], {})
            if starting and step < self.config.max_iteration:
                self._log(f"note: since the run last started, {'; '.join(starting)}: not read, as a resumed run goes "
                          "on from its checkpoint (config.yaml keeps the weights it started from); give another "
                          "checkpoint folder to start from the new ones")
            if starting:  # a finished run's export done again too (helper 324)
                self.config = dataclasses.replace(self.config, **kept)
            if skipped:
                self._log(f"warning: skipped {len(skipped)} newer checkpoint(s) that cannot be read: "
                          f"{', '.join(skipped)} (left in place; the next saves replace them)")
            return prefix
        if self._resume_from:
            raise CheckpointError(
                f"none of the checkpoints in {self.config.checkpoint} can be read "
                f"({'; '.join(reasons)}); move them away to start afresh"
            )
        return None

    def _restore_positions(self, prefix: str, names: set[str]) -> tuple[str, set[str]]:
        """Restores the input streams' positions saved in `prefix`; says which restart ("": none)
        and returns with it the names of the streams restored.

        A position restores only into the pipeline that saved it: after a setting that shapes
        the pipeline changed (SAC's `importance_weights` set or unset), or an update of this
        package or of TensorFlow changed it, TensorFlow refuses it ("Failed to restore dataset
        iterator ... the dataset definition has not changed") and leaves the iterator unusable
        ("End of sequence" at the first step). That stream then starts afresh from a new
        iterator, and the run resumes with its weights, optimizer and step (before: every
        checkpoint was skipped in turn, and the run was lost).
        """
        if not self.saves_data_position:
            return "", set()
        failed, restored = [], set()
        for key, (dataset_attribute, attribute) in self._input_streams().items():
            if not any(name.startswith(key + "/") for name in names):
                continue
            with _quiet_restore() as failed_here:
                try:
                    tf.train.Checkpoint(**{key: getattr(self, attribute)}).restore(prefix).expect_partial()
                    problem, damaged = "", None
                except _OTHER_PIPELINE as error:
                    problem, damaged = _iterator_problem(error), None
                    failed_here.append(key)
                except tf.errors.OpError as error:  # a damaged file: the checkpoint before is tried
                    # A new error, so that the failed restore's objects are collected (and
                    # quiet) here, not when the one before has been tried.
                    problem, damaged = "", CheckpointError(f"its {key} position: {first_line(error)}")
                    failed_here.append(key)
            if problem or damaged is not None:
                # A failed restore leaves the iterator at "End of sequence": a new one either way
                # (`_restore` shuffles it afresh once the step is known).
                fresh = iter(getattr(self, dataset_attribute))
                setattr(self, attribute, fresh)
                setattr(self.checkpoint, key, fresh)  # the next saves save the new stream's position
            if damaged is not None:
                raise damaged
            if problem:
                failed.append((key, problem))
            else:
                restored.add(key)
        if not failed:
            return "", restored
        keys = ", ".join(key for key, _ in failed)
        several = len(failed) > 1
        return (f"the position{'s' if several else ''} of {keys} saved in {os.path.basename(prefix)} "
                f"{'do' if several else 'does'} not fit the input pipeline as it is now "
                f"(TensorFlow: {failed[0][1]})"), restored

    def _restart_streams(self, keys: Iterable[str]) -> None:
        """Builds the input streams `keys` again, their seeds shifted by `stream_seed_offset`, and
        checkpoints the new iterators' positions in place of the old."""
        streams = self._input_streams()
        for key in keys:
            dataset_attribute, attribute = streams[key]
            dataset = self._distributed_stream(key, self.stream_seed_offset)
            setattr(self, dataset_attribute, dataset)
            fresh = iter(dataset)
            setattr(self, attribute, fresh)
            if self.saves_data_position:
                setattr(self.checkpoint, key, fresh)

    def _follows_schedule(self) -> bool:
        """Whether the learning rate follows the poly schedule (`learning_rate`, `end_learning_rate`,
        `power`, `max_iteration`), whose changes a resume notes; a subclass may train at a rate of its own."""
        return True

    def _input_streams(self) -> dict[str, tuple[str, str]]:
        """The input streams whose positions a checkpoint saves (on one replica), by their name
        in it: the attributes holding the distributed dataset and its iterator. A subclass reading
        another stream (`mix_data`, `target_data`) adds it, and builds it in `_distributed_stream`."""
        return {_DATA_KEY: ("dataset", "iterator")}

    def _distributed_stream(self, key: str, seed_offset: int) -> Any:
        """The input stream `key` of `_input_streams`, distributed over the replicas, with
        `seed_offset` added to the seeds of its shuffle and augmentation (a resumed run's step,
        where the stream starts afresh)."""
        if key != _DATA_KEY:
            raise KeyError(f"no input stream {key!r} in {type(self).__name__}")
        return self.strategy.distribute_datasets_from_function(lambda context: self._make_dataset(context, seed_offset))

    def _method_text(self) -> str:
        """What the run's first line adds about a training method beyond supervised ("" here;
        the semi-supervised, adaptation and depth-pretraining trainers name theirs and their data)."""
        return ""

    def _check_same_network(self, saved: dict[str, Any]) -> None:
        """A checkpoint folder holding a run of another network is named by its config.yaml
        (`saved`; before: a shape error about whichever variable came first, or an optimizer slot)."""
        config = self.config
        for key, default in (("model", None), ("fusion", None), ("backbone", ADAPNET_PP_BACKBONE)):
            before, now = saved.get(key, default), getattr(config, key, default)
            if key == "fusion" and config.is_fusion:  # SSMA itself: null or ssma
                before, now = before or SSMA_FUSION, now or SSMA_FUSION
            if key in saved and before != now:
                raise CheckpointError(
                    f"{config.checkpoint} holds a run of {key}: {before} (its {RUN_CONFIG}), but the config "
                    f"{config.where(key)} trains {key}: {now}; give another checkpoint folder for a new run")
        if not saved:
            return  # a fresh start, or a folder of a version that wrote no config.yaml
        before, now = saved.get("pretraining"), config.pretraining
        # Depth runs written before the key existed (unreleased) are not told from segmentation
        # runs: taken for depth runs, a two-class segmentation run without a dataset had its
        # checkpoints replaced by ssma-pretrain-depth.
        if before != now:
            # A depth run pointed at a segmentation run's folder (or back): "the checkpoint has
            # 7 classes, the model 2", though the config said 7.
            what = lambda value: f"{value} pretraining" if value else "segmentation"  # noqa: E731
            raise CheckpointError(
                f"{config.checkpoint} holds a {what(before)} run (its {RUN_CONFIG}), but this is a {what(now)} run "
                f"of {config.source}; give another checkpoint folder for a new run")
        # Weights of another class count failed on every checkpoint in turn, in a line of 1,100
        # characters that advised moving them away; another input modality went on (weights
        # trained on RGB fed depth) and the run's config.yaml then named the new one only.
        # The decoder's width, SSMA's auxiliary heads and its modality count too: before, two
        # TensorFlow warnings and every checkpoint "cannot be read" with advice to move them away.
        # The eASPP's rates change no shape: the weights of other rates loaded and trained on.
        shape_keys = (("num_classes", "decoder_filters", "easpp_rates")
                      + (("aux_heads",) if config.is_fusion else ("input_modality",)))
        for key in shape_keys:
            before, now = saved.get(key), getattr(config, key)
            before = tuple(before) if isinstance(before, list) else before  # YAML keeps a list
            if before is not None and before != now:
                raise _another_run(config, key, before, now)
        if config.is_fusion:
            listed = saved.get("modalities")
            before = 2 if listed is None else len(listed)
            if before != config.num_modalities:
                named = "[" + ", ".join(map(str, listed)) + "]" if listed else "not given: two"
                raise CheckpointError(
                    f"{config.checkpoint} holds a run over {before} modalities (its {RUN_CONFIG}: modalities {named}), "
                    f"but the config {config.where('modalities')} trains over {config.num_modalities}; give another "
                    "checkpoint folder for a new run")
        # The same network trained another way is another run too: resumed, a stage-3 config
        # pointed at its stage-2 folder failed on an optimizer slot, and a mean teacher switched
        # off (or on) was dropped (or missing) without a word.
        modes = [(key, _method(saved.get(key), default), _method(getattr(config, key), default))
                 for key, default in (("semi_supervised", SemiSupervisedConfig().method),
                                      ("adaptation", AdaptationConfig().method))
                 # Depth pretraining keeps the section for its depth encoding only (before
                 # 2026-12-02 it dropped it): no method of its own.
                 if not (key == "semi_supervised" and config.pretraining)]
        # mixed_float16 wraps the optimizer in loss scaling, which the checkpoint holds (before:
        # "none of the checkpoints can be read", 470 lines of TensorFlow warnings and advice to
        # move a good run away).
        before, now = saved.get("mixed_precision"), config.mixed_precision
        if (before == "mixed_float16") != (now == "mixed_float16"):
            modes.append(("mixed_precision", before, now))
        if config.is_fusion and "freeze_experts" in saved:
            modes.append(("freeze_experts", bool(saved["freeze_experts"]), bool(config.freeze_experts)))
        saved_section = saved.get("adaptation")
        if (isinstance(saved_section, dict) and config.adaptation is not None and config.adaptation.method == "sac"
                and _method(saved_section, AdaptationConfig().method) == "sac"):
            # SAC's SGD and Adam keep other slots: resumed with the other one, every checkpoint
            # was "unreadable" and the advice was to move a good run away (helper 139).
            modes.append(("adaptation.optimizer", saved_section.get("optimizer", AdaptationConfig().optimizer),
                          config.adaptation.optimizer))
        for key, before, now in modes:
            if before != now:
                hint = (" (stage 3 starts from stage 2's weights with intialize, in a folder of its own)"
                        if key == "freeze_experts" else "")
                raise _another_run(config, key, before, now, hint)

    def _streams_text(self) -> str:
        """The element specs of the input streams whose position a checkpoint saves, as text."""
        streams = {key: getattr(self, attribute) for key, (_, attribute) in self._input_streams().items()}
        return json.dumps({name: str(stream.element_spec) for name, stream in sorted(streams.items())})

    def _records_read(self) -> dict[str, Any]:
        """The record keys whose streams a checkpoint saves the position of: their values, and
        the size and modification time of each file they match (records converted again into
        the same file)."""
        read = {records.key for records in self.record_sets()} | {"labeled_subset"}
        paths = [path for key in _RECORD_KEYS if key in read for path in _matched_files(getattr(self.config, key))]
        return {key: _as_list(getattr(self.config, key)) for key in _RECORD_KEYS if key in read} | {
            _SIZES: file_sizes(paths), _TIMES: file_times(paths)}

    def _reseeded(self, saved: dict[str, Any]) -> bool:
        """Whether the run's `config.yaml` (`saved`, from its last start) names another seed, or
        none where one is given now (before: a seed given to a run started without one kept its
        streams and dropout; helper 233)."""
        return bool(saved) and saved.get("seed") != self.config.seed

    def _stream_changes(self, prefix: str, names: set[str], saved: dict[str, Any]) -> str:
        """Why the input positions saved in `prefix` cannot be restored ("" when they can).

        Each checkpoint records its streams' element specs; the batches differ when a key that
        shapes them changed since (`batch_size`, `height`, `width`, SAC's views), and the
        restored position would fail at the first step. It records the records read too
        (`_RECORD_KEYS`) and their files' sizes: a position in other files is none. Checkpoints
        of earlier versions are compared through the run's `config.yaml` (`saved`, written when
        the run last started).
        """
        keys = ", ".join(f"{key} {saved[key]} -> {getattr(self.config, key)}" for key in _STREAM_KEYS
                         if key in saved and saved[key] != getattr(self.config, key))
        # Another set of records: a position in the old files means nothing in the new ones, and
        # the saved pipeline of one file did not restore into that of several (every checkpoint
        # failed, and the run was lost). The checkpoint's own list when it has one: config.yaml
        # is rewritten at every start, before the first checkpoint of the new records.
        now, since = self._records, "the run's last start"
        if self.saves_data_position and _RECORDS_KEY in names:
            before, since = json.loads(_text(tf.train.load_variable(prefix, _RECORDS_KEY))), os.path.basename(prefix)
        else:
            before = {key: _as_list(saved.get(key)) for key in now if key not in _FILE_ENTRIES} if saved else now
        # Those read before and no more too (before: a key left out on resuming went unsaid, and its
        # files were reported "rewritten ... -> absent bytes", though they were there; helper 289).
        compared = [*now, *(key for key in before if key not in now)]
        records = [key for key in compared if key not in _FILE_ENTRIES and before.get(key) != now.get(key)]
        if records:
            return f"{', '.join(records)} changed since {since}" + (f" ({keys})" if keys else "")
        # The same names, other files: converted again since. The saved position is a byte
        # offset into the old file; restored, it read "corrupted record at 599170" steps later,
        # at every rerun. Checkpoints written before 2026-12-02 hold no sizes.
        # Of the same size, told by their times: the same images converted again in another order
        # (the advice after a warning of grouped records), whose saved byte offset falls inside a record.
        changed = rewritten_files((before.get(_SIZES), now[_SIZES]), (before.get(_TIMES), now[_TIMES]))
        if changed:
            return f"files rewritten since {since}: {changed}" + (f" ({keys})" if keys else "")
        if self._reseeded(saved):
            # The saved position holds batches the old seed shuffled and augmented, drawn ahead:
            # restored, the steps after it replayed them, and a new seed (the advice after a NaN)
            # changed nothing for a while (helper 171).
            return f"seed {_shown(saved.get('seed'))} -> {_shown(self.config.seed)} since the run's last start" + (
                f" ({keys})" if keys else "")
        if not self.saves_data_position or _STREAMS_KEY not in names:
            return keys and f"{keys} since the run's last start"
        if _text(tf.train.load_variable(prefix, _STREAMS_KEY)) == self._streams_text():
            return ""
        return f"their batches changed shape since {os.path.basename(prefix)}" + (f" ({keys})" if keys else "")

    def _note_no_xla(self, what: str) -> None:
        """Says that `xla: true` does not reach a step of `what` (a trainer's own step, not
        compiled with XLA: before, the key was taken without a word; helper 237)."""
        if self.config.xla:
            self._log(f"note: xla is not used by {what}: only the supervised training step and the evaluation "
                      "are compiled with it")

    def _make_train_function(self) -> Callable[[Any], Any]:
        config, model, optimizer, strategy = self.config, self.model, self.optimizer, self.strategy
        replicas = strategy.num_replicas_in_sync
        aux_weights = tuple(config.aux_loss_weights)
        decayed = decayed_weights(model)

        def forward_backward(inputs, labels):
            result = supervised_pass(model, optimizer, inputs, labels, aux_weights=aux_weights,
                                     decayed=decayed, weight_decay=config.weight_decay,
                                     replicas=replicas)
            return result.loss, result.terms, result.gradients, preview_classes(result.outputs["softmax"])

        if config.xla and replicas == 1:
            # Only the arithmetic is compiled: the optimizer's update stays outside XLA.
            forward_backward = tf.function(forward_backward, jit_compile=True)
        elif config.xla:
            # Synchronized batch norm all-reduces inside the forward pass, and a cross-replica
            # call cannot sit inside a nested compiled function.
            self._log(f"note: xla is not used with {replicas} replicas (synchronized batch norm)")

        def replica_step(inputs, labels):
            loss, terms, gradients, preview = forward_backward(inputs, labels)
            apply_gradients(optimizer, gradients, model.trainable_variables, replicas)
            return loss, terms, preview, preview_classes(labels)

        @tf.function
        def train_function(iterator):
            inputs, labels = next(iterator)
            loss, terms, preview, truth = strategy.run(replica_step, args=(inputs, labels))
            self.step.assign_add(1)
            return (
                replica_mean(strategy, loss),
                {name: replica_mean(strategy, value) for name, value in terms.items()},
                first_replica(strategy, preview),
                first_replica(strategy, truth),
            )

        return train_function

    def step_seed(self, stream: int) -> Any:
        """A stateless-random seed for this step, replica and `stream` (inside `strategy.run`).

        Different for every step, replica and stream, the same when a run resumes at the same
        step: the random choices of a training mode's step (a jitter, a mask) are reproducible.
        Without a seed in the config they are those of the run's drawn seed (`run_seed`).
        """
        replicas = self.strategy.num_replicas_in_sync
        replica = tf.cast(tf.distribute.get_replica_context().replica_id_in_sync_group, tf.int64)
        base = tf.constant(self.run_seed, tf.int64)
        return tf.stack([base * 16 + stream, tf.cast(self.step, tf.int64) * replicas + replica])

    # --- Running --------------------------------------------------------------------------------

    def learning_rate(self, step: Optional[int] = None) -> float:
        """The base learning rate (before encoder factors) at `step`; by default the one the next
        update applies, at the optimizer's own count of updates (under mixed_float16 the loss
        scaling skips an update whose gradients overflowed and does not count it: the training
        step alone drifted from the schedule's step, and the log showed a rate nothing applied)."""
        if step is None:
            optimizer = getattr(self.optimizer, "inner_optimizer", self.optimizer)
            step = int(optimizer.iterations.numpy())
        return float(self.schedule(step))

    def save(self) -> Optional[str]:
        """Writes a checkpoint at the current step (every worker must call it together).

        Raises:
            CheckpointWriteError: the write failed (a full disk, a lost mount); its partial
                files are removed and the previous checkpoint stays the newest one.
        """
        step = int(self.step.numpy())
        self._saving_step = step  # kept when an interrupt stops the save: not retried then
        try:
            path = self.manager.save(checkpoint_number=step)
        except (tf.errors.OpError, OSError) as error:
            prefix = os.path.join(self._directory, f"ckpt-{step}")
            self._remove_failed_save(prefix)
            kept = self.last_checkpoint
            raise CheckpointWriteError(
                f"cannot write the checkpoint {prefix} at step {step}: {first_line(error)}. "
                "Its partial files are removed; "
                + (f"the last good checkpoint is {kept}: free some space (or make the folder writable) and run "
                   "again to resume from it" if kept else "no checkpoint was written before: free some space (or "
                   "make the folder writable) and "
                   "run again")
            ) from None
        self._saving_step = None
        self._recalibrated_since_save = None  # the checkpoint holds them now
        if not self.chief:
            shutil.rmtree(self._directory, ignore_errors=True)
            return None
        # Known here, before a subclass's work after the save (an interrupt there keeps it true).
        self.last_checkpoint = path
        return path

    def _remove_failed_save(self, prefix: str) -> None:
        """Removes what a failed save of `prefix` wrote, unless the state file records it."""
        shutil.rmtree(prefix + "_temp", ignore_errors=True)
        if prefix in self.manager.checkpoints:
            return  # an older, complete checkpoint of that step, which a rewrite failed to replace
        for path in glob.glob(glob.escape(prefix) + ".index") + glob.glob(glob.escape(prefix) + ".data-*"):
            remove_path(path)

    def write_run_config(self) -> Optional[str]:
        """Writes the resolved config as `<checkpoint>/config.yaml` (chief only); returns its path.

        With it the run folder describes itself: `ssma-evaluate RUN` needs no other flags.
        """
        if not self.chief:
            return None
        return write_run_config(self.config, self.config.checkpoint)

    def _export_and_say(self, write_config: bool = True) -> Optional[str]:
        """`export_weights`, with a line naming the files it wrote."""
        weights = self.export_weights(write_config)
        if weights is not None:
            self._log(f"exported {weights} and {os.path.join(os.path.dirname(weights), FINAL_MODEL)}")
        return weights

    def export_weights(self, write_config: bool = True) -> Optional[str]:
        """Writes `<checkpoint>/final.weights.h5`, `final.keras`, `final.json` (the checkpoint they
        were exported at) and (with `write_config`) `config.yaml` atomically.

        Chief only; returns the weights file's path. The `.keras` file holds the architecture
        too, so it loads without knowing the model or its class count.
        """
        if not self.chief:
            return None
        final = os.path.join(self.config.checkpoint, FINAL_WEIGHTS)
        model_file = os.path.join(self.config.checkpoint, FINAL_MODEL)
        kept = self.last_checkpoint
        rerun = (f"; the trained weights are in the checkpoint {kept}: free some space (or make the folder "
                 "writable) and run again to export them" if kept else "")
        # Both files hold every weight once, plus a little structure. Checked first because a
        # write that fails halfway leaves h5py in a state where it may crash on closing.
        needed = 2 * sum(int(np.prod(w.shape)) * np.dtype(w.dtype).itemsize for w in self.model.weights)
        free = free_bytes(self.config.checkpoint)
        if free is not None and free < needed * 1.1:
            raise CheckpointWriteError(
                f"not enough space in {self.config.checkpoint} to export {FINAL_WEIGHTS} and "
                f"{FINAL_MODEL}: {free / 1e6:.1f} MB free, about {needed * 1.1 / 1e6:.1f} MB needed"
                f"{rerun}"
            )
        # Which checkpoint the files hold, in final.json: first without their sizes (an export cut
        # short between the two files), then with them (before: told by modification times, which
        # a copied folder does not keep; helper 314).
        folder = self.config.checkpoint
        checkpoint, record = newest_checkpoint(folder), os.path.join(folder, FINAL_RECORD)
        target = record
        try:
            write_final_record(folder, checkpoint, written=False, recalibrated=self._recalibrated_since_save)
            target = final
            with atomic_path(final) as partial:  # ends in `.weights.h5`, as Keras insists
                self.model.save_weights(partial)
            target = model_file
            with atomic_path(target) as partial:
                self.model.save(partial)
            target = record
            write_final_record(folder, checkpoint, written=True, recalibrated=self._recalibrated_since_save)
        # h5py reports a failed write as an OSError or a RuntimeError, Keras' zip writer as an
        # OSError; `atomic_path` has removed the partial file either way.
        except (OSError, RuntimeError, tf.errors.OpError) as error:
            raise CheckpointWriteError(
                f"cannot write {target}: {first_line(error)}. The partial file is removed{rerun}"
            ) from None
        if write_config:
            self.write_run_config()
        return final

    @property
    def writer(self) -> Any:
        """The TensorBoard summary writer of `log_dir` (chief only; a no-op writer elsewhere)."""
        if self._writer is None:
            if self.chief and self.config.log_dir:
                writer = tf.summary.create_file_writer(self.config.log_dir)
                # Steps logged after the checkpoint a run resumes from are dropped by TensorBoard
                # (before: after a stop without a save, they were drawn twice, with other values;
                # helper 281). A first start writes one too: TensorBoard ignores a run's first.
                write_session_start(writer, self._started_at + 1)
                self._writer = writer
            else:
                self._writer = tf.summary.create_noop_writer()
        return self._writer

    def write_summaries_or_warn(self, write: Callable[[], None]) -> None:
        """Runs `write` (summaries); a write that fails (a full disk: TensorFlow's OutOfRangeError
        on flushing) is one warning, and the run goes on without summaries. Before, a traceback
        ended the run, its steps since the last checkpoint lost (helper 133)."""
        if self._summaries_off:
            return
        try:
            write()
        except (tf.errors.OpError, OSError) as error:
            self._log(f"warning: cannot write TensorBoard summaries to {self.config.log_dir}: {first_line(error)}; "
                      "training goes on without them")
            self._summaries_off = True
            self._writer = tf.summary.create_noop_writer()

    def _write_summaries(self, step: int, loss: float, terms: dict[str, float], lr: float,
                         preview: Any = None, truth: Any = None) -> None:
        with self.writer.as_default():
            write_scalar("loss/total", loss, step)
            for name, value in terms.items():
                write_scalar(f"loss/{name}", value, step)
            write_scalar("learning_rate", lr, step)
            if self._encoder_factor != 1.0:
                write_scalar("learning_rate/encoders", lr * self._encoder_factor, step)
            if preview is not None:
                self._write_preview(step, preview, truth)
        self.writer.flush()

    def _check_window(self, first: int, last: int, terms: dict[str, float]) -> dict[str, float]:
        """Looks at the mean terms of steps `first..last` before they are logged; returns those to log.

        A subclass whose step measures its input (not a loss term) takes that measure out here
        and warns of it; this one logs them all.
        """
        return terms

    def _colours(self, class_ids: Any) -> np.ndarray:
        """Class maps painted in the preview palette. An id the model does not know (255, say) is
        void, as in the loss, the metrics and ssma-predict's label pictures (before: painted in the
        last class's colour, an object where training ignored the pixels)."""
        ids = np.asarray(class_ids)
        ids = np.where((ids >= 0) & (ids < min(self.config.num_classes, len(self._palette))), ids, 0)
        return self._palette[ids]

    def _write_preview(self, step: int, preview: Any, truth: Any = None) -> None:
        """Writes the step's preview images: predicted and true class maps, in the palette."""
        write_images("predicted_masks", self._colours(preview), step, max_outputs=PREVIEW_IMAGES)
        if truth is not None:
            write_images("ground_truth", self._colours(truth), step, max_outputs=PREVIEW_IMAGES)

    def run(self) -> TrainResult:
        """The whole run, as `train(config)` does it: the run's config written, then every step.

        The config goes to `<checkpoint>/config.yaml` before the first step, so that an
        interrupted run describes itself too; a damaged record of any set the run reads
        (`record_sets`) is reported with its file (shard) and index.
        """
        with contextlib.ExitStack() as stack:
            checked = set()
            for records in self.record_sets():
                files = list_record_files(getattr(self.config, records.key))
                # The same files read the same way (unlabeled_data = train_data) are checked once.
                identity = (tuple(os.path.realpath(f) for f in files), records.labeled, records.modalities)
                if identity not in checked:
                    checked.add(identity)
                    stack.enter_context(naming_damaged_records(files, records.modalities, records.labeled))
            return self.train()

    def record_sets(self) -> list[RecordSet]:
        """The record sets the run reads, and how (`RecordSet`).

        A subclass that reads more (unlabeled images, a target domain) adds its sets, so that
        `run` names a damaged record in any of them and the start checks every labelled set's
        class ids.
        """
        # With a `labeled_subset` (its records checked to have labels), the others need none.
        return [RecordSet("train_data", self.config.labeled_subset is None, self.config.record_modalities)]

    def _warn_of_label_problems(self) -> None:
        """Logs a warning when the first labels of a set hold no class pixel, or ids that `num_classes`
        makes void."""
        for key, labeled, _, evaluated in self.record_sets():
            # A labeled subset's labels are read, though other records of train_data may lack one.
            if labeled or (key == "train_data" and self.config.labeled_subset is not None):
                # An evaluated set's in the evaluation's words (helper 261: "training on these labels").
                warning = label_ids_warning(list_record_files(getattr(self.config, key)), self.config.num_classes,
                                            what=key, evaluating=evaluated)
                if warning:
                    self._log(f"warning: {warning}")

    def train(self, max_steps: Optional[int] = None) -> TrainResult:
        """Runs the steps left up to `max_iteration`.

        Args:
            max_steps: stop after this many steps of this call (for tests and time-boxed jobs);
                a checkpoint is written where it stops.

        Returns:
            A `TrainResult`.

        Raises:
            NonFiniteLossError: the loss became NaN or Inf (the last good checkpoint is kept).
            DivergenceError: the mean loss of the last `DIVERGENCE_WINDOW` steps grew above
                `divergence_factor` times the starting level (likewise).
            CheckpointWriteError: a checkpoint or the exported weights could not be written.
            KeyboardInterrupt: Ctrl-C (or SIGTERM under `ssma_tf.cli.common.command`), after a
                line saying which checkpoint the same command resumes from.
        """
        if not self._folder_lock.alive:  # a second `train` of this trainer
            self._take_folder_lock()
        try:
            return self._train(max_steps)
        finally:
            self._give_folder_lock()

    def _train(self, max_steps: Optional[int]) -> TrainResult:
        """`train`, while the folder's lock is held."""
        if int(self.step.numpy()) < int(self.config.max_iteration):
            # Before the first step, so that an interrupted run describes itself too; a finished
            # run's is left as it was (`_run_steps`). Before, only `run` wrote it: a run trained
            # with `Trainer(config).train()` had none, and resuming it noted every key "changed".
            self.write_run_config()
        try:
            return self._run_steps(max_steps)
        except KeyboardInterrupt:
            self._clear_progress()
            step = int(self.step.numpy())
            self._save_on_interrupt(step)
            # The interrupt comes when a step returns: that step ran, but its loss line never came
            # (the last line said step 4 where the run stopped at 5, as if 5 had been cut off).
            unlogged = (f" (step {step} ran; the interrupt came as it returned, before its loss was checked)"
                        if step > self._checked_step else "")
            if self.last_checkpoint is not None:
                self._log(f"stopped at step {step}{unlogged}; the newest checkpoint is {self.last_checkpoint}: "
                          "the same command resumes from it")
            else:
                self._log(f"stopped at step {step}{unlogged} before the first checkpoint: the same command starts "
                          "again from the beginning")
            raise
        except BaseException:
            self._clear_progress()  # the error's line on a line of its own
            raise

    def _clear_progress(self) -> None:
        """Removes the progress bar of the steps, if one is drawn (before: the lines after an
        interrupt or an error were glued onto it; helper 242)."""
        bar = getattr(self, "_bar", None)
        if bar is not None:
            bar.clear()

    def _weights_finite(self) -> bool:
        """Whether every trainable weight is finite."""
        return all(bool(tf.reduce_all(tf.math.is_finite(v))) for v in self.model.trainable_variables)

    def _save_on_interrupt(self, step: int) -> None:
        """Saves the steps since the last checkpoint when Ctrl-C or SIGTERM stops the run.

        A step runs in TensorFlow's runtime and Python raises the interrupt when it returns: the
        weights, optimizer, step and input position agree, but that step's loss may not have
        been checked yet, so the weights are checked to be finite first. Not saved: when the
        interrupt came during a save (the user is stopping that), on a cluster (every worker
        would have to join the save), or after the last step of a run that recalibrates its
        batch norms (the rerun must do that before exporting). Only the checkpoint is written
        (`Trainer.save`: a subclass's monitoring after a save, such as SAC's target evaluation,
        is left out).
        """
        clustered = bool(getattr(getattr(self.strategy, "cluster_resolver", None), "task_type", None))
        if self._saving_step == step and self.chief:
            # The interrupt came as the save returned, after the manager had recorded it: the
            # checkpoint is whole and the rerun resumes from it (before: "not saved", and the
            # older checkpoint named; helper 133).
            written = self.manager.latest_checkpoint
            if written is not None and written.endswith(f"ckpt-{step}") and os.path.isfile(written + ".index"):
                self.last_checkpoint = written
                self._saving_step = None
        saved = self.last_checkpoint is not None and self.last_checkpoint.endswith(f"ckpt-{step}")
        recalibrating = step >= int(self.config.max_iteration) and self.config.recalibrate_batch_norm
        if self._saving_step == step and not saved:
            # Said, as the other cases below are: a user counting on the steps since the last
            # checkpoint found them gone without a word (the save of this step was what stopped).
            self._log(f"warning: not saved at step {step}: the interrupt came while its checkpoint was being written")
            return
        if step == 0 or saved or clustered or recalibrating:
            return
        if step != self._checked_step and not self._weights_finite():
            self._log(f"warning: not saved at step {step}: its loss was not checked yet and the weights are "
                      "not finite")
            return
        try:
            path = Trainer.save(self)
        except (KeyboardInterrupt, CheckpointWriteError) as error:
            self._log(f"warning: not saved at step {step}: {first_line(error) or 'interrupted again'}")
            return
        if path is not None:
            self._log(f"saved checkpoint {path} (step {step}) on the interrupt")

    def _run_steps(self, max_steps: Optional[int]) -> TrainResult:
        """`train`'s loop."""
        config = self.config
        total = int(config.max_iteration)
        start = int(self.step.numpy())
        end = total if max_steps is None else min(total, start + max_steps)
        losses: list[float] = []
        if start >= total:
            final = os.path.join(config.checkpoint, FINAL_WEIGHTS)
            # Both final files exported at the last checkpoint (final.json): a stop during the export
            # (SIGTERM after final.weights.h5) left the `.keras` file of an earlier finish,
            # which `ssma-predict RUN/final.keras` then read without a word.
            has_config = os.path.isfile(os.path.join(config.checkpoint, RUN_CONFIG))
            exported = final_files_current(config.checkpoint) and has_config
            # A finished run's folder is left as it was: before, its config.yaml took the keys
            # of the config given now (another test_data, which `ssma-evaluate RUN` then read
            # without a word). Only an export that failed or was cut short is done now.
            self._log(f"training already complete: the run is at step {start}, max_iteration {total}"
                      + ("; its folder is left as it was" if exported else "; exporting its final weights"))
            saved, now = self._saved_config, config.to_dict()
            differ = sorted(key for key in now if key not in ("checkpoint", "max_iteration")
                            and (key in saved or key in DEFAULTS)
                            and _as_written(key, saved.get(key, _DEFAULT)) != now[key])
            if differ:
                self._log(_finished_run_note(differ))
            # An export cut short is done again without config.yaml, which keeps the run's values
            # (before: rewritten from the config given now, so that it claimed a recalibration
            # never done, or another test_data; helper 129).
            again = None if exported else self._recalibrate_again(final_record(config.checkpoint))
            weights = final if exported else self._export_and_say(write_config=not has_config)
            if again is not None and has_config:
                # The rest of config.yaml as the run wrote it (helper 324: it said 0, as the export
                # cut short had not got to write it).
                update_run_config(config.checkpoint, {"recalibrate_batch_norm": again})
            return TrainResult(start, start, losses, self.last_checkpoint, weights)

        replicas = self.strategy.num_replicas_in_sync
        learning = _trained_share(self.model, config)
        # `gpu_id: '0'` (every released config) trains on the CPU where no GPU is visible: say which.
        device = "GPU" if tf.config.list_logical_devices("GPU") else "CPU"
        backbone = getattr(self.model, "backbone", ADAPNET_PP_BACKBONE)
        on_backbone = "" if backbone == ADAPNET_PP_BACKBONE else f" on the {backbone} backbone"
        self._log(
            f"training {self.model.name}{on_backbone} ({self.model.count_params():,} weights{learning}) on "
            f"{_images_read(config)} of each record, from step {start} to {total} on {replicas} replica(s) "
            f"({device}), batch {config.batch_size}{self._method_text()}; checkpoints in {config.checkpoint}"
        )
        bar = self._bar = Progress(end, stream=sys.stdout, unit="steps")  # drawn on a terminal only
        window: list[float] = []
        window_terms: dict[str, list[float]] = {}
        timer_start, timed_steps = None, 0
        step = start
        saved_at = start if self.resumed_from else None
        divergence = _DivergenceCheck(config.divergence_factor, config.num_classes)
        # A checkpoint holds the weights whose loss the next step shows: it is good when that
        # loss is finite and below the divergence limit. Those written while the loss grew, and
        # the one whose weights gave a NaN, are removed. The checkpoint resumed from is confirmed
        # by the first step as well (before: a NaN at the step after a save named that
        # checkpoint "the last good", and the rerun it advised resumed from it and stopped again).
        good, unconfirmed, growing = self.last_checkpoint, None, []
        if self.resumed_from and self.last_checkpoint in self.manager.checkpoints:
            kept = self.manager.checkpoints
            at = kept.index(self.last_checkpoint)
            good, unconfirmed = (kept[at - 1] if at else None), self.last_checkpoint
        while step < end:
            raise_if_terminated()  # a SIGTERM whose exception a finaliser dropped (`ssma_tf.errors`)
            lr = self.learning_rate()
            loss_t, terms_t, preview, truth = self.train_function(self.iterator)
            loss = float(loss_t)
            step += 1
            if not math.isfinite(loss):
                bar.clear()
                dropped = self._drop_unconfirmed(growing + [unconfirmed] if unconfirmed else growing, good,
                                                 "the weights that gave it")
                # Resuming needs a checkpoint (before: advised when none was kept; helper 171).
                again = ("resume from the checkpoint with another seed" if self.chief and self.last_checkpoint
                         else "start again with another seed")
                raise NonFiniteLossError(
                    f"loss is {loss} at step {step}; training stopped without saving "
                    f"({dropped}{self._kept()}). Lower learning_rate, check the labels and images of "
                    f"train_data, or {again}."
                )
            diverged = divergence.update(loss)
            if unconfirmed is not None:
                if divergence.within_limit(loss):
                    good, growing = unconfirmed, []
                else:
                    growing.append(unconfirmed)
                unconfirmed = None
            if diverged:
                bar.clear()
                dropped = self._drop_unconfirmed(growing, good, "written while the loss grew")
                raise DivergenceError(
                    f"the loss diverged at step {step}: {diverged}; training stopped without saving "
                    f"({dropped}{self._kept()}). Lower learning_rate (now "
                    f"{config.learning_rate:g}), or set divergence_factor: 0 to train on regardless."
                )
            losses.append(loss)
            self._checked_step = step
            window.append(loss)
            for name, value in terms_t.items():
                window_terms.setdefault(name, []).append(float(value))
            # The first step includes tracing and graph optimisation: time the ones after it.
            if timer_start is None:
                timer_start = time.perf_counter()
            else:
                timed_steps += 1
            per_step = (time.perf_counter() - timer_start) / timed_steps if timed_steps else float("nan")
            left = per_step * (total - step) if timed_steps else float("nan")
            eta = format_duration(left)
            bar.update(step, f"loss {loss:.4f} lr {lr:.3e} ETA {eta}")

            save_now = step % config.save_step == 0 or step == end
            if step % config.skip_step == 0 or step == end:
                mean_loss = float(np.mean(window))
                mean_terms = {k: float(np.mean(v)) for k, v in window_terms.items()}
                bar.clear()
                mean_terms = self._check_window(step - len(window) + 1, step, mean_terms)
                parts = ", ".join(f"{k} {v:.4f}" for k, v in mean_terms.items())
                speed = f"{per_step:.2f} s/step" if timed_steps else "first step"
                factor = self._encoder_factor
                rates = f"lr {lr:.4e}" + (f" (encoders {lr * factor:.4e})" if factor != 1.0 else "")
                self._log(
                    f"step {step}/{total}  {rates}  loss {mean_loss:.4f} ({parts})  "
                    f"{speed}  time left {eta}"
                )
                self.write_summaries_or_warn(lambda: self._write_summaries(
                    step, mean_loss, mean_terms, lr, *(preview, truth) if save_now else (None, None)))
                window, window_terms = [], {}
            if step == total and config.recalibrate_batch_norm:
                bar.clear()
                self.recalibrate_batch_norm()
            if save_now and saved_at != step:
                bar.clear()
                if not self._weights_finite():
                    # The step's update overflowed; the next loss would show it, but the last step
                    # has no next one (before: saved and exported as final.keras, exit 0).
                    dropped = self._drop_unconfirmed(growing, good, "written while the loss grew")
                    raise NonFiniteLossError(
                        f"the weights are not finite after step {step} (its update overflowed); training "
                        f"stopped without saving ({dropped}{self._kept()}). Lower learning_rate.")
                path = self.save()
                saved_at = step
                if path is not None:
                    self.last_checkpoint = unconfirmed = path
                    self._log(f"saved checkpoint {path} (step {step})")

        bar.clear()
        weights = None
        if step >= total:
            weights = self._export_and_say()
        return TrainResult(start, step, losses, self.last_checkpoint, weights)

    def _recalibrate_again(self, record: Optional[dict]) -> Optional[int]:
        """Before an export cut short is done again: recalibrates the moving statistics on as many
        batches as the export's `record` (final.json) says its weights had been recalibrated on
        since the last checkpoint (a finished run recalibrated in Python). Before, that export was
        done from the checkpoint's statistics over the recalibrated files, while config.yaml still
        said the recalibration (helper 320). Returns the count (None: nothing done)."""
        count = (record or {}).get("recalibrated")
        if not isinstance(count, int) or isinstance(count, bool) or count <= 0:
            return None
        self._log(f"the export cut short was of weights recalibrated on {count} batches after the last checkpoint: "
                  "recalibrating them again")
        self.recalibrate_batch_norm(count)
        return count

    def recalibrate_batch_norm(self, num_batches: Optional[int] = None) -> int:
        """Sets the moving statistics to their average over training batches (`ssma_tf.recalibration`).

        Runs on a new copy of the training stream (another shuffle), under the trainer's strategy.

        Args:
            num_batches: how many batches; default the config's `recalibrate_batch_norm`.

        Returns:
            The number of batches averaged over.
        """
        # Before: `num_batches or ...`, so 0 averaged over the config's count (helper 361).
        count = int(self.config.recalibrate_batch_norm if num_batches is None else num_batches)
        if count < 1:
            raise ValueError(f"recalibrate_batch_norm: num_batches must be at least 1, got {count}"
                             + (" (the config's recalibrate_batch_norm)" if num_batches is None else ""))
        offset = int(self.config.max_iteration) + 1
        dataset = self.strategy.distribute_datasets_from_function(
            lambda context: self._make_dataset(context, offset))
        model, strategy = self.model, self.strategy

        @tf.function
        def call(inputs):
            strategy.run(lambda x: model(x, training=True), args=(inputs,))

        batches = (inputs for inputs, *_ in dataset)
        done = recalibrate_batch_norm(model, batches, count, call=call, log=self._log)
        self._recalibrated_since_save = count
        if count != self.config.recalibrate_batch_norm:
            # The weights are now of this count: config.yaml, written with them (`export_weights`),
            # says so (before: a finished run recalibrated afterwards still said 0; helper 145).
            self.config = dataclasses.replace(self.config, recalibrate_batch_norm=count)
        return done

    def _remove_checkpoints(self, paths: list[str], newest: Optional[str]) -> list[str]:
        """Deletes `paths` (checkpoints of this run) and records `newest` as the newest one."""
        if not paths:
            return []
        for prefix in paths:
            for path in glob.glob(glob.escape(prefix) + ".index") + glob.glob(glob.escape(prefix) + ".data-*"):
                remove_path(path)
        kept = [p for p in self.manager.checkpoints if p not in paths]
        if newest is None:
            remove_path(os.path.join(self._directory, "checkpoint"))
        else:
            # The state file's text format, as the checkpoint manager writes it (relative names),
            # with each checkpoint's time: the manager of the next run keeps a path without one
            # forever and leaves it out of its list. Before, a second divergence then found the
            # good checkpoint "gone", kept the bad ones, and a rerun resumed from them.
            # The newest last, also when the manager did not list it (a state file without times).
            listed = [p for p in kept if p != newest] + [newest]
            lines = [f'model_checkpoint_path: "{os.path.basename(newest)}"']
            lines += [f'all_model_checkpoint_paths: "{os.path.basename(p)}"' for p in listed]
            lines += [f"all_model_checkpoint_timestamps: "
                      f"{os.path.getmtime(p + '.index') if os.path.exists(p + '.index') else time.time()!r}"
                      for p in listed]
            with atomic_write(os.path.join(self._directory, "checkpoint")) as state:
                state.write("\n".join(lines) + "\n")
        return [os.path.basename(p) for p in paths]

    def _drop_unconfirmed(self, bad: list[str], good: Optional[str], why: str) -> str:
        """Removes the checkpoints `bad` (written after the last `good` one, which the loss
        refuted) and says so, for the error that stops training. When `good` has been rotated
        away (more were written since than `keep_checkpoints`), every kept checkpoint is one of
        `bad`: all are removed and a rerun starts from step 0 (before: they were kept, and a rerun
        at a lower learning rate resumed from the diverged weights and finished without a word).
        """
        if not self.chief or not bad:
            return ""
        if good is not None and good not in self.manager.checkpoints and not os.path.exists(good + ".index"):
            bad = list(self.manager.checkpoints) + [p for p in bad if p not in self.manager.checkpoints]
            good = None
            why += "; the last good one was no longer kept, so a rerun starts from step 0"
        # (Those the manager rotated away are gone already.)
        bad = [p for p in bad if p in self.manager.checkpoints or os.path.exists(p + ".index")]
        removed = self._remove_checkpoints(bad, good)
        self.last_checkpoint = good
        return f"removed {', '.join(removed)}, {why}; " if removed else ""

    def _kept(self) -> str:
        kept = self.last_checkpoint if self.chief else None
        return f"the last good checkpoint is {kept}" if kept else "no good checkpoint is kept"


class _DivergenceCheck:
    """Tells when the loss has grown far above where this run started.

    The starting level is the run's first loss (computed before any update), but at least
    ln(num_classes), the main loss of a uniform prediction: a resumed or fine-tuned run starts
    low, and a noisy batch must not stop it. A divergence is a mean over `DIVERGENCE_WINDOW`
    steps above `factor` times that level (the released loss of a saturated, wrong prediction is
    about 23 per pixel and term, so `factor` must stay well below 23 / ln C to catch it).

    Args:
        factor: `divergence_factor`; 0 switches the check off.
        num_classes: the classes including void.
    """

    def __init__(self, factor: float, num_classes: int):
        self.factor = factor
        self.floor = math.log(num_classes)
        self.reference: Optional[float] = None
        self.recent: collections.deque = collections.deque(maxlen=DIVERGENCE_WINDOW)

    def within_limit(self, loss: float) -> bool:
        """Whether one step's loss is at most `factor` times the starting level (or unchecked)."""
        return not self.factor or self.reference is None or loss <= self.factor * self.reference

    def update(self, loss: float) -> str:
        """Adds one step's loss; returns what diverged (empty: nothing)."""
        if not self.factor:
            return ""
        if self.reference is None:
            self.reference = max(loss, self.floor)
        self.recent.append(loss)
        mean = float(np.mean(self.recent))
        if len(self.recent) == self.recent.maxlen and mean > self.factor * self.reference:
            return (f"mean loss {mean:.4g} over the last {len(self.recent)} steps, more than "
                    f"divergence_factor {self.factor:g} times the starting level {self.reference:.4g}")
        return ""


def _is_tf1_checkpoint(prefix: str) -> bool:
    """Whether a checkpoint was written by TF1's name-based Saver (no object graph)."""
    try:
        return resolve_weights(prefix)[0] == FORMAT_TF1
    except (CheckpointError, tf.errors.OpError):
        return False  # unreadable: the restore loop reports it and tries an older one


def _has_data_position(names: Iterable[str]) -> bool:
    """Whether a checkpoint of these variable names holds the training stream's position (one
    written on one replica)."""
    return any(name.startswith(_DATA_KEY + "/") for name in names)


def _holds_data_position(prefix: str) -> bool:
    """`_has_data_position` of a checkpoint; True when it cannot be read (the restore loop
    reports it)."""
    try:
        return _has_data_position(name for name, _ in tf.train.list_variables(prefix))
    except (tf.errors.OpError, ValueError, IndexError):
        return True


def _read_run_seed(prefix: str) -> Optional[int]:
    """The run seed a checkpoint keeps (None: it keeps none, or it cannot be read)."""
    try:
        reader = tf.train.load_checkpoint(prefix)
        return int(reader.get_tensor(_RUN_SEED_KEY)) if reader.has_tensor(_RUN_SEED_KEY) else None
    except (tf.errors.OpError, ValueError, IndexError):  # IndexError: a truncated `.data` file
        return None  # the restore reports it, and `_take_kept_seed` reads the one it takes


def _read_step(prefix: str) -> Optional[int]:
    """The step stored in one of our checkpoints (None if it cannot be read)."""
    try:
        return int(tf.train.load_checkpoint(prefix).get_tensor(_STEP_KEY))
    except (tf.errors.OpError, ValueError, IndexError):  # IndexError: a truncated `.data` file
        return None  # the restore loop reports a damaged checkpoint


def train(config: Any, **kwargs: Any) -> TrainResult:
    """Trains as `config` says, resuming from `config.checkpoint` when it holds a checkpoint.

    Args:
        config: a training `RunConfig`.
        **kwargs: passed to `Trainer` (`strategy`, `log`, `max_to_keep`).

    Returns:
        The `TrainResult`.
    """
    return Trainer(config, **kwargs).run()


def _trained_share(model: keras.Model, config: Any) -> str:
    """`, N of them trained` for the run's first line when weights are frozen, naming the key
    that froze the experts (SSMA's stage 3 as released); `, all of them trained` for a fusion
    whose experts train too (its stage 2; before: nothing, where the stage-3 line says the share;
    helper 202); "" for a unimodal network, which trains every weight.

    Batch-norm moving statistics, never trained by gradients, are no reason to say it.
    """
    if not any(not v.trainable and "moving_" not in v.path for v in model.weights):
        return ", all of them trained" if getattr(config, "is_fusion", False) else ""
    trained = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    share = f", {trained:,} of them trained"
    if getattr(model, "fusion", None) in END_TO_END_FUSIONS:
        # FuseNet trains its encoders whatever freeze_experts says; only the layers of the
        # modality-2 (..N) encoders that its graph never reads are left out.
        share += f" ({model.fusion} trains end to end; the experts' layers it does not use are left out)"
    elif getattr(config, "freeze_experts", False) and getattr(model, "encoders", None):
        opened = any(not expert.trainable and any(layer.trainable for layer in expert.layers)
                     for expert in getattr(model, "experts", None) or [])
        share += (" (freeze_experts: the experts are frozen but for their class layers, which finetune_from "
                  "starts afresh)" if opened else " (freeze_experts: the experts are frozen)")
    return share


def _images_read(config: Any) -> str:
    """Which images of each record a run reads, for its first log line: "modality2", or
    "modality1 (rgb), modality2 (depth)". Records may hold more (an SSMA over two of three
    modalities, an expert of modality 2): the line tells which ones this run takes."""
    if not config.is_fusion:
        return str(config.input_modality)
    names = config.modalities or (None,) * config.num_modalities
    return ", ".join(f"modality{i}" + (f" ({name})" if name else "") for i, name in enumerate(names, start=1))
