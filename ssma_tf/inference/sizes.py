"""The sizes a model runs at, and how inputs are resized to them (no TensorFlow needed).

The encoder downsamples by 16 (output stride 16, Valada et al. 2019, Section 3.1) and the decoder
upsamples back exactly, so a model input is two positive multiples of 16: a configured
height × width, or each input's own size rounded to the nearest multiple.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

from ssma_tf.constants import OUTPUT_STRIDE as SIZE_MULTIPLE


def parse_size(text: str) -> Optional[Tuple[int, int]]:
    """Reads a `HxW` size (e.g. "384x768"); "input" gives None (each input's own size).

    Raises:
        ValueError: not `HxW` with positive multiples of 16.
    """
    value = text.strip().lower()
    if value == "input":
        return None
    parts = value.split("x")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise ValueError(f"size must be HEIGHTxWIDTH (e.g. 384x768) or 'input', got {text!r}")
    return check_size((int(parts[0]), int(parts[1])))


def check_size(size: Sequence[int]) -> Tuple[int, int]:
    """Checks a model input size (height, width): two positive multiples of 16."""
    try:
        height, width = (int(s) for s in size)
    except (TypeError, ValueError):
        raise ValueError(f"size must be (height, width), got {size!r}") from None
    if height < SIZE_MULTIPLE or width < SIZE_MULTIPLE or height % SIZE_MULTIPLE or width % SIZE_MULTIPLE:
        raise ValueError(f"size must be two positive multiples of {SIZE_MULTIPLE}, got {height}x{width}")
    return height, width


def rounded_size(height: float, width: float) -> Tuple[int, int]:
    """The model size for an input of `height` × `width` without a configured size.

    Each side is rounded to the nearest multiple of 16 (at least 16); the evaluation's test scales
    round a scaled size the same way (`ssma_tf.evaluation.scaled_size`).
    """
    def rounded(value: float) -> int:
        return max(SIZE_MULTIPLE, int(round(value / SIZE_MULTIPLE)) * SIZE_MULTIPLE)

    return rounded(height), rounded(width)
