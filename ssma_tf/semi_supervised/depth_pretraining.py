"""Depth pretraining: AdapNet++ learns to predict the measured depth from RGB, without labels.

The third way of Hoyer et al. (CVPR 2021, Section 3.1): a network that has learned depth has
learned much of the scene's layout, so segmentation starting from it needs fewer labels. They
estimate depth self-supervised from video; an RGB-D dataset has it measured, so here the target
is modality 2 decoded from its colouring (`ssma_tf.semi_supervised.mixing.decode_nearness`: nearness in 0..1,
log depth for the synthetic data), and the loss is the reverse Huber (BerHu) loss of their
pseudo-depth training, on the pixels that have depth.

The depth network is an AdapNet++ with two output channels (the smallest class count a config
allows) whose first logit is the depth: the same encoder and decoder as the segmentation network,
so `finetune_from: <run>/final.weights.h5` starts a segmentation run from everything but the
class-dependent layers. It trains on every image of `train_data` and `unlabeled_data`.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
import warnings
from typing import Any, Optional, Sequence

import numpy as np
import tensorflow as tf

from ssma_tf import training
from ssma_tf.config import ConfigError, ConfigWarning
from ssma_tf.config.runs import saved_run_config
from ssma_tf.config.semi_supervised import DEPTH_ENCODINGS, SemiSupervisedConfig
from ssma_tf.constants import ADAPNET_PP
from ssma_tf.data.unlabeled import build_mix_dataset
from ssma_tf.data.pipeline import list_record_files
from ssma_tf.losses import add_weight_decay, decayed_weights
from ssma_tf.semi_supervised.mixing import (
    OFF_MAP_TERM,
    check_depth_colouring,
    decode_nearness,
    off_map_images,
    take_off_map_term,
)
from ssma_tf.distribute import first_replica, replica_mean
from ssma_tf.summaries import write_images

# Output channels of the depth network; channel 0 is the depth.
DEPTH_CHANNELS = 2
# The config key `pretraining` of a depth run.
DEPTH_PRETRAINING = "depth"
# BerHu threshold as a fraction of the batch's largest absolute error (Laina et al., 2016).
BERHU_FRACTION = 0.2


def berhu_loss(prediction: Any, target: Any, valid: Any) -> Any:
    """The reverse Huber loss over the valid pixels: |e| up to c, (e² + c²) / 2c beyond.

    c is 0.2 × the largest absolute error of the batch's valid pixels.

    Under a strategy of R replicas, c and the count of valid pixels are those of the whole batch
    (gathered from every replica), and each replica returns R × its pixels' share of the whole
    batch's loss: their mean is the loss of one device, and the trainer's division by R with the
    gradients summed gives its gradient. Before (helper 215), each replica had its own c and
    average, so an image with little valid depth weighed as much as a full one.

    Returns:
        A float32 scalar (0 when no pixel is valid).
    """
    valid = tf.cast(valid, tf.float32)
    error = tf.abs(tf.cast(prediction, tf.float32) - tf.cast(target, tf.float32)) * valid
    largest, count = tf.reduce_max(error), tf.reduce_sum(valid)
    context = tf.distribute.get_replica_context()
    replicas = context.num_replicas_in_sync if context is not None else 1
    if replicas > 1:
        largest = tf.reduce_max(context.all_gather(tf.reshape(tf.stop_gradient(largest), [1]), axis=0))
        count = context.all_reduce(tf.distribute.ReduceOp.SUM, count)
    c = tf.stop_gradient(tf.maximum(BERHU_FRACTION * largest, 1e-6))
    per_pixel = tf.where(error <= c, error, (tf.square(error) + tf.square(c)) / (2.0 * c))
    return float(replicas) * tf.reduce_sum(per_pixel * valid) / tf.maximum(count, 1.0)


def depth_config(config: Any) -> Any:
    """The config of the depth network: the segmentation config's AdapNet++ with two outputs.

    It reads no label (no class count to check them against, no labeled subset) and learns
    modality 2's depth from modality 1.
    """
    if config.model != ADAPNET_PP:
        raise ConfigError(f"depth pretraining trains {ADAPNET_PP} on RGB, got {config.model}",
                          key="model", source=config.where("model"))
    if config.input_modality != "modality1":
        raise ConfigError(
            f"is {config.input_modality}, but depth pretraining learns the depth of modality 2 from the images of "
            "modality 1; set input_modality: modality1", key="input_modality", source=config.where("input_modality"))
    if config.interpolations[0] == "bilinear":
        # The config reader refuses it for DepthMix and a pretraining run's own config; this is
        # the segmentation config `ssma-pretrain-depth` and `ssma-select-labels` start from.
        name = "modality_interpolations" if config.modality_interpolations else "modality2_interpolation"
        raise ConfigError(
            "resamples modality 2 bilinearly, but depth pretraining reads depth from its colouring: blends of "
            "missing (black) depth with a colour decode as surfaces that are not there; give nearest",
            key=name, source=config.where(name))
    # `pretraining` goes into the run's config.yaml: the other commands refuse the depth network.
    # The semi_supervised section stays for its depth_encoding, which resuming from that file
    # needs (the two jet encodings cannot be told apart from the images).
    return dataclasses.replace(config, num_classes=DEPTH_CHANNELS, dataset=None, palette=None,
                               labeled_subset=None, pretraining=DEPTH_PRETRAINING)


class DepthPretrainer(training.Trainer):
    """Trains AdapNet++ to regress the measured depth of every image (module docstring).

    Its config (and so the run's `config.yaml`) says `pretraining: depth`.

    Args:
        config: a training `RunConfig` of an AdapNet++ on modality 1 (its class count is ignored).
        selected: only these records of `train_data` (a depth student for label selection);
            default: every image of `train_data` and `unlabeled_data`.
        encoding: the colouring of modality 2 (`--depth-encoding`); default: the config's
            `semi_supervised.depth_encoding`, else that of the run resumed (its config.yaml),
            else `jet_near_red`. Given, it is written into the
            run's config (its `semi_supervised` section), which a resume reads.
        **kwargs: as for `Trainer`.
    """

    PRETRAINING = DEPTH_PRETRAINING

    @staticmethod
    def _resumed_encoding(config: Any) -> Optional[str]:
        """The colouring the run resumed in `config.checkpoint` started with, where the config
        leaves its own at the default (None: the config's, or no run there).

        A resumed run keeps the colouring it started with: resumed from the original config,
        whose section is unset, it went on reading jet_near_red, the depth reversed halfway
        (helper 138); so did a config whose section sets other keys (helper 249). A config that
        says another colouring than the default is followed; the default is followed where
        `--depth-encoding` gives it, and otherwise said in a warning.
        """
        saved = saved_run_config(config.checkpoint).get("semi_supervised")
        kept = saved.get("depth_encoding") if isinstance(saved, dict) else None
        default = SemiSupervisedConfig().depth_encoding
        if kept not in DEPTH_ENCODINGS or kept == default:
            return None
        if config.semi_supervised is None:
            return kept
        if config.semi_supervised.depth_encoding != default:
            return None  # said in the config: its `note` line tells of the change
        warnings.warn(f"{config.checkpoint} started reading modality 2 as {kept}, and goes on so: the config's "
                      f"semi_supervised section leaves depth_encoding at its default, {default}; give "
                      f"--depth-encoding {default} to change it", ConfigWarning, stacklevel=3)
        return kept

    def __init__(self, config: Any, selected: Optional[Sequence[int]] = None, encoding: Optional[str] = None,
                 **kwargs: Any):
        self.selected = None if selected is None else list(selected)
        if encoding is None:
            encoding = self._resumed_encoding(config)
        if encoding is None:
            encoding = config.semi_supervised.depth_encoding if config.semi_supervised is not None else "jet_near_red"
        else:
            # Before: a config without unlabeled_data could not say it (a semi_supervised section
            # needs them), and the depth student of `ssma-select-labels` read the default.
            if encoding not in DEPTH_ENCODINGS:
                raise ValueError(f"encoding must be one of {', '.join(DEPTH_ENCODINGS)}, got {encoding!r}")
            section = config.semi_supervised or SemiSupervisedConfig()
            config = dataclasses.replace(config, semi_supervised=dataclasses.replace(section, depth_encoding=encoding))
        self.encoding = encoding
        depth = depth_config(config)  # its errors about the model come first
        # The target is modality 2 read as depth (before: a colour photo there trained without a word).
        for key in ("train_data",) + (("unlabeled_data",) if self.selected is None and config.unlabeled_data else ()):
            check_depth_colouring(list_record_files(getattr(config, key)), encoding, key=f"{key} (depth pretraining)",
                                  fix="give --depth-encoding (or the config's semi_supervised.depth_encoding)")
        super().__init__(depth, **kwargs)

    def _method_text(self) -> str:
        return (f"; depth pretraining: modality 2 read as depth ({self.encoding}), BerHu loss, no labels read")

    def record_sets(self) -> list[training.RecordSet]:
        """`train_data` and `unlabeled_data`, both read without their labels (images 1 and 2)."""
        sets = [training.RecordSet("train_data", False, 2)]
        if self.selected is None and self.config.unlabeled_data:
            sets.append(training.RecordSet("unlabeled_data", False, 2))
        return sets

    def _make_dataset(self, context: tf.distribute.InputContext, seed_offset: int) -> tf.data.Dataset:
        config = self.config
        unlabeled = None if self.selected is not None else (config.unlabeled_data or config.train_data)
        dataset = build_mix_dataset(
            config.train_data, unlabeled, labeled=self.selected,
            height=config.height, width=config.width,
            batch_size=context.get_per_replica_batch_size(config.batch_size),
            num_classes=DEPTH_CHANNELS, augmentation=config.augmentation,
            seed=self.run_seed + 7919 * context.input_pipeline_id + seed_offset,
            modality2_interpolation=config.interpolations,
            # Before: an empty train_data was "key 'unlabeled_data': ...", a key the config lacked (helper 256).
            unlabeled_key="unlabeled_data" if config.unlabeled_data else "train_data")
        return dataset.map(lambda inputs, label, has_label, valid: inputs)

    def _make_train_function(self) -> Any:
        self._note_no_xla("depth pretraining")
        model, optimizer, strategy = self.model, self.optimizer, self.strategy
        replicas = strategy.num_replicas_in_sync
        encoding = self.encoding
        preview_count = training.PREVIEW_IMAGES
        # The config's weight decay, as segmentation adds it (before: read by nothing; helper 138).
        decayed, weight_decay = decayed_weights(model), self.config.weight_decay

        def replica_step(modality1, modality2):
            near, valid, distance = decode_nearness(modality2, encoding)
            variables = model.trainable_variables
            terms = {}
            with tf.GradientTape() as tape:
                outputs = model(modality1, training=True, return_all=True)
                prediction = tf.cast(outputs["logits"][..., 0], tf.float32)
                depth_loss = berhu_loss(prediction, near, valid)
                loss = add_weight_decay(depth_loss, terms, decayed, weight_decay)
                scaled = optimizer.scale_loss(loss / replicas)
            gradients = tape.gradient(scaled, variables)
            # The auxiliary heads take no part in the depth loss.
            gradients = [tf.zeros_like(v) if g is None else g for g, v in zip(gradients, variables)]
            if replicas > 1:
                gradients = tf.distribute.get_replica_context().all_reduce(
                    tf.distribute.ReduceOp.SUM, gradients)
            optimizer.apply(gradients, variables)
            error = tf.reduce_sum(tf.abs(prediction - near) * tf.cast(valid, tf.float32)) / tf.maximum(
                tf.reduce_sum(tf.cast(valid, tf.float32)), 1.0)
            preview = tf.cast(tf.clip_by_value(prediction[:preview_count], 0.0, 1.0) * 255.0, tf.uint8)
            truth = tf.cast(near[:preview_count] * 255.0, tf.uint8)
            terms.update({"berhu": depth_loss, "abs_error": error, OFF_MAP_TERM: off_map_images(distance, valid)})
            return loss, terms, preview, truth

        @tf.function
        def train_function(iterator):
            modality1, modality2 = next(iterator)
            loss, terms, preview, truth = strategy.run(replica_step, args=(modality1, modality2))
            self.step.assign_add(1)
            return (replica_mean(strategy, loss), {k: replica_mean(strategy, v) for k, v in terms.items()},
                    first_replica(strategy, preview), first_replica(strategy, truth))

        return train_function

    def _check_window(self, first: int, last: int, terms: dict[str, float]) -> dict[str, float]:
        """Warns when steps `first..last` read images whose modality 2 is not the depth colouring."""
        keys = "train_data" + (" and unlabeled_data" if self.selected is None and self.config.unlabeled_data else "")
        return take_off_map_term(terms, first, last, self.encoding, keys, self._log, "depth pretraining")

    def _write_preview(self, step: int, preview: Any, truth: Any = None) -> None:
        """Writes the predicted and the measured nearness as grey images."""
        grey = lambda x: np.repeat(np.asarray(x)[..., None], 3, axis=-1)  # noqa: E731
        write_images("depth/predicted", grey(preview), step, max_outputs=training.PREVIEW_IMAGES)
        write_images("depth/measured", grey(truth), step, max_outputs=training.PREVIEW_IMAGES)


def pretrain_depth(config: Any, **kwargs: Any) -> training.TrainResult:
    """Runs depth pretraining as `config` says (resumable like `training.train`)."""
    return DepthPretrainer(config, **kwargs).run()


def depth_errors(model: Any, config: Any, encoding: str = "jet_near_red") -> np.ndarray:
    """How far a depth model's prediction is from the measured depth, per `train_data` record.

    Returns:
        (N,) the mean absolute nearness error over each record's valid pixels, in record order.
    """
    from ssma_tf.data.augment import resize_sample
    from ssma_tf.data.pipeline import list_record_files
    from ssma_tf.data.unlabeled import decode_record

    errors = []
    for record in tf.data.TFRecordDataset(list_record_files(config.train_data)):
        sample = resize_sample(decode_record(record), height=config.height, width=config.width,
                               modality2_interpolation=config.interpolations)
        near, valid, _ = decode_nearness(sample["modality2"][None], encoding)
        prediction = model(sample["modality1"][None], training=False, return_all=True)["logits"][..., 0]
        # Within the nearness's range, as the training preview shows it and as the released
        # student's sigmoid bounds its disparity: a briefly trained student's unbounded output
        # gave one image 5x the mean error, and the bias to it alone (helper 267).
        prediction = tf.clip_by_value(tf.cast(prediction, tf.float32), 0.0, 1.0)
        valid = tf.cast(valid, tf.float32)
        error = tf.reduce_sum(tf.abs(prediction - near) * valid) / tf.maximum(
            tf.reduce_sum(valid), 1.0)
        errors.append(float(error))
    return np.asarray(errors)


# Training batches over which the depth student's batch-norm statistics are recomputed
# (`ssma_tf.recalibration`) before its errors are measured.
STUDENT_RECALIBRATION_BATCHES = 25


def depth_student_errors(config: Any, selected: Sequence[int], steps: int, seed: int = 0,
                         encoding: Optional[str] = None) -> np.ndarray:
    """How badly a depth student trained `steps` steps on `selected` predicts each image's depth.

    The difficulty of label selection (Hoyer et al., Section 3.3): the student is trained from
    random weights in a temporary folder, then its mean absolute nearness error per `train_data`
    image is returned, the prediction clipped to the nearness's 0..1, with the measured depth as
    the teacher (the released code takes |log(1 + d_student) − log(1 + d_teacher)| of the
    disparities instead, masking near objects and the car's bonnet; docs/semi_supervised.md).
    `encoding`: modality 2's colouring, as for `DepthPretrainer`.
    """
    folder = tempfile.mkdtemp(prefix="ssma-depth-student-")
    try:
        # From random weights on every backbone, as docs/semi_supervised.md says: before, a MobileNet v2
        # student started from the config's backbone_weights, an AdapNet++ one from none (helper 289).
        student_config = config.without_starting_weights(
            checkpoint=folder, log_dir=None, max_iteration=int(steps), seed=seed,
            save_step=int(steps), skip_step=max(1, int(steps)), labeled_subset=None, backbone_weights=None)
        trainer = DepthPretrainer(student_config, selected=list(selected), encoding=encoding, log=lambda line: None)
        trainer.run()
        # A short run leaves the batch norms' moving statistics mostly at their initial values
        # (momentum 0.99: 37 % after 100 steps), and the errors are measured in inference mode:
        # they were mostly noise, larger than the whole nearness range, and the selected images
        # scored worse than the others (helper 156). Recomputed over the selection first.
        trainer.recalibrate_batch_norm(STUDENT_RECALIBRATION_BATCHES)
        encoding = trainer.encoding
        return depth_errors(trainer.model, student_config, encoding)
    finally:
        shutil.rmtree(folder, ignore_errors=True)

