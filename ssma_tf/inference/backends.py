"""Running an exported model outside TensorFlow: OpenVINO IR and TFLite files of `ssma-export`.

`ssma-export --format openvino` (or `tflite`) writes a folder (`ssma_tf.inference.deploy`) with the
network and `assets.extra/ssma_tf.json`. `load_exported(folder, backend)` opens it with the
backend's runtime and returns an `ExportedModel`: float32 BGR images at the export's fixed size
in, softmax out. `ExportedPredictor` puts the same resizing around it as `Predictor` does, so
`ssma-predict --backend openvino` writes the same pictures, and `ssma-evaluate --backend
openvino` counts the released mIoU on it (`ssma_tf.evaluation.evaluate_exported`).

The runtimes are optional (the `deploy` extra: `pip install '.[deploy]'` in the clone); without them a
`MissingExtraError` says which extra to install.
"""

from __future__ import annotations

import importlib
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ssma_tf.config import runs
from ssma_tf.config.yaml_reader import ConfigError
from ssma_tf.errors import UserInputError
from ssma_tf.native_output import dropping, native_lines_filtered
from ssma_tf.resampling import resize_methods

BACKENDS = ("tensorflow", "openvino", "tflite")
EXPORTED_BACKENDS = ("openvino", "tflite")
# The Python package each backend's runtime comes from.
RUNTIME_PACKAGES = {"openvino": "openvino", "tflite": "ai_edge_litert", "nncf": "nncf"}
# What each of them does here, as a missing one's error names it.
_RUNTIME_USES = {"openvino": "the OpenVINO backend", "tflite": "the LiteRT (TFLite) backend",
                 "nncf": "int8 quantisation for OpenVINO (--int8)"}


class MissingExtraError(UserInputError):
    """An optional runtime is not installed; the message names the extra to install."""


class ExportedModelError(UserInputError):
    """A folder is not an export of the asked backend; the message names the folder."""


def require(package: str) -> Any:
    """Imports `package` (a key of `RUNTIME_PACKAGES`), or raises `MissingExtraError` naming the extra."""
    module = RUNTIME_PACKAGES[package]
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtraError(
            # The package is installed from its clone (it is not on PyPI): the extra, or the one package.
            f"{_RUNTIME_USES[package]} needs the optional '{module}' package: pip install '.[deploy]' in the "
            f"ssma-tf clone (the deploy extra), or pip install {module.split('.')[0].replace('_', '-')}"
        ) from None


def read_export_metadata(folder: str) -> Dict[str, Any]:
    """The `assets.extra/ssma_tf.json` of an export folder (`ssma_tf.config.runs.read_export_metadata`).

    Raises:
        ExportedModelError: no such folder, or no readable metadata in it (naming the file).
    """
    try:
        return runs.read_export_metadata(folder)
    except ConfigError as error:
        raise ExportedModelError(str(error), error.path or os.fspath(folder)) from None


class ExportedModel:
    """An exported network opened with its runtime: BGR float images at `size` in, softmax out.

    Args:
        folder: the export folder.
        backend: "openvino" or "tflite".
        threads: CPU threads of the runtime (None: its default).

    Attributes:
        metadata: the export's `ssma_tf.json`.
        size: (height, width) the network takes.
        num_modalities: the images it takes: 1 (AdapNet++) or N (SSMA over N modalities).
        fusion: True for SSMA (two or more inputs).
        num_classes: C, void included.
        precision: "float32" or "int8".

    Raises:
        ExportedModelError: the folder holds no export of that backend.
        MissingExtraError: the runtime is not installed.
    """

    def __init__(self, folder: str, backend: str, threads: Optional[int] = None):
        if backend not in EXPORTED_BACKENDS:
            raise ValueError(f"backend must be one of {EXPORTED_BACKENDS}, got {backend!r}")
        self.folder = os.fspath(folder)
        self.backend = backend
        self.metadata = read_export_metadata(self.folder)
        files = self.metadata.get("files") or {}
        converted = self.metadata.get("tflite") or {}
        if backend == "tflite" and backend not in files and converted:
            # `ssma-export --tflite float32` converts the SavedModel's serving function (uint8
            # images in, class ids and probabilities out), which this runner does not take.
            raise ExportedModelError(
                f"{self.folder} holds TFLite conversions of the SavedModel ({', '.join(converted.values())}: "
                "uint8 images in, class ids and probabilities out, for your own runner); for --backend tflite, "
                "export with ssma-export --format tflite", self.folder)
        if backend not in files:
            raise ExportedModelError(
                f"{self.folder} holds no {backend} model (it has: {', '.join(files) or 'a SavedModel only'}); "
                f"export one with ssma-export --format {backend}", self.folder
            )
        self.size: Tuple[int, int] = tuple(self.metadata["size"])  # type: ignore[assignment]
        self.num_modalities = len(self.metadata["inputs"])
        self.fusion = self.num_modalities > 1
        self.num_classes = int(self.metadata["num_classes"])
        self.precision = self.metadata["precision"]
        path = os.path.join(self.folder, files[backend])
        if not os.path.isfile(path):
            raise ExportedModelError(f"{self.folder}: its {backend} model {files[backend]} is missing; export it "
                                     f"again with ssma-export --format {backend}", self.folder)
        try:
            self._run = (self._open_openvino(path, threads) if backend == "openvino"
                         else self._open_tflite(path, threads))
        except UserInputError:  # a missing extra says so itself
            raise
        except (RuntimeError, ValueError, OSError) as error:
            # A model file cut short, or an OpenVINO model.xml without its model.bin (before: the
            # runtime's traceback).
            # OpenVINO's message is a trace of source locations, its cause on the last line.
            lines = [line.strip() for line in str(error).splitlines() if line.strip()
                     and not line.startswith(("Exception from ", "Check '"))]
            cause = lines[-1] if lines else type(error).__name__
            raise ExportedModelError(f"{self.folder}: the {backend} runtime cannot open {files[backend]} (damaged, "
                                     f"or a file missing beside it: export it again): {cause}", self.folder) from None

    def __call__(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """The float32 softmax (B, H, W, C) of a batch: one (B, H, W, 3) BGR array per input, 0..255."""
        arrays = [np.ascontiguousarray(image, np.float32) for image in images]
        if len(arrays) != self.num_modalities:
            raise ValueError(
                f"the exported {self.metadata['model']} takes {self.num_modalities} input(s), got {len(arrays)}")
        for array in arrays:
            if array.ndim != 4 or tuple(array.shape[1:]) != (*self.size, 3):
                raise ValueError(f"inputs must be (B, {self.size[0]}, {self.size[1]}, 3), got {array.shape}")
        # One image per call: the fixed-shape networks take batch 1 (TFLite) or run it fastest.
        return np.concatenate([self._run([a[i:i + 1] for a in arrays]) for i in range(len(arrays[0]))])

    def _open_openvino(self, path: str, threads: Optional[int]):
        ov = require("openvino")
        # The CPU plugin would compute in bfloat16 where the processor has AVX512-BF16 (its default
        # there); float32 keeps the exported numbers (and int8 layers stay int8).
        config: Dict[str, Any] = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        compiled = ov.Core().compile_model(path, "CPU", config)
        request = compiled.create_infer_request()
        output = compiled.output(0)
        # Fed by name where the model's inputs carry the metadata's names (every export does), so
        # that an input order other than the metadata's cannot swap modalities.
        names = list(self.metadata["inputs"])
        held = {name for port in compiled.inputs for name in port.get_names()}
        by_name = set(names) <= held

        def run(batch: List[np.ndarray]) -> np.ndarray:
            feed = dict(zip(names, batch)) if by_name else batch
            return np.array(request.infer(feed)[output], np.float32)

        return run

    def _tflite_inputs_in_order(self, details: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        """The interpreter's inputs in the metadata's order, matched by name.

        A converted SavedModel names them "serving_default_modality3:0" and lists them in no set
        order; a converted function names them "modality3". Sorting the names as text put
        modality10 before modality2 (before: the wrong image fed to each input from ten modalities
        on, silently).
        """
        names = list(self.metadata["inputs"])
        found: Dict[str, Dict[str, Any]] = {}
        for detail in details:
            name = str(detail["name"]).removeprefix("serving_default_").split(":")[0]
            found[name] = detail
        missing = [name for name in names if name not in found]
        if missing or len(details) != len(names):
            raise ExportedModelError(
                f"{self.folder}: the TFLite model's inputs ({', '.join(str(d['name']) for d in details)}) do not match "
                f"the inputs its ssma_tf.json names ({', '.join(names)}); export it again with "
                "ssma-export --format tflite", self.folder)
        return [found[name] for name in names]

    def _open_tflite(self, path: str, threads: Optional[int]):
        require("tflite")
        from ai_edge_litert.interpreter import Interpreter

        # LiteRT says "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." on every run.
        with native_lines_filtered(dropping("INFO: Created TensorFlow Lite XNNPACK delegate")):
            interpreter = Interpreter(model_path=path, num_threads=threads)
            interpreter.allocate_tensors()
        inputs = self._tflite_inputs_in_order(interpreter.get_input_details())
        (output,) = interpreter.get_output_details()

        def convert(array: np.ndarray, detail: Dict[str, Any]) -> np.ndarray:
            if detail["dtype"] == np.float32:
                return array
            scale, zero = detail["quantization"]
            info = np.iinfo(detail["dtype"])
            return np.clip(np.round(array / scale + zero), info.min, info.max).astype(detail["dtype"])

        def run(batch: List[np.ndarray]) -> np.ndarray:
            for array, detail in zip(batch, inputs):
                interpreter.set_tensor(detail["index"], convert(array, detail))
            interpreter.invoke()
            result = interpreter.get_tensor(output["index"])
            if output["dtype"] != np.float32:
                scale, zero = output["quantization"]
                result = (result.astype(np.float32) - zero) * scale
            return result

        return run


class ExportedPredictor:
    """`Predictor`'s interface (class ids at the model or input size) on an `ExportedModel`.

    Inputs are resized bilinearly to the export's size (SSMA's modality 2 and on as the export's
    `modality2_interpolation` says), the softmax resized back bilinearly for `original_size`, as
    `Predictor` does. SSMA's attention gates are not exported.

    Args:
        model: the `ExportedModel`.
        channel_order: "rgb" or "bgr", the order of the arrays given to `predict`.
    """

    def __init__(self, model: ExportedModel, channel_order: str = "rgb"):
        from ssma_tf.inference.predictor import CHANNEL_ORDERS

        if channel_order not in CHANNEL_ORDERS:  # before: anything but "rgb" was taken for BGR
            raise ValueError(f"channel_order must be one of {CHANNEL_ORDERS}, got {channel_order!r}")
        self.exported = model
        self.channel_order = channel_order
        self.fusion = model.fusion
        self.fusion_method = model.metadata.get("fusion") if model.fusion else None
        self.has_gates = False  # SSMA's attention gates are not exported
        self.num_modalities = model.num_modalities
        self.num_classes = model.num_classes
        self.size = model.size
        self.precision = f"{model.backend} {model.precision}"
        self.precision_reason = f"exported model {model.folder}"
        self.modality2_interpolation = model.metadata.get("modality2_interpolation") or "nearest"
        self._methods = resize_methods(self.modality2_interpolation, self.num_modalities,
                                       model.metadata.get("input_modality") or "modality1")

    def model_size(self, height: int, width: int) -> Tuple[int, int]:
        """The size the network runs at: the export's, whatever the input."""
        return self.size

    def predict(self, modality1: Any, modality2: Any = None, *further: Any, original_size: bool = False,
                probabilities: bool = True, gates: bool = False):
        """As `Predictor.predict`, without gates."""
        import tensorflow as tf

        from ssma_tf.inference.predictor import Prediction, at_input_size, check_image_arrays

        if gates:
            raise ValueError("an exported model has no attention gates; predict with the TensorFlow backend")
        if further and modality2 is None:
            raise ValueError("modality 3 and on need modality2")
        images = [modality1] if modality2 is None else [modality1, modality2, *further]
        if len(images) != self.num_modalities:
            if not self.fusion:
                raise ValueError("AdapNet++ takes one image")
            raise ValueError(f"this SSMA fuses {self.num_modalities} modalities, got {len(images)} images")
        # One shape for every modality, as `Predictor` (before: each resized alone, and a batch's
        # extra images of modality 2 on left out).
        arrays = [a.astype(np.float32) for a in check_image_arrays(images)]
        single = arrays[0].ndim == 3
        if single:
            arrays = [a[None] for a in arrays]
        if self.channel_order == "rgb":
            arrays = [a[..., ::-1] for a in arrays]  # the network takes BGR
        height, width = arrays[0].shape[1:3]
        views = [tf.image.resize(a, self.size, method=m).numpy() for a, m in zip(arrays, self._methods)]
        probs = self.exported(views)
        if original_size:
            ids, probs = (t.numpy() for t in at_input_size(probs, (height, width)))
        else:
            ids = probs.argmax(axis=-1).astype(np.int32)
        unbatch = (lambda x: x[0]) if single else (lambda x: x)
        return Prediction(class_ids=unbatch(ids), probabilities=unbatch(probs) if probabilities else None,
                          gates={}, model_size=self.size)

    __call__ = predict


def load_exported(folder: str, backend: str, threads: Optional[int] = None) -> ExportedModel:
    """Opens an export folder with a backend's runtime (see `ExportedModel`)."""
    return ExportedModel(folder, backend, threads)
