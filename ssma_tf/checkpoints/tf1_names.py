"""The one table from Keras weights to the variable names of the released TF1 graphs.

Keras layer names follow the paper (`block2_unit4`, `easpp`, `ssma_latent`, `up1`); the TF1
scopes are the original ones (`block2/unit_4/bottleneck_v1`, `conv256`, `conv511`, `conv41`).
Two quirks of the released graph show here: a unit's pre-activation batch norm is stored under the
PREVIOUS unit's `conv3/BatchNorm` scope, and the block-output batch norms under the last unit's.
"""

from ssma_tf.layers import ConvBN
from ssma_tf.models import SSMA
from ssma_tf.models.widths import BLOCK_UNITS


# eASPP sub-layer → TF1 scope, the atrous branches in rate order (3, 6, 12).
EASPP_SCOPES = {
    "conv1x1": "conv256",
    "branch1_reduce": "conv70", "branch1_atrous1": "conv7", "branch1_atrous2": "conv247", "branch1_expand": "conv71",
    "branch2_reduce": "conv80", "branch2_atrous1": "conv8", "branch2_atrous2": "conv248", "branch2_expand": "conv81",
    "branch3_reduce": "conv90", "branch3_atrous1": "conv9", "branch3_atrous2": "conv249", "branch3_expand": "conv91",
    "image_pooling": "conv57",
    "projection": "conv10",
}
ENCODER_SKIP_SCOPES = {"skip1": "conv32", "skip2": "conv174"}
DECODER_SCOPES = {
    "up1": "conv41", "refine1_conv1": "conv89", "refine1_conv2": "conv96",
    "up2": "conv16", "refine2_conv1": "conv88", "refine2_conv2": "conv95",
    "classifier": "conv78", "up3": "conv5",
    "aux_up2_head": "conv911", "aux_up1_head": "conv912",
}
# SSMA block → (gate_reduce, gate_expand, output projection) scopes.
SSMA_BLOCK_SCOPES = {
    "ssma_latent": ("conv511", "conv512", "conv515"),
    "ssma_skip2": ("conv513", "conv514", "conv552"),
    "ssma_skip1": ("conv518", "conv519", "conv553"),
}
SKIP_ATTENTION_SCOPES = {"skip_attention2": "conv550", "skip_attention1": "conv551"}

UNIMODAL_PREFIX = "resnet_v2_50/"
EXPERT_PREFIXES = ("rgb/resnet_v2_50/", "depth/resnet_v2_50/")


def _bn(bn, scope: str) -> list:
    return [
        (bn.gamma, f"{scope}/BatchNorm/gamma"),
        (bn.beta, f"{scope}/BatchNorm/beta"),
        (bn.moving_mean, f"{scope}/BatchNorm/moving_mean"),
        (bn.moving_variance, f"{scope}/BatchNorm/moving_variance"),
    ]


def _conv(conv, scope: str) -> list:
    pairs = [(conv.kernel, f"{scope}/weights")]
    if getattr(conv, "use_bias", False):
        pairs.append((conv.bias, f"{scope}/biases"))
    return pairs


def _conv_bn(layer: ConvBN, scope: str) -> list:
    return _conv(layer.conv, scope) + _bn(layer.bn, scope)


def encoder_pairs(encoder) -> list:
    """(Keras variable, TF1 name under `resnet_v2_50/`) for every weight of an AdapNet++ encoder."""
    pairs = _bn(encoder.get_layer("input_bn"), "conv0") + _conv_bn(encoder.get_layer("conv1"), "conv1")
    previous_conv3 = None
    for block, count in BLOCK_UNITS.items():
        for index in range(1, count + 1):
            unit = encoder.get_layer(f"block{block}_unit{index}")
            scope = f"block{block}/unit_{index}/bottleneck_v1"
            if unit.preact_bn is not None:
                pairs += _bn(unit.preact_bn, previous_conv3)
            pairs += _conv_bn(unit.conv1, f"{scope}/conv1")
            if unit.conv2_bn is None:
                pairs += _conv_bn(unit.conv2, f"{scope}/conv2")
            else:
                pairs += _conv(unit.conv2, f"{scope}/conv2") + _bn(unit.conv2_bn, f"{scope}/conv2")
            pairs += _conv(unit.conv3, f"{scope}/conv3")
            if unit.shortcut is not None:
                pairs += _conv(unit.shortcut, f"{scope}/shortcut")
            previous_conv3 = f"{scope}/conv3"
        if block != 3:
            pairs += _bn(encoder.get_layer(f"block{block}_out_bn"), previous_conv3)
    for name, scope in ENCODER_SKIP_SCOPES.items():
        pairs += _conv_bn(encoder.get_layer(name), scope)
    easpp = encoder.get_layer("easpp")
    if len(easpp.branches) != 3:
        raise ValueError(f"TF1 checkpoints have eASPP with 3 atrous branches; this model has {len(easpp.branches)}")
    sublayers = {"conv1x1": easpp.conv1x1, "image_pooling": easpp.image_pooling, "projection": easpp.projection}
    for i, branch in enumerate(easpp.branches, start=1):
        for part, layer in zip(("reduce", "atrous1", "atrous2", "expand"), branch):
            sublayers[f"branch{i}_{part}"] = layer
    for name, scope in EASPP_SCOPES.items():
        pairs += _conv_bn(sublayers[name], scope)
    return pairs


def decoder_pairs(model) -> list:
    """(Keras variable, TF1 name without prefix) for the decoder (and SSMA fusion) weights."""
    names = {layer.name for layer in model.layers}
    pairs = []
    for name, scope in DECODER_SCOPES.items():
        if name in names:
            pairs += _conv_bn(model.get_layer(name), scope)
    for name, (reduce_scope, expand_scope, out_scope) in SSMA_BLOCK_SCOPES.items():
        if name not in names:
            continue
        block = model.get_layer(name)
        pairs += _conv(block.gate_reduce, reduce_scope) + _conv(block.gate_expand, expand_scope)
        pairs += _conv(block.output_conv, out_scope)
        if block.bn is not None:
            pairs += _bn(block.bn, out_scope)
    for name, scope in SKIP_ATTENTION_SCOPES.items():
        if name in names:
            pairs += _conv_bn(model.get_layer(name).descriptor, scope)
    return pairs


def tf1_variable_map(model) -> dict:
    """Maps every TF1 variable name of the released graph to the Keras variable of `model`.

    An AdapNetPP maps to a unimodal checkpoint (`resnet_v2_50/...` for encoder AND decoder); an
    SSMA to a fusion checkpoint (`rgb/resnet_v2_50/...`, `depth/resnet_v2_50/...`, top-level
    fusion and decoder names).
    """
    mapping = {}
    if isinstance(model, SSMA):
        for encoder, prefix in zip(model.encoders, EXPERT_PREFIXES):
            mapping.update({prefix + name: var for var, name in encoder_pairs(encoder)})
        mapping.update({name: var for var, name in decoder_pairs(model)})
    else:
        mapping.update({UNIMODAL_PREFIX + name: var for var, name in encoder_pairs(model.encoder)})
        mapping.update({UNIMODAL_PREFIX + name: var for var, name in decoder_pairs(model)})
    return mapping
