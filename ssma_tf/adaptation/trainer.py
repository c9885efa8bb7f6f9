"""Domain adaptation by self-supervised augmentation consistency, and its ABN baseline.

Araslanov and Roth, "Self-supervised Augmentation Consistency for Adapting Semantic
Segmentation" (CVPR 2021), as released (`docs/adaptation.md` says where this port differs):

- `method: abn`, the baseline: ordinary training on the source (the released protocol), and each
  step a batch of target images also passes through the network in training mode without
  gradients, so that the batch-norm statistics see the target domain.
- `method: sac`, from the baseline (`initialize`): every batch norm keeps its statistics
  (γ and β are still trained: the network runs with `training=False`, which also turns dropout
  off). Each step takes a source batch with the released loss, and `target_groups` target
  images as groups of `views` views (`ssma_tf.adaptation.views`). The teacher (an average of the
  student, updated every `ema_every` steps with its batch-norm statistics, `ssma_tf.mean_teacher`)
  predicts each clean view; the predictions are averaged across the group in the base frame and
  taken back into each view; pseudo-labels keep the pixels above their class-wise adaptive
  threshold (`ssma_tf.adaptation.pseudo_labels`). The student sees the views with photometric
  noise (blur, colour jitter, greyscale) on the colour-like modalities, and is trained on the
  focal, confidence-weighted cross-entropy to the pseudo-labels, weighted `target_weight`. SGD at
  a constant rate with weight decay, as released.

For SSMA every modality of a view shares its geometry; the photometric noise goes to modality 1
only by default (`photometric`). The student is what is checkpointed as the model, exported and
evaluated; the teacher and the class prior are checkpointed beside it, so a run resumes exactly.
"""

from __future__ import annotations

from typing import Any, Optional

import keras
import numpy as np
import tensorflow as tf

from ssma_tf import training
from ssma_tf.adaptation.importance import acceptance, read_weights
from ssma_tf.adaptation.pseudo_labels import IGNORE, ClassPrior, consistency_loss, judge_pseudo_labels, pseudo_labels
from ssma_tf.adaptation.target import build_target_dataset, check_target_files
from ssma_tf.adaptation.views import pool_views
from ssma_tf.constants import VOID_ID
from ssma_tf.config import ConfigError
from ssma_tf.data import schema
from ssma_tf.data.augment import further_modalities
from ssma_tf.data.datasets import class_names_or_generic
from ssma_tf.data.pipeline import check_first_record, config_dataset, list_record_files
from ssma_tf.data.records import RecordError, whole_records
from ssma_tf.distribute import first_replica, replica_mean, replica_sum
from ssma_tf.evaluation import Evaluator
from ssma_tf.keras_compat import ExternalGradientAggregation
from ssma_tf.losses import decayed_kernels
from ssma_tf.mean_teacher import MeanTeacher
from ssma_tf.metrics import ConfusionMatrix
from ssma_tf.photometric import colour_jitter, gaussian_blur, greyscale
from ssma_tf.summaries import write_images, write_scalar
from ssma_tf.training.step import add_gradients, apply_gradients, preview_classes, supervised_pass

# Distinct stateless streams of one step.
_JITTER, _BLUR, _GREY = 1, 2, 3
PREVIEW_VIEWS = 4


def check_target_records(config: Any) -> list[str]:
    """The files of `config.target_data`, checked by `check_target_files` (naming the key)."""
    files = list_record_files(config.target_data)
    check_target_files(files, config)
    return files


class _SGD(ExternalGradientAggregation, keras.optimizers.SGD):
    """Keras' SGD that can leave the all-reduce of the gradients to the training step."""


class _Adam(ExternalGradientAggregation, keras.optimizers.Adam):
    """Keras' Adam that can leave the all-reduce of the gradients to the training step."""


def make_adaptation_optimizer(adapt: Any, mixed_precision: Optional[str] = None) -> keras.optimizers.Optimizer:
    """The optimizer of `method: sac`: SGD with momentum (released) or Adam, at a constant rate.

    The SAC step all-reduces its gradients itself (before the loss-scale check, like the
    supervised step), so the optimizer applies them as given: Keras' own all-reduce would sum
    them a second time and step `replicas` times too far under `MirroredStrategy`. Wrapped in a
    `LossScaleOptimizer` under `mixed_float16`, as the supervised optimizer is.

    Args:
        adapt: the `adaptation` section (`optimizer`, `learning_rate`, `momentum`).
        mixed_precision: the run's mixed-precision policy, or None.

    Returns:
        The optimizer (not built yet; build it in the strategy's scope).
    """
    if adapt.optimizer == "sgd":
        optimizer = _SGD(learning_rate=adapt.learning_rate, momentum=adapt.momentum, name="sgd")
    elif adapt.optimizer == "adam":
        optimizer = _Adam(learning_rate=adapt.learning_rate, name="adam")
    else:
        raise ValueError(f"adaptation optimizer must be 'sgd' or 'adam', got {adapt.optimizer!r}")
    optimizer.aggregate_gradients = False
    if mixed_precision == "mixed_float16":
        return keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


class AdaptationTrainer(training.Trainer):
    """A `Trainer` for the `adaptation` section (module docstring).

    Args:
        config: a training `RunConfig` with `adaptation` and `target_data`.
        **kwargs: as for `Trainer`.

    Attributes:
        teacher, mean_teacher, prior (`sac` only): the teacher model, its average and the running
        class means; target_iterator: the target stream. Plus those of `Trainer`.
    """

    SECTION = "adaptation"
    SEEDED_CHOICES = (
        "the source and target streams' order and augmentation and each step's blur, jitter and greyscale")

    def __init__(self, config: Any, **kwargs: Any):
        if config.adaptation is None:
            raise ConfigError("is missing; AdaptationTrainer needs it", key="adaptation",
                              source=config.where("adaptation"), missing=True)
        if config.target_data is None:
            raise ConfigError("is missing; adaptation needs it", key="target_data",
                              source=config.where("target_data"), missing=True)
        self.adapt = config.adaptation
        self.sac = self.adapt.method == "sac"
        self._target_files = check_target_records(config)
        for path in list_record_files(config.target_val_data) if config.target_val_data else ():
            # Its labels are read by the evaluation: a file without them, or cut inside a record's
            # header, is named now, not after the model was built and `initialize` loaded (helpers
            # 199, 261), with its key, as target_data's problems are.
            try:
                check_first_record(path, config.record_modalities, labeled=True)
                whole_records(path)
            except RecordError as error:
                raise RecordError(f"key 'target_val_data': {error.detail}", path, error.index) from None
        self._acceptance = None
        if config.importance_weights:
            self._acceptance = acceptance(read_weights(config.importance_weights, self._target_files))
        super().__init__(config, **kwargs)
        if self.sac:
            self._encoder_factor = 1.0  # SAC's optimizer has one rate (the config warns of encoder_lr_multiplier)
        if self.sac and self.resumed_from is None:
            if config.initialize is None:
                self._log("warning: adaptation starts from random weights; the method expects a "
                          "trained baseline as `initialize` (e.g. one trained with method: abn)")
            self.mean_teacher.copy()
        self._val_dataset = self._target_val_dataset()
        self._evaluator: Optional[Evaluator] = None

    # --- Setup ----------------------------------------------------------------------------------

    def _make_optimizer(self) -> keras.optimizers.Optimizer:
        if not self.sac:
            return super()._make_optimizer()
        return make_adaptation_optimizer(self.adapt, self.config.mixed_precision)

    def learning_rate(self, step: Optional[int] = None) -> float:
        if self.sac:
            return float(self.adapt.learning_rate)
        return super().learning_rate(step)

    def _follows_schedule(self) -> bool:
        return not self.sac  # SAC trains at adaptation.learning_rate, constant

    def _restore(self) -> Optional[str]:
        prefix = super()._restore()
        if self.sac and prefix is not None:
            # Keras keeps a constant rate as an optimizer variable, which the checkpoint restored:
            # the run went on at the rate it last started with while the log showed the config's
            # (helper 345). The config's, as the resume's note says.
            optimizer = getattr(self.optimizer, "inner_optimizer", self.optimizer)
            optimizer.learning_rate = float(self.adapt.learning_rate)
        return prefix

    def _build_extras(self) -> dict[str, Any]:
        config, adapt = self.config, self.adapt
        # Shuffled afresh on a resume that cannot take up the stream's position, as the source
        # stream is (before: the target images, views and draws of the run's first steps again).
        self.target_dataset = self._distributed_stream("target_data", self.stream_seed_offset)
        self.target_iterator = iter(self.target_dataset)
        extras: dict[str, Any] = {}
        if self.sac:
            with self.strategy.scope():
                self.teacher = self._new_model(config)
                self.mean_teacher = MeanTeacher(
                    self.model, self.teacher, decay=adapt.ema_decay, every=adapt.ema_every,
                    include_statistics=True, warmup=False)
                self.prior = ClassPrior(config.num_classes, adapt.prior_momentum, adapt.threshold_beta)
                # What the log shows of the pseudo-labels since the last summary (not checkpointed).
                self.monitor = {
                    "class_coverage": tf.Variable(tf.zeros([config.num_classes]), trainable=False),
                    "steps": tf.Variable(0.0, trainable=False),
                    "judged": tf.Variable(0.0, trainable=False),
                    "correct": tf.Variable(0.0, trainable=False),
                }
            extras.update(self.mean_teacher.tracked())
            extras.update(self.prior.tracked())
        return extras

    def _input_streams(self) -> dict[str, tuple[str, str]]:
        return {**super()._input_streams(), "target_data": ("target_dataset", "target_iterator")}

    def _distributed_stream(self, key: str, seed_offset: int) -> Any:
        if key != "target_data":
            return super()._distributed_stream(key, seed_offset)
        config, adapt = self.config, self.adapt
        modalities = config.record_modalities
        seed = self.run_seed + 15485863 + seed_offset
        groups = adapt.target_groups if self.sac else config.batch_size
        views = adapt.views if self.sac else 1

        def target_stream(context: tf.distribute.InputContext) -> tf.data.Dataset:
            replicas = context.num_replicas_in_sync
            if groups % replicas:
                raise ConfigError(f"({groups} target images a step) must be a multiple of the "
                                  f"{replicas} replicas", key="adaptation.target_groups",
                                  source=config.where("adaptation"))
            return build_target_dataset(
                config.target_data, modalities=modalities, height=config.height,
                width=config.width, groups=groups // replicas, views=views,
                seed=seed + 7919 * context.input_pipeline_id,
                scale_range=adapt.scale_range if self.sac else (1.0, 1.0),
                zoom_range=adapt.zoom_range, flip_probability=adapt.flip_probability,
                modality2_interpolation=config.interpolations,
                acceptance=self._acceptance)

        return self.strategy.distribute_datasets_from_function(target_stream)

    def _method_text(self) -> str:
        config = self.config
        # Both methods draw their target images by the weights (before: ABN's line did not say so).
        sampling = f", drawn by {config.importance_weights}" if config.importance_weights else ", drawn uniformly"
        # SAC's optimizer and constant rate are the section's; ABN trains as the config says.
        # (Before: "SGD" whatever adaptation.optimizer said.)
        name = {"sgd": "SGD", "adam": "Adam"}.get(self.adapt.optimizer, self.adapt.optimizer)
        rate = (f", {name} at a constant {self.adapt.learning_rate:g} (adaptation.optimizer, "
                "adaptation.learning_rate)" if self.sac else "")
        return f"; adaptation ({self.adapt.method}) to target_data {', '.join(config.target_data)}{sampling}{rate}"

    def record_sets(self) -> list[training.RecordSet]:
        """The source records, the target images (labels not read) and `target_val_data`."""
        modalities = self.config.record_modalities
        sets = super().record_sets() + [training.RecordSet("target_data", False, modalities)]
        if self.config.target_val_data and self.chief:
            sets.append(training.RecordSet("target_val_data", True, modalities, evaluated=True))
        return sets

    def _target_val_dataset(self) -> Optional[tf.data.Dataset]:
        config = self.config
        if not config.target_val_data or not self.chief:
            return None
        return config_dataset(config, config.target_val_data, training=False, batch_size=config.batch_size)

    # --- The step -------------------------------------------------------------------------------

    def _make_train_function(self) -> Any:
        if self.sac:
            self._note_no_xla("SAC adaptation")
            return self._make_sac_function()
        return self._make_abn_function()

    def _make_abn_function(self) -> Any:
        supervised = super()._make_train_function()
        model, strategy = self.model, self.strategy

        def target_pass(target):
            # Training mode without a tape: only the batch-norm statistics move.
            model(self._model_inputs(_view_modalities(target)), training=True)
            return tf.constant(0.0)

        @tf.function
        def train_function(iterator):
            result = supervised(iterator)
            strategy.run(target_pass, args=(next(self.target_iterator),))
            return result

        return train_function

    def _make_sac_function(self) -> Any:
        config, model, teacher, optimizer, strategy = (
            self.config, self.model, self.teacher, self.optimizer, self.strategy)
        adapt, prior, mean_teacher = self.adapt, self.prior, self.mean_teacher
        replicas = strategy.num_replicas_in_sync
        aux_weights = tuple(config.aux_loss_weights)
        views = adapt.views
        decayed = decayed_kernels(model)

        def noisy(images):
            images = gaussian_blur(images, adapt.blur_radius, 1.0, self.step_seed(_BLUR))
            # The hue's strength is at most the jitter's, as released (`min(0.1, RND_JITTER)`): before,
            # `jitter: 0` still turned the hue of half the views (helper 199).
            images = colour_jitter(images, adapt.jitter, adapt.jitter_probability,
                                   self.step_seed(_JITTER), hue=min(adapt.jitter_hue, adapt.jitter))
            images = greyscale(images, adapt.greyscale_probability, self.step_seed(_GREY))
            return tf.clip_by_value(images, 0.0, 255.0)

        def replica_step(inputs, labels, target):
            clean = _view_modalities(target)
            to_base = _merge_views(target["to_base"])
            # The teacher on the clean views; the class prior follows its raw predictions.
            teacher_probs = tf.cast(teacher(self._model_inputs(clean), training=False), tf.float32)
            batch_mean = tf.reduce_mean(teacher_probs, axis=[0, 1, 2])
            if replicas > 1:
                batch_mean = tf.distribute.get_replica_context().all_reduce(
                    tf.distribute.ReduceOp.MEAN, batch_mean)
            means = prior.update_from_mean(batch_mean)
            pooled, coverage = pool_views(teacher_probs, to_base, views)
            pseudo, confidence = pseudo_labels(
                pooled, means, upper=adapt.threshold_upper, lower=adapt.threshold_lower,
                beta=adapt.threshold_beta)
            pseudo = tf.stop_gradient(pseudo)
            confidence = tf.stop_gradient(confidence)
            # Noise on the colour image (modality 1), and with `photometric: all` on every modality.
            student = [noisy(clean[0]) if adapt.photometric != "none" else clean[0]]
            student += [noisy(images) if adapt.photometric == "all" else images for images in clean[1:]]

            variables = model.trainable_variables
            # Two tapes: the peak memory stays that of one forward and backward pass. Batch norms
            # keep their frozen statistics in both (training=False).
            labeled = supervised_pass(model, optimizer, inputs, labels, aux_weights=aux_weights,
                                      decayed=decayed, weight_decay=adapt.weight_decay,
                                      replicas=replicas, training=False)
            source = labeled.data_loss
            with tf.GradientTape() as tape:
                predicted = model(self._model_inputs(student), training=False)
                target_loss = consistency_loss(predicted, pseudo, confidence, means, adapt.focal_power)
                scaled = optimizer.scale_loss(adapt.target_weight * target_loss / replicas)
            gradients = add_gradients(labeled.gradients, tape.gradient(scaled, variables))
            apply_gradients(optimizer, gradients, variables, replicas)

            terms = dict(labeled.terms)
            terms["source"] = source
            terms["target"] = target_loss
            kept = tf.cast(pseudo >= 0, tf.float32)
            terms["pseudo_label_coverage"] = tf.reduce_mean(kept)
            # Pseudo-label accuracy on the labeled target images (monitoring only).
            truth = _merge_views(target["labels"])
            has_label = tf.repeat(target["has_label"], views)[:, None, None]
            judged, correct = judge_pseudo_labels(pseudo, truth, has_label, config.num_classes)
            stats = {
                "class_coverage": tf.reduce_mean(
                    tf.one_hot(tf.where(pseudo >= 0, pseudo, config.num_classes), config.num_classes + 1),
                    axis=[0, 1, 2])[:config.num_classes],
                "judged": tf.reduce_sum(tf.cast(judged, tf.float32)),
                "correct": tf.reduce_sum(tf.cast(correct, tf.float32)),
            }
            preview = {
                "view": tf.cast(tf.clip_by_value(self._previewed_input(student)[:PREVIEW_VIEWS], 0, 255), tf.uint8),
                "pseudo": tf.cast(tf.where(pseudo[:PREVIEW_VIEWS] >= 0, pseudo[:PREVIEW_VIEWS], 0), tf.uint8),
                "ignored": tf.cast(pseudo[:PREVIEW_VIEWS] == IGNORE, tf.uint8),
                "coverage": coverage[:PREVIEW_VIEWS],
            }
            preview["predicted"] = preview_classes(labeled.outputs["softmax"])
            # The loss optimised, weight decay included as in the other trainers (its term was
            # logged beside a loss that left it out).
            return (labeled.loss + adapt.target_weight * target_loss, terms, stats, preview,
                    preview_classes(labels))

        @tf.function
        def train_function(iterator):
            inputs, labels = next(iterator)
            target = next(self.target_iterator)
            loss, terms, stats, preview, truth = strategy.run(replica_step, args=(inputs, labels, target))
            mean_teacher.maybe_update()
            self.step.assign_add(1)
            monitor = self.monitor
            monitor["class_coverage"].assign_add(replica_mean(strategy, stats["class_coverage"]))
            monitor["steps"].assign_add(1.0)
            monitor["judged"].assign_add(replica_sum(strategy, stats["judged"]))
            monitor["correct"].assign_add(replica_sum(strategy, stats["correct"]))
            terms = {name: replica_mean(strategy, value) for name, value in terms.items()}
            return (replica_mean(strategy, loss), terms,
                    {k: first_replica(strategy, v) for k, v in preview.items()}, first_replica(strategy, truth))

        return train_function

    # --- Logs -----------------------------------------------------------------------------------

    def _write_summaries(self, step: int, loss: float, terms: dict[str, Any], lr: float,
                         preview: Any = None, truth: Any = None) -> None:
        terms = dict(terms)
        coverage = terms.pop("pseudo_label_coverage", None)
        predicted = preview["predicted"] if isinstance(preview, dict) else preview
        super()._write_summaries(step, loss, terms, lr, predicted, truth)
        if not self.sac:
            return
        names = self._class_names()
        monitor = {name: variable.numpy() for name, variable in self.monitor.items()}
        for variable in self.monitor.values():
            variable.assign(tf.zeros_like(variable))
        steps = max(float(monitor["steps"]), 1.0)
        with self.writer.as_default():
            if coverage is not None:
                write_scalar("adaptation/pseudo_label_coverage", coverage, step)
            # Not void's: never a pseudo-label, its coverage is always 0 and its m_c is not used.
            for class_id, (name, value) in enumerate(zip(names, monitor["class_coverage"] / steps)):
                if class_id != VOID_ID:
                    write_scalar(f"adaptation/class_coverage/{name}", float(value), step)
            for class_id, (name, value) in enumerate(zip(names, self.prior.means.numpy())):
                if class_id != VOID_ID:
                    write_scalar(f"adaptation/class_prior/{name}", float(value), step)
            if monitor["judged"] > 0:
                write_scalar("adaptation/pseudo_label_accuracy",
                             float(monitor["correct"] / monitor["judged"]), step)
            if isinstance(preview, dict) and "view" in preview:
                write_images("adaptation/student_views", np.asarray(preview["view"])[..., ::-1], step,
                             max_outputs=PREVIEW_VIEWS)
                colours = self._colours(preview["pseudo"])  # a new array: fancy indexing copies
                colours[np.asarray(preview["ignored"]) > 0] = 0
                write_images("adaptation/pseudo_labels", colours, step, max_outputs=PREVIEW_VIEWS)
        self.writer.flush()

    def _class_names(self) -> list[str]:
        return class_names_or_generic(self.config.dataset, self.config.palette, self.config.num_classes)

    def save(self) -> Optional[str]:
        path = super().save()
        if self._val_dataset is not None:
            self._log_target_miou()
        return path

    def _log_target_miou(self) -> None:
        """Evaluates the student on `target_val_data` (monitoring) and logs its mIoU."""
        if self._evaluator is None:
            self._evaluator = Evaluator(self.model, self.config.num_classes,
                                        self._val_dataset.element_spec, optimize=False,
                                        modality2_interpolation=self.config.interpolations,
                                        input_modality=self.config.input_modality or "modality1")
        self._evaluator.reset()
        confusion: ConfusionMatrix = self._evaluator.run(self._val_dataset)
        miou = confusion.miou()
        step = int(self.step.numpy())
        self._log(f"target validation mIoU {miou:.2f} at step {step}")

        def write() -> None:
            with self.writer.as_default():
                write_scalar("adaptation/target_val_mIoU", miou, step)
            self.writer.flush()

        self.write_summaries_or_warn(write)


def _view_modalities(target: dict[str, Any]) -> list[Any]:
    """The views of every modality of a target batch, (G·T, H, W, 3) each, modality 1 first."""
    return [_merge_views(target[key]) for key in [schema.MODALITY1] + further_modalities(target)]


def _merge_views(tensor: Any) -> Any:
    """(G, T, ...) -> (G·T, ...), group-major."""
    shape = tf.shape(tensor)
    return tf.reshape(tensor, tf.concat([[shape[0] * shape[1]], shape[2:]], 0))


def train(config: Any, **kwargs: Any) -> training.TrainResult:
    """Trains as `config` says with its `adaptation` section, resuming like `training.train`."""
    return AdaptationTrainer(config, **kwargs).run()
