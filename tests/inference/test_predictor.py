"""Tests for ssma_tf.inference.predictor: the Predictor on image arrays."""

import numpy as np
import pytest
import tensorflow as tf

from ssma_tf.inference.predictor import Predictor
from tests.inference.helpers import random_image

HEIGHT, WIDTH = 64, 128


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
    bgr = Predictor(adapnet, channel_order="bgr")
    batch = bgr(np.stack([image[..., ::-1], image]))
    assert batch.class_ids.shape == (2, HEIGHT, WIDTH) and batch.probabilities.shape == (2, HEIGHT, WIDTH, 4)
    np.testing.assert_allclose(batch.probabilities[0], rgb, atol=1e-5)
    # The input batch norm has different statistics per channel: the order matters.
    assert np.abs(batch.probabilities[1] - rgb).max() > 1e-3
    assert predictor(image, probabilities=False).probabilities is None


def test_predictor_original_size_and_configured_size(adapnet):
    image = random_image(50, 90, seed=4)
    predictor = Predictor(adapnet, size=(32, 64))
    small = predictor(image)
    full = predictor(image, original_size=True)
    assert small.class_ids.shape == (32, 64) and small.model_size == (32, 64)
    assert full.class_ids.shape == (50, 90) and full.probabilities.shape == (50, 90, 4)
    upsampled = tf.image.resize(small.probabilities[None], (50, 90), method="bilinear").numpy()[0]
    np.testing.assert_allclose(full.probabilities, upsampled, atol=1e-6)
    # The ids are the argmax of the probabilities returned beside them (before: the model-size ids
    # resized with nearest neighbour, which disagreed with them on about a tenth of the pixels).
    np.testing.assert_array_equal(full.class_ids, full.probabilities.argmax(-1))
    assert np.array_equal(predictor(image, original_size=True, probabilities=False).class_ids, full.class_ids)
    # Traced once per option set, whatever the image size.
    predictor(random_image(80, 40, seed=5))
    assert predictor._function(False, True, False).experimental_get_tracing_count() == 1


def test_ssma_predictor_returns_the_mean_gates(ssma):
    modality1, modality2 = random_image(HEIGHT, WIDTH, 6), random_image(HEIGHT, WIDTH, 7)
    predictor = Predictor(ssma, size=(HEIGHT, WIDTH))
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
        Predictor(ssma)(image)
    with pytest.raises(ValueError, match="same shape"):
        Predictor(ssma)(image, image[:32])
    with pytest.raises(ValueError, match="only SSMA"):
        predictor(image, gates=True)
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        predictor(image[..., 0])
    with pytest.raises(ValueError, match="multiples of 16"):
        Predictor(adapnet, size=(60, 128))
    with pytest.raises(ValueError, match="channel_order"):
        Predictor(adapnet, channel_order="rbg")
    # An expert of depth resizes its image as its training did (nearest), not as modality 1.
    assert Predictor(adapnet, optimize=False, input_modality="modality2")._methods == ("nearest",)
    assert Predictor(adapnet, optimize=False)._methods == ("bilinear",)


def test_predictor_in_bfloat16_gives_nearly_the_float32_classes(adapnet, predictor):
    image = random_image(HEIGHT, WIDTH, seed=9)
    fast = Predictor(adapnet, precision="bfloat16")
    assert fast.precision == "bfloat16"
    reference, result = predictor(image), fast(image)
    assert result.probabilities.dtype == np.float32
    assert np.abs(result.probabilities - reference.probabilities).max() < 0.1
    assert (result.class_ids == reference.class_ids).mean() > 0.9
    with pytest.raises(ValueError, match="precision"):
        Predictor(adapnet, precision="half")
    with pytest.raises(ValueError, match="optimize"):
        Predictor(adapnet, optimize=False, precision="bfloat16")


def test_images_that_are_not_0_to_255_pixels_are_refused_or_warned(adapnet):
    """A uint16 depth map in millimetres or a normalised image ran without a word (64 % and 28 %
    of the pixels agreed with the right input's predictions)."""
    predictor = Predictor(adapnet, size=(32, 64), optimize=False)
    depth_mm = np.full((32, 64, 3), 3000, np.uint16)
    with pytest.raises(ValueError, match=r"modality1 holds values from 3000 to 3000 \(uint16\), but the network "
                                         r"takes pixels in 0\.\.255: a 16-bit depth"):
        predictor(depth_mm)
    with pytest.raises(ValueError, match=r"from -1 to 1 \(float32\).*normalised"):
        predictor(np.linspace(-1, 1, 32 * 64 * 3, dtype=np.float32).reshape(32, 64, 3))
    with pytest.warns(UserWarning, match=r"modality1 holds values in 0\.\.0\.5: .*multiply it by 255"):
        predictor(np.full((32, 64, 3), 0.5, np.float32))
    # NaN compares false with both bounds: holes of missing readings were predicted as some class (helper 344).
    holes = np.full((32, 64, 3), 100.0, np.float32)
    holes[:16] = np.nan
    with pytest.raises(ValueError, match=r"^modality1 holds NaN or inf at 3072 of 6144 values \(float32\), but the "
                                         r"network takes pixels in 0\.\.255: fill them first"):
        predictor(holes)
    holes[:16] = np.inf
    with pytest.raises(ValueError, match=r"^modality1 holds NaN or inf at 3072 "):
        predictor(holes)
    # uint8, and floats in 0..255, go through as before.
    predictor(np.full((32, 64, 3), 7, np.uint8))
    predictor(np.full((32, 64, 3), 200.0, np.float32))
