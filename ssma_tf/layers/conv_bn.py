"""Convolution → batch norm (→ ReLU), the building brick of the released graph."""

import keras
from keras import layers, ops

from ssma_tf import SERIALIZATION_PACKAGE
from ssma_tf.layers.batch_norm import BatchNorm
from ssma_tf.layers.initializers import HeTruncatedNormal

# Batch-norm settings of the released graph (its own `network_base.batch_norm`: `tf.nn.moments`,
# the biased batch variance in the moving average, decay 0.99, epsilon 1e-5). Keras' default
# epsilon of 1e-3 would shift every activation.
BN_EPSILON = 1e-5
BN_MOMENTUM = 0.99


def batch_norm(name: str, dtype=None) -> BatchNorm:
    """A batch norm with the released graph's epsilon and moving-average decay."""
    return BatchNorm(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name, dtype=dtype)


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class ConvBN(layers.Layer):
    """k×k convolution (no bias) → batch norm → optional ReLU: the released `CBR`/`CB` units.

    Args:
        filters: output channels.
        kernel_size: square kernel side.
        strides: convolution stride.
        dilation_rate: atrous rate (1 for a plain convolution).
        activation: "relu" for CBR, None for CB.
        transposed: a transposed convolution (kernel laid out [kh, kw, out, in], TF `SAME`, output
            exactly `strides` times the input), as the decoder's upsampling layers.
    """

    def __init__(
        self,
        filters: int,
        kernel_size: int = 1,
        strides: int = 1,
        dilation_rate: int = 1,
        activation: str | None = "relu",
        transposed: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for key, value in (("filters", filters), ("kernel_size", kernel_size), ("strides", strides),
                           ("dilation_rate", dilation_rate)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"ConvBN {key} must be a positive integer, got {value!r}")
        if activation not in (None, "relu"):
            raise ValueError(f"ConvBN activation must be 'relu' or None, got {activation!r}")
        if transposed and dilation_rate != 1:
            raise ValueError("ConvBN: a transposed convolution cannot be dilated")
        self.filters = filters
        self.kernel_size = kernel_size
        self.strides = strides
        self.dilation_rate = dilation_rate
        self.activation = activation
        self.transposed = transposed
        if transposed:
            self.conv = layers.Conv2DTranspose(
                filters, kernel_size, strides=strides, padding="same", use_bias=False,
                kernel_initializer=HeTruncatedNormal(transposed=True), name="conv", dtype=self.dtype_policy,
            )
        else:
            self.conv = layers.Conv2D(
                filters, kernel_size, strides=strides, dilation_rate=dilation_rate, padding="same",
                use_bias=False, kernel_initializer=HeTruncatedNormal(), name="conv", dtype=self.dtype_policy,
            )
        self.bn = batch_norm("bn", dtype=self.dtype_policy)

    def build(self, input_shape):
        self.conv.build(input_shape)
        self.bn.build(self.conv.compute_output_shape(input_shape))
        self.built = True

    def _convolve(self, inputs):
        """The convolution, skipping the taps of an atrous kernel that only ever read padding.

        With SAME padding and a dilation rate d >= the feature map's height, every off-centre
        kernel row samples outside the map for every output pixel, so only the centre row
        contributes (likewise for columns). Dropping those taps gives the same numbers and saves
        the large padded space-to-batch work TF does for atrous convolutions on small maps (eASPP
        at rates 6 and 12 on an H/16 map of a small image).
        """
        rate = self.dilation_rate
        height, width = inputs.shape[1], inputs.shape[2]
        trim_rows = height is not None and height <= rate
        trim_cols = width is not None and width <= rate
        if self.transposed or rate == 1 or self.kernel_size % 2 == 0 or not (trim_rows or trim_cols):
            return self.conv(inputs)
        kernel = ops.cast(self.conv.kernel, self.compute_dtype)
        centre = self.kernel_size // 2
        if trim_rows:
            kernel = kernel[centre:centre + 1]
        if trim_cols:
            kernel = kernel[:, centre:centre + 1]
        return ops.conv(inputs, kernel, padding="same",
                        dilation_rate=(1 if trim_rows else rate, 1 if trim_cols else rate))

    def call(self, inputs, training=None):
        x = self.bn(self._convolve(inputs), training=training)
        if self.activation == "relu":
            x = keras.ops.relu(x)
        return x

    def compute_output_shape(self, input_shape):
        return self.conv.compute_output_shape(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters, kernel_size=self.kernel_size, strides=self.strides,
            dilation_rate=self.dilation_rate, activation=self.activation, transposed=self.transposed,
        )
        return config
