"""Reading raw depth/NIR inputs and writing the prepared images, with errors that name the file.

Colour order: Pillow reads and writes image files in RGB order, which is what any image viewer
shows. Every function here takes and returns RGB. The project's TFRecords hold BGR (as the
original OpenCV-based tools did); `tools/convert_to_tfrecords.py` reads the PNGs written here
with Pillow and reverses the channels itself, so nothing in this package ever writes BGR.
"""

import os
import pathlib
from typing import Optional, Tuple, Union

import numpy as np
from PIL import Image, UnidentifiedImageError

from ssma_tf.errors import UserInputError
from ssma_tf.files import atomic_write
from ssma_tf.modalities.errors import ParameterError

PathLike = Union[str, os.PathLike]

# Extensions read as depth maps: 16-bit PNG (ScanNet, NYUv2, Cityscapes disparity, KITTI),
# float TIFF and NumPy arrays.
DEPTH_EXTENSIONS = (".png", ".pgm", ".tif", ".tiff", ".npy")
# Extensions read as ordinary images (NIR, RGB).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".tif", ".tiff")


class InputFileError(UserInputError):
    """An input file cannot be read or has the wrong shape; the message names the file."""


class OutputExistsError(UserInputError, FileExistsError):
    """An output file exists already and overwriting was not asked for."""


class OutputWriteError(OSError):
    """Writing an output failed (a full disk, a refused permission): the output's fault, not the
    input's; the commands exit with status 1 for it (before: reported as the input's failed
    conversion, status 2; helper 226)."""

    @classmethod
    def of(cls, exc: OSError, path: Optional[PathLike]) -> "OutputWriteError":
        """The failure `exc` of writing `path`, its errno and reason kept."""
        return cls(exc.errno, exc.strerror or str(exc), None if path is None else str(path))


def read_depth(path: PathLike) -> np.ndarray:
    """Reads a single-channel depth or disparity map, keeping the file's values and units.

    Args:
        path: a 16-bit (or 8-bit, 32-bit integer, float) single-channel PNG/PGM/TIFF, or a 2-D
            `.npy` array. Zero or NaN marks missing values, as in the datasets.

    Returns:
        A float32 array of shape (H, W) holding the stored values (e.g. millimetres for
        ScanNet/NYUv2 PNGs, 256 x metres for KITTI PNGs).

    Raises:
        InputFileError: if the file is missing, cannot be decoded, or is not single-channel.
    """
    path = pathlib.Path(path)
    if path.suffix.lower() == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            raise InputFileError(f"cannot read depth '{path}': no such file") from None
        except (OSError, ValueError) as exc:
            raise InputFileError(f"cannot read depth '{path}': {exc}") from None
        if array.ndim == 3 and array.shape[-1] == 1:
            array = array[..., 0]
        if array.ndim != 2 or not (
            np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_
        ):
            raise InputFileError(
                f"depth '{path}' must be a 2-D numeric array, got shape {array.shape} "
                f"and dtype {array.dtype}"
            )
        return array.astype(np.float32)
    image = _open_image(path, "depth")
    if image.mode not in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F", "L"):
        # A palette or 1-bit image has one channel too: said what it is (before: "must be a
        # single-channel image ..., got ... with 1 channel(s)"; helper 140).
        kinds = {"P": "a palette (colour-indexed) image: a label or a picture, not depth?",
                 "1": "a 1-bit (black and white) image: a mask, not depth?"}
        found = kinds.get(image.mode, f"Pillow mode {image.mode!r} with {len(image.getbands())} channel(s)")
        raise InputFileError(
            f"depth '{path}' must be a single-channel image (16-bit, 8-bit, 32-bit or float), got "
            f"{found} of {image.size[1]}x{image.size[0]} (height x width)"
        )
    return np.asarray(image).astype(np.float32)


def sunrgbd_depth_to_mm(stored: np.ndarray) -> np.ndarray:
    """Decodes SUN RGB-D depth PNG values to millimetres.

    SUN RGB-D stores depth in its 16-bit PNGs rotated left by 3 bits; its toolbox
    (`read3dPoints.m`) undoes this with `bitor(bitshift(d, -3), bitshift(d, 16 - 3))`, a right
    rotation by 3, giving millimetres.

    Args:
        stored: the values as read by `read_depth` (whole numbers in 0..65535).

    Returns:
        float32 depth in millimetres, 0 where the file holds 0.

    Raises:
        ValueError: if the values are not 16-bit whole numbers.
    """
    stored = np.asarray(stored)
    if stored.size and (
        not np.all(np.isfinite(stored))
        or stored.min() < 0
        or stored.max() > 65535
        or not np.all(np.mod(stored, 1) == 0)
    ):
        raise ParameterError("SUN RGB-D depth must be 16-bit whole numbers (read from its PNG files)")
    values = stored.astype(np.uint32)
    rotated = ((values >> 3) | (values << 13)) & 0xFFFF
    return rotated.astype(np.float32)


def read_image(path: PathLike, what: str = "image") -> np.ndarray:
    """Reads an 8- or 16-bit image as stored, in RGB order for colour images.

    Args:
        path: an image file Pillow can decode.
        what: what the file is for, used in error messages ("NIR", "RGB").

    Returns:
        A uint8 or uint16 array of shape (H, W) (grey) or (H, W, 3) (colour; alpha dropped,
        palettes expanded).

    Raises:
        InputFileError: if the file is missing or cannot be decoded.
    """
    path = pathlib.Path(path)
    image = _open_image(path, what)
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return np.asarray(image).astype(np.uint16)
    if image.mode in ("1", "L", "LA", "I", "F"):
        if image.mode in ("I", "F"):
            array = np.asarray(image)
            if array.min() < 0 or array.max() > 65535:
                raise InputFileError(
                    f"{what} '{path}' holds values outside 0..65535 (mode {image.mode!r})"
                )
            if image.mode == "F" and not np.all(np.mod(array, 1) == 0):
                # Before: cut to whole numbers, so a reflectance image of 0..1 became 0 (NDVI -1).
                raise InputFileError(
                    f"{what} '{path}' holds fractional values (a float image, mode 'F'): store it as 8- or 16-bit "
                    "whole numbers (reflectance x 65535 in a 16-bit PNG, for example)")
            return array.astype(np.uint16)
        return np.asarray(image.convert("L"))
    return np.asarray(image.convert("RGB"))


def write_png(
    path: PathLike, image: np.ndarray, *, overwrite: bool = False, compress_level: int = 6
) -> None:
    """Writes an 8-bit grey/RGB/RGBA or 16-bit grey PNG, creating parent folders: the one PNG writer.

    The file is written under a temporary name and renamed, so an interrupted run never leaves a
    truncated PNG that a later `--skip-existing` run would keep, and a reader never sees half a
    file. The prediction pictures write through it too (`ssma_tf.visualize.save_png`).

    Args:
        path: output file (.png).
        image: uint8 (H, W), (H, W, 1), (H, W, 3) in RGB order or (H, W, 4) RGBA, or uint16 (H, W).
        overwrite: replace an existing file; otherwise an existing file is an error.
        compress_level: zlib level 0..9 (Pillow's default 6); 1 is about twice as fast and
            barely larger for noisy pictures.

    Raises:
        OutputExistsError: if `path` exists and `overwrite` is false.
        ValueError: if the array's dtype or shape cannot be stored, or on a bad compression level.
    """
    path = pathlib.Path(path)
    image = np.asarray(image)
    if image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    colour = image.ndim == 3 and image.shape[2] in (3, 4)
    if not ((image.dtype == np.uint8 and (image.ndim == 2 or colour)) or (image.dtype == np.uint16 and image.ndim == 2)):
        raise ParameterError(
            f"cannot write '{path}': expected uint8 of shape (H, W), (H, W, 3) or (H, W, 4), or uint16 "
            f"of shape (H, W); got {image.dtype} of shape {image.shape}"
        )
    if not isinstance(compress_level, int) or not 0 <= compress_level <= 9:
        raise ParameterError(f"cannot write '{path}': compress_level must be an integer in 0..9, got {compress_level!r}")
    pil_image = Image.fromarray(np.ascontiguousarray(image))
    _atomic_write(path, lambda f: pil_image.save(f, format="PNG", compress_level=compress_level), overwrite)


def write_depth(path: PathLike, depth: np.ndarray, *, overwrite: bool = False,
                units_per_metre: Optional[float] = None) -> None:
    """Writes a depth map as a 16-bit PNG (values rounded) or a float32 `.npy`, by extension.

    Args:
        path: output file, `.png` or `.npy`.
        depth: (H, W) depth in the units it should be stored in (e.g. millimetres for PNG).
        overwrite: replace an existing file; otherwise an existing file is an error.
        units_per_metre: the units of `depth` (`completion.units_per_metre`), when known: a PNG
            that would round a measured depth by more than half a centimetre is refused (depth
            in metres became whole metres, and depth under 0.5 m "missing", silently).

    Raises:
        OutputExistsError: if `path` exists and `overwrite` is false.
        ValueError: for another extension, values that do not fit a 16-bit PNG, or that it
            would round by more than half a centimetre.
    """
    path = pathlib.Path(path)
    depth = np.asarray(depth)
    if depth.ndim != 2:
        raise ParameterError(f"cannot write depth '{path}': expected shape (H, W), got {depth.shape}")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        array = depth.astype(np.float32)
        _atomic_write(path, lambda f: np.save(f, array, allow_pickle=False), overwrite)
        return
    if suffix != ".png":
        raise ParameterError(f"cannot write depth '{path}': use a .png or .npy file name")
    values = np.nan_to_num(depth.astype(np.float64), nan=0.0)
    if values.min() < 0 or values.max() >= 65535.5:  # 65535.5 rounds to 65536, 0 in 16 bits
        raise ParameterError(
            f"cannot write depth '{path}' as 16-bit PNG: values span {values.min():g}..{values.max():g}, "
            "outside 0..65535 (store millimetres, or write .npy)"
        )
    rounded = np.floor(values + 0.5)
    if units_per_metre is not None and values.size:
        error = float(np.max(np.abs(rounded - values))) / units_per_metre
        if error > 0.005 + 1e-9:
            raise ParameterError(
                f"cannot write depth '{path}' as 16-bit PNG: it holds whole units, and at {units_per_metre:g} "
                f"unit{'s' * (units_per_metre != 1)} a metre this depth would be rounded by up to {error * 1000:.0f} mm"
                + (", its values under 0.5 made missing" if float(values[values > 0].min(initial=1.0)) < 0.5 else "")
                + "; write .npy (--format npy), or give the depth in millimetres")
    write_png(path, rounded.astype(np.uint16), overwrite=overwrite)


def read_nir_rgb(
    nir_path: PathLike,
    rgb_path: PathLike,
    *,
    nir_channel: int = 0,
    max_value: Optional[float] = None,
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reads a NIR image and its registered RGB image as NIR, red and blue reflectances.

    Args:
        nir_path: single-channel NIR image, or a colour one whose `nir_channel` holds NIR (e.g.
            a false-colour NIR image).
        rgb_path: the RGB image of the same view and size.
        nir_channel: channel (0, 1 or 2, in the file's RGB order) of a colour NIR image.
        max_value: stored value meaning reflectance 1; by default 255 for 8-bit and 65535 for
            16-bit files (each file's own bit depth).

    Returns:
        (nir, red, blue) float64 arrays of shape (H, W), values divided by `max_value`.

    Raises:
        InputFileError: if a file cannot be read, the RGB image is not colour, the sizes differ, or
            a band used holds values above `max_value`.
    """
    nir_image = read_image(nir_path, "NIR")
    rgb_image = read_image(rgb_path, "RGB")
    if rgb_image.ndim != 3:
        raise InputFileError(f"RGB image '{rgb_path}' has a single channel; red and blue are needed")
    if nir_image.ndim == 3:
        if nir_channel not in (0, 1, 2):
            raise InputFileError(f"NIR channel must be 0, 1 or 2 for '{nir_path}', got {nir_channel}")
        nir_band = nir_image[..., nir_channel]
    else:
        nir_band = nir_image
    if nir_band.shape != rgb_image.shape[:2]:
        raise InputFileError(
            f"NIR image '{nir_path}' is {nir_band.shape[0]}x{nir_band.shape[1]} but RGB image "
            f"'{rgb_path}' is {rgb_image.shape[0]}x{rgb_image.shape[1]} (height x width)"
        )
    if max_value is not None and not max_value > 0:
        raise ParameterError(f"max_value must be positive, got {max_value!r}")
    if max_value is not None and nir_band.dtype != rgb_image.dtype:
        # One value for both: no setting gave the right index (a 12-bit NIR in a 16-bit PNG with
        # an 8-bit RGB image: divided by 65535 or by 4095 for both), silently.
        bits = {np.dtype(np.uint8): "8", np.dtype(np.uint16): "16"}
        raise InputFileError(
            f"max_value {max_value:g} would apply to the NIR image '{nir_path}' ({bits[nir_band.dtype]}-bit) and the "
            f"RGB image '{rgb_path}' ({bits[rgb_image.dtype]}-bit) alike; store both at one bit depth, or leave "
            "max_value out (each file's own range)")

    if max_value is not None:
        # A value above the one meaning reflectance 1 says max_value is not the files' (before:
        # EVI blamed 8-bit values not divided by 255, a failure of the NIR file; helper 279).
        for what, band in ((f"NIR image '{nir_path}'", nir_band), (f"the red of RGB image '{rgb_path}'",
                           rgb_image[..., 0]), (f"the blue of RGB image '{rgb_path}'", rgb_image[..., 2])):
            if band.size and float(band.max()) > max_value:
                raise InputFileError(
                    f"{what} reaches {float(band.max()):g}, above max_value (--max-value) {max_value:g}, the stored "
                    "value meaning reflectance 1: give the files' full-scale value (e.g. 4095 for 12-bit data), or "
                    "leave it out (255 for 8-bit files, 65535 for 16-bit)")

    def reflectance(band: np.ndarray) -> np.ndarray:
        top = max_value if max_value is not None else float(np.iinfo(band.dtype).max)
        return band.astype(np.float64) / top

    return reflectance(nir_band), reflectance(rgb_image[..., 0]), reflectance(rgb_image[..., 2])


# --------------------------------------------------------------------------------------------
# Helpers.


def _open_image(path: pathlib.Path, what: str) -> Image.Image:
    try:
        image = Image.open(path)
        # Image.open only reads the header; decoding errors (truncated files) show up in load().
        image.load()
    except FileNotFoundError:
        raise InputFileError(f"cannot read {what} '{path}': no such file") from None
    except IsADirectoryError:
        raise InputFileError(f"cannot read {what} '{path}': it is a folder") from None
    except UnidentifiedImageError:
        raise InputFileError(f"cannot read {what} '{path}': not an image Pillow can decode") from None
    except Image.DecompressionBombError as exc:  # before: a traceback naming no file
        raise InputFileError(f"cannot read {what} '{path}': {exc}; tile or resize it") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise InputFileError(f"cannot read {what} '{path}': {exc}") from None
    return image


def _atomic_write(path: pathlib.Path, write, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise OutputExistsError(f"'{path}' exists already (pass --overwrite to replace it)")
    try:
        with atomic_write(path, "wb") as f:
            write(f)
    except OSError as exc:
        if exc.errno is None:
            raise  # Pillow's "cannot write mode ... as PNG": what was to be written, not the disk
        raise OutputWriteError.of(exc, exc.filename) from exc
