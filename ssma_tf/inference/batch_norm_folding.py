"""Batch-norm folding: each batch norm that directly follows a convolution becomes part of it.

With s = gamma / sqrt(moving_variance + epsilon), a bias-free convolution followed by a batch norm
in inference mode equals the convolution with its kernel scaled by s per output channel, plus the
bias `beta - moving_mean * s`. TensorFlow fuses that bias add (and the ReLU after it) into the
convolution, so the separate multiply and add passes over every feature map disappear; the
probabilities change by float32 rounding only (a few 1e-5 at most). Folding works on a copy
(`ssma_tf.inference.rewrites.copy_for_inference`) and serves the compiled predict function and
the SavedModel export alike. A folded model needs the TensorFlow backend (the folded layer adds a
`tf.nn.bias_add`, which TensorFlow fuses into the convolution).
"""

from __future__ import annotations

from typing import Any, List, Tuple

import keras
import numpy as np
from keras import layers

from ssma_tf.inference.rewrites import copy_for_inference
from ssma_tf.keras_compat import graph_consumer_count, graph_producers, swap_class, walk_layers
from ssma_tf.layers import ConvBN
from ssma_tf.layers.batch_norm import BatchNorm
from ssma_tf.layers.residual_unit import ResidualUnit
from ssma_tf.layers.ssma_block import SSMABlock


class FoldingError(RuntimeError):
    """A batch norm cannot be folded (its convolution has a bias, or it lacks gamma or beta)."""


def _add_beta(layer: layers.BatchNormalization, inputs):
    """A folded batch norm's computation: its `beta` added as a bias."""
    # TensorFlow is imported when a folded model runs, not with this module, so that the
    # inference package imports on other backends (`optimize_for_inference` without folding).
    import tensorflow as tf

    # BiasAdd (not a broadcast add), so that TensorFlow fuses it into the convolution.
    return tf.nn.bias_add(inputs, tf.cast(layer.beta, inputs.dtype))


class _FoldedBatchNorm(BatchNorm):
    """A batch norm whose scale now lives in the preceding convolution: it adds `beta` only.

    After folding, `beta` holds `beta - moving_mean * gamma / sqrt(moving_variance + epsilon)`;
    gamma and the moving statistics are left in place but unused. Inference only.
    """

    def call(self, inputs, training=None, mask=None):
        return _add_beta(self, inputs)


class _FoldedKerasBatchNorm(layers.BatchNormalization):
    """`_FoldedBatchNorm` for Keras' own batch norm (the MobileNet v2 backbone's)."""

    def call(self, inputs, training=None, mask=None):
        return _add_beta(self, inputs)


# The convolutions of a functional graph (Keras' MobileNet v2) a batch norm folds into.
_GRAPH_CONVOLUTIONS = (layers.Conv2D, layers.DepthwiseConv2D)


def _foldable_pairs(model: keras.Model, graphs: bool = True) -> List[Tuple[Any, layers.BatchNormalization, Any]]:
    """(convolution, the batch norm right after it, the kernel's output axis: None for a
    depthwise kernel) of every such pair.

    Only batch norms whose input is exactly a bias-free convolution's output fold: the input
    batch norm (before `conv1`, where zero padding would see different values) and the
    pre-activation and block-output norms (after an addition) stay as they are.
    """
    pairs = []
    for layer in walk_layers(model):
        if isinstance(layer, ConvBN):
            # A transposed convolution's kernel is [kh, kw, out, in].
            pairs.append((layer.conv, layer.bn, -2 if layer.transposed else -1))
        elif isinstance(layer, ResidualUnit) and layer.conv2_bn is not None:
            # The multiscale kernel's output axis is the order of the concatenated halves.
            pairs.append((layer.conv2, layer.conv2_bn, -1))
        elif isinstance(layer, SSMABlock) and layer.bn is not None:
            pairs.append((layer.output_conv, layer.bn, -1))
    for conv, bn, _ in pairs:
        if getattr(conv, "use_bias", False) or not (bn.center and bn.scale):
            raise FoldingError(f"cannot fold {bn.name}: unexpected bias in {conv.name} or missing gamma/beta")
    return pairs + (_graph_pairs(model) if graphs else [])


def _graph_pairs(model: keras.Model) -> List[Tuple[Any, layers.BatchNormalization, int]]:
    """The pairs of a functional graph inside `model` (Keras' MobileNet v2 backbone): a Keras
    batch norm whose only input is a bias-free convolution that nothing else reads, and whose
    output is no model's output. The others (shared, biased, or a tapped convolution) stay."""
    outputs = set()
    for graph in (model, *walk_layers(model)):
        if isinstance(graph, keras.Model):
            try:
                outputs.update(id(tensor) for tensor in keras.tree.flatten(graph.outputs or []))
            except (AttributeError, ValueError):  # a subclassed model has no graph outputs
                pass
    pairs = []
    for bn in walk_layers(model):
        if type(bn) is not layers.BatchNormalization or not (bn.center and bn.scale):
            continue
        producers = graph_producers(bn)
        if producers is None or len(producers) != 1:
            continue
        (conv,) = producers
        if (not isinstance(conv, _GRAPH_CONVOLUTIONS) or conv.use_bias or graph_consumer_count(conv) != 1
                or graph_producers(conv) is None or id(conv.output) in outputs):
            continue
        # A depthwise kernel is [kh, kw, in, multiplier], output channel c * multiplier + m.
        pairs.append((conv, bn, None if isinstance(conv, layers.DepthwiseConv2D) else -1))
    return pairs


def fold_batch_norms(model: keras.Model, dtype: str = "float32",
                     dense_residuals: bool = True, graphs: bool = True) -> Tuple[keras.Model, int]:
    """Folds every batch norm that follows a convolution into it, on a copy of the model.

    With s = gamma / sqrt(moving_variance + epsilon), conv then BN equals a convolution with kernel
    `kernel * s` (per output channel) plus the bias `beta - moving_mean * s`. The arithmetic is
    done in float64 and rounded once to float32.

    Args:
        model: an `AdapNetPP` or `SSMA` (left unchanged).
        dtype: the copy's dtype policy (see `ssma_tf.inference.rewrites.copy_for_inference`);
            the folded weights stay float32.
        dense_residuals: see `copy_for_inference`.
        graphs: also fold the Keras batch norms of functional graphs inside the model (the
            MobileNet v2 backbone's 52); False folds the project's own layers only, as before
            2026-12-04 (`bench/backbones.py --folding` compares the two).

    Returns:
        (the folded copy, for inference and export only; the number of batch norms folded).
    """
    folded = copy_for_inference(model, dtype, dense_residuals)
    pairs = _foldable_pairs(folded, graphs)
    for conv, bn, axis in pairs:
        fold_pair(conv, bn, axis)
    return folded, len(pairs)


def fold_pair(conv: Any, bn: layers.BatchNormalization, axis: Any) -> None:
    """Folds `bn` into the convolution `conv` before it, in place (see `fold_batch_norms`).

    Args:
        conv: a built, bias-free convolution whose output only `bn` reads.
        bn: the built batch norm after it; it becomes a folded batch norm (adds its new `beta`).
        axis: the kernel's output-channel axis (-1; -2 for a transposed convolution), or None for
            a depthwise kernel [kh, kw, in, multiplier] (output channel c * multiplier + m).
    """
    gamma, beta, mean, variance = (
        np.asarray(keras.ops.convert_to_numpy(v), np.float64)
        for v in (bn.gamma, bn.beta, bn.moving_mean, bn.moving_variance)
    )
    scale = gamma / np.sqrt(variance + bn.epsilon)
    kernel = np.asarray(keras.ops.convert_to_numpy(conv.kernel), np.float64)
    if axis is None:  # depthwise: the scale of channel c * multiplier + m at [..., c, m]
        scaled = kernel * scale.reshape(1, 1, *kernel.shape[2:])
    else:
        shape = [1] * kernel.ndim
        shape[axis] = -1
        scaled = kernel * scale.reshape(shape)
    conv.kernel.assign(scaled.astype(np.float32))
    bn.beta.assign((beta - mean * scale).astype(np.float32))
    # The layer keeps its place in the graph and its variables; only its computation changes.
    swap_class(bn, _FoldedBatchNorm if isinstance(bn, BatchNorm) else _FoldedKerasBatchNorm)
