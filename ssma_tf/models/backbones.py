"""Expert backbones: the interface every encoder of AdapNet++ and SSMA fulfils, and MobileNet v2.

An expert encoder maps a (B, H, W, 3) BGR 0..255 image to a dict of `block4` (the stride-16
features), `easpp` (B, H/16, W/16, 256), `skip2` (B, H/8, W/8, 24) and `skip1` (B, H/4, W/4, 24):
what the AdapNet++ decoder and the SSMA blocks read. `AdapNetPPEncoder` (the default, and the one
the released checkpoints hold) is one. Any other backbone only has to give feature maps at strides
4, 8 and 16: `PyramidEncoder` appends the 1×1 skip projections and the eASPP to it, as Section
5.10.1 of the paper does for MobileNet v2 ("its encoder, with the eASPP and the AdapNet++ decoder
appended"). A further backbone (for example a KerasHub backbone with pyramid outputs) plugs in with
`register_backbone(name, builder)`, where `builder(weights=..., dtype=...)` returns a
`keras.Model` from an RGB image in [-1, 1] to `{"stride4", "stride8", "stride16"}`.

MobileNet v2 (Sandler et al., "MobileNetV2: Inverted residuals and linear bottlenecks", CVPR 2018)
comes from `keras.applications`. Its last stage runs at stride 32 there; as in DeepLab v3 it runs
here at stride 16, its first depthwise convolution unstrided and the later ones dilated by 2, so
the ImageNet weights still fit unchanged. Those weights are read only from a file
(`backbone_weights`, the Keras file `mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5`
or weights saved from `keras.applications.MobileNetV2(include_top=False)`): nothing is downloaded.
"""

from __future__ import annotations

import os
import warnings
import zipfile
from typing import Callable, Optional

import keras
from keras import layers, ops

from ssma_tf import SERIALIZATION_PACKAGE
from ssma_tf.constants import ADAPNET_PP_BACKBONE, BACKBONES
from ssma_tf.errors import UserInputError, first_line
from ssma_tf.layers import BN_MOMENTUM, EASPP, ConvBN
from ssma_tf.models.encoder import (
    RELEASED_BLOCK3_DILATIONS, RELEASED_BLOCK4_DILATIONS, RELEASED_DROPOUT_RATE, AdapNetPPEncoder,
    check_dilations, check_dropout_rate, check_image_shape, check_model_kwargs, deserialize_dtype,
)
from ssma_tf.models.widths import SKIP_FILTERS

# MobileNet v2's last layer of each stride that the pyramid takes (keras.applications names).
MOBILENET_V2_TAPS = {"stride4": "block_2_add", "stride8": "block_5_add", "stride16": "out_relu"}
# The blocks after MobileNet v2's last downsampling: unstrided (block 13) and dilated (14..16)
# keep the output stride at 16.
MOBILENET_V2_STRIDE32_BLOCKS = (13, 14, 15, 16)


class BackboneWeightsError(UserInputError):
    """A backbone weights file that is missing or does not fit the backbone."""


def mobilenet_v2_pyramid(weights: Optional[str] = None, dtype=None, alpha: float = 1.0) -> keras.Model:
    """MobileNet v2 from `keras.applications` at output stride 16, with its stride-4, 8, 16 maps.

    Args:
        weights: a weights file of `keras.applications.MobileNetV2(include_top=False)` (ImageNet),
            or None for random weights. Never downloads.
        dtype: layer dtype policy.
        alpha: width multiplier of MobileNet v2 (1.0: the ImageNet weights Keras ships).

    Its batch norms take the released network's momentum (0.99, not Keras' 0.999), as every
    other batch norm of AdapNet++ and SSMA.

    Returns:
        A `keras.Model` from an RGB image in [-1, 1] to `{"stride4", "stride8", "stride16"}`
        (24, 32 and 1280 channels at alpha 1).

    Raises:
        BackboneWeightsError: `weights` is not a file, or its weights do not fit.
    """
    if weights is not None and not os.path.isfile(weights):
        raise BackboneWeightsError("no such file", path=weights)
    base = keras.applications.MobileNetV2(input_shape=(None, None, 3), alpha=alpha, include_top=False,
                                          weights=None)
    if weights is not None:
        # Keras warns of each layer it cannot match (a hundred lines) before it raises: kept back,
        # and shown only when the weights load after all.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if not weights.endswith((".h5", ".hdf5", ".keras")):
                raise BackboneWeightsError("Keras reads MobileNet v2 weights from .h5, .weights.h5 or .keras files "
                                           "only: give the file such a name", path=weights)
            try:
                base.load_weights(weights)
            except (zipfile.BadZipFile, RuntimeError) as error:
                # A cut .keras (not a whole zip), an .h5 of damaged metadata (h5py's RuntimeError):
                # before, a bare traceback naming neither the file nor the key (helper 123).
                raise BackboneWeightsError(
                    f"cannot read the file (truncated, damaged or another kind of file): {first_line(error)[:300]}",
                    path=weights) from None
            except (ValueError, OSError, KeyError) as error:
                # Keras follows its count of the layers it could not match with every one of them
                # (kilobytes): the count says enough.
                reason = first_line(error).split(" Example error message")[0].split(" List of objects")[0]
                raise BackboneWeightsError(
                    f"the file does not hold MobileNet v2 (include_top=False, alpha {alpha}) weights: "
                    f"{reason[:300]}", path=weights,
                ) from None
        for warning in caught:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)

    def stride16(layer):
        config = layer.get_config()
        if dtype is not None:
            config["dtype"] = dtype
        block = layer.name.split("_")[1] if layer.name.startswith("block_") else None
        if isinstance(layer, layers.BatchNormalization):
            # The released network's momentum, as every other batch norm of the model (Keras'
            # MobileNetV2 has 0.999, whose moving statistics still hold 82 % of their initial
            # values after 200 steps). Even so, trained from scratch for the demo's 200 steps the
            # moving statistics have not settled (docs/fusion.md): some MobileNet layers' true
            # variances are about 0.005, against the 13 % of the initial 1 that remains.
            config["momentum"] = BN_MOMENTUM
        if layer.name == "block_13_pad":
            # The strided depthwise convolution pads (0, 1); unstrided, "valid" needs 1 on each side.
            return layers.ZeroPadding2D(1, name=layer.name, dtype=config.get("dtype"))
        if layer.name == "block_13_depthwise":
            config["strides"] = (1, 1)
        elif block is not None and int(block) in MOBILENET_V2_STRIDE32_BLOCKS[1:] and "depthwise" in layer.name \
                and isinstance(layer, layers.DepthwiseConv2D):
            config["dilation_rate"] = (2, 2)
        return type(layer).from_config(config)

    dilated = keras.models.clone_model(base, clone_function=stride16)
    for layer in dilated.layers:
        if layer.weights:
            layer.set_weights(base.get_layer(layer.name).get_weights())
    outputs = {key: dilated.get_layer(name).output for key, name in MOBILENET_V2_TAPS.items()}
    return keras.Model(dilated.inputs, outputs, name="mobilenet_v2")


_BACKBONES: dict[str, Callable[..., keras.Model]] = {"mobilenet_v2": mobilenet_v2_pyramid}


def register_backbone(name: str, builder: Callable[..., keras.Model]) -> None:
    """Makes `backbone: name` build `PyramidEncoder(name)` on `builder(weights=, dtype=)`.

    The registration lasts for the process: a `.keras` file of a model on this backbone names it
    only, so register it again before loading one in another process (or add it to `_BACKBONES`
    and `ssma_tf.constants.BACKBONES`, as `mobilenet_v2` is). The backbone check of weight files
    (`ssma_tf.checkpoints.reading.check_backbone`) knows the built-in backbones only and passes
    a registered one over.

    Raises:
        ValueError: `name` is a built-in backbone's (`adapnet_pp`, `mobilenet_v2`): their weight
            files are told apart by shape, which another builder would not match.
    """
    if name in BACKBONES:
        raise ValueError(f"{name!r} is a built-in backbone; register yours under another name")
    _BACKBONES[name] = builder


def check_backbone(name: str) -> str:
    """Returns `name` if it names a backbone with a builder, else raises a ValueError naming it."""
    if not isinstance(name, str):
        # Before: "unhashable type: 'list'" for a list of one backbone per expert.
        raise ValueError(f"backbone must be the name of one backbone, got {name!r}: every expert of a model is on "
                         "the same backbone")
    if name != ADAPNET_PP_BACKBONE and name not in _BACKBONES:
        known = [ADAPNET_PP_BACKBONE] + sorted(_BACKBONES)
        if name in BACKBONES:
            raise ValueError(f"backbone {name!r} is listed in ssma_tf.constants.BACKBONES but has no builder: "
                             f"add one with ssma_tf.models.backbones.register_backbone (built: {known})")
        raise ValueError(f"backbone must be one of {known}, got {name!r} (a backbone added with "
                         "ssma_tf.models.backbones.register_backbone is registered again in each process, "
                         "before a model on it is built or loaded)")
    return name


# The pyramid's maps and the stride each must have (the skips' and eASPP's inputs).
PYRAMID_STRIDES = {"stride4": 4, "stride8": 8, "stride16": 16}


def _check_pyramid(pyramid: keras.Model, backbone: str) -> None:
    """Fails, naming the backbone and the map, unless a registered builder's model gives the
    maps `PYRAMID_STRIDES` names at their strides (before: a map at another stride built, and the
    first call failed in TensorFlow's concatenation, naming neither; helper 181)."""
    side = 64
    try:
        outputs = pyramid.compute_output_spec(keras.KerasTensor((1, side, side, 3)))
    except Exception as error:
        raise ValueError(f"backbone {backbone!r}: its builder's model does not take a {side}x{side} RGB image "
                         f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})") from error
    if not isinstance(outputs, dict) or set(PYRAMID_STRIDES) - set(outputs):
        got = sorted(outputs) if isinstance(outputs, dict) else type(outputs).__name__
        raise ValueError(f"backbone {backbone!r}: its builder's model must give a dict of {sorted(PYRAMID_STRIDES)}, "
                         f"got {got}")
    for key, stride in PYRAMID_STRIDES.items():
        shape = tuple(outputs[key].shape)
        if len(shape) != 4 or shape[1:3] != (side // stride, side // stride):
            raise ValueError(f"backbone {backbone!r}: its {key!r} map is {shape[1:3]} for a {side}x{side} image, not "
                             f"{(side // stride, side // stride)} (stride {stride})")


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class ToUnitRangeRGB(layers.Layer):
    """BGR 0..255 (the networks' input convention) to RGB in [-1, 1] (the Keras applications')."""

    def call(self, images):
        return ops.flip(images, axis=-1) / 127.5 - 1.0


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class PyramidEncoder(keras.Model):
    """An expert encoder on any pyramid backbone: skips and eASPP appended (Section 5.10.1).

    Same outputs as `AdapNetPPEncoder`: `block4` (the backbone's stride-16 map), `easpp`, `skip2`
    (1×1 projection of the stride-8 map to 24 channels with batch norm, as AdapNet++'s skips) and
    `skip1` (the same on the stride-4 map).

    Args:
        backbone: a registered pyramid backbone (`mobilenet_v2`).
        backbone_weights: a weights file for the backbone (ImageNet), or None for random weights.
        easpp_rates: atrous rates of the eASPP.
        block3_dilations, block4_dilations, dropout_rate: AdapNet++'s options, checked and kept
            so that the models' configs read the same for every backbone; a pyramid backbone has
            no such units and does not use them.
    """

    def __init__(
        self,
        backbone: str = "mobilenet_v2",
        backbone_weights: Optional[str] = None,
        easpp_rates=(3, 6, 12),
        block3_dilations=RELEASED_BLOCK3_DILATIONS,
        block4_dilations=RELEASED_BLOCK4_DILATIONS,
        dropout_rate: float = RELEASED_DROPOUT_RATE,
        **kwargs,
    ):
        check_model_kwargs(type(self), kwargs)
        check_backbone(backbone)
        if backbone == ADAPNET_PP_BACKBONE:
            raise ValueError("PyramidEncoder takes a pyramid backbone; AdapNet++ is AdapNetPPEncoder")
        block3_dilations = check_dilations("block3_dilations", block3_dilations, 4)
        block4_dilations = check_dilations("block4_dilations", block4_dilations, 3)
        dropout_rate = check_dropout_rate(dropout_rate)  # kept, as the docstring says: checked too
        dtype = kwargs.pop("dtype", None)

        # === Layers ===
        pyramid = _BACKBONES[backbone](weights=backbone_weights, dtype=dtype)
        if backbone not in BACKBONES:
            _check_pyramid(pyramid, backbone)
        skip1 = ConvBN(SKIP_FILTERS, 1, activation=None, name="skip1", dtype=dtype)
        skip2 = ConvBN(SKIP_FILTERS, 1, activation=None, name="skip2", dtype=dtype)
        easpp = EASPP(256, 64, easpp_rates, name="easpp", dtype=dtype)

        # === Functional model ===
        image = keras.Input(shape=(None, None, 3), name="image")
        features = pyramid(ToUnitRangeRGB(name="to_unit_range_rgb", dtype=dtype)(image))
        outputs = {"block4": features["stride16"], "easpp": easpp(features["stride16"]),
                   "skip1": skip1(features["stride4"]), "skip2": skip2(features["stride8"])}
        super().__init__(inputs=image, outputs=outputs, **kwargs)
        if dtype is not None:
            self.dtype_policy = dtype

        # === Config ===
        self.backbone = backbone
        self.easpp_rates = tuple(int(r) for r in easpp_rates)  # checked by the eASPP
        self.block3_dilations = block3_dilations
        self.block4_dilations = block4_dilations
        self.dropout_rate = float(dropout_rate)
        self.input_channels = 3

    def call(self, inputs, training=None, mask=None):
        check_image_shape(tuple(inputs.shape), f"{self.name} input")
        return super().call(inputs, training=training, mask=mask)

    def get_config(self):
        config = super().get_config()  # name, trainable, dtype policy
        # The weights file only initialises: a saved model holds the weights themselves.
        config.update({"backbone": self.backbone, "easpp_rates": list(self.easpp_rates),
                       "block3_dilations": [list(p) for p in self.block3_dilations],
                       "block4_dilations": [list(p) for p in self.block4_dilations],
                       "dropout_rate": self.dropout_rate})
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**deserialize_dtype(config))


def build_encoder(backbone: str = ADAPNET_PP_BACKBONE, backbone_weights: Optional[str] = None, *,
                  input_channels: int = 3, **kwargs) -> keras.Model:
    """The expert encoder of a backbone: `AdapNetPPEncoder`, or a `PyramidEncoder`.

    Args:
        backbone: `adapnet_pp` or a registered pyramid backbone (`mobilenet_v2`).
        backbone_weights: ImageNet weights file of a pyramid backbone (AdapNet++ starts from its
            TF1 checkpoint with `intialize` instead).
        input_channels: image channels (other than 3 only for AdapNet++).
        **kwargs: `block3_dilations`, `block4_dilations`, `dropout_rate`, `easpp_rates`, `name`,
            `dtype`, and `widths` (pruned channel widths, AdapNet++ only).
    """
    check_backbone(backbone)
    widths = kwargs.pop("widths", None)
    if backbone == ADAPNET_PP_BACKBONE:
        if widths:
            kwargs["widths"] = widths
        if backbone_weights is not None:
            raise ValueError("backbone_weights is for a pyramid backbone (backbone='mobilenet_v2'); the AdapNet++ "
                             "encoder starts from the released ImageNet TF1 checkpoint (load_tf1_checkpoint, or "
                             "the config key intialize)")
        return AdapNetPPEncoder(input_channels=input_channels, **kwargs)
    if widths:
        raise ValueError(f"pruned widths are for the {ADAPNET_PP_BACKBONE} backbone, not {backbone}")
    if input_channels != 3:
        raise ValueError(f"the {backbone} backbone takes 3-channel images, got input_channels={input_channels}")
    return PyramidEncoder(backbone, backbone_weights, **kwargs)
