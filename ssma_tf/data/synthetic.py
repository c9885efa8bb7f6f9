"""Synthetic RGB-D street scenes in which each modality alone is ambiguous.

A tiny stand-in for Cityscapes RGB + depth (Valada et al., IJCV 2019, Sec. 5.1), made so that
fusion has something to fix: a class pair that colour cannot tell apart is told apart by depth,
and the other way round.

Scene: a pinhole camera above a flat ground plane, looking at a wall of segments standing
12..26 m away, with boxes standing on the ground 4.5..9 m away.

- Ground: radial sectors through the vanishing point, each either `road` (dark asphalt) or
  `sidewalk` (painted reddish). Both lie on the same plane, so their depth is identical row by
  row: only colour separates them.
- Wall segments: `building` (grey facade, or glass that mirrors the sky colour) or `vegetation`
  (a hedge of trees, green), drawn from the same depth and height distributions: only colour
  separates them. Glass facades have the colour of the sky behind them: only depth separates
  them from `sky`. Grey facades carry grey panels and doors of the same size as cars.
- Near boxes: `car` (grey, often the very grey of the facade behind it) and `vegetation` bushes
  (green), with the same sizes and distances: depth cannot tell them apart, colour can; colour
  cannot tell a car from the grey facade behind it, depth can (cars are always nearer).
- Rare small boxes of a random bright colour are labelled `void` (id 0).
- Sky is infinitely far away.

Nuisances: per-image lighting (gain, colour cast, a horizontal light gradient), per-pixel colour
noise and leaf texture, multiplicative depth noise, and missing-depth holes (blobs and speckles).

Depth is written as a 3-channel jet image, as the paper did for Cityscapes: the value
`v = log(DEPTH_MAX_M / d) / log(DEPTH_MAX_M / DEPTH_MIN_M)` (clipped to 0..1, so near = 1) goes
through the jet colour map, so **near is warm (red), far is cold (dark blue)**; sky and ground
beyond `DEPTH_MAX_M` are dark blue; **missing depth is black** (0, 0, 0), a colour jet never takes.
The log scale gives near objects, where the classes differ, most of the colour range.

Every sample is a pure function of (seed, split, index), so a dataset is identical byte for byte
for the same arguments and any one sample can be regenerated alone.

Optionally (`thermal=True`) a third modality, for SSMA over three modalities (Section 4.2): a
"thermal" image in which cars are warm and everything else lies near the scene's ambient
temperature (road and sidewalk sun-warmed, sky and buildings cool, with overlapping ranges and
sensor noise), so thermal alone cannot tell the scene apart. In that variant half of the cars
are painted the green of the bushes, with their leaf texture: colour and depth together cannot
tell such a car from a bush (same colour, sizes and distances), only thermal can; and thermal
cannot tell road from sidewalk or glass from sky, which colour and depth can. The colour, depth
and labels of the other scenes' pixels are those of the default data, drawn from the same
stream; the thermal draws come from a stream of their own, and the default data are unchanged.

Domain shift (`style="target"`, for domain adaptation, `docs/adaptation.md`): the same scenes
(geometry, labels and depth, byte for byte) seen as at dusk in another town: darker and warmer
light with less contrast, stronger sensor noise, and class colours moved toward each other
(sidewalks paved grey like the road, autumn vegetation turning brown toward the facades' grey,
an overcast orange sky). A model trained on the source style loses
accuracy on it; the depth modality does not change.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from typing import Optional, Tuple, Union

import numpy as np
import yaml

from ssma_tf import visualize
from ssma_tf.data import datasets
from ssma_tf.files import atomic_write

# === Classes (names and palette are data in datasets.yaml, entry "synthetic") ===
DATASET_NAME = "synthetic"
VOID, ROAD, SIDEWALK, BUILDING, VEGETATION, CAR, SKY = range(7)
CLASS_NAMES = ("void", "road", "sidewalk", "building", "vegetation", "car", "sky")
NUM_CLASSES = len(CLASS_NAMES)

# === Depth encoding ===
DEPTH_MIN_M = 2.0
DEPTH_MAX_M = 60.0
_LOG_DEPTH_RANGE = float(np.log(DEPTH_MAX_M / DEPTH_MIN_M))
_JET_LUT = visualize.apply_jet(np.arange(256, dtype=np.float32) / 255.0)  # (256, 3)
_JET_KEYS = (_JET_LUT.astype(np.int64) * np.array([65536, 256, 1])).sum(axis=1)
_JET_KEY_ORDER = np.argsort(_JET_KEYS)

# === Scene geometry (metres; the focal length scales with the image width) ===
_CAMERA_HEIGHT_M = 1.2
_FOCAL_PER_WIDTH = 0.55  # about 85 degrees across: small cars, wide street
_HORIZON_ROW = (0.36, 0.48)  # fraction of the height
_WALL_DEPTH_M = (12.0, 26.0)
_WALL_SEGMENT_JITTER_M = 1.5
_NEAR_DEPTH_M = (4.5, 9.0)  # cars and bushes; kept below the nearest wall on purpose
_NEAR_HEIGHT_M = (1.4, 2.2)  # taller than the camera, so cars reach up into the wall
_NEAR_WIDTH_M = (1.8, 4.0)

# === Appearance (0..255 before lighting) ===
_GREY_LEVEL = (110.0, 175.0)  # shared by facades, panels and cars: the colour ambiguity
_ROAD_LEVEL = (45.0, 80.0)
_SIDEWALK_RGB = ((150.0, 185.0), (85.0, 115.0), (70.0, 100.0))
_VEGETATION_RGB = ((45.0, 80.0), (100.0, 140.0), (35.0, 65.0))
_SKY_RGB = ((130.0, 170.0), (170.0, 200.0), (210.0, 240.0))
_VOID_RGB = ((235, 200, 30), (230, 60, 200), (250, 130, 20), (40, 220, 220))
_PIXEL_NOISE = 4.0
_LEAF_NOISE = 10.0
_DEPTH_NOISE = 0.02  # relative (log-normal), clipped at 2.5 sigma

_SPLITS = {"train": 0, "val": 1, "test": 2}

# === Target style (domain shift); the source style is the rendering above unchanged ===
STYLES = ("source", "target")
_TARGET_SHIFT = {  # class: (blend weight toward the colour, colour range per channel)
    SIDEWALK: ((0.55, 0.75), ((70.0, 95.0), (68.0, 92.0), (66.0, 88.0))),
    VEGETATION: ((0.45, 0.65), ((120.0, 150.0), (100.0, 125.0), (60.0, 85.0))),
    SKY: ((0.6, 0.8), ((190.0, 215.0), (150.0, 175.0), (120.0, 145.0))),
}
_TARGET_GAIN = (0.5, 0.7)
_TARGET_CAST = ((1.08, 1.2), (0.95, 1.02), (0.72, 0.85))
_TARGET_CONTRAST = (0.7, 0.85)  # toward the image mean
_TARGET_NOISE = 9.0
_STYLE_STREAM = 2  # the seed sequence's last word (1: thermal)

# === Thermal (0..255, warm = bright), the optional third modality ===
_AMBIENT = (90.0, 140.0)  # per scene
# Per-scene offsets from the ambient level, per class: ranges overlap, so that thermal alone
# tells little apart except cars.
_THERMAL_OFFSET = {ROAD: (0.0, 18.0), SIDEWALK: (0.0, 18.0), BUILDING: (-15.0, 8.0),
                   VEGETATION: (-12.0, 6.0), SKY: (-20.0, 4.0)}
_CAR_WARMTH = (45.0, 75.0)
_THERMAL_NOISE = 6.0
_GREEN_CAR_PROBABILITY = 0.5


@dataclasses.dataclass(frozen=True)
class SyntheticSample:
    """One generated scene.

    Attributes:
        rgb: (H, W, 3) uint8 colour image, RGB order.
        depth_jet: (H, W, 3) uint8 jet-coded depth, RGB order (near = red, missing = black).
        label: (H, W) uint8 class ids (see `CLASS_NAMES`).
        depth: (H, W) float32 noise-free depth in metres along the optical axis (inf for sky).
        depth_valid: (H, W) bool, False where the depth image has a hole.
        thermal: (H, W, 3) uint8 thermal image (three equal channels, warm = bright), or None
            when the sample was generated without it.
    """

    rgb: np.ndarray
    depth_jet: np.ndarray
    label: np.ndarray
    depth: np.ndarray
    depth_valid: np.ndarray
    thermal: Optional[np.ndarray] = None


@dataclasses.dataclass(frozen=True)
class SyntheticDataset:
    """Files written by `write_dataset`.

    Attributes:
        root: output folder.
        train_list: list file of the training split (`rgb depth label` per line).
        val_list: list file of the validation split.
        classes_file: YAML with the class names, palette and the generator's arguments.
    """

    root: pathlib.Path
    train_list: pathlib.Path
    val_list: pathlib.Path
    classes_file: pathlib.Path


def depth_to_jet(depth: np.ndarray, valid: Optional[np.ndarray] = None) -> np.ndarray:
    """Encodes depth in metres as a jet image (near = red, far/sky = dark blue, missing = black).

    Args:
        depth: (H, W) depth in metres; inf is allowed (sky) and maps to the far colour.
        valid: optional (H, W) bool; False pixels become black (missing depth).

    Returns:
        (H, W, 3) uint8 RGB jet image.
    """
    depth = np.asarray(depth, dtype=np.float64)
    with np.errstate(divide="ignore"):
        value = np.log(DEPTH_MAX_M / np.maximum(depth, 1e-6)) / _LOG_DEPTH_RANGE
    index = np.round(np.clip(value, 0.0, 1.0) * 255.0).astype(np.int64)
    jet = _JET_LUT[index]
    if valid is not None:
        jet = np.where(np.asarray(valid, dtype=bool)[..., None], jet, np.uint8(0))
    return jet


def jet_to_depth(jet: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Decodes a jet depth image written by `depth_to_jet` back to metres.

    Colours that are not exactly on the colour map (e.g. after lossy compression) take the
    nearest one. Depths beyond `DEPTH_MAX_M` come back as `DEPTH_MAX_M`.

    Args:
        jet: (H, W, 3) uint8 RGB jet image.

    Returns:
        (depth, valid): (H, W) float32 depth in metres (0 where missing) and (H, W) bool, False
        for the black "missing" pixels.

    Raises:
        ValueError: if `jet` is not an (H, W, 3) uint8 image.
    """
    jet = np.asarray(jet)
    if jet.ndim != 3 or jet.shape[-1] != 3 or jet.dtype != np.uint8:
        raise ValueError(f"jet must be an (H, W, 3) uint8 image, got {jet.shape} {jet.dtype}")
    flat = jet.reshape(-1, 3).astype(np.int64)
    # Every jet colour has a channel >= 128, so anything much darker is the "missing" black.
    valid = flat.max(axis=1) >= 64
    keys = (flat * np.array([65536, 256, 1])).sum(axis=1)
    position = np.clip(np.searchsorted(_JET_KEYS[_JET_KEY_ORDER], keys), 0, 255)
    index = _JET_KEY_ORDER[position]
    inexact = valid & (_JET_KEYS[index] != keys)
    if inexact.any():
        # Nearest colour-map entry, in chunks to bound the (pixels, 256, 3) temporary.
        rows = np.flatnonzero(inexact)
        for start in range(0, len(rows), 8192):
            chunk = rows[start : start + 8192]
            distance = ((flat[chunk, None, :] - _JET_LUT[None].astype(np.int64)) ** 2).sum(-1)
            index[chunk] = distance.argmin(axis=1)
    depth = DEPTH_MAX_M * np.exp(-(index / 255.0) * _LOG_DEPTH_RANGE)
    depth = np.where(valid, depth, 0.0).astype(np.float32)
    return depth.reshape(jet.shape[:2]), valid.reshape(jet.shape[:2])


class _Canvas:
    """Label, depth (z-buffer) and colour layers; nearer paint wins, as in a renderer."""

    def __init__(self, height: int, width: int):
        self.label = np.full((height, width), SKY, dtype=np.uint8)
        self.depth = np.full((height, width), np.inf, dtype=np.float64)
        self.colour = np.zeros((height, width, 3), dtype=np.float64)

    def paint(self, mask: np.ndarray, depth, class_id: int, colour) -> None:
        """Paints `mask` where `depth` (scalar or map) is nearer than what is already there."""
        draw = mask & (depth < self.depth)
        self.label[draw] = class_id
        self.depth[draw] = (np.broadcast_to(depth, self.depth.shape))[draw]
        self.colour[draw] = np.broadcast_to(colour, self.colour.shape)[draw]


def _uniform_rgb(rng: np.random.Generator, ranges) -> np.ndarray:
    return np.array([rng.uniform(low, high) for low, high in ranges])


def _grey(rng: np.random.Generator, level: Tuple[float, float]) -> np.ndarray:
    # A faint tint keeps greys from being perfectly neutral without making them a cue.
    return rng.uniform(*level) + rng.normal(0.0, 2.0, size=3)


def _rectangle(height: int, width: int, top: float, bottom: float, left: float, right: float):
    """Boolean mask of the pixels whose centres lie inside the box (rows top..bottom)."""
    rows = np.arange(height) + 0.5
    cols = np.arange(width) + 0.5
    return ((rows >= top) & (rows < bottom))[:, None] & ((cols >= left) & (cols < right))[None, :]


def _render(
    rng: np.random.Generator, height: int, width: int, thermal_rng: Optional[np.random.Generator] = None
) -> SyntheticSample:
    """Draws one scene (see the module docstring for the design).

    With `thermal_rng`, half of the cars are painted green and a thermal image is drawn; every
    draw of that variant comes from `thermal_rng`, so the rest of the scene stays as without it.
    """
    canvas = _Canvas(height, width)
    green_cars = np.zeros((height, width), dtype=bool)
    rows = (np.arange(height) + 0.5)[:, None]
    cols = (np.arange(width) + 0.5)[None, :]
    focal = _FOCAL_PER_WIDTH * width
    horizon = rng.uniform(*_HORIZON_ROW) * height

    # --- Sky, brighter towards the horizon; glass facades reuse this very colour. ---
    sky_base = _uniform_rgb(rng, _SKY_RGB)
    sky_brightening = rng.uniform(0.0, 25.0)
    sky_colour = sky_base + sky_brightening * np.clip(rows / horizon, 0.0, 1.0)[..., None]
    sky_colour = np.broadcast_to(sky_colour, (height, width, 3))
    canvas.colour[:] = sky_colour

    # --- Ground plane: road and painted sidewalk sectors through the vanishing point. ---
    below = np.broadcast_to(rows - horizon, (height, width))
    ground = below > 0
    with np.errstate(divide="ignore"):
        ground_depth = np.where(ground, focal * _CAMERA_HEIGHT_M / np.maximum(below, 1e-9), np.inf)
    vanishing_col = rng.uniform(0.3, 0.7) * width
    bottom_offset = height - horizon
    edges = np.sort(rng.uniform(0.05, 0.95, size=rng.integers(1, 4)) * width)
    edge_slopes = (edges - vanishing_col) / bottom_offset
    slope = (cols - vanishing_col) / np.maximum(below, 1e-9)
    sector = np.searchsorted(edge_slopes, slope)
    first = rng.integers(0, 2)
    is_road = (sector + first) % 2 == 0
    road_colour = _grey(rng, _ROAD_LEVEL)
    sidewalk_colour = _uniform_rgb(rng, _SIDEWALK_RGB)
    canvas.paint(ground & is_road, ground_depth, ROAD, road_colour)
    canvas.paint(ground & ~is_road, ground_depth, SIDEWALK, sidewalk_colour)

    # --- Wall of segments at one distance: facades (grey or glass), tree hedges, gaps. ---
    wall_depth = rng.uniform(*_WALL_DEPTH_M)
    grey_segments = []  # (left, right, grey colour) for cars that park in front of them
    left = 0.0
    while left < width:
        right = min(float(width), left + max(2.0, rng.uniform(0.12, 0.35) * width))
        kind = rng.choice(4, p=[0.36, 0.28, 0.28, 0.08])  # grey, glass, vegetation, gap
        depth = wall_depth + rng.uniform(-_WALL_SEGMENT_JITTER_M, _WALL_SEGMENT_JITTER_M)
        base = horizon + focal * _CAMERA_HEIGHT_M / depth
        top = rng.uniform(0.02, 0.8) * horizon
        segment = _rectangle(height, width, top, base, left, right)
        if kind == 0:
            facade = _grey(rng, _GREY_LEVEL)
            canvas.paint(segment, depth, BUILDING, facade)
            grey_segments.append((left, right, facade))
            # Panels and doors as big as cars and as grey: in colour they look like parked cars.
            for _ in range(rng.integers(0, 3)):
                panel_w = rng.uniform(0.08, 0.3) * width
                panel_h = rng.uniform(0.12, 0.35) * height
                panel_left = rng.uniform(left - 0.5 * panel_w, right - 0.5 * panel_w)
                panel_bottom = base - (0.0 if rng.random() < 0.6 else rng.uniform(0.0, 0.2) * height)
                panel = segment & _rectangle(
                    height, width, panel_bottom - panel_h, panel_bottom, panel_left, panel_left + panel_w
                )
                # Drawn at the facade's own depth (the z-test needs it strictly nearer).
                canvas.paint(panel, depth - 1e-3, BUILDING, _grey(rng, _GREY_LEVEL))
        elif kind == 1:
            glass = sky_colour * rng.uniform(0.985, 1.015)
            canvas.paint(segment, depth, BUILDING, glass)
        elif kind == 2:
            canvas.paint(segment, depth, VEGETATION, _uniform_rgb(rng, _VEGETATION_RGB))
        left = right

    # --- Near boxes on the ground: cars and bushes share sizes and distances. ---
    def box(depth_range, height_range, width_range):
        depth = rng.uniform(*depth_range)
        size_h = focal * rng.uniform(*height_range) / depth
        size_w = focal * rng.uniform(*width_range) / depth
        centre = rng.uniform(0.0, width)
        base = horizon + focal * _CAMERA_HEIGHT_M / depth
        mask = _rectangle(height, width, base - size_h, base, centre - size_w / 2, centre + size_w / 2)
        return depth, centre, mask

    num_cars = rng.choice(5, p=[0.05, 0.25, 0.3, 0.25, 0.15])
    for _ in range(num_cars):
        depth, centre, mask = box(_NEAR_DEPTH_M, _NEAR_HEIGHT_M, _NEAR_WIDTH_M)
        behind = [c for l, r, c in grey_segments if l <= centre < r]
        if behind and rng.random() < 0.75:
            # Same grey as the facade behind: in colour, the car melts into the wall.
            colour = behind[0] + rng.normal(0.0, 4.0, size=3)
        else:
            colour = _grey(rng, _GREY_LEVEL)
        if thermal_rng is not None and thermal_rng.random() < _GREEN_CAR_PROBABILITY:
            # Painted like a bush: colour and depth together cannot tell them apart.
            colour = _uniform_rgb(thermal_rng, _VEGETATION_RGB)
            green_cars |= mask & (depth < canvas.depth)
        canvas.paint(mask, depth, CAR, colour)
    for _ in range(rng.choice(4, p=[0.3, 0.35, 0.25, 0.1])):
        depth, _, mask = box(_NEAR_DEPTH_M, _NEAR_HEIGHT_M, _NEAR_WIDTH_M)
        canvas.paint(mask, depth, VEGETATION, _uniform_rgb(rng, _VEGETATION_RGB))
    if rng.random() < 0.3:
        depth, _, mask = box((_NEAR_DEPTH_M[0], wall_depth - 1.0), (0.6, 1.6), (0.3, 0.9))
        colour = np.array(_VOID_RGB[rng.integers(len(_VOID_RGB))], dtype=np.float64)
        canvas.paint(mask, depth, VOID, colour + rng.normal(0.0, 8.0, size=3))

    # --- Colour image: leaf texture, lighting, sensor noise. ---
    colour = canvas.colour
    leaves = canvas.label == VEGETATION
    colour[leaves] += rng.normal(0.0, _LEAF_NOISE, size=(int(leaves.sum()), 1))
    thermal = None
    if thermal_rng is not None:
        green_cars &= canvas.label == CAR  # the parts that nothing nearer hides
        colour[green_cars] += thermal_rng.normal(0.0, _LEAF_NOISE, size=(int(green_cars.sum()), 1))
        thermal = _thermal(thermal_rng, canvas.label)
    gain = rng.uniform(0.8, 1.2)
    cast = rng.uniform(0.93, 1.07, size=3)
    gradient = 1.0 + rng.uniform(-0.2, 0.2) * (cols / width - 0.5)
    colour = colour * gain * cast * gradient[..., None]
    colour = colour + rng.normal(0.0, _PIXEL_NOISE, size=colour.shape)
    rgb = np.clip(np.round(colour), 0, 255).astype(np.uint8)

    # --- Depth image: multiplicative noise, holes, jet coding. ---
    noise = np.clip(rng.normal(0.0, _DEPTH_NOISE, size=(height, width)), -2.5 * _DEPTH_NOISE, 2.5 * _DEPTH_NOISE)
    measured = canvas.depth * np.exp(noise)
    valid = rng.random((height, width)) >= 0.005  # speckle dropouts
    for _ in range(rng.integers(1, 4)):  # blobs where the sensor saw nothing
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        ry, rx = rng.uniform(0.03, 0.08) * height, rng.uniform(0.03, 0.08) * width
        valid &= ((rows - cy) / ry) ** 2 + ((cols - cx) / rx) ** 2 > 1.0
    depth_jet = depth_to_jet(measured, valid)

    return SyntheticSample(
        rgb=rgb,
        depth_jet=depth_jet,
        label=canvas.label.copy(),
        depth=canvas.depth.astype(np.float32),
        depth_valid=valid,
        thermal=thermal,
    )


def _restyle(rng: np.random.Generator, sample: SyntheticSample) -> SyntheticSample:
    """The same scene in the target style (see the module docstring); depth and labels unchanged."""
    colour = sample.rgb.astype(np.float64)
    label = sample.label
    for class_id, (weight_range, colour_range) in _TARGET_SHIFT.items():
        mask = label == class_id
        weight = rng.uniform(*weight_range)
        target = _uniform_rgb(rng, colour_range)
        colour[mask] = (1.0 - weight) * colour[mask] + weight * target
    gain = rng.uniform(*_TARGET_GAIN)
    cast = np.array([rng.uniform(*r) for r in _TARGET_CAST])
    colour = colour * gain * cast
    mean = colour.reshape(-1, 3).mean(axis=0)
    colour = mean + rng.uniform(*_TARGET_CONTRAST) * (colour - mean)
    colour = colour + rng.normal(0.0, _TARGET_NOISE, size=colour.shape)
    rgb = np.clip(np.round(colour), 0, 255).astype(np.uint8)
    return dataclasses.replace(sample, rgb=rgb)


def _check_style(style: str) -> None:
    if style not in STYLES:
        raise ValueError(f"style must be one of {list(STYLES)}, got {style!r}")


def _thermal(rng: np.random.Generator, label: np.ndarray) -> np.ndarray:
    """The thermal image of a scene's labels: ambient level, class offsets, warm cars, noise."""
    ambient = rng.uniform(*_AMBIENT)
    temperature = np.full(label.shape, ambient)
    for class_id, offset in _THERMAL_OFFSET.items():
        temperature[label == class_id] += rng.uniform(*offset)
    cars = label == CAR
    temperature[cars] += rng.uniform(*_CAR_WARMTH)
    other = label == VOID
    temperature[other] += rng.uniform(-20.0, 60.0)  # odd objects: anything from cool to warm
    temperature += rng.normal(0.0, _THERMAL_NOISE, size=label.shape)
    grey = np.clip(np.round(temperature), 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def _check_size(height: int, width: int) -> None:
    for name, value in (("height", height), ("width", width)):
        if not isinstance(value, (int, np.integer)) or value < 16:
            raise ValueError(f"{name} must be an integer >= 16, got {value!r}")


def _check_seed(seed: int) -> None:
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")


def generate_sample(
    seed: int, index: int, height: int = 96, width: int = 192, split: str = "train",
    style: str = "source", thermal: bool = False,
) -> SyntheticSample:
    """Generates one scene; the same arguments always give the same arrays.

    Args:
        seed: dataset seed (non-negative).
        index: sample number within the split (non-negative).
        height: image height in pixels (>= 16; the models need a multiple of 16).
        width: image width in pixels (>= 16; the models need a multiple of 16).
        split: 'train', 'val' or 'test'; each split draws its own scenes.
        style: 'source' (default) or 'target': the same scene, labels and depth in the
            domain-shifted look of the module docstring.
        thermal: also draw the thermal image, with half of the cars painted green (see the
            module docstring); False gives the default RGB-D data.

    Returns:
        The `SyntheticSample`.

    Raises:
        ValueError: on a bad seed, index, size or split.
    """
    _check_seed(seed)
    _check_size(height, width)
    if not isinstance(index, (int, np.integer)) or index < 0:
        raise ValueError(f"index must be a non-negative integer, got {index!r}")
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {sorted(_SPLITS)}, got {split!r}")
    _check_style(style)
    # One independent stream per (seed, split, index): samples do not depend on each other.
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), _SPLITS[split], int(index)]))
    thermal_rng = None
    if thermal:
        thermal_rng = np.random.default_rng(np.random.SeedSequence([int(seed), _SPLITS[split], int(index), 1]))
    sample = _render(rng, int(height), int(width), thermal_rng)
    if style == "target":
        # A stream of its own (not the thermal one): the scene stays the source's.
        style_rng = np.random.default_rng(
            np.random.SeedSequence([int(seed), _SPLITS[split], int(index), _STYLE_STREAM])
        )
        sample = _restyle(style_rng, sample)
    return sample


def _write_text(path: pathlib.Path, text: str) -> None:
    """Writes a text file atomically (a reader never sees half of it)."""
    with atomic_write(path) as stream:
        stream.write(text)


def write_dataset(
    output_dir: Union[str, os.PathLike],
    num_train: int = 200,
    num_val: int = 50,
    height: int = 96,
    width: int = 192,
    seed: int = 0,
    style: str = "source",
    thermal: bool = False,
) -> SyntheticDataset:
    """Writes a synthetic RGB-D (or RGB-D-thermal) dataset as PNG files plus list files.

    Layout under `output_dir`: `{split}/rgb/NNNNN.png` (colour, RGB), `{split}/depth/NNNNN.png`
    (jet-coded depth, RGB), `{split}/label/NNNNN.png` (1-channel class ids), the list files
    `train.txt` and `val.txt` with one `rgb depth label` line per sample (paths relative to
    `output_dir`), and `classes.yaml` (class names, palette, generator arguments).

    Args:
        output_dir: folder to write to (created if needed; existing files are overwritten). Its
            list files and classes.yaml are removed before the first image and written after the
            last one, so a folder whose writing stopped has none of them.
        num_train: number of training samples.
        num_val: number of validation samples.
        height: image height (>= 16; the models need a multiple of 16).
        width: image width (>= 16; the models need a multiple of 16).
        seed: dataset seed; the same arguments give the same files, byte for byte.
        style: 'source' or 'target' (the domain-shifted look; same scenes, labels and depth).
        thermal: also write `{split}/thermal/NNNNN.png` and lists of `rgb depth thermal label`
            (see `generate_sample`).

    Returns:
        The paths written, as a `SyntheticDataset`.

    Raises:
        ValueError: on a bad count, size or seed.
    """
    _check_seed(seed)
    _check_size(height, width)
    _check_style(style)
    for name, value in (("num_train", num_train), ("num_val", num_val)):
        if not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    if num_train + num_val == 0:
        raise ValueError("num_train and num_val are both 0: nothing to write")

    info = datasets.get_dataset_info(DATASET_NAME)
    if info.class_names != CLASS_NAMES:
        raise ValueError(
            f"{datasets.DATASETS_FILE}: the '{DATASET_NAME}' classes {info.class_names} do not "
            f"match the generator's {CLASS_NAMES}"
        )
    root = pathlib.Path(output_dir)
    root.mkdir(parents=True, exist_ok=True)
    # Before the first image: a run stopped among the images left the lists and classes.yaml of
    # the dataset there before, describing pixels already replaced (helper 291). Without them the
    # folder is visibly unfinished; val.txt, which the demos take for "written", goes first and
    # comes back last.
    for stale in ("val.txt", "train.txt", "classes.yaml"):
        (root / stale).unlink(missing_ok=True)
    list_files = {}
    list_texts = {}
    for split, count in (("train", num_train), ("val", num_val)):
        lines = []
        for index in range(count):
            sample = generate_sample(seed, index, height, width, split, style, thermal=thermal)
            name = f"{index:05d}.png"
            kinds = ("rgb", "depth", "thermal", "label") if thermal else ("rgb", "depth", "label")
            arrays = (sample.rgb, sample.depth_jet) + ((sample.thermal,) if thermal else ()) + (sample.label,)
            relative = [f"{split}/{kind}/{name}" for kind in kinds]
            for path, array in zip(relative, arrays):
                # Sensor noise hardly compresses: the fastest zlib level costs few bytes.
                visualize.save_png(root / path, array, compress_level=1)
            lines.append(" ".join(relative) + "\n")
        list_files[split] = root / f"{split}.txt"
        list_texts[split] = "".join(lines)

    metadata = {
        "dataset": DATASET_NAME,
        "num_classes": info.num_classes,
        "class_names": list(info.class_names),
        "palette": [list(colour) for colour in info.palette],
        "modality1": "rgb: colour image, RGB order on disk",
        "modality2": (
            f"depth: jet colour map of log depth, near (<= {DEPTH_MIN_M} m) red, far "
            f"(>= {DEPTH_MAX_M} m, sky) dark blue, missing depth black (0, 0, 0)"
        ),
        **({"modality3": "thermal: warm = bright; cars warm, the rest near the ambient level"}
           if thermal else {}),
        "generator": {
            "seed": int(seed),
            "height": int(height),
            "width": int(width),
            "num_train": int(num_train),
            "num_val": int(num_val),
            "style": style,
            "thermal": bool(thermal),
        },
    }
    classes_file = root / "classes.yaml"
    _write_text(classes_file, yaml.safe_dump(metadata, sort_keys=False))
    for split in ("train", "val"):  # val.txt last: the demos' sign of a finished dataset
        _write_text(list_files[split], list_texts[split])
    return SyntheticDataset(
        root=root,
        train_list=list_files["train"],
        val_list=list_files["val"],
        classes_file=classes_file,
    )
