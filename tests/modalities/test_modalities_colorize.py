"""Jet and grey images of depth/disparity."""

import colorsys

import numpy as np
import pytest

from ssma_tf.modalities import colorize


def _hues(rgb):
    return np.array([colorsys.rgb_to_hsv(*(c / 255.0))[0] * 360.0 for c in rgb.reshape(-1, 3)])


def test_jet_of_a_linear_ramp_is_monotone_in_hue():
    ramp = np.linspace(1.0, 100.0, 256)[None, :]
    rgb = colorize.jet(ramp, vmin=1.0, vmax=100.0)
    hues = _hues(rgb)
    # Blue (240 degrees) at the low end, red (0) at the high end, never turning back.
    assert hues[0] == pytest.approx(240.0)
    assert hues[-1] == pytest.approx(0.0)
    assert np.all(np.diff(hues) <= 1e-9)
    assert len(np.unique(np.round(hues))) > 100  # it really sweeps the hues


def test_jet_ends_and_channel_order():
    rgb = colorize.jet(np.array([[1.0, 50.5, 100.0]]), vmin=1.0, vmax=100.0)
    # RGB order: dark blue, green-ish middle, dark red.
    assert tuple(rgb[0, 0]) == (0, 0, 128)
    assert tuple(rgb[0, 2]) == (128, 0, 0)
    assert rgb[0, 1, 1] == 255


def test_invert_reverses_the_ramp():
    ramp = np.linspace(1.0, 100.0, 50)[None, :]
    forward = colorize.jet(ramp, vmin=1.0, vmax=100.0)
    inverted = colorize.jet(ramp, vmin=1.0, vmax=100.0, invert=True)
    assert np.array_equal(inverted, forward[:, ::-1])


def test_missing_values_get_the_missing_colour():
    values = np.array([[0.0, np.nan, 5.0, np.inf]])
    rgb = colorize.jet(values, vmax=10.0, missing_color=(255, 0, 255))
    assert tuple(rgb[0, 0]) == (255, 0, 255)
    assert tuple(rgb[0, 1]) == (255, 0, 255)
    assert tuple(rgb[0, 3]) == (255, 0, 255)
    assert tuple(rgb[0, 2]) != (255, 0, 255)


def test_values_outside_the_range_are_clipped():
    rgb = colorize.jet(np.array([[0.5, 200.0]]), vmin=1.0, vmax=100.0)
    assert tuple(rgb[0, 0]) == (0, 0, 128)
    assert tuple(rgb[0, 1]) == (128, 0, 0)


def test_values_below_zero_are_missing_unless_the_range_starts_below_zero():
    """-1, a stereo matcher's invalid mark, was coloured as the low end of the scale (dark blue in
    jet, grey 1 in gray), where the depth completion and HHA take it as missing (helper 176)."""
    values = np.array([[-1.0, 3.0]])
    assert tuple(colorize.jet(values, vmax=10.0)[0, 0]) == (0, 0, 0)
    assert tuple(colorize.jet(values, percentiles=(0, 100))[0, 0]) == (0, 0, 0)
    assert (colorize.gray(values, vmax=10.0)[0, 0] == 0).all()
    # A fixed range starting below 0 colours a signed quantity.
    assert tuple(colorize.jet(values, vmin=-1.0, vmax=3.0)[0, 0]) == (0, 0, 128)


def test_percentile_range_is_per_image():
    values = np.arange(1, 101, dtype=np.float64).reshape(10, 10)
    t, valid = colorize.normalize(values * 7.0, percentiles=(0, 100))
    assert valid.all()
    assert t.min() == 0.0 and t.max() == 1.0
    t_scaled, _ = colorize.normalize(values, percentiles=(0, 100))
    np.testing.assert_allclose(t, t_scaled, atol=1e-6)


def test_gray_is_the_scannet_recipe():
    depth_mm = np.array([[0.0, 700.0, 3500.0, 7000.0, 9000.0]])
    gray = colorize.gray(depth_mm, vmax=7000.0)
    assert gray.shape == (1, 5, 3)
    assert np.array_equal(gray[..., 0], gray[..., 2])
    # 0 is missing; x / 7000 * 255, rounded; clipped above 7000 mm.
    assert gray[0, :, 0].tolist() == [0, 26, 128, 255, 255]


def test_gray_never_gives_a_measured_value_the_grey_of_missing_ones():
    """Before: with --invert every surface beyond --max, anything at or below --min and the low
    percentile came out black, as missing ones do (helper 140)."""
    depth_mm = np.array([[0.0, 400.0, 600.0, 3000.0, 9000.0]])
    assert colorize.gray(depth_mm, vmax=7000.0, invert=True)[0, :, 0].tolist() == [0, 240, 233, 146, 1]
    assert colorize.gray(depth_mm, vmin=500.0, vmax=7000.0)[0, :, 0].tolist() == [0, 1, 4, 98, 255]
    assert colorize.gray(np.full((2, 2), 3.0), percentiles=(1, 99)).max() == 1
    assert colorize.gray(depth_mm, vmax=7000.0, missing_value=255)[0, :, 0].tolist() == [255, 15, 22, 109, 254]


def test_range_errors():
    with pytest.raises(ValueError, match="vmax"):
        colorize.jet(np.ones((2, 2)))
    with pytest.raises(ValueError, match="vmin=5, vmax=5"):
        colorize.jet(np.ones((2, 2)), vmin=5.0, vmax=5.0)
    with pytest.raises(ValueError, match="percentiles"):
        colorize.jet(np.ones((2, 2)), percentiles=(90, 10))
    with pytest.raises(ValueError, match="colour"):
        colorize.jet(np.ones((2, 2)), vmax=2.0, missing_color=(0, 0))
    with pytest.raises(ValueError, match="2-D"):
        colorize.gray(np.ones((2, 2, 3)), vmax=2.0)
