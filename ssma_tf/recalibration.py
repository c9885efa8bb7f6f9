"""Batch-norm statistics recomputed with the final weights ("precise BN").

Batch norms normalise with the batch's own moments while training and with moving averages
(`moving ← m·moving + (1 − m)·batch`, m = 0.99 as released) at inference. Those averages mix
moments from weights of many past steps, and a short run leaves part of their initial values in
them (after s steps a fraction m^s: 13 % after 200 steps). Networks whose true variances are far
from the initial 1, such as MobileNet v2's depthwise layers trained from scratch, then normalise
wrongly at inference, layer after layer, however well they fit in training mode.

`recalibrate_batch_norm` replaces each trainable batch norm's moving mean and variance by the
plain average of the batch moments over a number of training batches, computed with the final
weights (Wu and Johnson, "Rethinking 'Batch' in BatchNorm", 2021, Section 3; the "precise BN" of
pycls and Detectron2). The network runs in training mode, as in a training step, without a
gradient, but with dropout off: each batch norm normalises with its batch's moments and sees its
input as it will at inference. With dropout on (block 4's, rate 0.7 as released) the batch norms
after it measured the variance of dropped-out features, which inference never sees: recalibrated
so, a short run's pixel accuracy fell from 50.4 to 32.6 on its own training images. Layers that
are not trainable (frozen experts) run in inference mode there and keep their statistics.

Training takes it with the config key `recalibrate_batch_norm: N` (N batches after the last step,
before the final checkpoint and export; 0, the released behaviour, skips it).
"""

from __future__ import annotations

import itertools
from typing import Any, Callable, Iterable, Optional

import keras
import numpy as np

from ssma_tf.keras_compat import walk_layers


def trainable_batch_norms(model: keras.Model) -> list[keras.layers.BatchNormalization]:
    """Every batch norm of `model` (nested models included) that trains, in a fixed order."""
    return [layer for layer in walk_layers(model)
            if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable]


def _with_labels(batch: Any, model: keras.Model) -> bool:
    """True for an (inputs, labels) pair as `build_dataset` yields it, not SSMA's two image
    batches [modality1, modality2] (a pair too, of any dtype: uint8 images are integers).

    The model's inputs decide where it has them: a network of one input takes no pair, and one of
    two takes a pair of tensors that fit its inputs (a second of one channel, a depth map, too).
    The second item is a label batch when the first is a structure of inputs (SSMA's list or
    dict), or when it does not fit the model's second input and looks like labels: rank 3
    (B, H, W), one channel, or integers (ids or one-hot). A model without known inputs (a
    subclassed one, not yet called) is judged by the batch alone: rank 3, or (B, H, W, 1) integer
    ids beside images of another channel count.
    """
    batch = _first_replica_part(batch)
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        return False
    first, second = batch
    shape = getattr(second, "shape", None)
    if shape is None:
        return False
    if isinstance(first, (tuple, list, dict)):
        return True
    try:
        specs = [tuple(spec.shape) for spec in model.inputs]
    except (AttributeError, ValueError):  # a subclassed model not yet called has none
        specs = []
    is_int = "int" in str(getattr(second, "dtype", ""))
    if len(specs) == 1:
        return True
    if len(specs) == 2:
        wanted = specs[1]
        fits = len(shape) == len(wanted) and (wanted[-1] is None or shape[-1] == wanted[-1])
        return not fits and (len(shape) == 3 or shape[-1] == 1 or is_int)
    if len(shape) == 3:
        return True
    first_shape = getattr(first, "shape", None)
    return len(shape) == 4 and shape[-1] == 1 and is_int and first_shape is not None and first_shape[-1] != 1


def _distributed(value: Any) -> bool:
    try:
        import tensorflow as tf
    except ImportError:
        return False
    return isinstance(value, tf.distribute.DistributedValues)


def _first_replica_part(batch: Any) -> Any:
    """`batch` with each distributed value replaced by its first local replica's part (under a
    strategy the values are `PerReplica`, whose shape is not the batch's; helper 269: a pair of
    inputs and labels then passed the check, and Keras refused the call with a puzzle)."""
    return keras.tree.map_structure(lambda value: value.values[0] if _distributed(value) else value, batch)


def _replica_sizes(batch: Any) -> list[int]:
    """The images of each local replica's part of a distributed batch ([] for one not distributed)."""
    parts = next((value.values for value in keras.tree.flatten(batch) if _distributed(value)), ())
    return [int(part.shape[0]) if len(part.shape) else 1 for part in parts]


def _replicas(layer: Any) -> int:
    """How many replicas hold a batch norm's statistics: those of the distribution strategy its
    variables were made under (1 outside one)."""
    value = getattr(layer.moving_mean, "value", None)
    if not _distributed(value):
        return 1
    return int(getattr(getattr(value, "distribute_strategy", None), "num_replicas_in_sync", 1))


def recalibrate_batch_norm(model: keras.Model, batches: Iterable[Any], num_batches: int,
                           call: Optional[Callable[[Any], Any]] = None,
                           log: Optional[Callable[[str], None]] = None) -> int:
    """Sets each trainable batch norm's moving statistics to their average over `num_batches`.

    Args:
        model: the network; its weights are not changed, only the moving statistics.
        batches: yields model inputs (as `model(inputs)` takes them), e.g. the training stream's
            inputs without labels. Iterated `num_batches` times at most.
        num_batches: how many batches to average over (≥ 1).
        call: runs the model in training mode on one batch (default: a `tf.function` of
            `model(inputs, training=True)`); given so that a distribution strategy can run it.
            It must trace on its first call here (a new function), since batch norms read their
            momentum when traced. Under a strategy of several replicas the batch norms are
            synchronized for these calls, so that each batch's moments are the global batch's.
        log: one line when done.

    Returns:
        The number of batches averaged over (fewer than `num_batches` if `batches` ran out, or
        if a distributed batch left a replica without images: such a batch is left out).

    Raises:
        ValueError: `num_batches` < 1, `batches` yielded nothing, or (inputs, labels) pairs.
    """
    if num_batches < 1:
        raise ValueError(f"recalibrate_batch_norm: num_batches must be at least 1, got {num_batches}")
    norms = trainable_batch_norms(model)
    if not norms:
        if log:
            log("batch-norm recalibration: the model has no trainable batch norm; nothing to do")
        return 0
    momenta = [layer.momentum for layer in norms]
    # Over every replica's part of a batch where a strategy holds the model (before: the first
    # replica's moments alone, unless the caller had synchronized the batch norms; helper 239).
    synchronized = [layer.synchronized for layer in norms]
    several = _replicas(norms[0]) > 1
    dropouts = [layer for layer in walk_layers(model) if isinstance(layer, keras.layers.Dropout)]
    rates = [layer.rate for layer in dropouts]
    if call is None:
        import tensorflow as tf

        call = tf.function(lambda inputs: model(inputs, training=True))
    means = [np.zeros(layer.moving_mean.shape, np.float64) for layer in norms]
    variances = [np.zeros(layer.moving_variance.shape, np.float64) for layer in norms]
    saved = [(layer.moving_mean.numpy(), layer.moving_variance.numpy()) for layer in norms]
    count, skipped = 0, []
    try:
        # Momentum 0 (read when `call` traces, hence a fresh function): each call leaves exactly
        # that batch's moments in the moving variables.
        for layer in norms:
            layer.momentum = 0.0
            layer.synchronized = layer.synchronized or several
        for layer in dropouts:
            layer.rate = 0.0  # read when `call` traces, as the momentum: no dropout in the statistics
        # Exactly `num_batches` taken (helper 269: one more was drawn and dropped, lost to a
        # caller who goes on with the same iterator).
        for inputs in itertools.islice(batches, num_batches):
            if count == 0 and _with_labels(inputs, model):
                raise ValueError(
                    "recalibrate_batch_norm: the batches are (inputs, labels) pairs (the second holds labels of "
                    f"shape {tuple(_first_replica_part(inputs)[1].shape)}); give the inputs alone, e.g. "
                    "dataset.map(lambda inputs, labels: inputs)")
            sizes = _replica_sizes(inputs)
            if 0 in sizes:
                # The last batch of a finite dataset, smaller than the replicas: batch norms
                # synchronized over replicas cannot take an empty part (helper 269: TensorFlow's
                # "Shape mismatch in the collective instance"). Its few images are left out.
                skipped.append(sizes)
                continue
            call(inputs)
            for index, layer in enumerate(norms):
                means[index] += np.asarray(layer.moving_mean.numpy(), np.float64)
                variances[index] += np.asarray(layer.moving_variance.numpy(), np.float64)
            count += 1
        if count == 0:
            raise ValueError("recalibrate_batch_norm: the batches gave nothing to average over")
    except BaseException:
        for layer, (mean, variance) in zip(norms, saved):
            layer.moving_mean.assign(mean)
            layer.moving_variance.assign(variance)
        raise
    finally:
        for layer, momentum, flag in zip(norms, momenta, synchronized):
            layer.momentum = momentum
            layer.synchronized = flag
        for layer, rate in zip(dropouts, rates):
            layer.rate = rate
    for layer, mean, variance in zip(norms, means, variances):
        layer.moving_mean.assign((mean / count).astype(layer.moving_mean.dtype))
        layer.moving_variance.assign((variance / count).astype(layer.moving_variance.dtype))
    if log:
        left_out = (f" ({len(skipped)} last batch{'es' if len(skipped) > 1 else ''} left out: "
                    "a replica had no image)") if skipped else ""
        log(f"batch-norm recalibration: moving statistics of {len(norms)} batch norms set to "
            f"their average over {count} training batches{left_out}")
    return count
