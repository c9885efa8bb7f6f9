"""The list-to-TFRecords converter: parity with the original tools, encodings, shards, errors."""

import importlib.util
import os
import pathlib

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from ssma_tf.data import decode_example, format_summary, read_list_file, write_tfrecords
from tests.conftest import ROOT, shared_path
from tests.data.helpers import random_sample, save_png, write_list


def _records(paths):
    return [r.numpy() for r in tf.data.TFRecordDataset([str(p) for p in paths])]


def _decoded(paths):
    return [{k: v.numpy() for k, v in decode_example(r).items()} for r in _records(paths)]


def _assert_same_arrays(actual, expected):
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        assert sorted(a) == sorted(e)
        for key in e:
            np.testing.assert_array_equal(a[key], e[key], err_msg=key)


@pytest.fixture
def dataset_dir(tmp_path):
    """Three 16x24 fusion samples as PNG files with a triplet and a pair list."""
    folder = tmp_path / "data"
    folder.mkdir()
    triplets, pairs = [], []
    for i in range(3):
        m1, m2, label = random_sample(16, 24, 5, seed=i)
        save_png(folder / f"{i}_rgb.png", m1)
        save_png(folder / f"{i}_aux.png", m2)
        save_png(folder / f"{i}_label.png", label)
        triplets.append(f"{i}_rgb.png {i}_aux.png {i}_label.png")
        pairs.append(f"{i}_rgb.png {i}_label.png")
    write_list(folder / "triplets.txt", triplets)
    write_list(folder / "pairs.txt", pairs)
    return folder


@pytest.mark.parametrize("list_name,original", [("triplets.txt", "original_ssma_format.tfrecords"),
                                                ("pairs.txt", "original_adapnet_format.tfrecords")])
def test_converter_output_equals_the_original_records(tmp_path, list_name, original):
    folder = shared_path("fixtures", "original_format")
    summary = write_tfrecords(str(folder / list_name), str(tmp_path / "out.tfrecords"))
    ours, theirs = _records([tmp_path / "out.tfrecords"]), _records([folder / original])
    # Equal Example protos (field order in the bytes is protobuf's business), hence equal arrays.
    assert [tf.train.Example.FromString(r) for r in ours] == [tf.train.Example.FromString(r) for r in theirs]
    _assert_same_arrays(_decoded([tmp_path / "out.tfrecords"]), _decoded([folder / original]))
    assert summary["samples"] == 5
    assert summary["image_sizes"] == {(96, 192): 5}
    assert summary["bytes_written"] == os.path.getsize(tmp_path / "out.tfrecords")


def test_png_encoding_of_the_fixtures_decodes_like_the_original(tmp_path):
    folder = shared_path("fixtures", "original_format")
    summary = write_tfrecords(str(folder / "triplets.txt"), str(tmp_path / "out.tfrecords"), encoding="png")
    _assert_same_arrays(_decoded([tmp_path / "out.tfrecords"]), _decoded([folder / "original_ssma_format.tfrecords"]))
    assert summary["bytes_written"] < os.path.getsize(folder / "original_ssma_format.tfrecords") / 1.5


def test_read_list_file_resolves_paths_relative_to_the_list(dataset_dir, tmp_path):
    absolute = str(dataset_dir / "0_rgb.png")
    lines = ["", f"{absolute} 1_label.png", "  ", "2_rgb.png   2_label.png", ""]
    entries = read_list_file(write_list(dataset_dir / "mixed.txt", lines))
    assert entries == [(absolute, str(dataset_dir / "1_label.png")),
                       (str(dataset_dir / "2_rgb.png"), str(dataset_dir / "2_label.png"))]


def test_an_interrupt_while_the_shards_are_renamed_leaves_them_all_new(dataset_dir, tmp_path, monkeypatch):
    """Helper 271: a Ctrl-C after the first of three renames left one new shard (a fresh folder)
    or new shards beside old ones (--overwrite); the interrupt now comes once all are in place.
    The signal's arrival is its handler's call, as Python makes it (no real signal: the test
    worker's own handling is not this test's)."""
    import signal

    from ssma_tf import files

    replace = files._replace
    renamed = []

    def replace_then_interrupt(source, destination):
        replace(source, destination)
        renamed.append(destination)
        if len(renamed) == 1:
            signal.getsignal(signal.SIGINT)(signal.SIGINT, None)

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        old = write_tfrecords(str(dataset_dir / "triplets.txt"), str(tmp_path / "t.tfrecords"), shards=3)["files"]
        before = {name: os.stat(name).st_mtime_ns for name in old}
        monkeypatch.setattr(files, "_replace", replace_then_interrupt)
        with pytest.raises(KeyboardInterrupt):
            write_tfrecords(str(dataset_dir / "triplets.txt"), str(tmp_path / "t.tfrecords"), shards=3,
                            encoding="png")
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back
    finally:
        signal.signal(signal.SIGINT, previous)
    assert sorted(renamed) == sorted(old)
    assert all(os.stat(name).st_mtime_ns != before[name] for name in old)
    assert [len(_records([name])) for name in old] == [1, 1, 1]
    assert sorted(os.listdir(tmp_path)) == ["data"] + [os.path.basename(name) for name in old]  # no temporary
    # Interrupted while writing, before the renames: every shard as it was.
    monkeypatch.setattr(files, "_replace", replace)
    written = {name: os.stat(name).st_mtime_ns for name in old}

    def interrupted(done, total):
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_tfrecords(str(dataset_dir / "triplets.txt"), str(tmp_path / "t.tfrecords"), shards=3,
                        progress=interrupted)
    assert {name: os.stat(name).st_mtime_ns for name in old} == written
    assert sorted(os.listdir(tmp_path)) == ["data"] + [os.path.basename(name) for name in old]


def test_shards_workers_and_summary(dataset_dir, tmp_path):
    single = write_tfrecords(str(dataset_dir / "triplets.txt"), str(tmp_path / "one.tfrecords"))
    calls = []
    # NumPy's integers are counts too (refused before: a class count read from an array).
    sharded = write_tfrecords(str(dataset_dir / "triplets.txt"), str(tmp_path / "many.tfrecords"),
                              encoding="png", shards=np.int64(2), num_workers=np.int64(3), num_classes=np.int64(5),
                              progress=lambda done, total: calls.append((done, total)))
    names = [str(tmp_path / "many-00000-of-00002.tfrecords"), str(tmp_path / "many-00001-of-00002.tfrecords")]
    assert sharded["files"] == names
    assert sorted(os.listdir(tmp_path)) == ["data", "many-00000-of-00002.tfrecords",
                                            "many-00001-of-00002.tfrecords", "one.tfrecords"]
    assert [len(_records([n])) for n in names] == [2, 1]
    # Shards read in order give the list order, and the same arrays as the raw single file.
    _assert_same_arrays(_decoded(names), _decoded([tmp_path / "one.tfrecords"]))
    assert calls == [(1, 3), (2, 3), (3, 3)]
    assert sharded["bytes_written"] == sum(os.path.getsize(n) for n in names)
    labels = [np.asarray(Image.open(dataset_dir / f"{i}_label.png")) for i in range(3)]
    expected = np.bincount(np.concatenate([l.ravel() for l in labels]))
    assert single["class_histogram"] == {c: int(n) for c, n in enumerate(expected) if n}
    assert single["modalities"] == 2 and single["samples"] == 3 and single["image_sizes"] == {(16, 24): 3}


def test_images_are_read_as_opencv_would(tmp_path):
    """Gray and 16-bit modalities become 3 equal BGR channels; palette labels give their indices."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (10, 14, 3), dtype=np.uint8)
    depth16 = rng.integers(0, 65536, (10, 14), dtype=np.uint16)
    ids = rng.integers(0, 6, (10, 14), dtype=np.uint8)
    save_png(tmp_path / "rgba.png", np.concatenate([rgb, np.full((10, 14, 1), 9, np.uint8)], -1))
    Image.fromarray(depth16).save(tmp_path / "depth.png")
    palette = Image.fromarray(ids).convert("P")
    palette.putpalette([v for i in range(256) for v in ((i * 37) % 256, 200, 255 - i)])
    palette.save(tmp_path / "label.png")
    write_list(tmp_path / "list.txt", ["rgba.png depth.png label.png"])
    write_tfrecords(str(tmp_path / "list.txt"), str(tmp_path / "out.tfrecords"))
    (decoded,) = _decoded([tmp_path / "out.tfrecords"])
    np.testing.assert_array_equal(decoded["modality1"], rgb[..., ::-1])
    np.testing.assert_array_equal(decoded["modality2"], np.repeat((depth16 >> 8).astype(np.uint8)[..., None], 3, 2))
    np.testing.assert_array_equal(decoded["label"], ids)


def test_palette_labels_of_different_palettes_are_warned_of(tmp_path, capsys):
    """Helper 69: two labels saved with their own palettes (quantize) gave one colour two ids,
    grass void in one of them, and converted and checked ok without a word."""
    from ssma_tf.cli.convert import main

    rgb = np.zeros((10, 14, 3), np.uint8)
    save_png(tmp_path / "rgb.png", rgb)
    ids = np.zeros((10, 14), np.uint8)
    ids[:, 7:] = 1
    for name, colours in (("a", [(0, 0, 0), (0, 128, 0)]), ("b", [(0, 128, 0), (0, 0, 0)]), ("c", [(0, 0, 0)])):
        label = Image.fromarray(ids if len(colours) > 1 else np.zeros_like(ids)).convert("P")
        label.putpalette([v for colour in colours for v in colour] + [0] * (768 - 3 * len(colours)))
        label.save(tmp_path / f"{name}.png")
    write_list(tmp_path / "list.txt", ["rgb.png a.png", "rgb.png c.png", "rgb.png b.png"])
    assert main(["-f", str(tmp_path / "list.txt"), "-r", str(tmp_path / "out.tfrecords")]) == 0
    error = capsys.readouterr().err
    assert (f"warning: {tmp_path / 'list.txt'}: the palette labels do not share one palette: id 0 is (0, 0, 0) in line 1 "
            f"({tmp_path / 'a.png'}) but (0, 128, 0) in line 3 ({tmp_path / 'b.png'}). A palette image's ids are its "
            "indices") in error
    # Two labels that disagree on an id the first label does not use (helper 70: only the
    # first label's palette was compared with).
    for name, colour in (("green", (0, 128, 0)), ("red", (128, 0, 0))):
        label = Image.fromarray(np.ones_like(ids)).convert("P")
        label.putpalette([0, 0, 0, *colour] + [0] * (768 - 6))
        label.save(tmp_path / f"{name}.png")
    write_list(tmp_path / "later.txt", ["rgb.png c.png", "rgb.png green.png", "rgb.png red.png"])
    summary = write_tfrecords(str(tmp_path / "later.txt"), str(tmp_path / "later.tfrecords"))
    assert summary["palette_clash"].startswith(
        f"the palette labels do not share one palette: id 1 is (0, 128, 0) in line 2 ({tmp_path / 'green.png'}) "
        f"but (128, 0, 0) in line 3 ({tmp_path / 'red.png'}).")
    # One palette for all (the usual Pascal VOC-style files): no warning.
    write_list(tmp_path / "same.txt", ["rgb.png a.png", "rgb.png c.png"])
    summary = write_tfrecords(str(tmp_path / "same.txt"), str(tmp_path / "same.tfrecords"))
    assert summary["palette_clash"] is None and summary["grey_palette"] is None
    # A full palette and ids past 85, 255 among them (helper 90: NumPy's uint8 ids wrapped in the
    # palette's byte offsets: a traceback for 255, wrong colours from 86 on).
    high = ids.copy()
    high[0, 0], high[0, 1] = 200, 255
    full = Image.fromarray(high).convert("P")
    full.putpalette([v for index in range(256) for v in (index, 0, 255 - index)])
    full.save(tmp_path / "full.png")
    write_list(tmp_path / "full.txt", ["rgb.png full.png"])
    summary = write_tfrecords(str(tmp_path / "full.txt"), str(tmp_path / "full.tfrecords"))
    assert summary["grey_palette"] is None and summary["class_histogram"][255] == 1
    from ssma_tf.data.convert import _load_label_and_colours

    assert _load_label_and_colours(str(tmp_path / "full.png"))[1] == {
        0: (0, 0, 255), 1: (1, 0, 254), 200: (200, 0, 55), 255: (255, 0, 0)}
    # A palette of grey colours other than the indices (helper 86): a viewer and the original tools
    # see ids 0 and 3, the records hold 0 and 1, and nothing was said.
    grey = Image.fromarray(ids).convert("P")
    grey.putpalette([0, 0, 0, 3, 3, 3] + [0] * (768 - 6))
    grey.save(tmp_path / "grey.png")
    level = Image.fromarray(ids).convert("P")
    level.putpalette([0, 0, 0, 1, 1, 1] + [0] * (768 - 6))  # grey level = index: the same ids either way
    level.save(tmp_path / "level.png")
    write_list(tmp_path / "grey.txt", ["rgb.png level.png", "rgb.png grey.png"])
    assert main(["-f", str(tmp_path / "grey.txt"), "-r", str(tmp_path / "grey.tfrecords")]) == 0
    assert (f"warning: {tmp_path / 'grey.txt'}, line 2: {tmp_path / 'grey.png'} is a palette image of grey colours "
            "(index 1 is grey 3): its class ids are the palette indices") in capsys.readouterr().err


def test_an_image_turned_by_its_exif_orientation_is_said_so_when_its_size_differs(tmp_path):
    """Helper 69: "is 32x16 but label ... is 16x32" for a file of 16x32 pixels, without a word on
    the orientation that turned it."""
    from ssma_tf.errors import UserInputError

    image = Image.fromarray(np.zeros((16, 32, 3), np.uint8))
    exif = image.getexif()
    exif[0x0112] = 6  # turned a quarter
    image.save(tmp_path / "turned.jpg", exif=exif)
    Image.fromarray(np.zeros((16, 32), np.uint8)).save(tmp_path / "label.png")
    write_list(tmp_path / "list.txt", ["turned.jpg label.png"])
    with pytest.raises(UserInputError, match=r"turned\.jpg' is 32x16 but label .*label\.png' is 16x32 \(height x "
                                             r"width\); the file stores it 16x32, turned by its EXIF orientation"):
        write_tfrecords(str(tmp_path / "list.txt"), str(tmp_path / "out.tfrecords"))


def test_images_turned_by_their_exif_orientation_but_not_their_labels_are_warned_of(tmp_path, capsys):
    """Helper 86: a photo stored upside down with orientation 3 (or a square one turned a quarter)
    keeps its size, so it was written turned against its label without a word."""
    from ssma_tf.cli import convert as convert_cli

    def save(name, orientation, size=(32, 64)):
        image = Image.fromarray(np.zeros(size + (3,), np.uint8))
        exif = image.getexif()
        if orientation is not None:
            exif[0x0112] = orientation
        image.save(tmp_path / name, exif=exif)

    save("upside_down.jpg", 3)
    save("square.jpg", 6, (32, 32))
    save("plain.jpg", 1)
    save("depth.jpg", None)
    Image.fromarray(np.zeros((32, 64), np.uint8)).save(tmp_path / "label.png")
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(tmp_path / "square_label.png")
    write_list(tmp_path / "list.txt", ["plain.jpg label.png", "upside_down.jpg label.png",
                                       "square.jpg square_label.png"])
    summary = write_tfrecords(str(tmp_path / "list.txt"), str(tmp_path / "out.tfrecords"))
    assert [(line, modality, os.path.basename(path), turn) for line, modality, path, turn in summary["turned"]] == [
        (2, 1, "upside_down.jpg", 3), (3, 1, "square.jpg", 6)]
    assert convert_cli.main(["-f", str(tmp_path / "list.txt"), "-r", str(tmp_path / "cli.tfrecords")]) == 0
    err = capsys.readouterr().err
    assert (f"warning: {tmp_path / 'list.txt'}: 2 image(s) are turned by their EXIF orientation as they are read, as "
            "OpenCV and the original tools read them, but their label is not (line 2: ") in err, err
    assert "upside_down.jpg (turned 180 degrees), line 3: " in err and "square.jpg (turned 90 degrees))" in err
    # Without labels: a turned photo beside a depth image that is not; both turned alike: no word.
    write_list(tmp_path / "pairs.txt", ["upside_down.jpg depth.jpg", "upside_down.jpg upside_down.jpg"])
    summary = write_tfrecords(str(tmp_path / "pairs.txt"), str(tmp_path / "pairs.tfrecords"), labeled=False)
    assert [(line, modality) for line, modality, _, _ in summary["turned"]] == [(1, 1)]
    assert convert_cli.main(["-f", str(tmp_path / "pairs.txt"), "-r", str(tmp_path / "p.tfrecords"),
                             "--unlabeled"]) == 0
    assert "but the other images of their line are not (line 1: " in capsys.readouterr().err


def test_a_label_with_many_ids_past_the_classes_shows_them_and_says_what_makes_them(tmp_path):
    """Helper 69: a label once saved as JPEG (ids 4..24 along edges, 254) was "class id 254"."""
    from ssma_tf.data.convert import unknown_ids_text
    from ssma_tf.errors import UserInputError

    assert unknown_ids_text([7]) == "id 7"
    assert unknown_ids_text([4, 5]) == "ids 4, 5 (2 ids)"
    ids = np.zeros((16, 24), np.uint8)
    ids.ravel()[:22] = list(range(4, 25)) + [254]
    save_png(tmp_path / "rgb.png", np.zeros((16, 24, 3), np.uint8))
    save_png(tmp_path / "label.png", ids)
    write_list(tmp_path / "list.txt", ["rgb.png label.png"])
    with pytest.raises(UserInputError, match=r"has class ids 4, 5, 6, 7, 8, \.\.\. 254 \(22 ids; many ids past the classes: is "
                                             r"the class count too small for these labels, or was a label once saved as "
                                             r"JPEG \(stray ids along its edges\)\?\) but --num_classes is 4"):
        write_tfrecords(str(tmp_path / "list.txt"), str(tmp_path / "out.tfrecords"), num_classes=4)


def test_the_summary_notes_labels_holding_both_void_and_ignored_ids():
    """Helper 69: labels whose 0 is a class and 255 the ignored id (Cityscapes trainIds) lost class
    0 without a word (0 is void here)."""
    from ssma_tf.data.convert import format_summary

    summary = {"image_sizes": {(4, 4): 1}, "files": ["x.tfrecords"], "modalities": 1, "samples": 1,
               "bytes_written": 10, "encoding": "raw", "num_classes": None}
    both = format_summary({**summary, "class_histogram": {0: 5, 1: 6, 255: 5}})
    assert "note:            ids 0 and 255 both occur: 0 is void here (neither learned nor scored)" in both
    assert "note" not in format_summary({**summary, "class_histogram": {0: 5, 1: 11}})
    assert "note" not in format_summary({**summary, "class_histogram": {1: 11, 255: 5}})


def _bad_inputs(folder: pathlib.Path):
    """(name, list lines, extra args, exception, message pattern) for each bad input."""
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    save_png(folder / "small_rgb.png", np.zeros((8, 24, 3), np.uint8))
    save_png(folder / "1 rgb.png", np.zeros((16, 24, 3), np.uint8))
    (folder / "my images").mkdir(exist_ok=True)
    save_png(folder / "my images" / "a b.png", np.zeros((16, 24, 3), np.uint8))
    save_png(folder / "rgb_label.png", np.zeros((16, 24, 3), np.uint8))
    save_png(folder / "colour_label.png", np.tile(np.array([128, 64, 128], np.uint8), (16, 24, 1)))
    big = np.zeros((16, 24), np.uint8)
    big[3, 4] = 7
    big[5, 6] = 255  # the ignore id is never the one named
    save_png(folder / "big_label.png", big)
    # A gray JPEG label: lossy, so ids change along every edge (and ids that never existed appear).
    Image.fromarray(np.kron(np.arange(6, dtype=np.uint8).reshape(2, 3), np.ones((8, 8), np.uint8))).save(
        folder / "label.jpg", quality=90)
    Image.fromarray(np.zeros((16, 24, 2), np.uint8)[..., 0]).convert("LA").save(folder / "la_label.png")
    Image.fromarray(np.zeros((16, 24), np.uint8)).save(folder / "jpeg_label.tif", compression="jpeg")
    Image.fromarray(np.zeros((16, 24), np.float32)).save(folder / "float_label.tif")
    good = "0_rgb.png 0_aux.png 0_label.png"
    return [
        ("missing image", [good, "1_rgb.png nowhere.png 1_label.png"], {}, FileNotFoundError, r"line 2: image .*nowhere\.png"),
        ("unreadable image", [good, "broken.png 1_aux.png 1_label.png"], {}, ValueError, r"line 2: cannot read image .*broken\.png"),
        ("wrong columns", [good, "1_rgb.png"], {}, ValueError, r"line 2: expected 2 columns .* got 1"),
        ("mixed columns", [good, "1_rgb.png 1_label.png"], {}, ValueError, r"line 2: has 2 columns .* have 3"),
        ("size mismatch", [good, "small_rgb.png 1_aux.png 1_label.png"], {}, ValueError, r"line 2: image .*small_rgb\.png' is 8x24 but label .* is 16x24"),
        ("grey label as RGB", [good, "1_rgb.png 1_aux.png rgb_label.png"], {}, ValueError, r"line 2: label .*rgb_label\.png' must be a single-channel .* mode RGB with 3 channels \(its three channels are equal: a grey label saved as RGB"),
        ("colour label", [good, "1_rgb.png 1_aux.png colour_label.png"], {}, ValueError, r"colour_label\.png' must be a single-channel .* \(colour labels must be turned into class ids first: docs/your_dataset\.md"),
        ("gray + alpha label", [good, "1_rgb.png 1_aux.png la_label.png"], {}, ValueError, r"line 2: label .*la_label\.png' must be a single-channel .* mode LA with 2 channels \(save it without the alpha channel"),
        # Helper 86: the hint said to turn colours into ids.
        ("float label", [good, "1_rgb.png 1_aux.png float_label.tif"], {}, ValueError, r"line 2: label .*float_label\.tif' must be a single-channel .* mode F with 1 channel \(one channel of floating-point values; save the class ids as 8-bit integers"),
        ("JPEG label", [good, "1_rgb.png 1_aux.png label.jpg"], {}, ValueError, r"line 2: label .*label\.jpg' is a JPEG file, which stores class ids with loss"),
        ("JPEG-compressed TIFF label", [good, "1_rgb.png 1_aux.png jpeg_label.tif"], {}, ValueError, r"line 2: label .*jpeg_label\.tif' is a JPEG-compressed TIFF file"),
        ("id >= num_classes", [good, "1_rgb.png 1_aux.png big_label.png"], {"num_classes": 5}, ValueError, r"line 2: label .*big_label\.png' has class id 7 but --num_classes is 5"),
        ("empty list", ["", "   "], {}, ValueError, r"the list is empty"),
        ("a path with spaces, unquoted", [good, "1 rgb.png 1_aux.png 1_label.png"], {}, ValueError, r"line 2: has 4 columns but the lines before it have 3 \(a path with spaces\? quote it or separate the paths by tabs\)"),
        ("a path with spaces, unquoted, first", ["1 rgb.png 1_aux.png 1_label.png", good], {}, FileNotFoundError, r"line 1: image .*1' does not exist \(a path with spaces\? quote it or separate the paths by tabs\)"),
        ("unclosed quote", [good, '"1 rgb.png 1_aux.png 1_label.png'], {}, ValueError, r"line 2: a quote is not closed"),
        # With --modalities the column count is checked first (before: no word about spaces).
        ("a path with spaces, unquoted, modalities given", ["1 rgb.png 1_aux.png 1_label.png"], {"modalities": 2}, ValueError, r"line 1: has 4 columns, more than the 3 of 2 modalities and a label \(a path with spaces\? quote it"),
        # Three words of one path (before: named only the missing first word).
        ("a folder with spaces, unquoted", ["my images/a b.png 1_aux.png 1_label.png"], {}, FileNotFoundError, r"line 1: image .*my' does not exist \(a path with spaces\? quote it"),
        # Escaped as a shell would (before: "backslashes are no folder separators on this system").
        ("a space escaped with a backslash", ["my\\ images/a\\ b.png 1_aux.png 1_label.png"], {}, FileNotFoundError, r"line 1: image .*my\\' does not exist \(a space escaped with a backslash\? list files take no escapes"),
        # Before: "image '.../#' does not exist" without a word on why.
        ("a comment after the paths", [good + " # first"], {}, FileNotFoundError, r"line 1: image .*#' does not exist \(a comment after the paths\? comments go on lines of their own"),
        ("a comment after the paths, later", [good, good + " #b"], {}, ValueError, r"line 2: has 4 columns but the lines before it have 3 \(a comment after the paths\?"),
        # Helper 236: every path there, a pair before a triplet, was asked whether a path had spaces.
        ("a triplet after a pair", ["0_rgb.png 0_label.png", good], {}, ValueError, r"line 2: has 3 columns but the lines before it have 2; every line of a list has the same modalities$"),
    ]


BAD_INPUTS = 22


def test_every_bad_input_is_a_user_input_error(dataset_dir):
    from ssma_tf.errors import UserInputError

    assert len(_bad_inputs(dataset_dir)) == BAD_INPUTS
    for name, lines, extra, _, _ in _bad_inputs(dataset_dir):
        list_file = write_list(dataset_dir / "bad.txt", lines)
        with pytest.raises(UserInputError):
            write_tfrecords(list_file, str(dataset_dir / "never.tfrecords"), **extra)


@pytest.mark.parametrize("index", range(BAD_INPUTS))
@pytest.mark.parametrize("shards,num_workers", [(1, 1), (2, 2)])
def test_bad_input_names_file_and_line_and_leaves_no_output(dataset_dir, tmp_path, index, shards, num_workers):
    name, lines, extra, error, pattern = _bad_inputs(dataset_dir)[index]
    list_file = write_list(dataset_dir / "bad.txt", lines)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(error, match=pattern) as info:
        write_tfrecords(list_file, str(out / "bad.tfrecords"), shards=shards, num_workers=num_workers, **extra)
    assert list_file in str(info.value), name
    assert os.listdir(out) == [], name


def test_a_good_list_in_the_same_setup_writes_records(dataset_dir, tmp_path):
    """Counterpart of the bad-input cases: the same folder and arguments succeed on good lines."""
    _bad_inputs(dataset_dir)
    summary = write_tfrecords(str(dataset_dir / "triplets.txt"), str(tmp_path / "ok.tfrecords"), num_classes=5)
    assert summary["samples"] == 3 and os.path.isfile(tmp_path / "ok.tfrecords")


def test_the_ignore_id_255_passes_the_class_count_check(dataset_dir, tmp_path):
    """255 marks ignored pixels (training counts it as void), so --num_classes does not refuse it."""
    ignored = np.zeros((16, 24), np.uint8)
    ignored[:4] = 255
    save_png(dataset_dir / "ignored_label.png", ignored)
    list_file = write_list(dataset_dir / "ignored.txt", ["0_rgb.png 0_aux.png ignored_label.png"])
    summary = write_tfrecords(list_file, str(tmp_path / "ignored.tfrecords"), num_classes=5)
    assert summary["class_histogram"][255] == 4 * 24
    ignored[0, 0] = 5
    save_png(dataset_dir / "ignored_label.png", ignored)
    with pytest.raises(ValueError, match=r"class id 5 but --num_classes is 5 \(ids must be 0..4, or 255 for ignored"):
        write_tfrecords(list_file, str(tmp_path / "other.tfrecords"), num_classes=5)


def test_too_many_shards_and_bad_arguments(dataset_dir, tmp_path):
    with pytest.raises(ValueError, match="3 samples cannot fill 4 shards"):
        write_tfrecords(str(dataset_dir / "pairs.txt"), str(tmp_path / "x.tfrecords"), shards=4)
    with pytest.raises(ValueError, match="encoding"):
        write_tfrecords(str(dataset_dir / "pairs.txt"), str(tmp_path / "x.tfrecords"), encoding="jpg")
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        write_tfrecords(str(tmp_path / "nope.txt"), str(tmp_path / "x.tfrecords"))
    assert os.listdir(tmp_path) == ["data"]


def _cli():
    spec = importlib.util.spec_from_file_location("convert_to_tfrecords", ROOT / "tools" / "convert_to_tfrecords.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_converts_and_reports(dataset_dir, tmp_path, capsys):
    cli = _cli()
    out = tmp_path / "cli.tfrecords"
    assert cli.main(["-f", str(dataset_dir / "pairs.txt"), "-r", str(out), "--encoding", "png", "--num_classes", "5"]) == 0
    captured = capsys.readouterr()
    printed = captured.out
    # Not a terminal (a log file): a progress line at the end instead of a bar.
    assert "converted 3/3 (100%)" in captured.err
    assert "samples:         3 unimodal" in printed and "image size:      16x24 (3)" in printed
    assert f"{os.path.getsize(out):,} bytes, png encoding" in printed
    assert len(_records([out])) == 3


def test_cli_names_a_killed_writers_temporaries_once(dataset_dir, tmp_path, capsys):
    """The command and the converter both check the record file: one warning line, not two
    (with `--shards N`, not 2 x N)."""
    from ssma_tf.files import temporary_name

    out = tmp_path / "r.tfrecords"
    left = temporary_name(out)
    with open(left, "wb") as stream:
        stream.write(b"half a record")
    assert _cli().main(["-f", str(dataset_dir / "pairs.txt"), "-r", str(out)]) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert warned == [f"warning: 1 unfinished temporary of --record {out} (0.0 MB), left by an earlier writer that "
                      f"did not finish: {left}; remove it unless another process is writing {out} now"]
    assert os.path.exists(left) and len(_records([out])) == 3


def test_cli_keeps_existing_records_unless_asked(dataset_dir, tmp_path, capsys):
    cli = _cli()
    pairs = str(dataset_dir / "pairs.txt")
    out = tmp_path / "r.tfrecords"
    assert cli.main(["-f", pairs, "-r", str(out)]) == 0
    before = out.read_bytes()
    capsys.readouterr()
    assert cli.main(["-f", pairs, "-r", str(out), "--encoding", "png"]) == 2
    assert f"error: --record {out} exists; pass --overwrite to replace it" in capsys.readouterr().err
    assert out.read_bytes() == before
    assert cli.main(["-f", pairs, "-r", str(out), "--encoding", "png", "--overwrite"]) == 0
    assert out.read_bytes() != before
    # Shards: each file the run would write is checked.
    assert cli.main(["-f", pairs, "-r", str(out), "--shards", "2"]) == 0
    assert cli.main(["-f", pairs, "-r", str(out), "--shards", "2"]) == 2
    assert "r-00000-of-00002.tfrecords exists; pass --overwrite" in capsys.readouterr().err


def test_cli_reports_errors_with_file_and_line(dataset_dir, tmp_path, capsys):
    cli = _cli()
    list_file = write_list(dataset_dir / "bad.txt", ["0_rgb.png 0_label.png", "1_rgb.png"])
    assert cli.main(["--file", list_file, "--record", str(tmp_path / "x.tfrecords")]) == 2
    assert f"error: {list_file}, line 2: expected 2 columns" in capsys.readouterr().err
    assert not (tmp_path / "x.tfrecords").exists()
    # One class is void alone: every config refuses it (before: converted, then refused in training).
    assert cli.main(["--file", str(dataset_dir / "pairs.txt"), "--record", str(tmp_path / "x.tfrecords"),
                     "--num_classes", "1"]) == 2
    assert "--num_classes must be in 2..256, got 1" in capsys.readouterr().err


@pytest.mark.parametrize("modalities, message", [
    (1, "line 1: has 3 columns, more than the 2 of 1 modality and a label: ["),  # no hint of spaces: none there
    (0, "--modalities must be in 1..8, got 0"),
])
def test_cli_checks_the_modality_count(dataset_dir, tmp_path, capsys, modalities, message):
    out = tmp_path / "x.tfrecords"
    status = _cli().main(["-f", str(dataset_dir / "triplets.txt"), "-r", str(out), "--modalities", str(modalities)])
    assert status == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not out.exists()


def test_shards_of_an_earlier_run_are_reported(dataset_dir, tmp_path):
    first = write_tfrecords(str(dataset_dir / "pairs.txt"), str(tmp_path / "train.tfrecords"), shards=3)
    assert first["other_shards"] == []
    second = write_tfrecords(str(dataset_dir / "pairs.txt"), str(tmp_path / "train.tfrecords"), shards=2)
    assert second["other_shards"] == first["files"]
    assert "3 file(s) of an earlier run" in format_summary(second)
    # The other way round: an unsharded file, then shards (helper 154: not named).
    whole = write_tfrecords(str(dataset_dir / "pairs.txt"), str(tmp_path / "val.tfrecords"))
    sharded = write_tfrecords(str(dataset_dir / "pairs.txt"), str(tmp_path / "val.tfrecords"), shards=2)
    assert sharded["other_shards"] == whole["files"]


def test_a_pattern_matching_two_conversions_of_one_name_is_refused(dataset_dir, tmp_path):
    """`train*.tfrecords` over train.tfrecords and the shards of a conversion with --shards 2:
    training and evaluation read every record twice without a word (6 images counted as 18)."""
    from ssma_tf.data.pipeline import list_record_files
    from ssma_tf.data.records import RecordError

    write_tfrecords(str(dataset_dir / "pairs.txt"), str(tmp_path / "train.tfrecords"))
    write_tfrecords(str(dataset_dir / "pairs.txt"), str(tmp_path / "train.tfrecords"), shards=2)
    pattern = str(tmp_path / "train*.tfrecords")
    with pytest.raises(RecordError) as error:
        list_record_files(pattern)
    assert str(error.value) == (
        f"{tmp_path / 'train.tfrecords'}: '{pattern}' matches 2 conversions of this name, "
        f"{tmp_path / 'train-00000-of-00002.tfrecords'} (of-00002), {tmp_path / 'train.tfrecords'} (unsharded): every "
        "record would be read 2 times; remove the older ones (ssma-convert named them) or give one set's files")
    assert len(list_record_files(str(tmp_path / "train-*.tfrecords"))) == 2  # one set
    assert len(list_record_files(pattern, several_sets=True)) == 3  # ssma-check-records looks at every file
    (tmp_path / "other.tfrecords").write_bytes((tmp_path / "train.tfrecords").read_bytes())
    assert len(list_record_files([str(tmp_path / "train.tfrecords"), str(tmp_path / "other.tfrecords")])) == 2


def test_paths_with_spaces_quoted_or_tab_separated_convert_alike(dataset_dir, tmp_path):
    for i in range(2):
        os.replace(dataset_dir / f"{i}_rgb.png", dataset_dir / f"{i} rgb.png")
    quoted = write_list(dataset_dir / "quoted.txt", [f'"{i} rgb.png" {i}_label.png' for i in range(2)])
    tabbed = write_list(dataset_dir / "tabbed.txt", [f"{i} rgb.png\t{i}_label.png" for i in range(2)])
    write_tfrecords(quoted, str(tmp_path / "quoted.tfrecords"))
    write_tfrecords(tabbed, str(tmp_path / "tabbed.tfrecords"))
    assert _records([tmp_path / "quoted.tfrecords"]) == _records([tmp_path / "tabbed.tfrecords"])
    assert len(_records([tmp_path / "quoted.tfrecords"])) == 2


def test_paths_that_name_a_file_read_otherwise_get_a_hint(dataset_dir, tmp_path, monkeypatch):
    """A Windows list (backslashes) and paths written relative to the current folder said only
    "does not exist", the first with every backslash doubled."""
    (dataset_dir / "sub").mkdir()
    os.replace(dataset_dir / "0_rgb.png", dataset_dir / "sub" / "0_rgb.png")
    windows = write_list(dataset_dir / "windows.txt", ["sub\\0_rgb.png 0_label.png"])
    with pytest.raises(FileNotFoundError) as error:
        write_tfrecords(windows, str(tmp_path / "w.tfrecords"))
    assert str(error.value) == (
        f"{windows}, line 1: image '{dataset_dir / 'sub'}\\0_rgb.png' does not exist (backslashes are no folder "
        f"separators on this system: write the list's paths with '/': '{dataset_dir / 'sub' / '0_rgb.png'}' is there)")
    lists = dataset_dir / "lists"
    lists.mkdir()
    here = write_list(lists / "here.txt", ["sub/0_rgb.png 0_label.png"])
    monkeypatch.chdir(dataset_dir)
    with pytest.raises(FileNotFoundError, match=r"sub/0_rgb.png' does not exist \(it is there relative to the current "
                                                r"folder, but a list's paths are relative to the list's own folder, "):
        write_tfrecords(here, str(tmp_path / "h.tfrecords"))


def test_labels_without_a_class_pixel_are_warned_of(dataset_dir, tmp_path, capsys):
    """A binary mask saved as 0 and 255: every pixel void or ignored (before: a histogram line only,
    and training ran with a loss of 0)."""
    mask = np.zeros((16, 24), np.uint8)
    mask[4:8] = 255
    save_png(dataset_dir / "mask.png", mask)
    list_file = write_list(dataset_dir / "masks.txt", ["0_rgb.png mask.png", "1_rgb.png mask.png"])
    assert _cli().main(["-f", list_file, "-r", str(tmp_path / "m.tfrecords"), "--num_classes", "3"]) == 0
    printed = capsys.readouterr().out
    assert "class histogram: 0: 576 (75.0%), 255: 192 (25.0%)" in printed
    # The class ids of the --num_classes given (before: 1..254 whatever it was).
    assert ("warning:         no label pixel has a class id (1..2): 0 is void, 255 ignored and ids >= num_classes "
            "void, so training on these labels learns nothing (a loss of 0). A mask of background and object (e.g. "
            "saved as 0 and 255) needs the ids 1 and 2, and num_classes 3") in printed
    summary = write_tfrecords(list_file, str(tmp_path / "m.tfrecords"))
    assert summary["num_classes"] is None and "no label pixel has a class id (1..254): 0 is void, 255 ignored, so" \
        in format_summary(summary)
    assert "warning" not in format_summary(write_tfrecords(dataset_dir / "pairs.txt", str(tmp_path / "p.tfrecords")))


def test_duplicate_lines_are_reported_and_converted_again(dataset_dir, tmp_path, capsys):
    lines = ["0_rgb.png 0_label.png", "1_rgb.png 1_label.png", "0_rgb.png  0_label.png", "./1_rgb.png 1_label.png"]
    list_file = write_list(dataset_dir / "dups.txt", lines)
    summary = write_tfrecords(list_file, str(tmp_path / "d.tfrecords"))
    assert summary["samples"] == 4 and summary["duplicates"] == [(3, 1), (4, 2)]
    assert "2 duplicate line(s), converted again: line 3 repeats line 1, line 4 repeats line 2" in format_summary(summary)
    assert _cli().main(["-f", list_file, "-r", str(tmp_path / "e.tfrecords")]) == 0
    captured = capsys.readouterr()
    assert captured.err.count("duplicate line(s)") == 1 and "duplicate line" not in captured.out


@pytest.mark.parametrize("name", ["a folder", "under a file", "a listed image"])
def test_outputs_are_checked_before_any_image_is_read(dataset_dir, tmp_path, monkeypatch, name):
    from ssma_tf.data import convert

    monkeypatch.setattr(convert, "_load_sample", lambda *a: pytest.fail("an image was read"))
    (tmp_path / "file").write_text("x")
    output, pattern = {
        "a folder": (tmp_path, "is a folder; give a file name"),
        "under a file": (tmp_path / "file" / "x.tfrecords", "is a file, not a folder"),
        "a listed image": (dataset_dir / "0_label.png", "is one of the listed images"),
    }[name]
    with pytest.raises(ValueError, match=pattern):
        write_tfrecords(str(dataset_dir / "pairs.txt"), str(output))
    assert (dataset_dir / "0_label.png").read_bytes()[:4] == b"\x89PNG"


def test_the_list_file_as_output_is_refused_with_overwrite(dataset_dir, capsys):
    """`-r` equal to `-f` with --overwrite replaced the list by the records (helper 147)."""
    listed = dataset_dir / "pairs.txt"
    text = listed.read_text()
    assert _cli().main(["-f", str(listed), "-r", str(listed), "--overwrite"]) == 2
    assert capsys.readouterr().err == f"error: {listed}: the output {listed} is the list file itself\n"
    assert listed.read_text() == text


def test_an_image_listed_through_a_linked_folder_is_not_overwritten(dataset_dir, tmp_path, capsys):
    """The images were compared by absolute path, not resolved: a list naming them through a
    linked folder had one replaced by the records with --overwrite."""
    (tmp_path / "linked").symlink_to(dataset_dir)
    listed = write_list(tmp_path / "linked.txt", ["linked/0_rgb.png linked/0_label.png",
                                                   "linked/1_rgb.png linked/1_label.png"])
    before = (dataset_dir / "0_label.png").read_bytes()
    target = dataset_dir / "0_label.png"
    assert _cli().main(["-f", str(listed), "-r", str(target), "--overwrite"]) == 2
    assert capsys.readouterr().err == f"error: {listed}: the output {target} is one of the listed images\n"
    assert target.read_bytes() == before


def test_cli_checks_the_list_before_tensorflow_loads(dataset_dir, tmp_path):
    import subprocess
    import sys

    bad = write_list(dataset_dir / "bad.txt", ["0_rgb.png 0_label.png", "1_rgb.png missing.png"])
    code = ("import sys; from ssma_tf.cli.convert import main; status = main(['-f', sys.argv[1], '-r', sys.argv[2]]); "
            "print('tensorflow' in sys.modules, status)")
    run = subprocess.run([sys.executable, "-c", code, bad, str(tmp_path / "x.tfrecords")], capture_output=True,
                         text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=120)
    assert run.stdout.split() == ["False", "2"]
    assert run.stderr.strip() == f"error: {bad}, line 2: image '{dataset_dir / 'missing.png'}' does not exist"


def test_cli_refuses_a_listed_output_before_tensorflow_loads(dataset_dir):
    """The list file or one of its images as the output, with --overwrite, was refused only after
    TensorFlow's start-up (5 s), while docs/data.md says before it (helper 341)."""
    import subprocess
    import sys

    listed = dataset_dir / "pairs.txt"
    code = ("import sys; from ssma_tf.cli.convert import main; "
            "status = [main(['-f', sys.argv[1], '-r', out, '--overwrite']) for out in sys.argv[1:]]; "
            "print('tensorflow' in sys.modules, *status)")
    run = subprocess.run([sys.executable, "-c", code, listed, dataset_dir / "0_label.png"], capture_output=True,
                         text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=120)
    assert run.stdout.split() == ["False", "2", "2"]
    assert run.stderr.splitlines() == [f"error: {listed}: the output {listed} is the list file itself",
                                       f"error: {listed}: the output {dataset_dir / '0_label.png'} is one of the "
                                       "listed images"]


def test_cli_check_reads_the_written_records_back(dataset_dir, tmp_path, capsys):
    out = tmp_path / "checked.tfrecords"
    assert _cli().main(["-f", str(dataset_dir / "triplets.txt"), "-r", str(out), "--check", "--num_classes", "5"]) == 0
    captured = capsys.readouterr()
    assert f"{out}: 3 records (3 fusion), 16x24 (3), label ids 0..4: ok" in captured.out
    assert captured.err.count("checked 3/3 (100%)") == 1


def test_a_full_disk_is_one_line_naming_the_file_and_leaves_nothing(dataset_dir, tmp_path, monkeypatch, capsys):
    import errno

    real = tf.io.TFRecordWriter

    class FillsUp(real):  # the disk fills on the second record, as TensorFlow reports it
        written = 0

        def write(self, record):
            FillsUp.written += 1
            if FillsUp.written == 2:
                raise tf.errors.ResourceExhaustedError(None, None, f"{tmp_path}/.partial-x; No space left on device")
            super().write(record)

    monkeypatch.setattr(tf.io, "TFRecordWriter", FillsUp)
    out = tmp_path / "out"
    with pytest.raises(OSError) as error:
        write_tfrecords(str(dataset_dir / "pairs.txt"), str(out / "full.tfrecords"), shards=2)
    assert error.value.errno == errno.ENOSPC and error.value.filename == str(out / "full-00000-of-00002.tfrecords")
    assert not out.exists()  # the folder it made goes too (helper 242)
    FillsUp.written = 0
    assert _cli().main(["-f", str(dataset_dir / "pairs.txt"), "-r", str(out / "full.tfrecords")]) == 1
    assert capsys.readouterr().err == (f"error: {out / 'full.tfrecords'}: cannot write records: No space left on "
                                       "device; nothing was written\n")
    assert not out.exists()


def test_an_unlabeled_list_converts_to_records_without_labels(dataset_dir, tmp_path, capsys):
    from ssma_tf.data.unlabeled import decode_record

    write_list(dataset_dir / "images.txt", [f"{i}_rgb.png {i}_aux.png" for i in range(3)])
    out = tmp_path / "unlabeled.tfrecords"
    status = _cli().main(["-f", str(dataset_dir / "images.txt"), "-r", str(out), "--unlabeled", "--check",
                          "--encoding", "png"])
    assert status == 0
    printed = capsys.readouterr().out
    assert "samples:         3 fusion (modality1, modality2, no label)" in printed
    assert "class histogram: none (unlabeled records)" in printed
    assert f"{out}: 3 records (3 fusion), 16x24 (3), no label pixels, 3 without a label: ok" in printed
    write_tfrecords(str(dataset_dir / "triplets.txt"), str(tmp_path / "labeled.tfrecords"))
    for record, reference in zip(_records([out]), _decoded([tmp_path / "labeled.tfrecords"])):
        assert "label" not in tf.train.Example.FromString(record).features.feature
        sample = decode_record(record, modalities=2)
        # The same images as the labeled records of the same files; the label reads as all void.
        np.testing.assert_array_equal(sample["modality1"].numpy(), reference["modality1"])
        np.testing.assert_array_equal(sample["modality2"].numpy(), reference["modality2"])
        assert not sample["label"].numpy().any()


def test_a_label_column_given_twice_is_named_as_a_modality_that_looks_like_a_label(dataset_dir, tmp_path, capsys):
    """`rgb aux label label`: converted as a fusion of three, the label read as modality 3, without
    a word."""
    write_list(dataset_dir / "extra.txt", [f"{i}_rgb.png {i}_aux.png {i}_label.png {i}_label.png" for i in range(2)])
    out = str(tmp_path / "x.tfrecords")
    assert _cli().main(["-f", str(dataset_dir / "extra.txt"), "-r", out]) == 0
    captured = capsys.readouterr()
    assert "extra.txt, line 1: column 3 (" in captured.err and ("0_label.png) is a single-channel image of few "
                                                                 "values, as labels are, but is converted as "
                                                                 "modality 3 of 3") in captured.err
    os.remove(out)
    assert _cli().main(["-f", str(dataset_dir / "extra.txt"), "-r", out, "--modalities", "3"]) == 0
    assert "as labels are" not in capsys.readouterr().err  # said so
    os.remove(out)
    assert _cli().main(["-f", str(dataset_dir / "triplets.txt"), "-r", out]) == 0  # a pair and its label
    assert "as labels are" not in capsys.readouterr().err


def test_unlabeled_lists_are_checked_for_their_own_columns(dataset_dir, tmp_path, capsys):
    out = str(tmp_path / "x.tfrecords")
    # A labeled list given as unlabeled without --modalities: converted, but the label column is named.
    assert _cli().main(["-f", str(dataset_dir / "triplets.txt"), "-r", out, "--unlabeled"]) == 0
    captured = capsys.readouterr()
    assert "triplets.txt, line 1: the last column (" in captured.err and "0_label.png) is a single-channel" in \
        captured.err and "fusion of 3 (modality1 .. modality3, no label)" in captured.out
    os.remove(out)
    # A labeled list given as unlabeled: three images a line, but the third is a label of one channel.
    assert _cli().main(["-f", str(dataset_dir / "triplets.txt"), "-r", out, "--unlabeled", "--modalities", "2"]) == 2
    assert "line 1: has 3 columns, more than the 2 of 2 modalities (no label: an unlabeled list)" in \
        capsys.readouterr().err
    assert _cli().main(["-f", str(dataset_dir / "pairs.txt"), "-r", out, "--unlabeled", "--num_classes", "5"]) == 2
    assert "--num_classes checks label ids, but an --unlabeled list has no labels" in capsys.readouterr().err
    small = np.zeros((8, 8, 3), np.uint8)
    save_png(dataset_dir / "small.png", small)
    write_list(dataset_dir / "sizes.txt", ["0_rgb.png 0_aux.png", "1_rgb.png small.png"])
    assert _cli().main(["-f", str(dataset_dir / "sizes.txt"), "-r", out, "--unlabeled"]) == 2
    err = capsys.readouterr().err
    assert "sizes.txt, line 2: image" in err and "small.png' is 8x8 but modality1" in err and "is 16x24" in err
    assert not os.path.exists(out)


def test_write_examples_writes_arrays_that_decode_back(tmp_path):
    from ssma_tf.data import write_examples

    samples = []
    for i in range(3):
        m1, m2, label = random_sample(16, 24, 5, seed=i)
        samples.append({"modality1": m1, "modality2": m2, "modality3": m2[..., ::-1].copy(), "label": label})
    samples.append({"modality1": m1, "modality2": m2, "modality3": m2})  # an image without a label
    path = tmp_path / "arrays.tfrecords"
    for encoding in ("raw", "png"):
        assert write_examples(path, iter(samples), encoding=encoding) == 4
        records = _records([path])
        for record, sample in zip(records[:3], samples):
            decoded = {k: v.numpy() for k, v in decode_example(record).items()}
            _assert_same_arrays([decoded], [sample])
        assert "label" not in tf.train.Example.FromString(records[3]).features.feature
        unlabeled = {k: v.numpy() for k, v in decode_example(records[3]).items()}
        _assert_same_arrays([unlabeled], [samples[3]])  # decode_example gives it back, without a label


@pytest.mark.parametrize("sample, message", [
    ({"modality1": np.zeros((4, 4, 3), np.uint8), "modality3": np.zeros((4, 4, 3), np.uint8)},
     r"sample 1: unknown key\(s\) \['modality3'\] \(expected modality1, modality2, \.\.\. numbered from 1 without "
     r"gaps, and label\)$"),
    ({"modality1": np.zeros((4, 4, 3), np.uint8), "label": np.zeros((4, 5), np.uint8)},
     "sample 1: modality1 is 4x4 but the label is 4x5"),
    ({"label": np.zeros((4, 4), np.uint8)}, "sample 1: no modality1"),
    ((np.zeros((4, 4, 3), np.uint8),), "sample 1: expected a mapping"),
])
def test_write_examples_names_the_bad_sample_and_leaves_no_file(tmp_path, sample, message):
    from ssma_tf.data import write_examples

    good = {"modality1": np.zeros((4, 4, 3), np.uint8), "label": np.zeros((4, 4), np.uint8)}
    path = tmp_path / "x.tfrecords"
    with pytest.raises(ValueError, match=message):
        write_examples(path, [good, sample])
    assert os.listdir(tmp_path) == []
    with pytest.raises(ValueError, match="no samples to write"):
        write_examples(path, [])
    assert os.listdir(tmp_path) == []


def test_a_16_bit_modality_image_is_warned_of_by_convert_and_predict(dataset_dir, tmp_path, capsys):
    """Raw depth in millimetres keeps only its high byte, as in the original tools: nearly black."""
    from ssma_tf.inference.samples import check_inputs, collect_samples

    Image.fromarray(np.full((16, 24), 2500, np.uint16)).save(dataset_dir / "raw_depth.png")
    assert Image.open(dataset_dir / "raw_depth.png").mode.startswith("I")
    write_list(dataset_dir / "raw.txt", ["0_rgb.png raw_depth.png 0_label.png"])
    assert _cli().main(["-f", str(dataset_dir / "raw.txt"), "-r", str(tmp_path / "raw.tfrecords")]) == 0
    error = capsys.readouterr().err
    assert f"warning: {dataset_dir / 'raw.txt'}, line 1: {dataset_dir / 'raw_depth.png'} is a 16-bit image" in error
    assert "ssma-prepare" in error
    assert _cli().main(["-f", str(dataset_dir / "triplets.txt"), "-r", str(tmp_path / "ok.tfrecords")]) == 0
    assert "16-bit" not in capsys.readouterr().err
    # Further down the list (a raw depth map among coloured ones): warned after converting, with the
    # lines (before: only the first line's headers were looked at).
    write_list(dataset_dir / "mixed.txt", ["0_rgb.png 0_aux.png 0_label.png", "0_rgb.png raw_depth.png 0_label.png",
                                           "0_rgb.png 0_aux.png 0_label.png", "0_rgb.png raw_depth.png 0_label.png"])
    assert _cli().main(["-f", str(dataset_dir / "mixed.txt"), "-r", str(tmp_path / "mixed.tfrecords")]) == 0
    error = capsys.readouterr().err
    assert (f"warning: {dataset_dir / 'mixed.txt'}: 2 image(s) after line 1 are 16-bit (line 2: "
            f"{dataset_dir / 'raw_depth.png'}, line 4: {dataset_dir / 'raw_depth.png'}): only their high byte was kept"
            in error)
    samples = collect_samples(True, modality1=dataset_dir / "0_rgb.png", modality2=dataset_dir / "raw_depth.png")
    (warning,) = check_inputs(samples, fusion=True, modalities=2, input_modality="modality1", listed=False)
    assert warning.startswith(f"{dataset_dir / 'raw_depth.png'} is a 16-bit image (mode I")


def test_a_png_as_long_as_the_raw_pixels_is_stored_raw_and_decodes_back(tmp_path):
    """The reader tells PNG from raw by the signature and the length: a PNG exactly as long as the
    raw pixels decoded as the PNG file's bytes, silently, in training too."""
    from ssma_tf.data import write_examples
    from ssma_tf.data.schema import _png_bytes

    for seed in range(200):
        label = np.zeros((16, 32), np.uint8)
        label[:, :24] = np.random.default_rng(seed).integers(0, 256, (16, 24), dtype=np.uint8)
        if len(_png_bytes(label, False)) == label.size:
            break
    else:
        pytest.fail("no label whose PNG is as long as its pixels was found to test with")
    sample = {"modality1": np.zeros((16, 32, 3), np.uint8), "label": label}
    path = tmp_path / "collide.tfrecords"
    write_examples(path, [sample], encoding="png")
    decoded = {k: v.numpy() for k, v in decode_example(_records([path])[0]).items()}
    np.testing.assert_array_equal(decoded["label"], label)


def test_an_image_beyond_pillows_pixel_limit_is_named_in_one_line(dataset_dir, tmp_path, capsys, monkeypatch):
    """Before: Pillow's DecompressionBombError (neither OSError nor ValueError), a traceback."""
    from ssma_tf.cli import convert as convert_command

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 80)  # the 16x24 images hold 384: over twice the limit
    status = convert_command.main(["-f", str(dataset_dir / "pairs.txt"), "-r", str(tmp_path / "x.tfrecords")])
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err, err
    assert "pairs.txt, line 1: cannot read image" in err and "0_rgb.png" in err and "tile or resize it" in err
    assert not (tmp_path / "x.tfrecords").exists()


def test_a_record_path_that_reads_as_a_pattern_is_itself_and_one_file_is_read_once(dataset_dir, tmp_path):
    from ssma_tf.data.pipeline import list_record_files

    folder = tmp_path / "data [v2]"
    folder.mkdir()
    write_tfrecords(str(dataset_dir / "pairs.txt"), str(folder / "train.tfrecords"))
    (tmp_path / "data 2").mkdir()
    (tmp_path / "data 2" / "train.tfrecords").write_bytes(b"")  # what the brackets match as a pattern
    assert list_record_files(str(folder / "train.tfrecords")) == [str(folder / "train.tfrecords")]
    # One file under three spellings (before: read three times).
    spellings = [str(folder / "train.tfrecords"), str(folder / "." / "train.tfrecords")]
    os.symlink(folder / "train.tfrecords", tmp_path / "link.tfrecords")
    assert list_record_files(spellings + [str(tmp_path / "link.tfrecords")]) == spellings[:1]


def test_check_records_of_a_config_refuses_the_sets_training_refuses(dataset_dir, tmp_path, capsys):
    from ssma_tf.cli import check_records

    write_tfrecords(str(dataset_dir / "pairs.txt"), str(tmp_path / "train.tfrecords"))
    write_tfrecords(str(dataset_dir / "pairs.txt"), str(tmp_path / "train.tfrecords"), shards=2)
    config = tmp_path / "c.config"
    config.write_text(f"model: AdapNet_pp\nnum_classes: 5\ntrain_data: {tmp_path / 'train*.tfrecords'}\n")
    assert check_records.main(["-c", str(config)]) == 2
    assert "matches 2 conversions of this name" in capsys.readouterr().out


def test_a_label_with_negative_ids_names_the_minimum(tmp_path):
    from ssma_tf.data.convert import ImageFileError, load_label

    path = tmp_path / "l.tif"  # a 32-bit TIFF: PNG holds no negative numbers
    Image.fromarray(np.array([[-1, 3]], np.int32), mode="I").save(path)
    with pytest.raises(ImageFileError, match=r"has ids outside 0\.\.255 \(min -1, max 3\)"):
        load_label(str(path))


def test_a_grey_depth_map_in_the_label_column_is_named(dataset_dir, tmp_path, capsys):
    """`rgb depth` lines without --unlabeled: an 8-bit grey depth map was converted as ~250 class
    ids, exit 0, no word (helper 154)."""
    depth = (np.arange(16 * 24).reshape(16, 24) % 250).astype(np.uint8)
    Image.fromarray(depth, mode="L").save(dataset_dir / "depth.png")
    write_list(dataset_dir / "depth.txt", [f"{i}_rgb.png depth.png" for i in range(2)])
    assert _cli().main(["-f", str(dataset_dir / "depth.txt"), "-r", str(tmp_path / "d.tfrecords")]) == 0
    assert f"warning: {dataset_dir / 'depth.txt'}, line 1: the label column (" in capsys.readouterr().err
    # Labels of more classes than grey labels are taken to have: not warned of.
    assert _cli().main(["-f", str(dataset_dir / "depth.txt"), "-r", str(tmp_path / "d2.tfrecords"),
                        "--num_classes", "256"]) == 0
    assert "label column" not in capsys.readouterr().err
    assert _cli().main(["-f", str(dataset_dir / "triplets.txt"), "-r", str(tmp_path / "t.tfrecords")]) == 0
    assert "label column" not in capsys.readouterr().err  # real labels


def test_raw_16_bit_depth_in_the_label_column_is_named_with_the_likely_cause(dataset_dir, tmp_path, capsys):
    """Helper 190: an `rgb depth` list of raw 16-bit depth converted without --unlabeled stopped on
    "has ids outside 0..255" alone, where 8-bit depth there gets the --unlabeled hint."""
    Image.fromarray(np.full((16, 24), 2500, np.uint16)).save(dataset_dir / "raw_depth.png")
    write_list(dataset_dir / "rgb_depth.txt", ["0_rgb.png raw_depth.png"])
    assert _cli().main(["-f", str(dataset_dir / "rgb_depth.txt"), "-r", str(tmp_path / "x.tfrecords")]) == 2
    assert capsys.readouterr().err.endswith(
        f"error: {dataset_dir / 'rgb_depth.txt'}, line 1: label '{dataset_dir / 'raw_depth.png'}' has ids outside "
        "0..255 (min 2500, max 2500): is it a 16-bit depth or NIR image? A list of images without labels "
        "(rgb depth) converts with --unlabeled\n")
    assert not (tmp_path / "x.tfrecords").exists()


def test_cli_keeps_records_another_command_wrote_meanwhile(dataset_dir, tmp_path, monkeypatch, capsys):
    """Helper 366: two `ssma-convert -r same.tfrecords` started together both passed the start-up
    check, both printed "written" with status 0, and the last to finish replaced the other's file."""
    import contextlib

    from ssma_tf.data import convert as convert_module

    out = tmp_path / "same.tfrecords"
    real = convert_module.atomic_paths

    @contextlib.contextmanager
    def other_command_finishes_first(names, **kwargs):
        with real(names, **kwargs) as temporaries:
            yield temporaries
            out.write_bytes(b"the other command's records")

    monkeypatch.setattr(convert_module, "atomic_paths", other_command_finishes_first)
    assert _cli().main(["-f", str(dataset_dir / "pairs.txt"), "-r", str(out)]) == 2
    captured = capsys.readouterr()
    assert f"error: '{out}' appeared while this command was writing it (another command writing the same " \
           "output?): it is left as it is and this command's result is dropped; pass --overwrite to replace it, " \
           "or give another output" in captured.err
    assert "written" not in captured.out
    assert out.read_bytes() == b"the other command's records"
    assert sorted(os.listdir(tmp_path)) == ["data", "same.tfrecords"]  # no temporary


@pytest.mark.parametrize("mode", ["LA", "RGBA"])
def test_a_grey_label_with_alpha_is_told_to_drop_it_without_the_colour_image_warning(dataset_dir, tmp_path, capsys,
                                                                                      mode):
    """Helper 365: a grey label saved with an alpha channel was first warned of as "a colour image,
    or 8-bit grey of many values, like a depth map" with the advice of --unlabeled; as RGBA its
    error then said to map colours to ids."""
    from PIL import Image

    ids = np.array(Image.open(dataset_dir / "0_label.png"))
    grey = Image.fromarray(ids.astype(np.uint8)).convert(mode)
    grey.save(dataset_dir / "alpha_label.png")
    write_list(dataset_dir / "alpha.txt", ["0_rgb.png alpha_label.png"])
    out = tmp_path / "alpha.tfrecords"
    assert _cli().main(["-f", str(dataset_dir / "alpha.txt"), "-r", str(out), "--num_classes", "5"]) == 2
    err = capsys.readouterr().err
    assert "cannot hold class ids" not in err and not out.exists()
    expected = ("save it without the alpha channel" if mode == "LA"
                else "its three colour channels are equal: a grey label saved as RGBA; save it as one channel, "
                     "without the alpha channel")
    assert f"mode {mode} with {2 if mode == 'LA' else 4} channels ({expected}" in err, err
