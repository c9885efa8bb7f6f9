"""Tests for ssma_tf.inference.pictures: predicting image files and writing their pictures."""

import re

import numpy as np
import pytest
from PIL import Image

from ssma_tf.inference.pictures import predict_files
from ssma_tf.inference.predictor import Prediction, PredictionError, Predictor
from ssma_tf.inference.samples import Sample
from ssma_tf.visualize import default_palette
from tests.inference.helpers import random_image, write_rgb

HEIGHT, WIDTH = 64, 128
PALETTE4 = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)


def _read(path):
    return np.asarray(Image.open(path))


def test_predict_files_writes_ids_colours_and_overlays(predictor, tmp_path):
    rgb = random_image(70, 120, 10)
    label = np.tile(np.arange(6, dtype=np.uint8), (70, 20))  # ids 4 and 5 are unknown: void
    samples = [
        Sample(
            "a", write_rgb(tmp_path / "in" / "a.png", rgb), label=write_rgb(tmp_path / "in" / "la.png", label)
        ),
        Sample("sub/b", write_rgb(tmp_path / "in" / "b.png", rgb[::-1])),
    ]
    summary = predict_files(predictor, samples, tmp_path / "out", palette=PALETTE4, batch_size=2)
    assert summary.samples == 2 and len(summary.files) == 7
    out = tmp_path / "out"
    ids = _read(out / "class_ids" / "a.png")
    assert ids.shape == (64, 128) and ids.dtype == np.uint8
    np.testing.assert_array_equal(ids, predictor(rgb).class_ids)
    colour = _read(out / "color" / "a.png")
    np.testing.assert_array_equal(colour, PALETTE4[ids])
    overlay = _read(out / "overlay" / "a.png").astype(float)
    base = np.asarray(Image.fromarray(rgb).resize((128, 64), Image.Resampling.BILINEAR), float)
    blended = np.round(0.5 * base + 0.5 * PALETTE4[ids])
    np.testing.assert_array_equal(overlay, np.where((ids != 0)[..., None], blended, base))
    truth = _read(out / "label_color" / "a.png")
    resized = np.asarray(Image.fromarray(label).resize((128, 64), Image.Resampling.NEAREST))
    np.testing.assert_array_equal(truth, PALETTE4[np.where(resized < 4, resized, 0)])
    assert _read(out / "color" / "sub" / "b.png").shape == (64, 128, 3)
    assert not (out / "label_color" / "sub").exists()


def test_predict_files_at_original_size_with_attention(ssma, tmp_path):
    sample = Sample(
        "pair", write_rgb(tmp_path / "rgb.png", random_image(50, 90, 11)),
        write_rgb(tmp_path / "depth.png", random_image(50, 90, 12)[..., 0]),  # grey: repeated to 3 channels
    )
    predictor = Predictor(ssma, size=(HEIGHT, WIDTH))
    predict_files(predictor, [sample], tmp_path / "out", original_size=True, attention=True)
    out = tmp_path / "out"
    for folder in ("class_ids", "color", "overlay", "attention/latent", "attention/skip2", "attention/skip1"):
        picture = _read(out / folder / "pair.png")
        assert picture.shape[:2] == (50, 90), folder
    ids = _read(out / "class_ids" / "pair.png")
    np.testing.assert_array_equal(_read(out / "color" / "pair.png"), default_palette(3)[ids])


def test_predict_files_errors_name_the_file(predictor, ssma, tmp_path):
    good = write_rgb(tmp_path / "good.png", random_image(HEIGHT, WIDTH, 13))
    other = write_rgb(tmp_path / "small.png", random_image(32, 32, 14))
    with pytest.raises(PredictionError, match="missing.png"):
        predict_files(predictor, [Sample("m", str(tmp_path / "missing.png"))], tmp_path / "out")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(PredictionError, match="broken.png"):
        predict_files(predictor, [Sample("b", str(tmp_path / "broken.png"))], tmp_path / "out")
    with pytest.raises(PredictionError, match="good.png is 64x128, .*small.png is 32x32"):
        predict_files(Predictor(ssma), [Sample("s", good, other)], tmp_path / "out")
    # A list's sample is named with its file and line (before: "sample 'good' has 2 modalities").
    from ssma_tf.inference.samples import samples_from_list

    Image.fromarray(np.zeros((HEIGHT, WIDTH), np.uint8)).save(tmp_path / "label.png")
    (tmp_path / "pairs.txt").write_text("good.png good.png label.png\n")  # two images and a label
    listed = samples_from_list(tmp_path / "pairs.txt", fusion=False)
    with pytest.raises(PredictionError, match=re.escape(
            f"{tmp_path / 'pairs.txt'}, line 1 (sample 'good') has 2 modalities, but the network reads modality3: "
            "list modality1 ... modality3 and a label per line")):
        predict_files(predictor, listed, tmp_path / "out", input_modality="modality3")
    with pytest.raises(ValueError, match="palette has 3 colours"):
        predict_files(predictor, [Sample("g", good)], tmp_path / "out", palette=PALETTE4[:3])
    with pytest.raises(ValueError, match="need an SSMA"):
        predict_files(predictor, [Sample("g", good)], tmp_path / "out", attention=True)


class _FixedPredictor:
    """A compared model whose class ids are given: the Predictor attributes `predict_files` reads."""

    channel_order = "rgb"

    def __init__(self, class_ids, modalities=1):
        self.class_ids = class_ids
        self.num_classes = 4
        self.fusion, self.num_modalities = modalities > 1, modalities
        self.calls = []

    def predict(self, modality1, modality2=None, *further, **_):
        images = [modality1] + ([] if modality2 is None else [modality2, *further])
        self.calls.append(len(images))
        assert len(images) == self.num_modalities and modality1.shape[1:3] == self.class_ids.shape
        return Prediction(class_ids=np.repeat(self.class_ids[None], len(modality1), axis=0), probabilities=None,
                          gates={}, model_size=self.class_ids.shape)


def test_predict_files_compares_two_models_with_an_improvement_map(tmp_path):
    from ssma_tf.visualize import ERROR_COLOUR, IMPROVEMENT_COLOUR

    rgb = random_image(64, 128, 13)
    label = np.tile(np.repeat(np.arange(4, dtype=np.uint8), 32), (64, 1))  # void in the first 32 columns
    ids = label.copy()
    ids[:, 96:] = 1  # this model wrong on the last 32 columns (red)
    reference = label.copy()
    reference[:8] = 2  # the compared one wrong on the top rows (green where this one is right)
    this, other = _FixedPredictor(ids), _FixedPredictor(reference)
    sample = Sample("a", write_rgb(tmp_path / "a.png", rgb), label=write_rgb(tmp_path / "la.png", label))
    summary = predict_files(this, [sample], tmp_path / "out", palette=PALETTE4, compare=other)
    out = tmp_path / "out"
    np.testing.assert_array_equal(_read(out / "compare_color" / "a.png"), PALETTE4[reference])
    picture = _read(out / "improvement" / "a.png")
    wrong = np.zeros_like(label, bool)
    wrong[:, 96:] = True
    fixed = np.zeros_like(label, bool)
    fixed[:8, 32:64] = True  # the compared model also misses class 3, but so does this one there
    np.testing.assert_array_equal(np.all(picture == ERROR_COLOUR, axis=-1), wrong)
    np.testing.assert_array_equal(np.all(picture == IMPROVEMENT_COLOUR, axis=-1), fixed)
    assert summary.improvement == {"errors": 64 * 32, "improvements": 8 * 32, "reference_errors": 8 * 64,
                                   "scored": 64 * 96}
    with pytest.raises(PredictionError, match="needs a label"):
        predict_files(this, [Sample("b", sample.modality1)], tmp_path / "out2", compare=other)
    with pytest.raises(ValueError, match="5 classes"):
        wider = _FixedPredictor(reference)
        wider.num_classes = 5
        predict_files(this, [sample], tmp_path / "out3", palette=PALETTE4, compare=wider)


def test_label_ids_past_the_classes_are_counted_and_said_and_no_scored_pixel_is_no_score(tmp_path):
    """Helper 294: labels of ids >= the class count (raw Cityscapes ids for a 4-class model) were
    left out of the scores without a word; with every pixel such, "wrong on 0.00%" for both."""
    from ssma_tf.cli.predict import comparison_lines

    label = np.full((8, 16), 7, np.uint8)
    label[:, :4] = 2
    ids = np.full((8, 16), 2, np.uint8)
    sample = Sample("a", write_rgb(tmp_path / "a.png", random_image(8, 16, 1)), label=write_rgb(tmp_path / "l.png",
                                                                                                label))
    summary = predict_files(_FixedPredictor(ids), [sample], tmp_path / "out", palette=PALETTE4,
                            compare=_FixedPredictor(ids))
    assert summary.improvement == {"errors": 0, "improvements": 0, "reference_errors": 0, "scored": 8 * 4,
                                   "beyond": 8 * 12}
    warning, line = comparison_lines("other.keras", summary.improvement, 4)
    assert warning == ("warning: 96 labelled pixel(s) hold class ids >= 4 (other than 255): not scored, as "
                       "evaluation counts them void; are the labels of this model's classes?")
    assert line.startswith("against other.keras: this model wrong on 0.00% of the labelled pixels")
    assert comparison_lines("other.keras", {**summary.improvement, "scored": 0}, 4)[1] == (
        "against other.keras: no labelled pixels to score (the labels hold void only)")
    assert comparison_lines("o", {"errors": 1, "improvements": 0, "reference_errors": 2, "scored": 4}, 4)[0] is None


def test_a_label_is_resized_to_the_model_size_as_evaluation_resizes_it(adapnet, tmp_path):
    """Helper 206: the label pictures and the improvement counts resized the label with PIL's
    nearest rule, which takes other source rows than evaluation's at exact ties (64 -> 48 rows:
    output row 4 falls on source row 6.0; PIL took row 5), so they scored another label."""
    from ssma_tf.data.augment import resize_sample

    label = np.random.default_rng(3).integers(0, 4, (64, 96)).astype(np.uint8)
    sample = Sample("a", write_rgb(tmp_path / "a.png", random_image(64, 96, 5)),
                    label=write_rgb(tmp_path / "la.png", label))
    this = Predictor(adapnet, size=(48, 64))
    reference = Predictor(adapnet, size=(48, 64))  # the same network: no improvements, its errors
    summary = predict_files(this, [sample], tmp_path / "out", palette=PALETTE4, compare=reference)
    sample_as_read = {"modality1": np.zeros((64, 96, 3), np.uint8), "label": label}
    evaluated = resize_sample(sample_as_read, height=48, width=64)["label"].numpy()
    pil = np.asarray(Image.fromarray(label).resize((64, 48), Image.Resampling.NEAREST))
    assert (pil != evaluated).any()  # the tie rows differ
    np.testing.assert_array_equal(_read(tmp_path / "out" / "label_color" / "a.png"), PALETTE4[evaluated])
    ids = _read(tmp_path / "out" / "class_ids" / "a.png")
    scored = evaluated != 0
    errors = int((scored & (ids != evaluated)).sum())
    assert summary.improvement == {"errors": errors, "improvements": 0, "reference_errors": errors,
                                   "scored": int(scored.sum())}


def test_a_fusion_model_compared_with_one_of_fewer_modalities_gets_the_first_of_each_sample(tmp_path):
    """SSMA over RGB, depth and thermal against SSMA over RGB and depth: the "does thermal help" map
    (before: the compared model got all three images and failed)."""
    label = np.tile(np.repeat(np.arange(4, dtype=np.uint8), 32), (64, 1))
    images = [write_rgb(tmp_path / f"m{i}.png", random_image(64, 128, i)) for i in (1, 2, 3)]
    sample = Sample("a", images[0], images[1], label=write_rgb(tmp_path / "la.png", label), further=(images[2],))
    three, two = _FixedPredictor(label, modalities=3), _FixedPredictor(label, modalities=2)
    predict_files(three, [sample], tmp_path / "out", palette=PALETTE4, compare=two)
    assert (three.calls, two.calls) == ([3], [2])
    with pytest.raises(PredictionError, match=r"sample 'a': SSMA needs modality3 too: give a --list of 'modality1 "
                                              r"modality2 modality3 \[label\]' lines"):
        predict_files(two, [Sample("a", images[0], images[1], label=sample.label)], tmp_path / "out2",
                      compare=_FixedPredictor(label, modalities=3))


def test_a_compared_model_of_another_class_count_is_a_prediction_error(tmp_path):
    """Before: a plain ValueError, a traceback from the commands."""
    import types

    predictor = types.SimpleNamespace(num_classes=4, fusion=False)
    other = types.SimpleNamespace(num_classes=7, fusion=False)
    with pytest.raises(PredictionError, match="the compared model predicts 7 classes, this one 4"):
        predict_files(predictor, [], tmp_path / "out", compare=other)


def test_an_unreadable_image_is_one_clause_naming_the_sample_and_the_file(tmp_path):
    """Before: "cannot read modality1 X: modality1 of sample 'junk': cannot read image 'X': cannot
    identify image file 'X'", the path three times."""
    from ssma_tf.inference.pictures import _load

    junk = tmp_path / "junk.png"
    junk.write_text("not an image")
    with pytest.raises(PredictionError) as error:
        _load(Sample("junk", str(junk)), fusion=False, input_modality="modality1")
    assert str(error.value) == (f"modality1 of sample 'junk': cannot read image '{junk}': not an image format "
                                "Pillow knows (PNG, JPEG, TIFF, ...)")


def test_an_interrupt_clears_the_progress_bar_before_its_line(tmp_path):
    """Helper 242: on a terminal, `interrupted` (or an error) was glued onto the bar."""
    import io

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    class Stopped(_FixedPredictor):
        def predict(self, *args, **kwargs):
            if self.calls:
                raise KeyboardInterrupt
            return super().predict(*args, **kwargs)

    ids = np.zeros((32, 48), np.uint8)
    samples = [Sample(name, write_rgb(tmp_path / f"{name}.png", random_image(32, 48, index)))
               for index, name in enumerate("ab")]
    shown = Terminal()
    with pytest.raises(KeyboardInterrupt):
        predict_files(Stopped(ids), samples, tmp_path / "out", palette=PALETTE4, progress=shown)
    assert "1/2" in shown.getvalue() and shown.getvalue().endswith("\r\033[K"), repr(shown.getvalue())


def test_a_palette_of_floats_or_past_255_is_refused_before_any_prediction_and_not_blamed_on_an_image(tmp_path):
    """Before: found by the first picture, after a batch was predicted, and raised as an error of
    that sample's image (helper 369)."""
    ids = np.zeros((8, 16), np.uint8)
    sample = Sample("a", write_rgb(tmp_path / "a.png", random_image(8, 16, 1)))
    for palette, message in (
            (np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], float),
             "palette: palette must hold integers 0..255, got dtype float64"),
            ([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 300]],
             "palette: palette values must be in 0..255, got min 0 and max 300"),
            (np.zeros((4, 4), np.uint8), "palette: palette must have shape (num_classes, 3), got shape (4, 4)")):
        predictor = _FixedPredictor(ids)
        with pytest.raises(PredictionError, match=f"^{re.escape(message)}$"):
            predict_files(predictor, [sample], tmp_path / "out", palette=palette)
        assert predictor.calls == [] and not (tmp_path / "out").exists()


def test_a_two_modality_network_without_modality1_is_told_its_flag(tmp_path):
    """Before: advised a list file of 'modality1 modality2 [label]' lines (helper 369)."""
    ids = np.zeros((8, 16), np.uint8)
    depth = write_rgb(tmp_path / "d.png", random_image(8, 16, 2))
    with pytest.raises(PredictionError, match=r"sample 'd': SSMA needs modality1 too: give --modality1 \(an image or "
                                              r"a folder\)$"):
        predict_files(_FixedPredictor(ids, modalities=2), [Sample("d", None, depth)], tmp_path / "out",
                      palette=PALETTE4)
