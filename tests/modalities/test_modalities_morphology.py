"""Vectorised filters against direct per-pixel definitions."""

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from ssma_tf.modalities import morphology


def _direct(image, kernel, reduce):
    """Reduction over the kernel's neighbours inside the image, pixel by pixel."""
    height, width = image.shape
    kh, kw = kernel.shape
    out = np.empty_like(image)
    for y in range(height):
        for x in range(width):
            values = [
                image[y + i - kh // 2, x + j - kw // 2]
                for i in range(kh)
                for j in range(kw)
                if kernel[i, j] and 0 <= y + i - kh // 2 < height and 0 <= x + j - kw // 2 < width
            ]
            out[y, x] = reduce(values)
    return out


KERNELS = {
    "diamond5": morphology.DIAMOND_KERNEL_5,
    "cross5": morphology.CROSS_KERNEL_5,
    "full7": morphology.FULL_KERNEL_7,
    "full3x7": np.ones((3, 7), dtype=bool),
    "asymmetric": np.array([[0, 1, 1], [0, 1, 0], [0, 0, 0]], dtype=bool),
}


def test_published_kernel_shapes():
    assert morphology.DIAMOND_KERNEL_5.astype(int).tolist() == [
        [0, 0, 1, 0, 0],
        [0, 1, 1, 1, 0],
        [1, 1, 1, 1, 1],
        [0, 1, 1, 1, 0],
        [0, 0, 1, 0, 0],
    ]
    assert morphology.CROSS_KERNEL_3.astype(int).tolist() == [[0, 1, 0], [1, 1, 1], [0, 1, 0]]
    assert morphology.FULL_KERNEL_31.shape == (31, 31) and morphology.FULL_KERNEL_31.all()


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_dilate_and_erode_match_direct_definition(name):
    kernel = KERNELS[name]
    image = np.random.default_rng(1).random((13, 17)).astype(np.float32)
    np.testing.assert_array_equal(morphology.dilate(image, kernel), _direct(image, kernel, max))
    np.testing.assert_array_equal(morphology.erode(image, kernel), _direct(image, kernel, min))


def test_large_full_kernel_matches_direct_definition():
    image = np.random.default_rng(2).random((40, 45)).astype(np.float32)
    np.testing.assert_array_equal(
        morphology.dilate(image, morphology.FULL_KERNEL_31),
        _direct(image, morphology.FULL_KERNEL_31, max),
    )


def test_closing_fills_a_small_hole_only():
    image = np.ones((20, 20), dtype=np.float32)
    image[5, 5] = 0.0  # fits in a 5x5 kernel
    image[10:18, 10:18] = 0.0  # does not
    closed = morphology.closing(image, morphology.FULL_KERNEL_5)
    assert closed[5, 5] == 1.0
    assert np.all(closed[12:16, 12:16] == 0.0)


@pytest.mark.parametrize("size", [3, 5, 7])
def test_median_matches_numpy(size):
    rng = np.random.default_rng(size)
    image = rng.random((30, 41)).astype(np.float32)
    ties = rng.integers(0, 3, (30, 41)).astype(np.float32)  # many equal values
    for values in (image, ties):
        padded = np.pad(values, size // 2, mode="edge")
        expected = np.median(sliding_window_view(padded, (size, size)), axis=(-2, -1))
        np.testing.assert_array_equal(morphology.median_filter(values, size), expected)


def test_gaussian_kernels_of_sigma_0_are_opencvs():
    # cv2.getGaussianKernel(n, 0) of OpenCV 4.10.0 and 5.1.0: a fixed table up to 9 taps, above
    # that the Gaussian of sigma 0.3 * ((n - 1) / 2 - 1) + 0.8 (2.0 for 11 taps).
    opencv = {
        5: [0.0625, 0.25, 0.375, 0.25, 0.0625],
        7: [0.03125, 0.109375, 0.21875, 0.28125, 0.21875, 0.109375, 0.03125],
        9: [0.015625, 0.05078125, 0.1171875, 0.19921875, 0.234375, 0.19921875, 0.1171875, 0.05078125, 0.015625],
        11: [0.00881223, 0.02714358, 0.06511406, 0.12164907, 0.17699836, 0.20056541,
             0.17699836, 0.12164907, 0.06511406, 0.02714358, 0.00881223],
    }
    for size, weights in opencv.items():
        np.testing.assert_allclose(morphology.gaussian_kernel_1d(size), weights, atol=1e-8)
    offsets = np.arange(-2, 3)
    gaussian = np.exp(-offsets**2 / (2 * 1.1**2))
    np.testing.assert_allclose(morphology.gaussian_kernel_1d(5, sigma=1.1), gaussian / gaussian.sum())


def test_gaussian_blur_matches_direct_convolution():
    image = np.random.default_rng(3).random((12, 15))
    weights = morphology.gaussian_kernel_1d(5)
    padded = np.pad(image, 2, mode="reflect")
    windows = sliding_window_view(padded, (5, 5))
    expected = np.einsum("ijkl,k,l->ij", windows, weights, weights)
    np.testing.assert_allclose(morphology.gaussian_blur(image, 5), expected, atol=1e-12)


def test_bilateral_filter_keeps_edges_and_smooths_flat_parts():
    image = np.zeros((20, 20), dtype=np.float32)
    image[:, 10:] = 10.0
    noisy = image + np.random.default_rng(4).normal(0, 0.1, image.shape).astype(np.float32)
    smoothed = morphology.bilateral_filter(noisy, 5, sigma_color=1.0, sigma_space=2.0)
    # The step of 10 is far beyond sigma_color: no mixing across it.
    assert np.abs(smoothed[:, 9] - 0.0).max() < 0.3
    assert np.abs(smoothed[:, 10] - 10.0).max() < 0.3
    assert np.std(smoothed[:, :8] ) < np.std(noisy[:, :8])


def test_box_sum_matches_direct_sum():
    image = np.random.default_rng(5).random((9, 11))
    expected = sliding_window_view(np.pad(image, 2), (5, 5)).sum(axis=(-2, -1))
    np.testing.assert_allclose(morphology.box_sum(image, 2), expected, atol=1e-12)


def test_bad_kernels_and_sizes():
    with pytest.raises(ValueError, match="odd"):
        morphology.dilate(np.zeros((5, 5)), np.ones((2, 3)))
    with pytest.raises(ValueError, match="non-zero"):
        morphology.dilate(np.zeros((5, 5)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="positive odd integer, got 4"):
        morphology.median_filter(np.zeros((5, 5)), 4)
    with pytest.raises(ValueError, match="2-D"):
        morphology.erode(np.zeros((5, 5, 3)), morphology.FULL_KERNEL_3)
