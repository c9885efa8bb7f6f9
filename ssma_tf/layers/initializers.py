"""Weight initialisers of the released graph, and `overwritten_weights` for a model whose every
weight is assigned right after it is built."""

import contextlib
import contextvars
import math
from typing import Iterator

import keras
from ssma_tf import SERIALIZATION_PACKAGE


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class HeTruncatedNormal(keras.initializers.Initializer):
    """Truncated normal with std sqrt(2 / (kh·kw·c_in)), as the released graph initialises kernels.

    Unlike `keras.initializers.HeNormal`, the standard deviation is not rescaled to compensate for the
    truncation at two standard deviations: the original used `tf.truncated_normal_initializer`
    with exactly this std.

    Args:
        transposed: the kernel is a transposed-convolution kernel laid out [kh, kw, out, in], so the
            input channels are the last axis.
        seed: optional integer seed.
    """

    def __init__(self, transposed: bool = False, seed=None):
        self.transposed = transposed
        self.seed = seed

    def __call__(self, shape, dtype=None):
        if len(shape) != 4:
            raise ValueError(f"HeTruncatedNormal expects a 4-D kernel shape, got {shape}")
        c_in = shape[3] if self.transposed else shape[2]
        std = math.sqrt(2.0 / (shape[0] * shape[1] * c_in))
        if _OVERWRITTEN.get():
            # One scalar draw moves the seed generator as the whole kernel's draw does.
            keras.random.truncated_normal((), dtype=dtype, seed=self.seed)
            return keras.ops.zeros(shape, dtype=dtype)
        return keras.random.truncated_normal(shape, mean=0.0, stddev=std, dtype=dtype, seed=self.seed)

    def get_config(self):
        return {"transposed": self.transposed, "seed": self.seed}


_OVERWRITTEN = contextvars.ContextVar("overwritten_weights", default=False)


@contextlib.contextmanager
def overwritten_weights(enabled: bool = True) -> Iterator[None]:
    """Models built inside start their `HeTruncatedNormal` kernels at zero instead of drawing them
    (`enabled` False: drawn, as outside).

    Only for a model whose every weight is assigned right after it is built: one loaded from a
    file (strictly: a weight the file lacks is an error) or copied from another model. Drawing
    AdapNet++'s 30 million initial weights took over half of building it (1.6 s against 0.7 s
    without, on one core of a 2-core AMD EPYC), and the draws were thrown away. Keras' seed generator moves as it
    would have (one draw per kernel), so what is drawn after the load (the next model's weights,
    say) stays the same as before.
    """
    token = _OVERWRITTEN.set(enabled)
    try:
        yield
    finally:
        _OVERWRITTEN.reset(token)


def bias_initializer():
    """Biases of the released graph start at 0.01."""
    return keras.initializers.Constant(0.01)



@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class ScaledIdentity(keras.initializers.Initializer):
    """`scale` times the identity for a 1×1 convolution kernel (1, 1, C, C): channel c → c.

    Late fusion's per-stream class-score convolutions start with it (scale 0.5 for two streams),
    so that the fused scores begin as the mean of the experts' scores and training moves from
    there (`ssma_tf.models.fusion_baselines`).
    """

    def __init__(self, scale: float = 1.0):
        self.scale = float(scale)

    def __call__(self, shape, dtype=None):
        if len(shape) != 4 or shape[0] != 1 or shape[1] != 1 or shape[2] != shape[3]:
            raise ValueError(f"ScaledIdentity expects a 1x1 kernel with as many outputs as inputs, got {shape}")
        eye = keras.ops.eye(shape[2], dtype=dtype) * self.scale
        return keras.ops.reshape(eye, shape)

    def get_config(self):
        return {"scale": self.scale}
