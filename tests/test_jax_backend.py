"""The model code is backend-agnostic: the JAX backend reproduces the TF outputs with the same weights.

JAX is optional (`make test-jax` installs it); without it this test is skipped.
"""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from ssma_tf.models import SSMA, AdapNetPP
from tests.inference.helpers import image_scale_batch_norms
from tests.conftest import ROOT

pytestmark = pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed (make test-jax)")


def test_jax_backend_reproduces_tensorflow(tmp_path):
    rng = np.random.default_rng(0)
    # 48×80: sizes where a wrong padding convention of the stride-2/4 transposed convs would show.
    m1 = rng.uniform(0, 255, (1, 48, 80, 3)).astype("float32")
    m2 = rng.uniform(0, 255, (1, 48, 80, 3)).astype("float32")
    for name, model, inputs in (
        ("adapnet_pp", AdapNetPP(5), m1),
        ("ssma", SSMA(4, aux_heads=True), [m1, m2]),
    ):
        image_scale_batch_norms(model, seed=len(name))
        outputs = model(inputs, training=False, return_all=True)
        assert np.max(np.abs(outputs["logits"])) < 20  # a sane scale, so 1e-4 means something
        model.save_weights(tmp_path / f"{name}.weights.h5")
        (tmp_path / f"{name}.json").write_text(
            json.dumps({"class": type(model).__name__, "config": model.get_config()})
        )
        np.savez(tmp_path / f"{name}.npz", modality1=m1, modality2=m2,
                 logits=np.asarray(outputs["logits"]), softmax=np.asarray(outputs["softmax"]))
        if name == "adapnet_pp":  # a training run's checkpoint and final weights
            import tensorflow as tf

            (tmp_path / "run").mkdir()
            tf.train.Checkpoint(model=model).save(str(tmp_path / "run" / "ckpt"))
            model.save_weights(tmp_path / "run" / "final.weights.h5")
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT))
    result = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "backend_check.py"), str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=900,
    )
    print(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert result.stdout.count(" ok") == 5
    assert "jax adapnet_pp softmax" in result.stdout


_METRICS_ON_JAX = """
import jax
import keras
import numpy as np
from ssma_tf.metrics import ReleasedMeanIoU, batch_confusion_matrix, released_metrics

assert keras.backend.backend() == "jax" and not jax.config.jax_enable_x64
rng = np.random.default_rng(0)
labels = rng.integers(0, 4, (2, 8, 12))
probs = rng.uniform(size=(2, 8, 12, 4)).astype("float32")
# Traced, as fit compiles it (before: ConcretizationTypeError from the bincount).
counts = np.asarray(jax.jit(lambda l, p: batch_confusion_matrix(l, p, 4))(labels, probs))
expected = np.zeros((4, 4), np.int64)
predicted = np.where(labels == 0, 0, probs.argmax(-1))
np.add.at(expected, (labels.ravel(), predicted.ravel()), 1)
assert (counts == expected).all(), (counts, expected)
# Past 2**31 pixels a cell (before: int64 truncated to int32, the counts wrapped to negatives).
metric = ReleasedMeanIoU(4)
metric.update_state(labels, probs)
for _ in range(3):
    metric.counts_high.assign(metric.counts_high + 700)  # 3 x 700 x 2**20 > 2**31
metric.update_state(labels, probs)
exact = np.asarray(metric.counts_high, np.int64) * 2**20 + np.asarray(metric.counts_low, np.int64)
assert (exact == 2 * expected + 2100 * 2**20).all(), exact
assert abs(float(metric.result()) - 100 * np.mean(np.diag(exact)[1:] / (exact[1:].sum(1) + exact[1:, 1:].sum(0)
                                                                   - np.diag(exact)[1:]))) < 1e-3
model = keras.Sequential([keras.Input((8, 12, 3)), keras.layers.Conv2D(4, 1, activation="softmax")])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=released_metrics(4))
history = model.fit(rng.uniform(size=(4, 8, 12, 3)).astype("float32"), rng.integers(0, 4, (4, 8, 12)),
                    batch_size=2, epochs=1, verbose=0)
assert 0 <= history.history["miou"][-1] <= 100, history.history
print("metrics ok")
"""


def test_the_keras_metrics_count_under_jit_and_past_int32_on_jax():
    """Helper 98: `fit` with the metrics failed to trace on JAX, and counts past 2**31 wrapped."""
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT))
    env.pop("JAX_ENABLE_X64", None)
    result = subprocess.run([sys.executable, "-W", "error::UserWarning", "-c", _METRICS_ON_JAX], capture_output=True,
                            text=True, env=env, timeout=600)
    assert result.returncode == 0 and "metrics ok" in result.stdout, result.stdout + result.stderr[-3000:]


_REFUSED_ON_JAX = """
import sys

import keras
import numpy as np

assert keras.backend.backend() == "jax"
from ssma_tf.models import AdapNetPP
from ssma_tf.losses import ReleasedLoss
rng = np.random.default_rng(0)
m = AdapNetPP(3)
m.compile(optimizer="adam", loss=ReleasedLoss())
x = rng.uniform(0, 255, (2, 32, 48, 3)).astype("float32"); y = rng.integers(0, 3, (2, 32, 48))
m.fit(x, y, batch_size=2, verbose=0)
before = [np.asarray(w.value) for w in m.weights]
bad = rng.uniform(0, 255, (2, 40, 48, 3)).astype("float32")
for name, call in (("fit", lambda: m.fit(bad, rng.integers(0, 3, (2, 40, 48)), verbose=0)),
                   ("predict", lambda: m.predict(bad, verbose=0)),
                   ("evaluate", lambda: m.evaluate(x, y[:, :16], verbose=0)),
                   ("train_on_batch", lambda: m.train_on_batch(bad, rng.integers(0, 3, (2, 40, 48)))),
                   ("predict_on_batch", lambda: m.predict_on_batch(bad))):
    try:
        call()
        raise SystemExit(f"{name} was not refused")
    except Exception as error:
        print(name, "refused:", type(error).__name__, str(error).splitlines()[0][:100])
    after = [np.asarray(w.value) for w in m.weights]
    assert all(np.array_equal(a, b) for a, b in zip(before, after)), name
# a fit that trains a step, then fails on a later batch of another shape: the trained step is kept
def batches():
    yield x, y
    yield bad, rng.integers(0, 3, (2, 40, 48))
try:
    m.fit(batches(), verbose=0, steps_per_epoch=2)
except Exception as error:
    print("fit 2 refused:", type(error).__name__)
out = m.predict(x, verbose=0)
trained = [np.asarray(w.value) for w in m.weights]
assert any(not np.array_equal(a, b) for a, b in zip(before, trained)), "the trained step was lost"
m.save_weights(sys.argv[1])
print("jax ok")
"""


def test_a_refused_fit_predict_or_evaluate_keeps_the_weights_on_jax(tmp_path):
    """Helper 302: Keras' JAX trainer detaches the variables' values for a call and gave them back
    only when it ended normally: a refused input left a model that could be neither called nor
    saved ("'NoneType' object is not callable"). A fit that trained a step keeps that step."""
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-c", _REFUSED_ON_JAX, str(tmp_path / "kept.weights.h5")],
                            capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0 and "jax ok" in result.stdout, result.stdout + result.stderr[-3000:]
    assert (tmp_path / "kept.weights.h5").is_file()
