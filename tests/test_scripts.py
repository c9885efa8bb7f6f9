"""End-to-end tests of the entry points `train.py` and `evaluate.py`, run as the user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile

import numpy as np
import pytest

from tests.conftest import ROOT, shared_path
from tests.tf1_helpers import write_tf1_checkpoint
from tests.training_helpers import released_miou, write_reference_records


def _run(args, cwd, timeout=600):
    env = dict(os.environ)
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env.pop("TF_CONFIG", None)
    return subprocess.run(
        [sys.executable, *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=timeout,
    )


# The original evaluation config's keys, nothing else (the released test configs left gpu_id
# as a placeholder).
ORIGINAL_TEST_CONFIG = """\
gpu_id: ''
model: {model}
num_classes: 12
checkpoint: {checkpoint}
test_data: records/test.tfrecords
batch_size: 2
skip_step: 1
height: 128
width: 256
"""


@pytest.fixture(scope="module")
def original_checkpoint(tmp_path_factory):
    """The fixture TF1 AdapNet++ checkpoint, extracted, with records of its reference input."""
    archive = shared_path("fixtures", "tf1_adapnet_pp.tar.gz")
    folder = tmp_path_factory.mktemp("original")
    with tarfile.open(archive) as tar:
        tar.extractall(folder / "fixture", filter="data")
    (folder / "records").mkdir()
    labels, predicted = write_reference_records(
        folder / "fixture" / "reference.npz", folder / "records" / "test.tfrecords"
    )
    return folder, labels, predicted


def test_evaluate_py_on_an_original_checkpoint_prints_the_released_miou(original_checkpoint):
    folder, labels, predicted = original_checkpoint
    config = folder / "adapnet_test.config"
    config.write_text(ORIGINAL_TEST_CONFIG.format(model="AdapNet_pp", checkpoint="fixture/model.ckpt"))
    run = _run([ROOT / "evaluate.py", "-c", config, "--json", "metrics.json"], cwd=folder)
    assert run.returncode == 0, run.stderr[-3000:]
    last = run.stdout.strip().splitlines()[-1]
    assert last.startswith("mIoU: ")
    # What the released formula gives for the original graph's own predictions on these records.
    expected = released_miou(labels, predicted, 12)
    assert float(last.split()[1]) == pytest.approx(expected, abs=1e-3)
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["mIoU"] == pytest.approx(expected, abs=1e-6)
    assert metrics["num_images"] == 3
    assert {"per_class", "mean_iou_present", "pixel_accuracy", "global_iou", "mean_fpr", "mean_fnr"} <= set(metrics)
    # Progress every skip_step batches: 3 images in batches of 2.
    assert "evaluated 2 batches (3 images" in run.stdout


def test_evaluate_py_refuses_a_checkpoint_of_the_other_model_before_building(tmp_path):
    # An "SSMA checkpoint" by its names is enough: the check reads names, not weights.
    write_tf1_checkpoint(str(tmp_path / "ssma.ckpt"), {
        "rgb/resnet_v2_50/conv1/weights": np.zeros((7, 7, 3, 64), np.float32),
        "depth/resnet_v2_50/conv1/weights": np.zeros((7, 7, 3, 64), np.float32),
    })
    (tmp_path / "records").mkdir()
    (tmp_path / "records" / "test.tfrecords").write_bytes(b"")
    config = tmp_path / "test.config"
    config.write_text(ORIGINAL_TEST_CONFIG.format(model="AdapNet_pp", checkpoint="ssma.ckpt"))
    run = _run([ROOT / "evaluate.py", "-c", config], cwd=tmp_path, timeout=300)
    assert run.returncode == 2
    assert "SSMA checkpoint" in run.stderr and "model: SSMA" in run.stderr


def test_train_py_names_the_bad_key_and_file(tmp_path):
    config = tmp_path / "train.config"
    config.write_text(
        "model: AdapNet_pp\nnum_classes: 12\nheight: 64\nwidth: 128\nbatch_size: 2\n"
        "max_iteration: 10\nlearning_rate: 0.001\ncheckpoint: out\ntrain_data: missing.tfrecords\n"
    )
    run = _run([ROOT / "train.py", "-c", config], cwd=tmp_path, timeout=300)
    assert run.returncode == 2
    assert "train_data" in run.stderr and str(config) in run.stderr
    assert not (tmp_path / "out").exists()
