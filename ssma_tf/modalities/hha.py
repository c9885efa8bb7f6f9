"""HHA encoding of depth (Gupta, Girshick, Arbelaez, Malik, ECCV 2014).

HHA turns metric depth into three channels that a network pre-trained on colour images can use:

- **H**orizontal disparity: `31000 / depth_cm`, with depth clamped to at least 100 cm (so the
  channel saturates at 255 below about 1.22 m and is 31 at 10 m).
- **H**eight above the lowest point of the scene, in centimetres along the estimated gravity
  direction (saturates at 255 cm); when that point is less than 90 cm below the camera (no
  floor in view, e.g. a wall close up), the floor is taken 130 cm below the camera, as the
  original `processDepthImage.m` does.
- **A**ngle between the surface normal and the gravity direction, in degrees, plus 38
  (`angle + 128 - 90` in the original): floors 38, walls 128, ceilings 218.

Each channel is rounded and clipped to 0..255 as the original MATLAB code's `uint8` does. The
gravity direction is estimated from the surface normals (Gupta, Arbelaez, Malik, CVPR 2013): start
from the camera's y axis (image down), gather the normals within `t` degrees of parallel to it
(floors, ceilings) and within `t` degrees of perpendicular (walls), and replace the estimate by
the direction that is most parallel to the first set and most perpendicular to the second, i.e.
the eigenvector with the smallest eigenvalue of `sum_perp n n^T - sum_par n n^T`; five
iterations with t = 45 degrees, then five with t = 15 degrees.

Coordinates: the camera frame has x to the right, y down the image and z forward; pixel (row v,
column u) has its centre at (u, v), so `x = (u - cx) z / fx` and `y = (v - cy) z / fy`.

Channel order: the result is (H, W, 3) with channel 0 the disparity, 1 the height and 2 the
angle, the order in which the original `saveHHA.m` writes its PNGs (red = disparity, green =
height, blue = angle); `ssma_tf.modalities.io.write_png` writes files in that same layout.

Missing depth (0 or non-finite) gives 0 in all three channels; fill holes first
(`ssma_tf.modalities.fill_depth`) where a dense encoding is wanted.
"""

import dataclasses
import os
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np

from ssma_tf.modalities.completion import units_per_metre
from ssma_tf.modalities.errors import ParameterError
from ssma_tf.modalities.io import InputFileError


@dataclasses.dataclass(frozen=True)
class Intrinsics:
    """Pinhole camera intrinsics in pixels.

    Attributes:
        fx: focal length along image columns.
        fy: focal length along image rows.
        cx: column of the principal point (0 = centre of the first pixel).
        cy: row of the principal point.
        width: image width the values refer to, if known (lets `scaled_to` adapt them).
        height: image height the values refer to, if known.
    """

    fx: float
    fy: float
    cx: float
    cy: float
    width: Optional[int] = None
    height: Optional[int] = None

    def __post_init__(self):
        for name in ("fx", "fy"):
            value = getattr(self, name)
            if not np.isfinite(value) or value <= 0:
                raise ParameterError(f"Intrinsics.{name} must be a positive number, got {value!r}")
        for name in ("cx", "cy"):
            if not np.isfinite(getattr(self, name)):
                raise ParameterError(f"Intrinsics.{name} must be finite, got {getattr(self, name)!r}")
        for name in ("width", "height"):
            value = getattr(self, name)
            # Before: a size of 0 passed here and `scaled_to` divided by it (ZeroDivisionError).
            if value is not None and (int(value) != value or value <= 0):
                raise ParameterError(f"Intrinsics.{name} must be a positive whole number of pixels, got {value!r}")
        if (self.width is None) != (self.height is None):
            raise ParameterError("Intrinsics.width and .height are given together or not at all, got "
                                 f"width={self.width!r}, height={self.height!r}")

    def from_one_based(self) -> "Intrinsics":
        """These intrinsics with a principal point given counting pixels from 1, as MATLAB code
        does (`meshgrid(1:W, 1:H)`), moved to this class's convention (the first pixel's centre 0)."""
        return dataclasses.replace(self, cx=self.cx - 1.0, cy=self.cy - 1.0)

    def scaled_to(self, width: int, height: int) -> "Intrinsics":
        """Returns the intrinsics of the same camera for an image resized to `width` x `height`.

        Raises:
            ValueError: if the image size these intrinsics refer to is unknown.
        """
        if self.width is None or self.height is None:
            raise ParameterError("these intrinsics do not say which image size they refer to")
        if (width, height) == (self.width, self.height):
            return self
        sx, sy = width / self.width, height / self.height
        # Pixel edges (at -0.5 and width - 0.5) map to pixel edges, so centres shift by half a pixel.
        return Intrinsics(
            fx=self.fx * sx,
            fy=self.fy * sy,
            cx=(self.cx + 0.5) * sx - 0.5,
            cy=(self.cy + 0.5) * sy - 0.5,
            width=width,
            height=height,
        )


# Published intrinsics for datasets with one camera model. SUN RGB-D has one intrinsics.txt per
# image (several sensors) and ScanNet one intrinsic_depth.txt per scene: read those with
# `read_intrinsics_file` when they differ from the default here.
INTRINSICS_PRESETS: Dict[str, Intrinsics] = {
    # NYU Depth v2 toolbox, camera_params.m, colour camera: the labelled depth maps are registered
    # to the colour images (also the NYU part of SUN RGB-D). The toolbox and the original HHA code
    # (getPointCloudFromZ.m) count pixels from 1 (`meshgrid(1:W, 1:H)`): its principal point
    # (325.5824, 253.7362) is (324.5824, 252.7362) here, where the first pixel's centre is 0
    # (before: taken as it was, every ray tilted by 1/519 rad, a quarter of the height channel's
    # values off by one from the original code's; helper 176).
    "nyuv2": Intrinsics(518.8579, 519.4696, 325.5824, 253.7362, width=640, height=480).from_one_based(),
    # ScanNet depth camera, the intrinsic_depth.txt of most scenes (640x480 depth frames).
    "scannet": Intrinsics(577.870605, 577.870605, 319.5, 239.5, width=640, height=480),
}


def get_intrinsics(name: str, image_size: Optional[Tuple[int, int]] = None) -> Intrinsics:
    """Returns a preset from `INTRINSICS_PRESETS`, optionally scaled to a resized image.

    Args:
        name: preset name, e.g. "nyuv2" or "scannet".
        image_size: (width, height) of the depth maps, if they were resized.

    Raises:
        ValueError: for an unknown name.
    """
    key = name.strip().lower()
    if key not in INTRINSICS_PRESETS:
        raise ParameterError(f"unknown intrinsics preset {name!r}; known: {sorted(INTRINSICS_PRESETS)}")
    intrinsics = INTRINSICS_PRESETS[key]
    if image_size is not None:
        intrinsics = intrinsics.scaled_to(*image_size)
    return intrinsics


def read_intrinsics_file(
    path: Union[str, os.PathLike], image_size: Optional[Tuple[int, int]] = None, one_based: bool = False
) -> Intrinsics:
    """Reads a camera matrix from a text file (3x3, 3x4 or 4x4 numbers, whitespace separated).

    This is the format of SUN RGB-D's `intrinsics.txt` and ScanNet's `intrinsic_depth.txt`.

    Args:
        path: the text file.
        image_size: (width, height) the matrix refers to, if known.
        one_based: the matrix's principal point counts pixels from 1, as MATLAB code does (SUN
            RGB-D's toolbox back-projects with `meshgrid(1:640, 1:480)`): 1 is subtracted from
            it. ScanNet's files count from 0 (319.5 at 640 pixels).

    Raises:
        InputFileError: if the file cannot be read or does not hold such a matrix.
    """
    try:
        with open(path, "r", encoding="utf-8") as f:
            numbers = [float(token) for token in f.read().split()]
    except OSError as exc:
        raise InputFileError(f"cannot read intrinsics '{path}': {exc.strerror or exc}") from None
    except ValueError as exc:
        raise InputFileError(f"intrinsics '{path}' holds something other than numbers: {exc}") from None
    shapes = {9: (3, 3), 12: (3, 4), 16: (4, 4)}
    if len(numbers) not in shapes:
        raise InputFileError(
            f"intrinsics '{path}' must hold a 3x3, 3x4 or 4x4 matrix, got {len(numbers)} numbers"
        )
    matrix = np.array(numbers).reshape(shapes[len(numbers)])
    width, height = image_size if image_size is not None else (None, None)
    try:
        intrinsics = Intrinsics(matrix[0, 0], matrix[1, 1], matrix[0, 2], matrix[1, 2], width, height)
    except ValueError as exc:
        raise InputFileError(f"intrinsics '{path}': {exc}") from None
    return intrinsics.from_one_based() if one_based else intrinsics


def backproject(depth_m: np.ndarray, intrinsics: Intrinsics) -> np.ndarray:
    """Returns the 3-D point of every pixel, in metres, in the camera frame.

    Args:
        depth_m: (H, W) depth along the optical axis in metres; missing values give NaN points.
        intrinsics: the camera.

    Returns:
        float64 array of shape (H, W, 3) holding (x, y, z).
    """
    depth_m = np.asarray(depth_m, dtype=np.float64)
    height, width = depth_m.shape
    z = np.where(np.isfinite(depth_m) & (depth_m > 0), depth_m, np.nan)
    u = np.arange(width, dtype=np.float64)[None, :]
    v = np.arange(height, dtype=np.float64)[:, None]
    x = (u - intrinsics.cx) * z / intrinsics.fx
    y = (v - intrinsics.cy) * z / intrinsics.fy
    return np.stack([x, y, z], axis=-1)


def surface_normals(
    points: np.ndarray, radius: int, *, stride: int = 1, min_points: int = 6
) -> np.ndarray:
    """Estimates unit surface normals by fitting a plane to the points of a square window.

    The normal is the direction of least variance (total least squares) of the valid points in
    the (2r+1)x(2r+1) window around each pixel; the window's sums come from integral images, and
    the smallest eigenvector of each 3x3 covariance is found in closed form, so the cost does not
    depend on the radius. Normals face the camera (n . p < 0).

    Args:
        points: (H, W, 3) points from `backproject`; NaN marks missing pixels.
        radius: window half-size in pixels (Gupta et al. use 3 for the angle channel, 10 for the
            gravity estimate).
        stride: compute the normals of every `stride`-th row and column only.
        min_points: fewer valid points in a window leave the normal undetermined.

    Returns:
        float64 (ceil(H / stride), ceil(W / stride), 3) unit normals; NaN where the pixel is
        missing or the fit undetermined.
    """
    return _normals_from_moments(_integral_moments(points), points, radius, stride, min_points)


def _integral_moments(points: np.ndarray) -> np.ndarray:
    """Integral images of 1, x, y, z and their six products over the valid points.

    Returns a float64 array of shape (10, H + 1, W + 1) whose [k, i, j] is the sum of quantity k
    over rows < i and columns < j.
    """
    valid = np.all(np.isfinite(points), axis=-1)
    # Centring on the mean point keeps the sums small, so the covariance E[pp] - E[p]E[p] of a
    # small window loses fewer digits to cancellation.
    centred = np.where(valid[..., None], points - np.nanmean(points[valid], axis=0), 0.0)
    x, y, z = centred[..., 0], centred[..., 1], centred[..., 2]
    height, width = valid.shape
    integral = np.zeros((10, height + 1, width + 1), dtype=np.float64)
    quantities = integral[:, 1:, 1:]
    quantities[0] = valid
    quantities[1], quantities[2], quantities[3] = x, y, z
    quantities[4], quantities[5], quantities[6] = x * x, x * y, x * z
    quantities[7], quantities[8], quantities[9] = y * y, y * z, z * z
    np.cumsum(quantities, axis=1, out=quantities)
    np.cumsum(quantities, axis=2, out=quantities)
    return integral


def _normals_from_moments(
    integral: np.ndarray, points: np.ndarray, radius: int, stride: int, min_points: int
) -> np.ndarray:
    # Window sums from four corners of the integral image. Replicating its edges makes the
    # corners of windows that leave the image fall on its border, so plain strided slices (views,
    # no gathers) address them.
    padded = np.pad(integral, ((0, 0), (radius, radius + 1), (radius, radius + 1)), mode="edge")
    height, width = points.shape[:2]
    size = 2 * radius + 1

    def corner(row: int, col: int) -> np.ndarray:
        return padded[:, row:row + height:stride, col:col + width:stride]

    sums = corner(size, size) - corner(0, size) - corner(size, 0) + corner(0, 0)
    count = sums[0]
    inverse = 1.0 / np.maximum(count, 1.0)
    mx, my, mz = sums[1] * inverse, sums[2] * inverse, sums[3] * inverse
    normals = smallest_eigenvectors(
        sums[4] * inverse - mx * mx,
        sums[5] * inverse - mx * my,
        sums[6] * inverse - mx * mz,
        sums[7] * inverse - my * my,
        sums[8] * inverse - my * mz,
        sums[9] * inverse - mz * mz,
    )
    centre = points[::stride, ::stride]
    valid = np.all(np.isfinite(centre), axis=-1)
    # Orient towards the camera; the sign of an eigenvector is arbitrary.
    facing_away = np.sum(normals * np.where(valid[..., None], centre, 0.0), axis=-1) > 0
    normals = np.where(facing_away[..., None], -normals, normals)
    normals[~valid | (count < min_points)] = np.nan
    return normals


def smallest_eigenvectors(a11, a12, a13, a22, a23, a33) -> np.ndarray:
    """Unit eigenvectors of the smallest eigenvalue of symmetric 3x3 matrices, vectorised.

    The eigenvalues come from the trigonometric solution of the characteristic cubic; the
    eigenvector is the largest cross product of two rows of `A - lambda_min I` (whose rows span
    the plane orthogonal to it).

    Args:
        a11, a12, a13, a22, a23, a33: arrays of one shape, the upper triangles of the matrices.

    Returns:
        float64 array of shape a11.shape + (3,); NaN where the smallest eigenvalue is not simple
        (e.g. a multiple of the identity, or points on a line), so that no direction is made up.
    """
    a11, a12, a13, a22, a23, a33 = (
        np.asarray(a, dtype=np.float64) for a in (a11, a12, a13, a22, a23, a33)
    )
    q = (a11 + a22 + a33) / 3.0
    p1 = a12 * a12 + a13 * a13 + a23 * a23
    d11, d22, d33 = a11 - q, a22 - q, a33 - q
    p = np.sqrt((d11 * d11 + d22 * d22 + d33 * d33 + 2.0 * p1) / 6.0)
    inv_p = 1.0 / np.where(p > 0, p, 1.0)
    b11, b22, b33 = d11 * inv_p, d22 * inv_p, d33 * inv_p
    b12, b13, b23 = a12 * inv_p, a13 * inv_p, a23 * inv_p
    det_b = b11 * (b22 * b33 - b23 * b23) - b12 * (b12 * b33 - b23 * b13) + b13 * (b12 * b23 - b22 * b13)
    phi = np.arccos(np.clip(det_b * 0.5, -1.0, 1.0)) / 3.0
    smallest = q + 2.0 * p * np.cos(phi + 2.0 * np.pi / 3.0)
    m11, m22, m33 = a11 - smallest, a22 - smallest, a33 - smallest
    # Rows r0 = (m11, a12, a13), r1 = (a12, m22, a23), r2 = (a13, a23, m33); their pairwise cross
    # products are all parallel to the eigenvector, the largest is the most accurate.
    cross01 = (a12 * a23 - a13 * m22, a13 * a12 - m11 * a23, m11 * m22 - a12 * a12)
    cross02 = (a12 * m33 - a13 * a23, a13 * a13 - m11 * m33, m11 * a23 - a12 * a13)
    cross12 = (m22 * m33 - a23 * a23, a23 * a13 - a12 * m33, a12 * a23 - m22 * a13)
    norm01 = cross01[0] ** 2 + cross01[1] ** 2 + cross01[2] ** 2
    norm02 = cross02[0] ** 2 + cross02[1] ** 2 + cross02[2] ** 2
    norm12 = cross12[0] ** 2 + cross12[1] ** 2 + cross12[2] ** 2
    use02 = norm02 > norm01
    best = [np.where(use02, b, a) for a, b in zip(cross01, cross02)]
    best_norm = np.where(use02, norm02, norm01)
    use12 = norm12 > best_norm
    best = [np.where(use12, c, b) for b, c in zip(best, cross12)]
    best_norm = np.sqrt(np.where(use12, norm12, best_norm))
    # The largest cross product is about the product of the gaps to the other two eigenvalues;
    # one that vanishes relative to the matrix scale means a repeated smallest eigenvalue.
    scale = np.abs(a11) + np.abs(a22) + np.abs(a33) + 2.0 * np.sqrt(p1)
    degenerate = ~(best_norm > 1e-12 * scale * scale) | ~(p > 0)
    inv_norm = 1.0 / np.where(degenerate, 1.0, best_norm)
    out = np.stack([c * inv_norm for c in best], axis=-1)
    out[degenerate] = np.nan
    return out


def estimate_gravity(
    normals: np.ndarray,
    *,
    angle_thresholds: Sequence[float] = (45.0, 15.0),
    iterations: Sequence[int] = (5, 5),
    initial: Sequence[float] = (0.0, 1.0, 0.0),
) -> np.ndarray:
    """Estimates the gravity direction (pointing down) from surface normals.

    Gupta et al. (CVPR 2013): for each threshold t, repeatedly split the normals into those
    within t degrees of parallel to the estimate and those within t degrees of perpendicular,
    and take the smallest-eigenvalue eigenvector of `N_perp^T N_perp - N_par^T N_par`, signed to
    agree with the previous estimate. Where the smallest eigenvalue is repeated (e.g. a scene of
    one wall says nothing about rotation within the wall's plane), the previous estimate is
    projected onto that eigenspace instead of picking an arbitrary direction in it.

    Args:
        normals: (..., 3) unit normals; rows with NaN are ignored. Their sign does not matter.
        angle_thresholds: thresholds t in degrees, one stage each.
        iterations: iterations per stage.
        initial: starting estimate, the camera's y axis (image down) by default.

    Returns:
        float64 unit vector of shape (3,) in the camera frame.

    Raises:
        ValueError: if the thresholds and iterations do not pair up or `initial` is zero.
    """
    if len(angle_thresholds) != len(iterations):
        raise ParameterError(
            f"angle_thresholds {tuple(angle_thresholds)} and iterations {tuple(iterations)} must "
            "have the same length"
        )
    direction = np.asarray(initial, dtype=np.float64)
    if direction.shape != (3,) or not np.linalg.norm(direction) > 0:
        raise ParameterError(f"initial must be a non-zero 3-vector, got {initial!r}")
    direction = direction / np.linalg.norm(direction)
    n = np.asarray(normals, dtype=np.float64).reshape(-1, 3)
    n = n[np.all(np.isfinite(n), axis=1)]
    if len(n) == 0:
        return direction
    for threshold, count in zip(angle_thresholds, iterations):
        cos_t, sin_t = np.cos(np.radians(threshold)), np.sin(np.radians(threshold))
        for _ in range(int(count)):
            similarity = np.abs(n @ direction)
            parallel = n[similarity > cos_t]
            perpendicular = n[similarity < sin_t]
            matrix = perpendicular.T @ perpendicular - parallel.T @ parallel
            eigenvalues, eigenvectors = np.linalg.eigh(matrix)
            tolerance = 1e-9 * max(1.0, float(np.abs(eigenvalues).max()))
            space = eigenvectors[:, eigenvalues <= eigenvalues[0] + tolerance]
            candidate = space @ (space.T @ direction)
            if np.linalg.norm(candidate) < 1e-9:
                # The old estimate is orthogonal to the whole eigenspace: any member is as good.
                candidate = space[:, 0]
            candidate = candidate / np.linalg.norm(candidate)
            direction = candidate if candidate @ direction >= 0 else -candidate
    return direction


def encode_hha(
    depth: np.ndarray,
    intrinsics: Intrinsics,
    *,
    units: Union[str, float] = "m",
    normal_radius: int = 3,
    gravity_radius: int = 10,
    gravity_stride: int = 2,
    gravity: Optional[Sequence[float]] = None,
    floor_percentile: float = 0.0,
    assume_floor: bool = True,
) -> np.ndarray:
    """Encodes metric depth as HHA (horizontal disparity, height, angle), see the module docstring.

    Args:
        depth: (H, W) depth along the optical axis; 0 and non-finite values are missing.
        intrinsics: the depth camera; use `Intrinsics.scaled_to` if the depth was resized.
        units: units of `depth`: "m", "cm", "mm" or units per metre.
        normal_radius: window half-size for the normals of the angle channel (3, as Gupta et al.).
        gravity_radius: window half-size for the normals that estimate gravity (10).
        gravity_stride: use every n-th row and column of those normals (they are smooth at this
            scale, and the estimate only needs their distribution).
        gravity: a known gravity direction (down) in the camera frame, to skip the estimate.
        floor_percentile: percentile of the heights taken as height 0; 0 (the lowest point, as
            in the original) or a little more to ignore outliers below the floor.
        assume_floor: as the original, take the floor 130 cm below the camera when that height
            is less than 90 cm below it (no floor in view); False: always that height.

    Returns:
        uint8 (H, W, 3): disparity, height, angle; 0 where depth is missing (and in the angle
        channel where no normal can be fitted).

    Raises:
        ValueError: if `depth` is not 2-D or an argument is out of range.
    """
    depth = np.asarray(depth)
    if depth.ndim != 2:
        raise ParameterError(f"encode_hha expects a 2-D depth map, got shape {depth.shape}")
    for name, value in (("normal_radius", normal_radius), ("gravity_radius", gravity_radius)):
        if int(value) != value or value < 1:
            raise ParameterError(f"{name} must be a positive integer, got {value!r}")
    if int(gravity_stride) != gravity_stride or gravity_stride < 1:
        raise ParameterError(f"gravity_stride must be a positive integer, got {gravity_stride!r}")
    if not 0.0 <= floor_percentile <= 100.0:
        raise ParameterError(f"floor_percentile must be in 0..100, got {floor_percentile!r}")
    metres = depth.astype(np.float64) / units_per_metre(units)
    points = backproject(metres, intrinsics)
    valid = np.all(np.isfinite(points), axis=-1)
    out = np.zeros(depth.shape + (3,), dtype=np.uint8)
    if not valid.any():
        return out

    moments = _integral_moments(points)
    if gravity is None:
        coarse = _normals_from_moments(moments, points, int(gravity_radius), int(gravity_stride), 6)
        down = estimate_gravity(coarse)
    else:
        down = np.asarray(gravity, dtype=np.float64)
        if down.shape != (3,) or not np.linalg.norm(down) > 0:
            raise ParameterError(f"gravity must be a non-zero 3-vector, got {gravity!r}")
        down = down / np.linalg.norm(down)
    up = -down
    normals = _normals_from_moments(moments, points, int(normal_radius), 1, 6)

    z_cm = points[..., 2] * 100.0
    # Clamping depth at 1 m keeps the disparity of very near points from dominating the range.
    disparity = 31000.0 / np.maximum(np.where(valid, z_cm, 100.0), 100.0)
    height_cm = (points @ up) * 100.0
    floor_cm = float(np.percentile(height_cm[valid], floor_percentile))  # relative to the camera
    if assume_floor and floor_cm > -90.0:
        floor_cm = -130.0  # before: a wall close up got heights above its own lowest point
    height_cm = height_cm - floor_cm
    has_normal = np.all(np.isfinite(normals), axis=-1)
    cosine = np.clip(np.where(has_normal[..., None], normals, 0.0) @ up, -1.0, 1.0)
    angle = np.degrees(np.arccos(cosine)) + 128.0 - 90.0

    out[..., 0] = np.where(valid, _to_uint8(disparity), 0)
    out[..., 1] = np.where(valid, _to_uint8(np.where(valid, height_cm, 0.0)), 0)
    out[..., 2] = np.where(has_normal, _to_uint8(angle), 0)
    return out


def _to_uint8(values: np.ndarray) -> np.ndarray:
    """Rounds half up and saturates, as MATLAB's uint8() does for these non-negative channels."""
    return np.clip(np.floor(values + 0.5), 0, 255).astype(np.uint8)
