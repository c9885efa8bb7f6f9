"""The building blocks against plain reimplementations with keras.ops / numpy."""

import numpy as np
import pytest

from keras import ops
from ssma_tf.layers import EASPP, ConvBN, MultiscaleConv2D, ResidualUnit, SkipAttention, SSMABlock


def features(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


def test_multiscale_conv_is_two_dilated_halves_of_one_kernel():
    layer = MultiscaleConv2D(8, (1, 3))
    x = features((1, 16, 16, 4))
    y = np.asarray(layer(x))
    kernel = np.asarray(layer.kernel)
    first = np.asarray(ops.conv(x, kernel[..., :4], padding="same", dilation_rate=1))
    second = np.asarray(ops.conv(x, kernel[..., 4:], padding="same", dilation_rate=3))
    np.testing.assert_allclose(y, np.concatenate([first, second], -1), atol=1e-5)
    assert layer.kernel.shape == (3, 3, 4, 8)
    with pytest.raises(ValueError, match="even"):
        MultiscaleConv2D(7)


@pytest.mark.parametrize("kernel,stride", [(4, 2), (8, 4)])
def test_transposed_conv_bn_gives_exactly_stride_times_the_input(kernel, stride):
    layer = ConvBN(5, kernel, strides=stride, activation=None, transposed=True)
    y = layer(features((2, 3, 5, 6)), training=False)
    assert tuple(y.shape) == (2, 3 * stride, 5 * stride, 5)
    assert layer.conv.kernel.shape == (kernel, kernel, 5, 6)  # [kh, kw, out, in] as TF1


def test_ssma_block_matches_its_formula():
    block = SSMABlock(6, reduction=2, output_kernel_size=3, output_bn=False, return_gate=True)
    a, b = features((1, 8, 8, 4), 1), features((1, 8, 8, 4), 2)
    out, gate = block([a, b])
    x = np.concatenate([a, b], -1)
    hidden = np.maximum(np.asarray(block.gate_reduce.convolution_op(x, block.gate_reduce.kernel))
                        + np.asarray(block.gate_reduce.bias), 0)
    s = 1 / (1 + np.exp(-(np.asarray(ops.conv(hidden, block.gate_expand.kernel, padding="same"))
                          + np.asarray(block.gate_expand.bias))))
    expected = np.asarray(ops.conv(x * s, block.output_conv.kernel, padding="same")) + np.asarray(block.output_conv.bias)
    np.testing.assert_allclose(np.asarray(gate), s, atol=1e-5)
    np.testing.assert_allclose(np.asarray(out), expected, atol=1e-4)
    np.testing.assert_allclose(np.asarray(block.gate_reduce.bias), 0.01)
    with pytest.raises(ValueError, match="not divisible by reduction"):
        SSMABlock(4, reduction=3)([a, b])


def test_ssma_block_takes_numpy_integers_and_refuses_bools():
    """As the networks do (helper 225: `np.int64(24)` refused as no positive integer, and `True`
    kept as a reduction of 1)."""
    block = SSMABlock(np.int64(24), np.int32(6), reduced_filters=np.int64(4))
    assert block.get_config()["filters"] == 24 and type(block.get_config()["filters"]) is int
    assert type(block.reduced_filters) is int
    for kwargs, message in ((dict(filters=24, reduction=True), r"^SSMABlock reduction must be a positive integer, "
                                                               r"got True$"),
                            (dict(filters=24, reduced_filters=0), "reduced_filters must be a positive integer"),
                            (dict(filters=24, output_bn="no"), r"^SSMABlock output_bn must be True or False, "
                                                               r"got 'no'$")):
        with pytest.raises(ValueError, match=message):
            SSMABlock(**kwargs)


def test_skip_attention_scales_each_channel_by_the_descriptor():
    layer = SkipAttention()
    up, skip = features((2, 4, 4, 6), 3), features((2, 4, 4, 3), 4)
    y = np.asarray(layer([up, skip], training=False))
    z = np.asarray(layer.descriptor(np.asarray(up).mean(axis=(1, 2), keepdims=True), training=False))
    np.testing.assert_allclose(y, z * skip, atol=1e-5)


def test_residual_unit_variants_and_errors():
    x = features((1, 8, 8, 16))
    projection = ResidualUnit(4, 32, strides=2, preactivation=False, shortcut="projection")
    assert tuple(projection(x).shape) == (1, 4, 4, 32)
    identity = ResidualUnit(4, 16)
    y = identity(x, training=False)
    # Identity shortcut adds the RAW input (not the pre-activated one).
    residual = identity.conv3(identity.conv2(identity.conv1(
        ops.relu(identity.preact_bn(x, training=False)), training=False), training=False))
    np.testing.assert_allclose(np.asarray(y), np.asarray(residual) + x, atol=1e-5)
    with pytest.raises(ValueError, match="shortcut"):
        ResidualUnit(4, 16, shortcut="sideways")
    with pytest.raises(ValueError, match="strides=1"):
        ResidualUnit(4, 16, strides=2)


def test_easpp_image_pooling_branch_is_constant_over_the_map():
    layer = EASPP(8, 4, (1, 2, 3))
    y = layer(features((1, 6, 6, 16)), training=False)
    assert tuple(y.shape) == (1, 6, 6, 8)
    with pytest.raises(ValueError, match="dilation_rates"):
        EASPP(8, 4, ())


@pytest.mark.parametrize("shape,rate", [((2, 3, 6, 4), 6), ((1, 3, 5, 4), 3), ((1, 8, 2, 4), 2), ((1, 2, 2, 4), 12)])
def test_atrous_conv_on_small_maps_skips_only_padding_taps(shape, rate):
    layer = ConvBN(5, 3, dilation_rate=rate, activation=None)
    x = features(shape, 7)
    y = np.asarray(layer(x, training=False))
    full = np.asarray(layer.bn(layer.conv(x), training=False))  # the plain Keras convolution
    np.testing.assert_allclose(y, full, atol=1e-5)
