"""Loading checkpoints written by the original TensorFlow 1 code into the Keras models."""

from __future__ import annotations

import dataclasses
import os
from typing import Callable, Optional

import numpy as np

from ssma_tf.checkpoints.reading import (
    CheckpointError, checkpoint_reader, folder_checkpoint, list_variables, read_tensor, state_file_advice,
    why_no_checkpoint,
)
from ssma_tf.checkpoints.tf1_names import (
    DECODER_SCOPES, EASPP_SCOPES, ENCODER_SKIP_SCOPES, EXPERT_PREFIXES, UNIMODAL_PREFIX, encoder_pairs,
    tf1_variable_map,
)
from ssma_tf.constants import ADAPNET_PP_BACKBONE
from ssma_tf.files import checkpoint_prefix
from ssma_tf.models import SSMA, AdapNetPP
from ssma_tf.models.decoder import CLASS_LAYERS

# What a TF1 checkpoint holds, told apart by its variable names.
KIND_SSMA = "ssma"  # rgb/resnet_v2_50/..., depth/resnet_v2_50/..., conv511, ...
KIND_ADAPNET_PP = "adapnet_pp"  # resnet_v2_50/... with any of TRAINED_SCOPES (conv0, eASPP, decoder, ...)
KIND_IMAGENET = "imagenet"  # resnet_v2_50/...:0, encoder only


# Scopes whose shapes depend on the number of classes (from the one table of TF1 names).
CLASS_SCOPES = tuple(DECODER_SCOPES[name] for name in CLASS_LAYERS)
# Scopes under `resnet_v2_50/` that only a trained AdapNet++ has: the ImageNet initialisation holds
# conv1 and the four blocks, never the input batch norm, the skips, the eASPP or the decoder. Any one
# of them makes a checkpoint a trained one (before, only conv41 did: a trained checkpoint lacking
# conv41 was taken for the ImageNet one and loaded as it with 5 variables missing; helper 333).
TRAINED_SCOPES = frozenset(("conv0", *ENCODER_SKIP_SCOPES.values(), *EASPP_SCOPES.values(),
                            *DECODER_SCOPES.values()))


@dataclasses.dataclass
class LoadReport:
    """What a checkpoint import did.

    Attributes:
        checkpoint: the checkpoint prefix (or prefixes) read.
        kind: the detected checkpoint kind.
        loaded: TF1 names that were assigned to model variables.
        missing: model variables (by TF1 name) that the checkpoint lacked and that kept their values.
        unused: checkpoint variables that the model does not use.
    """

    checkpoint: str
    kind: str
    loaded: list
    missing: list
    unused: list

    def __str__(self) -> str:
        lines = [
            f"{self.checkpoint} ({self.kind}): loaded {len(self.loaded)} variables, "
            f"{len(self.missing)} model variables not in the checkpoint, "
            f"{len(self.unused)} checkpoint variables unused"
        ]
        for title, names in (("not in the checkpoint", self.missing), ("unused", self.unused)):
            if names:
                shown = ", ".join(names[:8]) + (f", ... ({len(names) - 8} more)" if len(names) > 8 else "")
                lines.append(f"  {title}: {shown}")
        return "\n".join(lines)


def _has_index(prefix: str) -> bool:
    """Whether `prefix` names a checkpoint at all (TF1 or TF2; `detect_kind` tells them apart)."""
    return os.path.exists(prefix + ".index")


def read_checkpoint(prefix: str) -> dict:
    """Returns {name: shape} of a TF1 checkpoint; a clear error when `prefix` is not one.

    A pasted `.index`, `.meta` or `.data-…` part is cut off; a folder gives its checkpoint
    (`folder_checkpoint`).
    """
    prefix = _resolve(prefix)
    if not _has_index(prefix):
        raise CheckpointError(state_file_advice(prefix)
                              or f"{prefix} is not a TF1 checkpoint prefix: {prefix}.index does not exist")
    return list_variables(prefix)


def detect_kind(names, source: Optional[str] = None) -> str:
    """Tells an SSMA, an AdapNet++ and an ImageNet-initialisation checkpoint apart by names.

    Args:
        names: the checkpoint's variable names.
        source: the checkpoint, named by the error when it is none of the three.
    """
    names = list(names)
    if any(n.startswith(EXPERT_PREFIXES) for n in names):
        return KIND_SSMA
    if any(n.endswith(":0") for n in names):
        return KIND_IMAGENET
    unimodal = [n[len(UNIMODAL_PREFIX):] for n in names if n.startswith(UNIMODAL_PREFIX)]
    if unimodal:
        trained = any(n.split("/", 1)[0] in TRAINED_SCOPES for n in unimodal)
        return KIND_ADAPNET_PP if trained else KIND_IMAGENET
    if "_CHECKPOINTABLE_OBJECT_GRAPH" in names:  # what tf.train.Checkpoint writes, ssma-train's included
        raise CheckpointError(
            "a TensorFlow 2 checkpoint (ssma-train writes these), not one of the original TF1 code: "
            "ssma-evaluate, ssma-predict and ssma-export read it as it is", source,
        )
    raise CheckpointError(
        "not a checkpoint of the original AdapNet++/SSMA code: none of its variable names starts with "
        f"'resnet_v2_50/', 'rgb/' or 'depth/' (first names: {sorted(names)[:5]})", source,
    )


def has_aux_heads(names) -> bool:
    """Whether a trained checkpoint holds the auxiliary heads (`conv911`, `conv912`): the original
    code builds them unless `has_aux_loss=False`, and the released SSMA checkpoints lack them."""
    heads = {DECODER_SCOPES["aux_up2_head"], DECODER_SCOPES["aux_up1_head"]}
    return any(heads.intersection(name.split("/")) for name in names)


def num_classes_of(shapes: dict, source: Optional[str] = None) -> int:
    """The number of classes of a trained TF1 checkpoint ({name: shape}), read from its classifier.

    Args:
        shapes: the checkpoint's {name: shape}.
        source: its path, for the message.

    Raises:
        CheckpointError: the checkpoint has no classifier (an ImageNet initialisation, or experts
            saved without the decoder).
    """
    classifier = DECODER_SCOPES["classifier"] + "/weights"  # conv78: [1, 1, 256, C]
    for name in (UNIMODAL_PREFIX + classifier, classifier):  # AdapNet++, SSMA
        if name in shapes:
            return int(shapes[name][-1])
    where = f"{source}: " if source else ""
    raise CheckpointError(f"{where}the checkpoint has no classifier (conv78): it is not a trained AdapNet++/SSMA model",
                          path=source)


def _resolve(prefix: str) -> str:
    """The prefix to read: a pasted `.index`, `.meta` or `.data-…` part cut off, a folder's checkpoint."""
    prefix = checkpoint_prefix(prefix)
    if os.path.isdir(prefix):
        latest = folder_checkpoint(prefix)
        if latest is None:
            raise CheckpointError(f"{prefix} is a directory without a checkpoint to read: {why_no_checkpoint(prefix)}",
                                  path=prefix)
        return latest
    return prefix


def _assign(mapping: dict, prefix: str, rename=lambda name: name,
            check: Callable[[list], None] = lambda missing: None) -> tuple[list, list, list]:
    """Assigns checkpoint tensors to the mapped variables after checking every shape first.

    Args:
        mapping: {TF1 name as the model knows it: Keras variable}.
        prefix: checkpoint prefix.
        rename: maps a checkpoint name to the model's TF1 name (or None to ignore it).
        check: called with the missing names before anything is assigned (a strict load's
            completeness check: before, it ran after every weight found had been assigned, and
            a checkpoint lacking one variable left the model half changed; helper 126).

    Returns:
        (loaded, missing, unused) TF1 names.
    """
    values, missing, unused = _read_values(mapping, prefix, rename)
    check(missing)
    if not values:
        raise CheckpointError(f"{prefix}: no variable of the checkpoint matches the model")
    for model_name, value in values.items():
        mapping[model_name].assign(value)
    return sorted(values), missing, unused


def _read_values(mapping: dict, prefix: str, rename=lambda name: name) -> tuple[dict, list, list]:
    """`_assign` without the assignment: ({model's TF1 name: array}, missing, unused), every shape
    checked and every tensor read, so that nothing changes when any of them fails."""
    stored = read_checkpoint(prefix)
    resolved = _resolve(prefix)
    reader = checkpoint_reader(resolved)
    by_model_name = {}
    unused = []
    for name in sorted(stored):
        model_name = rename(name)
        if model_name is None or model_name not in mapping:
            unused.append(name)
        else:
            by_model_name[model_name] = name
    # Check every shape before assigning anything, so a mismatch never leaves a half-loaded model.
    for model_name, name in by_model_name.items():
        variable = mapping[model_name]
        if tuple(stored[name]) != tuple(variable.shape):
            hint = ""
            if any(f"{scope}/" in model_name for scope in CLASS_SCOPES):
                hint = " (the number of classes differs between the checkpoint and the model)"
            raise CheckpointError(
                f"{prefix}: variable {name} has shape {list(stored[name])} but the model's {variable.path} "
                f"has {list(variable.shape)}{hint}"
            )
    # A tensor of strings (or bools, complex numbers) of the right shape: before, assigning it raised
    # "could not convert string to float" naming neither the variable nor the file, after the
    # variables before it had been assigned (helper 333). float16/64 and integers are cast.
    dtypes = reader.get_variable_to_dtype_map()
    for model_name, name in by_model_name.items():
        dtype = dtypes[name]
        if not (dtype.is_floating or dtype.is_integer):
            raise CheckpointError(
                f"{prefix}: variable {name} is stored as {dtype.name}, not as numbers (a float or integer type) "
                f"that the model's {mapping[model_name].path} can take: a damaged or foreign checkpoint", path=prefix)
    # Read every tensor before assigning any, for the same reason (a truncated `.data` file).
    values = {model_name: np.asarray(read_tensor(reader, resolved, name))
              for model_name, name in by_model_name.items()}
    missing = sorted(set(mapping) - set(by_model_name))
    return values, missing, unused


def _backbone(names, prefix: str) -> list:
    """The ResNet-50 part of encoder names, which is all an ImageNet checkpoint can provide (it has
    no input BN `conv0`, no skips and no eASPP)."""
    return [n for n in names if n.startswith((prefix + "conv1/", prefix + "block"))]


def _check_complete(names: list, missing: list, what: str, prefix: str):
    gaps = sorted(set(names) & set(missing))
    if gaps:
        shown = ", ".join(gaps[:5]) + (f" and {len(gaps) - 5} more" if len(gaps) > 5 else "")
        heads = (DECODER_SCOPES["aux_up2_head"], DECODER_SCOPES["aux_up1_head"])
        # The released SSMA checkpoints have no auxiliary heads, which `aux_heads: true` builds
        # (helper 126: a list of conv911/conv912 variables, without a word on what to change).
        hint = ""
        if all(set(heads).intersection(gap.split("/")) for gap in gaps):
            # An AdapNet++ config always builds the heads (`aux_heads` is SSMA's key): its ways out
            # differ (helper 230: "set aux_heads: false", which the reader refuses for AdapNet_pp).
            hint = ("; it has no auxiliary heads (conv911, conv912), which an AdapNet++ config always builds: start "
                    "from it with finetune_from, which starts the class layers (the heads among them) fresh, or "
                    "convert it with ssma-convert-tf1, whose .keras file ssma-evaluate and ssma-predict take"
                    if all(gap.startswith(UNIMODAL_PREFIX) for gap in gaps) else
                    "; it has no auxiliary heads (conv911, conv912): set aux_heads: false, or start from it with "
                    "finetune_from, which starts the class layers (the heads among them) fresh")
        raise CheckpointError(f"{prefix}: the checkpoint lacks {len(gaps)} variables of the {what}: {shown}{hint}")


def load_tf1_checkpoint(model, prefix: str, second_prefix: str | None = None, *, strict: bool = True) -> LoadReport:
    """Loads a checkpoint of the original TF1 code into an AdapNetPP or SSMA model, by name.

    Supported:
      (a) a unimodal AdapNet++ checkpoint (`resnet_v2_50/...`) into AdapNetPP;
      (b) an SSMA checkpoint (`rgb/...`, `depth/...`, fusion and decoder) into SSMA;
      (c) the ImageNet initialisation checkpoint (`resnet_v2_50/...:0`) into AdapNetPP's encoder,
          or into both SSMA experts;
      (d) two unimodal checkpoints into SSMA's experts: `prefix` → modality 1 (`rgb/`),
          `second_prefix` → modality 2 (`depth/`), as the original training script's
          `checkpoint1`/`checkpoint2`; their decoder variables are ignored.

    Args:
        model: an `ssma_tf.models.AdapNetPP` or `ssma_tf.models.SSMA` (built by construction).
        prefix: checkpoint prefix (the path without `.index`), or a directory with a `checkpoint` file.
        second_prefix: for (d), the modality-2 checkpoint.
        strict: for (a) and (b), raise when the checkpoint lacks any model variable; for (c) and
            (d), when it lacks any encoder variable.

    Returns:
        A LoadReport (loaded, missing, unused names).

    Raises:
        CheckpointError: wrong kind of checkpoint for the model, shape mismatch (naming the
            variable), or missing variables under `strict`.
    """
    if not isinstance(model, (AdapNetPP, SSMA)):
        # Before: an AttributeError traceback for a fusion baseline.
        fusion = getattr(model, "fusion", None)
        raise CheckpointError(
            f"{prefix}: the original TF1 checkpoints hold AdapNet++ or SSMA, not a "
            f"{f'fusion baseline ({fusion})' if fusion else type(model).__name__}; start a baseline's experts from "
            "unimodal checkpoints (checkpoint1/checkpoint2)", path=prefix)
    backbone = getattr(model, "backbone", ADAPNET_PP_BACKBONE)
    if backbone != ADAPNET_PP_BACKBONE:
        # Before: "No such layer: input_bn", a traceback.
        raise CheckpointError(
            f"{prefix}: the original TF1 checkpoints hold AdapNet++'s ResNet-50 encoder (backbone: "
            f"{ADAPNET_PP_BACKBONE}), but this {type(model).__name__} is on the {backbone} backbone", path=prefix)
    is_ssma = isinstance(model, SSMA)
    if is_ssma and model.num_modalities != 2:
        raise CheckpointError(
            f"{prefix}: the original TF1 code fuses two modalities, but this SSMA has "
            f"{model.num_modalities}; start its experts from unimodal checkpoints one by one "
            "(the config's `checkpoints` list)"
        )
    kind = detect_kind(read_checkpoint(prefix), prefix)
    mapping = tf1_variable_map(model)

    if not is_ssma:
        if kind == KIND_SSMA:
            raise CheckpointError(
                f"{prefix} is an SSMA checkpoint (rgb/ and depth/ experts) but the model is AdapNetPP; "
                "build ssma_tf.models.SSMA to load it"
            )
        if second_prefix is not None:
            raise CheckpointError("second_prefix is only for SSMA models (one checkpoint per expert)")
        rename = (lambda n: n[:-2] if n.endswith(":0") else n)

        def check(missing: list) -> None:
            if not strict:
                return
            if kind == KIND_IMAGENET:
                encoder_names = [UNIMODAL_PREFIX + n for _, n in encoder_pairs(model.encoder)]
                _check_complete(_backbone(encoder_names, UNIMODAL_PREFIX), missing, "ResNet-50 backbone", prefix)
            else:
                _check_complete(list(mapping), missing, "model", prefix)

        loaded, missing, unused = _assign(mapping, prefix, rename, check)
        return LoadReport(_resolve(prefix), kind, loaded, missing, unused)

    if kind == KIND_SSMA:
        if second_prefix is not None:
            raise CheckpointError(f"{prefix} is a whole SSMA checkpoint; do not pass a second checkpoint")
        loaded, missing, unused = _assign(
            mapping, prefix, check=lambda missing: _check_complete(list(mapping), missing, "model", prefix)
            if strict else None)
        return LoadReport(_resolve(prefix), kind, loaded, missing, unused)

    # (c)/(d): unimodal checkpoints into the experts.
    if second_prefix is None:
        if kind != KIND_IMAGENET:
            raise CheckpointError(
                f"{prefix} is a unimodal AdapNet++ checkpoint; SSMA needs two of them, one per expert "
                "(checkpoint1 for modality 1, checkpoint2 for modality 2)"
            )
        second_prefix = prefix
    second_kind = detect_kind(read_checkpoint(second_prefix), second_prefix)
    if second_kind == KIND_SSMA:
        raise CheckpointError(f"{second_prefix} is an SSMA checkpoint, not a unimodal one for an expert")
    values, unused = {}, []
    kinds = (kind, second_kind)
    for expert_prefix, source, source_kind in zip(EXPERT_PREFIXES, (prefix, second_prefix), kinds):
        def rename(name, expert_prefix=expert_prefix):
            name = name[:-2] if name.endswith(":0") else name
            return expert_prefix + name[len(UNIMODAL_PREFIX):] if name.startswith(UNIMODAL_PREFIX) else None

        expert_names = [n for n in mapping if n.startswith(expert_prefix)]
        expert_mapping = {n: mapping[n] for n in expert_names}
        # Both experts read and checked before either is assigned (before: the first expert was
        # loaded when the second checkpoint turned out to be damaged, the model half changed).
        got, gaps, spare = _read_values(expert_mapping, source, rename)
        if strict:
            required = _backbone(expert_names, expert_prefix) if source_kind == KIND_IMAGENET else expert_names
            _check_complete(required, gaps, f"{expert_prefix.split('/')[0]} expert encoder", source)
        if not got:
            raise CheckpointError(f"{source}: no variable of the checkpoint matches the expert encoder")
        values.update(got)
        unused += [f"{source}:{n}" for n in spare] if second_prefix != prefix else spare
    for model_name, value in values.items():
        mapping[model_name].assign(value)
    loaded = sorted(values)
    missing = sorted(set(mapping) - set(loaded))
    label = _resolve(prefix) if second_prefix == prefix else f"{_resolve(prefix)} + {_resolve(second_prefix)}"
    return LoadReport(label, kind if second_prefix == prefix else f"{kind}+{second_kind}", loaded, missing, sorted(set(unused)))
