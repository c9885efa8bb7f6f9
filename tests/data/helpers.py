"""Synthetic samples for the data tests: images whose label can be read back from the pixels."""

from __future__ import annotations

import os
from typing import List, Sequence

import numpy as np
from PIL import Image

from ssma_tf.data import write_examples

# BGR colours far apart, one per class id (0 = void is black).
PALETTE = np.array(
    [[0, 0, 0], [0, 0, 255], [0, 255, 0], [255, 0, 0], [0, 255, 255], [255, 0, 255], [255, 255, 0], [255, 255, 255]],
    np.uint8,
)
# Modality 2 codes the class in its first channel: id * M2_STEP (a nearest-sampled "depth").
M2_STEP = 20


def blocks_sample(height: int, width: int, num_classes: int, seed: int, block: int = 16):
    """A sample of square blocks: the label is the block's class, modality 1 its palette colour
    and modality 2 the class times M2_STEP, so every tensor tells the label."""
    rng = np.random.default_rng(seed)
    grid = rng.integers(1, num_classes, size=(-(-height // block), -(-width // block)))
    label = np.kron(grid, np.ones((block, block), np.int64))[:height, :width].astype(np.uint8)
    modality1 = PALETTE[label]
    code = (label.astype(np.int64) * M2_STEP).astype(np.uint8)
    modality2 = np.stack([code, 255 - code, np.full_like(code, 7)], axis=-1)
    return modality1, modality2, label


def random_sample(height: int, width: int, num_classes: int, seed: int):
    """Random pixels (modality 1 and 2) and random ids 0..num_classes-1."""
    rng = np.random.default_rng(seed)
    modality1 = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    modality2 = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    label = rng.integers(0, num_classes, (height, width), dtype=np.uint8)
    return modality1, modality2, label


def write_records(path: str, samples: Sequence, encoding: str = "raw", fusion: bool = True) -> str:
    """Writes (modality1, modality2, label) tuples with `write_examples`."""
    write_examples(path, ({"modality1": modality1, "label": label, **({"modality2": modality2} if fusion else {})}
                          for modality1, modality2, label in samples), encoding=encoding)
    return os.fspath(path)


def save_png(path, array: np.ndarray) -> str:
    """Saves a uint8 HxW or HxWx3 (RGB order) array, or a PIL image, as a PNG file."""
    image = array if isinstance(array, Image.Image) else Image.fromarray(array)
    image.save(path)
    return os.fspath(path)


def write_list(path, lines: List[str]) -> str:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    return os.fspath(path)
