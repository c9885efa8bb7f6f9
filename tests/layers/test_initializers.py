"""The released graph's kernel initialiser, and skipping its draws for weights that are assigned next."""

import keras
import numpy as np

from ssma_tf.layers import ConvBN, HeTruncatedNormal
from ssma_tf.layers.initializers import overwritten_weights


def test_kernels_are_truncated_at_two_standard_deviations_of_he():
    kernel = np.asarray(HeTruncatedNormal()((3, 3, 64, 128)))
    std = np.sqrt(2.0 / (3 * 3 * 64))
    assert np.abs(kernel).max() <= 2 * std
    # A normal truncated at 2 sigma keeps 0.88 of its standard deviation (not rescaled, as released).
    assert abs(kernel.std() / std - 0.880) < 0.01
    transposed = np.asarray(HeTruncatedNormal(transposed=True)((4, 4, 8, 2)))
    assert np.abs(transposed).max() <= 2 * np.sqrt(2.0 / (4 * 4 * 2))


def test_a_model_built_to_be_overwritten_starts_at_zero_and_later_draws_stay_the_same():
    def build_then_draw(skip):
        keras.utils.set_random_seed(3)
        layers = [ConvBN(6, 3), ConvBN(4, 4, strides=2, transposed=True)]
        if skip:
            with overwritten_weights():
                for layer in layers:
                    layer.build((1, 8, 8, 5))
        else:
            for layer in layers:
                layer.build((1, 8, 8, 5))
        kernels = [np.asarray(layer.conv.kernel) for layer in layers]
        # What is drawn next: the seed generator moved one draw per kernel either way.
        return kernels, np.asarray(keras.random.normal((4,))), np.asarray(HeTruncatedNormal()((1, 1, 2, 2)))

    drawn, after_drawn, kernel_after_drawn = build_then_draw(skip=False)
    skipped, after_skipped, kernel_after_skipped = build_then_draw(skip=True)
    assert all(np.abs(kernel).sum() > 0 for kernel in drawn)
    assert all(not kernel.any() for kernel in skipped)
    np.testing.assert_array_equal(after_skipped, after_drawn)
    np.testing.assert_array_equal(kernel_after_skipped, kernel_after_drawn)
    # Outside the context the kernels are drawn again.
    assert np.abs(np.asarray(HeTruncatedNormal()((3, 3, 2, 2)))).sum() > 0
