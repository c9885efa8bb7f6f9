"""Helpers shared by the benchmark scripts: machine description, child processes, statistics.

Nothing here imports TensorFlow or JAX: the parent process of a benchmark only orchestrates, and
each measurement runs in a child process of its own, so that one framework's thread pools,
compilation caches and peak memory never leak into another measurement.
"""

from __future__ import annotations

import json
import math
import os
import platform
import signal
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

# The CPU model name as `precision="auto"` keys its cache by it (that module imports no framework).
from ssma_tf.inference.precision import cpu_flags, processor_model  # noqa: E402
# Memory, versions and the code's commit, as the experiments' tables record them (no TensorFlow).
from ssma_tf.cli.experiment import memory_gib, package_version, source_commit  # noqa: E402
# A child prints its result on one line starting with this marker (TF writes other lines to stdout).
RESULT_MARKER = "BENCH_RESULT "
# The result files this process has written (`write_json`), named when Ctrl-C stops it (`run_main`).
_WRITTEN: list = []


def run_main(main, kept: str | None = None) -> int:
    """Runs a benchmark's `main`; Ctrl-C ends it with one line instead of a traceback.

    The line says whether its result file was written: `write_json` writes it whole at the end,
    so a stopped benchmark leaves none (a child process measuring is stopped with it). A script
    that keeps results as they come says what it kept (`kept`).
    """
    # SIGTERM (`kill`, `timeout`, a cancelled job) as Ctrl-C: `subprocess.run` then stops the child
    # measuring (before: it ran on as an orphan, both cores busy for minutes; helper 141).
    def terminated(signum, frame):
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, terminated)
    try:
        return main()
    except KeyboardInterrupt:
        if kept is not None:
            written = f"; {kept}"
        else:
            written = f"; {', '.join(_WRITTEN)} was written before" if _WRITTEN else "; no result file written"
        print(f"\ninterrupted{written}", file=sys.stderr)
        return 130


def parse_size(parser, text: str, option: str = "--size") -> tuple[int, int]:
    """`HEIGHTxWIDTH` as (height, width), or the command ends with one line saying what is wrong
    (the networks need multiples of their output stride, 16; a traceback from inside Keras or a
    shape error of the TF1 graph before)."""
    from ssma_tf.constants import OUTPUT_STRIDE  # no framework

    parts = str(text).lower().split("x")
    if len(parts) != 2 or not all(part.isdigit() for part in parts):
        parser.error(f"{option} must be HEIGHTxWIDTH, e.g. 384x768, got {text!r}")
    height, width = (int(part) for part in parts)
    if min(height, width) < OUTPUT_STRIDE or height % OUTPUT_STRIDE or width % OUTPUT_STRIDE:
        parser.error(f"{option} must be multiples of {OUTPUT_STRIDE}, got {text}")
    return height, width


def positive(parser, **values: int) -> None:
    """Ends the command with one line for a count below 1 (`runs=0`: a median of nothing)."""
    for name, value in values.items():
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {value}")


def jax_or_exit(parser, backend: str) -> None:
    """Ends the command for `--backend jax` where JAX is not installed, before any child runs (before:
    every model's child failed with a traceback, and an earlier --json file was overwritten with
    their errors; helper 303). Worded as bench/inference.py refuses a mode of the deploy extra."""
    import importlib.util

    if backend == "jax" and importlib.util.find_spec("jax") is None:
        parser.error("--backend jax needs the jax extra (pip install '.[jax]')")


def machine_info() -> dict:
    """What the figures depend on: CPU, cores, memory, library versions, load."""
    flags = cpu_flags()
    return {
        "cpu": processor_model(),
        "cores": os.cpu_count(),
        "memory_gib": round(memory_gib() or 0.0, 1),
        "avx2": "avx2" in flags,
        "avx512f": "avx512f" in flags,
        "bf16_hardware": bool({"avx512_bf16", "amx_bf16"} & flags),
        # The matrix units that make bfloat16 and int8 fast (Sapphire Rapids and later); the model
        # name of a virtual machine's processor ("Intel(R) Xeon(R) Processor") does not say.
        "amx": "amx_bf16" in flags,
        "avx512_vnni": "avx512_vnni" in flags,
        "python": platform.python_version(),
        "tensorflow": package_version("tensorflow"),
        "keras": package_version("keras"),
        "jax": package_version("jax"),
        "commit": source_commit(),
        "onednn_env": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def describe_machine(info: dict) -> str:
    """One line for a table header."""
    versions = ", ".join(f"{k} {info[k]}" for k in ("tensorflow", "keras", "jax") if info.get(k))
    return (f"{info['cpu']}, {info['cores']} cores, {info['memory_gib']} GiB; Python {info['python']}, "
            f"{versions}; load average {info['load_average'][0]:.1f}")


def summarize(seconds: list) -> dict:
    """Median, 90th percentile (nearest rank), min and max of a list of durations, in seconds,
    and the durations themselves in the order they were measured (`rounds`), so that ratios
    between interleaved modes can be recomputed from a JSON file."""
    ordered = sorted(seconds)
    # Nearest rank: the ceil(0.9 n)-th smallest (before: round() took halves to even, one rank
    # too high when 0.9 n was an odd whole number, the 28th of 30 rounds instead of the 27th).
    rank = max(0, min(len(ordered) - 1, math.ceil(0.9 * len(ordered) - 1e-9) - 1))
    return {
        "median": statistics.median(ordered),
        "p90": ordered[rank],
        "min": ordered[0],
        "max": ordered[-1],
        "runs": len(ordered),
        "rounds": [float(value) for value in seconds],
    }


def peak_rss_mib() -> float:
    """The high-water mark of this process's resident memory, in MiB (ru_maxrss is KiB on Linux)."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 if sys.platform != "darwin" else peak / 2**20


def emit(result: dict) -> None:
    """Prints a child's result where `run_child` finds it."""
    print(RESULT_MARKER + json.dumps(result), flush=True)


def run_child(script: str, spec: dict, env: dict | None = None, timeout: float = 3600) -> dict:
    """Runs `python script --child JSON` and returns the dict it emitted.

    A child that fails or prints no result gives {"error": <last lines of its output>}, so that one
    broken configuration does not stop a long benchmark.
    """
    child_env = dict(os.environ)
    child_env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    child_env["PYTHONPATH"] = ROOT + os.pathsep + child_env.get("PYTHONPATH", "")
    child_env.update(env or {})
    try:
        done = subprocess.run(
            [sys.executable, script, "--child", json.dumps(spec)],
            capture_output=True, text=True, env=child_env, timeout=timeout, cwd=ROOT,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(RESULT_MARKER):
            return json.loads(line[len(RESULT_MARKER):])
    lines = (done.stderr or done.stdout).strip().splitlines()
    tail = lines[-6:]
    # TensorFlow's fatal "Check failed: num_threads >= 1" comes before a stack trace of more than
    # six lines: without it the error named no cause (helper 303).
    if not any(_names_cause(line) for line in tail):
        cause = (next((line for line in reversed(lines) if "Check failed" in line), None)
                 or next((line for line in reversed(lines) if _names_cause(line)), None))
        tail = ([cause, "..."] if cause else []) + tail
    return {"error": exit_reason(done.returncode) + (": " + " | ".join(tail) if tail else "")}


def _names_cause(line: str) -> bool:
    """A line of a child's output that says what went wrong (`ValueError: ...`, a fatal `Check failed`)."""
    return "Check failed" in line or "Error" in line


def exit_reason(returncode: int) -> str:
    """`exit 1`, or for a child a signal ended, `killed by signal 9 (SIGKILL; out of memory?)`: the
    kernel's out-of-memory killer leaves no line of its own (before: `exit -9` and an empty
    stderr, or a bare exit status 247 of the benchmark; helper 303)."""
    if returncode >= 0:
        return f"exit {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = "unknown signal"
    hint = "; out of memory?" if -returncode == signal.SIGKILL else ""
    return f"killed by signal {-returncode} ({name}{hint})"


def format_seconds(value: float | None) -> str:
    """Seconds as `0.123` (or `-` for a missing figure)."""
    return "-" if value is None else f"{value:.3f}"


def json_path(text: str) -> str:
    """The `type` of a `--json PATH` flag: checked when the flags are read, not when the results
    are written at the end (before: a folder, or a folder that cannot be made, lost a measuring of
    minutes to a traceback; helper 196)."""
    import argparse

    if os.path.isdir(text) or text.endswith(os.sep):
        raise argparse.ArgumentTypeError(f"{text} is a folder; give a file name")
    folder = os.path.dirname(os.path.abspath(text))
    existing = folder
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing) or not os.access(existing, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"cannot write {text}: {existing} is not a folder this user can write")
    return text


def write_json(path: str, payload: dict) -> None:
    """Writes `payload` atomically (a rerun never leaves half a file). Should the write fail
    (the disk full), the results go to standard error before the error, not lost."""
    from ssma_tf.files import atomic_write

    try:
        with atomic_write(path) as handle:
            json.dump(payload, handle, indent=2)
            handle.write("\n")
    except OSError:
        print(f"cannot write {path}; the results:\n{json.dumps(payload, indent=2)}", file=sys.stderr)
        raise
    _WRITTEN.append(path)
