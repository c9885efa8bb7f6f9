"""`ssma-prune`: one stage end to end on tiny records, resuming, and one-line errors on bad input."""

import json
import pathlib
import re
import shutil

import keras
import pytest

from ssma_tf.cli import prune as prune_cli
from ssma_tf.layers.initializers import overwritten_weights
from ssma_tf.models import AdapNetPP
from ssma_tf.pruning import staged
from ssma_tf.pruning.ranking import rank
from tests.training_helpers import smoke_config, write_records

SIZE = ["--set", "height=32", "--set", "width=64", "--set", "batch_size=2"]


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("prune")
    write_records(folder / "records" / "train.tfrecords", 4, height=32, width=64)
    write_records(folder / "records" / "test.tfrecords", 2, height=32, width=64, seed=1)
    keras.utils.set_random_seed(0)
    trained = AdapNetPP(5)
    trained.save_weights(folder / "trained.weights.h5")
    _RELEASED_PARAMS.append(trained.count_params())  # read by the tests (another build took ~10 s)
    return folder


_RELEASED_PARAMS = []  # how many weights AdapNetPP(5) has, as the run_folder fixture counted them


def other_weights(source, target, seed):
    """A copy of the weights file `source` with other weights in it (every convolution kernel
    drawn again): a valid file of the same network, as another AdapNetPP(5) saved would be,
    without building and saving one (~15 s each)."""
    import h5py
    import numpy as np

    if pathlib.Path(source) != pathlib.Path(target):
        shutil.copyfile(source, target)
    rng = np.random.default_rng(seed)
    with h5py.File(target, "r+") as weights:
        kernels = []
        weights.visititems(lambda name, item: kernels.append(item) if getattr(item, "ndim", 0) == 4 else None)
        for kernel in kernels:
            kernel[...] = rng.normal(0.0, 0.05, kernel.shape).astype(kernel.dtype)


def command(folder, *extra):
    return ["-c", str(smoke_config("adapnet_train.config")), "--checkpoint", str(folder / "trained.weights.h5"),
            "--test-data", str(folder / "records" / "test.tfrecords"), *SIZE, *extra]


def test_one_stage_writes_its_files_and_a_second_run_resumes(run_folder, monkeypatch, capsys):
    monkeypatch.chdir(run_folder)  # the smoke config's paths are relative
    losses = []

    def recording_rank(method, model, maps, batches=None, loss_fn=None):
        losses.append(loss_fn)
        return rank(method, model, maps, batches, loss_fn)

    monkeypatch.setattr(staged, "rank", recording_rank)
    loaded = []
    load = staged._load
    monkeypatch.setattr(staged, "_load", lambda path, redo: loaded.append(path) or load(path, redo))
    out = run_folder / "out"
    args = command(run_folder, "--stages", "block4:0.05", "-o", str(out), "--finetune-steps", "0",
                   "--rank-batches", "1", "--latency-runs", "1", "--channel-multiple", "8",
                   "--set", "aux_loss_weights=[0.3, 0.2]")
    assert prune_cli.main(args) == 0
    # Without fine-tuning, the pruned network is measured as it is and its file copied to
    # stage1.keras (before: read back from stage1/pruned.keras, then written again).
    assert loaded == []
    # The Taylor ranking differentiates the config's training loss, auxiliary weights included.
    assert [loss.aux_weights for loss in losses] == [(0.3, 0.2)]
    report = json.loads((out / "report.json").read_text())
    assert report["settings"]["channel_multiple"] == 8
    first, stage = report["stages"]
    assert stage["spec"] == "block4:0.05" and 4.5 < stage["param_reduction"] < 6.0
    assert stage["params"] < first["params"] and stage["gflops"] < first["gflops"]
    pruned = keras.saving.load_model(out / "stage1.keras", compile=False)
    assert pruned.count_params() < _RELEASED_PARAMS[0] and pruned.widths
    # Every pruned width stays a multiple of 8 (a masked residual: its kept channels; a
    # multiscale convolution: each rate group).
    for name, width in pruned.widths.items():
        counts = [len(width)] if isinstance(width, list) and "conv3" in name else width if isinstance(width, list) else [width]
        assert all(count % 8 == 0 for count in counts), (name, width)
    assert not [p for p in out.rglob("*") if ".tmp" in p.name or p.name.startswith(".")]
    # The stage's work folder is gone once its network is written (it kept every fine-tuning
    # checkpoint: 2 GB for two stages of AdapNet++).
    assert not (out / "stage1").exists()
    # The weights stage 0 was measured on: the file the checkpoint resolved to, and its digest.
    assert report["settings"]["weights"] == str(run_folder / "trained.weights.h5")
    assert len(report["settings"]["weights_sha256"]) == 16
    printed = capsys.readouterr().out
    assert "block4:0.05" in printed and (out / "pruning.png").is_file()
    # A stage's .keras file goes to ssma-evaluate with the folder's config (before: "not a training
    # run"; ssma-predict predicted at each image's size).
    from ssma_tf.cli import evaluate as evaluate_cli
    from ssma_tf.inference.settings import setup_inference

    assert setup_inference(checkpoint=out / "stage1.keras").size == (32, 64)
    assert evaluate_cli.main([str(out / "stage1.keras"), "--test_data", str(run_folder / "records" / "test.tfrecords"),
                              "--json", str(run_folder / "stage1.json")]) == 0
    assert json.loads((run_folder / "stage1.json").read_text())["mIoU"] == pytest.approx(stage["miou"], abs=0.01)
    capsys.readouterr()
    # The folder itself names its stages (before: "a training run that has not saved a checkpoint yet").
    assert evaluate_cli.main([str(out), "--test_data", str(run_folder / "records" / "test.tfrecords")]) == 2
    assert (f"{out} is the output of ssma-prune: give one of its stages' networks ({out / 'stage1.keras'}) to "
            "evaluate, predict or export it, or to ssma-prune --checkpoint to prune or fine-tune it further (a "
            "training config cannot start from a pruned network)" in capsys.readouterr().err)
    from ssma_tf.checkpoints import CheckpointError
    from ssma_tf.checkpoints.resolve import resolve_weights

    with pytest.raises(CheckpointError, match=r": it is the output of ssma-prune: give one of its stages' networks"):
        resolve_weights(str(out))  # -c CONFIG --checkpoint OUT, intialize: OUT
    # Run again: every stage is done, nothing is recomputed; a half-written stage network that a
    # kill left (as large as the network) is removed with a line saying so.
    from ssma_tf.files import temporary_name

    leftover = temporary_name(out / "stage1.keras")
    with open(leftover, "w") as stream:
        stream.write("half a network")
    assert prune_cli.main(args) == 0
    printed = capsys.readouterr().out
    assert "stage 1 (block4:0.05) is done" in printed
    assert f"removed {leftover}, left by an interrupted save" in printed and not pathlib.Path(leftover).exists()
    assert f"resuming {out / 'report.json'}: stage(s) 0, 1 measured there (stage 0: " in printed
    assert json.loads((out / "report.json").read_text()) == report
    # The same file with other weights (training went on into final.weights.h5): before, the
    # resumed run pruned them and reported the old stage 0 as their base.
    trained = (run_folder / "trained.weights.h5").read_bytes()
    other_weights(run_folder / "trained.weights.h5", run_folder / "trained.weights.h5", seed=2)
    try:
        assert prune_cli.main(args) == 2
        assert (f"(the weights in {run_folder / 'trained.weights.h5'} changed since stage 0 was measured on them)"
                in capsys.readouterr().err)
    finally:
        (run_folder / "trained.weights.h5").write_bytes(trained)
    # Other weights, fine-tuning or config values: the finished stages are not theirs (before: the
    # old table was printed as the new result).
    other_weights(run_folder / "trained.weights.h5", run_folder / "other.weights.h5", seed=1)
    changes = {"checkpoint": ["--checkpoint", str(run_folder / "other.weights.h5")],
               "finetune_learning_rate": ["--finetune-lr", "1e-6"], "config key": ["--set", "learning_rate=0.5"]}
    for key, change in changes.items():
        assert prune_cli.main(args + change) == 2
        error = capsys.readouterr().err
        assert f"report.json comes from another pruning run ({key} " in error, error
    # Each change with both values (before: "config_sha256 differ (before: config key learning_rate=0.001)").
    assert "(config key learning_rate 0.001 -> 0.5); give a new output folder or the same settings" in error
    assert prune_cli.main(args + changes["finetune_learning_rate"]) == 2
    assert "(finetune_learning_rate 0.001 -> 1e-06); give a new output folder" in capsys.readouterr().err
    # The config's own rate given as --finetune-lr, and a fraction typed otherwise, are the same
    # run (before: None and 0.001, 'block4:0.05' and 'block4:0.050' differed as text).
    stages_at = args.index("--stages") + 1
    assert prune_cli.main(args[:stages_at] + ["block4:0.050"] + args[stages_at + 1:] + ["--finetune-lr", "0.001"]) == 0
    assert "stage 1 (block4:0.050) is done" in capsys.readouterr().out
    assert json.loads((out / "report.json").read_text()) == report
    # The same config from another place is the same run (before: "source differ" refused it).
    moved = run_folder / "moved.config"
    moved.write_text(smoke_config("adapnet_train.config").read_text())
    assert prune_cli.main(["-c", str(moved)] + args[2:]) == 0
    assert "stage 1 (block4:0.05) is done" in capsys.readouterr().out
    assert json.loads((out / "report.json").read_text())["stages"] == report["stages"]
    # Another finished stage is refused; a stage list that a later stage made fail is mended and
    # run again into the same folder (before: "stages differ", a new folder and stage 0 again).
    stages_at = args.index("--stages") + 1
    assert prune_cli.main(args[:stages_at] + ["block4:0.1"] + args[stages_at + 1:]) == 2
    assert ("its stage 1 ('block4:0.05') is finished and this stage list gives 'block4:0.1'; give a new output "
            "folder, or a stage list that begins with the finished stages (block4:0.05)") in capsys.readouterr().err
    assert prune_cli.main(args[:stages_at] + ["block4:0.05", "block4:0.9"] + args[stages_at + 1:]) == 2
    printed = capsys.readouterr()
    assert "stage 2 ('block4:0.9') would remove every filter" in printed.err
    assert "stage 2 (block4:0.9): ranking" not in printed.out  # refused before its ranking line
    (out / "stage2").mkdir()
    (out / "stage2" / "pruned.keras").write_text("left by the refused stage list")
    assert prune_cli.main(args[:stages_at] + ["block4:0.05", "easpp:0.01"] + args[stages_at + 1:]) == 0
    printed = capsys.readouterr().out
    assert f"stage 2 is now 'easpp:0.01': removing {out / 'stage2'}, the unfinished work of another stage list" in printed
    mended = json.loads((out / "report.json").read_text())
    assert mended["stages"][:2] == report["stages"] and mended["stages"][2]["spec"] == "easpp:0.01"
    assert mended["settings"]["stages"] == ["block4:0.05", "easpp:0.01"] and (out / "stage2.keras").is_file()


def test_the_control_fine_tunes_the_unpruned_network_alike(run_folder, monkeypatch, capsys):
    monkeypatch.chdir(run_folder)
    out = run_folder / "control"
    args = command(run_folder, "--method", "none", "--stages", "block4:0.05", "-o", str(out),
                   "--finetune-steps", "1", "--latency-runs", "1")
    assert prune_cli.main(args) == 0
    first, stage = json.loads((out / "report.json").read_text())["stages"]
    assert stage["params"] == first["params"] and stage["param_reduction"] == 0.0
    assert "the control prunes nothing" in capsys.readouterr().out
    tuned = keras.saving.load_model(out / "stage1.keras", compile=False)
    with overwritten_weights():  # every weight is loaded right after
        start = AdapNetPP(5)
    start.load_weights(run_folder / "trained.weights.h5")
    # The same widths, but one fine-tuning step moved the weights.
    assert tuned.count_params() == start.count_params()
    assert any(not (a == b).all() for a, b in zip(tuned.get_weights(), start.get_weights()))
    # Training records rewritten in place since the stage was fine-tuned on them (before: the
    # old stage was reported as this run's).
    train_records = run_folder / "records" / "train.tfrecords"
    kept = train_records.read_bytes()
    try:
        write_records(train_records, 4, height=32, width=64, seed=6)
        capsys.readouterr()
        assert prune_cli.main(args) == 2
        assert ("(the training records changed since the finished stages were ranked or fine-tuned on them)"
                in capsys.readouterr().err)
    finally:
        train_records.write_bytes(kept)
    # Reports shown beside it (`--with`) that ran under another budget or pruned other weights
    # are named (before: only another model or checkpoint path was).
    report = json.loads((out / "report.json").read_text())
    older = {k: v for k, v in report["settings"].items() if k not in ("weights", "weights_sha256")}
    reports = {"longer": dict(report["settings"], finetune_steps=5),
               "other": dict(report["settings"], weights_sha256="0" * 16),
               # The same file copied elsewhere, and a report written before 2026-12-02 (test
               # records as typed, no weights file): the same network and budget, no warning.
               "copied": dict(report["settings"], weights="/elsewhere/trained.weights.h5"),
               "older": dict(older, test_data=["records/test.tfrecords"]),
               # An l1 run ranks on no batch: another --rank-batches is no difference (helper 136);
               # other stages are shown as typed.
               "l1": dict(report["settings"], method="l1", rank_batches=4),
               "stages": dict(report["settings"], stages=["block4:0.1", "all:0.1"])}
    for name, settings in reports.items():
        (run_folder / name).mkdir()
        (run_folder / name / "report.json").write_text(json.dumps(dict(report, settings=settings)))
    from ssma_tf.pruning import staged

    drawn = []
    real_plot = staged.plot
    monkeypatch.setattr(staged, "plot", lambda reports, path, labels: drawn.append(labels) or real_plot(
        reports, path, labels))
    assert prune_cli.main(args + ["--with", *(str(run_folder / name) for name in reports)]) == 0
    err = capsys.readouterr().err
    # The plot's legend says it too (before: the lines were drawn as if comparable).
    assert [label.partition(": ")[2] for label in drawn[0]] == ["", "other finetune_steps", "another network", "", "",
                                                                 "", "other stages"]
    assert (f"warning: --with {run_folder / 'longer'} ran with other settings (finetune_steps 5, here 1): the methods "
            "are not compared at the same budget") in err
    assert f"warning: --with {run_folder / 'other'} pruned another network" in err
    assert (f"warning: --with {run_folder / 'stages'} ran with other settings (stages block4:0.1 all:0.1, here "
            "block4:0.05): the methods are not compared at the same budget") in err
    assert err.count("warning: --with") == 3, err


def test_a_damaged_training_record_is_named(run_folder, monkeypatch, capsys):
    """The Taylor ranking and the fine-tuning read the training records: a damaged one was a
    TensorFlow DataLossError traceback (ssma-train names the file and the record)."""
    monkeypatch.chdir(run_folder)
    damaged = run_folder / "damaged.tfrecords"
    data = (run_folder / "records" / "train.tfrecords").read_bytes()
    damaged.write_bytes(data[: len(data) // 2 + 100])  # inside the third of four records
    args = command(run_folder, "--stages", "block4:0.05", "-o", str(run_folder / "damaged_out"), "--rank-batches", "1",
                   "--latency-runs", "1", "--finetune-steps", "1", "--set", f"train_data={damaged}")
    assert prune_cli.main(args) == 2
    assert f"error: {damaged}, record 2: damaged (truncated record at " in capsys.readouterr().err


@pytest.mark.parametrize("extra, message", [
    (["--stages", "block4:1.0"], "stage 1 ('block4:1.0'): the fraction 1 is a share of the whole network's weights"),
    (["--stages", "block4:0.1", "decoders:0.1"], "stage 2 ('decoders:0.1'): unknown scope 'decoders'"),
    (["--set", "num_classes=3"], "trained.weights.h5"),
    # Before: a traceback from the feature-map table after the model was evaluated.
    (["--set", "backbone=mobilenet_v2"], "pruning works on AdapNet++ and SSMA on the AdapNet++ backbone"),
    # Before: refused after stage 0's evaluation and the ranking, a report left behind.
    (["--stages", "fusion:0.1"], "stage 1 ('fusion:0.1'): the scope fusion holds SSMA's fusion blocks, and "
                                 "AdapNet_pp has none"),
    # Before: refused after stage 0's evaluation and the ranking, a report left behind.
    (["--stages", "stem:0.5"], "stage 1 ('stem:0.5') would remove every filter of conv1"),
])
def test_bad_input_is_one_line_naming_it(run_folder, monkeypatch, capsys, extra, message):
    monkeypatch.chdir(run_folder)
    assert prune_cli.main(command(run_folder, "-o", str(run_folder / "bad"), *extra)) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: ") and message in error and "\n" not in error
    # No report, and no config.yaml either: the folder would pass for a training run.
    assert not (run_folder / "bad" / "report.json").exists() and not (run_folder / "bad" / "config.yaml").exists()


def test_an_output_folder_another_prune_writes_is_refused(run_folder, monkeypatch, capsys):
    """Two ssma-prune runs into one folder both wrote report.json and the stage networks over
    each other (the training run's folder lock did not cover ssma-prune's --output)."""
    from ssma_tf.files import folder_lock_path
    from tests.conftest import lock_held_elsewhere

    monkeypatch.chdir(run_folder)
    out = run_folder / "busy"
    with lock_held_elsewhere(folder_lock_path(out, "prune")) as holder:
        assert prune_cli.main(command(run_folder, "-o", str(out), "--stages", "block4:0.05")) == 2
    error = capsys.readouterr().err.strip()
    assert error == (f"error: --output {out} is being written by another ssma-prune (process {holder.pid}): "
                     "wait for it to end, or give another output folder"), error
    assert not out.exists() or not any(out.iterdir())


def test_a_training_run_folder_is_not_an_output(run_folder, monkeypatch, capsys):
    """Its config.yaml was replaced by the pruned network's (with the prune's --set values)."""
    monkeypatch.chdir(run_folder)
    run = run_folder / "a_run"
    run.mkdir()
    (run / "config.yaml").write_text("model: AdapNet_pp\n")
    assert prune_cli.main(command(run_folder, "-o", str(run), "--stages", "block4:0.1")) == 2
    assert f"error: --output {run} holds a training run (its config.yaml); give ssma-prune a folder of its own" in \
        capsys.readouterr().err
    assert (run / "config.yaml").read_text() == "model: AdapNet_pp\n" and sorted(p.name for p in run.iterdir()) == [
        "config.yaml"]


@pytest.mark.parametrize("extra, message", [
    (["-o", "a_file/out"], "--output a_file/out: {folder}/a_file is a file, not a folder"),
    (["--with", "cut_short"], "--with cut_short: cannot read cut_short/report.json as a report of ssma-prune: "
                              "Unterminated"),
    # Before: a KeyError traceback after every stage had run.
    (["--with", "a_list"], "--with a_list: a_list/report.json is not a report of ssma-prune (it holds a JSON list, "
                           "not an object)"),
    (["--with", "no_numbers"], "--with no_numbers: no_numbers/report.json is not a report of ssma-prune (its stage 0 "
                               "lacks the number(s) gflops, latency_ms"),
    # Helper 99: read, then a KeyError: 'spec' in the table.
    (["--with", "no_spec"], "--with no_spec: no_spec/report.json is not a report of ssma-prune (its stage 1 has no "
                            "spec (the scopes and share it pruned))"),
    # Before: its rows were drawn twice.
    (["--with", "out"], "--with out is the --output folder; each folder is shown once"),
    (["--with", "a_list", "./a_list/"], "--with ./a_list/ is given before as a_list; each folder is shown once"),
])
def test_outputs_and_other_reports_are_checked_before_the_model_loads(run_folder, monkeypatch, capsys, extra,
                                                                      message):
    monkeypatch.chdir(run_folder)
    monkeypatch.setattr(staged, "run", lambda *args, **kwargs: pytest.fail("pruning started"))
    (run_folder / "a_file").write_text("")
    (run_folder / "cut_short").mkdir(exist_ok=True)
    (run_folder / "cut_short" / "report.json").write_text('{"method": "taylor", "sta')
    (run_folder / "a_list").mkdir(exist_ok=True)
    (run_folder / "a_list" / "report.json").write_text("[]")
    (run_folder / "no_numbers").mkdir(exist_ok=True)
    entry = {"stage": 0, "spec": None, "params": 10, "miou": 1.0, "param_reduction": 0, "miou_change": 0,
             "latency_ratio": 1}
    (run_folder / "no_numbers" / "report.json").write_text(json.dumps({"settings": {"method": "l1"},
                                                                       "stages": [entry]}))
    (run_folder / "no_spec").mkdir(exist_ok=True)
    full = dict(entry, gflops=1.0, latency_ms=1.0)
    (run_folder / "no_spec" / "report.json").write_text(json.dumps({"settings": {"method": "l1"}, "stages": [
        full, {k: v for k, v in dict(full, stage=1).items() if k != "spec"}]}))
    assert prune_cli.main(command(run_folder, "-o", "out", *extra)) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: {message.format(folder=run_folder)}") and error.count("\n") == 1


def test_a_resumed_run_names_a_damaged_file_and_loads_only_what_it_needs(run_folder, monkeypatch, capsys):
    """A damaged report or stage network was a JSON or Keras "File not found" traceback; a stage
    pruned before it was interrupted loaded the previous stage's network all the same."""
    monkeypatch.chdir(run_folder)
    out = run_folder / "interrupted"
    args = command(run_folder, "--method", "l1", "--stages", "block4:0.05", "easpp:0.02", "-o", str(out),
                   "--finetune-steps", "0", "--latency-runs", "1")
    measured = []

    def interrupting_flops(*arguments):  # stage 0, stage 1, then stage 2 stops before it is recorded
        measured.append(1)
        if len(measured) == 3:
            raise KeyboardInterrupt
        return flops(*arguments)

    flops = staged.flops
    monkeypatch.setattr(staged, "flops", interrupting_flops)
    assert prune_cli.main(args) == 130
    monkeypatch.setattr(staged, "flops", flops)
    assert (out / "stage2" / "pruned.keras").is_file() and not (out / "stage2.keras").exists()
    capsys.readouterr()
    loaded = []
    load = staged._load
    monkeypatch.setattr(staged, "_load", lambda path, redo: loaded.append(path) or load(path, redo))
    assert prune_cli.main(args) == 0
    assert f"stage 2 (easpp:0.02): pruned before, in {out / 'stage2' / 'pruned.keras'}" in capsys.readouterr().out
    assert loaded == [out / "stage2" / "pruned.keras"]  # not stage1.keras, nor the trained weights
    # A stage network pruned again: its first row is not "unpruned".
    again = command(run_folder, "--method", "l1", "--stages", "block4:0.02", "-o", str(run_folder / "again"),
                    "--finetune-steps", "0", "--latency-runs", "1")
    again[again.index("--checkpoint") + 1] = str(out / "stage1.keras")
    assert prune_cli.main(again) == 0
    printed = capsys.readouterr().out
    assert "stage 0 (pruned before): " in printed and "l1       pruned before" in printed, printed
    # A finished stage's network removed while the stage after it is finished: not redone (its
    # new network would stand beside a stage 2 pruned from the old one).
    report = (out / "report.json").read_text()
    (out / "stage1.keras").unlink()
    assert prune_cli.main(args) == 0
    assert (f"stage 1 (block4:0.05) is done: {out / 'stage1.keras'} is gone, but the finished stage(s) after it "
            "started from it") in capsys.readouterr().out
    assert (out / "report.json").read_text() == report and not (out / "stage1.keras").exists()
    # Test records rewritten in place since the stages were measured.
    test_records = run_folder / "records" / "test.tfrecords"
    kept = test_records.read_bytes()
    try:
        write_records(test_records, 2, height=32, width=64, seed=5)
        assert prune_cli.main(args) == 2
        assert "(the test records changed since the finished stages were measured on them)" in capsys.readouterr().err
    finally:
        test_records.write_bytes(kept)
    # Training records rewritten: l1 without fine-tuning never read them, so the run resumes.
    train_records = run_folder / "records" / "train.tfrecords"
    kept = train_records.read_bytes()
    try:
        write_records(train_records, 4, height=32, width=64, seed=6)
        assert prune_cli.main(args) == 0
    finally:
        train_records.write_bytes(kept)
    # Nor did it rank on batches: another --rank-batches is the same run (helper 99: refused).
    assert prune_cli.main(args + ["--rank-batches", "2"]) == 0
    # A damaged stage network that a later stage starts from.
    data = (out / "stage2.keras").read_bytes()
    (out / "stage2.keras").write_bytes(data[: len(data) // 2])
    stages_at = args.index("--stages") + 1
    longer = args[:stages_at] + ["block4:0.05", "easpp:0.02", "block3:0.01"] + args[stages_at + 2:]
    assert prune_cli.main(longer) == 2
    error = capsys.readouterr().err
    assert (f"error: cannot read the model file {out / 'stage2.keras'}: not a whole .keras (zip) archive" in error
            and error.rstrip().endswith("; remove it and ssma-prune redoes stage 2")), error
    # A damaged report.
    (out / "report.json").write_text('{"settings": {"method": "l1"}, "sta')
    assert prune_cli.main(args) == 2
    assert (f"error: --output {out}: cannot read {out / 'report.json'} as a report of ssma-prune: Unterminated"
            in capsys.readouterr().err)
    (out / "report.json").write_text("3")
    assert prune_cli.main(args) == 2
    assert "(it holds a JSON int, not an object)" in capsys.readouterr().err


def test_a_stage_list_changed_and_stopped_again_is_not_taken_for_the_old_one(run_folder, monkeypatch, capsys):
    """Helper 99: the report took the new stage list only with the next result, so a run of
    another stage 2 stopped after its surgery left the old list, and the old list run again took
    that network (the decoder pruned) for its own stage 2 (the eASPP)."""
    monkeypatch.chdir(run_folder)
    out = run_folder / "changed"

    def args(stage2):
        return command(run_folder, "--method", "l1", "--stages", "block4:0.05", stage2, "-o", str(out),
                       "--finetune-steps", "0", "--latency-runs", "1")

    flops = staged.flops
    for stage2 in ("easpp:0.01", "decoder:0.02"):  # each stopped at stage 2's measurement
        measured = []

        def interrupting_flops(*arguments):
            measured.append(1)
            if len(measured) == (3 if stage2 == "easpp:0.01" else 1):
                raise KeyboardInterrupt
            return flops(*arguments)

        monkeypatch.setattr(staged, "flops", interrupting_flops)
        assert prune_cli.main(args(stage2)) == 130
        assert (out / "stage2" / "pruned.keras").is_file()
    monkeypatch.setattr(staged, "flops", flops)
    assert json.loads((out / "report.json").read_text())["settings"]["stages"] == ["block4:0.05", "decoder:0.02"]
    capsys.readouterr()
    assert prune_cli.main(args("easpp:0.01")) == 0
    printed = capsys.readouterr().out
    assert (f"stage 2 is now 'easpp:0.01': removing {out / 'stage2'}, the unfinished work of another stage list "
            "('decoder:0.02')") in printed, printed


def test_a_negative_finetune_learning_rate_is_refused(run_folder, capsys):
    with pytest.raises(SystemExit):
        prune_cli.main(command(run_folder, "-o", str(run_folder / "bad"), "--finetune-lr", "-0.001"))
    assert "--finetune-lr must be positive, got -0.001" in capsys.readouterr().err


def test_a_semi_supervised_or_adaptation_config_is_refused_before_any_work(run_folder, monkeypatch, capsys):
    """Helper 114: its stages were fine-tuned with the supervised loss alone (no teacher, no target
    images), exit 0, while each stage's config.yaml said the config's method."""
    monkeypatch.setattr(staged, "evaluate", lambda *a, **k: pytest.fail("stage 0 evaluated"))
    monkeypatch.chdir(run_folder)  # the smoke config's paths are relative
    records = str(run_folder / "records" / "train.tfrecords")
    for section, sets in (("semi_supervised", ["semi_supervised={method: classmix}", f"unlabeled_data={records}"]),
                          ("adaptation", ["adaptation={method: abn}", f"target_data={records}"])):
        out = run_folder / f"refused_{section}"
        flags = [flag for value in sets for flag in ("--set", value)]
        assert prune_cli.main(command(run_folder, "-o", str(out), "--method", "l1", "--stages", "block4:0.05",
                                      *flags)) == 2
        assert not out.exists()
        assert (f"key '{section}': is set, but ssma-prune fine-tunes each stage with the supervised protocol (the "
                f"labels of train_data only), not ") in capsys.readouterr().err


def test_a_channel_multiple_below_one_is_refused(run_folder, capsys):
    with pytest.raises(SystemExit):
        prune_cli.main(command(run_folder, "-o", str(run_folder / "bad"), "--channel-multiple", "0"))
    assert "--channel-multiple must be at least 1" in capsys.readouterr().err


def test_missing_test_records_are_named(run_folder, monkeypatch, capsys):
    monkeypatch.chdir(run_folder)
    args = command(run_folder, "-o", str(run_folder / "bad"))
    args[args.index("--test-data") + 1] = "records/missing-*.tfrecords"
    assert prune_cli.main(args) == 2
    assert "records/missing-*.tfrecords' match no file" in capsys.readouterr().err


def test_a_report_of_an_earlier_version_is_not_resumed(run_folder, monkeypatch, capsys):
    """Its stages counted some weights twice and it records no weights: a new folder is asked for."""
    monkeypatch.chdir(run_folder)
    old = run_folder / "old"
    old.mkdir()
    (old / "report.json").write_text(json.dumps({"settings": {"method": "taylor", "stages": ["block4:0.05"]},
                                                 "stages": []}))
    assert prune_cli.main(command(run_folder, "--stages", "block4:0.05", "-o", str(old))) == 2
    assert "report.json was written by an earlier version of ssma-prune" in capsys.readouterr().err


def test_reports_of_one_method_or_of_other_networks_are_told_apart_by_their_folders():
    """Two lines "taylor" in the table and the plot: an AdapNet++ run and an SSMA one (`--with`)."""
    def report(method, model):
        return {"settings": {"method": method, "model": model, "checkpoint": f"/runs/{model}"},
                "stages": [{"stage": 0, "spec": None, "params": 10, "param_reduction": 0.0, "gflops": 1.0,
                            "miou": 50.0, "miou_change": 0.0, "latency_ratio": 1.0}]}

    assert staged.report_labels([report("taylor", "a"), report("l1", "a")], ["out/t", "out/l"]) == ["taylor", "l1"]
    reports = [report("taylor", "AdapNet_pp"), report("taylor", "SSMA")]
    labels = staged.report_labels(reports, ["pruned/rgb/", "pruned/ssma"])
    assert labels == ["taylor (rgb)", "taylor (ssma)"]
    rows = staged.format_table(reports, labels).splitlines()
    assert rows[1].startswith("taylor (rgb)  unpruned") and rows[2].startswith("taylor (ssma) unpruned")
    assert staged.report_labels([report("l1", "a"), report("l1", "a")], ["x/one", "x/two"]) == ["l1 (one)", "l1 (two)"]
    assert staged.report_labels(reports, ["a/taylor", "b/taylor/"]) == ["taylor (a/taylor)", "taylor (b/taylor)"]


def test_the_plots_ticks_fall_on_round_values():
    """They fell at a fifth of the data's range (+5.17, +3.98, -0.15)."""
    assert staged.nice_ticks(-5.17, 3.98) == [-6.0, -4.0, -2.0, 0.0, 2.0, 4.0]
    assert staged.nice_ticks(0.0, 23.31) == [0.0, 5.0, 10.0, 15.0, 20.0, 25.0]
    ticks = staged.nice_ticks(-0.5, 0.5)
    assert ticks == [-0.6, -0.4, -0.2, 0.0, 0.2, 0.4, 0.6] and staged._tick_text(-0.2, ticks, sign=True) == "-0.2"
    assert staged._tick_text(10.0, staged.nice_ticks(0.0, 19.0)) == "10"
    assert staged._tick_text(0.5, staged.nice_ticks(-0.75, 0.75, most=7)) == "0.50"


def test_a_pruned_ssma_fine_tunes_its_own_experts_not_the_configs_checkpoints(tmp_path, monkeypatch):
    """A stage-2 config names the experts' unimodal files as `checkpoints: [a, b]`; the fine-tuning
    of each stage cleared `checkpoint1`/`2` but not that key, so the pruned SSMA's experts were
    loaded again from the files and every stage was measured on another network."""
    import numpy as np
    import yaml

    from ssma_tf.models import SSMA

    monkeypatch.chdir(tmp_path)
    write_records(tmp_path / "train.tfrecords", 2, height=32, width=64, fusion=True)
    keras.utils.set_random_seed(1)
    expert = AdapNetPP(5)
    expert.save_weights(tmp_path / "rgb.weights.h5")
    # The depth expert's file: a copy (another network would only take time to build).
    (tmp_path / "depth.weights.h5").write_bytes((tmp_path / "rgb.weights.h5").read_bytes())
    keras.utils.set_random_seed(3)
    trained = SSMA(5, freeze_experts=False)
    trained.save_weights(tmp_path / "trained.weights.h5")
    (tmp_path / "ssma.config").write_text(yaml.safe_dump({
        "model": "SSMA", "num_classes": 5, "checkpoint": "run", "train_data": "train.tfrecords", "batch_size": 2,
        "height": 32, "width": 64, "max_iteration": 2, "learning_rate": 0.001, "freeze_experts": False,
        "save_step": 2, "skip_step": 1, "checkpoints": ["rgb.weights.h5", "depth.weights.h5"]}))
    assert prune_cli.main(["-c", "ssma.config", "--checkpoint", "trained.weights.h5", "--test-data",
                           "train.tfrecords", "--method", "none", "--stages", "decoder:0.01", "-o", "out",
                           "--finetune-steps", "1", "--finetune-lr", "1e-12", "--latency-runs", "1"]) == 0
    tuned = keras.saving.load_model(tmp_path / "out" / "stage1.keras", compile=False)

    def kernel(encoder):  # the first convolution's
        return next(np.asarray(w) for w in encoder.weights if w.path == "conv1/conv/kernel")

    np.testing.assert_allclose(kernel(tuned.encoders[0]), kernel(trained.encoders[0]), atol=1e-6)  # 1e-12 leaves it
    assert not np.allclose(kernel(tuned.encoders[0]), kernel(expert.encoder), atol=1e-3)


def test_test_records_are_matched_as_the_other_commands_match_them(tmp_path):
    """Before: glob alone: an existing 'data [v2]/val.tfrecords' matched no file, and a folder
    passed the check (helper 136)."""
    from ssma_tf.errors import UserInputError
    from ssma_tf.pruning.staged import _check_test_data

    folder = tmp_path / "data [v2]"
    folder.mkdir()
    (folder / "val.tfrecords").write_bytes(b"")
    assert _check_test_data([str(folder / "val.tfrecords")]) == (str(folder / "val.tfrecords"),)
    with pytest.raises(UserInputError, match=re.escape(f"test records {str(folder)!r} is a folder; give its record "
                                                       f"files, e.g. {str(folder / '*.tfrecords')!r}")):
        _check_test_data([str(folder)])


@pytest.mark.parametrize("left", [("stage1", "stage1.keras"), ("config.yaml",)])
def test_a_pruning_folder_without_its_report_is_not_taken_up(run_folder, monkeypatch, capsys, left):
    """Before: a run into a folder whose report.json was gone fine-tuned the stage network another
    run left there and reported it as its own method and stages; with ssma-prune's config.yaml
    alone, the folder was called a training run's (helper 136)."""
    from ssma_tf.config.runs import write_run_config
    from ssma_tf.config import load_config

    monkeypatch.chdir(run_folder)
    out = run_folder / f"left_{len(left)}"
    out.mkdir()
    for name in left:
        if name == "config.yaml":
            write_run_config(load_config(smoke_config("adapnet_train.config"), check_paths=False), out,
                             header=staged._HEADER)
        elif name.endswith(".keras"):
            (out / name).write_bytes(b"")
        else:
            (out / name).mkdir()
    assert prune_cli.main(command(run_folder, "--stages", "block4:0.05", "-o", str(out))) == 2
    named = ", ".join(left)
    assert capsys.readouterr().err == (
        f"error: --output {out} holds a pruning run whose report.json is missing ({named}): what it did is not known; "
        "give a new output folder, or remove that one to start again\n")


def test_the_plots_legend_fits_long_labels_and_tells_many_methods_apart(tmp_path):
    """Helper 195: the legend started at 6 px a character left of the frame's edge, off the picture
    for labels holding run folders; five colours repeated from the sixth method on."""
    import numpy as np
    from PIL import Image

    reports = [{"stages": [{"stage": 1, "param_reduction": 2.0 * k, "miou_change": -0.1 * k}]} for k in range(12)]
    labels = [f"taylor (/data/experiments/2025-ablation/cityscapes/ssma_rgb_depth/pruning_runs/{k}/taylor): another "
              "network" for k in range(12)]
    path = staged.plot(reports, tmp_path / "pruning.png", labels)
    image = np.asarray(Image.open(path).convert("RGB")).astype(int)
    legend = image[32:32 + 16 * 11]  # one line per method, above the frame
    inked = np.nonzero((legend < 250).any(axis=2).any(axis=0))[0]
    assert inked.min() >= 6 and inked.max() < image.shape[1], (inked.min(), inked.max())
    # Ten colours, then the first ones again with another marker (a square: its corner is inked).
    expected = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14), (140, 86, 75),
                (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207), (31, 119, 180), (214, 39, 40)]
    for k, colour in enumerate(expected):
        y = 32 + 16 * k + 6
        start = int(np.nonzero((image[y] < 250).any(axis=1))[0][0])  # the marker's left edge
        assert tuple(image[y, start + 4]) == colour, k
        corner = tuple(image[y + 4, start + 8])
        assert (corner == colour) == (k >= 10), (k, corner)


def test_a_plot_path_in_the_way_is_refused_and_a_stopped_fine_tuning_is_one_line(run_folder, monkeypatch, capsys):
    """Helper 273: a folder at OUT/pruning.png was found after every stage had run, the table lost
    with it; a fine-tuning stopped by a NaN loss, a divergence or a full disk was a traceback."""
    from ssma_tf.training.trainer import NonFiniteLossError

    monkeypatch.chdir(run_folder)
    out = run_folder / "plot_in_the_way"
    (out / "pruning.png").mkdir(parents=True)
    monkeypatch.setattr(staged, "run", lambda *a, **k: pytest.fail("the stages ran"))
    assert prune_cli.main(command(run_folder, "--stages", "block4:0.05", "-o", str(out))) == 2
    assert capsys.readouterr().err == (f"error: {out / 'pruning.png'} is a folder, where ssma-prune writes its plot: "
                                       "remove it, or give another --output\n")

    def stopped(*args, **kwargs):
        raise NonFiniteLossError("loss is nan at step 2; training stopped without saving (none kept). Lower "
                                 "learning_rate, check the labels and images of train_data, or start again")

    monkeypatch.setattr(staged, "run", stopped)
    assert prune_cli.main(command(run_folder, "--stages", "block4:0.05", "-o", str(run_folder / "nan"))) == 1
    assert capsys.readouterr().err == (
        "error: loss is nan at step 2; training stopped without saving (none kept). Lower the fine-tuning's rate "
        "(--finetune-lr), check the labels and images of train_data, or start again\n")


@pytest.mark.parametrize("model, starting", [
    ("AdapNet_pp", {"intialize": "gone_init.ckpt"}),
    ("AdapNet_pp", {"finetune_from": "gone_run/final.weights.h5"}),
    ("SSMA", {"checkpoints": ["gone_rgb.weights.h5", "gone_depth.weights.h5"]}),
    ("SSMA", {"checkpoint1": "gone_rgb.weights.h5", "checkpoint2": "gone_depth.weights.h5"}),
])
def test_starting_weights_that_are_gone_are_no_reason_to_refuse(run_folder, monkeypatch, capsys, model, starting):
    """ssma-prune never reads them (stage 0 is --checkpoint, the fine-tuning clears them): a
    trained run whose ImageNet initialisation or expert files were gone was refused ("key
    'intialize': no checkpoint at ..."), while ssma-evaluate took its config. They stay in the
    config, whose digest (config_sha256) is as before; the other paths are still checked."""
    import yaml

    from ssma_tf.config import load_config
    from ssma_tf.config.reader import parse_overrides
    from ssma_tf.errors import UserInputError

    monkeypatch.chdir(run_folder)
    given = []

    def pruned(config, *args, **kwargs):
        given.append(config)
        raise UserInputError("stopped before any model")

    monkeypatch.setattr(staged, "run", pruned)
    keys = {"model": model, "num_classes": 5, "checkpoint": "checkpoints/gone", "train_data": "records/train.tfrecords",
            "batch_size": 2, "height": 32, "width": 64, "max_iteration": 2, "learning_rate": 0.001, "save_step": 2,
            "skip_step": 1}
    (run_folder / "gone.config").write_text(yaml.safe_dump(dict(keys, **starting)))
    args = ["-c", "gone.config", "--checkpoint", "trained.weights.h5", "--test-data", "records/test.tfrecords",
            "-o", "gone_out"]
    assert prune_cli.main(args) == 2
    assert capsys.readouterr().err == "error: stopped before any model\n"
    name = "initialize" if "intialize" in starting else next(iter(starting))
    assert getattr(given[0], name) is not None  # kept: the digest of the config is the run's
    # A --set naming a file that is gone is not looked for either (the other spelling replaces the file's).
    assert prune_cli.main(args + ["--set", "initialize=gone_too.ckpt"] * ("intialize" in starting)) == 2
    assert capsys.readouterr().err == "error: stopped before any model\n"
    # The other paths are checked as before.
    (run_folder / "gone.config").write_text(yaml.safe_dump(dict(keys, train_data="records/gone.tfrecords",
                                                                **starting)))
    assert prune_cli.main(args) == 2
    assert "key 'train_data': no file matches" in capsys.readouterr().err
    if model == "SSMA":  # a config's warning is said once (the load that checks the paths says none)
        (run_folder / "gone.config").write_text(yaml.safe_dump(dict(keys, aux_loss_weights=[0.3, 0.2], **starting)))
        assert prune_cli.main(args) == 2
        assert capsys.readouterr().err.count("aux_loss_weights weighs the auxiliary heads' losses") == 1
    # A config whose files are there: the config as the checked load gives it (so its digest too).
    assert prune_cli.main(command(run_folder, "-o", "gone_out")) == 2
    assert given[-1].to_dict() == load_config(smoke_config("adapnet_train.config"), "train",
                                              overrides=parse_overrides(SIZE[1::2])).to_dict()


def test_other_runs_settings_are_named_not_their_digests(run_folder, monkeypatch, capsys):
    """The `--with` warning showed "config_sha256 '0912f15134573bf3', here 'f7ad0557a5938ff2'" and
    the records' digests; it names the config keys that differ, as a resumed run's refusal does."""
    monkeypatch.chdir(run_folder)
    entry = {"stage": 0, "spec": None, "params": 10, "param_reduction": 0.0, "gflops": 1.0, "latency_ms": 1.0,
             "miou": 50.0, "miou_change": 0.0, "latency_ratio": 1.0}
    ours = {"method": "taylor", "model": "AdapNet_pp", "checkpoint": "/w.weights.h5", "weights": "/w.weights.h5",
            "weights_sha256": "a" * 16, "stages": ["block4:0.05"], "finetune_steps": 1, "rank_batches": 8,
            "finetune_learning_rate": 1e-4, "test_data": ["/t.tfrecords"], "config_sha256": "1" * 16,
            "config": {"learning_rate": 0.001, "height": 32}, "test_data_sha256": "b" * 16,
            "train_data_sha256": "c" * 16}
    others = {"config": dict(ours, config_sha256="2" * 16, config={"learning_rate": 0.5, "height": 32}),
              "records": dict(ours, test_data_sha256="d" * 16, train_data_sha256="e" * 16),
              "changed": dict(ours, weights_sha256="f" * 16)}
    for name, settings in others.items():
        (run_folder / "digests" / name).mkdir(parents=True, exist_ok=True)
        (run_folder / "digests" / name / "report.json").write_text(json.dumps({"settings": settings,
                                                                              "stages": [entry]}))
    monkeypatch.setattr(staged, "run", lambda *a, **k: {"settings": ours, "stages": [entry]})
    monkeypatch.setattr(staged, "plot", lambda reports, path, labels: path)
    folders = [str(run_folder / "digests" / name) for name in others]
    assert prune_cli.main(command(run_folder, "-o", str(run_folder / "digests" / "here"), "--with", *folders)) == 0
    err = capsys.readouterr().err
    assert (f"warning: --with {folders[0]} ran with other settings (config key learning_rate 0.5, here 0.001): the "
            "methods are not compared at the same budget") in err, err
    assert (f"warning: --with {folders[1]} ran with other settings (the test records differ; the training records "
            "differ): the methods are not compared at the same budget") in err, err
    assert (f"warning: --with {folders[2]} pruned another network (model AdapNet_pp, weights /w.weights.h5: the "
            "weights differ); its rows are not comparable") in err, err
    assert "_sha256" not in err
