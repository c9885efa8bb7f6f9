"""Channel attention of the SSMA decoder on the fused skip connections (Valada et al. 2019, Sec. 4.2)."""

import keras
from keras import layers, ops

from ssma_tf import SERIALIZATION_PACKAGE
from ssma_tf.layers.conv_bn import ConvBN


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class SkipAttention(layers.Layer):
    """Reweights a fused skip's channels with a descriptor of the decoder feature map.

    For inputs [decoder_features, skip]: z = CBR(1×1, skip channels)(mean over H, W of the
    decoder features), a 1×1×C descriptor; the output is z · skip, broadcast over H and W.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.descriptor = None

    def build(self, input_shape):
        features_shape, skip_shape = input_shape
        self.descriptor = ConvBN(int(skip_shape[-1]), 1, name="descriptor", dtype=self.dtype_policy)
        self.descriptor.build((features_shape[0], 1, 1, features_shape[-1]))
        self.built = True

    def call(self, inputs, training=None):
        features, skip = inputs
        z = self.descriptor(ops.mean(features, axis=(1, 2), keepdims=True), training=training)
        return z * skip

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[1])
