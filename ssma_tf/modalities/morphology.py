"""Grey-scale morphology and smoothing filters in vectorised NumPy.

Depth completion (Ku et al., 2018) and the HHA encoding need dilation with custom kernels,
closing, median, Gaussian and bilateral filters and windowed sums. OpenCV and SciPy provide them,
but the project depends on NumPy and Pillow only, so they are written here as whole-array
operations: a filter is a handful of shifted views of a padded image combined with
`np.maximum`, `np.minimum` or a weighted sum, never a Python loop over pixels.

Conventions (the same as OpenCV's, so published parameters mean the same thing):
- A kernel is a 2-D boolean (or 0/1) array of odd height and width, anchored at its centre.
- `dilate(image, k)[y, x] = max(image[y + i - cy, x + j - cx] for k[i, j] true)`: the kernel is
  not reflected. Every kernel used by the project is symmetric, where this makes no difference.
- Neighbours outside the image are ignored by `dilate`/`erode`, replicate the edge pixel in
  `median_filter` and mirror the image (without repeating the edge, OpenCV's BORDER_REFLECT_101)
  in `gaussian_blur` and `bilateral_filter`.
"""

import functools
from typing import List, Tuple

import numpy as np

from ssma_tf.modalities.errors import ParameterError


def _check_odd_size(size: int, name: str) -> None:
    if int(size) != size or size < 1 or size % 2 == 0:
        raise ParameterError(f"{name} must be a positive odd integer, got {size!r}")


def full_kernel(size: int) -> np.ndarray:
    """Returns a `size`x`size` kernel with every element set.

    Args:
        size: odd kernel width and height.

    Returns:
        A boolean array of shape (size, size).
    """
    _check_odd_size(size, "size")
    return np.ones((size, size), dtype=bool)


def cross_kernel(size: int) -> np.ndarray:
    """Returns a `size`x`size` cross: the centre row and the centre column.

    Args:
        size: odd kernel width and height.

    Returns:
        A boolean array of shape (size, size).
    """
    _check_odd_size(size, "size")
    kernel = np.zeros((size, size), dtype=bool)
    kernel[size // 2, :] = True
    kernel[:, size // 2] = True
    return kernel


def diamond_kernel(size: int) -> np.ndarray:
    """Returns a `size`x`size` diamond: offsets whose L1 distance to the centre is at most size // 2.

    `diamond_kernel(5)` is the 5x5 diamond that Ku et al. (2018, Table I) found best for the
    first dilation of sparse depth.

    Args:
        size: odd kernel width and height.

    Returns:
        A boolean array of shape (size, size).
    """
    _check_odd_size(size, "size")
    radius = size // 2
    offsets = np.abs(np.arange(size) - radius)
    return (offsets[:, None] + offsets[None, :]) <= radius


FULL_KERNEL_3 = full_kernel(3)
FULL_KERNEL_5 = full_kernel(5)
FULL_KERNEL_7 = full_kernel(7)
FULL_KERNEL_31 = full_kernel(31)
CROSS_KERNEL_3 = cross_kernel(3)
CROSS_KERNEL_5 = cross_kernel(5)
DIAMOND_KERNEL_5 = diamond_kernel(5)
DIAMOND_KERNEL_7 = diamond_kernel(7)


def dilate(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Grey-scale dilation: the maximum over the kernel's neighbourhood of each pixel.

    Args:
        image: 2-D numeric array without NaN.
        kernel: 2-D boolean kernel of odd height and width (see the module docstring).

    Returns:
        An array of the same shape and dtype as `image`.

    Raises:
        ValueError: if the image is not 2-D or the kernel is malformed.
    """
    return _morphology(image, kernel, np.maximum, _lowest(image.dtype))


def erode(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Grey-scale erosion: the minimum over the kernel's neighbourhood of each pixel.

    Args:
        image: 2-D numeric array without NaN.
        kernel: 2-D boolean kernel of odd height and width (see the module docstring).

    Returns:
        An array of the same shape and dtype as `image`.

    Raises:
        ValueError: if the image is not 2-D or the kernel is malformed.
    """
    return _morphology(image, kernel, np.minimum, _highest(image.dtype))


def closing(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Morphological closing (dilation, then erosion with the same kernel): fills small dark holes.

    Args:
        image: 2-D numeric array without NaN.
        kernel: 2-D boolean kernel of odd height and width.

    Returns:
        An array of the same shape and dtype as `image`.
    """
    return erode(dilate(image, kernel), kernel)


def median_filter(image: np.ndarray, size: int) -> np.ndarray:
    """Median over a `size`x`size` window, edges replicated.

    The median of the size*size shifted copies is selected by a pruned sorting network (Batcher's
    odd-even merge sort) of `np.minimum`/`np.maximum` operations, which for 5x5 is several times
    faster than `np.median` or `np.partition` over a sliding-window view.

    Args:
        image: 2-D numeric array without NaN (NaN would propagate through the comparisons).
        size: odd window width and height.

    Returns:
        An array of the same shape and dtype as `image`.
    """
    _check_image(image)
    _check_odd_size(size, "size")
    if size == 1:
        return image.copy()
    radius = size // 2
    padded = np.pad(image, radius, mode="edge")
    height, width = image.shape
    wires: List[np.ndarray] = [
        padded[i:i + height, j:j + width] for i in range(size) for j in range(size)
    ]
    for low, high, need_low, need_high in _median_network(size * size):
        a, b = wires[low], wires[high]
        if need_low:
            wires[low] = np.minimum(a, b)
        if need_high:
            wires[high] = np.maximum(a, b)
    return np.ascontiguousarray(wires[(size * size) // 2])


# The fixed table OpenCV's `getGaussianKernel` uses for sigma 0 or less and 1 to 9 taps (read from
# OpenCV 4.10 and 5.1): a published "5x5 Gaussian blur" called with sigma 0 blurs with these, not
# with the Gaussian of the sigma derived from the size (0.37 against 0.375 at the centre for 5).
_OPENCV_SMALL_KERNELS = {
    1: (1.0,),
    3: (0.25, 0.5, 0.25),
    5: (0.0625, 0.25, 0.375, 0.25, 0.0625),
    7: (0.03125, 0.109375, 0.21875, 0.28125, 0.21875, 0.109375, 0.03125),
    9: (4 / 256, 13 / 256, 30 / 256, 51 / 256, 60 / 256, 51 / 256, 30 / 256, 13 / 256, 4 / 256),
}


def gaussian_kernel_1d(size: int, sigma: float = 0.0) -> np.ndarray:
    """Returns a normalised 1-D Gaussian of `size` taps.

    Args:
        size: odd number of taps.
        sigma: standard deviation in pixels; 0 or less picks the kernel OpenCV picks, so that a
            published "5x5 Gaussian blur" (`cv2.GaussianBlur(image, (5, 5), 0)`) means the same
            filter here: its fixed table up to 9 taps (`[1, 4, 6, 4, 1] / 16` for 5) and above
            that the Gaussian of sigma `0.3 * ((size - 1) / 2 - 1) + 0.8`.

    Returns:
        A float64 array of `size` weights summing to 1.
    """
    _check_odd_size(size, "size")
    if sigma <= 0:
        if size in _OPENCV_SMALL_KERNELS:
            return np.asarray(_OPENCV_SMALL_KERNELS[size], dtype=np.float64)
        sigma = 0.3 * ((size - 1) * 0.5 - 1.0) + 0.8
    offsets = np.arange(size) - size // 2
    weights = np.exp(-0.5 * (offsets / sigma) ** 2)
    return weights / weights.sum()


def gaussian_blur(image: np.ndarray, size: int, sigma: float = 0.0) -> np.ndarray:
    """Separable Gaussian blur over a `size`x`size` window, edges mirrored.

    Args:
        image: 2-D numeric array.
        size: odd window width and height.
        sigma: standard deviation in pixels; see `gaussian_kernel_1d` for 0.

    Returns:
        A float32 array (float64 if `image` is float64) of the same shape as `image`.
    """
    _check_image(image)
    weights = gaussian_kernel_1d(size, sigma)
    dtype = np.float64 if image.dtype == np.float64 else np.float32
    radius = size // 2
    if radius >= min(image.shape):
        raise ParameterError(
            f"gaussian_blur: window {size} needs an image larger than {radius} pixels on each side, "
            f"got shape {image.shape}"
        )
    padded = np.pad(image.astype(dtype, copy=False), radius, mode="reflect")
    height, width = image.shape
    # Rows first over the padded height, then columns: two passes of `size` multiply-adds.
    rows = np.zeros((height + 2 * radius, width), dtype=dtype)
    for j, w in enumerate(weights):
        rows += dtype(w) * padded[:, j:j + width]
    out = np.zeros((height, width), dtype=dtype)
    for i, w in enumerate(weights):
        out += dtype(w) * rows[i:i + height, :]
    return out


def bilateral_filter(image: np.ndarray, size: int, sigma_color: float, sigma_space: float) -> np.ndarray:
    """Edge-preserving bilateral filter over a disc of diameter `size`, edges mirrored.

    Each output is the average of the neighbours within `size // 2` pixels, weighted by
    `exp(-d^2 / (2 sigma_space^2)) * exp(-(v - v0)^2 / (2 sigma_color^2))`, where d is the pixel
    distance and v - v0 the difference in value (as OpenCV's `bilateralFilter`).

    Args:
        image: 2-D numeric array without NaN.
        size: odd diameter of the neighbourhood.
        sigma_color: spread of the value weights, in the image's units.
        sigma_space: spread of the distance weights, in pixels.

    Returns:
        A float32 array of the same shape as `image`.
    """
    _check_image(image)
    _check_odd_size(size, "size")
    if sigma_color <= 0 or sigma_space <= 0:
        raise ParameterError(
            f"bilateral_filter: sigma_color and sigma_space must be positive, got {sigma_color}, "
            f"{sigma_space}"
        )
    radius = size // 2
    if radius >= min(image.shape):
        raise ParameterError(
            f"bilateral_filter: diameter {size} is too large for an image of shape {image.shape}"
        )
    centre = image.astype(np.float32)
    padded = np.pad(centre, radius, mode="reflect")
    height, width = image.shape
    total = np.zeros_like(centre)
    weight_sum = np.zeros_like(centre)
    for di in range(-radius, radius + 1):
        for dj in range(-radius, radius + 1):
            distance2 = di * di + dj * dj
            if distance2 > radius * radius:
                continue
            neighbour = padded[radius + di:radius + di + height, radius + dj:radius + dj + width]
            weight = np.float32(np.exp(-0.5 * distance2 / sigma_space**2)) * np.exp(
                (-0.5 / sigma_color**2) * (neighbour - centre) ** 2
            )
            total += weight * neighbour
            weight_sum += weight
    # The centre pixel always has weight 1, so weight_sum never vanishes.
    return total / weight_sum


def box_sum(image: np.ndarray, radius: int) -> np.ndarray:
    """Sum over the (2r+1)x(2r+1) window around each pixel, treating outside pixels as zero.

    Computed with cumulative sums along each axis (an integral image), so the cost does not
    depend on the radius.

    Args:
        image: 2-D numeric array.
        radius: window half-size r >= 0.

    Returns:
        A float64 array of the same shape as `image`.
    """
    _check_image(image)
    if radius < 0:
        raise ParameterError(f"box_sum: radius must be >= 0, got {radius}")
    out = image.astype(np.float64)
    for axis in (0, 1):
        out = _window_sum_1d(out, radius, axis)
    return out


# --------------------------------------------------------------------------------------------
# Helpers.


def _window_sum_1d(values: np.ndarray, radius: int, axis: int) -> np.ndarray:
    """Sum over [i - radius, i + radius] along `axis`, zero outside."""
    length = values.shape[axis]
    pad = [(0, 0), (0, 0)]
    pad[axis] = (1, 0)
    cumulative = np.pad(np.cumsum(values, axis=axis), pad)
    upper = np.minimum(np.arange(length) + radius + 1, length)
    lower = np.maximum(np.arange(length) - radius, 0)
    return np.take(cumulative, upper, axis=axis) - np.take(cumulative, lower, axis=axis)


def _morphology(image: np.ndarray, kernel: np.ndarray, op, border) -> np.ndarray:
    _check_image(image)
    kernel = _check_kernel(kernel)
    kh, kw = kernel.shape
    if kernel.all():
        # A full rectangle is separable: a running extreme along rows, then along columns.
        out = _running_extreme(image, kh, 0, op, border)
        return _running_extreme(out, kw, 1, op, border)
    ry, rx = kh // 2, kw // 2
    padded = np.pad(image, ((ry, ry), (rx, rx)), mode="constant", constant_values=border)
    height, width = image.shape
    out = None
    for i, j in zip(*np.nonzero(kernel)):
        shifted = padded[i:i + height, j:j + width]
        out = shifted.copy() if out is None else op(out, shifted, out=out)
    return out


def _running_extreme(image: np.ndarray, size: int, axis: int, op, border) -> np.ndarray:
    """Max (or min) over a centred window of `size` along `axis`, by doubling.

    Windows of length 1, 2, 4, ... are built from two overlapping windows of half the length,
    and a window of any length from two overlapping power-of-two windows, so a 31-wide window
    costs 5 passes over the image instead of 30.
    """
    if size == 1:
        return image.copy()
    radius = size // 2
    pad = [(0, 0), (0, 0)]
    pad[axis] = (radius, radius)
    values = np.pad(image, pad, mode="constant", constant_values=border)
    n = values.shape[axis]

    def take(a: np.ndarray, start: int, stop: int) -> np.ndarray:
        index = [slice(None), slice(None)]
        index[axis] = slice(start, stop)
        return a[tuple(index)]

    # window[k] = extreme of values[k : k + span].
    span = 1
    window = values
    while span * 2 <= size:
        length = n - 2 * span + 1
        window = op(take(window, 0, length), take(window, span, span + length))
        span *= 2
    out_length = n - size + 1
    return op(take(window, 0, out_length), take(window, size - span, size - span + out_length))


@functools.lru_cache(maxsize=None)
def _median_network(n: int) -> Tuple[Tuple[int, int, bool, bool], ...]:
    """Comparators of Batcher's odd-even merge sort on n wires, pruned to select the median.

    Returns (low, high, need_low, need_high) tuples to apply in order; need_* says whether the
    min (to `low`) or max (to `high`) is used later on the way to wire n // 2.
    """
    size = 1
    while size < n:
        size *= 2
    comparators = []
    p = 1
    while p < size:
        k = p
        while k >= 1:
            for j in range(k % p, size - k, 2 * k):
                for i in range(min(k, size - j - k)):
                    a, b = i + j, i + j + k
                    # Wires >= n hold +inf padding that never moves, so their comparators are no-ops.
                    if (a // (2 * p)) == (b // (2 * p)) and b < n:
                        comparators.append((a, b))
            k //= 2
        p *= 2
    needed = {n // 2}
    kept = []
    for a, b in reversed(comparators):
        need_a, need_b = a in needed, b in needed
        if need_a or need_b:
            kept.append((a, b, need_a, need_b))
            needed.update((a, b))
    return tuple(reversed(kept))


def _lowest(dtype: np.dtype):
    if np.issubdtype(dtype, np.floating):
        return -np.inf
    if dtype == np.bool_:
        return False
    return np.iinfo(dtype).min


def _highest(dtype: np.dtype):
    if np.issubdtype(dtype, np.floating):
        return np.inf
    if dtype == np.bool_:
        return True
    return np.iinfo(dtype).max


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.ndim != 2:
        shape = getattr(image, "shape", type(image).__name__)
        raise ParameterError(f"expected a 2-D image array, got {shape}")



def _check_kernel(kernel: np.ndarray) -> np.ndarray:
    kernel = np.asarray(kernel)
    if kernel.ndim != 2 or kernel.shape[0] % 2 == 0 or kernel.shape[1] % 2 == 0:
        raise ParameterError(f"kernel must be 2-D with odd height and width, got shape {kernel.shape}")
    kernel = kernel.astype(bool)
    if not kernel.any():
        raise ParameterError("kernel must have at least one non-zero element")
    return kernel
