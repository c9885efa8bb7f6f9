"""NDVI and EVI against values worked out by hand."""

import numpy as np
import pytest

from ssma_tf.modalities import vegetation


def test_ndvi_of_hand_computed_pixels():
    nir = np.array([[0.5, 0.2, 0.3, 0.0]])
    red = np.array([[0.1, 0.2, 0.6, 0.0]])
    index = vegetation.ndvi(nir, red)
    # (0.5 - 0.1) / 0.6, 0 / 0.4, -0.3 / 0.9, and 0 where there is no signal.
    np.testing.assert_allclose(index, [[2.0 / 3.0, 0.0, -1.0 / 3.0, 0.0]], rtol=1e-6)


def test_ndvi_does_not_depend_on_scale():
    nir, red = np.array([[200.0]]), np.array([[40.0]])
    assert vegetation.ndvi(nir, red)[0, 0] == pytest.approx(vegetation.ndvi(nir / 255, red / 255)[0, 0])


def test_evi_of_hand_computed_pixels():
    nir = np.array([[0.5, 0.4]])
    red = np.array([[0.1, 0.05]])
    blue = np.array([[0.05, 0.02]])
    index = vegetation.evi(nir, red, blue)
    # 2.5 * 0.4 / (0.5 + 0.6 - 0.375 + 1) = 1 / 1.725;  2.5 * 0.35 / (0.4 + 0.3 - 0.15 + 1) = 0.875 / 1.55
    np.testing.assert_allclose(index, [[1.0 / 1.725, 0.875 / 1.55]], rtol=1e-6)


def test_evi_zero_denominator_and_range_check():
    # 0 + 6 * 0 - 7.5 * (2 / 15) + 1 = 0.
    assert vegetation.evi(np.array([0.0]), np.array([0.0]), np.array([2.0 / 15.0]))[0] == 0.0
    with pytest.raises(ValueError, match="divide 8-bit values by 255"):
        vegetation.evi(np.array([200.0]), np.array([50.0]), np.array([20.0]))


def test_index_to_uint8_range():
    levels = vegetation.index_to_uint8(np.array([-1.5, -1.0, 0.0, 0.5, 1.0, np.nan]))
    # -1 -> 0, 0 -> 127.5 rounds to 128, 0.5 -> 191.25 rounds to 191, 1 -> 255; clipped outside.
    assert levels.tolist() == [0, 0, 128, 191, 255, 128]
    assert vegetation.index_to_uint8(np.array([0.25]), (0.0, 0.5)).tolist() == [128]
    with pytest.raises(ValueError, match="low < high"):
        vegetation.index_to_uint8(np.array([0.0]), (1.0, 1.0))


def test_index_image_is_three_channels():
    index = np.array([[-1.0, 1.0]])
    gray = vegetation.index_image(index)
    assert gray.shape == (1, 2, 3) and gray[0, 1].tolist() == [255, 255, 255]
    jet = vegetation.index_image(index, colormap="jet")
    assert jet[0, 0].tolist() == [0, 0, 128] and jet[0, 1].tolist() == [128, 0, 0]
    with pytest.raises(ValueError, match="colormap"):
        vegetation.index_image(index, colormap="viridis")


def test_band_checks():
    with pytest.raises(ValueError, match="same shape"):
        vegetation.ndvi(np.zeros((2, 2)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="non-negative"):
        vegetation.ndvi(np.array([-0.1]), np.array([0.1]))
