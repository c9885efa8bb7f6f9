"""Staged pruning (Section 3.5): rank, prune, fine-tune and evaluate, stage after stage.

A stage names the scopes it prunes and the share of the network's weights (at the stage's start)
to remove from them, e.g. `block4:0.1` (the paper's first stage: Res5 only), `block1-4:0.1`
(Res2..Res5), `all:0.1`. Within a stage the maps are ranked together (`ssma_tf.pruning.ranking`,
per-layer ℓ2-rescaled scores), the lowest-ranked channels go until they hold that many weights
(so every method removes the same amount and compares at the same reduction), and the smaller
network is fine-tuned with the training protocol of the config (`ssma_tf.training.Trainer`)
before it is evaluated on the test records.

Everything goes to one output folder, written so that an interrupted run resumes at its stage:
`stage<k>/pruned.keras` (the network right after surgery), `stage<k>/checkpoints/` (its
fine-tuning, resumed like any training run), `stage<k>.keras` (the fine-tuned network) and
`report.json` (parameters, GFLOPs, mIoU and latency per stage), each file written atomically.
A stage's work folder `stage<k>/` is removed once `stage<k>.keras` is written. The report
records the weights file stage 0 was measured on and a digest of it: a resumed run whose
weights changed (training went on in the run folder) is refused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import pathlib
import re
import shutil
import statistics
from typing import Any, Callable, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from ssma_tf.checkpoints.initialize import check_checkpoint_fits
from ssma_tf.checkpoints.loading import load_keras_model, load_model, load_weights
from ssma_tf.checkpoints.reading import CheckpointError
from ssma_tf.checkpoints.resolve import resolve_weights
from ssma_tf.config import ConfigError, refuse_pretraining
from ssma_tf.config.runs import write_run_config
from ssma_tf.data.pipeline import list_record_files, naming_damaged_records
from ssma_tf.constants import ADAPNET_PP_BACKBONE, AUX_LOSS_WEIGHTS, DECODER_FILTERS, PRUNE_REPORT, RUN_CONFIG
from ssma_tf.errors import UserInputError
from ssma_tf.evaluation import evaluate
from ssma_tf.files import (atomic_path, atomic_write, folder_held, leftover_temporaries, matched_files, remove_path,
                           sha256_of_file)
from ssma_tf.inference.flops import flops, inference_function, input_specs
from ssma_tf.inference.timing import time_calls
from ssma_tf.losses import ReleasedLoss
from ssma_tf.models import SSMA, AdapNetPP
from ssma_tf.models.factory import build_model
from ssma_tf.models.widths import decoder_widths
from ssma_tf.pruning.channels import GROUPS, feature_maps
from ssma_tf.pruning.ranking import METHODS, rank
from ssma_tf.pruning.surgery import PruningError, count_params, prune, select
from ssma_tf.training import Trainer, make_train_dataset
from ssma_tf.visualize import save_png

REPORT = PRUNE_REPORT
_HEADER = (
    "# The config of the network this folder's stages prune, written by ssma-prune. ssma-evaluate,\n"
    "# ssma-predict and ssma-export read it when given a stage's .keras file (OUT/stage1.keras).\n"
)
# The method that removes nothing: fine-tuning alone, the control for every pruning method.
CONTROL = "none"



@dataclasses.dataclass(frozen=True)
class Stage:
    """One pruning stage: the scopes (`GROUPS`) it ranks together and the fraction removed."""

    spec: str
    groups: tuple[str, ...]
    fraction: float


def parse_stage(spec: str, index: int) -> Stage:
    """`SCOPE[+SCOPE...]:FRACTION` → a `Stage`; a scope is a group, `blockA-B` or `all`.

    Raises:
        PruningError: naming the stage and what is wrong with it.
    """
    what = f"stage {index} ({spec!r})"
    scopes, sep, fraction_text = spec.rpartition(":")
    if not sep or not scopes:
        raise PruningError(f"{what}: write SCOPE:FRACTION, e.g. block4:0.3 (scopes: {', '.join(GROUPS)}, "
                           "blockA-B, all)")
    try:
        fraction = float(fraction_text)
    except ValueError:
        raise PruningError(f"{what}: the fraction {fraction_text!r} is not a number") from None
    if not math.isfinite(fraction):
        raise PruningError(f"{what}: the fraction must be a number between 0 and 1, got {fraction_text!r}")
    if fraction >= 1.0:
        raise PruningError(f"{what}: the fraction {fraction:g} is a share of the whole network's weights and "
                           "must be below 1 (the scopes hold fewer than all of them)")
    if fraction <= 0.0:
        raise PruningError(f"{what}: the fraction must be above 0, got {fraction}")
    groups: list[str] = []
    for scope in scopes.split("+"):
        if scope == "all":
            groups += GROUPS
        elif scope.startswith("block") and "-" in scope:
            first, _, last = scope[len("block"):].partition("-")
            if not (first.isdigit() and last.isdigit() and 1 <= int(first) <= int(last) <= 4):
                raise PruningError(f"{what}: bad block range {scope!r} (blocks 1..4, e.g. block1-4)")
            groups += [f"block{b}" for b in range(int(first), int(last) + 1)]
        elif scope in GROUPS:
            groups.append(scope)
        else:
            raise PruningError(f"{what}: unknown scope {scope!r} (one of {', '.join(GROUPS)}, blockA-B, all)")
    return Stage(spec, tuple(dict.fromkeys(groups)), fraction)


def parse_stages(specs: Sequence[str]) -> list[Stage]:
    """Every stage of a command line, checked before anything runs."""
    if not specs:
        raise PruningError("give at least one stage")
    return [parse_stage(spec, i) for i, spec in enumerate(specs, start=1)]


def candidates(model: keras.Model, stage: Stage, method: str) -> list:
    """The feature maps `stage` ranks; the oracle leaves every unit's last convolution alone."""
    return [m for m in feature_maps(model) if m.group in stage.groups
            and not (method == "oracle" and m.kind == "residual")]


def prune_stage(model: keras.Model, stage: Stage, method: str, index: int, batches=None,
                multiple: int = 1, aux_weights: Sequence[float] = AUX_LOSS_WEIGHTS) -> keras.Model:
    """Ranks the maps of `stage` by `method` and returns the pruned copy of `model` (channels removed
    in groups of `multiple`, `ssma_tf.pruning.surgery.select`). The Taylor ranking differentiates
    the training loss with the auxiliary heads weighted `aux_weights` (the config's)."""
    maps = check_stage_fits(model, stage, method, index, multiple)
    scores = rank(method, model, maps, batches, ReleasedLoss(aux_weights=aux_weights))
    keep = select(scores, stage.fraction * count_params(model), maps, what=f"stage {index} ({stage.spec!r})",
                  multiple=multiple)
    return prune(model, keep)


def check_stage_fits(model: keras.Model, stage: Stage, method: str, index: int, multiple: int = 1) -> list:
    """The feature maps `stage` ranks in `model`, once it is known that they hold the weights it
    removes: whether they do depends on their widths, not on the scores, so it is found before
    the ranking (a gradient pass for Taylor) and, for the first stage, before stage 0 is evaluated.

    Raises:
        PruningError: nothing to prune, or fewer removable weights than the stage's share.
    """
    maps = candidates(model, stage, method)
    if not maps:
        raise PruningError(f"stage {index} ({stage.spec!r}): nothing to prune in {model.name}")
    select({entry.name: np.zeros(entry.width) for entry in maps}, stage.fraction * count_params(model), maps,
           what=f"stage {index} ({stage.spec!r})", multiple=multiple)
    return maps


def latency(model: keras.Model, height: int, width: int, runs: int = 10, concrete=None) -> float:
    """Median seconds of one batch-1 inference (compiled, after two warm-up calls); `concrete`:
    the model's `inference_function` at that size, when it is traced already."""
    specs = input_specs(model, height, width)
    inputs = tf.nest.map_structure(lambda spec: tf.random.uniform(spec.shape, 0, 255, seed=0), specs)
    if concrete is None:
        concrete = inference_function(model, height, width)
    return statistics.median(time_calls(lambda: concrete(inputs).numpy(), warmup=2, runs=runs))


def _pruning_folder(output: pathlib.Path) -> bool:
    """Whether `output`'s config.yaml was written by ssma-prune (its header)."""
    try:
        with open(output / RUN_CONFIG, encoding="utf-8") as stream:
            return stream.read(len(_HEADER)) == _HEADER
    except (OSError, UnicodeDecodeError):
        return False


def _check_test_data(patterns: Sequence[str]) -> tuple[str, ...]:
    if not patterns:
        raise UserInputError("no test records: give --test-data (the pruned models are evaluated on them)")
    # An existing file is itself, where its name reads as a pattern (`data [v2]/val.tfrecords`);
    # a folder is named as one (before: glob's "match no file", and a folder passed; helper 136).
    for pattern in patterns:
        if not matched_files(pattern):
            problem = ("is a folder; give its record files, e.g. " + repr(os.path.join(pattern, "*.tfrecords"))
                       if os.path.isdir(pattern) else "match no file")
            raise UserInputError(f"test records {pattern!r} {problem}", path=pattern)
    return tuple(patterns)


def _trained(config: Any, source: str) -> tuple[keras.Model, str]:
    """The model to prune and a log line: a `.keras` file (pruned before, say) is loaded whole."""
    check_checkpoint_fits(config, source)
    if str(source).endswith(".keras"):
        return load_model(source, config.model, config.num_classes), f"loaded {source}"
    model = build_model(config)
    return model, f"loaded {load_weights(model, source)}"


# The methods that rank channels by the loss on training batches (`rank_batches` of them).
RANKING_METHODS = ("taylor", "oracle")


def setting_used(settings: dict, key: str) -> bool:
    """Whether a run of these settings read `key`: `rank_batches` only where the method ranks on
    batches, the training records only where it ranks or fine-tunes (before: an l1 run rerun
    with another --rank-batches was refused as another pruning run)."""
    ranks = settings.get("method") in RANKING_METHODS
    if key == "rank_batches":
        return ranks
    if key == "train_data_sha256":
        return ranks or bool(settings.get("finetune_steps"))
    return True


def setting_as_run(settings: dict, key: str):
    """A report's value of a setting as the run used it: the test records as absolute paths (a
    report before 2026-12-02 has them as typed), the config's learning rate where no
    `--finetune-lr` was given, a channel multiple of 1 where none is recorded."""
    if key == "test_data":
        return [os.path.abspath(p) for p in settings.get(key) or []]
    if key == "finetune_learning_rate" and settings.get(key) is None:
        return (settings.get("config") or {}).get("learning_rate")
    if key == "channel_multiple":
        return settings.get(key, 1)
    if key == "stages":
        return [same_stage(spec) for spec in settings.get(key) or []]
    return settings.get(key)


def same_stage(spec: str):
    """What a stage spec removes, for comparing specs: `block4:0.10` is `block4:0.1`, and
    `block1-2` is `block1+block2` (before: compared as text, so a resumed run typed otherwise
    was another run). A spec that does not parse stays its text."""
    try:
        stage = parse_stage(spec, 0)
    except PruningError:
        return spec
    return (tuple(sorted(stage.groups)), stage.fraction)


def _weights_identity(source: str) -> dict:
    """The file (or checkpoint prefix) `source` resolves to now and a digest of its contents: a
    run folder resolves to its newest checkpoint, which training on moves (the folder's path
    alone let a resumed pruning run prune newer weights than its recorded stage 0's). A TF
    checkpoint's `.index` is hashed (it holds each tensor's checksum), another file whole."""
    resolved = resolve_weights(source)[1]
    digest = sha256_of_file(resolved + ".index" if os.path.isfile(resolved + ".index") else resolved)
    return {"weights": resolved, "weights_sha256": digest[:16]}


def _records_identity(patterns: Sequence[str], key: str = "test_data_sha256") -> dict:
    """`{key: digest}` of record files' contents as far as it is cheap to read: each file's size
    and its first and last 64 KiB (records rewritten in place, say converted again at another
    size, change them; a copy does not). Before, a resumed run reported stages measured (or
    ranked and fine-tuned) on the old records beside stages of the new ones."""
    digest = hashlib.sha256()
    for path in list_record_files(list(patterns)):
        size = os.path.getsize(path)
        digest.update(f"{os.path.basename(path)}:{size}:".encode())
        with open(path, "rb") as handle:
            digest.update(handle.read(65536))
            if size > 65536:
                handle.seek(max(65536, size - 65536))
                digest.update(handle.read())
    return {key: digest.hexdigest()[:16]}


def _remove_leftovers(output: pathlib.Path, stages: int, log: Callable[[str], None]) -> None:
    """Removes the temporaries a killed run left beside the files it writes (a half-written
    `stage<k>.keras`, as large as the network)."""
    finals = [output / REPORT, output / RUN_CONFIG] + [output / f"stage{k}.keras" for k in range(1, stages + 1)] \
        + [output / f"stage{k}" / "pruned.keras" for k in range(1, stages + 1)]
    for final in finals:
        for leftover in leftover_temporaries(final):
            remove_path(leftover)
            log(f"removed {leftover}, left by an interrupted save")


def _remove_stage_folder(folder: pathlib.Path, final: pathlib.Path, log: Callable[[str], None]) -> None:
    """Removes a finished stage's work folder: its pruned network before fine-tuning and the
    fine-tuning's checkpoints (with the optimizer's state, three times the network's size each)
    are not needed once `final` holds the stage's network. A 2-stage run of AdapNet++ kept 2 GB."""
    if folder.is_dir():
        shutil.rmtree(folder)
        log(f"removed {folder} (the stage's work: its pruned network and fine-tuning checkpoints; {final.name} "
            "holds the network)")


# What each stage's entry of a report holds (`run`'s `record`), as the table and plot read it.
_ENTRY_NUMBERS = ("params", "gflops", "miou", "latency_ms", "param_reduction", "miou_change", "latency_ratio")


def config_changes(old: dict, new: dict, most: int = 3, between: str = " -> ") -> list[str]:
    """The first `most` config keys in which two reports' settings differ, each as `config key K
    OLD -> NEW` (`between` joins the two values) from their `config`; ["another config"] where one
    of them records no config (reports before the config's contents were recorded). For the
    resume's refusal and the `--with` warning alike (before: the latter showed the two configs'
    digests)."""
    was, now = old.get("config"), new.get("config")
    if not isinstance(was, dict) or not isinstance(now, dict):
        return ["another config"]
    keys = sorted(k for k in set(was) | set(now) if was.get(k) != now.get(k))
    return [f"config key {k} {was.get(k)!r}{between}{now.get(k)!r}" for k in keys[:most]] or ["another config"]


def read_report(path: os.PathLike, what: str) -> dict:
    """The report `run` wrote to `path`, checked to have the shape the table, the plot and a
    resumed run read (before: a report cut short or edited by hand was a JSON or KeyError
    traceback, for `--with` after every stage had run).

    Args:
        what: how the message begins, e.g. "--with OUT" or the report's own path.

    Raises:
        UserInputError: naming the file and what is wrong with it.
    """
    path = pathlib.Path(path)
    try:
        report = json.loads(path.read_text())
    except (ValueError, OSError) as error:  # UnicodeDecodeError is a ValueError
        raise UserInputError(f"{what}: cannot read {path} as a report of ssma-prune: {error}", path=path) from None
    problem = None
    if not isinstance(report, dict):
        problem = f"it holds a JSON {type(report).__name__}, not an object"
    elif not isinstance(report.get("settings"), dict) or not isinstance(report["settings"].get("method"), str):
        problem = "it has no 'settings' with the method"
    elif not isinstance(report.get("stages"), list):
        problem = "it has no list of 'stages'"
    else:
        for position, entry in enumerate(report["stages"]):
            if not isinstance(entry, dict) or isinstance(entry.get("stage"), bool) \
                    or not isinstance(entry.get("stage"), int) or entry["stage"] < 0:
                problem = f"its stages entry {position} has no stage number"
            else:
                lacking = [k for k in _ENTRY_NUMBERS if isinstance(entry.get(k), bool)
                           or not isinstance(entry.get(k), (int, float))]
                if lacking:
                    problem = f"its stage {entry['stage']} lacks the number(s) {', '.join(lacking)}"
                elif entry["stage"] > 0 and not isinstance(entry.get("spec"), str):
                    # Before: read, then a KeyError in the table after every stage had run.
                    problem = f"its stage {entry['stage']} has no spec (the scopes and share it pruned)"
            if problem:
                break
    if problem:
        raise UserInputError(f"{what}: {path} is not a report of ssma-prune ({problem})", path=path)
    return report


def _load(path: os.PathLike, redo: str) -> keras.Model:
    """The network a stage saved; a damaged file is named, with what removing it makes the next
    run do (`redo`), instead of Keras' "File not found"."""
    try:
        return load_keras_model(os.fspath(path), (AdapNetPP, SSMA))
    except CheckpointError as error:
        raise CheckpointError(f"{error}; remove it and ssma-prune {redo}", path=os.fspath(path)) from None


def _save(model: keras.Model, path: pathlib.Path) -> None:
    with atomic_path(path) as partial:
        model.save(partial)


def _copy(source: pathlib.Path, path: pathlib.Path) -> None:
    """A stage's network that fine-tuning left as it was pruned: its file copied, not written again."""
    with atomic_path(path) as partial:
        shutil.copyfile(source, partial)


def _check_stage_list(previous: dict, stages: Sequence[Stage], report_path: pathlib.Path,
                      log: Callable[[str], None]) -> None:
    """A resumed run may change the stages it has not finished (a stage list refused mid-way, say
    one that would empty a layer at stage 3, is mended and run again); its finished stages must
    stay as they were. An unfinished stage whose spec changed starts again: its folder, from the
    old spec, is removed.

    Raises:
        UserInputError: a finished stage that this stage list changes or leaves out.
    """
    specs = [stage.spec for stage in stages]
    finished = {entry["stage"]: entry["spec"] for entry in previous.get("stages", []) if entry.get("stage", 0) > 0}
    for index, spec in sorted(finished.items()):
        given = specs[index - 1] if index <= len(specs) else None
        if given is None or same_stage(given) != same_stage(spec):
            now = f"gives {given!r}" if given is not None else f"has only {len(specs)} stage(s)"
            done = " ".join(finished[i] for i in sorted(finished))
            raise UserInputError(
                f"{report_path} comes from another pruning run: its stage {index} ({spec!r}) is finished and "
                f"this stage list {now}; give a new output folder, or a stage list that begins with the "
                f"finished stages ({done})", path=report_path)
    old_specs = (previous.get("settings") or {}).get("stages") or []
    output = report_path.parent
    for index, spec in enumerate(specs, start=1):
        before = old_specs[index - 1] if index <= len(old_specs) else None
        folder = output / f"stage{index}"
        if index not in finished and (before is None or same_stage(before) != same_stage(spec)) and folder.exists():
            was = f" ({before!r})" if before is not None else ""
            log(f"stage {index} is now {spec!r}: removing {folder}, the unfinished work of another stage list{was}")
            shutil.rmtree(folder)


def _pruned_before(model: keras.Model, config: Any) -> bool:
    """Whether `model` has other widths than the config builds: the narrow decoder of
    `decoder_filters` is the config's network, not a pruned one (helper 114: an unpruned
    real-time decoder was reported as "pruned before")."""
    widths = dict(getattr(model, "widths", None) or {})
    filters = getattr(config, "decoder_filters", DECODER_FILTERS)
    return bool(widths) and widths != (decoder_widths(filters) if filters != DECODER_FILTERS else {})


def run(
    config: Any,
    method: str,
    stages: Sequence[Stage],
    output: os.PathLike,
    *,
    test_data: Sequence[str],
    checkpoint: Optional[str] = None,
    finetune_steps: int = 100,
    finetune_learning_rate: Optional[float] = None,
    rank_batches: int = 8,
    latency_runs: int = 10,
    channel_multiple: int = 1,
    log: Optional[Callable[[str], None]] = None,
) -> dict:
    """Runs (or resumes) the staged pruning of the model `config` trained; returns the report.

    Args:
        config: the training `RunConfig` of the model to prune (its `train_data` ranks and
            fine-tunes, its protocol fine-tunes).
        method: "taylor", "l1" or "oracle" (`ssma_tf.pruning.ranking`), or "none": the control, which
            removes nothing and fine-tunes the unpruned network stage by stage alike, so that what
            pruning costs is told apart from what the extra training steps give (a model trained
            briefly gains from them whether pruned or not).
        stages: from `parse_stages`.
        output: the output folder (see the module docstring).
        test_data: record files or patterns to evaluate on.
        checkpoint: the trained weights (default `config.checkpoint`, the run's folder).
        finetune_steps: training steps after each stage (0: none).
        finetune_learning_rate: its initial rate (default the config's).
        rank_batches: training batches the Taylor criterion accumulates over.
        latency_runs: timed inferences per stage.
        channel_multiple: channels go in groups of this many per layer, so that widths that were
            multiples of it stay multiples (`ssma_tf.pruning.surgery.select`); 1: one by one.
        log: where progress lines go.

    Returns:
        The report (what `report.json` holds).

    Raises:
        UserInputError: bad input (a checkpoint that does not fit the config, missing test
            records, a stage that would empty a layer), naming it.
    """
    log = log or (lambda line: print(line, flush=True))
    refuse_pretraining(config)  # before: its depth network scored as a 2-class segmenter at stage 0
    for section, what in (("semi_supervised", "semi-supervised training"), ("adaptation", "domain adaptation")):
        if finetune_steps > 0 and getattr(config, section, None) is not None:
            # Helper 114: fine-tuned with the supervised loss on train_data alone (no teacher, no
            # target images), while the stage's config.yaml said the config's method.
            raise ConfigError(
                f"is set, but ssma-prune fine-tunes each stage with the supervised protocol (the labels of train_data "
                f"only), not {what}: give --set {section}=false, or --finetune-steps 0",
                key=section, source=config.where(section))
    backbone, fusion = getattr(config, "backbone", ADAPNET_PP_BACKBONE), getattr(config, "fusion", None)
    if getattr(config, "num_modalities", 1) > 2:
        # The feature-map table knows two experts: a third would be left unpruned without a word.
        raise PruningError(f"{config.source}: pruning works on SSMA over two modalities, not "
                           f"{config.num_modalities}")
    if backbone != ADAPNET_PP_BACKBONE or fusion not in (None, "ssma"):
        # The feature-map table (ssma_tf.pruning.channels) knows AdapNet++'s ResNet-50 units and
        # SSMA's blocks; found only after the model is built and evaluated otherwise.
        what = f"backbone: {backbone}" if backbone != ADAPNET_PP_BACKBONE else f"fusion: {fusion}"
        raise PruningError(f"{config.source}: pruning works on AdapNet++ and SSMA on the AdapNet++ backbone "
                           f"(the paper's Section 3.5), not on {what}")
    if method not in METHODS + (CONTROL,):
        raise PruningError(f"method must be one of {', '.join(METHODS + (CONTROL,))}, got {method!r}")
    for index, stage in enumerate(stages, start=1):
        if not config.is_fusion and set(stage.groups) <= {"fusion"}:
            # Before: refused after stage 0's evaluation and the ranking, leaving a report behind.
            raise PruningError(f"stage {index} ({stage.spec!r}): the scope fusion holds SSMA's fusion blocks, and "
                               f"{config.model} has none")
    # Absolute, as the config's paths: the same relative pattern from another folder is other files.
    test_data = tuple(os.path.abspath(p) for p in _check_test_data(test_data))
    output = pathlib.Path(output)
    report_path = output / REPORT
    source = os.path.abspath(checkpoint or config.checkpoint)
    weights = _weights_identity(source)
    records = {**_records_identity(test_data),
               **_records_identity(config.train_data, "train_data_sha256")}
    # Everything a finished stage depends on: a resumed run with other weights, fine-tuning or
    # test records would otherwise report the old stages as its own. The config by content, so
    # that `--set` changes count and a moved file does not.
    config_text = json.dumps(config.to_dict(), sort_keys=True, default=str)
    config_digest, config_values = hashlib.sha256(config_text.encode()).hexdigest(), json.loads(config_text)
    settings = {"method": method, "stages": [s.spec for s in stages], "finetune_steps": finetune_steps,
                "rank_batches": rank_batches, "model": config.model, "source": str(config.source),
                "checkpoint": source, "config_sha256": config_digest[:16], "config": config_values,
                "finetune_learning_rate": finetune_learning_rate, "test_data": list(test_data), **weights, **records,
                # Named only when used, so that the reports of earlier runs still match theirs.
                **({"channel_multiple": channel_multiple} if channel_multiple != 1 else {})}
    # One process per output folder: two runs into one both wrote report.json and the stage
    # networks over each other (the lock lies outside the folder: `ssma_tf.files.folder_lock_path`).
    with folder_held(output, "prune", f"--output {output} is being written by another ssma-prune ({{holder}}): wait "
                     "for it to end, or give another output folder"):
        report = {"settings": settings, "stages": []}
        if not report_path.exists():
            leftovers = sorted(path.name for path in output.glob("stage*")
                               if re.fullmatch(r"stage\d+(\.keras)?", path.name))
            if _pruning_folder(output) or leftovers:
                # Before: a new run took up the stage networks and fine-tuning checkpoints another run
                # left there, and reported them as its own method and stages (helper 136).
                raise UserInputError(
                    f"--output {output} holds a pruning run whose {REPORT} is missing ("
                    + (", ".join(leftovers[:4]) + (", ..." if len(leftovers) > 4 else "") if leftovers else RUN_CONFIG)
                    + "): what it did is not known; give a new output folder, or remove that one to start again",
                    path=output)
            if (output / RUN_CONFIG).exists():
                # A training run's folder: its config.yaml would be replaced by this one.
                raise UserInputError(f"--output {output} holds a training run (its {RUN_CONFIG}); give ssma-prune a "
                                     "folder of its own", path=output)
        if report_path.exists():
            try:
                previous = read_report(report_path, f"--output {output}")
            except UserInputError as error:
                # What to do (before: the problem alone; helper 136).
                raise UserInputError(f"{error}; give a new output folder, or remove {output} to start again",
                                     path=report_path) from None
            old = previous.get("settings") or {}
            if "checkpoint" not in old:
                # Written before the weights and the exact weight accounting were recorded.
                raise UserInputError(
                    f"{report_path} was written by an earlier version of ssma-prune (it records neither the weights "
                    "nor the config's contents, and its stages counted some weights twice); give a new output folder",
                    path=report_path)
            # Where the config file lies is recorded, not compared: its contents are (config_sha256;
            # a report that records them, `config`, also names the keys that changed).
            # Reports written before 2026-12-02 record the test records as typed (relative, say) and
            # not the weights file: compared as far as they go.
            # Each as the run used it: no --finetune-lr is the config's rate, and given as that rate
            # it is the same run (before: None and 0.001 differed).
            unrecorded = {k for k in weights if k not in old}
            uncompared = unrecorded | {k for k in records if k not in old}  # reports before 2026-12-04
            differ = sorted(k for k in set(old) | set(settings)
                            if k not in ("source", "config", "stages") and k not in uncompared
                            and (setting_used(old, k) or setting_used(settings, k))
                            and setting_as_run(old, k) != setting_as_run(settings, k)
                            # The config's rate on both sides: a changed config key says it.
                            and not (k == "finetune_learning_rate" and old.get(k) is None and settings[k] is None))
            if differ:
                # Each change as `was -> now` (before: "finetune_steps differ (before: ...)", without
                # the new value, and "config_sha256 differ" for a changed config key).
                changes = [f"{k} {setting_as_run(old, k)!r} -> {setting_as_run(settings, k)!r}" for k in differ
                           if k not in ("config_sha256", "weights_sha256", "test_data_sha256", "train_data_sha256")]
                if "weights_sha256" in differ and "weights" not in differ:
                    changes.append(f"the weights in {weights['weights']} changed since stage 0 was measured on them")
                if "test_data_sha256" in differ and "test_data" not in differ:
                    changes.append("the test records changed since the finished stages were measured on them")
                if "train_data_sha256" in differ:
                    changes.append("the training records changed since the finished stages were ranked or fine-tuned "
                                   "on them")
                if "config_sha256" in differ:
                    changes += config_changes(old, settings)
                raise UserInputError(
                    f"{report_path} comes from another pruning run ({'; '.join(changes[:4])}); give a new output "
                    "folder or the same settings", path=report_path)
            _check_stage_list(previous, stages, report_path, log)
            report = dict(previous, settings=settings)  # the config's place and the stage list now
            # Another stage list is written before any stage's work: the stage folders left behind
            # are then of it (before: written only with the next result, so a run killed after a
            # stage's surgery left the old list, and a rerun of it took that network for its own stage).
            if setting_as_run(previous.get("settings") or {}, "stages") != setting_as_run(settings, "stages"):
                with atomic_write(report_path) as handle:
                    json.dump(report, handle, indent=2)
            finished = sorted(s["stage"] for s in previous.get("stages", []))
            if finished:
                of = (f"stage 0: {weights['weights']}" if not unrecorded else
                      f"its report does not record the weights stage 0 was measured on; now {weights['weights']}")
                log(f"resuming {report_path}: stage(s) {', '.join(map(str, finished))} measured there ({of})")
        _remove_leftovers(output, len(stages), log)
        eval_config = dataclasses.replace(config, mode="eval", test_data=test_data, eval_scales=(1.0,), eval_flip=False)

        def record(index: int, model: keras.Model) -> dict:
            log(f"stage {index}: evaluating on {', '.join(test_data)}")
            result = evaluate(eval_config, model=model, log=lambda line: log(f"  {line}"))
            # One trace of the inference call serves the FLOP count and the timing.
            traced = inference_function(model, config.height, config.width)
            entry = {
                "stage": index,
                "spec": None if index == 0 else stages[index - 1].spec,
                "params": count_params(model),
                "gflops": round(flops(model, config.height, config.width, traced) / 1e9, 4),
                "miou": round(result.miou, 3),
                "latency_ms": round(1000.0 * latency(model, config.height, config.width, latency_runs, traced), 3),
            }
            if index == 0 and _pruned_before(model, config):
                entry["pruned_before"] = True  # a stage network pruned again: not "unpruned"
            base = report["stages"][0] if report["stages"] else entry
            entry["param_reduction"] = round(100.0 * (1.0 - entry["params"] / base["params"]), 3)
            entry["miou_change"] = round(entry["miou"] - base["miou"], 3)
            entry["latency_ratio"] = round(entry["latency_ms"] / base["latency_ms"], 3)
            report["stages"] = [s for s in report["stages"] if s["stage"] != index] + [entry]
            with atomic_write(report_path) as handle:
                json.dump(report, handle, indent=2)
            log(f"stage {index}{f' ({start_name(entry)})' if index == 0 else ''}: {entry['params']:,} weights "
                f"({entry['param_reduction']:.2f} % fewer), "
                f"{entry['gflops']:.3f} GFLOPs, mIoU {entry['miou']:.2f} ({entry['miou_change']:+.2f}), "
                f"{entry['latency_ms']:.1f} ms")
            return entry

        done = {s["stage"] for s in report["stages"]}
        model = None
        # The file the digest is of: a run folder resolved again could name a newer checkpoint.
        source_weights = weights["weights"]
        if 0 not in done:
            model, line = _trained(config, source_weights)
            log(line)
            if stages and method != CONTROL:  # a first stage that cannot be carried out: before stage 0 is recorded
                check_stage_fits(model, stages[0], method, 1, channel_multiple)
            record(0, model)
        # The folder describes its networks as a run folder does: `ssma-evaluate OUT/stage1.keras`
        # takes the size, classes and dataset from it (before: "not a training run"; ssma-predict
        # predicted at each image's size). Written once stage 0 is, so that it is never the folder's
        # only file (which would pass for a training run that has not saved yet).
        write_run_config(config, output, header=_HEADER)
        for index, stage in enumerate(stages, start=1):
            final = output / f"stage{index}.keras"
            folder = output / f"stage{index}"
            if final.exists() and index in done:
                log(f"stage {index} ({stage.spec}) is done: {final}")
                _remove_stage_folder(folder, final, log)  # killed between the two
                model = None
                continue
            if index in done and any(later in done for later in range(index + 1, len(stages) + 1)):
                # Its network was removed, but the finished stages after it started from it: redone,
                # it would stand in the report beside stages pruned from the old network.
                log(f"stage {index} ({stage.spec}) is done: {final} is gone, but the finished stage(s) after it "
                    "started from it; its figures stay in the report (a new output folder redoes it)")
                model = None
                continue
            pruned_path = folder / "pruned.keras"
            saved = None  # the network pruned.keras holds, where this run wrote it
            if pruned_path.exists():  # the network before it is not needed (before: loaded all the same)
                done_before = "kept" if method == CONTROL else "pruned"
                log(f"stage {index} ({stage.spec}): {done_before} before, in {pruned_path}")
            elif model is None and index > 1:
                model = _load(output / f"stage{index - 1}.keras", f"redoes stage {index - 1}")
            elif model is None:
                model, line = _trained(config, source_weights)
                log(line)
            if not pruned_path.exists() and method == CONTROL:
                log(f"stage {index} ({stage.spec}): the control prunes nothing")
                _save(model, pruned_path)
                saved = model
            elif not pruned_path.exists():
                check_stage_fits(model, stage, method, index, channel_multiple)  # before its "ranking" line
                batches = make_train_dataset(config).take(rank_batches) if method != "l1" else None
                log(f"stage {index} ({stage.spec}): ranking by {method}"
                    + (f" on {rank_batches} training batch{'es' if rank_batches != 1 else ''}"
                       if batches is not None else ""))
                with naming_damaged_records(list_record_files(config.train_data), config.record_modalities):
                    pruned = prune_stage(model, stage, method, index, batches, channel_multiple,
                                         tuple(config.aux_loss_weights))
                _save(pruned, pruned_path)
                saved = pruned
            if finetune_steps > 0:
                tune = config.without_starting_weights(
                    checkpoint=str(folder / "checkpoints"), max_iteration=finetune_steps,
                    save_step=min(config.save_step, finetune_steps), log_dir=None,
                    learning_rate=finetune_learning_rate or config.learning_rate,
                )
                trainer = Trainer(tune, model_fn=lambda path=pruned_path: _load(path, f"ranks stage {index} again"),
                                  log=log)
                trainer.run()  # names a damaged training record's file and index
                model = trainer.model
            elif saved is not None:
                # Used as it is: before, read back from the file it was just written to and written
                # again as the stage's network (6 s and 2 s for AdapNet++ on one core).
                model = saved
            else:
                model = _load(pruned_path, f"ranks stage {index} again")
            record(index, model)
            if finetune_steps > 0:
                _save(model, final)
            else:
                _copy(pruned_path, final)
            _remove_stage_folder(folder, final, log)
        return report


def report_labels(reports: Sequence[dict], folders: Sequence[str]) -> list[str]:
    """What names each report in the table and the plot: its method, and its folder too where
    two reports share a method or pruned different networks (before: two lines "taylor")."""
    methods = [r["settings"]["method"] for r in reports]
    networks = {(r["settings"].get("model"), r["settings"].get("checkpoint")) for r in reports}
    if len(set(methods)) == len(methods) and len(networks) == 1:
        return methods
    names = [os.path.basename(os.path.normpath(folder)) for folder in folders]
    if len(set(names)) < len(names):  # a/taylor and b/taylor
        names = [os.path.normpath(folder) for folder in folders]
    return [f"{method} ({name})" for method, name in zip(methods, names)]


def start_name(entry: dict) -> str:
    """How the table names stage 0: "unpruned", or "pruned before" for a network that an
    earlier run pruned (its stage network given as the checkpoint)."""
    return "pruned before" if entry.get("pruned_before") else "unpruned"


def format_table(reports: Sequence[dict], labels: Optional[Sequence[str]] = None) -> str:
    """A Table-8-style table: one row per method and stage (latency as the ratio to unpruned).

    Args:
        reports: the reports, as `run` returns them (`report.json`).
        labels: one per report (`report_labels`); default: their methods.
    """
    labels = labels or [r["settings"]["method"] for r in reports]
    rows = []
    for report, label in zip(reports, labels):
        for entry in sorted(report["stages"], key=lambda e: e["stage"]):
            name = start_name(entry) if entry["stage"] == 0 else f"{entry['stage']}: {entry['spec']}"
            rows.append((label, name, entry))
    width = max([len("stage")] + [len(name) for _, name, _ in rows])
    first = max([8] + [len(label) for label in labels])
    lines = [f"{'method':<{first}} {'stage':<{width}} {'params':>12} {'removed %':>9} {'GFLOPs':>8} {'mIoU':>7} "
             f"{'change':>7} {'latency':>8}"]
    for method, name, entry in rows:
        lines.append(
            f"{method:<{first}} {name:<{width}} {entry['params']:>12,} {entry['param_reduction']:>9.2f} "
            f"{entry['gflops']:>8.3f} {entry['miou']:>7.2f} {entry['miou_change']:>+7.2f} "
            f"{entry['latency_ratio']:>7.2f}x"
        )
    return "\n".join(lines)


def nice_ticks(low: float, high: float, most: int = 7) -> list[float]:
    """Tick values at a round step (1, 2, 2.5 or 5 times a power of ten) that cover [low, high]
    with at most `most` ticks, the first at or below `low` and the last at or above `high`."""
    span = max(high - low, 1e-9)
    power = 10.0 ** math.floor(math.log10(span))
    for factor in (0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 2.5, 5.0, 10.0):
        step = factor * power
        first, last = math.floor(low / step + 1e-9), math.ceil(high / step - 1e-9)
        if last - first + 1 <= most:
            return [round(k * step, 10) for k in range(first, last + 1)]
    raise AssertionError("unreachable: ten times the span's power of ten gives two ticks")


def _tick_text(value: float, ticks: Sequence[float], sign: bool = False) -> str:
    """A tick's label with as many decimals as the step needs (0.25 steps: two)."""
    step = abs(ticks[1] - ticks[0]) if len(ticks) > 1 else 1.0
    decimals = next(d for d in range(4) if abs(round(step, d) - step) < 1e-9)
    return f"{value:{'+' if sign else ''}.{decimals}f}"


def plot(reports: Sequence[dict], path: os.PathLike, labels: Optional[Sequence[str]] = None) -> str:
    """A Figure-15-style plot (PNG): parameter reduction against mIoU change, one line per method.

    Drawn with Pillow (a dependency already) rather than a plotting library; `labels` as for
    `format_table`. The ticks fall on round values; the legend stands above the frame, where no
    line can run through it.
    """
    labels = labels or [r["settings"]["method"] for r in reports]
    from PIL import Image, ImageDraw

    series = [(label, sorted(r["stages"], key=lambda e: e["stage"])) for r, label in zip(reports, labels)]
    width, margin = 640, 60
    top = 40 + 16 * len(series)  # the axis title, then one legend line per method
    height = top + 300 + margin
    xs = [e["param_reduction"] for _, entries in series for e in entries] or [0.0]
    ys = [e["miou_change"] for _, entries in series for e in entries] or [0.0]
    x_ticks = nice_ticks(0.0, max(1.0, max(xs)))
    y_ticks = nice_ticks(min(min(ys), -0.5), max(max(ys), 0.5))
    x_max, y_low, y_high = x_ticks[-1], y_ticks[0], y_ticks[-1]
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)

    def point(x: float, y: float) -> tuple[float, float]:
        return (margin + (width - 2 * margin) * x / x_max,
                height - margin - (height - margin - top) * (y - y_low) / (y_high - y_low))

    draw.rectangle([margin, top, width - margin, height - margin], outline="black")
    draw.line([point(0, 0), point(x_max, 0)], fill=(160, 160, 160))
    for x in x_ticks:
        text = _tick_text(x, x_ticks)
        draw.text((point(x, y_low)[0] - 3 * len(text), height - margin + 6), text, fill="black")
    for y in y_ticks:
        draw.text((6, point(0, y)[1] - 6), _tick_text(y, y_ticks, sign=True), fill="black")
    draw.text((width / 2 - 70, height - 25), "parameters removed (%)", fill="black")
    draw.text((6, 12), "mIoU change (points)", fill="black")
    # Ten colours, then the same ten with another marker: before, five colours repeated from the
    # sixth method on (helper 195).
    colours = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14), (140, 86, 75),
               (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]
    # Right-aligned above the frame, each label as wide as the font draws it, cut from the left
    # when it does not fit (before: long run-folder labels started off the picture; helper 195).
    room = width - margin - 6 - 16
    names = [_fit_text(draw, name, room) for name, _ in series]
    left = round(width - margin - 16 - max((draw.textlength(name) for name in names), default=0))
    for k, ((_, entries), name) in enumerate(zip(series, names)):
        colour, marker = colours[k % len(colours)], k // len(colours) % len(_MARKERS)
        points = [point(e["param_reduction"], e["miou_change"]) for e in entries]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        for x, y in points:
            _marker(draw, marker, x, y, 4, colour)
        _marker(draw, marker, left - 8, 32 + 16 * k + 6, 4, colour)
        draw.text((left, 32 + 16 * k), name, fill=colour)
    save_png(path, np.asarray(image))
    return str(path)


_MARKERS = ("circle", "square", "triangle")


def _marker(draw, shape: int, x: float, y: float, size: float, colour) -> None:
    """A filled marker of `_MARKERS[shape]` centred on (x, y)."""
    if _MARKERS[shape] == "circle":
        draw.ellipse([x - size, y - size, x + size, y + size], fill=colour)
    elif _MARKERS[shape] == "square":
        draw.rectangle([x - size, y - size, x + size, y + size], fill=colour)
    else:
        draw.polygon([(x, y - size - 1), (x - size - 1, y + size), (x + size + 1, y + size)], fill=colour)


def _fit_text(draw, text: str, room: float) -> str:
    """`text`, or its end after "..." when the whole does not fit in `room` pixels (the end of a
    folder path names the run)."""
    if draw.textlength(text) <= room:
        return text
    for start in range(1, len(text)):
        cut = "..." + text[start:]
        if draw.textlength(cut) <= room:
            return cut
    return "..."
