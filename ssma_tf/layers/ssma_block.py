"""The SSMA fusion block, Valada et al. 2019, Section 4.1."""

import numbers

import keras
import numpy as np
from keras import layers, ops

from ssma_tf import SERIALIZATION_PACKAGE
from ssma_tf.layers.conv_bn import batch_norm
from ssma_tf.layers.initializers import HeTruncatedNormal, bias_initializer


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class SSMABlock(layers.Layer):
    """Self-supervised model adaptation: gate the concatenated modalities, then project.

    For inputs [x1, x2, ..., xN] (modality 1 first; N = 2 in the released graph, any N >= 2 as
    Section 4.2 allows):
        x = concat(x1, ..., xN)
        s = sigmoid(gate_expand(relu(gate_reduce(x))))     # 3×3 convs with bias, ratio `reduction`
        out = output_bn(output_conv(x · s))  (BN only when `output_bn`)

    The latent block of the released graph projects with a 1×1 conv + BN (`conv515`); the skip
    blocks with a 3×3 conv with bias and no BN (`conv552`, `conv553`).

    Args:
        filters: output channels.
        reduction: η, the channel reduction of the gate's bottleneck (16 latent, 6 skips).
        gate_kernel_size: side of both gate convolutions (3).
        output_kernel_size: side of the output projection (1 latent, 3 skips; the paper: 3 latent).
        output_bn: projection followed by BN and without bias (latent) or with bias and no BN (skips).
        return_gate: also return the sigmoid gate s (for attention pictures).
        reduced_filters: channels of the gate's bottleneck, for a pruned block (Section 3.5);
            default the concatenated channels divided by `reduction`.
    """

    def __init__(
        self,
        filters: int,
        reduction: int = 16,
        gate_kernel_size: int = 3,
        output_kernel_size: int = 1,
        output_bn: bool = True,
        return_gate: bool = False,
        reduced_filters: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        # As the networks check theirs: NumPy's integers taken, a bool refused (before: `True` kept
        # as a reduction of 1, `np.int64(24)` refused as no positive integer; helper 225).
        sizes = {"filters": filters, "reduction": reduction, "gate_kernel_size": gate_kernel_size,
                 "output_kernel_size": output_kernel_size, "reduced_filters": reduced_filters}
        for key, value in sizes.items():
            if value is None and key == "reduced_filters":
                continue
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"SSMABlock {key} must be a positive integer, got {value!r}")
        for key, value in (("output_bn", output_bn), ("return_gate", return_gate)):
            if not isinstance(value, (bool, np.bool_)):
                raise ValueError(f"SSMABlock {key} must be True or False, got {value!r}")
        self.filters = int(filters)
        self.reduction = int(reduction)
        self.gate_kernel_size = int(gate_kernel_size)
        self.output_kernel_size = int(output_kernel_size)
        self.output_bn = bool(output_bn)
        self.return_gate = bool(return_gate)
        self.reduced_filters = None if reduced_filters is None else int(reduced_filters)
        self.gate_reduce = None  # sized in build(): the reduced width depends on the input channels

    def build(self, input_shape):
        if (not isinstance(input_shape, (list, tuple)) or len(input_shape) < 2
                or not all(isinstance(shape, (list, tuple)) for shape in input_shape)):
            raise ValueError(f"SSMABlock takes a list of two or more feature maps, got shape {input_shape!r}")
        channels = sum(int(shape[-1]) for shape in input_shape)
        if self.reduced_filters is None and channels % self.reduction:
            raise ValueError(
                f"SSMABlock: {channels} concatenated channels are not divisible by reduction={self.reduction}"
            )
        policy = self.dtype_policy
        reduced = channels // self.reduction if self.reduced_filters is None else self.reduced_filters
        self.gate_reduce = layers.Conv2D(
            reduced, self.gate_kernel_size, padding="same", activation="relu",
            kernel_initializer=HeTruncatedNormal(), bias_initializer=bias_initializer(), name="gate_reduce",
            dtype=policy,
        )
        self.gate_expand = layers.Conv2D(
            channels, self.gate_kernel_size, padding="same", activation="sigmoid",
            kernel_initializer=HeTruncatedNormal(), bias_initializer=bias_initializer(), name="gate_expand",
            dtype=policy,
        )
        self.output_conv = layers.Conv2D(
            self.filters, self.output_kernel_size, padding="same", use_bias=not self.output_bn,
            kernel_initializer=HeTruncatedNormal(), bias_initializer=bias_initializer(), name="output_conv",
            dtype=policy,
        )
        self.bn = (
            batch_norm("output_bn", dtype=policy) if self.output_bn else None
        )
        shape = tuple(input_shape[0][:-1]) + (channels,)
        self.gate_reduce.build(shape)
        self.gate_expand.build(tuple(input_shape[0][:-1]) + (reduced,))
        self.output_conv.build(shape)
        if self.bn is not None:
            self.bn.build(tuple(input_shape[0][:-1]) + (self.filters,))
        self.built = True

    def call(self, inputs, training=None):
        x = ops.concatenate(list(inputs), axis=-1)
        gate = self.gate_expand(self.gate_reduce(x))
        out = self.output_conv(x * gate)
        if self.bn is not None:
            out = self.bn(out, training=training)
        return (out, gate) if self.return_gate else out

    def compute_output_shape(self, input_shape):
        out = tuple(input_shape[0][:-1]) + (self.filters,)
        if self.return_gate:
            return out, tuple(input_shape[0][:-1]) + (sum(int(s[-1]) for s in input_shape),)
        return out

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters, reduction=self.reduction, gate_kernel_size=self.gate_kernel_size,
            output_kernel_size=self.output_kernel_size, output_bn=self.output_bn, return_gate=self.return_gate,
            reduced_filters=self.reduced_filters,
        )
        return config
