"""Scene classification with SSMA (Section 5.9, Table 22): training and evaluation.

Training starts the experts from unimodal checkpoints (the encoders of AdapNet++ models, on the
AdapNet++ or MobileNet v2 backbone, as SSMA's `checkpoints`), freezes them as the released
fusion stage does, and trains the SSMA block and the classifier with Adam on the cross-entropy
of the scene classes. It logs the loss as it goes and
keeps the state of an unfinished run in `<output>/resume/` (every `save_steps` steps and when
stopped by Ctrl-C or SIGTERM), from which the same call goes on. Evaluation reports, as Table 22,
the recall and the IoU of each class (TP / (TP + FN) and TP / (TP + FP + FN), in percent) with
their means and the accuracy.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import shutil
import time
import warnings
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

import h5py
import keras
import numpy as np

from ssma_tf.checkpoints import CheckpointError
from ssma_tf.checkpoints.loading import (
    expert_rates_problem, load_keras_model, seed_generator_states, unimodal_encoder_weights, warn_of_expert_rates,
)
from ssma_tf.checkpoints.resolve import FORMAT_TF1, resolve_weights
from ssma_tf.checkpoints.tf1_import import KIND_ADAPNET_PP, KIND_IMAGENET, detect_kind, num_classes_of, read_checkpoint
from ssma_tf.config import ConfigWarning
from ssma_tf.constants import ADAPNET_PP_BACKBONE, EASPP_RATES
from ssma_tf.checkpoints.initialize import other_modality_run, swapped_expert_line
from ssma_tf.data.pipeline import list_record_files, modalities_in_records, modalities_per_file
from ssma_tf.data.scene import ClassIds, build_scene_dataset, class_ids, naming_damaged_scene_records
from ssma_tf.errors import UserInputError, first_line
from ssma_tf.files import (atomic_path, atomic_write, file_sizes, file_times, folder_held, leftover_temporaries,
                           remove_path, rewritten_files)
from ssma_tf.layers.initializers import overwritten_weights
from ssma_tf.models.backbones import check_backbone
from ssma_tf.models.encoder import RELEASED_DROPOUT_RATE
from ssma_tf.metrics import non_finite_pixels
from ssma_tf.models.scene import SSMASceneClassifier
from ssma_tf.progress import format_short_duration

FINAL_SCENE_MODEL = "scene.keras"
# `<output>/resume/`: an unfinished run's weights, optimizer (its step is the optimizer's
# iteration count) and random generators' states (`state.weights.h5`), and the settings it was
# started with (`run.json`).
RESUME_FOLDER = "resume"
_STATE_WEIGHTS = "state.weights.h5"
_RUN_SETTINGS = "run.json"
# The dataset of `state.weights.h5` that holds the dropout layers' seed generators' states,
# which Keras' weights files leave out: without them a resumed run draws other dropout masks.
_SEED_STATES = "ssma_tf_seed_generator_states"
# Its attribute with the step the state is at, read before the model is built.
_STEP = "ssma_tf_step"


def scene_metrics(confusion: np.ndarray, class_names: Optional[Sequence[str]] = None) -> Dict[str, object]:
    """Per-class recall and IoU (percent) of a (C, C) confusion matrix (rows: truth, columns: prediction).

    Returns:
        `per_class` (a list of `name`, `recall`, `iou`, `scenes`; None where a class has no
        scene and no prediction), `mean_recall`, `mean_iou` (over the classes with a value),
        `accuracy`, `num_scenes` and the `confusion` counts (a list of rows).
    """
    confusion = np.asarray(confusion, np.float64)
    tp = np.diag(confusion)
    fn = confusion.sum(axis=1) - tp
    fp = confusion.sum(axis=0) - tp
    names = list(class_names) if class_names is not None else [str(c) for c in range(len(tp))]
    per_class = []
    for c in range(len(tp)):
        recall = 100.0 * tp[c] / (tp[c] + fn[c]) if tp[c] + fn[c] else None
        union = tp[c] + fp[c] + fn[c]
        per_class.append({"name": names[c], "recall": recall, "iou": 100.0 * tp[c] / union if union else None,
                          "scenes": int(tp[c] + fn[c])})
    recalls = [c["recall"] for c in per_class if c["recall"] is not None]
    ious = [c["iou"] for c in per_class if c["iou"] is not None]
    total = confusion.sum()
    return {
        "per_class": per_class,
        "mean_recall": float(np.mean(recalls)) if recalls else None,
        "mean_iou": float(np.mean(ious)) if ious else None,
        "accuracy": 100.0 * float(tp.sum() / total) if total else None,
        "num_scenes": int(total),
        "confusion": confusion.astype(np.int64).tolist(),
    }


def format_scene_metrics(metrics: Dict[str, object]) -> str:
    """The per-class table of `scene_metrics`, as Table 22 reports it."""
    def cell(value):
        return "      –" if value is None else f"{value:7.1f}"

    lines = [f"{'class':<20} {'recall':>7} {'IoU':>7} {'scenes':>7}"]
    for row in metrics["per_class"]:
        lines.append(f"{row['name']:<20} {cell(row['recall'])} {cell(row['iou'])} {row['scenes']:7d}")
    lines.append(f"{'mean':<20} {cell(metrics['mean_recall'])} {cell(metrics['mean_iou'])} {metrics['num_scenes']:7d}")
    accuracy = metrics["accuracy"]  # None without any scene (before: a TypeError here)
    lines.append("accuracy – (no scenes)" if accuracy is None else f"accuracy {accuracy:.1f} %")
    return "\n".join(lines)


@dataclasses.dataclass
class SceneTrainResult:
    """What `train_scene_classifier` did: the model, its file and the loss of each step this call
    trained (after a resume, only those from the saved step on)."""

    model: SSMASceneClassifier
    path: str
    losses: List[float]


def train_scene_classifier(
    train_data,
    output_dir: str,
    *,
    num_classes: int,
    modalities: int = 2,
    height: int,
    width: int,
    steps: int,
    batch_size: int = 8,
    learning_rate: float = 1e-3,
    experts: Optional[Sequence[str]] = None,
    expert_classes: Optional[int] = None,
    expert_decoder_filters: Optional[int] = None,
    freeze_experts: bool = True,
    backbone: str = ADAPNET_PP_BACKBONE,
    backbone_weights: Optional[str] = None,
    seed: Optional[int] = None,
    log: Optional[Callable[[str], None]] = None,
    log_every: Optional[int] = None,
    save_steps: int = 100,
    resume: bool = True,
) -> SceneTrainResult:
    """Trains an `SSMASceneClassifier` and writes it to `<output_dir>/scene.keras`.

    An unfinished run (stopped by Ctrl-C, SIGTERM or a crash after a save) leaves its state in
    `<output_dir>/resume/`; calling again with the same settings goes on from its step (`steps`
    may be raised) and, with a `seed`, reads the batches and draws the dropout masks the
    uninterrupted run would have: it ends with the same weights. The folder is removed once
    `scene.keras` is written.

    Args:
        train_data: scene records (`ssma_tf.data.scene.write_scene_records`), a pattern or list.
        output_dir: folder for the model.
        num_classes: scene classes.
        modalities: N, the images of each record the model reads.
        height, width: input size (multiples of 16).
        steps, batch_size, learning_rate: the optimisation (Adam, constant rate).
        experts: one unimodal AdapNet++ checkpoint per modality (TF1 or own, on `backbone`), whose
            encoders start the experts; None: random experts, or ImageNet ones with
            `backbone_weights` (then `freeze_experts` should be False).
        expert_classes: the class count of the experts' own checkpoints; None: as each says (TF1
            checkpoints and `.keras` files by themselves, weight files by their last upsampling).
        expert_decoder_filters: the decoder width the experts were trained with, which their own
            weight files need to load (the decoder is then dropped); None: as each expert's
            training run says (its `config.yaml`), else the released 256 (before: always 256, and
            the real-time experts of `decoder_filters: 64` loaded from `.keras` files only).
        freeze_experts: train only the SSMA block and the classifier.
        backbone: the experts' backbone, `adapnet_pp` (ResNet-50, the paper's) or `mobilenet_v2`.
        backbone_weights: ImageNet weights file of a `mobilenet_v2` backbone, for experts without
            `experts` checkpoints.
        seed: seed of the weights and the data order.
        log: where progress lines go (default: nowhere).
        log_every: a line with the mean loss every this many steps (default: a tenth of `steps`).
        save_steps: the state is saved to `<output_dir>/resume/` every this many steps (0: only
            when stopped).
        resume: False starts at step 0, discarding an unfinished run's state.

    Raises:
        ValueError: `experts` of another length than `modalities`; an unknown `backbone`;
            `backbone_weights` with `experts` or for the AdapNet++ backbone.
        UserInputError: a record's class id is not below `num_classes` (naming the file); an
            unfinished run in `output_dir` with other settings (naming the setting), past
            `steps`, or whose state cannot be loaded.
    """
    log = log or (lambda line: None)
    if experts is not None and len(experts) != modalities:
        raise ValueError(f"{len(experts)} expert checkpoints for {modalities} modalities; give one per modality")
    check_backbone(backbone)
    if backbone_weights is not None and (experts is not None or backbone == ADAPNET_PP_BACKBONE):
        raise ValueError("backbone_weights (ImageNet weights) start the experts of a pyramid backbone that have no "
                         "checkpoints; " + ("the experts' checkpoints replace them: give one or the other"
                                            if experts is not None else
                                            f"the {ADAPNET_PP_BACKBONE} experts start from unimodal checkpoints"))
    state_dir = os.path.join(output_dir, RESUME_FOLDER)
    # What a resumed run must share with the run it goes on (`steps` may grow).
    train_files = [os.path.abspath(f) for f in list_record_files(train_data)]
    settings = {"train_data": train_files,
                # Records converted again into the same files: the resumed run skipped the batches
                # read of other records (helper 245).
                "file_sizes": file_sizes(train_files),
                # Or into files of the same size (the same scenes in another order, helper 262).
                "file_times": file_times(train_files),
                "num_classes": num_classes, "modalities": modalities, "height": height, "width": width,
                "batch_size": batch_size, "learning_rate": learning_rate, "freeze_experts": freeze_experts,
                "experts": [os.path.abspath(os.fspath(e)) for e in experts] if experts is not None else None,
                "expert_classes": expert_classes, "seed": seed, "backbone": backbone,
                "backbone_weights": os.path.abspath(backbone_weights) if backbone_weights else None}
    # One process per output folder: two runs into one saved resume/ and scene.keras over each
    # other (the lock lies outside the folder: `ssma_tf.files.folder_lock_path`).
    with folder_held(output_dir, "scene", f"{output_dir} is being trained by another process ({{holder}}): wait "
                     "for it to end, or give another --output folder"):
        # With `resume` off the unfinished run's state is removed once every input has been checked,
        # before the first step (before: at once, so a refused command lost it; helper 309).
        # A save killed halfway (SIGKILL, out of memory) leaves its temporary, as large as the state:
        # no other run writes into this folder.
        for leftover in leftover_temporaries(os.path.join(state_dir, _STATE_WEIGHTS)) + \
                leftover_temporaries(os.path.join(state_dir, _RUN_SETTINGS)):
            remove_path(leftover)
            log(f"removed {leftover}, left by an interrupted save")
        state = _unfinished_run(state_dir, settings) if resume else None
        # A state that says its step (since 2026-12-02) is checked before the model is built; an older
        # one once it is loaded, below.
        saved_step = _saved_step(state) if state is not None else None
        if saved_step is not None and saved_step > steps:
            _refuse_fewer_steps(steps, saved_step, state_dir)
        if seed is not None:
            keras.utils.set_random_seed(seed)
        # Before the model is built: records that are not scene records (one line), then a class id
        # out of range (it was a TensorFlow traceback mid-training).
        dataset = build_scene_dataset(train_data, modalities=modalities, height=height, width=width,
                                      batch_size=batch_size, training=True, seed=seed, fix="give --modalities {held}")
        ids = _refuse_class_ids_past(train_data, num_classes, "there are", hint="; give --num_classes {needed} or more",
                                     modalities=modalities)
        grouped = ids.order_warning()
        if grouped:
            log(f"warning: {grouped}")
        # Before: the records' later modalities left out without a word (helper 225).
        extra = _more_modalities_warning(train_files, modalities, "training",
                                         " (give --modalities {held} to fuse them all)")
        if extra:
            log(f"warning: {extra}")
        # A resumed run's state holds every weight: its experts' files, checked when it started, are
        # not read again (before: an expert moved or cleaned up since made the run impossible to
        # resume; helper 309).
        checked_experts = experts if state is None else None
        found_experts = []
        for index, source in enumerate(checked_experts or ()):
            with _naming_expert(index, len(experts)):  # every expert is there before the first is loaded
                found_experts.append(resolve_weights(os.fspath(source)))
        # The classifier builds its experts at the default eASPP rates, which are in no weight's
        # shape: an expert of others ran at them without a word (helper 217).
        problem = expert_rates_problem([os.fspath(source) for source in checked_experts or ()], EASPP_RATES,
                                       "ssma-scene builds its experts with", "give experts trained with those")
        if problem is not None:
            with _naming_expert(problem[0], len(experts)):
                raise CheckpointError(problem[1], path=os.fspath(experts[problem[0]]))
        for index, (source, (fmt, resolved)) in enumerate(zip(checked_experts or (), found_experts)):
            with _naming_expert(index, len(experts)):
                if fmt == FORMAT_TF1:
                    shapes = read_checkpoint(resolved)
                    kind = detect_kind(shapes, resolved)
                    if kind == KIND_IMAGENET and freeze_experts:
                        # Before: its eASPP, the only output fused, stayed random for the whole run.
                        raise CheckpointError(
                            f"{source} is an ImageNet checkpoint: it holds the ResNet-50 but no eASPP, whose output "
                            "is what the classifier fuses, and frozen experts keep theirs random; give trained "
                            "unimodal runs, or --train_experts", path=resolved)
                    if kind == KIND_ADAPNET_PP:
                        warn_of_expert_rates(resolved, num_classes_of(shapes, resolved), EASPP_RATES, stacklevel=2)
            found = other_modality_run(os.fspath(source), index, modalities_in_records)
            if found is not None:
                warnings.warn(f"expert {index + 1} ({source}): " + swapped_expert_line(*found, index), ConfigWarning,
                              stacklevel=2)
        if experts is None and freeze_experts:
            # Before: trained on random frozen encoders without a word.
            start = ("start from the ImageNet weights but their eASPP is random" if backbone_weights
                     else "are random")
            warnings.warn(f"no experts given: the encoders {start}, and they stay frozen, so only the SSMA block and "
                          "the classifier learn, on random features; give --experts (one unimodal "
                          f"{backbone} checkpoint per modality) or --train_experts", ConfigWarning, stacklevel=2)
        # The experts' encoders before the classifier is built: a checkpoint that does not fit is named
        # without waiting for the build. One file given for several experts (an ImageNet checkpoint
        # for each, trained) is read once. A resumed run's state holds every weight.
        expert_weights: Dict[str, list] = {}
        for index, source in enumerate(experts if state is None and experts is not None else ()):
            if os.fspath(source) not in expert_weights:
                with _naming_expert(index, len(experts), expert_classes):
                    expert_weights[os.fspath(source)] = unimodal_encoder_weights(
                        source, expert_classes, RELEASED_DROPOUT_RATE, backbone=backbone,
                        decoder_filters=expert_decoder_filters)
        # Resumed: the state holds every weight, loaded strictly (`_load_state`).
        with overwritten_weights(enabled=state is not None):
            model = SSMASceneClassifier(num_classes, num_modalities=modalities, freeze_experts=freeze_experts,
                                        input_size=(height, width), backbone=backbone,
                                        backbone_weights=None if state is not None else backbone_weights)
        model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                      loss=keras.losses.SparseCategoricalCrossentropy())
        if state is not None:
            start = _load_state(model, state, height, width)
            if start > steps:
                _refuse_fewer_steps(steps, start, state_dir)
            log(f"resuming the unfinished run in {state_dir} at step {start} of {steps}"
                + ("" if seed is None else f" (skipping the {start} batches it read)"))
            if seed is not None:
                dataset = dataset.skip(start)
            return _fit(model, dataset, output_dir, settings, steps, start, log, log_every, save_steps, resume)
        for encoder, source in zip(model.encoders, experts or ()):
            encoder.set_weights(expert_weights[os.fspath(source)])
            log(f"{source}: loaded into the {encoder.name} expert")
        if not resume and os.path.exists(state_dir):
            shutil.rmtree(state_dir)
            log(f"removed {state_dir}: the unfinished run's state (--overwrite starts again)")
        return _fit(model, dataset, output_dir, settings, steps, 0, log, log_every, save_steps, resume)


def _saved_step(weights: str) -> Optional[int]:
    """The step an unfinished run's state is at, from its file's attribute (None: a state written
    before 2026-12-02 does not say it, or the file cannot be read; loading it says why)."""
    try:
        with h5py.File(weights, "r") as stream:
            step = stream.attrs.get(_STEP)
    except OSError:
        return None
    return int(step) if step is not None else None


def _more_modalities_warning(patterns: Any, modalities: int, what: str, hint: str = "") -> str:
    """The warning for records of `patterns` that hold more modalities than the classifier's
    `modalities` ("" when none does); every file is looked at (before: the first file's first
    record alone, so a set mixing two- and three-modality files passed in one order; helper 245).
    `hint` may name `{held}`."""
    held = modalities_per_file(patterns)  # none there to read: named where the records are read
    most = max(held, default=0)
    if most <= modalities:
        return ""
    some = "" if min(held) == most else "some of "
    return (f"{some}the {what} records hold {most} modalities; the classifier reads modality1 to modality{modalities} "
            f"only{hint.format(held=most)}")


def _refuse_fewer_steps(steps: int, start: int, state_dir: str) -> None:
    raise UserInputError(f"--steps {steps} is below step {start} of the unfinished run in {state_dir}: "
                         f"give --steps {start} or more to go on with it, or start again with --overwrite", state_dir)


def holds_unfinished_run(output: str) -> bool:
    """Whether the run folder `output` holds the saved state of an unfinished training, which a
    run there resumes (a `resume` folder without its weights resumes nothing)."""
    return os.path.isfile(os.path.join(output, RESUME_FOLDER, _STATE_WEIGHTS))


def _unfinished_run(state_dir: str, settings: Dict[str, object]) -> Optional[str]:
    """The state file of an unfinished run in `state_dir` started with `settings`; None if there
    is none. An unfinished run with other settings is an error naming the first that differs."""
    weights = os.path.join(state_dir, _STATE_WEIGHTS)
    recorded = os.path.join(state_dir, _RUN_SETTINGS)
    if not os.path.isfile(weights):
        return None  # none, or stopped between writing the settings and the first weights
    if not os.path.isfile(recorded):
        raise UserInputError(f"{state_dir} holds {_STATE_WEIGHTS} without {_RUN_SETTINGS}: remove {state_dir} "
                             "(or pass --overwrite) to start again", state_dir)
    try:
        with open(recorded, encoding="utf-8") as stream:
            before = json.load(stream)
        if not isinstance(before, dict):
            raise ValueError(f"a JSON {type(before).__name__}, not an object of settings")
    except (OSError, ValueError) as error:
        raise UserInputError(f"{recorded}: cannot read the unfinished run's settings ({error}); remove "
                             f"{state_dir} (or pass --overwrite) to start again", recorded) from None
    # Runs started before 2026-12-02 had AdapNet++ experts and did not record the backbone.
    before.setdefault("backbone", ADAPNET_PP_BACKBONE)
    before.setdefault("backbone_weights", None)
    # Nor, before 2026-12-06, the files' sizes (their times, before 2026-12-07): their records are taken to be
    # the same.
    before.setdefault("file_sizes", settings["file_sizes"])
    before.setdefault("file_times", settings["file_times"])
    changed = rewritten_files((before["file_sizes"], settings["file_sizes"]),
                              (before["file_times"] if isinstance(before["file_times"], dict) else None,
                               settings["file_times"]))
    if before.get("train_data") == settings["train_data"] and changed:
        raise UserInputError(
            f"{state_dir} holds an unfinished run whose training records were rewritten since it started "
            f"({changed}): it cannot go on with other records; start again with --overwrite or in another folder",
            state_dir)
    for key in settings:
        if before.get(key) != settings[key]:
            if key == "freeze_experts":
                # Said as ssma-scene's flag (before: "freeze_experts True, this one has False", a name
                # the command never shows).
                told = [("frozen experts (without --train_experts)" if frozen else
                         "trained experts (--train_experts)") for frozen in (before.get(key), settings[key])]
            else:
                told = [f"{key} {before.get(key)!r}", repr(settings[key])]
            raise UserInputError(
                f"{state_dir} holds an unfinished run with {told[0]}, this one has {told[1]}: give the same "
                "settings to go on with it, or start again with --overwrite or in another folder", state_dir)
    return weights


def _load_state(model: SSMASceneClassifier, weights: str, height: int, width: int) -> int:
    """Loads an unfinished run's weights, optimizer and seed generators into `model`; returns its step."""
    model([np.zeros((1, height, width, 3), np.float32)] * model.num_modalities, training=False)
    model.optimizer.build(model.trainable_variables)

    def unusable(reason):
        return UserInputError(f"{weights}: cannot load the unfinished run's state ({reason}); remove "
                              f"{os.path.dirname(weights)} (or pass --overwrite) to start again", weights)

    # Keras only warns when a group of variables does not fit (a fresh optimizer would go on
    # from the saved weights at step 0): here that is an error.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model.load_weights(weights)
        except (OSError, ValueError) as error:
            text = str(error)
            raise unusable("it does not hold this model's weights" if "could not be loaded" in text
                           else first_line(error)) from None
    skipped = [str(w.message) for w in caught if "Skipping variable loading" in str(w.message)]
    if skipped:
        raise unusable(first_line(RuntimeError(skipped[0])))
    step = int(model.optimizer.iterations.numpy())
    if step == 0:
        raise unusable("its optimizer is at step 0: no step was saved")
    generators = seed_generator_states(model)
    try:
        with h5py.File(weights, "r") as stream:
            saved = stream[_SEED_STATES][()] if _SEED_STATES in stream else None
    except OSError as error:
        raise unusable(first_line(error)) from None
    if saved is None or len(saved) != len(generators):
        raise unusable(f"it lacks the {len(generators)} dropout seed generators' states")
    for variable, value in zip(generators, saved):
        if tuple(np.shape(value)) != tuple(variable.shape):
            raise unusable(f"a dropout seed generator's state of shape {tuple(np.shape(value))}, not "
                           f"{tuple(variable.shape)}")
        variable.assign(value)
    return step


def _save_state(model: SSMASceneClassifier, output_dir: str, settings: Dict[str, object]) -> str:
    """Writes the run's state to `<output_dir>/resume/` (the settings first, then the weights
    with the seed generators' states, each file whole or not at all); returns the folder."""
    state_dir = os.path.join(output_dir, RESUME_FOLDER)
    with atomic_write(os.path.join(state_dir, _RUN_SETTINGS)) as stream:
        json.dump(settings, stream, indent=1)
    with atomic_path(os.path.join(state_dir, _STATE_WEIGHTS)) as temporary:
        model.save_weights(temporary)
        states = [np.asarray(v) for v in seed_generator_states(model)]
        with h5py.File(temporary, "a") as stream:
            stream.create_dataset(_SEED_STATES, data=np.stack(states) if states else np.zeros((0, 2), np.int64))
            stream.attrs[_STEP] = int(model.optimizer.iterations.numpy())
    return state_dir


def _refuse_class_ids_past(records, num_classes: int, holder: str, hint: str = "",
                           modalities: Optional[int] = None) -> ClassIds:
    """The records' class ids (`ClassIds`); raises UserInputError naming the file and record of
    the largest class id when it is not below `num_classes` ("a scene has class id 5, but
    {holder} 3 classes"; `hint` may name `{needed}`, the class count the records need), or of the
    smallest when it is negative (helper 115: counted as the last class by the evaluation, a
    traceback at training's first step)."""
    found = class_ids(records, modalities)  # every record holds the images the model reads
    if not len(found.ids):
        return found
    low, high = int(np.argmin(found.ids)), int(np.argmax(found.ids))
    if found.ids[low] < 0:
        where, record = found.where(low)
        raise UserInputError(f"{where}, record {record}: a scene has class id {int(found.ids[low])}; class ids are "
                             f"0..{num_classes - 1}", where)
    largest = int(found.ids[high])
    if largest >= num_classes:
        where, record = found.where(high)
        raise UserInputError(f"{where}, record {record}: a scene has class id {largest}, but {holder} {num_classes} "
                             f"classes (ids 0..{num_classes - 1}){hint.format(needed=largest + 1)}", where)
    return found


@contextlib.contextmanager
def _naming_expert(index: int, count: int, expert_classes: Optional[int] = None) -> Iterator[None]:
    """Puts the place of expert `index` in `--experts` in front of a `CheckpointError`, and with a
    class-count mismatch the flag to change: the message named the file and a decoder layer the
    classifier does not even have (a missing second expert was found after the first loaded)."""
    try:
        yield
    except CheckpointError as error:
        hint = ""
        if expert_classes is not None and "classes" in str(error):
            hint = (f"; --expert_classes {expert_classes} is given: give the class count this expert was "
                    "trained with, or leave it out (the weights say it)")
        elif "backbone" in str(error):
            hint = "; --backbone chooses the experts' backbone"
        raise CheckpointError(f"--experts, expert {index + 1} of {count}: {error}{hint}") from None


class SceneTrainingStopped(RuntimeError):
    """The scene classifier's loss became NaN or inf: stopped before the step's state or the
    classifier was written."""


class _StepLog(keras.callbacks.Callback):
    """One step per Keras epoch: keeps each step's loss, saves the state every `save_steps` and
    logs the mean loss every `every` steps."""

    def __init__(self, total: int, log, every: int, save):
        super().__init__()
        self.total, self.every, self.log, self.save = total, every, log, save
        self.losses: List[float] = []
        self._window: List[float] = []
        self._started = None

    def on_epoch_end(self, epoch, logs=None):
        step = epoch + 1
        loss = float(logs["loss"])
        if not math.isfinite(loss):
            # Before the save: a diverged run went on to its end and wrote a scene.keras of NaN weights,
            # which classified every scene as class 0, exit 0 (helper 349). As ssma-train stops.
            raise SceneTrainingStopped(f"loss is {loss} at step {step}; training stopped without saving")
        self.losses.append(loss)
        self._window.append(loss)
        self.save(step)
        now = time.perf_counter()
        if self._started is None:
            self._started = (now, step)  # the first step traces the function: timed from its end
        if step % self.every == 0 or step == self.total:
            timed = step - self._started[1]
            per_step = (now - self._started[0]) / timed if timed else float("nan")
            speed = f"{per_step:.2f} s/step, time left {format_short_duration(per_step * (self.total - step))}" \
                if timed else "first step"
            mean = f"loss {np.mean(self._window):.4f}" + (f" (mean of {len(self._window)} steps)"
                                                           if len(self._window) > 1 else "")
            self.log(f"step {step}/{self.total}  {mean}  {speed}")
            self._window = []


def _fit(model: SSMASceneClassifier, dataset, output_dir: str, settings: Dict[str, object], steps: int,
         start: int, log, log_every: Optional[int], save_steps: int, resume: bool = True) -> SceneTrainResult:
    """`train_scene_classifier`'s loop from step `start`, its saves and its final file; `resume`:
    as given to it (for the stop message)."""
    saved = {"step": start}

    def save(step):
        if save_steps and step % save_steps == 0 and step < steps:
            _save_state(model, output_dir, settings)
            saved["step"] = step
            log(f"saved the run's state in {os.path.join(output_dir, RESUME_FOLDER)} (step {step})")

    every = log_every or max(1, steps // 10)
    logger = _StepLog(steps, log, every, save)
    path = os.path.join(output_dir, FINAL_SCENE_MODEL)
    try:
        if start < steps:
            log(f"training {model.name} ({model.count_params():,} weights) from step {start} to {steps}, "
                f"batch {settings['batch_size']}")
            # One step per "epoch": the history holds the loss of every step. A damaged record that a
            # step reads: its file and index (helper 256: TensorFlow's traceback).
            with naming_damaged_scene_records(settings["train_data"]):
                model.fit(dataset, epochs=steps, initial_epoch=start, steps_per_epoch=1, verbose=0,
                          callbacks=[logger], shuffle=False)  # the records are shuffled by the dataset
            log(f"trained to step {steps}, the last step's loss {logger.losses[-1]:.4f}")
        else:
            log(f"the unfinished run has all its {steps} steps: nothing to train")
        os.makedirs(output_dir, exist_ok=True)
        with atomic_path(path) as temporary:
            model.save(temporary)
    except SceneTrainingStopped as error:
        kept = (f"the run's state at step {saved['step']} is in {os.path.join(output_dir, RESUME_FOLDER)}; "
                if saved["step"] else "")
        raise SceneTrainingStopped(f"{error} ({kept}nothing written for this step): lower --learning_rate"
                                   + (" and start afresh with --overwrite" if kept else "")) from None
    except KeyboardInterrupt:
        # Stopped during a step or the final save. The optimizer counts the steps whose update
        # the weights hold, even one that ended between the step and its callback.
        step = int(model.optimizer.iterations.numpy())
        if step > saved["step"]:
            _save_state(model, output_dir, settings)
            saved["step"] = step
        if saved["step"]:
            # Without --overwrite (`resume`): with it, the command starts afresh (helper 137).
            log(f"stopped at step {step}: the run's state is in {os.path.join(output_dir, RESUME_FOLDER)}; "
                f"run the same command{'' if resume else ' without --overwrite'} to go on")
        raise
    shutil.rmtree(os.path.join(output_dir, RESUME_FOLDER), ignore_errors=True)
    return SceneTrainResult(model, path, logger.losses)


def evaluate_scene_classifier(
    model, test_data, *, height: Optional[int] = None, width: Optional[int] = None, batch_size: int = 8,
    class_names: Optional[Sequence[str]] = None, progress: Optional[Callable[[int, int], None]] = None,
) -> Dict[str, object]:
    """Classifies every scene of `test_data` once and returns `scene_metrics`.

    `progress(done, total)` is called after each batch with the scenes classified and the
    records' count (`ssma_tf.progress.Progress` is one).

    Args:
        model: an `SSMASceneClassifier`, or the path of its `.keras` file (or its folder).
        height, width: the size to classify at; default: the size the model was trained at
            (`SSMASceneClassifier.input_size`). Another one is warned about: the figures change
            with it.

    Raises:
        UserInputError: no size given for a model that does not record its own; class names
            of another count; a record's class id out of range.
    """
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        if os.path.isdir(path):
            folder, path = path, os.path.join(path, FINAL_SCENE_MODEL)
            # Its saved state, as `train` tells (before: a `resume/` folder without it, left by a
            # failed first save, was "an unfinished run", and the advice to finish it was refused;
            # helper 292).
            unfinished = holds_unfinished_run(folder)
            if os.path.exists(path) and unfinished:
                # Before: the earlier run's model was evaluated without a word while a later run into the
                # folder (more steps, other data) was unfinished.
                warnings.warn(f"{folder} also holds an unfinished training run ({RESUME_FOLDER}/): evaluating "
                              f"{FINAL_SCENE_MODEL}, the model of the run that finished before it; run the "
                              "ssma-scene train command again to finish the newer one", ConfigWarning, stacklevel=2)
            if not os.path.exists(path):
                # Before: Keras' "File not found" traceback, also for a run stopped before its end.
                raise UserInputError(
                    f"{folder} holds no {FINAL_SCENE_MODEL}: "
                    + ("its training stopped before the end; run the same ssma-scene train command to finish it"
                       if unfinished else "give the folder of a finished ssma-scene train run, or its .keras file"),
                    path=folder)
        elif not os.path.exists(path):
            raise UserInputError("no such model file or run folder", path=path)
        elif path.endswith(".weights.h5"):
            # Before: "cannot read the model file ...", as if the file were damaged.
            raise UserInputError(f"{path} holds weights only (a training run's state, or saved weights), not a "
                                 f"model: give the run's folder or its {FINAL_SCENE_MODEL}", path=path)
        model = load_keras_model(path, (SSMASceneClassifier,))
    trained = getattr(model, "input_size", None)
    if (height is None) != (width is None):
        raise UserInputError("give both --height and --width, or neither (the size the model was trained at)")
    if height is None and trained is None:
        raise UserInputError("the model does not record the size it was trained at (it was written before "
                             "2026-12-02): give --height and --width")
    if height is None:
        height, width = trained
    elif trained is not None and (height, width) != tuple(trained):
        # Before: evaluated at any size without a word (mean IoU 6.2 at 96x96, 8.3 at the 48x64 trained at).
        warnings.warn(f"evaluating at {height}x{width}, but the model was trained at {trained[0]}x{trained[1]}: "
                      "the figures differ from those at its own size (leave out --height and --width for it)",
                      ConfigWarning, stacklevel=2)
    if class_names is not None and len(class_names) != model.num_classes:
        raise UserInputError(f"{len(class_names)} class names for the model's {model.num_classes} classes "
                             f"({', '.join(class_names)}); give one per class, id 0 first")
    confusion = np.zeros((model.num_classes, model.num_classes), np.int64)
    dataset = build_scene_dataset(test_data, modalities=model.num_modalities, height=height, width=width,
                                  batch_size=batch_size, training=False,
                                  # Not --modalities, which ssma-scene evaluate does not take: the model says.
                                  fix="a classifier trained on {held} modalities evaluates them")
    # Before any image is classified, and with the record that has it (before: found at its batch,
    # naming the record files only).
    total = len(_refuse_class_ids_past(test_data, model.num_classes, "the model has",
                                       modalities=model.num_modalities).ids)
    extra = _more_modalities_warning(test_data, model.num_modalities, "test")
    if extra:
        # Before: evaluated on their first modalities without a word, as training warned (helper 245).
        warnings.warn(extra, ConfigWarning, stacklevel=2)
    non_finite = 0
    with naming_damaged_scene_records(test_data):
        for views, truth in dataset:
            probabilities = np.asarray(model(list(views), training=False))
            non_finite += non_finite_pixels(probabilities)  # here, scenes: rows not all finite
            predicted = np.argmax(probabilities, axis=-1)
            np.add.at(confusion, (truth.numpy(), predicted), 1)
            if progress is not None:
                progress(int(confusion.sum()), total)
    metrics = scene_metrics(confusion, class_names)
    metrics["non_finite_scenes"] = non_finite
    if non_finite:
        # An all-NaN row's argmax is class 0: a damaged classifier was scored as if it chose class 0
        # for every scene, without a word (helper 349), as `ssma-evaluate` warns of pixels.
        warnings.warn(f"the classifier gave non-finite probabilities (NaN or inf) for {non_finite} of "
                      f"{metrics['num_scenes']} scenes: they count as class 0 (or an arbitrary class); its weights "
                      "may be damaged", RuntimeWarning, stacklevel=2)
    return metrics
