"""The AdapNet++ encoder: ResNet-50 with multiscale residual units, skips and eASPP."""

import difflib
import inspect
import numbers
from collections.abc import Mapping

import keras
import numpy as np
from keras import layers

from ssma_tf import SERIALIZATION_PACKAGE
from ssma_tf.constants import OUTPUT_STRIDE
from ssma_tf.layers import EASPP, ConvBN, ResidualUnit, batch_norm
from ssma_tf.models.widths import SKIP_FILTERS, check_widths, encoder_widths, sub_widths

# Multiscale dilations of the released graph (docs/architecture.md) and of the paper (Section 3.1).
RELEASED_BLOCK3_DILATIONS = ((1, 2), (1, 2), (1, 2), (1, 2))
RELEASED_BLOCK4_DILATIONS = ((2, 2), (2, 2), (2, 2))
PAPER_BLOCK3_DILATIONS = ((1, 2), (1, 4), (1, 8), (1, 16))
PAPER_BLOCK4_DILATIONS = ((2, 4), (2, 8), (2, 16))
RELEASED_DROPOUT_RATE = 0.7  # keep probability 0.3 (the paper's Section 3.1 says 0.5)


def _integer(value, least: int = -2**63) -> bool:
    """Whether `value` is an integer (Python's or NumPy's, not a bool) of at least `least`."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= least


def check_dilations(name: str, value, count: int):
    """Validates a list of `count` (rate, rate) pairs of integers and returns it as a tuple of tuples.

    A rate that is no integer is refused (before: 2.7 was cut to 2, and the string "12" read as
    the rates 1 and 2, without a word)."""
    def sequence(item) -> bool:
        return hasattr(item, "__iter__") and not isinstance(item, (str, bytes))

    if not sequence(value) or not all(sequence(pair) and all(_integer(d) for d in pair) for pair in value):
        raise ValueError(f"{name} must be {count} pairs of integer dilation rates, got {value!r}")
    pairs = tuple(tuple(int(d) for d in pair) for pair in value)
    if len(pairs) != count or any(len(p) != 2 or min(p) < 1 for p in pairs):
        raise ValueError(f"{name} must be {count} pairs of positive dilation rates, got {value!r}")
    return pairs


def check_positive_integer(what: str, value) -> int:
    """`value` as a Python int; ValueError naming `what` (the model's own argument, `SSMA
    fused_kernel_size`) unless it is an integer >= 1 (NumPy's taken, a bool refused). Before, the
    layer that received it named its own argument (`SSMABlock output_kernel_size`), refused NumPy's
    integers that the model took, and kept `True` as 1."""
    if not _integer(value, 1):
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


def check_dropout_rate(dropout_rate) -> float:
    """`dropout_rate` as a float; ValueError unless it is a number in [0, 1) (before: None or a
    string ended in a TypeError of the comparison)."""
    if isinstance(dropout_rate, bool) or not isinstance(dropout_rate, numbers.Real) or not 0.0 <= dropout_rate < 1.0:
        raise ValueError(f"dropout_rate must be a number in [0, 1), got {dropout_rate!r}")
    return float(dropout_rate)


def check_input_channels(input_channels) -> int:
    """`input_channels` as an int; ValueError unless it is an integer >= 1 (before: 0 ended in a
    ZeroDivisionError of the initialiser, "3" in a Keras shape error)."""
    if not _integer(input_channels, 1):
        raise ValueError(f"input_channels must be an integer >= 1, got {input_channels!r}")
    return int(input_channels)


def check_flag(name: str, value) -> bool:
    """A yes/no option as a bool; ValueError for anything else (before: `aux_heads="no"` built the
    heads, and a config stored the string)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_num_modalities(num_modalities) -> int:
    """`num_modalities` as a Python int (NumPy's integers are taken, as by `check_num_classes`);
    ValueError unless it is at least 2 (fusion needs two streams)."""
    if not _integer(num_modalities, 2):
        raise ValueError(f"num_modalities must be an integer >= 2, got {num_modalities!r}")
    return int(num_modalities)


def check_num_classes(num_classes) -> int:
    """`num_classes` as a Python int (NumPy's integers are taken: a count read from an array);
    ValueError unless it counts void and at least one class."""
    if not _integer(num_classes, 2):
        raise ValueError(f"num_classes must be an integer >= 2 (void + classes), got {num_classes!r}")
    return int(num_classes)


KERAS_MODEL_KWARGS = ("name", "trainable", "dtype")


def check_model_kwargs(owner: type, kwargs: Mapping) -> None:
    """TypeError naming each keyword in `kwargs` that neither `owner.__init__` nor `keras.Model`
    takes, with the closest parameter it may mean: a misspelt option (`aux_head=False`) would
    otherwise reach `keras.Model`, which ignores it, and build the default network."""
    unknown = [key for key in kwargs if key not in KERAS_MODEL_KWARGS]
    if not unknown:
        return
    own = [name for name, parameter in inspect.signature(owner.__init__).parameters.items()
           if name != "self" and parameter.kind not in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL)]
    known = own + list(KERAS_MODEL_KWARGS)
    described = []
    for key in unknown:
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        described.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    raise TypeError(f"{owner.__name__} got unknown keyword argument(s) {', '.join(described)}; "
                    f"it takes {', '.join(known)}")


def resolve_dilations(block3_dilations, block4_dilations, paper_dilations: bool) -> tuple:
    """Explicit dilations win; otherwise the paper's (Section 3.1) or the released graph's."""
    if block3_dilations is None:
        block3_dilations = PAPER_BLOCK3_DILATIONS if paper_dilations else RELEASED_BLOCK3_DILATIONS
    if block4_dilations is None:
        block4_dilations = PAPER_BLOCK4_DILATIONS if paper_dilations else RELEASED_BLOCK4_DILATIONS
    return block3_dilations, block4_dilations


def deserialize_dtype(config: dict) -> dict:
    """`config` with its serialized dtype policy (as `get_config` writes it) turned back into one.

    The constructors hand the policy on to every layer, so it is read once here.
    """
    if isinstance(config.get("dtype"), dict):
        config = dict(config, dtype=keras.dtype_policies.deserialize(config["dtype"]))
    return config


# The config key that holds which parts of a network were frozen or unfrozen after it was built.
TRAINABLE_LAYERS = "trainable_layers"


def _sublayers(layer) -> list:
    return layer._flatten_layers(include_self=False, recursive=False)


def _layers_by_depth(model) -> list:
    """`(path, layer)` for every layer under `model`, each after all of its ancestors.

    A layer can sit under two parents (SSMA's encoder is its expert's and the model's own); it is
    named by the first path found and placed at its greatest depth, so that setting flags in
    this order never lets a parent overwrite a flag set on its child."""
    depth: dict = {}
    found: dict = {}

    def visit(layer, level: int, prefix: str) -> None:
        for child in _sublayers(layer):
            if depth.get(id(child), -1) >= level + 1:
                continue
            depth[id(child)] = level + 1
            found.setdefault(id(child), (len(found), prefix + child.name, child))
            visit(child, level + 1, found[id(child)][1] + "/")

    visit(model, 0, "")
    ordered = sorted(found.items(), key=lambda item: (depth[item[0]], item[1][0]))
    return [(path, layer) for _, (_, path, layer) in ordered]


def trainable_overrides(model) -> dict:
    """The `trainable` flags `restore_trainable` must set, by the layers' paths of names
    (`modality1_expert/encoder`): where a layer's flag differs from what setting the model's
    own flag, then the earlier overrides, would leave it.

    A network's constructor says what is frozen (SSMA's experts); a user may freeze or unfreeze
    parts after it (`model.encoder.trainable = False`). The config keeps it, so that a `.keras`
    file reloads with the same trainable variables (before: the constructor's; the optimizer's
    state was then skipped with a warning, and the next `fit` trained the frozen parts).
    """
    layers = _layers_by_depth(model)
    flags = {id(layer): model.trainable for _, layer in layers}
    overrides: dict = {}
    for path, layer in layers:
        if flags[id(layer)] != layer.trainable:
            overrides[path] = bool(layer.trainable)
            for below in [layer] + layer._flatten_layers(include_self=False, recursive=True):
                flags[id(below)] = layer.trainable  # what the setter will do on restoring
    return overrides


def restore_trainable(model, overrides: dict) -> None:
    """Sets the `trainable` flags `trainable_overrides` recorded: every layer first takes the
    model's own flag, then each recorded layer its own, ancestors first. A path `model` lacks is
    passed over: a copy built from the config without some layers (the inference copy leaves the
    auxiliary heads out) has nothing there to freeze.
    """
    # The setter passes the flag down to every layer, but assigning the value the model already
    # has does nothing: flip it first.
    flag = model.trainable
    model.trainable = not flag
    model.trainable = flag
    for path, layer in _layers_by_depth(model):
        if path in overrides:
            layer.trainable = bool(overrides[path])


def config_with_trainable(config: dict, model) -> dict:
    """`config` with `TRAINABLE_LAYERS` where parts of `model` are frozen or unfrozen.

    A network whose constructor freezes parts (`freeze_experts`) always gets the key, empty when
    every layer has the model's own flag: without it, experts unfrozen after building came back
    frozen from a `.keras` file (helper 118: 49 trainable variables of 457).
    """
    overrides = trainable_overrides(model)
    if overrides or getattr(model, "freeze_experts", False):
        config[TRAINABLE_LAYERS] = overrides
    return config


def from_config_with_trainable(cls, config: dict):
    """`cls` built from `config`, with the `trainable` flags `config_with_trainable` kept."""
    config = dict(config)
    overrides = config.pop(TRAINABLE_LAYERS, None)
    model = cls(**deserialize_dtype(config))
    if overrides is not None:  # empty: every layer takes the model's flag
        restore_trainable(model, overrides)
    return model


def encoder_options(encoder) -> dict:
    """The encoder constructor arguments that AdapNetPP and SSMA pass through, as config values."""
    return {
        "block3_dilations": [list(p) for p in encoder.block3_dilations],
        "block4_dilations": [list(p) for p in encoder.block4_dilations],
        "dropout_rate": encoder.dropout_rate,
        "easpp_rates": list(encoder.easpp_rates),
    }


def unit_widths(widths: dict, name: str) -> dict:
    """The `ResidualUnit` width arguments of unit `name` from an encoder's checked `widths`."""
    released = encoder_widths()
    kwargs = {
        "filters": widths.get(f"{name}_conv1", released[f"{name}_conv1"]),
        "conv2_filters": widths.get(f"{name}_conv2", released[f"{name}_conv2"]),
    }
    if f"{name}_conv3" in widths:
        kwargs["residual_indices"] = widths[f"{name}_conv3"]
    return kwargs


# Keys of a dataset element that hold its labels, for the hint that they do not go to the model.
_LABEL_KEYS = ("label", "labels", "mask", "masks", "y", "target", "targets", "segmentation", "gt")


def inputs_in_order(model: keras.Model, inputs):
    """`inputs` as the networks' `call` reads them: a dict keyed by the model's input names (what
    Keras' own error advises when a network of several inputs gets one tensor: `{'modality1': ...,
    'modality2': ...}`; AdapNet++'s one input is `image`) becomes the list in the inputs' order, or
    the one tensor of a network of one input. Anything else is returned as it is.

    Raises:
        ValueError: a dict whose keys are not the input names, naming both.
    """
    if not isinstance(inputs, Mapping):
        return inputs
    names = [tensor.name for tensor in model.inputs]
    if set(inputs) != set(names):
        takes = (f"the key {names[0]!r} (or the tensor alone)" if len(names) == 1
                 else f"the keys {names} (or a list in that order)")
        extra = [key for key in inputs if key not in names]
        missing = [name for name in names if name not in inputs]
        # A dataset's element whole, its label included; other keys are misnamed inputs.
        labels = " (labels go to the loss, not the model)" if any(
            str(key).lower() in _LABEL_KEYS for key in extra) else ""
        why = "; ".join(([f"{', '.join(map(repr, extra))} {'is' if len(extra) == 1 else 'are'} not an input"
                          f"{labels}"] if extra else [])
                        + ([f"{', '.join(map(repr, missing))} missing"] if missing else []))
        raise ValueError(f"{type(model).__name__} takes a dict with {takes}, got the keys {list(inputs)}: {why}")
    ordered = [inputs[name] for name in names]
    return ordered[0] if len(ordered) == 1 else ordered


def check_image_shape(shape, what: str, channels: int = 3):
    """Raises ValueError unless the static height and width are unknown or multiples of the output
    stride, and the channels (when known) are `channels`."""
    if len(shape) != 4:
        raise ValueError(f"{what} must be a 4-D batch (B, H, W, C), got shape {tuple(shape)}")
    if shape[3] is not None and shape[3] != channels:
        hint = ("; repeat a single-channel image (grey depth, NIR) to three channels, as `ssma-prepare gray` "
                "writes it" if channels == 3 and shape[3] == 1 else "")
        raise ValueError(f"{what} must have {channels} channels, got {shape[3]} (shape {tuple(shape)}){hint}")
    for axis, size in (("height", shape[1]), ("width", shape[2])):
        if size is not None and size % OUTPUT_STRIDE:
            raise ValueError(f"{what} {axis} must be a multiple of {OUTPUT_STRIDE}, got {size} (shape {tuple(shape)})")


def check_modality_batches(inputs, what: str) -> None:
    """`check_image_shape` for each modality's batch of a multimodal network (`what`: "SSMA"), and
    that all have one batch size, height and width where known (before, a fusion baseline paired
    one image of modality 1 with each of two of modality 2 by broadcasting, or failed deep in
    TensorFlow on sizes that differ)."""
    shapes = [tuple(x.shape) for x in inputs]
    for i, shape in enumerate(shapes, start=1):
        check_image_shape(shape, f"{what} modality{i}")
    known = [shape[:3] for shape in shapes if None not in shape[:3]]
    if any(shape != known[0] for shape in known):
        raise ValueError(f"{what} modalities must have the same batch, height and width, got {shapes}")


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class AdapNetPPEncoder(keras.Model):
    """AdapNet++ encoder (Valada et al. 2019, Sections 3.1–3.2), as in the released graph.

    Input: (B, H, W, 3) BGR values 0..255, H and W multiples of 16. Outputs a dict:
    `block4` (B, H/16, W/16, 2048), `easpp` (B, H/16, W/16, 256), `skip1` (B, H/4, W/4, 24) and
    `skip2` (B, H/8, W/8, 24).

    Args:
        block3_dilations: (rate, rate) for block-3 units 3..6.
        block4_dilations: (rate, rate) for block-4 units 1..3.
        dropout_rate: dropout on block-4 unit-3's residual while training.
        easpp_rates: atrous rates of eASPP.
        input_channels: channels of the input image.
        widths: output channels by convolution name for a pruned encoder (`ssma_tf.models.widths`);
            the others keep their released widths. The block outputs keep theirs whatever is pruned.
    """

    def __init__(
        self,
        block3_dilations=RELEASED_BLOCK3_DILATIONS,
        block4_dilations=RELEASED_BLOCK4_DILATIONS,
        dropout_rate: float = RELEASED_DROPOUT_RATE,
        easpp_rates=(3, 6, 12),
        input_channels: int = 3,
        widths=None,
        **kwargs,
    ):
        check_model_kwargs(type(self), kwargs)
        widths = check_widths(widths, encoder_widths(), "AdapNetPPEncoder")
        block3_dilations = check_dilations("block3_dilations", block3_dilations, 4)
        block4_dilations = check_dilations("block4_dilations", block4_dilations, 3)
        dropout_rate = check_dropout_rate(dropout_rate)
        input_channels = check_input_channels(input_channels)
        dtype = kwargs.pop("dtype", None)

        # === Layers ===
        def unit(block, index, filters, **unit_kwargs):
            name = f"block{block}_unit{index}"
            unit_kwargs = {"filters": filters, **unit_kwargs, **unit_widths(widths, name)}
            return ResidualUnit(out_filters=filters * 4, name=name, dtype=dtype, **unit_kwargs)

        input_bn = batch_norm("input_bn", dtype=dtype)
        stem = ConvBN(widths.get("conv1", 64), 7, strides=2, name="conv1", dtype=dtype)
        pool = layers.MaxPooling2D(3, strides=2, padding="same", name="pool1", dtype=dtype)
        block1 = [unit(1, 1, 64, preactivation=False, shortcut="projection_of_conv1")]
        block1 += [unit(1, i, 64) for i in (2, 3)]
        block2 = [unit(2, 1, 128, strides=2, preactivation=False, shortcut="projection")]
        block2 += [unit(2, i, 128) for i in (2, 3)]
        block2 += [unit(2, 4, 128, dilation_rates=(1, 2))]
        block3 = [unit(3, 1, 256, strides=2, preactivation=False, shortcut="projection"), unit(3, 2, 256)]
        block3 += [unit(3, i, 256, dilation_rates=block3_dilations[i - 3]) for i in (3, 4, 5, 6)]
        block4 = [unit(4, 1, 512, shortcut="projection", dilation_rates=block4_dilations[0])]
        block4 += [unit(4, 2, 512, dilation_rates=block4_dilations[1])]
        block4 += [unit(4, 3, 512, dilation_rates=block4_dilations[2], dropout_rate=dropout_rate)]
        # Blocks 1, 2 and 4 end in BN + ReLU; in the TF1 graph these BNs live under the last unit's
        # conv3 scope. Block 3 has none: block-4 unit 1's pre-activation plays that role.
        block_out = {b: batch_norm(f"block{b}_out_bn", dtype=dtype) for b in (1, 2, 4)}
        skip1 = ConvBN(widths.get("skip1", SKIP_FILTERS), 1, activation=None, name="skip1", dtype=dtype)
        skip2 = ConvBN(widths.get("skip2", SKIP_FILTERS), 1, activation=None, name="skip2", dtype=dtype)
        easpp = EASPP(256, 64, easpp_rates, widths=sub_widths(widths, "easpp_") or None, name="easpp", dtype=dtype)

        # === Functional model ===
        image = keras.Input(shape=(None, None, input_channels), name="image")
        x = pool(stem(input_bn(image)))
        for layer in block1:
            x = layer(x)
        b1 = layers.ReLU(name="block1_out", dtype=dtype)(block_out[1](x))
        x = b1
        for layer in block2:
            x = layer(x)
        b2 = layers.ReLU(name="block2_out", dtype=dtype)(block_out[2](x))
        x = b2
        for layer in block3 + block4:
            x = layer(x)
        b4 = layers.ReLU(name="block4_out", dtype=dtype)(block_out[4](x))
        outputs = {"block4": b4, "easpp": easpp(b4), "skip1": skip1(b1), "skip2": skip2(b2)}
        super().__init__(inputs=image, outputs=outputs, **kwargs)
        if dtype is not None:
            # A functional model ignores a `dtype` argument; its layers have the policy, and the
            # model takes it too so that `get_config` (and a `.keras` file) keeps it.
            self.dtype_policy = dtype

        # === Config ===
        self.block3_dilations = block3_dilations
        self.block4_dilations = block4_dilations
        self.dropout_rate = float(dropout_rate)
        self.easpp_rates = tuple(int(r) for r in easpp_rates)  # checked by the eASPP
        self.input_channels = input_channels
        self.widths = widths

    def call(self, inputs, training=None, mask=None):
        check_image_shape(tuple(inputs.shape), f"{self.name} input", self.input_channels)
        return super().call(inputs, training=training, mask=mask)

    def get_config(self):
        config = super().get_config()  # name, trainable, dtype policy
        config.update({**encoder_options(self), "input_channels": self.input_channels, "widths": self.widths or None})
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**deserialize_dtype(config))
