"""The target-domain input stream: groups of views of unlabeled target images.

Each element is one target image seen through a group of `views` views (`ssma_tf.adaptation.views`):
every modality shares each view's geometry (modality 2 and on interpolated as the config says,
labels with nearest neighbour). Labels are optional: records without a `label` feature give all-void
labels and `has_label` False; where they exist they are only used to monitor the pseudo-labels.
With importance weights, record i is kept with probability p_i / max p (rejection sampling, so the
stream draws images with probabilities p_i).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import numpy as np
import tensorflow as tf

from ssma_tf.adaptation.views import render_views, sample_group
from ssma_tf.data import schema
from ssma_tf.data.augment import resize_sample
from ssma_tf.resampling import modality_interpolations
from ssma_tf.data.pipeline import FilePatterns, check_first_record, list_record_files, naming_damaged_records
from ssma_tf.data.records import modalities_held, whole_records
from ssma_tf.data.unlabeled import UnlabeledDataError, decode_record

SHUFFLE_BUFFER = 128


def build_target_dataset(
    file_patterns: FilePatterns,
    *,
    modalities: int,
    height: int,
    width: int,
    groups: int,
    views: int,
    seed: int,
    scale_range: Sequence[float],
    zoom_range: Sequence[float],
    flip_probability: float,
    modality2_interpolation: Union[str, Sequence[str]] = "nearest",
    acceptance: Optional[np.ndarray] = None,
) -> tf.data.Dataset:
    """An endless stream of batches of `groups` target images, each as `views` views.

    Args:
        file_patterns: the target records.
        modalities: N, the images read from each record: SSMA's N, or for an AdapNet++ expert
            the index of the modality it reads.
        height, width: the training size (views and images are resized to it).
        groups, views: images per batch and views per image.
        seed: fixes the order, the importance sampling and the geometry.
        scale_range, zoom_range, flip_probability: the view geometry (`sample_group`).
        modality2_interpolation: "nearest" or "bilinear" for modality 2 and on, or one of them
            per modality after the first (a config's `interpolations`).
        acceptance: per-record keep probabilities in (0, 1] in file order (importance sampling);
            None keeps every record.

    Returns:
        Batches of dicts: `modality1` (G, T, H, W, 3) float32 BGR, `modality2` .. `modalityN`
        likewise, `labels` (G, T, H, W) int32 (0 outside the view and where unlabeled),
        `has_label` (G,) bool, `to_base` (G, T, 3, 3) float32.
    """
    methods = modality_interpolations(modality2_interpolation, modalities - 1)
    files = list_record_files(file_patterns)
    records = tf.data.TFRecordDataset(files).enumerate()
    records = records.repeat()
    indexed = tf.data.Dataset.zip((records, tf.data.Dataset.counter(dtype=tf.int64)))
    base_seed = tf.constant(seed, tf.int64)
    if acceptance is not None:
        keep = tf.constant(np.asarray(acceptance, np.float32))

        def accepted(record, position):
            index, _ = record
            draw = tf.random.stateless_uniform([], seed=tf.stack([base_seed * 3 + 1, position]))
            return draw < keep[index]

        indexed = indexed.filter(accepted)
    indexed = indexed.shuffle(SHUFFLE_BUFFER, seed=seed, reshuffle_each_iteration=True)

    def to_views(record, position):
        _, serialized = record
        sample = decode_record(serialized, modalities)
        has_label = tf.reduce_any(sample[schema.LABEL] > 0)
        sample = resize_sample(sample, height=height, width=width,
                               modality2_interpolation=modality2_interpolation)
        to_image, to_base = sample_group(
            tf.stack([base_seed * 3 + 2, position]), views, height, width,
            scale_range=scale_range, zoom_range=zoom_range, flip_probability=flip_probability)
        out = {
            "modality1": render_views(sample["modality1"], to_image, "bilinear"),
            "labels": tf.cast(tf.round(render_views(
                tf.cast(sample["label"][..., None], tf.float32), to_image, "nearest")[..., 0]), tf.int32),
            "has_label": has_label,
            "to_base": to_base,
        }
        for index in range(2, modalities + 1):
            key = schema.modality_key(index)
            out[key] = render_views(sample[key], to_image, methods[index - 2])
        return out

    dataset = indexed.map(to_views, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.batch(groups, drop_remainder=True).prefetch(1)


class TargetDataError(UnlabeledDataError):
    """Unusable target records (names the file and the key)."""


def check_target_files(files: Sequence[str], config: Any, key: str = "target_data") -> None:
    """Fails unless the target record `files` hold the modalities `config`'s model needs. Empty
    files pass (they hold no image to adapt to, and count none), a set of empty files does not.

    Raises:
        TargetDataError: naming the file when its records hold fewer images than the model
            reads (SSMA's N, or the index of an AdapNet++ expert's `input_modality`), or the
            files when none holds a record.
        RecordError: a file that ends inside a record's header (its last record lost).
    """
    needed = config.record_modalities
    held = [modalities_held(path) for path in files]
    if all(present is None for present in held):
        # Before: TensorFlow's "End of sequence" at the first step, after the model was built.
        raise TargetDataError(f"key '{key}': the records hold no image", ", ".join(files))
    for path, present in zip(files, held):
        # A file cut inside a record's header: the reader would pass its last record over (helper 259).
        whole_records(path)
        if present is not None and present < needed:
            reads = (f"its {needed} modalities" if config.is_fusion
                     else f"{config.input_modality} ({config.model} on {config.input_modality})")
            raise TargetDataError(
                f"{key} holds {present} modalit{'y' if present == 1 else 'ies'} but the model "
                f"reads {reads}; give records written from lists with a column per modality", path)


def predicted_class_counts(
    model: Any,
    files: Sequence[str],
    *,
    modalities: int,
    height: int,
    width: int,
    num_classes: int,
    fusion: bool = False,
    input_modality: Optional[str] = "modality1",
    batch_size: int = 4,
    modality2_interpolation: Union[str, Sequence[str]] = "nearest",
    progress: Any = None,
) -> np.ndarray:
    """Pixels of each target record (file order) that `model` predicts as each class, (N, C).

    Args:
        modalities: the images each record holds that are read: a fusion model's N (it takes
            all of them), or at least the index of a unimodal model's `input_modality`.
        fusion: the model takes modalities 1 .. N (SSMA); otherwise it takes `input_modality`.
        input_modality: the one image a unimodal model sees ("modality1", "modality2", ...), as
            in its training; not read for a fusion model (a fusion config has none).
        modality2_interpolation: as for `build_target_dataset`.
        progress: called with the number of records done after each batch (optional).

    Raises:
        RecordError: a file whose records hold fewer modalities than read (naming it).
    """
    if not fusion and not schema.is_modality_key(input_modality):
        raise ValueError(f"input_modality must be 'modality1', 'modality2', ..., got {input_modality!r}")
    needed = modalities if fusion else int(input_modality.removeprefix("modality"))
    if fusion and modalities < 2 or modalities < needed:
        raise ValueError(f"modalities={modalities} cannot feed a model that reads "
                         f"{f'{modalities} modalities' if fusion else input_modality}")
    for path in files:  # a set of fewer modalities than the model reads: one line naming the file
        if modalities_held(path) is not None:  # an empty file counts no pixels, as in training
            check_first_record(path, modalities, labeled=False)
    records = tf.data.TFRecordDataset(list(files))

    def prepare(serialized):
        sample = resize_sample(decode_record(serialized, modalities), height=height, width=width,
                               modality2_interpolation=modality2_interpolation)
        if fusion:
            return tuple(sample[schema.modality_key(i)] for i in range(1, modalities + 1))
        return sample[input_modality]

    dataset = records.map(prepare, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size)

    @tf.function
    def count(inputs):
        probs = model(inputs, training=False)
        predicted = tf.argmax(probs, axis=-1, output_type=tf.int32)
        return tf.reduce_sum(tf.one_hot(predicted, num_classes, dtype=tf.int32), axis=[1, 2])

    counts = []
    # A damaged record: its file and index (helper 256: TensorFlow's traceback, after the records before it).
    with naming_damaged_records(list(files), modalities, labeled=False):
        for inputs in dataset:
            counts.append(count(inputs).numpy())
            if progress is not None:
                progress(sum(len(c) for c in counts))
    return np.concatenate(counts, 0) if counts else np.zeros((0, num_classes), np.int64)


def importance_weights(config: Any, checkpoint: str, target: FilePatterns, output: str, *, batch_size: int = 4,
                       progress: Any = None, log: Any = None, overwrite: bool = True) -> tuple[np.ndarray, list[str]]:
    """Importance-sampling weights of the target images from a baseline's predictions, written to
    `output` (`ssma_tf.adaptation.importance`: the JSON file a config's `importance_weights` reads).

    Args:
        config: the adaptation run's config (its model, size, classes and modalities).
        checkpoint: the baseline the counts come from (a run, a checkpoint or weights file).
        target: the target records (files or patterns), read in file order.
        batch_size: images per prediction batch.
        progress: called with (records done, records in all) after each batch (optional).
        log: called with the line saying which weights were loaded (optional).
        overwrite: False: a file that appears at `output` while the images are predicted (another
            command's) is kept and this call's weights dropped (`OutputPathError`; `write_weights`).

    Returns:
        The probability of drawing each image, and the target files in the order they count.
    """
    from ssma_tf.adaptation.importance import write_weights
    from ssma_tf.checkpoints.loading import load_weights
    from ssma_tf.data.datasets import class_names_or_generic
    from ssma_tf.data.records import records_per_file
    from ssma_tf.models.factory import build_model

    files = list_record_files(target)
    # As the adaptation run checks them, before the baseline loads (helper 272: an empty file was
    # refused here, after the load, though training takes it).
    check_target_files(files, config)
    per_file = records_per_file(files)
    total = sum(per_file)
    model = build_model(config)
    loaded = load_weights(model, checkpoint)
    if log is not None:
        log(f"loaded {loaded}")
    counts = predicted_class_counts(
        model, files, modalities=config.record_modalities, fusion=config.is_fusion,
        input_modality=config.input_modality, height=config.height, width=config.width,
        num_classes=config.num_classes, batch_size=batch_size, modality2_interpolation=config.interpolations,
        progress=None if progress is None else (lambda done: progress(done, total)))
    names = class_names_or_generic(config.dataset, config.palette, config.num_classes)
    return write_weights(output, files, per_file, counts, names, overwrite=overwrite), files
