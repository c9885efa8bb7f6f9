"""The auxiliary heads' upsampling against TF1's `ResizeBilinear` (the released default)."""

import numpy as np
import pytest
import tensorflow as tf

from ssma_tf.layers import BilinearUpsampling
from ssma_tf.models import SSMA, AdapNetPP


def _features(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


def _tf1_resize(x, factor):
    """What `tf.image.resize_images` computed in TF1 by default."""
    size = (x.shape[1] * factor, x.shape[2] * factor)
    return tf.compat.v1.image.resize_bilinear(x, size, align_corners=False, half_pixel_centers=False).numpy()


@pytest.mark.parametrize("shape,factor", [((2, 3, 5, 4), 4), ((1, 7, 3, 2), 8), ((1, 5, 9, 3), 3), ((1, 1, 1, 2), 4)])
def test_upsampling_is_tf1_legacy_resize_bilinear(shape, factor):
    x = _features(shape, factor)
    actual = np.asarray(BilinearUpsampling(factor)(x))
    np.testing.assert_allclose(actual, _tf1_resize(x, factor), rtol=0, atol=2e-6)
    # The same through the raw op (what the released graph ran).
    raw = tf.raw_ops.ResizeBilinear(images=x, size=[shape[1] * factor, shape[2] * factor],
                                    align_corners=False, half_pixel_centers=False).numpy()
    np.testing.assert_allclose(actual, raw, rtol=0, atol=2e-6)


def test_upsampling_is_not_half_pixel_centred_nor_corner_aligned():
    x = _features((1, 5, 7, 3), 1)
    actual = np.asarray(BilinearUpsampling(4)(x))
    for half_pixel, corners in ((True, False), (False, True)):
        other = tf.compat.v1.image.resize_bilinear(x, (20, 28), align_corners=corners,
                                                   half_pixel_centers=half_pixel).numpy()
        assert np.max(np.abs(actual - other)) > 0.1
    # Output pixel i reads input i/4: pixel 0 is the first input, pixels past the last input repeat it.
    np.testing.assert_array_equal(actual[0, ::4, ::4], x[0])
    np.testing.assert_allclose(actual[0, -4:, -1], np.repeat(x[0, -1:, -1], 4, axis=0), atol=1e-6)
    np.testing.assert_allclose(actual[0, 1, 0], 0.75 * x[0, 0, 0] + 0.25 * x[0, 1, 0], atol=1e-6)


def test_gradient_is_the_one_of_resize_bilinear():
    x = tf.constant(_features((2, 3, 5, 4), 2))
    weights = tf.constant(_features((2, 24, 40, 4), 3))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        ours = tf.reduce_sum(BilinearUpsampling(8)(x) * weights)
        theirs = tf.reduce_sum(tf.compat.v1.image.resize_bilinear(x, (24, 40)) * weights)
    np.testing.assert_allclose(tape.gradient(ours, x).numpy(), tape.gradient(theirs, x).numpy(), atol=1e-5)


def test_auxiliary_heads_trace_with_unknown_sizes():
    # A SavedModel signature has unknown height and width; the heads must still trace.
    spec = tf.TensorSpec([None, None, None, 3], tf.float32)
    model = AdapNetPP(3)
    traced = tf.function(lambda t: model(t, training=False, return_all=True)).get_concrete_function(spec)
    assert traced.structured_outputs["aux_up1"].shape.as_list() == [None, None, None, 3]
    ssma = SSMA(3, aux_heads=True)
    traced = tf.function(lambda a, b: ssma([a, b], training=False, return_all=True)).get_concrete_function(spec, spec)
    assert traced.structured_outputs["aux_up2"].shape.as_list() == [None, None, None, 3]
    # And the traced graph computes TF1's resize at a size it never saw.
    x = _features((1, 3, 5, 2), 4)
    layer = BilinearUpsampling(4)
    function = tf.function(layer).get_concrete_function(tf.TensorSpec([None, None, None, 2], tf.float32))
    np.testing.assert_allclose(function(tf.constant(x)).numpy(), _tf1_resize(x, 4), atol=2e-6)


def test_bad_factor_is_an_error_naming_it():
    for factor in (0, -2, 2.0, True):
        with pytest.raises(ValueError, match="factor"):
            BilinearUpsampling(factor)
    assert np.array_equal(np.asarray(BilinearUpsampling(1)(_features((1, 2, 2, 1)))), _features((1, 2, 2, 1)))
    assert BilinearUpsampling.from_config(BilinearUpsampling(4).get_config()).factor == 4
