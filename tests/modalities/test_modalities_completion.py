"""Depth completion (Ku et al., 2018) on depth maps whose true values are known."""

import time

import numpy as np
import pytest

from ssma_tf.modalities import completion


def _slanted_plane(height=120, width=160):
    """Depth in metres of a plane receding towards the top right, 2..3 m."""
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    return 2.0 + 0.004 * u + 0.003 * (height - 1 - v)


def _punch_holes(depth, seed=0):
    rng = np.random.default_rng(seed)
    holey = depth.copy()
    holey[rng.random(depth.shape) < 0.3] = 0.0  # scattered missing pixels
    holey[40:52, 60:75] = 0.0  # a 12x15 hole
    holey[90:93, 10:150] = np.nan  # a scratch across the image
    return holey


def test_filling_punched_holes_restores_the_plane():
    plane = _slanted_plane()
    holey = _punch_holes(plane)
    holes = ~(holey > 0)
    filled = completion.fill_depth(holey)
    assert np.all(filled > 0)
    error = np.abs(filled - plane)
    # Dilation takes the nearest depth in its window, so on this plane (4 mm per pixel) holes
    # are filled a little towards the camera: under 1 cm on average, and under 4 cm (1.5 %) in
    # the middle of the 12x15 hole, which the 31x31 dilation fills from up to 15 pixels away.
    assert error[holes].mean() < 0.01
    assert error.max() < 0.04
    # The unfilled map is far off, so the check above can fail.
    assert np.abs(np.nan_to_num(holey) - plane)[holes].mean() > 1.0


def test_millimetres_give_the_same_result_as_metres():
    holey = _punch_holes(_slanted_plane())
    metres = completion.fill_depth(holey, units="m")
    millimetres = completion.fill_depth(holey * 1000.0, units="mm")
    np.testing.assert_allclose(millimetres, metres * 1000.0, rtol=1e-5)


def test_keep_valid_changes_only_the_holes():
    plane = _slanted_plane()
    holey = _punch_holes(plane)
    valid = holey > 0
    kept = completion.fill_depth(holey, keep_valid=True)
    np.testing.assert_allclose(kept[valid], holey[valid], rtol=1e-6)
    np.testing.assert_array_equal(kept[~valid], completion.fill_depth(holey)[~valid])
    assert np.all(kept > 0)


def test_holes_at_a_depth_edge_take_the_near_surface():
    # A box at 1 m in front of a wall at 5 m; missing pixels along the box's edge must be filled
    # from the box, not the background: the reason for inverting depth before dilation.
    depth = np.full((60, 80), 5.0)
    depth[20:40, 20:40] = 1.0
    depth[20:40, 38:42] = 0.0  # missing strip on the box's right edge and just beyond it
    filled = completion.fill_depth(depth, blur="none", median_size=1)
    assert np.allclose(filled[22:38, 38:40], 1.0)


def test_extension_to_top_of_frame():
    plane = _slanted_plane()
    depth = plane.copy()
    depth[:30] = 0.0  # sensor coverage ends below the top edge
    options = dict(large_hole_fill_kernel=None, blur="none", median_size=1)
    extended = completion.fill_depth(depth, **options)
    not_extended = completion.fill_depth(depth, extend_to_top=False, **options)
    assert np.all(extended[:30] > 0)
    assert np.all(not_extended[:20] == 0)
    # Above the top value that the dilations reached, each column repeats that value.
    for column in range(plane.shape[1]):
        top = np.argmax(not_extended[:, column] > 0)
        assert 20 <= top < 30
        assert np.all(extended[:top, column] == not_extended[top, column])
    np.testing.assert_allclose(extended[0], plane[30], atol=0.03)


@pytest.mark.parametrize("blur", ["gaussian", "bilateral", "none"])
def test_blurs_keep_a_flat_surface_flat(blur):
    depth = np.full((50, 60), 3.0)
    depth[::3, ::2] = 0.0
    filled = completion.fill_depth(depth, blur=blur)
    # float32 arithmetic on inverted depth (100 - 3 m) leaves a few ulps of 97, about 2e-5 m.
    np.testing.assert_allclose(filled, 3.0, atol=1e-4)


def test_empty_map_stays_empty():
    assert not completion.fill_depth(np.zeros((30, 40))).any()


def test_depth_beyond_max_depth_counts_as_missing():
    depth = np.full((30, 40), 2.0)
    depth[10, 10] = 150.0  # beyond the 100 m inversion constant
    filled = completion.fill_depth(depth)
    assert filled[10, 10] == pytest.approx(2.0, abs=1e-5)


def test_units_and_arguments_are_checked():
    assert completion.units_per_metre("mm") == 1000.0
    assert completion.units_per_metre("256") == 256.0
    assert completion.units_per_metre(256) == 256.0
    with pytest.raises(ValueError, match="'inches'"):
        completion.units_per_metre("inches")
    with pytest.raises(ValueError, match="positive"):
        completion.units_per_metre(-1)
    with pytest.raises(ValueError, match="blur"):
        completion.fill_depth(np.ones((10, 10)), blur="box")
    with pytest.raises(ValueError, match="2-D"):
        completion.fill_depth(np.ones((10, 10, 1)))


def test_vga_frame_is_fast():
    plane = _slanted_plane(480, 640)
    holey = _punch_holes(plane) * 1000.0
    completion.fill_depth(holey, units="mm")  # warm-up
    start = time.process_time()
    completion.fill_depth(holey, units="mm")
    # About 0.1-0.2 s of CPU on a laptop core; a per-pixel Python loop would take minutes.
    assert time.process_time() - start < 2.0


def test_depth_of_a_tenth_of_a_metre_or_less_is_missing():
    """Helper 160: the authors' inversion takes only depth above 0.1 m; 0.05 m became the nearest
    surface of the image (99.95 m inverted) and spread over its neighbourhood."""
    depth = np.full((30, 40), 2.0)
    depth[15, 20] = 0.05
    filled = completion.fill_depth(depth, keep_valid=True)
    np.testing.assert_allclose(filled, 2.0, atol=1e-4)
    filled = completion.fill_depth(depth)
    np.testing.assert_allclose(filled, 2.0, atol=1e-4)
