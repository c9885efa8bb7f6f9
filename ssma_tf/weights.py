"""Models from a run config, and their weights from any checkpoint the project reads.

A config's `checkpoint`, `intialize`, `checkpoint1` and `checkpoint2` may name

- an original TF1 checkpoint prefix (AdapNet++, SSMA or the ImageNet initialisation, told apart
  by their variable names; `ssma_tf.checkpoints.load_tf1_checkpoint` maps them by name),
- one of the project's own `tf.train.Checkpoint`s (a prefix, or a training directory: its newest
  checkpoint), told from a TF1 one by the object graph TF2 stores with it,
- a Keras `.weights.h5` or `.keras` file (e.g. `<checkpoint>/final.weights.h5` of a training run).
"""

from __future__ import annotations

import os
from typing import Any, Optional

import keras
import tensorflow as tf

from ssma_tf.checkpoints import (
    KIND_ADAPNET_PP,
    KIND_IMAGENET,
    KIND_SSMA,
    CheckpointError,
    detect_kind,
    load_tf1_checkpoint,
    read_checkpoint,
)
from ssma_tf.checkpoints.tf1_names import UNIMODAL_PREFIX
from ssma_tf.models import SSMA, AdapNetPP

FORMAT_TF1 = "tf1"
FORMAT_TF2 = "tf2"
FORMAT_KERAS = "keras"
KERAS_SUFFIXES = (".weights.h5", ".keras", ".h5")
# What a training run exports at its end, beside its checkpoints.
FINAL_WEIGHTS = "final.weights.h5"
# The key TF2 writes into every object-based checkpoint (TF1 name-based ones lack it).
_OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
# The TF1 scope of the AdapNet++ classifier, whose output channels give a checkpoint's classes.
_TF1_CLASSIFIER = UNIMODAL_PREFIX + "conv78/weights"


def build_model(config: Any) -> keras.Model:
    """Builds the network a `RunConfig` describes (random weights).

    Args:
        config: a `ssma_tf.config.RunConfig`.

    Returns:
        `SSMA` (experts frozen or not as `freeze_experts` says, auxiliary heads as `aux_heads`)
        or `AdapNetPP` (always with its auxiliary heads), in the config's mixed-precision policy.
    """
    kwargs: dict[str, Any] = {"dropout_rate": 1.0 - config.dropout_keep_prob}
    if config.mixed_precision:
        kwargs["dtype"] = config.mixed_precision
    if config.is_fusion:
        return SSMA(
            config.num_classes,
            freeze_experts=config.freeze_experts,
            aux_heads=config.aux_heads,
            **kwargs,
        )
    return AdapNetPP(config.num_classes, aux_heads=True, **kwargs)


def resolve_weights(path: str) -> tuple[str, str]:
    """Says what `path` holds and which file or prefix to read.

    Args:
        path: a TF1/TF2 checkpoint prefix (a pasted `.index` is accepted), a directory with a
            `checkpoint` state file, or a `.weights.h5`/`.keras` file.

    Returns:
        `(format, resolved)`: format is `FORMAT_TF1`, `FORMAT_TF2` or `FORMAT_KERAS`; resolved is
        the prefix or file to read.

    Raises:
        CheckpointError: nothing readable at `path`.
    """
    path = os.fspath(path)
    if path.endswith(".index"):
        path = path[: -len(".index")]
    if path.endswith(KERAS_SUFFIXES):
        if not os.path.isfile(path):
            raise CheckpointError(f"no weights file at {path}")
        return FORMAT_KERAS, path
    if os.path.isdir(path):
        latest = tf.train.latest_checkpoint(path)
        if latest is None:
            final = os.path.join(path, FINAL_WEIGHTS)
            if os.path.isfile(final):
                return FORMAT_KERAS, final
            raise CheckpointError(
                f"{path} is a directory without a 'checkpoint' state file or a {FINAL_WEIGHTS}"
            )
        path = latest
    if not os.path.isfile(path + ".index"):
        raise CheckpointError(
            f"no checkpoint at {path} (expected {path}.index, a checkpoint directory, or a "
            f"{'/'.join(KERAS_SUFFIXES)} file)"
        )
    names = dict(tf.train.list_variables(path))
    return (FORMAT_TF2 if _OBJECT_GRAPH_KEY in names else FORMAT_TF1), path


def check_checkpoint_fits(config: Any, path: str) -> str:
    """Fails fast, before a model is built, when a whole-model checkpoint is for the other model.

    Only original TF1 checkpoints say what they hold without loading them (by their names); own
    checkpoints and weight files are checked when they are loaded.

    Args:
        config: a `RunConfig` (its `model`).
        path: the checkpoint to evaluate or start from.

    Returns:
        The checkpoint format (`FORMAT_TF1`, `FORMAT_TF2` or `FORMAT_KERAS`).

    Raises:
        CheckpointError: an SSMA checkpoint for AdapNet_pp, a unimodal AdapNet++ one for SSMA,
            the ImageNet initialisation to evaluate, or nothing readable at `path`.
    """
    fmt, resolved = resolve_weights(path)
    if fmt != FORMAT_TF1:
        return fmt
    kind = detect_kind(read_checkpoint(resolved))
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
    return fmt


def load_weights(model: keras.Model, path: str, *, strict: bool = True) -> str:
    """Loads weights into `model` from any supported checkpoint (see the module docstring).

    Args:
        model: an `AdapNetPP` or `SSMA`.
        path: where the weights are.
        strict: fail when the checkpoint lacks some of the model's weights.

    Returns:
        A one-line (TF1: a few lines) description of what was loaded, for the log.

    Raises:
        CheckpointError: the checkpoint does not fit the model (kind, shapes or missing weights).
    """
    fmt, resolved = resolve_weights(path)
    if fmt == FORMAT_TF1:
        return str(load_tf1_checkpoint(model, resolved, strict=strict))
    if fmt == FORMAT_TF2:
        status = tf.train.Checkpoint(model=model).restore(resolved)
        # The checkpoint also holds the optimizer, step and data position: only the model matters.
        status.expect_partial()
        if strict:
            try:
                status.assert_existing_objects_matched()
            except AssertionError as error:
                raise CheckpointError(
                    f"{resolved}: the checkpoint does not hold this {type(model).__name__} model "
                    f"(was it written for another model or number of classes?): {_first_line(error)}"
                ) from None
        return f"{resolved}: restored the {type(model).__name__} weights (TF2 checkpoint)"
    try:
        model.load_weights(resolved)
    except ValueError as error:
        raise CheckpointError(
            f"{resolved}: the weights do not fit this {type(model).__name__} model: {_first_line(error)}"
        ) from None
    return f"{resolved}: loaded the {type(model).__name__} weights"


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _tf1_num_classes(prefix: str) -> Optional[int]:
    """The number of classes of a unimodal TF1 AdapNet++ checkpoint (None for ImageNet ones)."""
    shape = read_checkpoint(prefix).get(_TF1_CLASSIFIER)
    return int(shape[-1]) if shape else None


def unimodal_encoder_weights(path: str, num_classes: int, dropout_rate: float) -> list:
    """The encoder weights of a unimodal AdapNet++ checkpoint, in `AdapNetPPEncoder` order.

    Builds a throw-away `AdapNetPP`, loads the checkpoint into it and returns its encoder's
    weights, so that an SSMA expert can start from it (the released `checkpoint1`/`checkpoint2`
    semantics: only the encoder is used, the decoder is dropped).

    Args:
        path: TF1 AdapNet++/ImageNet checkpoint, or own AdapNet++ weights.
        num_classes: classes of the AdapNet++ that wrote own weights (TF1 checkpoints say it
            themselves).
        dropout_rate: only to build an identical encoder; does not change its weights.

    Returns:
        The list of arrays for `encoder.set_weights`.
    """
    fmt, resolved = resolve_weights(path)
    if fmt == FORMAT_TF1:
        if detect_kind(read_checkpoint(resolved)) == KIND_SSMA:
            raise CheckpointError(
                f"{resolved} is an SSMA checkpoint; an expert starts from a unimodal AdapNet++ one"
            )
        num_classes = _tf1_num_classes(resolved) or num_classes
    if fmt == FORMAT_KERAS and resolved.endswith(".keras"):
        model = keras.saving.load_model(resolved, compile=False)
        if not isinstance(model, AdapNetPP):
            raise CheckpointError(f"{resolved} holds a {type(model).__name__}, not an AdapNetPP")
        return model.encoder.get_weights()
    model = AdapNetPP(num_classes, aux_heads=True, dropout_rate=dropout_rate)
    if fmt == FORMAT_TF1:
        # Strict means the whole encoder for an ImageNet checkpoint, the whole model otherwise.
        load_tf1_checkpoint(model, resolved, strict=True)
    else:
        load_weights(model, resolved)
    return model.encoder.get_weights()


def initialize_model(model: keras.Model, config: Any) -> list[str]:
    """Loads the starting weights a training config names, as the original scripts did.

    AdapNet++: `intialize` (the ImageNet TF1 checkpoint, or any AdapNet++ weights).
    SSMA: `checkpoint1` → modality-1 expert and `checkpoint2` → modality-2 expert (unimodal
    AdapNet++ checkpoints, TF1 or own: only their encoders are used), or `initialize` with a
    whole SSMA checkpoint (e.g. stage 3 starting from stage 2).

    Args:
        model: the freshly built model.
        config: the training `RunConfig`.

    Returns:
        Lines for the log, one per source loaded (none: training starts from random weights).
    """
    messages = []
    if config.initialize is not None:
        messages.append(load_weights(model, config.initialize))
    if config.is_fusion and config.checkpoint1 is not None:
        first, second = config.checkpoint1, config.checkpoint2
        formats = [resolve_weights(p) for p in (first, second)]
        if all(fmt == FORMAT_TF1 for fmt, _ in formats):
            report = load_tf1_checkpoint(model, formats[0][1], formats[1][1], strict=True)
            messages.append(str(report))
        else:
            dropout_rate = 1.0 - config.dropout_keep_prob
            loaded: dict[str, list] = {}  # one throw-away AdapNet++ per distinct source
            for encoder, source in zip(model.encoders, (first, second)):
                if source not in loaded:
                    loaded[source] = unimodal_encoder_weights(source, config.num_classes, dropout_rate)
                encoder.set_weights(loaded[source])
                messages.append(f"{source}: loaded into the {encoder.name} expert")
    return messages
