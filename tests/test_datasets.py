"""Tests for ssma_tf.data.datasets: the class names and palettes in datasets.yaml."""

import numpy as np
import pytest

from ssma_tf.data import datasets

# (name, number of classes with void) for the five datasets of the paper, the 19-class
# Cityscapes setting and the synthetic demo data.
EXPECTED_CLASSES = {
    "cityscapes": 12,
    "cityscapes19": 20,
    "synthia": 12,
    "sun_rgbd": 38,
    "scannet_v2": 21,
    "freiburg_forest": 6,
    "synthetic": 7,
}


def test_every_expected_dataset_is_described():
    assert set(datasets.known_datasets()) == set(EXPECTED_CLASSES)


@pytest.mark.parametrize("name,num_classes", sorted(EXPECTED_CLASSES.items()))
def test_names_and_palette_agree(name, num_classes):
    info = datasets.get_dataset_info(name)
    assert info.name == name
    assert info.num_classes == num_classes == len(info.class_names) == len(info.palette)
    assert info.class_names[0] == "void"
    assert len(set(info.class_names)) == num_classes
    palette = info.palette_array
    assert palette.shape == (num_classes, 3) and palette.dtype == np.uint8
    # Distinct colours, or two classes would be indistinguishable in a picture.
    assert len({tuple(colour) for colour in info.palette}) == num_classes


def test_class_ids_follow_the_released_adapnet_pp_table():
    city = datasets.get_dataset_info("cityscapes").class_names
    assert city[1] == "sky" and city[3] == "road" and city[8] == "car/truck/bus"
    assert city == datasets.get_dataset_info("synthia").class_names
    sun = datasets.get_dataset_info("sun_rgbd").class_names
    assert (sun[1], sun[22], sun[37]) == ("wall", "ceiling", "bag")
    scannet = datasets.get_dataset_info("scannet_v2").class_names
    assert (scannet[15], scannet[20]) == ("refrigerator", "other furniture")
    forest = datasets.get_dataset_info("freiburg_forest").class_names
    assert forest == ("void", "trail", "grass", "vegetation", "sky", "obstacle")


def test_lookup_folds_case_hyphens_and_aliases():
    assert datasets.get_dataset_info("ScanNet-v2").name == "scannet_v2"
    assert datasets.get_dataset_info("forest").name == "freiburg_forest"
    assert datasets.get_dataset_info(" SUN RGBD ").name == "sun_rgbd"


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown dataset 'kitti'") as error:
        datasets.get_dataset_info("kitti")
    for name in EXPECTED_CLASSES:
        assert name in str(error.value)


def test_synthetic_entry_matches_the_generator():
    from ssma_tf.data import synthetic

    info = datasets.get_dataset_info("synthetic")
    assert info.class_names == synthetic.CLASS_NAMES
    assert info.num_classes == synthetic.NUM_CLASSES


@pytest.mark.parametrize(
    "body,message",
    [
        ("toy:\n  classes:\n    - {name: void, color: [0, 0, 0]}\n    - {name: a, color: [0, 0, 256]}\n",
         "class 1 \\('a'\\) has a bad colour"),
        ("toy:\n  classes:\n    - {name: void, color: [0, 0, 0]}\n    - {name: void, color: [1, 1, 1]}\n",
         "repeats class names \\['void'\\]"),
        ("toy:\n  classes: []\n", "needs a 'classes' list"),
        ("toy:\n  colours: []\n  classes: []\n", "unknown keys \\['colours'\\]"),
        # YAML 1.1 scalars (helper 291: read as the name 'True', 'None' and the colour (True, 0, 255)).
        ("toy:\n  classes:\n    - {name: void, color: [0, 0, 0]}\n    - {name: on, color: [1, 1, 1]}\n",
         "class 1: the name must be a non-empty text, got True \\(YAML reads on, off"),
        ("toy:\n  classes:\n    - {name: null, color: [0, 0, 0]}\n    - {name: a, color: [1, 1, 1]}\n",
         "class 0: the name must be a non-empty text, got None"),
        ("toy:\n  classes:\n    - {name: void, color: [0, 0, 0]}\n    - {name: a, color: [yes, 0, 255]}\n",
         "class 1 \\('a'\\) has a bad colour \\[True, 0, 255\\]: three integers 0..255"),
        # One colour for two classes (helper 334: accepted; a colour label gave the second class's
        # pixels the first's id, and it was never learned or scored).
        ("toy:\n  classes:\n    - {name: void, color: [0, 0, 0]}\n    - {name: a, color: [1, 2, 3]}\n"
         "    - {name: b, color: [0, 0, 0]}\n",
         "gives classes 0 \\('void'\\) and 2 \\('b'\\) the same colour \\[0, 0, 0\\]: each class needs a colour"),
    ],
)
def test_bad_files_are_reported_with_file_and_dataset(tmp_path, body, message):
    path = tmp_path / "bad.yaml"
    path.write_text(body)
    with pytest.raises(ValueError, match=message) as error:
        datasets.get_dataset_info("toy", path=path)
    assert str(path) in str(error.value) and "'toy'" in str(error.value)


@pytest.mark.parametrize("body, message", [
    # Before: a yaml.parser.ParserError traceback from `ssma-train` with `palette:` set.
    (b"toy: [\n", "not valid YAML (line 2, column 1)"),
    (b"toy:\n  classes: []\ntoy:\n  classes: []\n", "not valid YAML (line 3, column 1): duplicate key 'toy'"),
    (b"# caf\xe9\ntoy: {}\n", "not UTF-8 text (byte 0xe9 on line 1)"),
])
def test_a_datasets_file_that_is_not_yaml_is_named_with_its_line(tmp_path, body, message):
    path = tmp_path / "bad.yaml"
    path.write_bytes(body)
    with pytest.raises(ValueError) as error:
        datasets.get_dataset_info("toy", path=path)
    assert str(error.value).startswith(f"{path}: {message}")


def test_other_file_can_be_used(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(
        "toy:\n  aliases: [t]\n  classes:\n    - {name: void, color: [0, 0, 0]}\n"
        "    - {name: thing, color: [9, 8, 7]}\n"
    )
    info = datasets.get_dataset_info("T", path=path)
    assert info == datasets.DatasetInfo("toy", ("void", "thing"), ((0, 0, 0), (9, 8, 7)))
    assert datasets.known_datasets(path) == ("toy",)


def test_the_tolerant_look_up_gives_none_where_no_dataset_fits(tmp_path):
    assert datasets.dataset_info_or_none("cityscapes", num_classes=12).name == "cityscapes"
    assert datasets.dataset_info_or_none("Cityscapes").num_classes == 12  # no class count: any
    assert datasets.dataset_info_or_none("cityscapes", num_classes=20) is None  # another class count
    assert datasets.dataset_info_or_none("no_such_dataset") is None
    assert datasets.dataset_info_or_none(None, num_classes=12) is None
    assert datasets.dataset_info_or_none("cityscapes", tmp_path / "gone.yaml") is None  # unreadable file
    own = tmp_path / "own.yaml"
    own.write_text("fields:\n  classes:\n    - {name: void, color: [0, 0, 0]}\n    - {name: road, color: [1, 2, 3]}\n")
    assert datasets.dataset_info_or_none("fields", own, 2).class_names == ("void", "road")
