"""Ranking feature maps for pruning: the first-order Taylor criterion and the ℓ1-norm baseline.

Taylor (Molchanov et al. 2017, as the paper's Section 3.5 uses it): for feature map k of a layer
with M positions, Θ(z_k) = |(1/M) Σ_m ∂C/∂z_{k,m} · z_{k,m}|, per image, averaged over the images
of the ranking batches; then rescaled per layer by the ℓ2 norm, Θ̂ = Θ / sqrt(Σ_j Θ(z_j)²), so
that layers compare. The sum Σ_m ∂C/∂z_m · z_m is the derivative of the loss with respect to a
multiplier g_k = 1 on the map, which is how it is computed here: each layer's output is multiplied
by a per-image, per-channel gate of ones while the loss is differentiated.

ℓ1 (Li et al. 2017): the sum of the absolute weights of each filter, rescaled the same way.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence

import numpy as np
import tensorflow as tf
from keras import ops

from ssma_tf.pruning.channels import FeatureMaps, PruningError

METHODS = ("taylor", "l1", "oracle")
# The loss scale the Taylor ranking starts from under mixed float16 (Keras' initial loss scale).
INITIAL_LOSS_SCALE = 2.0 ** 15


def _computes_in_float16(model: Any) -> bool:
    policy = getattr(model, "dtype_policy", None)
    return getattr(policy, "compute_dtype", None) == "float16"


def l2_rescaled(scores: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each layer's scores divided by their ℓ2 norm (a layer of zeros stays zeros).

    Raises:
        PruningError: a score is not finite (before: a layer with a NaN became all zeros, the
            lowest rank, and lost nearly every channel first; one with inf sorted as NaN).
    """
    bad = [name for name, values in scores.items() if not np.isfinite(values).all()]
    if bad:
        raise PruningError(f"the scores of {_some(bad)} are not finite: no channel can be ranked by them")
    out = {}
    for name, values in scores.items():
        norm = float(np.sqrt(np.sum(np.square(values, dtype=np.float64))))
        out[name] = values / norm if norm > 0 else np.zeros_like(values)
    return out


def _some(names: Sequence[str]) -> str:
    """The first three of `names` and how many there are, for a message."""
    more = f", ... ({len(names)} feature maps)" if len(names) > 3 else ""
    return ", ".join(names[:3]) + more


def l1_scores(maps: Sequence[FeatureMaps]) -> dict[str, np.ndarray]:
    """The ℓ1 norm of every filter of every feature map (not rescaled)."""
    scores = {}
    for entry in maps:
        total = np.zeros(entry.width, np.float64)
        for piece in entry.kernels:
            values = np.abs(np.asarray(ops.convert_to_numpy(piece.variable), np.float64))
            axes = tuple(a for a in range(values.ndim) if a != piece.axis)
            total += values.sum(axis=axes)[piece.offset:piece.offset + entry.width]
        scores[entry.name] = total
    return scores


class _Gates:
    """Multiplies each probed layer's output by a gate while installed (see the module docstring)."""

    def __init__(self, maps: Sequence[FeatureMaps]):
        self.maps = list(maps)
        self.values: dict[str, Any] = {}
        self.positions: dict[str, int] = {}

    def __enter__(self):
        for entry in self.maps:
            layer = entry.probe
            original = layer.call

            def gated(*args, _original=original, _name=entry.name, **kwargs):
                out = _original(*args, **kwargs)
                gate = self.values.get(_name)
                if gate is None:
                    return out
                self.positions[_name] = int(out.shape[1]) * int(out.shape[2])
                return out * ops.cast(gate, out.dtype)

            layer.call = gated
        return self

    def __exit__(self, *exc):
        for entry in self.maps:
            # The instance attribute hid the class's `call`; removing it restores the layer.
            del entry.probe.call
        self.values.clear()
        return False


def taylor_scores(
    model: Any,
    batches: Iterable[tuple[Any, Any]],
    loss_fn: Callable[[Any, Any], Any],
    maps: Sequence[FeatureMaps],
) -> dict[str, np.ndarray]:
    """Θ of every feature map in `maps`, accumulated over `batches` (not rescaled).

    Args:
        model: an `AdapNetPP` or `SSMA`; it runs in inference mode (batch-norm statistics and
            dropout untouched), returning every output for the loss.
        batches: `(inputs, labels)` pairs, e.g. from the training pipeline.
        loss_fn: `loss_fn(labels, outputs)` → scalar training loss C (`ReleasedLoss`).
        maps: the feature maps to rank (`ssma_tf.pruning.channels.feature_maps`).

    Returns:
        name → Θ per channel, the mean over images of |(1/M) Σ_m ∂C_b/∂z_m · z_m| with C_b the
        image's own loss (the batch loss times the batch size).

    Raises:
        ValueError: `batches` is empty.
        PruningError: a batch's scores are not finite (at loss scale 1 under float16), naming the
            batch and the feature maps.
    """
    sums = {entry.name: np.zeros(entry.width, np.float64) for entry in maps}
    images = 0
    # Under mixed float16 the backward pass runs in float16, where the per-pixel derivatives of a
    # loss averaged over a full-size batch (about 1e-7) underflow: the loss is scaled up as in
    # training, by the largest power of two (from 2^15 down) that overflows nothing. Before, the
    # early layers' scores came out up to 45 % off their float32 values (192x384 images).
    scale = INITIAL_LOSS_SCALE if _computes_in_float16(model) else 1.0
    with _Gates(maps) as gates:
        for batch, (inputs, labels) in enumerate(batches):
            size = int((inputs[0] if isinstance(inputs, (list, tuple)) else inputs).shape[0])
            variables = {entry.name: tf.ones((size, 1, 1, entry.width)) for entry in maps}
            while True:
                with tf.GradientTape() as tape:
                    for value in variables.values():
                        tape.watch(value)
                    gates.values.update(variables)
                    outputs = model(inputs, training=False, return_all=True)
                    loss = loss_fn(labels, outputs)
                    scaled = loss * ops.cast(scale, loss.dtype) if scale != 1.0 else loss
                grads = {name: None if grad is None else np.asarray(grad, np.float64) / scale
                         for name, grad in tape.gradient(scaled, variables).items()}
                if scale == 1.0 or all(g is None or np.isfinite(g).all() for g in grads.values()):
                    break
                scale /= 2.0
            bad = [name for name, grad in grads.items() if grad is not None and not np.isfinite(grad).all()]
            if bad:
                # Before: passed on, and the NaN layers ranked lowest (`l2_rescaled`).
                float16 = " in float16 even unscaled (rank in float32: mixed_precision off)" if scale == 1.0 and \
                    _computes_in_float16(model) else ""
                raise PruningError(
                    f"the Taylor scores of ranking batch {batch + 1} are not finite{float16} in {_some(bad)}; "
                    f"its loss is {float(loss):g}: a diverged network, or inputs it cannot take, ranks nothing")
            for name, grad in grads.items():
                if grad is None:  # a map the loss does not reach (cannot happen in these models)
                    continue
                # The loss averages over the batch: times `size` gives each image's own loss C_b.
                per_image = np.abs(grad.reshape(size, -1)) * size / gates.positions[name]
                sums[name] += per_image.sum(axis=0)
            images += size
    if not images:
        raise ValueError("taylor_scores: no batch to rank on")
    return {name: total / images for name, total in sums.items()}


def rank(method: str, model: Any, maps: Sequence[FeatureMaps], batches=None, loss_fn=None) -> dict[str, np.ndarray]:
    """The l2-rescaled scores of `maps` by `method` ("taylor" and "oracle" alike; "l1")."""
    if method not in METHODS:
        raise ValueError(f"pruning method must be one of {METHODS}, got {method!r}")
    if method == "l1":
        return l2_rescaled(l1_scores(maps))
    return l2_rescaled(taylor_scores(model, batches, loss_fn, maps))
