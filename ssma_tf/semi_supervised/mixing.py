"""DepthMix and ClassMix: depth read back from its colouring, masks, mixing, pseudo-label weights.

DepthMix (Hoyer et al., CVPR 2021, Section 3.2) pastes image i over image j wherever i's surface
is nearer, so that the composite respects occlusion; ClassMix (Olsson et al., WACV 2021), their
baseline, pastes the pixels of half the classes of i's (pseudo-)label. Here the depth is the
measured one, read back from modality 2's colouring (`decode_nearness`): "nearness" is the
position along the colour map with the near end at 1, a fixed scale shared by all images of a
dataset, so no per-image normalisation is needed. Missing depth (black) is never pasted. The
mixed images' colour jitter and blur are in `ssma_tf.photometric`.

All functions take batches (B, H, W[, C]) in the pipeline's layout: float32 BGR 0..255.
Randomness is stateless (an int32/int64 seed of shape [2]), so a step is reproducible and a
resumed run draws what an uninterrupted one would have drawn.
"""

from __future__ import annotations

import itertools
from typing import Any, Callable

import numpy as np
import tensorflow as tf

from ssma_tf.constants import JET_MISSING_BELOW
from ssma_tf.data.pipeline import naming_damaged_records
from ssma_tf.data.records import iterate_records
from ssma_tf.data.unlabeled import UnlabeledDataError, decode_record
from ssma_tf.modalities.colorize import jet_colormap

# A pixel whose brightest channel is below this is "missing" (black): every jet colour has a
# channel of at least 128. ssma-prepare warns of a missing colour that is not read so.
MISSING_BELOW = float(JET_MISSING_BELOW)
# Largest distance (0..255 RGB units) from the colour map for a pixel to count as decodable.
DECODABLE_DISTANCE = 24.0


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

    Each pixel takes the nearest colour of the map (exact for nearest-neighbour resized images;
    bilinear blends with missing, black, depth decode as surfaces that are not there, so the
    config refuses them where depth is read).

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
    index, squared = _nearest_colours(flat, tf.constant(colours))
    valid = tf.reduce_max(flat, axis=1) >= MISSING_BELOW
    if encoding.startswith("gray"):
        valid = tf.reduce_max(flat, axis=1) > 0.5
    near = tf.where(valid, tf.gather(tf.constant(nearness), index), 0.0)
    distance = tf.where(valid, tf.sqrt(tf.maximum(squared, 0.0)), 0.0)
    return (tf.reshape(near, shape), tf.reshape(valid, shape), tf.reshape(distance, shape))


# Pixels matched to the colour map per matrix product: bounds the (pixels, colours) score matrix
# at 64 MiB (before: 2 GiB for one 1024 x 2048 image, with as much again in temporaries).
DECODE_CHUNK = 65536


def _nearest_colours(flat: Any, table: Any) -> tuple[Any, Any]:
    """For each (N, 3) colour, the index of the nearest row of `table` (K, 3) and the squared
    distance to it, computed `DECODE_CHUNK` pixels at a time."""
    table_norms = tf.reduce_sum(table * table, axis=1)

    def nearest(block: Any) -> tuple[Any, Any]:
        # |x − c|² = |x|² − 2 x·c + |c|²: one matrix product instead of an (N, K, 3) temporary.
        scores = table_norms[None, :] - 2.0 * tf.matmul(block, table, transpose_b=True)
        squared = tf.reduce_min(scores, axis=1) + tf.reduce_sum(block * block, axis=1)
        return tf.argmin(scores, axis=1, output_type=tf.int32), squared

    count = flat.shape[0]
    if count is not None and count <= DECODE_CHUNK:
        return nearest(flat)
    total = tf.shape(flat)[0]
    blocks = (total + DECODE_CHUNK - 1) // DECODE_CHUNK
    padded = tf.pad(flat, [[0, blocks * DECODE_CHUNK - total], [0, 0]])
    index, squared = tf.map_fn(nearest, tf.reshape(padded, [blocks, DECODE_CHUNK, 3]),
                               fn_output_signature=(tf.int32, tf.float32))
    return tf.reshape(index, [-1])[:total], tf.reshape(squared, [-1])[:total]


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


def teacher_targets(probs: Any, labels: Any, has_label: Any, valid: Any, *, use_ground_truth: bool) -> Any:
    """The probabilities a mix image's pseudo-labels come from.

    Args:
        probs: float32 (B, H, W, C), the teacher's prediction.
        labels: int (B, H, W) class ids, 0 void; read where `has_label` (and `use_ground_truth`).
        has_label: bool (B,): the image is labeled.
        valid: bool (B, H, W): False on the border augmentation brought in from outside the image.
        use_ground_truth: labeled images give their labels (`label_probabilities`), not the
            teacher's prediction.

    Returns:
        float32 (B, H, W, C), all zero on the border: such a pixel is void, as a labeled image's
        border is (before, an unlabeled image's border took the teacher's prediction on black
        pixels, and the student learnt it; the released code crops inside its images and has no
        border; helper 251).
    """
    if use_ground_truth:
        probs = tf.where(has_label[:, None, None, None], label_probabilities(labels, probs.shape[-1]), probs)
    return probs * tf.cast(valid, probs.dtype)[..., None]


def confidence_weight(probs: Any, threshold: float) -> Any:
    """The fraction of pixels whose largest probability is at least `threshold` (one scalar).

    Under a strategy of several replicas, the fraction over the whole mixed batch (their equal
    sub-batches' mean), as on one device; before (helper 215), each replica weighed its own loss
    by its own fraction.
    """
    confident = tf.reduce_max(probs, axis=-1) >= threshold
    fraction = tf.reduce_mean(tf.cast(confident, tf.float32))
    context = tf.distribute.get_replica_context()
    if context is not None and context.num_replicas_in_sync > 1:
        fraction = context.all_reduce(tf.distribute.ReduceOp.MEAN, tf.stop_gradient(fraction))
    return fraction


# Share of an image's depth pixels that may lie off the colour map before it is not a colouring.
MAX_OFF_MAP = 0.05
# Records of each file checked for a decodable depth colouring at the start.
CHECKED_RECORDS = 2


def off_map_shares(distance: Any, valid: Any) -> Any:
    """Per image of a (B, H, W) batch, the share of its valid pixels whose colour lies more than
    `DECODABLE_DISTANCE` off the encoding's map (`decode_nearness`'s distance, 0 at missing
    pixels); 0 where none is valid. A float32 (B,) tensor."""
    valid = tf.cast(valid, tf.float32)
    off = tf.cast(distance > DECODABLE_DISTANCE, tf.float32) * valid
    return tf.reduce_sum(off, axis=[1, 2]) / tf.maximum(tf.reduce_sum(valid, axis=[1, 2]), 1.0)


def _one_off_map_colour(modality2: Any, distance: Any) -> str:
    """", most of them RGB R G B: ...", when most of an image's pixels off the colour map share
    one colour, as holes given another colour than black do (`ssma-prepare --missing-color`;
    before, the error blamed the encoding or the data alone; helper 265); "" otherwise."""
    off = np.asarray(distance)[0] > DECODABLE_DISTANCE
    colours = np.asarray(modality2)[..., ::-1][off].astype(np.int64)  # BGR -> RGB
    if len(colours) == 0:
        return ""
    values, counts = np.unique(colours, axis=0, return_counts=True)
    if counts.max() * 2 < len(colours):
        return ""
    colour = " ".join(str(v) for v in values[int(np.argmax(counts))])
    return (f", most of them RGB {colour}: holes of a missing colour other than black? depth decoding reads only "
            "black as missing")


def off_map_share(distance: Any, valid: Any) -> float:
    """`off_map_shares` of one image, (1, H, W), as a number."""
    return float(off_map_shares(distance, valid)[0])


# The step term of the share of a batch's images whose modality 2 is not the depth colouring.
OFF_MAP_TERM = "off_map_images"


def off_map_images(distance: Any, valid: Any) -> Any:
    """The share of a batch's images that are not a depth colouring (a float32 scalar).

    An image counts when more than `MAX_OFF_MAP` of its valid pixels lie off the map
    (`off_map_share`, per image): the start checks only each file's first records
    (`check_depth_colouring`), so a training step measures the images it reads as depth.

    Args:
        distance, valid: (B, H, W) from `decode_nearness`.
    """
    return tf.reduce_mean(tf.cast(off_map_shares(distance, valid) > MAX_OFF_MAP, tf.float32))


def take_off_map_term(terms: dict, first: int, last: int, encoding: str, keys: str,
                      log: Callable[[str], None], who: str) -> dict:
    """`terms` without `OFF_MAP_TERM` (a measure of the input, not a loss term), after logging
    `off_map_warning` for steps `first..last` when it is above 0 (`Trainer._check_window` of the
    trainers that read depth; `who` begins the line)."""
    terms = dict(terms)
    warning = off_map_warning(first, last, terms.pop(OFF_MAP_TERM, 0.0), encoding, keys)
    if warning:
        log(f"warning: {who}: {warning}")
    return terms


def off_map_warning(first: int, last: int, share: float, encoding: str, keys: str) -> str:
    """The warning for steps `first..last`, whose images were `share` off the map (0: none)."""
    if not share > 0:
        return ""
    steps = f"step {last}" if first == last else f"steps {first}-{last}"
    return (f"{100 * share:.0f}% of the images read as depth in {steps} are not a depth colouring "
            f"'{encoding}' (over {100 * MAX_OFF_MAP:.0f}% of their pixels off its map): their depth is noise. "
            f"The start checks each file's first {CHECKED_RECORDS} records only; look at modality 2 of the later "
            f"records of {keys}, or set semi_supervised.depth_encoding to their colouring")


def check_depth_colouring(files: list[str], encoding: str, *, key: str, fix: str) -> None:
    """Fails unless modality 2 of the first records of `files` is a depth colouring `encoding`.

    DepthMix and the depth-guided label selection read depth back from modality 2's colours; a
    colour photo, an HHA image or another colouring would give them noise without a word. (Jet
    coloured near-red read as near-blue cannot be told apart: both decode.)

    Args:
        files: the record files.
        encoding: one of `DEPTH_ENCODINGS`.
        key: the config key or flag the files come from, for the message.
        fix: what to change when modality 2 is not that colouring, for the message.

    Raises:
        UnlabeledDataError: naming the file, the encoding and the share of pixels off its map.
    """
    for path in files:
        # A damaged file is named by `iterate_records` (before: TensorFlow's DataLossError traceback,
        # exit 1, for a file cut short within its first records or not a record file; helper 249).
        for index, record in itertools.islice(iterate_records(path), CHECKED_RECORDS):
            try:
                features = tf.train.Example.FromString(record).features.feature
            except Exception as error:  # protobuf's own DecodeError type
                raise UnlabeledDataError(f"record {index} is not a tf.train.Example ({type(error).__name__})",
                                         path) from None
            if "modality2" not in features:
                raise UnlabeledDataError(
                    f"record {index} has no modality2 (it holds {', '.join(sorted(features))}): {key} needs depth "
                    "as modality 2; convert 'modality1 modality2 [label]' lines (ssma-convert, --unlabeled for "
                    "images without labels)", path)
            # Images of the wrong byte count: named, not TensorFlow's reshape traceback (helper 256).
            with naming_damaged_records([path], modalities=2, labeled=False):
                sample = decode_record(record)
            near, valid, distance = decode_nearness(tf.cast(sample["modality2"], tf.float32)[None], encoding)
            valid_count = float(tf.reduce_sum(tf.cast(valid, tf.float32)))
            if valid_count == 0:
                raise UnlabeledDataError(f"modality2 is all black: no depth to read ({key})", path)
            off = off_map_share(distance, valid)
            if off > MAX_OFF_MAP:
                raise UnlabeledDataError(
                    f"modality2 is not a decodable depth colouring '{encoding}' ({100 * off:.0f}% of its pixels "
                    f"are off the colour map{_one_off_map_colour(sample['modality2'], distance)}); {key} needs "
                    f"depth: {fix}", path)
