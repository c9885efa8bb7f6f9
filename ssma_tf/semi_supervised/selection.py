"""Which images to label: farthest-point selection on depth features (Hoyer et al., CVPR 2021).

Section 3.3 of the paper, as its released `label_selection.py` does it: every candidate image gets
a feature vector, the vectors are standardised per channel over the pool, one image is picked at
random, and then the image farthest from everything picked so far (the largest distance to its
nearest picked image) is added until the budget is reached. With several budgets the selection
grows: the images for budget 25 include those for budget 12. From the second budget on, a
difficulty bias can be added to each candidate's distance: how badly a depth student trained on
the current selection predicts the candidate's depth (`difficulty`), which favours images unlike
those already chosen in the way that matters for depth.

Features here come from the measured depth: by default the depth of modality 2 (decoded from its
colouring, `ssma_tf.semi_supervised.mixing.decode_nearness`; nearness is log depth for the synthetic data)
average-pooled to a small grid, missing pixels left out of each cell's mean.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Optional, Sequence

import numpy as np
import tensorflow as tf

from ssma_tf.constants import IGNORE_ID
from ssma_tf.data import schema
from ssma_tf.data.pipeline import FilePatterns, list_record_files, naming_damaged_records
from ssma_tf.data.unlabeled import decode_record
from ssma_tf.errors import UserInputError
from ssma_tf.semi_supervised.mixing import MAX_OFF_MAP, decode_nearness, off_map_share

# Cells of the pooled depth grid (rows, columns).
DEFAULT_GRID = (6, 12)


class SelectionError(UserInputError):
    """A selection that cannot be made (a budget larger than the pool, no images)."""


@dataclasses.dataclass
class Selection:
    """What a selection chose.

    Attributes:
        order: pool indices in the order they were picked.
        distance: for each pick, its distance to the nearest earlier pick when it was picked
            (inf for the first).
        bias: for each pick, the difficulty bias added to that distance (0 without one).
        budgets: the budgets asked for; `subset(b)` gives the first b picks.
    """

    order: list[int]
    distance: list[float]
    bias: list[float]
    budgets: list[int]

    def subset(self, budget: int) -> list[int]:
        """The pool indices chosen for `budget`, sorted."""
        return sorted(self.order[:budget])


def standardise(features: np.ndarray, channels: int = 1) -> np.ndarray:
    """Per-channel zero mean and unit variance over the pool and all grid cells, as the released
    `_calc_feature_distance` (`std_mean` over images, rows and columns); a constant channel becomes 0.

    Args:
        features: (N, cells × channels), each image's grid flattened with the channel last.
        channels: channels per cell (the pooled depth map has one: one mean and one deviation
            for the whole grid, which scales every distance alike).

    Before, each cell had its own deviation (helper 117): cells where every scene has about the
    same depth (the road before the camera) weighed as much as those that tell layouts apart.
    """
    features = np.asarray(features, np.float64)
    if features.ndim != 2 or channels < 1 or features.shape[1] % channels:
        raise ValueError(f"features must be (N, cells x {channels} channels), got shape {features.shape}")
    grid = features.reshape(len(features), -1, channels)
    std = grid.std(axis=(0, 1))
    return ((grid - grid.mean(axis=(0, 1))) / np.where(std > 0, std, 1.0)).reshape(features.shape)


def farthest_point_selection(
    features: np.ndarray,
    budgets: Sequence[int],
    seed: int = 0,
    difficulty: Optional[Callable[[list[int]], np.ndarray]] = None,
    difficulty_weight: float = 1.0,
    on_budget: Optional[Callable[[int, list[int]], None]] = None,
) -> Selection:
    """Farthest-point selection, growing through `budgets`.

    Args:
        features: (N, D) one feature vector per pool image (standardise them first).
        budgets: increasing numbers of images to select.
        seed: picks the first image.
        difficulty: from the second budget on, called with the current selection; returns an
            (N,) error per image, scaled to unit mean and added × `difficulty_weight` × the
            typical distance to every candidate's distance.
        difficulty_weight: strength of the bias.
        on_budget: called with each budget and the picks so far as soon as they are made (the
            lists of a long run with depth students are written as they are reached).

    Returns:
        The `Selection`.

    Raises:
        SelectionError: a budget larger than the pool, or budgets not increasing.
    """
    features = np.asarray(features, np.float64)
    count = len(features)
    budgets = [int(b) for b in budgets]
    if not budgets or any(b < 1 for b in budgets) or sorted(set(budgets)) != budgets:
        raise SelectionError(f"budgets must be increasing positive numbers, got {budgets}")
    if budgets[-1] > count:
        raise SelectionError(f"budget {budgets[-1]} is larger than the pool of {count} images")
    if not (math.isfinite(difficulty_weight) and difficulty_weight >= 0):
        # A NaN made every biased distance NaN, and the picks followed the array's order.
        raise SelectionError(f"the difficulty weight must be a finite number >= 0, got {difficulty_weight}")
    rng = np.random.default_rng(seed)
    first = int(rng.integers(count))
    order, distance, bias = [first], [float("inf")], [0.0]
    nearest = np.linalg.norm(features - features[first], axis=1)
    extra = np.zeros(count)
    for number, budget in enumerate(budgets):
        if number > 0 and difficulty is not None:
            errors = np.asarray(difficulty(list(order)), np.float64)
            scale = np.mean(nearest[nearest > 0]) if np.any(nearest > 0) else 1.0
            extra = difficulty_weight * scale * errors / max(float(np.mean(errors)), 1e-12)
        while len(order) < budget:
            # A copy of a pick (distance 0) gets no bias: the student's error on it would put it
            # before distinct images, where the docs and the released code leave copies for
            # when those run out (helper 267).
            score = np.where(np.isin(np.arange(count), order), -np.inf, np.where(nearest > 0, nearest + extra, 0.0))
            pick = int(np.argmax(score))
            order.append(pick)
            distance.append(float(nearest[pick]))
            bias.append(float(extra[pick]) if nearest[pick] > 0 else 0.0)
            nearest = np.minimum(nearest, np.linalg.norm(features - features[pick], axis=1))
        if on_budget is not None:
            on_budget(budget, list(order))
    return Selection(order, distance, bias, budgets)


def pooled_depth_features(file_patterns: FilePatterns, encoding: str = "jet_near_red",
                          grid: tuple[int, int] = DEFAULT_GRID) -> np.ndarray:
    """Pooled depth of every record of `file_patterns`, in order: (N, rows × columns).

    Each cell holds the mean nearness (log depth for log-coded depth) of its valid pixels, or the
    image's mean where the cell has none.

    Raises:
        UserInputError: records without modality 2 or no records at all (naming the files).
    """
    files = list_record_files(file_patterns)
    features = []
    # A unimodal record (no depth) fails to decode: name its file and index, not TensorFlow's reshape.
    with naming_damaged_records(files, modalities=2, labeled=False):  # a pool has no labels (helper 257)
        for path in files:
            for index, record in enumerate(tf.data.TFRecordDataset(path)):
                cells, off, valid = _pooled_cells(decode_record(record), encoding, grid)
                if not valid:
                    # Before: every cell fell back to 0, and the farthest-point selection picked the
                    # image as the pool's outlier.
                    raise SelectionError(
                        f"{path}, record {index}: modality2 is all black (missing): no depth to pool; the selection "
                        "reads depth from every record: leave the record out of the pool", path)
                if off > MAX_OFF_MAP:
                    # The start checks a file's first records only (`check_depth_colouring`):
                    # photos after them were picked by noise read as depth.
                    raise SelectionError(
                        f"{path}, record {index}: modality2 is not a decodable depth colouring '{encoding}' "
                        f"({100 * off:.0f}% of its pixels are off the colour map); the selection reads depth "
                        "from every record", path)
                features.append(cells)
    if not features:
        raise SelectionError("the records hold no image", ", ".join(files))
    return np.asarray(features, np.float64)


def _pooled_cells(sample: dict, encoding: str, grid: tuple[int, int]) -> tuple[list[float], float, int]:
    """One record's mean nearness per grid cell (the image's mean where a cell has no valid pixel),
    the share of its valid pixels whose colour lies off the encoding's map, and its valid pixels."""
    rows, columns = grid
    near, valid, distance = decode_nearness(tf.cast(sample["modality2"], tf.float32)[None], encoding)
    off = off_map_share(distance, valid)  # as the start's check counts it
    near = near.numpy()[0]
    valid = valid.numpy()[0].astype(np.float64)
    height, width = near.shape
    r_edges = np.linspace(0, height, rows + 1).astype(int)
    c_edges = np.linspace(0, width, columns + 1).astype(int)
    fallback = (near * valid).sum() / max(valid.sum(), 1.0)
    cells = []
    for r in range(rows):
        for c in range(columns):
            v = valid[r_edges[r]:r_edges[r + 1], c_edges[c]:c_edges[c + 1]]
            n = near[r_edges[r]:r_edges[r + 1], c_edges[c]:c_edges[c + 1]]
            cells.append((n * v).sum() / v.sum() if v.sum() > 0 else fallback)
    return cells, off, int(valid.sum())


def record_labels(file_patterns: FilePatterns) -> list[np.ndarray]:
    """The label map of every record, in order (for reporting which classes a selection covers)."""
    return [decode_record(r)["label"].numpy() for r in tf.data.TFRecordDataset(list_record_files(file_patterns))]


def record_label_histograms(file_patterns: FilePatterns) -> np.ndarray:
    """(N, 256) pixel counts of each label id in every record, in order: what `classes_covered`
    needs, without holding the label maps (helper 227: Cityscapes' 2975 maps at 1024x2048 held 6
    GB) or decoding the images beside them; all void for a record without a label."""
    spec = {schema.HEIGHT: tf.io.FixedLenFeature([], tf.int64), schema.WIDTH: tf.io.FixedLenFeature([], tf.int64),
            schema.LABEL: tf.io.FixedLenFeature([], tf.string, default_value="")}
    histograms = []
    files = list_record_files(file_patterns)
    with naming_damaged_records(files, modalities=1, labeled=False):  # all void without a label
        for path in files:
            for record in tf.data.TFRecordDataset(path):
                features = tf.io.parse_single_example(record, spec)
                histogram = np.zeros(256, np.int64)
                if len(features[schema.LABEL].numpy()):
                    label = schema.decode_image(features[schema.LABEL], tf.cast(features[schema.HEIGHT], tf.int32),
                                                tf.cast(features[schema.WIDTH], tf.int32), 1)
                    histogram = np.bincount(np.asarray(label).ravel(), minlength=256).astype(np.int64)
                histograms.append(histogram)
    return np.asarray(histograms, np.int64).reshape(-1, 256)


def classes_covered(labels: Sequence[np.ndarray], chosen: Sequence[int], min_pixels: int = 1,
                    num_classes: Optional[int] = None) -> list[int]:
    """The classes with at least `min_pixels` pixels in the chosen images: not void (0), not
    the ignore id 255 (before: counted as a class), and below `num_classes` where given (ids
    from it up are void to training). `labels`: each record's label map, or the (N, 256)
    histograms of `record_label_histograms`."""
    counts: dict[int, int] = {}
    histograms = isinstance(labels, np.ndarray) and labels.ndim == 2  # a label map is 2-D: a list of them is not
    for index in chosen:
        if histograms:
            ids = np.flatnonzero(labels[index])
            n = labels[index][ids]
        else:
            ids, n = np.unique(labels[index], return_counts=True)
        for i, c in zip(ids, n):
            counts[int(i)] = counts.get(int(i), 0) + int(c)
    top = IGNORE_ID if num_classes is None else min(num_classes, IGNORE_ID)
    return sorted(c for c, n in counts.items() if 0 < c < top and n >= min_pixels)
