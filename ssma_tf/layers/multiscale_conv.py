"""The multiscale 3×3 convolution of AdapNet++'s multiscale residual units."""

import keras
from keras import layers, ops

from ssma_tf import SERIALIZATION_PACKAGE
from ssma_tf.layers.initializers import HeTruncatedNormal


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class MultiscaleConv2D(layers.Layer):
    """One 3×3 kernel split along its output axis into two halves with their own dilation rates.

    The released graph stores a single kernel [3, 3, c_in, filters]; the first `filters // 2` output
    channels are computed with `dilation_rates[0]`, the rest with `dilation_rates[1]`, and the two
    results are concatenated in that order (Valada et al. 2019, Section 3.1, multiscale residual
    units). Keeping one kernel is what makes the TF1 checkpoints load unchanged.

    A pruned kernel (Section 3.5) keeps `split` channels at the first rate and `filters - split`
    at the second; the released kernel splits in equal halves.

    Args:
        filters: output channels (even unless `split` is given).
        dilation_rates: (rate of the first half, rate of the second half).
        kernel_size: square kernel side.
        split: output channels at the first rate (default `filters // 2`).
    """

    def __init__(self, filters: int, dilation_rates=(1, 2), kernel_size: int = 3, split: int | None = None,
                 **kwargs):
        super().__init__(**kwargs)
        if split is None:
            if not isinstance(filters, int) or filters < 2 or filters % 2:
                raise ValueError(f"MultiscaleConv2D filters must be a positive even integer, got {filters!r}")
            split = filters // 2
        elif not isinstance(filters, int) or filters < 1 or not isinstance(split, int) or not 0 <= split <= filters:
            raise ValueError(
                f"MultiscaleConv2D needs 0 <= split <= filters (positive), got filters={filters!r}, split={split!r}"
            )
        dilation_rates = tuple(dilation_rates)
        if len(dilation_rates) != 2 or any(not isinstance(d, int) or d < 1 for d in dilation_rates):
            raise ValueError(
                f"MultiscaleConv2D dilation_rates must be two positive integers, got {dilation_rates!r}"
            )
        self.filters = filters
        self.dilation_rates = dilation_rates
        self.kernel_size = kernel_size
        self.split = split

    def build(self, input_shape):
        self.kernel = self.add_weight(
            name="kernel",
            shape=(self.kernel_size, self.kernel_size, input_shape[-1], self.filters),
            initializer=HeTruncatedNormal(),
        )
        self.built = True

    def call(self, inputs):
        half = self.split
        kernel = ops.cast(self.kernel, self.compute_dtype)
        first, second = kernel[..., :half], kernel[..., half:]
        if self.dilation_rates[0] == self.dilation_rates[1] or half in (0, self.filters):
            # Both halves share a rate (block 4 of the released graph), or pruning emptied one:
            # one convolution is the same.
            rate = self.dilation_rates[0] if half else self.dilation_rates[1]
            return ops.conv(inputs, kernel, padding="same", dilation_rate=rate)
        return ops.concatenate(
            [
                ops.conv(inputs, first, padding="same", dilation_rate=self.dilation_rates[0]),
                ops.conv(inputs, second, padding="same", dilation_rate=self.dilation_rates[1]),
            ],
            axis=-1,
        )

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.filters,)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, dilation_rates=list(self.dilation_rates),
                      kernel_size=self.kernel_size, split=self.split)
        return config
