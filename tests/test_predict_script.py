"""End-to-end tests of predict.py: the pictures it writes, their sizes and colours, its errors."""

import importlib.util
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from ssma_tf.data.datasets import get_dataset_info
from ssma_tf.models import SSMA
from tests.conftest import ROOT
from tests.inference.helpers import random_image, randomize_batch_norms, write_rgb

SYNTHETIC = get_dataset_info("synthetic")  # 7 classes, void included


def _predict_main(argv):
    spec = importlib.util.spec_from_file_location("predict_script", ROOT / "predict.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(argv)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    model = SSMA(SYNTHETIC.num_classes)
    randomize_batch_norms(model, seed=5)
    path = tmp_path_factory.mktemp("weights") / "ssma.weights.h5"
    model.save_weights(str(path))
    return str(path)


@pytest.fixture
def images(tmp_path):
    """Two RGB-D samples of 50x90 with labels, and a list file of them."""
    lines = []
    for index in range(2):
        rgb = write_rgb(tmp_path / "data" / "rgb" / f"{index}.png", random_image(50, 90, 30 + index))
        depth = write_rgb(tmp_path / "data" / "depth" / f"{index}.png", random_image(50, 90, 40 + index))
        label = write_rgb(tmp_path / "data" / "label" / f"{index}.png", np.full((50, 90), index + 1, np.uint8))
        lines.append(" ".join(os.path.relpath(p, tmp_path / "data") for p in (rgb, depth, label)))
    (tmp_path / "data" / "val.txt").write_text("\n".join(lines) + "\n")
    return tmp_path / "data"


def _read(path):
    return np.asarray(Image.open(path))


def test_predict_py_with_a_config_and_a_list(weights, images, tmp_path, capsys):
    config = tmp_path / "ssma_test.config"
    config.write_text(
        "model: SSMA\nnum_classes: 7\ndataset: synthetic\nheight: 32\nwidth: 64\n"
        f"checkpoint: {weights}\ntest_data: unused.tfrecords\nbatch_size: 1\n"
    )
    output = tmp_path / "out"
    assert _predict_main(["-c", str(config), "--list", str(images / "val.txt"), "--output", str(output)]) == 0
    captured = capsys.readouterr()
    assert "predicted 2 sample(s)" in captured.out
    assert f"pictures in {output} (at 32x64, the model's size; --original_size for each image's own)" in captured.out
    assert "2/2 (100%)" in captured.err  # progress
    # Of samples, 3 files each here (before: "files/s"; helper 142).
    assert re.search(r"predicted 2/2 \(100%\), [\d.]+ samples/s", captured.err), captured.err
    for index in range(2):
        ids = _read(output / "class_ids" / f"{index}.png")
        assert ids.shape == (32, 64)  # the config's size
        np.testing.assert_array_equal(_read(output / "color" / f"{index}.png"), SYNTHETIC.palette_array[ids])
        assert _read(output / "overlay" / f"{index}.png").shape == (32, 64, 3)
        truth = _read(output / "label_color" / f"{index}.png")
        assert (truth == SYNTHETIC.palette_array[index + 1]).all()
    assert not (output / "attention").exists()


def test_predict_py_names_an_output_it_cannot_write_and_refuses_a_flag_of_the_other_model(weights, images, tmp_path, monkeypatch, capsys):
    """A full disk: before, the error named the sample's input images and exited 2 (bad input)."""
    import errno

    from ssma_tf import visualize

    save_png = visualize.save_png

    def disk_full(path, *args, **kwargs):
        if os.sep + "color" + os.sep in str(path):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return save_png(path, *args, **kwargs)

    monkeypatch.setattr(visualize, "save_png", disk_full)
    output = tmp_path / "out"
    status = _predict_main(["--checkpoint", weights, "--model", "SSMA", "--num_classes", "7", "--quiet",
                            "--list", str(images / "val.txt"), "--size", "32x64", "--output", str(output),
                            "--modality2_interpolation", "nearest"])
    assert status == 1
    assert capsys.readouterr().err == f"error: {output / 'color' / '0.png'}: No space left on device\n"
    # An AdapNet++ flag given for an SSMA (before: accepted without a word, and nothing changed).
    import argparse
    import types

    from ssma_tf.cli.predict import _check_inputs
    from ssma_tf.errors import UserInputError

    ssma = types.SimpleNamespace(fusion=True, num_modalities=2)
    with pytest.raises(UserInputError, match="^--input_modality is for AdapNet\\+\\+; SSMA reads every modality$"):
        _check_inputs(argparse.Namespace(input_modality="modality2", list=None), ssma, [], "modality2", None)


def test_predict_py_with_a_checkpoint_one_pair_original_size_and_attention(weights, images, tmp_path):
    output = tmp_path / "out"
    status = _predict_main([
        "--checkpoint", weights, "--model", "SSMA", "--num_classes", "7", "--dataset", "synthetic",
        "--modality1", str(images / "rgb" / "1.png"), "--modality2", str(images / "depth" / "1.png"),
        "--size", "32x64", "--original_size", "--attention", "--quiet", "--output", str(output),
    ])
    assert status == 0
    ids = _read(output / "class_ids" / "1.png")
    assert ids.shape == (50, 90)
    np.testing.assert_array_equal(_read(output / "color" / "1.png"), SYNTHETIC.palette_array[ids])
    for block in ("latent", "skip2", "skip1"):
        assert _read(output / "attention" / block / "1.png").shape == (50, 90, 3)


def test_the_resizing_of_modality_2_is_a_flag_for_weights_without_a_config(weights, images, tmp_path, monkeypatch,
                                                                            capsys):
    """Helper 95: a checkpoint or `.keras` file alone resized modality 2 by nearest, with no flag
    for an SSMA trained with bilinear."""
    import types

    from ssma_tf.inference.settings import check_interpolation_flag
    from ssma_tf.errors import UserInputError
    from ssma_tf.inference import predictor as predictor_module

    made = []
    real = predictor_module.Predictor

    def recording(*args, **kwargs):
        made.append(kwargs["modality2_interpolation"])
        return real(*args, **kwargs)

    monkeypatch.setattr(predictor_module, "Predictor", recording)
    common = ["--checkpoint", weights, "--model", "SSMA", "--num_classes", "7", "--quiet", "--size", "32x64",
              "--modality1", str(images / "rgb" / "1.png"), "--modality2", str(images / "depth" / "1.png")]
    assert _predict_main(common + ["--output", str(tmp_path / "a"), "--modality2_interpolation", "bilinear"]) == 0
    assert "no config says how modality 2" not in capsys.readouterr().err
    assert _predict_main(common + ["--output", str(tmp_path / "b")]) == 0
    assert made == ["bilinear", "nearest"]
    # Without the flag, weights alone are resized by the default with a line saying so (helper 212:
    # a lone `.keras` SSMA over three resized its bilinear third modality by nearest, unsaid).
    assert ("no config says how modality 2 and on were resized in training: resizing them by nearest, the default; "
            "give the run's config (-c) or --modality2_interpolation") in capsys.readouterr().err
    # One method per modality after the first; a count that is not the network's is refused.
    assert _predict_main(common + ["--output", str(tmp_path / "c"), "--modality2_interpolation",
                                   "nearest,bilinear"]) == 2
    assert ("error: --modality2_interpolation nearest,bilinear gives 2 methods, but this SSMA reads 2 modalities: "
            "give one per modality after the first (1), or one for all") in capsys.readouterr().err
    assert made == ["bilinear", "nearest"]
    adapnet = types.SimpleNamespace(inputs=[None])  # one input: an AdapNet++
    with pytest.raises(UserInputError, match="^--modality2_interpolation is for SSMA or an expert of modality 2 and on"):
        check_interpolation_flag("bilinear", adapnet, "modality1")  # ssma-predict and ssma-export alike
    check_interpolation_flag("bilinear", adapnet, "modality2")
    three = types.SimpleNamespace(inputs=[None] * 3)
    check_interpolation_flag(("nearest", "bilinear"), three, "modality1")
    with pytest.raises(UserInputError, match=r"^--modality2_interpolation nearest,bilinear,nearest gives 3 methods, "
                                             r"but this SSMA reads 3 modalities: give one per modality after the "
                                             r"first \(2\)"):
        check_interpolation_flag(("nearest", "bilinear", "nearest"), three, "modality1")
    with pytest.raises(UserInputError, match=r"^--modality2_interpolation nearest: the network reads modality3, but "
                                             r"the interpolations \['nearest'\] go up to modality2"):
        check_interpolation_flag(("nearest",), adapnet, "modality3")


@pytest.mark.parametrize("text, value", [("nearest", "nearest"), ("nearest,bilinear", ("nearest", "bilinear")),
                                         ("bilinear, nearest", ("bilinear", "nearest")), ("linear", None),
                                         ("nearest,", None)])
def test_the_interpolation_flag_takes_one_method_or_one_per_modality(text, value):
    import argparse

    from ssma_tf.cli.common import interpolation_flag

    if value is None:
        with pytest.raises(argparse.ArgumentTypeError, match=f"expected nearest or bilinear, or one of them per "
                                                             f"modality after the first .*; got '{text}'"):
            interpolation_flag(text)
    else:
        assert interpolation_flag(text) == value


def test_predict_py_errors_name_the_bad_file(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    missing = tmp_path / "missing.weights.h5"
    result = subprocess.run(
        [sys.executable, str(ROOT / "predict.py"), "--checkpoint", str(missing), "--model", "SSMA",
         "--num_classes", "7", "--modality1", "a.png", "--modality2", "b.png", "--output", str(tmp_path / "o")],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )
    assert result.returncode == 2
    assert str(missing) in result.stderr


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--checkpoint", "w.h5", "--output", "o"], "--modality1/--modality2"),
        (["--modality1", "a.png", "--output", "o"], "config (-c) or a checkpoint"),
        (["--checkpoint", "w.h5", "--list", "l.txt", "--modality1", "a.png", "--output", "o"], "not both"),
        (["--checkpoint", "w.h5", "--modality1", "a.png", "--size", "30x30", "--output", "o"], "multiples of 16"),
        (["--checkpoint", "w.h5", "--modality1", "a.png", "--alpha", "3", "--output", "o"], "--alpha must be in 0..1, got 3"),
        (["--checkpoint", "w.h5", "--modality1", "a.png", "--batch_size", "0", "--output", "o"],
         "--batch_size must be >= 1, got 0"),
        # Before: "give a training run's folder, a config (-c) or a checkpoint", of which only one fits.
        (["--backend", "openvino", "--list", "l.txt", "--output", "o"],
         "--backend openvino needs the export folder (written by ssma-export --format openvino) as RUN or "
         "--checkpoint"),
    ],
)
def test_predict_py_flag_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _predict_main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_a_fusion_baseline_is_named_as_such_in_the_input_errors(tmp_path):
    """Found by a reviewer: a late fusion over 3 modalities given two images, or as --compare of
    a list of one image per line, was called "an SSMA over 3 modalities"."""
    import argparse
    from types import SimpleNamespace

    from ssma_tf.cli.predict import _check_compared_inputs
    from ssma_tf.inference.predictor import PredictionError
    from ssma_tf.inference.samples import collect_samples

    write_rgb(tmp_path / "a.png", np.zeros((32, 32, 3)))
    with pytest.raises(PredictionError, match=r"^a late fusion over 3 modalities reads its inputs from a list file$"):
        collect_samples(True, modalities=3, modality1=tmp_path / "a.png", modality2=tmp_path / "a.png",
                        fusion_method="late")
    with pytest.raises(PredictionError, match=r"^an SSMA over 3 modalities reads"):
        collect_samples(True, modalities=3, modality1=tmp_path / "a.png", modality2=tmp_path / "a.png")
    (tmp_path / "one.txt").write_text("a.png\n")
    samples = collect_samples(False, list_file=tmp_path / "one.txt")
    args = argparse.Namespace(compare="avg.keras", list=str(tmp_path / "one.txt"))
    for method, network in (("average", "an average fusion"), ("ssma", "an SSMA")):
        compare = SimpleNamespace(fusion=True, fusion_method=method, num_modalities=2)
        with pytest.raises(PredictionError, match=rf"^--compare avg.keras is {network} over 2 modalities, but the "
                                                  r"list's lines give 1 image\(s\) per sample"):
            _check_compared_inputs(args, compare, samples, False, "modality1")
