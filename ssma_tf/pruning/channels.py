"""The prunable feature maps of AdapNet++ and SSMA: who makes each channel and who reads it.

Pruning a feature map (Valada et al. 2019, Section 3.5) removes its filter, the batch-norm
parameters of that channel and the matching input kernels of every layer that reads it. A
`FeatureMaps` entry says where those are, as (variable, axis, offset) slices, so that ranking and
surgery need no knowledge of the architecture beyond this module.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

import keras

from ssma_tf.constants import ADAPNET_PP_BACKBONE
from ssma_tf.errors import UserInputError
from ssma_tf.layers import ConvBN, SSMABlock
from ssma_tf.models.factory import is_fusion
from ssma_tf.models.widths import (
    BLOCK_FILTERS, BLOCK_UNITS, DECODER_LAYERS, MODALITY_PREFIXES, SSMA_BLOCKS, released_widths,
)

# Scopes a stage may name (`ssma_tf.pruning.staged`): the encoder blocks (Res2..Res5 in the
# paper's ResNet names are blocks 1..4 here), the stem, the skips, eASPP, the SSMA blocks, the decoder.
GROUPS = ("stem", "block1", "block2", "block3", "block4", "skips", "easpp", "fusion", "decoder")


class PruningError(UserInputError):
    """A pruning request that cannot be carried out (e.g. it would remove every filter of a layer)."""


@dataclasses.dataclass
class Slice:
    """Channels `offset .. offset + n` of `variable` along `axis`."""

    variable: Any
    axis: int
    offset: int = 0


@dataclasses.dataclass
class FeatureMaps:
    """One prunable convolution's output channels.

    Attributes:
        name: its key in the model's `widths` (`ssma_tf.models.widths`).
        group: the scope it belongs to (one of `GROUPS`).
        kind: "plain", "multiscale" (conv2 of a multiscale unit: two rate groups) or "residual"
            (conv3 of a unit: a masked residual).
        width: its channels now.
        outputs: the slices of the convolution's own weights along its output axis (kernel, bias,
            batch norm).
        inputs: the slices of the layers that read it (input kernels, and weights tied to its
            width such as SSMA's gate expansion and skip-attention descriptors).
        probe: the layer whose output is this feature map (Taylor ranking gates it).
        kernels: the output-axis slices of its kernels alone (for the l1 norm of each filter).
        split: for "multiscale": channels at the first rate now.
        indices: for "residual": the residual channels it computes now (a masked unit), else all.
        full: for "residual": the width of the residual (the unit's output).
    """

    name: str
    group: str
    kind: str
    width: int
    outputs: list
    inputs: list
    probe: Any
    kernels: list
    split: Optional[int] = None
    indices: Optional[list] = None
    full: Optional[int] = None


def _conv_bn_outputs(layer: ConvBN) -> list:
    axis = 2 if layer.transposed else 3
    bn = layer.bn
    return [Slice(layer.conv.kernel, axis)] + [
        Slice(v, 0) for v in (bn.gamma, bn.beta, bn.moving_mean, bn.moving_variance)
    ]


def _bn_slices(bn) -> list:
    return [Slice(v, 0) for v in (bn.gamma, bn.beta, bn.moving_mean, bn.moving_variance)]


def _reads(layer, offset: int = 0) -> Slice:
    """The input-channel slice of a convolution (a ConvBN, a Conv2D or a transposed one)."""
    if isinstance(layer, ConvBN):
        return Slice(layer.conv.kernel, 3 if layer.transposed else 2, offset)
    return Slice(layer.kernel, 2, offset)


def _entry(name, group, layer: ConvBN, inputs) -> FeatureMaps:
    return FeatureMaps(name, group, "plain", layer.filters, _conv_bn_outputs(layer), inputs, layer,
                       [Slice(layer.conv.kernel, 2 if layer.transposed else 3)])


def _fusion_reads(block: SSMABlock, offset: int) -> list:
    """What of an SSMA block reads channels at `offset` of its concatenated input."""
    return [Slice(block.gate_reduce.kernel, 2, offset), Slice(block.gate_expand.kernel, 3, offset),
            Slice(block.gate_expand.bias, 0, offset), Slice(block.output_conv.kernel, 2, offset)]


def encoder_feature_maps(encoder: keras.Model, prefix: str, easpp_readers, skip_readers: dict) -> list:
    """The encoder's feature maps; `easpp_readers(width)` and `skip_readers[name](width)` give
    the slices of the layers outside the encoder that read eASPP's output and the skips."""
    maps = []
    units = {(b, u): encoder.get_layer(f"block{b}_unit{u}") for b in BLOCK_FILTERS for u in range(1, BLOCK_UNITS[b] + 1)}
    stem = encoder.get_layer("conv1")
    maps.append(_entry(prefix + "conv1", "stem", stem, [_reads(units[1, 1].conv1)]))
    for (block, index), unit in units.items():
        name = f"{prefix}block{block}_unit{index}"
        conv1_readers = [_reads(unit.conv2) if unit.conv2_bn is None else Slice(unit.conv2.kernel, 2)]
        if unit.shortcut_type == "projection_of_conv1":
            conv1_readers.append(_reads(unit.shortcut))
        maps.append(_entry(f"{name}_conv1", f"block{block}", unit.conv1, conv1_readers))
        if unit.conv2_bn is None:
            maps.append(_entry(f"{name}_conv2", f"block{block}", unit.conv2, [_reads(unit.conv3)]))
        else:
            maps.append(FeatureMaps(
                f"{name}_conv2", f"block{block}", "multiscale", unit.conv2.filters,
                [Slice(unit.conv2.kernel, 3)] + _bn_slices(unit.conv2_bn), [_reads(unit.conv3)], unit.conv2_bn,
                [Slice(unit.conv2.kernel, 3)], split=unit.conv2.split,
            ))
        full = unit.out_filters
        indices = list(range(full)) if unit.residual_indices is None else list(unit.residual_indices)
        maps.append(FeatureMaps(
            f"{name}_conv3", f"block{block}", "residual", len(indices), [Slice(unit.conv3.kernel, 3)], [],
            unit.conv3, [Slice(unit.conv3.kernel, 3)], indices=indices, full=full,
        ))
    for skip in ("skip1", "skip2"):
        layer = encoder.get_layer(skip)
        maps.append(_entry(prefix + skip, "skips", layer, skip_readers[skip](layer.filters)))
    easpp = encoder.get_layer("easpp")
    offset = easpp.conv1x1.filters
    maps.append(_entry(prefix + "easpp_conv1x1", "easpp", easpp.conv1x1, [_reads(easpp.projection)]))
    for i, branch in enumerate(easpp.branches, start=1):
        for layer, reader in zip(branch[:-1], branch[1:]):
            maps.append(_entry(f"{prefix}easpp_{layer.name}", "easpp", layer, [_reads(reader)]))
        expand = branch[-1]
        maps.append(_entry(f"{prefix}easpp_{expand.name}", "easpp", expand, [_reads(easpp.projection, offset)]))
        offset += expand.filters
    maps.append(_entry(prefix + "easpp_image_pooling", "easpp", easpp.image_pooling,
                       [_reads(easpp.projection, offset)]))
    maps.append(_entry(prefix + "easpp_projection", "easpp", easpp.projection,
                       easpp_readers(easpp.projection.filters)))
    return maps


def feature_maps(model: keras.Model) -> list:
    """Every prunable feature map of an `AdapNetPP` or `SSMA`, in network order.

    Raises:
        ValueError: the model is neither, or is on another backbone (`PruningError`).
    """
    if not hasattr(model, "widths") or not hasattr(model, "encoders"):
        raise ValueError(f"cannot prune a {type(model).__name__}: only AdapNetPP and SSMA models")
    backbone = getattr(model, "backbone", ADAPNET_PP_BACKBONE)
    if backbone != ADAPNET_PP_BACKBONE:
        # Before: Keras' "No such layer: block1_unit1", naming neither pruning nor the backbone (helper 228).
        raise PruningError(f"cannot prune this {type(model).__name__}: its backbone is {backbone}, and pruning works "
                           "on AdapNet++ and SSMA on the AdapNet++ backbone (the paper's Section 3.5)")
    fusion = is_fusion(model)
    if fusion and len(model.encoders) > len(MODALITY_PREFIXES):
        # Before: the experts after the second were left out, and a stage's budget went to the
        # first two without a word (ssma-prune refuses such a config).
        raise ValueError(f"cannot prune an SSMA over {len(model.encoders)} modalities: the feature-map table knows "
                         f"SSMA over {len(MODALITY_PREFIXES)}")
    layer = model.get_layer
    up1, up2 = layer("up1"), layer("up2")
    maps = []
    if fusion:
        latent, fuse_skip2, fuse_skip1 = (layer(name) for name in SSMA_BLOCKS)
        fusion_of = {"easpp": latent, "skip2": fuse_skip2, "skip1": fuse_skip1}
        for i, (prefix, encoder) in enumerate(zip(MODALITY_PREFIXES, model.encoders)):
            first = model.encoders[0]

            def offset_of(source, i=i, first=first):
                if i == 0:
                    return 0
                if source == "easpp":
                    return first.get_layer("easpp").projection.filters
                return first.get_layer(source).filters

            maps += encoder_feature_maps(
                encoder, prefix,
                lambda width, f=offset_of: _fusion_reads(fusion_of["easpp"], f("easpp")),
                {s: (lambda width, s=s, f=offset_of: _fusion_reads(fusion_of[s], f(s))) for s in ("skip1", "skip2")},
            )
        attention = {"ssma_skip2": layer("skip_attention2"), "ssma_skip1": layer("skip_attention1")}
        for block in (latent, fuse_skip2, fuse_skip1):
            maps.append(FeatureMaps(
                f"{block.name}_reduce", "fusion", "plain", block.gate_reduce.filters,
                [Slice(block.gate_reduce.kernel, 3), Slice(block.gate_reduce.bias, 0)],
                [Slice(block.gate_expand.kernel, 2)], block.gate_reduce, [Slice(block.gate_reduce.kernel, 3)],
            ))
            outputs = [Slice(block.output_conv.kernel, 3)]
            outputs += _bn_slices(block.bn) if block.bn is not None else [Slice(block.output_conv.bias, 0)]
            if block.name == "ssma_latent":
                readers = [_reads(up1)]
            else:
                descriptor = attention[block.name].descriptor
                readers = [_reads(layer("refine1_conv1" if block.name == "ssma_skip2" else "refine2_conv1"),
                                  (up1 if block.name == "ssma_skip2" else up2).filters)]
                readers += [Slice(descriptor.conv.kernel, 3)] + _bn_slices(descriptor.bn)
            probe = block.bn if block.bn is not None else block.output_conv
            maps.append(FeatureMaps(block.name, "fusion", "plain", block.filters, outputs, readers, probe,
                                    [Slice(block.output_conv.kernel, 3)]))
    else:
        maps += encoder_feature_maps(
            model.encoders[0], "",
            lambda width: [_reads(up1)],
            {"skip2": lambda width: [_reads(layer("refine1_conv1"), up1.filters)],
             "skip1": lambda width: [_reads(layer("refine2_conv1"), up2.filters)]},
        )
    readers = {
        "up1": [_reads(layer("refine1_conv1"))], "refine1_conv1": [_reads(layer("refine1_conv2"))],
        "refine1_conv2": [_reads(up2)], "up2": [_reads(layer("refine2_conv1"))],
        "refine2_conv1": [_reads(layer("refine2_conv2"))], "refine2_conv2": [_reads(layer("classifier"))],
    }
    for up, head, attention in (("up1", "aux_up1_head", "skip_attention2"), ("up2", "aux_up2_head", "skip_attention1")):
        if model.aux_heads:
            readers[up].append(_reads(layer(head)))
        if fusion:
            readers[up].append(_reads(layer(attention).descriptor))
    for name in DECODER_LAYERS:
        maps.append(_entry(name, "decoder", layer(name), readers[name]))
    known = released_widths(fusion)
    assert all(m.name in known for m in maps), [m.name for m in maps if m.name not in known]
    return maps

