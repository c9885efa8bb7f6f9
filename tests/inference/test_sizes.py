"""Tests for ssma_tf.inference.sizes: model sizes are multiples of 16."""

import pytest

from ssma_tf.inference.sizes import check_interpolation, check_size, parse_size, rounded_size


def test_sizes_are_read_and_checked():
    assert parse_size("384x768") == (384, 768) and parse_size("input") is None
    with pytest.raises(ValueError, match="HEIGHTxWIDTH"):
        parse_size("384,768")
    with pytest.raises(ValueError, match="multiples of 16, got 60x128"):
        check_size((60, 128))
    assert rounded_size(70, 120) == (64, 128) and rounded_size(3, 5) == (16, 16)
    with pytest.raises(ValueError, match="'cubic'"):
        check_interpolation("cubic")
