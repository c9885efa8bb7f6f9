"""SSMA: AdapNet++ expert encoders (two as released, or more) fused by self-supervised model adaptation (Section 4)."""

import numbers

import keras
from keras import layers

from ssma_tf import SERIALIZATION_PACKAGE
from ssma_tf.constants import ADAPNET_PP_BACKBONE
from ssma_tf.models.backbones import build_encoder
from ssma_tf.layers import SSMABlock
from ssma_tf.models.decoder import DECODER_FILTERS, build_decoder
from ssma_tf.models.segmenter import SegmenterTraining
from ssma_tf.models.widths import DECODER_LAYERS, EASPP_FILTERS, SKIP_FILTERS, check_widths, released_widths, sub_widths
from ssma_tf.models.encoder import (
    RELEASED_DROPOUT_RATE, check_flag, check_model_kwargs, check_modality_batches, check_num_classes,
    check_num_modalities, check_positive_integer, config_with_trainable, encoder_options, from_config_with_trainable,
    inputs_in_order, resolve_dilations,
)


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class SSMA(SegmenterTraining, keras.Model):
    """The SSMA fusion network: N AdapNet++ experts, SSMA blocks, attention-refined decoder.

    Takes `[modality1, modality2, ...]`, each (B, H, W, 3) floats 0..255 (modality 1 is the BGR
    image; the others 3-channel encodings of depth, HHA, NIR, ...), and returns the per-pixel
    softmax (B, H, W, C) in inference mode. With `return_all=True` (the default while training,
    for `fit`, see `ssma_tf.models.segmenter`) it returns a dict with `softmax`, `logits`, the
    SSMA gates `gate_latent` (H/16, 256·N ch), `gate_skip2` (H/8, 24·N ch), `gate_skip1` (H/4,
    24·N ch), and, with `aux_heads`, `aux_up2` and `aux_up1`.

    The released graph fuses two modalities; Section 4.2 extends the framework to any number:
    with `num_modalities=N` each SSMA block gates and projects the concatenation of N streams,
    and the skip attention and decoder stay as they are. N = 2 is exactly the released model
    (the same layers, names and weights).

    Args:
        num_classes: C, including the void class 0.
        num_modalities: N >= 2, the number of experts (and inputs).
        freeze_experts: as released, the experts are not trainable and their batch norms run in
            inference mode (and their dropout is off). False trains them with batch norms in
            training mode.
        aux_heads: build the auxiliary heads (off in the released SSMA; they work here).
        latent_reduction: η of the latent SSMA block (16).
        skip_reduction: η of the two skip SSMA blocks (6).
        fused_kernel_size: kernel of the latent block's output projection: 1 released (`conv515`),
            3 in the paper.
        skip_output_kernel_size: kernel of the skip blocks' output conv (3 released).
        block3_dilations, block4_dilations, dropout_rate, paper_dilations, easpp_rates: as in
            AdapNetPP, for every expert.
        widths: output channels by convolution name, for a pruned network (Section 3.5; the names
            in `ssma_tf.models.widths`); the others keep their released widths.
        backbone, backbone_weights: the experts' backbone and its ImageNet weights file, as in
            AdapNetPP.
    """

    def __init__(
        self,
        num_classes: int,
        num_modalities: int = 2,
        freeze_experts: bool = True,
        aux_heads: bool = False,
        latent_reduction: int = 16,
        skip_reduction: int = 6,
        fused_kernel_size: int = 1,
        skip_output_kernel_size: int = 3,
        block3_dilations=None,
        block4_dilations=None,
        dropout_rate: float = RELEASED_DROPOUT_RATE,
        paper_dilations: bool = False,
        easpp_rates=(3, 6, 12),
        widths=None,
        backbone: str = ADAPNET_PP_BACKBONE,
        backbone_weights=None,
        **kwargs,
    ):
        check_model_kwargs(type(self), kwargs)
        num_classes = check_num_classes(num_classes)
        num_modalities = check_num_modalities(num_modalities)
        freeze_experts = check_flag("freeze_experts", freeze_experts)
        aux_heads = check_flag("aux_heads", aux_heads)
        paper_dilations = check_flag("paper_dilations", paper_dilations)
        for name, value, filters in (("latent_reduction", latent_reduction, EASPP_FILTERS),
                                     ("skip_reduction", skip_reduction, SKIP_FILTERS)):
            # The gate's bottleneck has N · filters // η channels: at least one (before: a
            # ZeroDivisionError, or "SSMABlock reduced_filters must be a positive integer, got 0").
            most = num_modalities * filters
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 1 <= value <= most:
                raise ValueError(f"SSMA {name} must be an integer in 1..{most} (its SSMA blocks' bottleneck has "
                                 f"{num_modalities} x {filters} / {name} channels), got {value!r}")
        latent_reduction, skip_reduction = int(latent_reduction), int(skip_reduction)
        fused_kernel_size = check_positive_integer("SSMA fused_kernel_size", fused_kernel_size)
        skip_output_kernel_size = check_positive_integer("SSMA skip_output_kernel_size", skip_output_kernel_size)
        released = released_widths(True, latent_reduction, skip_reduction, num_modalities)
        widths = check_widths(widths, released, "SSMA")
        block3_dilations, block4_dilations = resolve_dilations(block3_dilations, block4_dilations, paper_dilations)
        dtype = kwargs.pop("dtype", None)
        kwargs.setdefault("name", "ssma")

        # === Layers ===
        experts = [
            build_encoder(
                backbone, backbone_weights, block3_dilations=block3_dilations, block4_dilations=block4_dilations,
                dropout_rate=dropout_rate, easpp_rates=easpp_rates, name=f"modality{i}_encoder", dtype=dtype,
                widths=sub_widths(widths, f"modality{i}_") or None,
            )
            for i in range(1, num_modalities + 1)
        ]
        for expert in experts:
            # A non-trainable BN normalises with its moving statistics, and ResidualUnit skips its
            # dropout when not trainable: the released frozen-expert behaviour.
            expert.trainable = not freeze_experts
        latent = SSMABlock(widths.get("ssma_latent", DECODER_FILTERS), latent_reduction,
                           output_kernel_size=fused_kernel_size, output_bn=True, return_gate=True,
                           reduced_filters=widths.get("ssma_latent_reduce", released["ssma_latent_reduce"]),
                           name="ssma_latent", dtype=dtype)
        fuse_skip2, fuse_skip1 = (
            SSMABlock(widths.get(name, SKIP_FILTERS), skip_reduction, output_kernel_size=skip_output_kernel_size,
                      output_bn=False, return_gate=True,
                      reduced_filters=widths.get(f"{name}_reduce", released[f"{name}_reduce"]), name=name, dtype=dtype)
            for name in ("ssma_skip2", "ssma_skip1")
        )

        # === Functional model ===
        inputs = [keras.Input(shape=(None, None, 3), name=f"modality{i}") for i in range(1, num_modalities + 1)]
        features = [expert(image) for expert, image in zip(experts, inputs)]
        fused, gate_latent = latent([f["easpp"] for f in features])
        skip2, gate_skip2 = fuse_skip2([f["skip2"] for f in features])
        skip1, gate_skip1 = fuse_skip1([f["skip1"] for f in features])
        outputs = build_decoder(fused, skip2, skip1, num_classes, skip_attention=True,
                                aux_heads=aux_heads, dtype=dtype,
                                widths={k: v for k, v in widths.items() if k in DECODER_LAYERS})
        for name, gate in (("gate_latent", gate_latent), ("gate_skip2", gate_skip2), ("gate_skip1", gate_skip1)):
            outputs[name] = layers.Activation("linear", dtype="float32", name=name)(gate)
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        if dtype is not None:
            # A functional model ignores a `dtype` argument; its layers have the policy, and the
            # model takes it too so that `get_config` (and a `.keras` file) keeps it.
            self.dtype_policy = dtype

        # === Config ===
        # `modality1_encoder`, `modality2_encoder`, ...: the attribute names of the released pair.
        for i, expert in enumerate(experts, start=1):
            setattr(self, f"modality{i}_encoder", expert)
        self.num_classes = num_classes
        self.num_modalities = num_modalities
        self.freeze_experts = freeze_experts
        self.aux_heads = aux_heads
        self.latent_reduction = latent_reduction
        self.skip_reduction = skip_reduction
        self.fused_kernel_size = fused_kernel_size
        self.skip_output_kernel_size = skip_output_kernel_size
        self.block3_dilations = experts[0].block3_dilations
        self.block4_dilations = experts[0].block4_dilations
        self.dropout_rate = float(dropout_rate)
        self.easpp_rates = tuple(int(r) for r in easpp_rates)  # checked by the eASPP
        self.widths = widths
        self.backbone = backbone

    @property
    def encoders(self) -> list:
        """The expert encoders, modality 1 first."""
        return [getattr(self, f"modality{i}_encoder") for i in range(1, self.num_modalities + 1)]

    def call(self, inputs, training=None, mask=None, return_all=None):
        inputs = inputs_in_order(self, inputs)
        n = self.num_modalities
        if not isinstance(inputs, (list, tuple)) or len(inputs) != n:
            names = ", ".join(f"modality{i}" for i in range(1, n + 1))
            got = f"{len(inputs)} batches" if isinstance(inputs, (list, tuple)) else "one tensor"
            raise ValueError(f"SSMA takes a list [{names}] of {n} image batches, got {got}")
        check_modality_batches(inputs, "SSMA")
        outputs = super().call(list(inputs), training=training, mask=mask)
        return self.resolve_outputs(outputs, training, return_all)

    def get_config(self):
        config = super().get_config()  # name, trainable, dtype policy
        config.update({
            "num_classes": self.num_classes,
            "num_modalities": self.num_modalities,
            "freeze_experts": self.freeze_experts,
            "aux_heads": self.aux_heads,
            "latent_reduction": self.latent_reduction,
            "skip_reduction": self.skip_reduction,
            "fused_kernel_size": self.fused_kernel_size,
            "skip_output_kernel_size": self.skip_output_kernel_size,
            **encoder_options(self.encoders[0]),
            "widths": self.widths or None,
            "backbone": self.backbone,
        })
        return config_with_trainable(config, self)  # parts frozen or unfrozen after building

    @classmethod
    def from_config(cls, config):
        return from_config_with_trainable(cls, config)
