"""Self-describing training runs: the resolved config a run writes, and reading it back.

A training run writes `config.yaml` (`RUN_CONFIG`) into its checkpoint folder: every key with the
value the run used, paths absolute. With it the folder alone is enough to evaluate, predict or
export: `ssma-evaluate RUN`, `ssma-predict RUN ...`. No TensorFlow here, as in the rest of
`ssma_tf.config`.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, Mapping, Optional, Union

import yaml

from ssma_tf.config.keys import EVAL
from ssma_tf.config.reader import Required, config_with_overrides, rederived_log_dir
from ssma_tf.config.yaml_reader import ConfigError, read_yaml_file
from ssma_tf.config.run import DECLARED, RunConfig, derived_log_dir
from ssma_tf.constants import (
    EXPORT_METADATA, FINAL_MODEL, FINAL_RECORD, FINAL_WEIGHTS, PRUNE_REPORT, RUN_CONFIG,
)
from ssma_tf.files import atomic_write, checkpoint_prefix

PathLike = Union[str, "os.PathLike[str]"]

_HEADER = (
    "# The resolved config of this training run, written by ssma-train: every key with the value\n"
    "# the run used. `ssma-evaluate`, `ssma-predict` and `ssma-export` read it when given this\n"
    "# folder; `ssma-train -c` on this file resumes the run.\n"
)

_DEPTH_HEADER = (
    "# The resolved config of this depth-pretraining run, written by ssma-pretrain-depth: every key\n"
    "# with the value the run used. `ssma-pretrain-depth -c` on this file resumes the run; a\n"
    "# segmentation run starts from its weights with `finetune_from` (the other commands refuse it).\n"
)


def write_run_config(config: RunConfig, folder: PathLike, header: Optional[str] = None) -> str:
    """Writes `config` as `<folder>/config.yaml` (atomically), in a form `load_config` reads back.

    Args:
        config: the config.
        folder: the run's folder.
        header: the comment at the top (default: a training or depth-pretraining run's).

    Returns:
        The path written.
    """
    values = config.to_dict()
    if config.checkpoint is not None and values.get("log_dir") == derived_log_dir(config.checkpoint):
        del values["log_dir"]  # derived: it follows the run when the folder moves
    return _write_config_file(os.path.join(os.fspath(folder), RUN_CONFIG),
                              header or (_DEPTH_HEADER if config.pretraining else _HEADER), values)


def _write_config_file(path: str, header: str, values: Mapping[str, Any]) -> str:
    """Writes a run's `config.yaml` (atomically): `header`, then `values` in their order."""
    with atomic_write(path) as f:
        f.write(header)
        yaml.safe_dump(dict(values), f, sort_keys=False, default_flow_style=None)
    return path


def update_run_config(folder: PathLike, changes: Mapping[str, Any]) -> str:
    """Rewrites `<folder>/config.yaml` (atomically) with `changes`, every other key and the header
    comment as written: a run whose export is done again says what it did, the rest as it ran.

    Returns:
        The path written.

    Raises:
        ConfigError: the file cannot be read as a run's config.
    """
    path = os.path.join(os.fspath(folder), RUN_CONFIG)
    values = read_run_config(path)
    with open(path, encoding="utf-8") as stream:
        lines = stream.read().splitlines(keepends=True)
    header = []
    for line in lines:
        if not line.startswith("#"):
            break
        header.append(line)
    return _write_config_file(path, "".join(header), {**values, **changes})


def find_run_config(path: PathLike) -> Optional[str]:
    """The `config.yaml` of the run that `path` (a run folder or a file in one) belongs to, or None.

    A file linked from elsewhere (`other/model.keras -> RUN/final.keras`) belongs to the run its
    link points into, where its own folder holds no `config.yaml` (before: refused as "not a
    training run"; helper 366).
    """
    path = os.fspath(path)
    folder = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    candidate = os.path.join(folder, RUN_CONFIG)
    if os.path.isfile(candidate):
        return candidate
    if os.path.islink(path) and not os.path.isdir(path):
        linked = os.path.join(os.path.dirname(os.path.realpath(path)), RUN_CONFIG)
        return linked if os.path.isfile(linked) else None
    return None


def saved_run_config(path: PathLike) -> dict[str, Any]:
    """The raw mapping of the `config.yaml` of the run `path` belongs to, for checks and hints.

    {} when there is none, or when it cannot be read (loading the run names that problem).
    """
    source = find_run_config(path)
    if source is None:
        return {}
    try:
        return read_run_config(source)
    except ConfigError:
        return {}


def read_run_config(path: PathLike) -> dict[str, Any]:
    """The raw mapping of a run's `config.yaml`.

    Raises:
        ConfigError: unreadable, not YAML or not a mapping.
    """
    source = os.fspath(path)
    raw = read_yaml_file(source, "the run's config")
    if not isinstance(raw, Mapping):
        raise ConfigError("the run's config is not a mapping of keys to values", source=source)
    return dict(raw)


def run_config(
    run: PathLike,
    mode: str,
    overrides: Optional[Mapping[str, Any]] = None,
    check_paths: bool = True,
    given_as: Optional[Mapping[str, str]] = None,
) -> RunConfig:
    """The config of a finished (or interrupted) run, pointed at the run's own weights.

    For `mode="eval"` the training-only keys are dropped and `checkpoint` becomes the run's
    weights (`run_weights`: its `final.keras`, else its newest checkpoint; or the file given),
    so the result evaluates what the run trained even after the folder moved. The test data
    are the config's `test_data` when it has one, else they must come in `overrides`. For
    `mode="train"`, `checkpoint` becomes the run's folder where it is now.

    Args:
        run: a run folder, or a weights or `.keras` file inside one.
        mode: "eval" (the run's weights) or "train" (the config as the run used it).
        overrides: keys to replace (`--set`), validated like the file's.
        check_paths: check that the paths the mode reads exist.
        given_as: how overrides were typed, where not as `--set` (`load_config`).

    Raises:
        ConfigError: no `config.yaml` for `run`, or the config with the overrides is invalid.
    """
    source = find_run_config(run)
    if source is None and os.path.isfile(checkpoint_prefix(run) + ".index"):
        # An original checkpoint (or another prefix) says its weights, not the data to evaluate on.
        raise ConfigError(f"{os.fspath(run)} is a checkpoint, not a training run's folder: give a config with -c "
                          f"(its test data, size and classes) and the checkpoint with --checkpoint {os.fspath(run)}")
    if source is None and not os.path.exists(run):  # a typo, not a folder of something else
        raise ConfigError(f"{os.fspath(run)} does not exist; give a training run's folder or a config with -c")
    backend = exported_backend(run)
    if source is None and backend in ("openvino", "tflite"):
        # Before: "not a training run ...; give a config with -c", which evaluated nothing.
        raise ConfigError(f"{os.fspath(run)} is {export_kind(backend)} export of ssma-export, not a training run: "
                          f"evaluate it with ssma-evaluate {os.fspath(run)} --backend {backend} --test_data RECORDS, "
                          f"or run it with ssma-predict --backend {backend}")
    if source is None and backend is not None:
        raise ConfigError(f"{os.fspath(run)} is an export of ssma-export (a SavedModel), not a training run: give "
                          "the run it was exported from, or load it with tf.saved_model.load")
    if source is None:
        raise ConfigError(
            f"{os.fspath(run)} is not a training run of ssma-tf (no {RUN_CONFIG} in its folder); "
            "give a config with -c",
        )
    pruned = prune_folder(run)
    if pruned:  # before: "a training run that has not saved a checkpoint yet"
        raise ConfigError(f"{os.fspath(run)} is {pruned}")
    raw = read_run_config(source)
    if mode == EVAL[0] and raw.get("test_data") is None and (overrides or {}).get("test_data") is None:
        raise ConfigError(
            "the run was trained without test_data: give the records to evaluate on "
            "(--test_data PATTERN or --set test_data=PATTERN)", key="test_data", source=source,
        )
    if mode == EVAL[0]:
        raw = {
            name: value for name, value in raw.items()
            if name not in DECLARED or EVAL[0] in DECLARED[name].modes
        }
        raw.pop("skip_step", None)  # the training log interval is no evaluation's
        raw["checkpoint"] = run_weights(run)
    else:
        if rederived_log_dir(raw, os.path.dirname(source)):
            raw.pop("log_dir")  # the old place's logs folder: it follows the run
        raw["checkpoint"] = os.path.dirname(source)
    return config_with_overrides(raw, overrides or {}, source=source, mode=mode, check_paths=check_paths,
                                 given_as=given_as)


def read_export_metadata(folder: PathLike) -> dict:
    """The metadata `ssma-export` wrote in `folder` (`EXPORT_METADATA`): the one reader of it,
    for the commands' configs and the runtimes (`ssma_tf.inference.backends`) alike.

    Raises:
        ConfigError: no such folder, no metadata in it (not an export), or metadata that cannot
            be read or is not a JSON object (named as such: it was taken for a SavedModel export).
    """
    name = os.fspath(folder)
    path = os.path.join(name, EXPORT_METADATA)
    if not os.path.isdir(name):
        raise ConfigError(f"{name}: no such export folder")
    if not os.path.isfile(path):
        raise ConfigError(f"{name} is not an export of ssma-export (no {EXPORT_METADATA})")
    try:
        with open(path, encoding="utf-8") as handle:
            meta = json.load(handle)
    except (OSError, ValueError) as error:  # UnicodeDecodeError is a ValueError
        raise ConfigError(f"cannot read the export's metadata: {error}", source=path) from None
    if not isinstance(meta, dict):
        raise ConfigError(f"the export's metadata is a JSON {type(meta).__name__}, not an object", source=path)
    return meta


def export_kind(backend: str) -> str:
    """An export of `backend` in a sentence: "an OpenVINO", "a TFLite", "a SavedModel"."""
    return {"openvino": "an OpenVINO", "tflite": "a TFLite"}.get(backend, "a SavedModel")


def exported_backend(path: PathLike) -> Optional[str]:
    """For a folder `ssma-export` wrote (its `EXPORT_METADATA`), the backend that runs it
    ("openvino", "tflite"; "saved_model" for a SavedModel); None for any other path.

    Raises:
        ConfigError: the folder's metadata cannot be read (`read_export_metadata`; before, such
            a folder was called a SavedModel export).
    """
    if not os.path.isfile(os.path.join(os.fspath(path), EXPORT_METADATA)):
        return None
    backend = read_export_metadata(path).get("backend")
    return backend if backend in ("openvino", "tflite") else "saved_model"


def export_config(
    folder: PathLike,
    overrides: Optional[Mapping[str, Any]] = None,
    given_as: Optional[Mapping[str, str]] = None,
) -> RunConfig:
    """An evaluation config for an OpenVINO or TFLite export (`ssma-export --format ...`) alone.

    The export's metadata gives the model, classes, size, modalities, their resizing and the
    dataset; the records to evaluate on come in `overrides` (`test_data`), since an export does
    not name them. `batch_size` is 1 unless overridden. The config's `checkpoint` is unset: the
    export is evaluated, not weights (`ssma_tf.evaluation.evaluate_exported`).

    Raises:
        ConfigError: `folder` is no such export or its metadata cannot be read, no `test_data`
            is given, or an override is invalid.
    """
    name = os.fspath(folder)
    path = os.path.join(name, EXPORT_METADATA)
    try:
        meta = read_export_metadata(name)
    except ConfigError as error:
        if error.source != path:  # no folder, or no metadata: say what to give
            raise ConfigError(f"{error}: give an OpenVINO or TFLite export folder, or a config with -c") from None
        raise
    conversions = meta.get("tflite")
    if meta.get("backend") not in ("openvino", "tflite") and isinstance(conversions, dict) and conversions:
        # The SavedModel export's own TFLite conversions: uint8 in, two outputs (before: "or a
        # config with -c", which refuses the folder too; helper 132).
        converted = ", ".join(str(v) for v in conversions.values())
        raise ConfigError(f"{name} is a SavedModel export with TFLite conversions ({converted}: uint8 images in, class "
                          "ids and probabilities out, for your own runner); to evaluate through TFLite or OpenVINO, "
                          "export with ssma-export --format tflite (or openvino)", source=path)
    if meta.get("backend") not in ("openvino", "tflite"):
        raise ConfigError(f"{name} is not an OpenVINO or TFLite export (metadata 'backend': {meta.get('backend')!r}); "
                          "give such an export folder (ssma-export --format openvino or tflite), or evaluate the "
                          "model it came from", source=path)
    missing = [key for key in ("model", "num_classes", "inputs", "size") if key not in meta]
    if missing:
        raise ConfigError(f"the export's metadata lacks {', '.join(map(repr, missing))}", source=path)
    try:
        inputs, size = list(meta["inputs"]), [int(v) for v in meta["size"]]
        if len(size) != 2:
            raise ValueError(f"'size' must be [height, width], got {meta['size']!r}")
        raw: dict[str, Any] = {"model": meta["model"], "num_classes": int(meta["num_classes"]),
                               "height": size[0], "width": size[1], "batch_size": 1}
    except (ValueError, TypeError) as error:
        raise ConfigError(f"the export's metadata is not valid: {error}", source=path) from None
    if (overrides or {}).get("test_data") is None:
        raise ConfigError(f"an export does not name the records to evaluate on: give them with --test_data PATTERN "
                          f"(or -c CONFIG --exported {name})", key="test_data", source=path)
    if meta.get("dataset"):
        raw["dataset"] = meta["dataset"]
    if len(inputs) > 2:  # SSMA over N modalities: the config counts them by their names
        raw["modalities"] = inputs
    if meta.get("fusion"):  # a fusion baseline's export (before: evaluated alone under fusion: ssma's name)
        raw["fusion"] = meta["fusion"]
    interpolation = meta.get("modality2_interpolation")
    if isinstance(interpolation, str):
        raw["modality2_interpolation"] = interpolation
    elif interpolation:
        raw["modality_interpolations"] = list(interpolation)
    if meta.get("input_modality"):
        raw["input_modality"] = meta["input_modality"]
    required = Required(("model", "num_classes", "height", "width", "test_data"), f"evaluating {name}")
    try:
        return config_with_overrides(raw, overrides or {}, source=path, mode=EVAL[0], required=required,
                                     given_as=given_as)
    except ConfigError as error:
        if error.key != "dataset" or "dataset" in (overrides or {}) or "dataset" not in raw:
            raise
    # A dataset of the user's own palette file is not known here: generic class names then.
    del raw["dataset"]
    return config_with_overrides(raw, overrides or {}, source=path, mode=EVAL[0], required=required,
                                 given_as=given_as)


def prune_folder(path: PathLike) -> str:
    """For the output folder of ssma-prune (its report.json), what it is: "the output of
    ssma-prune: give one of its stages' networks (...) to ..."; "" for any other path."""
    path = os.fspath(path)
    if not (os.path.isdir(path) and os.path.isfile(os.path.join(path, PRUNE_REPORT))):
        return ""
    stages = sorted((name for name in os.listdir(path) if re.fullmatch(r"stage\d+\.keras", name)),
                    key=lambda name: int(name[len("stage"):-len(".keras")]))
    named = ", ".join(os.path.join(path, name) for name in stages[:3]) + (", ..." if len(stages) > 3 else "")
    # Not a start for training: a config builds the released widths (before: the advice to give a
    # stage's network, which `intialize` and `finetune_from` then refused; helper 355).
    return (f"the output of ssma-prune: give one of its stages' networks ({named or 'none written yet'}) to evaluate, "
            "predict or export it, or to ssma-prune --checkpoint to prune or fine-tune it further (a training "
            "config cannot start from a pruned network)")


def run_weights(run: PathLike) -> str:
    """The weights a run folder stands for: its `final.keras` when current, else the folder.

    The folder itself resolves to its newest checkpoint (`ssma_tf.checkpoints.resolve`). The
    `.keras` file of a finished run is preferred because it is matched to the model by layer
    name, not by the order in which objects were tracked; but not when a checkpoint was
    written after it (a run resumed to train longer and not finished yet).

    Args:
        run: a run folder, or a file (returned as it is, made absolute).
    """
    path = os.path.abspath(os.fspath(run))
    if os.path.isdir(path) and final_files_current(path):
        return os.path.join(path, FINAL_MODEL)
    return path


def final_files_current(run: PathLike) -> bool:
    """Whether a run folder's `final.weights.h5` and `final.keras` both hold its last checkpoint.

    They do when `final.json` (`write_final_record`) names the checkpoint the `checkpoint` state
    file names as the newest, with the timestamp the state file gives it, and both files' sizes.
    A run stopped while exporting (a SIGTERM after the weights file, before the `.keras` one) has a
    record without sizes; one resumed to train longer has a newer checkpoint: either must be
    written again. Modification times are not read (before: a copied folder, whose times `cp -r`
    and downloads do not keep, was read at its last checkpoint instead of a recalibrated
    `final.keras`, or exported over it; helper 314), except for a folder without a readable record
    (an export of an earlier version), where neither file may be older than the state file.
    """
    folder = os.path.abspath(os.fspath(run))
    files = [os.path.join(folder, name) for name in (FINAL_WEIGHTS, FINAL_MODEL)]
    if not all(os.path.isfile(path) for path in files):
        return False
    state = os.path.join(folder, "checkpoint")
    record = final_record(folder)
    if record is not None:
        return (record["sizes"] == _final_sizes(folder)
                and (not os.path.isfile(state) or record["checkpoint"] == newest_checkpoint(folder)))
    if not os.path.isfile(state):
        return True
    written = os.path.getmtime(state)
    return all(os.path.getmtime(path) >= written for path in files)


def newest_checkpoint(folder: PathLike) -> Optional[dict]:
    """The newest checkpoint the `checkpoint` state file of `folder` names, read as text (no
    TensorFlow here): `{"name": "ckpt-200", "time": "1718000000.25"}`, the time as the state file
    writes it (None where it gives none); None without a state file or a newest checkpoint in it.

    The time tells a checkpoint from a later one of the same name (a run started again from step
    0 after its checkpoints were removed), and, unlike the file's modification time, a copy keeps it.
    """
    try:
        with open(os.path.join(os.fspath(folder), "checkpoint"), encoding="utf-8", errors="replace") as stream:
            text = stream.read(2**20)
    except OSError:
        return None
    fields: dict[str, list[str]] = {}
    for key, value in re.findall(r"^\s*(\w+)\s*:\s*(.*?)\s*$", text, flags=re.M):
        fields.setdefault(key, []).append(value.strip('"'))
    if not fields.get("model_checkpoint_path"):
        return None
    name = os.path.basename(fields["model_checkpoint_path"][-1])
    paths = [os.path.basename(path) for path in fields.get("all_model_checkpoint_paths", [])]
    times = fields.get("all_model_checkpoint_timestamps", [])
    time = times[paths.index(name)] if name in paths and len(times) == len(paths) else None
    return {"name": name, "time": time}


def write_final_record(folder: PathLike, checkpoint: Optional[dict], *, written: bool,
                       recalibrated: Optional[int] = None) -> str:
    """Writes `<folder>/final.json` (atomically): the checkpoint the final files are exported at
    (`newest_checkpoint`, read before writing them) and, once both are `written`, their sizes.

    Written without sizes before the final files, so that an export cut short between them is
    seen (`final_files_current`) even where no checkpoint was written since the last one (a
    finished run recalibrated and exported again); with them after both. `recalibrated`: the
    batches the weights' moving statistics were recalibrated on since that checkpoint (None: they
    are the checkpoint's), which an export cut short must do again.

    Returns:
        The path written.
    """
    path = os.path.join(os.fspath(folder), FINAL_RECORD)
    with atomic_write(path) as stream:
        json.dump({"checkpoint": checkpoint, "sizes": _final_sizes(os.fspath(folder)) if written else None,
                   "recalibrated": recalibrated}, stream)
        stream.write("\n")
    return path


def _final_sizes(folder: str) -> Optional[dict]:
    """The sizes of a run folder's two final files, by name; None where one is missing."""
    try:
        return {name: os.path.getsize(os.path.join(folder, name)) for name in (FINAL_WEIGHTS, FINAL_MODEL)}
    except OSError:
        return None


def final_record(folder: PathLike) -> Optional[dict]:
    """`<folder>/final.json` as `write_final_record` writes it; None where it is missing or
    cannot be read (damaged, or not of that form)."""
    try:
        with open(os.path.join(os.fspath(folder), FINAL_RECORD), encoding="utf-8") as stream:
            record = json.loads(stream.read(2**16))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.keys() >= {"checkpoint", "sizes"} else None


def is_run(path: PathLike) -> bool:
    """Whether `path` is a run folder of ssma-tf, or a file inside one."""
    return find_run_config(path) is not None
