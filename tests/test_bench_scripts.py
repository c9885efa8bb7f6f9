"""The benchmark scripts' shared behaviour (`bench/_common.py`), run as a user runs them."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time

from tests.conftest import ROOT


def _common():
    spec = importlib.util.spec_from_file_location("bench_common", ROOT / "bench" / "_common.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ctrl_c_ends_a_benchmark_in_one_line_that_says_no_result_was_written(tmp_path):
    """Before: a KeyboardInterrupt traceback through subprocess.run, which named no file."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = tmp_path / "flops.json"
    # Ctrl-C's default action (a test worker may ignore SIGINT, and a child inherits that).
    process = subprocess.Popen([sys.executable, str(ROOT / "bench" / "flops.py"), "--size", "32x32",
                                "--json", str(result)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    # Once the parent waits on its first child (which imports TensorFlow for seconds).
    children = f"/proc/{process.pid}/task/{process.pid}/children"
    deadline = time.monotonic() + 120
    while not open(children).read().strip() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "Traceback" not in err and err.strip().splitlines()[-1] == "interrupted; no result file written", err
    assert not result.exists()


def test_ctrl_c_after_a_result_file_names_it(tmp_path, capsys):
    common = _common()
    written = str(tmp_path / "result.json")

    def main():
        common.write_json(written, {"seconds": 1.0})
        raise KeyboardInterrupt

    assert common.run_main(main) == 130
    assert capsys.readouterr().err.strip() == f"interrupted; {written} was written before"
    assert common.run_main(lambda: 0) == 0


def test_the_90th_percentile_is_the_nearest_rank():
    """Helper 100: round() took halves to even, one rank too high for 10, 30 or 50 rounds."""
    common = _common()
    for n, rank in ((10, 9), (30, 27), (50, 45), (7, 7), (1, 1), (20, 18)):
        assert common.summarize(list(range(1, n + 1)))["p90"] == rank, n


def _bench_inference():
    return _bench_script("inference")


def _bench_script(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "bench"))
    return module


def test_keras_timing_takes_each_models_modalities_and_refuses_a_mix(monkeypatch, capsys):
    """Helper 119: an SSMA over 3 modalities was fed 2 images (Keras' input-spec traceback, cut
    to a line), a 2- and a 3-modality SSMA likewise; `--warmup 0` ran one and recorded 0."""
    import keras
    import pytest

    import ssma_tf.models.factory

    bench = _bench_inference()
    assert len(bench.make_inputs("ssma", 1, 16, 32, count=3)) == 3
    assert len(bench.make_inputs("ssma", 1, 16, 32)) == 2 and len(bench.make_inputs("adapnet_pp", 1, 16, 32)) == 1

    def network(count):
        inputs = [keras.Input((None, None, 3)) for _ in range(count)]
        return keras.Model(inputs, keras.layers.Add()(inputs))

    models = {"two.keras": network(2), "three.keras": network(3)}
    monkeypatch.setattr(keras.saving, "load_model", lambda path, compile=False: models[path])
    monkeypatch.setattr(ssma_tf.models.factory, "is_fusion", lambda model: True)
    result = bench.child_keras({"files": ["two.keras", "three.keras"], "warmup": 1, "runs": 1, "intra": 0,
                                "inter": 0})
    assert result == {"error": "--keras: give models of one number of modalities, got [2, 3]"}
    with pytest.raises(SystemExit):
        bench.main(["--keras", "two.keras", "--warmup", "0"])
    assert "--warmup must be >= 1, got 0" in capsys.readouterr().err


def test_sigterm_stops_the_child_measuring_too(tmp_path):
    """Before: only Ctrl-C was handled; `kill` or `timeout` left the measuring child running as an
    orphan, both cores busy for minutes (helper 141)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    process = subprocess.Popen([sys.executable, str(ROOT / "bench" / "flops.py"), "--size", "32x32",
                                "--json", str(tmp_path / "flops.json")], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    children = f"/proc/{process.pid}/task/{process.pid}/children"
    deadline = time.monotonic() + 120
    while not open(children).read().strip() and time.monotonic() < deadline:
        time.sleep(0.1)
    child = int(open(children).read().split()[0])
    time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130 and err.strip().splitlines()[-1] == "interrupted; no result file written", err
    # Killed: gone, or a zombie where nothing reaps the orphan (a container's first process); a
    # killed process of many threads takes a moment to end.
    def state():
        try:
            return open(f"/proc/{child}/stat").read().rsplit(")", 1)[1].split()[0]
        except OSError:
            return "gone"

    deadline = time.monotonic() + 10
    while state() not in ("gone", "Z") and time.monotonic() < deadline:
        time.sleep(0.1)
    state = state()
    if state not in ("gone", "Z"):
        os.kill(child, signal.SIGKILL)  # not left running when the test fails
    assert state in ("gone", "Z"), f"the child runs on ({state})"


def test_flags_that_measure_nothing_are_refused_before_any_child(monkeypatch, capsys):
    """Helper 141: `--models ,` printed an empty table and exited 0; a misspelt --methods was a
    child's config traceback; --warmup 0 ran one call recorded as 0; a deploy mode asked for by
    name without its extra failed the model's whole child."""
    import importlib.util as util

    import pytest

    bench = {name: _bench_script(name) for name in ("inference", "train_step", "semi_supervised_step")}
    run_child = lambda *args, **kwargs: pytest.fail("a child was started")  # noqa: E731
    for module in bench.values():
        monkeypatch.setattr(module._common, "run_child", run_child)
    for name, argv, said in (("inference", ["--models", ","], "--models: none given"),
                             ("train_step", ["--models", ",", "--no-memory"], "--models: none given"),
                             ("inference", ["--models", "adapnet_pp", "--warmup", "0"], "--warmup must be >= 1, got 0"),
                             ("semi_supervised_step", ["--methods", "depthmx"],
                              "--methods: give depthmix and/or classmix, each once, got 'depthmx'"),
                             ("semi_supervised_step", ["--batch", "1"], "--batch 1: the mixed step pastes each image "
                              "onto another of its batch; give 2 or more")):
        with pytest.raises(SystemExit) as stopped:
            bench[name].main(argv)
        assert said in str(stopped.value.code) + capsys.readouterr().err, (name, argv)
    real = util.find_spec
    monkeypatch.setattr(util, "find_spec", lambda name, *a: None if name == "openvino" else real(name, *a))
    with pytest.raises(SystemExit) as stopped:
        bench["inference"].main(["--models", "adapnet_pp", "--modes", "default,openvino"])
    assert stopped.value.code == "--modes: openvino need(s) the deploy extra (pip install '.[deploy]')"


def test_a_memory_run_that_fails_does_not_fit(monkeypatch, capsys):
    """Before: a side killed for memory counted as fitting: "All peaks within 8 GiB: yes", exit 0,
    its error never shown (helper 141)."""
    bench = _bench_script("train_step")
    monkeypatch.setattr(bench._common, "run_child", lambda script, spec, *a, **k: (
        {"peak_rss_mib": 900.0} if spec["sides"] == ["tf1"] else {"error": "exit -9: killed"}))
    assert bench.main(["--models", "adapnet_pp", "--size", "32x64", "--no-timing", "--memory-runs", "1"]) == 1
    out = capsys.readouterr().out
    assert "adapnet_pp: the port side's memory run failed: exit -9: killed" in out
    assert "All peaks within 8 GiB: NO" in out


def test_a_json_path_that_cannot_be_written_is_refused_before_the_measuring(tmp_path, monkeypatch, capsys):
    """Helper 196: `--json /tmp` measured for minutes, printed, then ended with IsADirectoryError;
    every script read its --json path only at the end."""
    import pytest

    (tmp_path / "file").write_text("")
    for name in ("flops", "inference", "train_step", "semi_supervised_step", "backbones", "input_pipeline",
                 "profile_train_step", "deploy_accuracy"):
        module = _bench_script(name)
        monkeypatch.setattr(module._common, "run_child", lambda *a, **k: pytest.fail("a child was started"))
        in_file = tmp_path / "file" / "r.json"
        for path, said in ((tmp_path, f"argument --json: {tmp_path} is a folder; give a file name"),
                           (in_file, f"argument --json: cannot write {in_file}: {tmp_path / 'file'} is not a folder "
                                     "this user can write")):
            with pytest.raises(SystemExit) as stopped:
                module.main(["--json", str(path)])
            assert stopped.value.code == 2 and said in capsys.readouterr().err, (name, path)
    assert _common().json_path(str(tmp_path / "new" / "r.json")) == str(tmp_path / "new" / "r.json")  # made later


def test_counts_below_their_least_are_refused_before_the_measuring(monkeypatch, capsys):
    """Helper 221: `input_pipeline.py --warmup -5` was taken (no warm-up, without a word), and
    `profile_train_step.py --top -3` left out the smallest rows while the total still counted them."""
    import pytest

    for name, flags, said in (("input_pipeline", ["--warmup", "-5"], "--warmup must be >= 0, got -5"),
                              ("profile_train_step", ["--top", "-3"], "--top must be >= 1, got -3"),
                              ("profile_train_step", ["--top", "0"], "--top must be >= 1, got 0")):
        module = _bench_script(name)
        monkeypatch.setattr(module._common, "run_child", lambda *a, **k: pytest.fail("a child was started"))
        with pytest.raises(SystemExit) as stopped:
            module.main(flags)
        assert stopped.value.code == 2 and said in capsys.readouterr().err, (name, flags)


def test_a_measuring_child_killed_by_a_signal_is_named_with_the_signal(tmp_path, monkeypatch, capsys):
    """Helper 303: input_pipeline.py printed a killed child's empty stderr and exited 247 without a
    word; run_child said `exit -9:`."""
    child = tmp_path / "child.py"
    child.write_text("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n")
    assert _common().run_child(str(child), {}) == {"error": "killed by signal 9 (SIGKILL; out of memory?)"}

    bench = _bench_script("input_pipeline")
    monkeypatch.setattr(bench, "_write_records", lambda folder, samples: {"raw": "raw.tfrecords",
                                                                          "png": "png.tfrecords"})
    monkeypatch.setattr(bench._common, "machine_info", lambda: {})
    killed = subprocess.CompletedProcess([], -signal.SIGKILL, stdout="", stderr="")
    monkeypatch.setattr(bench.subprocess, "run", lambda *a, **k: killed)
    assert bench.main(["--repeats", "1"]) == 1
    said = "measuring child (raw, run 1) killed by signal 9 (SIGKILL; out of memory?)"
    assert capsys.readouterr().err.strip() == said
    monkeypatch.setattr(bench.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(
        [], 1, stdout="", stderr="ValueError: no\n"))
    assert bench.main(["--repeats", "1"]) == 1
    assert capsys.readouterr().err == "ValueError: no\nmeasuring child (raw, run 1) failed (exit 1)\n"


def test_negative_thread_counts_are_refused_and_a_check_failed_line_is_kept(tmp_path, monkeypatch, capsys):
    """Helper 303: `inference.py --intra -1` was taken, and TensorFlow's "Check failed: num_threads
    >= 1" in the child was cut off the error above its stack trace (run_child kept 6 lines)."""
    import pytest

    bench = _bench_inference()
    monkeypatch.setattr(bench._common, "run_child", lambda *a, **k: pytest.fail("a child was started"))
    for flags, said in ((["--intra", "-1"], "--intra must be >= 0 (0: TensorFlow's default), got -1"),
                        (["--inter", "-2", "--keras", "a.keras"], "--inter must be >= 0 (0: TensorFlow's default), "
                                                                  "got -2")):
        with pytest.raises(SystemExit) as stopped:
            bench.main(flags)
        assert stopped.value.code == 2 and said in capsys.readouterr().err, flags
    child = tmp_path / "child.py"
    child.write_text("import sys\nprint('F0101 threadpool.cc:99] Check failed: num_threads >= 1 (-1 vs. 1)', "
                     "file=sys.stderr)\nfor i in range(8):\n    print(f'    @ 0x{i} frame', file=sys.stderr)\n"
                     "sys.exit(1)\n")
    error = _common().run_child(str(child), {})["error"]
    cause = "F0101 threadpool.cc:99] Check failed: num_threads >= 1 (-1 vs. 1)"
    assert error.startswith(f"exit 1: {cause} | ... | "), error
    assert error.endswith("@ 0x7 frame") and error.count("frame") == 6, error


def test_backend_jax_without_jax_is_refused_before_any_child(tmp_path, monkeypatch, capsys):
    """Helper 303: inference.py and flops.py ran every model's child, printed a traceback per
    model, and overwrote an earlier --json file with one of errors only."""
    import importlib.util as util

    import pytest

    real = util.find_spec
    monkeypatch.setattr(util, "find_spec", lambda name, *a: None if name == "jax" else real(name, *a))
    earlier = tmp_path / "r.json"
    earlier.write_text("{}\n")
    for name in ("inference", "flops"):
        module = _bench_script(name)
        monkeypatch.setattr(module._common, "run_child", lambda *a, **k: pytest.fail("a child was started"))
        with pytest.raises(SystemExit) as stopped:
            module.main(["--backend", "jax", "--models", "adapnet_pp", "--json", str(earlier)])
        err = capsys.readouterr().err
        assert stopped.value.code == 2 and "--backend jax needs the jax extra (pip install '.[jax]')" in err, name
    assert earlier.read_text() == "{}\n"


def test_a_decoder_width_given_twice_is_refused_before_any_network_is_built(monkeypatch, capsys):
    """Helper 303: `--decoder-filters 64,64` built and timed one network twice (two rows), and with
    --int8 ended after minutes in a FileExistsError."""
    import pytest

    bench = _bench_script("backbones")
    monkeypatch.setattr(bench, "prepare", lambda *a, **k: pytest.fail("a network was built"))
    with pytest.raises(SystemExit) as stopped:
        bench.main(["--decoder-filters", "64,64", "--int8"])
    assert stopped.value.code == 2
    assert "--decoder-filters names 64 more than once; give each once" in capsys.readouterr().err


def test_a_model_or_mode_given_twice_or_no_mode_is_refused_before_any_child(tmp_path, monkeypatch, capsys):
    """Before: `inference.py --modes tf1,default,default` timed default twice a round and paired the
    TF1 graph's round i with default's i-th call; `--models adapnet_pp,adapnet_pp` (inference.py,
    train_step.py) ran every child twice, rows printed twice; `--modes ,` measured nothing, wrote
    --json over an earlier file and exited 0 (helper 329)."""
    import pytest

    earlier = tmp_path / "r.json"
    earlier.write_text("{}\n")
    for name, flags, code, said in (
            ("inference", ["--models", "adapnet_pp", "--modes", "tf1,default,default"], 2,
             "--modes names default more than once; give each once"),
            ("inference", ["--models", "adapnet_pp,ssma,adapnet_pp", "--modes", "default"], 2,
             "--models names adapnet_pp more than once; give each once"),
            ("train_step", ["--models", "ssma,ssma", "--no-memory"], 2,
             "--models names ssma more than once; give each once"),
            ("inference", ["--models", "adapnet_pp", "--modes", ","], "--modes: none given", "")):
        module = _bench_script(name)
        monkeypatch.setattr(module._common, "run_child", lambda *a, **k: pytest.fail("a child was started"))
        with pytest.raises(SystemExit) as stopped:
            module.main([*flags, "--json", str(earlier)])
        assert stopped.value.code == code and said in capsys.readouterr().err, (name, flags)
    assert earlier.read_text() == "{}\n"


def test_masked_without_keras_is_refused_and_quick_honours_size_runs(monkeypatch, capsys):
    """Before: `inference.py --masked` without --keras was ignored and the whole default benchmark
    (~30-40 min) started; `--quick --size-runs 3` timed no other size without a word, the JSON
    recording 5 rounds of them (helper 329)."""
    import pytest

    bench = _bench_inference()
    jobs = []
    monkeypatch.setattr(bench._common, "run_child", lambda script, job, env: jobs.append(job) or {})
    with pytest.raises(SystemExit) as stopped:
        bench.main(["--masked", "--models", "adapnet_pp", "--modes", "default"])
    assert stopped.value.code == 2 and "--masked needs --keras" in capsys.readouterr().err
    assert not jobs
    for flags, sizes, rounds in ((["--size-runs", "3"], ["small", "large"], 3), ([], [], 0)):
        jobs.clear()
        assert bench.main(["--quick", "--models", "adapnet_pp", "--modes", "default", *flags]) == 0
        measuring = [job for job in jobs if job["kind"] == "tf"]
        assert [(job["sizes"], job["size_runs"]) for job in measuring] == [(sizes, rounds)], flags
    capsys.readouterr()


def test_backbones_int8_without_the_deploy_extra_is_refused_before_any_network_is_built(monkeypatch, capsys):
    """Before: `backbones.py --int8` without nncf (or openvino) built the first network, then ended
    in a MissingExtraError traceback (helper 329)."""
    import importlib.util as util

    import pytest

    bench = _bench_script("backbones")
    monkeypatch.setattr(bench, "prepare", lambda *a, **k: pytest.fail("a network was built"))
    real = util.find_spec
    monkeypatch.setattr(util, "find_spec", lambda name, *a: None if name == "nncf" else real(name, *a))
    with pytest.raises(SystemExit) as stopped:
        bench.main(["--int8", "--decoder-filters", "64"])
    assert stopped.value.code == 2
    assert "--int8 needs the deploy extra (pip install '.[deploy]'): nncf not installed" in capsys.readouterr().err


def test_the_predictor_mode_help_says_how_auto_chooses_bfloat16():
    """Before: the help said predict.py runs the predictor in bfloat16 "where the processor has
    bfloat16 units"; `precision="auto"` times both and takes bfloat16 only where it measured it at
    most BFLOAT16_MARGIN times the float32 time (helper 329)."""
    from ssma_tf.inference.precision import BFLOAT16_MARGIN

    help_text = " ".join(_bench_inference().__doc__.split())
    assert "bfloat16 units" not in help_text
    assert f"timed bfloat16 at most {BFLOAT16_MARGIN}× the float32 time" in help_text
