"""Depth or disparity as a 3-channel image: the jet colour map and a scaled grey image.

SSMA's depth experts take 3-channel images (Section 5.2 of the paper): depth colourised with the
jet colour map (Cityscapes from stereo disparity, Synthia), or depth scaled to 0..255 (ScanNet:
millimetres divided by 7000, scaled to 0..255 and clipped).

Colour order: every function here returns RGB, the order in which PNG files store colour and
image viewers show it. Write the result with Pillow (`ssma_tf.modalities.io.write_png`); the
TFRecord converter turns it into the BGR the model expects. For BGR in memory, use
`image[..., ::-1]`.

Missing values: 0 and non-finite values (NaN, inf) are missing, as in the raw datasets
(Kinect/ScanNet depth and Cityscapes disparity use 0 for "no measurement").
"""

from typing import Optional, Sequence, Tuple

import numpy as np

from ssma_tf.modalities.errors import ParameterError


def normalize(
    values: np.ndarray,
    *,
    vmin: Optional[float] = 0.0,
    vmax: Optional[float] = None,
    percentiles: Optional[Tuple[float, float]] = None,
    invert: bool = False,
) -> Tuple[np.ndarray, np.ndarray]:
    """Maps depth/disparity linearly to 0..1 and reports which pixels are valid.

    The range is either fixed (`vmin`, `vmax`, the same for every image of a dataset, e.g.
    0..7000 mm) or taken per image from `percentiles` of the valid values (e.g. (1, 99), robust
    to outliers but not comparable across images).

    Args:
        values: (H, W) depth or disparity; 0 and non-finite values are missing, and so are
            values below 0 (stereo's invalid marks), as the depth completion and HHA take them,
            unless a fixed range starts below 0 (`vmin < 0`: a signed quantity).
        vmin: value mapped to 0 when `percentiles` is None.
        vmax: value mapped to 1 when `percentiles` is None; required in that case.
        percentiles: (low, high) percentiles in 0..100 of the valid values that map to 0 and 1;
            overrides `vmin`/`vmax`.
        invert: map `vmax` to 0 and `vmin` to 1 (e.g. so that near depth gets the high end, as
            disparity does).

    Returns:
        (t, valid): float32 (H, W) in 0..1, values outside the range clipped and missing pixels
        0; and the boolean mask of valid pixels. If a per-image range is empty (a constant
        image), every valid pixel maps to 0 (1 when inverted).

    Raises:
        ValueError: if `values` is not 2-D, no range is given, or `vmin >= vmax`.
    """
    values = np.asarray(values)
    if values.ndim != 2:
        raise ParameterError(f"expected a 2-D depth/disparity map, got shape {values.shape}")
    values = values.astype(np.float32, copy=False)
    valid = np.isfinite(values) & (values != 0)
    if percentiles is not None or vmin is None or vmin >= 0:
        # Before: -1 (a stereo matcher's "no match") was coloured as the near end of the scale.
        valid &= values > 0
    if percentiles is not None:
        low_pct, high_pct = (float(p) for p in percentiles)
        if not 0.0 <= low_pct < high_pct <= 100.0:
            raise ParameterError(
                f"percentiles must satisfy 0 <= low < high <= 100, got {tuple(percentiles)}"
            )
        if valid.any():
            low, high = np.percentile(values[valid], [low_pct, high_pct])
        else:
            low, high = 0.0, 1.0
    else:
        if vmax is None:
            raise ParameterError("give either vmax (a fixed range) or percentiles (a per-image range)")
        low = 0.0 if vmin is None else float(vmin)
        high = float(vmax)
        if not low < high:
            raise ParameterError(f"vmin must be below vmax, got vmin={low:g}, vmax={high:g}")
    span = float(high) - float(low)
    if span > 0:
        t = (values - np.float32(low)) / np.float32(span)
    else:
        t = np.zeros_like(values)
    t = np.clip(np.where(valid, t, 0.0), 0.0, 1.0).astype(np.float32)
    if invert:
        t = np.where(valid, 1.0 - t, 0.0).astype(np.float32)
    return t, valid


def jet_colormap(t: np.ndarray) -> np.ndarray:
    """The jet colour map: dark blue (0) - blue - cyan - yellow - red - dark red (1).

    The classic piecewise-linear definition (as MATLAB's `jet` and OpenCV's COLORMAP_JET):
    each channel is `clip(1.5 - |4 t - c|, 0, 1)` with c = 3 for red, 2 for green, 1 for blue.
    Hue falls monotonically from 240 degrees (blue) to 0 (red) as t grows.

    Args:
        t: array of values in 0..1 (clipped otherwise).

    Returns:
        float32 array of shape t.shape + (3,), RGB in 0..1.
    """
    t = np.clip(np.asarray(t, dtype=np.float32), 0.0, 1.0)[..., None]
    centres = np.array([3.0, 2.0, 1.0], dtype=np.float32)
    return np.clip(1.5 - np.abs(4.0 * t - centres), 0.0, 1.0)


def jet(
    values: np.ndarray,
    *,
    vmin: Optional[float] = 0.0,
    vmax: Optional[float] = None,
    percentiles: Optional[Tuple[float, float]] = None,
    invert: bool = False,
    missing_color: Sequence[int] = (0, 0, 0),
) -> np.ndarray:
    """Colourises depth or disparity with the jet colour map.

    Without `invert`, low values are blue and high values red: for disparity (Cityscapes) near
    objects are red; for depth, far ones are, unless `invert` is set.

    Args:
        values: (H, W) depth or disparity; missing values as in `normalize`.
        vmin: value shown dark blue (see `normalize`).
        vmax: value shown dark red; required unless `percentiles` is given.
        percentiles: per-image (low, high) percentiles instead of a fixed range.
        invert: swap the ends of the range.
        missing_color: RGB colour (0..255) of missing pixels; black by default.

    Returns:
        uint8 array of shape (H, W, 3) in RGB order.

    Raises:
        ValueError: for a bad range or `missing_color`.
    """
    color = _check_color(missing_color)
    t, valid = normalize(values, vmin=vmin, vmax=vmax, percentiles=percentiles, invert=invert)
    rgb = np.floor(jet_colormap(t) * 255.0 + 0.5).astype(np.uint8)
    rgb[~valid] = color
    return rgb


def gray(
    values: np.ndarray,
    *,
    vmin: Optional[float] = 0.0,
    vmax: Optional[float] = None,
    percentiles: Optional[Tuple[float, float]] = None,
    invert: bool = False,
    missing_value: int = 0,
) -> np.ndarray:
    """Scales depth or disparity linearly to 0..255, clipped, repeated in three channels.

    `gray(depth_mm, vmax=7000)` is the ScanNet recipe of the original SSMA release: depth in
    millimetres divided by 7000, scaled to 0..255 and clipped (values rounded to nearest here).

    Args:
        values: (H, W) depth or disparity; missing values as in `normalize`.
        vmin: value mapped to 0 (see `normalize`).
        vmax: value mapped to 255; required unless `percentiles` is given.
        percentiles: per-image (low, high) percentiles instead of a fixed range.
        invert: swap the ends of the range.
        missing_value: grey level (0..255) of missing pixels; a measured value that would get
            it gets the next level towards the middle (1 for the default 0).

    Returns:
        uint8 array of shape (H, W, 3), the three channels equal.

    Raises:
        ValueError: for a bad range or `missing_value`.
    """
    if not 0 <= int(missing_value) <= 255 or int(missing_value) != missing_value:
        raise ParameterError(f"missing_value must be an integer in 0..255, got {missing_value!r}")
    t, valid = normalize(values, vmin=vmin, vmax=vmax, percentiles=percentiles, invert=invert)
    level = np.floor(t * 255.0 + 0.5).astype(np.uint8)
    # A measured value never takes the grey of missing ones (before: with `invert` every surface
    # beyond `vmax`, and anything at or below `vmin`, came out as black as a hole, which the network
    # and DepthMix's decoding then took for one; helper 140): it moves one level towards the middle.
    nudge = 1 if missing_value < 128 else -1
    level[valid & (level == int(missing_value))] = int(missing_value) + nudge
    level[~valid] = int(missing_value)
    return np.repeat(level[..., None], 3, axis=-1)


def _check_color(color: Sequence[int]) -> Tuple[int, int, int]:
    values = tuple(color)
    if len(values) != 3 or any(int(c) != c or not 0 <= c <= 255 for c in values):
        raise ParameterError(f"a colour must be three integers in 0..255 (R, G, B), got {color!r}")
    return tuple(int(c) for c in values)
