"""Preparing SSMA's second modality from raw sensor data (paper Section 5.2), in NumPy and Pillow.

- `jet`, `gray`: depth or disparity as a 3-channel image (jet colour map, or scaled grey).
- `fill_depth`: fast depth completion (Ku et al., 2018) before encoding.
- `encode_hha`: the HHA encoding (Gupta et al., 2014) from metric depth and camera intrinsics.
- `ndvi`, `evi`, `index_image`: vegetation indices from NIR and RGB (Freiburg Forest).

Modules: `colorize` (jet, grey), `completion` (depth completion), `hha`, `vegetation`, `morphology`
(the NumPy filters the two use), `io` (reading raw inputs, writing PNG and depth files), `batch`
(running a conversion over folders or list files, with the list files for the converter) and
`errors` (`ParameterError`, a bad value given to any of them).

Every image returned is RGB (the order PNG files hold); the TFRecord converter turns PNGs into
the BGR the model takes. `tools/prepare_modality.py` runs these over folders or list files.
"""

from ssma_tf.modalities.completion import fill_depth, units_per_metre
from ssma_tf.modalities.errors import ParameterError
from ssma_tf.modalities.hha import (
    INTRINSICS_PRESETS,
    Intrinsics,
    backproject,
    encode_hha,
    estimate_gravity,
    get_intrinsics,
    read_intrinsics_file,
    surface_normals,
)
from ssma_tf.modalities.io import (
    InputFileError,
    OutputExistsError,
    OutputWriteError,
    read_depth,
    read_image,
    read_nir_rgb,
    sunrgbd_depth_to_mm,
    write_depth,
    write_png,
)
from ssma_tf.modalities.colorize import gray, jet, jet_colormap, normalize
from ssma_tf.modalities.vegetation import evi, index_image, index_to_uint8, ndvi

__all__ = [
    "INTRINSICS_PRESETS",
    "InputFileError",
    "ParameterError",
    "Intrinsics",
    "OutputExistsError",
    "OutputWriteError",
    "backproject",
    "encode_hha",
    "estimate_gravity",
    "evi",
    "fill_depth",
    "get_intrinsics",
    "gray",
    "index_image",
    "index_to_uint8",
    "jet",
    "jet_colormap",
    "ndvi",
    "normalize",
    "read_depth",
    "read_image",
    "read_intrinsics_file",
    "read_nir_rgb",
    "sunrgbd_depth_to_mm",
    "surface_normals",
    "units_per_metre",
    "write_depth",
    "write_png",
]
