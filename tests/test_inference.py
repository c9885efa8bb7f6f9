"""Tests for ssma_tf.inference (Predictor, model loading) and ssma_tf.predict (files, pictures)."""

import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from ssma_tf import inference, predict
from ssma_tf.checkpoints import CheckpointError
from ssma_tf.models import SSMA, AdapNetPP
from tests.inference_helpers import random_image, randomize_batch_norms, write_rgb

HEIGHT, WIDTH = 64, 128
PALETTE4 = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)


@pytest.fixture(scope="module")
def adapnet():
    model = AdapNetPP(4)
    randomize_batch_norms(model, seed=1)
    return model


@pytest.fixture(scope="module")
def predictor(adapnet):
    """One RGB predictor for the AdapNet++ tests, so that its functions are traced once."""
    return inference.Predictor(adapnet)


@pytest.fixture(scope="module")
def ssma():
    model = SSMA(3)
    randomize_batch_norms(model, seed=2)
    return model


def _reference(model, images, size):
    """The model's softmax on BGR float inputs resized to `size`, computed without the Predictor."""
    views = [
        tf.image.resize(tf.constant(image[None, ..., ::-1], tf.float32), size, method=method)
        for image, method in zip(images, ("bilinear", "nearest"))
    ]
    return model(views if len(views) == 2 else views[0], training=False, return_all=True)


# --- Predictor ------------------------------------------------------------------------------


def test_predictor_matches_the_model_on_the_resized_bgr_input(adapnet, predictor):
    image = random_image(70, 120, seed=0)
    result = predictor(image)
    # 70x120 rounds to the nearest multiples of 16: 64x128.
    assert result.model_size == (64, 128)
    assert result.class_ids.shape == (64, 128) and result.class_ids.dtype == np.int32
    assert result.probabilities.shape == (64, 128, 4)
    expected = _reference(adapnet, [image], (64, 128))["softmax"].numpy()[0]
    np.testing.assert_allclose(result.probabilities, expected, atol=1e-5)
    np.testing.assert_array_equal(result.class_ids, expected.argmax(-1))


def test_predictor_channel_order_and_batches(adapnet, predictor):
    image = random_image(HEIGHT, WIDTH, seed=3)
    rgb = predictor(image).probabilities
    bgr = inference.Predictor(adapnet, channel_order="bgr")
    batch = bgr(np.stack([image[..., ::-1], image]))
    assert batch.class_ids.shape == (2, HEIGHT, WIDTH) and batch.probabilities.shape == (2, HEIGHT, WIDTH, 4)
    np.testing.assert_allclose(batch.probabilities[0], rgb, atol=1e-5)
    # The input batch norm has different statistics per channel: the order matters.
    assert np.abs(batch.probabilities[1] - rgb).max() > 1e-3
    assert predictor(image, probabilities=False).probabilities is None


def test_predictor_original_size_and_configured_size(adapnet):
    image = random_image(50, 90, seed=4)
    predictor = inference.Predictor(adapnet, size=(32, 64))
    small = predictor(image)
    full = predictor(image, original_size=True)
    assert small.class_ids.shape == (32, 64) and small.model_size == (32, 64)
    assert full.class_ids.shape == (50, 90) and full.probabilities.shape == (50, 90, 4)
    nearest = tf.image.resize(small.class_ids[None, ..., None], (50, 90), method="nearest")
    np.testing.assert_array_equal(full.class_ids, nearest.numpy()[0, ..., 0])
    # Traced once per option set, whatever the image size.
    predictor(random_image(80, 40, seed=5))
    assert predictor._function(False, True, False).experimental_get_tracing_count() == 1


def test_ssma_predictor_returns_the_mean_gates(ssma):
    modality1, modality2 = random_image(HEIGHT, WIDTH, 6), random_image(HEIGHT, WIDTH, 7)
    predictor = inference.Predictor(ssma, size=(HEIGHT, WIDTH))
    result = predictor(modality1, modality2, gates=True)
    reference = _reference(ssma, [modality1, modality2], (HEIGHT, WIDTH))
    np.testing.assert_allclose(result.probabilities, reference["softmax"].numpy()[0], atol=1e-5)
    assert sorted(result.gates) == ["latent", "skip1", "skip2"]
    for name, factor in (("latent", 16), ("skip2", 8), ("skip1", 4)):
        gate = result.gates[name]
        assert gate.shape == (HEIGHT // factor, WIDTH // factor)
        assert 0.0 <= gate.min() and gate.max() <= 1.0
        np.testing.assert_allclose(gate, reference[f"gate_{name}"].numpy()[0].mean(-1), atol=1e-5)


def test_predictor_rejects_bad_inputs(adapnet, predictor, ssma):
    image = random_image(HEIGHT, WIDTH, 8)
    with pytest.raises(ValueError, match="modality2"):
        inference.Predictor(ssma)(image)
    with pytest.raises(ValueError, match="same shape"):
        inference.Predictor(ssma)(image, image[:32])
    with pytest.raises(ValueError, match="only SSMA"):
        predictor(image, gates=True)
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        predictor(image[..., 0])
    with pytest.raises(ValueError, match="multiples of 16"):
        inference.Predictor(adapnet, size=(60, 128))
    with pytest.raises(ValueError, match="channel_order"):
        inference.Predictor(adapnet, channel_order="rbg")


def test_inference_model_drops_the_auxiliary_heads(adapnet):
    view = inference.inference_model(adapnet)
    assert sorted(view.output) == ["logits", "softmax"]
    assert view.count_params() < adapnet.count_params()  # the heads' weights are not used
    assert inference.parse_size("384x768") == (384, 768) and inference.parse_size("input") is None
    with pytest.raises(ValueError, match="HEIGHTxWIDTH"):
        inference.parse_size("384,768")


def test_default_palette_is_distinct_with_black_void():
    palette = inference.default_palette(40)
    assert palette.shape == (40, 3) and palette.dtype == np.uint8
    assert (palette[0] == 0).all()
    assert len({tuple(c) for c in palette}) == 40


# --- Loading models -----------------------------------------------------------------------


def test_load_model_from_a_weights_file(adapnet, tmp_path):
    path = str(tmp_path / "adapnet.weights.h5")
    adapnet.save_weights(path)
    loaded = inference.load_model(path, "AdapNet_pp", 4)
    assert isinstance(loaded, AdapNetPP) and loaded.num_classes == 4
    assert len(loaded.weights) == len(adapnet.weights)
    for mine, theirs in zip(loaded.weights, adapnet.weights):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())
    with pytest.raises(ValueError, match="give the model"):
        inference.load_model(path)
    with pytest.raises(CheckpointError, match="missing.weights.h5"):
        inference.load_model(str(tmp_path / "missing.weights.h5"), "AdapNet_pp", 4)


# --- Samples ------------------------------------------------------------------------------


def test_samples_from_a_list_file_are_named_by_relative_path(tmp_path):
    (tmp_path / "list.txt").write_text(
        "# comment\nscene0/rgb/0.png scene0/depth/0.png scene0/label/0.png\n\n"
        "scene1/rgb/0.png scene1/depth/0.png scene1/label/0.png\n"
    )
    samples = predict.samples_from_list(tmp_path / "list.txt", fusion=True)
    assert [s.name for s in samples] == ["scene0/rgb/0", "scene1/rgb/0"]
    assert samples[0].modality2 == str(tmp_path / "scene0" / "depth" / "0.png")
    assert samples[0].label == str(tmp_path / "scene0" / "label" / "0.png")
    # A unimodal model reads `image label` lines.
    (tmp_path / "pairs.txt").write_text("a.png la.png\nb.png lb.png\n")
    unimodal = predict.samples_from_list(tmp_path / "pairs.txt", fusion=False)
    assert [(s.name, s.modality2, os.path.basename(s.label)) for s in unimodal] == [
        ("a", None, "la.png"), ("b", None, "lb.png"),
    ]
    (tmp_path / "bad.txt").write_text("a.png b.png\nc.png\n")
    with pytest.raises(predict.PredictionError, match=r"bad.txt, line 2"):
        predict.samples_from_list(tmp_path / "bad.txt", fusion=True)
    (tmp_path / "twice.txt").write_text("a.png b.png\na.png c.png\n")
    with pytest.raises(predict.PredictionError, match="listed twice"):
        predict.samples_from_list(tmp_path / "twice.txt", fusion=True)


def test_samples_from_folders_pair_by_name(tmp_path):
    for key in ("x", "y"):
        write_rgb(tmp_path / "rgb" / f"{key}_leftImg8bit.png", np.zeros((4, 4, 3)))
        write_rgb(tmp_path / "depth" / f"{key}_disparity.png", np.zeros((4, 4, 3)))
    samples = predict.collect_samples(
        True, modality1=tmp_path / "rgb", modality2=tmp_path / "depth",
        modality1_suffix="_leftImg8bit", modality2_suffix="_disparity",
    )
    pairs = [(s.name, os.path.basename(s.modality2)) for s in samples]
    assert pairs == [("x", "x_disparity.png"), ("y", "y_disparity.png")]
    write_rgb(tmp_path / "rgb" / "z_leftImg8bit.png", np.zeros((4, 4, 3)))
    with pytest.raises(predict.PredictionError, match="z_leftImg8bit.png has no partner"):
        predict.collect_samples(
            True, modality1=tmp_path / "rgb", modality2=tmp_path / "depth",
            modality1_suffix="_leftImg8bit", modality2_suffix="_disparity",
        )
    with pytest.raises(predict.PredictionError, match="nothere.png: no such file"):
        predict.collect_samples(True, modality1=tmp_path / "nothere.png", modality2=tmp_path / "a.png")
    with pytest.raises(predict.PredictionError, match="is not a folder"):
        predict.collect_samples(True, modality1=tmp_path / "rgb", modality2=tmp_path / "rgb" / "x_leftImg8bit.png")


# --- Writing pictures ---------------------------------------------------------------------


def _read(path):
    return np.asarray(Image.open(path))


def test_predict_files_writes_ids_colours_and_overlays(predictor, tmp_path):
    rgb = random_image(70, 120, 10)
    label = np.tile(np.arange(6, dtype=np.uint8), (70, 20))  # ids 4 and 5 are unknown: void
    samples = [
        predict.Sample(
            "a", write_rgb(tmp_path / "in" / "a.png", rgb), label=write_rgb(tmp_path / "in" / "la.png", label)
        ),
        predict.Sample("sub/b", write_rgb(tmp_path / "in" / "b.png", rgb[::-1])),
    ]
    summary = predict.predict_files(predictor, samples, tmp_path / "out", palette=PALETTE4, batch_size=2)
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
    sample = predict.Sample(
        "pair", write_rgb(tmp_path / "rgb.png", random_image(50, 90, 11)),
        write_rgb(tmp_path / "depth.png", random_image(50, 90, 12)[..., 0]),  # grey: repeated to 3 channels
    )
    predictor = inference.Predictor(ssma, size=(HEIGHT, WIDTH))
    predict.predict_files(predictor, [sample], tmp_path / "out", original_size=True, attention=True)
    out = tmp_path / "out"
    for folder in ("class_ids", "color", "overlay", "attention/latent", "attention/skip2", "attention/skip1"):
        picture = _read(out / folder / "pair.png")
        assert picture.shape[:2] == (50, 90), folder
    ids = _read(out / "class_ids" / "pair.png")
    np.testing.assert_array_equal(_read(out / "color" / "pair.png"), inference.default_palette(3)[ids])


def test_predict_files_errors_name_the_file(predictor, ssma, tmp_path):
    good = write_rgb(tmp_path / "good.png", random_image(HEIGHT, WIDTH, 13))
    other = write_rgb(tmp_path / "small.png", random_image(32, 32, 14))
    with pytest.raises(predict.PredictionError, match="missing.png"):
        predict.predict_files(predictor, [predict.Sample("m", str(tmp_path / "missing.png"))], tmp_path / "out")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(predict.PredictionError, match="broken.png"):
        predict.predict_files(predictor, [predict.Sample("b", str(tmp_path / "broken.png"))], tmp_path / "out")
    with pytest.raises(predict.PredictionError, match="good.png is 64x128, .*small.png is 32x32"):
        predict.predict_files(inference.Predictor(ssma), [predict.Sample("s", good, other)], tmp_path / "out")
    with pytest.raises(ValueError, match="palette has 3 colours"):
        predict.predict_files(predictor, [predict.Sample("g", good)], tmp_path / "out", palette=PALETTE4[:3])
    with pytest.raises(ValueError, match="need an SSMA"):
        predict.predict_files(predictor, [predict.Sample("g", good)], tmp_path / "out", attention=True)


def test_predictor_in_bfloat16_gives_nearly_the_float32_classes(adapnet, predictor):
    image = random_image(HEIGHT, WIDTH, seed=9)
    fast = inference.Predictor(adapnet, precision="bfloat16")
    assert fast.precision == "bfloat16"
    reference, result = predictor(image), fast(image)
    assert result.probabilities.dtype == np.float32
    assert np.abs(result.probabilities - reference.probabilities).max() < 0.1
    assert (result.class_ids == reference.class_ids).mean() > 0.9
    with pytest.raises(ValueError, match="precision"):
        inference.Predictor(adapnet, precision="half")
    with pytest.raises(ValueError, match="optimize"):
        inference.Predictor(adapnet, optimize=False, precision="bfloat16")
