"""How each modality is resampled when images are resized (no TensorFlow needed).

Modality 1 (RGB) is resized bilinearly. Modality 2 and every further one (depth, HHA, NIR,
thermal) is resized as the config's `modality2_interpolation` (one method for all of them) or
`modality_interpolations` (one per modality after the first) says: "nearest" keeps depth-like
values unmixed at object edges. The pipeline, the augmentations, evaluation, prediction and every
export take their methods from here.
"""

from __future__ import annotations

from typing import Sequence, Tuple, Union

from ssma_tf.constants import INTERPOLATIONS


def check_interpolation(method: str) -> str:
    """Returns `method` if it is one of `INTERPOLATIONS`, else raises a ValueError naming it."""
    if method not in INTERPOLATIONS:
        raise ValueError(f"modality2_interpolation must be one of {INTERPOLATIONS}, got {method!r}")
    return method


def check_interpolations(interpolation: Union[str, Sequence[str]]) -> None:
    """Raises a ValueError naming `modality2_interpolation` unless it is a str or a list/tuple of them."""
    # Before: None or 5 was a TypeError "'NoneType' object is not iterable" that named no argument
    # (and a list's entries were checked only for being known methods); helper 362.
    if isinstance(interpolation, str):
        return
    if not isinstance(interpolation, (list, tuple)) or not all(isinstance(m, str) for m in interpolation):
        raise ValueError(f"modality2_interpolation must be one of {INTERPOLATIONS} or a list/tuple of them "
                         f"(one per modality after the first), got {interpolation!r}")


def modality_interpolations(interpolation: Union[str, Sequence[str]], count: int) -> Tuple[str, ...]:
    """One resampling method per modality after the first: a string for all, or a list of them.

    A list longer than `count` is cut (an expert may share a fusion config's list).

    Raises:
        ValueError: not a str or a list/tuple of str, an unknown method, or a list shorter than `count`.
    """
    check_interpolations(interpolation)
    methods = (interpolation,) if isinstance(interpolation, str) else tuple(interpolation)
    for method in methods:
        check_interpolation(method)
    if isinstance(interpolation, str):
        methods = methods * count
    if len(methods) < count:
        raise ValueError(
            f"{count} modalities after the first need {count} interpolations, got {list(methods)}"
        )
    return methods[:count]


def resize_methods(interpolation: Union[str, Sequence[str]], modalities: int,
                   input_modality: str = "modality1") -> Tuple[str, ...]:
    """The method of each of a model's `modalities` images: "bilinear" for modality 1, then the rest.

    A unimodal network (`modalities` 1) reading modality k (`input_modality`, an expert of
    depth) gets modality k's method, as its training and evaluation pipelines resize it.

    Raises:
        ValueError: as `modality_interpolations`, or a bad `input_modality`.
    """
    check_interpolations(interpolation)
    if modalities == 1:
        suffix = input_modality.removeprefix("modality")
        index = int(suffix) if input_modality.startswith("modality") and suffix.isdigit() else 0
        if index < 1:
            raise ValueError(f"input_modality must be modality1, modality2, ..., got {input_modality!r}")
        if index == 1:
            return ("bilinear",)
        if not isinstance(interpolation, str) and len(interpolation) < index - 1:
            raise ValueError(f"the network reads {input_modality}, but the interpolations {list(interpolation)} "
                             f"go up to modality{len(interpolation) + 1}")
        return (modality_interpolations(interpolation, index - 1)[-1],)
    return ("bilinear",) + modality_interpolations(interpolation, max(modalities - 1, 0))
