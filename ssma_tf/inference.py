"""Predicting with AdapNet++ and SSMA: class maps, probabilities and SSMA attention.

`Predictor` holds a model and compiled inference functions. It takes images as arrays (RGB by
default, the order Pillow and image viewers use; BGR with `channel_order="bgr"`), resizes them to
the model size (a configured height × width, or each image's own size rounded to a multiple of
16, which the encoder needs), and returns the class ids, the softmax and, for SSMA, the mean
sigmoid gate of each SSMA block (Valada et al., IJCV 2019, Sec. 4.1), which shows where fusion
leans on which modality.

`load_model` and `model_from_config` build a model with its weights from a checkpoint or a run
config; `ssma_tf.predict` runs a predictor over image files and writes pictures.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import keras
import numpy as np
import tensorflow as tf

from ssma_tf.checkpoints import CheckpointError
from ssma_tf.models import SSMA, AdapNetPP

# The encoder downsamples by 16 and the decoder upsamples back exactly.
SIZE_MULTIPLE = 16
CHANNEL_ORDERS = ("rgb", "bgr")
INTERPOLATIONS = ("nearest", "bilinear")
INPUT_MODALITIES = ("modality1", "modality2")
MODEL_NAMES = ("AdapNet_pp", "SSMA")
# SSMA blocks whose gates `return_all` exposes, from the deepest: (output key, picture name).
GATES = (("gate_latent", "latent"), ("gate_skip2", "skip2"), ("gate_skip1", "skip1"))
PathLike = Union[str, "os.PathLike[str]"]


class PredictionError(ValueError):
    """A sample could not be predicted; the message names its files."""


def is_fusion(model: keras.Model) -> bool:
    """True for a model that takes two modalities (SSMA)."""
    return len(model.inputs) == 2


def model_name(model: keras.Model) -> str:
    """The config name of a model: "SSMA" or "AdapNet_pp"."""
    return "SSMA" if is_fusion(model) else "AdapNet_pp"


def inference_model(model: keras.Model, optimize: bool = False, precision: str = "float32") -> keras.Model:
    """The part of a model inference needs, in float32: softmax, logits and SSMA's gates.

    The auxiliary heads only serve the training loss (and their resize to the input size needs a
    static input size in graph mode), so they are left out. Without `optimize` the result is a
    functional view that shares the model's layers and weights; a mixed-precision model is first
    copied into float32, so that predictions and exports do not depend on how the model was trained.

    Args:
        model: an `AdapNetPP` or `SSMA`.
        optimize: build the view on `ssma_tf.fast.optimize_for_inference(model)`, a copy with
            batch norms folded into the convolutions and the decoder's transposed convolutions in
            sub-pixel form: the same outputs to float32 rounding, faster (README, Benchmarks). The
            copy is made here, once: later changes of the model's weights do not reach it.
        precision: with `optimize`, "float32" or "bfloat16" (`ssma_tf.fast`: faster on hardware
            with bfloat16 units, probabilities within a few 1e-2 of float32).

    Returns:
        A `keras.Model` with the same inputs that returns a dict: `softmax`, `logits` and, for
        SSMA, `gate_latent`, `gate_skip2`, `gate_skip1`.
    """
    from ssma_tf.fast import check_precision, copy_for_inference, optimize_for_inference

    if check_precision(precision) != "float32" and not optimize:
        raise ValueError(f"precision={precision!r} needs optimize=True (the inference copy)")
    if optimize:
        model = optimize_for_inference(model, precision=precision)
    elif model.dtype_policy.name != "float32":
        model = copy_for_inference(model, "float32")
    keys = ["softmax", "logits"] + [key for key, _ in GATES if key in model.output]
    return keras.Model(model.inputs, {key: model.output[key] for key in keys}, name=f"{model.name}_inference")


def parse_size(text: str) -> Optional[Tuple[int, int]]:
    """Reads a `HxW` size (e.g. "384x768"); "input" gives None (each input's own size).

    Raises:
        ValueError: not `HxW` with positive multiples of 16.
    """
    value = text.strip().lower()
    if value == "input":
        return None
    parts = value.split("x")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise ValueError(f"size must be HEIGHTxWIDTH (e.g. 384x768) or 'input', got {text!r}")
    return check_size((int(parts[0]), int(parts[1])))


def check_size(size: Sequence[int]) -> Tuple[int, int]:
    """Checks a model input size (height, width): two positive multiples of 16."""
    try:
        height, width = (int(s) for s in size)
    except (TypeError, ValueError):
        raise ValueError(f"size must be (height, width), got {size!r}") from None
    if height < SIZE_MULTIPLE or width < SIZE_MULTIPLE or height % SIZE_MULTIPLE or width % SIZE_MULTIPLE:
        raise ValueError(f"size must be two positive multiples of {SIZE_MULTIPLE}, got {height}x{width}")
    return height, width


def rounded_size(height: int, width: int) -> Tuple[int, int]:
    """The model size for an input of `height` × `width` without a configured size."""
    def rounded(value: int) -> int:
        return max(SIZE_MULTIPLE, int(round(value / SIZE_MULTIPLE)) * SIZE_MULTIPLE)

    return rounded(height), rounded(width)


def default_palette(num_classes: int) -> np.ndarray:
    """Distinct colours for a model without a dataset: void black, then a bit-interleaved ramp.

    Each class id's bits are spread over the high bits of red, green and blue in turn, so that
    neighbouring ids get very different colours (the scheme of the PASCAL VOC label images).
    """
    palette = np.zeros((num_classes, 3), np.uint8)
    for class_id in range(1, num_classes):
        value, colour, shift = class_id, [0, 0, 0], 7
        while value and shift >= 0:
            for channel in range(3):
                colour[channel] |= ((value >> channel) & 1) << shift
            value >>= 3
            shift -= 1
        palette[class_id] = colour
    return palette


# ---------------------------------------------------------------------------------------------
# Loading a model.


def load_model(
    checkpoint: PathLike, model: Optional[str] = None, num_classes: Optional[int] = None
) -> keras.Model:
    """Builds the network a checkpoint holds and loads its weights.

    An original TF1 checkpoint and a `.keras` file say which model and how many classes they
    hold; the project's own checkpoints and `.weights.h5` files need `model` and `num_classes`.

    Args:
        checkpoint: TF1 or TF2 checkpoint prefix, a training directory, a `.weights.h5` or
            `.keras` file.
        model: "AdapNet_pp" or "SSMA" (checked against the checkpoint when it says itself).
        num_classes: classes including void (likewise).

    Returns:
        The model with its weights, ready for `Predictor` or `export_saved_model`.

    Raises:
        CheckpointError: nothing readable at `checkpoint`, or it does not fit the model.
        ValueError: a missing or bad `model`/`num_classes`.
    """
    from ssma_tf.checkpoints.convert import model_for_checkpoint
    from ssma_tf.weights import FORMAT_TF1, load_weights, resolve_weights

    if model is not None and model not in MODEL_NAMES:
        raise ValueError(f"model must be one of {MODEL_NAMES}, got {model!r}")
    fmt, resolved = resolve_weights(os.fspath(checkpoint))
    built: Optional[keras.Model] = None
    if fmt == FORMAT_TF1:
        built, _ = model_for_checkpoint(resolved)
        load_weights(built, resolved)
    elif resolved.endswith(".keras"):
        built = keras.saving.load_model(resolved, compile=False)
        if not isinstance(built, (AdapNetPP, SSMA)):
            raise CheckpointError(f"{resolved} holds a {type(built).__name__}, not AdapNetPP or SSMA")
    if built is not None:
        _check_matches(built, resolved, model, num_classes)
        return built
    if model is None or num_classes is None:
        raise ValueError(
            f"{resolved} does not say which network it holds: give the model (AdapNet_pp or SSMA) "
            "and num_classes"
        )
    if model == "SSMA":
        # Trained SSMA models have auxiliary heads or not (`aux_heads`); a weights file must
        # match the structure exactly, so try without them first, as released.
        try:
            built = SSMA(num_classes, aux_heads=False)
            load_weights(built, resolved)
        except CheckpointError:
            built = SSMA(num_classes, aux_heads=True)
            load_weights(built, resolved)
    else:
        built = AdapNetPP(num_classes, aux_heads=True)
        load_weights(built, resolved)
    return built


def load_run_config(path: PathLike) -> Any:
    """Reads a run config for prediction or export.

    An evaluation config names the weights in `checkpoint`; a training config names the folder
    the run wrote, whose newest checkpoint (or `final.weights.h5`) holds the trained weights.
    Data paths are not checked: prediction reads other files.

    Returns:
        The `ssma_tf.config.RunConfig`.

    Raises:
        ConfigError: the file is not a valid evaluation or training config.
    """
    from ssma_tf.config import ConfigError, load_config

    try:
        return load_config(path, "eval", check_paths=False)
    except ConfigError as error:
        if error.key != "test_data":
            raise
    return load_config(path, "train", check_paths=False)


def model_from_config(config: Any) -> keras.Model:
    """Builds the network a `RunConfig` describes and loads its `checkpoint`.

    Raises:
        CheckpointError: no checkpoint there, or it does not fit the model.
    """
    from ssma_tf.weights import build_model, load_weights

    model = build_model(config)
    load_weights(model, config.checkpoint)
    return model


@dataclasses.dataclass
class InferenceSetup:
    """A model with its weights and the settings its config gives for inference.

    Attributes:
        model: the `AdapNetPP` or `SSMA`.
        dataset: class names and colours (`DatasetInfo`), or None.
        size: the config's (height, width), or None without a config.
        modality2_interpolation: the config's, else "nearest".
        input_modality: AdapNet++: the config's input modality, else "modality1".
    """

    model: keras.Model
    dataset: Optional[Any] = None
    size: Optional[Tuple[int, int]] = None
    modality2_interpolation: str = "nearest"
    input_modality: str = "modality1"


def setup_inference(
    config: Optional[PathLike] = None,
    checkpoint: Optional[PathLike] = None,
    model: Optional[str] = None,
    num_classes: Optional[int] = None,
    dataset: Optional[str] = None,
) -> InferenceSetup:
    """Loads a model as the command-line tools name it: a run config, a checkpoint, or both.

    Args:
        config: a run config (`load_run_config`); its `checkpoint`, model, classes, size,
            dataset and interpolation apply unless overridden.
        checkpoint: weights to load instead of the config's.
        model, num_classes: the network, for weights that do not say (see `load_model`).
        dataset: dataset name for the colours, instead of the config's.

    Raises:
        ConfigError, CheckpointError, ValueError: as `load_run_config`, `load_model` and
            `get_dataset_info` raise them.
    """
    from ssma_tf.data.datasets import get_dataset_info

    if config is None and checkpoint is None:
        raise ValueError("give a config or a checkpoint")
    run = None if config is None else load_run_config(config)
    if checkpoint is not None:
        loaded = load_model(checkpoint, model or (run.model if run else None),
                            num_classes or (run.num_classes if run else None))
    else:
        loaded = model_from_config(run)
    if dataset is not None:
        info = get_dataset_info(dataset)
    else:
        info = run.dataset_info() if run is not None else None
    if info is not None and info.num_classes != loaded.num_classes:
        raise ValueError(
            f"dataset {info.name} has {info.num_classes} classes (void included), the model {loaded.num_classes}"
        )
    if run is None:
        return InferenceSetup(loaded, info)
    return InferenceSetup(
        loaded, info, (run.height, run.width), run.modality2_interpolation, run.input_modality or "modality1"
    )


def _check_matches(built: keras.Model, source: str, model: Optional[str], num_classes: Optional[int]):
    """Raises CheckpointError when a self-describing checkpoint contradicts the given flags."""
    if model is not None and model != model_name(built):
        raise CheckpointError(f"{source} holds {model_name(built)}, not {model}")
    if num_classes is not None and num_classes != built.num_classes:
        raise CheckpointError(f"{source} has {built.num_classes} classes, not {num_classes}")


# ---------------------------------------------------------------------------------------------
# The predictor.


@dataclasses.dataclass
class Prediction:
    """What a `Predictor` returns for a batch (or one image, without the batch axis).

    Attributes:
        class_ids: int32 (B, H, W): argmax of the softmax.
        probabilities: float32 (B, H, W, C) softmax, or None when not asked for.
        gates: SSMA only, when asked for: block name ("latent", "skip2", "skip1") → float32
            (B, h, w) mean sigmoid gate over the block's channels, at the block's resolution
            (1/16, 1/8 and 1/4 of the model size).
        model_size: (height, width) the model ran at. The outputs have this size, or the input
            size with `original_size`.
    """

    class_ids: np.ndarray
    probabilities: Optional[np.ndarray]
    gates: Dict[str, np.ndarray]
    model_size: Tuple[int, int]


class Predictor:
    """Runs AdapNet++ or SSMA on image arrays with compiled functions.

    Each combination of output options has one `tf.function`, traced once for any batch and
    image size (the signature leaves batch, height and width open).

    Args:
        model: an `AdapNetPP` or `SSMA` with its weights (used through `inference_model`: no
            auxiliary heads, float32).
        size: the model input (height, width), multiples of 16, e.g. the size the model was
            trained at; None: each input's own size rounded to the nearest multiple of 16.
        channel_order: "rgb" (arrays as Pillow gives them) or "bgr" (as OpenCV gives them, and
            as the network takes them).
        modality2_interpolation: how SSMA's second modality is resized ("nearest" for depth-like
            images, as in training; "bilinear").
        jit_compile: compile the network with XLA.
        optimize: run the fast inference copy of the model (`inference_model(model, optimize=True)`:
            batch norms folded, sub-pixel upsampling; same outputs to float32 rounding). The copy
            is made once, here: build a new predictor after changing the model's weights.
        precision: "float32" (default, the original's arithmetic), "bfloat16" (faster on
            hardware with bfloat16 units; see `ssma_tf.fast`; needs `optimize`) or "auto"
            (bfloat16 where `ssma_tf.fast.native_bfloat16()`, else float32; `predict.py`'s default).
            `self.precision` holds the one used.

    Raises:
        ValueError: a bad size, channel order, interpolation or precision.
    """

    def __init__(
        self,
        model: keras.Model,
        size: Optional[Sequence[int]] = None,
        channel_order: str = "rgb",
        modality2_interpolation: str = "nearest",
        jit_compile: bool = False,
        optimize: bool = True,
        precision: str = "float32",
    ):
        if channel_order not in CHANNEL_ORDERS:
            raise ValueError(f"channel_order must be one of {CHANNEL_ORDERS}, got {channel_order!r}")
        if modality2_interpolation not in INTERPOLATIONS:
            raise ValueError(
                f"modality2_interpolation must be one of {INTERPOLATIONS}, got {modality2_interpolation!r}"
            )
        from ssma_tf.fast import resolve_precision

        if precision == "auto" and not optimize:
            precision = "float32"
        self.precision = resolve_precision(precision)
        self.model = inference_model(model, optimize=optimize, precision=self.precision)
        self.num_classes = int(model.num_classes)
        self.size = None if size is None else check_size(size)
        self.channel_order = channel_order
        self.modality2_interpolation = modality2_interpolation
        self.jit_compile = bool(jit_compile)
        self.fusion = is_fusion(self.model)
        self._functions: Dict[Tuple[bool, bool, bool], Any] = {}

    def model_size(self, height: int, width: int) -> Tuple[int, int]:
        """The size the model runs at for an input of `height` × `width`."""
        return self.size if self.size is not None else rounded_size(height, width)

    def predict(
        self,
        modality1: Any,
        modality2: Any = None,
        *,
        original_size: bool = False,
        probabilities: bool = True,
        gates: bool = False,
    ) -> Prediction:
        """Predicts one image (pair) or a batch.

        Args:
            modality1: (H, W, 3) or (B, H, W, 3) image(s), uint8 or float in 0..255, in the
                predictor's channel order; for AdapNet++ the network's input.
            modality2: SSMA only: the second modality, same shape.
            original_size: return outputs at the input size (ids resized with nearest neighbour,
                probabilities bilinearly) instead of the model size.
            probabilities: also return the softmax (skip it to save memory).
            gates: SSMA only: also return the mean gate of each SSMA block.

        Returns:
            A `Prediction`; without a batch axis when the inputs had none.

        Raises:
            ValueError: wrong shapes, a missing or unexpected modality 2, or gates for AdapNet++.
        """
        images = [modality1] if modality2 is None else [modality1, modality2]
        if self.fusion and len(images) != 2:
            raise ValueError("SSMA needs modality2 as well as modality1")
        if not self.fusion and len(images) != 1:
            raise ValueError("AdapNet++ takes one image; modality2 is for SSMA")
        if gates and not self.fusion:
            raise ValueError("only SSMA has attention gates")
        arrays = [np.asarray(image) for image in images]
        single = arrays[0].ndim == 3
        for index, array in enumerate(arrays, start=1):
            if array.ndim != (3 if single else 4) or array.shape[-1] != 3:
                raise ValueError(
                    f"modality{index} must be (H, W, 3) or (B, H, W, 3) like modality1, got {array.shape}"
                )
        if len(arrays) == 2 and arrays[0].shape != arrays[1].shape:
            raise ValueError(
                f"modality1 and modality2 must have the same shape, got {arrays[0].shape} and {arrays[1].shape}"
            )
        batch = [tf.convert_to_tensor(a[None] if single else a, tf.float32) for a in arrays]
        height, width = arrays[0].shape[-3:-1]
        function = self._function(bool(original_size), bool(probabilities), bool(gates))
        outputs = {key: value.numpy() for key, value in function(*batch).items()}
        unbatch = (lambda x: x[0]) if single else (lambda x: x)
        return Prediction(
            class_ids=unbatch(outputs["class_ids"]),
            probabilities=unbatch(outputs["probabilities"]) if probabilities else None,
            gates={name: unbatch(outputs[name]) for _, name in GATES if name in outputs},
            model_size=self.model_size(int(height), int(width)),
        )

    __call__ = predict

    def _function(self, original_size: bool, probabilities: bool, gates: bool):
        key = (original_size, probabilities, gates)
        if key not in self._functions:
            self._functions[key] = self._build_function(*key)
        return self._functions[key]

    def _build_function(self, original_size: bool, with_probabilities: bool, with_gates: bool):
        spec = tf.TensorSpec([None, None, None, 3], tf.float32)
        methods = ("bilinear", self.modality2_interpolation)[: 2 if self.fusion else 1]
        model = self.model

        def network(inputs):
            return model(inputs, training=False)

        if self.jit_compile:
            network = tf.function(network, jit_compile=True)

        def run(*images):
            input_size = tf.shape(images[0])[1:3]
            size = self.size if self.size is not None else _rounded_size_tensor(input_size)
            views = []
            for image, method in zip(images, methods):
                if self.channel_order == "rgb":
                    image = tf.reverse(image, axis=[-1])  # the network takes BGR
                views.append(tf.image.resize(image, size, method=method))
            outputs = network(views if self.fusion else views[0])
            probs = outputs["softmax"]
            ids = tf.argmax(probs, axis=-1, output_type=tf.int32)
            if original_size:
                ids = tf.image.resize(ids[..., None], input_size, method="nearest")[..., 0]
            result = {"class_ids": ids}
            if with_probabilities:
                if original_size:
                    probs = tf.image.resize(probs, input_size, method="bilinear")
                result["probabilities"] = probs
            if with_gates:
                for key, name in GATES:
                    result[name] = tf.reduce_mean(outputs[key], axis=-1)
            return result

        return tf.function(run, input_signature=[spec] * len(methods))


def _rounded_size_tensor(input_size: tf.Tensor) -> tf.Tensor:
    """`rounded_size` on a size tensor (round half to even, as Python's `round`)."""
    multiple = tf.constant(SIZE_MULTIPLE, tf.int32)
    steps = tf.cast(tf.round(tf.cast(input_size, tf.float32) / SIZE_MULTIPLE), tf.int32)
    return tf.maximum(multiple, steps * multiple)
