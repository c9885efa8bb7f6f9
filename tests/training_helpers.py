"""Helpers for the training and evaluation tests: tiny records, smoke configs, a tiny model."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
from typing import Optional

import keras
import numpy as np
import tensorflow as tf

from ssma_tf.data import write_examples
from tests.conftest import ROOT

SMOKE_DIR = pathlib.Path(__file__).resolve().parent / "smoke"

# What a script run by `run_on_two_logical_cpus` starts with: the CPU split into two logical
# devices (before TensorFlow initialises them) and `strategy`, a MirroredStrategy over both.
_TWO_CPUS = """
import sys
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])

def assert_replicas_agree(*models):
    for model in models:
        for variable in model.weights:
            copies = strategy.experimental_local_results(variable.value)
            assert np.array_equal(copies[0].numpy(), copies[1].numpy()), variable.path
"""


def run_on_two_logical_cpus(script: str, *args: str) -> subprocess.CompletedProcess:
    """Runs `script` in a fresh Python process with two logical CPUs under `MirroredStrategy`.

    The script sees `sys`, `np`, `tf`, `strategy` and `assert_replicas_agree(*models)` (every
    weight equal on both replicas), and `sys.argv[1:]` are `args`. A new process, because the
    logical devices must be set before TensorFlow initialises its runtime.
    """
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-c", _TWO_CPUS + script, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def smoke_config(name: str) -> pathlib.Path:
    """The path of a smoke config in `tests/smoke/`."""
    return SMOKE_DIR / name


def make_sample(rng: np.random.Generator, height: int, width: int, num_classes: int,
                fusion: bool) -> tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
    """One learnable sample: vertical bands of classes, each with its own colour plus noise."""
    bands = rng.integers(0, num_classes, size=4)
    edges = np.sort(rng.choice(np.arange(8, width - 8), size=3, replace=False))
    columns = np.searchsorted(edges, np.arange(width), side="right")
    label = np.broadcast_to(bands[columns], (height, width)).astype(np.uint8)
    colours = (np.arange(num_classes)[:, None] * np.array([53, 97, 151]) % 256).astype(np.float64)
    image = colours[label] + rng.normal(0, 10, size=(height, width, 3))
    image = np.clip(image, 0, 255).astype(np.uint8)
    second = None
    if fusion:
        second = np.clip(255 - image.astype(np.int32), 0, 255).astype(np.uint8)
    return image, label, second


def write_records(path: os.PathLike, count: int, *, height: int = 64, width: int = 128,
                  num_classes: int = 5, fusion: bool = False, seed: int = 0) -> str:
    """Writes `count` samples to a TFRecord file (raw BGR bytes, as the original tools)."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)

    def samples():
        for _ in range(count):
            image, label, second = make_sample(rng, height, width, num_classes, fusion)
            yield {"modality1": image, "label": label, **({"modality2": second} if fusion else {})}

    write_examples(path, samples())
    return str(path)


class TinySegmenter(keras.Model):
    """A few-hundred-weight stand-in with the interface of `AdapNetPP`/`SSMA` for fast tests.

    Same calling convention (`return_all` dict with `softmax` and `logits`, `encoders`), a batch
    norm in its "encoder" (so synchronized batch norm and BN statistics are exercised), and a
    list input for fusion.
    """

    def __init__(self, num_classes: int, fusion: bool = False, dtype=None, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.fusion = fusion
        self.encoder = keras.Sequential(
            [
                keras.layers.Conv2D(4, 3, padding="same", name="conv", dtype=dtype),
                keras.layers.BatchNormalization(name="bn", dtype=dtype),
                keras.layers.ReLU(dtype=dtype),
            ],
            name="encoder",
        )
        self.head = keras.layers.Conv2D(num_classes, 1, name="head", dtype=dtype)

    @property
    def encoders(self) -> list:
        return [self.encoder]

    def get_config(self) -> dict:
        # Training ends by saving the whole model (`final.keras`), which needs the config.
        return {"name": self.name, "trainable": self.trainable, "num_classes": self.num_classes,
                "fusion": self.fusion}

    def call(self, inputs, training=None, return_all=False):
        x = inputs[0] if isinstance(inputs, (list, tuple)) else inputs
        logits = self.head(self.encoder(x / 255.0, training=training))
        # float32 probabilities under mixed precision, as the real models give.
        probs = keras.ops.softmax(keras.ops.cast(logits, "float32"), axis=-1)
        return {"softmax": probs, "logits": logits} if return_all else probs


class RecordingSegmenter(TinySegmenter):
    """A `TinySegmenter` that appends the inputs it sees while run eagerly to `calls` (a list of
    lists of arrays, one list per call), so that a test can check what a step fed it."""

    def __init__(self, num_classes: int, calls: list, fusion: bool = False, **kwargs):
        super().__init__(num_classes, fusion=fusion, **kwargs)
        self.record = calls.append  # not the list: Keras would track a copy of it

    def call(self, inputs, training=None, return_all=False):
        out = super().call(inputs, training=training, return_all=return_all)
        if tf.executing_eagerly():  # not while Keras traces the model symbolically
            self.record([np.array(x) for x in (inputs if isinstance(inputs, (list, tuple)) else [inputs])])
        return out


def recording_model_builder(calls: list, height: int, width: int, modalities: int = 3):
    """A `build_model` stand-in: each model built is a `RecordingSegmenter` appending to `calls`."""

    def build(config):
        model = RecordingSegmenter(config.num_classes, calls, fusion=config.is_fusion)
        dummy = np.zeros((1, height, width, 3), np.float32)
        model([dummy] * modalities if config.is_fusion else dummy)
        return model

    return build


def short_fusion_record(height: int, width: int) -> bytes:
    """A fusion record without a label whose modality1 holds 100 bytes: it frames well, and only
    decoding it (a training step) finds it damaged."""
    def feature(value):
        if isinstance(value, int):
            return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    return tf.train.Example(features=tf.train.Features(feature={
        "height": feature(height), "width": feature(width), "modality1": feature(bytes(100)),
        "modality2": feature(bytes(height * width * 3)),
    })).SerializeToString()


def one_eager_step(trainer):
    """Runs one step of `trainer.train_function` eagerly, so that recording models see tensors."""
    tf.config.run_functions_eagerly(True)
    try:
        return trainer.train_function(trainer.iterator)
    finally:
        tf.config.run_functions_eagerly(False)


def build_tiny_model(config) -> TinySegmenter:
    """`ssma_tf.models.factory.build_model` for tests: a built `TinySegmenter` for the config."""
    model = TinySegmenter(config.num_classes, fusion=config.is_fusion, dtype=config.mixed_precision)
    dummy = np.zeros((1, config.height, config.width, 3), np.float32)
    model([dummy, dummy] if config.is_fusion else dummy)
    return model


def released_miou(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> float:
    """The released mIoU written out with NumPy, independently of `ssma_tf.metrics`.

    Ground-truth ids >= C are void; the prediction is set to void wherever the ground truth is;
    class 0 is left out and a class absent from ground truth and prediction counts 0.
    """
    labels = np.where(labels >= num_classes, 0, labels).astype(np.int64).ravel()
    predictions = np.where(labels == 0, 0, np.asarray(predictions).ravel())
    total = 0.0
    for c in range(1, num_classes):
        tp = np.sum((predictions == c) & (labels == c))
        fp = np.sum((predictions == c) & (labels != c))
        fn = np.sum((predictions != c) & (labels == c))
        total += tp / (tp + fp + fn + 1e-10)
    return 100.0 * total / (num_classes - 1)


def write_reference_records(reference_npz: os.PathLike, path: os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Original-format records of the TF1 fixture's input with three label maps.

    Returns:
        `(labels, predicted)`: the (3, H, W) label maps written and the original graph's
        predictions (argmax of its softmax) for each record.
    """
    reference = np.load(reference_npz)
    image = reference["modality1"][0].astype(np.uint8)  # whole numbers 0..255 (BGR)
    softmax = reference["softmax"][0]
    predicted = np.argmax(softmax, -1)
    # Pixels whose two best classes are closer than float32 reproduces are made void, so that
    # the comparison does not hinge on rounding (void pixels are not counted by the formula).
    top2 = np.sort(softmax, -1)[..., -2:]
    tie = (top2[..., 1] - top2[..., 0]) < 1e-3
    rng = np.random.default_rng(0)
    num_classes = softmax.shape[-1]
    labels = []
    for noise in (0.1, 0.4, 0.8):
        random_ids = rng.integers(0, num_classes, predicted.shape)
        label = np.where(rng.random(predicted.shape) < noise, random_ids, predicted)
        label[rng.random(predicted.shape) < 0.05] = 255  # ids >= C are void, as in the original
        label[tie] = 0
        labels.append(label.astype(np.uint8))
    labels[2][labels[2] == 7] = 3  # a class absent from the ground truth of one image
    write_examples(path, ({"modality1": image, "label": label} for label in labels))
    return np.stack(labels), np.stack([predicted] * len(labels))
