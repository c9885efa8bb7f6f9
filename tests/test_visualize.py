"""Tests for ssma_tf.visualize: palette colouring, overlays, gate heat maps, atomic PNG writes."""

import os
import warnings

import numpy as np
import pytest
from PIL import Image

from ssma_tf import visualize

PALETTE = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [10, 20, 30]], dtype=np.uint8)


def test_colorize_maps_each_id_to_its_colour():
    ids = np.array([[0, 1], [2, 3], [3, 1]], dtype=np.uint8)
    image = visualize.colorize(ids, PALETTE)
    assert image.shape == (3, 2, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image[1, 1], [10, 20, 30])
    np.testing.assert_array_equal(image.reshape(-1, 3), PALETTE[ids.reshape(-1)])


def test_colorize_accepts_a_trailing_channel_and_a_list_palette():
    ids = np.array([[[1], [0]]], dtype=np.int64)
    image = visualize.colorize(ids, [[1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(image, [[[4, 5, 6], [1, 2, 3]]])


def test_colorize_takes_a_boolean_map_as_ids_0_and_1():
    """Helper 169: a boolean map indexed the palette as a selection mask: a 1-D array when its width
    was the palette's length, else an IndexError."""
    mask = np.eye(4, dtype=bool)
    np.testing.assert_array_equal(visualize.colorize(mask, PALETTE), PALETTE[mask.astype(int)])
    assert visualize.colorize(np.array([[True, False]]), PALETTE).shape == (1, 2, 3)


def test_colorize_rejects_ids_without_a_colour():
    with pytest.raises(ValueError, match="label id 4 has no colour"):
        visualize.colorize(np.array([[0, 4]]), PALETTE)
    with pytest.raises(ValueError, match="label id -1"):
        visualize.colorize(np.array([[0, -1]]), PALETTE)


def test_colorize_rejects_bad_palettes_and_float_ids():
    with pytest.raises(ValueError, match="palette must have shape"):
        visualize.colorize(np.zeros((2, 2), np.uint8), np.zeros((3, 4), np.uint8))
    with pytest.raises(ValueError, match="0..255"):
        visualize.colorize(np.zeros((2, 2), np.uint8), [[0, 0, 300]])
    with pytest.raises(ValueError, match="must be integers"):
        visualize.colorize(np.zeros((2, 2), np.float32), PALETTE)


def test_overlay_blends_with_alpha():
    image = np.full((4, 5, 3), 100, np.uint8)
    mask = np.full((4, 5, 3), 201, np.uint8)
    np.testing.assert_array_equal(visualize.overlay(image, mask, alpha=0.0), image)
    np.testing.assert_array_equal(visualize.overlay(image, mask, alpha=1.0), mask)
    half = visualize.overlay(image, mask, alpha=0.5)
    assert half.shape == (4, 5, 3) and half.dtype == np.uint8
    assert np.all(half == 150)  # 150.5 rounds to even


def test_overlay_where_keeps_the_image_elsewhere_and_accepts_grey():
    grey = np.full((2, 2), 40, np.uint8)
    mask = np.full((2, 2, 3), 240, np.uint8)
    where = np.array([[True, False], [False, True]])
    out = visualize.overlay(grey, mask, alpha=0.5, where=where)
    np.testing.assert_array_equal(out[0, 0], [140, 140, 140])
    np.testing.assert_array_equal(out[0, 1], [40, 40, 40])


def test_overlay_rejects_bad_input():
    image = np.zeros((4, 5, 3), np.uint8)
    with pytest.raises(ValueError, match="alpha"):
        visualize.overlay(image, image, alpha=1.5)
    with pytest.raises(ValueError, match="same height and width"):
        visualize.overlay(image, np.zeros((4, 6, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        visualize.overlay(image.astype(np.float32), image)


def test_apply_jet_end_points_and_order():
    colours = visualize.apply_jet(np.array([0.0, 0.5, 1.0])).astype(int)
    np.testing.assert_array_equal(colours[0], [0, 0, 128])  # dark blue
    np.testing.assert_array_equal(colours[2], [128, 0, 0])  # dark red
    assert colours[1, 1] == 255  # green at the middle
    lut = visualize.apply_jet(np.linspace(0, 1, 256))
    assert len({tuple(c) for c in lut}) == 256  # one colour per level: the map can be inverted


def test_gate_to_image_colours_low_blue_and_high_red():
    gate = np.linspace(0.0, 1.0, 12, dtype=np.float32).reshape(3, 4)
    image = visualize.gate_to_image(gate)
    assert image.shape == (3, 4, 3) and image.dtype == np.uint8
    low, high = image[0, 0].astype(int), image[-1, -1].astype(int)
    assert low[2] > low[0] and high[0] > high[2]
    # Out-of-range values clip to the end colours.
    clipped = visualize.gate_to_image(np.array([[-1.0, 2.0]]))
    np.testing.assert_array_equal(clipped[0], visualize.apply_jet(np.array([0.0, 1.0])))


def test_gate_to_image_resizes_to_the_requested_size():
    gate = np.array([[0.0, 1.0], [1.0, 0.0]], dtype=np.float32)[..., None]
    image = visualize.gate_to_image(gate, size=(6, 10))
    assert image.shape == (6, 10, 3)
    with pytest.raises(ValueError, match="size"):
        visualize.gate_to_image(gate, size=(0, 10))
    with pytest.raises(ValueError, match="NaN"):
        visualize.gate_to_image(np.array([[np.nan]]))
    with pytest.raises(ValueError, match="shape"):
        visualize.gate_to_image(np.zeros((2, 2, 2)))


def test_save_png_round_trips_and_leaves_no_temporary_files(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    ids = np.arange(35, dtype=np.uint8).reshape(5, 7)
    rgb_path = tmp_path / "deep" / "folder" / "rgb.png"
    visualize.save_png(rgb_path, rgb)
    visualize.save_png(str(tmp_path / "ids.png"), ids[..., None])
    with Image.open(rgb_path) as image:
        assert image.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(image), rgb)
    with Image.open(tmp_path / "ids.png") as image:
        assert image.mode == "L"
        np.testing.assert_array_equal(np.asarray(image), ids)
    # Overwriting replaces the file in one step.
    visualize.save_png(rgb_path, rgb[::-1].copy())
    with Image.open(rgb_path) as image:
        np.testing.assert_array_equal(np.asarray(image), rgb[::-1])
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file() and p.suffix != ".png"]
    assert leftovers == []
    assert os.stat(rgb_path).st_mode & 0o044 == 0o044  # readable by others, like any picture


def test_save_png_rejects_bad_arrays_and_keeps_the_old_file(tmp_path):
    path = tmp_path / "x.png"
    visualize.save_png(path, np.zeros((2, 2), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        visualize.save_png(path, np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError, match="shape"):
        visualize.save_png(path, np.zeros((2, 2, 2), np.uint8))
    with pytest.raises(ValueError, match="compress_level"):
        visualize.save_png(path, np.zeros((2, 2), np.uint8), compress_level=10)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.png"]


def test_apply_jet_gives_the_colours_of_the_modalities_jet():
    from ssma_tf import modalities

    levels = np.arange(256, dtype=np.float32)
    np.testing.assert_array_equal(
        visualize.apply_jet(levels / 255.0), modalities.jet(levels[None] + 1, vmin=1, vmax=256)[0]
    )


def test_default_palette_is_distinct_with_black_void():
    palette = visualize.default_palette(40)
    assert palette.shape == (40, 3) and palette.dtype == np.uint8
    assert (palette[0] == 0).all()
    assert len({tuple(c) for c in palette}) == 40


def test_tensorboard_previews_colour_classes_as_the_prediction_pictures_do():
    from types import SimpleNamespace

    from ssma_tf import training

    config = SimpleNamespace(dataset=None, num_classes=6)
    np.testing.assert_array_equal(training.trainer._palette(config), visualize.default_palette(6))


def test_improvement_map_marks_own_errors_red_and_fixed_reference_errors_green():
    from ssma_tf.visualize import ERROR_COLOUR, IMPROVEMENT_COLOUR, improvement_map

    label = np.array([[0, 1, 2, 3]])
    prediction = np.array([[2, 1, 1, 3]])  # void is not scored; wrong on pixel 2
    reference = np.array([[1, 2, 1, 3]])  # wrong on pixels 1 and 2
    picture, counts = improvement_map(prediction, reference, label)
    assert picture.dtype == np.uint8 and picture.shape == (1, 4, 3)
    assert tuple(picture[0, 2]) == ERROR_COLOUR  # both wrong: this model's error
    assert tuple(picture[0, 1]) == IMPROVEMENT_COLOUR  # the reference's error, fixed here
    assert picture[0, 0].tolist() == picture[0, 3].tolist() == [0, 0, 0]
    assert counts == {"errors": 1, "improvements": 1, "reference_errors": 2, "scored": 3}
    image = np.full((1, 4, 3), 200, np.uint8)
    on_image, _ = improvement_map(prediction, reference, label, image)
    assert on_image[0, 3].tolist() == [100, 100, 100]  # dimmed grey where nothing changed
    with pytest.raises(ValueError, match="one size"):
        improvement_map(prediction, reference, label[:, :3])
    # The ignore id and ids past the class count are void too (helper 122: 255 was scored, red).
    ignored = np.array([[1, 2, 255, 0, 7]], np.uint8)
    picture, counts = improvement_map(np.array([[1, 2, 1, 1, 1]]), np.array([[2, 2, 2, 2, 2]]), ignored,
                                      num_classes=5)
    assert counts == {"errors": 0, "improvements": 1, "reference_errors": 1, "scored": 2}
    assert picture[0, 2].tolist() == picture[0, 4].tolist() == [0, 0, 0]


def test_tensorboard_previews_use_the_colours_of_an_own_palette_file(tmp_path):
    from ssma_tf import training
    from ssma_tf.config import config_from_dict

    palette = tmp_path / "my_datasets.yaml"
    palette.write_text(
        "fields:\n  classes:\n    - {name: void, color: [0, 0, 0]}\n"
        "    - {name: road, color: [128, 64, 128]}\n    - {name: grass, color: [107, 142, 35]}\n"
    )
    config = config_from_dict(
        {"model": "AdapNet_pp", "num_classes": 3, "test_data": "t.tfrecords", "checkpoint": "c",
         "height": 32, "width": 32, "batch_size": 1, "dataset": "fields", "palette": str(palette)},
        source="eval.config", mode="eval", check_paths=False,
    )
    np.testing.assert_array_equal(
        training.trainer._palette(config), np.array([[0, 0, 0], [128, 64, 128], [107, 142, 35]], np.uint8)
    )


def test_tensorboard_previews_paint_ids_the_model_does_not_know_as_void():
    """Helper 206: the ground-truth preview painted 255 (void) in the last class's colour."""
    import types

    from ssma_tf import training

    palette = visualize.default_palette(4)
    trainer = types.SimpleNamespace(config=types.SimpleNamespace(num_classes=4), _palette=palette)
    painted = training.Trainer._colours(trainer, np.array([[0, 1, 2, 3, 4, 255]], np.uint8))
    np.testing.assert_array_equal(painted, palette[[[0, 1, 2, 3, 0, 0]]])


def test_picture_grid_places_each_picture_between_white_gaps_with_titles_and_legend():
    from ssma_tf.visualize import picture_grid

    rows = [[np.full((4, 6, 3), 10 * (3 * r + c + 1), np.uint8) for c in range(3)] for r in range(2)]
    plain = picture_grid(rows, gap=2)
    assert plain.shape == (2 * 4 + 2, 3 * 6 + 2 * 2, 3)
    for r in range(2):
        for c in range(3):
            top, left = r * 6, c * 8
            assert (plain[top:top + 4, left:left + 6] == 10 * (3 * r + c + 1)).all()
    assert (plain[4:6] == 255).all() and (plain[:, 6:8] == 255).all()
    scaled = picture_grid(rows, gap=2, scale=3)
    np.testing.assert_array_equal(scaled[::3, ::3], plain)

    palette = [[0, 0, 0], [255, 0, 0]]
    titled = picture_grid(rows, titles=["a", "b", "c"], class_names=["void", "red"], palette=palette, gap=2,
                          scale=8)
    assert titled.shape == (plain.shape[0] * 8 + 48, plain.shape[1] * 8, 3)
    np.testing.assert_array_equal(titled[24:24 + plain.shape[0] * 8], picture_grid(rows, gap=2, scale=8))
    assert (titled[:24] < 255).any()  # the titles are drawn
    legend = titled[24 + plain.shape[0] * 8:]
    assert ((legend == [255, 0, 0]).all(axis=-1)).sum() >= 100  # the 13x13 swatch of class "red"
    # A legend wider than a narrow grid wraps onto more lines, and the picture is as wide as its
    # widest name (before: cut at the grid's edge, "rider/bicycle/mot"; helper 142).
    narrow = picture_grid(rows, class_names=["void", "red"], palette=palette, gap=2)
    assert narrow.shape[0] == plain.shape[0] + 48 and narrow.shape[1] > plain.shape[1]  # two legend lines
    np.testing.assert_array_equal(narrow[:plain.shape[0], :plain.shape[1]], plain)
    assert (narrow[:plain.shape[0], plain.shape[1]:] == 255).all()
    assert ((narrow[plain.shape[0] + 24:] == [255, 0, 0]).all(axis=-1)).sum() >= 100  # "red" on the second
    long_name = picture_grid(rows, class_names=["rider/bicycle/motorcycle"], palette=palette, gap=2)
    text = np.argwhere((long_name[plain.shape[0]:] < 128).all(axis=-1))
    assert text[:, 1].max() < long_name.shape[1] - 2  # the name's last letter inside the picture
    # A title longer than its column is cut with '...' before the next column's (before: drawn
    # over it).
    titled = picture_grid(rows, titles=["AdapNet++ (RGB)", "SSMA (RGB + depth)", "c"], gap=2, scale=8)
    assert (titled[:24, :6 * 8] < 128).any() and not (titled[:24, 6 * 8:8 * 8] < 128).any()
    assert (titled[:24, 8 * 8:8 * 8 + 10] < 128).any()


@pytest.mark.parametrize("kwargs, message", [
    (dict(rows=[]), "at least one picture"),
    (dict(rows=[[np.zeros((4, 4, 3), np.uint8)], [np.zeros((4, 5, 3), np.uint8)]]), r"picture \(1, 0\)"),
    (dict(rows=[[np.zeros((4, 4, 3), np.uint8)] * 2, [np.zeros((4, 4, 3), np.uint8)]]), "row 1 has 1 pictures"),
    (dict(rows=[[np.zeros((4, 4, 3), np.uint8)]], titles=["a", "b"]), "2 titles for 1 columns"),
    (dict(rows=[[np.zeros((4, 4, 3), np.uint8)]], class_names=["void"]), "both class_names and palette"),
])
def test_picture_grid_refuses_what_it_cannot_lay_out(kwargs, message):
    from ssma_tf.visualize import picture_grid

    with pytest.raises(ValueError, match=message):
        picture_grid(**kwargs)


def test_confusion_picture_shades_each_cell_by_its_share_of_the_row():
    from ssma_tf.visualize import confusion_picture

    counts = np.array([[8, 0, 0], [2, 6, 0], [0, 0, 0]])
    cell = 40
    picture = confusion_picture(counts, ["left", "top", "plain"], cell=cell)
    assert picture.dtype == np.uint8 and picture.ndim == 3 and picture.shape[2] == 3
    # The cells' grid ends 8 pixels from the right and the bottom edge: find each cell's centre
    # pixel from there, inset past the printed count.
    right, bottom = picture.shape[1] - 8, picture.shape[0] - 8

    def corner(row, column):  # a pixel near the cell's top-left corner, clear of the text and frames
        return picture[bottom - (3 - row) * cell + 4, right - (3 - column) * cell + 4]

    assert tuple(corner(0, 0)) == (16, 62, 140)  # 8 of 8: the darkest
    assert tuple(corner(0, 1)) == (255, 255, 255)  # 0 of 8
    assert tuple(corner(1, 0)) == tuple(int(round(255 - 0.25 * (255 - d))) for d in (16, 62, 140))  # 2 of 8
    assert tuple(corner(2, 2)) == (255, 255, 255)  # a class without samples stays white
    with pytest.raises(ValueError, match=r"2 class names for a 3x3 confusion matrix"):
        confusion_picture(counts, ["a", "b"])
    with pytest.raises(ValueError, match=r"square \(C, C\) matrix, got shape \(2, 3\)"):
        confusion_picture(np.zeros((2, 3)))


def test_text_beyond_ascii_takes_a_truetype_font_or_is_warned_of(monkeypatch):
    """Pillow's built-in font draws ASCII only: 'Küche' came out as 'K▯che' without a word
    (helper 142). A system TrueType font is taken; without one, the names are warned of."""
    from PIL import ImageFont

    from ssma_tf import visualize

    rows = [[np.zeros((8, 8, 3), np.uint8)]]
    found = []
    real = ImageFont.truetype  # Pillow's own font is read through it too

    def no_truetype(name, size, **kwargs):
        if name not in visualize._FONTS:
            return real(name, size, **kwargs)
        found.append(name)
        raise OSError("cannot open resource")

    def any_truetype(name, size, **kwargs):
        return real(name, size, **kwargs) if name not in visualize._FONTS else ImageFont.load_default(size)

    try:
        visualize._font.cache_clear()
        monkeypatch.setattr(ImageFont, "truetype", no_truetype)
        with pytest.warns(UserWarning, match=r"^'Küche', 'Straße': no TrueType font found "
                                             r"\(DejaVuSans\.ttf, .*\), and Pillow's own draws ASCII only: the other "
                                             r"characters show as boxes"):
            visualize.confusion_picture(np.eye(3, dtype=int), ["Küche", "Straße", "office"])
        assert found == list(visualize._FONTS)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            visualize.picture_grid(rows, titles=["RGB"], class_names=["office"], palette=[[0, 0, 0]])
        visualize._font.cache_clear()
        monkeypatch.setattr(ImageFont, "truetype", any_truetype)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            visualize.picture_grid(rows, titles=["Tiefe"], class_names=["Küche"], palette=[[0, 0, 0]])
    finally:
        visualize._font.cache_clear()


def test_the_confusion_picture_shortens_large_counts_and_keeps_its_titles_whole():
    """Helper 195: six digits ran over the next cells; a small cell cut "predicted" at the edge and
    short names ran into "true"."""
    from ssma_tf.visualize import _count_text, confusion_picture

    def width(text):
        return 7 * len(text)

    assert [_count_text(n, 36, width) for n in (0, 999, 99999, 999999, 1425300, 123456789)] == [
        "0", "999", "99999", "1.0M", "1.4M", "123M"]
    assert _count_text(1425300, 20, width) == ""  # the shade alone
    picture = confusion_picture(np.eye(3, dtype=int) * 5, ["a", "b", "c"], cell=12)
    title = (picture[2:16] < 200).any(axis=2)  # the "predicted" line
    assert title.any() and not title[:, -6:].any(), "cut at the right edge"
