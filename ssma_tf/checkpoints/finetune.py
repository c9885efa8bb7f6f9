"""Fine-tuning a trained AdapNet++ or SSMA to another class set (the config's `finetune_from`).

A trained model of the same kind is loaded whole, with the class count it was trained for (TF1
checkpoints and `.keras` files say it; in the project's own TF2 checkpoints and `.weights.h5`
files it is read off the last upsampling's kernel), and every layer is copied into the new model
except the class-dependent ones (`ssma_tf.models.decoder.CLASS_LAYERS`: the classifier, the last
upsampling and the auxiliary heads), which keep their fresh initialisation. The original code had
no way to do this (AdapNet-pp issue #7 asks for it).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import keras
import numpy as np

from ssma_tf.checkpoints.loading import load_like, load_model, run_model
from ssma_tf.checkpoints.reading import check_keras_streams, refuse_pruned_source
from ssma_tf.checkpoints.reading import stored_num_classes as _stored_num_classes
from ssma_tf.checkpoints.resolve import FORMAT_TF1, FORMAT_TF2, resolve_weights
from ssma_tf.checkpoints.tf1_import import CheckpointError
from ssma_tf.checkpoints.tf1_names import DECODER_SCOPES
from ssma_tf.config.runs import is_run
from ssma_tf.constants import EASPP_RATES, SSMA_FUSION
from ssma_tf.models.decoder import CLASS_LAYERS
from ssma_tf.models import AdapNetPP
from ssma_tf.models.factory import model_name
from ssma_tf.models.fusion_baselines import is_class_layer


@dataclasses.dataclass
class FinetuneReport:
    """What `finetune_weights` did.

    Attributes:
        checkpoint: the source read.
        source_classes: the classes the source was trained with.
        target_classes: the classes of the model being fine-tuned.
        loaded: the layers copied from the source (by Keras name; an encoder is one layer).
        reinitialized: the class-dependent layers left freshly initialised.
        loaded_weights, total_weights: the weights copied, and the model's in all.
        unused_weights: of those, the weights of layers the model holds but its graph does not use
            (FuseNet's modality-2 eASPP and skips), which no source fills.
    """

    checkpoint: str
    source_classes: int
    target_classes: int
    loaded: list
    reinitialized: list
    loaded_weights: int = 0
    total_weights: int = 0
    unused_weights: int = 0

    def __str__(self) -> str:
        scopes = [DECODER_SCOPES.get(_own_name(name)) for name in self.reinitialized]
        fresh = ", ".join(name if scope is None else f"{name} ({scope})"
                          for name, scope in zip(self.reinitialized, scopes)) or "none"
        # "loaded 7 layers" read as almost nothing: the encoder is one of them. The unused weights
        # are said: FuseNet's 2 million left unexplained otherwise (helper 338).
        unused = f"{self.unused_weights:,} unused by the fused graph; " if self.unused_weights else ""
        return (
            f"{self.checkpoint}: fine-tuning from {self.source_classes} to {self.target_classes} classes: "
            f"loaded {self.loaded_weights:,} of the {self.total_weights:,} weights ({unused}{len(self.loaded)} layers: "
            f"{', '.join(self.loaded)}); re-initialised the class-dependent layers: {fresh}"
        )


def _layers_with_weights(model: keras.Model, prefix: str = "") -> dict[str, Any]:
    """The model's top-level layers that hold weights, by name (encoders are one layer each). A
    sub-model that holds class-dependent layers (a whole unimodal network inside a late-fusion,
    CMoDE, average, maximum or stacking baseline) is opened: its layers are named
    `<sub-model>/<layer>` (before: copied whole, and refused for the classifier's other class
    count; helper 193)."""
    found = {}
    for layer in model.layers:
        if not layer.weights:
            continue
        inner = getattr(layer, "layers", None)
        if isinstance(layer, keras.Model) and inner and any(is_class_layer(sub.name) for sub in inner):
            found.update(_layers_with_weights(layer, f"{prefix}{layer.name}/"))
        else:
            found[prefix + layer.name] = layer
    return found


def _own_name(name: str) -> str:
    """A layer's own name, without the sub-model before it (`modality1_expert_view/classifier`)."""
    return name.rsplit("/", 1)[-1]




def _difference(arrays: list, variables: list) -> str:
    """The first weight whose shape differs, named with both shapes (or the two weight counts)."""
    if len(arrays) != len(variables):
        return f"the checkpoint's layer has {len(arrays)} weights, the model's {len(variables)}"
    array, variable = next((a, v) for a, v in zip(arrays, variables) if tuple(a.shape) != tuple(v.shape))
    return (f"its weight {variable.path} has the shape {tuple(array.shape)} in the checkpoint, "
            f"{tuple(variable.shape)} here")


def _network(model: keras.Model) -> str:
    """The network `model` is, as the config names it: "AdapNet_pp", "SSMA", or "fusion NAME"
    for a baseline of the paper's tables (before: "SSMA" for them all, so an SSMA fine-tuned
    into late fusion failed at a layer "for this SSMA"; helper 244)."""
    fusion = getattr(model, "fusion", SSMA_FUSION)
    return model_name(model) if fusion == SSMA_FUSION else f"fusion {fusion}"


def train_fresh_layers(model: keras.Model) -> None:
    """Makes the class-dependent layers that fine-tuning starts afresh (`is_class_layer`)
    trainable where frozen experts hold them.

    A late, CMoDE, average or maximum fusion keeps each expert's classifier and last upsampling
    inside the expert, which `freeze_experts` (the default) freezes. Before, fine-tuning such a
    network to new classes re-initialised them and left them frozen: they kept their random
    weights for the whole run, and average and maximum fusion trained nothing at all. The trainer
    calls this before its optimizer is built (on resuming too, so the run trains the same weights).
    """
    for name, layer in _layers_with_weights(model).items():
        if is_class_layer(name):
            layer.trainable = True


def stored_num_classes(fmt: str, resolved: str) -> int:
    """The class count of an own AdapNet++/SSMA checkpoint (`ssma_tf.checkpoints.reading`)."""
    return _stored_num_classes(fmt == FORMAT_TF2, resolved)


def finetune_weights(model: keras.Model, path: str) -> FinetuneReport:
    """Loads every layer but the class-dependent ones from a trained model of the same kind.

    Args:
        model: the freshly built `AdapNetPP` or `SSMA`, with the new class count.
        path: a trained AdapNet++/SSMA: TF1 checkpoint (prefix or folder), own TF2 checkpoint,
            `.weights.h5` or `.keras` file.

    Returns:
        A `FinetuneReport` naming the re-initialised layers.

    Raises:
        CheckpointError: the source is another kind of model, the ImageNet initialisation, or a
            non-class layer does not fit.
    """
    fmt, resolved = resolve_weights(path)
    if fmt == FORMAT_TF1:
        # Built with the rates of the model it goes into: a throw-away of the default rates warned
        # that the network "has the default rates" when it had the release's (helper 126).
        source = load_model(resolved, easpp_rates=getattr(model, "easpp_rates", EASPP_RATES))
    elif resolved.endswith(".keras"):
        # A fusion's file of another modality count, read from its config before the build, as
        # `intialize` refuses it (before: a lone 3-modality late, average, maximum or LFC file
        # loaded into 2 modalities without a word, its third expert dropped).
        check_keras_streams(resolved, model)
        source = load_model(resolved)
    else:
        # Own weights do not say the network: a training run's config beside them does; else it
        # must be the one being fine-tuned (before: built with the default backbone and widths,
        # so a MobileNet v2 or narrowed network's own file was refused as another network).
        classes = stored_num_classes(fmt, resolved)
        # A run's network is its config's (before: built as the model to fine-tune, an AdapNet++
        # run's weights were refused for SSMA as arrays that do not fit; helper 266).
        source = (load_model(resolved, run_model(resolved) or model_name(model), classes) if is_run(resolved)
                  else load_like(model, resolved, classes))
    if _network(source) != _network(model):
        experts = (": an AdapNet++ starts a fusion's experts, with checkpoint1/checkpoint2 (checkpoints for more "
                   "modalities)" if isinstance(source, AdapNetPP) and not isinstance(model, AdapNetPP) else "")
        raise CheckpointError(
            f"{resolved} holds {_network(source)}, but the model to fine-tune is {_network(model)}{experts}")
    if resolved.endswith(".keras"):  # only a .keras file holds a pruned network
        refuse_pruned_source(resolved, getattr(source, "widths", None), getattr(model, "widths", None),
                             "finetune_from", backbone=getattr(model, "backbone", None))
    wanted = _layers_with_weights(model)
    available = _layers_with_weights(source)
    loaded, fresh = [], []
    # Check every layer before assigning anything, so a mismatch never leaves a half-loaded model.
    pairs = []
    for name, layer in wanted.items():
        if is_class_layer(name):
            fresh.append(name)
            continue
        if name not in available:
            raise CheckpointError(f"{resolved}: the checkpoint has no layer {name} for this {_network(model)}")
        arrays = available[name].get_weights()
        shapes = [tuple(v.shape) for v in layer.weights]
        if [a.shape for a in arrays] != shapes:
            # The shapes that differ (before: "other options?" alone).
            raise CheckpointError(f"{resolved}: layer {name} does not fit the model's: "
                                  f"{_difference(arrays, layer.weights)} (another backbone, widths or options?)")
        pairs.append((layer, arrays))
    names = {id(layer): name for name, layer in wanted.items()}
    for layer, arrays in pairs:
        layer.set_weights(arrays)
        loaded.append(names[id(layer)])
    # The fresh class layers train, frozen experts or not (before: a frozen expert's classifier and
    # last upsampling kept their random weights; average and maximum fusion trained nothing).
    train_fresh_layers(model)
    # The decoder's in the network's order, the baselines' own after them (a stable sort).
    order = {layer: index for index, layer in enumerate(CLASS_LAYERS)}
    fresh.sort(key=lambda name: order.get(_own_name(name), len(CLASS_LAYERS)))
    copied = sum(int(array.size) for _, arrays in pairs for array in arrays)
    # Tracked by the model but in none of its graph's layers: neither loaded nor re-initialised.
    used = {id(variable) for layer in wanted.values() for variable in layer.weights}
    unused = sum(int(np.prod(variable.shape)) for variable in model.weights if id(variable) not in used)
    return FinetuneReport(resolved, source.num_classes, model.num_classes, loaded, fresh, copied,
                          int(model.count_params()), unused)
