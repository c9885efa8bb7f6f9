"""Run configuration: the original YAML `.config` files, validated into a typed, frozen object.

The released scripts read a flat YAML mapping (`python train.py -c config/cityscapes_train.config`)
and looked keys up as they went, so a typo surfaced hours later as a `KeyError`, or never. Here the
whole file is checked before anything heavy starts: every key is known (a misspelt one gets the
closest known key as a suggestion), every required key is there, every value has the right type and
range, and every path the run will read exists. Any problem is a `ConfigError` that names the key
and the file.

Where things are:
- each key is declared once, as a field of `RunConfig` (or of `AugmentationConfig` for the
  `augmentation` section) made with `key(...)`: its type, default, allowed range or choices and a
  one-line description. `configs/README.md`'s key tables are generated from these declarations
  (`python -m ssma_tf.config` prints them; a test fails when the two drift apart);
- `_Reader` reads any declared key by its kind, so there is no reader per key;
- `_Reader.relate` holds every rule that ties several keys together (fusion or unimodal model,
  `checkpoint1` with `checkpoint2`, defaults that follow from other keys, the dataset's class
  count).

The original keys load unchanged (`gpu_id`, `model`, `num_classes`, `intialize` — sic —,
`checkpoint1`, `checkpoint2`, `checkpoint`, `train_data`, `test_data`, `batch_size`, `skip_step`,
`height`, `width`, `max_iteration`, `learning_rate`, `save_step`, `power`, and the SSMA files'
`dataset` and `type`). The new keys are optional and default to what the released code did.

Relative paths resolve against the current working directory, as they did in the original scripts
(which passed them straight to TensorFlow); the loaded config holds absolute paths, so later
changes of directory do not matter.

Loading a config imports no TensorFlow, so a bad config is reported in a fraction of a second.
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
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional

import yaml

from ssma_tf.constants import (
    ADAPNET_PP,
    AUX_LOSS_WEIGHTS,
    END_LEARNING_RATE,
    INPUT_MODALITIES,
    INTERPOLATIONS,
    MODEL_NAMES,
    OUTPUT_STRIDE,
    SSMA,
    WEIGHTS_SUFFIXES,
)

if TYPE_CHECKING:
    from ssma_tf.data.datasets import DatasetInfo

MODES = ("train", "eval")
MIXED_PRECISION_POLICIES = ("mixed_float16", "mixed_bfloat16")

# Parts of a TF checkpoint people often paste instead of its prefix.
_TF_CHECKPOINT_PART = re.compile(r"\.(index|meta|data-\d{5}-of-\d{5})$")
_GPU_ID = re.compile(r"^-?\d+(,\d+)*$")
# The released files left skip_step blank; these are the paper's and the released examples' values.
DEFAULT_SKIP_STEP = {"train": 5, "eval": 10}


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


# --- Declarations -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Key:
    """How one config key is read, checked and documented (the metadata of its field).

    Attributes:
        doc: one line: what the key means.
        kind: how its value is read: "int", "float", "bool", "str", "choice", "floats",
            "gpu_id", "path", "file", "checkpoint", "run_checkpoint", "patterns", "augmentation",
            or, in the augmentation section, "range".
        required: the modes ("train", "eval") that need the key.
        modes: the modes that use it (documentation: the others accept and ignore it).
        minimum: smallest allowed number (inclusive).
        above: the number must be greater than this.
        maximum: largest allowed number (inclusive).
        multiple_of: the number must be a multiple of this.
        choices: the allowed strings of a "choice".
        length: the number of items of a "floats" list.
        items: what the items of a "floats" list are, for errors about all of them.
        check_in: the modes in which a path must exist (when paths are checked at all).
        alias: a second accepted spelling (giving both is an error).
        alias_inverts: the alias holds the negation of the key (`train_experts`).
        original: a key of the released `.config` files.
        mode_defaults: a default per mode, where it depends on the mode (the field's default is
            then the training one).
        default_doc: the default as the tables show it, where it follows from other keys.
    """

    doc: str
    kind: str
    required: tuple[str, ...] = ()
    modes: tuple[str, ...] = MODES
    minimum: Optional[float] = None
    above: Optional[float] = None
    maximum: Optional[float] = None
    multiple_of: Optional[int] = None
    choices: tuple[str, ...] = ()
    length: Optional[int] = None
    items: str = "values"
    check_in: tuple[str, ...] = ()
    alias: Optional[str] = None
    alias_inverts: bool = False
    original: bool = False
    mode_defaults: Optional[Mapping[str, Any]] = None
    default_doc: Optional[str] = None


def key(default: Any = dataclasses.MISSING, *, default_factory: Any = dataclasses.MISSING,
        **spec: Any) -> Any:
    """A dataclass field declaring a config key: its default and its `Key` metadata."""
    return dataclasses.field(
        default=default, default_factory=default_factory, metadata={"key": Key(**spec)}
    )


def declared_keys(cls: type) -> tuple[tuple[str, Key, Any], ...]:
    """The (name, `Key`, default) of every declared key of a config class, in declaration order."""
    out = []
    for field in dataclasses.fields(cls):
        spec = field.metadata.get("key")
        if spec is None:
            continue
        if field.default is not dataclasses.MISSING:
            default = field.default
        elif field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        else:
            default = None
        out.append((field.name, spec, default))
    return tuple(out)


@dataclasses.dataclass(frozen=True)
class AugmentationConfig:
    """Switches and ranges of the training augmentation, with the paper's defaults (Section 5.1.3).

    Each enabled transform is applied to a sample independently with `probability` (the paper
    gives no probability; 0.5 keeps unaugmented views in the mix). Parameters are drawn uniformly
    from their range. The transforms themselves are in `ssma_tf.data.augment`; this is only the
    `augmentation` section of a config, so reading it needs no TensorFlow.

    Each field is declared with its range; a bad value is a ValueError naming the field and the
    source.
    """

    probability: float = key(0.5, kind="float", minimum=0.0, maximum=1.0,
                             doc="chance that each enabled transform is applied to a sample")
    rotation: bool = key(True, kind="bool", doc="rotate about the image centre")
    rotation_range: tuple[float, float] = key(
        (-13.0, 13.0), kind="range", minimum=-180.0, maximum=180.0,
        doc="rotation in degrees (positive turns the content counter-clockwise)")
    skew: bool = key(True, kind="bool", doc="horizontal shear")
    skew_range: tuple[float, float] = key(
        (0.05, 0.10), kind="range", minimum=0.0,
        doc="shear factor k (x += k · y), its sign drawn at random")
    scale: bool = key(True, kind="bool", doc="zoom about the centre")
    scale_range: tuple[float, float] = key(
        (0.5, 2.0), kind="range", above=0.0,
        doc="zoom factor: > 1 zooms in, < 1 shrinks the image and brings in void border")
    crop: bool = key(True, kind="bool",
                     doc="keep a random window and stretch it to the output size")
    crop_range: tuple[float, float] = key(
        (0.8, 0.9), kind="range", above=0.0, maximum=1.0,
        doc="fraction of each side the window keeps")
    flip: bool = key(True, kind="bool", doc="mirror left-right")
    brightness: bool = key(True, kind="bool", doc="add a value to modality 1")
    brightness_range: tuple[float, float] = key(
        (-40.0, 40.0), kind="range", minimum=-255.0, doc="value added (0..255 scale)")
    contrast: bool = key(True, kind="bool",
                         doc="scale modality 1 about its per-channel mean")
    contrast_range: tuple[float, float] = key(
        (0.5, 1.5), kind="range", minimum=0.0, doc="contrast factor")
    vignetting: bool = key(True, kind="bool",
                           doc="darken modality 1 towards the corners (Gaussian falloff)")
    vignetting_range: tuple[float, float] = key(
        (210.0, 300.0), kind="range", above=0.0,
        doc="sigma in pixels of a 768-pixel-wide image (scaled with the width)")

    def __post_init__(self) -> None:
        self._validate("AugmentationConfig")

    def _validate(self, source: str) -> None:
        """Raises ValueError naming the first bad field and `source`."""
        for name, spec, _ in declared_keys(AugmentationConfig):
            value = getattr(self, name)
            if spec.kind == "bool":
                if not isinstance(value, bool):
                    raise ValueError(f"{source}: {name!r} must be true or false, got {value!r}")
            elif spec.kind == "float":
                if (isinstance(value, bool) or not isinstance(value, (int, float))
                        or not spec.minimum <= value <= spec.maximum):
                    raise ValueError(
                        f"{source}: {name!r} must be a number in "
                        f"[{spec.minimum:g}, {spec.maximum:g}], got {value!r}"
                    )
            else:
                _check_range(source, name, spec, value)

    @classmethod
    def from_dict(
        cls, d: Optional[Mapping[str, Any]], source: str = "<dict>"
    ) -> "AugmentationConfig":
        """Builds a config from a mapping (e.g. a YAML section); absent keys keep their defaults.

        Args:
            d: Mapping of field names to values; ranges may be lists. None means all defaults.
            source: Where the mapping came from (a file name), quoted in errors.

        Returns:
            The validated config.

        Raises:
            ValueError: On an unknown key or a bad value, naming the key and `source`.
        """
        if d is None:
            return cls()
        if not isinstance(d, Mapping):
            raise ValueError(
                f"{source}: augmentation settings must be a mapping, got {type(d).__name__}"
            )
        declared = {name: spec for name, spec, _ in declared_keys(cls)}
        values = {}
        for name, value in d.items():
            if name not in declared:
                raise ValueError(
                    f"{source}: unknown augmentation key {name!r} "
                    f"(known keys: {', '.join(sorted(declared))})"
                )
            if declared[name].kind == "range" and isinstance(value, list):
                value = tuple(value)
            values[name] = value
        config = cls.__new__(cls)
        # Fill the frozen dataclass by hand so the validation error can name `source`.
        for name, _, default in declared_keys(cls):
            object.__setattr__(config, name, values.get(name, default))
        config._validate(source)
        return config

    def to_dict(self) -> dict[str, Any]:
        """Returns the config as plain YAML-friendly values (ranges as lists)."""
        return {
            name: list(value) if isinstance(value, tuple) else value
            for name, value in dataclasses.asdict(self).items()
        }

    @classmethod
    def disabled(cls) -> "AugmentationConfig":
        """A config that changes nothing (training then only resizes)."""
        return cls(**{name: False for name, spec, _ in declared_keys(cls) if spec.kind == "bool"})


def _check_range(source: str, name: str, spec: Key, value: Any) -> None:
    """Checks a [low, high] range against its declared bounds; errors name `name` and `source`."""
    ok = (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    )
    if not ok or not (math.isfinite(value[0]) and math.isfinite(value[1])):
        raise ValueError(f"{source}: {name!r} must be two numbers [low, high], got {value!r}")
    low, high = value
    inclusive = spec.minimum is not None
    lowest = spec.minimum if inclusive else spec.above
    if low > high or low < lowest or (low == lowest and not inclusive):
        raise ValueError(
            f"{source}: {name!r} must satisfy {lowest} {'<=' if inclusive else '<'} low "
            f"<= high, got {list(value)!r}"
        )
    if spec.maximum is not None and high > spec.maximum:
        raise ValueError(
            f"{source}: {name!r} must lie in {'[' if inclusive else '('}{lowest:g}, "
            f"{spec.maximum:g}], got {list(value)!r}"
        )


TRAIN = ("train",)
EVAL = ("eval",)


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
    """

    mode: str
    source: str
    # --- Keys of the released files, in their order.
    gpu_id: Optional[str] = key(
        None, kind="gpu_id", original=True,
        doc="`CUDA_VISIBLE_DEVICES` (`'0'`, `0`, `'0,1'`, `-1` for CPU); blank or absent: all "
            "visible devices")
    model: str = key(kind="choice", choices=MODEL_NAMES, required=MODES, original=True,
                     doc="`AdapNet_pp` (unimodal) or `SSMA` (fusion of two AdapNet++ experts)")
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
        doc="factor on the encoders' learning rate (0.1 in SSMA stage 2)")
    freeze_experts: bool = key(
        False, kind="bool", alias="train_experts", alias_inverts=True, modes=TRAIN,
        default_doc="false (SSMA: true)",
        doc="SSMA only: experts not trainable, their batch norms in inference mode")
    input_modality: Optional[str] = key(
        INPUT_MODALITIES[0], kind="choice", choices=INPUT_MODALITIES,
        doc="AdapNet++ only: which image of the records feeds the network")
    dropout_keep_prob: float = key(0.3, kind="float", above=0, maximum=1, modes=TRAIN,
                                   doc="keep probability of the block-4 dropout")
    weight_decay: float = key(
        0.0, kind="float", minimum=0.0, modes=TRAIN,
        doc="L2 factor added to the loss (the released 5e-4 regulariser was never applied)")
    adam_epsilon: float = key(1e-8, kind="float", above=0, modes=TRAIN,
                              doc="Adam's epsilon (TF1's default; the paper says 1e-10)")
    mixed_precision: Optional[str] = key(
        None, kind="choice", choices=MIXED_PRECISION_POLICIES, modes=TRAIN,
        doc="mixed-precision policy of the training model")
    xla: bool = key(False, kind="bool", doc="compile the training or evaluation step with XLA")
    seed: Optional[int] = key(None, kind="int", minimum=0, modes=TRAIN,
                              doc="seed for weights, shuffling and augmentation")
    augmentation: AugmentationConfig = key(
        default_factory=AugmentationConfig.disabled, kind="augmentation", modes=TRAIN,
        doc="mapping of augmentation keys (below; `{}` or `true`: the paper's augmentations); "
            "absent or `false`: none, as released (the original augmented offline)")
    modality2_interpolation: str = key(
        INTERPOLATIONS[0], kind="choice", choices=INTERPOLATIONS,
        doc="resampling of modality 2 (nearest for depth-like maps)")
    one_hot_labels: bool = key(False, kind="bool",
                               doc="feed one-hot labels like the original pipeline")
    eval_scales: tuple[float, ...] = key(
        (1.0,), kind="floats", minimum=0.0, above=0, items="scales", modes=EVAL,
        doc="input scales for multi-scale testing")
    eval_flip: bool = key(False, kind="bool", modes=EVAL,
                          doc="also evaluate the left-right flipped input")
    log_dir: Optional[str] = key(None, kind="path", modes=TRAIN,
                                 default_doc="`<checkpoint>/logs`", doc="TensorBoard directory")
    palette: Optional[str] = key(
        None, kind="file", check_in=MODES, default_doc="shipped `ssma_tf/data/datasets.yaml`",
        doc="a datasets file in that format, for datasets it does not know")

    @property
    def is_fusion(self) -> bool:
        """True for SSMA (two input modalities)."""
        return self.model == SSMA

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
            elif isinstance(value, AugmentationConfig):
                value = value.to_dict()
            out[name] = value
        return out


DECLARED = {name: spec for name, spec, _ in declared_keys(RunConfig)}
DEFAULTS = {name: default for name, _, default in declared_keys(RunConfig)}
# Other spellings of a key, and the key they stand for.
ALIASES = {spec.alias: name for name, spec in DECLARED.items() if spec.alias is not None}
KNOWN_KEYS = tuple(sorted(set(DECLARED) | set(ALIASES)))
REQUIRED_KEYS = {mode: tuple(n for n, s in DECLARED.items() if mode in s.required) for mode in MODES}
# Kinds whose reading looks at the file system: read after every other key.
_PATH_KINDS = ("path", "file", "checkpoint", "run_checkpoint", "patterns")


# --- YAML ---------------------------------------------------------------------------------------


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
        name = loader.construct_object(key_node, deep=deep)
        if name in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key '{name}'", key_node.start_mark
            )
        seen[name] = True
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
    return _Reader(d, source, mode, check_paths).run()


# --- Reading ------------------------------------------------------------------------------------


class _Reader:
    """Reads one config mapping: every declared key by its kind, then the rules between keys."""

    def __init__(self, d: Mapping[Any, Any], source: str, mode: str, check_paths: bool):
        self.d = d
        self.source = source
        self.mode = mode
        self.check_paths = check_paths

    # --- Errors and lookups -----------------------------------------------------------------

    def error(self, name: Optional[str], message: str) -> ConfigError:
        return ConfigError(message, key=name, source=self.source)

    def type_error(self, name: str, expected: str, value: Any) -> ConfigError:
        return self.error(name, f"expected {expected}, got {value!r} ({type(value).__name__})")

    def check_keys(self) -> None:
        for name in self.d:
            if not isinstance(name, str):
                raise self.error(str(name), "keys must be strings")
        unknown = [k for k in self.d if k not in KNOWN_KEYS]
        if unknown:
            name = unknown[0]
            close = difflib.get_close_matches(name, KNOWN_KEYS, n=1, cutoff=0.6)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            others = f" (other unknown keys: {', '.join(unknown[1:])})" if unknown[1:] else ""
            raise self.error(name, f"unknown key{hint}{others}")
        for alias, name in ALIASES.items():
            if alias in self.d and name in self.d:
                raise self.error(alias, f"give either '{alias}' or '{name}', not both")

    def spelling(self, name: str) -> str:
        """The spelling of key `name` the file uses (its alias, if the file gives that)."""
        alias = DECLARED[name].alias
        return alias if alias is not None and alias in self.d else name

    def raw(self, name: str) -> Any:
        """The value of `name`; None when absent or blank (`key:` or a whitespace-only string)."""
        value = self.d.get(name)
        if isinstance(value, str) and not value.strip():
            return None
        return value

    def has(self, name: str) -> bool:
        return self.raw(name) is not None

    # --- The whole config -------------------------------------------------------------------

    def run(self) -> RunConfig:
        self.check_keys()
        for name in REQUIRED_KEYS[self.mode]:
            if self.raw(name) is None:
                if name in self.d:
                    raise self.error(name, f"is empty; {self.mode} needs a value")
                raise self.error(name, f"is missing; {self.mode} needs it")
        # The model first (the rules below depend on it), then plain values, then what looks at
        # the file system, once everything else is known to fit.
        given = self.read_keys(lambda name, spec: name == "model")
        self.relate_model(given)
        given.update(
            self.read_keys(lambda name, spec: name != "model" and spec.kind not in _PATH_KINDS)
        )
        self.relate_switches(given)
        given.update(self.read_keys(lambda name, spec: spec.kind in _PATH_KINDS))
        values = {**DEFAULTS, **given, "mode": self.mode, "source": self.source}
        self.relate(values, given)
        config = RunConfig(**values)
        self.warn_about(config)
        return config

    def read_keys(self, which: Callable[[str, Key], bool]) -> dict[str, Any]:
        """Reads the declared keys that `which` selects and the file gives, by field name."""
        given: dict[str, Any] = {}
        for name, spec in DECLARED.items():
            if not which(name, spec):
                continue
            spelling = self.spelling(name)
            value = self.raw(spelling)
            if value is None:
                continue
            value = self.read(spelling, spec, value)
            given[name] = (not value) if spec.alias_inverts and spelling != name else value
        return given

    def read(self, name: str, spec: Key, value: Any) -> Any:
        """Reads one value of a key declared by `spec`; errors name `name`."""
        reader = getattr(self, f"read_{spec.kind}")
        return reader(name, spec, value)

    # --- Rules between keys -----------------------------------------------------------------

    def relate_model(self, given: dict[str, Any]) -> None:
        """Rejects keys that the model would silently ignore, before their values are read."""
        if given["model"] == SSMA:
            if self.has("input_modality"):
                raise self.error("input_modality", "is for AdapNet_pp; SSMA reads both modalities")
            return
        for name in ("checkpoint1", "checkpoint2"):
            if self.has(name):
                raise self.error(
                    name, f"is for SSMA experts; {ADAPNET_PP} starts from 'intialize'"
                )

    def relate_switches(self, given: dict[str, Any]) -> None:
        """Rejects switches that AdapNet++ cannot honour."""
        if given["model"] == SSMA:
            return
        if given.get("freeze_experts"):
            raise self.error(
                self.spelling("freeze_experts"),
                f"is for SSMA; {ADAPNET_PP} has no experts to freeze",
            )
        if given.get("aux_heads") is False:
            raise self.error(
                "aux_heads",
                f"{ADAPNET_PP} always has its auxiliary heads; "
                "set aux_loss_weights: [0, 0] to train without them",
            )

    def relate(self, values: dict[str, Any], given: dict[str, Any]) -> None:
        """Defaults that follow from other keys, and the checks between paths and the dataset."""
        for name, spec in DECLARED.items():
            if spec.mode_defaults is not None and name not in given:
                values[name] = spec.mode_defaults[self.mode]
        if values["model"] == SSMA:
            values["input_modality"] = None
            values["freeze_experts"] = given.get("freeze_experts", True)  # frozen as released
            values["aux_heads"] = given.get("aux_heads", False)
            if (values["checkpoint1"] is None) != (values["checkpoint2"] is None):
                missing = "checkpoint2" if values["checkpoint2"] is None else "checkpoint1"
                raise self.error(
                    missing, "SSMA experts start from checkpoint1 and checkpoint2 together"
                )
            if values["initialize"] is not None and values["checkpoint1"] is not None:
                raise self.error(
                    self.spelling("initialize"),
                    "give either a whole SSMA checkpoint to start from or the two experts "
                    "(checkpoint1, checkpoint2), not both",
                )
        if self.mode == "train" and values["log_dir"] is None:
            values["log_dir"] = os.path.join(values["checkpoint"], "logs")
        values["dataset"] = self.relate_dataset(
            values["dataset"], values["palette"], values["num_classes"]
        )

    def relate_dataset(
        self, name: Optional[str], palette: Optional[str], num_classes: int
    ) -> Optional[str]:
        """The canonical name of `dataset`, checked against `palette` and `num_classes`."""
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

    # --- Readers, one per kind --------------------------------------------------------------

    def check_number(self, name: str, spec: Key, value: Any) -> Any:
        if spec.above is not None and value <= spec.above:
            raise self.error(name, f"must be > {spec.above}, got {value}")
        if spec.minimum is not None and value < spec.minimum:
            raise self.error(name, f"must be >= {spec.minimum}, got {value}")
        if spec.maximum is not None and value > spec.maximum:
            low = f"({spec.above}" if spec.above is not None else f"[{spec.minimum}"
            raise self.error(name, f"must be in {low}, {spec.maximum}], got {value}")
        if spec.multiple_of is not None and value % spec.multiple_of:
            # The encoder downsamples by the output stride and the decoder upsamples back exactly.
            raise self.error(name, f"must be a multiple of {spec.multiple_of}, got {value}")
        return value

    def read_int(self, name: str, spec: Key, value: Any) -> int:
        # bool is an int in Python, but `batch_size: yes` is certainly a mistake.
        if isinstance(value, bool):
            raise self.type_error(name, "an integer", value)
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # `max_iteration: 1.5e5` is a whole number written as a float
        if not isinstance(value, int):
            raise self.type_error(name, "an integer", value)
        return self.check_number(name, spec, value)

    def read_float(self, name: str, spec: Key, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.type_error(name, "a number", value)
        value = float(value)
        if not math.isfinite(value):
            raise self.error(name, f"must be finite, got {value}")
        return self.check_number(name, spec, value)

    def read_floats(self, name: str, spec: Key, value: Any) -> tuple[float, ...]:
        if not isinstance(value, (list, tuple)) or not value:
            raise self.type_error(name, "a list of numbers", value)
        if spec.length is not None and len(value) != spec.length:
            raise self.error(name, f"expected {spec.length} numbers, got {len(value)}")
        each = dataclasses.replace(spec, above=None)
        values = tuple(self.read_float(name, each, v) for v in value)
        if spec.above is not None and any(v <= spec.above for v in values):
            raise self.error(name, f"{spec.items} must be > {spec.above}, got {list(values)}")
        return values

    def read_bool(self, name: str, spec: Key, value: Any) -> bool:
        if not isinstance(value, bool):
            raise self.type_error(name, "true or false", value)
        return value

    def read_str(self, name: str, spec: Key, value: Any) -> str:
        if not isinstance(value, str):
            raise self.type_error(name, "a string", value)
        return value.strip()

    def read_choice(self, name: str, spec: Key, value: Any) -> str:
        value = self.read_str(name, spec, value)
        if value not in spec.choices:
            close = difflib.get_close_matches(value, spec.choices, n=1, cutoff=0.5)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise self.error(
                name, f"must be one of {', '.join(spec.choices)}, got {value!r}{hint}"
            )
        return value

    def read_gpu_id(self, name: str, spec: Key, value: Any) -> str:
        # The original put this straight into CUDA_VISIBLE_DEVICES; YAML makes `gpu_id: 0` an
        # int and `gpu_id: '0'` a string, and both are meant the same.
        if isinstance(value, (list, tuple)):
            index = Key(doc="a GPU index", kind="int", minimum=0)
            value = ",".join(str(self.read_int(name, index, v)) for v in value)
        elif isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise self.type_error(name, "a GPU index or a comma-separated list of indices", value)
        text = value.replace(" ", "")
        if not _GPU_ID.match(text):
            raise self.error(
                name, f"expected a GPU index or indices like '0' or '0,1' (-1: CPU), got {value!r}"
            )
        return text

    def read_augmentation(self, name: str, spec: Key, value: Any) -> AugmentationConfig:
        if value is False:
            return AugmentationConfig.disabled()
        if value is True:
            value = {}
        if not isinstance(value, Mapping):
            raise self.type_error(name, "a mapping of augmentation settings, or true/false", value)
        try:
            # A private copy: the config must not change when the caller's mapping does.
            return AugmentationConfig.from_dict(copy.deepcopy(dict(value)), source=self.source)
        except ValueError as e:
            # The section names the source itself; say it once.
            message = str(e).removeprefix(f"{self.source}: ")
            raise self.error(name, message) from e

    def checks(self, spec: Key) -> bool:
        """Whether a path of this key must exist in this run."""
        return self.check_paths and self.mode in spec.check_in

    def read_path(self, name: str, spec: Key, value: Any) -> str:
        path = self.read_str(name, spec, value)
        return os.path.abspath(os.path.expanduser(path))

    def read_file(self, name: str, spec: Key, value: Any) -> str:
        path = self.read_path(name, spec, value)
        if self.checks(spec) and not os.path.isfile(path):
            raise self.error(name, f"no file at {path}")
        return path

    def read_checkpoint(self, name: str, spec: Key, value: Any) -> str:
        """A checkpoint to read: its prefix (a pasted `.index`/`.data-…` part is cut off)."""
        path = _TF_CHECKPOINT_PART.sub("", self.read_path(name, spec, value))
        if self.checks(spec) and not _checkpoint_exists(path):
            raise self.error(
                name,
                f"no checkpoint at {path} (expected a TF checkpoint prefix with a "
                f"'{os.path.basename(path)}.index' beside it, a checkpoint directory, "
                f"or a {'/'.join(WEIGHTS_SUFFIXES)} file)",
            )
        return path

    def read_run_checkpoint(self, name: str, spec: Key, value: Any) -> str:
        """Training: the directory to write checkpoints to; evaluation: the weights to read."""
        if self.mode == "eval":
            return self.read_checkpoint(name, spec, value)
        path = self.read_path(name, spec, value)
        if self.checks(spec) and os.path.exists(path) and not os.path.isdir(path):
            raise self.error(
                name, f"must be a directory to write checkpoints to, but {path} is a file"
            )
        return path

    def read_patterns(self, name: str, spec: Key, value: Any) -> tuple[str, ...]:
        """One file or glob pattern, or a list of them; each must match a file."""
        items = value if isinstance(value, (list, tuple)) else [value]
        if not items:
            raise self.error(name, "is an empty list")
        patterns = []
        for item in items:
            if not isinstance(item, str) or not item.strip():
                raise self.type_error(name, "a file, a glob pattern or a list of them", item)
            pattern = os.path.abspath(os.path.expanduser(item.strip()))
            if self.checks(spec) and not any(os.path.isfile(p) for p in glob.glob(pattern)):
                raise self.error(name, f"no file matches {pattern}")
            patterns.append(pattern)
        return tuple(patterns)


def _checkpoint_exists(path: str) -> bool:
    """Whether `path` is a TF checkpoint prefix, a checkpoint directory or a weights file."""
    if os.path.isdir(path):
        return True
    if os.path.isfile(path) and path.endswith(WEIGHTS_SUFFIXES):
        return True
    return os.path.isfile(path + ".index")


# --- The key tables of configs/README.md --------------------------------------------------------


def _format_number(value: Any) -> str:
    if isinstance(value, float) and value and abs(value) < 1e-3:
        mantissa, exponent = f"{value:e}".split("e")
        return f"{float(mantissa):g}e{int(exponent)}"  # 1e-4 rather than 0.0001
    return repr(value) if isinstance(value, float) else str(value)


def _format_default(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return "[" + ", ".join(_format_default(v) for v in value) + "]"
    if isinstance(value, AugmentationConfig):
        return "off" if value == AugmentationConfig.disabled() else "on"
    return _format_number(value)


def _allowed(spec: Key) -> str:
    """What a key accepts, in words, from its declaration."""
    bounds = []
    if spec.above is not None:
        bounds.append(f"> {spec.above:g}")
    if spec.minimum is not None and not (spec.above is not None and spec.minimum <= spec.above):
        bounds.append(f"≥ {spec.minimum:g}")
    if spec.maximum is not None:
        bounds.append(f"≤ {spec.maximum:g}")
    if spec.multiple_of is not None:
        bounds.append(f"multiple of {spec.multiple_of}")
    bound = (" " + ", ".join(bounds)) if bounds else ""
    words = {
        "int": f"integer{bound}",
        "float": f"number{bound}",
        "floats": (f"{spec.length} numbers" if spec.length else "list of numbers") + bound,
        "bool": "true, false",
        "str": "text",
        "choice": ", ".join(f"`{c}`" for c in spec.choices),
        "gpu_id": "GPU index or indices",
        "path": "path",
        "file": "file",
        "checkpoint": "checkpoint",
        "run_checkpoint": "train: directory; eval: checkpoint",
        "patterns": "files or glob patterns",
        "augmentation": "mapping, true, false",
    }
    return words[spec.kind]


def _cell(spec: Key, default: Any, mode: str) -> str:
    """How a key reads in one mode's column: required, its default, optional or unused."""
    if mode in spec.required:
        return "required"
    if mode not in spec.modes:
        return "–"
    if spec.default_doc is not None:
        return f"default {spec.default_doc}"
    if spec.mode_defaults is not None:
        default = spec.mode_defaults[mode]
    return "optional" if default is None else f"default {_format_default(default)}"


def key_tables() -> str:
    """The markdown key tables of `configs/README.md`, generated from the declarations."""

    def name_cell(name: str, spec: Key) -> str:
        if spec.alias is None:
            return f"`{name}`"
        if spec.original:  # the released files spell it the other way
            return f"`{spec.alias}` (or `{name}`)"
        inverse = ", its inverse" if spec.alias_inverts else ""
        return f"`{name}` (or `{spec.alias}`{inverse})"

    header = ["| key | train | eval | accepts | meaning |", "| --- | --- | --- | --- | --- |"]
    original, new = list(header), list(header)
    for name, spec, default in declared_keys(RunConfig):
        row = (f"| {name_cell(name, spec)} | {_cell(spec, default, 'train')} | "
               f"{_cell(spec, default, 'eval')} | {_allowed(spec)} | {spec.doc} |")
        (original if spec.original else new).append(row)
    augmentation = ["| key | default | accepts | meaning |", "| --- | --- | --- | --- |"]
    for name, spec, default in declared_keys(AugmentationConfig):
        if spec.kind == "range":
            low = f"[{spec.minimum:g}" if spec.minimum is not None else f"({spec.above:g}"
            high = f"{spec.maximum:g}]" if spec.maximum is not None else "∞)"
            accepts = f"[low, high] within {low}, {high}"
        else:
            accepts = _allowed(spec)
        augmentation.append(
            f"| `{name}` | {_format_default(default)} | {accepts} | {spec.doc} |"
        )
    return "\n".join(
        ["Original keys (loaded unchanged):", "", *original, "",
         "New keys (all optional; the defaults are the released behaviour):", "", *new, "",
         "Keys of the `augmentation` section (absent keys keep these defaults, the paper's):",
         "", *augmentation]
    ) + "\n"


if __name__ == "__main__":  # python -m ssma_tf.config: the tables for configs/README.md
    print(key_tables(), end="")
