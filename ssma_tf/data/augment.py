"""Joint augmentation of all modalities and the label (AdapNet++ paper, Section 5.1.3).

The paper augments with rotation (-13..13 degrees), skewing (0.05..0.10), scaling (0.5..2.0),
vignetting (210..300), cropping (0.8..0.9), brightness (-40..40), contrast (0.5..1.5) and
flipping. Geometric transforms act on every modality (two or more) and the label with the same random
parameters; the photometric ones (brightness, contrast, vignetting) on modality 1 only.

All geometric transforms, and the resize to the training size, are composed into one affine
map from output to input pixels, and every tensor is sampled once with it using core
TensorFlow only (no tensorflow-addons): modality 1 bilinearly with
`tf.raw_ops.ImageProjectiveTransformV3`, the label and (by default) modality 2 by
nearest-neighbour gathers, so that labels are never interpolated. Output pixels that map
outside the source image are void (0) in the label and 0 in the images.

Randomness is stateless: each sample gets its own seed, so a fixed seed reproduces the same
batches whatever the parallelism of the input pipeline.
"""

from __future__ import annotations

import math
from typing import Dict, Mapping, Sequence, Tuple, Union

import tensorflow as tf

# The settings are a config section, declared with the other config keys (no TensorFlow there).
from ssma_tf.config.augmentation import AugmentationConfig
from ssma_tf.resampling import modality_interpolations

__all__ = ["AugmentationConfig", "augment_sample", "resize_label", "resize_sample"]

# Vignetting radii are given for the paper's 768-pixel-wide images and scaled with the width.
VIGNETTING_REFERENCE_WIDTH = 768.0


# Positions in the vector of uniform draws made for each sample.
(
    _ROT_ON, _ROT,
    _SKEW_ON, _SKEW, _SKEW_SIGN,
    _SCALE_ON, _SCALE,
    _CROP_ON, _CROP, _CROP_X, _CROP_Y,
    _FLIP_ON,
    _BRIGHT_ON, _BRIGHT,
    _CONTRAST_ON, _CONTRAST,
    _VIGNETTE_ON, _VIGNETTE,
    _NUM_DRAWS,
) = range(19)


def further_modalities(sample: Mapping[str, tf.Tensor]) -> list:
    """The keys of the modalities after the first in `sample`: `modality2`, `modality3`, ..."""
    keys = []
    while f"modality{len(keys) + 2}" in sample:
        keys.append(f"modality{len(keys) + 2}")
    return keys


def _matrix(rows) -> tf.Tensor:
    return tf.stack([tf.stack([tf.cast(v, tf.float32) for v in row]) for row in rows])


def _geometry(
    draws: tf.Tensor,
    config: AugmentationConfig,
    in_size: Tuple[tf.Tensor, tf.Tensor],
    out_size: Tuple[int, int],
) -> tf.Tensor:
    """Returns the 8 projective coefficients mapping output pixels to input pixels."""
    h, w = (tf.cast(v, tf.float32) for v in in_size)
    out_h, out_w = float(out_size[0]), float(out_size[1])
    p = config.probability

    def pick(on_index: int, enabled: bool, value: tf.Tensor, identity: float) -> tf.Tensor:
        if not enabled:
            return tf.constant(identity, tf.float32)
        return tf.where(draws[on_index] < p, value, identity)

    def uniform(index: int, value_range: Tuple[float, float]) -> tf.Tensor:
        low, high = value_range
        return low + (high - low) * draws[index]

    degrees = pick(_ROT_ON, config.rotation, uniform(_ROT, config.rotation_range), 0.0)
    angle = degrees * (math.pi / 180.0)
    sign = tf.where(draws[_SKEW_SIGN] < 0.5, -1.0, 1.0)
    shear = pick(_SKEW_ON, config.skew, sign * uniform(_SKEW, config.skew_range), 0.0)
    zoom = pick(_SCALE_ON, config.scale, uniform(_SCALE, config.scale_range), 1.0)
    crop = pick(_CROP_ON, config.crop, uniform(_CROP, config.crop_range), 1.0)
    crop_x = (1.0 - crop) * draws[_CROP_X]
    crop_y = (1.0 - crop) * draws[_CROP_Y]
    flip = pick(_FLIP_ON, config.flip, tf.constant(1.0), 0.0)

    one, zero = tf.constant(1.0), tf.constant(0.0)
    # Output pixel index -> fraction of the augmented canvas (pixel centres at +0.5), inside
    # the crop window.
    to_canvas = _matrix([[crop / out_w, zero, crop_x + 0.5 * crop / out_w],
                         [zero, crop / out_h, crop_y + 0.5 * crop / out_h],
                         [zero, zero, one]])
    mirror = _matrix([[1.0 - 2.0 * flip, zero, flip], [zero, one, zero], [zero, zero, one]])
    # Canvas fraction -> output pixel units relative to the image centre: the paper resizes to the
    # training size first and augments that image, so angles and shear factors are of output
    # pixels, true on non-square images (before: of input pixels, then resized; a 4:3 image made
    # 2:1 turned horizontal lines by 8.7 degrees and vertical ones by 19.1 for a rotation of 13,
    # and its skew grew by half; helper 322).
    centre = _matrix([[out_w, zero, -0.5 * out_w], [zero, out_h, -0.5 * out_h], [zero, zero, one]])
    # Inverse of (zoom * rotation * shear), applied about the centre.
    cos, sin = tf.cos(angle), tf.sin(angle)
    unrotate = _matrix([[cos, -sin, zero], [sin, cos, zero], [zero, zero, one]])
    unshear = _matrix([[one, -shear, zero], [zero, one, zero], [zero, zero, one]])
    unzoom = _matrix([[1.0 / zoom, zero, zero], [zero, 1.0 / zoom, zero], [zero, zero, one]])
    # Output pixel units -> input pixel units (the resize), then input pixel indices (pixel
    # centres at integers).
    resize = _matrix([[w / out_w, zero, zero], [zero, h / out_h, zero], [zero, zero, one]])
    to_pixels = _matrix([[one, zero, 0.5 * w - 0.5], [zero, one, 0.5 * h - 0.5], [zero, zero, one]])
    m = to_pixels @ resize @ unshear @ unrotate @ unzoom @ centre @ mirror @ to_canvas
    return tf.reshape(m, [-1])[:8]


def _bilinear(image: tf.Tensor, transform: tf.Tensor, out_size: Tuple[int, int]) -> tf.Tensor:
    """Samples an HxWxC float image bilinearly at the affine map `transform`.

    Coordinates outside the image are clamped to the edge, as `tf.image.resize` does; the
    caller zeroes the pixels that lie outside (see `_nearest_indices`).
    """
    warped = tf.raw_ops.ImageProjectiveTransformV3(
        images=image[tf.newaxis],
        transforms=transform[tf.newaxis],
        output_shape=tf.constant(out_size, tf.int32),
        fill_value=tf.constant(0.0, tf.float32),
        interpolation="BILINEAR",
        fill_mode="NEAREST",
    )
    return warped[0]


def _nearest_indices(
    transform: tf.Tensor, in_size: Tuple[tf.Tensor, tf.Tensor], out_size: Tuple[int, int]
) -> Tuple[tf.Tensor, tf.Tensor]:
    """Flat source index of each output pixel (nearest neighbour) and where it is inside.

    Outside pixels get index h * w, one past the image, where `_gather` keeps a zero, so a
    single gather samples all channels and fills the outside with 0. Rounding is
    floor(x + 0.5), which is exactly the nearest-neighbour rule of `tf.image.resize`.
    """
    h, w = in_size
    hf, wf = tf.cast(h, tf.float32), tf.cast(w, tf.float32)
    xs = tf.range(out_size[1], dtype=tf.float32)[tf.newaxis, :]
    ys = tf.range(out_size[0], dtype=tf.float32)[:, tf.newaxis]
    x = tf.floor(transform[0] * xs + transform[1] * ys + (transform[2] + 0.5))
    y = tf.floor(transform[3] * xs + transform[4] * ys + (transform[5] + 0.5))
    inside = (x >= 0.0) & (x <= wf - 1.0) & (y >= 0.0) & (y <= hf - 1.0)
    index = tf.cast(tf.clip_by_value(y, 0.0, hf - 1.0), tf.int32) * w + tf.cast(
        tf.clip_by_value(x, 0.0, wf - 1.0), tf.int32
    )
    return tf.where(inside, index, h * w), inside


def _gather(image: tf.Tensor, index: tf.Tensor) -> tf.Tensor:
    """Gathers HxW or HxWxC `image` at flat indices; index h * w gives 0."""
    if image.shape.rank == 2:
        flat = tf.concat([tf.reshape(image, [-1]), tf.zeros([1], image.dtype)], 0)
    else:
        channels = image.shape[-1]
        flat = tf.concat(
            [tf.reshape(image, [-1, channels]), tf.zeros([1, channels], image.dtype)], 0
        )
    return tf.gather(flat, index)


def _photometric_gain(
    valid: tf.Tensor, draws: tf.Tensor, config: AugmentationConfig, out_size: Tuple[int, int]
) -> tf.Tensor:
    """Per-pixel factor (HxW): the vignetting falloff, times 0 outside the image."""
    gain = tf.cast(valid, tf.float32)
    if config.vignetting:
        low, high = config.vignetting_range
        out_h, out_w = out_size
        sigma = (low + (high - low) * draws[_VIGNETTE]) * (out_w / VIGNETTING_REFERENCE_WIDTH)
        ys = tf.range(out_h, dtype=tf.float32) - 0.5 * (out_h - 1)
        xs = tf.range(out_w, dtype=tf.float32) - 0.5 * (out_w - 1)
        # A 2-D Gaussian is the outer product of two 1-D ones: H + W exponentials, not H * W.
        falloff_y = tf.exp(-(ys**2) / (2.0 * sigma**2))
        falloff_x = tf.exp(-(xs**2) / (2.0 * sigma**2))
        falloff = falloff_y[:, tf.newaxis] * falloff_x
        gain = tf.where(draws[_VIGNETTE_ON] < config.probability, gain * falloff, gain)
    return gain


def _photometric(
    image: tf.Tensor,
    valid: tf.Tensor,
    draws: tf.Tensor,
    config: AugmentationConfig,
    out_size: Tuple[int, int],
) -> tf.Tensor:
    """Contrast, brightness and vignetting of modality 1 (HxWx3 float); 0 outside the image."""
    p = config.probability
    factor = tf.constant(1.0)
    offset = tf.constant(0.0)
    if config.contrast:
        low, high = config.contrast_range
        factor = tf.where(draws[_CONTRAST_ON] < p, low + (high - low) * draws[_CONTRAST], 1.0)
        # Contrast is scaled about the mean intensity of the pixels inside the image (void
        # border would drag it towards black); one mean for all channels keeps the hue.
        mask = tf.cast(valid, tf.float32)
        total = tf.reduce_sum(tf.einsum("hw,hwc->c", mask, image))
        mean = total / tf.maximum(3.0 * tf.reduce_sum(mask), 1.0)
        offset = (1.0 - factor) * mean
    if config.brightness:
        low, high = config.brightness_range
        offset += tf.where(draws[_BRIGHT_ON] < p, low + (high - low) * draws[_BRIGHT], 0.0)
    if config.contrast or config.brightness:
        image = tf.clip_by_value(image * factor + offset, 0.0, 255.0)
    gain = _photometric_gain(valid, draws, config, out_size)
    return image * gain[..., tf.newaxis]


def _same_size_as_label(sample: Mapping[str, tf.Tensor], name: str) -> tf.Tensor:
    """`sample[name]`, checked to have the label's height and width.

    Sizes known statically are compared now (a ValueError naming `name` and both sizes); the
    others when the sample runs (`tf.debugging.assert_equal`, an InvalidArgumentError).
    """
    # Before: every image was sampled at positions computed from the label's size only, so a
    # 64x64 modality with a 32x32 label gave wrong pixels without an error; helper 362.
    image, label = sample[name], sample["label"]
    ours, theirs = image.shape[:2], label.shape[:2]
    if ours.rank == 2 and theirs.rank == 2:
        if any(a is not None and b is not None and a != b for a, b in zip(ours.as_list(), theirs.as_list())):
            raise ValueError(f"augment_sample: {name} is {ours[0]}x{ours[1]} (height x width) but the label is "
                             f"{theirs[0]}x{theirs[1]}; every image must have the label's size")
        if ours.is_fully_defined() and theirs.is_fully_defined():
            return image
    check = tf.debugging.assert_equal(
        tf.shape(image)[:2], tf.shape(label)[:2],
        message=f"augment_sample: {name} (height, width; first) differs from the label (second); every image "
                "must have the size of the label")
    with tf.control_dependencies([check]):
        return tf.identity(image)


def augment_sample(
    sample: Mapping[str, tf.Tensor],
    *,
    height: int,
    width: int,
    config: AugmentationConfig,
    seed: tf.Tensor,
    modality2_interpolation: Union[str, Sequence[str]] = "nearest",
    return_valid: bool = False,
) -> Dict[str, tf.Tensor]:
    """Jointly augments one decoded sample and resizes it to `height` x `width`.

    Args:
        sample: `modality1` (HxWx3), `label` (HxW) and optionally `modality2`, `modality3`, ...
            (HxWx3), all of the same size, any numeric dtype (as decoded: uint8). An image of
            another height or width than the label's is refused (the sampling positions are
            computed from the label's size); `resize_sample` resizes each tensor on its own.
        height: Output height.
        width: Output width.
        config: Which transforms to apply, and their ranges.
        seed: Shape [2] integer tensor; the same seed gives the same augmentation.
        modality2_interpolation: "nearest" (depth-like maps) or "bilinear" for every modality
            after the first, or a list with one of them per modality 2, 3, ...
        return_valid: the dict also holds bool `valid` (height, width), False at the pixels
            from outside the source image (what scaling down, rotation and skew bring in).

    Returns:
        A dict with float32 `modality1` (and `modality2`, ...) of shape (height, width, 3),
        values 0..255, and int32 `label` (height, width); pixels from outside the source image
        are 0 in every tensor (void in the label).

    Raises:
        ValueError: an image whose static height or width differs from the label's, or a bad
            `modality2_interpolation`.
        tf.errors.InvalidArgumentError: the same size mismatch found when the sample runs, where
            the sizes are not known statically (inside a `tf.function` or `tf.data` map).
    """
    further = further_modalities(sample)
    methods = modality_interpolations(modality2_interpolation, len(further))
    sample = {key: tf.convert_to_tensor(value) for key, value in sample.items()}
    for name in ["modality1"] + further:
        sample[name] = _same_size_as_label(sample, name)
    out_size = (int(height), int(width))
    draws = tf.random.stateless_uniform([_NUM_DRAWS], seed=seed, dtype=tf.float32)
    in_shape = tf.shape(sample["label"])
    in_size = (in_shape[0], in_shape[1])
    transform = _geometry(draws, config, in_size, out_size)
    # Nearest-neighbour sampling is a gather at indices computed once for the label and
    # modality 2; it is several times cheaper than the generic warp op.
    index, valid = _nearest_indices(transform, in_size, out_size)

    m1 = _bilinear(tf.cast(sample["modality1"], tf.float32), transform, out_size)
    out = {
        "modality1": tf.ensure_shape(
            _photometric(m1, valid, draws, config, out_size), [height, width, 3]
        ),
        "label": tf.ensure_shape(
            tf.cast(_gather(sample["label"], index), tf.int32), [height, width]
        ),
    }
    for name, method in zip(further, methods):
        if method == "nearest":
            image = tf.cast(_gather(sample[name], index), tf.float32)
        else:
            image = _bilinear(tf.cast(sample[name], tf.float32), transform, out_size)
            image = image * tf.cast(valid, tf.float32)[..., tf.newaxis]
        out[name] = tf.ensure_shape(image, [height, width, 3])
    if return_valid:
        out["valid"] = tf.ensure_shape(valid, [height, width])
    return out


def resize_label(label, height: int, width: int) -> tf.Tensor:
    """A label map (H x W class ids) at `height` x `width`, by nearest neighbour with TensorFlow's
    rule, its dtype kept: evaluation's (`resize_sample`), and `ssma-predict`'s for its label
    pictures and counts (PIL's rule took other source rows at exact ties, e.g. 64 -> 48 rows)."""
    label = tf.convert_to_tensor(label)
    return tf.image.resize(label[..., tf.newaxis], (int(height), int(width)), method="nearest")[..., 0]


def resize_sample(
    sample: Mapping[str, tf.Tensor],
    *,
    height: int,
    width: int,
    modality2_interpolation: Union[str, Sequence[str]] = "nearest",
) -> Dict[str, tf.Tensor]:
    """Resizes one decoded sample without augmentation (the evaluation path).

    Images are resized bilinearly (modality 2 and on as `modality2_interpolation` says, as for
    `augment_sample`), the label with nearest neighbour. Returns the same dtypes and shapes as
    `augment_sample`.
    """
    further = further_modalities(sample)
    methods = modality_interpolations(modality2_interpolation, len(further))
    sample = {key: tf.convert_to_tensor(value) for key, value in sample.items()}
    size = (int(height), int(width))
    m1 = tf.image.resize(tf.cast(sample["modality1"], tf.float32), size, method="bilinear")
    label = resize_label(sample["label"], height, width)
    out = {
        "modality1": tf.ensure_shape(m1, [height, width, 3]),
        "label": tf.ensure_shape(tf.cast(label, tf.int32), [height, width]),
    }
    for name, method in zip(further, methods):
        image = tf.image.resize(tf.cast(sample[name], tf.float32), size, method=method)
        out[name] = tf.ensure_shape(image, [height, width, 3])
    return out
