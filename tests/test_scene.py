"""Scene classification with SSMA (Section 5.9): list files, records, training, per-class recall and IoU."""

import json
import os
import pathlib
import re
import warnings
import zipfile

import numpy as np
import pytest
import tensorflow as tf

from ssma_tf.cli import scene as cli
from ssma_tf.config import ConfigWarning
from ssma_tf.data.scene import build_scene_dataset, read_scene_list, write_scene_records
from ssma_tf.errors import UserInputError
from ssma_tf.scene import evaluate_scene_classifier, format_scene_metrics, scene_metrics, train_scene_classifier
from tests.data.helpers import save_png, write_list
from tests.training_helpers import write_records

H = W = 32


def scene_images(class_id, seed):
    """Scene class 0: a bright left half in modality 1; class 1: a bright top half in modality 2.

    Modality 1 alone cannot tell class 1 from noise scenes of class 2, modality 2 alone cannot
    tell class 0 from them; both together can.
    """
    rng = np.random.default_rng(seed)
    m1 = rng.integers(0, 60, (H, W, 3), dtype=np.uint8)
    m2 = rng.integers(0, 60, (H, W, 3), dtype=np.uint8)
    if class_id == 0:
        m1[:, : W // 2] += 150
    elif class_id == 1:
        m2[: H // 2] += 150
    return m1, m2


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    root = tmp_path_factory.mktemp("scenes")
    lines = []
    for index in range(24):
        class_id = index % 3
        m1, m2 = scene_images(class_id, index)
        save_png(root / f"{index}_a.png", m1)
        save_png(root / f"{index}_b.png", m2)
        lines.append(f"{index}_a.png {index}_b.png {class_id}")
    write_list(root / "scenes.txt", lines)
    summary = write_scene_records(str(root / "scenes.txt"), str(root / "scenes.tfrecords"), modalities=2,
                                  num_classes=3)
    assert summary == {"samples": 24, "modalities": 2, "class_histogram": {0: 8, 1: 8, 2: 8}, "order_warning": None}
    return root


def test_lists_records_and_errors(records, tmp_path):
    assert read_scene_list(str(records / "scenes.txt"))[1] == (
        (str(records / "1_a.png"), str(records / "1_b.png")), 1)
    (views, class_ids), = build_scene_dataset(str(records / "scenes.tfrecords"), modalities=2, height=H,
                                             width=W, batch_size=24, training=False).take(1)
    assert class_ids.numpy().tolist() == [i % 3 for i in range(24)] and views[1].shape == (24, H, W, 3)
    np.testing.assert_array_equal(views[0].numpy()[0][..., ::-1], scene_images(0, 0)[0])
    bad = write_list(tmp_path / "bad.txt", [f"{records}/0_a.png {records}/0_b.png 0", f"{records}/1_a.png 1"])
    with pytest.raises(UserInputError, match=r"bad\.txt, line 2: has 2 columns, expected 3 \(2 modalities and a class id\)"):
        write_scene_records(bad, str(tmp_path / "bad.tfrecords"), modalities=2)
    # Without --modalities, the first line's count (before: "expected 3 or more"; helper 137).
    four = write_list(tmp_path / "four.txt", [f"{records}/0_a.png {records}/0_b.png {records}/0_a.png 0",
                                              f"{records}/1_a.png 1"])
    with pytest.raises(UserInputError, match=r"four\.txt, line 2: has 2 columns but the lines before it have 4$"):
        write_scene_records(four, str(tmp_path / "four.tfrecords"))
    with pytest.raises(UserInputError, match=r"bad\.txt, line 1: .*class id 0|class id must"):
        write_scene_records(write_list(tmp_path / "x.txt", [f"{records}/0_a.png {records}/0_b.png x"]),
                            str(tmp_path / "x.tfrecords"))
    # Quoted paths with spaces, as every list file of the package (before: split at the space),
    # and errors name the list's line, comments counted (before: the sample number).
    spaced = tmp_path / "with space"
    spaced.mkdir()
    for name in ("a.png", "b.png"):
        save_png(spaced / name, scene_images(0, 0)[0])
    quoted = write_list(tmp_path / "quoted.txt", ["# scene, modality 1, modality 2, class", '"with space/a.png" '
                                                  '"with space/b.png" 0', f"{records}/0_a.png missing.png 1"])
    assert read_scene_list(quoted)[0] == ((str(spaced / "a.png"), str(spaced / "b.png")), 0)
    with pytest.raises(UserInputError, match=r"quoted\.txt, line 3: .*missing\.png"):
        write_scene_records(quoted, str(tmp_path / "quoted.tfrecords"))
    assert not (tmp_path / "quoted.tfrecords").exists()
    with pytest.raises(UserInputError, match=r"scenes\.tfrecords: records lack feature\(s\) \['modality3'\] "
                                             r"\(they hold 2 modalities, the model reads 3: give --modalities 2\)$"):
        build_scene_dataset(str(records / "scenes.tfrecords"), modalities=3, height=H, width=W,
                            batch_size=2, training=False, fix="give --modalities {held}")
    # Every file's first record is checked (before: the first file's only, and a set of 3- and
    # 2-modality files was a TensorFlow traceback at the first batch of the second).
    three = write_list(tmp_path / "three.txt", [f"{records}/0_a.png {records}/0_b.png {records}/0_b.png 0"])
    write_scene_records(three, str(tmp_path / "three.tfrecords"), modalities=3)
    with pytest.raises(UserInputError, match=r"scenes\.tfrecords: records lack feature\(s\) \['modality3'\] "
                                             r"\(they hold 2 modalities, the model reads 3\)$"):
        build_scene_dataset([str(tmp_path / "three.tfrecords"), str(records / "scenes.tfrecords")], modalities=3,
                            height=H, width=W, batch_size=2, training=False)


def test_metrics_are_table_22s_recall_and_iou():
    confusion = np.array([[3, 1, 0], [0, 2, 2], [0, 0, 0]])
    metrics = scene_metrics(confusion, ["a", "b", "c"])
    a, b, c = metrics["per_class"]
    assert a["recall"] == 75.0 and a["iou"] == 75.0
    assert b["recall"] == 50.0 and b["iou"] == pytest.approx(100 * 2 / 5)
    assert c["recall"] is None and c["iou"] == 0.0  # predicted twice, never true
    assert metrics["mean_recall"] == 62.5 and metrics["accuracy"] == 62.5
    # Without any scene (before: a TypeError formatting the accuracy).
    table = format_scene_metrics(scene_metrics(np.zeros((2, 2)), ["a", "b"]))
    assert table.splitlines()[-1] == "accuracy – (no scenes)"


@pytest.mark.filterwarnings("ignore:no experts given:ssma_tf.config.ConfigWarning")
def test_a_nan_loss_stops_training_unsaved_and_nan_probabilities_are_warned_of(records, tmp_path, capsys,
                                                                               monkeypatch, tiny_backbone):
    """A diverged run went on to its end and wrote a scene.keras of NaN weights; evaluating it
    scored every scene as class 0 (an all-NaN row's argmax), exit 0, without a word (helper 349)."""
    import keras

    data = str(records / "scenes.tfrecords")
    settings = dict(num_classes=3, modalities=2, height=16, width=16, steps=6, batch_size=8, learning_rate=1e30,
                    seed=0, log_every=1, save_steps=0, backbone=tiny_backbone, freeze_experts=False)
    from ssma_tf.scene import SceneTrainingStopped

    with pytest.raises(SceneTrainingStopped, match=r"^loss is nan at step \d; training stopped without saving "
                                                   r"\(nothing written for this step\): lower --learning_rate$"):
        train_scene_classifier(data, str(tmp_path / "run"), log=lambda line: None, **settings)
    assert not (tmp_path / "run" / "scene.keras").exists()
    # The command: one line, exit 1, as ssma-train's (the tiny backbone is not one of its choices).
    import ssma_tf.scene

    def stopped(*args, **kwargs):
        raise SceneTrainingStopped("loss is nan at step 2; training stopped without saving (...)")

    monkeypatch.setattr(ssma_tf.scene, "train_scene_classifier", stopped)
    assert cli.main(["train", "--train_data", data, "--output", str(tmp_path / "cli"), "--num_classes", "3",
                     "--height", "16", "--width", "16"]) == 1
    assert capsys.readouterr().err == "error: loss is nan at step 2; training stopped without saving (...)\n"
    # A classifier whose weights are NaN: its scenes are counted, and said not to be predictions.
    from ssma_tf.models.scene import SSMASceneClassifier

    trained = SSMASceneClassifier(3, num_modalities=2, input_size=(16, 16), backbone=tiny_backbone)
    for weight in trained.weights:
        weight.assign(keras.ops.full(weight.shape, float("nan"), weight.dtype))
    with pytest.warns(RuntimeWarning, match=r"non-finite probabilities \(NaN or inf\) for 24 of 24 scenes"):
        metrics = evaluate_scene_classifier(trained, data, height=16, width=16)
    assert metrics["non_finite_scenes"] == 24


# Trained without experts on purpose (the first run checks the warning): the later runs' warnings
# would only fill the summary.
@pytest.mark.filterwarnings("ignore:no experts given:ssma_tf.config.ConfigWarning")
def test_training_lowers_the_loss_goes_on_after_an_interrupt_and_the_command_evaluates(records, tmp_path, capsys,
                                                                                     monkeypatch, tiny_backbone):
    import shutil

    import ssma_tf.scene

    data = str(records / "scenes.tfrecords")
    # At 16 x 16 (the smallest input) the scenes keep their halves and the steps are cheap. The
    # loop is the same on every backbone; a tiny one builds the classifier five times in a
    # fraction of AdapNet++'s 4 s (a real backbone trains in the MobileNet v2 test below).
    settings = dict(num_classes=3, modalities=2, height=16, width=16, steps=20, batch_size=8, learning_rate=1e-2,
                    seed=0, log_every=4, save_steps=12, backbone=tiny_backbone)
    # The uninterrupted run, stopped only while writing scene.keras (before: the run was lost;
    # now its state is saved, even with save_steps 0).
    whole, whole_lines = tmp_path / "whole", []

    def stop_while_saving(model, *args, **kwargs):
        trained.append(model)
        raise KeyboardInterrupt

    trained = []
    monkeypatch.setattr(ssma_tf.scene.SSMASceneClassifier, "save", stop_while_saving)
    with pytest.raises(KeyboardInterrupt), pytest.warns(ConfigWarning, match=r"^no experts given: the encoders are "
                                                        r"random, and they stay frozen.*--train_experts$"):
        train_scene_classifier(data, str(whole), log=whole_lines.append, **{**settings, "save_steps": 0})
    assert whole_lines[-1] == f"stopped at step 20: the run's state is in {whole / 'resume'}; run the same command to go on"
    assert (whole / "resume" / "state.weights.h5").exists() and not (whole / "scene.keras").exists()
    # Going on from a state that has all its steps only writes the model (the load itself is the
    # one tested below).
    monkeypatch.setattr(ssma_tf.scene, "_load_state", lambda *args: 20)
    with pytest.raises(KeyboardInterrupt):
        train_scene_classifier(data, str(whole), log=whole_lines.append, **settings)
    assert whole_lines[-2] == "the unfinished run has all its 20 steps: nothing to train" and len(trained) == 2
    monkeypatch.undo()
    window = [float(line.split("loss ")[1].split()[0]) for line in whole_lines if line.startswith("step ")]
    assert len(window) == 5 and window[-1] < 0.8 * window[0], whole_lines  # steps 17-20 against 1-4
    # A logged loss over several steps says it is their mean (a resumed run's last line, the last
    # step's own loss, read as a jump).
    assert all(" (mean of 4 steps)  " in line for line in whole_lines if line.startswith("step ")), whole_lines

    run, lines = tmp_path / "run", []

    def stop_at_step_12(line):
        lines.append(line)
        if line.startswith("step 12/20"):
            raise KeyboardInterrupt  # as Ctrl-C (or SIGTERM, through the commands) between two steps

    # Before: no line until the end, no state kept: a stopped run started again from step 0.
    with pytest.raises(KeyboardInterrupt):
        train_scene_classifier(data, str(run), log=stop_at_step_12, **settings)
    assert lines[-3] == f"saved the run's state in {run / 'resume'} (step 12)" and lines[-2].startswith("step 12/20")
    assert lines[-1] == f"stopped at step 12: the run's state is in {run / 'resume'}; run the same command to go on"
    assert not (run / "scene.keras").exists()
    # Started afresh (--overwrite), the way to go on is without it (helper 137).
    afresh, lines = tmp_path / "afresh", []
    with pytest.raises(KeyboardInterrupt):
        train_scene_classifier(data, str(afresh), log=stop_at_step_12, resume=False, **settings)
    assert lines[-1] == (f"stopped at step 12: the run's state is in {afresh / 'resume'}; run the same command without "
                         "--overwrite to go on")
    # Evaluated before it finished, given a damaged or missing file (before: Keras' "File not
    # found" or "File format not supported" tracebacks, exit 1).
    capsys.readouterr()
    assert cli.main(["evaluate", str(run), "--test_data", data]) == 2
    assert (f"error: {run} holds no scene.keras: its training stopped before the end; run the same ssma-scene "
            "train command to finish it") in capsys.readouterr().err
    (tmp_path / "bad.keras").write_text("garbage")
    assert cli.main(["evaluate", str(tmp_path / "bad.keras"), "--test_data", data]) == 2
    assert f"error: cannot read the model file {tmp_path / 'bad.keras'}: " in capsys.readouterr().err
    assert cli.main(["evaluate", str(tmp_path / "nothere"), "--test_data", data]) == 2
    assert f"error: {tmp_path / 'nothere'}: no such model file or run folder" in capsys.readouterr().err
    # A run's state is weights only (before: "cannot read the model file", as if damaged; helper 162).
    state = whole / "resume" / "state.weights.h5"
    assert cli.main(["evaluate", str(state), "--test_data", data]) == 2
    assert (f"error: {state} holds weights only (a training run's state, or saved weights), not a model: give the "
            "run's folder or its scene.keras") in capsys.readouterr().err
    # Other settings or records are refused, naming the first that differs, before the model is built.
    with pytest.raises(UserInputError, match=r"run/resume holds an unfinished run with learning_rate 0\.01, this one "
                                             r"has 0\.02: give the same settings"):
        train_scene_classifier(data, str(run), **{**settings, "learning_rate": 2e-2})
    # Said as the command's flag (before: "with freeze_experts True, this one has False").
    with pytest.raises(UserInputError, match=r"run/resume holds an unfinished run with frozen experts \(without "
                                             r"--train_experts\), this one has trained experts \(--train_experts\): "):
        train_scene_classifier(data, str(run), freeze_experts=False, **settings)
    shutil.copy(data, tmp_path / "copy.tfrecords")
    with pytest.raises(UserInputError, match=r"holds an unfinished run with train_data \[.*scenes\.tfrecords'\], "
                                             r"this one has \[.*copy\.tfrecords'\]"):
        train_scene_classifier(str(tmp_path / "copy.tfrecords"), str(run), **settings)
    # The same file converted again with other scenes (before: resumed, skipping 12 batches of
    # records it never read; helper 245).
    kept, stat = pathlib.Path(data).read_bytes(), os.stat(data)
    few = write_list(tmp_path / "few.txt", [f"{records}/{i}_a.png {records}/{i}_b.png {i % 3}" for i in range(3)])
    write_scene_records(str(few), data, modalities=2, num_classes=3)
    try:
        with pytest.raises(UserInputError, match=(
                rf"^{re.escape(str(run / 'resume'))} holds an unfinished run whose training records were rewritten "
                rf"since it started \({re.escape(os.path.abspath(data))} {len(kept)} -> "
                rf"{pathlib.Path(data).stat().st_size} bytes\): it cannot go on with other records; start again")):
            train_scene_classifier(data, str(run), **settings)
        # The same scenes in another order: a file of the same size (helper 262: resumed, skipping
        # 12 batches of records it never read).
        (tmp_path / "kept.tfrecords").write_bytes(kept)
        scenes = [bytes(record.numpy()) for record in tf.data.TFRecordDataset(str(tmp_path / "kept.tfrecords"))]
        with tf.io.TFRecordWriter(data) as writer:
            for scene in reversed(scenes):
                writer.write(scene)
        assert os.path.getsize(data) == len(kept)
        with pytest.raises(UserInputError, match=(
                rf"whose training records were rewritten since it started \({re.escape(os.path.abspath(data))} "
                r"modified at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d, of the same size\): it cannot go on")):
            train_scene_classifier(data, str(run), **settings)
    finally:
        pathlib.Path(data).write_bytes(kept)
        os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # the file the run started on
    # Fewer steps than the state has (before: a model of 12 steps written for 10), found before the
    # model is built (the state's file says its step).
    monkeypatch.setattr(ssma_tf.scene, "SSMASceneClassifier", lambda *args, **kwargs: pytest.fail("built"))
    with pytest.raises(UserInputError, match=r"--steps 10 is below step 12 of the unfinished run in .*run/resume: "
                                             r"give --steps 12 or more"):
        train_scene_classifier(data, str(run), **{**settings, "steps": 10})
    monkeypatch.undo()
    resumed = []
    result = train_scene_classifier(data, str(run), log=resumed.append, **settings)
    assert resumed[0] == (f"resuming the unfinished run in {run / 'resume'} at step 12 of 20 (skipping the 12 "
                          "batches it read)")
    assert result.model.num_modalities == 2 and len(result.model.encoders) == 2 and len(result.losses) == 8
    assert (run / "scene.keras").exists() and not (run / "resume").exists()
    # The same weights as the uninterrupted run: the same batches, Adam moments and dropout masks
    # (before the seed generators were saved: a largest difference of 234).
    for resumed_weight, whole_weight in zip(result.model.weights, trained[0].weights):
        np.testing.assert_allclose(np.asarray(resumed_weight), np.asarray(whole_weight), rtol=1e-4, atol=1e-5,
                                   err_msg=resumed_weight.path)
    # At the size it was trained at, which scene.keras keeps (before: --height and --width required,
    # any size taken without a word).
    assert cli.main(["evaluate", str(tmp_path / "run"), "--test_data", data,
                     "--class_names", "left", "top", "plain", "--json", str(tmp_path / "m.json"),
                     "--picture", str(tmp_path / "confusion.png")]) == 0
    printed = capsys.readouterr()
    assert re.search(r"^classified 24/24 \(100%\), [0-9.]+ scenes/s, \S+ in all$", printed.err, re.M), printed.err
    printed = printed.out
    assert printed.splitlines()[0].split() == ["class", "recall", "IoU", "scenes"]
    assert [line.split()[0] for line in printed.splitlines()[1:5]] == ["left", "top", "plain", "mean"]
    assert printed.splitlines()[-1] == f"confusion matrix: {tmp_path / 'confusion.png'}"
    metrics = json.loads((tmp_path / "m.json").read_text())
    confusion = np.array(metrics["confusion"])
    assert metrics["num_scenes"] == 24 and confusion.sum(axis=1).tolist() == [8, 8, 8]
    assert [row["recall"] for row in metrics["per_class"]] == [100 * confusion[c, c] / 8 for c in range(3)]
    from PIL import Image

    assert Image.open(tmp_path / "confusion.png").size[0] > 3 * 40
    # A later run into the folder, unfinished: its scene.keras is the earlier run's, said (before: evaluated
    # without a word; helper 162).
    (run / "resume").mkdir()
    (run / "resume" / "state.weights.h5").write_bytes(b"")  # its saved state (helper 292: not the folder alone)
    assert cli.main(["evaluate", str(run), "--test_data", data]) == 0
    assert (f"warning: {run} also holds an unfinished training run (resume/): evaluating scene.keras, the model of "
            "the run that finished before it") in capsys.readouterr().err
    # A class name too few (before: an IndexError; one too many was dropped without a word); the
    # model in memory, as loading its file again costs seconds.
    with pytest.raises(UserInputError, match=r"^2 class names for the model's 3 classes \(left, top\); give one per "
                                             "class"):
        evaluate_scene_classifier(result.model, data, height=16, width=16, class_names=["left", "top"])
    with pytest.warns(ConfigWarning, match=r"evaluating at 32x32, but the model was trained at 16x16: the figures"):
        evaluate_scene_classifier(result.model, data, height=32, width=32)
    result.model.input_size = None  # as a model written before the size was kept
    with pytest.raises(UserInputError, match=r"does not record the size it was trained at .*: give --height and"):
        evaluate_scene_classifier(result.model, data)
    assert cli.main(["convert", "-f", str(records / "scenes.txt"), "-r", str(tmp_path / "r.tfrecords"),
                     "--modalities", "3"]) == 2
    # Columns counted as columns (before: "has 4 columns, expected 4 modalities and a class id").
    assert "scenes.txt, line 1: has 3 columns, expected 4 (3 modalities and a class id)" in capsys.readouterr().err
    # A set mixing scene and segmentation records: the file is named before any scene is
    # classified (before: a TensorFlow traceback at its first batch).
    segmentation = write_records(tmp_path / "segmentation.tfrecords", 1, height=32, width=32, fusion=True)
    with pytest.raises(UserInputError, match=re.escape(f"{segmentation}: these are segmentation records")):
        evaluate_scene_classifier(result.model, [data, segmentation], height=16, width=16)


@pytest.mark.parametrize("flags, message", [
    (["--height", "30"], "train --height must be a multiple of 16 (the encoder's output stride), got 30"),
    (["--steps", "-1"], "train --steps must be >= 1, got -1"),
    (["--batch_size", "0"], "train --batch_size must be >= 1, got 0"),
    (["--learning_rate", "-0.01"], "train --learning_rate must be positive and finite, got -0.01"),
    (["--learning_rate", "inf"], "argument --learning_rate: must be a finite number, got 'inf'"),
    (["--experts", "a.weights.h5"], "train --experts: 1 checkpoint(s) for --modalities 2; give one per modality"),
    (["--save_steps", "-1"], "train --save_steps must be >= 0, got -1"),
    (["--log_every", "0"], "train --log_every must be >= 1, got 0"),
    # Before: the model's ValueError traceback, after the records were read.
    (["--modalities", "1"], "train --modalities must be >= 2, got 1"),
    (["--expert_classes", "0", "--experts", "a.weights.h5", "b.weights.h5"],
     "train --expert_classes must be >= 2, got 0"),
    (["--backbone", "resnet"], "train --backbone must be one of adapnet_pp, mobilenet_v2, got 'resnet'"),
    (["--backbone", "mobilenet_v2", "--backbone_weights", "w.h5", "--experts", "a.keras", "b.keras"],
     "train --backbone_weights starts experts that have no checkpoints; --experts replace them"),
    (["--backbone_weights", "w.h5"], "train --backbone_weights is for --backbone mobilenet_v2"),
    (["--decoder_filters", "64"], "train --decoder_filters says how the --experts were trained; give --experts"),
    # Before: read by nothing, yet a setting a resumed run had to repeat (helper 292).
    (["--expert_classes", "5"], "train --expert_classes says the class count of the --experts' checkpoints; give "
                                "--experts"),
    (["--decoder_filters", "0", "--experts", "a.keras", "b.keras"], "train --decoder_filters must be >= 1, got 0"),
])
def test_scene_train_flags_are_checked_before_the_model_is_built(tmp_path, capsys, flags, message):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "--train_data", "x.tfrecords", "--output", str(tmp_path / "run"), "--num_classes", "3",
                  "--height", "16", "--width", "16", *flags])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_scene_outputs_are_checked_before_the_work(tmp_path, monkeypatch, capsys):
    import ssma_tf.scene

    monkeypatch.setattr(ssma_tf.scene, "train_scene_classifier",
                        lambda *a, **k: pytest.fail(f"trained, resume={k['resume']}, save_steps={k['save_steps']}"))
    monkeypatch.setattr(ssma_tf.scene, "evaluate_scene_classifier", lambda *a, **k: pytest.fail("evaluated"))
    (tmp_path / "file").write_text("")
    assert cli.main(["train", "--train_data", "x.tfrecords", "--output", str(tmp_path / "file" / "run"),
                     "--num_classes", "3", "--height", "16", "--width", "16"]) == 2
    assert capsys.readouterr().err.startswith(f"error: --output {tmp_path / 'file' / 'run'}: ")
    assert cli.main(["evaluate", "run", "--test_data", "x.tfrecords", "--height", "16", "--width", "16",
                     "--json", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"error: --json {tmp_path} is a folder; give a file name\n"
    assert cli.main(["evaluate", "run", "--test_data", "x.tfrecords", "--height", "16", "--width", "16",
                     "--picture", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"error: --picture {tmp_path} is a folder; give a file name\n"
    # An empty path (a shell variable unset) was taken for no flag: nothing written, exit 0 (helper 340).
    for flag in ("--json", "--picture"):
        assert cli.main(["evaluate", "run", "--test_data", "x.tfrecords", flag, ""]) == 2
        assert capsys.readouterr().err == f"error: {flag} is empty; give a file name\n"
    # One file for both: the picture replaced the metrics, exit 0 (helper 292).
    same = tmp_path / "same.png"
    assert cli.main(["evaluate", "run", "--test_data", "x.tfrecords", "--json", str(same), "--picture",
                     str(same)]) == 2
    assert capsys.readouterr().err == f"error: --json and --picture are both {same}; give two files\n"
    # A trained classifier is not replaced without --overwrite (a second run replaced it silently).
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "scene.keras").write_bytes(b"")
    train = ["train", "--train_data", "x.tfrecords", "--output", str(tmp_path / "run"), "--num_classes", "3",
             "--height", "16", "--width", "16"]
    assert cli.main(train) == 2
    assert capsys.readouterr().err == (f"error: the trained classifier {tmp_path / 'run' / 'scene.keras'} exists; "
                                       "pass --overwrite to replace it\n")
    # --overwrite also starts again from step 0 where an unfinished run's state is.
    with pytest.raises(pytest.fail.Exception, match="trained, resume=False, save_steps=100"):
        cli.main(train + ["--overwrite"])
    # A run started with --overwrite over a trained classifier and stopped is told to go on without
    # the flag, and does (before: refused as above; helper 137).
    # A resume folder without saved weights resumes nothing: the classifier is kept (helper 277: a
    # first save that failed left run.json alone there, and a run of other settings replaced it).
    (tmp_path / "run" / "resume").mkdir()
    (tmp_path / "run" / "resume" / "run.json").write_text("{}")
    assert cli.main(train) == 2
    assert capsys.readouterr().err == (f"error: the trained classifier {tmp_path / 'run' / 'scene.keras'} exists; "
                                       "pass --overwrite to replace it\n")
    (tmp_path / "run" / "resume" / "state.weights.h5").write_bytes(b"")
    with pytest.raises(pytest.fail.Exception, match="trained, resume=True, save_steps=100"):
        cli.main(train)


def test_evaluate_takes_a_resume_folder_without_saved_state_for_no_unfinished_run(tmp_path):
    """Helper 292: a `resume/` folder holding run.json alone (a first save that failed) was "an
    unfinished training run" to finish, which `train` then refused, or, without scene.keras, a
    training "stopped before the end" to finish, which started again from step 0."""
    import warnings

    from ssma_tf.scene import evaluate_scene_classifier

    run = tmp_path / "run"
    (run / "resume").mkdir(parents=True)
    (run / "resume" / "run.json").write_text("{}")
    with pytest.raises(UserInputError, match=r"holds no scene.keras: give the folder of a finished ssma-scene train "
                                             r"run, or its .keras file"):
        evaluate_scene_classifier(str(run), ["x.tfrecords"])
    (run / "scene.keras").write_text("garbage")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning of an unfinished run
        with pytest.raises(UserInputError, match="cannot read the model file"):
            evaluate_scene_classifier(str(run), ["x.tfrecords"])


def test_experts_trained_with_the_classifier_have_a_gradient_for_every_trainable_weight():
    import tensorflow as tf

    from ssma_tf.models import SSMASceneClassifier

    model = SSMASceneClassifier(3, freeze_experts=False)
    images = [tf.random.uniform((2, 16, 16, 3), 0, 255, seed=i) for i in range(2)]
    with tf.GradientTape() as tape:
        loss = -tf.reduce_mean(tf.math.log(model(images, training=True)[:, 0]))
    gradients = tape.gradient(loss, model.trainable_variables)
    # The experts' skip branches feed no decoder here: not trainable (before: "Gradients do not
    # exist" for each of them on every step).
    missing = [v.path for v, g in zip(model.trainable_variables, gradients) if g is None]
    assert missing == []
    trained = {id(v) for v in model.trainable_variables}
    for expert in model.encoders:
        assert len(expert.trainable_variables) > 150 and {id(v) for v in expert.trainable_variables} <= trained
        assert not trained & {id(v) for name in ("skip1", "skip2") for v in expert.get_layer(name).weights}


def test_convert_keeps_existing_records_and_names_16_bit_images(records, tmp_path, capsys):
    target = tmp_path / "kept.tfrecords"
    target.write_bytes(b"earlier records")
    args = ["convert", "-f", str(records / "scenes.txt"), "-r", str(target), "--modalities", "2"]
    # Before: replaced without a word (ssma-convert refuses).
    assert cli.main(args) == 2
    assert "--record" in capsys.readouterr().err and target.read_bytes() == b"earlier records"
    assert cli.main(args + ["--overwrite"]) == 0
    printed = capsys.readouterr()
    assert "24 scenes of 2 modalities" in printed.out
    # How far it got, as ssma-convert says it (before: nothing until the end; helper 183); in a log, its last line.
    assert re.search(r"^converted 24/24 \(100%\), [0-9.]+ scenes/s, \S+ in all$", printed.err, re.M), printed.err
    # Raw 16-bit depth keeps only its high byte, as in ssma-convert: said once, with the line.
    from PIL import Image

    Image.fromarray(np.full((H, W), 3000, np.uint16)).save(tmp_path / "depth16.png")
    listed = write_list(tmp_path / "raw.txt", [f"{records}/0_a.png depth16.png 0"])
    assert cli.main(["convert", "-f", str(listed), "-r", str(tmp_path / "raw.tfrecords")]) == 0
    error = capsys.readouterr().err
    assert f"warning: {listed}, line 1: {tmp_path / 'depth16.png'} is a 16-bit image" in error


def test_training_refuses_a_class_id_out_of_range_before_building_the_model(records, tmp_path, monkeypatch):
    import ssma_tf.scene

    monkeypatch.setattr(ssma_tf.scene, "SSMASceneClassifier", lambda *a, **k: pytest.fail("model built"))
    # Before: InvalidArgumentError "Received a label value of 2 which is outside the valid range".
    with pytest.raises(UserInputError, match=r"scenes\.tfrecords, record 2: a scene has class id 2, but there are 2 "
                                             r"classes \(ids 0\.\.1\); give --num_classes 3 or more"):
        train_scene_classifier(str(records / "scenes.tfrecords"), str(tmp_path / "run"), num_classes=2,
                               modalities=2, height=16, width=16, steps=1, batch_size=2)
    # Evaluation too, before any scene is classified (before: at its batch, without the record).
    import types

    model = types.SimpleNamespace(num_classes=2, num_modalities=2, input_size=(16, 16))
    with pytest.raises(UserInputError, match=r"scenes\.tfrecords, record 2: a scene has class id 2, but the model "
                                             r"has 2 classes \(ids 0\.\.1\)$") as error:
        evaluate_scene_classifier(model, str(records / "scenes.tfrecords"))
    assert error.value.path == str(records / "scenes.tfrecords")


def test_class_ids_past_the_range_damaged_records_and_grouped_lists_are_named(records, tmp_path, monkeypatch,
                                                                              capsys):
    """Helper 115: a negative class id was counted as the last class by the evaluation (and a
    traceback at training's first step); a damaged record was TensorFlow's bare DataLossError;
    a list grouped by class trained on one class for hundreds of steps without a word."""
    import types

    import tensorflow as tf

    import ssma_tf.scene
    from ssma_tf.data.scene import class_ids, encode_scene

    m1, m2 = scene_images(0, 0)
    with pytest.raises(ValueError, match=r"^the class id must be an integer >= 0, got -1$"):
        encode_scene([m1, m2], -1)
    negative = tmp_path / "negative.tfrecords"
    with tf.io.TFRecordWriter(str(negative)) as writer:
        for class_id in (0, 1, 2):
            example = tf.train.Example.FromString(encode_scene([m1, m2], class_id, encoding="raw"))
            example.features.feature["class_id"].int64_list.value[:] = [class_id if class_id < 2 else -1]
            writer.write(example.SerializeToString())
    model = types.SimpleNamespace(num_classes=3, num_modalities=2, input_size=(16, 16))
    with pytest.raises(UserInputError, match=r"negative\.tfrecords, record 2: a scene has class id -1; class ids "
                                             r"are 0\.\.2$"):
        evaluate_scene_classifier(model, str(negative))
    monkeypatch.setattr(ssma_tf.scene, "SSMASceneClassifier", lambda *a, **k: pytest.fail("model built"))
    with pytest.raises(UserInputError, match=r"record 2: a scene has class id -1"):
        train_scene_classifier(str(negative), str(tmp_path / "run"), num_classes=3, modalities=2, height=16,
                               width=16, steps=1, batch_size=2)
    # A damaged record: its file and index.
    whole = (records / "scenes.tfrecords").read_bytes()
    cut = tmp_path / "cut.tfrecords"
    cut.write_bytes(whole[: len(whole) - 500])
    with pytest.raises(UserInputError, match=r"cut\.tfrecords, record 23: "):
        evaluate_scene_classifier(types.SimpleNamespace(num_classes=3, num_modalities=2, input_size=(16, 16)),
                                  str(cut))
    # Grouped by class beyond the shuffle's 256 records: warned of by the converter and training.
    grouped = write_list(tmp_path / "grouped.txt", [f"{records}/{c}_a.png {records}/{c}_b.png {c}"
                                                    for c in range(3) for _ in range(100)])
    assert cli.main(["convert", "-f", str(grouped), "-r", str(tmp_path / "grouped.tfrecords")]) == 0
    assert ("warning: " + str(grouped) + ": the 300 scene records come grouped by class (2 class changes where a "
            "random order gives about 199), and training shuffles within 256 records: its batches hold one class "
            "for many steps; shuffle the list's lines before ssma-scene convert") in capsys.readouterr().err
    found = class_ids(str(tmp_path / "grouped.tfrecords"))
    assert found.ids.tolist() == [c for c in range(3) for _ in range(100)]
    assert found.where(299) == (str(tmp_path / "grouped.tfrecords"), 299)
    lines = []
    with pytest.raises(pytest.fail.Exception, match="model built"):
        train_scene_classifier(str(tmp_path / "grouped.tfrecords"), str(tmp_path / "run2"), num_classes=3,
                               modalities=2, height=16, width=16, steps=1, batch_size=2, freeze_experts=False,
                               log=lines.append)
    assert [line for line in lines if line.startswith("warning: the 300 scene records come grouped by class")]
    mixed = type(found)(np.random.default_rng(0).permutation(found.ids), found.places)
    assert mixed.order_warning() is None and type(found)(found.ids[:200], found.places[:200]).order_warning() is None


@pytest.mark.filterwarnings("ignore:no experts given:ssma_tf.config.ConfigWarning")
def test_an_image_of_the_wrong_byte_count_is_named_by_training_and_evaluation(records, tmp_path, tiny_backbone):
    """The check before the loops reads the class ids only: an image of the wrong byte count was
    TensorFlow's reshape traceback from training's fit and from the evaluation (helper 256)."""
    import tensorflow as tf

    from ssma_tf.models.scene import SSMASceneClassifier

    read = [r.numpy() for r in tf.data.TFRecordDataset(str(records / "scenes.tfrecords"))]
    example = tf.train.Example.FromString(read[1])
    example.features.feature["modality1"].bytes_list.value[:] = [bytes(100)]
    short = tmp_path / "short.tfrecords"
    with tf.io.TFRecordWriter(str(short)) as writer:
        for record in [read[0], example.SerializeToString(), *read[2:]]:
            writer.write(record)
    named = rf"^{re.escape(str(short))}, record 1: modality1 holds 100 bytes"
    with pytest.raises(UserInputError, match=named):
        evaluate_scene_classifier(SSMASceneClassifier(3, num_modalities=2, input_size=(16, 16),
                                                      backbone=tiny_backbone), str(short))
    with pytest.raises(UserInputError, match=named):
        train_scene_classifier(str(short), str(tmp_path / "run"), num_classes=3, modalities=2, height=16, width=16,
                               steps=len(read), batch_size=len(read), backbone=tiny_backbone, seed=0)
    assert not (tmp_path / "run" / "scene.keras").exists()


def test_scene_lists_are_checked_whole_before_any_image_is_decoded(records, tmp_path, monkeypatch):
    """Helper 115: a missing image or a class id too large was found at its line, after every image
    before it was decoded; '²' was a traceback; lists lacked the segmentation lists' hints."""
    import ssma_tf.data.scene

    monkeypatch.setattr(ssma_tf.data.scene, "load_image_bgr", lambda *a: pytest.fail("an image was decoded"))
    good = f"{records}/0_a.png {records}/0_b.png 0"
    for lines, message in (
        ([good, f"{records}/1_a.png {records}/missing.png 1"],
         r"l\.txt, line 2: image '.*missing\.png' does not exist$"),
        ([good, f"{records}/1_a.png {records}/1_b.png 3"], r"l\.txt, line 2: class id 3 but num_classes is 3$"),
        ([f"{records}/0_a.png {records}/0_b.png \u00b2"],
         r"line 1: the class id must be a non-negative integer, got '²'$"),
        ([good, f"{records}/0_a.png {records}/0_b.png 0 # a note"], r"line 2: has 6 columns but the lines before it "
                                                                    r"have 3 \(a comment after the paths\?"),
        # Helper 277: "Value out of range", once the images before it were decoded.
        ([good, f"{records}/1_a.png {records}/1_b.png 9223372036854775808"],
         r"line 2: the class id must be a non-negative integer below 2\*\*63, got 9223372036854775808$"),
    ):
        with pytest.raises(UserInputError, match=message):
            write_scene_records(write_list(tmp_path / "l.txt", lines), str(tmp_path / "l.tfrecords"), num_classes=3)
        assert not (tmp_path / "l.tfrecords").exists()
    # The records never replace the list or one of its images (helper 277: with --overwrite they did).
    listed = write_list(tmp_path / "l.txt", [good])
    for output, what in ((listed, "the list file itself"), (f"{records}/0_a.png", "one of the listed images")):
        with pytest.raises(UserInputError, match=rf"l\.txt: the output .* is {what}$"):
            write_scene_records(listed, output)
    (tmp_path / "sp ace").mkdir()
    save_png(tmp_path / "sp ace" / "a.png", scene_images(0, 0)[0])
    with pytest.raises(UserInputError, match=r"line 1: has 4 columns, expected 3 .*quote"):
        write_scene_records(write_list(tmp_path / "l.txt", [f"sp ace/a.png {records}/0_b.png 0"]),
                            str(tmp_path / "l.tfrecords"), modalities=2)


def test_segmentation_and_scene_records_given_for_each_other_are_named(records, tmp_path):
    """The class-id check came before the records' own check: TensorFlow's "Feature: class_id ...
    is required" traceback instead of one line; then "lack feature(s) ['class_id'] (they hold 2
    modalities, the model reads 2)", which blamed the modalities. Scene records given to
    segmentation were "lacks feature(s) ['label']" and check-records' "no 'label' bytes feature"."""
    from ssma_tf.data.pipeline import check_first_record
    from ssma_tf.data.records import check_example, iterate_records
    from tests.training_helpers import write_records

    segmentation = write_records(tmp_path / "seg.tfrecords", 2, height=32, width=32, fusion=True)
    with pytest.raises(UserInputError, match=r"seg\.tfrecords: these are segmentation records \(a label image per "
                                             r"record, no class_id\); scene classification reads records written "
                                             r"by ssma-scene convert"):
        train_scene_classifier(segmentation, str(tmp_path / "run"), num_classes=2, modalities=2, height=16,
                               width=16, steps=1, batch_size=2)
    scenes = str(records / "scenes.tfrecords")
    with pytest.raises(UserInputError, match=r"scenes\.tfrecords, record 0: these are scene classification records "
                                             r"\(a class_id per record, no label image\): segmentation reads records "
                                             r"written by ssma-convert"):
        check_first_record(scenes, 2)
    check_first_record(scenes, 2, labeled=False)  # images only: a scene record has them
    # Images-only records (ssma-convert --unlabeled) where labels are needed named no cause either.
    import tensorflow as tf

    from ssma_tf.data import encode_example

    images_only = str(tmp_path / "images.tfrecords")
    with tf.io.TFRecordWriter(images_only) as writer:
        writer.write(encode_example(np.zeros((16, 16, 3), np.uint8), None, np.zeros((16, 16, 3), np.uint8)))
    with pytest.raises(UserInputError, match=r"images\.tfrecords, record 0: has no label: these records hold images "
                                             r"only \(ssma-convert --unlabeled writes them"):
        check_first_record(images_only, 2)
    # ssma-check-records checks scene records as such (before: "no 'label' bytes feature" for each);
    # where labels are read they stay a problem that says what they are.
    assert check_example(next(iterate_records(scenes))[1], scenes=True) == (2, (H, W), None, 0)
    with pytest.raises(ValueError, match=r"^no 'label' bytes feature: a scene classification record"):
        check_example(next(iterate_records(scenes))[1])


def test_an_expert_trained_on_another_modality_is_named(records, tmp_path):
    from ssma_tf.checkpoints.tf1_import import CheckpointError
    from ssma_tf.config import ConfigWarning

    runs = []
    for name, read in (("rgb", "modality1"), ("depth", "modality2")):
        run = tmp_path / name
        run.mkdir()
        (run / "config.yaml").write_text(f"model: AdapNet_pp\ninput_modality: {read}\n")
        (run / "final.weights.h5").write_bytes(b"not weights")
        runs.append(str(run / "final.weights.h5"))
    # Swapped (before: trained without a word, as ssma-train's stage 2 warns).
    with pytest.warns(ConfigWarning) as caught, pytest.raises(CheckpointError):
        train_scene_classifier(str(records / "scenes.tfrecords"), str(tmp_path / "out"), num_classes=3,
                               modalities=2, height=16, width=16, steps=1, batch_size=2,
                               experts=runs[::-1], expert_classes=3)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 2 and messages[0].startswith(f"expert 1 ({runs[1]}): the run {tmp_path / 'depth'} "
                                                         "was trained on modality2")
    # A missing expert is named with its place in --experts before any is loaded (before: after the
    # first had loaded, as "no weights file at ...").
    with pytest.raises(CheckpointError, match=r"^--experts, expert 2 of 2: .*missing\.weights\.h5"):
        train_scene_classifier(str(records / "scenes.tfrecords"), str(tmp_path / "out"), num_classes=3,
                               modalities=2, height=16, width=16, steps=1, batch_size=2,
                               experts=[runs[0], str(tmp_path / "missing.weights.h5")], expert_classes=3)


def test_experts_of_other_easpp_rates_and_frozen_imagenet_experts_are_refused_before_loading(records, tmp_path):
    """Helper 217: the classifier builds its experts at the default eASPP rates, so an expert
    trained with [6, 12, 18] ran at others without a word; an ImageNet checkpoint has no eASPP,
    whose output is what is fused, and frozen it stayed random for the whole run."""
    import numpy as np

    from ssma_tf.checkpoints.tf1_import import CheckpointError
    from tests.tf1_helpers import write_tf1_checkpoint

    run = tmp_path / "rgb"
    run.mkdir()
    (run / "config.yaml").write_text("model: AdapNet_pp\neaspp_rates: [6, 12, 18]\n")
    (run / "final.weights.h5").write_bytes(b"not weights: refused before it is read")
    kwargs = dict(num_classes=3, modalities=2, height=16, width=16, steps=1, batch_size=2)
    with pytest.raises(CheckpointError, match=r"^--experts, expert 1 of 2: .*rgb/final\.weights\.h5 was trained with "
                                              r"easpp_rates \[6, 12, 18\], but ssma-scene builds its experts with "
                                              r"\[3, 6, 12\]: give experts trained with those$"):
        train_scene_classifier(str(records / "scenes.tfrecords"), str(tmp_path / "out"),
                               experts=[str(run / "final.weights.h5")] * 2, **kwargs)
    imagenet = write_tf1_checkpoint(str(tmp_path / "imagenet.ckpt"),
                                    {"resnet_v2_50/conv1/weights": np.zeros((7, 7, 3, 64), np.float32)})
    with pytest.raises(CheckpointError, match=r"^--experts, expert 1 of 2: .*imagenet\.ckpt is an ImageNet checkpoint: "
                                              r"it holds the ResNet-50 but no eASPP, .*; give trained unimodal runs, "
                                              r"or --train_experts$"):
        train_scene_classifier(str(records / "scenes.tfrecords"), str(tmp_path / "out"), experts=[imagenet] * 2,
                               **kwargs)
    assert not (tmp_path / "out").exists()


def test_mobilenet_v2_experts_start_from_their_checkpoints_and_the_classifier_keeps_its_backbone(records, tmp_path):
    from ssma_tf.checkpoints.tf1_import import CheckpointError
    from ssma_tf.models import AdapNetPP

    expert = AdapNetPP(3, backbone="mobilenet_v2")
    expert(np.zeros((1, H, W, 3), np.float32))
    expert.save(tmp_path / "expert.keras")
    data = str(records / "scenes.tfrecords")
    kwargs = dict(num_classes=3, modalities=2, height=H, width=W, steps=1, batch_size=4, seed=1)
    # Refused on the default backbone, naming the flag (before: AdapNet++ experts only, no flag).
    with pytest.raises(CheckpointError, match=r"^--experts, expert 1 of 2: .*holds an AdapNet\+\+ on the "
                                              r"mobilenet_v2 backbone, but the experts are on the adapnet_pp "
                                              r"backbone; --backbone chooses"):
        train_scene_classifier(data, str(tmp_path / "refused"), experts=[str(tmp_path / "expert.keras")] * 2,
                               **kwargs)
    result = train_scene_classifier(data, str(tmp_path / "run"), experts=[str(tmp_path / "expert.keras")] * 2,
                                    backbone="mobilenet_v2", **kwargs)
    assert result.model.backbone == "mobilenet_v2" and len(result.losses) == 1
    # Frozen experts: their weights are still the checkpoint's.
    for encoder in result.model.encoders:
        for ours, theirs in zip(encoder.get_weights(), expert.encoder.get_weights(), strict=True):
            np.testing.assert_array_equal(ours, theirs)
    # The .keras file says the backbone (building it again would take two MobileNet builds more).
    with zipfile.ZipFile(result.path) as archive:
        assert json.loads(archive.read("config.json"))["config"]["backbone"] == "mobilenet_v2"
    with pytest.raises(ValueError, match="the experts' checkpoints replace them"):
        train_scene_classifier(data, str(tmp_path / "both"), experts=[str(tmp_path / "expert.keras")] * 2,
                               backbone="mobilenet_v2", backbone_weights="imagenet.h5", **kwargs)


def test_experts_of_a_narrow_decoder_load_from_their_weight_files(records, tmp_path, monkeypatch):
    """Helper 181: the experts' weight files were loaded into an AdapNet++ of the released 256-wide
    decoder: real-time experts (decoder_filters 64) loaded from `.keras` files only, and the error
    said to give a decoder_filters ssma-scene had no flag for."""
    import ssma_tf.scene
    from ssma_tf.checkpoints.tf1_import import CheckpointError
    from ssma_tf.config import ConfigWarning
    from ssma_tf.models import AdapNetPP
    from ssma_tf.models.widths import decoder_widths

    expert = AdapNetPP(3, aux_heads=True, backbone="mobilenet_v2", widths=decoder_widths(16))
    expert(np.zeros((1, H, W, 3), np.float32))
    run = tmp_path / "expert_run"
    run.mkdir()
    expert.save_weights(run / "final.weights.h5")
    data = str(records / "scenes.tfrecords")
    kwargs = dict(num_classes=3, modalities=2, height=H, width=W, steps=1, batch_size=4, seed=1,
                  backbone="mobilenet_v2", experts=[str(run / "final.weights.h5")] * 2)
    with pytest.raises(CheckpointError, match=r"the checkpoint's 16: give the decoder_filters it was trained with"):
        train_scene_classifier(data, str(tmp_path / "refused"), **kwargs)

    # What the run read for its experts; the classifier itself is not built (training it is tested above).
    class Read(Exception):
        pass

    def read_then_stop(*args, **kw):
        raise Read(ssma_tf.scene.unimodal_encoder_weights.__wrapped__(*args, **kw))

    read_then_stop.__wrapped__ = ssma_tf.scene.unimodal_encoder_weights
    monkeypatch.setattr(ssma_tf.scene, "unimodal_encoder_weights", read_then_stop)
    # Told by the flag, or by the run's config.yaml beside the weights.
    with pytest.raises(Read) as told:
        train_scene_classifier(data, str(tmp_path / "told"), expert_decoder_filters=16, **kwargs)
    (run / "config.yaml").write_text("model: AdapNet_pp\nnum_classes: 3\nbackbone: mobilenet_v2\ndecoder_filters: 16\n"
                                     f"train_data: {data}\ncheckpoint: {run}\nheight: {H}\nwidth: {W}\n"
                                     "batch_size: 4\nmax_iteration: 1\nlearning_rate: 0.001\n")
    with pytest.warns(ConfigWarning, match="trained on modality1"), pytest.raises(Read) as read:  # one run, 2 experts
        train_scene_classifier(data, str(tmp_path / "read"), **kwargs)
    for found in (told.value.args[0], read.value.args[0]):
        for ours, theirs in zip(found, expert.encoder.get_weights(), strict=True):
            np.testing.assert_array_equal(ours, theirs)


def test_freezing_after_building_survives_a_keras_file_and_latent_reduction_is_checked_as_ssmas(tmp_path,
                                                                                              tiny_backbone):
    """Helper 159: from_config rebuilt the experts' flags from freeze_experts alone (207 trainable
    variables saved, 405 loaded); latent_reduction True gave a 512-wide bottleneck, and 3 an error
    about the block's "reduction=3"."""
    import keras
    import numpy as np

    from ssma_tf.models import SSMASceneClassifier

    # The tiny backbone: the flags are recorded per layer whatever the backbone.
    model = SSMASceneClassifier(4, freeze_experts=False, backbone=tiny_backbone)
    every = len(model.trainable_variables)
    model.modality1_encoder.trainable = False
    model.save(tmp_path / "scene.keras")
    loaded = keras.saving.load_model(tmp_path / "scene.keras")
    # Fewer than before the freezing: one expert's variables are left out.
    assert len(loaded.trainable_variables) == len(model.trainable_variables) < every
    assert [v.path for v in loaded.trainable_variables] == [v.path for v in model.trainable_variables]
    images = [np.random.default_rng(i).uniform(0, 255, (1, 32, 32, 3)).astype("float32") for i in range(2)]
    np.testing.assert_allclose(loaded(images), model(images), rtol=1e-5, atol=1e-6)
    # As SSMA: N x 256 // latent_reduction channels in the gate's bottleneck.
    latent = SSMASceneClassifier(3, latent_reduction=3, backbone=tiny_backbone).get_layer("ssma_latent")
    assert latent.get_config()["reduced_filters"] == 170
    for wrong in (True, 0, 513, 2.5):
        message = (r"SSMASceneClassifier latent_reduction must be an integer in 1\.\.512 \(its SSMA block's "
                   rf"bottleneck has 2 x 256 / latent_reduction channels\), got {wrong!r}")
        with pytest.raises(ValueError, match=message):
            SSMASceneClassifier(3, latent_reduction=wrong)


def test_a_classifier_frozen_whole_comes_back_frozen(tiny_backbone):
    """from_config dropped `trainable`: a model frozen with `model.trainable = False` came back
    with every layer trainable, its experts too (0 trainable variables saved, 417 loaded; helper 174)."""
    from ssma_tf.models import SSMASceneClassifier

    # The tiny backbone: from_config's flags are the point, whatever the backbone.
    model = SSMASceneClassifier(4, backbone=tiny_backbone)
    model.trainable = False
    loaded = SSMASceneClassifier.from_config(model.get_config())
    assert not loaded.trainable and loaded.trainable_variables == []
    # The default (experts frozen, the fusion and classifier trained) still comes back as it was.
    fresh = SSMASceneClassifier(4, backbone=tiny_backbone)
    again = SSMASceneClassifier.from_config(fresh.get_config())
    assert [v.path for v in again.trainable_variables] == [v.path for v in fresh.trainable_variables] != []


def test_numpy_counts_are_taken_and_stored_as_python_ints(tiny_backbone):
    """A class count read from an array (np.int64) was refused; stored as it was, it would not
    serialize to JSON."""
    import json

    import numpy as np

    from ssma_tf.models import SSMASceneClassifier

    config = SSMASceneClassifier(np.int64(3), num_modalities=np.int64(2), backbone=tiny_backbone).get_config()
    assert type(config["num_classes"]) is int and type(config["num_modalities"]) is int
    json.dumps(config)
    with pytest.raises(ValueError, match=r"num_classes must be an integer >= 2, got np.int64\(1\)"):
        SSMASceneClassifier(np.int64(1))
    # Helper 87: a mixed-precision policy was accepted and every layer stayed float32.
    with pytest.raises(ValueError, match=r"SSMASceneClassifier computes in float32; dtype 'mixed_float16' is not "
                                         "supported"):
        SSMASceneClassifier(3, dtype="mixed_float16")


def test_a_file_mixing_records_of_two_and_three_modalities_is_named_before_the_work(records, tmp_path):
    """Before: only each file's first record was checked, and a 3-modality model on a file whose
    later records hold 2 images ended in a TensorFlow traceback (helper 137)."""
    from ssma_tf.data.scene import class_ids
    from ssma_tf.modalities.io import InputFileError

    lines = [f"{records}/{i}_a.png {records}/{i}_b.png {records}/{i}_a.png {i % 3}" for i in range(2)]
    write_scene_records(write_list(tmp_path / "three.txt", lines), str(tmp_path / "three.tfrecords"), modalities=3)
    mixed = tmp_path / "mixed.tfrecords"
    mixed.write_bytes((tmp_path / "three.tfrecords").read_bytes() + (records / "scenes.tfrecords").read_bytes())
    assert len(class_ids(str(mixed), 2).ids) == 26
    with pytest.raises(InputFileError, match=rf"^{re.escape(str(mixed))}, record 2: holds no modality3, which the "
                                             r"model reads \(3 modalities\) \(the file mixes 2 3-modality and 24 "
                                             r"fusion records\)$"):
        class_ids(str(mixed), 3)


def test_an_output_folder_another_process_trains_is_refused_before_anything_is_touched(records, tmp_path,
                                                                                       monkeypatch):
    """Two `ssma-scene train` runs into one folder saved resume/ and scene.keras over each other,
    and the second's start removed the first's save in progress as "left by an interrupted save"."""
    import ssma_tf.scene
    from ssma_tf.files import folder_lock_path
    from tests.conftest import lock_held_elsewhere

    monkeypatch.setattr(ssma_tf.scene, "SSMASceneClassifier", lambda *a, **k: pytest.fail("model built"))
    run = tmp_path / "run"
    (run / "resume").mkdir(parents=True)
    (run / "resume" / ".partial-1-0123abcd-state.weights.h5").write_bytes(b"the other run's save")
    with lock_held_elsewhere(folder_lock_path(run, "scene")) as holder:
        with pytest.raises(UserInputError, match=(rf"^{run} is being trained by another process \(process "
                                                  rf"{holder.pid}\): wait for it to end, or give another --output "
                                                  "folder$")) as error:
            train_scene_classifier(str(records / "scenes.tfrecords"), str(run), num_classes=3, modalities=2,
                                   height=16, width=16, steps=1, batch_size=2, resume=False)
    assert error.value.path == str(run)
    assert sorted(p.name for p in (run / "resume").iterdir()) == [".partial-1-0123abcd-state.weights.h5"]


def test_images_of_a_scene_of_other_sizes_are_named_by_their_files(tmp_path):
    """Helper 205: "modality2 must be 16x32x3 uint8 like modality1, got (32, 32, 3) uint8", neither
    file named."""
    save_png(tmp_path / "small.png", np.zeros((16, 32, 3), np.uint8))
    save_png(tmp_path / "depth.png", np.zeros((32, 32, 3), np.uint8))
    write_list(tmp_path / "scenes.txt", ["small.png depth.png 1"])
    with pytest.raises(UserInputError) as error:
        write_scene_records(str(tmp_path / "scenes.txt"), str(tmp_path / "s.tfrecords"), modalities=2, num_classes=3)
    assert str(error.value) == (f"{tmp_path / 'scenes.txt'}, line 1: image '{tmp_path / 'depth.png'}' is 32x32 but "
                                f"'{tmp_path / 'small.png'}' (modality 1) is 16x32 (height x width)")
    assert not (tmp_path / "s.tfrecords").exists()


def test_records_of_more_modalities_than_the_classifier_reads_are_said(records, tmp_path, monkeypatch):
    """Before: a 3-modality set trained a 2-modality classifier (the default --modalities) without a
    word that modality3 was left out (helper 225)."""
    import ssma_tf.scene

    class Built(Exception):
        pass

    def build(*args, **kwargs):
        raise Built

    lines = [f"{records}/{i}_a.png {records}/{i}_b.png {records}/{i}_a.png {i % 3}" for i in range(2)]
    write_scene_records(write_list(tmp_path / "three.txt", lines), str(tmp_path / "three.tfrecords"), modalities=3)
    monkeypatch.setattr(ssma_tf.scene, "SSMASceneClassifier", build)
    for modalities, expected in ((2, ["warning: the training records hold 3 modalities; the classifier reads "
                                      "modality1 to modality2 only (give --modalities 3 to fuse them all)"]),
                                 (3, [])):
        lines = []
        with pytest.raises(Built):
            train_scene_classifier(str(tmp_path / "three.tfrecords"), str(tmp_path / f"run{modalities}"),
                                   num_classes=3, modalities=modalities, height=16, width=16, steps=1, batch_size=2,
                                   freeze_experts=False, log=lines.append)
        assert [line for line in lines if "modalities" in line] == expected, lines
    # Every file is looked at (before: the first file's first record, so the two-modality file
    # first hid the three-modality one; helper 245).
    mixed = [str(records / "scenes.tfrecords"), str(tmp_path / "three.tfrecords")]
    lines = []
    with pytest.raises(Built):
        train_scene_classifier(mixed, str(tmp_path / "mixed"), num_classes=3, modalities=2, height=16, width=16,
                               steps=1, batch_size=2, freeze_experts=False, log=lines.append)
    assert [line for line in lines if "modalities" in line] == [
        "warning: some of the training records hold 3 modalities; the classifier reads modality1 to modality2 only "
        "(give --modalities 3 to fuse them all)"], lines

    class TwoModalities:  # classifies every scene as class 0
        num_classes, num_modalities, input_size = 3, 2, (16, 16)

        def __call__(self, views, training):
            return np.eye(3, dtype=np.float32)[np.zeros(len(views[0]), int)]

    # Evaluation too (before: figures of the first two modalities, without a word).
    for test_data, some in ((str(tmp_path / "three.tfrecords"), ""), (mixed, "some of ")):
        with pytest.warns(ConfigWarning, match=rf"^{some}the test records hold 3 modalities; the classifier reads "
                                               r"modality1 to modality2 only$"):
            evaluate_scene_classifier(TwoModalities(), test_data)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        evaluate_scene_classifier(TwoModalities(), str(records / "scenes.tfrecords"))


def test_a_refused_overwrite_keeps_the_unfinished_run_and_a_resume_needs_no_expert_files(records, tmp_path,
                                                                                        tiny_backbone):
    """Helper 309: with --overwrite (resume=False) the unfinished run's state was removed before the
    inputs were checked, so a refused command lost it; and a resumed run read its experts' files
    again, though its state holds every weight, so an expert moved since made it impossible to go on."""
    from ssma_tf.checkpoints.tf1_import import CheckpointError
    from ssma_tf.models import AdapNetPP

    expert = AdapNetPP(3, aux_heads=True, backbone=tiny_backbone)
    expert(np.zeros((1, 16, 16, 3), np.float32))
    experts = [tmp_path / "rgb.weights.h5", tmp_path / "depth.weights.h5"]
    for path in experts:
        expert.save_weights(path)
    data, run = str(records / "scenes.tfrecords"), tmp_path / "run"
    settings = dict(num_classes=3, modalities=2, height=16, width=16, steps=4, batch_size=4, seed=0,
                    save_steps=2, backbone=tiny_backbone, experts=[str(p) for p in experts], expert_classes=3)
    lines = []

    def stop_at_step_2(line):
        lines.append(line)
        if line.startswith("step 2/4"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_scene_classifier(data, str(run), log=stop_at_step_2, log_every=1, **settings)
    state = run / "resume" / "state.weights.h5"
    saved = state.read_bytes()
    # Refused after the old state would have gone: a missing expert, a class id past num_classes.
    with pytest.raises(CheckpointError, match=r"^--experts, expert 1 of 2: .*missing\.weights\.h5"):
        train_scene_classifier(data, str(run), resume=False,
                               **{**settings, "experts": [str(tmp_path / "missing.weights.h5"), str(experts[1])]})
    with pytest.raises(UserInputError, match="num_classes"):
        train_scene_classifier(data, str(run), resume=False, **{**settings, "num_classes": 2, "expert_classes": 3})
    assert state.read_bytes() == saved
    # The experts moved away: the run goes on from its state all the same, to the end.
    for path in experts:
        path.rename(path.with_suffix(".moved"))
    lines = []
    result = train_scene_classifier(data, str(run), log=lines.append, log_every=1, **settings)
    assert any(line.startswith(f"resuming the unfinished run in {run / 'resume'} at step 2 of 4") for line in lines)
    assert (run / "scene.keras").exists() and result is not None
