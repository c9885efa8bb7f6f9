"""Reading raw inputs and writing outputs: round trips, and errors that name the file."""

import os
import stat

import numpy as np
import pytest
from PIL import Image

from ssma_tf.modalities import io


def test_uint16_png_round_trip(tmp_path):
    depth = np.array([[0, 1, 7000], [65535, 300, 4]], dtype=np.uint16)
    path = tmp_path / "depth.png"
    io.write_depth(path, depth.astype(np.float32))
    with Image.open(path) as image:
        assert image.mode.startswith("I;16")
    read = io.read_depth(path)
    assert read.dtype == np.float32
    np.testing.assert_array_equal(read, depth)


def test_npy_depth_round_trip(tmp_path):
    depth = np.array([[0.0, 1.25], [np.nan, 3.5]], dtype=np.float32)
    path = tmp_path / "depth.npy"
    io.write_depth(path, depth)
    np.testing.assert_array_equal(io.read_depth(path), depth)


def test_depth_errors_name_the_file(tmp_path):
    rgb = tmp_path / "colour.png"
    Image.fromarray(np.zeros((4, 5, 3), dtype=np.uint8)).save(rgb)
    with pytest.raises(io.InputFileError, match=r"colour\.png.*single-channel"):
        io.read_depth(rgb)
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"not a png at all")
    with pytest.raises(io.InputFileError, match=r"garbage\.png"):
        io.read_depth(garbage)
    truncated = tmp_path / "truncated.png"
    Image.fromarray(np.arange(4000, dtype=np.uint16).reshape(40, 100)).save(tmp_path / "whole.png")
    truncated.write_bytes((tmp_path / "whole.png").read_bytes()[:200])
    with pytest.raises(io.InputFileError, match=r"truncated\.png"):
        io.read_depth(truncated)
    with pytest.raises(io.InputFileError, match=r"absent\.png.*no such file"):
        io.read_depth(tmp_path / "absent.png")
    cube = tmp_path / "cube.npy"
    np.save(cube, np.zeros((2, 3, 4)))
    with pytest.raises(io.InputFileError, match=r"cube\.npy.*\(2, 3, 4\)"):
        io.read_depth(cube)


def test_write_png_never_overwrites_unless_asked(tmp_path):
    path = tmp_path / "out" / "image.png"
    first = np.zeros((3, 4, 3), dtype=np.uint8)
    io.write_png(path, first)
    with pytest.raises(io.OutputExistsError, match=r"image\.png"):
        io.write_png(path, first + 7)
    np.testing.assert_array_equal(np.asarray(Image.open(path)), first)
    io.write_png(path, first + 7, overwrite=True)
    np.testing.assert_array_equal(np.asarray(Image.open(path)), first + 7)
    assert sorted(p.name for p in path.parent.iterdir()) == ["image.png"]  # no temporary left


def test_write_png_takes_every_picture_layout_and_a_compression_level(tmp_path):
    rgba = np.arange(3 * 4 * 4, dtype=np.uint8).reshape(3, 4, 4)
    io.write_png(tmp_path / "rgba.png", rgba, compress_level=1)
    io.write_png(tmp_path / "ids.png", rgba[..., :1])
    io.write_png(tmp_path / "deep.png", np.full((3, 4), 40000, np.uint16))
    with Image.open(tmp_path / "rgba.png") as image:
        assert image.mode == "RGBA"
        np.testing.assert_array_equal(np.asarray(image), rgba)
    with Image.open(tmp_path / "ids.png") as image:
        np.testing.assert_array_equal(np.asarray(image), rgba[..., 0])
    with Image.open(tmp_path / "deep.png") as image:
        assert int(np.asarray(image).max()) == 40000
    with pytest.raises(ValueError, match=r"bad\.png.*compress_level"):
        io.write_png(tmp_path / "bad.png", rgba, compress_level=10)
    with pytest.raises(ValueError, match=r"bad\.png.*uint16 of shape \(H, W\); got uint16 of shape \(3, 4, 3\)"):
        io.write_png(tmp_path / "bad.png", np.zeros((3, 4, 3), np.uint16))
    assert not (tmp_path / "bad.png").exists()


def test_outputs_are_readable_like_any_other_file(tmp_path):
    # The temporary-then-rename used to go through mkstemp, which left every output -rw-------.
    old = os.umask(0o022)
    try:
        io.write_png(tmp_path / "a.png", np.zeros((3, 4), dtype=np.uint8))
        io.write_depth(tmp_path / "d.npy", np.ones((3, 4)))
    finally:
        os.umask(old)
    for name in ("a.png", "d.npy"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o644, name


def test_write_depth_refuses_values_beyond_16_bits(tmp_path):
    with pytest.raises(ValueError, match=r"big\.png.*16-bit"):
        io.write_depth(tmp_path / "big.png", np.array([[70000.0]]))


def test_read_nir_rgb(tmp_path):
    nir = np.array([[255, 0]], dtype=np.uint8)
    rgb = np.array([[[51, 0, 102], [0, 0, 0]]], dtype=np.uint8)
    Image.fromarray(nir).save(tmp_path / "nir.png")
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    n, r, b = io.read_nir_rgb(tmp_path / "nir.png", tmp_path / "rgb.png")
    np.testing.assert_allclose(n, [[1.0, 0.0]])
    np.testing.assert_allclose(r, [[0.2, 0.0]])
    np.testing.assert_allclose(b, [[0.4, 0.0]])
    Image.fromarray(np.zeros((3, 2), dtype=np.uint8)).save(tmp_path / "small.png")
    with pytest.raises(io.InputFileError, match=r"small\.png.*rgb\.png"):
        io.read_nir_rgb(tmp_path / "small.png", tmp_path / "rgb.png")
    with pytest.raises(io.InputFileError, match=r"nir\.png.*single channel"):
        io.read_nir_rgb(tmp_path / "nir.png", tmp_path / "nir.png")


def test_sunrgbd_depth_rotation():
    millimetres = np.array([[0, 1, 2500, 8191]], dtype=np.uint32)
    stored = ((millimetres << 3) | (millimetres >> 13)) & 0xFFFF
    np.testing.assert_array_equal(io.sunrgbd_depth_to_mm(stored.astype(np.float32)), millimetres)
    assert io.sunrgbd_depth_to_mm(np.array([[8.0]]))[0, 0] == 1.0  # not just a copy
    with pytest.raises(ValueError, match="16-bit"):
        io.sunrgbd_depth_to_mm(np.array([[1.5]]))


@pytest.mark.parametrize("mode, said", [("P", "a palette (colour-indexed) image: a label or a picture, not depth?"),
                                        ("1", "a 1-bit (black and white) image: a mask, not depth?"),
                                        ("RGB", "Pillow mode 'RGB' with 3 channel(s)")])
def test_an_image_that_is_not_depth_is_named_for_what_it_is(tmp_path, mode, said):
    """Before: a palette image was refused as not single-channel "with 1 channel(s)" (helper 140)."""
    path = tmp_path / "odd.png"
    Image.new(mode, (48, 32)).save(path)
    with pytest.raises(io.InputFileError) as raised:
        io.read_depth(path)
    assert str(raised.value) == (f"depth '{path}' must be a single-channel image (16-bit, 8-bit, 32-bit or float), "
                                 f"got {said} of 32x48 (height x width)")


def test_write_depth_refuses_what_rounds_past_16_bits(tmp_path):
    """Helper 160: 65535.5 passed the range check, rounded to 65536 and was written as 0 (missing)."""
    with pytest.raises(ValueError, match=r"edge\.png.*65535"):
        io.write_depth(tmp_path / "edge.png", np.array([[1000.0, 65535.5]]))
    assert not (tmp_path / "edge.png").exists()
    io.write_depth(tmp_path / "top.png", np.array([[1000.0, 65535.4]]))
    np.testing.assert_array_equal(io.read_depth(tmp_path / "top.png"), [[1000, 65535]])
