"""`ssma_tf.layers.BatchNorm` computes what Keras' batch norm computes; only its training backward differs
(the fused kernel's gradient on a CPU)."""

import importlib

import keras
import numpy as np
import pytest
import tensorflow as tf

from ssma_tf.layers import BatchNorm, batch_norm
from ssma_tf.layers.conv_bn import BN_EPSILON, BN_MOMENTUM

batch_norm_module = importlib.import_module("ssma_tf.layers.batch_norm")

SHAPE = (2, 8, 12, 5)


def _pair():
    """A Keras batch norm and ours with the same (non-trivial) weights and statistics."""
    rng = np.random.default_rng(3)
    gamma, beta = rng.uniform(0.5, 1.5, SHAPE[-1]), rng.normal(size=SHAPE[-1])
    mean, variance = rng.normal(size=SHAPE[-1]), rng.uniform(0.5, 2.0, SHAPE[-1])
    pair = []
    for cls in (keras.layers.BatchNormalization, BatchNorm):
        layer = cls(epsilon=BN_EPSILON, momentum=BN_MOMENTUM)
        layer.build(SHAPE)
        for variable, value in zip((layer.gamma, layer.beta, layer.moving_mean, layer.moving_variance),
                                   (gamma, beta, mean, variance)):
            variable.assign(value.astype(np.float32))
        pair.append(layer)
    # Offset and scaled like a feature map after a convolution (mean far from 0).
    x = tf.constant((rng.normal(size=SHAPE) * 3 + 20).astype(np.float32))
    dy = tf.constant(rng.normal(size=SHAPE).astype(np.float32))
    return pair, x, dy


def _step(layer, x, dy, training):
    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=training)
            loss = tf.reduce_sum(y * dy)
        return [y] + tape.gradient(loss, [x, layer.gamma, layer.beta])

    return [t.numpy() for t in step(x)]


def test_training_step_matches_keras_forward_statistics_and_gradients():
    (reference, ours), x, dy = _pair()
    expected, actual = _step(reference, x, dy, True), _step(ours, x, dy, True)
    # Forward and moving-average update: the same ops, so the same numbers.
    np.testing.assert_array_equal(actual[0], expected[0])
    np.testing.assert_array_equal(ours.moving_mean.numpy(), reference.moving_mean.numpy())
    np.testing.assert_array_equal(ours.moving_variance.numpy(), reference.moving_variance.numpy())
    # Backward: the fused kernel's gradient of the same function, so equal up to rounding.
    for name, got, want in zip(("x", "gamma", "beta"), actual[1:], expected[1:]):
        np.testing.assert_allclose(got, want, rtol=0, atol=2e-5 * np.abs(want).max(), err_msg=name)


def test_the_gradient_is_the_derivative():
    # Against central differences in float64 arithmetic of the same formula (not autodiff).
    (_, ours), x, dy = _pair()
    gradient = _step(ours, x, dy, True)[1]
    xs, dys = x.numpy().astype(np.float64), dy.numpy().astype(np.float64)
    gamma, beta = ours.gamma.numpy().astype(np.float64), ours.beta.numpy().astype(np.float64)

    def loss(values):
        mean = values.mean(axis=(0, 1, 2))
        variance = values.var(axis=(0, 1, 2))
        return np.sum(((values - mean) / np.sqrt(variance + BN_EPSILON) * gamma + beta) * dys)

    for index in [(0, 0, 0, 0), (1, 7, 11, 4), (0, 3, 5, 2)]:
        step = np.zeros_like(xs)
        step[index] = 1e-3
        numeric = (loss(xs + step) - loss(xs - step)) / 2e-3
        assert gradient[index] == pytest.approx(numeric, abs=1e-4 * float(np.abs(gradient).max()))


def test_the_eigen_kernel_gives_the_same_gradient():
    # Without oneDNN TensorFlow runs its own (Eigen) fused kernels, which read the saved
    # statistics the same way: the gradient check again, in a process with oneDNN off.
    import os
    import subprocess
    import sys

    code = ("import sys; sys.path.insert(0, sys.argv[1]); import test_batch_norm as t; "
            "t.test_training_step_matches_keras_forward_statistics_and_gradients(); print('ok')")
    result = subprocess.run([sys.executable, "-c", code, os.path.dirname(__file__)], capture_output=True, text=True,
                            env={**os.environ, "TF_ENABLE_ONEDNN_OPTS": "0"}, timeout=300)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-2000:]


def test_with_a_gpu_visible_it_takes_keras_path(monkeypatch):
    # cuDNN's saved statistics differ from the CPU kernels' (inverse standard deviation), so the
    # fused gradient is only used where no GPU is.
    monkeypatch.setattr(batch_norm_module, "_gpu_visible", lambda: True)
    (reference, ours), x, dy = _pair()
    for got, want in zip(_step(ours, x, dy, True), _step(reference, x, dy, True)):
        np.testing.assert_array_equal(got, want)


def test_inference_and_frozen_layers_take_keras_path():
    (reference, ours), x, dy = _pair()
    for training in (False, True):
        ours.trainable = reference.trainable = not training  # frozen while "training": inference mode
        expected, actual = _step(reference, x, dy, training), _step(ours, x, dy, training)
        for got, want in zip(actual, expected):
            np.testing.assert_array_equal(got, want)
    assert ours.moving_mean.numpy() == pytest.approx(reference.moving_mean.numpy())


def test_the_package_builds_it_and_it_round_trips():
    layer = batch_norm("bn")
    assert isinstance(layer, BatchNorm) and layer.epsilon == BN_EPSILON and layer.momentum == BN_MOMENTUM
    copy = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(copy) is BatchNorm and copy.get_config() == layer.get_config()
