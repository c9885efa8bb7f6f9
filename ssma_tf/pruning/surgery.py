"""Network surgery: a physically smaller copy of a model without the pruned feature maps.

`select` picks the channels to remove from ranked scores; `prune` builds the model with the new
widths (`ssma_tf.models.widths`) and copies every weight, dropping the pruned filters, their
batch-norm parameters and the matching input kernels of the layers that read them.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import keras
import numpy as np
from keras import ops

from ssma_tf.errors import UserInputError
from ssma_tf.pruning.channels import FeatureMaps, feature_maps


class PruningError(UserInputError):
    """A pruning request that cannot be carried out (e.g. it would remove every filter of a layer)."""


def select(scores: Mapping[str, np.ndarray], fraction: float, maps: Sequence[FeatureMaps], *,
           what: str = "this stage") -> dict[str, list[int]]:
    """The channels to keep: the lowest-ranked `fraction` of all channels in `scores` go.

    One global ranking over the layers named in `scores` (their scores already rescaled per layer,
    `ssma_tf.pruning.ranking.l2_rescaled`), ties broken by layer order and channel index.

    Returns:
        name → ascending channel indices kept, for every layer in `scores`.

    Raises:
        PruningError: a layer would lose every filter (naming it and `what`), or a bad fraction.
    """
    if not 0.0 <= fraction < 1.0:
        raise PruningError(f"{what}: the fraction of filters to remove must be in [0, 1), got {fraction!r}")
    widths = {entry.name: entry.width for entry in maps}
    pool = [(float(value), order, name, index)
            for order, name in enumerate(scores) for index, value in enumerate(scores[name])]
    remove = int(round(fraction * len(pool)))
    removed: dict[str, set] = {name: set() for name in scores}
    for _, _, name, index in sorted(pool)[:remove]:
        removed[name].add(index)
    keep = {}
    for name in scores:
        kept = [i for i in range(widths[name]) if i not in removed[name]]
        if not kept:
            raise PruningError(
                f"{what} would remove every one of the {widths[name]} filters of {name}; "
                "remove a smaller fraction"
            )
        keep[name] = kept
    return keep


def new_widths(model: keras.Model, keep: Mapping[str, Sequence[int]], maps: Sequence[FeatureMaps]) -> dict:
    """`model.widths` with the feature maps of `keep` cut down to the kept channels."""
    widths = dict(model.widths)
    by_name = {entry.name: entry for entry in maps}
    for name, kept in keep.items():
        entry = by_name[name]
        if entry.kind == "multiscale":
            first = sum(1 for i in kept if i < entry.split)
            widths[name] = [first, len(kept) - first]
        elif entry.kind == "residual":
            widths[name] = [entry.indices[i] for i in kept]
        else:
            widths[name] = len(kept)
    return widths


def prune(model: keras.Model, keep: Mapping[str, Sequence[int]]) -> keras.Model:
    """A copy of `model` with only the `keep` channels of the named feature maps.

    Args:
        model: an `AdapNetPP` or `SSMA` (possibly pruned before).
        keep: feature-map name → ascending channel indices to keep (others keep all channels).

    Returns:
        A new model of the same class whose config holds the smaller widths and the index maps of
        the masked residuals; its outputs equal `model`'s when the removed channels were zero.
    """
    maps = feature_maps(model)
    by_name = {entry.name: entry for entry in maps}
    unknown = sorted(set(keep) - set(by_name))
    if unknown:
        raise PruningError(f"no prunable feature map named {unknown[0]!r} in {model.name}")
    # Removed positions per (variable, axis), in the variable's own (absolute) indices. Variables
    # are told apart by identity: the two SSMA experts hold the same paths.
    removed: dict[tuple[int, int], set] = {}
    for name, kept in keep.items():
        entry = by_name[name]
        gone = sorted(set(range(entry.width)) - set(kept))
        if not gone:
            continue
        for piece in entry.outputs + entry.inputs:
            removed.setdefault((id(piece.variable), piece.axis), set()).update(piece.offset + i for i in gone)
    config = model.get_config()
    config["widths"] = new_widths(model, keep, maps)
    pruned = type(model).from_config(config)
    if len(pruned.weights) != len(model.weights):
        raise RuntimeError(f"prune: the pruned {pruned.name} has {len(pruned.weights)} weights, not {len(model.weights)}")
    # The same constructor with other widths creates the same weights in the same order.
    for old, target in zip(model.weights, pruned.weights):
        value = ops.convert_to_numpy(old)
        for axis in range(value.ndim):
            positions = removed.get((id(old), axis))
            if positions:
                value = np.delete(value, sorted(positions), axis=axis)
        if target.path != old.path or tuple(target.shape) != value.shape:
            raise RuntimeError(
                f"prune: {old.path} {value.shape} does not fit the pruned model's {target.path} {tuple(target.shape)}"
            )
        target.assign(value)
    return pruned


def count_params(model: keras.Model) -> int:
    """Weights of a model, trainable or not (batch-norm statistics included)."""
    return int(sum(int(np.prod(v.shape)) for v in model.weights))


def summary(model: keras.Model) -> dict[str, Any]:
    """The widths of every prunable feature map now, by name."""
    return {entry.name: entry.width for entry in feature_maps(model)}
