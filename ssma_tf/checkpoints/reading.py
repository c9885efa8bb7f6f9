"""Reading checkpoint and weight files so that a damaged or foreign one is a `CheckpointError`.

TensorFlow, h5py and Keras report a damaged file in their own words and mostly without its name:
a truncated `.data` file is `IndexError: Read less bytes than requested`, random bytes as an
`.index` are `not an sstable (bad magic number)`, a truncated `.weights.h5` an h5py `OSError`.
Every read of a checkpoint goes through `reading(path)`, which turns those into a
`CheckpointError` naming the path and saying in words what is wrong. The shape checks that run
before anything is restored (`check_tf2_shapes`, `stored_num_classes`) live here too, so that a
checkpoint of another model or class count gets one line naming the variable and both shapes
instead of TensorFlow's warning flood.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import zipfile
from typing import Any, Iterator, Optional

import h5py

try:
    import tensorflow as tf
except ImportError:  # a JAX machine without TensorFlow: `.keras` and `.weights.h5` files still load
    tf = None

from ssma_tf.constants import ADAPNET_PP_BACKBONE, BACKBONES, DECODER_FILTERS, SSMA_FUSION
from ssma_tf.errors import UserInputError, first_line
from ssma_tf.models.widths import DECODER_LAYERS

# The key TF2 writes into every object-based checkpoint (TF1 name-based ones lack it).
OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
# How TF2 names a variable's value under its object's path in the checkpoint.
_VALUE_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"

# What the libraries raise for a file they cannot read (a CheckpointError passes through).
READ_ERRORS = ((tf.errors.OpError,) if tf is not None else ()) + (
    IndexError, OSError, EOFError, zipfile.BadZipFile, KeyError)


def _tensorflow(path: str) -> Any:
    """TensorFlow, to read the checkpoint `path`; a `CheckpointError` naming it where TensorFlow is
    not installed (before: `ssma_tf.AdapNetPP` and `ssma_tf.load_model` themselves failed with
    "No module named 'tensorflow'" on a JAX machine; helper 197)."""
    if tf is None:
        raise CheckpointError(f"{path} is a TensorFlow checkpoint, and reading it needs TensorFlow, which is not "
                              "installed here (pip install tensorflow); .keras and .weights.h5 files load without it",
                              path=path)
    return tf


def _raised_by_h5py(error: BaseException) -> bool:
    """Whether `error` (h5py raises a bare RuntimeError for a damaged object header or heap, e.g.
    "Object visitation failed (bad local heap signature)") came from inside h5py; another
    RuntimeError inside a `reading` block is a bug, not a damaged file, and passes through."""
    frame = error.__traceback__
    while frame is not None:
        parts = frame.tb_frame.f_code.co_filename.replace("\\", "/").split("/")
        if "h5py" in parts:
            return True
        frame = frame.tb_next
    return False


class CheckpointError(UserInputError):
    """A checkpoint that cannot be read or does not fit the model: its path and what is wrong."""


class UnnamedNetworkError(CheckpointError):
    """Weights alone (no config beside them, no `model=` and `num_classes=`): which network to
    build for them is not known."""


def describe_read_error(error: BaseException) -> str:
    """What a library's read error means, in one line for the user."""
    text = str(error).strip()
    first = first_line(error)
    if isinstance(error, IndexError) or "Read less bytes" in text or "truncated file" in text:
        return f"a file of it is shorter than it should be (truncated, e.g. by a full disk or a copy that stopped): {first}"
    if "sstable" in text or "bad magic number" in text:
        return f"its .index file is not a checkpoint index (damaged, or another kind of file): {first}"
    data_loss = tf is not None and isinstance(error, tf.errors.DataLossError)
    if "Checksum does not match" in text or "checksum" in text.lower() or data_loss:
        return f"its data do not match their checksums (damaged): {first}"
    if isinstance(error, zipfile.BadZipFile):
        return f"not a whole .keras (zip) archive (truncated, damaged or another kind of file): {first}"
    if "file signature not found" in text or "Unable to open file" in text or "Unable to synchronously open" in text:
        return f"not a readable HDF5 weights file (damaged or another kind of file): {first}"
    if isinstance(error, RuntimeError):
        return f"a damaged HDF5 weights file (its internal structure cannot be read): {first}"
    return first


@contextlib.contextmanager
def reading(path: Any, what: str = "checkpoint") -> Iterator[None]:
    """Turns the libraries' read errors inside the block into a `CheckpointError` naming `path`.

    Args:
        path: the checkpoint prefix or weights file being read.
        what: the word for it in the message ("checkpoint", "weights file", "model file").
    """
    try:
        yield
    except CheckpointError:
        raise
    except READ_ERRORS as error:
        shown = os.fspath(path)
        if "matching files" in str(error) and any(c in shown for c in "[]?*"):
            # TensorFlow globs a checkpoint prefix, and no escape of `[` reaches its reader: the
            # files are there but "not found" (helper 126).
            raise CheckpointError(
                f"cannot read the {what} {shown}: TensorFlow reads a checkpoint prefix as a file pattern, and "
                "its path holds one of [ ] ? *: rename the folder (or link the files from one without them)",
                path=shown) from None
        raise CheckpointError(f"cannot read the {what} {path}: {describe_read_error(error)}",
                              path=shown) from None
    except RuntimeError as error:
        if not _raised_by_h5py(error):
            raise
        raise CheckpointError(f"cannot read the {what} {path}: {describe_read_error(error)}",
                              path=os.fspath(path)) from None


def list_variables(prefix: str) -> dict[str, list[int]]:
    """{name: shape} of a TF1 or TF2 checkpoint; a damaged index is a `CheckpointError`."""
    with reading(prefix):
        return dict(_tensorflow(prefix).train.list_variables(prefix))


def checkpoint_reader(prefix: str) -> Any:
    """`tf.train.load_checkpoint(prefix)`, its read errors turned into `CheckpointError`s.

    Read tensors with `read_tensor`, which names the tensor of a damaged `.data` file.
    """
    with reading(prefix):
        return _tensorflow(prefix).train.load_checkpoint(prefix)


def read_tensor(reader: Any, prefix: str, name: str) -> Any:
    """One tensor of a checkpoint; a damaged or truncated `.data` file names the tensor."""
    try:
        return reader.get_tensor(name)
    except READ_ERRORS as error:
        raise CheckpointError(
            f"cannot read variable {name} of the checkpoint {prefix}: {describe_read_error(error)}",
            path=prefix,
        ) from None


def state_file_is_damaged(directory: str) -> bool:
    """Whether `directory` has a `checkpoint` state file that TensorFlow cannot parse.

    TensorFlow only logs a warning for such a file and then behaves as if there were none: a
    training run would start afresh beside its own checkpoints.
    """
    state = os.path.join(directory, "checkpoint")
    if not os.path.isfile(state) or tf is None:  # without TensorFlow, no checkpoint it names is read
        return False
    try:
        return tf.train.get_checkpoint_state(directory) is None
    except Exception:  # a text-proto ParseError, or an OpError of the file system
        return True


def folder_checkpoint(directory: str) -> Optional[str]:
    """The checkpoint a folder holds: the newest by its `checkpoint` state file, else the one
    prefix of a folder without that file (an unpacked release: `model.ckpt.index` and its data),
    else None."""
    latest = latest_checkpoint(directory)
    if latest is not None or os.path.isfile(os.path.join(directory, "checkpoint")):
        return latest
    indexes = sorted(name for name in os.listdir(directory) if name.endswith(".index"))
    return os.path.join(directory, indexes[0][: -len(".index")]) if len(indexes) == 1 else None


def latest_checkpoint(directory: str) -> Optional[str]:
    """`tf.train.latest_checkpoint`, with a damaged `checkpoint` state file named, and without
    TensorFlow's ERROR line for a state file naming files that are not there (`why_no_checkpoint`
    says that)."""
    if state_file_is_damaged(directory):
        state = os.path.join(directory, "checkpoint")
        raise CheckpointError(
            f"cannot read the checkpoint state file {state} (damaged): give one of its "
            "checkpoints by prefix (e.g. ckpt-N) instead, or delete the file to use the folder",
            path=state,
        )
    named = _state_names(directory)
    return named if named is not None and os.path.isfile(named + ".index") else None


def _state_names(directory: str) -> Optional[str]:
    """The newest checkpoint the folder's `checkpoint` state file names (made absolute), or None."""
    if not os.path.isfile(os.path.join(directory, "checkpoint")) or tf is None:
        return None  # without TensorFlow: a run folder's final.weights.h5 is read instead
    state = tf.train.get_checkpoint_state(directory)
    return state.model_checkpoint_path if state is not None and state.model_checkpoint_path else None


def state_file_advice(path: str) -> Optional[str]:
    """What to give instead of a folder's `checkpoint` state file (the text file TF's savers write
    beside `model.ckpt-N.*`), naming the prefix it points to; None for any other path.

    Before: "multi/checkpoint is not a TF1 checkpoint prefix: multi/checkpoint.index does not
    exist", as if the file were a damaged checkpoint (helper 333).
    """
    folder = os.path.dirname(path) or "."
    if os.path.basename(path) != "checkpoint" or not os.path.isfile(path) or state_file_is_damaged(folder):
        return None
    named = _state_names(folder)
    if named is None:
        return None
    if not os.path.exists(named + ".index"):  # a folder copied from another machine: the reason says what it holds
        return f"{path} is the folder's checkpoint state file, not a checkpoint, and {why_no_checkpoint(folder)}"
    return (f"{path} is the folder's checkpoint state file, not a checkpoint: give the folder {folder} or the "
            f"checkpoint prefix the file names, {named}")


def why_no_checkpoint(directory: str) -> str:
    """Why `folder_checkpoint` found nothing in `directory`, for the error: a state file naming a
    checkpoint that is not there (TF1's Saver writes absolute paths: a folder copied from another
    machine), several checkpoints and no state file, or none; with the checkpoints it holds."""
    indexes = sorted(name[: -len(".index")] for name in os.listdir(directory) if name.endswith(".index"))
    present = f"; give one of its checkpoints by prefix: {', '.join(os.path.join(directory, n) for n in indexes)}"
    named = _state_names(directory)
    if named is not None:
        return (f"its 'checkpoint' state file names {named}, which is not there (a folder copied from another "
                f"machine or moved?)" + (present if indexes else ", and the folder holds no checkpoint (*.index)"))
    if len(indexes) > 1:
        return f"it holds several checkpoints and no 'checkpoint' state file to say which{present}"
    return "it holds no 'checkpoint' state file and no checkpoint (*.index)"


def _escape(name: str) -> str:
    # TF2's escaping of an object's local name in a checkpoint key ("." doubled, "/" as ".S").
    return name.replace(".", "..").replace("/", ".S")


def _paths_by_node(view: "tf.train.CheckpointView") -> dict[int, str]:
    """The key prefix of every node of a checkpoint's object graph: its first breadth-first path."""
    paths = {0: ""}
    queue = [0]
    while queue:
        node = queue.pop(0)
        for name, child in view.children(node).items():
            child = child if isinstance(child, int) else int(child)
            if child not in paths:
                paths[child] = f"{paths[node]}/{_escape(name)}" if paths[node] else _escape(name)
                queue.append(child)
    return paths


def check_tf2_shapes(root: Any, prefix: str, model: Any, *, strict: bool = True, hint: str = "") -> int:
    """Checks, before anything is restored, that a TF2 checkpoint fits `model`, variable by variable.

    Matches the checkpoint's object graph to `root` (e.g. `tf.train.Checkpoint(model=model)`)
    the way a restore would, and compares the shape of every matched variable. TensorFlow's own
    restore reports a mismatch with a traceback and, for another model, hundreds of warnings.

    Args:
        root: the object the checkpoint would be restored into.
        prefix: the TF2 checkpoint prefix.
        model: the Keras model under `root` whose weights must all be in the checkpoint.
        strict: also fail when some of the model's weights are not in the checkpoint.
        hint: added to the message about missing weights (other causes than another model).

    Returns:
        The number of the model's weights found in the checkpoint.

    Raises:
        CheckpointError: a damaged checkpoint, a variable whose shape differs (naming it and both
            shapes), or, under `strict`, model weights the checkpoint lacks.
    """
    stored = list_variables(prefix)
    check_backbone(list(stored.values()), f"the checkpoint {prefix}", model)
    with reading(prefix):
        view = _tensorflow(prefix).train.CheckpointView(prefix)
        matched = view.match(root)
        paths = _paths_by_node(view)
    found = set()
    # The weights a save of `root` writes: those TensorFlow's object graph reaches. Keras also
    # counts weights held only in a list attribute, which that graph leaves out (the fusion
    # baselines' whole experts, whose auxiliary heads the fused graph never runs): no checkpoint
    # holds them, so none can be asked to.
    saved = {id(obj) for obj in tf.train.TrackableView(root).descendants()}
    wanted = {id(w): w for w in model.weights if id(w) in saved}
    for node, obj in matched.items():
        if id(obj) not in wanted:
            continue
        found.add(id(obj))
        key = paths.get(node, "") + _VALUE_SUFFIX
        if key not in stored:
            continue
        have, need = list(stored[key]), list(obj.shape)
        if have != need:
            name = getattr(obj, "path", None) or obj.name
            raise CheckpointError(
                f"variable {name} has shape {have} in the checkpoint {prefix} ({key}) but "
                f"{need} in the model{_class_hint(have, need, model, name)}",
                path=prefix,
            )
    missing = [w for key, w in wanted.items() if key not in found]
    if strict and missing:
        names = ", ".join(getattr(w, "path", w.name) for w in missing[:3])
        raise CheckpointError(
            f"the checkpoint {prefix} lacks {len(missing)} of the {len(wanted)} weights of this "
            f"{type(model).__name__} (e.g. {names}): it holds another model (kind, options or "
            f"layers){hint}",
            path=prefix,
        )
    return len(found)


def stored_backbone(shapes: list) -> Optional[str]:
    """The experts' backbone of the model whose arrays have these shapes, when they tell it.

    The AdapNet++ (ResNet-50) encoder alone has a 7×7 kernel that reads the 3 channels of an
    image (its stem; of fewer than 64 filters once pruned; an SSMA's 7×7 fusion kernels, of
    `fused_kernel_size` 7, read features: before, they made a MobileNet v2 SSMA's own weights
    "another backbone"); MobileNet v2 has depthwise kernels (3, 3, C, 1) instead (a pruned
    AdapNet++ may have a 3×3 convolution of one filter too, hence the stem first). None for
    neither (e.g. a checkpoint of another network). A guess from shapes that knows the built-in
    backbones only: another ResNet has a 7×7 stem too, EfficientNet depthwise kernels.
    """
    shapes = [tuple(s) for s in shapes]
    if any(len(s) == 4 and s[:3] == (7, 7, 3) for s in shapes):
        return ADAPNET_PP_BACKBONE
    if any(len(s) == 4 and s[:2] == (3, 3) and s[3] == 1 and s[2] > 1 for s in shapes):
        return "mobilenet_v2"
    return None


def check_backbone(shapes: list, source: str, model: Any) -> None:
    """Raises a CheckpointError when the arrays are of another backbone than `model`'s.

    Another backbone's weights otherwise fail as "another model (kind, options or layers)" or as
    a shape of some layer, neither of which names the cause.
    """
    have = stored_backbone(shapes)
    need = getattr(model, "backbone", None)
    # The shapes tell the built-in backbones apart only: a registered one (any ResNet also has a
    # 7×7 stem) is not judged by them.
    if have is not None and need in BACKBONES and have != need:
        raise CheckpointError(
            f"{source} holds a model on the {have} backbone, but this {type(model).__name__} is on the "
            f"{need} backbone",
            path=source,
        )


# The decoder's layer names as variable paths hold them (`refine1` of `refine1_conv1`; the auxiliary
# heads' `aux_up1_head` holds `up1`), for `_class_hint`.
_DECODER_PARTS = tuple(dict.fromkeys(layer.split("_")[0] for layer in DECODER_LAYERS))


def _class_hint(have: list, need: list, model: Any, name: str = "") -> str:
    """" (the checkpoint has N classes, the model M)" when the shapes differ in class axes only
    (the last, and for `up3`'s (8, 8, C, C) kernel the last two); a kernel of another layer whose
    last axis happens to equal the class count gets no hint. A decoder variable (`name`) whose
    shapes differ in the decoder's width only names `decoder_filters`."""
    classes = getattr(model, "num_classes", None)
    differing = [i for i, (a, b) in enumerate(zip(have, need)) if a != b]
    if (classes is not None and have and need and len(have) == len(need) and need[-1] == classes
            and have[-1] != classes and all(need[i] == classes for i in differing)):
        return f" (the checkpoint has {have[-1]} classes, the model {classes})"
    widths = getattr(model, "widths", None) or {}
    decoder = widths.get(DECODER_LAYERS[0], DECODER_FILTERS) if isinstance(widths, dict) else DECODER_FILTERS
    layer = name.split("/")[0]
    stored = {have[i] for i in differing}
    # The classifier reads the decoder's output: its input axis is the decoder's width (an SSMA,
    # without auxiliary heads, differs there first).
    if (differing and len(have) == len(need) and len(stored) == 1 and all(need[i] == decoder for i in differing)
            and any(part in layer for part in _DECODER_PARTS + ("classifier",))):
        # Before: the shapes alone, for experts trained with another decoder_filters.
        return (f" (the model's decoder is {decoder} wide, the checkpoint's {stored.pop()}: give the decoder_filters "
                "it was trained with)")
    return ""


def _stems(shapes: list) -> int:
    """The encoder stems among kernel shapes: square 3×3 or 7×7 kernels that read 3 channels (each
    stream's first convolution, on either built-in backbone; no later one reads 3 channels)."""
    return sum(1 for s in shapes if len(s) == 4 and s[0] == s[1] and s[0] in (3, 7) and s[2] == 3)


def _streams_hint(have: list, need: list, model: Any, stored: Optional[int] = None) -> str:
    """" (the file holds 3 modality streams, this SSMA 2: ...)" when a fusion model's weights and
    the file differ in their number of encoder streams; "" otherwise (before: the array counts
    alone, "holds 1170 arrays but this SSMA has 783 weights"). `stored`: the file's stream count
    where its layer names say it (`stored_fusion`; a stacking network has no stem per stream)."""
    streams = getattr(model, "num_modalities", None)
    per_stream = _stems(need) // streams if streams else 0
    if stored is None:
        if not per_stream or _stems(need) != per_stream * streams or _stems(have) % per_stream:
            return ""
        stored = _stems(have) // per_stream
    if not streams or stored in (0, streams):
        return ""
    if stored == 1:
        # A unimodal network's weights (an expert) given as a fusion network's own.
        return (f" (the file holds one modality stream, as a unimodal AdapNet++ (an expert) does, this "
                f"{type(model).__name__} {streams}: a fusion network starts its experts from such files with "
                "checkpoint1/checkpoint2 or the checkpoints list, not as its own weights)")
    # Before: "(num_modalities in Python)", an argument `load_model` does not take (helper 311).
    return (f" (the file holds {stored} modality streams, this {type(model).__name__} {streams}: give the config's "
            "modalities list it was trained with (num_modalities= when building the network in Python))")


# The layers that only one fusion network has among its own (the top-level layers a `.weights.h5`
# file names, `ssma_tf/models/ssma.py` and `fusion_baselines.py`), by its config's `fusion` value;
# the whole experts and encoders inside them are alike in every one.
_FUSION_LAYERS = (
    (SSMA_FUSION, re.compile(r"ssma_(latent|skip\d+)")),
    ("average", re.compile(r"average")),
    ("maximum", re.compile(r"maximum|renormalise")),
    ("late", re.compile(r"late_(conv\d+|add)")),
    ("cmode", re.compile(r"cmode_\w+")),
    ("lfc", re.compile(r"lfc_\w+")),
    ("fusenet", re.compile(r"fusenet_add\d+")),
    ("stacking", re.compile(r"stack|stacked_view")),
)
# The image inputs of every fusion network (an AdapNet++'s is `image`).
_MODALITY_INPUT = re.compile(r"modality\d+")


def stored_fusion(path: str) -> tuple[Optional[str], int]:
    """(the `fusion` value, the number of modality inputs) of the fusion network whose weights the
    `.weights.h5` file `path` holds, read from its layer names; (None, 0) for another network, or
    a file that does not name its layers.

    Keras 3 stores each top-level layer under a group named after its class (`conv2d_1`), and the
    layer's own name as the `name` attribute of that group's `vars` (Keras 3.15 does; a file
    without it gets the hints the shapes allow).
    """
    names = []
    with reading(path, "weights file"):
        with h5py.File(path, "r") as f:
            layers = f.get("layers")
            for group in (layers.values() if isinstance(layers, h5py.Group) else ()):
                held = group.get("vars") if isinstance(group, h5py.Group) else None
                name = held.attrs.get("name") if held is not None else None
                if isinstance(name, bytes):
                    name = name.decode("utf-8", "replace")
                if isinstance(name, str):
                    names.append(name)
    found = [fusion for fusion, pattern in _FUSION_LAYERS if any(pattern.fullmatch(n) for n in names)]
    streams = sum(1 for n in names if _MODALITY_INPUT.fullmatch(n))
    return (found[0] if len(found) == 1 and streams else None), streams


def _fusion_hint(stored: Optional[str], streams: int, model: Any) -> str:
    """" (the file holds a fusion: late network over 3 modality streams, this is SSMA over 2: ...)"
    when a `.weights.h5` file holds another fusion network (`stored`, over `streams` modalities,
    as `stored_fusion` says) than `model`; "" otherwise.

    Before, a late fusion's weights outside their run folder, loaded as an SSMA's, got "another
    model" and a modality count as the only hint; following it gave "another model" again (helper 311).
    """
    modalities = getattr(model, "num_modalities", None)
    # A model without streams is a unimodal one; an SSMA has no `fusion` attribute.
    fusion = getattr(model, "fusion", SSMA_FUSION) if isinstance(modalities, int) else None
    if stored is None or stored == fusion:
        return ""
    if fusion is None:
        this = f"this is a unimodal {type(model).__name__}"
        config = f"model: SSMA, fusion: {stored}"
    else:
        kind = type(model).__name__ if fusion == SSMA_FUSION else f"{type(model).__name__} (fusion: {fusion})"
        this = f"this is {kind} over {modalities}"
        config = f"fusion: {stored}"
    python = (f"SSMA(num_modalities={streams})" if stored == SSMA_FUSION
              else f'FusionBaseline(fusion="{stored}", num_modalities={streams})')
    return (f" (the file holds a fusion: {stored} network over {streams} modality streams, {this}: give the config "
            f"{config} and its modalities list of {streams} ({python} in Python))")


def _network_hint(path: str, have: list, need: list, model: Any) -> str:
    """The file's other fusion network (`_fusion_hint`), else its other stream count (`_streams_hint`;
    from the layer names where the file has them, else from the stems among the shapes `have`,
    given as `need`'s); "" when neither differs from `model`'s."""
    stored, streams = stored_fusion(path)
    if not streams and not have:
        return ""
    return _fusion_hint(stored, streams, model) or _streams_hint(have, need, model, streams or None)


def stored_shapes(fmt_is_tf2: bool, resolved: str) -> list[tuple]:
    """The shapes of every array of the model an own checkpoint (TF2 prefix or Keras HDF5 file)
    holds. A `.weights.h5` file that Keras' `save_weights` wrote for a compiled model also holds
    the optimizer's state (its top-level `optimizer` group), which is not the model's and which
    loading the weights leaves alone: it is not counted."""
    if fmt_is_tf2:
        return [tuple(shape) for shape in list_variables(resolved).values()]
    shapes: list[tuple] = []

    def add(name: str, item: Any) -> None:
        if isinstance(item, h5py.Dataset) and name.split("/", 1)[0] != "optimizer":
            shapes.append(item.shape)

    with reading(resolved, "weights file"):
        with h5py.File(resolved, "r") as f:
            f.visititems(add)
    return shapes


def stored_num_classes(fmt_is_tf2: bool, resolved: str) -> int:
    """The class count of an own AdapNet++/SSMA checkpoint, which does not name its layers.

    The last learned upsampling (`up3`, a transposed 8×8 convolution from C to C channels) is the
    only 8×8 kernel of both networks, so its shape (8, 8, C, C) gives C.

    Raises:
        CheckpointError: no such kernel, or several.
    """
    found = {s[2] for s in stored_shapes(fmt_is_tf2, resolved)
             if len(s) == 4 and s[:2] == (8, 8) and s[2] == s[3]}
    if len(found) != 1:
        raise CheckpointError(
            f"{resolved}: cannot tell the class count (no single 8x8 C-to-C upsampling kernel; "
            f"found {sorted(found) or 'none'}); is it an AdapNet++ or SSMA checkpoint?"
        )
    return int(found.pop())


def check_h5_shapes(path: str, model: Any) -> None:
    """Checks, before Keras loads it, that a `.weights.h5` file holds weights of `model`'s shapes.

    Keras' HDF5 layout names layers by their class (`conv_bn_9`), not by the model's names, so
    the arrays are compared as a whole: their number, the class count (the `up3` kernel, see
    `stored_num_classes`) and then their shapes. Keras itself would load what fits, warn about
    each layer that does not, and raise a many-line error.

    Raises:
        CheckpointError: a damaged file, or weights of another model or class count.
    """
    shapes = stored_shapes(False, path)
    check_backbone(shapes, f"the weights file {path}", model)
    weights = list(model.weights)
    classes = getattr(model, "num_classes", None)
    if classes is not None and any(len(s) == 4 and s[:2] == (8, 8) and s[2] == s[3] for s in shapes):
        stored = stored_num_classes(False, path)
        if stored != classes:
            raise CheckpointError(
                f"variable up3/kernel (the last upsampling) has shape [8, 8, {stored}, {stored}] in "
                f"the weights file {path} but [8, 8, {classes}, {classes}] in the model (the file has "
                f"{stored} classes, the model {classes})",
                path=path,
            )
    if len(shapes) != len(weights):
        raise CheckpointError(
            f"the weights file {path} holds {len(shapes)} arrays but this {type(model).__name__} has "
            f"{len(weights)} weights: it holds another model (kind, options or layers)"
            f"{_network_hint(path, shapes, [tuple(w.shape) for w in weights], model)}",
            path=path,
        )
    need = sorted(tuple(w.shape) for w in weights)
    have = sorted(tuple(s) for s in shapes)
    if need != have:
        extra = next(s for s in have if have.count(s) > need.count(s))
        lacking = next(s for s in need if need.count(s) > have.count(s))
        variable = next(w for w in weights if tuple(w.shape) == lacking)
        name = getattr(variable, "path", None) or variable.name
        raise CheckpointError(
            f"variable {name} has shape {list(lacking)} in the model but the weights file {path} "
            f"holds no array of that shape (it holds one of shape {list(extra)} instead)"
            f"{_network_hint(path, [], [], model) or _class_hint(list(extra), list(lacking), model, name)}",
            path=path,
        )


def check_keras_archive(path: str) -> None:
    """Checks that a `.keras` file is a whole zip archive, every member's checksum included.

    Keras answers a truncated or foreign `.keras` file with `File not found`.

    Raises:
        CheckpointError: naming the file and what is wrong.
    """
    with reading(path, "model file"):
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    if bad is not None:
        raise CheckpointError(f"cannot read the model file {path}: its member {bad} is damaged "
                              "(checksum mismatch)", path=path)


def keras_file_config(path: str) -> dict:
    """The `config.json` of a `.keras` file (`class_name`, and the network's arguments under
    `config`), read without building the network."""
    with reading(path, "model file"):
        with zipfile.ZipFile(path) as archive:
            return json.loads(archive.read("config.json"))


def check_keras_streams(path: str, model: Any) -> None:
    """Refuses a `.keras` file whose network fuses another number of modalities than `model`
    (a fusion network), read from its `config.json`: the check `check_h5_shapes` makes of a
    `.weights.h5` file's arrays.

    Before, a 3-modality late fusion's `.keras` file loaded into a 2-modality one without a word,
    its third expert dropped and its mixing convolutions kept at thirds; the other way, Keras'
    "A total of 158 objects could not be loaded" named a batch norm (helper 301).

    Raises:
        CheckpointError: naming the file and both counts.
    """
    streams = getattr(model, "num_modalities", None)
    if not isinstance(streams, int):
        return
    held = keras_file_config(path)
    stored = (held.get("config") or {}).get("num_modalities")
    if stored is None and held.get("class_name") == "AdapNetPP":
        stored = 1
    if not isinstance(stored, int) or stored == streams:
        return
    if stored == 1:
        raise CheckpointError(f"the model file {path} holds a unimodal AdapNet++ (an expert), not a "
                              f"{type(model).__name__} of {streams} modality streams: a fusion network starts its "
                              "experts from such files with checkpoint1/checkpoint2 or the checkpoints list, not as "
                              "its own weights")
    raise CheckpointError(f"the model file {path} fuses {stored} modality streams (its {held.get('class_name')}), "
                          f"this {type(model).__name__} {streams}: give the config's modalities list (num_modalities "
                          "in Python) it was trained with")


def keras_file_widths(path: str) -> dict:
    """The `widths` a `.keras` file's network was built with ({} for the released widths, or a
    network without the argument), read from its config without building it."""
    return dict((keras_file_config(path).get("config") or {}).get("widths") or {})


def refuse_pruned_source(resolved: str, held: Any, wanted: Any, start: str, backbone: Optional[str] = None) -> None:
    """Raises CheckpointError when a network of `held` widths (a `.keras` file's) would start one
    of `wanted` widths (what a config builds): a pruned network (Section 3.5, `ssma-prune`) has
    other shapes, and Keras' or the loaders' shape errors did not say so (helper 114: "does not
    fit the model's (other options?)", "was it trained with another backbone?"). A network of
    another backbone or `decoder_filters` (a real-time expert) is named as such, not as pruned
    (helper 214: "holds a pruned network", with advice `ssma-prune` refuses for MobileNet v2).

    Args:
        start: what it was given as (`intialize`, `finetune_from`, "an expert").
        backbone: the backbone of the network to start, where known.
    """
    if backbone is not None:
        theirs = (keras_file_config(resolved).get("config") or {}).get("backbone", ADAPNET_PP_BACKBONE)
        if theirs != backbone:
            raise CheckpointError(f"{resolved} holds a network on the {theirs} backbone, but this one is on the "
                                  f"{backbone} backbone: set backbone: {theirs} in the config, as it was trained",
                                  path=resolved)
    held, wanted = dict(held or {}), dict(wanted or {})
    if held == wanted:
        return
    differing = [n for n in sorted(set(held) | set(wanted)) if held.get(n) != wanted.get(n)]
    theirs, ours = _decoder_filters(held), _decoder_filters(wanted)
    if set(differing) <= set(DECODER_LAYERS) and theirs is not None and ours is not None:
        raise CheckpointError(f"{resolved} holds a network of decoder_filters {theirs}, but this one's decoder is "
                              f"{ours} wide: set decoder_filters: {theirs} in the config, as it was trained",
                              path=resolved)
    name = differing[0]

    def width(widths: dict) -> str:
        value = widths.get(name)
        if value is None:
            return "the released width"
        return f"{len(value)} channels kept" if isinstance(value, (list, tuple)) else f"{value} channels"

    raise CheckpointError(
        f"{resolved} holds a pruned network ({name}: {width(held)}, here {width(wanted)}); a config builds the "
        f"released widths, so it cannot start from it as {start}: fine-tune it further with ssma-prune "
        "--finetune-steps, and evaluate, predict or export it as it is", path=resolved)


def _decoder_filters(widths: dict) -> Optional[int]:
    """The one width of every decoder convolution (a `decoder_filters` network's), else None."""
    values = {widths.get(name, DECODER_FILTERS) for name in DECODER_LAYERS}
    value = next(iter(values))
    return value if len(values) == 1 and isinstance(value, int) else None


def keras_load_error(error: BaseException, path: str, model: Any) -> CheckpointError:
    """Keras' error for weights that do not fit a model, as one line naming the variable and shapes.

    Keras reports `A total of N objects could not be loaded` with an example message several lines
    down (`variable.shape=(3,), Received: value.shape=(5,). Target variable: <Variable path=...`).
    """
    text = " ".join(str(error).split())
    shapes = re.search(r"variable\.shape=(\([^)]*\)), Received: value\.shape=(\([^)]*\))", text)
    target = re.search(r"Target variable: <Variable path=([^,>]+)", text)
    count = re.search(r"A total of (\d+) objects could not be loaded", text)
    if shapes and target:
        more = f" ({count.group(1)} layers do not fit in all)" if count else ""
        need = [int(x) for x in re.findall(r"\d+", shapes.group(1))]
        have = [int(x) for x in re.findall(r"\d+", shapes.group(2))]
        return CheckpointError(
            f"variable {target.group(1)} has shape {have} in the weights file {path} but {need} "
            f"in the model{_class_hint(have, need, model, target.group(1))}{more}",
            path=path,
        )
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return CheckpointError(
        f"the weights file {path} does not fit this {type(model).__name__}: "
        f"{lines[0] if lines else type(error).__name__}",
        path=path,
    )
