"""Bilinear upsampling by an integer factor that also works when height and width are unknown."""

import keras
from keras import layers, ops

from ssma_tf import SERIALIZATION_PACKAGE


def _linear_along(x, axis: int, factor: int):
    """Half-pixel-centre linear interpolation of `x` along `axis`, `factor` times as many samples."""
    size = ops.shape(x)[axis]
    positions = (ops.cast(ops.arange(size * factor), "float32") + 0.5) / factor - 0.5
    positions = ops.clip(positions, 0.0, ops.cast(size - 1, "float32"))
    lower = ops.floor(positions)
    weight = ops.cast(positions - lower, x.dtype)
    lower = ops.cast(lower, "int32")
    upper = ops.minimum(lower + 1, size - 1)
    shape = [1, 1, 1, 1]
    shape[axis] = -1
    weight = ops.reshape(weight, shape)
    return ops.take(x, lower, axis=axis) * (1 - weight) + ops.take(x, upper, axis=axis) * weight


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class BilinearUpsampling(layers.Layer):
    """Upsamples (B, H, W, C) bilinearly to (B, factor·H, factor·W, C), half-pixel centres.

    The same numbers as `keras.ops.image.resize(x, (factor·H, factor·W))` (TF2 bilinear without
    antialiasing), written with gathers so that it also traces with unknown H and W (that op needs
    a static size). Used by the auxiliary heads, whose H/4 and H/8 predictions are compared with
    full-size labels (not TF1's legacy corner-aligned resize: these heads only matter for the
    training loss).

    Args:
        factor: integer upsampling factor.
    """

    def __init__(self, factor: int, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(factor, int) or factor < 1:
            raise ValueError(f"BilinearUpsampling factor must be a positive integer, got {factor!r}")
        self.factor = factor

    def call(self, inputs):
        return _linear_along(_linear_along(inputs, 1, self.factor), 2, self.factor)

    def compute_output_shape(self, input_shape):
        scale = lambda size: None if size is None else size * self.factor  # noqa: E731
        return (input_shape[0], scale(input_shape[1]), scale(input_shape[2]), input_shape[3])

    def get_config(self):
        config = super().get_config()
        config.update(factor=self.factor)
        return config
