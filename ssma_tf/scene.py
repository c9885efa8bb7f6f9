"""Scene classification with SSMA (Section 5.9, Table 22): training and evaluation.

Training starts the experts from unimodal AdapNet++ checkpoints (their encoders, as SSMA's
`checkpoints`), freezes them as the released fusion stage does, and trains the SSMA block and the
classifier with Adam on the cross-entropy of the scene classes. Evaluation reports, as Table 22,
the recall and the IoU of each class (TP / (TP + FN) and TP / (TP + FP + FN), in percent) with
their means and the accuracy.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from typing import Callable, Dict, List, Optional, Sequence

import keras
import numpy as np

from ssma_tf.checkpoints.loading import unimodal_encoder_weights
from ssma_tf.checkpoints.tf1_import import CheckpointError
from ssma_tf.config import ConfigWarning
from ssma_tf.checkpoints.initialize import other_modality_run, swapped_expert_line
from ssma_tf.data.scene import build_scene_dataset, largest_class_id
from ssma_tf.errors import UserInputError
from ssma_tf.files import atomic_path
from ssma_tf.models.scene import SSMASceneClassifier

FINAL_SCENE_MODEL = "scene.keras"


def scene_metrics(confusion: np.ndarray, class_names: Optional[Sequence[str]] = None) -> Dict[str, object]:
    """Per-class recall and IoU (percent) of a (C, C) confusion matrix (rows: truth, columns: prediction).

    Returns:
        `per_class` (a list of `name`, `recall`, `iou`, `scenes`; None where a class has no
        scene and no prediction), `mean_recall`, `mean_iou` (over the classes with a value) and
        `accuracy`.
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
    }


def format_scene_metrics(metrics: Dict[str, object]) -> str:
    """The per-class table of `scene_metrics`, as Table 22 reports it."""
    def cell(value):
        return "      –" if value is None else f"{value:7.1f}"

    lines = [f"{'class':<20} {'recall':>7} {'IoU':>7} {'scenes':>7}"]
    for row in metrics["per_class"]:
        lines.append(f"{row['name']:<20} {cell(row['recall'])} {cell(row['iou'])} {row['scenes']:7d}")
    lines.append(f"{'mean':<20} {cell(metrics['mean_recall'])} {cell(metrics['mean_iou'])} {metrics['num_scenes']:7d}")
    lines.append(f"accuracy {metrics['accuracy']:.1f} %")
    return "\n".join(lines)


@dataclasses.dataclass
class SceneTrainResult:
    """What `train_scene_classifier` did: the model, its file and the loss of each step."""

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
    freeze_experts: bool = True,
    seed: Optional[int] = None,
    log: Optional[Callable[[str], None]] = None,
) -> SceneTrainResult:
    """Trains an `SSMASceneClassifier` and writes it to `<output_dir>/scene.keras`.

    Args:
        train_data: scene records (`ssma_tf.data.scene.write_scene_records`), a pattern or list.
        output_dir: folder for the model.
        num_classes: scene classes.
        modalities: N, the images of each record the model reads.
        height, width: input size (multiples of 16).
        steps, batch_size, learning_rate: the optimisation (Adam, constant rate).
        experts: one unimodal AdapNet++ checkpoint per modality (TF1 or own), whose encoders
            start the experts; None: random experts (then `freeze_experts` should be False).
        expert_classes: the class count of the experts' own checkpoints (TF1 ones say it).
        freeze_experts: train only the SSMA block and the classifier.
        seed: seed of the weights and the data order.
        log: where progress lines go (default: nowhere).

    Raises:
        ValueError: `experts` of another length than `modalities`.
        UserInputError: a record's class id is not below `num_classes` (naming the file).
    """
    log = log or (lambda line: None)
    if experts is not None and len(experts) != modalities:
        raise ValueError(f"{len(experts)} expert checkpoints for {modalities} modalities; give one per modality")
    if seed is not None:
        keras.utils.set_random_seed(seed)
    # Before the model is built: records that are not scene records (one line), then a class id
    # out of range (it was a TensorFlow traceback mid-training).
    dataset = build_scene_dataset(train_data, modalities=modalities, height=height, width=width,
                                  batch_size=batch_size, training=True, seed=seed)
    largest, where = largest_class_id(train_data)
    if largest >= num_classes:
        raise UserInputError(f"{where}: a scene has class id {largest}, but there are {num_classes} classes "
                             f"(ids 0..{num_classes - 1}); give --num_classes {largest + 1} or more", where)
    for index, source in enumerate(experts or ()):
        found = other_modality_run(os.fspath(source), index)
        if found is not None:
            warnings.warn(f"expert {index + 1} ({source}): " + swapped_expert_line(*found, index), ConfigWarning,
                          stacklevel=2)
    model = SSMASceneClassifier(num_classes, num_modalities=modalities, freeze_experts=freeze_experts)
    for encoder, source in zip(model.encoders, experts or ()):
        try:
            weights = unimodal_encoder_weights(source, expert_classes or num_classes, model.dropout_rate)
        except CheckpointError as error:
            if expert_classes is not None:
                raise
            # The experts are segmentation networks: their class count is not the scenes'.
            raise CheckpointError(f"{error}; experts trained on another class count than the {num_classes} scene "
                                  "classes need --expert_classes N (their segmentation classes)") from None
        encoder.set_weights(weights)
        log(f"{source}: loaded into the {encoder.name} expert")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy())
    # One step per "epoch": the history holds the loss of every step.
    history = model.fit(dataset, epochs=steps, steps_per_epoch=1, verbose=0)
    losses = [float(v) for v in history.history["loss"]]
    log(f"trained {steps} steps, loss {losses[-1]:.4f}")
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, FINAL_SCENE_MODEL)
    with atomic_path(path) as temporary:
        model.save(temporary)
    return SceneTrainResult(model, path, losses)


def evaluate_scene_classifier(
    model, test_data, *, height: int, width: int, batch_size: int = 8,
    class_names: Optional[Sequence[str]] = None,
) -> Dict[str, object]:
    """Classifies every scene of `test_data` once and returns `scene_metrics`.

    Args:
        model: an `SSMASceneClassifier`, or the path of its `.keras` file (or its folder).
    """
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        if os.path.isdir(path):
            path = os.path.join(path, FINAL_SCENE_MODEL)
        model = keras.models.load_model(path)
    if class_names is not None and len(class_names) != model.num_classes:
        raise UserInputError(f"{len(class_names)} class names for the model's {model.num_classes} classes "
                             f"({', '.join(class_names)}); give one per class, id 0 first")
    confusion = np.zeros((model.num_classes, model.num_classes), np.int64)
    dataset = build_scene_dataset(test_data, modalities=model.num_modalities, height=height, width=width,
                                  batch_size=batch_size, training=False)
    for views, class_ids in dataset:
        predicted = np.argmax(np.asarray(model(list(views), training=False)), axis=-1)
        truth = class_ids.numpy()
        if truth.size and truth.max() >= model.num_classes:
            sets = test_data if isinstance(test_data, str) else ", ".join(map(str, test_data))
            raise UserInputError(f"a record of {sets} has class id {int(truth.max())}, the model "
                                 f"{model.num_classes} classes")
        np.add.at(confusion, (truth, predicted), 1)
    return scene_metrics(confusion, class_names)
