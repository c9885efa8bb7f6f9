"""What the demo and the experiments share: config files, training runs, evaluations, spreads.

The demo (`ssma-demo`) and the experiments of the docs (`make adapt-demo`, `make fusion-table`,
`make semisup-evidence`, `make three-modalities`) each train many runs and evaluate every one.
How that is done is written once, here:

- `write_config`: a config mapping as a YAML file, written atomically, so that an experiment
  stopped while writing leaves no half file for its next start to train from.
- `run_command`: one command of the package in a child process, whose TensorFlow, memory and
  thread pools end with it; its output streamed under a title, or sent to a log file.
  `run_in_child` runs a function so (the fusion table's arms).
- `train_run` (a child `ssma-train`) and `train_in_process` (a `Trainer` here, for experiments
  that evaluate the trained model in memory): a finished run is not trained again, so an
  experiment resumes where it stopped; `train_run` trains a run of other settings again.
- `evaluate_run` (a child `ssma-evaluate`) and `evaluate_in_process`: a run is evaluated under its
  own config, `ssma_tf.config.runs.run_config(run, "eval", overrides)` on the `config.yaml` every
  training run writes. Every model key the run was trained with (`fusion`, `backbone`,
  `decoder_filters`, `modalities`, ...) reaches the evaluation without an experiment listing it;
  an experiment gives only what is its own: the test data and the batch size.
- `cached_result`, `save_result`: a result file, reused only when made with the same settings.
- `spread`: the mean, minimum and maximum of a figure over the seeds, as the tables report it.
- `machine`, `machine_line`: the processor, memory, versions and code commit beside a table's
  figures (the benchmarks under `bench/` record them too).

Nothing here imports TensorFlow at module level: the experiments that run everything in child
processes keep their own process light.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata
import json
import math
import os
import pathlib
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import time
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional, Sequence, Union

import yaml

from ssma_tf.cli.common import child_environment
from ssma_tf.config.keys import EVAL
from ssma_tf.config.run import DECLARED
from ssma_tf.config.runs import find_run_config, run_config
from ssma_tf.constants import FINAL_WEIGHTS
from ssma_tf.errors import Terminated
from ssma_tf.files import atomic_write

PathLike = Union[str, "os.PathLike[str]"]

# The commands the demo and the experiments run, by the name a user types, and their modules.
COMMANDS = {
    "python -m ssma_tf.cli.synthetic": "ssma_tf.cli.synthetic",
    "ssma-convert": "ssma_tf.cli.convert",
    "ssma-train": "ssma_tf.cli.train",
    "ssma-evaluate": "ssma_tf.cli.evaluate",
    "ssma-predict": "ssma_tf.cli.predict",
    "ssma-importance-weights": "ssma_tf.cli.importance_weights",
    "ssma-select-labels": "ssma_tf.cli.select_labels",
    "ssma-pretrain-depth": "ssma_tf.cli.pretrain_depth",
}
# Start-up lines of TensorFlow and absl that say nothing about the step, left out of its output.
QUIET_PREFIXES = ("I0000", "W0000", "E0000", "WARNING: All log")


def write_config(path: PathLike, values: Mapping[str, Any], sort_keys: bool = False) -> pathlib.Path:
    """Writes a config mapping as a YAML file, atomically; the parent folders are created.

    Args:
        path: the config file.
        values: config keys and their values, written in this order.
        sort_keys: write the keys in alphabetical order instead (the order of the files the
            semi-supervised experiment has always written for its label selection and depth
            pretraining).

    Returns:
        `path`, as a `pathlib.Path`.
    """
    path = pathlib.Path(path)
    with atomic_write(path) as stream:
        stream.write(yaml.safe_dump(dict(values), sort_keys=sort_keys))
    return path


def run_command(command: str, args: Sequence[Any], *, step: Optional[str] = None,
                log: Optional[PathLike] = None) -> float:
    """Runs one command of the package in a child process, in the current folder.

    The child gets `child_environment()`: this `ssma_tf` first on the path, TensorFlow's
    information lines off, unbuffered output.

    Args:
        command: a name of `COMMANDS` (`ssma-train`).
        args: its arguments (paths and numbers are turned into strings).
        step: what the command does, for the title above its output and for the error.
        log: a file for the command's output (its folder is created); without it the output is
            streamed here below a title and the command line, TensorFlow's start-up lines left
            out, so that a long experiment shows its progress.

    Returns:
        The seconds the command took.

    Raises:
        KeyError: `command` is not one of `COMMANDS`.
        SystemExit: the command failed: a line on standard error names the step and where its
            output is; the status is the command's for a bad input (2), Ctrl-C (130) and SIGTERM
            (143), else 1.
    """
    module = COMMANDS[command]
    argv = [sys.executable, "-m", module] + [str(a) for a in args]
    line = f"{command} {' '.join(shlex.quote(str(a)) for a in args)}"
    step = step or line
    start = time.time()
    if log is not None:
        pathlib.Path(log).parent.mkdir(parents=True, exist_ok=True)
        with open(log, "w", encoding="utf-8") as stream:
            process = subprocess.Popen(argv, env=child_environment(), stdout=stream, stderr=subprocess.STDOUT,
                                       process_group=0)  # signals reach it through this process only
            with _passing_stops_on(process):
                code = process.wait()
        where = str(log)
    else:
        print(f"\n=== {step}\n$ {line}", flush=True)
        process = subprocess.Popen(argv, env=child_environment(), stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, process_group=0)

        def show() -> None:
            for output in process.stdout:
                # TensorFlow's notes that no GPU is there go; an error line never (before: any line
                # naming CUDA went, CUDA_ERROR_OUT_OF_MEMORY too, while the error pointed "above").
                lowered = output.lower()
                if not output.startswith(QUIET_PREFIXES) and ("cuda" not in lowered or "error" in lowered):
                    print("  " + output, end="", flush=True)

        with _passing_stops_on(process, show):
            show()
            code = process.wait()
        where = "its output above"
    if code != 0:
        # The child's status where it says what happened (a bad input 2, Ctrl-C 130, SIGTERM 143);
        # before, every failure became 1.
        print(f"step '{step}' failed (exit {code}); see {where}", file=sys.stderr, flush=True)
        raise SystemExit(code if code in (2, 130, 143) else 1)
    seconds = time.time() - start
    if log is None:
        print(f"  ({seconds:.0f} s)", flush=True)
    return seconds


# How long a stopped step may take to save its checkpoint and end before it is killed.
STOP_GRACE_SECONDS = 600


@contextlib.contextmanager
def _passing_stops_on(process: subprocess.Popen, show: Optional[Callable[[], None]] = None) -> Iterator[None]:
    """Passes the experiment's SIGTERM, Ctrl-C (or any error) on to the step running as
    `process`, and waits for it to save and end before the experiment ends, showing what it says
    meanwhile (`show`). Before, SIGTERM left the step training on, owned by no one, or
    `subprocess.call` killed it with SIGKILL, so it never saved. The step runs in a process group
    of its own, so that a signal reaches it once, through here, whether the terminal's Ctrl-C or
    a `kill -INT` of this process alone sent it (before: the latter's step trained on to its end;
    helpers 242 and 243); a second Ctrl-C ends both, as it would the step alone."""
    try:
        yield
    except BaseException as stop:
        if process.poll() is None:
            interrupted = isinstance(stop, KeyboardInterrupt) and not isinstance(stop, Terminated)
            process.send_signal(signal.SIGINT if interrupted else signal.SIGTERM)
            try:
                if show is not None:
                    show()  # until the step closes its output: it has ended, or is about to
                process.wait(timeout=STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            except KeyboardInterrupt:  # a second Ctrl-C: the step is stopped too, unsaved
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
                raise
        raise


def run_in_child(target: Callable[..., Any], *args: Any, step: str) -> None:
    """Runs `target(*args)` in a child process (spawned, so it starts clean), as a command runs.

    For an experiment's step that runs library code rather than a command: TensorFlow keeps memory
    of each training and evaluation in its own allocators until its process ends (the fusion table
    grew by 130 to 300 MB an arm, helper 208), and this process keeps none of it. In the child, as
    under `ssma_tf.cli.common.command`: a bad input is one line and status 2, Ctrl-C 130, SIGTERM
    143 (both unwind, so files written under temporary names are removed). The output goes where
    this process's goes. `target` and `args` must be picklable (a module-level function).

    Raises:
        SystemExit: the step failed, as `run_command` says it.
    """
    import multiprocessing

    process = multiprocessing.get_context("spawn").Process(target=_child_step, args=(target, args), name=step)
    process.start()
    try:
        process.join()
    except BaseException as stop:  # as `_passing_stops_on`: the step saves and ends first
        if process.is_alive():
            if isinstance(stop, Terminated) or not isinstance(stop, KeyboardInterrupt):
                process.terminate()  # SIGTERM
            else:
                os.kill(process.pid, signal.SIGINT)  # in a process group of its own: signalled here only
            try:
                process.join(STOP_GRACE_SECONDS)
            except KeyboardInterrupt:  # a second Ctrl-C: the step is stopped too, unsaved
                os.kill(process.pid, signal.SIGINT)
                process.join(10)
                if process.is_alive():
                    process.kill()
                raise
            if process.is_alive():
                process.kill()
                process.join()
        raise
    code = process.exitcode
    if code != 0:
        print(f"step '{step}' failed (exit {code}); see its output above", file=sys.stderr, flush=True)
        raise SystemExit(code if code in (2, 130, 143) else 1)


def _child_step(target: Callable[..., Any], args: Sequence[Any]) -> None:
    """The child of `run_in_child`: `target(*args)` under `command`, its status the exit status,
    in a process group of its own (as `run_command`'s steps: signals reach it through its parent)."""
    from ssma_tf.cli.common import command

    os.setpgid(0, 0)

    @command
    def step(argv: Optional[Sequence[str]] = None) -> int:
        target(*args)
        return 0

    status = step([])
    sys.stdout.flush()
    sys.stderr.flush()
    if status:
        sys.exit(status)


def is_finished(run: PathLike) -> bool:
    """Whether the training run in folder `run` has ended.

    A run exports `final.weights.h5` after its last step; an interrupted run has checkpoints
    but not this file, and `ssma-train` on its config resumes it.
    """
    return (pathlib.Path(run) / FINAL_WEIGHTS).is_file()


def forget_other_settings(values: Mapping[str, Any], config_path: PathLike, *, step: str) -> None:
    """Removes the run of `values` when the config last written for it (`config_path`) differs.

    An experiment started again with other settings (steps, batch size, a subset) would otherwise
    take the earlier run, finished or half done, for this one: its results would stand under
    the new settings. A run without a written config (trained before experiments wrote one) is
    kept.
    """
    path, run = pathlib.Path(config_path), pathlib.Path(values["checkpoint"])
    if not path.is_file() or not run.exists():
        return
    if yaml.safe_load(path.read_text(encoding="utf-8")) != json.loads(json.dumps(dict(values))):
        print(f"=== {step}: {run} was trained with other settings than {path} now holds; training it again",
              flush=True)
        shutil.rmtree(run)


def train_run(values: Mapping[str, Any], config_path: PathLike, *, step: str,
              log: Optional[PathLike] = None) -> Optional[float]:
    """Trains config `values` with `ssma-train` in a child process, unless its run is finished.

    The config is written to `config_path` first: the child reads it there, and it stays for
    whoever wants to repeat the run by hand. A run that was stopped is resumed by the child; a
    run of other settings is trained again (`forget_other_settings`).

    Args:
        values: the training config; its `checkpoint` is the run's folder.
        config_path: where to write it.
        step: what the run is, for the output and errors (see `run_command`).
        log: a file for the child's output (default: streamed here).

    Returns:
        The seconds training took, or None when the run was finished already and nothing ran, or
        was resumed (the time of its earlier part is not known: the seconds of the rest alone
        were given; helper 135).
    """
    forget_other_settings(values, config_path, step=step)
    if is_finished(values["checkpoint"]):
        return None
    resumed = os.path.isfile(os.path.join(os.fspath(values["checkpoint"]), "checkpoint"))
    write_config(config_path, values)
    seconds = run_command("ssma-train", ["-c", config_path], step=step, log=log)
    return None if resumed else seconds


def train_in_process(values: Mapping[str, Any], source: str,
                     log: Optional[Callable[[str], None]] = None) -> Any:
    """Trains config `values` with `ssma_tf.training.Trainer` in this process; returns the model.

    For experiments that evaluate the trained model in memory (no reload from disk). As with
    `ssma-train`, the run first writes its `config.yaml` (so an interrupted run describes itself
    too), and a run in the folder already is resumed: a finished one restores its last
    checkpoint and trains no further step.

    Args:
        values: the training config; its `checkpoint` is the run's folder.
        source: where the mapping comes from, for errors (`<fusion table: ssma>`).
        log: where the trainer's lines go (default: nowhere).

    Returns:
        The trained `keras.Model`.
    """
    from ssma_tf.config import config_from_dict
    from ssma_tf.training import Trainer

    config = config_from_dict(dict(values), source=source, mode="train")
    trainer = Trainer(config, log=log or (lambda line: None))
    trainer.run()
    return trainer.model


def evaluate_run(run: PathLike, result: PathLike, overrides: Mapping[str, Any], *,
                 config_path: PathLike, step: str, log: Optional[PathLike] = None) -> dict[str, Any]:
    """The metrics of a run on the test data of `overrides`, by `ssma-evaluate` in a child process.

    The eval config is the run's own, `run_config(run, "eval", overrides)`, written to
    `config_path` for the record; the child writes the metrics to `result` (`--json`). A
    `result` newer than the run's `config.yaml` (which a run rewrites when it trains and when it
    ends) is read instead of evaluating again, and so is one of a run from before runs wrote
    that file; a result older than it is of weights since replaced.

    Args:
        run: a run folder (its final model), or a checkpoint or weights file inside one.
        result: the JSON file of the metrics.
        overrides: the experiment's keys: `test_data` and `batch_size`.
        config_path: where to write the eval config.
        step: what is evaluated, for the output and errors (see `run_command`).
        log: a file for the child's output (default: streamed here).

    Returns:
        The metrics `ssma-evaluate --json` writes (`mIoU`, `per_class`, ...).

    Raises:
        ConfigError: `run` is no training run, or the overrides are invalid.
    """
    result = pathlib.Path(result)
    source = find_run_config(run)
    if result.is_file() and (source is None or os.path.getmtime(result) >= os.path.getmtime(source)):
        return json.loads(result.read_text(encoding="utf-8"))
    config = run_config(run, "eval", overrides)
    # The keys an evaluation reads; the training-only ones would show defaults the run never had.
    write_config(config_path, {key: value for key, value in config.to_dict().items()
                               if EVAL[0] in DECLARED[key].modes})
    result.parent.mkdir(parents=True, exist_ok=True)
    run_command("ssma-evaluate", ["-c", config_path, "--json", result], step=step, log=log)
    return json.loads(result.read_text(encoding="utf-8"))


def evaluate_in_process(run: PathLike, overrides: Mapping[str, Any], *, model: Any = None,
                        check_paths: bool = True) -> dict[str, Any]:
    """The metrics of a run on the test data of `overrides`, evaluated in this process.

    Under the run's own eval config, `run_config(run, "eval", overrides)`, as `evaluate_run`.

    Args:
        run: a run folder, or a checkpoint or weights file inside one.
        overrides: the experiment's keys: `test_data` and `batch_size`.
        model: the run's model already in memory (its weights are not read again).
        check_paths: check that the weights and test data exist.

    Returns:
        The `metrics` of `ssma_tf.evaluation.evaluate` (`mIoU`, `per_class`, ...).
    """
    from ssma_tf.evaluation import evaluate

    config = run_config(run, "eval", overrides, check_paths=check_paths)
    return evaluate(config, model=model, log=lambda line: None).metrics


def cached_result(path: PathLike, settings: Any = None) -> Optional[dict[str, Any]]:
    """A result written by `save_result`, or None when there is none or it is of other settings.

    Args:
        path: the result's JSON file.
        settings: what the result must have been made with (compared with its `settings`
            entry after a JSON round trip); None: any result at `path` counts.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        return None
    cached = json.loads(path.read_text(encoding="utf-8"))
    if settings is not None and cached.get("settings") != json.loads(json.dumps(settings, sort_keys=True)):
        return None
    return cached


def restart_unless_made_with(folder: PathLike, stamp: PathLike, settings: Any, step: str, what: str) -> None:
    """Deletes a run folder a stopped experiment left unless `stamp` records these `settings`,
    then records them there, before the run is trained (or resumed) in `folder`.

    The trainer resumes any run of the same network in its folder: one interrupted before its
    result was written, and started again after the experiment's settings changed (other steps of
    the experts it starts from, other pretrained weights under the same path), was resumed on the
    old ones.

    Args:
        folder: the run's checkpoint folder.
        stamp: the JSON file beside it that records the settings it is trained with.
        settings: what the run is made with (compared after a JSON round trip).
        step: the experiment's name of the run, for the line that says it trains again.
        what: what the settings hold, for that line ("its experts', steps, ...").
    """
    folder, stamp = pathlib.Path(folder), pathlib.Path(stamp)
    if folder.exists():
        recorded = cached_result(stamp)
        if recorded is None or cached_result(stamp, settings) is None:
            why = ("has no record of what it was made with (an older version's run)" if recorded is None
                   else f"was made with other settings than these ({what})")
            print(f"=== {step}: {folder} {why}; training it again", flush=True)
            shutil.rmtree(folder)
    save_result(stamp, {"settings": json.loads(json.dumps(settings, sort_keys=True))})


def save_result(path: PathLike, result: Mapping[str, Any]) -> None:
    """Writes a result as JSON, atomically, so that a stopped experiment leaves no half result."""
    with atomic_write(path) as stream:
        stream.write(json.dumps(result, indent=1))


@dataclasses.dataclass(frozen=True)
class Spread:
    """One figure over several seeds: its mean, minimum and maximum.

    The experiments are short runs whose figures move with the seed, so a table gives the mean
    with the range it came from rather than one run's number.
    """

    mean: float
    low: float
    high: float


def spread(values: Iterable[float]) -> Spread:
    """The `Spread` of `values` (one per seed).

    Raises:
        ValueError: no values.
    """
    values = [float(v) for v in values]
    if not values:
        raise ValueError("spread: no values (no seed has a result)")
    return Spread(math.fsum(values) / len(values), min(values), max(values))


def memory_gib() -> Optional[float]:
    """Total physical memory in GiB (Linux; None elsewhere)."""
    try:
        with open("/proc/meminfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("MemTotal"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def package_version(name: str) -> Optional[str]:
    """Installed version of a distribution, read from its metadata (the package is not imported)."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def source_commit() -> Optional[str]:
    """The git commit of the code running (with "-dirty" for uncommitted changes), or None outside
    a git checkout (an installed wheel) or without git."""
    folder = pathlib.Path(__file__).resolve().parents[2]

    def git(*args: str) -> Optional[str]:
        try:
            done = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=10,
                                  check=False)
        except (OSError, subprocess.SubprocessError):
            return None
        if done.returncode != 0:
            return None
        return done.stdout.strip() or None

    # The checkout must be this code's own (before: a package installed into a `.venv` inside
    # another project's checkout was given that project's commit; helper 241).
    top = git("rev-parse", "--show-toplevel")
    if top is None or pathlib.Path(top).resolve() != folder:
        return None
    return git("describe", "--always", "--dirty", "--abbrev=12")


def machine() -> dict[str, Any]:
    """What a table's figures, its seconds above all, were made on: the processor, cores, memory,
    Python, TensorFlow and Keras versions, the code's commit and the date."""
    from ssma_tf.inference.precision import processor_model  # reads /proc/cpuinfo, no TensorFlow

    memory = memory_gib()
    return {"cpu": processor_model(), "cores": os.cpu_count(),
            "memory_gib": None if memory is None else round(memory, 1), "python": platform.python_version(),
            "tensorflow": package_version("tensorflow"), "keras": package_version("keras"),
            "commit": source_commit(), "date": time.strftime("%Y-%m-%d %H:%M:%S")}


def machine_short(info: Mapping[str, Any]) -> str:
    """`machine()`'s processor and cores, the part that tells whether two runs' seconds compare."""
    return f"{info.get('cpu')}, {info.get('cores')} cores"


def machine_line(info: Mapping[str, Any]) -> str:
    """`machine()` as one line for a table's heading."""
    memory = "" if info.get("memory_gib") is None else f", {info['memory_gib']} GiB"
    versions = "".join(f", {name} {info[key]}" for name, key in (("TensorFlow", "tensorflow"), ("Keras", "keras"))
                       if info.get(key))
    commit = f"; code {info['commit']}" if info.get("commit") else ""
    return (f"{machine_short(info)}{memory}; Python {info.get('python')}{versions}"
            f"{commit}; {info.get('date')}")
