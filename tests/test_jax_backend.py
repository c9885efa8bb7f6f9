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
