"""Tests for ssma_tf.inference.sizes: model sizes are multiples of 16."""

import pytest

from ssma_tf.inference.sizes import check_size, parse_size, rounded_size
from ssma_tf.resampling import check_interpolation


def test_sizes_are_read_and_checked():
    assert parse_size("384x768") == (384, 768) and parse_size("input") is None
    with pytest.raises(ValueError, match="HEIGHTxWIDTH"):
        parse_size("384,768")
    with pytest.raises(ValueError, match="multiples of 16, got 60x128"):
        check_size((60, 128))
    assert rounded_size(70, 120) == (64, 128) and rounded_size(3, 5) == (16, 16)
    with pytest.raises(ValueError, match="'cubic'"):
        check_interpolation("cubic")


def test_a_scaled_test_size_rounds_as_an_input_size_does():
    # The evaluation's test scales and `--size input` share the one rounding rule.
    from ssma_tf.evaluation import scaled_size

    for height, width, scale in ((384, 768, 0.75), (100, 200, 1.3), (64, 128, 0.1)):
        assert scaled_size(height, width, scale) == rounded_size(height * scale, width * scale)
    assert rounded_size(288.0, 576.4) == (288, 576)


def test_each_image_is_resized_as_its_modality_also_for_an_expert_of_a_later_one():
    from ssma_tf.resampling import resize_methods

    assert resize_methods("nearest", 2) == ("bilinear", "nearest")
    assert resize_methods(["nearest", "bilinear"], 3) == ("bilinear", "nearest", "bilinear")
    assert resize_methods("nearest", 1) == ("bilinear",)
    # An AdapNet++ expert of depth reads modality 2: resized as training and evaluation resize it
    # (before: bilinearly, as modality 1, in prediction and exports).
    assert resize_methods("nearest", 1, "modality2") == ("nearest",)
    assert resize_methods(["bilinear", "nearest"], 1, "modality3") == ("nearest",)
    with pytest.raises(ValueError, match=r"the network reads modality3, but the interpolations \['nearest'\] go up "
                                         r"to modality2"):
        resize_methods(["nearest"], 1, "modality3")
    with pytest.raises(ValueError, match="input_modality must be modality1, modality2, ..., got 'depth'"):
        resize_methods("nearest", 1, "depth")
