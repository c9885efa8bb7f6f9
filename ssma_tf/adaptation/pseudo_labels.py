"""Pseudo-labels with class-wise adaptive thresholds, the running class prior and the focal loss.

Araslanov and Roth (CVPR 2021, Section 3.2; released `models/sac.py`):

- The running class prior m_c is a moving average of the teacher's mean probability of class c
  over each batch's views and pixels: m_c <- 0.99 m_c + 0.01 mean(P_c). A class is seeded with
  its mean in the first batch that shows it; the released code seeds every class at its first
  update only, so a class absent from the first batch averages up from 0.99 β there
  (docs/adaptation.md, "Where this port differs").
- Per view b and class c, the threshold is θ_{b,c} = max(0.2, 0.75 · peak_{b,c} · (1 − exp(−m_c/β))),
  β = 1e-3, peak_{b,c} the highest confidence among the view's pixels whose prediction is c; a
  pixel keeps its pseudo-label only if its confidence is strictly above the threshold of its
  class. Rare classes (small m_c) get lower thresholds, so they are not starved of labels.
- The loss is the cross-entropy to the pseudo-labels, weighted per pixel by the focal factor
  (1 − m_c)^3 of its pseudo-label's class and by the teacher's confidence there, averaged over
  all pixels (ignored ones count as 0). The released `_focal_ce_conf` multiplies a (B,H,W) loss
  by a (B,1,H,W) confidence, which broadcasts to (B,B,H,W) and weights each pixel by the
  batch-average confidence at its position; here each pixel gets its own confidence, as the
  paper states it.

The void class (id 0) never becomes a pseudo-label: the released segmentation loss gives it no
weight, so the networks of this project do not learn to predict it.
"""

from __future__ import annotations

from typing import Tuple

import tensorflow as tf

from ssma_tf.constants import VOID_ID
from ssma_tf.losses import LOG_EPSILON

# Released defaults (core/config.py and the training config of da-sac).
PRIOR_MOMENTUM = 0.99  # MODEL.STAT_MOMENTUM
THRESHOLD_BETA = 1e-3  # MODEL.THRESHOLD_BETA
THRESHOLD_UPPER = 0.75  # MODEL.RUN_CONF_UPPER
THRESHOLD_LOWER = 0.2  # MODEL.RUN_CONF_LOWER
FOCAL_POWER = 3  # MODEL.FOCAL_P
IGNORE = -1
# A class whose mean probability in a batch is below this is not seeded from it.
_SEED_TOLERANCE = 1e-8


class ClassPrior:
    """The running class means m_c (a checkpointable pair of variables).

    Args:
        num_classes: C.
        momentum: the moving average's momentum (0.99 as released).
        beta: β, the value unseen classes hold (the threshold discount's scale).
    """

    def __init__(self, num_classes: int, momentum: float = PRIOR_MOMENTUM, beta: float = THRESHOLD_BETA):
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
        if beta <= 0.0:
            raise ValueError(f"beta must be positive, got {beta!r}")
        self.momentum = float(momentum)
        self.beta = float(beta)
        self.means = tf.Variable(tf.fill([num_classes], self.beta), trainable=False,
                                 name="class_prior", aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        self.seen = tf.Variable(tf.zeros([num_classes], tf.bool), trainable=False,
                                name="class_prior_seen", aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)

    def tracked(self) -> dict:
        """What a `tf.train.Checkpoint` holds so that a resumed run keeps the prior."""
        return {"class_prior": self.means, "class_prior_seen": self.seen}

    def update(self, probs: tf.Tensor) -> tf.Tensor:
        """One update from probabilities (..., C); returns the new means."""
        probs = tf.cast(probs, tf.float32)
        return self.update_from_mean(tf.reduce_mean(tf.reshape(probs, [-1, tf.shape(probs)[-1]]), axis=0))

    def update_from_mean(self, batch_mean: tf.Tensor) -> tf.Tensor:
        """One update from a batch's mean probability per class (C,); returns the new means."""
        batch_mean = tf.cast(batch_mean, tf.float32)
        new = tf.logical_and(tf.logical_not(self.seen), batch_mean > _SEED_TOLERANCE)
        seeded = tf.where(new, batch_mean, self.means)
        self.seen.assign(tf.logical_or(self.seen, new))
        return self.means.assign(self.momentum * seeded + (1.0 - self.momentum) * batch_mean)


def class_thresholds(
    confidence: tf.Tensor,
    prediction: tf.Tensor,
    prior: tf.Tensor,
    *,
    upper: float = THRESHOLD_UPPER,
    lower: float = THRESHOLD_LOWER,
    beta: float = THRESHOLD_BETA,
) -> tf.Tensor:
    """θ_{b,c} = max(lower, upper · peak_{b,c} · (1 − exp(−m_c/β))), shape (B, C).

    Args:
        confidence: (B, H, W) the highest class probability per pixel.
        prediction: (B, H, W) its class.
        prior: (C,) the running class means m_c.
    """
    classes = tf.shape(prior)[0]
    one_hot = tf.one_hot(tf.cast(prediction, tf.int32), classes, dtype=tf.float32)
    peaks = tf.reduce_max(one_hot * tf.cast(confidence, tf.float32)[..., None], axis=[1, 2])
    discount = 1.0 - tf.exp(-tf.cast(prior, tf.float32) / beta)
    return tf.maximum(upper * peaks * discount[None, :], lower)


def pseudo_labels(
    probs: tf.Tensor,
    prior: tf.Tensor,
    *,
    upper: float = THRESHOLD_UPPER,
    lower: float = THRESHOLD_LOWER,
    beta: float = THRESHOLD_BETA,
) -> Tuple[tf.Tensor, tf.Tensor]:
    """Pseudo-labels of pooled teacher probabilities.

    Args:
        probs: (B, H, W, C) pooled probabilities (all zero where no view saw the point).
        prior: (C,) the running class means.

    Returns:
        `(labels, confidence)`: (B, H, W) int32 class ids with `IGNORE` (-1) where the
        confidence is not above its class threshold or the class is void (0); and (B, H, W) the
        confidence (the highest probability).
    """
    probs = tf.cast(probs, tf.float32)
    confidence = tf.reduce_max(probs, axis=-1)
    prediction = tf.argmax(probs, axis=-1, output_type=tf.int32)
    thresholds = class_thresholds(confidence, prediction, prior, upper=upper, lower=lower, beta=beta)
    own = tf.gather(thresholds, prediction, axis=1, batch_dims=1)
    keep = tf.logical_and(confidence > own, prediction != VOID_ID)
    return tf.where(keep, prediction, IGNORE), confidence


def focal_weights(prior: tf.Tensor, power: float = FOCAL_POWER) -> tf.Tensor:
    """(1 − m_c)^power per class (m_c clipped at 0, as released)."""
    return tf.pow(1.0 - tf.maximum(tf.cast(prior, tf.float32), 0.0), power)


def consistency_loss(
    student_probs: tf.Tensor,
    labels: tf.Tensor,
    confidence: tf.Tensor,
    prior: tf.Tensor,
    power: float = FOCAL_POWER,
) -> tf.Tensor:
    """mean over pixels of (1 − m_y)^power · conf · −log p_student(y); ignored pixels add 0.

    Args:
        student_probs: (B, H, W, C) the student's softmax on the noisy views.
        labels: (B, H, W) pseudo-labels (`IGNORE` where none).
        confidence: (B, H, W) the teacher's confidence, a per-pixel weight.
        prior: (C,) the running class means.
    """
    labels = tf.cast(labels, tf.int32)
    valid = labels >= 0
    safe = tf.where(valid, labels, 0)
    log_probs = tf.math.log(tf.cast(student_probs, tf.float32) + LOG_EPSILON)
    picked = tf.gather(log_probs, safe, axis=-1, batch_dims=3)
    weight = tf.gather(focal_weights(prior, power), safe) * tf.cast(confidence, tf.float32)
    per_pixel = tf.where(valid, -weight * picked, 0.0)
    return tf.reduce_mean(per_pixel)


def judge_pseudo_labels(pseudo: tf.Tensor, truth: tf.Tensor, has_label: tf.Tensor,
                        num_classes: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Where pseudo-labels can be scored against the target's labels (monitoring only), and
    where they are right.

    Args:
        pseudo: (B, H, W) pseudo-labels, negative where none is kept.
        truth: (B, H, W) the labels' ids; ids from `num_classes` up (the ignore id 255 among
            them) are void, as in training (before: scored as labels the pseudo-labels got wrong).
        has_label: broadcastable to (B, H, W): the image has a label at all.
        num_classes: C, void included.

    Returns:
        (judged, correct), both boolean (B, H, W).
    """
    is_class = tf.logical_and(truth > VOID_ID, truth < num_classes)
    judged = tf.logical_and(tf.logical_and(pseudo >= 0, is_class), has_label)
    return judged, tf.logical_and(judged, tf.equal(pseudo, truth))
