"""Bilinear resizing of one tensor to the spatial size of another."""

import keras
from keras import layers, ops

from ssma_tf import SERIALIZATION_PACKAGE


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class ResizeLike(layers.Layer):
    """Resizes `inputs[0]` bilinearly to the height and width of `inputs[1]`.

    Used by the auxiliary heads, whose low-resolution predictions are compared with full-size
    labels. (TF2's half-pixel-centre bilinear resize, not TF1's legacy corner alignment: the
    auxiliary heads only matter for the training loss.)
    """

    def call(self, inputs):
        x, reference = inputs
        size = ops.shape(reference)[1:3]
        return ops.image.resize(x, size, interpolation="bilinear")

    def compute_output_shape(self, input_shape):
        x_shape, ref_shape = input_shape
        return (x_shape[0], ref_shape[1], ref_shape[2], x_shape[-1])
