"""TF1's legacy bilinear upsampling by an integer factor, also for unknown height and width."""

import keras
from keras import layers, ops

from ssma_tf import SERIALIZATION_PACKAGE


def _legacy_linear_along(x, axis: int, factor: int):
    """TF1 `ResizeBilinear` (no corner alignment, no half-pixel centres) along one axis, ×factor.

    Output sample `i` reads input position `i / factor`: sample `factor·j + r` is
    `x[j] + (x[j + 1] - x[j]) · r / factor`, with `x[j + 1]` clamped to the last sample. Because the
    factor is an integer this needs no gather: the `factor` phases are one broadcast against
    `r / factor`, and a reshape interleaves them (cheaper forward and backward than gathers, whose
    gradient is a scatter-add, and independent of the static size).
    """
    size = ops.shape(x)[axis]
    upper = _shift_clamped(x, axis)  # x[j + 1], the last sample repeated (the border clamp)
    phase_shape = [1] * (len(x.shape) + 1)
    phase_shape[axis + 1] = factor
    phases = ops.reshape(ops.cast(ops.arange(factor), x.dtype) / factor, phase_shape)
    # TF1's kernel computes a + (b - a)·t (not a·(1 - t) + b·t): same rounding.
    lower = ops.expand_dims(x, axis + 1)
    interleaved = lower + (ops.expand_dims(upper, axis + 1) - lower) * phases
    shape = ops.shape(x)
    new_shape = [shape[d] for d in range(len(x.shape))]
    new_shape[axis] = size * factor
    return ops.reshape(interleaved, new_shape)


def _shift_clamped(x, axis: int):
    """`x` shifted by one sample towards the start along `axis` (1 or 2), the last sample kept."""
    if axis == 1:
        return ops.concatenate([x[:, 1:], x[:, -1:]], axis=1)
    return ops.concatenate([x[:, :, 1:], x[:, :, -1:]], axis=2)


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class BilinearUpsampling(layers.Layer):
    """Upsamples (B, H, W, C) bilinearly to (B, factor·H, factor·W, C) as TF1's default resize does.

    The released graph upsamples the auxiliary heads of the multiresolution supervision
    (Section 3.3 of the paper; `conv911`, `conv912`) with `tf.image.resize_images`, whose default
    in TF1 is `ResizeBilinear(align_corners=False, half_pixel_centers=False)`: output pixel `i`
    reads input position `i / factor` and interpolates towards the next input pixel, clamping at
    the last one (ARCHITECTURE.md, "AdapNet++ decoder"). That is neither TF2's half-pixel resize
    (`keras.ops.image.resize`) nor a corner-aligned one; the auxiliary losses, and so the
    gradients of a training step, depend on which it is, so this layer reproduces it exactly.
    It is written with `keras.ops` only (a broadcast and a reshape, no static sizes), so it traces
    with unknown H and W and runs on every Keras backend.

    Args:
        factor: integer upsampling factor.
    """

    def __init__(self, factor: int, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(factor, int) or isinstance(factor, bool) or factor < 1:
            raise ValueError(f"BilinearUpsampling factor must be a positive integer, got {factor!r}")
        self.factor = factor

    def call(self, inputs):
        if self.factor == 1:
            return inputs
        # Width first, then height, in the order TF1's kernel interpolates (same rounding).
        return _legacy_linear_along(_legacy_linear_along(inputs, 2, self.factor), 1, self.factor)

    def compute_output_shape(self, input_shape):
        scale = lambda size: None if size is None else size * self.factor  # noqa: E731
        return (input_shape[0], scale(input_shape[1]), scale(input_shape[2]), input_shape[3])

    def get_config(self):
        config = super().get_config()
        config.update(factor=self.factor)
        return config
