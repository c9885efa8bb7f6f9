"""Reading a `.config` file: YAML, then every declared key by its kind, then the rules between keys.

`_Reader` has one reader per kind of key (integer, number, choice, checkpoint, ...), none per key,
and `relate_model`, `relate_switches` and `relate` hold every rule that ties several keys
together (fusion or unimodal model, `checkpoint1` with `checkpoint2`, defaults that follow from
other keys, the dataset's class count). Errors are `ConfigError`s naming the key and the file.
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
from typing import Any, Callable, Mapping, NamedTuple, Optional, Sequence

import yaml

from ssma_tf.config.adaptation import AdaptationConfig, keys_abn_ignores
from ssma_tf.config.augmentation import AugmentationConfig
from ssma_tf.config.keys import MODES, Key, declared_keys
from ssma_tf.config.run import DECLARED, DEFAULTS, RunConfig, derived_log_dir, experts_frozen
from ssma_tf.config.semi_supervised import SemiSupervisedConfig
from ssma_tf.config.yaml_reader import (
    ConfigError, ConfigMapping, _Loader, _LoaderError, quoting_hint, read_yaml_file, refused_character, yaml_problem,
)
from ssma_tf.constants import (
    ADAPNET_PP, ADAPNET_PP_BACKBONE, DECODER_FILTERS, DECODER_FUSIONS, EASPP_RATES, EXPERTLESS_FUSIONS,
    FINAL_MODEL, FINAL_RECORD, FINAL_WEIGHTS, MAX_MODALITIES, RUN_CONFIG, SSMA, SSMA_FUSION, WEIGHTS_SUFFIXES,
)
from ssma_tf.files import OutputPathError, check_output, checkpoint_prefix, matched_files

# Other spellings of a key, and the key they stand for.
ALIASES = {spec.alias: name for name, spec in DECLARED.items() if spec.alias is not None}
KNOWN_KEYS = tuple(sorted(set(DECLARED) | set(ALIASES)))
REQUIRED_KEYS = {mode: tuple(n for n, s in DECLARED.items() if mode in s.required) for mode in MODES}

# Kinds whose reading looks at the file system: read after every other key.
_PATH_KINDS = ("path", "file", "folder", "checkpoint", "checkpoints", "run_checkpoint", "patterns")
# The released ImageNet initialisation (`ssma_tf/checkpoints/zoo.yaml`, `initialization`).
IMAGENET_PREFIX = "AdapNet_pp_init.ckpt"
IMAGENET_URL = "https://github.com/DeepSceneSeg/AdapNet-pp/tree/master/init_checkpoint"
# Keys of the released protocol's optimizer that adaptation method sac replaces by its own.
_SCHEDULE_KEYS = ("weight_decay", "power", "end_learning_rate", "adam_epsilon")
_GPU_ID = re.compile(r"^-?\d+(,\d+)*$")


class ConfigWarning(UserWarning):
    """A legal but probably unintended setting (e.g. a learning rate that grows)."""


# The sections that switch a training mode on (absent or false: off), with the keys only they read.
_SWITCHED_SECTIONS = {
    "semi_supervised": ("unlabeled_data",),
    "adaptation": ("target_data", "target_val_data", "importance_weights"),
}
# Every key that holds a mapping of keys of its own.
_SECTIONS = ("augmentation", *_SWITCHED_SECTIONS)
# Words for "none" that an optional choice key (default None) meets with how to leave it out,
# and what leaving it out means where "none" does not say it.
_NONE_WORDS = ("none", "null", "off", "no", "false", "float32", "disabled")
_LEFT_OUT = {"mixed_precision": "to train in float32"}


def _sections_holding(name: str) -> list[str]:
    """The sections that declare a key `name` (`ema_decay`: semi_supervised and adaptation)."""
    classes = {"augmentation": AugmentationConfig, "semi_supervised": SemiSupervisedConfig,
               "adaptation": AdaptationConfig}
    return [section for section in _SECTIONS if name in {key for key, _, _ in declared_keys(classes[section])}]


class Required(NamedTuple):
    """The keys a reader of a config needs (`keys`) and who that is, for the error (`by`):
    by default a mode's, `REQUIRED_KEYS[mode]` for "train" or "eval"."""

    keys: tuple[str, ...]
    by: str


def ssma_train_warnings(config: RunConfig) -> list[str]:
    """What `ssma-train` warns of at the start: legal settings that a training run would regret.

    Not warned at load time, since other commands read the same configs differently
    (`ssma-pretrain-depth` reads `unlabeled_data` without a `semi_supervised` section,
    `ssma-importance-weights` reads `target_data` without `adaptation`, `ssma-prune` takes its
    own test records).

    Returns:
        One line per warning (without "warning:"), naming the config and the key.
    """
    lines = []
    if config.test_data:
        # Read by ssma-evaluate RUN after training, not by training: a typo would otherwise be
        # found only when the run is done.
        missing = [p for p in config.test_data if not matched_files(p)]  # "data [v2]/x": a file
        if missing:
            lines.append(f"{config.source}: key 'test_data': no file matches {missing[0]}; training does not read "
                         "it, but evaluating the run (ssma-evaluate RUN) will")
    for section, keys in _SWITCHED_SECTIONS.items():
        unread = [k for k in keys if getattr(config, k) is not None]
        if unread and getattr(config, section) is None:
            # A `--set SECTION=false` switched it off, not the file: say so (the file may have it).
            switched_off = dict(config.overridden).get(section)
            why = (f"which {switched_off} switches off" if switched_off is not None
                   else "which the config does not have (or sets false)")
            lines.append(f"{config.where(unread[0])}: key '{unread[0]}' is read only with the '{section}' section, "
                         f"{why}: this run does not use it")
    starts = (config.expert_checkpoints, config.initialize, config.finetune_from)
    if config.experts_frozen and all(s is None for s in starts):
        what = "SSMA" if config.fusion in (None, SSMA_FUSION) else f"fusion {config.fusion}"
        # backbone_weights starts the MobileNet v2 backbones only: what follows them stays random.
        imagenet = config.backbone_weights is not None and config.backbone != ADAPNET_PP_BACKBONE
        stays = ("only backbone_weights does, for their MobileNet v2 backbones: what follows them (the eASPP, and "
                 "a baseline expert's decoder) stays at its random initial weights" if imagenet
                 else "they stay at their random initial weights")
        lines.append(f"{config.source}: freeze_experts is true, but nothing starts the experts of this {what} (no "
                     f"checkpoint1/checkpoint2, checkpoints, intialize or finetune_from): {stays}; start them from "
                     "unimodal runs (the paper's stage 2), or set freeze_experts: false")
    return lines


# Why a depth-pretraining run is refused where classes are predicted ("this is the config of "
# before it for a config; "this is " for a run given as weights).
PRETRAINING_RUN = ("a depth-pretraining run (ssma-pretrain-depth), whose network predicts depth, not classes; "
                   "ssma-pretrain-depth -c resumes it, and a segmentation run starts from its weights with "
                   "finetune_from")


def refuse_pretraining(config: RunConfig) -> None:
    """Raises a ConfigError naming the key when `config` is a depth-pretraining run's
    (`pretraining: depth`), for the commands that take it for a segmentation network."""
    if config.pretraining:
        raise ConfigError(f"is {config.pretraining!r}: this is the config of {PRETRAINING_RUN}", key="pretraining",
                          source=config.where("pretraining"))


def load_config(
    path: str | os.PathLike,
    mode: str = "train",
    check_paths: bool = True,
    overrides: Optional[Mapping[str, Any]] = None,
    required: Optional[Required] = None,
    given_as: Optional[Mapping[str, str]] = None,
) -> RunConfig:
    """Reads and validates a YAML `.config` file.

    Args:
        path: the config file.
        mode: "train" (for `train.py`) or "eval" (for `evaluate.py`); decides which keys are
            required and which paths must exist.
        check_paths: check that the data and checkpoint paths exist (False to validate a config
            on a machine without the data, as the tests do for the shipped files).
        overrides: keys that replace the file's (the command lines' `--set key=value`, see
            `parse_overrides`), validated like the file's; an error about one of them names it
            as given on the command line.
        required: the keys that must be given, and who needs them, for a reader that needs
            fewer than the mode's (`Required`); default: the mode's.
        given_as: how overrides were typed where not as `--set KEY=VALUE` (a command's own flag:
            `{"test_data": "--test_data val.tfrecords"}`), for the errors that name them.

    Returns:
        The validated `RunConfig`.

    Raises:
        ConfigError: the file is unreadable or not a YAML mapping, or a key is unknown, missing,
            of the wrong type, out of range, or names a path that does not exist.
    """
    source = os.fspath(path)
    raw = read_yaml_file(source, "the config file")
    if not overrides:
        return config_from_dict(raw, source=source, mode=mode, check_paths=check_paths, required=required)
    return config_with_overrides(raw, overrides, source=source, mode=mode, check_paths=check_paths,
                                 required=required, given_as=given_as)


def check_not_moved(path: str | os.PathLike, overrides: Optional[Mapping[str, Any]] = None,
                    reading: Optional[str] = None) -> None:
    """Refuses a run's `config.yaml` read in a run folder that its `checkpoint` does not name:
    the run was moved or copied.

    Before, `ssma-train -c MOVED/config.yaml` resumed nothing: it trained from step 0 into the
    old folder's path (absolute in the file), or into the old run where it still existed; and
    `ssma-evaluate -c COPY/config.yaml` scored the weights of the folder copied from, which may
    have trained on since (helper 131).

    Args:
        path: the config file given with `-c`.
        overrides: the command's `--set` (a `checkpoint` there says where the weights are).
        reading: for a command that reads the weights (evaluation, prediction, export, pruning):
            how to read this folder's instead, `{folder}` standing for it; None for the commands
            that resume the run (`ssma-train`, `ssma-pretrain-depth`).

    Raises:
        ConfigError: naming both folders and how to use the one the file is in.
    """
    source = os.fspath(path)
    if os.path.basename(source) != RUN_CONFIG or "checkpoint" in (overrides or {}):
        return
    raw = read_yaml_file(source, "the config file")
    named = raw.get("checkpoint") if isinstance(raw, Mapping) else None
    folder = os.path.dirname(os.path.abspath(source))
    if not isinstance(named, str) or os.path.realpath(os.path.expanduser(named)) == os.path.realpath(folder):
        return
    # A run folder of this project: its state file and its `ckpt-N` checkpoints (a folder that
    # merely holds some checkpoint, the ImageNet initialisation, is not one); for the commands
    # that read weights, also a copy of a run's final files alone, the way a trained model is
    # shared (before: the weights of the folder it was copied from were read without a word).
    checkpoints = (os.path.isfile(os.path.join(folder, "checkpoint"))
                   and glob.glob(glob.escape(folder) + "/ckpt-*.index"))
    finals = reading is not None and any(os.path.isfile(os.path.join(folder, name))
                                         for name in (FINAL_MODEL, FINAL_WEIGHTS, FINAL_RECORD))
    if not (checkpoints or finals):
        return
    if reading is not None:
        raise ConfigError(
            f"this is the config of the run in {folder}, but its checkpoint names {named}: the run folder was "
            f"moved or copied, and the weights would be read from {named}; to read this folder's, "
            + reading.format(folder=folder), key="checkpoint", source=source)
    raise ConfigError(
        f"this is the config of the run in {folder}, but its checkpoint names {named}: the run folder was "
        f"moved or copied; to resume it where it is now, add --set checkpoint={folder} (log_dir follows); "
        "to start a new run from this config, give it a new checkpoint folder",
        key="checkpoint", source=source,
    )


def rederived_log_dir(raw: Mapping[str, Any], checkpoint: Any) -> bool:
    """Whether `raw`'s `log_dir` is the one derived from its `checkpoint` (`<checkpoint>/logs`,
    as a run's `config.yaml` before this check wrote it) and so follows a new `checkpoint`."""
    old, log_dir = raw.get("checkpoint"), raw.get("log_dir")
    return (isinstance(old, str) and isinstance(log_dir, str) and checkpoint != old
            and os.path.normpath(log_dir) == os.path.normpath(derived_log_dir(old)))


class Overrides(dict):
    """The `--set` items as a mapping of config keys to values (`parse_overrides`), which also
    keeps each value's text as typed after '=', for the errors that name the item.

    Before, an error rebuilt the item from the value, in Python's words: `--set
    'augmentation={on: true}'` was named "--set augmentation={True: True}" (helper 330). A copy
    made with `{**overrides}` is a plain mapping; its errors fall back to that form.
    """

    def __init__(self, values: Any = (), typed: Optional[Mapping[str, tuple[Any, str]]] = None):
        super().__init__(values)
        self.typed = dict(typed or {})  # key: (the value read from the text, the text)

    @property
    def given_as(self) -> dict[str, str]:
        """Each item as typed, `--set KEY=TEXT`, by key (as `load_config`'s `given_as`)."""
        # A value a caller replaced since (`overrides[key] = ...`) is not the text's any more.
        return {name: f"--set {name}={text}" for name, (value, text) in self.typed.items()
                if name in self and self[name] is value}


def parse_overrides(items: Sequence[str]) -> Overrides:
    """Reads `key=value` settings (the command lines' `--set`) into a mapping of config keys.

    A value is read as YAML, like a value in the file: `batch_size=4` is an integer,
    `learning_rate=1e-3` a number, `train_data=[a.tfrecords, b.tfrecords]` a list,
    `augmentation={flip: true}` a mapping, `intialize=` (nothing) unsets the key.

    Returns:
        The `Overrides`: a dict of the values, with the text each was typed as.

    Raises:
        ConfigError: an item without `=`, without a key, or with a value that is not YAML; a
            key given twice.
    """
    out = Overrides()
    for item in items:
        name, equals, text = item.partition("=")
        name = name.strip()
        if not equals or not name:
            raise ConfigError(f"expected KEY=VALUE, got {item!r}", source="--set")
        if name in out:
            raise ConfigError(f"given twice ({item!r})", key=name, source="--set")
        try:
            out[name] = yaml.load(text, Loader=_Loader) if text.strip() else None  # noqa: S506
        except yaml.reader.ReaderError as e:
            # A character YAML refuses (a pasted colour code). Before: PyYAML's two lines, "position 0"
            # of "<unicode string>" (helper 330).
            refused = refused_character(e, text, f" at character {e.position + 1} of the value")
            raise ConfigError(f"value {text!r}: {refused}", key=name, source="--set") from None
        except yaml.YAMLError as e:
            # Before: the problem alone, without what YAML was reading (`e.context`); and a
            # ValueError traceback for a number its constructor refused, `._` (helper 285).
            problem = yaml_problem(e, one_line="\n" not in text.strip())
            hint = "" if isinstance(e, _LoaderError) else quoting_hint(text, name)
            raise ConfigError(f"value {text!r} is not valid YAML: {problem}{hint}", key=name, source="--set") from e
        except ValueError as e:  # a backstop: a constructor's error that `_Loader` did not see
            raise ConfigError(f"value {text!r} is not valid YAML: {e}", key=name, source="--set") from e
        out.typed[name] = (out[name], text.strip())
    return out


def config_with_overrides(
    d: Any,
    overrides: Mapping[str, Any],
    source: str = "<dict>",
    mode: str = "train",
    check_paths: bool = True,
    required: Optional[Required] = None,
    given_as: Optional[Mapping[str, str]] = None,
) -> RunConfig:
    """`config_from_dict` on `d` with some keys replaced; errors about those keys say so.

    Args:
        d: the mapping of keys to values, as read from a file.
        overrides: keys replacing `d`'s (an alias replaces its key's other spelling too).
        source, mode, check_paths, required: as for `config_from_dict`.
        given_as: as for `load_config`.

    Raises:
        ConfigError: as for `config_from_dict`; when the problem is an overridden key, the
            error's source is `--set key=value` (after the file).
    """
    merged = (ConfigMapping(d, *(getattr(d, part, None) for part in ("lines", "inner_lines", "spellings")))
              if isinstance(d, Mapping) else d)
    # As typed, where `parse_overrides` kept the text (`Overrides`); else rebuilt from the value,
    # nothing after '=' (it unsets the key) shown as given, not as Python's None.
    typed = {**getattr(overrides, "given_as", {}), **(given_as or {})}
    given = {name: typed.get(name) or f"--set {name}=" + ("" if value is None else repr(value))
             for name, value in overrides.items()}
    from_file = {}  # a section's keys that the file gave, in a section a --set changed key by key
    if isinstance(merged, dict):
        overrides = dict(overrides)
        if "checkpoint" in overrides and "log_dir" not in overrides and rederived_log_dir(merged,
                                                                                         overrides["checkpoint"]):
            # Before: a run's config.yaml with another checkpoint kept the old run's logs folder.
            merged.pop("log_dir")
        for name in overrides:
            # `--set initialize=...` replaces the file's `intialize`, and the other way round.
            canonical = ALIASES.get(name, name)
            for other in (canonical, DECLARED[canonical].alias if canonical in DECLARED else None):
                if other is not None and other != name:
                    merged.pop(other, None)
        for name in _SECTIONS:
            # A section given as a mapping changes the file's section key by key (before: it
            # replaced it whole, so `--set 'adaptation={ema_every: 10}'` on an ABN config
            # trained SAC, the default method, without a word).
            # `true` is `{}` there, as in a file (before: it put back the defaults, so
            # `--set adaptation=true` on an ABN config trained SAC; helper 150).
            if overrides.get(name) is True and isinstance(merged.get(name), Mapping):
                overrides[name] = {}
            if isinstance(overrides.get(name), Mapping) and isinstance(merged.get(name), Mapping):
                from_file[name] = tuple(key for key in merged[name] if key not in overrides[name])
                overrides[name] = {**merged[name], **overrides[name]}
        merged.update(overrides)
    try:
        config = config_from_dict(merged, source=source, mode=mode, check_paths=check_paths, required=required,
                                  command_line=tuple(overrides), from_file=from_file)
    except ConfigError as error:
        if error.key is None or error.key not in overrides or error.line is not None:
            raise  # not about a --set (a line: the key of a section the --set changed, given by the file)
        raise ConfigError(error.detail, key=error.key, source=f"{source} with {given[error.key]}",
                          missing=error.missing) from None
    # Errors found later (an expert's weights that do not fit) name the --set too (`RunConfig.where`).
    overridden = tuple((ALIASES.get(name, name), text) for name, text in given.items())
    return dataclasses.replace(config, overridden=overridden)


def config_from_dict(
    d: Any, source: str = "<dict>", mode: str = "train", check_paths: bool = True,
    required: Optional[Required] = None, command_line: Sequence[str] = (),
    from_file: Optional[Mapping[str, Sequence[str]]] = None,
) -> RunConfig:
    """Validates a mapping of config keys (as read from a `.config` file) into a `RunConfig`.

    Args:
        d: the mapping of keys to values.
        source: where the mapping comes from, for error messages.
        mode: "train" or "eval".
        check_paths: check that the data and checkpoint paths exist.
        required: as for `load_config`.
        command_line: the keys whose values were given on the command line (`--set`): a path of
            theirs that is not there gets no hint about the config's folder.
        from_file: for a section of `command_line` that a `--set` changed key by key, the keys
            the file gave it: an error about one names its line in the file, not the `--set`.

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
    return _Reader(d, source, mode, check_paths, required, command_line, from_file).run()


class _Reader:
    """Reads one config mapping: every declared key by its kind, then the rules between keys."""

    def __init__(self, d: Mapping[Any, Any], source: str, mode: str, check_paths: bool,
                 required: Optional[Required] = None, command_line: Sequence[str] = (),
                 from_file: Optional[Mapping[str, Sequence[str]]] = None):
        self.d = d
        self.command_line = tuple(ALIASES.get(name, name) for name in command_line)  # `--set` keys
        self.from_file = dict(from_file or {})
        self.source = source
        self.mode = mode
        self.check_paths = check_paths
        self.required = required or Required(REQUIRED_KEYS[mode], mode)
        self.reads_fewer = required is not None  # a command that reads fewer keys than the mode's

    # --- Errors and lookups -----------------------------------------------------------------

    def error(self, name: Optional[str], message: str, missing: bool = False, inner: Any = None) -> ConfigError:
        """The error about key `name` (about its key `inner` when `name` is a section), naming the
        line in the file of `inner`, or else of `name`; no line for a key the command line gave
        (the caller names that)."""
        line = None
        # A key of a section that a --set changed key by key is the file's, unless the --set gave it.
        # Either spelling: `--set intialize=...` is kept as `initialize` (before: its error named
        # the file's line of `intialize`, whose value the --set had replaced).
        in_file = (not self.given(name)) or inner is not None and inner in self.from_file.get(name, ())
        if isinstance(self.d, ConfigMapping) and in_file:
            line = self.d.inner_line_of(name, inner) if inner is not None else None
            line = line or self.d.line_of(name, ALIASES)
        return ConfigError(message, key=name, source=self.source, missing=missing, line=line)

    def given(self, name: Optional[str]) -> bool:
        """Whether a `--set` gave key `name`, in either spelling."""
        return name is not None and ALIASES.get(name, name) in self.command_line

    def located(self, *names: str) -> str:
        """Where a warning about keys `names` points: the file with the `--set` that gave one of
        them, else with the line of the first one it has (before: the file alone, also when the
        value came from `--set`)."""
        for name in names:
            if self.given(name):
                return f"{self.source} with --set {name}"
        if isinstance(self.d, ConfigMapping):
            for name in names:
                line = self.d.line_of(name, ALIASES)
                if line is not None:
                    return f"{self.source}, line {line}"
        return self.source

    def type_error(self, name: str, expected: str, value: Any) -> ConfigError:
        return self.error(name, f"expected {expected}, got {value!r} ({type(value).__name__})")

    def check_keys(self) -> None:
        spellings = getattr(self.d, "spellings", {})
        lines = self.d if isinstance(self.d, ConfigMapping) else ConfigMapping({})
        for name, value in self.d.items():
            # Before: "key 'True': keys must be strings", without a line, for `on:` in the file.
            if not isinstance(name, str):
                wrong, key, line = name, spellings.get(name, str(name)), lines.lines.get(name)
            elif name in _SECTIONS and isinstance(value, Mapping) and any(not isinstance(k, str) for k in value):
                wrong = next(k for k in value if not isinstance(k, str))
                if self.given(name) and wrong not in self.from_file.get(name, ()):
                    # A key of the --set's mapping (before: blamed on the file, no --set named).
                    raise ConfigError(f"YAML reads one of its keys as {wrong!r} ({type(wrong).__name__}), not as a "
                                      "name; no key is spelled so (configs/README.md lists them)", key=name,
                                      source=self.source)
                key, line = f"{name}: {spellings.get(wrong, str(wrong))}", lines.inner_lines.get((name, wrong))
            else:
                continue
            raise ConfigError(f"YAML reads this key as {wrong!r} ({type(wrong).__name__}), not as a name; no key "
                              "is spelled so (configs/README.md lists them)", key=key, source=self.source, line=line)
        unknown = [k for k in self.d if k not in KNOWN_KEYS]
        if unknown:
            name = unknown[0]
            section, dot, inner = name.partition(".")
            if dot and section in _SECTIONS:
                # `--set semi_supervised.method=classmix` (before: "did you mean 'semi_supervised'?").
                raise self.error(name, f"unknown key: a section's keys go inside it, '{section}: {{{inner}: "
                                       f"VALUE}}' in a file, --set '{section}={{{inner}: VALUE}}' on the command "
                                       "line (which changes that key of the file's section, keeping the others)")
            homes = _sections_holding(name)
            if homes:
                # `flip: 1` at the top (before: "did you mean 'eval_flip'?", another setting; helper 186).
                where = " or ".join(f"'{home}'" for home in homes)
                inside = "one of them" if len(homes) > 1 else "it"
                raise self.error(name, f"unknown key: a key of the {where} section{'s' * (len(homes) > 1)}, which "
                                       f"goes inside {inside}, '{homes[0]}: {{{name}: VALUE}}' in a file, --set "
                                       f"'{homes[0]}={{{name}: VALUE}}' on the command line")
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
        for name in _SECTIONS:
            # `semi_supervised:` with nothing after it reads as null, which every other key takes
            # as "not given": the run would train without the method it names, without a word
            # (`augmentation:` with its keys commented out: without augmentation). `--set NAME=`
            # unsets it on purpose.
            if (name in self.d and self.raw(name) is None and name not in self.command_line
                    and (name in _SWITCHED_SECTIONS or self.mode == "train")):
                raise self.error(name, f"is empty; write '{name}: {{}}' for its defaults, or "
                                       f"'{name}: false' to train without it")
        if self.mode == "eval" and self.raw("pretraining") is not None:
            # Before: a depth network scored as a 2-class segmenter ("mIoU 45.2").
            raise self.error("pretraining", f"is {self.raw('pretraining')!r}: this is the config of {PRETRAINING_RUN}")
        for name in self.required.keys:
            if self.raw(name) is None:
                if name in self.d:
                    raise self.error(name, f"is empty; {self.required.by} needs a value", missing=True)
                raise self.error(name, f"is missing; {self.required.by} needs it", missing=True)
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
        if isinstance(self.d, ConfigMapping):
            values["lines"] = tuple((ALIASES.get(name, name), line) for name, line in self.d.lines.items()
                                    if ALIASES.get(name, name) in DECLARED and not self.given(name))
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
        def conflict(name: str, detail: str) -> ConfigError:
            if "model" in self.command_line and name not in self.command_line:
                # The command line changed the model: the file's key was not the slip (before:
                # the error named the file's line of that key).
                line = self.d.line_of(name) if isinstance(self.d, ConfigMapping) else None
                said = f"{self.source}{f', line {line}' if line else ''}"
                return self.error("model", f"the file's key '{name}' ({said}) {detail}; unset it with --set {name}=")
            return self.error(name, detail)

        if given["model"] == SSMA:
            if self.has("input_modality"):
                raise conflict("input_modality", "is for AdapNet_pp; SSMA reads both modalities")
            return
        for name in ("checkpoint1", "checkpoint2", "checkpoints", "modalities"):
            if self.has(name):
                if name == "modalities":
                    raise conflict(name, f"is for SSMA; {ADAPNET_PP} reads one modality ('input_modality')")
                raise conflict(name, f"is for SSMA experts; {ADAPNET_PP} starts from 'intialize'")
        if self.has("fusion"):
            raise conflict("fusion", f"is for model: SSMA; {ADAPNET_PP} fuses nothing")

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
            self.relate_modalities(values)
            if (values["checkpoint1"] is None) != (values["checkpoint2"] is None):
                missing = "checkpoint2" if values["checkpoint2"] is None else "checkpoint1"
                raise self.error(
                    missing, "SSMA experts start from checkpoint1 and checkpoint2 together"
                )
            if values["initialize"] is not None and values["checkpoints"] is not None:
                raise self.error(
                    self.spelling("initialize"),
                    "give either a whole SSMA checkpoint to start from or the experts' "
                    "'checkpoints', not both",
                )
            if values["initialize"] is not None and values["checkpoint1"] is not None:
                raise self.error(
                    self.spelling("initialize"),
                    "give either a whole SSMA checkpoint to start from or the two experts "
                    "(checkpoint1, checkpoint2), not both",
                )
            given_experts = "checkpoints" if values["checkpoints"] is not None else "checkpoint1"
            if values["fusion"] in EXPERTLESS_FUSIONS and values[given_experts] is not None:
                raise self.error(
                    self.spelling(given_experts), f"fusion: {values['fusion']} is one network on the stacked "
                    f"modalities and has no experts to start from {given_experts}",
                )
        else:
            values["fusion"] = None
            self.relate_interpolations(values, int(values["input_modality"].removeprefix("modality")))
        if values["backbone_weights"] is not None and values["backbone"] == ADAPNET_PP_BACKBONE:
            raise self.error("backbone_weights", "is for backbone: mobilenet_v2; AdapNet++ starts from "
                             "'intialize' (its TF1 ImageNet checkpoint)")
        if values["backbone"] != ADAPNET_PP_BACKBONE and values["fusion"] not in (None, "ssma"):
            raise self.error("backbone", f"the fusion baselines are built on AdapNet++; fusion: "
                             f"{values['fusion']} takes backbone: adapnet_pp")
        if values["decoder_filters"] != DECODER_FILTERS and values["fusion"] not in (None, "ssma"):
            raise self.error("decoder_filters", f"narrows the AdapNet++ and SSMA decoders; the fusion baselines "
                             f"keep the released {DECODER_FILTERS} (fusion: {values['fusion']})")
        if (self.mode == "train" and values["model"] == SSMA and given.get("aux_heads")
                and values["fusion"] not in (None,) + DECODER_FUSIONS):
            # Before: accepted, and the model trained without them (aux_loss_weights read by nothing).
            raise self.error("aux_heads", f"fusion: {values['fusion']} combines its experts' outputs and has no "
                             f"decoder of its own to put auxiliary heads on (those of {', '.join(DECODER_FUSIONS)} "
                             "have); leave aux_heads out")
        weights = given.get("aux_loss_weights")
        if (self.mode == "train" and values["model"] == SSMA and not values["aux_heads"] and weights is not None
                and tuple(values["aux_loss_weights"]) != tuple(DEFAULTS["aux_loss_weights"])
                and any(values["aux_loss_weights"])):
            # Before: read by nothing, without a word (SSMA builds no auxiliary heads by default). The
            # default itself passes: every SSMA run's config.yaml spells it out. A warning, not an
            # error: a run's config.yaml of an older version holds such weights and must resume.
            where = ("aux_heads: true" if values["fusion"] in (None,) + DECODER_FUSIONS
                     else f"a fusion with a decoder ({', '.join(DECODER_FUSIONS)}) and aux_heads: true")
            warnings.warn(f"{self.located('aux_loss_weights')}: aux_loss_weights weighs the auxiliary heads' losses, "
                          f"and this SSMA has none: they take {where}; the weights are not used",
                          ConfigWarning, stacklevel=4)
        if values["easpp_rates"] != EASPP_RATES and values["fusion"] not in (None, "ssma"):
            raise self.error("easpp_rates", f"sets the AdapNet++ and SSMA eASPP; the fusion baselines keep the "
                             f"released {list(EASPP_RATES)} (fusion: {values['fusion']})")
        if values["finetune_from"] is not None:
            for other in ("initialize", "checkpoint1", "checkpoints"):
                if values[other] is not None:
                    raise self.error(
                        "finetune_from",
                        f"starts the whole model; give it or '{self.spelling(other)}', not both",
                    )
        if (self.mode == "train" and values["semi_supervised"] is not None and values["unlabeled_data"] is None
                and values["pretraining"] is None  # depth pretraining reads only its depth_encoding
                # Unset by a command that reads fewer keys, none of these records: ssma-select-labels (helper 289).
                and not (self.reads_fewer and "unlabeled_data" in self.command_line)):
            raise self.error(
                "unlabeled_data",
                "is missing; semi_supervised training needs records of images to use without labels",
                missing=True,
            )
        semi = values["semi_supervised"]
        if (self.mode == "train" and semi is not None and values["pretraining"] is None
                and values["batch_size"] is not None and values["batch_size"] < 2):  # a reader may not need it
            # Image k is pasted onto image k - 1 of the batch: alone, onto itself (before: the
            # "mixed" batch was the input, without a word).
            raise self.error("batch_size", f"is {values['batch_size']}, but semi_supervised mixes each image with "
                             "another of its batch: give 2 or more")
        if (self.mode == "train" and semi is not None and values["model"] != SSMA
                and values["input_modality"] not in (None, "modality1")
                and (semi.jitter > 0 and semi.jitter_probability > 0
                     or max(semi.blur_sigma) > 0 and semi.blur_probability > 0)):
            # Before: jittered and blurred modality 1, which this expert does not read, silently.
            warnings.warn(
                f"{self.located('semi_supervised', 'input_modality')}: semi_supervised's colour jitter and blur go "
                f"to the mixed modality 1 (the colour image, as released), but this {ADAPNET_PP} reads "
                f"{values['input_modality']}: its mixed images get neither; set semi_supervised.jitter: 0 and "
                "blur_probability: 0 to say so",
                ConfigWarning, stacklevel=4)
        if self.mode == "train" and (values["pretraining"] is not None
                                     or semi is not None and semi.method == "depthmix"):
            given = values["modality_interpolations"]
            name = "modality_interpolations" if given else "modality2_interpolation"
            if (given[0] if given else values["modality2_interpolation"]) == "bilinear":
                # Helper 117: a near (red) jet pixel half blended with missing (black) depth is
                # the far-red end of the map, read as the nearest surface: pasted over everything.
                what = "depth pretraining" if values["pretraining"] is not None else "DepthMix"
                raise self.error(name, f"resamples modality 2 bilinearly, but {what} reads depth from its "
                                 "colouring: blends of missing (black) depth with a colour decode as surfaces that "
                                 "are not there (a half-blended near red as the nearest); give nearest")
        if self.mode == "train" and values["adaptation"] is not None:
            if values["target_data"] is None:
                raise self.error(
                    "target_data", "is missing; adaptation needs records of the target domain's images",
                    missing=True)
            if values["semi_supervised"] is not None:
                raise self.error("adaptation", "and semi_supervised cannot be combined; give one")
            if values["recalibrate_batch_norm"]:
                raise self.error(
                    "recalibrate_batch_norm",
                    "cannot be used with adaptation: it would recompute the batch-norm statistics on "
                    "the source images, undoing the target-aware ones that ABN builds and SAC keeps")
            adapt = values["adaptation"]
            unused = [k for k in _SCHEDULE_KEYS if k in given and given[k] != DEFAULTS[k]]
            if unused and adapt.method == "sac":
                # SAC has its own optimizer settings (the released ones); the top-level keys
                # would be read by nothing, though a user changing them means them (the
                # released configs' `power: 0.9` is the default, not a choice).
                named = ", ".join(f"'{self.spelling(k)}'" for k in unused)
                warnings.warn(
                    f"{self.located(*unused)}: {'key' if len(unused) == 1 else 'keys'} {named} not used by adaptation "
                    f"method sac, which trains with its own optimizer ({adapt.optimizer}) at the constant "
                    f"adaptation.learning_rate ({adapt.learning_rate:g}) with adaptation.weight_decay "
                    f"({adapt.weight_decay:g}); change those in the adaptation section",
                    ConfigWarning, stacklevel=4)
            frozen = experts_frozen(values["model"], values["freeze_experts"], values["fusion"])
            if adapt.method == "sac" and given.get("encoder_lr_multiplier", 1.0) != 1.0 and not frozen:
                # Before: read by nothing, and the log said the encoders trained at the lower rate.
                warnings.warn(
                    f"{self.located('encoder_lr_multiplier')}: key '{self.spelling('encoder_lr_multiplier')}' not "
                    f"used by adaptation method sac, whose optimizer ({adapt.optimizer}) trains every variable at "
                    f"adaptation.learning_rate ({adapt.learning_rate:g})",
                    ConfigWarning, stacklevel=4)
            if frozen:
                # ABN: frozen batch norms keep their source statistics, only the fusion's and the
                # decoder's see the target. SAC (helper 116): the experts' kernels, scales and
                # offsets stay at the source's (0 of 678 encoder variables trained). Both were
                # without a word before.
                said = "" if "freeze_experts" in given else ", SSMA's default"
                does, outcome = {
                    "abn": ("runs target batches through the batch norms",
                            "encoders keep the source's statistics and only the fusion and decoder see the target"),
                    "sac": ("trains every weight and batch-norm scale and offset",
                            "encoders do not adapt, only the fusion and decoder"),
                }[adapt.method]
                warnings.warn(
                    f"{self.located('adaptation', 'freeze_experts')}: adaptation method {adapt.method} {does}, but "
                    f"the experts are frozen (freeze_experts: true{said}): their {outcome}; set freeze_experts: "
                    "false to adapt them",
                    ConfigWarning, stacklevel=4)
            if adapt.flip_probability > 0.5:
                # The group's flip and each view's own cancel: more is fewer (1.0: never flipped).
                net = 2 * adapt.flip_probability * (1 - adapt.flip_probability)
                warnings.warn(
                    f"{self.located('adaptation')}: adaptation.flip_probability {adapt.flip_probability:g} flips each "
                    f"target group and each of its views with that chance, and two flips cancel: a view is flipped "
                    f"against its image with chance 2p(1 - p) = {net:.2g}, the most (0.5) at p = 0.5",
                    ConfigWarning, stacklevel=4)
            ignored = keys_abn_ignores(adapt) if adapt.method == "abn" else []
            if ignored:
                # Before: read by nothing, without a word (the other direction was warned of).
                warnings.warn(
                    f"{self.located('adaptation')}: adaptation {'key' if len(ignored) == 1 else 'keys'} "
                    f"{', '.join(repr(k) for k in ignored)} not used by method abn, which only runs target "
                    "batches through the batch norms (of the section it reads flip_probability) "
                    "and trains with the top-level optimizer settings",
                    ConfigWarning, stacklevel=4)
            if (adapt.method == "sac" and adapt.photometric == "modality1" and values["model"] != SSMA
                    and values["input_modality"] not in (None, "modality1")):
                # Before: the noise went to modality 1, which this expert does not read, silently.
                warnings.warn(
                    f"{self.located('adaptation', 'input_modality')}: adaptation.photometric is modality1, but this "
                    f"{ADAPNET_PP} reads {values['input_modality']}: its student's views get no photometric noise; set "
                    "adaptation.photometric: all to put the noise on the image it reads (or none to say so)",
                    ConfigWarning, stacklevel=4)
        if self.mode == "train" and values["log_dir"] is None and values["checkpoint"] is not None:
            # (A reader that does not need the checkpoint, `required`, may read a config without it.)
            values["log_dir"] = derived_log_dir(values["checkpoint"])
        values["dataset"] = self.relate_dataset(
            values["dataset"], values["palette"], values["num_classes"]
        )

    def relate_modalities(self, values: dict[str, Any]) -> None:
        """SSMA over N modalities: `checkpoints` and `modality_interpolations` must count N."""
        n = 2 if values["modalities"] is None else len(values["modalities"])
        if values["checkpoints"] is not None:
            for alias in ("checkpoint1", "checkpoint2"):
                if values[alias] is not None:
                    raise self.error(alias, "give either 'checkpoints' or checkpoint1/checkpoint2, not both")
            if len(values["checkpoints"]) != n:
                said = ("; give one per expert, in the order of 'modalities'" if values["modalities"] is not None
                        # Without the key the count is the default's: say which key sets it.
                        else f" (no 'modalities' key: 2, the default); give one per expert, or list the "
                        f"{len(values['checkpoints'])} modalities under 'modalities'")
                raise self.error(
                    "checkpoints",
                    f"lists {len(values['checkpoints'])} checkpoints but the model fuses {n} modalities{said}",
                )
        if n != 2 and values["checkpoint1"] is not None:
            raise self.error(
                "checkpoint1",
                f"checkpoint1/checkpoint2 start two experts, but the model fuses {n} modalities; "
                "use 'checkpoints' with one per expert",
            )
        self.relate_interpolations(values, n)

    def relate_interpolations(self, values: dict[str, Any], n: int) -> None:
        """`modality_interpolations` gives one entry per modality after the first of N."""
        given = values["modality_interpolations"]
        if given is None:
            return
        single = values["modality2_interpolation"]
        if single != DEFAULTS["modality2_interpolation"] and given and single != given[0]:
            # Before: the list won without a word. A warning, not an error: runs' config.yaml files
            # hold both keys.
            warnings.warn(f"{self.located('modality2_interpolation', 'modality_interpolations')}: "
                          f"modality2_interpolation {single} is not used: modality_interpolations gives modality "
                          f"2's ({given[0]})",
                          ConfigWarning, stacklevel=5)
        if n < 2:
            raise self.error(
                "modality_interpolations", "has nothing to resample: the model reads modality 1 only"
            )
        # An AdapNet++ expert of modality k may share a longer list with the fusion configs.
        short = len(given) < n - 1 if values["model"] != SSMA else len(given) != n - 1
        if short:
            raise self.error(
                "modality_interpolations",
                f"has {len(given)} entries but modalities 2..{n} need {n - 1}",
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
            # The likeliest slip with one's own classes: the palette key left out (before: the
            # shipped names alone, nothing about `palette`; helper 334).
            own = ("; for a dataset of your own, name the file that describes it with palette: FILE "
                   "(docs/your_dataset.md, step 4)" if palette is None and str(e).startswith("unknown dataset") else "")
            raise self.error("dataset", f"{e}{own}") from e
        if info.num_classes != num_classes:
            if "dataset" in self.command_line and "num_classes" not in self.command_line:
                # The command line changed the dataset: the file's num_classes was not the slip.
                line = self.d.line_of("num_classes") if isinstance(self.d, ConfigMapping) else None
                said = f" ({self.source}{f', line {line}' if line else ''})"
                raise self.error("dataset", f"dataset {info.name} has {info.num_classes} classes (void included), "
                                            f"but num_classes is {num_classes}{said}")
            raise self.error(
                "num_classes",
                f"dataset {info.name} has {info.num_classes} classes (void included), "
                f"but num_classes is {num_classes}",
            )
        return info.name

    def warn_about(self, config: RunConfig) -> None:
        # SAC trains at its own constant rate (adaptation.learning_rate): the schedule is not read.
        schedule = config.mode == "train" and not (config.adaptation is not None and config.adaptation.method == "sac")
        if (
            schedule
            and config.learning_rate is not None
            and config.end_learning_rate > config.learning_rate
        ):
            warnings.warn(
                f"{self.located('end_learning_rate', 'learning_rate')}: end_learning_rate "
                f"{config.end_learning_rate:g} is above learning_rate {config.learning_rate:g}, so the poly "
                "schedule makes the learning rate grow (TF1 semantics); set end_learning_rate lower if that is "
                "not meant",
                ConfigWarning,
                stacklevel=4,
            )
        elif schedule and config.learning_rate is not None \
                and config.end_learning_rate == config.learning_rate and config.learning_rate > 0:
            # Helper 211: a config whose rate equalled the floor trained at one rate without a word.
            warnings.warn(
                f"{self.located('end_learning_rate', 'learning_rate')}: end_learning_rate equals learning_rate "
                f"({config.learning_rate:g}), so the poly schedule stays at that rate and never decays; set "
                "end_learning_rate lower if a decay is meant",
                ConfigWarning,
                stacklevel=4,
            )
        # Stacking and FuseNet train their encoders whatever freeze_experts says, at this rate.
        if config.is_fusion and config.fusion in EXPERTLESS_FUSIONS and config.encoder_lr_multiplier != 1.0:
            # A stage-2 config reused for the baseline (helper 193: 204 of stacking's 228 variables at
            # 0.1x, without a word, where its one network trains like an AdapNet++).
            warnings.warn(
                f"{self.located('encoder_lr_multiplier')}: encoder_lr_multiplier {config.encoder_lr_multiplier:g} "
                f"scales the encoder of fusion: {config.fusion}, which has no experts: its one network's "
                "encoder learns that much slower than its decoder (the paper trains it like an AdapNet++: 1)",
                ConfigWarning,
                stacklevel=4,
            )
        elif config.experts_frozen and config.encoder_lr_multiplier != 1.0:
            warnings.warn(
                f"{self.located('encoder_lr_multiplier', 'freeze_experts')}: encoder_lr_multiplier has no effect "
                "while freeze_experts is true",
                ConfigWarning,
                stacklevel=4,
            )
        if (not config.is_fusion and config.record_modalities == 1 and config.pretraining is None
                and config.semi_supervised is None
                and config.modality2_interpolation != DEFAULTS["modality2_interpolation"]):
            # Before: read by nothing without a word (an RGB expert resizes its images bilinearly).
            warnings.warn(
                f"{self.located('modality2_interpolation')}: modality2_interpolation {config.modality2_interpolation} "
                f"is not used: this {ADAPNET_PP} reads {config.input_modality or 'modality1'} only, which is resized "
                "bilinearly; it is for modality 2 and on",
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

    def read_ints(self, name: str, spec: Key, value: Any) -> tuple[int, ...]:
        if not isinstance(value, (list, tuple)) or not value:
            raise self.type_error(name, "a list of integers", value)
        if spec.length is not None and len(value) != spec.length:
            raise self.error(name, f"expected {spec.length} integers, got {len(value)}")
        return tuple(self.read_int(name, spec, v) for v in value)

    def read_bool(self, name: str, spec: Key, value: Any) -> bool:
        if not isinstance(value, bool):
            raise self.type_error(name, "true or false", value)
        return value

    def read_str(self, name: str, spec: Key, value: Any) -> str:
        if isinstance(value, bool):
            # YAML 1.1 reads `dataset: no` (yes, on, off) as a bool. Before: "expected a string, got
            # False (bool)" alone, which did not say why (helper 285).
            raise self.error(name, f"expected a string, got {value!r} (bool): YAML reads yes, no, on and off as "
                                   "true or false; quote the word")
        if not isinstance(value, str):
            raise self.type_error(name, "a string", value)
        return value.strip()

    def read_choice(self, name: str, spec: Key, value: Any) -> str:
        unset = value is False or isinstance(value, str) and value.strip().lower() in _NONE_WORDS
        canonical = ALIASES.get(name, name)
        # Optional: unset by default, and needed by no command (`model` has no default either, and
        # "leave the key out" was followed by "is missing"; helper 295).
        optional = DEFAULTS.get(canonical, "") is None and not any(
            canonical in keys for keys in (*REQUIRED_KEYS.values(), self.required.keys))
        if spec.kind == "choice" and unset and optional:
            # An optional choice turned off in words (`mixed_precision: none`, as the trainer's
            # messages print it). Before: "expected a string, got False (bool)", or the choices
            # alone, without how to turn it off (helper 285).
            left_out = _LEFT_OUT.get(name, "for none")
            raise self.error(name, f"must be one of {', '.join(spec.choices)}, got {value!r}; {left_out}, leave the "
                                   f"key out (or --set {name}=)")
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

    def read_section(self, name: str, cls: type, value: Any, off: Any = None) -> Any:
        """A config section (`ssma_tf.config.sections`): a mapping, `true` (its defaults) or
        `false` (`off`)."""
        if value is False:
            return off
        if value is True:
            value = {}
        if not isinstance(value, Mapping):
            raise self.type_error(name, f"a mapping of {cls.NAME} settings, or true/false", value)
        declared = {key for key, _, _ in declared_keys(cls)}
        outside = next((key for key in value if key not in declared and key in KNOWN_KEYS), None)
        if outside is not None:
            # `adaptation: {target_data: x}` (before: "did you mean 'target_weight'?"; helper 186).
            raise self.error(name, f"unknown {cls.NAME} key {outside!r}: a key of the config itself, which goes "
                                   f"outside the section, on a line of its own ('{outside}: VALUE')", inner=outside)
        try:
            # A private copy: the config must not change when the caller's mapping does.
            return cls.from_dict(copy.deepcopy(dict(value)), source=self.source)
        except ValueError as e:
            # The section names the source itself; say it once. A SectionError names its key.
            raise self.error(name, str(e).removeprefix(f"{self.source}: "), inner=getattr(e, "key", None)) from e

    def read_augmentation(self, name: str, spec: Key, value: Any) -> AugmentationConfig:
        return self.read_section(name, AugmentationConfig, value, AugmentationConfig.disabled())

    def read_semi_supervised(self, name: str, spec: Key, value: Any) -> Optional[SemiSupervisedConfig]:
        return self.read_section(name, SemiSupervisedConfig, value)

    def read_adaptation(self, name: str, spec: Key, value: Any) -> Optional[AdaptationConfig]:
        return self.read_section(name, AdaptationConfig, value)

    def read_names(self, name: str, spec: Key, value: Any) -> tuple[str, ...]:
        """A list of at least two distinct names (the modalities of a fusion model)."""
        if not isinstance(value, (list, tuple)):
            raise self.type_error(name, "a list of modality names", value)
        names = tuple(self.read_str(name, spec, v) for v in value)
        if len(names) < 2 or len(names) > MAX_MODALITIES:
            raise self.error(name, f"fusion needs 2..{MAX_MODALITIES} modalities, got {len(names)}")
        if not all(names) or len(set(names)) != len(names):
            raise self.error(name, f"names must be distinct and not empty, got {list(names)}")
        return names

    def read_choices(self, name: str, spec: Key, value: Any) -> tuple[str, ...]:
        """A list of items, each one of `spec.choices`."""
        if not isinstance(value, (list, tuple)) or not value:
            raise self.type_error(name, f"a list of {', '.join(spec.choices)}", value)
        return tuple(self.read_choice(name, spec, v) for v in value)

    def read_checkpoints(self, name: str, spec: Key, value: Any) -> tuple[str, ...]:
        """A list of checkpoints to read, one per expert."""
        if not isinstance(value, (list, tuple)) or not value:
            raise self.type_error(name, "a list of checkpoints, one per modality", value)
        return tuple(self.read_checkpoint(name, spec, v) for v in value)

    def checks(self, spec: Key) -> bool:
        """Whether a path of this key must exist in this run."""
        return self.check_paths and self.mode in spec.check_in

    def read_path(self, name: str, spec: Key, value: Any) -> str:
        path = self.read_str(name, spec, value)
        return os.path.abspath(os.path.expanduser(path))

    def read_file(self, name: str, spec: Key, value: Any) -> str:
        path = self.read_path(name, spec, value)
        if self.checks(spec) and not os.path.isfile(path):
            raise self.error(name, f"no file at {path}{self.relative_hint(name, str(value).strip(), os.path.isfile)}")
        return path

    def read_folder(self, name: str, spec: Key, value: Any) -> str:
        """A folder to write in (`log_dir`): one under a file, or one the user may not write in, is
        named here (before: TensorFlow's `is not a directory [Op:CreateSummaryFileWriter]`
        traceback once the model was built)."""
        path = self.read_path(name, spec, value)
        if self.checks(spec):
            try:
                check_output(path, what="folder", directory=True, overwrite=None)
            except OutputPathError as error:
                raise self.error(name, f"cannot be written: {error.detail}") from None
        return path

    def read_checkpoint(self, name: str, spec: Key, value: Any) -> str:
        """A checkpoint to read: its prefix (a pasted `.index`/`.data-…` part is cut off)."""
        path = checkpoint_prefix(self.read_path(name, spec, value))
        if self.checks(spec) and not _checkpoint_exists(path):
            hint = self.relative_hint(name, str(value).strip(), lambda p: _checkpoint_exists(checkpoint_prefix(p)))
            if not hint and os.path.basename(path).lower() == IMAGENET_PREFIX.lower():  # the released configs: Adapnet_
                # The `intialize` of every released training config. Its name has been spelled both
                # ways: a copy of the other spelling is named (before: sent to download it again,
                # helper 321).
                folder = os.path.dirname(path)
                other = [name[:-len(".index")] for name in (os.listdir(folder) if os.path.isdir(folder) else ())
                         if name.lower() == IMAGENET_PREFIX.lower() + ".index"]
                hint = (f"; {os.path.join(folder, other[0])} is there: the config spells it "
                        f"{os.path.basename(path)}, give {other[0]}" if other else
                        f"; it is the released ImageNet initialisation: download {IMAGENET_PREFIX}.index and "
                        f".data-00000-of-00001 from {IMAGENET_URL} into {folder}")
            if path.endswith(WEIGHTS_SUFFIXES):
                # A weights file's name: that it is missing is all there is to say (before: that a
                # 'final.weights.h5.index' was expected beside it).
                raise self.error(name, f"no weights file at {path}{hint}")
            raise self.error(
                name,
                f"no checkpoint at {path} (expected a TF checkpoint prefix with a "
                f"'{os.path.basename(path)}.index' beside it, a checkpoint directory, "
                f"or a {'/'.join(WEIGHTS_SUFFIXES)} file){hint}",
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
        if self.checks(spec):
            try:  # a file on the way to it, or a folder the user may not write in
                check_output(path, what="checkpoint directory", directory=True, overwrite=None)
            except OutputPathError as error:
                raise self.error(name, f"cannot be written: {error.detail}") from None
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
            if self.checks(spec) and not matched_files(pattern):  # "data [v2]/x" is a file
                if os.path.isdir(pattern):
                    raise self.error(name, f"{pattern} is a folder; give its files, e.g. "
                                           f"{os.path.join(pattern, '*.tfrecords')}")
                raise self.error(name, f"no file matches {pattern}{self.missing_hint(name, item.strip(), pattern)}")
            patterns.append(pattern)
        return tuple(patterns)

    def missing_hint(self, name: str, given: str, pattern: str) -> str:
        """Where the files of a pattern that matches none may be: its shards (`ssma-convert
        --shards` names them `NAME-00000-of-0000N`), or beside the config file."""
        root, extension = os.path.splitext(pattern)
        shards = sorted(glob.glob(f"{glob.escape(root)}-*-of-*{glob.escape(extension)}"))
        if shards and not glob.has_magic(pattern):
            return (f"; its shards are there ({os.path.basename(shards[0])}, ...): give "
                    f"{root}-*-of-*{extension}")
        return self.relative_hint(name, given, lambda path: bool(glob.glob(path)))

    def relative_hint(self, name: str, given: str, exists: Callable[[str], bool]) -> str:
        """For a relative path of the file that is not there but is beside the config file, or
        beside its folder (the shipped configs/ name paths from the repository's root), run from
        elsewhere: relative paths are read from the current folder, as the released tools read
        them (not for a path given on the command line, which the config's folder is not)."""
        folder = os.path.dirname(os.path.abspath(self.source))
        if os.path.isabs(os.path.expanduser(given)) or not os.path.isfile(self.source) \
                or ALIASES.get(name, name) in self.command_line:
            return ""
        # The folder above too (before: `cd configs && python ../train.py -c x.config` got no
        # hint; helper 321).
        places = ((folder, "the config's folder"), (os.path.dirname(folder), "the folder above the config's"))
        for place, what in places:
            if place != os.getcwd() and exists(os.path.normpath(os.path.join(place, given))):
                return (f" (relative paths are read from the current folder, {os.getcwd()}; this one is in {what}: "
                        f"run from {place}, or give the path from here)")
        return ""


def _checkpoint_exists(path: str) -> bool:
    """Whether `path` is a TF checkpoint prefix, a checkpoint directory or a weights file."""
    if os.path.isdir(path):
        return True
    if os.path.isfile(path) and path.endswith(WEIGHTS_SUFFIXES):
        return True
    return os.path.isfile(path + ".index")
