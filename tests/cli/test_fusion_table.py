"""The fusion-table command: its result cache, its table and its argument checks (no training here)."""

import json
import os
import pathlib

import pytest

from ssma_tf.cli import fusion_table


@pytest.fixture(autouse=True)
def arms_here(monkeypatch):
    """The arms in this process, where the tests replace their training and evaluation (the
    command runs each in a child process: tests/cli/test_experiment.py tests that)."""
    monkeypatch.setattr(fusion_table, "ARMS_IN_CHILDREN", False)


def _metrics(miou):
    return {"mIoU": miou, "per_class": [{"name": "road", "iou": miou}, {"name": "car", "iou": miou / 2}]}


def _leave_weights(values):
    """The file a training run leaves, which the fusion arms read (the arms' cache checks it)."""
    run = pathlib.Path(values["checkpoint"])
    run.mkdir(parents=True, exist_ok=True)
    (run / "final.weights.h5").write_bytes(b"weights")


def test_a_cached_arm_is_reused_only_with_the_same_settings(tmp_path, monkeypatch):
    trained = []

    def fake_train(values, source, log=None):
        trained.append(values["max_iteration"])
        return object()

    monkeypatch.setattr(fusion_table, "train_in_process", fake_train)
    monkeypatch.setattr(fusion_table, "evaluate_in_process", lambda run, overrides, **kwargs: _metrics(50.0))
    args = fusion_table.parse_args(["--seeds", "0"])
    values = {"model": "SSMA", "fusion": "ssma", "max_iteration": 100,
              "checkpoint": str(tmp_path / "checkpoints" / "ssma")}
    for name in ("train.tfrecords", "val.tfrecords"):
        (tmp_path / name).write_bytes(name.encode())

    first = fusion_table._arm("ssma", values, args, tmp_path, tmp_path)
    again = fusion_table._arm("ssma", dict(values), args, tmp_path, tmp_path)
    assert trained == [100] and again == first
    assert first["settings"] == dict(values, data=fusion_table._data_digest(tmp_path))
    # A result written with another budget (e.g. an older, shorter run) is not reused, nor are
    # its checkpoints (the trainer would resume them as a finished run).
    stale = tmp_path / "checkpoints" / "ssma" / "ckpt-100.index"
    stale.parent.mkdir(parents=True)
    stale.write_text("old")
    fusion_table._arm("ssma", dict(values, max_iteration=200), args, tmp_path, tmp_path)
    assert trained == [100, 200] and not stale.exists()
    assert json.loads((tmp_path / "ssma.json").read_text())["settings"]["max_iteration"] == 200
    # A run of new settings stopped halfway resumes on the same command (helper 91: its folder was
    # deleted because the old result was still there, though the run said it would resume).
    seen = []

    def stopped_train(values, source, log=None):
        run = pathlib.Path(values["checkpoint"])
        seen.append((run / "ckpt-150.index").exists())
        if not seen[-1]:
            run.mkdir(parents=True, exist_ok=True)
            (run / "ckpt-150.index").write_text("halfway")
            raise RuntimeError("stopped")  # as Ctrl-C (which would stop pytest itself)
        return object()

    monkeypatch.setattr(fusion_table, "train_in_process", stopped_train)
    with pytest.raises(RuntimeError, match="stopped"):
        fusion_table._arm("ssma", dict(values, max_iteration=300), args, tmp_path, tmp_path)
    fusion_table._arm("ssma", dict(values, max_iteration=300), args, tmp_path, tmp_path)
    assert seen == [False, True]
    assert json.loads((tmp_path / "ssma.json").read_text())["settings"]["max_iteration"] == 300


def test_the_table_gives_mean_range_and_per_class_iou():
    per_seed = {0: {"ssma": _metrics(80.0)}, 1: {"ssma": _metrics(84.0)}}
    text = fusion_table.table(per_seed, ["ssma"], ["road", "car"])
    assert "| SSMA | 82.0 | 80.0–84.0 | 82.0 | 41.0 |" in text
    # A class absent from the test scenes and never predicted has no IoU (before: a TypeError).
    absent = {0: {"ssma": _metrics(80.0)}, 1: {"ssma": _metrics(84.0)}}
    absent[0]["ssma"]["per_class"][1]["iou"] = None
    assert "| SSMA | 82.0 | 80.0–84.0 | 82.0 | 42.0 |" in fusion_table.table(absent, ["ssma"], ["road", "car"])
    absent[1]["ssma"]["per_class"][1]["iou"] = None
    assert "| SSMA | 82.0 | 80.0–84.0 | 82.0 | – |" in fusion_table.table(absent, ["ssma"], ["road", "car"])
    per_seed = {0: {"rgb": _metrics(70.0)}}
    assert "| MobileNet v2 (RGB) | 70.0 |" in fusion_table.table(per_seed, ["rgb"], ["road", "car"], "mobilenet_v2")
    # Every method the config takes has a title; one added without keeps its name (was a KeyError
    # after every arm had trained).
    untitled = set(fusion_table.FUSION_METHODS) - set(fusion_table.TITLES)
    assert not untitled, f"give {sorted(untitled)} a title in ssma_tf/cli/fusion_table.py's TITLES (the table's rows)"
    assert "| feature_max | 70.0 |" in fusion_table.table({0: {"feature_max": _metrics(70.0)}}, ["feature_max"],
                                                          ["road", "car"])


def test_the_backbone_reaches_every_arm_and_the_default_is_not_written():
    args = fusion_table.parse_args(["--backbone", "mobilenet_v2", "--methods", "ssma", "--decoder_filters", "64"])
    common = fusion_table._common(args, fusion_table.pathlib.Path("d"))
    assert common["backbone"] == "mobilenet_v2" and common["decoder_filters"] == 64
    default = fusion_table._common(fusion_table.parse_args([]), fusion_table.pathlib.Path("d"))
    assert "backbone" not in default and "decoder_filters" not in default
    assert "recalibrate_batch_norm" not in default
    recalibrated = fusion_table._common(fusion_table.parse_args(["--recalibrate_bn", "25"]),
                                        fusion_table.pathlib.Path("d"))
    assert recalibrated["recalibrate_batch_norm"] == 25


@pytest.mark.parametrize("argv, message", [
    (["--backbone", "mobilenet_v2", "--methods", "ssma", "late"], "--backbone mobilenet_v2"),
    (["--decoder_filters", "64"], "--decoder_filters"),
    (["--decoder_filters", "0", "--methods", "ssma"], "--decoder_filters must be >= 1"),
    (["--recalibrate_bn", "-1"], "--recalibrate_bn must be >= 0"),
    (["--height", "30"], "--height must be a positive multiple of 16, got 30"),
    (["--num_train", "0"], "--num_train must be >= 1, got 0"),
    (["--batch_size", "0"], "--batch_size must be >= 1, got 0"),
])
def test_options_the_baselines_cannot_take_are_refused_before_any_training(argv, message, capsys):
    with pytest.raises(SystemExit):
        fusion_table.parse_args(argv)
    assert message in capsys.readouterr().err


def test_an_unknown_method_is_named(capsys):
    with pytest.raises(SystemExit):
        fusion_table.parse_args(["--methods", "ssma", "concat"])
    assert "'concat'" in capsys.readouterr().err


def test_scenes_of_other_settings_in_the_output_folder_are_refused(tmp_path, monkeypatch, capsys):
    """The scenes are written once per --output: before, a rerun with another --num_val printed
    the old scenes' table under the new count (another size trained every arm on them resized)."""
    from ssma_tf.data import synthetic
    from ssma_tf.errors import UserInputError

    data = tmp_path / "data"
    synthetic.write_dataset(str(data), num_train=3, num_val=2, height=32, width=48, seed=0)
    same = fusion_table.parse_args(["--num_train", "3", "--num_val", "2", "--height", "32", "--width", "48"])
    fusion_table._check_data(data, same)  # the scenes asked for: no error
    other = fusion_table.parse_args(["--num_train", "3", "--num_val", "3", "--height", "32", "--width", "64"])
    with pytest.raises(UserInputError) as error:
        fusion_table._check_data(data, other)
    assert str(error.value) == (f"{data} holds the scenes of other settings (--num_val 2 there, 3 asked; "
                                "--width 48 there, 64 asked): give another --output, or remove that folder")
    # Through main: refused before any arm runs, with the status of bad input (before: 1; helper 360).
    monkeypatch.setattr(fusion_table, "run_seed", lambda *args: pytest.fail("an arm ran"))
    (data / "val.tfrecords").write_bytes(b"")
    assert fusion_table.main(["--output", str(tmp_path), "--num_train", "3", "--num_val", "3", "--height", "32",
                              "--width", "48"]) == 2
    assert (f"error: {data} holds the scenes of other settings (--num_val 2 there, 3 asked): give another --output"
            in capsys.readouterr().err)


def test_fusion_arms_run_again_when_their_experts_were_trained_with_other_settings(tmp_path, monkeypatch, capsys):
    """The experts keep their paths when retrained with another --expert_steps: the fusion arms
    cached on the old experts were reused (their own settings had not changed), a table of
    fusion on experts that no longer exist. The command and settings go with the table."""
    trained = []

    def fake_train(values, source, log=None):
        trained.append((pathlib.Path(values["checkpoint"]).name, values["max_iteration"]))
        _leave_weights(values)
        return object()

    monkeypatch.setattr(fusion_table, "train_in_process", fake_train)
    monkeypatch.setattr(fusion_table, "evaluate_in_process", lambda run, overrides, **kwargs: _metrics(50.0))
    argv = ["--seeds", "0", "--methods", "ssma", "stacking", "--num_train", "2", "--num_val", "2",
            "--height", "16", "--width", "32", "--output", str(tmp_path / "out")]
    assert fusion_table.main(argv + ["--expert_steps", "3", "--fusion_steps", "2"]) == 0
    assert trained == [("rgb", 3), ("depth", 3), ("ssma", 2), ("stacking", 5)]
    assert fusion_table.main(argv + ["--expert_steps", "3", "--fusion_steps", "2"]) == 0
    assert len(trained) == 4  # everything cached
    # An expert whose weights are gone is trained again, not taken from its result (helper 274:
    # every fusion arm then failed on the missing file, on each rerun).
    (tmp_path / "out" / "seed0" / "checkpoints" / "rgb" / "final.weights.h5").unlink()
    capsys.readouterr()
    assert fusion_table.main(argv + ["--expert_steps", "3", "--fusion_steps", "2"]) == 0
    assert trained[4:] == [("rgb", 3)]
    assert f"=== rgb: {tmp_path / 'out' / 'seed0' / 'checkpoints' / 'rgb' / 'final.weights.h5'} is gone; training " \
        "it again" in capsys.readouterr().out
    del trained[4:]
    # SSMA's own settings are those of the first run, its experts' are not.
    assert fusion_table.main(argv + ["--expert_steps", "5", "--fusion_steps", "2"]) == 0
    assert trained[4:] == [("rgb", 5), ("depth", 5), ("ssma", 2), ("stacking", 7)]
    saved = json.loads((tmp_path / "out" / "seed0" / "results" / "ssma.json").read_text())["settings"]
    assert saved["experts"]["rgb"]["max_iteration"] == 5 and "experts" not in json.loads(
        (tmp_path / "out" / "seed0" / "results" / "stacking.json").read_text())["settings"]
    # Stacking trains no experts: 6 + 1 steps, as before, so its result stands.
    assert fusion_table.main(argv + ["--expert_steps", "6", "--fusion_steps", "1"]) == 0
    assert trained[8:] == [("rgb", 6), ("depth", 6), ("ssma", 1)]
    assert "batch-norm recalibration off;" in (tmp_path / "out" / "fusion_table.md").read_text()
    written = json.loads((tmp_path / "out" / "fusion_table.json").read_text())
    assert written["settings"]["expert_steps"] == 6 and written["settings"]["methods"] == ["ssma", "stacking"]
    assert written["command"].startswith("python -m ssma_tf.cli.fusion_table --seeds 0 --methods ssma stacking")
    assert written["seeds"]["0"]["ssma"]["mIoU"] == 50.0
    heading = (tmp_path / "out" / "fusion_table.md").read_text().splitlines()[0]
    assert "experts 6 steps, fusion 1 steps" in heading and "2 training scenes" in heading
    # The machine of the seconds column (helper 235: the table named none).
    from ssma_tf.cli.experiment import machine_line

    assert written["machine"]["cores"] == os.cpu_count() and written["machine"]["tensorflow"]
    assert (tmp_path / "out" / "fusion_table.md").read_text().splitlines()[2] == \
        f"Machine: {machine_line(written['machine'])}"
    # An arm cached by a call on another machine keeps its machine, and the table names it (helper 241).
    cached = tmp_path / "out" / "seed0" / "results" / "rgb.json"
    result = json.loads(cached.read_text())
    cached.write_text(json.dumps({**result, "machine": {**result["machine"], "cpu": "Other CPU", "cores": 64}}))
    assert fusion_table.main(argv + ["--expert_steps", "6", "--fusion_steps", "1"]) == 0
    assert len(trained) == 11  # cached
    assert (tmp_path / "out" / "fusion_table.md").read_text().splitlines()[3] == \
        "Seconds of arms from earlier calls on other machines: rgb (seed 0): Other CPU, 64 cores"
    seeds = json.loads((tmp_path / "out" / "fusion_table.json").read_text())["seeds"]
    assert seeds["0"]["rgb"]["machine"]["cores"] == 64
    # The scenes written again with other counts (the folder removed, as the refusal of other
    # scenes advises): every arm is trained again (before: all reused, under the new counts).
    import shutil

    shutil.rmtree(tmp_path / "out" / "data")
    assert fusion_table.main(argv[:-6] + ["--num_train", "3", "--num_val", "2", "--height", "16", "--width", "32",
                                          "--output", str(tmp_path / "out"), "--expert_steps", "6",
                                          "--fusion_steps", "1"]) == 0
    assert trained[11:] == [("rgb", 6), ("depth", 6), ("ssma", 1), ("stacking", 7)]


def test_a_seed_or_method_given_twice_is_refused(capsys):
    """Before: one run counted as two seeds in the heading and the JSON, a row printed twice."""
    for argv, named in ((["--seeds", "0", "0"], "--seeds names 0"), (["--methods", "average", "average"],
                                                                     "--methods names average")):
        with pytest.raises(SystemExit):
            fusion_table.parse_args(argv)
        assert f"{named} more than once" in capsys.readouterr().err


def test_a_seed_outside_what_numpy_takes_is_refused_before_any_data(capsys):
    """Before: `--seeds -1` made the synthetic data, then failed in the first arm's config (helper 167)."""
    for text in ("-1", "4294967296", "one"):
        with pytest.raises(SystemExit):
            fusion_table.parse_args(["--seeds", "0", text])
        err = capsys.readouterr().err
        assert "argument --seeds: " in err and (f"got {text}" in err or f"got '{text}'" in err), err


def test_a_fusion_arm_stopped_before_its_result_is_not_resumed_on_other_experts(tmp_path, monkeypatch, capsys):
    """With no result written (stopped during its training), the arm's run folder was resumed as it
    was after --expert_steps changed: fusion trained on, and evaluated as, the old experts'."""
    def fake_train(values, source, log=None):
        run = pathlib.Path(values["checkpoint"])
        assert not (run / "ckpt-1.index").exists(), f"{run.name}: a run of other settings was resumed"
        run.mkdir(parents=True, exist_ok=True)
        (run / "ckpt-1.index").write_text("trained")
        _leave_weights(values)
        return object()

    monkeypatch.setattr(fusion_table, "train_in_process", fake_train)
    monkeypatch.setattr(fusion_table, "evaluate_in_process", lambda run, overrides, **kwargs: _metrics(50.0))
    argv = ["--seeds", "0", "--methods", "ssma", "--num_train", "2", "--num_val", "2", "--fusion_steps", "2",
            "--height", "16", "--width", "32", "--output", str(tmp_path / "out")]
    results = tmp_path / "out" / "seed0" / "results"
    assert fusion_table.main(argv + ["--expert_steps", "3"]) == 0
    (results / "ssma.json").unlink()  # stopped before its result
    assert fusion_table.main(argv + ["--expert_steps", "5"]) == 0
    assert "ssma: " in capsys.readouterr().out.split("was made with other settings")[-2]
    (results / "ssma.json").unlink()
    (results / "ssma.settings.json").unlink()  # a run of a version that kept no record
    assert fusion_table.main(argv + ["--expert_steps", "5", "--recalibrate_bn", "50"]) == 0
    assert "has no record of what it was made with (an older version's run); training it again" in (
        capsys.readouterr().out)
    assert "batch-norm recalibration 50 batches;" in (tmp_path / "out" / "fusion_table.md").read_text()


def test_a_resumed_arm_gives_no_seconds_rather_than_those_of_its_last_part(tmp_path, monkeypatch, capsys):
    """An arm stopped before its result and resumed gave the seconds of the resumed part only
    (rebuild, export and evaluation: 8 s for a run of minutes; helper 135)."""
    def fake_train(values, source, log=None):
        run = pathlib.Path(values["checkpoint"])
        run.mkdir(parents=True, exist_ok=True)
        (run / "checkpoint").write_text('model_checkpoint_path: "ckpt-2"\n')  # the run's state file
        _leave_weights(values)
        return object()

    monkeypatch.setattr(fusion_table, "train_in_process", fake_train)
    monkeypatch.setattr(fusion_table, "evaluate_in_process", lambda run, overrides, **kwargs: _metrics(50.0))
    argv = ["--seeds", "0", "--methods", "ssma", "--num_train", "2", "--num_val", "2", "--fusion_steps", "2",
            "--expert_steps", "2", "--height", "16", "--width", "32", "--output", str(tmp_path / "out")]
    results = tmp_path / "out" / "seed0" / "results"
    assert fusion_table.main(argv) == 0
    assert isinstance(json.loads((results / "ssma.json").read_text())["train_seconds"], float)
    (results / "ssma.json").unlink()  # stopped before its result: resumed by the same command
    capsys.readouterr()
    assert fusion_table.main(argv) == 0
    assert "since it resumed; its time is not counted" in capsys.readouterr().out
    assert json.loads((results / "ssma.json").read_text())["train_seconds"] is None
    row = next(line for line in (tmp_path / "out" / "fusion_table.md").read_text().splitlines()
               if line.startswith("| SSMA |"))
    assert row.endswith("| – |")


def test_an_assembled_arm_writes_the_files_of_a_run(tmp_path, monkeypatch):
    """Before: Average and Maximum, assembled and not trained, left their config.yaml alone:
    `ssma-evaluate` of their folder said "a training run that has not saved a checkpoint yet"
    (helper 144)."""
    import keras

    from ssma_tf.checkpoints.loading import load_model
    from ssma_tf.models import AdapNetPP

    experts = []
    for index in range(2):
        path = tmp_path / f"expert{index}.weights.h5"
        keras.utils.set_random_seed(index)
        AdapNetPP(3).save_weights(str(path))
        experts.append(str(path))
    monkeypatch.setattr(fusion_table, "evaluate_in_process", lambda run, overrides, **kwargs: _metrics(50.0))
    for name in ("train.tfrecords", "val.tfrecords"):
        (tmp_path / name).write_bytes(name.encode())
    values = {"model": "SSMA", "fusion": "average", "num_classes": 3, "height": 32, "width": 32, "batch_size": 1,
              "max_iteration": 1, "learning_rate": 1e-3, "train_data": str(tmp_path / "train.tfrecords"),
              "checkpoint1": experts[0], "checkpoint2": experts[1], "checkpoint": str(tmp_path / "average")}
    fusion_table._arm("average", values, fusion_table.parse_args(["--seeds", "0"]), tmp_path, tmp_path, train=False)
    # final.json as a trained run's export writes it (helper 317: else a record left in the folder named another).
    assert {"config.yaml", "final.weights.h5", "final.keras", "final.json"} <= {p.name for p in
                                                                              (tmp_path / "average").iterdir()}
    from ssma_tf.config.runs import final_files_current

    assert final_files_current(tmp_path / "average")
    assert load_model(str(tmp_path / "average")).fusion == "average"
