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
