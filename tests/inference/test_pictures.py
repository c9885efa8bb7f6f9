"""Tests for ssma_tf.inference.pictures: predicting image files and writing their pictures."""

import numpy as np
import pytest
from PIL import Image

from ssma_tf.inference.pictures import predict_files
from ssma_tf.inference.predictor import PredictionError, Predictor
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
    with pytest.raises(ValueError, match="palette has 3 colours"):
        predict_files(predictor, [Sample("g", good)], tmp_path / "out", palette=PALETTE4[:3])
    with pytest.raises(ValueError, match="need an SSMA"):
        predict_files(predictor, [Sample("g", good)], tmp_path / "out", attention=True)


def test_predict_files_compares_two_models_with_an_improvement_map(adapnet, predictor, tmp_path):
    from ssma_tf.visualize import ERROR_COLOUR, IMPROVEMENT_COLOUR

    rgb = random_image(64, 128, 13)
    # The same network fed the channels the other way round: another model's predictions.
    other = Predictor(adapnet, channel_order="bgr")
    ids, reference = predictor(rgb).class_ids, other(rgb[..., ::-1]).class_ids
    # A label that this model gets right where it predicts a class in the left half, and wrong
    # elsewhere: red on the right, green where the two models disagree on the left.
    label = np.where(ids != 0, ids, 1).astype(np.uint8)
    label[:, 64:] = np.where(ids[:, 64:] == 2, 3, 2)
    sample = Sample("a", write_rgb(tmp_path / "a.png", rgb), label=write_rgb(tmp_path / "la.png", label))
    summary = predict_files(predictor, [sample], tmp_path / "out", palette=PALETTE4, compare=other)
    out = tmp_path / "out"
    np.testing.assert_array_equal(_read(out / "class_ids" / "a.png"), ids)
    np.testing.assert_array_equal(_read(out / "compare_color" / "a.png"), PALETTE4[reference])
    picture = _read(out / "improvement" / "a.png")
    wrong = ids != label
    fixed = (reference != label) & ~wrong
    assert wrong[:, 64:].all() and fixed.any()
    np.testing.assert_array_equal(np.all(picture == ERROR_COLOUR, axis=-1), wrong)
    np.testing.assert_array_equal(np.all(picture == IMPROVEMENT_COLOUR, axis=-1), fixed)
    assert summary.improvement["errors"] == wrong.sum() and summary.improvement["improvements"] == fixed.sum()
    with pytest.raises(PredictionError, match="needs a label"):
        predict_files(predictor, [Sample("b", sample.modality1)], tmp_path / "out2", compare=other)
