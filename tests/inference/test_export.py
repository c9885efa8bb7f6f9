"""Tests for ssma_tf.inference.export and tools/export.py: SavedModel serving signature, folding, TFLite."""

import importlib.util
import os
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

from ssma_tf.files import atomic_path
from ssma_tf.inference import export
from ssma_tf.inference.backends import read_export_metadata
from ssma_tf.inference.compiled import inference_model
from ssma_tf.keras_compat import walk_layers
from ssma_tf.models import SSMA, AdapNetPP
from tests.conftest import ROOT
from tests.inference.helpers import UNFOLDABLE, random_image, randomize_batch_norms

HEIGHT, WIDTH = 64, 128


def _load_tool(name):
    spec = importlib.util.spec_from_file_location(f"tools_{name}", ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# `adapnet`: the session's AdapNet++ of 4 classes (tests/inference/conftest.py), only read here.


@pytest.fixture(scope="module")
def adapnet_weights(adapnet, tmp_path_factory):
    """`adapnet`'s weights file, saved once for the tests that give the command weights."""
    weights = str(tmp_path_factory.mktemp("weights") / "model.weights.h5")
    adapnet.save_weights(weights)
    return weights


@pytest.fixture(scope="module")
def exported(adapnet_weights, tmp_path_factory):
    """The AdapNet++ exported by tools/export.py: size 64x128, folded, with a float32 TFLite file."""
    weights = adapnet_weights
    output = tmp_path_factory.mktemp("export") / "saved"
    status = _load_tool("export").main([
        "--checkpoint", weights, "--model", "AdapNet_pp", "--num_classes", "4", "--size", "64x128",
        "--fold_batch_norm", "--tflite", "float32", "--output", str(output),
    ])
    assert status == 0
    return output


@pytest.fixture
def tiny_adapnet(tiny_backbone):
    """An AdapNet++ on the tiny test backbone, for the tests of the serving function, the export's
    folders and its refusals: its TFLite conversion takes seconds, the ResNet-50's a minute."""
    from ssma_tf.models.widths import decoder_widths

    model = AdapNetPP(4, backbone=tiny_backbone, widths=decoder_widths(16))
    randomize_batch_norms(model, seed=3)
    return model


def _keras_probabilities(model, images, size, methods=("bilinear", "nearest")):
    """What the serving signature should compute, with the Keras model: resize, predict, resize back."""
    input_size = images[0].shape[1:3]
    views = [tf.image.resize(tf.cast(x, tf.float32), size, method=m) for x, m in zip(images, methods)]
    probabilities = model(views if len(views) == 2 else views[0], training=False)
    return tf.image.resize(probabilities, input_size, method="bilinear").numpy()


def _assert_same_class_map(ids, probabilities):
    """`ids` is the argmax of `probabilities` wherever the top two classes are not (nearly) tied."""
    top2 = np.sort(probabilities, axis=-1)[..., -2:]
    clear = (top2[..., 1] - top2[..., 0]) > 1e-4
    assert clear.mean() > 0.99
    np.testing.assert_array_equal(ids[clear], probabilities.argmax(-1)[clear])


def test_saved_model_serves_what_the_keras_model_computes(adapnet, exported):
    loaded = tf.saved_model.load(str(exported))
    serve = loaded.signatures["serving_default"]
    assert list(serve.structured_input_signature[1]) == ["image"]
    # Not a multiple of 16: resized to 64x128 inside, outputs at the input size.
    image = np.stack([random_image(80, 100, 20)[..., ::-1], random_image(80, 100, 21)[..., ::-1]])
    outputs = serve(image=tf.constant(image, tf.uint8))
    assert outputs["class_ids"].dtype == tf.int32 and outputs["class_ids"].shape == (2, 80, 100)
    assert outputs["probabilities"].shape == (2, 80, 100, 4)
    expected = _keras_probabilities(adapnet, [image], (HEIGHT, WIDTH))
    np.testing.assert_allclose(outputs["probabilities"].numpy(), expected, atol=1e-4)
    _assert_same_class_map(outputs["class_ids"].numpy(), expected)


def test_export_metadata_describes_the_signature(exported):
    metadata = read_export_metadata(str(exported))
    assert metadata["model"] == "AdapNet_pp" and metadata["num_classes"] == 4
    assert metadata["inputs"] == ["image"] and metadata["channel_order"] == "BGR"
    assert metadata["size"] == [HEIGHT, WIDTH] and metadata["batch_norm_folded"] == 58
    assert metadata["tflite"] == {"float32": "model_float32.tflite"}
    assert metadata["input_modality"] == "modality1"
    leftovers = [name for name in os.listdir(exported.parent) if ".partial-" in name]
    assert leftovers == []


def test_export_stores_each_used_weight_once(adapnet, exported):
    stored = tf.train.list_variables(str(exported / "variables" / "variables"))
    values = sum(int(np.prod(shape)) for name, shape in stored if not name.startswith("_CHECKPOINTABLE"))
    # Serving reads neither the auxiliary heads nor, once folded, the gamma, mean and variance of
    # the folded batch norms.
    view = inference_model(adapnet)
    folded = [
        layer for layer in walk_layers(view)
        if isinstance(layer, layers.BatchNormalization) and layer.name not in UNFOLDABLE
    ]
    assert len(folded) == 58
    assert values == view.count_params() - sum(3 * layer.gamma.shape[0] for layer in folded)


def test_tflite_gives_the_keras_class_map(adapnet, exported):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter announces its move to LiteRT
        interpreter = tf.lite.Interpreter(model_path=str(exported / "model_float32.tflite"))
    runner = interpreter.get_signature_runner("serving_default")
    image = random_image(HEIGHT, WIDTH, 22)[None, ..., ::-1].copy()
    outputs = runner(image=image)
    expected = _keras_probabilities(adapnet, [image], (HEIGHT, WIDTH))
    assert outputs["class_ids"].shape == (1, HEIGHT, WIDTH)
    _assert_same_class_map(outputs["class_ids"], expected)
    np.testing.assert_allclose(outputs["probabilities"], expected, atol=1e-4)


def test_export_without_a_size_needs_multiples_of_16(tiny_adapnet):
    serve, signature = export.serving_function(tiny_adapnet)
    function = tf.function(serve, input_signature=signature)
    image = random_image(HEIGHT, WIDTH, 23)[None]
    outputs = function(tf.constant(image, tf.uint8))
    expected = tiny_adapnet(tf.constant(image, tf.float32), training=False).numpy()
    np.testing.assert_allclose(outputs["probabilities"].numpy(), expected, atol=1e-5)
    with pytest.raises(tf.errors.InvalidArgumentError, match="multiples of 16"):
        function(tf.constant(image[:, :, :120], tf.uint8))


def test_ssma_signature_takes_two_modalities(tiny_backbone):
    model = SSMA(3, backbone=tiny_backbone)  # the signature is about the inputs, not the backbone
    randomize_batch_norms(model, seed=4)
    serve, signature = export.serving_function(model, (HEIGHT, WIDTH), modality2_interpolation="nearest")
    assert [spec.name for spec in signature] == ["modality1", "modality2"]
    function = tf.function(serve, input_signature=signature)
    images = [random_image(50, 90, 24)[None], random_image(50, 90, 25)[None]]
    outputs = function(*[tf.constant(x, tf.uint8) for x in images])
    expected = _keras_probabilities(model, images, (HEIGHT, WIDTH))
    np.testing.assert_allclose(outputs["probabilities"].numpy(), expected, atol=1e-5)
    with pytest.raises(tf.errors.InvalidArgumentError, match="same batch size, height and width"):
        function(tf.constant(images[0], tf.uint8), tf.constant(images[1][:, :48], tf.uint8))


def test_export_refuses_existing_output_and_leaves_nothing_on_failure(tiny_adapnet, tmp_path, monkeypatch):
    (tmp_path / "taken").mkdir()
    with pytest.raises(export.ExportError, match="exists"):
        export.export_saved_model(tiny_adapnet, str(tmp_path / "taken"))

    # A full disk or a file-size limit while TensorFlow writes the variables: TensorFlow's own
    # error type, which the commands would print with a traceback; an OSError naming the folder.
    def full(*args, **kwargs):
        raise tf.errors.OutOfRangeError(None, None, "tmp/variables.data-00000-of-00001; File too large [Op:SaveV2]")

    real = keras.export.ExportArchive

    def archive():
        instance = real()  # Keras' backend subclass
        instance.write_out = full
        return instance

    monkeypatch.setattr(keras.export, "ExportArchive", archive)
    with pytest.raises(OSError) as error:
        export.export_saved_model(tiny_adapnet, str(tmp_path / "full"), size=(32, 64))
    assert error.value.filename == str(tmp_path / "full") and "File too large" in error.value.strerror
    assert sorted(os.listdir(tmp_path)) == ["taken"]
    monkeypatch.undo()

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(export, "serving_function", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        export.export_saved_model(tiny_adapnet, str(tmp_path / "new"))
    assert sorted(os.listdir(tmp_path)) == ["taken"]


def test_a_sigterm_lost_in_the_converter_stops_the_export_before_it_is_published(tiny_adapnet, tmp_path, monkeypatch):
    """A SIGTERM during the TFLite conversion raised in a finaliser, where Python drops the
    exception: the export went on, was published at --output, and the command then said
    "terminated" with exit 143 (helper 183)."""
    from ssma_tf.errors import Terminated, clear_termination, request_termination

    real = tf.lite.TFLiteConverter.from_saved_model

    def interrupted(*args, **kwargs):
        converter = real(*args, **kwargs)
        convert = converter.convert

        def convert_and_lose_the_signal():
            content = convert()
            request_termination()  # what the handler records before its exception is dropped
            return content

        converter.convert = convert_and_lose_the_signal
        return converter

    monkeypatch.setattr(tf.lite.TFLiteConverter, "from_saved_model", interrupted)
    try:
        with pytest.raises(Terminated):
            export.export_saved_model(tiny_adapnet, str(tmp_path / "stopped"), size=(32, 64), tflite=("float32",))
    finally:
        clear_termination()
    assert os.listdir(tmp_path) == []


def test_overwrite_replaces_an_earlier_export_only(tiny_adapnet, tmp_path, capsys):
    """`ssma-export RUN -o RUN --overwrite` (or -o the folder above the run) deleted the run with
    its checkpoints; --overwrite now replaces an earlier export or an empty folder, nothing else."""
    from ssma_tf.cli import export as export_cli
    from ssma_tf.constants import EXPORT_METADATA

    run = tmp_path / "runs" / "rgb"
    run.mkdir(parents=True)
    (run / "final.weights.h5").write_text("the trained weights")
    for output in (run, run.parent):
        with pytest.raises(export.ExportError, match=rf"^{output} is not an export \(it has no assets.extra/ssma_tf"
                                                     r"\.json\): --overwrite replaces an earlier export only"):
            export.check_export_output(output, overwrite=True)
        # The command refuses before the model loads.
        assert export_cli.main([str(run), "-o", str(output), "--overwrite"]) == 2
        assert capsys.readouterr().err.startswith(f"error: {output} is not an export")
    assert (run / "final.weights.h5").read_text() == "the trained weights"
    (tmp_path / "a_file").write_text("")
    with pytest.raises(export.ExportError, match="is not an export"):
        export.check_export_output(tmp_path / "a_file", overwrite=True)
    earlier = tmp_path / "earlier"
    (earlier / "assets.extra").mkdir(parents=True)
    (earlier / EXPORT_METADATA).write_text("{}")
    (tmp_path / "empty").mkdir()
    for output in (earlier, tmp_path / "empty", tmp_path / "new"):
        export.check_export_output(output, overwrite=True)
    export.export_saved_model(tiny_adapnet, str(earlier), size=(32, 64), overwrite=True, tflite=("float32",))
    assert (earlier / "saved_model.pb").is_file()
    export.check_export_output(earlier, overwrite=True)  # every file a SavedModel export writes is its own
    # Files put beside an export were deleted with it, without a word.
    (earlier / "notes.txt").write_text("thresholds for the robot")
    (earlier / "predictions").mkdir()
    with pytest.raises(export.ExportError, match=r"holds files that are not part of its export \(notes.txt, "
                                                 r"predictions\): --overwrite would delete them"):
        export.check_export_output(earlier, overwrite=True)
    # Inside its folders too (helper 223: a serving warm-up file in assets.extra/ went with it).
    (earlier / "notes.txt").unlink()
    (earlier / "predictions").rmdir()
    export.check_export_output(earlier, overwrite=True)
    (earlier / "assets.extra" / "tf_serving_warmup_requests").write_bytes(b"x")
    (earlier / "variables" / "notes").mkdir()
    with pytest.raises(export.ExportError, match=r"holds files that are not part of its export \(assets.extra/"
                                                 r"tf_serving_warmup_requests, variables/notes\): --overwrite would"):
        export.check_export_output(earlier, overwrite=True)
    # The SavedModel's assets/ folder, which the export leaves empty (helper 296: a file there went with it).
    (earlier / "assets").mkdir(exist_ok=True)
    (earlier / "assets" / "labels.txt").write_text("road\ncar\n")
    with pytest.raises(export.ExportError, match=r"not part of its export \(assets/labels.txt, assets.extra/"
                                                 r"tf_serving_warmup_requests, variables/notes\): --overwrite would"):
        export.check_export_output(earlier, overwrite=True)


def test_export_refuses_a_fold_that_changes_outputs(adapnet, tmp_path, monkeypatch):
    monkeypatch.setattr(export, "fold_batch_norms", lambda model: (model, 1))
    monkeypatch.setattr(export, "fold_difference", lambda *args: 0.01)
    with pytest.raises(export.ExportError, match="export without folding"):
        export.export_saved_model(adapnet, str(tmp_path / "out"), fold_batch_norm=True)
    assert not (tmp_path / "out").exists()


def test_replacing_an_export_swaps_whole_folders(tmp_path):
    # Exports are written through `atomic_path(..., directory=True)`: the old folder stays whole
    # until the new one is complete, and nothing else is left beside it.
    old = tmp_path / "export"
    old.mkdir()
    (old / "saved_model.pb").write_text("old")
    with atomic_path(old, directory=True) as staging:
        assert (old / "saved_model.pb").read_text() == "old"
        (Path(staging) / "saved_model.pb").write_text("new")
    assert (old / "saved_model.pb").read_text() == "new"
    assert sorted(os.listdir(tmp_path)) == ["export"]


def test_export_options_are_checked(adapnet, tmp_path, capsys):
    with pytest.raises(ValueError, match="TFLite types"):
        export.export_saved_model(adapnet, str(tmp_path / "a"), tflite=["int8"])
    with pytest.raises(ValueError, match="multiples of 16"):
        export.export_saved_model(adapnet, str(tmp_path / "a"), size=(100, 100))
    with pytest.raises(SystemExit):
        _load_tool("export").main(["--checkpoint", "x", "--size", "big", "--output", str(tmp_path / "b")])
    with pytest.raises(SystemExit, match="2"):
        _load_tool("export").main(["--checkpoint", "x", "--format", "openvino", "--int8", "--calibration", "r",
                                   "--calibration_samples", "0", "--output", str(tmp_path / "b")])
    assert "--calibration_samples must be >= 1, got 0" in capsys.readouterr().err
    # Before: taken without --int8, and a float32 file written without a word (helper 223); and
    # --input_modality for an SSMA refused only once the model had loaded.
    for flags, said in ((["--format", "tflite", "--calibration_samples", "7"],
                         "--calibration_samples is only used with --int8"),
                        (["--model", "SSMA", "--num_classes", "3", "--input_modality", "modality2"],
                         "--input_modality is for AdapNet++; SSMA reads every modality")):
        with pytest.raises(SystemExit, match="2"):
            _load_tool("export").main(["--checkpoint", "x", *flags, "--output", str(tmp_path / "b")])
        assert said in capsys.readouterr().err
    # Before, once the model had loaded: "give --size HEIGHTxWIDTH or a config", a config given.
    with pytest.raises(SystemExit, match="2"):
        _load_tool("export").main(["--checkpoint", "x", "--format", "openvino", "--size", "input", "--output",
                                   str(tmp_path / "b")])
    assert ("--size input: --format openvino needs a fixed size; give --size HEIGHTxWIDTH, or leave --size out for "
            "the config's") in capsys.readouterr().err
    # Before: refused once the model had loaded (15 s at 32x64), after a warning about modality 2.
    lone = tmp_path / "lone.keras"
    lone.write_bytes(b"not read")
    with pytest.raises(SystemExit, match="2"):
        _load_tool("export").main([str(lone), "--format", "tflite", "--output", str(tmp_path / "b")])
    assert (f"--format tflite needs a fixed size and {lone} holds none: give --size HEIGHTxWIDTH or a config (-c)"
            in capsys.readouterr().err)
    assert _load_tool("export").main(["--checkpoint", str(tmp_path / "none.weights.h5"), "--model", "SSMA",
                                      "--num_classes", "3", "--output", str(tmp_path / "b")]) == 2


def test_the_deploy_report_names_the_input_type_the_export_takes(tmp_path):
    # A full-integer TFLite export takes uint8 images; the report said float32 for every export.
    from ssma_tf.inference.deploy import DeployReport

    (tmp_path / "model_int8.tflite").write_bytes(b"x" * 1024)
    meta = {"backend": "tflite", "precision": "int8", "files": {"tflite": "model_int8.tflite"},
            "inputs": ["image"], "input_dtype": "uint8", "size": [32, 64]}
    assert "input image uint8 BGR 1x32x64x3" in str(DeployReport(str(tmp_path), meta))
    meta.update(backend="openvino", precision="int8", files={"openvino": "model_int8.tflite"}, input_dtype="float32")
    assert "input image float32 BGR 1x32x64x3" in str(DeployReport(str(tmp_path), meta))


def test_metadata_says_which_modality_an_experts_image_input_is(adapnet):
    # The SavedModel of a depth expert takes depth pictures as `image`; the deploy exports said
    # so, the SavedModel's metadata did not.
    report = export.ExportReport(path="unused", metadata={})
    metadata = export._metadata(adapnet, (64, 128), "nearest", report, None, "modality2")
    assert metadata["inputs"] == ["image"] and metadata["input_modality"] == "modality2"


def test_the_modality_an_exported_expert_reads_is_given_or_said(adapnet_weights, tmp_path, monkeypatch, capsys):
    """A depth expert exported from its weights alone was labelled modality1 (resized bilinearly,
    calibrated on colour images) without a word; ssma-export had no --input_modality."""
    weights = adapnet_weights
    seen = []
    monkeypatch.setattr(export, "export_saved_model", lambda model, output, **kwargs: seen.append(kwargs) or "done")
    base = ["--checkpoint", weights, "--model", "AdapNet_pp", "--num_classes", "4", "--output", str(tmp_path / "o")]
    assert _load_tool("export").main(base + ["--input_modality", "modality2"]) == 0
    assert seen[-1]["input_modality"] == "modality2" and "input_modality:" not in capsys.readouterr().out
    assert _load_tool("export").main(base) == 0
    assert seen[-1]["input_modality"] == "modality1"
    assert ("input_modality: modality1 (no config says otherwise; give --input_modality for an expert of another "
            "modality)") in capsys.readouterr().out


def test_an_export_another_command_wrote_meanwhile_is_kept_without_overwrite(tiny_adapnet, tmp_path, monkeypatch):
    """Helper 366: `ssma-export RUN -o exp` twice at once: both passed the start-up check and the
    second to finish replaced the first's export without a word. (No SavedModel is written: the
    folder's content is not what this is about.)"""
    from ssma_tf.files import OutputPathError

    output = tmp_path / "exp"

    def write_out(self, folder, verbose=False):
        with open(os.path.join(folder, "saved_model.pb"), "wb") as stream:
            stream.write(b"mine")
        (output / "assets.extra").mkdir(parents=True)  # the other export is put in place first

    monkeypatch.setattr(type(keras.export.ExportArchive()), "write_out", write_out)
    with pytest.raises(OutputPathError, match=r"exp' appeared while this command was writing it .* pass --overwrite"):
        export.export_saved_model(tiny_adapnet, str(output), size=(32, 64))
    assert os.listdir(output) == ["assets.extra"] and os.listdir(tmp_path) == ["exp"]
