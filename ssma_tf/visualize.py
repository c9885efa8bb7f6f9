"""Pictures of labels, predictions and SSMA gates (numpy and Pillow only).

These helpers turn class-id maps into palette colours, blend them over an image, render a float
map in 0..1 (such as the mean sigmoid gate of an SSMA block, Valada et al., IJCV 2019, Sec. 3.3)
as a jet heat map, draw the improvement/error map of two models' predictions (Figure 18), lay
pictures out in a titled grid with a class legend (the demo's comparison), and write PNG files
atomically so that a reader never sees half a file.
"""

from __future__ import annotations

import functools
import os
import warnings
from typing import Callable, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image

from ssma_tf.constants import IGNORE_ID
from ssma_tf.modalities.colorize import jet_colormap
from ssma_tf.modalities.io import write_png

ArrayLike = Union[np.ndarray, Sequence]


def apply_jet(values: np.ndarray) -> np.ndarray:
    """Maps values in 0..1 to the jet colour map (0 = dark blue, 1 = dark red), as uint8.

    Uses the project's one definition of jet (`ssma_tf.modalities.jet_colormap`) with the same
    rounding as `ssma_tf.modalities.jet`, so a value gives the same colour everywhere in the
    project (this matters: every jet level of a 0..255 grid falls exactly on a half).
    Values outside 0..1 are clipped.

    Args:
        values: float array of any shape.

    Returns:
        uint8 array of shape `values.shape + (3,)`, RGB order.
    """
    return np.floor(jet_colormap(values) * 255.0 + 0.5).astype(np.uint8)


def as_palette(palette: ArrayLike) -> np.ndarray:
    """Checks a palette and returns it as a (C, 3) uint8 array.

    Raises:
        ValueError: not (C, 3), not integers, or values outside 0..255.
    """
    array = np.asarray(palette)
    if array.ndim != 2 or array.shape[1] != 3 or array.shape[0] == 0:
        raise ValueError(f"palette must have shape (num_classes, 3), got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"palette must hold integers 0..255, got dtype {array.dtype}")
    if array.min() < 0 or array.max() > 255:
        raise ValueError(
            f"palette values must be in 0..255, got min {array.min()} and max {array.max()}"
        )
    return array.astype(np.uint8)


def default_palette(num_classes: int) -> np.ndarray:
    """The colours of a model without a dataset palette: void black, then a bit-interleaved ramp.

    Each class id's bits are spread over the high bits of red, green and blue in turn, so that
    neighbouring ids get very different colours (the scheme of the PASCAL VOC label images).
    Prediction pictures and TensorBoard previews both use it, so a class looks the same in both.

    Returns:
        (num_classes, 3) uint8 RGB colours.
    """
    palette = np.zeros((num_classes, 3), np.uint8)
    for class_id in range(1, num_classes):
        value, colour, shift = class_id, [0, 0, 0], 7
        while value and shift >= 0:
            for channel in range(3):
                colour[channel] |= ((value >> channel) & 1) << shift
            value >>= 3
            shift -= 1
        palette[class_id] = colour
    return palette


def colorize(label_ids: np.ndarray, palette: ArrayLike) -> np.ndarray:
    """Paints a class-id map with a palette.

    Args:
        label_ids: (H, W) or (H, W, 1) non-negative integer class ids.
        palette: (C, 3) RGB colours, one per class id (e.g. `DatasetInfo.palette`).

    Returns:
        (H, W, 3) uint8 RGB image.

    Raises:
        ValueError: if the ids are not a 2-D integer map or an id has no colour in the palette.
    """
    colours = as_palette(palette)
    ids = np.asarray(label_ids)
    if ids.ndim == 3 and ids.shape[-1] == 1:
        ids = ids[..., 0]
    if ids.ndim != 2:
        raise ValueError(f"label_ids must have shape (H, W) or (H, W, 1), got shape {ids.shape}")
    if not (np.issubdtype(ids.dtype, np.integer) or ids.dtype == np.bool_):
        raise ValueError(f"label_ids must be integers, got dtype {ids.dtype}")
    if ids.size:
        low, high = int(ids.min()), int(ids.max())
        if low < 0 or high >= len(colours):
            bad = low if low < 0 else high
            raise ValueError(
                f"label id {bad} has no colour: the palette has {len(colours)} classes "
                f"(ids 0..{len(colours) - 1})"
            )
    # As integers: a boolean map indexed the palette as a selection mask (a 1-D array, or an
    # IndexError naming neither; helper 169).
    return colours[ids.astype(np.intp)]


def _as_rgb(image: np.ndarray, name: str) -> np.ndarray:
    """Returns an (H, W, 3) float32 view of an (H, W), (H, W, 1) or (H, W, 3) uint8 image."""
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise ValueError(f"{name} must be uint8, got dtype {array.dtype}")
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[-1] not in (1, 3):
        raise ValueError(f"{name} must have shape (H, W), (H, W, 1) or (H, W, 3), got {array.shape}")
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    return array.astype(np.float32)


def overlay(
    image_rgb: np.ndarray,
    colour_mask: np.ndarray,
    alpha: float = 0.5,
    where: Optional[np.ndarray] = None,
) -> np.ndarray:
    """Blends a colour mask over an image: `(1 - alpha) * image + alpha * mask`.

    Args:
        image_rgb: (H, W, 3) uint8 image (a grey (H, W) image is repeated over 3 channels).
        colour_mask: (H, W, 3) uint8 colours, e.g. the output of `colorize`.
        alpha: weight of the mask, in 0..1.
        where: optional (H, W) boolean map; outside it the image is left as it is (for instance
            to keep void pixels unpainted).

    Returns:
        (H, W, 3) uint8 blended image.

    Raises:
        ValueError: on a bad alpha, dtype or mismatched shapes.
    """
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha must be in 0..1, got {alpha}")
    image = _as_rgb(image_rgb, "image_rgb")
    mask = _as_rgb(colour_mask, "colour_mask")
    if image.shape != mask.shape:
        raise ValueError(
            f"image_rgb and colour_mask must have the same height and width, got "
            f"{image.shape[:2]} and {mask.shape[:2]}"
        )
    blended = (1.0 - alpha) * image + alpha * mask
    if where is not None:
        where = np.asarray(where, dtype=bool)
        if where.shape != image.shape[:2]:
            raise ValueError(f"where must have shape {image.shape[:2]}, got {where.shape}")
        blended = np.where(where[..., None], blended, image)
    return np.clip(np.round(blended), 0, 255).astype(np.uint8)


# Colours of the improvement/error map (the paper's Figure 18).
ERROR_COLOUR = (255, 0, 0)
IMPROVEMENT_COLOUR = (0, 255, 0)


def improvement_map(
    prediction: np.ndarray,
    reference: np.ndarray,
    label: np.ndarray,
    image_rgb: Optional[np.ndarray] = None,
    num_classes: Optional[int] = None,
) -> Tuple[np.ndarray, dict]:
    """The improvement/error map of a prediction against a reference model's (Figure 18).

    As the paper's Figure 18: pixels that `prediction` gets wrong are red; pixels that the
    `reference` gets wrong but `prediction` gets right are green. Everything else (both right,
    or void in the label) shows the image in grey, or black without one.

    Args:
        prediction: (H, W) class ids of the model shown.
        reference: (H, W) class ids of the model it is compared with.
        label: (H, W) ground-truth class ids; void is not scored, as in evaluation: 0, the
            ignore id 255, and with `num_classes` every id from it up (before: 255 was scored,
            each such pixel red, helper 122).
        image_rgb: optional (H, W, 3) uint8 image under the map, shown dimmed in grey.
        num_classes: the class count, void included (ids from it up are void).

    Returns:
        The (H, W, 3) uint8 RGB map and counts of its pixels: `errors` (red), `improvements`
        (green), `reference_errors` (all pixels the reference gets wrong) and `scored`
        (non-void).

    Raises:
        ValueError: the maps (and the image) differ in height and width.
    """
    prediction, reference, label = (np.asarray(a) for a in (prediction, reference, label))
    shapes = {a.shape for a in (prediction, reference, label)}
    if len(shapes) != 1 or prediction.ndim != 2:
        raise ValueError(
            "prediction, reference and label must be (H, W) maps of one size, got "
            f"{prediction.shape}, {reference.shape} and {label.shape}"
        )
    scored = (label != 0) & (label != IGNORE_ID)
    if num_classes is not None:
        scored &= label < num_classes
    errors = scored & (prediction != label)
    reference_errors = scored & (reference != label)
    improvements = reference_errors & ~errors
    if image_rgb is None:
        picture = np.zeros(prediction.shape + (3,), np.uint8)
    else:
        image = _as_rgb(image_rgb, "image_rgb")
        if image.shape[:2] != prediction.shape:
            raise ValueError(f"image_rgb must be {prediction.shape}, got {image.shape[:2]}")
        # Dimmed grey, so that the two colours stand out on any scene.
        grey = (image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)) * 0.5
        picture = np.repeat(grey.astype(np.uint8)[..., None], 3, axis=-1)
    picture[errors] = ERROR_COLOUR
    picture[improvements] = IMPROVEMENT_COLOUR
    counts = {"errors": int(errors.sum()), "improvements": int(improvements.sum()),
              "reference_errors": int(reference_errors.sum()), "scored": int(scored.sum())}
    return picture, counts


def gate_to_image(
    gate_map: np.ndarray, size: Optional[Tuple[int, int]] = None
) -> np.ndarray:
    """Renders a float map in 0..1 (e.g. a mean SSMA gate) as a jet heat map.

    Low values are blue and high values red, so in an SSMA attention map red marks where the
    block lets the features through and blue where it suppresses them.

    Args:
        gate_map: (H, W) or (H, W, 1) float map; values outside 0..1 are clipped.
        size: optional output (height, width); the float map is resized bilinearly before it is
            coloured, so the heat map stays smooth at the input resolution.

    Returns:
        (H, W, 3) uint8 RGB image, or (height, width, 3) when `size` is given.

    Raises:
        ValueError: if the map is not 2-D, holds NaN, or `size` is not two positive integers.
    """
    gate = np.asarray(gate_map, dtype=np.float32)
    if gate.ndim == 3 and gate.shape[-1] == 1:
        gate = gate[..., 0]
    if gate.ndim != 2:
        raise ValueError(f"gate_map must have shape (H, W) or (H, W, 1), got shape {gate.shape}")
    if np.isnan(gate).any():
        raise ValueError("gate_map holds NaN values")
    if size is not None:
        if len(size) != 2 or int(size[0]) <= 0 or int(size[1]) <= 0:
            raise ValueError(f"size must be (height, width) with positive values, got {size}")
        height, width = int(size[0]), int(size[1])
        # A float32 array becomes a mode "F" image, which keeps the float values through the
        # resize; Pillow sizes are (width, height).
        gate = np.asarray(
            Image.fromarray(np.ascontiguousarray(gate)).resize(
                (width, height), Image.Resampling.BILINEAR
            ),
            dtype=np.float32,
        )
    return apply_jet(gate)


def picture_grid(
    rows: Sequence[Sequence[np.ndarray]],
    titles: Optional[Sequence[str]] = None,
    class_names: Optional[Sequence[str]] = None,
    palette: Optional[ArrayLike] = None,
    scale: int = 1,
    gap: int = 4,
) -> np.ndarray:
    """Lays (H, W, 3) uint8 pictures out in a grid on white, with column titles and a legend.

    Args:
        rows: the pictures, row by row; every picture of the grid has the same size and every
            row the same count.
        titles: a title above each column (optional).
        class_names, palette: a colour swatch and name per class below the grid (both or neither).
        scale: each pixel drawn as scale x scale (nearest neighbour, so class borders stay crisp).
        gap: white pixels between pictures, before scaling.

    Returns:
        The grid as an (H', W', 3) uint8 RGB array.

    Raises:
        ValueError: no picture, pictures of different sizes or kinds, rows of different lengths,
            a title count other than the column count, or only one of `class_names` and `palette`.
    """
    from PIL import ImageDraw

    if not rows or not rows[0]:
        raise ValueError("picture_grid needs at least one picture")
    shape = np.asarray(rows[0][0]).shape
    columns = len(rows[0])
    for r, row in enumerate(rows):
        if len(row) != columns:
            raise ValueError(f"row {r} has {len(row)} pictures, row 0 has {columns}")
        for c, picture in enumerate(row):
            picture = np.asarray(picture)
            if picture.shape != shape or picture.dtype != np.uint8 or len(shape) != 3 or shape[2] != 3:
                raise ValueError(f"picture ({r}, {c}) is {picture.dtype} {picture.shape}; every picture must "
                                 f"be uint8 of the shape of the first, {shape}, with 3 channels")
    if titles is not None and len(titles) != columns:
        raise ValueError(f"{len(titles)} titles for {columns} columns")
    if (class_names is None) != (palette is None):
        raise ValueError("a legend needs both class_names and palette")
    if class_names is not None and len(as_palette(palette)) < len(class_names):
        raise ValueError(f"{len(class_names)} class names but a palette of {len(as_palette(palette))} colours")
    if not isinstance(scale, int) or scale < 1 or not isinstance(gap, int) or gap < 0:
        raise ValueError(f"scale must be a positive and gap a non-negative integer, got {scale!r}, {gap!r}")

    height, width = shape[0], shape[1]
    grid = np.full((len(rows) * (height + gap) - gap, columns * (width + gap) - gap, 3), 255, np.uint8)
    for r, row in enumerate(rows):
        for c, picture in enumerate(row):
            top, left = r * (height + gap), c * (width + gap)
            grid[top:top + height, left:left + width] = picture
    grid = np.repeat(np.repeat(grid, scale, axis=0), scale, axis=1)
    if titles is None and class_names is None:
        return grid
    line = 24  # pixels of a text row
    font = _text_font([*(titles or ()), *(class_names or ())])
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    # As wide as the grid, or the longest legend item (before: cut at the grid's edge; helper 142).
    items = [18 + int(measure.textlength(name, font=font)) for name in class_names or ()]
    canvas_width = max([grid.shape[1], *(4 + item + 4 for item in items)])
    # The legend: a swatch and a name per class, left to right, wrapped at the canvas' width.
    places, x, legend_lines = [], 4, 1
    for item in items:
        if x > 4 and x + item > canvas_width:
            x, legend_lines = 4, legend_lines + 1
        places.append((x, legend_lines - 1))
        x += item + 16
    above = line if titles is not None else 0
    below = line * legend_lines if class_names is not None else 0
    canvas = Image.new("RGB", (canvas_width, grid.shape[0] + above + below), "white")
    canvas.paste(Image.fromarray(grid), (0, above))
    draw = ImageDraw.Draw(canvas)
    for c, title in enumerate(titles or ()):
        # Each title within its column (the last one: the canvas), cut with '...' where longer
        # (before: drawn over the next column's; helper 142).
        left = c * (width + gap) * scale + 4
        room = (width * scale - 6) if c < columns - 1 else canvas_width - left - 2
        draw.text((left, 6), _fitted(title, room, measure, font), fill="black", font=font)
    if class_names is not None:
        colours = as_palette(palette)
        for class_id, (name, (x, row)) in enumerate(zip(class_names, places)):
            y = grid.shape[0] + above + row * line + 6
            draw.rectangle((x, y, x + 12, y + 12), fill=tuple(int(v) for v in colours[class_id]), outline="black")
            draw.text((x + 18, y), name, fill="black", font=font)
    return np.asarray(canvas)


# TrueType fonts that draw more than ASCII, looked up where Pillow looks (the system's font folders);
# the first found draws the pictures' text.
_FONTS = ("DejaVuSans.ttf", "LiberationSans-Regular.ttf", "NotoSans-Regular.ttf", "FreeSans.ttf", "Arial.ttf")
_FONT_SIZE = 11


@functools.lru_cache(maxsize=None)
def _font():
    """The font of the pictures' titles, legends and counts, and whether it draws beyond ASCII.

    Pillow's built-in font draws ASCII only: 'Küche' came out as 'K▯che' (helper 142); a system
    TrueType font is taken where there is one.
    """
    from PIL import ImageFont

    for name in _FONTS:
        try:
            return ImageFont.truetype(name, _FONT_SIZE), True
        except OSError:
            continue
    return ImageFont.load_default(), False


def _text_font(texts: Sequence[str]):
    """`_font()`'s font; warns (once per call) when it cannot draw some of `texts`."""
    font, wide = _font()
    if not wide:
        odd = [text for text in texts if not str(text).isascii()]
        if odd:
            warnings.warn(f"{', '.join(repr(t) for t in odd[:3])}{' ...' if len(odd) > 3 else ''}: no TrueType font "
                          f"found ({', '.join(_FONTS)}), and Pillow's own draws ASCII only: the other characters show "
                          "as boxes; install one (e.g. the fonts-dejavu-core package)", stacklevel=3)
    return font


def _fitted(text: str, room: float, measure, font) -> str:
    """`text`, cut with '...' to fit `room` pixels (whole when it fits)."""
    if measure.textlength(text, font=font) <= room:
        return text
    while text and measure.textlength(text + "...", font=font) > room:
        text = text[:-1]
    return text + "..." if text else ""


def confusion_picture(confusion: ArrayLike, class_names: Optional[Sequence[str]] = None, cell: int = 40) -> np.ndarray:
    """A confusion matrix as a picture: rows the true classes, columns the predicted ones.

    Each cell shows its count and is shaded by the share of its row (white 0 %, dark blue 100 %),
    so each row reads as that class's recall and where its misses went; the diagonal is framed.
    A row without samples stays white.

    Args:
        confusion: (C, C) counts, rows truth, columns prediction.
        class_names: a name per class (default: the ids).
        cell: the side of a cell in pixels.

    Returns:
        An (H, W, 3) uint8 RGB picture.

    Raises:
        ValueError: a matrix that is not square, negative counts, or a name count other than C.
    """
    from PIL import ImageDraw

    counts = np.asarray(confusion)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or counts.shape[0] == 0:
        raise ValueError(f"confusion_picture needs a square (C, C) matrix, got shape {counts.shape}")
    if (counts < 0).any():
        raise ValueError("confusion_picture: the counts must not be negative")
    classes = counts.shape[0]
    names = [str(c) for c in range(classes)] if class_names is None else [str(n) for n in class_names]
    if len(names) != classes:
        raise ValueError(f"{len(names)} class names for a {classes}x{classes} confusion matrix")
    font = _text_font(names)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    # Room for "true" beside the column names, and for "predicted" above them (before: short names
    # ran into "true", and a small cell cut "predicted"; helper 195).
    margin = 8 + max([int(measure.textlength(name, font=font)) for name in names]
                     + [int(measure.textlength("true", font=font)) + 6])
    line = 16
    width = margin + max(classes * cell, int(measure.textlength("predicted", font=font)) + 4) + 8
    height = 2 * line + margin + classes * cell + 8
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((margin, 4), "predicted", fill="black", font=font)
    top = 2 * line + margin  # below the title and the column names
    totals = counts.sum(axis=1)
    for column, name in enumerate(names):
        # Column names written vertically: drawn on their own strip, turned a quarter.
        strip = Image.new("RGB", (margin, line), "white")
        ImageDraw.Draw(strip).text((margin - 4 - int(measure.textlength(name, font=font)), 2), name, fill="black",
                                   font=font)
        canvas.paste(strip.rotate(90, expand=True), (margin + column * cell + (cell - line) // 2, 2 * line))
    for row in range(classes):
        y = top + row * cell
        draw.text((margin - 4 - int(measure.textlength(names[row], font=font)), y + cell // 2 - 6), names[row],
                  fill="black", font=font)
        for column in range(classes):
            x = margin + column * cell
            share = counts[row, column] / totals[row] if totals[row] else 0.0
            shade = tuple(int(round(255 - share * (255 - dark))) for dark in (16, 62, 140))
            draw.rectangle((x, y, x + cell - 1, y + cell - 1), fill=shade, outline=(200, 200, 200))
            text = _count_text(int(counts[row, column]), cell - 4, lambda t: measure.textlength(t, font=font))
            ink = "white" if share > 0.5 else "black"
            draw.text((x + (cell - int(measure.textlength(text, font=font))) // 2, y + cell // 2 - 6), text,
                      fill=ink, font=font)
        draw.rectangle((margin + row * cell, y, margin + row * cell + cell - 1, y + cell - 1), outline="black", width=2)
    draw.text((4, top - line), "true", fill="black", font=font)
    return np.asarray(canvas)


def _count_text(count: int, room: float, width: Callable[[str], float]) -> str:
    """`count` as it fits in `room` pixels: whole, else shortened (`285k`, `1.4M`), else nothing,
    the cell's shade showing its share (before: six digits ran over the next cells; helper 195)."""
    candidates = [str(count)]
    for scale, suffix in ((1e3, "k"), (1e6, "M"), (1e9, "G"), (1e12, "T")):
        value = count / scale
        text = f"{value:.1f}" if value < 9.95 else f"{value:.0f}"
        if count >= 1000 and 1 <= float(text) < 1000:  # 999999: 1.0M, not 1000k
            candidates.append(text + suffix)
    # The most digits that fit: 1425300, then 1425k, then 1.4M.
    return next((text for text in sorted(candidates, key=len, reverse=True) if width(text) <= room), "")


def save_png(
    path: Union[str, os.PathLike], array: np.ndarray, compress_level: int = 6
) -> None:
    """Writes a picture as PNG, replacing the file in one step: `ssma_tf.modalities.io.write_png`.

    A reader (or a crash) never sees a partial file at `path`. Parent folders are created.

    Args:
        path: destination file name.
        array: (H, W) grey / class ids, or (H, W, 3) RGB, or (H, W, 4) RGBA, dtype uint8.
        compress_level: zlib level 0..9 (Pillow's default 6); 1 is about twice as fast and
            barely larger for noisy pictures.

    Raises:
        ValueError: on a dtype other than uint8, an unsupported shape or compression level.
    """
    image = np.asarray(array)
    if image.dtype != np.uint8:  # write_png also takes 16-bit grey, which no picture is
        raise ValueError(f"save_png({os.fspath(path)!r}) needs uint8 data, got dtype {image.dtype}")
    write_png(path, image, overwrite=True, compress_level=compress_level)
