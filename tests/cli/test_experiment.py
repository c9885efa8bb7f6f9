"""The run machinery of the demo and the experiments (no training here: the commands are faked)."""

from __future__ import annotations

import io
import re
import json
import os
import pathlib
import sys

import pytest
import yaml

from ssma_tf.cli import experiment
from ssma_tf.config import config_from_dict, load_config
from ssma_tf.config.run import DECLARED
from ssma_tf.config.runs import write_run_config
from ssma_tf.constants import FINAL_MODEL, RUN_CONFIG
from tests.conftest import ROOT


def test_a_config_is_written_in_the_given_order_or_sorted(tmp_path):
    values = {"model": "SSMA", "num_classes": 7, "checkpoint": "runs/a", "adaptation": {"method": "abn"}}
    path = experiment.write_config(tmp_path / "configs" / "seed0" / "a.config", values)
    assert path == tmp_path / "configs" / "seed0" / "a.config"
    assert path.read_text(encoding="utf-8") == (
        "model: SSMA\nnum_classes: 7\ncheckpoint: runs/a\nadaptation:\n  method: abn\n")
    experiment.write_config(path, values, sort_keys=True)
    assert list(yaml.safe_load(path.read_text(encoding="utf-8"))) == ["adaptation", "checkpoint", "model",
                                                                      "num_classes"]
    assert [p.name for p in path.parent.iterdir()] == ["a.config"]  # no temporary file left


def _recording(monkeypatch, seconds=12.5):
    calls = []

    def fake(command, args, *, step=None, log=None):
        calls.append((command, [str(a) for a in args], step, log))
        return seconds

    monkeypatch.setattr(experiment, "run_command", fake)
    return calls


def test_a_run_is_trained_unless_it_is_finished_with_the_same_settings(tmp_path, monkeypatch, capsys):
    calls = _recording(monkeypatch)
    run = tmp_path / "runs" / "a"
    values = {"model": "AdapNet_pp", "checkpoint": str(run), "max_iteration": 200}
    config = tmp_path / "configs" / "a.config"
    assert experiment.train_run(values, config, step="train a", log=tmp_path / "a.log") == 12.5
    assert calls == [("ssma-train", ["-c", str(config)], "train a", tmp_path / "a.log")]
    assert yaml.safe_load(config.read_text(encoding="utf-8")) == values
    # Stopped halfway (checkpoints, no exported weights): trained again, which resumes it.
    run.mkdir(parents=True)
    (run / "ckpt-100.index").write_text("")
    assert not experiment.is_finished(run)
    assert experiment.train_run(values, config, step="train a") == 12.5 and len(calls) == 2
    # Finished with these settings: nothing runs.
    (run / "final.weights.h5").write_text("")
    assert experiment.is_finished(run)
    assert experiment.train_run(values, config, step="train a") is None and len(calls) == 2
    # Finished with other settings (before: reused, its numbers printed under the new ones): the
    # run goes and is trained anew under the new config.
    assert experiment.train_run(dict(values, max_iteration=400), config, step="train a") == 12.5
    assert len(calls) == 3 and not run.exists()  # the fake trainer wrote nothing
    assert yaml.safe_load(config.read_text(encoding="utf-8")) == dict(values, max_iteration=400)
    assert "was trained with other settings than" in capsys.readouterr().out


def _streaming_child(output: str, status: int) -> type:
    """A stand-in for `subprocess.Popen` of a step whose output is streamed: `output`, then `status`."""
    class Child:
        def __init__(self, argv, **kwargs):
            self.stdout = io.StringIO(output)

        def wait(self):
            return status

    return Child


def test_a_command_runs_as_a_child_with_its_output_logged_or_streamed(tmp_path, monkeypatch, capsys):
    seen = {}

    class FakeLoggedPopen:
        def __init__(self, argv, env, stdout, stderr, **kwargs):
            seen.update(argv=argv, pythonpath=env["PYTHONPATH"])
            stdout.write("a line of the child\n")

        def wait(self):
            return 0

    monkeypatch.setattr(experiment.subprocess, "Popen", FakeLoggedPopen)
    log = tmp_path / "logs" / "train.log"
    experiment.run_command("ssma-train", ["-c", tmp_path / "a b.config"], step="train a", log=log)
    assert seen["argv"] == [sys.executable, "-m", "ssma_tf.cli.train", "-c", str(tmp_path / "a b.config")]
    assert seen["pythonpath"].split(os.pathsep)[0] == str(pathlib.Path(experiment.__file__).resolve().parents[2])
    assert log.read_text() == "a line of the child\n" and capsys.readouterr().out == ""

    monkeypatch.setattr(experiment.subprocess, "Popen", _streaming_child(
        "I0000 00:00 port.cc:153] oneDNN custom operations are on\nstep 1/2 loss 1.9\n", 0))
    experiment.run_command("ssma-evaluate", ["-c", "x.config"], step="evaluate a")
    out = capsys.readouterr().out
    assert "=== evaluate a\n$ ssma-evaluate -c x.config\n" in out and "  step 1/2 loss 1.9\n" in out
    assert "oneDNN" not in out


def _child_target(folder, how):
    """What `run_in_child` runs in the test below (a module-level function: it is pickled)."""
    from ssma_tf.errors import UserInputError

    pathlib.Path(folder, "pid").write_text(str(os.getpid()))
    if how == "bad input":
        raise UserInputError("the value 7 is too large", path="a.config")
    if how == "bug":
        raise RuntimeError("a bug")


def test_a_step_runs_in_a_child_process_that_ends_as_a_command_does(tmp_path, capfd):
    """Helper 208: the fusion table trained and evaluated every arm in one process, whose memory
    grew by 130 to 300 MB an arm; each arm runs in a child process now (`run_in_child`)."""
    experiment.run_in_child(_child_target, str(tmp_path), "fine", step="arm a")
    assert int((tmp_path / "pid").read_text()) != os.getpid()
    with pytest.raises(SystemExit) as exited:
        experiment.run_in_child(_child_target, str(tmp_path), "bad input", step="arm b")
    assert exited.value.code == 2
    err = capfd.readouterr().err
    assert "error: a.config: the value 7 is too large\n" in err and "Traceback" not in err
    assert "step 'arm b' failed (exit 2); see its output above" in err
    with pytest.raises(SystemExit) as exited:
        experiment.run_in_child(_child_target, str(tmp_path), "bug", step="arm c")
    assert exited.value.code == 1
    err = capfd.readouterr().err
    assert "RuntimeError: a bug" in err and "step 'arm c' failed (exit 1)" in err


def test_a_failed_command_names_its_step_and_its_output(tmp_path, monkeypatch, capsys):
    class Ended:
        def __init__(self, argv, **kwargs):
            pass

        def wait(self):
            return self.status

    for child, status in ((3, 1), (2, 2), (130, 130), (143, 143)):  # a bad input, Ctrl-C, SIGTERM: kept
        monkeypatch.setattr(experiment.subprocess, "Popen", type("Child", (Ended,), {"status": child}))
        with pytest.raises(SystemExit) as stopped:
            experiment.run_command("ssma-train", ["-c", "a.config"], step="train a", log=tmp_path / "train.log")
        assert stopped.value.code == status
        assert re.fullmatch(rf"step 'train a' failed \(exit {child}\); see .*train\.log\n", capsys.readouterr().err)

    monkeypatch.setattr(experiment.subprocess, "Popen", _streaming_child(
        "I0000 00:00 cuda_platform.cc:52] failed call to cuInit\n"
        "error: CUDA_ERROR_OUT_OF_MEMORY: out of memory (batch_size 8)\n", 1))
    with pytest.raises(SystemExit):
        experiment.run_command("ssma-train", ["-c", "a.config"], step="train a")
    out = capsys.readouterr().out
    assert "CUDA_ERROR_OUT_OF_MEMORY" in out and "cuInit" not in out  # the error is shown "above"
    with pytest.raises(KeyError):
        experiment.run_command("ssma-nothing", [])


# Training configs as the experiments write them, and the eval config each built by hand before
# it evaluated through the run's own config: the keys it picked, the test data and the batch.
_DATA = {"train_data": "data/train.tfrecords", "dataset": "synthetic", "num_classes": 7}
_CASES = {
    "adaptation demo, SSMA arm": (
        dict(_DATA, model="SSMA", height=48, width=96, batch_size=8, max_iteration=300, learning_rate=1e-3,
             save_step=200, skip_step=25, power=0.9, seed=0, checkpoint1="rgb/final.weights.h5",
             checkpoint2="depth/final.weights.h5", freeze_experts=False, modality2_interpolation="nearest",
             target_data="target/train.tfrecords", adaptation={"method": "abn"}),
        ("model", "num_classes", "dataset", "height", "width", "input_modality")),
    "semi-supervised experiment, SSMA with ClassMix": (
        dict(_DATA, model="SSMA", freeze_experts=False, height=32, width=64, batch_size=4, max_iteration=200,
             learning_rate=1e-3, power=0.9, save_step=200, skip_step=25, seed=1, labeled_subset="s.txt",
             semi_supervised={"method": "classmix"}, unlabeled_data="data/train.tfrecords"),
        ("model", "num_classes", "dataset", "height", "width", "input_modality")),
    "fusion table, MobileNet v2 experts and a narrow decoder": (
        dict(_DATA, height=48, width=96, batch_size=8, learning_rate=1e-3, power=0.9, skip_step=20,
             backbone="mobilenet_v2", decoder_filters=64, recalibrate_batch_norm=25, seed=0, model="SSMA",
             fusion="ssma", max_iteration=600, save_step=600, checkpoint1="rgb/final.weights.h5",
             checkpoint2="depth/final.weights.h5"),
        ("model", "fusion", "num_classes", "dataset", "height", "width", "input_modality", "aux_heads",
         "backbone", "decoder_filters")),
    "fusion table, late fusion": (
        dict(_DATA, height=48, width=96, batch_size=8, learning_rate=1e-3, power=0.9, skip_step=20, seed=1,
             model="SSMA", fusion="late", max_iteration=200, save_step=200, checkpoint1="rgb/final.weights.h5",
             checkpoint2="depth/final.weights.h5"),
        ("model", "fusion", "num_classes", "dataset", "height", "width", "input_modality", "aux_heads",
         "backbone", "decoder_filters")),
    "three modalities, SSMA over three": (
        dict(_DATA, model="SSMA", modalities=["rgb", "depth", "thermal"], height=48, width=96, batch_size=8,
             learning_rate=1e-3, power=0.9, skip_step=50, save_step=10_000, max_iteration=200, seed=0,
             checkpoints=["r.weights.h5", "d.weights.h5", "t.weights.h5"], freeze_experts=True),
        ("model", "modalities", "input_modality", "num_classes", "dataset", "height", "width")),
    "adaptation demo, AdapNet++ on depth": (
        dict(_DATA, model="AdapNet_pp", input_modality="modality2", height=48, width=96, batch_size=8,
             max_iteration=300, learning_rate=1e-3, save_step=300, skip_step=25, power=0.9, seed=1),
        ("model", "num_classes", "dataset", "height", "width", "input_modality")),
}


class _Result:
    """What `ssma_tf.evaluation.evaluate` returns, as far as the experiments read it."""

    metrics = {"mIoU": 50.0}


def _trained_run(tmp_path, values) -> pathlib.Path:
    """A run folder as training leaves it: its config.yaml and its final model (a stand-in file)."""
    run = tmp_path / "run"
    config = config_from_dict(dict(values, checkpoint=str(run)), mode="train", check_paths=False)
    write_run_config(config, run)
    (run / "final.weights.h5").write_text("")
    (run / FINAL_MODEL).write_text("")
    return run


def _eval_fields(config) -> dict:
    """What an evaluation reads of a config: every key that evaluating uses, but the weights."""
    return {name: getattr(config, name) for name in DECLARED
            if "eval" in DECLARED[name].modes and name != "checkpoint"}


@pytest.mark.parametrize("case", sorted(_CASES))
def test_the_eval_config_of_a_run_is_the_one_the_experiments_built_by_hand(case, tmp_path, monkeypatch):
    values, picked = _CASES[case]
    run = _trained_run(tmp_path, values)
    overrides = {"test_data": str(tmp_path / "val.tfrecords"), "batch_size": 10}
    by_hand = config_from_dict(dict({k: values[k] for k in picked if k in values}, checkpoint=str(run), **overrides),
                               mode="eval", check_paths=False)
    (tmp_path / "val.tfrecords").write_text("")
    # In this process (the fusion table, three modalities) ...
    seen = []

    def fake_evaluate(config, model=None, log=None):
        seen.append((config, model))
        return _Result()

    monkeypatch.setattr("ssma_tf.evaluation.evaluate", fake_evaluate)
    model = object()
    assert experiment.evaluate_in_process(run, overrides, model=model, check_paths=False) == {"mIoU": 50.0}
    (in_process, given), = seen
    assert given is model and _eval_fields(in_process) == _eval_fields(by_hand)
    assert in_process.checkpoint == str(run / FINAL_MODEL)  # the run's final model: its last weights
    # ... and in a child `ssma-evaluate`, from the config file it is given (the adaptation demo,
    # the semi-supervised experiment).
    calls = _recording(monkeypatch)
    result = tmp_path / "results" / "a.json"

    def evaluated(command, args, *, step=None, log=None):
        calls.append(load_config(args[1], "eval", check_paths=False))
        result.write_text('{"mIoU": 61.5}')
        return 1.0

    monkeypatch.setattr(experiment, "run_command", evaluated)
    metrics = experiment.evaluate_run(run, result, overrides, config_path=tmp_path / "a_test.config", step="a")
    assert metrics == {"mIoU": 61.5}
    assert _eval_fields(calls[0]) == _eval_fields(by_hand) and calls[0].checkpoint == str(run / FINAL_MODEL)
    written = yaml.safe_load((tmp_path / "a_test.config").read_text(encoding="utf-8"))
    assert all("eval" in DECLARED[key].modes for key in written)  # no training key shown with a default


def test_a_checkpoint_inside_a_run_is_evaluated_under_the_runs_config(tmp_path, monkeypatch):
    values, _ = _CASES["adaptation demo, SSMA arm"]
    run = _trained_run(tmp_path, values)
    (run / "ckpt-200.index").write_text("")
    seen = []

    def fake_evaluate(config, model=None, log=None):
        seen.append(config)
        return _Result()

    monkeypatch.setattr("ssma_tf.evaluation.evaluate", fake_evaluate)
    experiment.evaluate_in_process(run / "ckpt-200", {"test_data": str(tmp_path / "v.tfrecords"), "batch_size": 10},
                                   check_paths=False)
    assert seen[0].checkpoint == str(run / "ckpt-200") and seen[0].model == "SSMA"


def test_an_evaluation_is_reused_until_the_run_changes(tmp_path, monkeypatch):
    values, _ = _CASES["adaptation demo, AdapNet++ on depth"]
    run = _trained_run(tmp_path, values)
    result = tmp_path / "results" / "a.json"
    runs = []

    def evaluated(command, args, *, step=None, log=None):
        runs.append(args)
        result.write_text(f'{{"mIoU": {len(runs)}.0}}')
        return 1.0

    monkeypatch.setattr(experiment, "run_command", evaluated)
    overrides = {"test_data": str(tmp_path / "v.tfrecords"), "batch_size": 10}
    (tmp_path / "v.tfrecords").write_text("")
    first = experiment.evaluate_run(run, result, overrides, config_path=tmp_path / "t.config", step="a")
    again = experiment.evaluate_run(run, result, overrides, config_path=tmp_path / "t.config", step="a")
    assert first == again == {"mIoU": 1.0} and len(runs) == 1
    # The run trained again (it rewrites its config.yaml): the old result is of other weights.
    later = os.path.getmtime(result) + 10
    os.utime(run / RUN_CONFIG, (later, later))
    assert experiment.evaluate_run(run, result, overrides, config_path=tmp_path / "t.config", step="a") == {
        "mIoU": 2.0}


def test_a_cached_result_counts_only_with_the_same_settings(tmp_path):
    path = tmp_path / "results" / "ssma.json"
    assert experiment.cached_result(path) is None
    settings = {"max_iteration": 200, "checkpoint": "c", "checkpoints": ["a", "b"]}
    experiment.save_result(path, {"mIoU": 80.0, "settings": settings})
    assert experiment.cached_result(path)["mIoU"] == 80.0
    assert experiment.cached_result(path, dict(reversed(list(settings.items()))))["mIoU"] == 80.0
    assert experiment.cached_result(path, dict(settings, max_iteration=600)) is None


def test_a_spread_is_the_mean_and_range_over_seeds():
    spread = experiment.spread(score for score in (40.0, 42.5, 44.0))
    assert (round(spread.mean, 10), spread.low, spread.high) == (42.1666666667, 40.0, 44.0)
    assert experiment.spread([7]) == experiment.Spread(7.0, 7.0, 7.0)
    with pytest.raises(ValueError, match="no values"):
        experiment.spread([])


def test_the_machine_of_a_table_names_processor_versions_and_commit(monkeypatch):
    """Helper 235: the experiments' tables recorded no machine, though they give seconds."""
    info = experiment.machine()
    assert info["cores"] == os.cpu_count() and info["cpu"] and info["tensorflow"] and info["keras"]
    line = experiment.machine_line(info)
    assert line.startswith(f"{info['cpu']}, {info['cores']} cores") and f"TensorFlow {info['tensorflow']}" in line
    assert line.endswith(info["date"])
    # The code's commit where git can say it (its own checkout), none elsewhere: not another
    # project's whose checkout holds the installed package (helper 241), nor without git.
    import subprocess

    monkeypatch.setattr(experiment.subprocess, "run", lambda command, **kwargs: subprocess.CompletedProcess(
        command, 0, stdout="/elsewhere/project\n" if "--show-toplevel" in command else "0123456789ab\n"))
    assert experiment.source_commit() is None
    monkeypatch.setattr(experiment.subprocess, "run", lambda *args, **kwargs: (_ for _ in ()).throw(OSError("git")))
    assert experiment.source_commit() is None
    assert "code " not in experiment.machine_line(dict(info, commit=None))


def test_the_three_modalities_table_names_each_seed_and_gives_one_run_no_range():
    """Helper 235: the experts every seed shares, trained once, were shown as a two-seed range
    ("60.4..60.4"), and an SSMA arm without a seed's run was averaged over the others unsaid."""
    bench = _three_modalities()
    results = {f"seed{seed}_{name}": {"mIoU": miou, "car_iou": None}
               for seed, name, miou in ((0, "adapnet_pp_rgb", 60.0), (0, "ssma_rgb_depth", 70.0),
                                        (1, "ssma_rgb_depth", 72.0), (0, "ssma_rgb_thermal", 71.0))}
    lines = {line.split()[0]: line for line in bench.table(results, [0, 1]).splitlines()[1:]}
    assert lines["adapnet_pp_rgb"].split() == ["adapnet_pp_rgb", "60.0", "–", "–", "0:", "60.0", "(shared",
                                               "experts:", "trained", "once)"]
    assert lines["ssma_rgb_depth"].split() == ["ssma_rgb_depth", "71.0", "70.0..72.0", "–", "0:", "70.0,", "1:",
                                               "72.0"]
    assert lines["ssma_rgb_thermal"].endswith("0: 71.0   (no run of seed 1)")
    assert "(no run of seed 1)" in bench.table(results, [0, 1], shared_experts=False).splitlines()[1]


def test_a_resumed_three_modalities_run_gives_no_seconds(tmp_path, monkeypatch):
    """Helper 235: a run resumed after a stop was timed over its last part only."""
    bench = _three_modalities()
    import ssma_tf.cli.experiment as shared

    monkeypatch.setattr(shared, "train_in_process", lambda values, source: None)
    monkeypatch.setattr(shared, "evaluate_in_process", lambda run, overrides: {"mIoU": 50.0, "per_class": []})
    args = bench.parse_args(["--output", str(tmp_path)])
    keys = {"train": {}, "test_data": "val.tfrecords"}
    results = {}
    assert bench.run_one(args, "fresh", keys, results)["seconds"] is not None
    (tmp_path / "runs" / "stopped").mkdir(parents=True)
    (tmp_path / "runs" / "stopped" / "checkpoint").write_text("")
    assert bench.run_one(args, "stopped", keys, results)["seconds"] is None
    assert results["fresh"]["machine"]["cores"] == os.cpu_count()


def _three_modalities():
    import importlib.util

    spec = importlib.util.spec_from_file_location("three_modalities", ROOT / "bench" / "three_modalities.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_three_modalities_bench_refuses_an_output_of_other_settings(tmp_path, capsys, monkeypatch):
    bench = _three_modalities()
    monkeypatch.setattr(bench, "records_for", lambda *args: pytest.fail("the benchmark started"))
    out = tmp_path / "out"
    out.mkdir()
    settings = bench.settings_of(bench.parse_args(["--output", str(out)]))
    (out / "results.json").write_text(json.dumps({"settings": dict(settings, ssma_steps=5), "seed0_x": {}}))
    # Before: the earlier runs' table printed under the new settings, the data not rewritten.
    assert bench.main(["--output", str(out)]) == 2  # before: status 1, that of a failed write (helper 360)
    assert capsys.readouterr().err == (f"error: {out} holds results of other settings (ssma_steps differ): "
                                       "give another --output, or remove that folder\n")
    # A call stopped before its first result left data (and its settings, written first): other
    # settings are refused too (helper 91: they took up the old scenes, and results.json named the
    # new settings).
    (out / "results.json").write_text(json.dumps({"settings": dict(settings, num_train=4)}))
    (out / "data").mkdir()
    assert bench.main(["--output", str(out)]) == 2
    assert capsys.readouterr().err.startswith(f"error: {out} holds the data of an earlier call of other settings "
                                              "(num_train differ)")
    (out / "results.json").unlink()  # a call of a version that wrote its settings with its first result
    assert bench.main(["--output", str(out)]) == 2
    assert "; written before settings were recorded)" in capsys.readouterr().err
    # The experts every arm starts from are the first seed's: another first seed is other settings
    # (before: seed 1's cached arms, on the seed-0 experts, averaged with seed 2's on the seed-1 ones).
    (out / "data").rmdir()
    (out / "results.json").write_text(json.dumps({"settings": settings, "seed1_ssma_rgb_depth": {}}))
    assert bench.main(["--output", str(out), "--seeds", "1", "2"]) == 2
    assert "holds results of other settings (expert_seed differ)" in capsys.readouterr().err
    assert bench.settings_of(bench.parse_args(["--seeds", "0", "1", "2"])) == settings  # seeds added
    assert bench.settings_of(bench.parse_args(["--seeds", "1", "2", "--experts_per_seed"]))["expert_seed"] is None
    (out / "results.json").write_text("{}")
    for argv, message in ((["--height", "40"], "--height must be a positive multiple of 16, got 40"),
                          (["--output", str(out / "results.json")], "is a file; give a folder")):
        with pytest.raises(SystemExit):
            bench.parse_args(argv)
        assert message in capsys.readouterr().err


_CHILD = """
import os, signal, sys, time

def stop(signum, frame):
    with open(sys.argv[1] + ".saved", "w") as stream:
        stream.write(str(signum))
    sys.exit(143)

signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)
with open(sys.argv[1] + ".ready", "w") as stream:
    stream.write(str(os.getpid()))
time.sleep(120)
"""

_PARENT = """
import signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)  # a process started with it ignored (a test worker)
sys.path.insert(0, sys.argv[2])
from ssma_tf.cli import experiment
from ssma_tf.cli.common import command

experiment.COMMANDS["child"] = "stopped_child"

@command
def main(argv=None):
    log = sys.argv[1] + ".log" if sys.argv[3] == "log" else None
    experiment.run_command("child", [sys.argv[1]], step="a step", log=log)
    return 0

sys.exit(main([]))
"""


@pytest.mark.parametrize("output", ["log", "streamed"])
@pytest.mark.parametrize("stop", ["SIGTERM", "SIGINT"])
def test_sigterm_to_an_experiment_reaches_its_running_step_which_ends_first(tmp_path, output, stop):
    """Before: the step trained on without its parent (streamed), or was killed by SIGKILL
    (logged, `subprocess.call`), and never saved. A SIGINT sent to the experiment alone
    (`kill -INT`, a supervisor) reaches the step too (helpers 242, 243: it trained on to its end),
    once: the step is in a process group of its own."""
    import signal
    import subprocess
    import time

    stop = getattr(signal, stop)

    (tmp_path / "stopped_child.py").write_text(_CHILD)
    marker = tmp_path / "child"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]))
    parent = subprocess.Popen([sys.executable, "-c", _PARENT, str(marker), str(ROOT), output], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    child = None
    try:
        deadline = time.time() + 60
        while not pathlib.Path(f"{marker}.ready").exists() and time.time() < deadline:
            time.sleep(0.1)
        child = int(pathlib.Path(f"{marker}.ready").read_text())
        assert os.getpgid(child) == child  # its own group: the terminal's Ctrl-C reaches it through its parent
        parent.send_signal(stop)
        out, err = parent.communicate(timeout=60)
        try:
            os.kill(child, 0)
            child_alive = True
        except ProcessLookupError:
            child_alive = False  # ended (and reaped) before its parent
    finally:
        for pid in (parent.pid, child):
            if pid is not None:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
    assert (parent.returncode, err.splitlines()[-1]) == ((143, "terminated") if stop == signal.SIGTERM
                                                         else (130, "interrupted")), err
    assert pathlib.Path(f"{marker}.saved").read_text() == str(int(stop))
    assert not child_alive


def test_a_resumed_run_gives_no_seconds_rather_than_those_of_its_last_part(tmp_path, monkeypatch):
    """A run stopped and resumed by the next call gave the seconds of the resumed part only
    (helper 135)."""
    from ssma_tf.cli import experiment as runner

    monkeypatch.setattr(runner, "run_command", lambda command, args, **kwargs: 5.0)
    values = {"checkpoint": str(tmp_path / "run"), "max_iteration": 2}
    assert runner.train_run(values, tmp_path / "train.config", step="train x") == 5.0
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoint").write_text('model_checkpoint_path: "ckpt-1"\n')
    assert runner.train_run(values, tmp_path / "train.config", step="train x") is None


@pytest.mark.parametrize("command", ["semi_supervised_experiment", "fusion_table", "adaptation_demo",
                                     "three_modalities"])
def test_an_output_that_is_a_file_or_under_one_is_refused_before_any_work(tmp_path, capsys, monkeypatch, command):
    """Helper 304: the semi-supervised experiment said "afile: File exists" and the fusion table
    "afile/data: Not a directory", both exit 1 after taking the flags; a path under a file went as
    far in every experiment."""
    if command == "three_modalities":
        main = _three_modalities().main
    else:
        module = __import__(f"ssma_tf.cli.{command}", fromlist=["main"])
        for name in ("make_data", "run_seed", "run_command", "train_run"):  # nothing may start
            if hasattr(module, name):
                monkeypatch.setattr(module, name, lambda *a, **k: pytest.fail("the experiment started"))
        main = module.main
    afile = tmp_path / "afile"
    afile.write_text("notes\n")
    for output, said in ((afile, f"--output {afile} is a file; give a folder"),
                         (afile / "out", f"--output {afile / 'out'}: {afile} is a file, not a folder")):
        with pytest.raises(SystemExit) as stopped:
            main(["--output", str(output)])
        assert stopped.value.code == 2 and said in capsys.readouterr().err, command
    assert afile.read_text() == "notes\n"


def test_the_adaptation_demo_refuses_a_model_given_twice(tmp_path, capsys, monkeypatch):
    """Helper 304: `--models ssma ssma` ran the model's arms twice and recorded it twice."""
    from ssma_tf.cli import adaptation_demo

    monkeypatch.setattr(adaptation_demo, "run_command", lambda *a, **k: pytest.fail("the experiment started"))
    with pytest.raises(SystemExit) as stopped:
        adaptation_demo.main(["--output", str(tmp_path / "out"), "--models", "ssma", "ssma"])
    assert stopped.value.code == 2 and "--models names ssma more than once" in capsys.readouterr().err
