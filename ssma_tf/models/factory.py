"""Building a network from a run config or a model name, and telling the two networks apart.

The config names the network `AdapNet_pp` or `SSMA`, as the original `.config` files do. Weights
are loaded elsewhere (`ssma_tf.checkpoints.loading`); this module only builds.
"""

from __future__ import annotations

from typing import Any

import keras

from ssma_tf.constants import ADAPNET_PP, ADAPNET_PP_BACKBONE, DECODER_FILTERS, EASPP_RATES, MODEL_NAMES, SSMA_FUSION
from ssma_tf.constants import SSMA as SSMA_NAME
from ssma_tf.models.adapnet_pp import AdapNetPP
from ssma_tf.models.backbones import BackboneWeightsError
from ssma_tf.models.fusion_baselines import FusionBaseline
from ssma_tf.models.ssma import SSMA
from ssma_tf.models.widths import decoder_widths


def check_model_name(name: str) -> str:
    """Returns `name` if it is one of `MODEL_NAMES`, else raises a ValueError naming it."""
    if name not in MODEL_NAMES:
        # The class is AdapNetPP; the name (configs, flags, load_model) is the released one.
        alike = str(name).lower().replace("_", "").replace("+", "p") == "adapnetpp"
        hint = f"; the name of the class AdapNetPP is {ADAPNET_PP!r}" if alike else ""
        raise ValueError(f"model must be one of {MODEL_NAMES}, got {name!r}{hint}")
    return name


def is_fusion(model: keras.Model) -> bool:
    """True for a model that takes two or more modalities (SSMA or a fusion baseline)."""
    return len(model.inputs) >= 2


def num_modalities(model: keras.Model) -> int:
    """The number of images a model takes: 1 (AdapNet++) or N >= 2 (SSMA or a fusion baseline)."""
    return len(model.inputs)


def model_name(model: keras.Model) -> str:
    """The config name of a model: "SSMA" or "AdapNet_pp"."""
    return SSMA_NAME if is_fusion(model) else ADAPNET_PP


def build_model(config: Any) -> keras.Model:
    """Builds the network a `RunConfig` describes (random weights).

    Args:
        config: a `ssma_tf.config.RunConfig`.

    Returns:
        `SSMA` (experts frozen or not as `freeze_experts` says, auxiliary heads as `aux_heads`),
        the `FusionBaseline` that `fusion` names, or `AdapNetPP` (always with its auxiliary
        heads), in the config's mixed-precision policy.
    """
    kwargs: dict[str, Any] = {"dropout_rate": 1.0 - config.dropout_keep_prob}
    backbone = getattr(config, "backbone", ADAPNET_PP_BACKBONE)
    if backbone != ADAPNET_PP_BACKBONE:
        kwargs["backbone"] = backbone
        if getattr(config, "mode", "train") == "train":
            # ImageNet weights start a training run; evaluation and prediction load a checkpoint.
            kwargs["backbone_weights"] = getattr(config, "backbone_weights", None)
    try:
        return _build(config, kwargs)
    except BackboneWeightsError as error:
        # The file is named; the config and the key that gave it are not, deep in the build.
        where = config.where("backbone_weights") if hasattr(config, "where") else getattr(config, "source", None)
        raise BackboneWeightsError(f"{where + ': ' if where else ''}key 'backbone_weights': {error}") from None


def _build(config: Any, kwargs: dict[str, Any]) -> keras.Model:
    """`build_model` after the backbone's keyword arguments are known."""
    if config.mixed_precision:
        kwargs["dtype"] = config.mixed_precision
    decoder_filters = getattr(config, "decoder_filters", DECODER_FILTERS)
    if decoder_filters != DECODER_FILTERS:
        # A narrower decoder is the released one with other widths (as a pruned network's).
        kwargs["widths"] = decoder_widths(decoder_filters)
    easpp_rates = tuple(getattr(config, "easpp_rates", EASPP_RATES))
    if easpp_rates != EASPP_RATES:
        kwargs["easpp_rates"] = easpp_rates  # the config refuses them for a fusion baseline
    fusion = getattr(config, "fusion", None) or SSMA_FUSION
    if config.is_fusion and fusion != SSMA_FUSION:
        return FusionBaseline(config.num_classes, fusion=fusion, num_modalities=getattr(config, "num_modalities", 2),
                              freeze_experts=config.freeze_experts, aux_heads=config.aux_heads, **kwargs)
    if config.is_fusion:
        return SSMA(
            config.num_classes,
            # Configs made in code before N modalities existed say nothing: the released two.
            num_modalities=getattr(config, "num_modalities", 2),
            freeze_experts=config.freeze_experts,
            aux_heads=config.aux_heads,
            **kwargs,
        )
    return AdapNetPP(config.num_classes, aux_heads=True, **kwargs)
