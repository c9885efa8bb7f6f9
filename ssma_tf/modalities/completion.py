"""Fast depth completion with classical image processing (Ku, Harakeh, Waslander, CRV 2018).

"In Defense of Classical Image Processing: Fast Depth Completion on the CPU" fills sparse or
holey depth with a fixed sequence of morphological operations. SSMA's ScanNet depth was
hole-filled this way before being scaled to 0..255. The steps (Section III of Ku et al.):

1. Inversion: valid depth d becomes `max_depth - d` (empty pixels stay 0), so that the maximum
   taken by dilation prefers *near* surfaces and foreground edges are not eaten by background.
2. Dilation with a custom kernel (5x5 diamond).
3. Small hole closure: closing with a 5x5 full kernel.
4. Small hole fill: empty pixels take the value of a 7x7 full-kernel dilation.
5. Extension to the top of the frame: in each column the top-most value is repeated upwards
   (LiDAR/sensor coverage ends below the top edge).
6. Large hole fill: remaining empty pixels take a 31x31 full-kernel dilation.
7. Median blur (5x5) and Gaussian blur (5x5) of the filled pixels, removing outliers and
   smoothing; the authors' fast variant uses a bilateral filter instead of the Gaussian.
8. Re-inversion to depth.

Depth may be in metres (KITTI-style, the paper's 100 m maximum) or millimetres (ScanNet, NYUv2,
SUN RGB-D 16-bit PNGs): the `units` argument converts to metres and back, so the published
parameters keep their meaning.
"""

from typing import Optional, Union

import numpy as np

from ssma_tf.modalities import morphology
from ssma_tf.modalities.errors import ParameterError

# Values per metre for the `units` names.
UNITS_PER_METRE = {"m": 1.0, "cm": 100.0, "mm": 1000.0}
# The inversion constant of the completion in metres (the paper's): depth at or beyond it is missing.
MAX_DEPTH = 100.0

BLUR_TYPES = ("gaussian", "bilateral", "none")

# A pixel of inverted depth counts as filled above this many metres, the authors' threshold; it
# keeps values a dilation spread from float round-off away from being taken for depth.
FILLED_THRESHOLD_M = 0.1


def units_per_metre(units: Union[str, float]) -> float:
    """Returns how many stored units make one metre.

    Args:
        units: "m", "cm", "mm", or a positive number of units per metre (256 for KITTI's
            16-bit depth PNGs, which store metres x 256).

    Returns:
        The scale as a float.

    Raises:
        ValueError: for an unknown name or a non-positive number.
    """
    if isinstance(units, str):
        key = units.strip().lower()
        if key in UNITS_PER_METRE:
            return UNITS_PER_METRE[key]
        try:
            units = float(key)
        except ValueError:
            raise ParameterError(
                f"units must be one of {sorted(UNITS_PER_METRE)} or a number of units per metre, "
                f"got {units!r}"
            ) from None
    scale = float(units)
    if not np.isfinite(scale) or scale <= 0:
        raise ParameterError(f"units per metre must be a positive number, got {units!r}")
    return scale


def fill_depth(
    depth: np.ndarray,
    *,
    units: Union[str, float] = "m",
    max_depth: float = MAX_DEPTH,
    dilation_kernel: np.ndarray = morphology.DIAMOND_KERNEL_5,
    closing_kernel: np.ndarray = morphology.FULL_KERNEL_5,
    hole_fill_kernel: np.ndarray = morphology.FULL_KERNEL_7,
    extend_to_top: bool = True,
    large_hole_fill_kernel: Optional[np.ndarray] = morphology.FULL_KERNEL_31,
    median_size: int = 5,
    blur: str = "gaussian",
    gaussian_size: int = 5,
    bilateral_size: int = 5,
    bilateral_sigma_color: float = 1.5,
    bilateral_sigma_space: float = 2.0,
    keep_valid: bool = False,
) -> np.ndarray:
    """Fills the holes of a depth map (Ku et al., 2018); the defaults are the published ones.

    Args:
        depth: (H, W) depth; 0, non-finite values and depth of 0.1 m or less are missing.
        units: units of `depth` and of the result: "m", "cm", "mm" or units per metre
            (see `units_per_metre`).
        max_depth: inversion constant in metres (100 m in the paper). Depths within 0.1 m of it or
            beyond it cannot be told from empty pixels after inversion and count as missing.
        dilation_kernel: kernel of the first dilation (step 2; 5x5 diamond).
        closing_kernel: kernel of the small hole closure (step 3; 5x5 full).
        hole_fill_kernel: kernel of the small hole fill (step 4; 7x7 full).
        extend_to_top: whether to repeat each column's top-most value upwards (step 5).
        large_hole_fill_kernel: kernel of the large hole fill (step 6; 31x31 full), or None to
            leave large holes empty.
        median_size: median window (step 7; 5), or 1 to skip.
        blur: "gaussian" (the paper), "bilateral" (the authors' fast variant) or "none".
        gaussian_size: Gaussian window (5; the kernel OpenCV uses for sigma 0, `[1, 4, 6, 4, 1] / 16`).
        bilateral_size: bilateral filter diameter in pixels (5).
        bilateral_sigma_color: bilateral value spread in metres of inverted depth (1.5).
        bilateral_sigma_space: bilateral distance spread in pixels (2.0).
        keep_valid: return the measured depth wherever it was valid and filled values only in
            the holes. The published pipeline (False) replaces every pixel: right for sparse
            LiDAR, but on dense depth (Kinect, ScanNet) its first dilation moves depth edges by
            up to two pixels towards the background.

    Returns:
        float32 (H, W) depth in the units of `depth`; pixels still empty (only possible without
        the large hole fill, or for an input without any valid pixel) are 0.

    Raises:
        ValueError: if `depth` is not 2-D or an argument is out of range.
    """
    depth = np.asarray(depth)
    if depth.ndim != 2:
        raise ParameterError(f"fill_depth expects a 2-D depth map, got shape {depth.shape}")
    if blur not in BLUR_TYPES:
        raise ParameterError(f"blur must be one of {BLUR_TYPES}, got {blur!r}")
    if not max_depth > FILLED_THRESHOLD_M:
        raise ParameterError(f"max_depth must be above {FILLED_THRESHOLD_M} m, got {max_depth!r}")
    scale = units_per_metre(units)

    metres = depth.astype(np.float64) / scale
    max_depth = float(max_depth)
    # Depth of 0.1 m or less is missing, as in the authors' inversion (`depth > 0.1`): before, 0.05 m was
    # inverted to 99.95 m and spread over its neighbourhood as the nearest surface of the image.
    valid = np.isfinite(metres) & (metres > FILLED_THRESHOLD_M) & (metres < max_depth - FILLED_THRESHOLD_M)
    # Step 1: inversion. Empty pixels are 0, below every inverted depth.
    inverted = np.where(valid, max_depth - metres, 0.0).astype(np.float32)

    # Steps 2 and 3: dilation with the custom kernel, then closing of small holes.
    inverted = morphology.dilate(inverted, dilation_kernel)
    inverted = morphology.closing(inverted, closing_kernel)

    # Step 4: small holes take the dilated value; filled pixels keep theirs.
    inverted = _fill_empty(inverted, morphology.dilate(inverted, hole_fill_kernel))

    # Step 5: extension to the top of the frame.
    if extend_to_top:
        inverted = _extend_to_top(inverted)

    # Step 6: large holes.
    if large_hole_fill_kernel is not None:
        inverted = _fill_empty(inverted, morphology.dilate(inverted, large_hole_fill_kernel))

    # Step 7: smoothing of the filled pixels only, so that holes left empty stay empty and the
    # blur does not drag values towards the 0 of empty pixels beyond their borders.
    filled = inverted > FILLED_THRESHOLD_M
    if median_size > 1:
        inverted = np.where(filled, morphology.median_filter(inverted, median_size), inverted)
    if blur == "gaussian":
        inverted = np.where(filled, morphology.gaussian_blur(inverted, gaussian_size), inverted)
    elif blur == "bilateral":
        smoothed = morphology.bilateral_filter(
            inverted, bilateral_size, bilateral_sigma_color, bilateral_sigma_space
        )
        inverted = np.where(filled, smoothed, inverted)

    # Step 8: back to depth in the caller's units.
    filled = inverted > FILLED_THRESHOLD_M
    out = np.where(filled, (max_depth - inverted.astype(np.float64)) * scale, 0.0)
    if keep_valid:
        out = np.where(valid, metres * scale, out)
    return out.astype(np.float32)


def _fill_empty(inverted: np.ndarray, candidate: np.ndarray) -> np.ndarray:
    empty = inverted <= FILLED_THRESHOLD_M
    return np.where(empty, candidate, inverted)


def _extend_to_top(inverted: np.ndarray) -> np.ndarray:
    """Repeats the top-most filled value of each column in the rows above it."""
    filled = inverted > FILLED_THRESHOLD_M
    has_value = filled.any(axis=0)
    top_row = np.argmax(filled, axis=0)  # first filled row; 0 for columns without any
    columns = np.arange(inverted.shape[1])
    top_value = inverted[top_row, columns]
    above = np.arange(inverted.shape[0])[:, None] < top_row[None, :]
    return np.where(above & has_value[None, :], top_value[None, :], inverted)
