"""Photometric noise on batches of images: colour jitter, greyscale and Gaussian blur.

The students of semi-supervised training (`ssma_tf.semi_supervised`: the mixed images are
jittered and blurred as the released DepthMix code does) and of domain adaptation
(`ssma_tf.adaptation`: each view as `visinf/da-sac` does) see their images through these; their
teachers see them clean. Two colour jitters, because the two released codes use two libraries:
`mix_colour_jitter` is kornia 0.4's, `colour_jitter` torchvision's.

All functions take batches (B, H, W, C) in the pipeline's layout: float32 BGR 0..255.
Randomness is stateless (an int32/int64 seed of shape [2]), so a step is reproducible and a
resumed run draws what an uninterrupted one would have drawn.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import tensorflow as tf

# Radius of the blur kernel in sigmas.
_BLUR_RADIUS_SIGMAS = 3.0


def colour_jitter(images: Any, strength: float, probability: float, seed: Any,
                  hue: Optional[float] = None) -> Any:
    """torchvision's `ColorJitter(s, s, s, hue)`, each image on its own with `probability`.

    Domain adaptation's released code (`visinf/da-sac`) jitters each view so, with p 0.5. Per
    image: factors b, c, f ~ U[1 − s, 1 + s] and a hue shift ~ U[−hue, hue] (a fraction of a
    turn), applied in a random order of their own, each followed by a clip to [0, 1] as
    torchvision's functions do:

    - brightness: x · b;
    - contrast: the image's mean grey + c · (x − mean grey);
    - saturation: each pixel's grey + f · (x − grey);
    - hue: shifted in HSV.

    Args:
        images: float (B, H, W, 3) BGR 0..255.
        strength: s in [0, 0.5]; 0 leaves brightness, contrast and saturation alone.
        probability: chance that an image is jittered.
        seed: stateless seed, shape [2].
        hue: the hue's own strength, when it differs from `strength` (da-sac: 0.1).
    """
    hue_strength = strength if hue is None else hue
    if (strength <= 0 and hue_strength <= 0) or probability <= 0:
        return images
    batch = tf.shape(images)[0]
    seeds = tf.random.experimental.stateless_split(seed, 2)
    draws = tf.random.stateless_uniform([batch, 5], seed=seeds[0])
    order = tf.argsort(tf.random.stateless_uniform([batch, 4], seed=seeds[1]), axis=-1)
    apply = draws[:, 0] < probability
    factors = 1.0 + strength * (2.0 * draws[:, 1:4] - 1.0)
    shift = hue_strength * (2.0 * draws[:, 4] - 1.0)
    rgb = tf.clip_by_value(tf.reverse(images, axis=[-1]) / 255.0, 0.0, 1.0)
    out = jitter_rgb(rgb, factors[:, 0], factors[:, 1], factors[:, 2], shift, order,
                     style="torchvision")
    jittered = tf.reverse(out, axis=[-1]) * 255.0
    return tf.where(apply[:, None, None, None], jittered, images)


def mix_colour_jitter(images: Any, strength: float, probability: float, seed: Any) -> Any:
    """The colour jitter of the released DepthMix and ClassMix code, on a mixed batch.

    Their `transformsgpu.color_jitter` runs kornia 0.4's `ColorJitter(s, s, s, s)` on the whole
    batch with probability `probability` (one draw per batch), on RGB in [0, 1]. Each image gets
    its own factors; the four adjustments run in one random order per batch:

    - brightness: x + (b − 1), b ~ U[1 − s, 1 + s] (additive, unlike torchvision's);
    - contrast: x · c, c ~ U[1 − s, 1 + s] (no pull toward the mean, unlike torchvision's);
    - saturation: the HSV saturation times f ~ U[1 − s, 1 + s];
    - hue: shifted by h ~ U[−s, s] of a turn;

    each followed by a clip to [0, 1]. (`colour_jitter` is torchvision's, which domain
    adaptation's released code uses.)

    Args:
        images: float (B, H, W, 3) BGR 0..255.
        strength: s in [0, 0.5]; 0 returns the images unchanged.
        probability: chance that the batch is jittered.
        seed: stateless seed, shape [2].
    """
    if strength <= 0 or probability <= 0:
        return images
    batch = tf.shape(images)[0]
    seeds = tf.random.experimental.stateless_split(seed, 3)
    apply = tf.random.stateless_uniform([], seed=seeds[0]) < probability
    draws = tf.random.stateless_uniform([batch, 4], seed=seeds[1])
    order = tf.argsort(tf.random.stateless_uniform([4], seed=seeds[2]))
    brightness = strength * (2.0 * draws[:, 0] - 1.0)
    contrast = 1.0 + strength * (2.0 * draws[:, 1] - 1.0)
    saturation = 1.0 + strength * (2.0 * draws[:, 2] - 1.0)
    hue = strength * (2.0 * draws[:, 3] - 1.0)
    rgb = tf.clip_by_value(tf.reverse(images, axis=[-1]) / 255.0, 0.0, 1.0)
    out = jitter_rgb(rgb, brightness, contrast, saturation, hue, order, style="kornia")
    jittered = tf.reverse(out, axis=[-1]) * 255.0
    return tf.where(apply, jittered, images)


def jitter_rgb(rgb: Any, brightness: Any, contrast: Any, saturation: Any, hue: Any,
               order: Any, style: str) -> Any:
    """Four colour adjustments with given factors, in a given order per image.

    Args:
        rgb: float (B, H, W, 3) RGB in [0, 1].
        brightness: (B,) kornia: added to every channel; torchvision: multiplying it.
        contrast: (B,) kornia: multiplying every channel; torchvision: scaling the distance
            to the image's mean grey.
        saturation: (B,) kornia: multiplying the HSV saturation; torchvision: scaling each
            pixel's distance to its grey.
        hue: (B,) added to the hue, in turns.
        order: (B, 4) int, per image a permutation of 0 (brightness), 1 (contrast),
            2 (saturation), 3 (hue); or (4,), one permutation for the whole batch (then only
            the adjustment it names is computed at each place).
        style: "kornia" (0.4, as the released DepthMix) or "torchvision" (as da-sac).
    """
    if style not in ("kornia", "torchvision"):
        raise ValueError(f"style must be 'kornia' or 'torchvision', got {style!r}")
    column = lambda v: tf.cast(v, tf.float32)[:, None, None, None]  # noqa: E731
    clip = lambda x: tf.clip_by_value(x, 0.0, 1.0)  # noqa: E731
    hue = tf.cast(hue, tf.float32)

    def shift_hue(x):
        hsv = tf.image.rgb_to_hsv(x)
        h = tf.math.floormod(hsv[..., 0] + hue[:, None, None], 1.0)
        return clip(tf.image.hsv_to_rgb(tf.stack([h, hsv[..., 1], hsv[..., 2]], -1)))

    if style == "kornia":
        def scale_saturation(x):
            hsv = tf.image.rgb_to_hsv(x)
            sat = clip(hsv[..., 1] * tf.cast(saturation, tf.float32)[:, None, None])
            return clip(tf.image.hsv_to_rgb(tf.stack([hsv[..., 0], sat, hsv[..., 2]], -1)))

        adjustments = [lambda x: clip(x + column(brightness)),
                       lambda x: clip(x * column(contrast)),
                       scale_saturation, shift_hue]
    else:
        def blend(x, towards, factor):
            return clip(towards + column(factor) * (x - towards))

        adjustments = [
            lambda x: clip(x * column(brightness)),
            lambda x: blend(x, tf.reduce_mean(tf.image.rgb_to_grayscale(x), axis=[1, 2, 3],
                                              keepdims=True), contrast),
            lambda x: blend(x, tf.image.rgb_to_grayscale(x), saturation),
            shift_hue,
        ]
    out = tf.convert_to_tensor(rgb, tf.float32)
    order = tf.convert_to_tensor(order, tf.int32)
    for k in range(4):
        if order.shape.rank == 1:
            out = tf.switch_case(order[k], [lambda f=f, x=out: f(x) for f in adjustments])
            continue
        # Every adjustment of the current images, then each image keeps the one its order
        # names at this place.
        candidates = tf.stack([f(out) for f in adjustments], axis=0)  # (4, B, H, W, 3)
        pick = tf.transpose(tf.one_hot(order[:, k], 4))                # (4, B)
        out = tf.reduce_sum(candidates * pick[:, :, None, None, None], axis=0)
    return out


def greyscale(images: Any, probability: float, seed: Any) -> Any:
    """Turns each image grey (the luma in every channel) with probability `probability`.

    Args:
        images: float (B, H, W, 3) BGR 0..255.
    """
    if probability <= 0:
        return images
    apply = tf.random.stateless_uniform([tf.shape(images)[0]], seed=seed) < probability
    luma = tf.image.rgb_to_grayscale(tf.reverse(images, axis=[-1]))
    grey = tf.broadcast_to(luma, tf.shape(images))
    return tf.where(apply[:, None, None, None], grey, images)


def _symmetric_indices(size: Any, radius: int) -> tf.Tensor:
    """Source index of each of the `size + 2 * radius` positions of a side padded by `radius`
    mirrored with the edge repeated (as `tf.pad`'s "SYMMETRIC" mode), for any `radius`: the
    mirroring repeats with period `2 * size` where the side is shorter than the radius."""
    size = tf.cast(size, tf.int32)
    position = tf.math.floormod(tf.range(-radius, size + radius, dtype=tf.int32), 2 * size)
    return tf.where(position < size, position, 2 * size - 1 - position)


def gaussian_blur(images: Any, sigma_range: Sequence[float], probability: float, seed: Any,
                  per_batch: bool = False) -> Any:
    """Blurs each image with probability `probability` by a Gaussian of sigma ~ U(sigma_range).

    The kernel has a fixed size (3 × the largest sigma on each side) so that one batched
    depthwise convolution blurs every image with its own sigma. `per_batch`: one draw for the
    whole batch (blurred or not, one sigma), as the released DepthMix code blurs a mixed batch.
    (Its kernel spans about a tenth of the image, which at the sizes it trained on holds the
    whole Gaussian; on images under ~70 pixels it would cut the tails this kernel keeps.)

    The border: mirrored without repeating the edge pixel for `per_batch`, as the released code's
    kornia `GaussianBlur2d` pads by default ("reflect"; before: with it repeated, 62 grey levels
    apart at the edge pixel of a one-column line at sigma 1; helper 185), where the image's
    static size is known and larger than the kernel's radius (else, and for per-image blurs,
    mirrored with the edge repeated, as `tf.pad`'s "SYMMETRIC" mode). An image side shorter than
    the radius is mirrored again and again (the extension of period twice the side), so any image
    size works, inside a `tf.function` of unknown shapes too.
    """
    low, high = float(sigma_range[0]), float(sigma_range[1])
    if high <= 0 or probability <= 0:
        return images
    radius = max(1, int(math.ceil(_BLUR_RADIUS_SIGMAS * high)))
    shape = tf.shape(images)
    batch, channels = shape[0], images.shape[-1]
    draws = tf.random.stateless_uniform([1 if per_batch else batch, 2], seed=seed)
    if per_batch:
        draws = tf.repeat(draws, batch, axis=0)
    sigma = tf.maximum(low + (high - low) * draws[:, 1], 1e-3)
    apply = draws[:, 0] < probability
    offsets = tf.range(-radius, radius + 1, dtype=tf.float32)
    weights = tf.exp(-0.5 * tf.square(offsets[None, :] / sigma[:, None]))
    weights = weights / tf.reduce_sum(weights, axis=1, keepdims=True)
    identity = tf.one_hot(radius, 2 * radius + 1)[None, :]
    weights = tf.where(apply[:, None], weights, identity)  # (B, K)
    # Images as channels of one image: (1, H, W, B·C), a kernel per image and channel.
    stacked = tf.reshape(tf.transpose(images, [1, 2, 0, 3]), [1, shape[1], shape[2], -1])
    per_channel = tf.reshape(tf.repeat(weights, channels, axis=0), [-1, 2 * radius + 1])
    kernel_x = tf.transpose(per_channel)[None, :, :, None]   # (1, K, B·C, 1)
    kernel_y = tf.transpose(per_channel)[:, None, :, None]   # (K, 1, B·C, 1)
    height, width = images.shape[1], images.shape[2]
    known = height is not None and width is not None
    if per_batch and known and radius < min(height, width):
        padded = tf.pad(stacked, [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="REFLECT")
    elif known and radius <= min(height, width):
        padded = tf.pad(stacked, [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="SYMMETRIC")
    else:
        # Before: tf.pad's SYMMETRIC mode, which refuses a padding larger than the image side, so a
        # 4-pixel-high image at a radius of 6 (or any image of unknown size under the radius) was an
        # InvalidArgumentError "paddings must be no greater than the dimension size"; helper 362.
        padded = tf.gather(stacked, _symmetric_indices(shape[1], radius), axis=1)
        padded = tf.gather(padded, _symmetric_indices(shape[2], radius), axis=2)
    out = tf.nn.depthwise_conv2d(padded, kernel_x, [1, 1, 1, 1], "VALID")
    out = tf.nn.depthwise_conv2d(out, kernel_y, [1, 1, 1, 1], "VALID")
    out = tf.reshape(out, [shape[1], shape[2], batch, channels])
    return tf.transpose(out, [2, 0, 1, 3])
