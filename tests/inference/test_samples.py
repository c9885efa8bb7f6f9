"""Tests for ssma_tf.inference.samples: list files and folders paired by name."""

import os

import numpy as np
import pytest

from ssma_tf.inference.predictor import PredictionError
from ssma_tf.inference.samples import collect_samples, samples_from_list
from tests.inference.helpers import write_rgb


def _touch(folder, *names):
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).touch()


def test_samples_from_a_list_file_are_named_by_relative_path(tmp_path):
    _touch(tmp_path, *(f"scene{i}/{kind}/0.png" for i in (0, 1) for kind in ("rgb", "depth", "label")),
           "a.png", "b.png", "c.png", "la.png", "lb.png")
    (tmp_path / "list.txt").write_text(
        "# comment\nscene0/rgb/0.png scene0/depth/0.png scene0/label/0.png\n\n"
        "scene1/rgb/0.png scene1/depth/0.png scene1/label/0.png\n"
    )
    samples = samples_from_list(tmp_path / "list.txt", fusion=True)
    assert [s.name for s in samples] == ["scene0/rgb/0", "scene1/rgb/0"]
    assert samples[0].modality2 == str(tmp_path / "scene0" / "depth" / "0.png")
    assert samples[0].label == str(tmp_path / "scene0" / "label" / "0.png")
    # A unimodal model reads `image label` lines.
    (tmp_path / "pairs.txt").write_text("a.png la.png\nb.png lb.png\n")
    unimodal = samples_from_list(tmp_path / "pairs.txt", fusion=False)
    assert [(s.name, s.modality2, os.path.basename(s.label)) for s in unimodal] == [
        ("a", None, "la.png"), ("b", None, "lb.png"),
    ]
    (tmp_path / "bad.txt").write_text("a.png b.png\nc.png\n")
    with pytest.raises(PredictionError, match=r"bad.txt, line 2"):
        samples_from_list(tmp_path / "bad.txt", fusion=True)
    (tmp_path / "twice.txt").write_text("a.png b.png\na.png c.png\n")
    with pytest.raises(PredictionError, match="listed twice"):
        samples_from_list(tmp_path / "twice.txt", fusion=True)


@pytest.mark.parametrize("missing", ["b.png", "lb.png"])
def test_a_listed_file_that_is_not_there_names_the_line(tmp_path, missing):
    _touch(tmp_path, *({"a.png", "b.png", "la.png", "lb.png"} - {missing}))
    (tmp_path / "pairs.txt").write_text("a.png la.png\nb.png lb.png\n")
    with pytest.raises(PredictionError, match=rf"pairs.txt, line 2: .*{missing} is not a file"):
        samples_from_list(tmp_path / "pairs.txt", fusion=False)


def test_a_path_cut_at_its_spaces_and_a_mistyped_folder_are_named_as_such(tmp_path):
    """Before: "with is not a file" without the hint ssma-convert gives, and a mistyped folder
    beside a real one "is not a folder, but the other input is one"."""
    from ssma_tf.lists import SPACES_HINT

    _touch(tmp_path, "with space/a.png", "b.png", "depth/a.png")
    (tmp_path / "spaced.txt").write_text("with space/a.png\n")
    with pytest.raises(PredictionError) as error:
        samples_from_list(tmp_path / "spaced.txt", fusion=False)
    assert str(error.value) == f"{tmp_path / 'spaced.txt'}, line 1: {tmp_path / 'with'} is not a file{SPACES_HINT}"
    (tmp_path / "quoted.txt").write_text('"with space/a.png"\n')
    assert samples_from_list(tmp_path / "quoted.txt", fusion=False)[0].modality1 == str(tmp_path / "with space/a.png")
    (tmp_path / "three.txt").write_text("with space/a.png b.png depth/a.png\n")
    with pytest.raises(PredictionError) as error:
        samples_from_list(tmp_path / "three.txt", fusion=True)
    assert str(error.value).endswith(f"line 1: expected modality1 modality2 [label], got 4 columns{SPACES_HINT}")
    with pytest.raises(PredictionError, match=rf"^modality1 {tmp_path / 'rgbb'}: no such file or folder$"):
        collect_samples(modality1=tmp_path / "rgbb", modality2=tmp_path / "depth", fusion=True)


def test_samples_from_folders_pair_by_name(tmp_path):
    for key in ("x", "y"):
        write_rgb(tmp_path / "rgb" / f"{key}_leftImg8bit.png", np.zeros((4, 4, 3)))
        write_rgb(tmp_path / "depth" / f"{key}_disparity.png", np.zeros((4, 4, 3)))
    samples = collect_samples(
        True, modality1=tmp_path / "rgb", modality2=tmp_path / "depth",
        modality1_suffix="_leftImg8bit", modality2_suffix="_disparity",
    )
    pairs = [(s.name, os.path.basename(s.modality2)) for s in samples]
    assert pairs == [("x", "x_disparity.png"), ("y", "y_disparity.png")]
    write_rgb(tmp_path / "rgb" / "z_leftImg8bit.png", np.zeros((4, 4, 3)))
    with pytest.raises(PredictionError, match="z_leftImg8bit.png has no partner"):
        collect_samples(
            True, modality1=tmp_path / "rgb", modality2=tmp_path / "depth",
            modality1_suffix="_leftImg8bit", modality2_suffix="_disparity",
        )
    with pytest.raises(PredictionError, match="nothere.png: no such file"):
        collect_samples(True, modality1=tmp_path / "nothere.png", modality2=tmp_path / "a.png")
    with pytest.raises(PredictionError, match="is not a folder"):
        collect_samples(True, modality1=tmp_path / "rgb", modality2=tmp_path / "rgb" / "x_leftImg8bit.png")


def test_images_given_as_another_modality_than_the_network_reads_are_caught(tmp_path):
    from PIL import Image

    from ssma_tf.inference.samples import check_inputs

    rgb = write_rgb(tmp_path / "rgb.png", np.zeros((4, 4, 3)))
    depth = write_rgb(tmp_path / "depth.png", np.zeros((4, 4, 3)))
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "label.png")
    expert = dict(fusion=False, modalities=1, input_modality="modality2", source="its config")
    # A depth expert given only --modality1: an error naming both, not a prediction on the colour image.
    with pytest.raises(PredictionError, match=r"the network reads modality2 \(its config\), but only --modality1 "
                                              r"is given: pass the images as --modality2"):
        check_inputs(collect_samples(False, modality1=rgb), listed=False, **expert)
    assert check_inputs(collect_samples(False, modality2=depth), listed=False, **expert) == []
    assert "(or pass --input_modality modality1 if they are what" in str(pytest.raises(
        PredictionError, check_inputs, collect_samples(False, modality1=rgb), listed=False, **expert).value)
    # An export's metadata: the flag is refused there, so the advice is to export again (helper 149).
    with pytest.raises(PredictionError, match=r"\(or export again with --input_modality modality1 if they are what"):
        check_inputs(collect_samples(False, modality1=rgb), listed=False,
                     **dict(expert, source="the export's metadata"))
    # Both given: the one not read is named (before: passed over without a word).
    assert check_inputs(collect_samples(False, modality1=rgb, modality2=depth), listed=False, **expert) == [
        "AdapNet++ reads one modality, modality2 (its config): the images of --modality1 are not used"]
    (warning,) = check_inputs(collect_samples(False, modality1=rgb, modality2=depth), listed=False,
                              **dict(expert, input_modality="modality1", source=None))
    assert warning.endswith("modality1 (assumed; --input_modality says): the images of --modality2 are not used")
    with pytest.raises(PredictionError, match=r"reads modality1 \(--input_modality\), but only --modality2"):
        check_inputs(collect_samples(False, modality2=depth), listed=False,
                     **dict(expert, input_modality="modality1", source="--input_modality"))
    # A `.keras` file alone says no modality (modality 1 assumed): a warning, and the image given is read.
    (warning,) = check_inputs(collect_samples(False, modality2=depth), listed=False,
                              **dict(expert, input_modality="modality1", source=None))
    assert warning.startswith("only --modality2 is given and nothing says which modality the network was trained on")
    # A list's `image label` lines are not named by modality: a warning only.
    (tmp_path / "pairs.txt").write_text("rgb.png label.png\n")
    listed = collect_samples(False, list_file=tmp_path / "pairs.txt")
    assert check_inputs(listed, listed=True, **expert) == [
        "the network reads modality2 (its config); the list gives one image per line, and it reads that image "
        "as its input"]
    assert check_inputs(listed, listed=True, **dict(expert, input_modality="modality1")) == []
    # SSMA given `image label` lines reads the label as depth: a warning naming it.
    fusion = dict(fusion=True, modalities=2, input_modality="modality1", listed=True)
    (warning,) = check_inputs(collect_samples(True, list_file=tmp_path / "pairs.txt"), **fusion)
    assert warning.startswith(f"{tmp_path / 'label.png'} (the last image of the first sample) is single-channel")
    (tmp_path / "fused.txt").write_text("rgb.png depth.png\n")  # a colour last image: no warning
    assert check_inputs(collect_samples(True, list_file=tmp_path / "fused.txt"), **fusion) == []
    # A grey depth map is single-channel too, but holds a continuum of values, not class ids: no warning.
    ramp = np.arange(16 * 16, dtype=np.uint8).reshape(16, 16)
    Image.fromarray(ramp).save(tmp_path / "grey_depth.png")
    write_rgb(tmp_path / "rgb16.png", np.zeros((16, 16, 3)))
    (tmp_path / "grey.txt").write_text("rgb16.png grey_depth.png\n")
    assert check_inputs(collect_samples(True, list_file=tmp_path / "grey.txt"), **fusion) == []
    # A label of a 100-class network, with 80 ids in it, is a label to that network (before: the
    # warning counted 64 values whatever the classes, and said nothing).
    Image.fromarray((np.arange(16 * 16) % 80).astype(np.uint8).reshape(16, 16)).save(tmp_path / "label80.png")
    (tmp_path / "pairs80.txt").write_text("rgb16.png label80.png\n")
    samples = collect_samples(True, list_file=tmp_path / "pairs80.txt")
    assert check_inputs(samples, **fusion) == []  # 80 values: a grey image to a network of unknown classes
    (warning,) = check_inputs(samples, **fusion, num_classes=100)
    assert warning.startswith(f"{tmp_path / 'label80.png'} (the last image of the first sample) is single-channel")


def test_a_list_of_too_few_images_with_a_label_column_is_warned_of_with_the_network_it_fits(tmp_path):
    """An SSMA over three modalities given 'rgb depth label' lines reads the label as modality 3;
    the warning said to predict with a unimodal network, where a two-modality SSMA is meant."""
    from ssma_tf.inference.samples import check_inputs

    write_rgb(tmp_path / "rgb.png", np.full((8, 8, 3), 90, np.uint8))
    write_rgb(tmp_path / "depth.png", np.full((8, 8, 3), 40, np.uint8))
    label = write_rgb(tmp_path / "label.png", np.tile(np.arange(8, dtype=np.uint8) % 3, (8, 1)))
    (tmp_path / "list.txt").write_text("rgb.png depth.png label.png\n")
    samples = samples_from_list(tmp_path / "list.txt", fusion=True, modalities=3)
    (warning,) = check_inputs(samples, fusion=True, modalities=3, input_modality="modality1", listed=True)
    assert warning.startswith(f"{label} (the last image of the first sample) is single-channel")
    assert warning.endswith("If the last column is a label, the lines hold 2 image(s): predict with a network of "
                            "2 modalities")
    samples = samples_from_list(tmp_path / "list.txt", fusion=True, modalities=2)
    assert samples[0].label == label  # two images and a label: read as such


def test_a_damaged_image_is_named_with_its_list_line_before_any_prediction(tmp_path):
    """Before: found at its turn, after the pictures of the samples before it were written, and
    named without its list line."""
    for name in ("a", "b", "c"):
        write_rgb(tmp_path / f"{name}.png", np.full((16, 24, 3), 90))
        write_rgb(tmp_path / f"d{name}.png", np.arange(16 * 24 * 3).reshape(16, 24, 3) % 251)
    data = (tmp_path / "dc.png").read_bytes()
    (tmp_path / "dc.png").write_bytes(data[:100])
    (tmp_path / "l.txt").write_text("a.png da.png\nb.png db.png\nc.png dc.png\n")
    with pytest.raises(PredictionError, match=r"l\.txt, line 3 \(sample 'c'\): cannot read modality2 .*dc\.png"):
        collect_samples(True, list_file=tmp_path / "l.txt")
    with pytest.raises(PredictionError, match=r"sample 'c': cannot read modality2"):
        collect_samples(True, modality1=tmp_path / "c.png", modality2=tmp_path / "dc.png")
    # Flags of folders with a list are refused (before: read by nothing).
    with pytest.raises(PredictionError, match="pair folders; a list file names its images itself"):
        collect_samples(True, list_file=tmp_path / "l.txt", recursive=True)


def test_two_lines_that_give_one_output_name_are_named_as_such(tmp_path):
    _touch(tmp_path, "a.png", "a.jpg", "d.png")
    (tmp_path / "l.txt").write_text("a.png d.png\na.jpg d.png\n")
    with pytest.raises(PredictionError, match=r"a\.png \(.*l\.txt, line 1\) and .*a\.jpg \(.*l\.txt, line 2\) give the "
                                              r"same output name 'a'; rename one"):
        samples_from_list(tmp_path / "l.txt", fusion=True)


def test_an_unlabelled_two_column_list_feeds_an_expert_of_modality_2_its_image(tmp_path):
    """`rgb depth` lines (an SSMA list without labels) given to a depth expert: the depth colouring
    was taken for the label and the colour image fed to the depth network."""
    from PIL import Image

    from ssma_tf.inference.samples import check_inputs

    write_rgb(tmp_path / "rgb.png", np.zeros((4, 4, 3)))
    write_rgb(tmp_path / "depth.png", np.random.default_rng(0).uniform(0, 255, size=(4, 4, 3)))
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "label.png")
    (tmp_path / "pairs.txt").write_text("rgb.png depth.png\n")
    (sample,) = collect_samples(False, list_file=tmp_path / "pairs.txt")
    assert (sample.modality1, sample.modality2, sample.label) == (
        str(tmp_path / "rgb.png"), str(tmp_path / "depth.png"), None)
    expert = dict(fusion=False, modalities=1, input_modality="modality2", source="its config", listed=True)
    (warning,) = check_inputs([sample], **expert)
    assert warning == (f"{tmp_path / 'depth.png'} (the last image of the first sample) cannot be a label (a colour "
                       "image, or grey of more values than labels have): the list's 2-column lines are read as "
                       "modality1 modality2 without a label, and the network reads modality2 (its config)")
    # Three images without a label: the third was taken for the label.
    write_rgb(tmp_path / "nir.png", np.random.default_rng(1).uniform(0, 255, size=(4, 4, 3)))
    (tmp_path / "three.txt").write_text("rgb.png depth.png nir.png\n")
    (unlabelled,) = collect_samples(False, list_file=tmp_path / "three.txt")
    assert (unlabelled.further, unlabelled.label) == ((str(tmp_path / "nir.png"),), None)
    (warning,) = check_inputs([unlabelled], **dict(expert, input_modality="modality3"))
    assert "the list's 3-column lines are read as modality1 modality2 modality3 without a label" in warning
    (tmp_path / "three.txt").write_text("rgb.png depth.png label.png\n")  # with a label, as before
    (labelled,) = collect_samples(False, list_file=tmp_path / "three.txt")
    assert (labelled.modality2, labelled.further, labelled.label) == (
        str(tmp_path / "depth.png"), (), str(tmp_path / "label.png"))
    # `image label` lines stay so.
    (tmp_path / "labelled.txt").write_text("rgb.png label.png\n")
    (sample,) = collect_samples(False, list_file=tmp_path / "labelled.txt")
    assert (sample.modality2, sample.label) == (None, str(tmp_path / "label.png"))
    # 1-bit, 16-bit and palette labels, and grey saved as RGB, stay labels (helper 134: they were
    # taken for images, and a depth expert fed the label).
    Image.fromarray(np.zeros((4, 4), np.uint16) + 3).save(tmp_path / "label16.png")
    Image.fromarray(np.zeros((4, 4), bool)).save(tmp_path / "label1.png")
    Image.fromarray(np.zeros((4, 4), np.uint8)).convert("P").save(tmp_path / "labelp.png")
    write_rgb(tmp_path / "grey_rgb.png", np.zeros((4, 4, 3)) + 2)
    for name in ("label16.png", "label1.png", "labelp.png"):
        (tmp_path / "labelled.txt").write_text(f"rgb.png {name}\n")
        (sample,) = collect_samples(False, list_file=tmp_path / "labelled.txt")
        assert (sample.modality2, sample.label) == (None, str(tmp_path / name)), name
    (tmp_path / "labelled.txt").write_text("rgb.png grey_rgb.png\n")  # a label, with what to do about it
    with pytest.raises(PredictionError, match="a grey label saved as RGB; save it as one channel"):
        collect_samples(False, list_file=tmp_path / "labelled.txt")


def test_sizes_and_labels_that_do_not_fit_are_named_before_any_prediction(tmp_path):
    """Found at the sample's turn, they left the pictures of the samples before it written (helper 128)."""
    from PIL import Image

    for name in ("a", "b"):
        write_rgb(tmp_path / f"{name}.png", np.full((16, 24, 3), 90))
        write_rgb(tmp_path / f"d{name}.png", np.arange(16 * 24 * 3).reshape(16, 24, 3) % 251)
        Image.fromarray(np.zeros((16, 24), np.uint8)).save(tmp_path / f"l{name}.png")
    write_rgb(tmp_path / "tall.png", np.zeros((17, 24, 3)))
    write_rgb(tmp_path / "colour_label.png", np.zeros((16, 24, 3)) + [10, 20, 30])
    Image.fromarray(np.zeros((16, 24), np.uint8)).save(tmp_path / "lossy_label.jpg")
    (tmp_path / "sizes.txt").write_text("a.png da.png la.png\nb.png tall.png lb.png\n")
    with pytest.raises(PredictionError, match=r"the images of .*sizes\.txt, line 2 \(sample 'b'\) differ in size: "
                                              r".*b\.png is 16x24, .*tall\.png is 17x24, .*lb\.png is 16x24"):
        collect_samples(True, list_file=tmp_path / "sizes.txt")
    for label, expected in (("colour_label.png", "must be a single-channel image"), ("lossy_label.jpg", "JPEG")):
        (tmp_path / "labels.txt").write_text(f"a.png da.png la.png\nb.png db.png {label}\n")
        with pytest.raises(PredictionError, match=rf"label of .*labels\.txt, line 2 .*{expected}"):
            collect_samples(True, list_file=tmp_path / "labels.txt")
    # An image stored turned by its EXIF orientation is compared as it is read.
    turned = Image.fromarray(np.zeros((24, 16, 3), np.uint8))
    exif = turned.getexif()
    exif[0x0112] = 6  # turned 90 degrees: read as 16x24
    turned.save(tmp_path / "turned.jpg", exif=exif)
    (tmp_path / "turned.txt").write_text("turned.jpg da.png la.png\n")
    # ... and said, its depth and label not being turned alike (helper 229: predicted without a
    # word, where ssma-convert warns of the same files).
    from ssma_tf.config import ConfigWarning

    with pytest.warns(ConfigWarning, match=r"^1 image\(s\) are turned by their EXIF orientation as they are read, "
                                           r"but the other files of their sample are not \(.*turned\.txt, line 1 .*: "
                                           r".*turned\.jpg \(turned 90 degrees\)\)"):
        assert len(collect_samples(True, list_file=tmp_path / "turned.txt")) == 1
    # A size the turn changed is said as such (before: "turned.jpg is 16x24" of a file stored 24x16).
    write_rgb(tmp_path / "upright.png", np.zeros((24, 16, 3)))
    (tmp_path / "stored.txt").write_text("turned.jpg upright.png\n")
    with pytest.raises(PredictionError, match=r"turned\.jpg is 16x24 \(stored 24x16, turned 90 degrees by its EXIF "
                                              r"orientation as images are read\), .*upright\.png is 24x16$"):
        collect_samples(True, list_file=tmp_path / "stored.txt")


def test_the_output_folder_inside_a_recursively_read_input_folder_is_no_input(tmp_path):
    """A second run read the first run's pictures as images to predict (helper 128); an output
    holding the inputs (`--output .`) passes none of them over (helper 134)."""
    from ssma_tf.inference.pictures import PICTURE_FOLDERS

    write_rgb(tmp_path / "f" / "p.png", np.zeros((4, 4, 3)))
    write_rgb(tmp_path / "f" / "s1" / "q.png", np.zeros((4, 4, 3)))
    for kind in ("class_ids", "color", "overlay"):
        write_rgb(tmp_path / "f" / "pred" / kind / "p.png", np.zeros((4, 4, 3)))
    pictures = [tmp_path / "f" / "pred" / folder for folder in PICTURE_FOLDERS]
    samples = collect_samples(False, modality1=tmp_path / "f", recursive=True, exclude=pictures)
    assert [s.name for s in samples] == ["p", "s1/q"]
    assert len(collect_samples(False, modality1=tmp_path / "f", recursive=True)) == 5
    with pytest.raises(PredictionError, match="holds no images but those in the output's picture folders .*: "
                                              "the pictures of an earlier prediction, or inputs its pictures "
                                              "would replace"):
        collect_samples(False, modality1=tmp_path / "f" / "pred", recursive=True, exclude=pictures)
    # The output is the folder of the inputs, or above it: the inputs are read.
    around = [tmp_path / folder for folder in PICTURE_FOLDERS]
    assert [s.name for s in collect_samples(False, modality1=tmp_path / "f" / "s1", exclude=around)] == ["q"]
    # An image a list or a single file names inside a picture folder (helper 200: replaced by its
    # prediction, exit 0).
    photo = tmp_path / "f" / "pred" / "color" / "p.png"
    (tmp_path / "l.txt").write_text(f"{photo}\n")
    for given in (dict(list_file=tmp_path / "l.txt"), dict(modality1=photo)):
        with pytest.raises(PredictionError, match=rf"{photo} lies in {tmp_path / 'f' / 'pred' / 'color'}, a folder "
                                                  "the prediction writes its pictures to"):
            collect_samples(False, exclude=pictures, **given)
        assert len(collect_samples(False, exclude=around, **given)) == 1


def test_a_folder_suffix_given_with_its_extension_is_told_so(tmp_path):
    """The suffix is matched before the extension: '_rgb.png' found nothing, and the message said
    there were no files ending in '_rgb.png' in a folder full of them (helper 125)."""
    write_rgb(tmp_path / "city_rgb.png", np.zeros((4, 4, 3)))
    with pytest.raises(PredictionError, match=r"whose name before the extension ends in '_rgb\.png' in .*; give the "
                                              r"suffix without the extension: '_rgb'$"):
        collect_samples(False, modality1=tmp_path, modality1_suffix="_rgb.png")
    assert [s.name for s in collect_samples(False, modality1=tmp_path, modality1_suffix="_rgb")] == ["city"]
    with pytest.raises(PredictionError, match=r"ends in '_depth' in .* \(use --recursive for sub-folders\)$"):
        collect_samples(False, modality1=tmp_path, modality1_suffix="_depth")


def test_16_bit_images_further_down_are_warned_of_too(tmp_path):
    """Helper 169: only the first sample's images were looked at; raw depth on a later line was
    predicted from its high byte (nearly black) without a word."""
    from PIL import Image

    from ssma_tf.inference.samples import check_inputs

    lines = []
    for index in range(6):
        write_rgb(tmp_path / f"rgb{index}.png", np.zeros((4, 4, 3)))
        if index in (2, 3, 4, 5, 1):
            Image.fromarray(np.full((4, 4), 3000, np.uint16)).save(tmp_path / f"d{index}.png")
        else:
            write_rgb(tmp_path / f"d{index}.png", np.zeros((4, 4, 3)))
        lines.append(f"rgb{index}.png d{index}.png")
    (tmp_path / "list.txt").write_text("\n".join(lines) + "\n")
    fusion = dict(fusion=True, modalities=2, input_modality="modality1", listed=True)
    (warning,) = check_inputs(collect_samples(True, list_file=tmp_path / "list.txt"), **fusion)
    assert warning.startswith(f"{tmp_path / 'd1.png'} is a 16-bit image (mode I;16)")
    assert warning.endswith(f"; 4 other input images are 16-bit too: {tmp_path / 'd2.png'}, {tmp_path / 'd3.png'}, "
                            f"{tmp_path / 'd4.png'} and 1 more")
    (tmp_path / "two.txt").write_text("rgb0.png d0.png\nrgb1.png d1.png\n")
    (warning,) = check_inputs(collect_samples(True, list_file=tmp_path / "two.txt"), **fusion)
    assert warning.startswith(f"{tmp_path / 'd1.png'} is a 16-bit image") and "other input" not in warning


def test_a_label_of_more_ids_than_64_is_a_label_for_a_model_of_that_many_classes(tmp_path):
    """`image label` lines whose grey label held 80 ids were read as two unlabelled images for a
    100-class model: the label was dropped without a word (helper 164)."""
    write_rgb(tmp_path / "a.png", np.full((8, 10, 3), 90, np.uint8))
    write_rgb(tmp_path / "la.png", np.arange(80, dtype=np.uint8).reshape(8, 10))  # grey, ids 0..79
    (tmp_path / "pairs.txt").write_text("a.png la.png\n")
    (sample,) = collect_samples(False, list_file=tmp_path / "pairs.txt", num_classes=100)
    assert sample.label == str(tmp_path / "la.png") and sample.modality2 is None
    # For a model of fewer classes, such an image is no label (a grey depth map): an unlabelled pair.
    (sample,) = collect_samples(False, list_file=tmp_path / "pairs.txt", num_classes=12)
    assert sample.label is None and sample.modality2 == str(tmp_path / "la.png")


def test_an_expert_of_modality_3_is_told_to_take_a_list_and_suffixes_need_their_folder(tmp_path):
    """Helper 294: an expert of modality 3 given --modality1 was told "pass the images as
    --modality3", a flag that does not exist (given both flags: "not used", then an error asking
    for a label); and --modality2_suffix without --modality2 was read by nothing."""
    from ssma_tf.inference.samples import check_inputs

    rgb = write_rgb(tmp_path / "rgb.png", np.zeros((4, 4, 3)))
    depth = write_rgb(tmp_path / "depth.png", np.zeros((4, 4, 3)))
    expert = dict(fusion=False, modalities=1, input_modality="modality3", source="its config")
    with pytest.raises(PredictionError, match=r"but only --modality1 is given: pass the images in a --list of "
                                              r"'modality1 \.\.\. modality3' lines \(or pass --input_modality"):
        check_inputs(collect_samples(False, modality1=rgb), listed=False, **expert)
    with pytest.raises(PredictionError, match=r"^the network reads modality3 \(its config\), which --modality1 and "
                                              r"--modality2 do not give: pass the images in a --list of "
                                              r"'modality1 \.\.\. modality3' lines$"):
        check_inputs(collect_samples(False, modality1=rgb, modality2=depth), listed=False, **expert)
    folder = tmp_path / "rgb_folder"
    folder.mkdir()
    write_rgb(folder / "p_rgb.png", np.zeros((4, 4, 3)))
    for flags, number in ((dict(modality1=folder, modality2_suffix="_d"), 2),
                          (dict(modality2=folder, modality1_suffix="_rgb"), 1)):
        with pytest.raises(PredictionError, match=rf"^--modality{number}_suffix strips names in --modality{number}'s "
                                                  r"folder, which is not given$"):
            collect_samples(False, **flags)
    assert [sample.name for sample in collect_samples(False, modality1=folder, modality1_suffix="_rgb")] == ["p"]


def test_a_cut_jpeg_a_float_tiff_and_a_16_bit_label_beyond_255_are_refused_before_any_prediction(tmp_path):
    """Pillow's verify reads PNG data only: a JPEG cut short, a floating-point TIFF and a 16-bit
    label holding id 300 were found at their sample's turn, the pictures of the samples before it
    written, and the label's advice was ssma-convert's --unlabeled (helper 369)."""
    from PIL import Image

    for name in ("a", "b"):
        write_rgb(tmp_path / f"{name}.png", np.full((16, 24, 3), 90))
    noise = np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "whole.jpg", quality=95)
    data = (tmp_path / "whole.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    Image.fromarray(np.zeros((16, 24), np.float32)).save(tmp_path / "float.tif")
    Image.fromarray(np.full((16, 24), 300, np.uint16)).save(tmp_path / "deep_label.png")
    Image.fromarray(np.full((16, 24), 3, np.uint16)).save(tmp_path / "fine_label.png")
    assert len(collect_samples(False, modality1=tmp_path / "whole.jpg")) == 1
    with pytest.raises(PredictionError, match=r"sample 'cut': cannot read modality1 .*cut\.jpg: image file is "
                                              r"truncated"):
        collect_samples(False, modality1=tmp_path / "cut.jpg")
    (tmp_path / "float.txt").write_text("a.png\nfloat.tif\n")
    with pytest.raises(PredictionError, match=r"modality1 of .*float\.txt, line 2 \(sample 'float'\): image .*float"
                                              r"\.tif' is floating point \(mode F\), expected 8 or 16 bits"):
        collect_samples(False, list_file=tmp_path / "float.txt")
    (tmp_path / "labels.txt").write_text("a.png fine_label.png\nb.png deep_label.png\n")
    with pytest.raises(PredictionError, match=r"label of .*labels\.txt, line 2 \(sample 'b'\): label .*deep_label"
                                              r"\.png' has ids outside 0\.\.255 \(min 300, max 300\): is it a 16-bit "
                                              r"depth or NIR image\? A list line without a label column predicts its "
                                              r"images without one$"):
        collect_samples(False, list_file=tmp_path / "labels.txt")
    (tmp_path / "labels.txt").write_text("a.png fine_label.png\n")
    assert collect_samples(False, list_file=tmp_path / "labels.txt")[0].label.endswith("fine_label.png")


def test_a_two_modality_network_given_only_modality2_is_told_to_give_modality1(tmp_path):
    """Before: found at the first sample's turn, with the advice to write a list file (helper 369)."""
    from ssma_tf.inference.samples import check_inputs

    write_rgb(tmp_path / "d.png", np.full((16, 24, 3), 90))
    samples = collect_samples(True, modality2=tmp_path / "d.png")
    with pytest.raises(PredictionError, match=r"^this network fuses two modalities, but --modality1 is not given: "
                                              r"give it \(an image or a folder\)$"):
        check_inputs(samples, fusion=True, modalities=2, input_modality="modality1", listed=False)
    samples = collect_samples(True, modality1=tmp_path / "d.png")
    with pytest.raises(PredictionError, match=r"but --modality2 is not given"):
        check_inputs(samples, fusion=True, modalities=2, input_modality="modality1", listed=False)
