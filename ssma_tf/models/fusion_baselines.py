"""The fusion baselines of the paper's tables, on the AdapNet++ backbone and decoder (Section 5.7).

The paper compares SSMA with seven other ways of fusing two modalities, all built on the same
AdapNet++ network ("we use the official implementation from the authors as a reference and append
the fusion mechanism to our backbone"). `FusionBaseline(num_classes, fusion=...)` builds one of
them; the run config selects it with `fusion:` next to `model: SSMA` (`docs/fusion.md`). Like
SSMA (Section 4.2) each also fuses more than two modalities (`num_modalities`, the config's
`modalities:` list): one stream per modality wherever the table below says "the two".

What each starts from (`checkpoint1`/`checkpoint2`, or `checkpoints` for N: the stage-1 experts)
and what it trains:

| fusion   | experts loaded from the checkpoints      | trained                                      |
| -------- | ---------------------------------------- | -------------------------------------------- |
| average  | whole AdapNet++ (encoder and decoder)    | nothing while `freeze_experts` (default)     |
| maximum  | whole AdapNet++                          | nothing while `freeze_experts`               |
| late     | whole AdapNet++                          | the two (N) 1×1 convolutions                 |
| cmode    | whole AdapNet++                          | the class-wise gating network                |
| lfc      | the two (N) encoders                     | fusion convolutions and decoder              |
| fusenet  | the two (N) encoders                     | everything (FuseNet trains end to end)       |
| stacking | none (one AdapNet++ on 6 (3N) channels)  | everything                                   |

With `freeze_experts: false` the experts train too (with `encoder_lr_multiplier` on their
encoders). Fine-tuned to another class set (`finetune_from`), the experts' class layers that start
afresh (classifier, last upsampling) train inside frozen experts (`train_fresh_layers`). Every
baseline takes `[modality1, ..., modalityN]` and returns the softmax (B, H, W, C), or with
`return_all` (while training) a dict with `softmax`, `logits` and, where the baseline has its own
decoder and `aux_heads`, `aux_up2` and `aux_up1`. With N = 2 the graph
and its layer names are those of the two-modality baselines, so that their `.keras` files and
checkpoints load unchanged.
"""

from __future__ import annotations

import re

import keras
from keras import layers, ops

from ssma_tf import SERIALIZATION_PACKAGE
from ssma_tf.constants import END_TO_END_FUSIONS, FUSION_METHODS, SSMA_FUSION
from ssma_tf.layers import ConvBN, ScaledIdentity
from ssma_tf.losses import LOG_EPSILON  # the released loss adds the same inside its log
from ssma_tf.models.adapnet_pp import AdapNetPP
from ssma_tf.models.decoder import CLASS_LAYERS, DECODER_FILTERS, build_decoder
from ssma_tf.models.encoder import (
    RELEASED_DROPOUT_RATE, AdapNetPPEncoder, check_flag, check_model_kwargs, check_modality_batches, check_num_classes,
    check_num_modalities, check_positive_integer, config_with_trainable, from_config_with_trainable, inputs_in_order,
)
from ssma_tf.models.segmenter import SegmenterTraining
from ssma_tf.models.widths import BLOCK_UNITS

BASELINES = tuple(name for name in FUSION_METHODS if name != SSMA_FUSION)
# The baselines' own layers whose shapes follow the class count: late fusion's C x C mixing
# convolutions, CMoDE's gate (a weight per class and expert).
BASELINE_CLASS_LAYERS = re.compile(r"late_conv\d+|cmode_gate_fc")


def is_class_layer(name: str) -> bool:
    """Whether the layer `name` (a sub-model's layer as `<sub-model>/<layer>`) has the class
    count in its shapes: the decoder's `CLASS_LAYERS` and the baselines' own (fine-tuning to
    another class set starts them afresh)."""
    last = name.rsplit("/", 1)[-1]
    return last in CLASS_LAYERS or BASELINE_CLASS_LAYERS.fullmatch(last) is not None


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class ProbabilityLogarithm(layers.Layer):
    """log(p + 1e-10): the logits of a baseline that fuses probabilities (softmax(log p) = p)."""

    def call(self, probabilities):
        return ops.log(probabilities + LOG_EPSILON)


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class Renormalise(layers.Layer):
    """Scales non-negative per-class scores to sum to one over the last axis."""

    def call(self, scores):
        return scores / ops.sum(scores, axis=-1, keepdims=True)


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class ClassWiseMixture(layers.Layer):
    """CMoDE's mixture: class c's scores are Σ_i w[c, i] · scores_i[c] over the N experts.

    Takes `[weights (B, 1, 1, C, N), scores1 (B, H, W, C), ..., scoresN (B, H, W, C)]`.
    """

    def call(self, inputs):
        weights, scores = inputs[0], inputs[1:]
        mixed = weights[..., 0] * scores[0]
        for index in range(1, len(scores)):
            mixed = mixed + weights[..., index] * scores[index]
        return mixed


def check_fusion(fusion: str) -> str:
    """Returns `fusion` if it names a baseline, else raises a ValueError naming it."""
    if fusion not in BASELINES:
        raise ValueError(f"fusion must be one of {BASELINES} for FusionBaseline, got {fusion!r}")
    return fusion


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class FusionBaseline(SegmenterTraining, keras.Model):
    """One of the paper's fusion baselines (Section 5.7, Table 17) on the AdapNet++ backbone.

    With N modalities each "two" below is N: N unimodal networks or encoders, one per modality.

    - `average`, `maximum`: the per-pixel mean, or maximum, of the two unimodal AdapNet++
      networks' class probabilities, then argmax (Section 5.7). The maximum is renormalised to
      sum to one so that the output stays a distribution; the argmax is unchanged.
    - `stacking`: the modalities concatenated channel-wise (6 channels) into one AdapNet++
      (Section 5.7; early fusion as in Valada et al., "Deep multispectral semantic scene
      understanding of forested environments using multimodal fusion", ISER 2016).
    - `late`: a 1×1 convolution on each unimodal network's class scores, the two added before
      the softmax (Section 5.7). Both start as half the identity (1/N each), so that training
      starts from the mean of the experts' class scores.
    - `lfc`: late-fused convolution (Valada et al., ISER 2016): the two encoders' feature maps are
      added element-wise at every resolution the decoder reads (eASPP output, both skips) and two
      3×3 convolutions learn the fused representation before the AdapNet++ decoder.
    - `cmode`: convolutional mixture of deep experts, class-wise (Valada et al., "AdapNet:
      Adaptive semantic segmentation in adverse environmental conditions", ICRA 2017): a gating
      network on both experts' encoder features gives, for each class, a softmax weight per
      expert, and the class scores of the two whole networks are mixed with them.
    - `fusenet`: FuseNet (Hazirbas et al., "FuseNet: Incorporating depth into semantic
      segmentation via fusion-based CNN architecture", ACCV 2016): the modality-2 encoder's
      features (with N, those of modalities 2..N) are added into the modality-1 encoder after
      each of the four ResNet blocks; the fused stream's eASPP and skips feed the AdapNet++
      decoder.

    Args:
        num_classes: C, including the void class 0.
        fusion: one of `BASELINES`.
        num_modalities: N >= 2, the modalities fused (2: the paper's baselines).
        freeze_experts: the networks started from the stage-1 experts are not trainable and their
            batch norms run in inference mode (as for SSMA). Stacking and FuseNet, which train
            their encoders as part of the fusion, ignore it.
        aux_heads: auxiliary heads on the baselines with their own decoder (stacking, lfc,
            fusenet); the others have none.
        dropout_rate: the encoders' block-4 dropout while training.
        gate_filters: channels of the CMoDE gating convolution.
    """

    def __init__(
        self,
        num_classes: int,
        fusion: str,
        num_modalities: int = 2,
        freeze_experts: bool = True,
        aux_heads: bool = False,
        dropout_rate: float = RELEASED_DROPOUT_RATE,
        gate_filters: int = 64,
        **kwargs,
    ):
        check_model_kwargs(type(self), kwargs)
        num_classes = check_num_classes(num_classes)
        check_fusion(fusion)
        num_modalities = check_num_modalities(num_modalities)
        freeze_experts = check_flag("freeze_experts", freeze_experts)
        aux_heads = check_flag("aux_heads", aux_heads)
        gate_filters = check_positive_integer("gate_filters", gate_filters)
        dtype = kwargs.pop("dtype", None)
        kwargs.setdefault("name", f"{fusion}_fusion")
        frozen = freeze_experts and fusion not in END_TO_END_FUSIONS

        # === Layers and functional model ===
        images = [keras.Input(shape=(None, None, 3), name=f"modality{i}") for i in range(1, num_modalities + 1)]
        builder = _Builder(num_classes, dropout_rate, aux_heads, gate_filters, dtype)
        outputs = getattr(builder, fusion)(images)
        super().__init__(inputs=images, outputs=outputs, **kwargs)
        if dtype is not None:
            # A functional model ignores a `dtype` argument; its layers have the policy, and the
            # model takes it too so that `get_config` (and a `.keras` file) keeps it.
            self.dtype_policy = dtype
        for network in builder.experts or builder.encoders:
            # As SSMA's experts: a non-trainable BN normalises with its moving statistics.
            network.trainable = not frozen
        for layer in builder.unused:
            # Weights of the experts that the fused graph never reads (FuseNet's modality-2 eASPP
            # and skips, the whole experts' auxiliary heads) get no gradient: keep them out of the
            # trainable variables.
            layer.trainable = False

        # === Config ===
        self.experts = builder.experts
        self._encoders = builder.encoders
        self.num_classes = num_classes
        self.fusion = fusion
        self.num_modalities = num_modalities
        self.freeze_experts = freeze_experts
        self.aux_heads = aux_heads
        self.dropout_rate = float(dropout_rate)
        self.gate_filters = gate_filters

    # --- Model API ------------------------------------------------------------------------------

    @property
    def encoders(self) -> list:
        """The encoders: one per modality, modality 1 first (stacking: its one encoder)."""
        return list(self._encoders)

    def call(self, inputs, training=None, mask=None, return_all=None):
        inputs = inputs_in_order(self, inputs)
        if not isinstance(inputs, (list, tuple)) or len(inputs) != self.num_modalities:
            names = ", ".join(f"modality{i}" for i in range(1, self.num_modalities + 1))
            raise ValueError(f"{self.fusion} fusion takes a list [{names}] of {self.num_modalities} image batches")
        check_modality_batches(inputs, f"{self.fusion} fusion")
        outputs = super().call(list(inputs), training=training, mask=mask)
        return self.resolve_outputs(outputs, training, return_all)

    def get_config(self):
        config = super().get_config()  # name, trainable, dtype policy
        config.update({
            "num_classes": self.num_classes,
            "fusion": self.fusion,
            "num_modalities": self.num_modalities,
            "freeze_experts": self.freeze_experts,
            "aux_heads": self.aux_heads,
            "dropout_rate": self.dropout_rate,
            "gate_filters": self.gate_filters,
        })
        return config_with_trainable(config, self)  # parts frozen or unfrozen after building

    @classmethod
    def from_config(cls, config):
        return from_config_with_trainable(cls, config)


class _Builder:
    """Wires one baseline on symbolic inputs; remembers the networks the experts' weights go to.

    Each method is named after its `fusion` value and returns the model's outputs.
    """

    def __init__(self, num_classes: int, dropout_rate: float, aux_heads: bool, gate_filters: int, dtype):
        self.num_classes = num_classes
        self.dropout_rate = dropout_rate
        self.aux_heads = aux_heads
        self.gate_filters = gate_filters
        self.dtype = dtype
        self.experts: list = []  # whole unimodal networks
        self.encoders: list = []  # the encoders (those of the experts, when there are experts)
        self.unused: list = []  # layers of those whose output the fused graph does not use

    def _whole_experts(self, count: int) -> list:
        """One unimodal AdapNet++ network per modality (with the auxiliary heads their checkpoints hold).

        Returns, for each, a functional view of its graph that gives `easpp` (the encoder's
        output, which the decoder's first layer `up1` reads), `logits` and `softmax` whether
        training or not: the view shares the expert's layers and weights, and runs its encoder
        once for every output taken from it.
        """
        self.experts = [
            AdapNetPP(self.num_classes, aux_heads=True, dropout_rate=self.dropout_rate, name=f"modality{i}_expert",
                      dtype=self.dtype)
            for i in range(1, count + 1)
        ]
        self.encoders = [expert.encoder for expert in self.experts]
        # The fused graph reads no auxiliary head (helper 118: unfrozen experts left their 12
        # variables without a gradient, and `apply_gradients` across replicas refused the None).
        self.unused = [expert.get_layer(name) for expert in self.experts for name in ("aux_up2_head", "aux_up1_head")]
        return [
            keras.Model(expert.inputs, {"easpp": expert.get_layer("up1").input,
                                        "logits": expert.output["logits"], "softmax": expert.output["softmax"]},
                        name=f"{expert.name}_view")
            for expert in self.experts
        ]

    def _expert_encoders(self, count: int) -> list:
        self.encoders = [
            AdapNetPPEncoder(dropout_rate=self.dropout_rate, name=f"modality{i}_encoder", dtype=self.dtype)
            for i in range(1, count + 1)
        ]
        return self.encoders

    def _outputs(self, logits) -> dict:
        """The float32 `logits` and `softmax` outputs from fused class scores."""
        return {
            "logits": layers.Activation("linear", dtype="float32", name="logits")(logits),
            "softmax": layers.Softmax(dtype="float32", name="softmax")(logits),
        }

    def _probability_outputs(self, probabilities) -> dict:
        """Outputs of a baseline that fuses probabilities: its logits are their logarithm."""
        logits = ProbabilityLogarithm(dtype="float32", name="logits")(probabilities)
        return {"logits": logits, "softmax": layers.Activation("linear", dtype="float32", name="softmax")(probabilities)}

    def _probabilities(self, images) -> list:
        return [expert(image)["softmax"] for expert, image in zip(self._whole_experts(len(images)), images)]

    def average(self, images):
        return self._probability_outputs(layers.Average(dtype="float32", name="average")(self._probabilities(images)))

    def maximum(self, images):
        highest = layers.Maximum(dtype="float32", name="maximum")(self._probabilities(images))
        normalised = Renormalise(dtype="float32", name="renormalise")(highest)
        return self._probability_outputs(normalised)

    def late(self, images):
        scores = []
        for i, (expert, image) in enumerate(zip(self._whole_experts(len(images)), images), start=1):
            logits = expert(image)["logits"]
            # Starts as the mean of the experts' class scores (1/N of the identity each, no
            # bias): with Glorot's random start the 200 fusion steps of `make fusion-table` at
            # learning rate 1e-3 left late fusion at 17 mIoU, far below either expert.
            conv = layers.Conv2D(self.num_classes, 1, name=f"late_conv{i}", dtype=self.dtype,
                                 kernel_initializer=ScaledIdentity(1.0 / len(images)), bias_initializer="zeros")
            scores.append(conv(logits))
        return self._outputs(layers.Add(name="late_add", dtype=self.dtype)(scores))

    def cmode(self, images):
        outputs = [expert(image) for expert, image in zip(self._whole_experts(len(images)), images)]
        count, dtype = len(images), self.dtype
        # The gate reads every expert's encoder features; the eASPP output is their summary.
        x = layers.Concatenate(name="cmode_concat", dtype=dtype)([out["easpp"] for out in outputs])
        x = ConvBN(self.gate_filters, 3, name="cmode_gate_conv", dtype=dtype)(x)
        x = layers.GlobalAveragePooling2D(name="cmode_gate_pool", dtype=dtype)(x)
        x = layers.Dense(self.num_classes * count, name="cmode_gate_fc", dtype=dtype)(x)
        x = layers.Reshape((1, 1, self.num_classes, count), name="cmode_gate_reshape", dtype=dtype)(x)
        # A softmax over the experts, separately for each class: class-wise weights.
        weights = layers.Softmax(axis=-1, dtype="float32", name="cmode_weights")(x)
        logits = ClassWiseMixture(dtype="float32", name="cmode_mix")([weights] + [out["logits"] for out in outputs])
        return self._outputs(logits)

    def lfc(self, images):
        features = [encoder(image) for encoder, image in zip(self._expert_encoders(len(images)), images)]
        dtype = self.dtype
        fused = {name: layers.Add(name=f"lfc_add_{name}", dtype=dtype)([f[name] for f in features])
                 for name in ("easpp", "skip2", "skip1")}
        x = ConvBN(DECODER_FILTERS, 3, name="lfc_conv1", dtype=dtype)(fused["easpp"])
        x = ConvBN(DECODER_FILTERS, 3, name="lfc_conv2", dtype=dtype)(x)
        return build_decoder(x, fused["skip2"], fused["skip1"], self.num_classes, skip_attention=False,
                             aux_heads=self.aux_heads, dtype=dtype)

    def fusenet(self, images):
        encoders = self._expert_encoders(len(images))
        first, dtype = encoders[0], self.dtype

        def stage(encoder, number, channels):
            """Block `number` of `encoder` (0: the stem) as a model of its own: the two encoders'
            layers share names, so each stage of each gets its own namespace."""
            x = inputs = keras.Input(shape=(None, None, channels), name="stage_input")
            if number == 0:
                x = encoder.get_layer("pool1")(encoder.get_layer("conv1")(encoder.get_layer("input_bn")(x)))
            else:
                for unit in range(1, BLOCK_UNITS[number] + 1):
                    x = encoder.get_layer(f"block{number}_unit{unit}")(x)
                if number != 3:  # block 3 has no output norm (see AdapNetPPEncoder)
                    x = layers.ReLU(name=f"block{number}_out", dtype=dtype)(
                        encoder.get_layer(f"block{number}_out_bn")(x))
            return keras.Model(inputs, x, name=f"{encoder.name}_stage{number}")

        # The modality-2 (..N) streams run on their own; after each block their outputs are added
        # into the modality-1 stream, which carries on from the sum (FuseNet's "fusion layers").
        channels = (3, 64, 256, 512, 1024)  # entering the stem and blocks 1..4
        streams = [stage(encoder, 0, channels[0])(image) for encoder, image in zip(encoders, images)]
        fused = {}
        for number in (1, 2, 3, 4):
            streams = [stage(encoder, number, channels[number])(x) for encoder, x in zip(encoders, streams)]
            streams[0] = layers.Add(name=f"fusenet_add{number}", dtype=dtype)(streams)
            fused[number] = streams[0]
        self.unused = [other.get_layer(name) for other in encoders[1:] for name in ("easpp", "skip2", "skip1")]
        easpp = first.get_layer("easpp")(fused[4])
        skip2 = first.get_layer("skip2")(fused[2])
        skip1 = first.get_layer("skip1")(fused[1])
        return build_decoder(easpp, skip2, skip1, self.num_classes, skip_attention=False, aux_heads=self.aux_heads,
                             dtype=dtype)

    def stacking(self, images):
        network = AdapNetPP(self.num_classes, aux_heads=self.aux_heads, dropout_rate=self.dropout_rate,
                            input_channels=3 * len(images), name="stacked", dtype=self.dtype)
        self.encoders = [network.encoder]
        stacked = layers.Concatenate(name="stack", dtype=self.dtype)(images)
        # Its functional graph (every output, training or not), on the stacked channels.
        return keras.Model(network.inputs, network.output, name="stacked_view")(stacked)
