"""tools/prepare_modality.py end to end on tiny folders: outputs, list files, errors, overwriting."""

import io
import re
import shutil
import pathlib

import numpy as np
import pytest
from PIL import Image

from ssma_tf.modalities import colorize, completion, hha


def _save(path: pathlib.Path, array: np.ndarray) -> pathlib.Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


@pytest.fixture
def scannet_like(tmp_path, room):
    """A ScanNet-like layout: color/N.jpg, depth/N.png (uint16 mm, with holes), label/N.png."""
    scene = room(height=48, width=64, focal=52.5)
    depth_mm = np.round(scene["depth"] * 1000.0).astype(np.uint16)
    for i in range(3):
        holey = depth_mm.copy()
        holey[10 + i:14 + i, 20:26] = 0
        _save(tmp_path / "depth" / f"{i}.png", holey)
        _save(tmp_path / "color" / f"{i}.jpg", np.full((48, 64, 3), 40 * i, dtype=np.uint8))
        _save(tmp_path / "label" / f"{i}.png", np.full((48, 64), i, dtype=np.uint8))
    return tmp_path


def _rows(list_file: pathlib.Path):
    return [line.split() for line in list_file.read_text().splitlines()]


def test_gray_folder_to_fusion_list(scannet_like, prepare_modality):
    root = scannet_like
    status = prepare_modality([
        "gray", str(root / "depth"), "-o", str(root / "depth_gray"), "--fill", "--units", "mm",
        "--max", "7000", "--modality1-dir", str(root / "color"), "--label-dir", str(root / "label"),
        "--list-file", str(root / "lists" / "train.txt"), "--quiet",
    ])
    assert status == 0
    # Paths relative to the list file's folder, modality1 modality2 label.
    assert _rows(root / "lists" / "train.txt") == [
        [f"../color/{i}.jpg", f"../depth_gray/{i}.png", f"../label/{i}.png"] for i in range(3)
    ]
    image = np.asarray(Image.open(root / "depth_gray" / "0.png"))
    assert image.shape == (48, 64, 3) and image.dtype == np.uint8
    raw = np.asarray(Image.open(root / "depth" / "0.png")).astype(np.float32)
    expected = colorize.gray(completion.fill_depth(raw, units="mm"), vmax=7000.0)
    np.testing.assert_array_equal(image, expected)
    assert np.any(raw == 0) and np.all(image > 0)  # the holes were filled


def test_unimodal_list_and_jet_from_list(scannet_like, prepare_modality):
    root = scannet_like
    assert prepare_modality([
        "jet", str(root / "depth"), "-o", str(root / "jet"), "--max", "7000",
        "--label-dir", str(root / "label"), "--list-file", str(root / "pairs.txt"), "-q",
    ]) == 0
    assert _rows(root / "pairs.txt")[1] == ["jet/1.png", "label/1.png"]
    expected = colorize.jet(np.asarray(Image.open(root / "depth" / "1.png")).astype(np.float32), vmax=7000)
    np.testing.assert_array_equal(np.asarray(Image.open(root / "jet" / "1.png")), expected)

    # From a list: the raw column (1) is replaced, the other columns kept.
    (root / "raw.txt").write_text(
        "".join(f"color/{i}.jpg depth/{i}.png label/{i}.png\n" for i in range(3))
    )
    assert prepare_modality([
        "jet", "--from-list", str(root / "raw.txt"), "--column", "1", "-o", str(root / "out" / "jet"),
        "--percentiles", "1", "99", "--invert", "--list-file", str(root / "out" / "train.txt"), "-q",
    ]) == 0
    assert _rows(root / "out" / "train.txt")[2] == ["../color/2.jpg", "jet/2.png", "../label/2.png"]


def test_hha_with_scaled_preset_and_fill_outputs(scannet_like, prepare_modality, capsys):
    root = scannet_like
    assert prepare_modality([
        "hha", str(root / "depth"), "-o", str(root / "hha"), "--units", "mm", "--preset", "scannet",
        "--fill", "-q",
    ]) == 0
    assert capsys.readouterr().err == ""  # 640x480 to 64x48: the same aspect ratio
    # Depth of another aspect ratio than the preset's (cropped?): scaled, with a warning (before:
    # the information line only, and not with -q).
    _save(root / "wide" / "0.png", np.asarray(Image.open(root / "depth" / "0.png"))[8:40])
    assert prepare_modality(["hha", str(root / "wide"), "-o", str(root / "wide_hha"), "--units", "mm", "--preset",
                             "scannet", "-q"]) == 0
    assert capsys.readouterr().err == (
        "warning: the intrinsics are for 640x480 images and the depth is 64x32 (width x height), another aspect ratio: "
        "scaled by "
        "0.1 across and 0.0667 down, which is right if the depth was resized, and wrong if it was cropped (then "
        "give the crop's --intrinsics FX FY CX CY)\n")
    depth = np.asarray(Image.open(root / "depth" / "2.png")).astype(np.float32)
    expected = hha.encode_hha(
        completion.fill_depth(depth, units="mm"), hha.get_intrinsics("scannet", (64, 48)), units="mm"
    )
    np.testing.assert_array_equal(np.asarray(Image.open(root / "hha" / "2.png")), expected)
    # ScanNet's 640x480 matrix given as numbers for the 64x48 depth: the principal point lies far
    # outside it (before: HHA of a wrong geometry, without a word); once for the run.
    assert prepare_modality(["hha", str(root / "depth"), "-o", str(root / "big_hha"), "--units", "mm",
                             "--intrinsics", "577.87", "577.87", "319.5", "239.5", "--fill", "-q"]) == 0
    assert capsys.readouterr().err == (
        "warning: the intrinsics put the principal point at column 319.5, row 239.5, far from the middle of the "
        "depth of 64 columns by 48 rows: are they for larger images? Give that image's size with --intrinsics-size "
        "WIDTH HEIGHT and they are scaled to the depth (for a crop, the crop's own intrinsics are right as given)\n")
    # Those of 80x60 images for the 64x48 depth (a downscale by 0.8): the point lies inside, near
    # the corner (before: no warning, the HHA of a camera with a 1.25 times longer focal length).
    assert prepare_modality(["hha", str(root / "depth"), "-o", str(root / "near_hha"), "--units", "mm",
                             "--intrinsics", "72.2", "72.2", "39.5", "29.5", "--fill", "-q"]) == 0
    assert "principal point at column 39.5, row 29.5, far from the middle" in capsys.readouterr().err
    assert prepare_modality(["hha", str(root / "depth"), "-o", str(root / "right_hha"), "--units", "mm",
                             "--intrinsics", "57.8", "57.8", "31.5", "23.5", "--fill", "-q"]) == 0
    assert capsys.readouterr().err == ""

    assert prepare_modality([
        "fill", str(root / "depth"), "-o", str(root / "filled"), "--units", "mm", "-q",
    ]) == 0
    filled = Image.open(root / "filled" / "0.png")
    assert filled.mode.startswith("I;16")
    assert np.all(np.asarray(filled) > 0)
    assert prepare_modality([
        "fill", str(root / "depth" / "0.png"), "-o", str(root / "filled_npy"), "--units", "mm",
        "--format", "npy", "-q",
    ]) == 0
    assert np.load(root / "filled_npy" / "0.npy").dtype == np.float32


def test_ndvi_and_evi_of_known_pixels(tmp_path, prepare_modality):
    # 8-bit NIR 153, red 51, blue 26: reflectances 0.6, 0.2 and about 0.102.
    nir = np.full((4, 5), 153, dtype=np.uint8)
    rgb = np.zeros((4, 5, 3), dtype=np.uint8)
    rgb[..., 0], rgb[..., 2] = 51, 26
    _save(tmp_path / "nir" / "a_nir.png", nir)
    _save(tmp_path / "rgb" / "a_rgb.png", rgb)
    common = ["--input-suffix", "_nir", "--rgb-dir", str(tmp_path / "rgb"), "--rgb-suffix", "_rgb", "-q"]
    assert prepare_modality(["ndvi", str(tmp_path / "nir"), "-o", str(tmp_path / "ndvi"), *common]) == 0
    assert prepare_modality(["evi", str(tmp_path / "nir"), "-o", str(tmp_path / "evi"), *common]) == 0
    n, r, b = 153 / 255, 51 / 255, 26 / 255
    ndvi = (n - r) / (n + r)
    evi = 2.5 * (n - r) / (n + 6 * r - 7.5 * b + 1)
    for name, value in (("ndvi", ndvi), ("evi", evi)):
        image = np.asarray(Image.open(tmp_path / name / "a.png"))
        assert image.shape == (4, 5, 3)
        assert np.all(image == np.floor((value + 1) / 2 * 255 + 0.5))


def test_a_float_nir_image_and_one_max_value_for_two_bit_depths_are_refused(tmp_path, prepare_modality, capsys):
    """Before: a float reflectance TIFF was cut to whole numbers (NDVI -1 everywhere); one
    --max-value divided a 16-bit NIR and an 8-bit RGB image alike (no value gave the index)."""
    rgb = np.zeros((4, 5, 3), dtype=np.uint8)
    rgb[..., 0] = 26
    _save(tmp_path / "rgb" / "a.png", rgb)
    (tmp_path / "nirf").mkdir()
    Image.fromarray(np.full((4, 5), 0.6, np.float32), mode="F").save(tmp_path / "nirf" / "a.tif")
    assert prepare_modality(["ndvi", str(tmp_path / "nirf"), "-o", str(tmp_path / "o1"), "--rgb-dir",
                             str(tmp_path / "rgb"), "-q"]) == 2
    assert "holds fractional values (a float image, mode 'F')" in capsys.readouterr().err
    _save(tmp_path / "nir16" / "a.png", np.full((4, 5), 2457, np.uint16))
    assert prepare_modality(["ndvi", str(tmp_path / "nir16"), "-o", str(tmp_path / "o2"), "--rgb-dir",
                             str(tmp_path / "rgb"), "--max-value", "4095", "-q"]) == 2
    assert "(16-bit) and the RGB image" in capsys.readouterr().err and not (tmp_path / "o2").exists()


@pytest.mark.parametrize("extra, message", [
    (["--column", "0"], "--column 0 is also --rgb-column: give the column of the NIR images as --column"),
    (["--rgb-dir", "rgb"], "--rgb-dir/--rgb-suffix pair folder inputs; with --from-list the RGB images are the list's "
                           "--rgb-column"),
])
def test_a_vegetation_index_from_a_list_refuses_what_it_would_ignore(tmp_path, prepare_modality, capsys, extra,
                                                                      message):
    """Helper 86: --column equal to --rgb-column read red from the NIR file (a flat 128 picture);
    --rgb-dir was accepted and ignored."""
    (tmp_path / "list.txt").write_text("rgb/a.png nir/a.png\n")
    with pytest.raises(SystemExit) as exit_info:
        prepare_modality(["ndvi", "--from-list", str(tmp_path / "list.txt"), "-o", str(tmp_path / "out"), *extra])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("extra, message", [
    (["--input-suffix", "_disparity"], "--input-suffix pairs folder inputs; with --from-list the list's paths are "
                                       "taken as they are"),
    (["--recursive", "--label-suffix", "_x"], "--recursive/--label-suffix pair folder inputs"),
    (["--modality1-suffix", "_rgb"], "--modality1-suffix pairs folder inputs"),
])
def test_a_list_run_refuses_the_folder_pairing_flags_it_would_ignore(tmp_path, prepare_modality, capsys, extra,
                                                                     message):
    """Helper 263: with --from-list, --input-suffix, --recursive and the suffixes were taken and
    read by nothing (a list's `aachen_0_disparity.png` kept its suffix, the folder run's did not)."""
    (tmp_path / "list.txt").write_text("rgb/a.png depth/a_disparity.png label/a.png\n")
    with pytest.raises(SystemExit) as exit_info:
        prepare_modality(["jet", "--from-list", str(tmp_path / "list.txt"), "--column", "1", "-o",
                          str(tmp_path / "out"), "--max", "32768", *extra])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("flags, message", [
    (["gray", "--max", "7000", "--column", "0"], "--column picks a column of --from-list"),
    (["ndvi", "--rgb-dir", "RGB", "--rgb-column", "2"], "--rgb-column picks a column of --from-list"),
    (["evi", "--rgb-dir", "RGB", "--column", "1", "--rgb-column", "0"], "--column/--rgb-column pick a column"),
])
def test_a_folder_run_refuses_the_column_flags_it_would_ignore(tmp_path, prepare_modality, capsys, flags, message):
    """Helper 357: --column and --rgb-column were accepted without --from-list and read by nothing."""
    _save(tmp_path / "in" / "a.png", np.full((4, 6), 3000, np.uint16))
    (tmp_path / "RGB").mkdir()
    command = [flags[0], str(tmp_path / "in"), "-o", str(tmp_path / "out"),
               *[str(tmp_path / "RGB") if flag == "RGB" else flag for flag in flags[1:]]]
    with pytest.raises(SystemExit) as exit_info:
        prepare_modality(command)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("flags, read_as_depth", [
    (["jet", "--missing-color", "255", "255", "255"], True), (["jet", "--missing-color", "0", "0", "128"], True),
    (["jet", "--missing-color", "20", "0", "40"], False), (["gray", "--missing-value", "255"], True),
    (["gray", "--missing-value", "0"], False)])
def test_a_missing_colour_that_depth_decoding_reads_as_depth_is_warned_of(tmp_path, prepare_modality, capsys, flags,
                                                                           read_as_depth):
    """Helper 265: a missing colour other than black was read by DepthMix, depth pretraining and
    label selection as measured depth (holes pasted as the nearest surface), without a word."""
    from ssma_tf.semi_supervised.mixing import decode_nearness

    depth = np.full((4, 6), 3000, np.uint16)
    depth[0, :2] = 0
    _save(tmp_path / "depth" / "a.png", depth)
    assert prepare_modality([*flags[:1], str(tmp_path / "depth"), "-o", str(tmp_path / "out"), "--max", "7000",
                             *flags[1:], "-q"]) == 0
    warned = "read only black" in capsys.readouterr().err
    assert warned == read_as_depth
    # The warning says what the decoder does: the hole's colour is read as depth exactly when warned.
    rgb = np.asarray(Image.open(tmp_path / "out" / "a.png").convert("RGB"), np.float32)
    _, valid, _ = decode_nearness(rgb[None, ..., ::-1], "jet_near_blue" if flags[0] == "jet" else "gray_near_dark")
    assert bool(valid[0, 0, 0]) == read_as_depth and bool(valid[0, 3, 5])


def test_unreadable_input_is_named(scannet_like, prepare_modality, capsys):
    root = scannet_like
    (root / "depth" / "9.png").write_bytes(b"\x89PNG but not really")
    status = prepare_modality(["jet", str(root / "depth"), "-o", str(root / "jet"), "--max", "7000", "-q"])
    assert status == 2
    assert str(root / "depth" / "9.png") in capsys.readouterr().err


def test_an_empty_output_path_is_refused_not_taken_for_the_current_folder(scannet_like, prepare_modality, capsys,
                                                                          monkeypatch):
    """`-o "$OUT"` with OUT unset: pathlib.Path("") is ".", and the outputs were written into the
    current folder, exit 0 (helper 346)."""
    monkeypatch.chdir(scannet_like)
    before = sorted(p.name for p in scannet_like.iterdir())
    with pytest.raises(SystemExit) as stopped:
        prepare_modality(["jet", str(scannet_like / "depth"), "-o", "", "--max", "7000", "-q"])
    assert stopped.value.code == 2
    assert "argument -o/--output-dir: an empty path: give a file or folder name" in capsys.readouterr().err
    assert sorted(p.name for p in scannet_like.iterdir()) == before


def test_a_run_that_fails_on_its_first_input_leaves_no_output_folder(scannet_like, prepare_modality, capsys):
    """Before: an empty output folder (nested ones too) with an empty sources file."""
    root = scannet_like
    _save(root / "bad" / "a" / "0.png", np.zeros((48, 64, 3), dtype=np.uint8))  # the first
    _save(root / "bad" / "b" / "0.png", np.zeros((48, 64), dtype=np.uint16))
    assert prepare_modality(["jet", str(root / "bad"), "-o", str(root / "out" / "jet"), "--max", "7000",
                             "--recursive", "-q"]) == 2
    assert "single-channel" in capsys.readouterr().err and not (root / "out").exists()
    (root / "kept").mkdir()  # a folder of the user's stays
    assert prepare_modality(["jet", str(root / "bad"), "-o", str(root / "kept"), "--max", "7000", "--recursive",
                             "-q"]) == 2
    assert (root / "kept").is_dir() and not list((root / "kept").iterdir())


def test_one_input_on_two_lines_is_named_and_a_repeated_line_converted_once(scannet_like, prepare_modality, capsys):
    """Helper 69: a depth map pasted on two lines beside other colour images gave "'0.png' exists
    already (pass --overwrite ...)", an output of this run; with --overwrite two samples shared
    one depth map, exit 0, without a word. Helper 70: as an error, one depth map for two
    exposures of a scene could not be prepared at all; it is a warning naming both lines."""
    root = scannet_like
    (root / "raw.txt").write_text("color/0.jpg depth/0.png label/0.png\ncolor/1.jpg depth/0.png label/1.png\n")
    args = ["gray", "--from-list", str(root / "raw.txt"), "--column", "1", "-o", str(root / "out"), "--max", "7000",
            "-q", "--list-file", str(root / "out.txt")]
    both = (f"raw.txt, lines 1 and 2: both list '{root / 'depth' / '0.png'}' as column 1's input, beside other files "
            f"(line 2: '{root / 'color' / '1.jpg'}', '{root / 'label' / '1.png'}')")
    assert prepare_modality(args) == 0
    error = capsys.readouterr().err
    assert error.startswith("warning: ") and (f"{both}: the two samples share its one output; if one of the lines is "
                                              "a copy-paste slip, correct it") in error
    assert sorted(p.name for p in (root / "out").glob("*.png")) == ["0.png"]
    assert [row[1] for row in _rows(root / "out.txt")] == ["out/0.png"] * 2
    # Called as a library without `warn`, and for a vegetation index whose companions differ (the
    # one output cannot be made from both), it is an error.
    from ssma_tf.errors import UserInputError
    from ssma_tf.modalities import batch

    with pytest.raises(UserInputError, match=re.escape(f"{both}: each sample needs its own input; is one of the "
                                                       "lines a copy-paste slip?")):
        batch.plan_list_jobs(root / "raw.txt", root / "out2", column=1, output_extension=lambda source: ".png")
    with pytest.raises(UserInputError, match=re.escape(
            f"{both}: its one output is made from it and column 0's companion, but the lines give two companions "
            f"('{root / 'color' / '0.jpg'}', '{root / 'color' / '1.jpg'}')")):
        batch.plan_list_jobs(root / "raw.txt", root / "out2", column=1, output_extension=lambda source: ".png",
                             companion_column=0, warn=pytest.fail)
    shutil.rmtree(root / "out")
    (root / "out.txt").unlink()
    # The same line twice: one sample twice (ssma-convert warns of that), written once, listed twice.
    (root / "raw.txt").write_text("color/0.jpg depth/0.png label/0.png\n" * 2)
    assert prepare_modality(args) == 0
    assert capsys.readouterr().err == ""
    assert sorted(p.name for p in (root / "out").glob("*.png")) == ["0.png"]
    assert len(_rows(root / "out.txt")) == 2


def test_a_listed_input_that_is_not_there_is_named_with_its_line(scannet_like, prepare_modality, capsys):
    """Before: "cannot read depth '01/depth/0.png': no such file" at its turn, without the line or
    a word about spaces; rows cut at a path's spaces differently said "3: 6 paths" alone."""
    root = scannet_like
    spaced = root / "scene 01"
    for name in ("color", "depth", "label"):
        (spaced / name).mkdir(parents=True)
        (spaced / name / "0.png").write_bytes((root / name / ("0.jpg" if name == "color" else "0.png")).read_bytes())
    lines = ["color/0.jpg depth/0.png label/0.png", "scene 01/color/0.png scene 01/depth/0.png scene 01/label/0.png"]
    (root / "raw.txt").write_text("\n".join(lines) + "\n")
    args = ["gray", "--from-list", str(root / "raw.txt"), "--column", "1", "-o", str(root / "out"), "--max", "7000",
            "-q"]
    assert prepare_modality(args) == 2
    assert capsys.readouterr().err.strip().endswith(
        "raw.txt, line 2: 6 paths, but the first row has 3 (a path with spaces? quote it or separate the paths by tabs)")
    (root / "raw.txt").write_text(lines[1] + "\n")
    assert prepare_modality(args) == 2
    assert capsys.readouterr().err.strip().endswith(
        f"raw.txt, line 1: column 1's input '{root / '01' / 'color' / '0.png'}' does not exist (a path with spaces? "
        "quote it or separate the paths by tabs)")
    (root / "raw.txt").write_text(lines[0] + "\ncolor/1.jpg depth/7.png label/1.png\n")
    assert prepare_modality(args) == 2
    assert capsys.readouterr().err.strip().endswith(f"raw.txt, line 2: column 1's input '{root / 'depth' / '7.png'}' "
                                                    "does not exist")
    assert not (root / "out").exists()  # found before any conversion


def test_wrong_shape_is_named(scannet_like, prepare_modality, capsys):
    root = scannet_like
    _save(root / "depth" / "3.png", np.zeros((48, 64, 3), dtype=np.uint8))  # RGB among depth maps
    status = prepare_modality(["jet", str(root / "depth"), "-o", str(root / "jet"), "--max", "7000", "-q"])
    assert status == 2
    error = capsys.readouterr().err
    assert str(root / "depth" / "3.png") in error and "single-channel" in error
    status = prepare_modality(["hha", str(root / "color" / "0.jpg"), "-o", str(root / "hha"),
                               "--units", "mm", "--preset", "scannet", "-q"])
    assert status == 2
    assert str(root / "color" / "0.jpg") in capsys.readouterr().err


def test_nir_rgb_size_mismatch_is_named(tmp_path, prepare_modality, capsys):
    _save(tmp_path / "nir" / "a.png", np.zeros((4, 5), dtype=np.uint8))
    _save(tmp_path / "rgb" / "a.png", np.zeros((4, 6, 3), dtype=np.uint8))
    status = prepare_modality(["ndvi", str(tmp_path / "nir"), "-o", str(tmp_path / "out"),
                               "--rgb-dir", str(tmp_path / "rgb"), "-q"])
    assert status == 2
    error = capsys.readouterr().err
    assert str(tmp_path / "nir" / "a.png") in error and str(tmp_path / "rgb" / "a.png") in error


def test_missing_partner_is_named(scannet_like, prepare_modality, capsys):
    root = scannet_like
    (root / "label" / "1.png").unlink()
    status = prepare_modality([
        "jet", str(root / "depth"), "-o", str(root / "jet"), "--max", "7000",
        "--label-dir", str(root / "label"), "--list-file", str(root / "pairs.txt"), "-q",
    ])
    assert status == 2
    assert str(root / "depth" / "1.png") in capsys.readouterr().err
    assert not (root / "jet").exists()  # pairing is checked before any work


def test_a_partner_of_another_size_is_named_before_any_conversion(scannet_like, prepare_modality, capsys):
    """Before, the list was written and `ssma-convert` refused the row after every file was converted."""
    root = scannet_like
    _save(root / "color" / "2.jpg", np.zeros((24, 32, 3), dtype=np.uint8))
    status = prepare_modality([
        "jet", str(root / "depth"), "-o", str(root / "jet"), "--max", "7000", "--modality1-dir", str(root / "color"),
        "--label-dir", str(root / "label"), "--list-file", str(root / "pairs.txt"), "-q",
    ])
    assert status == 2
    assert capsys.readouterr().err == (
        f"ssma-prepare: error: the depth map '{root / 'depth' / '2.png'}' is 48x64 but its partner "
        f"'{root / 'color' / '2.jpg'}' is 24x32 (height x width): ssma-convert takes rows of one size; resize one "
        "of them (a depth map with nearest neighbour) or leave the pair out\n")
    assert not (root / "jet").exists() and not (root / "pairs.txt").exists()
    # A photo stored turned by a quarter with an EXIF orientation is compared as shown, as
    # ssma-convert reads it.
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.zeros((64, 48, 3), dtype=np.uint8)).save(root / "color" / "2.jpg", exif=exif)
    assert prepare_modality([
        "jet", str(root / "depth"), "-o", str(root / "jet_oriented"), "--max", "7000", "--modality1-dir",
        str(root / "color"), "--label-dir", str(root / "label"), "--list-file", str(root / "oriented.txt"), "-q",
    ]) == 0
    # Without a list file there are no partners: the maps are converted.
    assert prepare_modality(["jet", str(root / "depth"), "-o", str(root / "jet"), "--max", "7000", "-q"]) == 0


def test_nothing_is_overwritten_without_overwrite(scannet_like, prepare_modality, capsys):
    root = scannet_like
    args = ["gray", str(root / "depth"), "-o", str(root / "gray"), "--max", "7000",
            "--label-dir", str(root / "label"), "--list-file", str(root / "pairs.txt"), "-q"]
    assert prepare_modality(args) == 0
    before = {p.name: p.read_bytes() for p in (root / "gray").iterdir()}
    list_before = (root / "pairs.txt").read_text()

    # A different range would change every output; without --overwrite nothing changes.
    changed = [a if a != "7000" else "3000" for a in args]
    assert prepare_modality(changed) == 2
    assert "exist" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in (root / "gray").iterdir()} == before

    # Only the list file exists: still refused.
    for path in (root / "gray").iterdir():
        path.unlink()
    assert prepare_modality(changed) == 2
    assert str(root / "pairs.txt") in capsys.readouterr().err
    assert (root / "pairs.txt").read_text() == list_before
    assert not any((root / "gray").iterdir())

    # With --overwrite everything is replaced: 0..3000 mm is a brighter scale than 0..7000 mm.
    assert prepare_modality(changed + ["--overwrite"]) == 0
    old = np.asarray(Image.open(io.BytesIO(before["0.png"])))
    new = np.asarray(Image.open(root / "gray" / "0.png"))
    assert new.mean() > old.mean() + 20
    assert (root / "pairs.txt").read_text() == list_before


def test_an_output_that_is_an_input_is_refused_even_with_overwrite(scannet_like, prepare_modality, capsys):
    """`-o` the input folder with --overwrite replaced the raw 16-bit depth by its 8-bit pictures."""
    root = scannet_like
    raw = {p.name: p.read_bytes() for p in (root / "depth").iterdir()}
    for extra in ([], ["--overwrite"], ["--skip-existing"]):
        assert prepare_modality(["gray", str(root / "depth"), "-o", str(root / "depth"), "--max", "7000", "-q",
                                 *extra]) == 2
        err = capsys.readouterr().err
        assert f"error: the output '{root / 'depth' / '0.png'}' is the input" in err, err
        assert "writing it would replace the raw data; give another --output-dir" in err
    assert {p.name: p.read_bytes() for p in (root / "depth").iterdir()} == raw
    # A list row's colour image written over likewise (`-o` the folder of PNG colour images).
    for i in range(3):
        _save(root / "rgb" / f"{i}.png", np.full((48, 64, 3), 9, dtype=np.uint8))
    colour = (root / "rgb" / "0.png").read_bytes()
    assert prepare_modality(["gray", str(root / "depth"), "-o", str(root / "rgb"), "--max", "7000",
                             "--modality1-dir", str(root / "rgb"), "--label-dir", str(root / "label"),
                             "--list-file", str(root / "x.txt"), "-q", "--overwrite"]) == 2
    assert f"error: the output '{root / 'rgb' / '0.png'}' is the input" in capsys.readouterr().err
    assert (root / "rgb" / "0.png").read_bytes() == colour and not (root / "x.txt").exists()


def test_skip_existing_resumes(scannet_like, prepare_modality):
    root = scannet_like
    args = ["jet", str(root / "depth"), "-o", str(root / "jet"), "--max", "7000", "-q"]
    assert prepare_modality(args) == 0
    (root / "jet" / "1.png").unlink()
    kept = (root / "jet" / "0.png").stat().st_mtime_ns
    assert prepare_modality(args + ["--skip-existing"]) == 0
    assert (root / "jet" / "1.png").exists()
    assert (root / "jet" / "0.png").stat().st_mtime_ns == kept


def test_skip_existing_keeps_only_outputs_of_the_same_conversion(scannet_like, prepare_modality, capsys):
    """Before: a gray run with --skip-existing kept the jet pictures of an earlier run (or of
    another --max), and its list file mixed the two encodings, exit 0."""
    root = scannet_like
    assert prepare_modality(["jet", str(root / "depth"), "-o", str(root / "mix"), "--max", "7000", "-q"]) == 0
    (root / "mix" / "2.png").unlink()
    for other in (["gray", str(root / "depth"), "-o", str(root / "mix"), "--max", "7000"],
                  ["jet", str(root / "depth"), "-o", str(root / "mix"), "--max", "5000"]):
        assert prepare_modality(other + ["--skip-existing", "-q"]) == 2
        err = capsys.readouterr().err
        assert "was made with other settings (" in err and "(2 outputs in all): --skip-existing keeps only" in err, err
        assert not (root / "mix" / "2.png").exists()
    assert "command jet -> gray" in _differences_of(prepare_modality, root, capsys)
    # The same settings spelt otherwise resume (`--units mm` and `--units 1000`).
    filled = ["gray", str(root / "depth"), "-o", str(root / "units"), "--max", "7000", "--fill", "-q"]
    assert prepare_modality(filled + ["--units", "mm"]) == 0
    (root / "units" / "2.png").unlink()
    assert prepare_modality(filled + ["--units", "1000", "--skip-existing"]) == 0
    # Outputs of no recorded conversion are not vouched for either.
    (root / "mix" / ".ssma-prepare-sources").unlink()
    assert prepare_modality(["jet", str(root / "depth"), "-o", str(root / "mix"), "--max", "7000",
                             "--skip-existing", "-q"]) == 2
    assert "has no record of the settings it was made with" in capsys.readouterr().err


def test_skip_existing_remakes_nothing_of_inputs_that_changed_since(scannet_like, prepare_modality, capsys):
    """Helper 357: the record named each output's input by its path alone, and --skip-existing kept
    the pictures of a depth folder filled again with other options, listed with the new depth."""
    import os

    root = scannet_like
    args = ["gray", str(root / "depth"), "-o", str(root / "g"), "--max", "7000", "-q"]
    assert prepare_modality(args) == 0
    (root / "g" / "2.png").unlink()
    # The same bytes under a new time (a copy of the folder) are the same input.
    stat = (root / "depth" / "0.png").stat()
    os.utime(root / "depth" / "0.png", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    kept = (root / "g" / "0.png").read_bytes()
    assert prepare_modality(args + ["--skip-existing"]) == 0
    assert (root / "g" / "0.png").read_bytes() == kept and (root / "g" / "2.png").exists()
    for name in ("0.png", "1.png"):  # other contents, of the same size and another
        depth = np.asarray(Image.open(root / "depth" / name))
        _save(root / "depth" / name, depth // 2 if name == "0.png" else depth[:, :-1].copy())
    assert prepare_modality(args + ["--skip-existing"]) == 2
    err = capsys.readouterr().err
    assert (f"'{root / 'g' / '0.png'}' was made from '{root / 'depth' / '0.png'}' as it was before it changed" in err
            and "(2 outputs in all): --skip-existing keeps only outputs of the inputs as they are" in err), err
    assert (root / "g" / "0.png").read_bytes() == kept
    assert prepare_modality(args + ["--overwrite"]) == 0 and (root / "g" / "0.png").read_bytes() != kept
    assert prepare_modality(args + ["--skip-existing"]) == 0


def test_outputs_written_beside_their_inputs_are_not_taken_for_inputs_again(scannet_like, prepare_modality, capsys):
    """Helper 357: `-o` the input folder with an --output-suffix worked once; its rerun or resume
    took `0_g.png` for a raw input and refused it as the input of `0_g_g.png`."""
    root = scannet_like
    args = ["gray", str(root / "depth"), "-o", str(root / "depth"), "--output-suffix", "_g", "--max", "7000", "-q"]
    assert prepare_modality(args) == 0
    (root / "depth" / "1_g.png").unlink()
    assert prepare_modality(args + ["--skip-existing"]) == 0, capsys.readouterr().err
    assert (root / "depth" / "1_g.png").exists() and not list((root / "depth").glob("*_g_g.png"))
    assert prepare_modality(args + ["--overwrite"]) == 0 and not list((root / "depth").glob("*_g_g.png"))


def _differences_of(prepare_modality, root, capsys) -> str:
    prepare_modality(["gray", str(root / "depth"), "-o", str(root / "mix"), "--max", "7000", "--skip-existing", "-q"])
    return capsys.readouterr().err


def test_fill_refuses_a_png_that_would_round_depth_in_metres(tmp_path, prepare_modality, capsys):
    """Before: 0.3-4.0 m rounded to whole metres, under 0.5 m made 0 ("missing"), exit 0."""
    depth = np.linspace(0.3, 4.0, 16 * 24, dtype=np.float32).reshape(16, 24)
    (tmp_path / "npy").mkdir()
    np.save(tmp_path / "npy" / "a.npy", depth)
    assert prepare_modality(["fill", str(tmp_path / "npy"), "-o", str(tmp_path / "out"), "--units", "m",
                             "--format", "png", "-q"]) == 2
    err = capsys.readouterr().err
    assert re.search(r"cannot write depth .* at 1 unit a metre this depth would be rounded by up to \d+ mm, its values "
                     r"under 0\.5 made missing; write \.npy \(--format npy\), or give the depth in millimetres",
                     err), err
    assert not (tmp_path / "out" / "a.png").exists()
    np.save(tmp_path / "npy" / "a.npy", depth * 1000)  # millimetres: whole units are fine
    assert prepare_modality(["fill", str(tmp_path / "npy"), "-o", str(tmp_path / "out"), "--units", "mm",
                             "--format", "png", "-q"]) == 0


def test_two_lists_into_one_output_folder_never_mix_their_inputs(scannet_like, prepare_modality, capsys):
    """A list of one scene writes its outputs without the scene folder (the inputs' deepest common
    folder is stripped), so a second split's run into the same -o met the first split's files:
    with --skip-existing it exited 0 and its list paired the second split's images with the first
    split's depth."""
    root = scannet_like
    for split, frames in (("train", (0, 1)), ("val", (2,))):
        scene = root / "scans" / split / "depth"
        scene.mkdir(parents=True)
        for new, frame in enumerate(frames):
            (scene / f"{new}.png").write_bytes((root / "depth" / f"{frame}.png").read_bytes())
        (root / f"raw_{split}.txt").write_text(
            "".join(f"color/{i}.jpg scans/{split}/depth/{i}.png label/{i}.png\n" for i in range(len(frames))))

    def run(split, *extra):
        return prepare_modality(["jet", "--from-list", str(root / f"raw_{split}.txt"), "--column", "1", "-o",
                                 str(root / "jet"), "--max", "7000", "--list-file", str(root / f"{split}.txt"),
                                 "-q", *extra])

    assert run("train") == 0
    train_depth = (root / "jet" / "0.png").read_bytes()
    capsys.readouterr()
    for extra in ((), ("--skip-existing",)):
        assert run("val", *extra) == 2
        err = capsys.readouterr().err
        assert f"'{root / 'jet' / '0.png'}' was made from '{root / 'scans' / 'train' / 'depth' / '0.png'}' by an " \
               f"earlier run, not from '{root / 'scans' / 'val' / 'depth' / '0.png'}'" in err
        assert "give this run its own --output-dir" in err and not (root / "val.txt").exists()
    # The same inputs again are this run's own outputs: kept, and written only where missing.
    (root / "jet" / "1.png").unlink()
    (root / "train.txt").unlink()
    assert run("train", "--skip-existing") == 0 and (root / "jet" / "0.png").read_bytes() == train_depth
    assert (root / "jet" / "1.png").exists()
    # --overwrite replaces another input's outputs when asked to.
    assert run("val", "--overwrite") == 0 and (root / "jet" / "0.png").read_bytes() != train_depth


def test_usage_errors(scannet_like, prepare_modality, capsys):
    root = scannet_like
    with pytest.raises(SystemExit) as exit_info:
        prepare_modality(["jet", str(root / "depth"), "-o", str(root / "jet")])
    assert exit_info.value.code == 2
    assert "--max" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        prepare_modality(["hha", str(root / "depth"), "-o", str(root / "hha"), "--preset", "scannet"])
    assert "--units" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        prepare_modality(["hha", str(root / "depth"), "-o", str(root / "hha"), "--units", "mm"])
    assert "--preset" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        prepare_modality(["jet", str(root / "depth"), "-o", str(root / "jet"), "--max", "1",
                          "--list-file", str(root / "x.txt")])
    assert "--label-dir" in capsys.readouterr().err
    # Values the first file's conversion refused, blaming that file (before), and a flag read by nothing.
    for extra, message in ((["jet", "--max", "1", "--missing-color", "300", "0", "0"],
                            "--missing-color must be three values in 0..255, got 300 0 0"),
                           (["gray", "--max", "1", "--missing-value", "256"], "--missing-value must be in 0..255"),
                           (["ndvi", "--rgb-dir", str(root / "color"), "--range", "1", "-1"],
                            "--range must satisfy LOW < HIGH, got 1 -1"),
                           (["evi", "--rgb-dir", str(root / "color"), "--max-value", "0"],
                            "--max-value must be positive"),
                           (["jet", "--max", "7000", "--units", "mm"], "--units is for --fill here")):
        with pytest.raises(SystemExit) as exit_info:
            prepare_modality([extra[0], str(root / "depth"), "-o", str(root / "x"), *extra[1:]])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and message in err and "converting" not in err, err
    assert not (root / "x").exists()


@pytest.mark.parametrize("extra, message", [
    (["--min", "10", "--max", "5"], "--min must be below --max, got --min 10 --max 5"),
    (["--percentiles", "99", "1"], "--percentiles must satisfy 0 <= LOW < HIGH <= 100, got 99 1"),
    # Helper 86: the per-image range was used and the fixed one dropped without a word.
    (["--max", "7000", "--percentiles", "1", "99"], "give either a fixed range (--min/--max) or --percentiles, not "
                                                    "both (--max with --percentiles)"),
    (["--min", "100", "--percentiles", "1", "99"], "(--min with --percentiles)"),
])
def test_a_bad_range_is_a_usage_error(scannet_like, prepare_modality, capsys, extra, message):
    root = scannet_like
    with pytest.raises(SystemExit) as exit_info:
        prepare_modality(["gray", str(root / "depth"), "-o", str(root / "gray")] + extra)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (root / "gray").exists()


@pytest.mark.parametrize("where", ["output under a file", "list file a folder", "list file a folder, no --overwrite"])
def test_outputs_in_the_way_are_found_before_any_conversion(scannet_like, prepare_modality, capsys, where):
    """A --list-file that is a folder is named as one, with --overwrite or without (helper 271:
    without, "exists already (pass --overwrite ...)", which then gave the folder's message)."""
    root = scannet_like
    (root / "file").write_text("x")
    (root / "folder").mkdir()
    output = root / "file" / "gray" if where == "output under a file" else root / "gray"
    status = prepare_modality(["gray", str(root / "depth"), "-o", str(output), "--max", "7000", "-q",
                               "--label-dir", str(root / "label"), "--list-file", str(root / "folder")]
                              + ([] if where.endswith("no --overwrite") else ["--overwrite"]))
    assert status == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert ("--output-dir" if where == "output under a file" else
            f"--list-file {root / 'folder'} is a folder; give a file name") in err, err
    assert not (root / "gray").exists()


def test_cityscapes_names_pair_by_suffix(tmp_path, prepare_modality):
    # Cityscapes layout: city sub-folders, a suffix per kind, extra files next to the labels.
    frame = "aachen_000000_000019"
    disparity = np.full((8, 16), 2561, dtype=np.uint16)  # (2561 - 1) / 256 = 10 px
    disparity[0, 0] = 0  # invalid
    _save(tmp_path / "disparity" / "aachen" / f"{frame}_disparity.png", disparity)
    _save(tmp_path / "leftImg8bit" / "aachen" / f"{frame}_leftImg8bit.png", np.zeros((8, 16, 3), np.uint8))
    _save(tmp_path / "gtFine" / "aachen" / f"{frame}_gtFine_labelIds.png", np.zeros((8, 16), np.uint8))
    _save(tmp_path / "gtFine" / "aachen" / f"{frame}_gtFine_color.png", np.zeros((8, 16, 3), np.uint8))
    assert prepare_modality([
        "jet", str(tmp_path / "disparity"), "-o", str(tmp_path / "out"), "--recursive",
        "--input-suffix", "_disparity", "--output-suffix", "_jet", "--max", "5121",
        "--modality1-dir", str(tmp_path / "leftImg8bit"), "--modality1-suffix", "_leftImg8bit",
        "--label-dir", str(tmp_path / "gtFine"), "--label-suffix", "_gtFine_labelIds",
        "--list-file", str(tmp_path / "train.txt"), "-q",
    ]) == 0
    assert _rows(tmp_path / "train.txt") == [[
        f"leftImg8bit/aachen/{frame}_leftImg8bit.png",
        f"out/aachen/{frame}_jet.png",
        f"gtFine/aachen/{frame}_gtFine_labelIds.png",
    ]]
    image = np.asarray(Image.open(tmp_path / "out" / "aachen" / f"{frame}_jet.png"))
    assert image[0, 0].tolist() == [0, 0, 0]  # invalid disparity is black
    assert image[0, 1, 1] == 255  # half of the range: the green middle of jet


def test_sunrgbd_depth_and_intrinsics_beside_each_image(tmp_path, prepare_modality, room, capsys):
    # SUN RGB-D: depth/NAME.png with values rotated left by 3 bits, ../intrinsics.txt per image,
    # whose principal point counts pixels from 1 (--one-based subtracts it).
    flat_mm = np.full((30, 40), 2500, dtype=np.uint32)
    room_mm = np.round(room(height=30, width=40, focal=40.0)["depth"] * 1000.0).astype(np.uint32)
    for name, focal, depth_mm in (("a", 40.0, flat_mm), ("b", 80.0, room_mm)):
        stored = (((depth_mm << 3) | (depth_mm >> 13)) & 0xFFFF).astype(np.uint16)
        _save(tmp_path / name / "depth" / f"{name}.png", stored)
        (tmp_path / name / "intrinsics.txt").write_text(f"{focal} 0 20.5\n0 {focal} 15.5\n0 0 1\n")
    status = prepare_modality([
        "hha", str(tmp_path / "a" / "depth" / "a.png"), str(tmp_path / "b" / "depth" / "b.png"),
        "-o", str(tmp_path / "hha"), "--sunrgbd-depth", "--intrinsics-relative", "../intrinsics.txt",
        "--one-based", "-q",
    ])
    assert status == 0
    for name, focal, depth_mm in (("a", 40.0, flat_mm), ("b", 80.0, room_mm)):
        expected = hha.encode_hha(depth_mm.astype(np.float32), hha.Intrinsics(focal, focal, 19.5, 14.5),
                                  units="mm")
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "hha" / f"{name}.png")), expected)
    counting_from_0 = hha.encode_hha(room_mm.astype(np.float32), hha.Intrinsics(80.0, 80.0, 20.5, 15.5), units="mm")
    assert not np.array_equal(np.asarray(Image.open(tmp_path / "hha" / "b.png")), counting_from_0)
    assert np.all(np.asarray(Image.open(tmp_path / "hha" / "a.png"))[..., 0] == 124)  # 2.5 m
    with pytest.raises(SystemExit):
        prepare_modality(["hha", str(tmp_path / "a" / "depth"), "-o", str(tmp_path / "x"), "--preset", "nyuv2",
                          "--units", "mm", "--one-based"])
    assert "--one-based is for --intrinsics and the intrinsics files" in capsys.readouterr().err


def test_bad_values_are_one_line_and_other_value_errors_are_bugs(scannet_like, prepare_modality, capsys,
                                                                 monkeypatch):
    from ssma_tf.modalities import batch
    from ssma_tf.modalities.errors import ParameterError

    root = scannet_like
    args = ["jet", str(root / "depth"), "-o", str(root / "jet"), "--max", "7000"]
    # A bad value is a ValueError to the functions' callers and one line to the command's.
    assert issubclass(ParameterError, ValueError)

    def bad_value(*args, **kwargs):
        raise ParameterError("value_range must be (low, high) with low < high, got (1.0, -1.0)")

    monkeypatch.setattr(batch, "plan_folder_jobs", bad_value)
    assert prepare_modality(args) == 2
    assert capsys.readouterr().err.endswith("error: value_range must be (low, high) with low < high, got (1.0, -1.0)\n")

    # Any other ValueError is a bug: it keeps its traceback (was printed as a bad input).
    def bug(*args, **kwargs):
        raise ValueError("operands could not be broadcast together")

    monkeypatch.setattr(batch, "plan_folder_jobs", bug)
    with pytest.raises(ValueError, match="broadcast"):
        prepare_modality(args)


def test_a_fill_without_units_names_the_fill(scannet_like, prepare_modality, capsys):
    root = scannet_like
    with pytest.raises(SystemExit):
        prepare_modality(["gray", str(root / "depth"), "-o", str(root / "gray"), "--max", "7", "--fill"])
    assert "gray --fill needs --units" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        prepare_modality(["hha", str(root / "depth"), "-o", str(root / "hha"), "--preset", "scannet"])
    assert "error: hha needs --units (m, cm" in capsys.readouterr().err


def test_a_range_far_beyond_an_image_is_named_for_each_image(scannet_like, prepare_modality, capsys):
    """The colour column taken for depth (helper 35 swapped NIR and depth): 8-bit values under
    --max 10000 gave nearly uniform pictures without a word. Every image is checked (helper 69:
    frames in metres after one in millimetres, checked on the first image only, went unwarned);
    the first three are named, the rest counted."""
    root = scannet_like
    for i in range(5):
        _save(root / "nir" / f"{i}.png", np.full((48, 64), 200 + 10 * i, dtype=np.uint8))
    (root / "swapped.txt").write_text("".join(f"depth/0.png nir/{i}.png label/0.png\n" for i in range(5)))
    assert prepare_modality(["jet", "--from-list", str(root / "swapped.txt"), "--column", "1", "-o",
                             str(root / "swapped"), "--max", "10000", "-q"]) == 0
    error = capsys.readouterr().err
    assert error.count("warning:") == 4
    assert f"{root / 'nir' / '0.png'}: its values reach 200, under 5 % of the range --min 0 --max 10000" in error
    assert f"{root / 'nir' / '2.png'}: its values reach 220," in error and "3.png" not in error
    assert error.rstrip().endswith("warning: 5 of 5 images were warned of (the first 3 above)")
    # The depth column itself (up to a few metres in millimetres): no warning.
    assert prepare_modality(["jet", str(root / "depth"), "-o", str(root / "right"), "--max", "10000", "-q"]) == 0
    assert "warning" not in capsys.readouterr().err
    # --max in metres for a file of millimetres: every pixel at the end of the scale (before: exit 0,
    # pictures of 0 and 255 only, without a word).
    assert prepare_modality(["gray", str(root / "depth"), "-o", str(root / "metres"), "--max", "7", "-q"]) == 0
    error = capsys.readouterr().err
    assert error.count("warning:") == 3
    assert (f"{root / 'depth' / '0.png'}: 100 % of its values lie outside --min 0 --max 7 (their median is "
            in error and "are --min and --max in the file's units?" in error)
    # One frame in metres among millimetre ones, not the first: named.
    _save(root / "depth" / "1.png", np.full((48, 64), 3, dtype=np.uint16))
    assert prepare_modality(["jet", str(root / "depth"), "-o", str(root / "mixed"), "--max", "7000", "-q"]) == 0
    error = capsys.readouterr().err
    assert error.count("warning:") == 1 and f"{root / 'depth' / '1.png'}: its values reach 3, under 5 %" in error


def test_hha_of_depth_in_other_units_than_said_is_warned_of(scannet_like, prepare_modality, capsys):
    """HHA had no check: millimetres given --units m came out with a flat disparity channel and a
    saturated height channel, exit 0 (helper 69)."""
    root = scannet_like
    assert prepare_modality(["hha", str(root / "depth"), "-o", str(root / "hha_m"), "--units", "m", "--preset",
                             "scannet", "-q"]) == 0
    error = capsys.readouterr().err
    assert error.count("warning:") == 3
    assert f"{root / 'depth' / '0.png'}: its median depth is " in error
    assert " m with --units m (depth cameras see 0.1 to 200 m): the HHA channels come out flat or saturated" in error
    assert prepare_modality(["hha", str(root / "depth"), "-o", str(root / "hha_mm"), "--units", "mm", "--preset",
                             "scannet", "-q"]) == 0
    assert "warning" not in capsys.readouterr().err


def test_a_fill_of_depth_in_other_units_than_said_is_warned_of(scannet_like, prepare_modality, capsys):
    """Millimetres given --units m: the completion drops everything beyond its 100 m inversion
    depth, and every --fill wrote all-black images with exit 0 and no warning (helper 129)."""
    root = scannet_like
    commands = {
        "hha": ["hha", str(root / "depth"), "-o", str(root / "hha"), "--fill", "--preset", "scannet"],
        "gray": ["gray", str(root / "depth"), "-o", str(root / "gray"), "--fill", "--max", "7"],
        "fill": ["fill", str(root / "depth"), "-o", str(root / "filled"), "--format", "npy"],
    }
    for name, command in commands.items():
        assert prepare_modality(command + ["--units", "m", "-q"]) == 0, name
        error = capsys.readouterr().err
        assert f"warning: {root / 'depth' / '0.png'}: its median depth is " in error, name
        assert ("m with --units m, at or beyond the 100 m the depth completion keeps: the filled image comes out "
                "(nearly) empty; are --units the file's units?") in error, name
    for name, command in commands.items():
        out = command.index("-o") + 1
        command[out] += "_mm"
        if name == "gray":
            command[command.index("--max") + 1] = "7000"
        assert prepare_modality(command + ["--units", "mm", "-q"]) == 0, name
        assert "warning" not in capsys.readouterr().err, name


def test_a_run_stopped_as_it_renamed_an_output_resumes(scannet_like, prepare_modality, monkeypatch, capsys):
    """Before: the record of an output came after its file; a stop between the two (a SIGTERM just
    after the rename) left an output without a record, which --skip-existing refused as another
    tool's (helper 140). The output begun is made again."""
    from ssma_tf import files

    root = scannet_like
    args = ["jet", str(root / "depth"), "-o", str(root / "jet"), "--max", "7000", "-q"]
    renamed = []
    replace = files._replace

    def stop_after_the_second(source, destination):
        replace(source, destination)
        renamed.append(destination)
        if len(renamed) == 2:
            raise OSError(28, "stopped right after the rename")

    monkeypatch.setattr(files, "_replace", stop_after_the_second)
    assert prepare_modality(args) == 1  # a failed write
    capsys.readouterr()
    monkeypatch.setattr(files, "_replace", replace)
    assert (root / "jet" / "1.png").exists() and not (root / "jet" / "2.png").exists()
    kept = (root / "jet" / "0.png").stat().st_mtime_ns
    assert prepare_modality(args + ["--skip-existing"]) == 0, capsys.readouterr().err
    assert (root / "jet" / "0.png").stat().st_mtime_ns == kept  # finished: kept
    expected = colorize.jet(np.asarray(Image.open(root / "depth" / "1.png")).astype(np.float32), vmax=7000.0)
    np.testing.assert_array_equal(np.asarray(Image.open(root / "jet" / "1.png")), expected)
    assert (root / "jet" / "2.png").exists()


def test_a_run_stopped_at_its_first_output_leaves_no_record(scannet_like, prepare_modality, monkeypatch, capsys):
    from ssma_tf import files

    def fail(source, destination):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files, "_replace", fail)
    out = scannet_like / "jet"
    # A full disk is the output's failure, status 1, not the input's (before: "converting
    # '.../0.png' failed", status 2; helper 226).
    assert prepare_modality(["jet", str(scannet_like / "depth"), "-o", str(out), "--max", "7000", "-q"]) == 1
    error = capsys.readouterr().err
    assert "No space left on device" in error and str(out / "0.png") in error and "converting" not in error, error
    assert not out.exists()


def test_a_write_failing_midway_is_status_1_and_says_what_was_written(scannet_like, prepare_modality, monkeypatch,
                                                                       capsys):
    from ssma_tf import files

    replace = files._replace
    calls = []

    def fail_second(source, destination):
        calls.append(destination)
        if len(calls) == 2:
            raise PermissionError(13, "Permission denied")
        replace(source, destination)

    monkeypatch.setattr(files, "_replace", fail_second)
    out = scannet_like / "gray"
    assert prepare_modality(["gray", str(scannet_like / "depth"), "-o", str(out), "--max", "7000", "-q"]) == 1
    error = capsys.readouterr().err.splitlines()
    assert error[-2] == f"ssma-prepare: error: [Errno 13] Permission denied: '{out / '1.png'}'", error
    assert error[-1].startswith("ssma-prepare: stopped after 1 of 3 file(s), which are kept"), error
    # What cannot be written as PNG is no disk's failure: Pillow's OSError without errno goes on
    # as the input's (status 2).
    from ssma_tf.modalities import io

    def encoder_refuses(stream):
        raise OSError("cannot write mode CMYK as PNG")

    with pytest.raises(OSError) as raised:
        io._atomic_write(out / "odd.png", encoder_refuses, overwrite=False)
    assert not isinstance(raised.value, io.OutputWriteError) and not (out / "odd.png").exists()
    # The record of the outputs' sources on a full disk is named too (before: "[Errno 28] No space
    # left on device" alone; helper 230).
    from ssma_tf.modalities.batch import SOURCES_FILE

    monkeypatch.setattr(files, "_replace", replace)
    full = scannet_like / "full"
    full.mkdir()
    (full / SOURCES_FILE).symlink_to("/dev/full")
    assert prepare_modality(["gray", str(scannet_like / "depth"), "-o", str(full), "--max", "7000", "-q"]) == 1
    assert (f"ssma-prepare: error: [Errno 28] No space left on device: '{full / SOURCES_FILE}'"
            in capsys.readouterr().err)


def test_list_outputs_stay_in_the_output_folder_whatever_the_inputs_spelling(tmp_path, prepare_modality,
                                                                              monkeypatch):
    """Before: '../data/depth/0.png' beside 'extra/1.png' had '' as common folder, and the first was
    written to 'out/../data/depth/0.png', over the raw depth's folder; an absolute path beside a
    relative one ended in "ValueError: Can't mix absolute and relative paths" (helper 140)."""
    depth = np.full((16, 24), 3000, dtype=np.uint16)
    _save(tmp_path / "data" / "depth" / "0.png", depth)
    _save(tmp_path / "work" / "extra" / "1.png", depth)
    _save(tmp_path / "work" / "extra" / "2.png", depth)
    monkeypatch.chdir(tmp_path / "work")
    pathlib.Path("raw.txt").write_text(f"../data/depth/0.png\nextra/1.png\n{tmp_path / 'work' / 'extra' / '2.png'}\n")
    assert prepare_modality(["gray", "--from-list", "raw.txt", "--column", "0", "-o", "out", "--max", "7000",
                             "-q"]) == 0
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.png")
                     if p.stat().st_size and "out" in p.parts)
    assert written == ["work/out/data/depth/0.png", "work/out/work/extra/1.png", "work/out/work/extra/2.png"]
    assert sorted(p.name for p in (tmp_path / "data" / "depth").iterdir()) == ["0.png"]


def test_inputs_of_one_name_and_two_extensions_keep_their_outputs_apart(tmp_path, prepare_modality, capsys):
    """Before: '0.png' and '0.npy' filled were refused as both written to 'out/0', a path never
    written; their outputs are 'out/0.png' and 'out/0.npy'."""
    depth = np.full((16, 24), 3000, dtype=np.uint16)
    _save(tmp_path / "col" / "0.png", depth)
    np.save(tmp_path / "col" / "0.npy", depth.astype(np.float32))
    assert prepare_modality(["fill", str(tmp_path / "col"), "-o", str(tmp_path / "out"), "--units", "mm", "-q"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if not p.name.startswith(".")) == ["0.npy", "0.png"]
    # With a list file, one sample would be listed twice (helper 146).
    for name in ("0.png", "0.npy"):
        _save(tmp_path / "rgb" / name.replace(".npy", ".png"), np.zeros((16, 24, 3), np.uint8))
        _save(tmp_path / "label" / name.replace(".npy", ".png"), np.zeros((16, 24), np.uint8))
    assert prepare_modality(["fill", str(tmp_path / "col"), "-o", str(tmp_path / "listed"), "--units", "mm", "-q",
                             "--modality1-dir", str(tmp_path / "rgb"), "--label-dir", str(tmp_path / "label"),
                             "--list-file", str(tmp_path / "l.txt")]) == 2
    assert "are both sample '0': the list file would hold it twice" in capsys.readouterr().err
    assert not (tmp_path / "listed").exists() and not (tmp_path / "l.txt").exists()
    # Outputs that do collide name the output that both would be.
    assert prepare_modality(["jet", str(tmp_path / "col"), "-o", str(tmp_path / "jet"), "--max", "7000", "-q"]) == 2
    err = capsys.readouterr().err
    assert f"would both be written to '{tmp_path / 'jet' / '0.png'}'; convert them into separate --output-dir" in err


def test_a_camera_file_is_recorded_by_what_it_holds(scannet_like, prepare_modality, monkeypatch, capsys):
    """Before: --intrinsics-file was recorded as typed: the same file from another working folder
    was refused as other settings, and an edited file at the same spelling was not (helper 140)."""
    root = scannet_like
    (root / "K.txt").write_text("52.5 0 31.5\n0 52.5 23.5\n0 0 1\n")
    monkeypatch.chdir(root)
    assert prepare_modality(["hha", "depth", "-o", "hha", "--units", "mm", "--intrinsics-file", "K.txt", "-q"]) == 0
    (root / "hha" / "2.png").unlink()
    monkeypatch.chdir(root / "depth")
    again = ["hha", ".", "-o", "../hha", "--units", "mm", "--intrinsics-file", "../K.txt", "--skip-existing", "-q"]
    assert prepare_modality(again) == 0, capsys.readouterr().err
    (root / "hha" / "2.png").unlink()
    (root / "K.txt").write_text("60 0 31.5\n0 60 23.5\n0 0 1\n")
    assert prepare_modality(again) == 2
    assert "was made with other settings (intrinsics_file sha256 " in capsys.readouterr().err


def test_the_camera_files_beside_each_depth_map_are_recorded_by_what_they_hold(tmp_path, prepare_modality, room,
                                                                                 capsys):
    """Before: --intrinsics-relative was recorded as typed: a camera file mended between two runs
    left the old HHA pictures kept by --skip-existing beside new ones of the other camera (helper 226)."""
    depth_mm = np.round(room(height=30, width=40, focal=40.0)["depth"] * 1000.0).astype(np.uint16)
    for name in ("a", "b"):
        _save(tmp_path / name / "depth" / f"{name}.png", depth_mm)
        (tmp_path / name / "intrinsics.txt").write_text("40 0 19.5\n0 40 14.5\n0 0 1\n")
    args = ["hha", str(tmp_path / "a" / "depth"), str(tmp_path / "b" / "depth"), "-o", str(tmp_path / "hha"),
            "--units", "mm", "--intrinsics-relative", "../intrinsics.txt", "-q"]
    assert prepare_modality(args) == 0
    (tmp_path / "hha" / "b.png").unlink()
    assert prepare_modality(args + ["--skip-existing"]) == 0, capsys.readouterr().err  # same cameras: resumed
    (tmp_path / "hha" / "b.png").unlink()
    (tmp_path / "a" / "intrinsics.txt").write_text("80 0 19.5\n0 80 14.5\n0 0 1\n")
    assert prepare_modality(args + ["--skip-existing"]) == 2
    error = capsys.readouterr().err
    assert f"'{tmp_path / 'hha' / 'a.png'}' was made with other settings (intrinsics_relative ../intrinsics.txt " \
           "sha256 " in error, error
    # The camera of b is the one it was made with: only a's picture is in question.
    (tmp_path / "a" / "intrinsics.txt").write_text("40 0 19.5\n0 40 14.5\n0 0 1\n")
    (tmp_path / "b" / "intrinsics.txt").write_text("80 0 19.5\n0 80 14.5\n0 0 1\n")
    assert prepare_modality(args + ["--skip-existing"]) == 0, capsys.readouterr().err


def test_a_folder_whose_record_lists_a_typed_sequence_resumes(scannet_like, prepare_modality, capsys):
    """The versions before 2026-12-06 recorded a typed sequence as a list, a default as a tuple:
    both spellings are the same setting (helper 230: recording tuples alone refused those folders)."""
    from ssma_tf.modalities.batch import SOURCES_FILE

    root = scannet_like
    args = ["jet", str(root / "depth"), "-o", str(root / "jet"), "--max", "7000", "--missing-color", "1", "2", "3",
            "-q"]
    assert prepare_modality(args) == 0, capsys.readouterr().err
    record = root / "jet" / SOURCES_FILE
    assert "(1, 2, 3)" in record.read_text()
    record.write_text(record.read_text().replace("(1, 2, 3)", "[1, 2, 3]"))  # as the earlier version wrote it
    (root / "jet" / "2.png").unlink()
    assert prepare_modality(args + ["--skip-existing"]) == 0, capsys.readouterr().err
    assert (root / "jet" / "2.png").is_file()
    # Another colour is still another setting, said in one spelling.
    (root / "jet" / "2.png").unlink()
    assert prepare_modality(args[:-4] + ["4", "5", "6", "-q", "--skip-existing"]) == 2
    assert "(missing_color (1, 2, 3) -> (4, 5, 6))" in capsys.readouterr().err


@pytest.mark.parametrize("command, flags", [(["ndvi"], ["--range", "-1", "1"]), (["jet", "--max", "7000"],
                                                                               ["--missing-color", "0", "0", "0"])])
def test_a_default_typed_out_resumes_the_run_that_left_it_out(scannet_like, prepare_modality, capsys, command, flags):
    """Before: a tuple default and the list the command line gives were recorded as other settings
    ("value_range (-1.0, 1.0) -> [-1.0, 1.0]"), and --skip-existing refused the rerun (helper 226)."""
    root = scannet_like
    if command == ["ndvi"]:
        inputs = [str(root / "color"), "--rgb-dir", str(root / "color")]
    else:
        inputs = [str(root / "depth")]
    args = [command[0], *inputs, "-o", str(root / "out"), *command[1:], "-q"]
    assert prepare_modality(args) == 0, capsys.readouterr().err
    kept = (root / "out" / "0.png").stat().st_mtime_ns
    (root / "out" / "1.png").unlink()
    assert prepare_modality(args + flags + ["--skip-existing"]) == 0, capsys.readouterr().err
    assert (root / "out" / "1.png").is_file() and (root / "out" / "0.png").stat().st_mtime_ns == kept


def test_skip_existing_writes_the_list_again(scannet_like, prepare_modality):
    """Before: a resumed run with its --list-file was refused ("pass --overwrite"), which
    --skip-existing excludes (helper 140)."""
    root = scannet_like
    args = ["jet", str(root / "depth"), "-o", str(root / "jet"), "--max", "7000",
            "--modality1-dir", str(root / "color"), "--label-dir", str(root / "label"),
            "--list-file", str(root / "train.txt"), "-q"]
    assert prepare_modality(args) == 0
    listed = (root / "train.txt").read_text()
    (root / "jet" / "1.png").unlink()
    (root / "train.txt").write_text("stale\n")
    assert prepare_modality(args + ["--skip-existing"]) == 0
    assert (root / "train.txt").read_text() == listed and (root / "jet" / "1.png").exists()


@pytest.mark.parametrize("arguments, message", [
    (["hha", "--intrinsics", "50", "50", "31.5", "23.5", "--intrinsics-size", "0", "48"],
     "--intrinsics-size must be a positive WIDTH HEIGHT in pixels, got 0 48"),
    (["hha", "--intrinsics", "50", "50", "31.5", "23.5", "--intrinsics-size", "64", "-48"],
     "--intrinsics-size must be a positive WIDTH HEIGHT in pixels, got 64 -48"),
    (["fill", "--max-depth", "0.05"], "--max-depth must be a number of metres above 0.1, got 0.05"),
    (["fill", "--max-depth", "nan"], "argument --max-depth: must be a finite number, got 'nan'"),
])
def test_a_bad_camera_size_or_inversion_depth_is_a_usage_error(scannet_like, prepare_modality, capsys, arguments,
                                                                  message):
    """Helper 160: --intrinsics-size 0 crashed with ZeroDivisionError, a negative size and a --max-depth the
    completion refuses were reported as failures of the first depth file."""
    root = scannet_like
    with pytest.raises(SystemExit) as exit_info:
        prepare_modality([arguments[0], str(root / "depth"), "-o", str(root / "out"), "--units", "mm", *arguments[1:]])
    error = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in error and "0.png" not in error
    assert not (root / "out").exists()


def test_values_below_zero_are_coloured_as_missing_with_a_warning(tmp_path, prepare_modality, capsys):
    """A stereo output marking invalid pixels -1 was coloured as measured depth, without a word."""
    values = np.full((8, 8), 3.0, np.float32)
    values[:4] = -1.0
    (tmp_path / "neg").mkdir()
    np.save(tmp_path / "neg" / "0.npy", values)
    assert prepare_modality(["jet", str(tmp_path / "neg"), "-o", str(tmp_path / "jet"), "--max", "10"]) == 0
    assert "0.npy: 50.0 % of its values are below 0: coloured as missing" in capsys.readouterr().err
    assert (np.asarray(Image.open(tmp_path / "jet" / "0.png"))[:4] == 0).all()
    assert prepare_modality(["jet", str(tmp_path / "neg"), "-o", str(tmp_path / "signed"), "--min", "-1",
                             "--max", "10"]) == 0
    assert "below 0" not in capsys.readouterr().err
    assert tuple(np.asarray(Image.open(tmp_path / "signed" / "0.png"))[0, 0]) == (0, 0, 128)


def _stop_after_renames(monkeypatch, count: int):
    """Stops the command as SIGTERM does (`Terminated`, through `command`) when it renames its
    output number `count + 1` into place: `count` outputs are whole, the rest as they were.
    Returns the rename it replaced, to put back."""
    from ssma_tf import files
    from ssma_tf.errors import Terminated

    replace, renamed = files._replace, []

    def stop(source, destination):
        if len(renamed) == count:
            raise Terminated()
        replace(source, destination)
        renamed.append(destination)

    monkeypatch.setattr(files, "_replace", stop)
    return replace


@pytest.mark.parametrize("flags, how", [([], "with --skip-existing"),
                                        (["--overwrite"], "with --skip-existing in place of --overwrite")])
def test_a_stopped_run_says_what_it_wrote_and_how_to_go_on(scannet_like, prepare_modality, monkeypatch, capsys,
                                                           flags, how):
    """Before: a SIGTERM ended the run with "terminated" alone, though --skip-existing resumes it
    (helper 183)."""
    from ssma_tf import files

    root = scannet_like
    list_file = root / "gray.txt"
    args = ["gray", str(root / "depth"), "-o", str(root / "gray"), "--max", "7000", "--list-file", str(list_file),
            "--label-dir", str(root / "label")]
    if flags:
        assert prepare_modality(args) == 0
        list_file.unlink()
    replace = _stop_after_renames(monkeypatch, 2)
    capsys.readouterr()
    assert prepare_modality(args + flags) == 143
    error = capsys.readouterr().err
    assert error.endswith(f"stopped after 2 of 3 file(s), which are kept; the list file is written at the end; run "
                          f"the same command {how} to write the rest\nterminated\n"), error
    monkeypatch.setattr(files, "_replace", replace)
    assert prepare_modality(args + ["--skip-existing"]) == 0 and len(list_file.read_text().splitlines()) == 3


def test_a_bad_input_midway_says_what_was_written_and_how_to_go_on(scannet_like, prepare_modality, capsys):
    """Helper 205: the outputs before a truncated input stayed, and the rerun once it was mended
    was refused as outputs of another run, without a word of --skip-existing."""
    root = scannet_like
    good = (root / "depth" / "1.png").read_bytes()
    (root / "depth" / "1.png").write_bytes(good[: len(good) // 2])
    args = ["gray", str(root / "depth"), "-o", str(root / "gray"), "--max", "7000", "--list-file",
            str(root / "gray.txt"), "--label-dir", str(root / "label"), "--quiet"]
    assert prepare_modality(args) == 2
    error = capsys.readouterr().err.splitlines()
    assert "1.png" in error[-2] and error[-2].startswith("ssma-prepare: error: "), error
    assert error[-1] == ("ssma-prepare: stopped after 1 of 3 file(s), which are kept; the list file is written at "
                         "the end; run the same command with --skip-existing to write the rest"), error
    (root / "depth" / "1.png").write_bytes(good)
    assert prepare_modality(args + ["--skip-existing"]) == 0 and len(_rows(root / "gray.txt")) == 3


def test_the_list_written_onto_the_list_read_is_refused_whatever_the_flags(scannet_like, prepare_modality, capsys):
    """Helper 200: --list-file onto its own --from-list replaced the raw list with --overwrite or
    --skip-existing, its raw column lost."""
    root = scannet_like
    raw = root / "raw.txt"
    raw.write_text("".join(f"color/{i}.jpg depth/{i}.png label/{i}.png\n" for i in range(3)))
    before = raw.read_text()
    for flags in ([], ["--overwrite"], ["--skip-existing"]):
        assert prepare_modality(["gray", "--from-list", str(raw), "--column", "1", "-o", str(root / "g"), "--max",
                                 "7000", "--list-file", str(raw), "-q", *flags]) == 2
        assert f"--list-file '{raw}' is the --from-list it reads: the output list would replace it" in \
            capsys.readouterr().err
        assert raw.read_text() == before and not (root / "g").exists()


def _vegetation(root: pathlib.Path) -> None:
    """veg/nir/0.png with two RGB images of other red, rgbA/0.png and rgbB/0.png, and a label."""
    _save(root / "veg" / "nir" / "0.png", np.full((4, 5), 150, np.uint8))
    for name, red in (("rgbA", 30), ("rgbB", 120)):
        rgb = np.zeros((4, 5, 3), np.uint8)
        rgb[..., 0] = red
        _save(root / "veg" / name / "0.png", rgb)
    _save(root / "veg" / "lab" / "0.png", np.zeros((4, 5), np.uint8))


def test_a_vegetation_index_resumed_with_other_rgb_images_is_refused(tmp_path, prepare_modality, capsys):
    """Helper 279: only the NIR file was recorded, so --skip-existing with a list pairing it with
    other RGB images (or another --rgb-suffix) kept the index of the first ("1 existing kept")."""
    _vegetation(tmp_path)
    veg = tmp_path / "veg"
    for name in ("A", "B"):
        (veg / f"v{name}.txt").write_text(f"rgb{name}/0.png nir/0.png lab/0.png\n")

    def run(name, *extra):
        return prepare_modality(["ndvi", "--from-list", str(veg / f"v{name}.txt"), "-o", str(veg / "vout"),
                                 "--list-file", str(veg / "vout" / "train.txt"), "-q", *extra])

    assert run("A") == 0
    made_of_a = (veg / "vout" / "0.png").read_bytes()
    assert run("A", "--skip-existing") == 0  # the same pairs resume
    assert run("B", "--skip-existing") == 2
    err = capsys.readouterr().err
    assert (f"'{veg / 'vout' / '0.png'}' was made with other settings (rgb_image {veg / 'rgbA' / '0.png'} -> "
            f"{veg / 'rgbB' / '0.png'}): --skip-existing keeps only outputs of this conversion") in err, err
    assert (veg / "vout" / "0.png").read_bytes() == made_of_a
    assert run("B", "--overwrite") == 0 and (veg / "vout" / "0.png").read_bytes() != made_of_a
    # The folder form: another --rgb-suffix pairs the NIR images with other RGB files.
    (veg / "rgb_pairs").mkdir()
    (veg / "rgbA" / "0.png").rename(veg / "rgb_pairs" / "0_a.png")
    (veg / "rgbB" / "0.png").rename(veg / "rgb_pairs" / "0_b.png")
    folder = ["ndvi", str(veg / "nir"), "-o", str(veg / "fout"), "--rgb-dir", str(veg / "rgb_pairs"), "-q"]
    assert prepare_modality(folder + ["--rgb-suffix", "_a"]) == 0
    assert prepare_modality(folder + ["--rgb-suffix", "_b", "--skip-existing"]) == 2
    assert f"(rgb_image {veg / 'rgb_pairs' / '0_a.png'} -> {veg / 'rgb_pairs' / '0_b.png'})" in capsys.readouterr().err


def test_an_output_folder_inside_a_recursive_input_folder_is_left_out(tmp_path, prepare_modality, capsys):
    """Helper 279: --recursive walked into -o: a rerun with --skip-existing was refused as writing
    over "the input", and a gray rerun converted the earlier pictures as samples."""
    for where in ("d", "e"):
        _save(tmp_path / where / "a" / "0.png", np.full((8, 10), 3000, np.uint16))
        _save(tmp_path / where / "b" / "1.png", np.full((8, 10), 2000, np.uint16))
    fill = ["fill", str(tmp_path / "d"), "--recursive", "-o", str(tmp_path / "d" / "filled"), "--units", "mm",
            "--keep-valid", "-q"]
    assert prepare_modality(fill) == 0
    assert prepare_modality(fill + ["--skip-existing"]) == 0, capsys.readouterr().err
    gray = ["gray", str(tmp_path / "e"), "--recursive", "-o", str(tmp_path / "e" / "g"), "--max", "7000", "-q"]
    assert prepare_modality(gray) == 0 and prepare_modality(gray + ["--overwrite"]) == 0
    written = sorted(p.relative_to(tmp_path / "e" / "g").as_posix() for p in (tmp_path / "e" / "g").rglob("*.png"))
    assert written == ["a/0.png", "b/1.png"]


def test_a_stopped_overwrite_of_outputs_made_otherwise_says_to_run_it_again(scannet_like, prepare_modality,
                                                                           monkeypatch, capsys):
    """Helper 279: a stopped --overwrite run advised --skip-existing, which then refused the outputs
    not yet rewritten, made with the other settings of an earlier run."""
    from ssma_tf import files

    root = scannet_like
    args = ["gray", str(root / "depth"), "-o", str(root / "gray"), "--max", "7000"]
    assert prepare_modality(args + ["-q"]) == 0
    args[-1] = "5000"
    replace = _stop_after_renames(monkeypatch, 1)  # the second being written, the third as it was
    capsys.readouterr()
    assert prepare_modality(args + ["--overwrite"]) == 143
    error = capsys.readouterr().err
    assert error.endswith("stopped after 1 of 3 file(s), which are kept; run the same command again to write them "
                          "all: --skip-existing would refuse the outputs left from an earlier run with other settings "
                          "or inputs\nterminated\n"), error
    monkeypatch.setattr(files, "_replace", replace)
    assert prepare_modality(args + ["--skip-existing", "-q"]) == 2
    assert "was made with other settings (vmax 7000.0 -> 5000.0)" in capsys.readouterr().err
    assert prepare_modality(args + ["--overwrite", "-q"]) == 0


@pytest.mark.parametrize("command, nir, red, message", [
    ("evi", 200, 30, "NIR image '{root}/nir/0.png' reaches 200, above max_value (--max-value) 100"),
    ("ndvi", 50, 150, "the red of RGB image '{root}/rgb/0.png' reaches 150, above max_value (--max-value) 100"),
])
def test_a_band_above_max_value_is_named_with_it(tmp_path, prepare_modality, capsys, command, nir, red, message):
    """Helper 279: EVI blamed 8-bit values not divided by 255 for a --max-value below the files'
    values, as a failure of the NIR file; NDVI went on without a word."""
    _save(tmp_path / "nir" / "0.png", np.full((4, 5), nir, np.uint8))
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[..., 0] = red
    _save(tmp_path / "rgb" / "0.png", rgb)
    assert prepare_modality([command, str(tmp_path / "nir"), "-o", str(tmp_path / "out"), "--rgb-dir",
                             str(tmp_path / "rgb"), "--max-value", "100", "-q"]) == 2
    err = capsys.readouterr().err
    assert f"ssma-prepare: error: {message.format(root=tmp_path)}, the stored value meaning reflectance 1" in err, err
    assert "divide 8-bit values" not in err and not (tmp_path / "out").exists()
    assert prepare_modality([command, str(tmp_path / "nir"), "-o", str(tmp_path / "out"), "--rgb-dir",
                             str(tmp_path / "rgb"), "--max-value", "255", "-q"]) == 0


@pytest.mark.parametrize("extra, message", [
    (["--label-dir", "label"], "--label-dir pairs files for the list file, and no --list-file is given: add "
                               "--list-file LIST"),
    (["--modality1-dir", "color", "--label-dir", "label"], "--modality1-dir/--label-dir pair files for the list file"),
])
def test_folder_pairing_without_a_list_file_is_a_usage_error(scannet_like, prepare_modality, capsys, extra, message):
    """Helper 279: --modality1-dir and --label-dir without --list-file were taken and read by nothing."""
    root = scannet_like
    extra = [str(root / e) if e in ("label", "color") else e for e in extra]
    with pytest.raises(SystemExit) as exit_info:
        prepare_modality(["jet", str(root / "depth"), "-o", str(root / "jet"), "--max", "7000", *extra])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert not (root / "jet").exists()


def test_images_warned_of_twice_are_counted_once(tmp_path, prepare_modality, capsys):
    """Helper 279: two warnings of one image counted as two images ("10 of 5 images were warned of"),
    and the third image named lost its second warning."""
    depth = np.full((6, 8), 5.0, np.float32)
    depth[:3] = -1.0  # below 0, and the rest far under the range: two warnings each
    (tmp_path / "d").mkdir()
    for i in range(5):
        np.save(tmp_path / "d" / f"{i}.npy", depth)
    assert prepare_modality(["jet", str(tmp_path / "d"), "-o", str(tmp_path / "out"), "--max", "10000", "-q"]) == 0
    error = capsys.readouterr().err
    for i in range(3):
        assert error.count(f"{tmp_path / 'd' / f'{i}.npy'}: ") == 2, error
    assert "3.npy" not in error and "4.npy" not in error
    assert error.count("warning:") == 7
    assert error.rstrip().endswith("warning: 5 of 5 images were warned of (the first 3 above)"), error


def test_nir_channel_is_checked_where_it_is_read(tmp_path, prepare_modality, capsys):
    """Helper 279: --nir-channel 3 failed at the first colour file, as that file's fault, and any
    value was read by nothing for grey NIR files."""
    _vegetation(tmp_path)
    veg = tmp_path / "veg"
    with pytest.raises(SystemExit) as exit_info:
        prepare_modality(["ndvi", str(veg / "nir"), "-o", str(veg / "o3"), "--rgb-dir", str(veg / "rgbA"),
                          "--nir-channel", "3"])
    assert exit_info.value.code == 2 and "--nir-channel: invalid choice: 3 (choose from 0, 1, 2)" in \
        capsys.readouterr().err
    assert prepare_modality(["ndvi", str(veg / "nir"), "-o", str(veg / "grey"), "--rgb-dir", str(veg / "rgbA"),
                             "--nir-channel", "1", "-q"]) == 0
    assert capsys.readouterr().err == (f"warning: --nir-channel 1 is for colour NIR files, and "
                                       f"'{veg / 'nir' / '0.png'}' is single-channel: its one channel is read as NIR\n")
    # A colour NIR file: the channel asked for is read, without a word; the default records as it did.
    colour = np.zeros((4, 5, 3), np.uint8)
    colour[..., 2] = 150
    _save(veg / "nirc" / "0.png", colour)
    assert prepare_modality(["ndvi", str(veg / "nirc"), "-o", str(veg / "c"), "--rgb-dir", str(veg / "rgbA"),
                             "--nir-channel", "2", "-q"]) == 0
    assert capsys.readouterr().err == ""
    assert (veg / "c" / "0.png").read_bytes() == (veg / "grey" / "0.png").read_bytes()
    # Left out, it is recorded as the 0 it reads (as before), so that folders of earlier runs resume.
    assert prepare_modality(["ndvi", str(veg / "nir"), "-o", str(veg / "default"), "--rgb-dir", str(veg / "rgbA"),
                             "-q"]) == 0
    assert '"nir_channel": "0"' in (veg / "default" / ".ssma-prepare-sources").read_text()


def test_an_unreadable_record_of_earlier_runs_is_named(scannet_like, prepare_modality, capsys):
    """Before: a record that was a folder (or unreadable) ended `--skip-existing` with a traceback
    (IsADirectoryError), and one with bytes that are not UTF-8 with a UnicodeDecodeError."""
    from ssma_tf.modalities.batch import SOURCES_FILE

    root = scannet_like
    args = ["gray", str(root / "depth"), "-o", str(root / "out"), "--max", "7000", "-q"]
    assert prepare_modality(args) == 0, capsys.readouterr().err
    record = root / "out" / SOURCES_FILE
    text = record.read_bytes()
    (root / "out" / "1.png").unlink()
    # A damaged line spoils only its own output; the others still resume.
    lines = text.splitlines(keepends=True)
    damaged = [line.replace(b'"source": "', b'"source": "\xff') if b'"0.png"' in line else line for line in lines]
    assert damaged != lines
    record.write_bytes(b"".join(damaged))
    assert prepare_modality(args + ["--skip-existing"]) == 2
    err = capsys.readouterr().err
    assert "0.png' has no record of the settings it was made with" in err and "made from" not in err, err
    record.unlink()
    record.mkdir()
    assert prepare_modality(args + ["--skip-existing"]) == 2
    err = capsys.readouterr().err
    assert f"cannot read '{record}', the record of the inputs earlier runs made its outputs from" in err, err
    assert "make it readable, or remove or rename it and pass --overwrite" in err and "Traceback" not in err
    # --overwrite appends to the record too: the file it cannot write is named (before the message
    # above said to pass --overwrite, which then failed so).
    assert prepare_modality(args + ["--overwrite"]) == 1
    assert capsys.readouterr().err.strip().endswith(f"Is a directory: '{record}'")
    # What the message says to do works.
    record.rmdir()
    assert prepare_modality(args + ["--overwrite"]) == 0, capsys.readouterr().err
    assert (root / "out" / "1.png").is_file()
