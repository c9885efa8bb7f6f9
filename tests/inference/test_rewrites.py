"""The rewrites of the inference copy: sub-pixel upsampling computes the transposed convolution, precision."""

import numpy as np
import pytest
import tensorflow as tf

from ssma_tf.inference import rewrites
from ssma_tf.inference.rewrites import subpixel_conv2d_transpose, subpixel_supported

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


def test_resolve_precision_checks_the_name():
    assert rewrites.resolve_precision("bfloat16") == "bfloat16"
    with pytest.raises(ValueError, match="'fp16'"):
        rewrites.resolve_precision("fp16")


def test_auto_given_to_a_rewrite_says_where_it_is_settled():
    """Helper 246: `optimize_for_inference(precision="auto")` was "precision must be one of
    ('float32', 'bfloat16'), got 'auto'", though the docs name "auto" as a precision."""
    with pytest.raises(ValueError, match=r"got 'auto'; 'auto' is settled by Predictor, resolve_precision or a "
                                         r"command's --precision, before a rewrite$"):
        rewrites.check_precision("auto")
    with pytest.raises(ValueError, match=r"got 'int8'$"):  # only "auto" gets the sentence
        rewrites.check_precision("int8")
