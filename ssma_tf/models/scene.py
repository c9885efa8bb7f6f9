"""SSMA for scene classification: N expert encoders fused at the latent, pooled, classified (Section 5.9)."""

import numbers
from typing import Optional, Sequence

import keras
from keras import layers

from ssma_tf import SERIALIZATION_PACKAGE
from ssma_tf.constants import ADAPNET_PP_BACKBONE, OUTPUT_STRIDE
from ssma_tf.layers import ReplicaDropout, SSMABlock
from ssma_tf.models.backbones import build_encoder
from ssma_tf.models.decoder import DECODER_FILTERS
from ssma_tf.models.encoder import RELEASED_DROPOUT_RATE, check_modality_batches, inputs_in_order
from ssma_tf.models.encoder import check_flag, check_model_kwargs, check_num_modalities
from ssma_tf.models.encoder import config_with_trainable, from_config_with_trainable


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class SSMASceneClassifier(keras.Model):
    """Scene classification with SSMA: the experts' eASPP outputs fused by one SSMA block.

    Section 5.9 of the paper uses SSMA for scene classification (ScanNet, Table 22) with two
    SE-ResNeXt-101 streams (Hu et al., 2018) fused after their block 5 by the SSMA module, whose
    output feeds a fully connected layer. This port has no SE-ResNeXt: its streams are the
    segmentation experts' encoders, AdapNet++ with eASPP (or, as Section 5.10.1's experts, a
    MobileNet v2 encoder with the eASPP appended), fused by the SSMA block at the latent (as in the
    segmentation network: reduction 16, projected to 256 channels with a batch norm), then a ReLU,
    global average pooling and a fully connected classifier. There is no decoder. Its numbers are
    therefore not the paper's Table 22 setup.

    Takes `[modality1, ..., modalityN]`, each (B, H, W, 3) floats 0..255 (H, W multiples of 16),
    and returns the class probabilities (B, C).

    Args:
        num_classes: C, the scene classes (no void class).
        num_modalities: N >= 2, the number of experts.
        freeze_experts: experts not trainable, batch norms in inference mode (as SSMA's released
            fusion stage, after the experts were trained).
        latent_reduction: η of the SSMA block (16).
        input_size: the (height, width) it is trained at, kept with the model as the size to
            evaluate at (`ssma_tf.scene.evaluate_scene_classifier`); None: not recorded.
        dropout_rate: dropout of the experts' block-4 unit 3 (released 0.7; AdapNet++ only) and,
            at most 0.5, before the classifier.
        backbone: the experts' backbone, `adapnet_pp` or a registered pyramid backbone
            (`mobilenet_v2`); see `ssma_tf.models.backbones`.
        backbone_weights: ImageNet weights file of a pyramid backbone, for experts that do not
            start from unimodal checkpoints; only initialises (not kept in the config).
    """

    def __init__(
        self,
        num_classes: int,
        num_modalities: int = 2,
        freeze_experts: bool = True,
        latent_reduction: int = 16,
        dropout_rate: float = RELEASED_DROPOUT_RATE,
        input_size: Optional[Sequence[int]] = None,
        backbone: str = ADAPNET_PP_BACKBONE,
        backbone_weights: Optional[str] = None,
        **kwargs,
    ):
        check_model_kwargs(type(self), kwargs)
        freeze_experts = check_flag("freeze_experts", freeze_experts)
        dtype = kwargs.pop("dtype", None)
        if dtype not in (None, "float32") and getattr(dtype, "name", None) != "float32":
            # Before: accepted and ignored (every layer float32).
            raise ValueError(f"SSMASceneClassifier computes in float32; dtype {dtype!r} is not supported")
        # Scene classes have no void: two at least. NumPy's integers are counts too.
        if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or num_classes < 2:
            raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
        num_classes = int(num_classes)
        num_modalities = check_num_modalities(num_modalities)
        # As SSMA's: the gate's bottleneck has N x 256 // latent_reduction channels, at least one
        # (before: True gave a 512-wide one, 3 an error naming the block's "reduction=3").
        most = num_modalities * DECODER_FILTERS
        if (isinstance(latent_reduction, bool) or not isinstance(latent_reduction, numbers.Integral)
                or not 1 <= latent_reduction <= most):
            raise ValueError(f"SSMASceneClassifier latent_reduction must be an integer in 1..{most} (its SSMA "
                             f"block's bottleneck has {num_modalities} x {DECODER_FILTERS} / latent_reduction "
                             f"channels), got {latent_reduction!r}")
        latent_reduction = int(latent_reduction)
        if input_size is not None:
            input_size = tuple(int(n) for n in input_size)
            if len(input_size) != 2 or min(input_size) < OUTPUT_STRIDE or any(n % OUTPUT_STRIDE for n in input_size):
                raise ValueError(f"input_size must be (height, width), multiples of {OUTPUT_STRIDE}, "
                                 f"got {input_size!r}")
        kwargs.setdefault("name", "ssma_scene")

        # === Layers ===
        experts = [build_encoder(backbone, backbone_weights, dropout_rate=dropout_rate, name=f"modality{i}_encoder")
                   for i in range(1, num_modalities + 1)]
        for expert in experts:
            expert.trainable = not freeze_experts
            # Only the eASPP output is fused: the skip branches (for a decoder) feed nothing and
            # would get no gradient (Keras warns of each while training the experts).
            for name in ("skip1", "skip2"):
                expert.get_layer(name).trainable = False
        fusion = SSMABlock(DECODER_FILTERS, latent_reduction, output_kernel_size=1, output_bn=True,
                           return_gate=False, reduced_filters=most // latent_reduction, name="ssma_latent")
        classifier = layers.Dense(num_classes, name="classifier")

        # === Functional model ===
        inputs = [keras.Input(shape=(None, None, 3), name=f"modality{i}") for i in range(1, num_modalities + 1)]
        fused = fusion([expert(image)["easpp"] for expert, image in zip(experts, inputs)])
        pooled = layers.GlobalAveragePooling2D(name="global_pool")(layers.ReLU(name="fused_relu")(fused))
        pooled = ReplicaDropout(min(dropout_rate, 0.5), name="dropout")(pooled)
        probabilities = layers.Softmax(dtype="float32", name="softmax")(classifier(pooled))
        super().__init__(inputs=inputs, outputs=probabilities, **kwargs)

        # === Config ===
        for i, expert in enumerate(experts, start=1):
            setattr(self, f"modality{i}_encoder", expert)
        self.num_classes = num_classes
        self.num_modalities = num_modalities
        self.freeze_experts = freeze_experts
        self.latent_reduction = latent_reduction
        self.dropout_rate = float(dropout_rate)
        self.input_size = input_size
        self.backbone = backbone

    @property
    def encoders(self) -> list:
        """The expert encoders, modality 1 first."""
        return [getattr(self, f"modality{i}_encoder") for i in range(1, self.num_modalities + 1)]

    def call(self, inputs, training=None, mask=None):
        inputs = inputs_in_order(self, inputs)
        if not isinstance(inputs, (list, tuple)) or len(inputs) != self.num_modalities:
            raise ValueError(f"SSMASceneClassifier takes a list of {self.num_modalities} image batches")
        check_modality_batches(inputs, "SSMASceneClassifier")
        return super().call(list(inputs), training=training, mask=mask)

    def get_config(self):
        config = super().get_config()
        config.update({
            "num_classes": self.num_classes,
            "num_modalities": self.num_modalities,
            "freeze_experts": self.freeze_experts,
            "latent_reduction": self.latent_reduction,
            "dropout_rate": self.dropout_rate,
            "input_size": list(self.input_size) if self.input_size is not None else None,
            "backbone": self.backbone,
        })
        # The experts frozen or unfrozen after building stay so in a `.keras` file (before: the
        # constructor's `freeze_experts` alone; helper 159).
        return config_with_trainable(config, self)

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config.pop("dtype", None)
        # `trainable` kept: a model frozen whole came back trainable, its experts too (helper 174).
        return from_config_with_trainable(cls, config)
