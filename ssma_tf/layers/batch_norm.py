"""Batch norm with the released graph's arithmetic and a cheaper backward pass in training."""

import functools

import keras
from keras import layers, ops

from ssma_tf import SERIALIZATION_PACKAGE


def _normalize(x, mean, variance, gamma, beta, epsilon: float):
    """`tf.nn.batch_normalization` with the batch's own moments, and the fused kernel's gradient.

    Forward, op for op what the released graph and Keras compute (so the same numbers):
    `x · s + (β − μ · s)` with `s = γ / √(σ² + ε)`, μ and σ² the batch's mean and biased variance
    over N, H, W (`tf.nn.moments`). The gradient is the exact derivative of that whole function,
    moments included, computed by TensorFlow's fused batch-norm gradient kernel
    (`FusedBatchNormGradV3`, oneDNN or Eigen on a CPU) from x and the per-channel moments alone.
    Differentiating the forward ops instead (what `GradientTape` and `tf.gradients` do) runs
    about ten full-size element-wise ops and holds more temporaries. On an AdapNet++ training
    step (batch 2, 384×768, 2-core CPU) the peak memory fell from 3.81 GiB with these
    derivatives written out in element-wise ops to 3.15 GiB (docs/benchmarks.md).

    The CPU kernel takes the biased batch variance as its second saved statistic; cuDNN's takes
    the inverse standard deviation, so `BatchNorm` uses this only where no GPU is visible.

    Args:
        x: (N, H, W, C) float32.
        mean, variance: `ops.moments(x, [0, 1, 2])`; no gradient flows through them here (their
            part is in ∂L/∂x).
        gamma, beta: (C,).
        epsilon: added to the variance.

    Returns:
        The normalised x.
    """
    import tensorflow as tf

    @ops.custom_gradient
    def normalize(x, mean, variance, gamma, beta):
        inv = ops.rsqrt(variance + epsilon)
        scale = inv * gamma
        y = x * scale + (beta - mean * scale)

        def grad(*args, upstream=None):
            dy = args[0] if upstream is None else upstream
            dx, dgamma, dbeta, _, _ = tf.raw_ops.FusedBatchNormGradV3(
                y_backprop=dy, x=x, scale=gamma, reserve_space_1=mean, reserve_space_2=variance,
                reserve_space_3=tf.constant([], tf.float32), epsilon=epsilon, data_format="NHWC",
                is_training=True,
            )
            return dx, None, None, dgamma, dbeta

        return y, grad

    return normalize(x, mean, variance, gamma, beta)


@functools.lru_cache(maxsize=1)
def _gpu_visible() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class BatchNorm(layers.BatchNormalization):
    """`keras.layers.BatchNormalization` over the channel axis of NHWC maps, faster to train.

    Computes what Keras' layer computes (the released `tf.contrib` batch norm: batch moments
    while training, moving averages otherwise, the same moving-average update); only the
    backward pass of training mode differs on a CPU: the fused kernel's gradient instead of
    autodiff through the moments (`_normalize`): cheaper and lighter on feature maps
    (docs/benchmarks.md, "One training step"). Synchronized, renormalising or masked batch
    norms, other axes, machines with a GPU and other backends than TensorFlow take Keras' own
    path (XLA on JAX fuses the autodiff version anyway).
    """

    def call(self, inputs, training=None, mask=None):
        fast = (
            training and self.trainable and mask is None and not self.synchronized and not self.renorm
            and self.center and self.scale and self.axis in (-1, len(inputs.shape) - 1)
            and len(inputs.shape) == 4 and keras.backend.standardize_dtype(inputs.dtype) != "float64"
            and keras.backend.backend() == "tensorflow" and not _gpu_visible()
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
