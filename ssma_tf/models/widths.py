"""Channel widths of AdapNet++ and SSMA by layer name: the released ones, and checks of pruned ones.

A pruned network (Valada et al. 2019, Section 3.5) is an ordinary model with smaller widths. Its
constructor takes one `widths` mapping from a convolution's name to its output channels; every
convolution not named keeps its released width. The names:

- encoder: `conv1` (the stem), `block{b}_unit{u}_conv{1,2,3}`, `skip1`, `skip2` and
  `easpp_<name>` for eASPP's convolutions (`easpp_conv1x1`, `easpp_branch1_reduce`, ...,
  `easpp_image_pooling`, `easpp_projection`); in SSMA prefixed by `modality1_`, ..., `modalityN_`;
- decoder: `up1`, `refine1_conv1`, `refine1_conv2`, `up2`, `refine2_conv1`, `refine2_conv2` (the
  classifier, `up3` and the auxiliary heads have one channel per class and are never pruned);
- SSMA blocks: `ssma_latent`, `ssma_skip2`, `ssma_skip1` (their output) and `<block>_reduce`
  (the gate's bottleneck).

Values are channel counts, with two exceptions: the `conv2` of a multiscale unit takes the pair
(channels at the first rate, channels at the second), and a unit's `conv3` takes the ascending
list of residual channels it still computes (the masked residual: the others are zeros before
the shortcut add) or the full count.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from ssma_tf.constants import DECODER_FILTERS

# Bottleneck width of each encoder block and its units' kinds (the multiscale units of
# `ssma_tf.models.encoder`).
BLOCK_FILTERS = {1: 64, 2: 128, 3: 256, 4: 512}
BLOCK_UNITS = {1: 3, 2: 4, 3: 6, 4: 3}
EXPANSION = 4
STEM_FILTERS = 64
SKIP_FILTERS = 24
EASPP_FILTERS = 256
EASPP_BRANCH_FILTERS = 64
EASPP_BRANCHES = 3
DECODER_LAYERS = ("up1", "refine1_conv1", "refine1_conv2", "up2", "refine2_conv1", "refine2_conv2")
SSMA_BLOCKS = ("ssma_latent", "ssma_skip2", "ssma_skip1")
MODALITY_PREFIXES = ("modality1_", "modality2_")


def is_multiscale(block: int, unit: int) -> bool:
    """Block 2 unit 4, block 3 units 3..6 and every unit of block 4 hold a multiscale conv2."""
    return (block, unit) == (2, 4) or (block == 3 and unit >= 3) or block == 4


def encoder_widths() -> dict[str, Any]:
    """The released encoder's widths by name (see the module docstring)."""
    widths: dict[str, Any] = {"conv1": STEM_FILTERS}
    for block, filters in BLOCK_FILTERS.items():
        for unit in range(1, BLOCK_UNITS[block] + 1):
            name = f"block{block}_unit{unit}"
            widths[f"{name}_conv1"] = filters
            widths[f"{name}_conv2"] = [filters // 2, filters // 2] if is_multiscale(block, unit) else filters
            widths[f"{name}_conv3"] = filters * EXPANSION
    widths["skip1"] = widths["skip2"] = SKIP_FILTERS
    widths["easpp_conv1x1"] = EASPP_FILTERS
    for branch in range(1, EASPP_BRANCHES + 1):
        for part in ("reduce", "atrous1", "atrous2"):
            widths[f"easpp_branch{branch}_{part}"] = EASPP_BRANCH_FILTERS
        widths[f"easpp_branch{branch}_expand"] = EASPP_FILTERS
    widths["easpp_image_pooling"] = widths["easpp_projection"] = EASPP_FILTERS
    return widths


def decoder_widths(filters: int = DECODER_FILTERS) -> dict[str, int]:
    """Every decoder convolution with `filters` channels (the released 256 by default; fewer for
    the `decoder_filters:` of a real-time decoder)."""
    return {name: filters for name in DECODER_LAYERS}


def is_masked_residual(name: str, width: Any) -> bool:
    """Whether a `widths` entry is a pruned unit's masked residual: a `conv3` given as the list of
    channels it still computes."""
    return name.endswith("_conv3") and isinstance(width, (list, tuple))


def released_widths(fusion: bool, latent_reduction: int = 16, skip_reduction: int = 6,
                    num_modalities: int = 2) -> dict[str, Any]:
    """Every prunable convolution of AdapNet++ (`fusion=False`) or SSMA with its released width
    (for SSMA over `num_modalities` streams: the fusion gates' bottlenecks widen with them)."""
    if not fusion:
        return {**encoder_widths(), **decoder_widths()}
    widths: dict[str, Any] = {}
    prefixes = [f"modality{i}_" for i in range(1, num_modalities + 1)]
    for prefix in prefixes:
        widths.update({prefix + name: value for name, value in encoder_widths().items()})
    for block, filters, reduction in (("ssma_latent", EASPP_FILTERS, latent_reduction),
                                      ("ssma_skip2", SKIP_FILTERS, skip_reduction),
                                      ("ssma_skip1", SKIP_FILTERS, skip_reduction)):
        widths[block] = filters
        widths[f"{block}_reduce"] = num_modalities * filters // reduction
    widths.update(decoder_widths())
    return widths


def check_widths(widths: Optional[Mapping[str, Any]], released: Mapping[str, Any], owner: str) -> dict[str, Any]:
    """Validates a `widths` argument and returns it as a plain dict of JSON-able values.

    Entries equal to the released width are dropped, so a model's config names only what differs.

    Args:
        widths: layer name → width, or None.
        released: the names the model knows, with their released widths (`released_widths`).
        owner: the class name, for messages.

    Raises:
        ValueError: an unknown layer name or a bad value, naming the layer.
    """
    checked: dict[str, Any] = {}
    for name, value in (widths or {}).items():
        if name not in released:
            raise ValueError(f"{owner} widths: no prunable convolution named {name!r}")
        default = released[name]
        if name.endswith("_conv3"):
            if isinstance(value, int) and value == default:
                continue
            indices = list(value) if isinstance(value, (list, tuple)) else None
            if (not indices or any(not isinstance(i, int) or not 0 <= i < default for i in indices)
                    or indices != sorted(set(indices))):
                raise ValueError(
                    f"{owner} widths[{name!r}] must be {default} or the ascending list of the residual "
                    f"channels kept (distinct, in [0, {default}), at least one), got {value!r}"
                )
            if len(indices) < default:
                checked[name] = indices
        elif isinstance(default, list):
            pair = list(value) if isinstance(value, (list, tuple)) else None
            if (pair is None or len(pair) != 2 or any(not isinstance(n, int) or n < 0 for n in pair)
                    or sum(pair) < 1):
                raise ValueError(
                    f"{owner} widths[{name!r}] of a multiscale convolution must be a pair [channels at the "
                    f"first rate, channels at the second], not both 0, got {value!r}"
                )
            if pair != default:
                checked[name] = pair
        elif not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{owner} widths[{name!r}] must be a positive integer, got {value!r}")
        elif value != default:
            checked[name] = value
    return checked


def sub_widths(widths: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """The entries of `widths` under `prefix`, with the prefix taken off."""
    return {name[len(prefix):]: value for name, value in widths.items() if name.startswith(prefix)}
