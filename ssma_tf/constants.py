"""Numbers and names that several modules of ssma-tf rely on, each written once.

Nothing here imports TensorFlow or Keras, so the config loader and the command-line tools can
use these before anything heavy starts.
"""

# The AdapNet++ encoder's output is 1/16 of the input resolution (the paper, Section 3.1: res4a
# has stride 1) and the decoder upsamples back by exactly 16 (Section 3.3), so model input
# heights and widths are multiples of this.
OUTPUT_STRIDE = 16

# The networks, under the names the released `.config` files give them in their `model` key.
ADAPNET_PP = "AdapNet_pp"
SSMA = "SSMA"
MODEL_NAMES = (ADAPNET_PP, SSMA)

# How a fusion model (`model: SSMA`) combines its modalities: SSMA itself, or one of the
# baselines the paper compares it with on the same AdapNet++ backbone (Section 5.7, Table 17;
# `ssma_tf.models.fusion_baselines`).
SSMA_FUSION = "ssma"

# The expert backbones (`ssma_tf.models.backbones`): AdapNet++'s ResNet-50 encoder, as released,
# or MobileNet v2 from keras.applications with the eASPP appended (the paper's Section 5.10.1).
ADAPNET_PP_BACKBONE = "adapnet_pp"
BACKBONES = (ADAPNET_PP_BACKBONE, "mobilenet_v2")
# Output channels of every convolution of the AdapNet++ decoder as released (`up1` to
# `refine2_conv2`); `decoder_filters:` narrows them for a real-time decoder.
DECODER_FILTERS = 256
# The atrous rates of the eASPP's three dilated branches as released; the 19-class Cityscapes
# models were trained with (6, 12, 18) (`ssma_tf/checkpoints/zoo.yaml`). A checkpoint does not
# hold them: the config's `easpp_rates` says them.
EASPP_RATES = (3, 6, 12)
FUSION_METHODS = (SSMA_FUSION, "average", "maximum", "stacking", "late", "lfc", "cmode", "fusenet")
# Fusions trained end to end whatever `freeze_experts` says (no frozen experts to start).
END_TO_END_FUSIONS = ("stacking", "fusenet")
# Fusions of one network on the stacked modalities: no experts to start from checkpoint1/2.
EXPERTLESS_FUSIONS = ("stacking",)
# Fusions with a decoder of their own, on which `aux_heads` puts auxiliary heads (the others
# combine the experts' outputs).
DECODER_FUSIONS = (SSMA_FUSION, "stacking", "lfc", "fusenet")
# Fusions with nothing to train while their experts are frozen (they combine the experts' outputs).
PARAMETER_FREE_FUSIONS = ("average", "maximum")

# The images of a record: modality 1 (RGB), modality 2 (depth, HHA or EVI) and, for SSMA over
# more than two modalities (Section 4.2), modality 3 and on, up to MAX_MODALITIES.
MAX_MODALITIES = 8
INPUT_MODALITIES = tuple(f"modality{i}" for i in range(1, MAX_MODALITIES + 1))

# The label id that marks pixels to ignore (Cityscapes' trainIds and many datasets use it). Every
# id >= num_classes counts as void, as the released one-hot encoding made it; the label checks
# report such ids as a likely class-count mistake, except this one, which is void on purpose.
IGNORE_ID = 255
# The void class: class 0 of every dataset's palette, a class of the network's output that the
# released loss trains on and the mean IoU leaves out.
VOID_ID = 0

# How modality 2 (and every further one) is resampled: "nearest" keeps depth-like values unmixed
# at edges.
INTERPOLATIONS = ("nearest", "bilinear")

# λ1 and λ2, the weights of the auxiliary losses on `up2` (conv911) and `up1` (conv912): the
# paper's Sections 3.4 and 5.1.1, and the released code.
AUX_LOSS_WEIGHTS = (0.6, 0.5)

# The learning rate the poly schedule decays to: the default of TF1's `polynomial_decay`, which
# the released training script kept.
END_LEARNING_RATE = 1e-4

# Files that hold a whole model's weights in the project's own formats.
WEIGHTS_SUFFIXES = (".weights.h5", ".keras", ".h5")

# What a training run writes into its checkpoint folder beside the checkpoints, so that the folder
# alone says what it holds: the resolved config (it loads back through the config reader) and
# the whole model as a `.keras` file; and the weights a run exports after its last step (an
# interrupted run has checkpoints but not this file).
RUN_CONFIG = "config.yaml"
FINAL_MODEL = "final.keras"
FINAL_WEIGHTS = "final.weights.h5"
# Written after both final files: the checkpoint they were exported at and their sizes, which say
# whether they hold the run's last checkpoint also in a copied folder, whose modification times
# `cp -r` and downloads do not keep (`ssma_tf.config.runs.final_files_current`).
FINAL_RECORD = "final.json"
# Checkpoints a training run keeps in its folder (older ones are deleted as new ones are written):
# the default of the config's `keep_checkpoints`.
MAX_CHECKPOINTS_TO_KEEP = 3
# The report `ssma-prune` writes into its output folder, beside `stage<k>.keras` and RUN_CONFIG.
PRUNE_REPORT = "report.json"
# What `ssma-export` writes into every export folder (SavedModel, OpenVINO, TFLite) to describe it.
EXPORT_METADATA = "assets.extra/ssma_tf.json"
# How many samples calibrate an int8 export by default (`ssma-export --int8`).
DEFAULT_CALIBRATION_SAMPLES = 100


def generic_class_names(num_classes: int) -> list[str]:
    """Names for classes that have none (no dataset in the config): void, class_1, class_2, ..."""
    return ["void"] + [f"class_{c}" for c in range(1, num_classes)]

# Missing depth in a jet-coloured image, as DepthMix, depth pretraining and label selection read
# it (`ssma_tf.semi_supervised.mixing.decode_nearness`): a pixel whose brightest channel is below
# this (every colour of the jet map has one of 128 or more). In a grey one, grey 0 alone.
JET_MISSING_BELOW = 64
