"""How commands end on an error: bad input one line and 2, a failed write one line and 1, a bug its
traceback; `--debug` adds the traceback; output paths are checked before the work starts."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys

import pytest
import yaml

from ssma_tf.cli import evaluate as evaluate_cli
from ssma_tf.cli.common import command
from ssma_tf.errors import UserInputError
from ssma_tf.files import OutputPathError, atomic_write, check_json_output, check_output
from tests.conftest import ROOT
from tests.training_helpers import smoke_config


def _raising(error):
    @command
    def main(argv=None):
        raise error

    return main


def test_bad_input_is_one_line_and_status_2(capsys):
    assert _raising(UserInputError("a.config: key 'batch_size': must be positive, got 0"))([]) == 2
    assert capsys.readouterr().err == "error: a.config: key 'batch_size': must be positive, got 0\n"


def test_debug_adds_the_traceback_and_keeps_the_status(capsys):
    assert _raising(UserInputError("a.config: bad"))(["--debug"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):") and err.endswith("error: a.config: bad\n")


@pytest.mark.parametrize("flag", ["--debug", "--debu", "--deb", "--de", "--d"])
def test_every_abbreviation_argparse_takes_for_debug_shows_the_traceback(capsys, flag):
    """Helpers 242 and 243: `--deb` or `--d`, which argparse takes for --debug, printed none."""
    import argparse

    from ssma_tf.cli.common import add_debug, command

    @command
    def main(argv=None):
        parser = argparse.ArgumentParser()
        parser.add_argument("--list")
        add_debug(parser)
        assert parser.parse_args(argv).debug
        raise UserInputError("a.config: bad")

    assert main([flag]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):") and err.endswith("error: a.config: bad\n")
    assert _raising(UserInputError("a.config: bad"))([]) == 2
    assert capsys.readouterr().err == "error: a.config: bad\n"  # the flag of one command only


def test_a_failed_write_is_one_line_and_status_1(capsys):
    full = OSError(errno.ENOSPC, "No space left on device", "out/metrics.json")
    assert _raising(full)([]) == 1
    assert capsys.readouterr().err == "error: out/metrics.json: No space left on device\n"


def test_bugs_keep_their_traceback():
    with pytest.raises(KeyError):
        _raising(KeyError("internal"))([])
    with pytest.raises(OSError):  # no file named: not the user's to fix
        _raising(OSError("socket closed"))([])


def test_a_missing_tensorflow_is_one_line_and_another_missing_module_a_bug(capsys):
    """Helper 197: on a JAX machine without TensorFlow, ssma-convert-tf1 and ssma-check-records
    ended in a traceback, "No module named 'tensorflow'", exit 1."""
    assert _raising(ModuleNotFoundError("No module named 'tensorflow'", name="tensorflow"))([]) == 2
    assert capsys.readouterr().err == (
        f"error: this command needs TensorFlow, which is not installed for {sys.executable} (pip install "
        "tensorflow); under KERAS_BACKEND=jax without it, the networks of ssma_tf.models and their .keras and "
        ".weights.h5 files work\n")
    with pytest.raises(ModuleNotFoundError):
        _raising(ModuleNotFoundError("No module named 'yaml'", name="yaml"))([])


def test_tensorflow_checkpoints_without_tensorflow_are_named_and_own_files_still_resolve(tmp_path, monkeypatch):
    """Helper 197: `ssma_tf.AdapNetPP` and `ssma_tf.load_model` failed to import where TensorFlow
    is not installed (the JAX machine), though `.keras` and `.weights.h5` files need none."""
    import tensorflow as tf

    from ssma_tf.checkpoints import CheckpointError, reading
    from ssma_tf.checkpoints.resolve import FORMAT_KERAS, resolve_weights

    run = tmp_path / "run"
    run.mkdir()
    prefix = tf.train.Checkpoint(step=tf.Variable(1)).save(str(run / "ckpt"))
    (run / "final.weights.h5").write_bytes(b"")
    monkeypatch.setattr(reading, "tf", None)
    with pytest.raises(CheckpointError, match=(rf"^{prefix} is a TensorFlow checkpoint, and reading it needs "
                                               r"TensorFlow, which is not installed here \(pip install tensorflow\)")):
        resolve_weights(prefix)
    assert resolve_weights(str(run)) == (FORMAT_KERAS, str(run / "final.weights.h5"))  # its state file unread


def test_config_warnings_are_one_line_and_others_pass_on(capsys):
    import warnings

    from ssma_tf.config import ConfigWarning

    @command
    def main(argv=None):
        warnings.warn("a.config: end_learning_rate 0.01 is above learning_rate 0.001", ConfigWarning)
        warnings.warn("something else", DeprecationWarning)
        return 0

    with warnings.catch_warnings(record=True) as others:
        warnings.simplefilter("always")
        before = warnings.showwarning
        assert main([]) == 0
        assert warnings.showwarning is before  # restored
    # Before: Python's "<file>:<line>: ConfigWarning: ..." and the source line below it.
    assert capsys.readouterr().err == "warning: a.config: end_learning_rate 0.01 is above learning_rate 0.001\n"
    assert [str(w.message) for w in others] == ["something else"]  # passed on as before


def test_ctrl_c_is_status_130(capsys):
    assert _raising(KeyboardInterrupt())([]) == 130
    assert capsys.readouterr().err == "interrupted\n"


def test_every_command_ends_the_same_way():
    """Each command's `main` is wrapped by `command` (the adaptation demo's was not: Ctrl-C
    printed a KeyboardInterrupt traceback)."""
    import importlib
    import pkgutil

    import ssma_tf.cli

    unwrapped = []
    for info in pkgutil.iter_modules(ssma_tf.cli.__path__):
        module = importlib.import_module(f"ssma_tf.cli.{info.name}")
        main = getattr(module, "main", None)
        if callable(main) and main.__module__ == module.__name__ and not hasattr(main, "__wrapped__"):
            unwrapped.append(info.name)
    assert unwrapped == []


_TERMINATED = """
import os, signal, sys
from ssma_tf.cli.common import command
from ssma_tf.files import atomic_write

@command
def main(argv=None):
    with atomic_write(sys.argv[1]) as stream:
        stream.write("half")
        os.kill(os.getpid(), signal.SIGTERM)  # as `kill` or a scheduler's time limit would
        stream.write(" and the rest")
    return 0

status = main([])
print("handler restored:", signal.getsignal(signal.SIGTERM) is signal.SIG_DFL)
sys.exit(status)
"""


def test_sigterm_unwinds_like_ctrl_c_and_leaves_no_partial_file(tmp_path):
    result = subprocess.run([sys.executable, "-c", _TERMINATED, str(tmp_path / "out.txt")], capture_output=True,
                            text=True, cwd=ROOT, timeout=120)
    assert (result.returncode, result.stderr, result.stdout) == (143, "terminated\n", "handler restored: True\n")
    assert os.listdir(tmp_path) == []  # neither out.txt nor a .partial-* file


_TERMINATED_IN_A_FINALISER = """
import os, signal, sys
from ssma_tf.cli.common import command

class Converter:
    def __del__(self):
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):  # the handler runs here, in the finaliser, and its exception is dropped
            pass

@command
def main(argv=None):
    converter = Converter()
    del converter
    print("went on")
    return 0

sys.exit(main([]))
"""


def test_a_sigterm_whose_exception_a_finaliser_dropped_still_ends_the_command_terminated(tmp_path):
    """The TFLite converter's objects are collected during a conversion: a SIGTERM then raised in
    their `__del__`, Python printed "Exception ignored in ..." and the command ended with 0. Since
    helper 268 the dropped exception is not printed either: the one line is "terminated"."""
    result = subprocess.run([sys.executable, "-c", _TERMINATED_IN_A_FINALISER], capture_output=True, text=True,
                            cwd=ROOT, timeout=120)
    assert (result.returncode, result.stderr) == (143, "terminated\n"), result.stderr


def test_output_paths_are_checked(tmp_path):
    (tmp_path / "file").write_text("x")
    assert check_output(tmp_path / "new" / "deeper" / "m.json") == str(tmp_path / "new" / "deeper" / "m.json")
    assert not (tmp_path / "new").exists()  # nothing created
    with pytest.raises(OutputPathError, match=r"--json .* is a folder; give a file name"):
        check_output(tmp_path, what="--json")
    with pytest.raises(OutputPathError, match=r"is a file, not a folder"):
        check_output(tmp_path / "file" / "m.json")
    with pytest.raises(OutputPathError, match=r"is a file; give a folder"):
        check_output(tmp_path / "file", directory=True, overwrite=None)
    with pytest.raises(OutputPathError, match=r"exists; pass --overwrite"):
        check_output(tmp_path / "file", overwrite=False)
    check_output(tmp_path, directory=True, overwrite=None)  # pictures go into an existing folder


def test_writes_honour_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        with atomic_write(tmp_path / "a.json") as stream:
            stream.write("{}")
    finally:
        os.umask(old)
    assert oct(os.stat(tmp_path / "a.json").st_mode & 0o777) == oct(0o640)


@pytest.mark.parametrize("where, pattern", [("folder", "is a folder; give a file name"),
                                            ("under a file", "is a file, not a folder"),
                                            ("empty", "is empty; give a file name")])
def test_evaluate_checks_json_before_anything_runs(tmp_path, monkeypatch, capsys, where, pattern):
    """An empty path (`--json "$OUT"`, OUT unset) was taken for no flag: nothing written, exit 0 (helper 340)."""
    import ssma_tf.evaluation

    monkeypatch.setattr(ssma_tf.evaluation, "evaluate", lambda *a, **k: pytest.fail("evaluated"))
    (tmp_path / "file").write_text("x")
    target = {"folder": tmp_path, "empty": ""}.get(where, tmp_path / "file" / "m.json")
    status = evaluate_cli.main(["-c", str(smoke_config("adapnet_eval.config")), "--json", str(target)])
    assert status == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --json ") and pattern in err and err.count("\n") == 1
    assert sorted(os.listdir(tmp_path)) == ["file"]


def test_evaluate_replaces_an_earlier_json_but_no_other_file(tmp_path, monkeypatch, capsys):
    """`--json` replaced any file: the config being evaluated, or the weights, by a slip of the path."""
    import ssma_tf.evaluation

    monkeypatch.setattr(ssma_tf.evaluation, "evaluate", lambda *a, **k: pytest.fail("evaluated"))
    config = tmp_path / "eval.config"
    config.write_text(smoke_config("adapnet_eval.config").read_text())
    before = config.read_text()
    assert evaluate_cli.main(["-c", str(config), "--json", str(config)]) == 2
    assert capsys.readouterr().err == (f"error: --json {config} exists and is not a JSON object (is it the config, the "
                                       "weights or another file of yours?); give another path, or delete it first\n")
    assert config.read_text() == before
    (tmp_path / "w.weights.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(range(256)))
    with pytest.raises(OutputPathError, match="is not a JSON object"):
        check_json_output(tmp_path / "w.weights.h5")
    # An earlier run's metrics, an empty file and a new path are written.
    (tmp_path / "m.json").write_text('{"mIoU": 1.0}')
    (tmp_path / "empty.json").write_text("")
    (tmp_path / "blank.json").write_text("\n")
    for name in ("m.json", "empty.json", "blank.json", "new.json"):
        assert check_json_output(tmp_path / name) == str(tmp_path / name)
    (tmp_path / "number.json").write_text("3")
    with pytest.raises(OutputPathError, match="is not a JSON object"):
        check_json_output(tmp_path / "number.json")


class _Result:
    metrics = {"mIoU": 12.5}

    def table(self):
        return "mIoU: 12.5"


def test_evaluate_prints_the_metrics_before_a_failing_write_and_leaves_no_partial(tmp_path, monkeypatch, capsys):
    import ssma_tf.config
    import ssma_tf.evaluation

    monkeypatch.setattr(ssma_tf.config, "load_config", lambda *a, **k: object())
    monkeypatch.setattr(ssma_tf.evaluation, "evaluate", lambda *a, **k: _Result())
    target = tmp_path / "m.json"

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(target))

    monkeypatch.setattr(json, "dump", disk_full)
    assert evaluate_cli.main(["-c", "eval.config", "--json", str(target)]) == 1
    captured = capsys.readouterr()
    assert captured.out == "mIoU: 12.5\n"
    assert captured.err == f"error: {target}: No space left on device\n"
    assert os.listdir(tmp_path) == []  # no .partial file


def test_scripts_exit_2_with_one_line_and_debug_shows_the_traceback(tmp_path):
    missing = str(tmp_path / "missing.config")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for extra in ([], ["--debug"]):
        run = subprocess.run([sys.executable, str(ROOT / "train.py"), "-c", missing] + extra,
                             capture_output=True, text=True, env=env, timeout=120)
        assert run.returncode == 2
        if extra:
            assert "Traceback (most recent call last)" in run.stderr
        else:
            assert run.stderr.count("\n") == 1 and run.stderr.startswith("error: ") and missing in run.stderr


@pytest.mark.parametrize("module, argv", [
    ("evaluate", ["-c", "ok.config"]),
    ("prune", ["-c", "ok.config", "--test-data", "x.tfrecords", "-o", "out"]),
    ("importance_weights", ["-c", "ok.config", "-o", "w.json"]),
])
def test_a_config_given_as_the_checkpoint_is_named_for_what_it_is(tmp_path, monkeypatch, capsys, module, argv):
    """Helper 219: ssma-evaluate, ssma-prune and ssma-importance-weights still said "no checkpoint
    at ok.config (expected ok.config.index, ...)" for a file that is there."""
    import importlib

    monkeypatch.chdir(tmp_path)
    (tmp_path / "ok.config").write_text("model: AdapNet_pp\n")
    main = importlib.import_module(f"ssma_tf.cli.{module}").main
    try:
        status = main(argv + ["--checkpoint", "ok.config"])
    except SystemExit as exited:  # parser.error
        status = exited.code
    assert status == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith(
        "--checkpoint ok.config is a file but not a model (a training run's folder, a .keras file or weights): give "
        "a config with -c ok.config")


def test_export_names_a_folder_that_is_no_export_before_suggesting_overwrite(tmp_path, monkeypatch, capsys):
    """Helper 219: "--output pout exists; pass --overwrite to replace it", then with --overwrite
    "pout is not an export ...: --overwrite replaces an earlier export only"."""
    import ssma_tf.inference.settings
    from ssma_tf.cli import export as export_cli

    monkeypatch.setattr(ssma_tf.inference.settings, "setup_inference", lambda *a, **k: pytest.fail("model loaded"))
    out = tmp_path / "pout"
    out.mkdir()
    (out / "a.png").write_bytes(b"a prediction")
    for extra in ([], ["--overwrite"]):
        assert export_cli.main(["--checkpoint", "w.weights.h5", "--model", "AdapNet_pp", "--num_classes", "5",
                                "-o", str(out), *extra]) == 2
        assert capsys.readouterr().err == (f"error: {out} is not an export (it has no assets.extra/ssma_tf.json): "
                                           "--overwrite replaces an earlier export only, never other files; give a "
                                           "new folder, or delete this one yourself\n")
    assert (out / "a.png").read_bytes() == b"a prediction"


@pytest.mark.parametrize("module, argv, line", [
    ("prune", ["-c", "missing.config", "--test-data", "x.tfrecords", "-o", "out"], "error: missing.config: cannot "),
    ("importance_weights", ["-c", "missing.config", "-o", "w.json"], "error: missing.config: cannot "),
    ("prepare", ["jet", "missing.png", "-o", "out", "--max", "10"], "ssma-prepare: error: input 'missing.png'"),
    ("scene", ["evaluate", "ck", "--test_data", "v.tfrecords"], "error: ck: no such model file or run folder"),
    ("scene", ["convert", "-f", "nope.txt", "-r", "s.tfrecords"], "error: list file nope.txt does not exist"),
    ("synthetic", ["--output_dir", "x", "--height", "8"], "error: height must be an integer >= 16, got 8"),
])
def test_commands_that_catch_their_errors_show_the_traceback_with_debug(tmp_path, monkeypatch, capsys, module, argv,
                                                                         line):
    """Helper 219: these commands print their one line themselves, so `--debug` showed no
    traceback; `ssma-scene SUBCOMMAND ... --debug` was refused as an unknown argument."""
    import importlib

    monkeypatch.chdir(tmp_path)
    main = importlib.import_module(f"ssma_tf.cli.{module}").main
    assert main(argv) == 2
    assert "Traceback" not in capsys.readouterr().err
    assert main(argv + ["--debug"]) == 2
    error = capsys.readouterr().err
    assert "Traceback (most recent call last)" in error and error.splitlines()[-1].startswith(line), error


@pytest.mark.parametrize("module, extra, pattern", [
    ("predict", ["--modality1", "a.png"], "error: --output {out} is a file; give a folder"),
    ("export", [], "error: --output {out} exists; pass --overwrite to replace it"),
])
def test_predict_and_export_check_the_output_before_the_model_loads(tmp_path, monkeypatch, capsys, module,
                                                                     extra, pattern):
    import importlib

    import ssma_tf.inference.settings

    monkeypatch.setattr(ssma_tf.inference.settings, "setup_inference", lambda *a, **k: pytest.fail("model loaded"))
    out = tmp_path / "out"
    out.write_text("x") if module == "predict" else out.mkdir()
    main = importlib.import_module(f"ssma_tf.cli.{module}").main
    status = main(["--checkpoint", str(tmp_path / "w.weights.h5"), "--model", "AdapNet_pp", "--num_classes", "5",
                   "-o", str(out)] + extra)
    assert status == 2
    assert capsys.readouterr().err == pattern.format(out=out) + "\n"


def test_predict_says_when_its_output_folder_holds_files_already(tmp_path, capsys):
    """Pictures of an earlier run stayed beside the new ones without a word."""
    from ssma_tf.cli.predict import _say_if_not_empty

    _say_if_not_empty(str(tmp_path / "new"))  # not there yet
    (tmp_path / "empty").mkdir()
    _say_if_not_empty(str(tmp_path / "empty"))
    assert capsys.readouterr().err == ""
    (tmp_path / "old" / "colour").mkdir(parents=True)
    for name in ("a.png", "b.png"):
        (tmp_path / "old" / "colour" / name).write_bytes(b"")
    _say_if_not_empty(str(tmp_path / "old"))
    assert capsys.readouterr().err == (f"note: --output {tmp_path / 'old'} already holds 2 file(s): pictures of the "
                                       "same names are replaced, the others stay; give an empty folder to keep runs "
                                       "apart\n")


_CLOSED_READER = """
import sys, time
from ssma_tf.cli.common import command

@command
def main(argv=None):
    print("first line", flush=True)
    time.sleep(1.0)  # the reader has gone by now
    for i in range(20000):
        print(f"line {i}")
    for i in range(2000):
        print(f"progress {i}", file=sys.stderr, flush=True)  # progress lines go to stderr
    with open(sys.argv[1], "w") as stream:
        stream.write("{}")
    print("a last line, flushed only at the end")
    return 0

sys.exit(main([]))
"""


def test_a_reader_that_goes_away_does_not_stop_the_command(tmp_path):
    """`ssma-evaluate ... --json m.json | head -1`: before, a BrokenPipeError traceback, exit 1,
    and no m.json."""
    script = tmp_path / "closed.py"
    script.write_text(_CLOSED_READER)
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # buffered, as in a shell
    for both in (False, True):  # `| head -1`, and `2>&1 | head -1` (a pager of both)
        (tmp_path / "m.json").unlink(missing_ok=True)
        redirect = "2>&1 " if both else "2>/dev/null "
        result = subprocess.run(["bash", "-c", f'"{sys.executable}" "{script}" "{tmp_path / "m.json"}" {redirect}'
                                               '| head -1; echo "status ${PIPESTATUS[0]}" >&2'],
                                capture_output=True, text=True, cwd=ROOT, timeout=120, env=environment)
        assert result.stdout == "first line\n" and result.stderr == "status 0\n", (both, result.stderr)
        assert (tmp_path / "m.json").read_text() == "{}"


_FULL_OUTPUT = """
import sys
from ssma_tf.cli.common import command

@command
def main(argv=None):
    for i in range(int(sys.argv[1])):
        print(f"line {i}", flush=i == 0)
    with open(sys.argv[2], "w") as stream:  # as ssma-evaluate's --json after its table
        stream.write("{}")
    return 0

sys.exit(main([]))
"""


@pytest.mark.parametrize("lines", [3, 20000])  # flushed at the end, or while the command runs
def test_a_full_disk_under_the_output_is_one_line_and_status_1(tmp_path, lines):
    """Helper 242: `> log` on a full disk ended in a traceback (an OSError without a file name),
    ssma-evaluate's --json lost after the table."""
    script = tmp_path / "full.py"
    script.write_text(_FULL_OUTPUT)
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    with open("/dev/full", "w") as full:
        result = subprocess.run([sys.executable, str(script), str(lines), str(tmp_path / "m.json")], stdout=full,
                                stderr=subprocess.PIPE, text=True, cwd=ROOT, timeout=120, env=environment)
    assert (result.returncode, result.stderr) == (1, "error: <standard output>: No space left on device\n")
    assert (tmp_path / "m.json").read_text() == "{}"  # the work goes on (helper 243)


def test_json_and_picture_outputs_replace_only_their_own_kind(tmp_path):
    """Before: any JSON object was replaced (an export's ssma_tf.json, a pruning report.json),
    and `ssma-scene evaluate --picture` replaced any file."""
    from ssma_tf.files import check_png_output

    (tmp_path / "ssma_tf.json").write_text('{"backend": "tflite", "num_classes": 5}')
    with pytest.raises(OutputPathError, match=r"holds no metrics of an earlier run \(no 'mIoU' or 'per_class'"):
        check_json_output(tmp_path / "ssma_tf.json")
    (tmp_path / "scene.json").write_text('{"per_class": [], "accuracy": 50.0}')
    assert check_json_output(tmp_path / "scene.json") == str(tmp_path / "scene.json")
    (tmp_path / "scene.keras").write_bytes(b"PK\x03\x04 a model")
    with pytest.raises(OutputPathError, match=r"--picture .*scene\.keras exists and is not a PNG picture"):
        check_png_output(tmp_path / "scene.keras", what="--picture")
    (tmp_path / "old.png").write_bytes(b"\x89PNG\r\n\x1a\n rest")
    assert check_png_output(tmp_path / "old.png", what="--picture") == str(tmp_path / "old.png")
    # Before: PNG data written under a .jpg name (helper 225).
    with pytest.raises(OutputPathError, match=r"^--picture .*confusion\.jpg: the picture is a PNG; give a name "
                                              r"ending in \.png$"):
        check_png_output(tmp_path / "confusion.jpg", what="--picture")


def test_evaluate_refuses_a_checkpoint_for_an_export_and_says_when_test_data_took_the_run(tmp_path, capsys):
    """Before: `-c CONFIG --exported FOLDER --checkpoint W` evaluated the export as if W were
    its weights; `--test_data val RUN` said "give ... a training run's folder"."""
    (tmp_path / "export").mkdir()
    with pytest.raises(SystemExit) as stopped:
        evaluate_cli.main(["-c", "x.config", "--exported", str(tmp_path / "export"), "--backend", "tflite",
                           "--checkpoint", "w.weights.h5"])
    assert stopped.value.code == 2 and "--checkpoint is for the tensorflow backend" in capsys.readouterr().err
    (tmp_path / "run").mkdir()
    with pytest.raises(SystemExit):
        evaluate_cli.main(["--test_data", "val.tfrecords", str(tmp_path / "run")])
    assert f"(--test_data took '{tmp_path / 'run'}', which is a folder: give RUN before --test_data)" in \
        capsys.readouterr().err


def test_the_demo_output_flag_is_a_usage_error_and_says_what_it_takes(capsys):
    from ssma_tf.cli import demo

    with pytest.raises(SystemExit) as stopped:
        demo.main(["--output", "elsewhere"])
    assert stopped.value.code == 2 and "--output: the configs in" in capsys.readouterr().err


def test_the_demos_dataset_flags_make_the_data_it_checks_for(tmp_path):
    """`thermal: False` in the demo's arguments became "--thermal False", which the synthetic
    command refused: `make demo` stopped at its first step."""
    from ssma_tf.cli import demo, synthetic

    args = vars(synthetic.parse_args(["--output_dir", str(tmp_path), *demo.data_arguments()]))
    assert {key: args[key] for key in demo.DATA} == demo.DATA


def test_the_demo_refuses_data_of_other_arguments_before_training_on_it(tmp_path, monkeypatch, capsys):
    """`demo_output/data` made otherwise (the synthetic command's example wrote there at 96x192)
    was trained and evaluated on, resized to 48x96, and the panel then ended on a traceback."""
    from ssma_tf.cli import demo
    from ssma_tf.data.synthetic import write_dataset

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(demo, "run_command", lambda *a, **k: pytest.fail(f"ran {a[0]}"))
    write_dataset(tmp_path / "demo_output" / "data", num_train=2, num_val=2, height=32, width=32, seed=3)
    assert demo.main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tmp_path / 'demo_output' / 'data'} holds synthetic data made with other "
                          "arguments than the demo's: seed 3 (the demo's 0), height 32 (the demo's 48), width 32 "
                          "(the demo's 96), num_train 2 (the demo's 200), num_val 2 (the demo's 50); ")
    assert err.rstrip().endswith("to start over") and err.count("\n") == 1
    (tmp_path / "demo_output" / "data" / "classes.yaml").unlink()
    assert demo.main([]) == 2 and "no readable classes.yaml" in capsys.readouterr().err
    (tmp_path / "demo_output" / "data" / "classes.yaml").write_text(yaml.safe_dump({"generator": demo.DATA}))
    demo.check_existing_data(tmp_path / "demo_output" / "data")  # the demo's own: taken
    # Written before the thermal modality was recorded: taken by its lists' three columns...
    earlier = {key: value for key, value in demo.DATA.items() if key != "thermal"}
    (tmp_path / "demo_output" / "data" / "classes.yaml").write_text(yaml.safe_dump({"generator": earlier}))
    demo.check_existing_data(tmp_path / "demo_output" / "data")
    # ... and refused by four (helper 241: a thermal folder of an earlier version was taken).
    val = tmp_path / "demo_output" / "data" / "val.txt"
    val.write_text(val.read_text().replace("/depth/", "/depth/x.png d/"))
    with pytest.raises(UserInputError, match=r"val\.txt has lines of 4 columns, not the demo's 3 \(rgb depth label\)"):
        demo.check_existing_data(tmp_path / "demo_output" / "data")
    val.write_text("# nothing\n")  # helper 243: "has lines of  columns"
    with pytest.raises(UserInputError, match=r"val\.txt lists no sample: not the demo's data; delete"):
        demo.check_existing_data(tmp_path / "demo_output" / "data")
    # The demo's arguments with --thermal (helper 240: taken, and the demo failed on the lists'
    # four columns after training every model).
    write_dataset(tmp_path / "demo_output" / "data", num_train=2, num_val=2, height=48, width=96, seed=0, thermal=True)
    with pytest.raises(UserInputError, match=r"other arguments than the demo's: num_train .*, thermal True \(the "
                                             r"demo's False\)"):
        demo.check_existing_data(tmp_path / "demo_output" / "data")


@pytest.mark.parametrize("module", ["train", "evaluate", "predict", "export", "prune", "pretrain_depth",
                                    "importance_weights", "demo", "fusion_table"])
def test_a_tensorflow_command_under_another_keras_backend_is_one_line(module, monkeypatch, tmp_path, capsys):
    """Under KERAS_BACKEND=jax the commands died on tracebacks (`fold_batch_norm needs the TensorFlow
    backend`, TensorFlow's "Checkpoint was expecting a trackable object" after a minute; helper 125)."""
    import importlib

    main = importlib.import_module(f"ssma_tf.cli.{module}").main
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    assert main(["-c", str(tmp_path / "never_read.config")]) == 2
    error = capsys.readouterr().err
    name = f"python -m ssma_tf.cli.{module}" if module == "fusion_table" else f"ssma-{module.replace('_', '-')}"
    assert error == (f"error: {name} runs on Keras' TensorFlow backend, but KERAS_BACKEND (or keras.json) is 'jax': "
                     "unset it or set it to tensorflow; the models themselves run on JAX from Python "
                     "(docs/deploy.md)\n")
    with pytest.raises(SystemExit) as exited:  # --help and --version still answer
        main(["--version"])
    assert exited.value.code == 0 and "0." in capsys.readouterr().out
    # keras.json is read where the variable is not set.
    monkeypatch.delenv("KERAS_BACKEND")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    (tmp_path / "keras.json").write_text('{"backend": "torch"}')
    assert main(["-c", str(tmp_path / "never_read.config")]) == 2
    assert "keras.json) is 'torch'" in capsys.readouterr().err


def test_the_experiments_and_the_trainer_under_another_keras_backend_say_so(monkeypatch, tmp_path):
    """`make semisup-evidence` wrote and converted its data, then said only "step ... failed; see
    train.log"; `make three-modalities` and `Trainer` ended on TensorFlow's "Checkpoint was expecting
    a trackable object" (helper 151)."""
    import keras

    from ssma_tf.training.trainer import Trainer

    env = dict(os.environ, KERAS_BACKEND="jax", PYTHONPATH=str(ROOT))
    for script in ("tools/semi_supervised_experiment.py", "bench/three_modalities.py"):
        done = subprocess.run([sys.executable, script, "--output", str(tmp_path / "out")], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith("error: ") and "runs on Keras' TensorFlow backend, but KERAS_BACKEND (or " \
            "keras.json) is 'jax'" in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert not (tmp_path / "out").exists()  # refused before any data is written
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    with pytest.raises(ValueError, match=r"^Trainer runs on Keras' TensorFlow backend, but Keras runs on 'jax'"):
        Trainer(None)


def test_the_parts_that_build_no_model_run_under_another_keras_backend(monkeypatch, tmp_path, capsys):
    """`ssma-scene convert` and `ssma-select-labels` without a depth student build no model: they ran
    under KERAS_BACKEND=jax before the backend check, and still do (helper 134); their model parts say so."""
    from ssma_tf.cli import scene, select_labels

    monkeypatch.setenv("KERAS_BACKEND", "jax")
    missing = str(tmp_path / "scenes.txt")
    assert scene.main(["convert", "-f", missing, "-r", str(tmp_path / "s.tfrecords"), "--modalities", "2",
                       "--num_classes", "2"]) == 2
    assert "KERAS_BACKEND" not in capsys.readouterr().err  # refused for the missing list, not the backend
    assert scene.main(["evaluate", str(tmp_path / "scene.keras"), "--test_data", str(tmp_path / "t.tfrecords")]) == 2
    assert "error: ssma-scene evaluate runs on Keras' TensorFlow backend" in capsys.readouterr().err
    config = tmp_path / "never_read.config"
    assert select_labels.main(["-c", str(config), "--budget", "2", "-o", str(tmp_path / "out")]) == 2
    assert "KERAS_BACKEND" not in capsys.readouterr().err
    assert select_labels.main(["-c", str(config), "--budget", "2", "-o", str(tmp_path / "out"),
                               "--depth-student-steps", "5"]) == 2
    assert "ssma-select-labels --depth-student-steps runs on Keras' TensorFlow backend" in capsys.readouterr().err


def test_a_compare_model_that_cannot_be_read_names_the_flag_and_what_it_takes(tmp_path, capsys):
    """`--compare W.weights.h5` or an export said "give model= and num_classes=" or "run it with
    --backend openvino": advice about the model predicted, which no flag of --compare follows."""
    import numpy as np
    from PIL import Image

    from ssma_tf.cli import predict
    from ssma_tf.models import AdapNetPP

    model = AdapNetPP(3)
    model(np.zeros((1, 32, 32, 3), np.float32))
    weights = str(tmp_path / "m.weights.h5")
    model.save_weights(weights)
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "a.png")
    export = tmp_path / "ov"
    (export / "assets.extra").mkdir(parents=True)
    (export / "assets.extra" / "ssma_tf.json").write_text(json.dumps({"backend": "openvino"}))
    takes = "--compare takes a training run's folder, a .keras file or a TF1 checkpoint"
    for compared, message in (
            (weights, f"--compare {weights} is a weights file, which does not say its network (no training run's "
                      f"config beside it); {takes}"),
            (str(export), f"--compare {export} is an OpenVINO export, which holds no weights to compare in "
                          f"TensorFlow; {takes} (the one it was exported from)"),
            (str(tmp_path / "none"), f"--compare {tmp_path / 'none'}: no checkpoint at")):
        status = predict.main([weights, "--model", "AdapNet_pp", "--num_classes", "3", "--modality1",
                               str(tmp_path / "a.png"), "--output", str(tmp_path / "out"), "--compare", compared])
        err = capsys.readouterr().err
        assert status == 2 and err.startswith(f"error: {message}"), err
    # A .keras AdapNet++ says no modality: it is given modality 1, and the command says so (helper
    # 268: a depth expert was fed the RGB images without a word).
    model.save(tmp_path / "m.keras")
    status = predict.main([weights, "--model", "AdapNet_pp", "--num_classes", "3", "--modality1",
                           str(tmp_path / "a.png"), "--output", str(tmp_path / "out"), "--compare",
                           str(tmp_path / "m.keras")])
    err = capsys.readouterr().err
    assert status == 2 and "an improvement map needs a label for every sample" in err, err  # the image has none
    assert (f"warning: --compare {tmp_path / 'm.keras'}: no config says which modality this AdapNet++ reads: "
            "it is given modality 1") in err


def test_the_compared_network_gets_its_images_and_the_resizing_the_flag_says(tmp_path, capsys, tiny_backbone):
    """Helper 270: a compared SSMA of more modalities failed after the first batch with advice about
    the list; a compared depth expert was given the colour image without a word; a compared network
    without a config resized modality 2 by nearest whatever --modality2_interpolation said."""
    import numpy as np
    import yaml
    from PIL import Image

    from ssma_tf.cli import predict
    from ssma_tf.models import SSMA, AdapNetPP

    rng = np.random.default_rng(0)
    for name, shape in (("a.png", (32, 64, 3)), ("d.png", (32, 64, 3)), ("l.png", (32, 64))):
        Image.fromarray(rng.integers(0, 3, shape, dtype=np.uint8) * 100 if name != "l.png"
                        else rng.integers(0, 3, shape, dtype=np.uint8)).save(tmp_path / name)
    (tmp_path / "one.txt").write_text("a.png l.png\n")
    (tmp_path / "two.txt").write_text("a.png d.png l.png\n")
    # Tiny backbones: the real networks took 53 s here.
    adapnet, ssma = AdapNetPP(3, backbone=tiny_backbone), SSMA(3, backbone=tiny_backbone)
    adapnet(np.zeros((1, 32, 64, 3), np.float32))
    ssma([np.zeros((1, 32, 64, 3), np.float32)] * 2)
    adapnet.save(tmp_path / "adapnet.keras")
    ssma.save(tmp_path / "ssma.keras")
    run = tmp_path / "depth_run"
    run.mkdir()
    depth = AdapNetPP(3)  # a run's config names a backbone of the package
    depth(np.zeros((1, 32, 64, 3), np.float32))
    depth.save_weights(run / "final.weights.h5")
    (run / "config.yaml").write_text(yaml.safe_dump({"model": "AdapNet_pp", "num_classes": 3, "height": 32,
                                                     "width": 64, "input_modality": "modality2",
                                                     "train_data": "train.tfrecords", "batch_size": 2,
                                                     "max_iteration": 1, "learning_rate": 1e-3,
                                                     "checkpoint": str(run)}))

    def predict_with(main, listed, compared, *extra):
        status = predict.main([str(tmp_path / main), "--list", str(tmp_path / listed), "-o",
                               str(tmp_path / f"out{len(outputs)}"), "--compare", str(compared), "-q",
                               "--precision", "float32", *extra])
        outputs.append(status)
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    outputs = []
    status, _, err = predict_with("adapnet.keras", "one.txt", tmp_path / "ssma.keras")
    assert status == 2 and err.splitlines()[-1] == (
        f"error: --compare {tmp_path / 'ssma.keras'} is an SSMA over 2 modalities, but the list's lines give 1 "
        f"image(s) per sample ({tmp_path / 'one.txt'}, line 1 (sample 'a')): compare with a network that reads "
        "at most 1"), err
    assert not (tmp_path / "out0" / "color").exists()  # before any prediction
    assert (f"--compare {tmp_path / 'ssma.keras'}: no config says how modality 2 and on were resized in training: "
            "resizing them by nearest, the default; give its training run's folder, or "
            "--modality2_interpolation") in err
    status, _, err = predict_with("adapnet.keras", "one.txt", run)
    assert status == 0 and (f"warning: --compare {run}: the network reads modality2 (its config); the list gives "
                            "one image per line, and it reads that image as its input") in err, err
    # The same network compared with itself at the resizing the flag says: the same everywhere.
    status, out, err = predict_with("ssma.keras", "two.txt", tmp_path / "ssma.keras",
                                    "--modality2_interpolation", "bilinear")
    assert status == 0 and "0.00% fixed by this model" in out and "no config says how modality 2" not in err, (out, err)
    # The flag is for the compared network when only it reads modality 2 (refused before).
    status, out, err = predict_with("adapnet.keras", "two.txt", tmp_path / "ssma.keras",
                                    "--modality2_interpolation", "bilinear")
    assert status == 0, err


@pytest.mark.parametrize("module, argv, flag, value", [
    ("prepare", ["gray", "raw", "-o", "out", "--max", "inf"], "--max", "inf"),
    ("prepare", ["jet", "raw", "-o", "out", "--min=-inf", "--max", "7000"], "--min", "-inf"),
    ("prepare", ["fill", "raw", "-o", "out", "--max-depth", "nan"], "--max-depth", "nan"),
    ("predict", ["run", "x.png", "-o", "out", "--alpha", "nan"], "--alpha", "nan"),
    ("prune", ["-c", "a.config", "-o", "out", "--finetune-lr", "inf"], "--finetune-lr", "inf"),
    ("scene", ["train", "--train_data", "s.tfrecords", "--output", "out", "--num_classes", "3", "--steps", "1",
               "--learning_rate", "inf"], "--learning_rate", "inf"),
    ("select_labels", ["-c", "a.config", "--budget", "2", "-o", "l.txt", "--difficulty-weight", "nan"],
     "--difficulty-weight", "nan"),
])
def test_number_flags_must_be_finite(module, argv, flag, value, capsys):
    """Helper 205: `ssma-prepare gray --max inf` was taken, and every picture came out flat, exit 0."""
    import importlib

    parser = importlib.import_module(f"ssma_tf.cli.{module}").build_parser()
    with pytest.raises(SystemExit) as exited:
        parser.parse_args(argv)
    assert exited.value.code == 2
    assert f"error: argument {flag}: must be a finite number, got '{value}'" in capsys.readouterr().err


def test_ssma_evaluate_names_a_runs_config_given_as_the_run(tmp_path, monkeypatch, capsys):
    """Helper 278: "key 'checkpoint': no checkpoint at run/config.yaml (expected ... a
    'config.yaml.index' beside it ...)", a key the user never typed, where predict and export
    say to give it with -c."""
    from ssma_tf.cli.evaluate import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "run").mkdir()
    config = f"model: AdapNet_pp\nnum_classes: 3\ncheckpoint: {tmp_path / 'run'}\n"
    (tmp_path / "run" / "config.yaml").write_text(config)
    with pytest.raises(SystemExit) as exited:
        main(["run/config.yaml"])
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "ssma-evaluate: error: RUN run/config.yaml is a file but not a model (a training run's folder, a .keras file "
        "or weights): give a config with -c run/config.yaml")


@pytest.mark.parametrize("module", ["predict", "export"])
def test_a_config_or_list_given_as_the_run_is_named_for_what_it_is(module, tmp_path, monkeypatch, capsys):
    """Helper 205: 'no checkpoint at cfg/ok.config (expected cfg/ok.config.index, ...)' for a
    file that is there."""
    import importlib

    main = importlib.import_module(f"ssma_tf.cli.{module}").main
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ok.config").write_text("model: AdapNet_pp\n")
    (tmp_path / "list.txt").write_text("a.png\n")
    extra = ["--list", "list.txt"] if module == "predict" else []
    for given, told in (("ok.config", ": give a config with -c ok.config"), ("list.txt", "")):
        with pytest.raises(SystemExit) as exited:
            main([given, *extra, "-o", "out"])
        assert exited.value.code == 2
        assert capsys.readouterr().err.splitlines()[-1] == (
            f"ssma-{module}: error: RUN {given} is a file but not a model (a training run's folder, a .keras file "
            f"or weights){told}")
    # The same file as --checkpoint (helper 213: "no checkpoint at ok.config ...").
    with pytest.raises(SystemExit) as exited:
        main(["--checkpoint", "ok.config", "--model", "AdapNet_pp", "--num_classes", "3", *extra, "-o", "out"])
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"ssma-{module}: error: --checkpoint ok.config is a file but not a model (a training run's folder, a .keras "
        "file or weights): give a config with -c ok.config")
    if module == "predict":  # and as --compare, before any model loads
        from ssma_tf.cli.predict import _compared_model
        from ssma_tf.inference.predictor import PredictionError

        with pytest.raises(PredictionError, match=r"^--compare ok.config is a file but not a model: --compare takes "
                                                  r"a training run's folder, a .keras file or a TF1 checkpoint; give "
                                                  r"the folder of the run a config belongs to$"):
            _compared_model("ok.config", None)
    assert not (tmp_path / "out").exists()
