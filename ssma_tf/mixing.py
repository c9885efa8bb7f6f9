"""DepthMix and ClassMix: masks, mixing, pseudo-label weights and the mixed images' augmentation.

DepthMix (Hoyer et al., CVPR 2021, Section 3.2) pastes image i over image j wherever i's surface
is nearer, so that the composite respects occlusion; ClassMix (Olsson et al., WACV 2021), their
baseline, pastes the pixels of half the classes of i's (pseudo-)label. Here the depth is the
measured one, read back from modality 2's colouring (`decode_nearness`): "nearness" is the
position along the colour map with the near end at 1, a fixed scale shared by all images of a
dataset, so no per-image normalisation is needed. Missing depth (black) is never pasted.

All functions take batches (B, H, W[, C]) in the pipeline's layout: float32 BGR 0..255.
Randomness is stateless (an int32/int64 seed of shape [2]), so a step is reproducible and a
resumed run draws what an uninterrupted one would have drawn.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import numpy as np
import tensorflow as tf

from ssma_tf.modalities.colorize import jet_colormap

# A pixel whose brightest channel is below this is "missing" (black): every jet colour has a
# channel of at least 128.
MISSING_BELOW = 64.0
# Largest distance (0..255 RGB units) from the colour map for a pixel to count as decodable.
DECODABLE_DISTANCE = 24.0
# Radius of the blur kernel in sigmas.
_BLUR_RADIUS_SIGMAS = 3.0


def colour_table(encoding: str) -> tuple[np.ndarray, np.ndarray]:
    """The colours of a depth encoding and the nearness each one stands for.

    Args:
        encoding: one of `ssma_tf.config.semi_supervised.DEPTH_ENCODINGS`.

    Returns:
        `(colours, nearness)`: float32 (N, 3) RGB 0..255 and float32 (N,) in 0..1, 1 = nearest.
    """
    levels = np.arange(256, dtype=np.float32) / 255.0
    if encoding.startswith("jet"):
        colours = np.floor(jet_colormap(levels) * 255.0 + 0.5).astype(np.float32)
    elif encoding.startswith("gray"):
        colours = np.repeat((levels * 255.0)[:, None], 3, axis=1).astype(np.float32)
        colours, levels = colours[1:], levels[1:]  # grey 0 is "missing"
    else:
        raise ValueError(f"unknown depth encoding {encoding!r}")
    near_high = encoding in ("jet_near_red", "gray_near_bright")
    nearness = levels if near_high else 1.0 - levels
    return colours, nearness.astype(np.float32)


def decode_nearness(modality2: Any, encoding: str = "jet_near_red") -> tuple[Any, Any, Any]:
    """Reads depth back from its colouring: nearness in 0..1 per pixel, and which pixels have it.

    Each pixel takes the nearest colour of the map (exact for nearest-neighbour resized images,
    close for bilinear ones).

    Args:
        modality2: (..., H, W, 3) float BGR 0..255, as the input pipeline gives it.
        encoding: how depth was coloured (`SemiSupervisedConfig.depth_encoding`).

    Returns:
        `(nearness, valid, distance)`: float32 (..., H, W) with 1 = nearest (0 where missing),
        bool (..., H, W), and float32 (..., H, W), each pixel's distance to the colour map (0
        where missing): large values mean the image is not this colouring.
    """
    colours, nearness = colour_table(encoding)
    rgb = tf.reverse(tf.cast(modality2, tf.float32), axis=[-1])  # BGR -> RGB
    shape = tf.shape(rgb)[:-1]
    flat = tf.reshape(rgb, [-1, 3])
    table = tf.constant(colours)
    # |x − c|² = |x|² − 2 x·c + |c|²: one matrix product instead of an (N, 256, 3) temporary.
    scores = tf.reduce_sum(table * table, axis=1)[None, :] - 2.0 * tf.matmul(flat, table, transpose_b=True)
    index = tf.argmin(scores, axis=1, output_type=tf.int32)
    squared = tf.reduce_min(scores, axis=1) + tf.reduce_sum(flat * flat, axis=1)
    valid = tf.reduce_max(flat, axis=1) >= MISSING_BELOW
    if encoding.startswith("gray"):
        valid = tf.reduce_max(flat, axis=1) > 0.5
    near = tf.where(valid, tf.gather(tf.constant(nearness), index), 0.0)
    distance = tf.where(valid, tf.sqrt(tf.maximum(squared, 0.0)), 0.0)
    return (tf.reshape(near, shape), tf.reshape(valid, shape), tf.reshape(distance, shape))


def depthmix_mask(near_i: Any, valid_i: Any, near_j: Any, margin: float = 0.03) -> Any:
    """DepthMix's mask: 1 where image i is pasted over image j.

    `M = valid_i ∧ (near_i ≥ near_j − margin)`: i wins where its surface is nearer, or not
    farther than the margin; never where i has no depth.

    Returns:
        float32 mask of the inputs' shape.
    """
    keep = tf.logical_and(tf.cast(valid_i, tf.bool), near_i >= near_j - margin)
    return tf.cast(keep, tf.float32)


def classmix_mask(classes: Any, num_classes: int, seed: Any) -> Any:
    """ClassMix's mask: 1 on the pixels of a random half of the classes present in each image.

    Args:
        classes: int (B, H, W) class ids of the images pasted from (pseudo-labels).
        num_classes: C.
        seed: stateless seed, shape [2].

    Returns:
        float32 (B, H, W); of the n non-void classes present in an image, ⌊n/2⌋ are pasted (as
        the released code: void, like its ignore label, is never chosen).
    """
    classes = tf.cast(classes, tf.int32)
    present = tf.reduce_max(tf.one_hot(classes, num_classes, dtype=tf.float32), axis=[1, 2]) > 0
    present = tf.logical_and(present, tf.range(num_classes)[None, :] > 0)
    batch = tf.shape(classes)[0]
    draws = tf.random.stateless_uniform([batch, num_classes], seed=seed)
    # Absent classes sort last; the first ⌊n/2⌋ of a random order of the present ones are taken.
    keys = tf.where(present, draws, 2.0)
    rank = tf.argsort(tf.argsort(keys, axis=1), axis=1)
    count = tf.reduce_sum(tf.cast(present, tf.int32), axis=1, keepdims=True)
    chosen = tf.logical_and(present, rank < count // 2)
    return tf.cast(tf.gather(chosen, classes, batch_dims=1), tf.float32)


def mix(mask: Any, first: Any, second: Any) -> Any:
    """`mask · first + (1 − mask) · second`; a (B, H, W) mask broadcasts over channels."""
    mask = tf.cast(mask, first.dtype)
    if len(first.shape) == len(mask.shape) + 1:
        mask = mask[..., None]
    return mask * first + (1.0 - mask) * second


def label_probabilities(labels: Any, num_classes: int) -> Any:
    """Ground-truth labels as the teacher's probabilities of a labeled mix image.

    Args:
        labels: int (B, H, W) class ids; 0 is void.
        num_classes: C, void included.

    Returns:
        float32 (B, H, W, C) one-hot rows, all zero at void pixels: as released, such a pixel is
        never confident and its pseudo-label (the argmax, 0) is void, which the loss ignores.
    """
    known = tf.cast(labels > 0, tf.float32)[..., None]
    return tf.one_hot(labels, num_classes, dtype=tf.float32) * known


def confidence_weight(probs: Any, threshold: float) -> Any:
    """The fraction of pixels whose largest probability is at least `threshold` (one scalar)."""
    confident = tf.reduce_max(probs, axis=-1) >= threshold
    return tf.reduce_mean(tf.cast(confident, tf.float32))


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


def gaussian_blur(images: Any, sigma_range: Sequence[float], probability: float, seed: Any,
                  per_batch: bool = False) -> Any:
    """Blurs each image with probability `probability` by a Gaussian of sigma ~ U(sigma_range).

    The kernel has a fixed size (3 × the largest sigma on each side) so that one batched
    depthwise convolution blurs every image with its own sigma. `per_batch`: one draw for the
    whole batch (blurred or not, one sigma), as the released DepthMix code blurs a mixed batch.
    (Its kernel spans about a tenth of the image, which at the sizes it trained on holds the
    whole Gaussian; on images under ~70 pixels it would cut the tails this kernel keeps.)
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
    padded = tf.pad(stacked, [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="SYMMETRIC")
    out = tf.nn.depthwise_conv2d(padded, kernel_x, [1, 1, 1, 1], "VALID")
    out = tf.nn.depthwise_conv2d(out, kernel_y, [1, 1, 1, 1], "VALID")
    out = tf.reshape(out, [shape[1], shape[2], batch, channels])
    return tf.transpose(out, [2, 0, 1, 3])
