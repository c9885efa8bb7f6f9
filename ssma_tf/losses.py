"""The released training loss of AdapNet++ and SSMA (docs/architecture.md, "Loss, schedule and evaluation").

Per batch: `L(p) = mean over all B·H·W pixels of -Σ_c w_c · y_c · log(p_c + 1e-10)`, with
the void class 0 weighted 0 and every other class 1. Void pixels contribute 0 to the sum but stay in
the denominator of the mean, exactly as released; this is not the usual "mean over labelled
pixels", and it makes the loss (and its gradients) smaller on images with much void.

The total adds the multiresolution-supervision terms of the auxiliary heads:
`L(softmax) + 0.6·L(aux on up2, conv911) + 0.5·L(aux on up1, conv912)`.

Everything is computed in float32, also when the model runs in mixed precision: `log(p + 1e-10)`
needs float32's range (1e-10 is 0 in float16) and the mean over ~300k pixels per image loses
digits in half precision.

Under `tf.distribute`, each replica computes the mean over its own pixels; the training loop divides
by the number of replicas, which gives the mean over the global batch.
"""

from __future__ import annotations

import numbers
from typing import Any, Mapping, Optional, Sequence, Union

import keras
from keras import ops

from ssma_tf import SERIALIZATION_PACKAGE
from ssma_tf.constants import AUX_LOSS_WEIGHTS
from ssma_tf.keras_compat import scale_loss_for_replicas
from ssma_tf.labels import as_read

# The constant the released graph adds inside the log, so that p = 0 gives a large finite loss.
LOG_EPSILON = 1e-10
# Output names of the models (the final probabilities and the two auxiliary heads' probabilities).
MAIN_OUTPUT = "softmax"
AUX_UP2_OUTPUT = "aux_up2"  # conv911 on up2 (1/4 resolution), weight 0.6 as released
AUX_UP1_OUTPUT = "aux_up1"  # conv912 on up1 (1/8 resolution), weight 0.5 as released

Tensor = Any


def void_class_weights(num_classes: int) -> list[float]:
    """The released class weights: 0 for the void class 0, 1 for every other class."""
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    return [0.0] + [1.0] * (num_classes - 1)


def weighted_cross_entropy(
    labels: Tensor,
    probs: Tensor,
    num_classes: int,
    class_weights: Optional[Sequence[float]] = None,
) -> Tensor:
    """The released weighted cross-entropy, averaged over all pixels (void ones included).

    Args:
        labels: sparse class ids (B, H, W) or (B, H, W, 1) (any integer or float dtype holding
            whole numbers; floats that are not, such as labels resized bilinearly, are refused by
            `ssma_tf.labels.as_read`), or one-hot labels (B, H, W, C). Sparse ids outside [0, num_classes) count as
            void: they add 0 to the sum and 1 to the pixel count, as ids >= C did in the original pipeline
            (which one-hot encoded them to all zeros).
        probs: softmax probabilities (B, H, W, C), any float dtype.
        num_classes: C.
        class_weights: one weight per class; default `void_class_weights(C)` (0 for void, 1
            otherwise).

    Returns:
        A float32 scalar: mean over B·H·W of `-Σ_c w_c · y_c · log(p_c + 1e-10)`.

    Raises:
        ValueError: on shapes that do not fit together or a wrong number of class weights, or on
            floating sparse labels that are not whole ids (in a `tf.function`: an InvalidArgumentError
            when the step runs; unchecked under XLA and JAX, see `ssma_tf.labels`).
    """
    targets = _Targets(labels, tuple(probs.shape), num_classes, class_weights)
    return targets.loss(probs)


class _Targets:
    """The label side of the loss, built once per batch and shared by the main and auxiliary terms.

    Sparse ids never become a float one-hot tensor. With one-hot `y`, the released per-pixel sum
    `Σ_c w_c · y_c · log(p_c + ε)` has one non-zero term, the label's, and every other term is an
    exact zero; so the loss is computed as `w_l · log(p_l + ε)` with `p_l = Σ_c [c = l] p_c` (a select
    and a sum of exact zeros) and `w_l` likewise. The arithmetic is that of the one-hot product
    (`tests/test_losses.py`: the same values and gradients, but for a last-bit difference where
    the vectorised reciprocal of the log's gradient rounds an element differently), but the step
    keeps a boolean (B, H, W, C) mask and (B, H, W) tensors instead of float32 (B, H, W, C)
    one-hot, weighted one-hot, `p + ε` and `log(p + ε)` tensors: at 384×768 with 12 classes and
    2 images each of those is 27 MiB, all alive at the end of the forward pass, where a training
    step's memory peaks. A gather would give the same numbers but its gradient is a scatter-add
    over all B·H·W·C probabilities, which the backward pass waits for (about 5 % of the AdapNet++
    step, bench/profile_train_step.py); the select's gradient is a select.

    Dense labels (rank 4: one-hot or soft, as the released pipeline fed them) keep the product
    `Σ_c w_c · y_c · log(p_c + ε)` itself.
    """

    def __init__(self, labels: Tensor, probs_shape: tuple, num_classes: int,
                 class_weights: Optional[Sequence[float]] = None) -> None:
        weights = void_class_weights(num_classes) if class_weights is None else list(class_weights)
        if len(weights) != num_classes:
            raise ValueError(f"expected {num_classes} class weights, got {len(weights)}")
        if len(probs_shape) < 2 or (probs_shape[-1] is not None and probs_shape[-1] != num_classes):
            raise ValueError(
                f"probs must end in a class axis of size num_classes={num_classes}, "
                f"got shape {probs_shape}"
            )
        weights = ops.convert_to_tensor(weights, dtype="float32")
        labels = as_read(labels, len(probs_shape), num_classes)
        rank = len(labels.shape)
        self.rank = len(probs_shape)
        _check_label_shape(tuple(labels.shape), probs_shape, num_classes)
        if rank == len(probs_shape):
            self.weighted = weights * ops.cast(labels, "float32")  # w_c · y_c, as released
            self.mask = None
        elif rank == len(probs_shape) - 1:
            # Ids outside [0, C) match no class: weight 0 and p_l = 0 (void, as the released
            # one-hot encoding of ids >= C gave all-zero rows).
            ids = ops.expand_dims(ops.cast(labels, "int32"), -1)
            self.mask = ops.equal(ids, ops.arange(num_classes, dtype="int32"))
            self.label_weight = ops.sum(ops.where(self.mask, weights, 0.0), axis=-1)
        else:
            raise ValueError(
                f"labels must be sparse ids of rank {len(probs_shape) - 1} or one-hot of rank "
                f"{len(probs_shape)}, got shape {tuple(labels.shape)} for probs {probs_shape}"
            )

    def loss(self, probs: Tensor) -> Tensor:
        """Mean over all pixels of the weighted cross-entropy of `probs` (float32 scalar)."""
        if len(probs.shape) != self.rank:
            raise ValueError(f"probs of rank {len(probs.shape)} for targets of rank {self.rank}")
        probs = ops.cast(probs, "float32")
        if self.mask is None:
            per_pixel = -ops.sum(self.weighted * ops.log(probs + LOG_EPSILON), axis=-1)
        else:
            label_prob = ops.sum(ops.where(self.mask, probs, 0.0), axis=-1)
            per_pixel = -(self.label_weight * ops.log(label_prob + LOG_EPSILON))
        return ops.mean(per_pixel)


def _check_label_shape(labels: tuple, probs: tuple, num_classes: int) -> None:
    """ValueError where the static shapes say that labels and predictions do not fit: one-hot
    labels of another class count, or another batch or image size (before: TensorFlow's
    broadcasting error from inside the loss, or none where one side broadcast)."""
    if len(labels) == len(probs) and labels[-1] is not None and labels[-1] != num_classes:
        raise ValueError(f"one-hot labels of shape {labels} have {labels[-1]} classes on their last axis, but the "
                         f"predictions {probs} have {num_classes}")
    if len(labels) in (len(probs), len(probs) - 1):
        for axis, (mine, theirs) in enumerate(zip(labels, probs[:-1])):
            if mine is not None and theirs is not None and mine != theirs:
                what = "batch size" if axis == 0 else "size"
                raise ValueError(f"labels of shape {labels} and predictions of shape {probs} differ in {what} "
                                 f"(axis {axis}: {mine} and {theirs}); resize the labels to the predictions' "
                                 "size (nearest neighbour)")


def total_loss(
    labels: Tensor,
    outputs: Union[Mapping[str, Tensor], Tensor],
    aux_weights: Sequence[float] = AUX_LOSS_WEIGHTS,
    class_weights: Optional[Sequence[float]] = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """The released objective: main loss plus the weighted auxiliary losses.

    Args:
        labels: sparse ids (B, H, W) or (B, H, W, 1), or one-hot (B, H, W, C), at the input resolution.
        outputs: the model's outputs: a mapping with `softmax` (B, H, W, C) and optionally
            `aux_up2` (conv911 on up2) and `aux_up1` (conv912 on up1), both already resized to the
            input size and passed through softmax; or the `softmax` tensor alone.
        aux_weights: weights of (`aux_up2`, `aux_up1`); released (0.6, 0.5).
        class_weights: as for `weighted_cross_entropy`.

    Returns:
        `(total, terms)`: the float32 scalar objective and a dict of the unweighted float32 terms
        for logging: `main`, and `aux_up2`/`aux_up1` when those outputs are present.

    Raises:
        ValueError: if `outputs` has no `softmax`, an auxiliary output's static shape differs from
            it, or `aux_weights` is not two numbers.
    """
    if len(aux_weights) != 2:
        raise ValueError(f"aux_weights must be two numbers (up2, up1), got {aux_weights!r}")
    if not isinstance(outputs, Mapping):
        outputs = {MAIN_OUTPUT: outputs}
    if MAIN_OUTPUT not in outputs:
        raise ValueError(f"outputs must hold '{MAIN_OUTPUT}', got keys {sorted(outputs)}")
    num_classes = outputs[MAIN_OUTPUT].shape[-1]
    if num_classes is None:
        raise ValueError("the class axis of the outputs must have a static size")

    # The label side once for the three terms (see `_Targets`).
    targets = _Targets(labels, tuple(outputs[MAIN_OUTPUT].shape), num_classes, class_weights)
    terms = {"main": targets.loss(outputs[MAIN_OUTPUT])}
    total = terms["main"]
    for name, weight in zip((AUX_UP2_OUTPUT, AUX_UP1_OUTPUT), aux_weights):
        if outputs.get(name) is None:
            continue
        main, aux = tuple(outputs[MAIN_OUTPUT].shape), tuple(outputs[name].shape)
        if len(aux) != len(main) or any(a is not None and m is not None and a != m for a, m in zip(aux, main)):
            # Before: TensorFlow's broadcasting error from inside the loss, or none where the
            # auxiliary output broadcast (a wrong loss, without a word; helper 203).
            raise ValueError(f"the auxiliary output '{name}' has shape {aux}, but '{MAIN_OUTPUT}' has {main}: "
                             "resize the auxiliary heads to the input size (as the models do), with one "
                             "channel per class")
        terms[name] = targets.loss(outputs[name])
        total = total + float(weight) * terms[name]
    return total, terms


def l2_penalty(weights: Sequence[keras.Variable], scale: float) -> Tensor:
    """`scale · Σ ‖w‖² / 2` over `weights`: the TF1 `l2_regularizer` declared by the release.

    The released graph attached `l2_regularizer(5e-4)` to every convolution kernel and batch-norm
    gamma and beta (`network_base.py`; not to biases) but never added it to the objective; a
    config's `weight_decay` turns it on over those (`decayed_weights`), 0 keeps the released
    behaviour.

    Args:
        weights: the variables to penalise (`decayed_weights`, or SAC's `decayed_kernels`).
        scale: the regulariser's factor.

    Returns:
        A float32 scalar.
    """
    total = ops.convert_to_tensor(0.0, dtype="float32")
    for w in weights:
        total = total + ops.sum(ops.square(ops.cast(w, "float32")))
    return scale * 0.5 * total


def decayed_kernels(model: keras.Model) -> list:
    """The variables SAC's `adaptation.weight_decay` penalises: the model's trainable kernels
    (depthwise ones included). The released da-sac also decays batch-norm weights (its parameter
    groups: every learnable module's `weight`); the documented runs decayed the kernels only."""
    return [v for v in model.trainable_variables if v.name == "kernel"]


def decayed_weights(model: keras.Model) -> list:
    """The variables a config's `weight_decay` penalises: those the released graph declared its
    L2 regulariser on, the trainable kernels and batch-norm gammas and betas (not biases).

    Before 2026-12-04 the kernels only: 159 of SSMA stage 2's 457 trainable variables, where the
    released declaration covers 449 (helper 127)."""
    return [v for v in model.trainable_variables if v.name in ("kernel", "gamma", "beta")]


def add_weight_decay(loss: Tensor, terms: dict, kernels: Sequence[keras.Variable], scale: float) -> Tensor:
    """`loss + l2_penalty(kernels, scale)`, the penalty also logged as `terms["weight_decay"]`.

    SGD's coupled decay λ·w is the gradient of (λ/2)·Σw², which `l2_penalty` is. A scale of 0
    (the released default) returns `loss` and leaves `terms` alone.
    """
    if scale <= 0:
        return loss
    terms["weight_decay"] = l2_penalty(kernels, scale)
    return loss + terms["weight_decay"]


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class ReleasedLoss(keras.losses.Loss):
    """The released objective as a Keras loss, for `model.compile(loss=ReleasedLoss())`.

    With the dict of outputs that `AdapNetPP` and `SSMA` return while training (`softmax`,
    `aux_up2`, `aux_up1`) it is `total_loss`: the weighted cross-entropy of the softmax plus the
    auxiliary terms weighted `aux_weights`. With the softmax alone (what the models return in
    inference mode, so in `model.evaluate`) it is the main term only. Labels are sparse ids
    (B, H, W) or (B, H, W, 1), or one-hot (B, H, W, C), ids outside [0, C) void, as in
    `weighted_cross_entropy`.

    The value is already the released mean over all pixels of the batch, so `sample_weight` is
    not supported (it would weight a scalar). Under a `tf.distribute` strategy it is divided by
    the replicas in sync, as Keras' own losses are, so that `fit` and `evaluate` report and
    differentiate the same loss on any number of replicas.

    Args:
        aux_weights: weights of (`aux_up2`, `aux_up1`); released (0.6, 0.5).
        class_weights: one weight per class; default 0 for void and 1 otherwise.
        name: the loss's name.
        **kwargs: passed to `keras.losses.Loss`; a `dtype` other than float32 is refused (the
            released arithmetic is float32, under mixed precision too; before, float16 rounded
            the log-probabilities: 23.03 for 20.63).
    """

    # Tells the models (ssma_tf.models.segmenter) that this loss reads the auxiliary heads.
    reads_all_outputs = True

    def __init__(
        self,
        aux_weights: Sequence[float] = AUX_LOSS_WEIGHTS,
        class_weights: Optional[Sequence[float]] = None,
        name: str = "released_loss",
        **kwargs: Any,
    ):
        if isinstance(aux_weights, numbers.Number):
            # `ReleasedLoss(3)`, the class count as the metrics take it, failed with "object of type
            # 'int' has no len()" (helper 302).
            raise ValueError(f"aux_weights must be two numbers (up2, up1), got {aux_weights!r}: ReleasedLoss "
                             "takes no num_classes (it reads C from the outputs)")
        if (isinstance(aux_weights, (str, bytes)) or not hasattr(aux_weights, "__len__") or len(aux_weights) != 2
                or not all(isinstance(w, numbers.Real) for w in aux_weights)):
            raise ValueError(f"aux_weights must be two numbers (up2, up1), got {aux_weights!r}")
        dtype = kwargs.get("dtype")
        if dtype is not None and keras.dtype_policies.get(dtype).compute_dtype != "float32":
            raise ValueError(f"ReleasedLoss computes in float32 (the released arithmetic, under mixed precision "
                             f"too), got dtype={dtype!r}: leave dtype out")
        super().__init__(name=name, **kwargs)
        self.aux_weights = tuple(float(w) for w in aux_weights)
        self.class_weights = None if class_weights is None else [float(w) for w in class_weights]

    def __call__(self, y_true: Tensor, y_pred: Any, sample_weight: Any = None) -> Tensor:
        if sample_weight is not None:
            raise ValueError("ReleasedLoss is a mean over all pixels and takes no sample_weight")
        # Under a distribution strategy each replica's share, as Keras' own losses give it (Keras
        # leaves a scalar unscaled; the loss tracker and the gradients then counted it N times).
        return scale_loss_for_replicas(super().__call__(y_true, y_pred))

    def call(self, y_true: Tensor, y_pred: Any) -> Tensor:
        loss, _ = total_loss(y_true, y_pred, self.aux_weights, self.class_weights)
        return loss

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"aux_weights": list(self.aux_weights), "class_weights": self.class_weights})
        return config
