"""Vegetation indices from near-infrared and visible bands (the Freiburg Forest modalities).

SSMA's Freiburg Forest experiments (Section 5.2) use two indices computed from the NIR and RGB
images as second modalities:

- NDVI = (NIR - Red) / (NIR + Red) (Rouse et al., 1974), in -1..1 for non-negative inputs and
  independent of the inputs' scale.
- EVI = 2.5 (NIR - Red) / (NIR + 6 Red - 7.5 Blue + 1) (Huete et al., 2002), whose constants
  assume surface reflectances in 0..1: divide 8-bit values by 255 (16-bit by 65535) first.
  Its value is not bounded; for vegetation it lies in about -1..1.

`index_to_uint8` maps an index to the 0..255 of an image: linearly from a stated range, -1..1 by
default (so -1 -> 0, 0 -> 128, 1 -> 255), values outside clipped.
"""

from typing import Tuple

import numpy as np

from ssma_tf.modalities.colorize import jet_colormap
from ssma_tf.modalities.errors import ParameterError


def ndvi(nir: np.ndarray, red: np.ndarray) -> np.ndarray:
    """Normalised difference vegetation index, (NIR - Red) / (NIR + Red).

    Args:
        nir: near-infrared band, non-negative (reflectance or raw values: the ratio does not
            depend on the scale as long as both bands share it).
        red: red band, same shape and scale as `nir`.

    Returns:
        float32 array of the inputs' shape in -1..1; 0 where NIR + Red = 0 (no signal).

    Raises:
        ValueError: for different shapes or negative values.
    """
    nir, red = _bands(nir=nir, red=red)
    total = nir + red
    index = (nir - red) / np.where(total > 0, total, 1.0)
    return np.where(total > 0, index, 0.0).astype(np.float32)


def evi(
    nir: np.ndarray,
    red: np.ndarray,
    blue: np.ndarray,
    *,
    gain: float = 2.5,
    red_coefficient: float = 6.0,
    blue_coefficient: float = 7.5,
    canopy_background: float = 1.0,
) -> np.ndarray:
    """Enhanced vegetation index, G (NIR - Red) / (NIR + C1 Red - C2 Blue + L).

    The defaults are the standard MODIS coefficients: G = 2.5, C1 = 6, C2 = 7.5, L = 1.

    Args:
        nir: near-infrared reflectance in 0..1.
        red: red reflectance in 0..1, same shape.
        blue: blue reflectance in 0..1, same shape.
        gain: G.
        red_coefficient: C1.
        blue_coefficient: C2.
        canopy_background: L.

    Returns:
        float32 array of the inputs' shape (unbounded; about -1..1 for natural scenes); 0 where
        the denominator is 0.

    Raises:
        ValueError: for different shapes, or values outside 0..1 (e.g. 8-bit values not divided
            by 255), for which the coefficients are meaningless.
    """
    nir, red, blue = _bands(nir=nir, red=red, blue=blue)
    for name, band in (("nir", nir), ("red", red), ("blue", blue)):
        if band.size and band.max() > 1.0 + 1e-6:
            raise ParameterError(
                f"evi expects reflectances in 0..1, but {name} reaches {band.max():g}; divide "
                "8-bit values by 255 (16-bit by 65535) first"
            )
    denominator = nir + red_coefficient * red - blue_coefficient * blue + canopy_background
    nonzero = denominator != 0
    index = gain * (nir - red) / np.where(nonzero, denominator, 1.0)
    return np.where(nonzero, index, 0.0).astype(np.float32)


def index_to_uint8(index: np.ndarray, value_range: Tuple[float, float] = (-1.0, 1.0)) -> np.ndarray:
    """Maps an index linearly from `value_range` to 0..255, clipping values outside.

    Args:
        index: array of index values; NaN counts as 0, infinities as the ends of the range.
        value_range: (low, high) mapped to 0 and 255; -1..1 by default, NDVI's full range.

    Returns:
        uint8 array of the same shape, rounded to nearest.

    Raises:
        ValueError: if low >= high.
    """
    low, high = (float(v) for v in value_range)
    if not low < high:
        raise ParameterError(f"value_range must be (low, high) with low < high, got {tuple(value_range)}")
    values = np.nan_to_num(np.asarray(index, dtype=np.float64), nan=0.0, posinf=high, neginf=low)
    scaled = (np.clip(values, low, high) - low) / (high - low) * 255.0
    return np.floor(scaled + 0.5).astype(np.uint8)


def index_image(
    index: np.ndarray, value_range: Tuple[float, float] = (-1.0, 1.0), colormap: str = "gray"
) -> np.ndarray:
    """Turns an index into a 3-channel image for the network.

    Args:
        index: (H, W) index values.
        value_range: (low, high) mapped to the ends of the image range (see `index_to_uint8`).
        colormap: "gray" (the 0..255 level in all three channels) or "jet" (low blue, high red).

    Returns:
        uint8 (H, W, 3) in RGB order.

    Raises:
        ValueError: for a bad range, colour map or shape.
    """
    index = np.asarray(index)
    if index.ndim != 2:
        raise ParameterError(f"expected a 2-D index map, got shape {index.shape}")
    level = index_to_uint8(index, value_range)
    if colormap == "gray":
        return np.repeat(level[..., None], 3, axis=-1)
    if colormap == "jet":
        return np.floor(jet_colormap(level / np.float32(255.0)) * 255.0 + 0.5).astype(np.uint8)
    raise ParameterError(f"colormap must be 'gray' or 'jet', got {colormap!r}")


def _bands(**bands: np.ndarray) -> Tuple[np.ndarray, ...]:
    arrays = {name: np.asarray(band, dtype=np.float64) for name, band in bands.items()}
    shapes = {name: a.shape for name, a in arrays.items()}
    if len(set(shapes.values())) != 1:
        raise ParameterError(f"bands must have the same shape, got {shapes}")
    for name, a in arrays.items():
        if a.size and (not np.all(np.isfinite(a)) or a.min() < 0):
            raise ParameterError(f"band {name} must hold finite non-negative values")
    return tuple(arrays.values())
