"""Semi-supervised training: a mean teacher labels mixed unlabeled images (DepthMix or ClassMix).

One step (Hoyer et al., CVPR 2021, Section 3.2, as released; `docs/semi_supervised.md`):

1. a labeled batch gives the supervised loss (the released loss with its auxiliary terms);
2. a mix batch of B images is drawn from all training images (`ssma_tf.data.unlabeled`); the
   teacher (`ssma_tf.mean_teacher`, no dropout, batch norms on the mix batch's own statistics as
   `teacher_batch_norm` says) predicts P on each (its label instead, where it has one and
   `use_ground_truth` is set; void pixels of a label are never confident);
3. image k is pasted over image k - 1 (mod B) with the DepthMix mask from the measured depth of
   modality 2 (`ssma_tf.semi_supervised.mixing`) or the ClassMix mask; every modality, and P, is
   mixed with the same mask; modality 1 of the mixed images is colour-jittered and blurred
   (`ssma_tf.photometric`);
4. the student's loss on the mixed images is the cross-entropy to argmax P_mix, weighted by
   `consistency_weight` × the fraction of pixels with max P_mix ≥ `confidence`;
5. the gradients of the two losses (two forward and backward passes, so the peak memory stays
   that of one) are summed and applied; then the teacher's average is updated.

The student is what is checkpointed as the model, exported and evaluated; the teacher is
checkpointed beside it, so a resumed run continues the same average.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import tensorflow as tf

from ssma_tf import training
from ssma_tf.config import ConfigError, refuse_pretraining
from ssma_tf.data.pipeline import list_record_files
from ssma_tf.data.unlabeled import build_mix_dataset, read_labeled_subset
from ssma_tf.distribute import first_replica, replica_mean, synchronize_batch_norms
from ssma_tf.losses import decayed_weights, weighted_cross_entropy
from ssma_tf.mean_teacher import MeanTeacher
from ssma_tf.photometric import gaussian_blur, mix_colour_jitter
from ssma_tf.semi_supervised.mixing import (
    OFF_MAP_TERM,
    check_depth_colouring,
    classmix_mask,
    confidence_weight,
    decode_nearness,
    depthmix_mask,
    mix,
    off_map_images,
    take_off_map_term,
    teacher_targets,
)
from ssma_tf.summaries import write_images, write_scalar
from ssma_tf.training.step import (
    PREVIEW_IMAGES,
    add_gradients,
    apply_gradients,
    preview_classes,
    supervised_pass,
)

# Distinct stateless streams of one step.
_CLASSMIX, _JITTER, _BLUR = 1, 2, 3


class SemiSupervisedTrainer(training.Trainer):
    """A `Trainer` whose step adds the mean-teacher loss on mixed images (module docstring).

    Args:
        config: a training `RunConfig` with a `semi_supervised` section and `unlabeled_data`.
        **kwargs: as for `Trainer` (`strategy`, `log`, `max_to_keep`).

    Attributes:
        teacher: the teacher model; mean_teacher: its `MeanTeacher`; mix_iterator: the stream of
        images to mix; depth_mix: DepthMix (modality 2 is read as depth), not ClassMix. Plus those
        of `Trainer`.
    """

    SECTION = "semi_supervised"
    SEEDED_CHOICES = "the labeled and mix streams' order and augmentation and each step's jitter, blur and masks"

    def __init__(self, config: Any, **kwargs: Any):
        refuse_pretraining(config)  # before the checks below, which a depth run's config may fail
        if config.semi_supervised is None:
            raise ConfigError("is missing; SemiSupervisedTrainer needs it", key="semi_supervised",
                              source=config.where("semi_supervised"), missing=True)
        if config.unlabeled_data is None:
            raise ConfigError("is missing; semi_supervised training needs it",
                              key="unlabeled_data", source=config.where("unlabeled_data"), missing=True)
        self.semi = config.semi_supervised
        # The mix stream's images: the model's, and depth (modality 2) for DepthMix in any case
        # (before: ClassMix too refused RGB-only records, "DepthMix ... need the depth image").
        self.depth_mix = self.semi.method == "depthmix"
        self.mix_modalities = max(config.record_modalities, 2 if self.depth_mix else 1)
        if self.depth_mix:
            # The mix batch draws from both (before: only unlabeled_data was checked, and labeled
            # records with a photo as modality 2 were mixed by its "depth").
            for key in ("train_data", "unlabeled_data"):
                check_depth_colouring(list_record_files(getattr(config, key)), self.semi.depth_encoding,
                                      key=f"{key} (DepthMix)",
                                      fix="set semi_supervised.depth_encoding, or use method: classmix")
        super().__init__(config, **kwargs)
        if self.resumed_from is None:
            self.mean_teacher.copy()

    def _method_text(self) -> str:
        subset = f" (the records {self.config.labeled_subset} lists)" if self.config.labeled_subset else ""
        # DepthMix names its depth colouring: a reversed one stays on the map and is not caught.
        depth = f", depth read as {self.semi.depth_encoding}" if self.semi.method == "depthmix" else ""
        return (f"; semi-supervised ({self.semi.method}, mean teacher{depth}): labels of train_data{subset}, images "
                f"of unlabeled_data {', '.join(self.config.unlabeled_data)}")

    def record_sets(self) -> list[training.RecordSet]:
        """`train_data` and `unlabeled_data`, as the supervised and the mix streams read them.

        With a `labeled_subset`, the other records of `train_data` need no label.
        """
        modalities = self.mix_modalities
        return [training.RecordSet("train_data", self.config.labeled_subset is None, modalities),
                training.RecordSet("unlabeled_data", False, modalities)]

    def _build_extras(self) -> dict[str, Any]:
        config = self.config
        self._labeled = read_labeled_subset(config.labeled_subset, config.train_data) if config.labeled_subset else None
        # Shuffled afresh on a resume that cannot take up the stream's position, as the labeled
        # stream is (before: the mix batches of the run's first steps again).
        self.mix_dataset = self._distributed_stream("mix_data", self.stream_seed_offset)
        self.mix_iterator = iter(self.mix_dataset)
        with self.strategy.scope():
            # The teacher runs without dropout (its one stochastic layer); with batch-norm
            # statistics of its own batches (`teacher_batch_norm: batch`, released) or with moving
            # statistics that then follow the student's.
            self.teacher = self._new_model(dataclasses.replace(config, dropout_keep_prob=1.0))
            if self.strategy.num_replicas_in_sync > 1:
                synchronize_batch_norms(self.teacher)  # as the student's: one mix batch, one set
            self.mean_teacher = MeanTeacher(
                self.model, self.teacher, decay=self.semi.ema_decay, every=self.semi.ema_every,
                include_statistics=self.semi.teacher_batch_norm == "moving")
        return dict(self.mean_teacher.tracked())

    def _input_streams(self) -> dict[str, tuple[str, str]]:
        return {**super()._input_streams(), "mix_data": ("mix_dataset", "mix_iterator")}

    def _distributed_stream(self, key: str, seed_offset: int) -> Any:
        if key != "mix_data":
            return super()._distributed_stream(key, seed_offset)
        config = self.config
        seed = self.run_seed + 104729 + seed_offset

        def mix_stream(context: tf.distribute.InputContext) -> tf.data.Dataset:
            per_replica = context.get_per_replica_batch_size(config.batch_size)
            if per_replica < 2:
                # Each replica mixes its own batch: one image would be pasted onto itself.
                raise ConfigError(f"{config.batch_size} gives each of the {context.num_replicas_in_sync} replicas "
                                  f"{per_replica} image to mix; semi_supervised mixes each image with another of its "
                                  "replica's batch: give 2 or more per replica", key="batch_size",
                                  source=config.where("batch_size"))
            return build_mix_dataset(
                config.train_data, config.unlabeled_data, labeled=self._labeled,
                height=config.height, width=config.width,
                batch_size=per_replica,
                num_classes=config.num_classes, augmentation=config.augmentation,
                seed=seed + 7919 * context.input_pipeline_id,
                modality2_interpolation=config.interpolations,
                modalities=self.mix_modalities, depth=self.depth_mix,
            )

        return self.strategy.distribute_datasets_from_function(mix_stream)

    def _make_train_function(self) -> Any:
        self._note_no_xla("semi-supervised training")
        config, model, teacher, optimizer, strategy = (
            self.config, self.model, self.teacher, self.optimizer, self.strategy)
        semi, mean_teacher = self.semi, self.mean_teacher
        replicas = strategy.num_replicas_in_sync
        aux_weights = tuple(config.aux_loss_weights)
        num_classes = config.num_classes
        # Batch statistics as released (`self.ema_model.train()`); the teacher has no dropout.
        teacher_training = semi.teacher_batch_norm == "batch"
        decayed = decayed_weights(model)

        def mixed_batch(mix_inputs, mix_labels, has_label, valid):
            probs = teacher(self._model_inputs(mix_inputs), training=teacher_training, return_all=False)
            probs = tf.stop_gradient(tf.cast(probs, tf.float32))
            probs = teacher_targets(probs, mix_labels, has_label, valid, use_ground_truth=semi.use_ground_truth)
            # Image k is pasted over image k - 1 (mod B): each image is once "i", once "j".
            other = lambda x: tf.roll(x, shift=1, axis=0)  # noqa: E731
            if semi.method == "depthmix":
                near, valid, distance = decode_nearness(mix_inputs[1], semi.depth_encoding)  # modality 2: depth
                mask = depthmix_mask(near, valid, other(near), semi.depth_margin)
                off_map = off_map_images(distance, valid)
            else:
                off_map = None
                mask = classmix_mask(tf.argmax(probs, axis=-1), num_classes, self.step_seed(_CLASSMIX))
            # Every modality with the same mask: for depth, the nearest-surface composite.
            mixed = [mix(mask, images, other(images)) for images in mix_inputs]
            mixed_probs = mix(mask, probs, other(probs))
            # As released: one jitter and one blur decision per mixed batch (kornia 0.4's jitter),
            # on the colour image (modality 1) only.
            mixed[0] = mix_colour_jitter(mixed[0], semi.jitter, semi.jitter_probability, self.step_seed(_JITTER))
            mixed[0] = gaussian_blur(mixed[0], semi.blur_sigma, semi.blur_probability, self.step_seed(_BLUR),
                                     per_batch=True)
            pseudo = tf.argmax(mixed_probs, axis=-1, output_type=tf.int32)
            weight = confidence_weight(mixed_probs, semi.confidence)
            return tuple(mixed), pseudo, weight, mask, off_map

        def replica_step(inputs, labels, mix_inputs, mix_labels, has_label, valid):
            variables = model.trainable_variables
            labeled = supervised_pass(model, optimizer, inputs, labels, aux_weights=aux_weights,
                                      decayed=decayed, weight_decay=config.weight_decay,
                                      replicas=replicas)
            supervised, gradients = labeled.loss, labeled.gradients
            # The two passes are independent in the graph, so the executor could run their
            # forward passes side by side and hold both sets of activations. As in the released
            # code (one backward pass, then the other), the teacher and the mixed pass start only
            # once the supervised gradients exist, when that pass's activations are freed: the
            # step's peak memory is one pass's plus the gradients and the teacher.
            with tf.control_dependencies([g for g in gradients if g is not None]):
                mix_inputs = tf.nest.map_structure(tf.identity, mix_inputs)
            mixed, pseudo, weight, mask, off_map = mixed_batch(mix_inputs, mix_labels, has_label, valid)
            with tf.GradientTape() as tape:
                mixed_outputs = model(self._model_inputs(mixed), training=True, return_all=True)
                consistency = weighted_cross_entropy(pseudo, mixed_outputs["softmax"], num_classes)
                unsupervised = semi.consistency_weight * weight * consistency
                scaled = optimizer.scale_loss(unsupervised / replicas)
            gradients = add_gradients(gradients, tape.gradient(scaled, variables))
            apply_gradients(optimizer, gradients, variables, replicas)
            terms = dict(labeled.terms)
            terms["supervised"] = supervised
            terms["consistency"] = consistency
            terms["confident_fraction"] = weight
            if off_map is not None:
                terms[OFF_MAP_TERM] = off_map
            preview = {
                "predicted": preview_classes(labeled.outputs["softmax"]),
                "mixed": tf.cast(tf.clip_by_value(self._previewed_input(mixed)[:PREVIEW_IMAGES], 0, 255), tf.uint8),
                "pseudo": preview_classes(pseudo),
                "mask": tf.cast(mask[:PREVIEW_IMAGES] * 255.0, tf.uint8),
            }
            return supervised + unsupervised, terms, preview, preview_classes(labels)

        @tf.function
        def train_function(iterator):
            inputs, labels = next(iterator)
            mix_inputs, mix_labels, has_label, valid = next(self.mix_iterator)
            loss, terms, preview, truth = strategy.run(
                replica_step, args=(inputs, labels, mix_inputs, mix_labels, has_label, valid))
            mean_teacher.maybe_update()
            # The α the teacher last moved with (before: the next update's, also logged on the
            # steps of `ema_every` > 1 where the teacher did not move; helper 156).
            decay = mean_teacher.last_decay()
            self.step.assign_add(1)
            terms = {name: replica_mean(strategy, value) for name, value in terms.items()}
            terms["teacher_decay"] = decay
            return (replica_mean(strategy, loss), terms,
                    {k: first_replica(strategy, v) for k, v in preview.items()}, first_replica(strategy, truth))

        return train_function

    def _check_window(self, first: int, last: int, terms: dict[str, float]) -> dict[str, float]:
        """Warns when DepthMix read images in `first..last` whose modality 2 is not its depth colouring;
        the teacher's α is its newest update's, not the window's mean (before: 0.68 logged where
        the newest update used 0.8, with `skip_step: 4`; helper 237)."""
        terms = take_off_map_term(terms, first, last, self.semi.depth_encoding, "train_data and unlabeled_data",
                                  self._log, "DepthMix")
        if "teacher_decay" in terms:
            terms["teacher_decay"] = float(self.mean_teacher.last_decay())
        return terms

    def _write_summaries(self, step: int, loss: float, terms: dict[str, float], lr: float,
                         preview: Any = None, truth: Any = None) -> None:
        losses = {k: v for k, v in terms.items() if k not in ("confident_fraction", "teacher_decay")}
        super()._write_summaries(step, loss, losses, lr,
                                 None if preview is None else preview["predicted"], truth)
        with self.writer.as_default():
            for name in ("confident_fraction", "teacher_decay"):
                if name in terms:
                    write_scalar(f"semi_supervised/{name}", terms[name], step)
            if preview is not None:
                count = PREVIEW_IMAGES
                mixed = np.asarray(preview["mixed"])[..., ::-1]  # BGR -> RGB
                write_images("semi_supervised/mixed_images", mixed, step, max_outputs=count)
                write_images("semi_supervised/pseudo_labels", self._colours(preview["pseudo"]), step,
                             max_outputs=count)
                mask = np.repeat(np.asarray(preview["mask"])[..., None], 3, axis=-1)
                write_images("semi_supervised/mix_masks", mask, step, max_outputs=count)
        self.writer.flush()


def train(config: Any, **kwargs: Any) -> training.TrainResult:
    """Trains as `config` says with its `semi_supervised` section, resuming like `training.train`.

    Args:
        config: a training `RunConfig` with `semi_supervised` and `unlabeled_data`.
        **kwargs: passed to `SemiSupervisedTrainer`.

    Returns:
        The `TrainResult`.
    """
    return SemiSupervisedTrainer(config, **kwargs).run()

