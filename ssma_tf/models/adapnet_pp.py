"""AdapNet++, the unimodal segmentation network (Valada et al. 2019, Section 3)."""

import keras

from ssma_tf import SERIALIZATION_PACKAGE
from ssma_tf.constants import ADAPNET_PP_BACKBONE
from ssma_tf.models.backbones import build_encoder
from ssma_tf.models.decoder import build_decoder
from ssma_tf.models.segmenter import SegmenterTraining
from ssma_tf.models.widths import DECODER_LAYERS, check_widths, released_widths
from ssma_tf.models.encoder import (
    RELEASED_DROPOUT_RATE, check_flag, check_image_shape, check_model_kwargs, check_num_classes, config_with_trainable,
    encoder_options, from_config_with_trainable, inputs_in_order, resolve_dilations,
)


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class AdapNetPP(SegmenterTraining, keras.Model):
    """AdapNet++: encoder (multiscale residual units, eASPP) and decoder with skip refinement.

    `model(x, training=False)` takes (B, H, W, 3) BGR floats 0..255 (H, W multiples of 16) and
    returns the per-pixel softmax (B, H, W, C), the released graph's `softmax` tensor.
    `model(x, training=True)` (what `fit` calls, see `ssma_tf.models.segmenter`) and
    `model(x, return_all=True)` return a dict with `softmax`, `logits` and, when
    `aux_heads`, the auxiliary probabilities `aux_up2` (head `conv911` on the second upsampling,
    loss weight 0.6) and `aux_up1` (`conv912` on the first, weight 0.5).

    Args:
        num_classes: C, including the void class 0.
        aux_heads: build the auxiliary heads (every released unimodal checkpoint has them).
        block3_dilations: (rate, rate) for block-3 units 3..6; released: all (1, 2).
        block4_dilations: (rate, rate) for block-4 units 1..3; released: all (2, 2).
        dropout_rate: block-4 unit-3 dropout while training; released 0.7 (keep 0.3), paper 0.5.
        paper_dilations: use the paper's dilations (Section 3.1) instead of the released ones.
        easpp_rates: eASPP atrous rates.
        input_channels: channels of the input image.
        widths: output channels by convolution name, for a pruned network (Section 3.5; the names
            in `ssma_tf.models.widths`); the others keep their released widths.
        backbone: the encoder's backbone: `adapnet_pp` (released) or `mobilenet_v2`
            (`ssma_tf.models.backbones`; the dilation and dropout options are AdapNet++'s).
        backbone_weights: an ImageNet weights file for a `mobilenet_v2` backbone (read once,
            when building; not part of the config).
    """

    def __init__(
        self,
        num_classes: int,
        aux_heads: bool = True,
        block3_dilations=None,
        block4_dilations=None,
        dropout_rate: float = RELEASED_DROPOUT_RATE,
        paper_dilations: bool = False,
        easpp_rates=(3, 6, 12),
        input_channels: int = 3,
        widths=None,
        backbone: str = ADAPNET_PP_BACKBONE,
        backbone_weights=None,
        **kwargs,
    ):
        check_model_kwargs(type(self), kwargs)
        num_classes = check_num_classes(num_classes)
        aux_heads = check_flag("aux_heads", aux_heads)
        paper_dilations = check_flag("paper_dilations", paper_dilations)
        widths = check_widths(widths, released_widths(fusion=False), "AdapNetPP")
        block3_dilations, block4_dilations = resolve_dilations(block3_dilations, block4_dilations, paper_dilations)
        dtype = kwargs.pop("dtype", None)
        kwargs.setdefault("name", "adapnet_pp")

        # === Layers ===
        encoder = build_encoder(
            backbone, backbone_weights, block3_dilations=block3_dilations, block4_dilations=block4_dilations,
            dropout_rate=dropout_rate, easpp_rates=easpp_rates, input_channels=input_channels, name="encoder",
            dtype=dtype,
            widths={k: v for k, v in widths.items() if k not in DECODER_LAYERS} or None,
        )

        # === Functional model ===
        image = keras.Input(shape=(None, None, input_channels), name="image")
        features = encoder(image)
        outputs = build_decoder(
            features["easpp"], features["skip2"], features["skip1"], num_classes,
            skip_attention=False, aux_heads=aux_heads, dtype=dtype,
            widths={k: v for k, v in widths.items() if k in DECODER_LAYERS},
        )
        super().__init__(inputs=image, outputs=outputs, **kwargs)
        if dtype is not None:
            # A functional model ignores a `dtype` argument; its layers have the policy, and the
            # model takes it too so that `get_config` (and a `.keras` file) keeps it.
            self.dtype_policy = dtype

        # === Config ===
        self.encoder = encoder
        self.num_classes = num_classes
        self.aux_heads = aux_heads
        self.block3_dilations = encoder.block3_dilations
        self.block4_dilations = encoder.block4_dilations
        self.dropout_rate = float(dropout_rate)
        self.easpp_rates = tuple(int(r) for r in easpp_rates)  # checked by the eASPP
        self.input_channels = input_channels
        self.widths = widths
        self.backbone = backbone

    @property
    def encoders(self) -> list:
        """The encoder sub-models (one here; SSMA has two)."""
        return [self.encoder]

    def call(self, inputs, training=None, mask=None, return_all=None):
        inputs = inputs_in_order(self, inputs)
        if isinstance(inputs, (list, tuple)):
            # Code that feeds every network a list of modality batches (helper 118: an
            # AttributeError of the list, though Keras' functional models take a list of one).
            if len(inputs) != 1:  # Keras' own check refuses it first when the model is called
                raise ValueError(f"AdapNetPP takes one image batch, got a {type(inputs).__name__} of {len(inputs)}")
            inputs = inputs[0]
        check_image_shape(tuple(inputs.shape), "AdapNetPP input", self.input_channels)
        outputs = super().call(inputs, training=training, mask=mask)
        return self.resolve_outputs(outputs, training, return_all)

    def get_config(self):
        config = super().get_config()  # name, trainable, dtype policy
        config.update({
            "num_classes": self.num_classes,
            "aux_heads": self.aux_heads,
            **encoder_options(self.encoders[0]),
            "input_channels": self.input_channels,
            "widths": self.widths or None,
            "backbone": self.backbone,
        })
        return config_with_trainable(config, self)  # parts frozen or unfrozen after building

    @classmethod
    def from_config(cls, config):
        return from_config_with_trainable(cls, config)
