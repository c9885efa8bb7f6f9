"""HHA on synthetic scenes whose geometry is known."""

import time

import numpy as np
import pytest

from ssma_tf.modalities import hha, morphology
from ssma_tf.modalities.io import InputFileError


def _intrinsics(scene):
    return hha.Intrinsics(scene["fx"], scene["fy"], scene["cx"], scene["cy"])


def _interior(mask, margin=9):
    """Pixels of `mask` at least margin // 2 pixels from its border (away from window overlap)."""
    return morphology.erode(mask.astype(np.uint8), morphology.full_kernel(margin)).astype(bool)


def test_tilted_camera_floor_and_wall(room):
    scene = room(pitch_deg=30.0, roll_deg=10.0)
    encoded = hha.encode_hha(scene["depth"], _intrinsics(scene))
    disparity, height, angle = (encoded[..., c].astype(np.int64) for c in range(3))
    floor = _interior(~scene["on_wall"] & (scene["depth"] > 0))
    wall = _interior(scene["on_wall"])
    assert floor.sum() > 10000 and wall.sum() > 10000

    # Angle with gravity: 0 degrees on the floor, 90 on the wall, encoded as angle + 38.
    assert np.all(angle[floor] == 38)
    assert np.all(angle[wall] == 128)

    # Height above the lowest point (the floor), in centimetres; within 1 cm, as normals where
    # the windows straddle floor and wall tilt the gravity estimate by about 0.1 degree.
    assert np.all(height[floor] <= 1)
    below_saturation = wall & (scene["height"] < 2.5)
    true_cm = scene["height"][below_saturation] * 100.0
    assert np.abs(height[below_saturation] - true_cm).max() <= 1.0
    slope, _ = np.polyfit(true_cm, height[below_saturation], 1)
    assert slope == pytest.approx(1.0, abs=0.01)
    assert true_cm.max() - true_cm.min() > 100  # the wall spans more than a metre of height

    # Disparity 31000 / depth in cm, with depth clamped at 100 cm.
    expected = np.clip(np.floor(31000.0 / np.maximum(scene["depth"] * 100, 100) + 0.5), 0, 255)
    assert np.array_equal(disparity, expected)


def test_gravity_estimate_recovers_the_tilt(room):
    scene = room(pitch_deg=35.0, roll_deg=-12.0)
    points = hha.backproject(scene["depth"], _intrinsics(scene))
    down = hha.estimate_gravity(hha.surface_normals(points, 10, stride=2))
    # The camera's y axis, the starting point, is 35+ degrees off; the estimate must not stay there.
    assert np.degrees(np.arccos(np.clip(down @ scene["down"], -1, 1))) < 0.5


def test_fronto_parallel_wall_has_constant_disparity():
    depth = np.full((120, 160), 2.5)
    encoded = hha.encode_hha(depth, hha.Intrinsics(140.0, 140.0, 79.5, 59.5))
    assert np.all(encoded[..., 0] == 124)  # 31000 / 250 cm
    # A wall facing the camera is vertical for a level camera: 90 degrees from gravity.
    assert np.all(encoded[..., 2] == 128)


def test_a_scene_without_floor_takes_the_floor_130_cm_below_the_camera():
    """Gupta et al.'s processDepthImage.m: a lowest point less than 90 cm below the camera is no
    floor (before: heights above the wall's own lowest point, 60 to 80 levels off)."""
    depth = np.full((120, 160), 1.0)  # a wall 1 m away, level camera: its lowest point ~43 cm below
    intrinsics = hha.Intrinsics(140.0, 140.0, 79.5, 59.5)
    level = (0.0, 1.0, 0.0)
    encoded = hha.encode_hha(depth, intrinsics, gravity=level)
    assert encoded[60, 80, 1] == 130  # the camera's height above the assumed floor
    assert encoded[119, 80, 1] == 88  # the bottom row, 59.5 / 140 m (42.5 cm) below the camera
    lowest = hha.encode_hha(depth, intrinsics, gravity=level, assume_floor=False)
    assert lowest[119, 80, 1] == 0 and lowest[60, 80, 1] == 42


def test_units_give_the_same_encoding(room):
    scene = room(height=96, width=128, focal=105.0)
    metres = hha.encode_hha(scene["depth"], _intrinsics(scene), units="m")
    millimetres = hha.encode_hha(scene["depth"] * 1000.0, _intrinsics(scene), units="mm")
    assert np.array_equal(metres, millimetres)


def test_missing_depth_is_zero_in_every_channel(room):
    scene = room(height=96, width=128, focal=105.0)
    depth = scene["depth"].copy()
    depth[40:50, 60:70] = 0.0
    depth[10, 10] = np.nan
    encoded = hha.encode_hha(depth, _intrinsics(scene))
    assert np.all(encoded[40:50, 60:70] == 0)
    assert np.all(encoded[10, 10] == 0)
    assert np.all(encoded[..., 0][depth > 0] > 0)


def test_all_missing_gives_zeros():
    encoded = hha.encode_hha(np.zeros((20, 30)), hha.Intrinsics(30.0, 30.0, 15.0, 10.0))
    assert encoded.shape == (20, 30, 3) and encoded.dtype == np.uint8
    assert not encoded.any()


def test_smallest_eigenvectors_match_eigh():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 3, 3))
    matrices = a @ a.transpose(0, 2, 1)
    _, vectors = np.linalg.eigh(matrices)
    got = hha.smallest_eigenvectors(
        matrices[:, 0, 0], matrices[:, 0, 1], matrices[:, 0, 2],
        matrices[:, 1, 1], matrices[:, 1, 2], matrices[:, 2, 2],
    )
    np.testing.assert_allclose(np.abs(np.sum(got * vectors[..., 0], axis=-1)), 1.0, atol=1e-9)


def test_smallest_eigenvector_of_repeated_eigenvalue_is_undetermined():
    got = hha.smallest_eigenvectors(*(np.array([v]) for v in (2.0, 0.0, 0.0, 2.0, 0.0, 2.0)))
    assert np.all(np.isnan(got))


def test_normals_of_a_slanted_plane():
    # Plane z = 2 + 0.5 x (metres) in the camera frame; normal (0.5, 0, -1) normalised, facing
    # the camera.
    intrinsics = hha.Intrinsics(100.0, 100.0, 40.0, 30.0)
    v, u = np.mgrid[0:60, 0:80].astype(np.float64)
    a = (u - intrinsics.cx) / intrinsics.fx
    depth = 2.0 / (1.0 - 0.5 * a)
    normals = hha.surface_normals(hha.backproject(depth, intrinsics), 3)
    expected = np.array([0.5, 0.0, -1.0]) / np.sqrt(1.25)
    np.testing.assert_allclose(normals.reshape(-1, 3), np.tile(expected, (60 * 80, 1)), atol=1e-6)


def test_intrinsics_scaling_keeps_the_image_centre():
    preset = hha.get_intrinsics("scannet")
    half = preset.scaled_to(320, 240)
    assert half.fx == pytest.approx(preset.fx / 2)
    assert half.cx == pytest.approx(159.5) and half.cy == pytest.approx(119.5)
    assert hha.get_intrinsics("scannet", (320, 240)) == half
    with pytest.raises(ValueError, match="unknown intrinsics preset 'kitti'"):
        hha.get_intrinsics("kitti")
    with pytest.raises(ValueError, match="fx"):
        hha.Intrinsics(0.0, 1.0, 0.0, 0.0)


def test_read_intrinsics_file(tmp_path):
    scannet = tmp_path / "intrinsic_depth.txt"
    scannet.write_text(
        "577.870605 0.000000 319.500000 0.000000\n0.000000 577.870605 239.500000 0.000000\n"
        "0.000000 0.000000 1.000000 0.000000\n0.000000 0.000000 0.000000 1.000000\n"
    )
    intrinsics = hha.read_intrinsics_file(scannet, (640, 480))
    assert intrinsics == hha.INTRINSICS_PRESETS["scannet"]
    # SUN RGB-D's files count pixels from 1, as its MATLAB toolbox does.
    sunrgbd = tmp_path / "sunrgbd.txt"
    sunrgbd.write_text("518.857901 0 284.582449\n0 519.469611 208.736166\n0 0 1\n")
    intrinsics = hha.read_intrinsics_file(sunrgbd, one_based=True)
    assert (intrinsics.cx, intrinsics.cy) == pytest.approx((283.582449, 207.736166))
    broken = tmp_path / "intrinsics.txt"
    broken.write_text("1 2 3\n4 5 6\n")
    with pytest.raises(InputFileError, match="intrinsics.txt"):
        hha.read_intrinsics_file(broken)


def test_the_nyuv2_preset_back_projects_as_the_original_code_does():
    """The NYU toolbox's principal point counts pixels from 1 (getPointCloudFromZ.m back-projects
    with `meshgrid(1:W, 1:H)`); taken as counting from 0, every ray was tilted by 1/519 rad and a
    quarter of the height channel's values were one off from the original code's (helper 176)."""
    depth = np.random.default_rng(0).uniform(1.0, 5.0, (480, 640))
    columns, rows = np.meshgrid(np.arange(1, 641), np.arange(1, 481))  # MATLAB's pixel numbers
    points = hha.backproject(depth, hha.INTRINSICS_PRESETS["nyuv2"])
    np.testing.assert_allclose(points[..., 0], (columns - 325.5824) * depth / 518.8579, rtol=0, atol=1e-9)
    np.testing.assert_allclose(points[..., 1], (rows - 253.7362) * depth / 519.4696, rtol=0, atol=1e-9)


def test_bad_arguments_are_named():
    intrinsics = hha.Intrinsics(10.0, 10.0, 5.0, 5.0)
    with pytest.raises(ValueError, match="2-D"):
        hha.encode_hha(np.ones((4, 4, 3)), intrinsics)
    with pytest.raises(ValueError, match="normal_radius"):
        hha.encode_hha(np.ones((10, 10)), intrinsics, normal_radius=0)
    with pytest.raises(ValueError, match="units"):
        hha.encode_hha(np.ones((10, 10)), intrinsics, units="furlong")


def test_vga_frame_is_fast(room):
    scene = room(height=480, width=640, focal=525.0)
    intrinsics = _intrinsics(scene)
    hha.encode_hha(scene["depth"], intrinsics)  # warm-up
    start = time.process_time()
    hha.encode_hha(scene["depth"], intrinsics)
    # About 0.3 s of CPU on a laptop core; a per-pixel Python loop would take minutes.
    assert time.process_time() - start < 3.0


@pytest.mark.parametrize("size, message", [((0, 480), "width must be a positive whole number"),
                                           ((640, -1), "height must be a positive whole number"),
                                           ((640, None), "given together")])
def test_intrinsics_image_size_is_checked(size, message):
    """Helper 160: a width of 0 passed and `scaled_to` divided by it (ZeroDivisionError)."""
    with pytest.raises(ValueError, match=message):
        hha.Intrinsics(500.0, 500.0, 320.0, 240.0, *size)
