"""The fast inference path computes what the plain call computes, and traces once per shape."""

import numpy as np
import pytest
import tensorflow as tf

from ssma_tf.fast import (
    compiled_predict, optimize_for_inference, subpixel_conv2d_transpose, subpixel_supported,
)
from ssma_tf.models import SSMA, AdapNetPP

# Probabilities of the optimised graph against the plain Keras call (float32 rounding only):
# through SSMA's two encoders with random batch norms, up to 1.3e-5 was seen.
TOLERANCE = 5e-5


def randomise_batch_norms(model, seed=0):
    """Random BN parameters, so that folding has real scales and shifts to fold."""
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        if "moving_variance" in variable.path or "gamma" in variable.path:
            variable.assign(rng.uniform(0.5, 1.5, variable.shape).astype("float32"))
        elif "moving_mean" in variable.path or "beta" in variable.path:
            variable.assign(rng.normal(0, 0.2, variable.shape).astype("float32"))
    model.get_layer("up3").bn.gamma.assign(np.full(model.num_classes, 0.1, "float32"))
    for encoder in model.encoders:
        encoder.get_layer("input_bn").moving_mean.assign(np.full(3, 127.0, "float32"))
        encoder.get_layer("input_bn").moving_variance.assign(np.full(3, 75.0**2, "float32"))


@pytest.mark.parametrize("strides", [2, 4])
@pytest.mark.parametrize("height,width", [(3, 5), (6, 4)])
def test_subpixel_form_equals_the_transposed_convolution(strides, height, width):
    rng = np.random.default_rng(strides)
    size = 2 * strides
    x = rng.normal(size=(2, height, width, 3)).astype("float32")
    kernel = rng.normal(size=(size, size, 5, 3)).astype("float32")  # [k, k, out, in]
    expected = tf.nn.conv2d_transpose(x, kernel, [2, height * strides, width * strides, 5], strides, "SAME")
    got = subpixel_conv2d_transpose(tf.constant(x), tf.constant(kernel), strides)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)


def test_subpixel_form_has_the_same_gradients():
    rng = np.random.default_rng(7)
    x = tf.constant(rng.normal(size=(1, 4, 6, 3)).astype("float32"))
    kernel = tf.constant(rng.normal(size=(4, 4, 2, 3)).astype("float32"))
    weights = tf.constant(rng.normal(size=(1, 8, 12, 2)).astype("float32"))
    gradients = []
    for form in (lambda x, k: tf.nn.conv2d_transpose(x, k, [1, 8, 12, 2], 2, "SAME"),
                 lambda x, k: subpixel_conv2d_transpose(x, k, 2)):
        with tf.GradientTape() as tape:
            tape.watch([x, kernel])
            loss = tf.reduce_sum(form(x, kernel) * weights)
        gradients.append(tape.gradient(loss, [x, kernel]))
    for expected, got in zip(*gradients):
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)


def test_subpixel_form_applies_only_to_kernel_twice_the_stride():
    assert subpixel_supported(4, 2) and subpixel_supported(8, 4)
    assert not subpixel_supported(3, 2)
    assert not subpixel_supported(4, 2, padding="valid")
    assert not subpixel_supported(2, 1)


@pytest.mark.parametrize("name", ["adapnet_pp", "ssma"])
def test_compiled_predict_equals_the_plain_call_and_traces_once_per_shape(name):
    model = AdapNetPP(5) if name == "adapnet_pp" else SSMA(4)
    randomise_batch_norms(model)
    rng = np.random.default_rng(1)
    images = [tf.constant(rng.uniform(0, 255, (2, 64, 128, 3)).astype("float32")) for _ in range(2)]
    inputs = images if name == "ssma" else images[0]
    expected = model(inputs, training=False).numpy()

    predict = compiled_predict(model)
    for _ in range(3):
        np.testing.assert_allclose(predict(inputs).numpy(), expected, rtol=0, atol=TOLERANCE)
    assert predict.experimental_get_tracing_count() == 1
    # A new shape is one new trace, and going back to the first shape none.
    other = [tf.constant(rng.uniform(0, 255, (1, 32, 48, 3)).astype("float32")) for _ in range(2)]
    predict(other if name == "ssma" else other[0])
    predict(inputs)
    assert predict.experimental_get_tracing_count() == 2


def test_inference_copy_reports_its_rewrites_and_leaves_the_model_alone():
    model = AdapNetPP(5)
    randomise_batch_norms(model)
    weights = [w.copy() for w in model.get_weights()]
    fast = optimize_for_inference(model)
    # 58 conv→BN pairs in AdapNet++ (aux heads excluded); the three decoder upsamplings.
    assert fast.folded_batch_norms == 58
    assert fast.subpixel_layers == 3
    for before, after in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(before, after)
    plain = optimize_for_inference(model, fold_batch_norm=False, subpixel_upsampling=False)
    assert plain.folded_batch_norms == 0 and plain.subpixel_layers == 0


def test_xla_compiled_predict_equals_the_plain_call():
    model = AdapNetPP(3)
    randomise_batch_norms(model)
    x = tf.constant(np.random.default_rng(2).uniform(0, 255, (1, 32, 64, 3)).astype("float32"))
    predict = compiled_predict(model, jit_compile=True)
    np.testing.assert_allclose(predict(x).numpy(), model(x, training=False).numpy(), rtol=0, atol=TOLERANCE)


def test_return_all_gives_the_named_outputs():
    model = SSMA(3)
    x = tf.constant(np.random.default_rng(3).uniform(0, 255, (1, 32, 64, 3)).astype("float32"))
    outputs = compiled_predict(model, return_all=True)([x, x])
    assert {"softmax", "logits", "gate_latent", "gate_skip2", "gate_skip1"} <= set(outputs)
    assert outputs["softmax"].shape == (1, 32, 64, 3)


def test_bfloat16_precision_stays_close_to_float32_and_keeps_float32_outputs():
    model = AdapNetPP(5)
    randomise_batch_norms(model)
    x = tf.constant(np.random.default_rng(4).uniform(0, 255, (2, 64, 128, 3)).astype("float32"))
    expected = model(x, training=False).numpy()
    predict = compiled_predict(model, precision="bfloat16")
    assert predict.model.precision == "bfloat16" and predict.model.folded_batch_norms == 58
    got = predict(x)
    assert got.dtype == tf.float32
    got = got.numpy()
    np.testing.assert_allclose(got.sum(-1), 1.0, rtol=1e-5)
    # bfloat16 keeps 8 bits of mantissa: probabilities move by a few 1e-2 at most, classes rarely.
    assert 1e-4 < np.abs(got - expected).max() < 0.1
    assert (got.argmax(-1) == expected.argmax(-1)).mean() > 0.9
    # The float32 weights of the model are untouched.
    assert all(w.dtype == "float32" for w in model.weights)


def test_unknown_precision_is_an_error_naming_it():
    model = AdapNetPP(3)
    with pytest.raises(ValueError, match="float16"):
        optimize_for_inference(model, precision="float16")


def test_auto_precision_follows_the_hardware(monkeypatch):
    from ssma_tf import fast

    monkeypatch.setattr(fast, "native_bfloat16", lambda: True)
    assert fast.resolve_precision("auto") == "bfloat16"
    monkeypatch.setattr(fast, "native_bfloat16", lambda: False)
    assert fast.resolve_precision("auto") == "float32"
    assert fast.resolve_precision("bfloat16") == "bfloat16"
    with pytest.raises(ValueError, match="'fp16'"):
        fast.resolve_precision("fp16")


def test_with_gpus_visible_their_compute_capability_decides_bfloat16(monkeypatch):
    from ssma_tf import fast

    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: ["gpu:0", "gpu:1"])
    capabilities = {"gpu:0": (8, 6), "gpu:1": (7, 5)}
    monkeypatch.setattr(tf.config.experimental, "get_device_details",
                        lambda gpu: {"compute_capability": capabilities[gpu]})
    assert not fast.native_bfloat16()  # a Turing card would emulate bfloat16
    capabilities["gpu:1"] = (9, 0)
    assert fast.native_bfloat16()
