"""Network surgery: a physically smaller copy of a model without the pruned feature maps.

`select` picks the channels to remove from ranked scores; `prune` builds the model with the new
widths (`ssma_tf.models.widths`) and copies every weight, dropping the pruned filters, their
batch-norm parameters and the matching input kernels of the layers that read them.
"""

from __future__ import annotations

import numbers
from typing import Any, Mapping, Sequence

import keras
import numpy as np
from keras import ops

from ssma_tf.layers.initializers import overwritten_weights
from ssma_tf.pruning.channels import FeatureMaps, PruningError, feature_maps


def channel_costs(maps: Sequence[FeatureMaps]) -> dict[str, float]:
    """The weights one channel of each feature map holds: its filter, batch-norm entries and the
    input kernels that read it (before any neighbour is pruned)."""
    costs = {}
    for entry in maps:
        total = 0.0
        for piece in entry.outputs + entry.inputs:
            shape = tuple(piece.variable.shape)
            total += float(np.prod(shape)) / shape[piece.axis]
        costs[entry.name] = total
    return costs


class _Removal:
    """Counts the weights that removing channels takes away, each weight once.

    A kernel between two pruned feature maps loses rows for the map it reads and columns for the
    map it makes; summing each channel's `channel_costs` would count their crossing twice and stop
    a stage short of its budget (by a different amount for each method). Here every variable's
    remaining shape is kept, and a removal costs what the shapes lose.
    """

    def __init__(self, maps: Sequence[FeatureMaps]):
        self.shapes: dict[int, list[int]] = {}
        self.axes: dict[str, list[tuple[int, int]]] = {}
        for entry in maps:
            pieces = {(id(p.variable), p.axis) for p in entry.outputs + entry.inputs}
            if len(pieces) != len(entry.outputs + entry.inputs):
                # One variable read at two offsets along one axis would lose a row per slice here.
                raise RuntimeError(f"{entry.name}: a variable appears twice along one axis; count each slice")
            for piece in entry.outputs + entry.inputs:
                self.shapes.setdefault(id(piece.variable), list(piece.variable.shape))
            self.axes[entry.name] = sorted(pieces)

    def remove(self, name: str, count: int) -> float:
        """Takes `count` channels from feature map `name`; returns the weights that go with them."""
        touched = {variable for variable, _ in self.axes[name]}
        before = sum(float(np.prod(self.shapes[v])) for v in touched)
        for variable, axis in self.axes[name]:
            self.shapes[variable][axis] -= count
        return before - sum(float(np.prod(self.shapes[v])) for v in touched)


def select(scores: Mapping[str, np.ndarray], budget: float, maps: Sequence[FeatureMaps], *,
           what: str = "this stage", multiple: int = 1) -> dict[str, list[int]]:
    """The channels to keep when the lowest-ranked channels holding `budget` weights go.

    One global ranking over the layers named in `scores` (their scores already rescaled per layer,
    `ssma_tf.pruning.ranking.l2_rescaled`), ties broken by layer order and channel index. Channels
    go from the lowest score up until the weights they hold reach `budget`, each weight counted
    once (a kernel between two pruned maps loses rows and columns: `_Removal`), so that a stage
    removes the same share of weights whichever channels a method picks; a layer always keeps
    its last channel, so the ranking alone never empties a layer.

    With `multiple` > 1, channels go in groups of `multiple` from the same layer (and the same
    rate group of a multiscale convolution): its `multiple` lowest-ranked remaining channels, ranked
    by the sum of their scores. A width that was a multiple of `multiple` stays one, which the
    processors' vector units (16 float32 lanes with AVX-512, 8-wide int8 and tensor-core tiles) run
    without padding; a group is removed only while at least one group is left.

    Returns:
        name → ascending channel indices kept, for every layer in `scores`.

    Raises:
        PruningError: the layers in `scores` hold fewer than `budget` removable weights, i.e. the
            stage would remove every filter of its layers (naming `what`).
    """
    if budget <= 0:
        raise PruningError(f"{what}: the number of weights to remove must be positive, got {budget!r}")
    if not isinstance(multiple, int) or multiple < 1:
        raise PruningError(f"{what}: the channel multiple must be a positive integer, got {multiple!r}")
    by_name = {entry.name: entry for entry in maps}
    removal = _Removal([by_name[name] for name in scores])
    pool = []
    for order, name in enumerate(scores):
        entry, values = by_name[name], np.asarray(scores[name], dtype=float)
        # The channels of each part that is a convolution of its own (a multiscale unit's two rate
        # groups) are grouped apart, so that each part's width stays a multiple.
        parts = ([range(entry.split), range(entry.split, entry.width)] if entry.kind == "multiscale"
                 else [range(entry.width)])
        for part, channels in enumerate(parts):
            ranked = sorted(channels, key=lambda i: (float(values[i]), i))
            # Leave one group (or, with multiple 1, one channel) in the part: never emptied.
            removable = (len(ranked) - 1) // multiple
            for k in range(removable):
                group = ranked[k * multiple:(k + 1) * multiple]
                pool.append((float(values[list(group)].sum()), order, name, part, k, tuple(group)))
    pool.sort()
    removed: dict[str, set] = {name: set() for name in scores}
    total = 0.0
    for _, _, name, _, _, group in pool:
        if total >= budget:
            break
        removed[name].update(group)
        total += removal.remove(name, len(group))
    if total < budget:
        layers = ', '.join(scores) if len(scores) <= 3 else 'its layers'
        if multiple > 1:
            try:  # the groups, not the fraction, may be what does not fit (before: blamed on the fraction)
                select(scores, budget, maps, what=what, multiple=1)
            except PruningError:
                pass
            else:
                raise PruningError(
                    f"{what}: in groups of {multiple} channels, one group left in each layer, {layers} hold "
                    f"{total:,.0f} removable weights, short of {budget:,.0f}; one by one they hold enough: "
                    "give a smaller channel multiple (--channel-multiple)")
        raise PruningError(
            f"{what} would remove every filter of {layers} "
            f"and still fall short of {budget:,.0f} weights ({total:,.0f} removable); remove a smaller "
            "fraction or widen its scope"
        )
    return {name: [i for i in range(by_name[name].width) if i not in removed[name]] for name in scores}


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
    for name, kept in keep.items():
        _check_kept(name, kept, by_name[name].width)
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
    with overwritten_weights():  # every weight is assigned below
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


def _check_kept(name: str, kept: Sequence[int], width: int) -> None:
    """Fails, naming the feature map and the index, unless `kept` are ascending distinct channel
    indices of the map's `width` (before: an index beyond it, negative or listed twice gave the
    pruned model another width than the weights removed, found as a RuntimeError about a kernel's
    shape after the build)."""
    if len(kept) == 0:
        raise PruningError(f"keep[{name!r}] keeps no channel: a layer keeps at least one")
    for position, index in enumerate(kept):
        if isinstance(index, bool) or not isinstance(index, numbers.Integral) or not 0 <= index < width:
            raise PruningError(f"keep[{name!r}][{position}] is {index!r}: not a channel of the map's {width} "
                               f"(0..{width - 1})")
        if position and index <= kept[position - 1]:
            raise PruningError(f"keep[{name!r}][{position}] is {index}, after {kept[position - 1]}: give the channels "
                               "kept in ascending order, each once")


def count_params(model: keras.Model) -> int:
    """Weights of a model, trainable or not (batch-norm statistics included)."""
    return int(sum(int(np.prod(v.shape)) for v in model.weights))


def summary(model: keras.Model) -> dict[str, Any]:
    """The widths of every prunable feature map now, by name."""
    return {entry.name: entry.width for entry in feature_maps(model)}
