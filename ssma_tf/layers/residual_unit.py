"""Bottleneck and multiscale residual units of the AdapNet++ encoder, with the released quirks."""

import keras
from keras import layers, ops

from ssma_tf import SERIALIZATION_PACKAGE
from ssma_tf.layers.conv_bn import ConvBN, batch_norm
from ssma_tf.layers.dropout import ReplicaDropout
from ssma_tf.layers.initializers import HeTruncatedNormal
from ssma_tf.layers.multiscale_conv import MultiscaleConv2D

SHORTCUTS = ("identity", "projection", "projection_of_conv1")


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class ResidualUnit(layers.Layer):
    """A residual unit of the AdapNet++ encoder (Valada et al. 2019, Section 3.1).

    Computes, for input x:
        a = relu(preact_bn(x))               if preactivation else x
        h = conv1 CBR(1×1, filters)(a)
        h = conv2 CBR(3×3, filters, stride)(h)  — or the multiscale split kernel, then BN and ReLU
        r = conv3 plain 1×1 to out_filters(h)   (no BN, no ReLU: the next unit's pre-activation BN
                                                 normalises it)
        out = r + shortcut

    The shortcut is x itself ("identity", the raw un-normalised input), a plain 1×1 convolution of
    `a` with the unit's stride ("projection"), or — the released block-1 unit-1 quirk — a 1×1
    convolution of conv1's output ("projection_of_conv1").

    Args:
        filters: bottleneck width (conv1, conv2).
        out_filters: output channels (conv3, shortcut).
        strides: stride of conv2 and of a projection shortcut.
        preactivation: apply BN + ReLU to the input first. In the TF1 checkpoints this BN lives
            under the previous unit's `conv3/BatchNorm` scope.
        shortcut: one of "identity", "projection", "projection_of_conv1".
        dilation_rates: None for a plain 3×3 conv2, else (rate of the first half, rate of the
            second half) of a multiscale conv2.
        dropout_rate: dropout on conv3's output before the add, while training (the released graph
            uses 0.7 — keep probability 0.3 — in block 4 unit 3). It is off when the layer is not
            trainable, so that frozen experts behave as in inference.
        conv2_filters: output channels of conv2 (default `filters`); for a multiscale unit the pair
            (channels at the first rate, channels at the second), default two halves of `filters`.
        residual_indices: for a pruned unit (Section 3.5), the channels of the `out_filters`-wide
            residual that conv3 still computes, ascending; conv3 has that many filters and its
            outputs are scattered back to these indices, zeros elsewhere, before the shortcut is
            added, so the shortcut keeps its width. None: conv3 computes all `out_filters`.
    """

    def __init__(
        self,
        filters: int,
        out_filters: int,
        strides: int = 1,
        preactivation: bool = True,
        shortcut: str = "identity",
        dilation_rates=None,
        dropout_rate: float = 0.0,
        conv2_filters=None,
        residual_indices=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if shortcut not in SHORTCUTS:
            raise ValueError(f"ResidualUnit shortcut must be one of {SHORTCUTS}, got {shortcut!r}")
        if shortcut == "identity" and strides != 1:
            raise ValueError(f"ResidualUnit: an identity shortcut needs strides=1, got {strides!r}")
        if not 0.0 <= dropout_rate < 1.0:
            raise ValueError(f"ResidualUnit dropout_rate must be in [0, 1), got {dropout_rate!r}")
        if dilation_rates is not None:
            dilation_rates = tuple(dilation_rates)
            if strides != 1:
                raise ValueError("ResidualUnit: a multiscale unit must have strides=1")
        conv2_filters, residual_indices = check_unit_widths(
            filters, out_filters, dilation_rates, conv2_filters, residual_indices
        )
        self.filters = filters
        self.out_filters = out_filters
        self.conv2_filters = conv2_filters
        self.residual_indices = residual_indices
        self.strides = strides
        self.preactivation = preactivation
        self.shortcut_type = shortcut
        self.dilation_rates = dilation_rates
        self.dropout_rate = float(dropout_rate)

        policy = self.dtype_policy
        self.preact_bn = (
            batch_norm("preact_bn", dtype=policy) if preactivation else None
        )
        self.conv1 = ConvBN(filters, 1, name="conv1", dtype=policy)
        if dilation_rates is None:
            self.conv2 = ConvBN(conv2_filters, 3, strides=strides, name="conv2", dtype=policy)
            self.conv2_bn = None
        else:
            # The multiscale kernel is one variable; its BN follows the concatenation.
            self.conv2 = MultiscaleConv2D(sum(conv2_filters), dilation_rates, split=conv2_filters[0], name="conv2",
                                          dtype=policy)
            self.conv2_bn = batch_norm("conv2_bn", dtype=policy)
        self.conv3 = layers.Conv2D(
            out_filters if residual_indices is None else len(residual_indices), 1, use_bias=False, kernel_initializer=HeTruncatedNormal(), name="conv3", dtype=policy
        )
        self.shortcut = (
            None if shortcut == "identity" else layers.Conv2D(
                out_filters, 1, strides=strides, use_bias=False, kernel_initializer=HeTruncatedNormal(),
                name="shortcut", dtype=policy,
            )
        )
        # Each replica of a strategy draws masks of its own (`ssma_tf.layers.dropout`).
        self.dropout = ReplicaDropout(dropout_rate, name="dropout", dtype=policy) if dropout_rate > 0 else None

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        if self.preact_bn is not None:
            self.preact_bn.build(input_shape)
        self.conv1.build(input_shape)
        mid = input_shape[:-1] + (self.filters,)
        self.conv2.build(mid)
        mid2 = input_shape[:-1] + (self.conv2.filters,)
        if self.conv2_bn is not None:
            self.conv2_bn.build(mid2)
        self.conv3.build(mid2)
        if self.shortcut is not None:
            self.shortcut.build(mid if self.shortcut_type == "projection_of_conv1" else input_shape)
        self.built = True

    def call(self, inputs, training=None):
        a = inputs
        if self.preact_bn is not None:
            a = ops.relu(self.preact_bn(inputs, training=training))
        h1 = self.conv1(a, training=training)
        h = self.conv2(h1, training=training) if self.conv2_bn is None else ops.relu(
            self.conv2_bn(self.conv2(h1), training=training)
        )
        residual = self.conv3(h)
        if self.dropout is not None and training and self.trainable:
            residual = self.dropout(residual, training=True)
        if self.residual_indices is not None:
            residual = scatter_channels(residual, self.residual_indices, self.out_filters)
        if self.shortcut_type == "identity":
            shortcut = inputs
        elif self.shortcut_type == "projection":
            shortcut = self.shortcut(a)
        else:
            shortcut = self.shortcut(h1)
        return residual + shortcut

    def compute_output_shape(self, input_shape):
        height, width = input_shape[1], input_shape[2]
        if self.strides != 1:
            height = None if height is None else -(-height // self.strides)
            width = None if width is None else -(-width // self.strides)
        return (input_shape[0], height, width, self.out_filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters, out_filters=self.out_filters, strides=self.strides,
            preactivation=self.preactivation, shortcut=self.shortcut_type,
            dilation_rates=None if self.dilation_rates is None else list(self.dilation_rates),
            dropout_rate=self.dropout_rate,
            conv2_filters=self.conv2_filters if self.dilation_rates is None else list(self.conv2_filters),
            residual_indices=None if self.residual_indices is None else list(self.residual_indices),
        )
        return config


def check_unit_widths(filters, out_filters, dilation_rates, conv2_filters, residual_indices) -> tuple:
    """Validates the widths of a residual unit; returns (conv2_filters, residual_indices) resolved.

    Raises:
        ValueError: naming the bad argument and value.
    """
    for key, value in (("filters", filters), ("out_filters", out_filters)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"ResidualUnit {key} must be a positive integer, got {value!r}")
    if dilation_rates is None:
        conv2_filters = filters if conv2_filters is None else conv2_filters
        if not isinstance(conv2_filters, int) or conv2_filters < 1:
            raise ValueError(f"ResidualUnit conv2_filters must be a positive integer, got {conv2_filters!r}")
    else:
        if conv2_filters is None:
            if filters % 2:
                raise ValueError(f"ResidualUnit: a multiscale unit needs even filters, got {filters!r}")
            conv2_filters = (filters // 2, filters // 2)
        try:
            pair = tuple(conv2_filters)
        except TypeError:
            pair = ()
        if len(pair) != 2 or any(not isinstance(n, int) or n < 0 for n in pair) or sum(pair) < 1:
            raise ValueError(
                "ResidualUnit conv2_filters of a multiscale unit must be two channel counts (first rate, "
                f"second rate), not both 0, got {conv2_filters!r}"
            )
        conv2_filters = pair
    if residual_indices is not None:
        indices = tuple(residual_indices)
        if (not indices or any(not isinstance(i, int) or not 0 <= i < out_filters for i in indices)
                or list(indices) != sorted(set(indices))):
            raise ValueError(
                f"ResidualUnit residual_indices must be ascending distinct channels in [0, {out_filters}), "
                f"at least one, got {residual_indices!r}"
            )
        residual_indices = None if len(indices) == out_filters else indices
    return conv2_filters, residual_indices


def scatter_channels(x, indices, width: int):
    """`x`'s channels placed at `indices` of a `width`-channel tensor, zeros elsewhere.

    A gather from `x` with one zero channel appended: every output channel not in `indices` reads
    that zero channel. Cheaper than a scatter, and exact.
    """
    position = {index: k for k, index in enumerate(indices)}
    source = [position.get(channel, len(indices)) for channel in range(width)]
    padded = ops.concatenate([x, ops.zeros_like(x[..., :1])], axis=-1)
    return ops.take(padded, ops.convert_to_tensor(source, dtype="int32"), axis=-1)
