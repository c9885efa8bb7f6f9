"""Run configuration: the original YAML `.config` files, validated into a typed, frozen object.

The released scripts read a flat YAML mapping (`python train.py -c config/cityscapes_train.config`)
and looked keys up as they went, so a typo surfaced hours later as a `KeyError`, or never. Here the
whole file is checked before anything heavy starts: every key is known (a misspelt one gets the
closest known key as a suggestion), every required key is there, every value has the right type and
range, and every path the run will read exists. Any problem is a `ConfigError` that names the key
and the file.

The original keys load unchanged (`gpu_id`, `model`, `num_classes`, `intialize` — sic —,
`checkpoint1`, `checkpoint2`, `checkpoint`, `train_data`, `test_data`, `batch_size`, `skip_step`,
`height`, `width`, `max_iteration`, `learning_rate`, `save_step`, `power`, and the SSMA files'
`dataset` and `type`). The new keys are optional and default to what the released code did.

Relative paths resolve against the current working directory, as they did in the original scripts
(which passed them straight to TensorFlow); the loaded config holds absolute paths, so later
changes of directory do not matter.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import glob
import math
import os
import re
import warnings
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence

import yaml

if TYPE_CHECKING:  # the data package imports TensorFlow; config.py only does so when validating
    from ssma_tf.data.augment import AugmentationConfig
    from ssma_tf.data.datasets import DatasetInfo

MODELS = ("AdapNet_pp", "SSMA")
MODES = ("train", "eval")
MIXED_PRECISION_POLICIES = ("mixed_float16", "mixed_bfloat16")
INTERPOLATIONS = ("nearest", "bilinear")
INPUT_MODALITIES = ("modality1", "modality2")

# Files that hold a whole model's weights in the project's own formats.
WEIGHTS_SUFFIXES = (".weights.h5", ".keras", ".h5")
# Parts of a TF checkpoint people often paste instead of its prefix.
_TF_CHECKPOINT_PART = re.compile(r"\.(index|meta|data-\d{5}-of-\d{5})$")
_GPU_ID = re.compile(r"^-?\d+(,\d+)*$")

# Defaults of the optional original keys. The released files left them blank; these are the values
# the paper and the released example files use (skip_step 5 for training and 10 for evaluation).
DEFAULT_SKIP_STEP = {"train": 5, "eval": 10}
DEFAULT_SAVE_STEP = 1000
DEFAULT_POWER = 0.9

REQUIRED_KEYS = {
    "train": (
        "model",
        "num_classes",
        "train_data",
        "batch_size",
        "height",
        "width",
        "max_iteration",
        "learning_rate",
        "checkpoint",
    ),
    "eval": ("model", "num_classes", "test_data", "batch_size", "height", "width", "checkpoint"),
}

# Spellings of one setting that the loader accepts; giving two of them is an error.
_ALIASES = {"intialize": "initialize", "train_experts": "freeze_experts"}


class ConfigError(ValueError):
    """A configuration problem, naming the key and the file it comes from.

    Attributes:
        key: the offending key, or None when the problem is not about one key.
        source: the config file (or "<dict>" for configs built in code).
    """

    def __init__(self, message: str, key: Optional[str] = None, source: str = "<dict>"):
        self.key = key
        self.source = source
        self.detail = message
        where = f"{source}: key '{key}'" if key is not None else source
        super().__init__(f"{where}: {message}")


class ConfigWarning(UserWarning):
    """A legal but probably unintended setting (e.g. a learning rate that grows)."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunConfig:
    """A validated run configuration for training (`mode="train"`) or evaluation (`mode="eval"`).

    Field names are the config keys, except `initialize` (the original spells it `intialize`).
    Paths are absolute. Fields that only one model or one mode uses are None elsewhere.

    Attributes:
        mode: "train" or "eval".
        source: the file the config was read from.
        model: "AdapNet_pp" (unimodal) or "SSMA" (fusion of two AdapNet++ experts).
        num_classes: number of classes, void (class 0) included.
        height: input height (multiple of 16).
        width: input width (multiple of 16).
        batch_size: images per step (global batch when several devices train).
        checkpoint: train: the directory checkpoints are written to and resumed from; eval: the
            weights to evaluate (TF1 or TF2 checkpoint prefix, a checkpoint directory, or a
            `.weights.h5`/`.keras` file).
        gpu_id: value for CUDA_VISIBLE_DEVICES ("0", "0,1", "-1" for CPU only); None leaves the
            visible devices alone. The original config files ship `''` as a placeholder, which is
            read as None here (the original would have hidden every GPU).
        initialize: weights to start from: the ImageNet TF1 checkpoint or own weights for
            AdapNet++ (original key `intialize`); a whole SSMA checkpoint (e.g. stage 2's output)
            for SSMA.
        checkpoint1: SSMA only: unimodal AdapNet++ weights for the modality-1 expert (`rgb/`).
        checkpoint2: SSMA only: unimodal AdapNet++ weights for the modality-2 expert (`depth/`).
        train_data: TFRecord files or glob patterns to train on.
        test_data: TFRecord files or glob patterns to evaluate on.
        skip_step: log every `skip_step` steps (train) or batches (eval).
        max_iteration: number of training steps, also the decay horizon of the poly schedule.
        learning_rate: initial learning rate of the poly schedule.
        save_step: write a checkpoint every `save_step` steps (and at the end).
        power: exponent of the poly schedule.
        end_learning_rate: learning rate the poly schedule decays to (TF1 default 1e-4).
        aux_loss_weights: weights of the auxiliary losses on `up2` (conv911) and `up1` (conv912).
        aux_heads: whether the model has the auxiliary heads (always for AdapNet++; off for SSMA
            as released).
        encoder_lr_multiplier: factor on the learning rate of the encoders (SSMA stage 2: 0.1).
        freeze_experts: SSMA only: experts not trainable and their batch norms in inference mode
            (as released). False for AdapNet++.
        input_modality: AdapNet++ only: which image of the records feeds the network
            ("modality1" or "modality2", for the stage-1 expert of the second modality).
        dropout_keep_prob: keep probability of the block-4 dropout (released 0.3).
        weight_decay: L2 factor added to the loss (released: declared 5e-4, never applied: 0).
        adam_epsilon: Adam's epsilon (TF1 default 1e-8).
        mixed_precision: None, "mixed_float16" or "mixed_bfloat16".
        xla: compile the training step with XLA.
        seed: random seed for weights, shuffling and augmentation (None: not seeded).
        augmentation: the training pipeline's joint augmentation
            (`ssma_tf.data.AugmentationConfig`), from a mapping of its keys (`{}` or `true`: the
            paper's augmentations with their default ranges). Absent or `false`: every transform
            switched off, as released (the original augmented the data offline). Pass it to
            `build_dataset` as it is: there `None` would mean the paper's defaults.
        modality2_interpolation: how modality 2 is resampled ("nearest" for depth-like maps).
        one_hot_labels: feed one-hot labels as the original pipeline did (default: sparse ids).
        eval_scales: input scales for multi-scale testing ((1.0,): single scale, as released).
        eval_flip: also evaluate the left-right flipped input and average the probabilities.
        log_dir: TensorBoard directory (train default: `<checkpoint>/logs`).
        dataset: canonical name of the dataset (class names and colours for reports and
            predictions), looked up in `palette`; aliases such as "scannet" or "forest" are
            accepted. Its class count must equal `num_classes`.
        palette: a datasets file in the format of `ssma_tf/data/datasets.yaml` (class names and
            colours per dataset) for datasets that file does not know; None: the shipped file.
        type: the original SSMA files' modality-combination label (e.g. "rgb_hha"); kept for
            information only, the records name their modalities themselves.
    """

    mode: str
    source: str
    model: str
    num_classes: int
    height: int
    width: int
    batch_size: int
    checkpoint: str
    gpu_id: Optional[str] = None
    initialize: Optional[str] = None
    checkpoint1: Optional[str] = None
    checkpoint2: Optional[str] = None
    train_data: Optional[tuple[str, ...]] = None
    test_data: Optional[tuple[str, ...]] = None
    skip_step: int = DEFAULT_SKIP_STEP["train"]
    max_iteration: Optional[int] = None
    learning_rate: Optional[float] = None
    save_step: int = DEFAULT_SAVE_STEP
    power: float = DEFAULT_POWER
    end_learning_rate: float = 1e-4
    aux_loss_weights: tuple[float, float] = (0.6, 0.5)
    aux_heads: bool = True
    encoder_lr_multiplier: float = 1.0
    freeze_experts: bool = False
    input_modality: Optional[str] = "modality1"
    dropout_keep_prob: float = 0.3
    weight_decay: float = 0.0
    adam_epsilon: float = 1e-8
    mixed_precision: Optional[str] = None
    xla: bool = False
    seed: Optional[int] = None
    augmentation: Optional["AugmentationConfig"] = None
    modality2_interpolation: str = "nearest"
    one_hot_labels: bool = False
    eval_scales: tuple[float, ...] = (1.0,)
    eval_flip: bool = False
    log_dir: Optional[str] = None
    dataset: Optional[str] = None
    palette: Optional[str] = None
    type: Optional[str] = None

    @property
    def is_fusion(self) -> bool:
        """True for SSMA (two input modalities)."""
        return self.model == "SSMA"

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
        for field in dataclasses.fields(self):
            if field.name in ("mode", "source"):
                continue
            value = getattr(self, field.name)
            if value is None:
                continue
            if isinstance(value, tuple):
                value = list(value)
            elif field.name == "augmentation":
                value = value.to_dict()
            out[field.name] = value
        return out


KNOWN_KEYS = tuple(
    sorted(
        {f.name for f in dataclasses.fields(RunConfig) if f.name not in ("mode", "source")}
        | set(_ALIASES)
    )
)


class _Loader(yaml.SafeLoader):
    """A safe YAML loader that reads `1e-3` as a float and refuses duplicate keys.

    PyYAML follows YAML 1.1, where a float needs a dot: `learning_rate: 1e-3` would load as the
    string "1e-3". Duplicate keys would silently keep the last value.
    """


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:float"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def _construct_mapping_no_duplicates(loader: _Loader, node: yaml.MappingNode, deep: bool = False):
    seen: dict[Any, Any] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key '{key}'", key_node.start_mark
            )
        seen[key] = True
    return loader.construct_mapping(node, deep=deep)


_Loader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping_no_duplicates
)


def load_config(
    path: str | os.PathLike, mode: str = "train", check_paths: bool = True
) -> RunConfig:
    """Reads and validates a YAML `.config` file.

    Args:
        path: the config file.
        mode: "train" (for `train.py`) or "eval" (for `evaluate.py`); decides which keys are
            required and which paths must exist.
        check_paths: check that the data and checkpoint paths exist (False to validate a config
            on a machine without the data, as the tests do for the shipped files).

    Returns:
        The validated `RunConfig`.

    Raises:
        ConfigError: the file is unreadable or not a YAML mapping, or a key is unknown, missing,
            of the wrong type, out of range, or names a path that does not exist.
    """
    source = os.fspath(path)
    try:
        with open(source, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ConfigError(f"cannot read the config file: {e.strerror or e}", source=source) from e
    try:
        raw = yaml.load(text, Loader=_Loader)  # noqa: S506 (_Loader is a SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError(f"not valid YAML{where}: {problem}", source=source) from e
    return config_from_dict(raw, source=source, mode=mode, check_paths=check_paths)


def config_from_dict(
    d: Any, source: str = "<dict>", mode: str = "train", check_paths: bool = True
) -> RunConfig:
    """Validates a mapping of config keys (as read from a `.config` file) into a `RunConfig`.

    Args:
        d: the mapping of keys to values.
        source: where the mapping comes from, for error messages.
        mode: "train" or "eval".
        check_paths: check that the data and checkpoint paths exist.

    Returns:
        The validated `RunConfig`.

    Raises:
        ConfigError: as for `load_config`.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if d is None:
        raise ConfigError("the config is empty", source=source)
    if not isinstance(d, Mapping):
        raise ConfigError(
            f"the config must be a mapping of keys to values, got {type(d).__name__}",
            source=source,
        )
    return _Validator(d, source, mode, check_paths).run()


class _Validator:
    """Reads one config mapping key by key; each reader raises a ConfigError naming its key."""

    def __init__(self, d: Mapping[Any, Any], source: str, mode: str, check_paths: bool):
        self.d = d
        self.source = source
        self.mode = mode
        self.check_paths = check_paths

    # --- Errors and lookups -------------------------------------------------------------------

    def error(self, key: Optional[str], message: str) -> ConfigError:
        return ConfigError(message, key=key, source=self.source)

    def check_keys(self) -> None:
        for key in self.d:
            if not isinstance(key, str):
                raise self.error(str(key), "keys must be strings")
        unknown = [k for k in self.d if k not in KNOWN_KEYS]
        if unknown:
            key = unknown[0]
            close = difflib.get_close_matches(key, KNOWN_KEYS, n=1, cutoff=0.6)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            others = f" (other unknown keys: {', '.join(unknown[1:])})" if unknown[1:] else ""
            raise self.error(key, f"unknown key{hint}{others}")
        for alias, name in _ALIASES.items():
            if alias in self.d and name in self.d:
                raise self.error(alias, f"give either '{alias}' or '{name}', not both")

    def raw(self, key: str) -> Any:
        """The value of `key`; None when absent or blank (`key:` or a whitespace-only string)."""
        value = self.d.get(key)
        if isinstance(value, str) and not value.strip():
            return None
        return value

    def has(self, key: str) -> bool:
        return self.raw(key) is not None

    def required(self, key: str) -> Any:
        value = self.raw(key)
        if value is None:
            if key in self.d:
                raise self.error(key, f"is empty; {self.mode} needs a value")
            raise self.error(key, f"is missing; {self.mode} needs it")
        return value

    # --- Typed readers ------------------------------------------------------------------------

    def type_error(self, key: str, expected: str, value: Any) -> ConfigError:
        return self.error(key, f"expected {expected}, got {value!r} ({type(value).__name__})")

    def as_int(self, key: str, value: Any, minimum: Optional[int] = None) -> int:
        # bool is an int in Python, but `batch_size: yes` is certainly a mistake.
        if isinstance(value, bool):
            raise self.type_error(key, "an integer", value)
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # `max_iteration: 1.5e5` is a whole number written as a float
        if not isinstance(value, int):
            raise self.type_error(key, "an integer", value)
        if minimum is not None and value < minimum:
            raise self.error(key, f"must be >= {minimum}, got {value}")
        return value

    def as_float(
        self, key: str, value: Any, minimum: float = 0.0, strictly_positive: bool = False
    ) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.type_error(key, "a number", value)
        value = float(value)
        if not math.isfinite(value):
            raise self.error(key, f"must be finite, got {value}")
        if strictly_positive and value <= 0:
            raise self.error(key, f"must be > 0, got {value}")
        if value < minimum:
            raise self.error(key, f"must be >= {minimum}, got {value}")
        return value

    def as_bool(self, key: str, value: Any) -> bool:
        if not isinstance(value, bool):
            raise self.type_error(key, "true or false", value)
        return value

    def as_str(self, key: str, value: Any) -> str:
        if not isinstance(value, str):
            raise self.type_error(key, "a string", value)
        return value.strip()

    def as_choice(self, key: str, value: Any, choices: Sequence[str]) -> str:
        value = self.as_str(key, value)
        if value not in choices:
            close = difflib.get_close_matches(value, choices, n=1, cutoff=0.5)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise self.error(key, f"must be one of {', '.join(choices)}, got {value!r}{hint}")
        return value

    def opt(self, key: str, reader, default: Any, *args: Any, **kwargs: Any) -> Any:
        value = self.raw(key)
        return default if value is None else reader(key, value, *args, **kwargs)

    def as_path(self, key: str, value: Any) -> str:
        path = self.as_str(key, value)
        return os.path.abspath(os.path.expanduser(path))

    def as_checkpoint_ref(self, key: str, value: Any, check: bool) -> str:
        """A checkpoint to read: its prefix (a pasted `.index`/`.data-…` part is cut off)."""
        path = _TF_CHECKPOINT_PART.sub("", self.as_path(key, value))
        if check and not _checkpoint_exists(path):
            raise self.error(
                key,
                f"no checkpoint at {path} (expected a TF checkpoint prefix with a "
                f"'{os.path.basename(path)}.index' beside it, a checkpoint directory, "
                f"or a {'/'.join(WEIGHTS_SUFFIXES)} file)",
            )
        return path

    def as_patterns(self, key: str, value: Any, check: bool) -> tuple[str, ...]:
        """One file or glob pattern, or a list of them; each must match a file."""
        items = value if isinstance(value, (list, tuple)) else [value]
        if not items:
            raise self.error(key, "is an empty list")
        patterns = []
        for item in items:
            if not isinstance(item, str) or not item.strip():
                raise self.type_error(key, "a file, a glob pattern or a list of them", item)
            pattern = os.path.abspath(os.path.expanduser(item.strip()))
            if check and not any(os.path.isfile(p) for p in glob.glob(pattern)):
                raise self.error(key, f"no file matches {pattern}")
            patterns.append(pattern)
        return tuple(patterns)

    def as_gpu_id(self, key: str, value: Any) -> str:
        # The original put this straight into CUDA_VISIBLE_DEVICES; YAML makes `gpu_id: 0` an
        # int and `gpu_id: '0'` a string, and both are meant the same.
        if isinstance(value, (list, tuple)):
            value = ",".join(str(self.as_int(key, v, minimum=0)) for v in value)
        elif isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise self.type_error(key, "a GPU index or a comma-separated list of indices", value)
        text = value.replace(" ", "")
        if not _GPU_ID.match(text):
            raise self.error(
                key, f"expected a GPU index or indices like '0' or '0,1' (-1: CPU), got {value!r}"
            )
        return text

    def as_float_list(
        self, key: str, value: Any, length: Optional[int] = None
    ) -> tuple[float, ...]:
        if not isinstance(value, (list, tuple)) or not value:
            raise self.type_error(key, "a list of numbers", value)
        if length is not None and len(value) != length:
            raise self.error(key, f"expected {length} numbers, got {len(value)}")
        return tuple(self.as_float(key, v) for v in value)

    def as_augmentation(self, key: str, value: Any) -> "AugmentationConfig":
        from ssma_tf.data.augment import AugmentationConfig

        if value is None or value is False:
            return AugmentationConfig.disabled()
        if value is True:
            value = {}
        if not isinstance(value, Mapping):
            raise self.type_error(key, "a mapping of augmentation settings, or true/false", value)
        try:
            # A private copy: the config must not change when the caller's mapping does.
            return AugmentationConfig.from_dict(copy.deepcopy(dict(value)), source=self.source)
        except ValueError as e:
            # The data module names the source itself; say it once.
            message = str(e).removeprefix(f"{self.source}: ")
            raise self.error(key, message) from e

    def as_multiple_of_16(self, key: str, value: Any) -> int:
        value = self.as_int(key, value, minimum=16)
        if value % 16:
            # The encoder downsamples by 16 and the decoder upsamples back exactly.
            raise self.error(key, f"must be a multiple of 16, got {value}")
        return value

    # --- The whole config ---------------------------------------------------------------------

    def run(self) -> RunConfig:
        self.check_keys()
        mode = self.mode
        for key in REQUIRED_KEYS[mode]:
            self.required(key)

        model = self.as_choice("model", self.required("model"), MODELS)
        fusion = model == "SSMA"
        num_classes = self.as_int("num_classes", self.required("num_classes"), minimum=2)

        initialize_key = "intialize" if "intialize" in self.d else "initialize"
        freeze_key, frozen = self.read_freeze()

        values: dict[str, Any] = dict(
            mode=mode,
            source=self.source,
            model=model,
            num_classes=num_classes,
            height=self.as_multiple_of_16("height", self.required("height")),
            width=self.as_multiple_of_16("width", self.required("width")),
            batch_size=self.as_int("batch_size", self.required("batch_size"), minimum=1),
            gpu_id=self.opt("gpu_id", self.as_gpu_id, None),
            skip_step=self.opt("skip_step", self.as_int, DEFAULT_SKIP_STEP[mode], minimum=1),
            max_iteration=self.opt("max_iteration", self.as_int, None, minimum=1),
            learning_rate=self.opt(
                "learning_rate", self.as_float, None, strictly_positive=True
            ),
            save_step=self.opt("save_step", self.as_int, DEFAULT_SAVE_STEP, minimum=1),
            power=self.opt("power", self.as_float, DEFAULT_POWER),
            end_learning_rate=self.opt("end_learning_rate", self.as_float, 1e-4),
            aux_loss_weights=self.opt("aux_loss_weights", self.as_float_list, (0.6, 0.5), length=2),
            encoder_lr_multiplier=self.opt("encoder_lr_multiplier", self.as_float, 1.0),
            dropout_keep_prob=self.opt(
                "dropout_keep_prob", self.as_float, 0.3, strictly_positive=True
            ),
            weight_decay=self.opt("weight_decay", self.as_float, 0.0),
            adam_epsilon=self.opt("adam_epsilon", self.as_float, 1e-8, strictly_positive=True),
            mixed_precision=self.opt(
                "mixed_precision", self.as_choice, None, MIXED_PRECISION_POLICIES
            ),
            xla=self.opt("xla", self.as_bool, False),
            seed=self.opt("seed", self.as_int, None, minimum=0),
            augmentation=self.as_augmentation("augmentation", self.raw("augmentation")),
            modality2_interpolation=self.opt(
                "modality2_interpolation", self.as_choice, "nearest", INTERPOLATIONS
            ),
            one_hot_labels=self.opt("one_hot_labels", self.as_bool, False),
            eval_scales=self.opt("eval_scales", self.as_float_list, (1.0,)),
            eval_flip=self.opt("eval_flip", self.as_bool, False),
            type=self.opt("type", self.as_str, None),
        )
        if values["dropout_keep_prob"] > 1:
            raise self.error(
                "dropout_keep_prob", f"must be in (0, 1], got {values['dropout_keep_prob']}"
            )
        if any(s <= 0 for s in values["eval_scales"]):
            scales = list(values["eval_scales"])
            raise self.error("eval_scales", f"scales must be > 0, got {scales}")

        # Model-specific keys: reject the ones that would silently do nothing.
        if fusion:
            if self.has("input_modality"):
                raise self.error("input_modality", "is for AdapNet_pp; SSMA reads both modalities")
            values["input_modality"] = None
            values["freeze_experts"] = True if frozen is None else frozen  # frozen as released
            values["aux_heads"] = self.opt("aux_heads", self.as_bool, False)
        else:
            for key in ("checkpoint1", "checkpoint2"):
                if self.has(key):
                    raise self.error(
                        key, "is for SSMA experts; AdapNet_pp starts from 'intialize'"
                    )
            if frozen:
                raise self.error(freeze_key, "is for SSMA; AdapNet_pp has no experts to freeze")
            values["freeze_experts"] = False
            if self.opt("aux_heads", self.as_bool, True) is False:
                raise self.error(
                    "aux_heads",
                    "AdapNet_pp always has its auxiliary heads; "
                    "set aux_loss_weights: [0, 0] to train without them",
                )
            values["aux_heads"] = True
            values["input_modality"] = self.opt(
                "input_modality", self.as_choice, "modality1", INPUT_MODALITIES
            )

        values.update(self.read_paths(mode, fusion, initialize_key))
        values["dataset"] = self.read_dataset(num_classes, values["palette"])

        config = RunConfig(**values)
        self.warn_about(config)
        return config

    def read_freeze(self) -> tuple[str, Optional[bool]]:
        """The key used for the expert switch and its value as `freeze_experts` (None: unset)."""
        if "train_experts" in self.d:
            train = self.opt("train_experts", self.as_bool, None)
            return "train_experts", None if train is None else not train
        return "freeze_experts", self.opt("freeze_experts", self.as_bool, None)

    def read_dataset(self, num_classes: int, palette: Optional[str]) -> Optional[str]:
        name = self.opt("dataset", self.as_str, None)
        if name is None:
            if palette is not None:
                raise self.error("palette", "needs 'dataset' to pick an entry of the file")
            return None
        if palette is not None and not os.path.isfile(palette):
            return name  # only reachable with check_paths=False: nothing to look the name up in
        from ssma_tf.data.datasets import get_dataset_info

        try:
            info = get_dataset_info(name, palette)
        except ValueError as e:
            raise self.error("dataset", str(e)) from e
        if info.num_classes != num_classes:
            raise self.error(
                "num_classes",
                f"dataset {info.name} has {info.num_classes} classes (void included), "
                f"but num_classes is {num_classes}",
            )
        return info.name

    def read_paths(self, mode: str, fusion: bool, initialize_key: str) -> dict[str, Any]:
        training = mode == "train"
        # Only the paths this mode reads must exist; the others are still normalised.
        check_train = self.check_paths and training
        check_eval = self.check_paths and not training
        out: dict[str, Any] = {
            "initialize": self.opt(initialize_key, self.as_checkpoint_ref, None, check_train),
            "checkpoint1": self.opt("checkpoint1", self.as_checkpoint_ref, None, check_train),
            "checkpoint2": self.opt("checkpoint2", self.as_checkpoint_ref, None, check_train),
            "train_data": self.opt("train_data", self.as_patterns, None, check_train),
            "test_data": self.opt("test_data", self.as_patterns, None, check_eval),
        }

        if fusion:
            if (out["checkpoint1"] is None) != (out["checkpoint2"] is None):
                missing = "checkpoint2" if out["checkpoint2"] is None else "checkpoint1"
                raise self.error(
                    missing, "SSMA experts start from checkpoint1 and checkpoint2 together"
                )
            if out["initialize"] is not None and out["checkpoint1"] is not None:
                raise self.error(
                    initialize_key,
                    "give either a whole SSMA checkpoint to start from or the two experts "
                    "(checkpoint1, checkpoint2), not both",
                )

        if training:
            checkpoint = self.as_path("checkpoint", self.required("checkpoint"))
            if check_train and os.path.exists(checkpoint) and not os.path.isdir(checkpoint):
                raise self.error(
                    "checkpoint",
                    f"must be a directory to write checkpoints to, but {checkpoint} is a file",
                )
        else:
            checkpoint = self.as_checkpoint_ref(
                "checkpoint", self.required("checkpoint"), check_eval
            )
        out["checkpoint"] = checkpoint

        log_dir = self.opt("log_dir", self.as_path, None)
        if log_dir is None and training:
            log_dir = os.path.join(checkpoint, "logs")
        out["log_dir"] = log_dir

        palette = self.opt("palette", self.as_path, None)
        if palette is not None and self.check_paths and not os.path.isfile(palette):
            raise self.error("palette", f"no file at {palette}")
        out["palette"] = palette
        return out

    def warn_about(self, config: RunConfig) -> None:
        if (
            config.mode == "train"
            and config.learning_rate is not None
            and config.end_learning_rate > config.learning_rate
        ):
            warnings.warn(
                f"{self.source}: end_learning_rate {config.end_learning_rate:g} is above "
                f"learning_rate {config.learning_rate:g}, so the poly schedule makes the learning "
                "rate grow (TF1 semantics); set end_learning_rate lower if that is not meant",
                ConfigWarning,
                stacklevel=4,
            )
        if config.is_fusion and config.freeze_experts and config.encoder_lr_multiplier != 1.0:
            warnings.warn(
                f"{self.source}: encoder_lr_multiplier has no effect while freeze_experts is true",
                ConfigWarning,
                stacklevel=4,
            )


def _checkpoint_exists(path: str) -> bool:
    """Whether `path` is a TF checkpoint prefix, a checkpoint directory or a weights file."""
    if os.path.isdir(path):
        return True
    if os.path.isfile(path) and path.endswith(WEIGHTS_SUFFIXES):
        return True
    return os.path.isfile(path + ".index")
