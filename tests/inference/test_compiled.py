"""The compiled inference path computes what the plain call computes, and traces once per shape."""

import numpy as np
import pytest
import tensorflow as tf

from ssma_tf.inference.compiled import compiled_predict, inference_model, optimize_for_inference
from ssma_tf.models import SSMA, AdapNetPP
from tests.inference.helpers import image_scale_batch_norms

# Probabilities of the optimised graph against the plain Keras call (float32 rounding only):
# through SSMA's two encoders with random batch norms, up to 1.3e-5 was seen.
TOLERANCE = 5e-5


@pytest.mark.parametrize("name", ["adapnet_pp", "ssma"])
def test_compiled_predict_equals_the_plain_call_and_traces_once_per_shape(name):
    model = AdapNetPP(5) if name == "adapnet_pp" else SSMA(4)
    image_scale_batch_norms(model)
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
    image_scale_batch_norms(model)
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
    image_scale_batch_norms(model)
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
    image_scale_batch_norms(model)
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


def test_inference_model_drops_the_auxiliary_heads(adapnet):
    view = inference_model(adapnet)
    assert sorted(view.output) == ["logits", "softmax"]
    assert view.count_params() < adapnet.count_params()  # the heads' weights are not used


def test_the_optimised_inference_view_on_another_backend_keeps_its_batch_norms(monkeypatch):
    """Helper 197: `inference_model(model, optimize=True)` under JAX failed with "fold_batch_norm
    needs the TensorFlow backend", a flag it does not take."""
    import keras

    from ssma_tf.inference import compiled

    model = AdapNetPP(3, backbone="mobilenet_v2")
    image = np.random.default_rng(2).uniform(0, 255, (1, 32, 32, 3)).astype("float32")
    expected = model(image, training=False).numpy()
    folded = []
    real = compiled.fold_batch_norms
    monkeypatch.setattr(compiled, "fold_batch_norms", lambda *a, **k: folded.append(1) or real(*a, **k))
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    view = inference_model(model, optimize=True)
    assert folded == []
    np.testing.assert_allclose(view(image, training=False)["softmax"].numpy(), expected, rtol=0, atol=TOLERANCE)
    with pytest.raises(ValueError, match="on jax, give fold_batch_norm=False"):
        optimize_for_inference(model)
