"""OpenVINO and TFLite exports (`ssma_tf.inference.deploy`) and running them (`backends`, the commands).

The real AdapNet++ goes through OpenVINO's converter and NNCF's int8 calibration once (the
architecture, its eASPP global mean included, is what has to convert); the TFLite and two-input
cases use a small functional stand-in with the same interface (dict of `softmax`/`logits`, a
global mean, a transposed convolution), whose conversion takes seconds instead of minutes.
"""

import builtins
import importlib.util
import json
import os
import re

import keras
import numpy as np
import pytest
from keras import layers

from ssma_tf.inference.compiled import inference_model
from tests.conftest import ROOT
from tests.inference.helpers import randomize_batch_norms, write_rgb
from tests.training_helpers import released_miou, write_records

pytest.importorskip("openvino", reason="the deploy extra (pip install '.[deploy]') is not installed")
pytest.importorskip("nncf", reason="the deploy extra is not installed")
pytest.importorskip("ai_edge_litert", reason="the deploy extra is not installed")

from ssma_tf.inference import backends, deploy  # noqa: E402  (after the extra's check)
from ssma_tf.inference.export import check_export_output  # noqa: E402

HEIGHT, WIDTH = 32, 64


def _load_tool(name):
    spec = importlib.util.spec_from_file_location(f"tools_{name}", ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def small_segmenter(num_classes: int = 4, fusion: bool = False, seed: int = 0, modalities: int = 2) -> keras.Model:
    """A functional model with the outputs of `AdapNetPP`/`SSMA` (over `modalities` images if
    `fusion`): conv-BN-ReLU, stride 2, global mean gating (as the eASPP's image pooling), a 4x4
    stride-2 transposed convolution, softmax."""
    keras.utils.set_random_seed(seed)
    names = tuple(f"modality{i}" for i in range(1, modalities + 1)) if fusion else ("image",)
    inputs = [keras.Input((HEIGHT, WIDTH, 3), name=name) for name in names]
    x = layers.Concatenate()(inputs) if fusion else inputs[0]
    x = layers.Rescaling(1 / 127.5, -1.0)(x)
    x = layers.Conv2D(16, 3, strides=2, padding="same", use_bias=False, name="conv1")(x)
    x = layers.BatchNormalization(name="conv1_bn")(x)
    x = layers.ReLU()(x)
    pooled = layers.GlobalAveragePooling2D(keepdims=True)(x)
    x = layers.Multiply()([x, layers.Conv2D(16, 1, activation="sigmoid", name="gate")(pooled)])
    logits = layers.Conv2DTranspose(num_classes, 4, strides=2, padding="same", use_bias=False, name="up")(x)
    softmax = layers.Softmax()(logits)
    model = keras.Model(inputs if fusion else inputs[0], {"softmax": softmax, "logits": logits})
    model.num_classes = num_classes
    randomize_batch_norms(model, seed=seed)
    return model


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    folder = tmp_path_factory.mktemp("deploy_records")
    return {
        "rgb": write_records(folder / "val.tfrecords", 4, height=HEIGHT, width=WIDTH, num_classes=4, seed=1),
        "fusion": write_records(folder / "fusion.tfrecords", 3, height=HEIGHT, width=WIDTH, num_classes=4,
                                fusion=True, seed=2),
    }


@pytest.fixture(scope="module")
def adapnet_openvino_int8(adapnet, records, tmp_path_factory):
    """The shared AdapNet++ (4 classes) exported by tools/export.py to OpenVINO int8 at 32x64."""
    folder = tmp_path_factory.mktemp("deploy")
    weights = str(folder / "model.weights.h5")
    adapnet.save_weights(weights)
    output = folder / "openvino_int8"
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(os.path.dirname(records["rgb"]))  # the records given relative to the working directory
        status = _load_tool("export").main([
            "--checkpoint", weights, "--model", "AdapNet_pp", "--num_classes", "4", "--size", f"{HEIGHT}x{WIDTH}",
            "--format", "openvino", "--int8", "--calibration", os.path.basename(records["rgb"]),
            "--calibration_samples", "2", "--output", str(output),
        ])
    assert status == 0
    return weights, output


def _eval_config(tmp_path, records, weights):
    config = tmp_path / "eval.config"
    config.write_text(f"model: AdapNet_pp\nnum_classes: 4\ncheckpoint: {weights}\ntest_data: {records}\n"
                      f"batch_size: 2\nheight: {HEIGHT}\nwidth: {WIDTH}\n")
    return config


def test_adapnet_int8_openvino_export_is_calibrated_and_evaluated_like_tensorflow(
        adapnet, adapnet_openvino_int8, records, tmp_path, capsys):
    weights, folder = adapnet_openvino_int8
    meta = backends.read_export_metadata(folder)
    assert meta["backend"] == "openvino" and meta["precision"] == "int8"
    assert meta["size"] == [HEIGHT, WIDTH] and meta["inputs"] == ["image"] and meta["num_classes"] == 4
    # Absolute, though given relative: the metadata names the records wherever it is read.
    assert meta["calibration"] == {"records": [records["rgb"]], "samples": 2}
    assert (folder / "model.xml").exists() and (folder / "model.bin").exists()
    # The int8 network holds quantised convolutions, and still predicts what the float model does.
    assert "FakeQuantize" in (folder / "model.xml").read_text() or "FakeConvert" in (folder / "model.xml").read_text()
    exported = backends.load_exported(folder, "openvino")
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 255, (2, HEIGHT, WIDTH, 3)).astype("float32")
    got = exported([image])
    expected = inference_model(adapnet)(image, training=False)["softmax"].numpy()
    assert got.shape == expected.shape
    # Random weights give flat softmaxes, whose argmax int8 rounding may flip: compare where the
    # float model is decided, and the probabilities everywhere.
    ranked = np.sort(expected, axis=-1)
    decided = ranked[..., -1] - ranked[..., -2] > 0.05
    assert decided.mean() > 0.1
    agreement = (got.argmax(-1) == expected.argmax(-1))[decided].mean()
    assert agreement > 0.8, agreement
    assert np.abs(got - expected).mean() < 0.05

    config = _eval_config(tmp_path, records["rgb"], weights)
    from ssma_tf.cli import evaluate as evaluate_cli

    assert evaluate_cli.main(["-c", str(config), "--backend", "openvino", "--exported", str(folder),
                              "--json", str(tmp_path / "ov.json")]) == 0
    # Which export was evaluated (as the TensorFlow backend says which weights it loaded).
    assert f"loaded {folder} (openvino, int8)\n" in capsys.readouterr().out
    metrics = json.loads((tmp_path / "ov.json").read_text())
    assert metrics["backend"] == "openvino" and metrics["precision"] == "int8" and metrics["num_images"] == 4
    # The export alone, as RUN or --exported, with the records: its metadata is the config (before:
    # "give a config (-c) or a training run's folder", though the export holds its model and size).
    # Without --backend the export's own format is taken (before: "--exported needs --backend").
    for alone in ([str(folder), "--backend", "openvino"], ["--exported", str(folder), "--backend", "openvino"],
                  [str(folder)], ["--exported", str(folder)]):
        assert evaluate_cli.main([*alone, "--test_data", records["rgb"], "--json", str(tmp_path / "alone.json")]) == 0
        assert json.loads((tmp_path / "alone.json").read_text())["mIoU"] == metrics["mIoU"]
        (tmp_path / "alone.json").unlink()
    with pytest.raises(SystemExit):  # said, the backend is the one given
        evaluate_cli.main(["--exported", str(folder), "--backend", "tensorflow", "--test_data", records["rgb"]])
    assert "--exported needs --backend openvino or tflite" in capsys.readouterr().err
    capsys.readouterr()
    assert evaluate_cli.main([str(folder), "--backend", "openvino"]) == 2
    assert "key 'test_data': an export does not name the records to evaluate on: give them with --test_data" in \
        capsys.readouterr().err
    with pytest.raises(SystemExit):  # weights are for the tensorflow backend
        evaluate_cli.main([str(folder), "--backend", "openvino", "--test_data", records["rgb"], "--checkpoint", weights])
    assert "--checkpoint is for the tensorflow backend" in capsys.readouterr().err
    # A missing folder, damaged metadata and a dataset of the user's own palette (helper 82).
    from ssma_tf.config import ConfigError
    from ssma_tf.config.runs import export_config

    assert evaluate_cli.main([str(tmp_path / "nowhere"), "--backend", "openvino", "--test_data", records["rgb"]]) == 2
    assert f"{tmp_path / 'nowhere'}: no such export folder" in capsys.readouterr().err
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    metadata = copy / "assets.extra" / "ssma_tf.json"
    meta = json.loads(metadata.read_text())
    metadata.write_text(json.dumps(dict(meta, dataset="my_fields")))
    assert export_config(copy, {"test_data": records["rgb"]}).dataset is None  # generic names, not refused
    # The export's own class names (helper 148: an own palette's names, stored in the export, gave
    # way to class_1, class_2, ... when the export was evaluated on its own).
    names = ["void", "grass", "water", "rock"]
    metadata.write_text(json.dumps(dict(meta, dataset="my_fields", class_names=names)))
    assert evaluate_cli.main([str(copy), "--test_data", records["rgb"], "--json", str(tmp_path / "named.json")]) == 0
    assert "  grass " in capsys.readouterr().out
    assert [row["name"] for row in json.loads((tmp_path / "named.json").read_text())["per_class"]] == names[1:]
    metadata.write_text(json.dumps({k: v for k, v in meta.items() if k != "num_classes"}))
    with pytest.raises(ConfigError, match="the export's metadata lacks 'num_classes'"):
        export_config(copy, {"test_data": records["rgb"]})
    metadata.write_text("{not json")
    assert evaluate_cli.main([str(copy), "--backend", "openvino", "--test_data", records["rgb"]]) == 2
    assert "cannot read the export's metadata: Expecting property name" in capsys.readouterr().err
    # Without --backend, and as a run of the tensorflow backend: the same (before: "a SavedModel").
    for given in ([str(copy)], [str(copy), "--backend", "tensorflow"]):
        assert evaluate_cli.main([*given, "--test_data", records["rgb"]]) == 2
        assert "cannot read the export's metadata: Expecting property name" in capsys.readouterr().err
    with pytest.raises(backends.ExportedModelError, match="cannot read the export's metadata"):
        backends.load_exported(copy, "openvino")
    # The released mIoU of exactly what the export predicts on the records, counted independently.
    from ssma_tf.config import load_config
    from ssma_tf.evaluation import make_eval_dataset

    pairs = [(exported([x.numpy()]).argmax(-1), y.numpy()) for x, y in make_eval_dataset(load_config(config, "eval"))]
    predictions, labels = (np.concatenate(part) for part in zip(*pairs))
    assert metrics["mIoU"] == pytest.approx(released_miou(labels, predictions, 4), abs=1e-6)
    # A record cut short: one line naming it (before: TensorFlow's DataLossError traceback).
    whole = open(records["rgb"], "rb").read()
    (tmp_path / "cut.tfrecords").write_bytes(whole[: len(whole) - 100])
    cut_config = _eval_config(tmp_path, tmp_path / "cut.tfrecords", weights)
    assert evaluate_cli.main(["-c", str(cut_config), "--backend", "openvino", "--exported", str(folder)]) == 2
    assert re.search(r"^error: .*cut\.tfrecords, record 3: damaged", capsys.readouterr().err, re.M)


def test_an_exports_evaluation_rate_counts_from_its_first_batch(adapnet_openvino_int8, records, tmp_path,
                                                                 monkeypatch):
    """Helper 232: the clock started before the export was loaded and compiled, and a short set's
    images/s came out 13x too low, where the TensorFlow path counts from its first batch."""
    import types

    from ssma_tf import evaluation
    from ssma_tf.config import load_config

    weights, folder = adapnet_openvino_int8
    clock = [0.0]

    def perf_counter():  # a tenth of a second a reading: the loop of 2 images takes well under 10 s
        clock[0] += 0.1
        return clock[0]

    load = backends.load_exported

    def slow_load(*args, **kwargs):
        clock[0] += 1000.0  # the compile of a large export
        return load(*args, **kwargs)

    monkeypatch.setattr(evaluation, "time", types.SimpleNamespace(perf_counter=perf_counter))
    monkeypatch.setattr(backends, "load_exported", slow_load)
    config = load_config(str(_eval_config(tmp_path, records["rgb"], weights)), "eval",
                         overrides={"skip_step": 1})
    lines = []
    result = evaluation.evaluate_exported(config, str(folder), "openvino", log=lines.append)
    rates = [float(line.split(", ")[-1].split()[0]) for line in lines if line.startswith("evaluated ")]
    assert rates and min(rates) > 2.0, lines  # before: about 2 images in 1000 s
    assert result.metrics["seconds"] > 1000  # the whole command's time still counts the load


def test_predict_runs_the_export_and_writes_its_pictures(adapnet_openvino_int8, tmp_path, capsys):
    _, folder = adapnet_openvino_int8
    image = write_rgb(tmp_path / "in" / "a.png", np.full((40, 70, 3), 120, np.uint8))
    from ssma_tf.cli import predict as predict_cli

    output = tmp_path / "out"
    assert predict_cli.main([str(folder), "--backend", "openvino", "--modality1", image, "--original_size",
                             "--quiet", "--output", str(output)]) == 0
    assert "openvino int8" in capsys.readouterr().out
    from PIL import Image

    assert np.asarray(Image.open(output / "class_ids" / "a.png")).shape == (40, 70)
    # Without --original_size the pictures have the export's size, and the last line says so.
    assert predict_cli.main([str(folder), "--backend", "openvino", "--modality1", image, "--quiet",
                             "--output", str(tmp_path / "at_export_size")]) == 0
    assert "(at 32x64, the export's size; --original_size for each image's own)" in capsys.readouterr().out
    assert np.asarray(Image.open(tmp_path / "at_export_size" / "class_ids" / "a.png")).shape == (32, 64)
    # The export has no attention gates: asking for them is a flag error.
    with pytest.raises(SystemExit):
        predict_cli.main([str(folder), "--backend", "openvino", "--modality1", image, "--attention",
                          "--output", str(output)])
    capsys.readouterr()
    # Nor an improvement map against another model (before: --compare was ignored, exit 0).
    with pytest.raises(SystemExit):
        predict_cli.main([str(folder), "--backend", "openvino", "--modality1", image, "--compare", str(folder),
                          "--output", str(tmp_path / "cmp")])
    assert "--compare is for the tensorflow backend" in capsys.readouterr().err
    # The export given with the tensorflow backend: the error says which (before: only what the
    # folder lacks); without --backend, its own is taken (before: the same error).
    assert predict_cli.main([str(folder), "--modality1", image, "--output", str(tmp_path / "tf"),
                             "--backend", "tensorflow"]) == 2
    assert "it is an OpenVINO export of ssma-export; run it with --backend openvino" in capsys.readouterr().err
    assert predict_cli.main([str(folder), "--modality1", image, "--output", str(tmp_path / "own"), "--quiet"]) == 0
    assert any((tmp_path / "own").rglob("*.png"))
    # --modality2_interpolation for an AdapNet++ of modality 1: refused as for its Keras model (before:
    # taken by the export, without a word; helper 229).
    assert predict_cli.main([str(folder), "--modality1", image, "--modality2_interpolation", "bilinear",
                             "--output", str(tmp_path / "interp")]) == 2
    assert ("error: --modality2_interpolation is for SSMA or an expert of modality 2 and on; this AdapNet++ reads "
            "modality1, resized bilinearly") in capsys.readouterr().err
    # A shell pattern given to --modality1 leaves its second image as RUN (before: "... not both").
    second = write_rgb(tmp_path / "in" / "b.png", np.full((40, 70, 3), 90, np.uint8))
    third = write_rgb(tmp_path / "in" / "c.png", np.full((40, 70, 3), 60, np.uint8))
    for flags, loose in ((["--checkpoint", str(folder), "--modality1", image, second], second),
                         (["--checkpoint", str(folder), "--modality1", image, second, third], second),
                         ([str(folder), "--modality1", image, second], second)):  # helper 231: 3 files, RUN first
        with pytest.raises(SystemExit):
            predict_cli.main([*flags, "--output", str(tmp_path / "g")])
        assert (f"{loose} is an image that no flag takes: --modality1 and --modality2 take one image or a folder "
                "each (a shell pattern such as rgb/*.png gives several); give the folder") in capsys.readouterr().err
    # And to ssma-evaluate as a run (before: "not a training run ...; give a config with -c").
    from ssma_tf.cli import evaluate as evaluate_cli

    assert evaluate_cli.main([str(folder), "--backend", "tensorflow"]) == 2
    assert capsys.readouterr().err == (f"error: {folder} is an OpenVINO export of ssma-export, not a training run: "
                                       f"evaluate it with ssma-evaluate {folder} --backend openvino --test_data "
                                       "RECORDS, or run it with ssma-predict --backend openvino\n")
    assert evaluate_cli.main([str(folder)]) == 2  # its own backend, then the records it needs
    assert "an export does not name the records to evaluate on: give them with --test_data" in capsys.readouterr().err
    with pytest.raises(backends.ExportedModelError, match=r"^\S+nowhere: no such export folder$"):
        backends.read_export_metadata(str(tmp_path / "nowhere"))


def test_a_missing_runtime_is_named_with_what_needs_it(monkeypatch):
    real_import = importlib.import_module

    def without_nncf(name, *args):
        if name == "nncf":
            raise ImportError("No module named 'nncf'")
        return real_import(name, *args)

    monkeypatch.setattr(importlib, "import_module", without_nncf)
    with pytest.raises(backends.MissingExtraError, match=r"^int8 quantisation for OpenVINO \(--int8\) needs the "
                                                         r"optional 'nncf' package: pip install '\.\[deploy\]' in the ssma-tf clone "
                                                         r"\(the deploy extra\), or pip install nncf$"):
        backends.require("nncf")


def test_float32_openvino_and_tflite_exports_compute_the_keras_softmax(tmp_path):
    model = small_segmenter()
    image = np.random.default_rng(1).uniform(0, 255, (2, HEIGHT, WIDTH, 3)).astype("float32")
    expected = model(image)["softmax"].numpy()
    for format in ("openvino", "tflite"):
        report = deploy.export_deployed(model, tmp_path / format, format=format, size=(HEIGHT, WIDTH))
        assert report.metadata["precision"] == "float32" and report.metadata["calibration"] is None
        got = backends.load_exported(tmp_path / format, format)([image])
        np.testing.assert_allclose(got, expected, atol=1e-5, err_msg=format)
        check_export_output(tmp_path / format, overwrite=True)  # all its files are the export's own


def test_an_experts_resizing_and_input_travel_with_its_export(records, tmp_path, capsys):
    """Found by helper 84: an expert of modality 2 exported with bilinear resizing was run with
    nearest (its metadata left it out); `-c CONFIG --exported` did not compare the resizing;
    modalities of two sizes were each resized alone; `ssma-predict` fed another modality than
    the export's and ignored --model; a model file missing beside the export was a traceback."""
    from ssma_tf.cli import predict as predict_cli
    from ssma_tf.config import config_from_dict
    from ssma_tf.evaluation import evaluate_exported

    folder = tmp_path / "expert"
    report = deploy.export_deployed(small_segmenter(), folder, format="openvino", size=(HEIGHT, WIDTH),
                                    input_modality="modality2", modality2_interpolation="bilinear")
    assert report.metadata["modality2_interpolation"] == "bilinear"
    assert backends.ExportedPredictor(backends.load_exported(folder, "openvino"))._methods == ("bilinear",)
    config = config_from_dict(dict(model="AdapNet_pp", num_classes=4, height=HEIGHT, width=WIDTH, batch_size=1,
                                   input_modality="modality2", test_data=records["fusion"], checkpoint="unused"),
                              source="e.config", mode="eval", check_paths=False)
    with pytest.raises(backends.ExportedModelError, match=r"it has resize methods \['bilinear'\] \(the config has "
                                                          r"\['nearest'\]"):
        evaluate_exported(config, folder, "openvino", log=lambda line: None)
    fused = tmp_path / "fused"
    deploy.export_deployed(small_segmenter(fusion=True), fused, format="openvino", size=(HEIGHT, WIDTH))
    predictor = backends.ExportedPredictor(backends.load_exported(fused, "openvino"))
    assert predictor.fusion_method == "ssma"
    # Helper 95: "RGB" (any value but "rgb") was taken for BGR, the channels swapped without a word.
    with pytest.raises(ValueError, match=r"channel_order must be one of \('rgb', 'bgr'\), got 'RGB'"):
        backends.ExportedPredictor(backends.load_exported(fused, "openvino"), channel_order="RGB")
    # A baseline's fusion is in the metadata, as the SavedModel's (helper 95: a `late` export read as SSMA).
    baseline = small_segmenter(fusion=True)
    baseline.fusion = "late"
    deploy.export_deployed(baseline, tmp_path / "late", format="openvino", size=(HEIGHT, WIDTH))
    assert backends.ExportedPredictor(backends.load_exported(tmp_path / "late", "openvino")).fusion_method == "late"
    with pytest.raises(ValueError, match=r"modality1 and modality2 must have the same shape, got \(64, 128, 3\) and "
                                         r"\(16, 16, 3\)"):
        predictor.predict(np.zeros((64, 128, 3), np.uint8), np.zeros((16, 16, 3), np.uint8))
    image = write_rgb(tmp_path / "depth.png", np.zeros((HEIGHT, WIDTH, 3), np.uint8))
    # The export resizes as its metadata says: another --modality2_interpolation is refused.
    assert predict_cli.main([str(folder), "--modality2", image, "--modality2_interpolation", "nearest",
                             "-o", str(tmp_path / "out")]) == 2
    assert (f"error: {folder} resizes modality 2 and on by bilinear (its metadata), but --modality2_interpolation "
            "says nearest; leave the flag out, or export with it") in capsys.readouterr().err
    assert predict_cli.main([str(folder), "--modality2", image, "--input_modality", "modality3",
                             "-o", str(tmp_path / "out")]) == 2
    assert (f"error: {folder} is an expert of modality2 (its metadata), but --input_modality says modality3"
            in capsys.readouterr().err)
    with pytest.raises(SystemExit):
        predict_cli.main([str(folder), "--modality2", image, "--num_classes", "19", "-o", str(tmp_path / "out")])
    assert "--num_classes are for weights that do not say their network" in capsys.readouterr().err
    (folder / "model.bin").unlink()
    assert predict_cli.main([str(folder), "--modality2", image, "-o", str(tmp_path / "out2")]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: {folder}: the openvino runtime cannot open model.xml (damaged, or a file "
                            "missing beside it: export it again): Empty weights data in bin file or bin file cannot "
                            "be found!") and error.count("\n") == 1, error


def test_ctrl_c_in_the_openvino_converter_is_an_interrupt_and_leaves_no_folder(tmp_path, monkeypatch):
    """OpenVINO's converter turns a KeyboardInterrupt into its RuntimeError: the commands printed
    a traceback and ended with status 1 instead of "interrupted" (130)."""
    import openvino

    def interrupted(*args, **kwargs):
        raise RuntimeError("Check 'false' failed at src/frontends/common/src/frontend.cpp:53:\nConverting input "
                           "model\nKeyboardInterrupt: <EMPTY MESSAGE>")

    monkeypatch.setattr(openvino, "convert_model", interrupted)
    with pytest.raises(KeyboardInterrupt) as stopped:
        deploy.export_deployed(small_segmenter(), tmp_path / "ov", format="openvino", size=(HEIGHT, WIDTH))
    assert os.listdir(tmp_path) == []
    from ssma_tf.errors import Terminated

    assert not isinstance(stopped.value, Terminated)
    # SIGTERM (the commands' Terminated) stays a SIGTERM: "terminated", 143.
    monkeypatch.setattr(openvino, "convert_model", lambda *args, **kwargs: (_ for _ in ()).throw(
        RuntimeError("Check 'false' failed ...\nConverting input model\nTerminated: <EMPTY MESSAGE>")))
    with pytest.raises(Terminated):
        deploy.export_deployed(small_segmenter(), tmp_path / "ov", format="openvino", size=(HEIGHT, WIDTH))
    monkeypatch.setattr(openvino, "convert_model", lambda *args, **kwargs: (_ for _ in ()).throw(
        RuntimeError("Converting input model: an operation it cannot convert")))
    with pytest.raises(RuntimeError, match="cannot convert"):  # other failures keep their message
        deploy.export_deployed(small_segmenter(), tmp_path / "ov", format="openvino", size=(HEIGHT, WIDTH))


def test_int8_calibration_reads_both_modalities_and_the_runners_take_them(records, tmp_path):
    model = small_segmenter(fusion=True, seed=3)
    batches = deploy.calibration_batches([records["fusion"]], modalities=2, size=(HEIGHT, WIDTH), samples=3)
    assert len(batches) == 3 and all(len(item) == 2 for item in batches)
    assert batches[0][0].shape == (1, HEIGHT, WIDTH, 3) and not np.array_equal(batches[0][0], batches[0][1])
    images = [np.concatenate(views) for views in zip(*batches)]  # modality 1 batch, modality 2 batch
    expected = model(images)["softmax"].numpy().argmax(-1)
    for format in ("openvino", "tflite"):
        report = deploy.export_deployed(model, tmp_path / format, format=format, size=(HEIGHT, WIDTH), int8=True,
                                        calibration=[records["fusion"]], calibration_samples=3)
        assert report.metadata["inputs"] == ["modality1", "modality2"]
        exported = backends.load_exported(tmp_path / format, format)
        assert exported.fusion and exported.precision == "int8"
        got = exported(images).argmax(-1)
        assert (got == expected).mean() > 0.9, format
    # Full integer TFLite: uint8 images in, no float operation but the last dequantisation.
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(tmp_path / "tflite" / "model_int8.tflite"))
    assert {d["dtype"] for d in interpreter.get_input_details()} == {np.uint8}


def _three_modality_records(path, labeled: bool = True) -> str:
    """3 records whose modality k is the flat value 40·k + record index (the label: index)."""
    from ssma_tf.data import write_examples

    samples = [{**{f"modality{k}": np.full((HEIGHT, WIDTH, 3), 40 * k + index, np.uint8) for k in (1, 2, 3)},
                "label": np.full((HEIGHT, WIDTH), index, np.uint8) if labeled else None} for index in range(3)]
    write_examples(path, samples)
    return str(path)


def test_calibration_feeds_an_expert_its_own_modality_and_ssma_every_one(tmp_path):
    three = _three_modality_records(tmp_path / "three.tfrecords")
    said = []
    expert = deploy.calibration_batches([three], modalities=1, input_modality="modality3", size=(HEIGHT, WIDTH),
                                        samples=3, say=said.append)
    assert [float(item[0].mean()) for item in expert] == [120.0, 121.0, 122.0] and len(expert[0]) == 1
    fused = deploy.calibration_batches([three], modalities=3, size=(HEIGHT, WIDTH), samples=2,
                                       modality2_interpolation=["nearest", "bilinear"], say=said.append)
    assert [[float(view.mean()) for view in item] for item in fused] == [[40.0, 80.0, 120.0], [41.0, 81.0, 121.0]]
    # The modalities not read are named (before: SSMA over two took the first two without a word).
    pair = deploy.calibration_batches([three], modalities=2, size=(HEIGHT, WIDTH), samples=1, say=said.append)
    assert [[float(view.mean()) for view in item] for item in pair] == [[40.0, 80.0]]
    assert said == [f"calibrating on modality3 (its input) of records holding 3 modalities ({three})",
                    f"calibrating on modalities 1-2 of records holding 3 modalities ({three})"]
    with pytest.raises(deploy.CalibrationError, match=r"hold 3 modalities, the model reads 4 modalities"):
        deploy.calibration_batches([three], modalities=4, size=(HEIGHT, WIDTH), samples=1)
    # Records without labels (ssma-convert --unlabeled) calibrate alike (helper 189: refused, "has no
    # label ... training and evaluation need records converted from lists with a label column").
    images_only = _three_modality_records(tmp_path / "images_only.tfrecords", labeled=False)
    for modalities, input_modality, expected in ((1, "modality3", expert), (3, "modality1", fused)):
        unlabeled = deploy.calibration_batches([images_only], modalities=modalities, input_modality=input_modality,
                                               size=(HEIGHT, WIDTH), samples=len(expected),
                                               modality2_interpolation=["nearest", "bilinear"])
        for ours, theirs in zip(unlabeled, expected, strict=True):
            for view, other in zip(ours, theirs, strict=True):
                assert view.shape == (1, HEIGHT, WIDTH, 3) and view.dtype == np.float32
                np.testing.assert_array_equal(view, other)


def test_ssma_over_three_modalities_exports_runs_and_evaluates_through_openvino(tmp_path):
    from ssma_tf.config import config_from_dict
    from ssma_tf.evaluation import evaluate_exported

    three = _three_modality_records(tmp_path / "three.tfrecords")
    model = small_segmenter(fusion=True, seed=4, modalities=3)
    # int8: calibrated on all three modalities of each record (flat images, so only that it runs).
    report = deploy.export_deployed(model, tmp_path / "int8", format="openvino", size=(HEIGHT, WIDTH), int8=True,
                                    calibration=[three], calibration_samples=3)
    assert report.metadata["calibration"]["samples"] == 3
    report = deploy.export_deployed(model, tmp_path / "ov", format="openvino", size=(HEIGHT, WIDTH),
                                    modality2_interpolation=["bilinear", "nearest"])
    assert report.metadata["inputs"] == ["modality1", "modality2", "modality3"]
    predictor = backends.ExportedPredictor(backends.load_exported(tmp_path / "ov", "openvino"), channel_order="bgr")
    assert predictor.fusion and predictor.num_modalities == 3
    rng = np.random.default_rng(5)
    images = [rng.uniform(0, 255, (HEIGHT, WIDTH, 3)).astype("float32") for _ in range(3)]
    expected = model([image[None] for image in images])["softmax"].numpy()[0].argmax(-1)
    assert (predictor.predict(*images, probabilities=False).class_ids == expected).mean() > 0.99
    with pytest.raises(ValueError, match="fuses 3 modalities, got 2 images"):
        predictor.predict(*images[:2])

    common = dict(model="SSMA", num_classes=4, height=HEIGHT, width=WIDTH, batch_size=1, test_data=three,
                  checkpoint=str(tmp_path / "unused"))
    result = evaluate_exported(config_from_dict(dict(common, modalities=["rgb", "depth", "thermal"],
                                                     modality_interpolations=["bilinear", "nearest"]), mode="eval",
                                                check_paths=False), str(tmp_path / "ov"), "openvino", log=lambda _: None)
    assert result.metrics["num_images"] == 3
    # The export alone: its metadata counts the modalities and their resizing.
    from ssma_tf.config.runs import export_config

    alone = export_config(tmp_path / "ov", {"test_data": three})
    assert alone.num_modalities == 3 and alone.checkpoint is None and alone.batch_size == 1
    assert alone.interpolations == ("bilinear", "nearest")
    assert evaluate_exported(alone, str(tmp_path / "ov"), "openvino", log=lambda _: None).metrics["num_images"] == 3
    with pytest.raises(backends.ExportedModelError, match="modalities 3 \\(the config has 2\\)"):
        evaluate_exported(config_from_dict(common, mode="eval", check_paths=False), str(tmp_path / "ov"), "openvino")


def test_a_failed_openvino_write_names_the_file_and_leaves_no_folder(tmp_path, monkeypatch):
    """OpenVINO's writer says "basic_ios::clear: iostream error" on a full disk: a traceback before."""
    import openvino

    monkeypatch.setattr(openvino, "save_model", lambda *args, **kwargs: (_ for _ in ()).throw(
        RuntimeError("basic_ios::clear: iostream error")))
    with pytest.raises(OSError) as failed:
        deploy.export_deployed(small_segmenter(), tmp_path / "ov", format="openvino", size=(HEIGHT, WIDTH))
    assert failed.value.filename == str(tmp_path / "ov" / "model.xml")
    assert re.fullmatch(r"OpenVINO could not write the model \(basic_ios::clear: iostream error\); "
                        r"[\d.]+ MB free on that disk", failed.value.strerror)
    assert os.listdir(tmp_path) == []


def test_calibration_needs_enough_records(records, tmp_path, capsys):
    with pytest.raises(deploy.CalibrationError, match="hold 3 samples, 5 asked"):
        deploy.calibration_batches([records["fusion"]], modalities=2, size=(HEIGHT, WIDTH), samples=5)
    with pytest.raises(deploy.CalibrationError, match="missing"):
        deploy.calibration_batches([str(tmp_path / "missing.tfrecords")], modalities=1, size=(HEIGHT, WIDTH),
                                   samples=1)
    # Counted before the model loads: before, the command loaded it (about 20 s) and then refused.
    deploy.check_calibration_records([records["fusion"]], 3)
    with pytest.raises(deploy.CalibrationError, match="hold 3 samples, 5 asked"):
        deploy.check_calibration_records([records["fusion"]], 5)
    with pytest.raises(deploy.CalibrationError, match="missing"):
        deploy.check_calibration_records([str(tmp_path / "missing.tfrecords")], 1)
    # A list file given for the records: before, "hold 1 samples, 5 asked", as if too few.
    listed = tmp_path / "train.txt"
    listed.write_text("rgb/0.png depth/0.png label/0.png\n" * 3)
    from ssma_tf.data.records import RecordError

    with pytest.raises(RecordError, match=rf"^{listed}, record 0: damaged .*not a TFRecord file: convert it again"):
        deploy.check_calibration_records([str(listed)], 5)
    # After records enough for the samples (helper 119: passed over, and the dataset failed on
    # them after the model had loaded).
    with pytest.raises(RecordError, match=rf"^{listed}, record 0: damaged"):
        deploy.check_calibration_records([records["fusion"], str(listed)], 2)
    empty = tmp_path / "empty.tfrecords"
    empty.write_bytes(b"")
    with pytest.raises(RecordError, match=rf"^{empty}: holds no records$"):
        deploy.check_calibration_records([records["fusion"], str(empty)], 2)
    # Unimodal records for a depth expert: before, advice to train an AdapNet++ on modality1.
    with pytest.raises(deploy.CalibrationError, match=rf"^calibration records {records['rgb']} hold 1 modality, "
                                                      r"the model reads modality2 \(its input_modality\): calibrate "
                                                      "with records of the modalities it was trained on"):
        deploy.calibration_batches([records["rgb"]], modalities=1, input_modality="modality2", size=(HEIGHT, WIDTH),
                                   samples=1)
    with pytest.raises(deploy.CalibrationError, match="hold 1 modality, the model reads 2 modalities"):
        deploy.calibration_batches([records["rgb"]], modalities=2, size=(HEIGHT, WIDTH), samples=1)
    # A record cut short (before: TensorFlow's DataLossError traceback; the count from the framing
    # passes it).
    cut = tmp_path / "cut.tfrecords"
    whole = open(records["rgb"], "rb").read()
    cut.write_bytes(whole[: len(whole) - 100])
    deploy.check_calibration_records([str(cut)], 4)
    with pytest.raises(RecordError, match=rf"^{cut}, record 3: damaged"):
        deploy.calibration_batches([str(cut)], modalities=1, size=(HEIGHT, WIDTH), samples=4)
    # The same in records without labels (ssma-convert --unlabeled), which calibrate too (helper
    # 257: "record 0: no 'label' bytes feature", as if they had to hold labels).
    import tensorflow as tf

    from ssma_tf.data.schema import encode_example

    unlabeled = tmp_path / "unlabeled.tfrecords"
    with tf.io.TFRecordWriter(str(unlabeled)) as writer:
        for seed in range(4):
            writer.write(encode_example(np.random.default_rng(seed).integers(0, 256, (HEIGHT, WIDTH, 3), np.uint8),
                                        None))
    whole = unlabeled.read_bytes()
    unlabeled.write_bytes(whole[: len(whole) - 100])
    with pytest.raises(RecordError, match=rf"^{unlabeled}, record 3: damaged"):
        deploy.calibration_batches([str(unlabeled)], modalities=1, size=(HEIGHT, WIDTH), samples=4)
    status = _load_tool("export").main(["--checkpoint", str(tmp_path / "not_there.weights.h5"), "--model",
                                        "AdapNet_pp", "--num_classes", "4", "--format", "tflite", "--int8",
                                        "--calibration", records["fusion"], "--calibration_samples", "5",
                                        "--output", str(tmp_path / "o")])
    error = capsys.readouterr().err.strip()
    assert status == 2 and "\n" not in error and "hold 3 samples, 5 asked (--calibration_samples)" in error
    assert not (tmp_path / "o").exists()


def test_an_export_folder_without_the_backend_is_named(tmp_path):
    model = small_segmenter()
    deploy.export_deployed(model, tmp_path / "ov", format="openvino", size=(HEIGHT, WIDTH))
    with pytest.raises(backends.ExportedModelError, match="no tflite model"):
        backends.load_exported(tmp_path / "ov", "tflite")
    # The SavedModel export's own TFLite conversions take uint8 and give two outputs: named, not run.
    import json as json_module

    saved = tmp_path / "saved" / "assets.extra"
    saved.mkdir(parents=True)
    (saved / "ssma_tf.json").write_text(json_module.dumps({"format": "ssma_tf SavedModel export",
                                                           "tflite": {"float32": "model_float32.tflite"}}))
    with pytest.raises(backends.ExportedModelError, match=r"holds TFLite conversions of the SavedModel "
                                                          r"\(model_float32.tflite: .*ssma-export --format tflite"):
        backends.load_exported(tmp_path / "saved", "tflite")
    with pytest.raises(backends.ExportedModelError, match="is not an export of ssma-export"):
        backends.load_exported(tmp_path, "openvino")


def test_without_the_extra_the_commands_name_it_in_one_line(monkeypatch, tmp_path, capsys):
    real_import = builtins.__import__

    def no_openvino(name, *args, **kwargs):
        if name.split(".")[0] == "openvino":
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_openvino)
    monkeypatch.setattr(backends.importlib, "import_module", lambda name: no_openvino(name))
    status = _load_tool("export").main(["--checkpoint", str(tmp_path / "w.weights.h5"), "--model", "AdapNet_pp",
                                        "--num_classes", "4", "--format", "openvino", "--output",
                                        str(tmp_path / "o")])
    error = capsys.readouterr().err.strip()
    assert status == 2 and "\n" not in error and "pip install '.[deploy]' in the ssma-tf clone" in error

    from ssma_tf.cli import evaluate as evaluate_cli

    config = _eval_config(tmp_path, tmp_path / "r.tfrecords", tmp_path / "w.weights.h5")
    status = evaluate_cli.main(["-c", str(config), "--backend", "openvino", "--exported", str(tmp_path)])
    error = capsys.readouterr().err.strip()
    assert status == 2 and "\n" not in error and "pip install '.[deploy]'" in error


def test_int8_tflite_takes_0_to_255_whatever_the_calibration_images_hold(tmp_path, capfd):
    """Calibrated on dark images (40..42), the full-integer TFLite file took its uint8 input scaled
    by the calibration range (scale 0.0078 here), not the 0..255 pixels the docs promise, and
    the runner clipped brighter pixels: 42 % of a bright image's pixels agreed with Keras."""
    from ai_edge_litert.interpreter import Interpreter

    dark = _three_modality_records(tmp_path / "dark.tfrecords")
    model = small_segmenter(seed=5)
    bright = np.random.default_rng(0).uniform(0, 255, (1, HEIGHT, WIDTH, 3)).astype(np.float32)
    deploy.export_deployed(model, tmp_path / "tflite", format="tflite", size=(HEIGHT, WIDTH), int8=True,
                           calibration=[dark], calibration_samples=3)
    (detail,) = Interpreter(model_path=str(tmp_path / "tflite" / "model_int8.tflite")).get_input_details()
    assert detail["dtype"] == np.uint8 and detail["quantization"] == (1.0, 0)
    capfd.readouterr()
    got = backends.load_exported(tmp_path / "tflite", "tflite")([bright]).argmax(-1)
    assert (got == model(bright)["softmax"].numpy().argmax(-1)).mean() > 0.75  # 0.84 measured
    # Neither the converter's notes (a warning, the types line) nor LiteRT's delegate line.
    deploy.export_deployed(model, tmp_path / "again", format="tflite", size=(HEIGHT, WIDTH), int8=True,
                           calibration=[dark], calibration_samples=3)
    backends.load_exported(tmp_path / "again", "tflite")([bright])
    err = capfd.readouterr().err
    assert not [word for word in ("Statistics for quantized", "fully_quantize", "XNNPACK") if word in err], err


def test_openvino_inputs_are_fed_by_name_whatever_their_order_in_the_model(tmp_path):
    """The runner fed the images by position: a model whose inputs are in another order than the
    metadata's swapped the modalities without a word."""
    import openvino as ov

    model = small_segmenter(fusion=True, seed=4)
    deploy.export_deployed(model, tmp_path / "ov", format="openvino", size=(HEIGHT, WIDTH))
    xml = str(tmp_path / "ov" / backends.read_export_metadata(tmp_path / "ov")["files"]["openvino"])
    read = ov.Core().read_model(xml)
    reordered = ov.Model(read.get_results(), list(reversed(read.get_parameters())), "reordered")
    assert [p.get_friendly_name() for p in reordered.get_parameters()][0] == "modality2"
    # Written beside, then moved over: the read model maps the .bin file it came from.
    ov.save_model(reordered, str(tmp_path / "reordered.xml"))
    del read, reordered
    os.replace(tmp_path / "reordered.xml", xml)
    os.replace(tmp_path / "reordered.bin", xml[: -len(".xml")] + ".bin")
    rng = np.random.default_rng(0)
    images = [rng.uniform(0, 255, (1, HEIGHT, WIDTH, 3)).astype(np.float32) for _ in range(2)]
    expected = model(images)["softmax"].numpy()
    got = backends.load_exported(tmp_path / "ov", "openvino")(images)
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_tflite_inputs_are_fed_in_the_metadatas_order_from_ten_modalities_on(tmp_path):
    """The runner sorted the TFLite inputs by name as text: modality10 came before modality2, and
    from ten modalities on each image went to another input without a word."""
    import tensorflow as tf

    from ssma_tf.constants import EXPORT_METADATA

    count, size = 11, (16, 16)
    names = [f"modality{i}" for i in range(1, count + 1)]
    specs = [tf.TensorSpec([1, *size, 3], tf.float32, name=name) for name in names]

    # Channel k of the output is the mean of the k-th input: which image reached which input.
    def serve(*images):
        return {"probabilities": tf.stack([tf.reduce_mean(image, axis=-1) for image in images], axis=-1)}

    function = tf.function(serve, input_signature=specs)
    module = tf.Module()
    module.serve = function
    tf.saved_model.save(module, str(tmp_path / "saved"), signatures={"serving_default": function})
    # A converted SavedModel lists its inputs in no set order, named serving_default_modalityK:0.
    converter = tf.lite.TFLiteConverter.from_saved_model(str(tmp_path / "saved"), signature_keys=["serving_default"])
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "model.tflite").write_bytes(converter.convert())
    meta = {"format": "ssma_tf tflite export", "backend": "tflite", "files": {"tflite": "model.tflite"},
            "precision": "float32", "model": "ssma", "fusion": "ssma", "num_classes": count, "inputs": names,
            "size": list(size)}
    (folder / EXPORT_METADATA).parent.mkdir(parents=True, exist_ok=True)
    (folder / EXPORT_METADATA).write_text(json.dumps(meta))
    images = [np.full((1, *size, 3), 10.0 * k, np.float32) for k in range(1, count + 1)]
    got = backends.load_exported(folder, "tflite")(images)
    np.testing.assert_allclose(got[0, 0, 0], [10.0 * k for k in range(1, count + 1)])
    # An input the metadata does not name is refused, not fed by guess.
    meta["inputs"] = names[:-1] + ["depth"]
    (folder / EXPORT_METADATA).write_text(json.dumps(meta))
    with pytest.raises(backends.ExportedModelError, match=r"inputs \(.*\) do not match the inputs its ssma_tf.json "
                                                          r"names \(modality1, .*, depth\)"):
        backends.load_exported(folder, "tflite")
