"""The keys of a run configuration, each declared once: `RunConfig`.

A field per key, made with `key(...)`: its type (the annotation), default, allowed values, the
modes that need or use it, and its meaning. Field names are the config keys, except `initialize`
(the released files spell it `intialize`, which stays accepted).
"""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING, Any, Optional

from ssma_tf.config.adaptation import AdaptationConfig
from ssma_tf.config.augmentation import AugmentationConfig
from ssma_tf.config.keys import EVAL, MODES, TRAIN, declared_keys, key
from ssma_tf.config.semi_supervised import SemiSupervisedConfig
from ssma_tf.constants import (
    AUX_LOSS_WEIGHTS,
    BACKBONES,
    DECODER_FILTERS,
    EASPP_RATES,
    END_LEARNING_RATE,
    END_TO_END_FUSIONS,
    FUSION_METHODS,
    INPUT_MODALITIES,
    INTERPOLATIONS,
    MAX_CHECKPOINTS_TO_KEEP,
    MODEL_NAMES,
    OUTPUT_STRIDE,
    SSMA,
)

if TYPE_CHECKING:
    from ssma_tf.data.datasets import DatasetInfo

MIXED_PRECISION_POLICIES = ("mixed_float16", "mixed_bfloat16")
# The released files left skip_step blank; these are the paper's and the released examples' values.
DEFAULT_SKIP_STEP = {"train": 5, "eval": 10}


def derived_log_dir(checkpoint: str) -> str:
    """The `log_dir` a training run has when its config gives none: `<checkpoint>/logs`. A run's
    `config.yaml` leaves it out (`ssma_tf.config.runs.write_run_config`), so that it follows the
    run's folder when that moves."""
    return os.path.join(checkpoint, "logs")


def experts_frozen(model: str, freeze_experts: bool, fusion: Optional[str]) -> bool:
    """Whether an SSMA config's experts are not trained: `freeze_experts`, which stacking and
    FuseNet, trained end to end, ignore."""
    return model == SSMA and bool(freeze_experts) and fusion not in END_TO_END_FUSIONS


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunConfig:
    """A validated run configuration for training (`mode="train"`) or evaluation (`mode="eval"`).

    Field names are the config keys, except `initialize` (the original spells it `intialize`).
    Each key's type, default, range and meaning are declared with its field (`key(...)`), and
    `configs/README.md` lists them. Paths are absolute. Fields that only one model or one mode
    uses are None elsewhere.

    Attributes:
        mode: "train" or "eval".
        source: the file the config was read from.
        overridden: the keys given on the command line instead of the file's (`--set`), each
            with its value as written there, so that an error about one names it (`where`).
        lines: the line of each key in the file, by field name, so that an error about a key
            found after reading names its line (`where`).
    """

    mode: str
    source: str
    overridden: tuple[tuple[str, str], ...] = dataclasses.field(default=(), compare=False)
    lines: tuple[tuple[str, int], ...] = dataclasses.field(default=(), compare=False, repr=False)
    # --- Keys of the released files, in their order.
    gpu_id: Optional[str] = key(
        None, kind="gpu_id", original=True,
        doc="`CUDA_VISIBLE_DEVICES` (`'0'`, `0`, `'0,1'`, `-1` for CPU); blank or absent: all "
            "visible devices")
    model: str = key(kind="choice", choices=MODEL_NAMES, required=MODES, original=True,
                     doc="`AdapNet_pp` (unimodal) or `SSMA` (fusion of two, or `modalities`, "
                         "AdapNet++ experts)")
    num_classes: int = key(kind="int", minimum=2, required=MODES, original=True,
                           doc="classes including void (class 0)")
    initialize: Optional[str] = key(
        None, kind="checkpoint", check_in=TRAIN, modes=TRAIN, alias="intialize", original=True,
        doc="weights to start from: AdapNet++: the ImageNet TF1 checkpoint or own weights; "
            "SSMA: a whole SSMA checkpoint (e.g. stage 2's)")
    checkpoint1: Optional[str] = key(
        None, kind="checkpoint", check_in=TRAIN, modes=TRAIN, original=True,
        doc="SSMA only, with `checkpoint2`: unimodal AdapNet++ weights for the modality-1 expert")
    checkpoint2: Optional[str] = key(
        None, kind="checkpoint", check_in=TRAIN, modes=TRAIN, original=True,
        doc="SSMA only, with `checkpoint1`: unimodal AdapNet++ weights for the modality-2 expert")
    checkpoints: Optional[tuple[str, ...]] = key(
        None, kind="checkpoints", check_in=TRAIN, modes=TRAIN,
        doc="SSMA only: unimodal AdapNet++ weights for each expert, one per modality in order "
            "(`checkpoint1`, `checkpoint2` stay accepted for two)")
    finetune_from: Optional[str] = key(
        None, kind="checkpoint", check_in=TRAIN, modes=TRAIN,
        doc="a trained model of the same kind (TF1 or own checkpoint, `.weights.h5`, `.keras`) to "
            "fine-tune from, with any class count: all but the class-dependent layers are loaded, "
            "those start fresh")
    pretraining: Optional[str] = key(
        None, kind="choice", choices=("depth",),
        doc="written by `ssma-pretrain-depth` into its run's `config.yaml`: the network predicts depth, "
            "not classes; `ssma-pretrain-depth -c` resumes such a run, the other commands refuse it "
            "(a segmentation run starts from it with `finetune_from`)")
    train_data: Optional[tuple[str, ...]] = key(
        None, kind="patterns", required=TRAIN, modes=TRAIN, check_in=TRAIN, original=True,
        doc="record file, glob pattern or list of them to train on; each must match a file")
    test_data: Optional[tuple[str, ...]] = key(
        None, kind="patterns", required=EVAL, modes=EVAL, check_in=EVAL, original=True,
        doc="record file, glob pattern or list of them to evaluate on; each must match a file")
    height: int = key(kind="int", minimum=OUTPUT_STRIDE, multiple_of=OUTPUT_STRIDE,
                      required=MODES, original=True,
                      doc="height the images are resized to (the network input)")
    width: int = key(kind="int", minimum=OUTPUT_STRIDE, multiple_of=OUTPUT_STRIDE,
                     required=MODES, original=True,
                     doc="width the images are resized to (the network input)")
    batch_size: int = key(kind="int", minimum=1, required=MODES, original=True,
                          doc="images per step (global batch over all devices)")
    max_iteration: Optional[int] = key(
        None, kind="int", minimum=1, required=TRAIN, modes=TRAIN, original=True,
        doc="training steps, also the poly schedule's decay horizon")
    learning_rate: Optional[float] = key(
        None, kind="float", above=0, required=TRAIN, modes=TRAIN, original=True,
        doc="initial learning rate of the poly schedule")
    checkpoint: str = key(
        kind="run_checkpoint", required=MODES, check_in=MODES, original=True,
        doc="train: the directory checkpoints are written to and resumed from; eval: the "
            "weights to evaluate")
    skip_step: int = key(DEFAULT_SKIP_STEP["train"], kind="int", minimum=1, original=True,
                         mode_defaults=DEFAULT_SKIP_STEP,
                         doc="log every n steps (train) or batches (eval)")
    save_step: int = key(1000, kind="int", minimum=1, modes=TRAIN, original=True,
                         doc="write a checkpoint every n steps (and at the end)")
    keep_checkpoints: int = key(MAX_CHECKPOINTS_TO_KEEP, kind="int", minimum=1, modes=TRAIN,
                                doc="checkpoints kept in the run folder, the newest (older ones are deleted)")
    power: float = key(0.9, kind="float", minimum=0.0, modes=TRAIN, original=True,
                       doc="exponent of the poly schedule")
    dataset: Optional[str] = key(
        None, kind="str", original=True,
        doc="dataset name for class names and colours (`cityscapes`, `synthia`, `sun_rgbd`, "
            "`scannet_v2`, `freiburg_forest`, and aliases); its class count must equal "
            "`num_classes`")
    type: Optional[str] = key(
        None, kind="str", original=True,
        doc="the original SSMA files' modality label (e.g. `rgb_hha`); informational only")
    # --- New keys.
    modalities: Optional[tuple[str, ...]] = key(
        None, kind="names", default_doc="two (`modality1`, `modality2`)",
        doc="SSMA only: names of the input modalities in record order (e.g. `[rgb, depth, "
            "thermal]`); their number N is the number of experts and of images per record")
    end_learning_rate: float = key(
        END_LEARNING_RATE, kind="float", minimum=0.0, modes=TRAIN,
        doc="learning rate the poly schedule ends at (TF1's default)")
    aux_loss_weights: tuple[float, float] = key(
        AUX_LOSS_WEIGHTS, kind="floats", length=2, minimum=0.0, modes=TRAIN,
        doc="weights of the auxiliary losses on `up2` (conv911) and `up1` (conv912)")
    aux_heads: bool = key(
        True, kind="bool", default_doc="true (SSMA: false)",
        doc="build the auxiliary heads (AdapNet++ always has them; off for SSMA as released)")
    encoder_lr_multiplier: float = key(
        1.0, kind="float", minimum=0.0, modes=TRAIN,
        doc="factor on the experts' whole schedule, end rate included (0.1 in SSMA stage 2: 1e-3 → 1e-4 "
        "becomes 1e-4 → 1e-5); the experts are their encoders, eASPP and skip projections")
    fusion: Optional[str] = key(
        FUSION_METHODS[0], kind="choice", choices=FUSION_METHODS,
        doc="SSMA only: how the modalities are fused: SSMA, or one of the baselines of the "
            "paper's Table 17 on the same AdapNet++ backbone, over two or more modalities "
            "(docs/fusion.md)")
    backbone: str = key(
        BACKBONES[0], kind="choice", choices=BACKBONES,
        doc="the experts' encoder: `adapnet_pp` (released) or `mobilenet_v2` (keras.applications, "
            "output stride 16, eASPP appended: the paper's Section 5.10.1; docs/fusion.md)")
    backbone_weights: Optional[str] = key(
        None, kind="file", check_in=TRAIN, modes=TRAIN,
        doc="`mobilenet_v2` only: ImageNet weights file of keras.applications' MobileNetV2 "
            "(include_top=False) to start the backbone from; nothing is downloaded")
    decoder_filters: int = key(
        DECODER_FILTERS, kind="int", minimum=1,
        doc="AdapNet++ and SSMA: output channels of every decoder convolution (`up1` to "
            "`refine2_conv2`); fewer than the released 256 make a real-time decoder, e.g. 64 with "
            "`backbone: mobilenet_v2` (docs/fusion.md)")
    easpp_rates: tuple[int, int, int] = key(
        EASPP_RATES, kind="ints", length=3, minimum=1, items="rates",
        doc="AdapNet++ and SSMA: the atrous rates of the eASPP's dilated branches; a checkpoint does "
            "not hold them: the released 19-class Cityscapes models were trained with `[6, 12, 18]` "
            "(the README's Released models)")
    freeze_experts: bool = key(
        False, kind="bool", alias="train_experts", alias_inverts=True, modes=TRAIN,
        default_doc="false (SSMA: true)",
        doc="SSMA only: experts not trainable, their batch norms in inference mode")
    input_modality: Optional[str] = key(
        INPUT_MODALITIES[0], kind="choice", choices=INPUT_MODALITIES,
        doc="AdapNet++ only: which image of the records feeds the network (an expert of that "
            "modality)")
    dropout_keep_prob: float = key(0.3, kind="float", above=0, maximum=1, modes=TRAIN,
                                   doc="keep probability of the block-4 dropout")
    weight_decay: float = key(
        0.0, kind="float", minimum=0.0, modes=TRAIN,
        doc="L2 factor added to the loss, over the kernels and batch-norm gammas and betas (the "
            "released 5e-4 regulariser on those was never applied)")
    adam_epsilon: float = key(1e-8, kind="float", above=0, modes=TRAIN,
                              doc="Adam's epsilon (TF1's default; the paper says 1e-10)")
    divergence_factor: float = key(
        5.0, kind="float", minimum=0.0, modes=TRAIN,
        doc="stop the run, like a NaN loss, when the mean loss of 5 steps exceeds this many times "
            "its starting level (the first loss, at least ln(num_classes)); 0: never")
    recalibrate_batch_norm: int = key(
        0, kind="int", minimum=0, modes=TRAIN,
        doc="after the last step, set every trainable batch norm's moving statistics to their "
            "average over this many training batches with the final weights (\"precise BN\"; "
            "for short runs from scratch, docs/training.md); 0: keep the moving averages, as "
            "released")
    mixed_precision: Optional[str] = key(
        None, kind="choice", choices=MIXED_PRECISION_POLICIES, modes=TRAIN,
        doc="mixed-precision policy of the training model (`mixed_float16` for GPUs: a CPU computes "
            "float16 about 30x slower; `mixed_bfloat16` is fast with Intel AMX)")
    xla: bool = key(False, kind="bool", doc="compile the supervised training step or the evaluation step with XLA "
                    "(semi-supervised, depth-pretraining and SAC steps run without it, and say so)")
    seed: Optional[int] = key(None, kind="int", minimum=0, maximum=2**32 - 1, modes=TRAIN,
                              doc="seed for weights, shuffling and augmentation")
    augmentation: AugmentationConfig = key(
        default_factory=AugmentationConfig.disabled, kind="augmentation", modes=TRAIN,
        doc="mapping of augmentation keys (below; `{}` or `true`: the paper's augmentations); "
            "absent or `false`: none, as released (the original augmented offline)")
    modality2_interpolation: str = key(
        INTERPOLATIONS[0], kind="choice", choices=INTERPOLATIONS,
        doc="resampling of modality 2 and every further one (nearest for depth-like maps)")
    modality_interpolations: Optional[tuple[str, ...]] = key(
        None, kind="choices", choices=INTERPOLATIONS, default_doc="`modality2_interpolation` for each",
        doc="resampling of each modality after the first, in order (SSMA over N modalities: "
            "N - 1 entries)")
    one_hot_labels: bool = key(False, kind="bool",
                               doc="feed one-hot labels like the original pipeline")
    eval_scales: tuple[float, ...] = key(
        (1.0,), kind="floats", minimum=0.0, above=0, items="scales", modes=EVAL,
        doc="input scales for multi-scale testing")
    eval_flip: bool = key(False, kind="bool", modes=EVAL,
                          doc="also evaluate the left-right flipped input")
    log_dir: Optional[str] = key(None, kind="folder", modes=TRAIN, check_in=TRAIN,
                                 default_doc="`<checkpoint>/logs`", doc="TensorBoard directory")
    semi_supervised: Optional[SemiSupervisedConfig] = key(
        None, kind="semi_supervised", modes=TRAIN,
        doc="mapping of semi-supervised keys (below; `{}` or `true`: the released defaults): "
            "mean teacher with DepthMix or ClassMix on `unlabeled_data` (docs/semi_supervised.md)")
    unlabeled_data: Optional[tuple[str, ...]] = key(
        None, kind="patterns", modes=TRAIN, check_in=TRAIN,
        doc="records whose images are used without their labels (semi-supervised training, "
            "depth pretraining); each pattern must match a file")
    labeled_subset: Optional[str] = key(
        None, kind="file", modes=TRAIN, check_in=TRAIN,
        doc="a file of record indices (one a line, 0-based over `train_data` in order, e.g. "
            "from `ssma-select-labels`): only those records of `train_data` are labeled")
    adaptation: Optional[AdaptationConfig] = key(
        None, kind="adaptation", modes=TRAIN,
        doc="mapping of adaptation keys (below; `{}` or `true`: the released defaults): adapt "
            "to the unlabeled `target_data` by augmentation consistency, or train its ABN "
            "baseline (docs/adaptation.md)")
    target_data: Optional[tuple[str, ...]] = key(
        None, kind="patterns", modes=TRAIN, check_in=TRAIN,
        doc="records of the target domain (adaptation; labels not needed: where present, only logged "
            "as the pseudo-labels' accuracy)")
    target_val_data: Optional[tuple[str, ...]] = key(
        None, kind="patterns", modes=TRAIN, check_in=TRAIN,
        doc="labeled records of the target domain, only to monitor adaptation (TensorBoard)")
    importance_weights: Optional[str] = key(
        None, kind="file", modes=TRAIN, check_in=TRAIN,
        doc="sampling weights of the `target_data` images (`ssma-importance-weights`); "
            "default: uniform")
    palette: Optional[str] = key(
        None, kind="file", check_in=MODES, default_doc="shipped `ssma_tf/data/datasets.yaml`",
        doc="a datasets file in that format, for datasets it does not know")

    def where(self, key: str) -> str:
        """Where `key`'s value comes from, for an error: the file with the key's line, or the file
        with the `--set` that replaced it (as the reader names them: `run.config, line 4`,
        `run.config with --set checkpoint1='x.h5'`)."""
        canonical = next((name for name, spec in DECLARED.items() if spec.alias == key), key)  # intialize
        given = dict(self.overridden).get(canonical)
        if given is not None:
            return f"{self.source} with {given}"
        line = dict(self.lines).get(canonical)
        return self.source if line is None else f"{self.source}, line {line}"

    @property
    def is_fusion(self) -> bool:
        """True for SSMA (two input modalities)."""
        return self.model == SSMA

    @property
    def experts_frozen(self) -> bool:
        """Whether the fusion's experts are not trained (`experts_frozen` of its keys)."""
        return experts_frozen(self.model, self.freeze_experts, self.fusion)

    @property
    def num_modalities(self) -> int:
        """Images the model takes: N for SSMA (2 unless `modalities` lists more), 1 for AdapNet++."""
        if not self.is_fusion:
            return 1
        return 2 if self.modalities is None else len(self.modalities)

    @property
    def record_modalities(self) -> int:
        """Images each record must hold: the model's, or AdapNet++'s `input_modality` index."""
        if self.is_fusion:
            return self.num_modalities
        return int(self.input_modality.removeprefix("modality"))

    @property
    def interpolations(self) -> tuple[str, ...]:
        """How each modality after the first is resampled (N - 1 entries; one for AdapNet++)."""
        if self.modality_interpolations is not None:
            return self.modality_interpolations
        return (self.modality2_interpolation,) * max(self.record_modalities - 1, 1)

    @property
    def expert_checkpoints(self) -> Optional[tuple[str, ...]]:
        """SSMA: the unimodal checkpoint of each expert (`checkpoints`, or `checkpoint1`/`2`)."""
        if self.checkpoints is not None:
            return self.checkpoints
        if self.checkpoint1 is not None:
            return (self.checkpoint1, self.checkpoint2)
        return None

    def without_starting_weights(self, **changes: Any) -> "RunConfig":
        """This config with nothing to start its weights from (`intialize`, the experts'
        `checkpoints` or `checkpoint1`/`2`, `finetune_from`) and `changes`: for a run whose model
        already holds its weights (a pruned stage fine-tuned) or starts from scratch on purpose.
        Before, a pruned SSMA's fine-tuning cleared `checkpoint1`/`2` but not `checkpoints`, and
        its experts were loaded again from the unimodal files."""
        return dataclasses.replace(self, initialize=None, checkpoint1=None, checkpoint2=None, checkpoints=None,
                                   finetune_from=None, **changes)

    @property
    def data(self) -> tuple[str, ...]:
        """The record patterns this mode reads: `train_data` or `test_data`."""
        patterns = self.train_data if self.mode == "train" else self.test_data
        assert patterns is not None  # guaranteed by validation
        return patterns

    def dataset_info(self) -> Optional["DatasetInfo"]:
        """Class names and palette of `dataset` (None when the config names no dataset)."""
        if self.dataset is None:
            return None
        from ssma_tf.data.datasets import get_dataset_info

        return get_dataset_info(self.dataset, self.palette)

    def to_dict(self) -> dict[str, Any]:
        """The config as a plain mapping that `config_from_dict` reads back to an equal config.

        Unset (None) values are left out; tuples become lists and the augmentation settings a
        plain dict, so the result can be written with `yaml.safe_dump` or `json.dump`.
        """
        out: dict[str, Any] = {}
        for name, _, _ in declared_keys(RunConfig):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, (AugmentationConfig, SemiSupervisedConfig, AdaptationConfig)):
                value = value.to_dict()
            out[name] = value
        return out


    def cluster_settings(self) -> dict[str, Any]:
        """The values every worker of a cluster must share (`to_dict`'s): all but the paths,
        which may differ between machines, and `gpu_id`."""
        values = self.to_dict()
        # Every key, unset ones as None: a key one worker sets and another leaves out (`--set seed=5`)
        # gave rows of other lengths, which the gather refused with a TensorFlow error (helper 220).
        return {name: values.get(name) for name, spec in DECLARED.items() if spec.kind not in MACHINE_KINDS}


# The kinds of key whose value may differ between the workers of a cluster (`cluster_settings`).
MACHINE_KINDS = ("checkpoint", "checkpoints", "file", "folder", "gpu_id", "patterns", "run_checkpoint")
# Every key of a run configuration and its declaration, in declaration order; the defaults.
DECLARED = {name: spec for name, spec, _ in declared_keys(RunConfig)}
DEFAULTS = {name: default for name, _, default in declared_keys(RunConfig)}
