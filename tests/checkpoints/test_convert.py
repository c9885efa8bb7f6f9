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


def test_a_checkpoint_trained_without_auxiliary_heads_converts_and_starts_an_expert(tmp_path):
    """The original code leaves out conv911/conv912 with `has_aux_loss=False`: such an AdapNet++
    was refused by the converter, `load_model` and an expert's start ("lacks 10 variables"), and the
    hint on the heads never showed for AdapNet++'s `resnet_v2_50/conv911/...` names (helper 222)."""
    from ssma_tf.checkpoints import CheckpointError, load_tf1_checkpoint
    from ssma_tf.checkpoints.convert import convert_tf1_checkpoint
    from ssma_tf.checkpoints.loading import unimodal_encoder_weights
    from tests.conftest import shared_path
    from tests.tf1_helpers import random_arrays, read_spec, write_tf1_checkpoint

    spec = read_spec(shared_path("spec", "tf1_variables_adapnet_pp.txt"))
    arrays = {name: array for name, array in random_arrays(spec).items()
              if "/conv911/" not in name and "/conv912/" not in name}
    assert len(arrays) == len(spec) - 10
    (tmp_path / "noaux").mkdir()
    prefix = write_tf1_checkpoint(str(tmp_path / "noaux" / "model.ckpt"), arrays)
    report = convert_tf1_checkpoint(prefix, str(tmp_path / "noaux.keras"))
    assert len(report.loaded) == len(arrays) and not report.missing
    converted = keras.saving.load_model(tmp_path / "noaux.keras", compile=False)
    assert not converted.get_config()["aux_heads"]
    import ssma_tf

    assert not ssma_tf.load_model(prefix).get_config()["aux_heads"]
    # In a folder named like a release, as under any other name (helper 264: refused as lacking
    # 10 variables, "which an AdapNet++ config always builds").
    (tmp_path / "adapnet++_cityscapes_rgb").mkdir()
    released = write_tf1_checkpoint(str(tmp_path / "adapnet++_cityscapes_rgb" / "model.ckpt"), arrays)
    assert not ssma_tf.load_model(released).get_config()["aux_heads"]
    assert not AdapNetPP.from_preset(released).aux_heads
    encoder = unimodal_encoder_weights(prefix, None, 0.5)
    np.testing.assert_array_equal(encoder[0], converted.encoder.get_weights()[0])
    # A network built with the heads is told what to change.
    with pytest.raises(CheckpointError, match=r"lacks 10 variables of the model: .*; it has no auxiliary heads "
                                              r"\(conv911, conv912\), which an AdapNet\+\+ config always builds: "
                                              r"start from it with finetune_from"):
        load_tf1_checkpoint(AdapNetPP(12, aux_heads=True), prefix)


def test_the_converter_takes_a_released_archive_and_names_a_keras_file(tmp_path, tf1_fixture_dir, monkeypatch,
                                                                       capsys):
    """Before: a released archive (the README's way to load one) or preset name was "no checkpoint at
    X.zip (expected ... a .weights.h5/.keras/.h5 file)", and a .weights.h5 file "not a TF1 checkpoint
    prefix: X.weights.h5.index does not exist" (helper 222)."""
    import zipfile

    from ssma_tf.cli import convert_tf1
    from tests.checkpoints.test_zoo import FIXTURE_RELEASE, _use_zoo

    _use_zoo(tmp_path, monkeypatch, FIXTURE_RELEASE)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "cache"))
    archive = tmp_path / "adapnet_pp_fixture.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for name in ("model.ckpt.index", "model.ckpt.data-00000-of-00001"):
            z.write(tf1_fixture_dir / name, f"adapnet_pp_fixture/{name}")
    output = tmp_path / "release.keras"
    assert convert_tf1.main(["-c", str(archive), "-o", str(output)]) == 0
    printed = capsys.readouterr().out
    assert "eASPP rates 6, 12, 18: those of the release adapnet_pp_fixture_rgb" in printed
    assert keras.saving.load_model(output, compile=False).get_config()["easpp_rates"] == [6, 12, 18]
    assert convert_tf1.main(["-c", str(output), "-o", str(tmp_path / "again.keras")]) == 2
    assert (f"error: {output} is a Keras file, not a TF1 checkpoint: nothing to convert (ssma_tf.load_model opens "
            "it; .save('model.keras') writes it with its network)") in capsys.readouterr().err
    # In a folder too (before: "run/release.keras is not a TF1 checkpoint prefix: ....index does not exist").
    folder = tmp_path / "run"
    folder.mkdir()
    output.rename(folder / "release.keras")
    assert convert_tf1.main(["-c", str(folder), "-o", str(tmp_path / "again.keras")]) == 2
    assert (f"error: {folder} holds a Keras file ({folder / 'release.keras'}), not a TF1 checkpoint: nothing to "
            "convert (ssma_tf.load_model opens it)") in capsys.readouterr().err


def test_the_output_is_checked_before_an_archive_is_fetched(tmp_path, monkeypatch, capsys):
    """Helper 280: an existing, misnamed or unwritable -o was found after the archive had been
    downloaded and unpacked into the cache (116 MB for a released model)."""
    import zipfile

    from ssma_tf.cli import convert_tf1

    cache = tmp_path / "cache"
    monkeypatch.setenv("KERAS_HOME", str(cache))
    archive = tmp_path / "model.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("m/model.ckpt.index", b"not read here")
    (tmp_path / "exists.keras").write_bytes(b"kept")
    (tmp_path / "afile").write_bytes(b"")
    for output, said in (("exists.keras", "exists; pass --overwrite"), ("m.h5", "must end in .weights.h5 or .keras"),
                         ("afile/m.keras", "afile is a file, not a folder")):
        assert convert_tf1.main(["-c", str(archive), "-o", str(tmp_path / output)]) == 2
        assert said in capsys.readouterr().err, output
    assert not cache.exists()  # nothing fetched, nothing unpacked
    assert (tmp_path / "exists.keras").read_bytes() == b"kept"
