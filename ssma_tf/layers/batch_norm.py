"""Batch norm with the released graph's arithmetic and a cheaper backward pass in training."""

import keras
from keras import layers, ops

from ssma_tf import SERIALIZATION_PACKAGE


def _normalize(x, mean, variance, gamma, beta, epsilon: float):
    """`tf.nn.batch_normalization` with the batch's own moments, and their analytic gradient.

    Forward, op for op what the released graph and Keras compute (so the same numbers):
    `x · s + (β − μ · s)` with `s = γ / √(σ² + ε)`, μ and σ² the batch's mean and biased variance
    over N, H, W (`tf.nn.moments`). The gradient is the exact derivative of that whole function,
    moments included, written out: with `x̂ = (x − μ) / √(σ² + ε)` and n = N·H·W,

        ∂L/∂β = Σ dy,   ∂L/∂γ = Σ dy · x̂,
        ∂L/∂x = s · (dy − Σ dy / n − x̂ · Σ (dy · x̂) / n),

    computed as `dy · a + x · b + c` with per-channel a, b, c: two reductions and about six
    full-size element-wise ops. Differentiating the forward ops instead (what `GradientTape`
    and `tf.gradients` do) runs about ten (the two means' gradients tiled back to full size and
    scaled, the squared difference's, the products and their sum) and holds more temporaries.

    Args:
        x: (N, H, W, C) float32.
        mean, variance: `ops.moments(x, [0, 1, 2])`; no gradient flows through them here (their
            part is in ∂L/∂x).
        gamma, beta: (C,).
        epsilon: added to the variance.

    Returns:
        The normalised x.
    """

    @ops.custom_gradient
    def normalize(x, mean, variance, gamma, beta):
        inv = ops.rsqrt(variance + epsilon)
        scale = inv * gamma
        y = x * scale + (beta - mean * scale)

        def grad(*args, upstream=None):
            dy = args[0] if upstream is None else upstream
            count = ops.cast(ops.prod(ops.shape(x)[:-1]), x.dtype)
            sum_dy = ops.sum(dy, axis=[0, 1, 2])
            sum_dy_centred = ops.sum(dy * (x - mean), axis=[0, 1, 2])
            b = -scale * inv * inv * sum_dy_centred / count
            dx = dy * scale + x * b + (-mean * b - scale * sum_dy / count)
            return dx, None, None, sum_dy_centred * inv, sum_dy

        return y, grad

    return normalize(x, mean, variance, gamma, beta)


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class BatchNorm(layers.BatchNormalization):
    """`keras.layers.BatchNormalization` over the channel axis of NHWC maps, faster to train.

    Computes what Keras' layer computes (the released `tf.contrib` batch norm: batch moments
    while training, moving averages otherwise, the same moving-average update); only the
    backward pass of training mode differs, an analytic gradient instead of autodiff through the
    moments (`_normalize`): cheaper and lighter on feature maps (docs/benchmarks.md, "One training
    step"). Synchronized, renormalising or masked batch norms, other axes and other
    backends than TensorFlow take Keras' own path (XLA on JAX fuses the autodiff version anyway).
    """

    def call(self, inputs, training=None, mask=None):
        fast = (
            training and self.trainable and mask is None and not self.synchronized and not self.renorm
            and self.center and self.scale and self.axis in (-1, len(inputs.shape) - 1)
            and len(inputs.shape) == 4 and keras.backend.backend() == "tensorflow"
        )
        if not fast:
            return super().call(inputs, training=training, mask=mask)
        # Statistics in float32 also under mixed precision, as Keras' layer does.
        x = ops.cast(inputs, keras.backend.result_type(inputs.dtype, "float32"))
        mean, variance = ops.moments(x, axes=[0, 1, 2])
        y = _normalize(x, mean, variance, ops.cast(self.gamma, x.dtype), ops.cast(self.beta, x.dtype), self.epsilon)
        for moving, value in ((self.moving_mean, mean), (self.moving_variance, variance)):
            moving.assign(ops.cast(moving, x.dtype) * self.momentum + value * (1.0 - self.momentum))
        return ops.cast(y, self.compute_dtype)
