"""A registered backbone for the tests: a few convolutions where building AdapNet++'s ResNet-50
would cost seconds, for tests about what is around the backbone (training loops, files)."""

from __future__ import annotations

import keras

TINY_BACKBONE = "tiny"


def tiny_pyramid(weights=None, dtype=None):
    """A 7×7 stem (as ResNets have) to stride 4, then strides 8 and 16 (`register_backbone`'s builder)."""
    from keras import layers

    image = keras.Input(shape=(None, None, 3))
    stride4 = layers.Conv2D(8, 7, strides=4, padding="same", dtype=dtype, name="stem")(image)
    stride8 = layers.Conv2D(8, 3, strides=2, padding="same", dtype=dtype, name="down8")(stride4)
    stride16 = layers.Conv2D(16, 3, strides=2, padding="same", dtype=dtype, name="down16")(stride8)
    return keras.Model(image, {"stride4": stride4, "stride8": stride8, "stride16": stride16}, name="tiny")
