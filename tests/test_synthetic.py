"""Tests for ssma_tf.data.synthetic: determinism, file format, and the designed ambiguity.

The generator promises that colour alone confuses some class pairs (a grey car in front of a
grey facade, a glass facade against the sky), depth alone confuses others (road and painted
sidewalk on one plane, facades and tree hedges at one distance, cars and bushes), and the two
together separate them all. The last test measures it per pixel: how much of two classes'
colour (or depth) histograms coincide, and how well a naive Bayes classifier fitted on training
scenes separates them on validation scenes from colour, from depth, and from both.
"""

import importlib.util
import pathlib

import numpy as np
import pytest
import yaml
from PIL import Image

from ssma_tf.data import datasets
from ssma_tf.data import synthetic as syn

HEIGHT, WIDTH = 96, 192
ROOT = pathlib.Path(__file__).resolve().parents[1]


def _load_tool():
    """Imports tools/make_synthetic_dataset.py by path (tools/ is not a package)."""
    spec = importlib.util.spec_from_file_location(
        "make_synthetic_dataset", ROOT / "tools" / "make_synthetic_dataset.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def scenes():
    """Training and validation scenes for the statistics below (about a second)."""
    train = [syn.generate_sample(7, i, HEIGHT, WIDTH, "train") for i in range(30)]
    val = [syn.generate_sample(7, i, HEIGHT, WIDTH, "val") for i in range(15)]
    return train, val


def _files(root: pathlib.Path):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_the_same_bytes_and_another_seed_differs(tmp_path):
    args = dict(num_train=3, num_val=2, height=32, width=64)
    syn.write_dataset(tmp_path / "a", seed=5, **args)
    syn.write_dataset(tmp_path / "b", seed=5, **args)
    syn.write_dataset(tmp_path / "c", seed=6, **args)
    first, second, third = (_files(tmp_path / n) for n in "abc")
    assert first == second
    assert len(first) == 3 * 5 + 3  # three PNGs per sample, two lists, classes.yaml
    pictures = [name for name in first if name.endswith(".png")]
    assert all(first[name] != third[name] for name in pictures)


def test_splits_and_indices_draw_different_scenes():
    a = syn.generate_sample(0, 0, 32, 64, "train")
    assert not np.array_equal(a.rgb, syn.generate_sample(0, 0, 32, 64, "val").rgb)
    assert not np.array_equal(a.rgb, syn.generate_sample(0, 1, 32, 64, "train").rgb)
    np.testing.assert_array_equal(a.depth_jet, syn.generate_sample(0, 0, 32, 64, "train").depth_jet)


def test_list_files_and_pictures_are_well_formed(tmp_path):
    written = syn.write_dataset(tmp_path, num_train=4, num_val=3, height=48, width=80, seed=1)
    for list_file, count, split in ((written.train_list, 4, "train"), (written.val_list, 3, "val")):
        lines = list_file.read_text().splitlines()
        assert len(lines) == count
        for line in lines:
            rgb, depth, label = line.split(" ")
            assert all(not pathlib.PurePosixPath(p).is_absolute() and p.startswith(split + "/")
                       for p in (rgb, depth, label))
            for path, mode in ((rgb, "RGB"), (depth, "RGB"), (label, "L")):
                with Image.open(tmp_path / path) as image:
                    assert image.format == "PNG" and image.mode == mode
                    assert image.size == (80, 48)
            with Image.open(tmp_path / label) as image:
                assert np.asarray(image).max() < syn.NUM_CLASSES
    metadata = yaml.safe_load(written.classes_file.read_text())
    info = datasets.get_dataset_info("synthetic")
    assert metadata["class_names"] == list(info.class_names)
    assert metadata["palette"] == [list(c) for c in info.palette]
    assert metadata["generator"] == {"seed": 1, "height": 48, "width": 80, "num_train": 4, "num_val": 3,
                                     "style": "source", "thermal": False}


def test_command_line_tool_writes_the_dataset(tmp_path, capsys):
    make_synthetic_dataset = _load_tool()
    code = make_synthetic_dataset.main(
        ["--output_dir", str(tmp_path), "--num_train", "2", "--num_val", "1",
         "--height", "32", "--width", "48", "--seed", "3"]
    )
    assert code == 0
    assert len((tmp_path / "train.txt").read_text().splitlines()) == 2
    assert "2 train + 1 val" in capsys.readouterr().out
    assert make_synthetic_dataset.main(["--output_dir", str(tmp_path), "--height", "8"]) == 2
    assert "height must be an integer >= 16, got 8" in capsys.readouterr().err


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(seed=-1, index=0), "seed must be a non-negative integer, got -1"),
        (dict(seed=0, index=-2), "index must be a non-negative integer, got -2"),
        (dict(seed=0, index=0, width=10), "width must be an integer >= 16, got 10"),
        (dict(seed=0, index=0, split="dev"), "split must be one of .* got 'dev'"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        syn.generate_sample(**kwargs)


def test_write_dataset_rejects_bad_counts(tmp_path):
    with pytest.raises(ValueError, match="num_val must be a non-negative integer, got -1"):
        syn.write_dataset(tmp_path, num_train=1, num_val=-1)
    with pytest.raises(ValueError, match="nothing to write"):
        syn.write_dataset(tmp_path, num_train=0, num_val=0)


def test_jet_coding_round_trips_with_near_warm_and_missing_black():
    depth = np.array([[syn.DEPTH_MIN_M, 5.0, 20.0, syn.DEPTH_MAX_M, np.inf]])
    valid = np.array([[True, True, True, True, False]])
    jet = syn.depth_to_jet(depth, valid)
    assert jet.dtype == np.uint8 and jet.shape == (1, 5, 3)
    near, far = jet[0, 0].astype(int), jet[0, 3].astype(int)
    assert near[0] > near[2] and far[2] > far[0]  # near is red, far is blue
    np.testing.assert_array_equal(jet[0, 4], [0, 0, 0])
    decoded, decoded_valid = syn.jet_to_depth(jet)
    np.testing.assert_array_equal(decoded_valid, valid)
    # 256 log-spaced levels over 2..60 m: one level is about 1.3 % of the depth.
    np.testing.assert_allclose(decoded[0, :4], depth[0, :4], rtol=0.007)
    # A colour slightly off the map (as after lossy compression) decodes to the nearest level.
    nudged = jet.copy()
    nudged[0, 1] = np.clip(nudged[0, 1].astype(int) + [3, -2, 2], 0, 255)
    np.testing.assert_allclose(syn.jet_to_depth(nudged)[0][0, 1], 5.0, rtol=0.03)
    with pytest.raises(ValueError, match="uint8"):
        syn.jet_to_depth(jet.astype(np.float32))


def test_sample_arrays_and_nuisances(scenes):
    train, _ = scenes
    sample = train[0]
    assert sample.rgb.shape == sample.depth_jet.shape == (HEIGHT, WIDTH, 3)
    assert sample.label.shape == sample.depth.shape == sample.depth_valid.shape == (HEIGHT, WIDTH)
    assert sample.rgb.dtype == sample.depth_jet.dtype == sample.label.dtype == np.uint8
    labels = np.stack([s.label for s in train])
    # Every class occurs, void included, and the non-void classes are not tiny.
    fractions = np.bincount(labels.ravel(), minlength=syn.NUM_CLASSES) / labels.size
    assert fractions[0] > 0 and fractions[1:].min() > 0.05
    for s in train:
        holes = ~s.depth_valid
        assert holes.any() and holes.mean() < 0.2
        assert np.all(s.depth_jet[holes] == 0)  # missing depth is black ...
        assert np.all(s.depth_jet[~holes].max(axis=-1) >= 128)  # ... and nothing else is
        np.testing.assert_array_equal(np.isinf(s.depth), s.label == syn.SKY)
    # Lighting changes from scene to scene: the mean brightness of the road varies a lot.
    road_means = [s.rgb[s.label == syn.ROAD].mean() for s in train if (s.label == syn.ROAD).any()]
    assert max(road_means) - min(road_means) > 15


def test_cars_are_nearer_than_the_facades_in_the_depth_image(scenes):
    train, _ = scenes
    checked = 0
    for s in train:
        depth, valid = syn.jet_to_depth(s.depth_jet)
        car, facade = (s.label == syn.CAR) & valid, (s.label == syn.BUILDING) & valid
        if car.any() and facade.any():
            assert depth[car].max() < depth[facade].min()
            assert s.depth[s.label == syn.CAR].max() < s.depth[s.label == syn.BUILDING].min()
            checked += 1
    assert checked >= 20


def test_road_and_sidewalk_share_depth_by_row_but_not_colour(scenes):
    train, _ = scenes
    log_ratios = []
    for s in train:
        depth, valid = syn.jet_to_depth(s.depth_jet)
        for row in range(HEIGHT):
            road = s.label[row] == syn.ROAD
            walk = s.label[row] == syn.SIDEWALK
            if (road & valid[row]).sum() < 8 or (walk & valid[row]).sum() < 8:
                continue
            # Same plane: the true depth is one value per row, for both classes.
            assert np.ptp(s.depth[row][road | walk]) == 0
            # In the depth image the two differ only by noise (2 % per pixel) and coding (1.3 %).
            road_depth = np.median(depth[row][road & valid[row]])
            walk_depth = np.median(depth[row][walk & valid[row]])
            log_ratios.append(np.log(road_depth / walk_depth))
        road, walk = s.label == syn.ROAD, s.label == syn.SIDEWALK
        if road.any() and walk.any():
            colour_gap = np.abs(s.rgb[road].mean(0) - s.rgb[walk].mean(0)).max()
            assert colour_gap > 40
    assert len(log_ratios) > 500
    assert np.max(np.abs(log_ratios)) < 0.06 and abs(np.mean(log_ratios)) < 0.005


def _pixel_features(samples):
    """Per-pixel quantised colour (8 levels per channel) and depth (32 levels + missing)."""
    colour, depth, labels = [], [], []
    for s in samples:
        q = (s.rgb // 32).astype(np.int64)
        colour.append((q[..., 0] * 64 + q[..., 1] * 8 + q[..., 2]).ravel())
        metres, valid = syn.jet_to_depth(s.depth_jet)
        level = np.log(syn.DEPTH_MAX_M / np.maximum(metres, 1e-3)) / np.log(syn.DEPTH_MAX_M / syn.DEPTH_MIN_M)
        depth.append(np.where(valid, np.clip((level * 32).astype(np.int64), 0, 31) + 1, 0).ravel())
        labels.append(s.label.ravel())
    features = {"colour": (np.concatenate(colour), 512), "depth": (np.concatenate(depth), 33)}
    return features, np.concatenate(labels)


def _histograms(features, labels, pair):
    """Normalised histogram of the feature for each class of the pair, shape (2, bins)."""
    values, bins = features
    return np.stack([np.bincount(values[labels == c], minlength=bins) / np.sum(labels == c) for c in pair])


def _overlap(features, labels, pair):
    """Share of the two classes' feature distributions that coincide: sum of bin-wise minima.

    0 means the feature tells the pair apart perfectly, 1 that it carries no information; no
    per-pixel classifier on that feature can beat a balanced accuracy of 1 - overlap / 2.
    """
    return np.minimum(*_histograms(features, labels, pair)).sum()


def _naive_bayes_accuracy(train, train_labels, test, test_labels, pair, kinds):
    """Held-out balanced accuracy on `pair` of a naive Bayes classifier on the given features."""
    scores = 0.0
    keep = np.isin(test_labels, pair)
    for kind in kinds:
        values, bins = train[kind]
        counts = np.stack([np.bincount(values[train_labels == c], minlength=bins) for c in pair]) + 1.0
        log_likelihood = np.log(counts / counts.sum(axis=1, keepdims=True))
        scores = scores + log_likelihood[:, test[kind][0][keep]]
    predicted = np.asarray(pair)[np.argmax(scores, axis=0)]
    truth = test_labels[keep]
    return np.mean([np.mean(predicted[truth == c] == c) for c in pair])


def test_each_modality_alone_is_ambiguous_and_both_together_are_not(scenes):
    train, val = scenes
    train_features, train_labels = _pixel_features(train)
    test_features, test_labels = _pixel_features(val)

    def overlap(kind, pair):
        return _overlap(train_features[kind], train_labels, pair)

    def accuracy(kinds, pair):
        return _naive_bayes_accuracy(train_features, train_labels, test_features, test_labels, pair, kinds)

    car_facade, glass_sky = (syn.CAR, syn.BUILDING), (syn.SKY, syn.BUILDING)
    road_walk, facade_hedge = (syn.ROAD, syn.SIDEWALK), (syn.BUILDING, syn.VEGETATION)
    car_bush = (syn.CAR, syn.VEGETATION)
    # Colour alone: cars have the colours of grey facades, glass facades those of the sky.
    assert overlap("colour", car_facade) > 0.35 and overlap("colour", glass_sky) > 0.3
    # Depth alone: road and sidewalk are one plane; facades, hedges and bushes share distances.
    assert overlap("depth", road_walk) > 0.85
    assert overlap("depth", facade_hedge) > 0.4 and overlap("depth", car_bush) > 0.3
    # The other modality tells each of those pairs apart ...
    for pair in (car_facade, glass_sky):
        assert overlap("depth", pair) < 0.05, pair
        assert accuracy(["colour"], pair) < 0.85 and accuracy(["depth"], pair) > 0.95, pair
    for pair in (road_walk, facade_hedge, car_bush):
        assert overlap("colour", pair) < 0.05, pair
        assert accuracy(["depth"], pair) < 0.8 and accuracy(["colour"], pair) > 0.95, pair
    # ... and a classifier on both, fitted on training scenes, separates every pair on new ones.
    for pair in (car_facade, glass_sky, road_walk, facade_hedge, car_bush):
        assert accuracy(["colour", "depth"], pair) > 0.93, pair


def test_the_optional_thermal_modality_knows_what_colour_and_depth_together_do_not(tmp_path):
    plain = [syn.generate_sample(5, i, 48, 96) for i in range(12)]
    warm = [syn.generate_sample(5, i, 48, 96, thermal=True) for i in range(12)]
    assert all(s.thermal is None for s in plain)
    green_cars = plain_green = 0
    for a, b in zip(plain, warm):
        # The same scene: labels and depth unchanged, colour changed only on cars.
        np.testing.assert_array_equal(a.label, b.label)
        np.testing.assert_array_equal(a.depth_jet, b.depth_jet)
        changed = (a.rgb != b.rgb).any(axis=-1)
        assert not (changed & (a.label != syn.CAR)).any()
        cars = b.label == syn.CAR
        green = lambda rgb: (rgb[..., 1].astype(int) > rgb[..., 0] + 30) & (rgb[..., 1].astype(int) > rgb[..., 2] + 30)
        green_cars += int((green(b.rgb) & cars).sum())
        plain_green += int((green(a.rgb) & cars).sum())
        # Cars are warm: every car is warmer on average than any other class of its scene.
        thermal = b.thermal[..., 0].astype(float)
        assert (b.thermal == b.thermal[..., :1]).all()
        others = [thermal[b.label == c].mean() for c in range(1, syn.NUM_CLASSES) if c != syn.CAR and (b.label == c).any()]
        if cars.any():
            assert thermal[cars].mean() > max(others) + 20
        # ... while the other classes overlap in thermal.
        if (b.label == syn.ROAD).any() and (b.label == syn.SIDEWALK).any():
            assert abs(thermal[b.label == syn.ROAD].mean() - thermal[b.label == syn.SIDEWALK].mean()) < 25
    assert plain_green == 0 and green_cars > 0
    written = syn.write_dataset(tmp_path, num_train=2, num_val=1, height=32, width=64, thermal=True)
    line = written.train_list.read_text().splitlines()[0].split()
    assert line == ["train/rgb/00000.png", "train/depth/00000.png", "train/thermal/00000.png", "train/label/00000.png"]
