"""tools/convert_tf1_checkpoint.py: TF1 checkpoint → project weights file with the same numbers."""

import subprocess
import sys

import numpy as np
import pytest

import keras
from ssma_tf.models import AdapNetPP
from tests.conftest import ROOT


def test_converted_weights_reproduce_the_reference(tf1_fixture_dir, tmp_path):
    output = tmp_path / "adapnet.weights.h5"
    tool = ROOT / "tools" / "convert_tf1_checkpoint.py"
    result = subprocess.run(
        [sys.executable, str(tool), "-c", str(tf1_fixture_dir / "model.ckpt"), "-o", str(output)],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert "loaded 388 variables" in result.stdout
    model = AdapNetPP(12)
    model.load_weights(output)
    reference = np.load(tf1_fixture_dir / "reference.npz")
    softmax = np.asarray(model(reference["modality1"], training=False))
    assert np.max(np.abs(softmax - reference["softmax"])) / np.max(reference["softmax"]) <= 1e-4

    # An existing output is not replaced without --overwrite, and no stray partial file is left.
    again = subprocess.run(
        [sys.executable, str(tool), "-c", str(tf1_fixture_dir / "model.ckpt"), "-o", str(output)],
        capture_output=True, text=True, timeout=600,
    )
    assert again.returncode == 2 and "--overwrite" in again.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapnet.weights.h5"]


def test_keras_output_loads_without_knowing_the_model(tf1_fixture_dir, tmp_path):
    from ssma_tf.checkpoints.convert import convert_tf1_checkpoint

    output = tmp_path / "adapnet.keras"
    convert_tf1_checkpoint(str(tf1_fixture_dir / "model.ckpt"), str(output))
    model = keras.models.load_model(output)
    assert isinstance(model, AdapNetPP) and model.num_classes == 12
    with pytest.raises(ValueError, match="must end in"):
        convert_tf1_checkpoint(str(tf1_fixture_dir / "model.ckpt"), str(tmp_path / "x.h5"))


def test_a_tensorflow_2_checkpoint_is_named_and_not_converted(tmp_path):
    import tensorflow as tf

    from ssma_tf.checkpoints import CheckpointError
    from ssma_tf.checkpoints.convert import convert_tf1_checkpoint

    prefix = tf.train.Checkpoint(step=tf.Variable(3)).write(str(tmp_path / "ckpt-3"))  # as ssma-train's
    with pytest.raises(CheckpointError, match=rf"^{prefix}: a TensorFlow 2 checkpoint \(ssma-train writes these\)"):
        convert_tf1_checkpoint(prefix, str(tmp_path / "out.weights.h5"))
    assert not (tmp_path / "out.weights.h5").exists()
