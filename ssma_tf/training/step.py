"""One replica's share of an optimizer step, as every trainer takes it.

The supervised trainer, the semi-supervised one (`ssma_tf.semi_supervised`) and the adaptation
one (`ssma_tf.adaptation`) all take the same supervised pass on a labeled batch (the released
loss plus weight decay, its gradients), some add the gradients of a second pass on other data,
and all end the same way: sum the gradients over the replicas and apply them. Those pieces live
here, once, so that a change to the released objective or to the gradient reduction reaches
every training mode.

Every function runs inside `strategy.run` (a replica context) and inside a `tf.function`.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional, Sequence

import tensorflow as tf

from ssma_tf.losses import add_weight_decay, total_loss

# Images of each batch whose predicted masks the training step hands back for TensorBoard.
PREVIEW_IMAGES = 2


class SupervisedPass(NamedTuple):
    """What the supervised pass of one replica gives back.

    Attributes:
        data_loss: the released objective (`ssma_tf.losses.total_loss`) on the batch.
        loss: `data_loss` plus the weight decay (when there is any): what `gradients` are of.
        terms: the objective's terms by name (`weight_decay` among them when there is one).
        outputs: the model's outputs with `return_all=True` (`softmax` and the auxiliary ones).
        gradients: per trainable variable of the model, of `loss / replicas` scaled by the
            optimizer's loss scale (None for a variable the loss does not reach).
    """

    data_loss: Any
    loss: Any
    terms: dict
    outputs: dict
    gradients: list


def supervised_pass(
    model: Any,
    optimizer: Any,
    inputs: Any,
    labels: Any,
    *,
    aux_weights: Sequence[float],
    decayed: Sequence[Any],
    weight_decay: float,
    replicas: int,
    training: bool = True,
) -> SupervisedPass:
    """The released loss on a labeled batch and its gradients, on one replica.

    Each replica's loss is the mean over its own pixels; the all-reduce in `apply_gradients`
    sums the gradients, so dividing by the replicas here gives the gradient of the global mean.

    Args:
        model: AdapNet++ or SSMA (or any model with the same outputs).
        optimizer: the trainer's optimizer (its `scale_loss`: identity unless mixed float16).
        inputs, labels: the replica's batch.
        aux_weights: the weights of the auxiliary losses (`aux_loss_weights`).
        decayed: the variables under weight decay (`ssma_tf.losses.decayed_weights(model)`; SAC's
            `decayed_kernels`).
        weight_decay: the decay's scale (0: none, the released default).
        replicas: replicas in sync.
        training: the model's training flag (False keeps batch norms on their moving statistics,
            as adaptation does with frozen statistics).
    """
    with tf.GradientTape() as tape:
        outputs = model(inputs, training=training, return_all=True)
        data_loss, terms = total_loss(labels, outputs, aux_weights)
        loss = add_weight_decay(data_loss, terms, decayed, weight_decay)
        scaled = optimizer.scale_loss(loss / replicas)
    gradients = tape.gradient(scaled, model.trainable_variables)
    return SupervisedPass(data_loss, loss, terms, outputs, gradients)


def add_gradients(first: Sequence[Optional[Any]], second: Sequence[Optional[Any]]) -> list:
    """The sum of two gradient lists of the same variables; None where neither pass reaches one."""
    return [b if a is None else (a if b is None else a + b) for a, b in zip(first, second)]


def apply_gradients(optimizer: Any, gradients: Sequence[Optional[Any]], variables: Sequence[Any],
                    replicas: int) -> None:
    """Sums the replicas' gradients (when there are several), then applies them.

    The trainers' optimizers are built with `aggregate_gradients=False` so that the sum happens
    here, before a loss-scale check sees the gradients: every replica then takes the same
    finite/non-finite branch.
    """
    if replicas > 1:
        # None (a variable the loss does not reach) cannot be all-reduced: the others are, and the
        # None stays, as on one replica (before: "None values not supported" with several).
        present = [index for index, gradient in enumerate(gradients) if gradient is not None]
        summed = tf.distribute.get_replica_context().all_reduce(
            tf.distribute.ReduceOp.SUM, [gradients[index] for index in present])
        gradients = list(gradients)
        for index, gradient in zip(present, summed):
            gradients[index] = gradient
    optimizer.apply(gradients, variables)


def preview_classes(probabilities_or_ids: Any, count: int = PREVIEW_IMAGES) -> Any:
    """The class maps of the first `count` images as uint8, for the preview images.

    Args:
        probabilities_or_ids: probabilities (B, H, W, C) or class ids (B, H, W).
    """
    ids = probabilities_or_ids[:count]
    if len(ids.shape) == 4:
        ids = tf.argmax(ids, axis=-1)
    return tf.cast(ids, tf.uint8)
