"""Groups of views of one target image, and moving predictions between the views' frames.

Self-supervised augmentation consistency (Araslanov and Roth, CVPR 2021) looks at each target
image through a group of views: the image is scaled up by s ~ U[1, 1.1] and cropped back to the
training size (the *base* frame, flipped for the whole group with p 0.5); view 0 is the base
frame itself, views 1..T-1 zoom into a crop of relative size r ~ U[0.5, 1] of it, resized back;
every view is flipped once more on its own with p 0.5. The teacher's predictions on all views
are brought into the base frame, averaged where they overlap, and taken back into each view.

Geometry is held as 3x3 matrices on continuous pixel coordinates (pixel (i, j) covers
[j, j+1] x [i, i+1], its centre at (j + 0.5, i + 0.5)):

- `to_image[v]` maps view v's coordinates to the (resized) input image's;
- `to_base[v]` maps view v's coordinates to the base frame's (view 0's without its own flip).

Sampling uses TensorFlow's projective-transform kernel, which maps *output pixel indices* to
input pixel indices; `_index_transform` converts.
"""

from __future__ import annotations

from typing import Sequence, Tuple

import tensorflow as tf

# The released augmentation (datasets/dataloader_target.py and the training config of da-sac).
SCALE_RANGE = (1.0, 1.1)
ZOOM_RANGE = (0.5, 1.0)
FLIP_PROBABILITY = 0.5
# Pixels whose views' weights add up to less than this get no averaged prediction (as released).
COVERAGE_TOLERANCE = 0.1


def _translate(x, y):
    one, zero = tf.ones_like(x), tf.zeros_like(x)
    return tf.stack([tf.stack([one, zero, x]), tf.stack([zero, one, y]),
                     tf.stack([zero, zero, one])])


def _scale(sx, sy):
    zero, one = tf.zeros_like(sx), tf.ones_like(sx)
    return tf.stack([tf.stack([sx, zero, zero]), tf.stack([zero, sy, zero]),
                     tf.stack([zero, zero, one])])


def _flip(flip, width):
    """x -> width - x when `flip` (a bool tensor), else the identity."""
    sign = tf.where(flip, -1.0, 1.0)
    shift = tf.where(flip, tf.cast(width, tf.float32), 0.0)
    return tf.linalg.matmul(_translate(shift, tf.constant(0.0)), _scale(sign, tf.constant(1.0)))


def sample_group(
    seed: tf.Tensor,
    views: int,
    height: int,
    width: int,
    scale_range: Sequence[float] = SCALE_RANGE,
    zoom_range: Sequence[float] = ZOOM_RANGE,
    flip_probability: float = FLIP_PROBABILITY,
) -> Tuple[tf.Tensor, tf.Tensor]:
    """Draws the geometry of one group of views.

    Args:
        seed: a stateless seed (shape [2], int32/int64).
        views: T, the views in the group (>= 1).
        height, width: the size of the image and of every view.
        scale_range: range of the base frame's upscaling s (the crop is 1/s of the image).
        zoom_range: range of the relative crop size r of views 1..T-1.
        flip_probability: probability of the group's flip and of each view's own flip.

    Returns:
        `(to_image, to_base)`, both float32 (T, 3, 3) (see the module docstring).
    """
    seed = tf.cast(seed, tf.int64)
    draws = tf.random.stateless_uniform([4 + 5 * views], seed=seed, dtype=tf.float32)
    w, h = float(width), float(height)
    scale = scale_range[0] + (scale_range[1] - scale_range[0]) * draws[0]
    crop_w, crop_h = w / scale, h / scale
    origin = _translate(draws[1] * (w - crop_w), draws[2] * (h - crop_h))
    base_to_image = tf.linalg.matmul(
        tf.linalg.matmul(origin, _scale(1.0 / scale, 1.0 / scale)),
        _flip(draws[3] < flip_probability, w),
    )
    to_base, to_image = [], []
    for v in range(views):
        d = draws[4 + 5 * v: 9 + 5 * v]
        if v == 0:
            zoom, left, top = tf.constant(1.0), tf.constant(0.0), tf.constant(0.0)
        else:
            zoom = zoom_range[0] + (zoom_range[1] - zoom_range[0]) * d[0]
            left, top = d[1] * w * (1.0 - zoom), d[2] * h * (1.0 - zoom)
        view_to_base = tf.linalg.matmul(
            tf.linalg.matmul(_translate(left, top), _scale(zoom, zoom)),
            _flip(d[3] < flip_probability, w),
        )
        to_base.append(view_to_base)
        to_image.append(tf.linalg.matmul(base_to_image, view_to_base))
    return tf.stack(to_image), tf.stack(to_base)


def _index_transform(output_to_input: tf.Tensor) -> tf.Tensor:
    """The kernel's 8 parameters for continuous-coordinate matrices (N, 3, 3) -> (N, 8)."""
    n = tf.shape(output_to_input)[0]
    half = tf.broadcast_to(_translate(tf.constant(0.5), tf.constant(0.5)), [n, 3, 3])
    minus_half = tf.broadcast_to(_translate(tf.constant(-0.5), tf.constant(-0.5)), [n, 3, 3])
    matrix = tf.linalg.matmul(tf.linalg.matmul(minus_half, output_to_input), half)
    matrix = matrix / matrix[:, 2:3, 2:3]
    return tf.reshape(matrix, [n, 9])[:, :8]


def warp(
    images: tf.Tensor,
    output_to_input: tf.Tensor,
    size: Tuple[int, int],
    interpolation: str = "bilinear",
    fill: str = "nearest",
) -> tf.Tensor:
    """Samples `images` (N, H, W, C) at `output_to_input` (N, 3, 3) into (N, *size, C).

    Args:
        size: the output's height and width: numbers, or scalar tensors.
        interpolation: "bilinear" or "nearest".
        fill: "nearest" repeats the border (for images), "constant" gives zeros outside (for
            predictions and coverage masks).
    """
    transforms = _index_transform(tf.cast(output_to_input, tf.float32))
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=tf.cast(images, tf.float32),
        transforms=transforms,
        # Sizes known only when the graph runs too (`render_views` of an image of unknown size;
        # before: `tf.constant` refused them, helper 252).
        output_shape=tf.cast(tf.stack(size), tf.int32),
        fill_value=0.0,
        interpolation=interpolation.upper(),
        fill_mode=fill.upper(),
    )


def render_views(image: tf.Tensor, to_image: tf.Tensor, interpolation: str = "bilinear") -> tf.Tensor:
    """The T views (T, H, W, C) of one image (H, W, C), all of the image's size."""
    height, width = image.shape[0], image.shape[1]
    if height is None or width is None:
        height, width = tf.shape(image)[0], tf.shape(image)[1]
    views = tf.shape(to_image)[0]
    stacked = tf.broadcast_to(image[None], tf.concat([[views], tf.shape(image)], 0))
    return warp(stacked, to_image, (height, width), interpolation, "nearest")


def pool_views(probs: tf.Tensor, to_base: tf.Tensor, views_per_group: int) -> Tuple[tf.Tensor, tf.Tensor]:
    """Averages the views' predictions in the base frame and takes the average back to each view.

    As released: each view's probabilities are warped into the base frame (zero outside the
    view, bilinear weights at its border), summed over the group and divided by the summed
    weight; points that no view covers (weight <= `COVERAGE_TOLERANCE`) get nothing. The average
    is then warped into each view's frame.

    Args:
        probs: (G·T, H, W, C) per-pixel class probabilities of G groups of T views, group-major.
        to_base: (G·T, 3, 3) each view's `to_base` matrix.
        views_per_group: T.

    Returns:
        `(pooled, coverage)`: (G·T, H, W, C) the averaged probabilities seen from each view (zero
        where uncovered), and (G·T, H, W) the coverage there in [0, 1].
    """
    height, width, classes = probs.shape[1], probs.shape[2], probs.shape[3]
    size = (height, width)
    t = int(views_per_group)
    probs = tf.cast(probs, tf.float32)
    # Base frame <- view v: the inverse mapping, zeros outside the view.
    base_to_view = tf.linalg.inv(tf.cast(to_base, tf.float32))
    aligned = warp(probs, base_to_view, size, "bilinear", "constant")
    valid = warp(tf.ones_like(probs[..., :1]), base_to_view, size, "bilinear", "constant")
    summed = tf.reduce_sum(tf.reshape(aligned * valid, [-1, t, height, width, classes]), axis=1)
    weight = tf.reduce_sum(summed, axis=-1, keepdims=True)
    average = summed / tf.maximum(weight, 1e-3)
    covered = tf.cast(weight > COVERAGE_TOLERANCE, tf.float32)
    average = tf.repeat(average, t, axis=0)
    covered = tf.repeat(covered, t, axis=0)
    # View v <- base frame.
    pooled = warp(average, to_base, size, "bilinear", "constant")
    coverage = warp(covered, to_base, size, "bilinear", "constant")
    return pooled * coverage, coverage[..., 0]
