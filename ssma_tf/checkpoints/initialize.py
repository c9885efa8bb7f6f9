"""Starting a training run from the weights its config names, and checking a checkpoint fits first.

`check_checkpoint_fits` tells in seconds, before minutes of model building, when an original TF1
checkpoint is for the other network; `initialize_model` loads `intialize` (or SSMA's
`checkpoint1`/`checkpoint2`) into a freshly built model, as the original training scripts did.
The loading itself is `ssma_tf.checkpoints.loading`.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Callable, Iterator, Optional

import keras

from ssma_tf.config import PRETRAINING_RUN
from ssma_tf.config.runs import final_files_current, find_run_config, saved_run_config
from ssma_tf.constants import ADAPNET_PP, ADAPNET_PP_BACKBONE, DECODER_FILTERS, FINAL_WEIGHTS, RUN_CONFIG, SSMA_FUSION
from ssma_tf.errors import first_line
from ssma_tf.models import SSMA, AdapNetPP
from ssma_tf.checkpoints.finetune import finetune_weights
from ssma_tf.checkpoints.loading import (
    expert_rates_problem, load_weights, refuse_other_trained_rates, run_model, unimodal_encoder_weights,
    warn_of_expert_rates,
)
from ssma_tf.checkpoints.reading import keras_file_config
from ssma_tf.checkpoints.resolve import FORMAT_KERAS, FORMAT_TF1, resolve_weights
from ssma_tf.checkpoints.tf1_import import (
    KIND_ADAPNET_PP,
    KIND_IMAGENET,
    KIND_SSMA,
    CheckpointError,
    detect_kind,
    load_tf1_checkpoint,
    num_classes_of,
    read_checkpoint,
)


def check_checkpoint_fits(config: Any, path: str) -> str:
    """Fails fast, before a model is built, when a whole-model checkpoint is for the other model.

    Original TF1 checkpoints say what they hold without loading them (by their names); own
    checkpoints and weight files in a training run's folder by the run's `config.yaml`; other
    files are checked when they are loaded.

    Args:
        config: a `RunConfig` (its `model`).
        path: the checkpoint to evaluate or start from.

    Returns:
        The checkpoint format (`FORMAT_TF1`, `FORMAT_TF2` or `FORMAT_KERAS`).

    Raises:
        CheckpointError: an SSMA checkpoint (or run) for AdapNet_pp, a unimodal AdapNet++ one for SSMA,
            one of another class count, the ImageNet initialisation to evaluate, a run trained with
            other eASPP rates to evaluate (`refuse_other_trained_rates`), or nothing readable at `path`.
    """
    fmt, resolved = resolve_weights(path)
    if fmt != FORMAT_TF1:
        _check_run_model(config, path, resolved)
        if not (config.mode == "train" and path == getattr(config, "initialize", None)):
            # Weights to evaluate, predict, export or prune: a run of other eASPP rates loaded into the
            # config's and was scored at them without a word (helper 340; `intialize`: `initialize_model`).
            refuse_other_trained_rates(config, path)
        return fmt
    shapes = read_checkpoint(resolved)
    kind = detect_kind(shapes, resolved)
    if kind == KIND_SSMA and not config.is_fusion:
        raise CheckpointError(
            f"{resolved} is an SSMA checkpoint (rgb/ and depth/ experts), but the config "
            f"{config.source} says model: {config.model}; set model: SSMA"
        )
    if kind == KIND_ADAPNET_PP and config.is_fusion:
        raise CheckpointError(
            f"{resolved} is a unimodal AdapNet++ checkpoint, but the config {config.source} says "
            "model: SSMA; set model: AdapNet_pp, or start the SSMA experts from it with "
            "checkpoint1/checkpoint2"
        )
    if kind == KIND_IMAGENET and config.mode == "eval":
        raise CheckpointError(
            f"{resolved} is the ImageNet initialisation checkpoint: it has no decoder to evaluate"
        )
    starting = config.mode == "train" and path == getattr(config, "initialize", None)
    if kind == KIND_IMAGENET and not starting:
        # Before: a prediction or export ran on a decoder nothing had loaded, exit 0.
        raise CheckpointError(f"{resolved} is the ImageNet initialisation of AdapNet++'s encoder, not a trained model "
                              "(it has no decoder): give it as a training config's intialize", path=resolved)
    fusion = getattr(config, "fusion", None)
    if config.is_fusion and fusion not in (None, SSMA_FUSION):
        # Before: a traceback ("'FusionBaseline' object has no attribute 'encoder'").
        raise CheckpointError(
            f"{resolved} is a checkpoint of the original TF1 code, which holds AdapNet++ or SSMA, not the "
            f"fusion baseline {fusion}: start its experts from unimodal runs with checkpoint1/checkpoint2 "
            "(checkpoints for more modalities)", path=resolved)
    classes = None if kind == KIND_IMAGENET else num_classes_of(shapes, resolved)
    if classes is not None and classes != config.num_classes and getattr(config, "pretraining", None):
        # Before: "the config ..., line 2 says num_classes: 2", of a line that says 12 (helper 266).
        raise CheckpointError(f"{_where(config, 'initialize')}key 'intialize': {resolved} has {classes} classes "
                              f"(void included), and {_PRETRAINING_OUTPUTS}", path=resolved)
    if classes is not None and classes != config.num_classes:
        # Found after the model is built otherwise, naming a variable rather than what to change.
        to_finetune = ("; to train on another class set, start from it with finetune_from instead of intialize"
                       if config.mode == "train" and path == config.initialize else "")
        raise CheckpointError(
            f"{resolved} has {classes} classes (void included), but the config "
            f"{config.where('num_classes')} says num_classes: {config.num_classes}{to_finetune}"
        )
    return fmt


# Why a trained segmentation model is refused as depth pretraining's `intialize`.
_PRETRAINING_OUTPUTS = ("depth pretraining's network has 2 outputs, for the depth, in place of its class layers: start "
                        "it from that model with finetune_from instead of intialize, which starts the class layers "
                        "fresh")


def _check_run_model(config: Any, path: str, resolved: str) -> None:
    """A checkpoint of a training run of the other network fails here, naming what to use instead.

    Found when the weights are loaded otherwise, after the model is built, with an internal
    variable path in the message.
    """
    starting = config.mode == "train" and path == config.initialize
    saved = saved_run_config(resolved)
    if saved.get("pretraining") and not getattr(config, "pretraining", None):
        # Before: a 2-class config took the depth network's outputs for its classes without a word,
        # another class count was told of "2 classes" (helper 266).
        raise CheckpointError(f"{_where(config, 'initialize' if starting else None)}"
                              f"{'key ' + repr('intialize') + ': ' if starting else ''}{path} is of {PRETRAINING_RUN}",
                              path=resolved)
    if (starting and getattr(config, "pretraining", None) and not saved.get("pretraining")
            and isinstance(saved.get("num_classes"), int) and saved["num_classes"] != config.num_classes):
        # Before: "the file has 12 classes, the model 2", a count the user's config does not say.
        raise CheckpointError(f"{_where(config, 'initialize')}key 'intialize': {path} is a segmentation run of "
                              f"{saved['num_classes']} classes, and {_PRETRAINING_OUTPUTS}", path=resolved)
    trained = run_model(resolved)  # None: no run config, or none this check can use
    if trained is None:
        return
    if trained.lower() == str(config.model).lower():
        _check_run_modalities(config, path, resolved)
        return
    where = _where(config, "initialize" if starting else None)
    key = "key 'intialize': " if starting else ""
    if starting and config.is_fusion:
        hint = ("; SSMA starts its experts from unimodal runs with checkpoint1/checkpoint2 (checkpoints for more "
                "modalities), and intialize takes a whole SSMA (stage 3 from stage 2)")
    elif starting:
        hint = "; an AdapNet++ starts from AdapNet++ weights or the ImageNet checkpoint"
    else:
        hint = f"; give that run's config, or a checkpoint of a {config.model} run"
    raise CheckpointError(
        f"{where}{key}{path} is a run of model: {trained} (its {RUN_CONFIG}), but the config says model: "
        f"{config.model}{hint}"
    )


def check_finetune_source(config: Any, path: str) -> None:
    """Fails fast when `finetune_from` is a fusion run that fuses another way or another number of
    modalities than the config, naming the key.

    Fine-tuning copies only the layers the config's network has: a run over three modalities
    started a two-modality fusion without its third expert, and said nothing of it (helper 338).
    Its other checks are `intialize`'s but for the class count, which fine-tuning changes, and the
    depth-pretraining run, which is the start `finetune_from` is for; another network is named
    by `finetune_weights`.
    """
    with _naming_key(config, None, key="finetune_from"):  # a missing source too
        fmt, resolved = resolve_weights(path)
        trained = None if fmt == FORMAT_TF1 else run_model(resolved)  # TF1 checkpoints hold SSMA's 2 experts
        if trained is not None and trained.lower() == str(config.model).lower():
            _check_run_modalities(config, path, resolved, where="")


def _check_run_modalities(config: Any, path: str, resolved: str, where: Optional[str] = None) -> None:
    """A fusion run's checkpoint for a config that fuses another way (`fusion`) or another number
    of modalities fails here (after `where`, when given: the caller names the key).

    Found when the weights are loaded otherwise, as a shape or array-count mismatch that does not
    say why (a stage-3 config copied from the two-modality template, without `modalities:`, for a
    stage 2 over three).
    """
    if not config.is_fusion:
        return
    saved = saved_run_config(resolved)
    if where is None:
        where = _where(config, "initialize" if path == getattr(config, "initialize", None) else None)
    # A baseline's run (fusion: cmode) for an SSMA config, or one baseline's for another's: before,
    # "holds 783 arrays but this SSMA has 747 weights: it holds another model".
    fused, wanted = saved.get("fusion") or SSMA_FUSION, getattr(config, "fusion", None) or SSMA_FUSION
    if isinstance(fused, str) and fused != wanted:
        raise CheckpointError(
            f"{where}{path} is a run of fusion: {fused} (its {RUN_CONFIG}), but the config says fusion: {wanted}; "
            f"give the config fusion: {fused}, or a checkpoint of a fusion: {wanted} run")
    listed = saved.get("modalities")
    trained = len(listed) if isinstance(listed, list) and listed else 2
    if trained == config.num_modalities:
        return
    raise CheckpointError(
        f"{where}{path} is a run over {trained} modalities (its {RUN_CONFIG}: modalities "
        f"{listed if listed else '(two, the default)'}), but this config fuses {config.num_modalities}; "
        f"give the config the run's modalities list (one name per image of the records)"
    )


def initialize_model(model: keras.Model, config: Any) -> list[str]:
    """Loads the starting weights a training config names, as the original scripts did.

    AdapNet++: `intialize` (the ImageNet TF1 checkpoint, or any AdapNet++ weights).
    SSMA: `checkpoint1` → modality-1 expert and `checkpoint2` → modality-2 expert, or
    `checkpoints` with one per expert for N modalities (unimodal AdapNet++ checkpoints, TF1 or
    own: only their encoders are used), or `initialize` with a whole SSMA checkpoint (e.g. stage 3
    starting from stage 2). The fusion baselines take the same checkpoints: whole (encoder and
    decoder) for those built on whole unimodal networks (`average`, `maximum`, `late`, `cmode`),
    their encoders for `lfc` and `fusenet`.
    Either: `finetune_from`, a trained model of the same kind with any class count
    (`ssma_tf.checkpoints.finetune`).

    Args:
        model: the freshly built model.
        config: the training `RunConfig`.

    Returns:
        Lines for the log, one per source loaded (none: training starts from random weights).
    """
    messages = []
    backbone = getattr(config, "backbone", ADAPNET_PP_BACKBONE)
    if (getattr(config, "backbone_weights", None) and backbone != ADAPNET_PP_BACKBONE
            and backbone_weights_replaced_by(config) is None):
        # Loaded when the model was built (`build_model`); said here with the other sources.
        messages.append(f"{config.backbone_weights} (backbone_weights): the {config.backbone} backbone of "
                        f"{'every expert' if config.is_fusion else 'the encoder'}")
    for key, start in (("finetune_from", config.finetune_from), ("initialize", config.initialize)):
        rates = getattr(model, "easpp_rates", None)
        # A whole network of other eASPP rates, which are in no weight's shape, as for an expert
        # (before: loaded without a word; helper 244).
        problem = None if start is None or rates is None else expert_rates_problem(
            [start], rates, "the config's network has", "set easpp_rates: {rates} in the config, as it was trained")
        if problem is not None:
            with _naming_key(config, None, key=key):
                raise CheckpointError(problem[1], path=start)
    if config.finetune_from is not None:
        check_finetune_source(config, config.finetune_from)
        # Named with the key and the config's file, as the experts' checkpoints are (before: the file
        # alone; helper 338).
        with _naming_key(config, None, key="finetune_from"):
            messages.append(str(finetune_weights(model, config.finetune_from)))
    if config.initialize is not None:
        if config.is_fusion:
            with _naming_key(config, None, key="initialize"):
                _refuse_imagenet_for_frozen_experts(config, *resolve_weights(config.initialize),
                                                    "input batch norms, skips and eASPP")
        with _naming_key(config, None, key="intialize"):
            messages.append(load_weights(model, config.initialize, initialization=True))
    sources = config.expert_checkpoints if config.is_fusion else None
    experts = getattr(model, "experts", None)
    if sources is not None and len(sources) != len(experts or model.encoders):
        raise CheckpointError(
            f"{config.source}: {len(sources)} expert checkpoints for an SSMA of "
            f"{len(experts or model.encoders)} modalities; give one per expert"
        )
    if sources is not None and experts:
        # A baseline that combines whole unimodal networks (ssma_tf.models.fusion_baselines)
        # takes each expert checkpoint whole: encoder and decoder.
        for index, (expert, source) in enumerate(zip(experts, sources)):
            with _naming_key(config, index):
                # A start, as `intialize` is: the ImageNet initialisation is taken here too, for
                # experts that train. Frozen, their eASPP, decoder and heads would stay random, and
                # nothing would train (before: a "trained" run of random decoders; helper 144).
                fmt, resolved = resolve_weights(source)
                _refuse_imagenet_for_frozen_experts(config, fmt, resolved, "decoders")
                if fmt == FORMAT_KERAS and resolved.endswith(".keras"):
                    # Before: a MobileNet v2 expert was 11 Keras warnings and a message cut at its
                    # colon, one without auxiliary heads a shape error about other layers (helper 144).
                    # Read from its config, not built: `load_weights` below reads the file again.
                    held = keras_file_config(resolved)
                    arguments = held.get("config") or {}
                    if held.get("class_name") != AdapNetPP.__name__:
                        raise CheckpointError(f"{resolved} holds a {held.get('class_name')}, not an AdapNetPP",
                                              path=resolved)
                    backbone = arguments.get("backbone", ADAPNET_PP_BACKBONE)
                    if backbone != expert.backbone:
                        raise CheckpointError(f"the model file {resolved} holds an AdapNet++ on the {backbone} "
                                              f"backbone, but the experts are on the {expert.backbone} backbone",
                                              path=resolved)
                    if arguments.get("aux_heads", True) != expert.aux_heads:
                        raise CheckpointError(f"the model file {resolved} holds an AdapNet++ without auxiliary heads, "
                                              f"which the experts of fusion {config.fusion} have: give its run's "
                                              "final.weights.h5 or a model saved with them", path=resolved)
                # An expert run of other eASPP rates loaded into the baseline's (the released ones,
                # which its config cannot change) without a word: another network (helper 144).
                # A lone `.keras` file says them too (helper 220).
                problem = expert_rates_problem([source], expert.easpp_rates, *_baseline_rates_words(config))
                if problem is not None:
                    raise CheckpointError(problem[1], path=source)
                messages.append(f"{load_weights(expert, source, initialization=True)} (the {expert.name})")
    elif sources is not None:
        formats = [resolve_weights(p) for p in sources]
        for index, (fmt, resolved) in enumerate(formats):
            # The encoders alone, but AdapNet++'s ImageNet initialisation has no input batch norm,
            # skips or eASPP: frozen, they stayed random (before: without a word; helper 244).
            with _naming_key(config, index):
                _refuse_imagenet_for_frozen_experts(config, fmt, resolved, "input batch norms, skips and eASPP")
        if len(sources) == 2 and all(fmt == FORMAT_TF1 for fmt, _ in formats) and isinstance(model, SSMA):
            for index, (_, resolved) in enumerate(formats):
                # Each named with its key, damaged or whole SSMA (before: "do not pass a second
                # checkpoint", naming no key; helper 126).
                with _naming_key(config, index):
                    if detect_kind(read_checkpoint(resolved), resolved) == KIND_SSMA:
                        raise CheckpointError(
                            f"{resolved} is a whole SSMA checkpoint: it starts a run as intialize (or finetune_from "
                            "for another class set); checkpoint1 and checkpoint2 take unimodal AdapNet++ "
                            "checkpoints, one per expert", path=resolved)
            report = load_tf1_checkpoint(model, formats[0][1], formats[1][1], strict=True)
            messages.append(str(report))
        else:
            dropout_rate = 1.0 - config.dropout_keep_prob
            loaded: dict[str, list] = {}  # one throw-away AdapNet++ per distinct source
            # The rates are in no weight's shape: an expert of others ran at this network's without a
            # word (helper 214).
            if isinstance(model, SSMA):
                problem = expert_rates_problem(sources, model.easpp_rates, "this SSMA's experts have",
                                               "set easpp_rates: {rates} in the config, as its experts were trained")
            else:  # the encoders of lfc and fusenet: the released rates, which the config cannot change
                problem = expert_rates_problem(sources, model.encoders[0].easpp_rates, *_baseline_rates_words(config))
            if problem is not None:
                with _naming_key(config, problem[0]):
                    raise CheckpointError(problem[1], path=sources[problem[0]])
            for index, (encoder, source) in enumerate(zip(model.encoders, sources)):
                if source not in loaded:
                    with _naming_key(config, index):
                        # Only the encoder is taken: the expert's class count is the one its weights
                        # have (as two TF1 checkpoints, by name), not the SSMA's (helper 126).
                        # A run's decoder is built as its config.yaml says: only its encoder is used,
                        # and an expert run of other decoder_filters was refused for its decoder
                        # (helper 338). A lone weights file is built with the fusion config's width.
                        filters = (None if find_run_config(source) is not None
                                   else getattr(config, "decoder_filters", DECODER_FILTERS))
                        loaded[source] = unimodal_encoder_weights(
                            source, None, dropout_rate, getattr(config, "backbone", "adapnet_pp"),
                            decoder_filters=filters)
                with _naming_key(config, index):
                    try:
                        encoder.set_weights(loaded[source])
                    except ValueError as error:
                        # A `.keras` expert is built as it was saved, whatever the config says.
                        raise CheckpointError(
                            f"{source}: its encoder does not fit the {encoder.name} expert of this SSMA "
                            f"(backbone: {getattr(config, 'backbone', 'adapnet_pp')}): {first_line(error)}; was it "
                            "trained with another backbone?") from None
                messages.append(f"{source}: loaded into the {encoder.name} expert")
    if sources is not None and isinstance(model, SSMA):
        # Released 19-class Cityscapes experts (eASPP rates 6, 12, 18) start experts of the
        # default rates without an error: said, as for an AdapNet++ loaded with them.
        for source in dict.fromkeys(sources):
            fmt, resolved = resolve_weights(source)
            if fmt == FORMAT_TF1:
                shapes = read_checkpoint(resolved)
                if detect_kind(shapes, resolved) == KIND_ADAPNET_PP:
                    warn_of_expert_rates(resolved, num_classes_of(shapes, resolved), model.easpp_rates, stacklevel=2)
    return messages


def backbone_weights_replaced_by(config: Any) -> Optional[str]:
    """The key whose weights replace every encoder that `backbone_weights` would start (None: no
    `backbone_weights` to read, or it is the only start of the encoders).

    `finetune_from` and `intialize` load the whole network, and the experts' checkpoints every
    expert's encoder: the ImageNet backbone was read, then overwritten, while the log said it
    started the backbone (helper 338).
    """
    if not getattr(config, "backbone_weights", None):
        return None
    if getattr(config, "backbone", ADAPNET_PP_BACKBONE) == ADAPNET_PP_BACKBONE:
        return None
    if config.finetune_from is not None:
        return "finetune_from"
    if config.initialize is not None:
        return "intialize"
    if config.is_fusion and config.expert_checkpoints is not None:
        return "checkpoints" if getattr(config, "checkpoints", None) is not None else "checkpoint1/checkpoint2"
    return None


def unread_backbone_weights_line(config: Any) -> Optional[str]:
    """The log's line for a `backbone_weights` that is not read (`backbone_weights_replaced_by`);
    None when it is read. Said, not refused: shipped configs name it beside the checkpoints."""
    key = backbone_weights_replaced_by(config)
    if key is None:
        return None
    encoders = "every expert's encoder" if config.is_fusion else "the encoder"
    return (f"{_where(config, 'backbone_weights')}key 'backbone_weights': {config.backbone_weights} is not read: "
            f"{key} starts {encoders}, {config.backbone} backbone included")


def _baseline_rates_words(config: Any) -> tuple[str, str]:
    """What a fusion baseline's expert rates are, and what to do about other ones
    (`expert_rates_problem`): the released rates, which the baseline's config cannot change."""
    return (f"the experts of fusion {config.fusion} have the released rates",
            "give experts trained with those (or compare with SSMA, whose easpp_rates the config sets)")


# The images a record of some record files holds (None: not known); the data layer's
# `modalities_in_records`, which this layer may not import.
RecordsModalities = Callable[[Any], Optional[int]]


def other_modality_run(source: str, index: int,
                       records_modalities: Optional[RecordsModalities] = None) -> Optional[tuple[str, str]]:
    """(run folder, the modality it read) when `source` is a checkpoint of an AdapNet++ run that
    read another modality than the expert of modality `index + 1`, which it is about to start;
    None otherwise (no run config, an unreadable one, the right modality, or a run on records of
    one modality, whose one image may be any modality, when `records_modalities` tells)."""
    run = find_run_config(source)
    raw = saved_run_config(run) if run is not None else {}  # unreadable: named when the weights load
    read = raw.get("input_modality") or "modality1"
    if raw.get("model") != ADAPNET_PP or read == f"modality{index + 1}":
        return None
    if read == "modality1" and records_modalities is not None and raw.get("train_data"):
        # A depth expert trained on `depth label` records (ssma-prepare without --modality1-dir)
        # read modality 1, its depth: before, its stage 2 was told to swap the checkpoints.
        if records_modalities(raw["train_data"]) == 1:
            return None
    return os.path.dirname(run), read


def other_input_modality_warning(config: Any, path: str) -> Optional[str]:
    """A warning (without "warning:") when `path` is a checkpoint of an AdapNet++ run that read
    another modality than the AdapNet++ `config` feeds it; None otherwise (SSMA configs too).

    `ssma-evaluate RUN_RGB --checkpoint RUN_DEPTH` scored the depth expert on the colour images
    without a word. Only a warning, as for the SSMA experts: records that hold the depth images
    as their first modality are right to feed a depth run's weights modality 1.

    Args:
        config: the `RunConfig` that evaluates, predicts or exports (its `input_modality`).
        path: the checkpoint, weights or `.keras` file (in a run's folder) to be loaded.
    """
    if config.is_fusion:
        return None
    given = config.input_modality or "modality1"
    found = other_modality_run(path, int(given.removeprefix("modality")) - 1)
    if found is None:
        return None
    run, read = found
    return (f"{_where(config)}{path} is from the run {run}, trained on {read} (input_modality in its {RUN_CONFIG}), but it "
            f"is given {given}; pass --set input_modality={read} unless the records hold the {read} images "
            f"as {given}")


def swapped_expert_warnings(config: Any, records_modalities: Optional[RecordsModalities] = None) -> list[str]:
    """Warnings for expert checkpoints whose run read another modality than the expert they start.

    A training run's `config.yaml` says which modality its AdapNet++ read (`input_modality`); the
    depth run given as `checkpoint1` (the RGB expert) would otherwise train and evaluate without a
    word. Only a warning: a run trained on records that hold that modality first (a list of
    `depth label` lines) is right where its config says `modality1`; with `records_modalities`
    a run on records of one modality is not warned of at all.

    Returns:
        One line per such checkpoint (without "warning:"), naming the config key and the run.
    """
    warnings: list[str] = []
    for index, source in enumerate((config.expert_checkpoints or ()) if config.is_fusion else ()):
        found = other_modality_run(source, index, records_modalities)
        if found is not None:
            key = _expert_key(config, index)
            warnings.append(f"{_where(config, key)}key '{key}': " + swapped_expert_line(*found, index))
    return warnings


def swapped_expert_line(run: str, read: str, index: int) -> str:
    """What `swapped_expert_warnings` says of one expert (after the key or flag that named it)."""
    return (f"the run {run} was trained on {read} (input_modality in its {RUN_CONFIG}) but starts the "
            f"modality{index + 1} expert; if the checkpoints are in the wrong order, swap them")


@contextlib.contextmanager
def _naming_key(config: Any, index: Optional[int], key: Optional[str] = None) -> Iterator[None]:
    """Puts the config key of expert `index`'s checkpoint (or `key`) in front of a `CheckpointError`.

    The error names the file; with two or more experts the user also needs to know which line of
    the config to change (`checkpoint2`, `checkpoints[2]`).
    """
    try:
        yield
    except CheckpointError as error:
        key = key if key is not None else _expert_key(config, index)
        raise CheckpointError(f"{_where(config, key)}key '{key}': {error}") from None


def _refuse_imagenet_for_frozen_experts(config: Any, fmt: str, resolved: str, parts: str) -> None:
    """Refuses AdapNet++'s ImageNet initialisation (an encoder without its `parts`) as the start of
    experts that the fusion keeps frozen: those parts would stay random, and never train
    (helpers 144 and 244)."""
    if (config.experts_frozen and fmt == FORMAT_TF1
            and detect_kind(read_checkpoint(resolved), resolved) == KIND_IMAGENET):
        raise CheckpointError(
            f"{resolved} is the ImageNet initialisation of AdapNet++'s encoder (no {parts}), and the "
            f"experts of fusion {config.fusion} are frozen (freeze_experts): their {parts} would stay "
            "random; give trained unimodal runs, or freeze_experts: false to train them from it",
            path=resolved)


def _expert_key(config: Any, index: int) -> str:
    """The config key of expert `index`'s checkpoint: `checkpoint2`, or `checkpoints[1]`."""
    return f"checkpoints[{index}]" if getattr(config, "checkpoints", None) is not None else f"checkpoint{index + 1}"


def _where(config: Any, key: Optional[str] = None) -> str:
    """The config's file (and the `--set` that gave `key`), as an error's prefix; "" for a config
    built in code ("<dict>")."""
    if config.source == "<dict>":
        return ""
    where = getattr(config, "where", None)
    # `checkpoints[1]` is an item of the key `checkpoints`.
    return f"{where(key.split('[')[0]) if key is not None and where is not None else config.source}: "


def unfinished_run_warnings(config: Any) -> list[str]:
    """Warnings for starting checkpoints that are training runs stopped before their end.

    A run folder given as `intialize`, `finetune_from` (before: left out; helper 244) or an
    expert's checkpoint gives its newest checkpoint,
    finished or not; a stage started from a run killed halfway would otherwise say nothing of it.
    A run is finished when its final files hold its newest checkpoint (`final_files_current`): a
    finished run resumed to train longer and stopped keeps its old `final.weights.h5` (before: taken
    as finished, and its unfinished newest checkpoint started the stage without a word; helper 352).

    Returns:
        One line per such run (without "warning:"), naming the key, the run and its checkpoint.
    """
    sources = [("intialize", config.initialize), ("finetune_from", config.finetune_from)]
    if config.is_fusion:
        sources += [(_expert_key(config, i), s) for i, s in enumerate(config.expert_checkpoints or ())]
    warnings = []
    for key, source in sources:
        if source is None or not os.path.isdir(source) or final_files_current(source):
            continue
        saved = saved_run_config(source)
        if not saved:
            continue  # a folder of checkpoints, not a run of this project (or an unreadable one)
        try:
            _, resolved = resolve_weights(source)
        except CheckpointError:
            continue  # named when the weights are loaded
        total = saved.get("max_iteration")
        of = f" of max_iteration {total}" if total else ""
        why = (f"no {FINAL_WEIGHTS}" if not os.path.isfile(os.path.join(source, FINAL_WEIGHTS))
               else "its final files are not of its newest checkpoint")
        warnings.append(f"{_where(config, key)}key '{key}': {source} is a run that has not finished ({why}): "
                        f"it starts from its newest checkpoint, {os.path.basename(resolved)}{of}")
    return warnings
