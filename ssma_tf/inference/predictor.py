"""`Predictor`: class maps, probabilities and SSMA attention of image arrays.

`Predictor` holds a model and compiled inference functions. It takes images as arrays (RGB by
default, the order Pillow and image viewers use; BGR with `channel_order="bgr"`), resizes them to
the model size (a configured height × width, or each image's own size rounded to a multiple of
16, which the encoder needs), and returns the class ids, the softmax and, for SSMA, the mean
sigmoid gate of each SSMA block (Valada et al., IJCV 2019, Sec. 4.1), which shows where fusion
leans on which modality.

A model with its weights comes from `ssma_tf.checkpoints.loading` (or, as the command-line tools
name it, `ssma_tf.inference.settings.setup_inference`); `ssma_tf.inference.pictures` runs a
predictor over image files and writes pictures.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import keras
import numpy as np
import tensorflow as tf

from ssma_tf.constants import SSMA_FUSION
from ssma_tf.errors import UserInputError
from ssma_tf.inference.compiled import GATES, inference_model
from ssma_tf.inference.precision import choose_precision
from ssma_tf.inference.sizes import SIZE_MULTIPLE, check_size, rounded_size
from ssma_tf.keras_compat import check_tensorflow_backend
from ssma_tf.models.factory import is_fusion, num_modalities
from ssma_tf.resampling import resize_methods

CHANNEL_ORDERS = ("rgb", "bgr")


class PredictionError(UserInputError):
    """A sample could not be predicted; the message names its files."""


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
            images, as in training; "bilinear"); the same for every further modality, or a list
            with one per modality 2, 3, ...
        input_modality: AdapNet++: the modality it reads ("modality2" for an expert of depth),
            resized as that modality (by `modality2_interpolation`); modality 1 bilinearly.
        jit_compile: compile the network with XLA.
        optimize: run the fast inference copy of the model (`inference_model(model, optimize=True)`:
            batch norms folded, sub-pixel upsampling; same outputs to float32 rounding). The copy
            is made once, here: build a new predictor after changing the model's weights.
        precision: "float32" (default, the original's arithmetic), "bfloat16" (faster on
            hardware with bfloat16 units; see `ssma_tf.inference.rewrites`; needs `optimize`) or
            "auto" (`predict.py`'s default: bfloat16 only where it measured clearly faster than
            float32 on this machine, `ssma_tf.inference.precision`). `self.precision` holds the
            one used, `self.precision_reason` why.

    Raises:
        ValueError: a bad size, channel order, interpolation or precision.
        UserInputError: Keras runs on another backend than TensorFlow.
    """

    def __init__(
        self,
        model: keras.Model,
        size: Optional[Sequence[int]] = None,
        channel_order: str = "rgb",
        modality2_interpolation: Union[str, Sequence[str]] = "nearest",
        jit_compile: bool = False,
        optimize: bool = True,
        precision: str = "float32",
        input_modality: str = "modality1",
    ):
        # Refused here, not at the first prediction, whose tf.function failed on a JAX model with
        # "Cannot convert a symbolic tf.Tensor" after the predictor had been built (helper 302).
        check_tensorflow_backend("Predictor")
        if channel_order not in CHANNEL_ORDERS:
            raise ValueError(f"channel_order must be one of {CHANNEL_ORDERS}, got {channel_order!r}")
        methods = resize_methods(modality2_interpolation, num_modalities(model), input_modality)
        if precision == "auto" and not optimize:
            choice = choose_precision("float32")
            choice = dataclasses.replace(choice, reason="bfloat16 needs the optimized inference copy")
        else:
            choice = choose_precision(precision)
        self.precision = choice.precision
        self.precision_reason = choice.reason
        self.model = inference_model(model, optimize=optimize, precision=self.precision)
        self.num_classes = int(model.num_classes)
        self.size = None if size is None else check_size(size)
        self.channel_order = channel_order
        self.modality2_interpolation = modality2_interpolation
        self.jit_compile = bool(jit_compile)
        self.fusion = is_fusion(self.model)
        # SSMA's blocks have gates; a fusion baseline (`fusion: late`, ...) has none.
        self.fusion_method = getattr(model, "fusion", SSMA_FUSION) if self.fusion else None
        self.has_gates = self.fusion_method == SSMA_FUSION
        self.num_modalities = num_modalities(self.model)
        self._methods = methods
        self._functions: Dict[Tuple[bool, bool, bool], Any] = {}

    def model_size(self, height: int, width: int) -> Tuple[int, int]:
        """The size the model runs at for an input of `height` × `width`."""
        return self.size if self.size is not None else rounded_size(height, width)

    def predict(
        self,
        modality1: Any,
        modality2: Any = None,
        *further: Any,
        original_size: bool = False,
        probabilities: bool = True,
        gates: bool = False,
    ) -> Prediction:
        """Predicts one image (pair, or N modalities) or a batch.

        Args:
            modality1: (H, W, 3) or (B, H, W, 3) image(s), uint8 or float in 0..255, in the
                predictor's channel order; for AdapNet++ the network's input.
            modality2: SSMA only: the second modality, same shape.
            further: SSMA over N > 2 modalities: modality 3 .. N, same shape.
            original_size: return outputs at the input size (the probabilities resized
                bilinearly, the ids their argmax: `at_input_size`) instead of the model size.
            probabilities: also return the softmax (skip it to save memory).
            gates: SSMA only: also return the mean gate of each SSMA block.

        Returns:
            A `Prediction`; without a batch axis when the inputs had none.

        Raises:
            ValueError: wrong shapes, a missing or unexpected modality 2, or gates for AdapNet++.
        """
        if further and modality2 is None:
            raise ValueError("modality 3 and on need modality2")
        images = [modality1] if modality2 is None else [modality1, modality2, *further]
        if self.fusion and len(images) != self.num_modalities:
            if self.num_modalities == 2 and len(images) == 1:
                raise ValueError("SSMA needs modality2 as well as modality1")
            raise ValueError(f"this SSMA fuses {self.num_modalities} modalities, got {len(images)} images")
        if not self.fusion and len(images) != 1:
            raise ValueError("AdapNet++ takes one image; modality2 is for SSMA")
        if gates and not self.has_gates:
            raise ValueError("only SSMA has attention gates")
        arrays = check_image_arrays(images)
        single = arrays[0].ndim == 3
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
        methods = self._methods
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
            if original_size:
                ids, probs = at_input_size(probs, input_size)
            else:
                ids = tf.argmax(probs, axis=-1, output_type=tf.int32)
            result = {"class_ids": ids}
            if with_probabilities:
                result["probabilities"] = probs
            if with_gates:
                for key, name in GATES:
                    result[name] = tf.reduce_mean(outputs[key], axis=-1)
            return result

        return tf.function(run, input_signature=[spec] * len(methods))


def check_image_arrays(images: Sequence[Any]) -> list[np.ndarray]:
    """The images of one `predict` call as arrays, checked: each (H, W, 3) or (B, H, W, 3), all
    of one shape (the modalities of one scene), pixels in 0..255 (`check_pixel_range`).

    Raises:
        ValueError: naming the modality and the shapes.
    """
    arrays = [np.asarray(image) for image in images]
    single = arrays[0].ndim == 3
    for index, array in enumerate(arrays, start=1):
        if array.ndim != (3 if single else 4) or array.shape[-1] != 3:
            form = "(H, W, 3) or (B, H, W, 3)" if index == 1 else ("(H, W, 3), like modality1" if single
                                                                   else "(B, H, W, 3), like modality1")
            raise ValueError(f"modality{index} must be {form}, got {array.shape}")
    for index, array in enumerate(arrays[1:], start=2):
        if array.shape != arrays[0].shape:
            raise ValueError(
                f"modality1 and modality{index} must have the same shape, got {arrays[0].shape} and {array.shape}"
            )
    check_pixel_range(arrays)
    return arrays


def check_pixel_range(arrays: Sequence[np.ndarray]) -> None:
    """Refuses images that are not pixels in 0..255, and warns of images scaled to 0..1.

    The networks take 8-bit pixel values (as the training records hold them). Before, a uint16
    depth map in millimetres or an image normalised to -1..1 ran without a word and gave a
    class map of little use (64 % and 28 % of the pixels agreed with the right input's).

    Raises:
        ValueError: values below 0 or above 255, or NaN, naming the modality, the range and the dtype.
    """
    for index, array in enumerate(arrays, start=1):
        if array.size == 0 or array.dtype == np.uint8:
            continue
        missing = int(np.count_nonzero(~np.isfinite(array))) if np.issubdtype(array.dtype, np.floating) else 0
        if missing:
            # NaN compares false with both bounds: a depth map with NaN holes (missing readings) ran
            # without a word, its holes turned into some class (helper 344); inf holes were called
            # "a 16-bit depth or NIR image?" (helper 346).
            raise ValueError(f"modality{index} holds NaN or inf at {missing} of {array.size} values ({array.dtype}), "
                             "but the network takes pixels in 0..255: fill them first, or colour a raw depth map "
                             "with ssma-prepare, which takes NaN and inf as missing")
        low, high = float(np.min(array)), float(np.max(array))
        if low < 0 or high > 255.5:
            hint = ("a 16-bit depth or NIR image? colour it first (ssma-prepare jet, ndvi, ...)" if high > 255.5 else
                    "pixels normalised for another network? give the 0..255 values")
            raise ValueError(f"modality{index} holds values from {low:g} to {high:g} ({array.dtype}), but the "
                             f"network takes pixels in 0..255: {hint}")
        if 0 < high <= 1.0:
            warnings.warn(f"modality{index} holds values in 0..{high:g}: the network takes pixels in 0..255; an "
                          "image scaled to 0..1 looks black to it (multiply it by 255)", UserWarning, stacklevel=3)


def at_input_size(probabilities, size) -> tuple[tf.Tensor, tf.Tensor]:
    """Class ids and probabilities at `size` from the model-size probabilities (batch, h, w, C).

    The probabilities are resized bilinearly and the ids are their argmax: the one rule of every
    output at the input size (`Predictor`, the exports' predictors, the SavedModel's signature,
    as evaluation scores), so that the ids always agree with the probabilities returned beside
    them (resizing the model-size ids with nearest neighbour gave ids that were not the argmax
    of those probabilities, and blockier edges).
    """
    probabilities = tf.image.resize(probabilities, size, method="bilinear")
    return tf.argmax(probabilities, axis=-1, output_type=tf.int32), probabilities


def _rounded_size_tensor(input_size: tf.Tensor) -> tf.Tensor:
    """`rounded_size` on a size tensor (round half to even, as Python's `round`)."""
    multiple = tf.constant(SIZE_MULTIPLE, tf.int32)
    steps = tf.cast(tf.round(tf.cast(input_size, tf.float32) / SIZE_MULTIPLE), tf.int32)
    return tf.maximum(multiple, steps * multiple)
