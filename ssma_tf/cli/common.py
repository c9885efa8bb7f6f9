"""What the commands share: how they end on an error, `--version`, `--debug`, `--set key=value`,
where the model comes from, `--size`, and the environment of a command run as a child process.

Every command's `main` is wrapped in `command`: bad input (`ssma_tf.errors.UserInputError`, whose
message names the file, line, key or record) ends it with one line `error: ...` on stderr and
exit status 2; a failing disk or a refused permission (an `OSError` naming its file) with one line
and status 1; anything else is a bug and keeps its traceback. `--debug` prints the traceback of
the first two kinds too.
"""

from __future__ import annotations

import argparse
import contextvars
import functools
import math
import os
import pathlib
import re
import shlex
import signal
import sys
import threading
import traceback
import warnings
from typing import Any, Callable, Optional, Sequence

from ssma_tf import __version__
from ssma_tf.cli.start_up_lines import quiet_tensorflow_start_up, remove_quiet_start_up
from ssma_tf.errors import Terminated, UserInputError, clear_termination, raise_if_terminated, request_termination

# Exit statuses of every command.
EXIT_FAILED = 1  # the work failed: the disk, a diverging run; the message says why
EXIT_BAD_INPUT = 2  # a file, flag or config key is wrong (argparse uses 2 for bad flags too)
EXIT_INTERRUPTED = 130  # Ctrl-C, as a shell reports SIGINT
EXIT_TERMINATED = 143  # SIGTERM (`kill`, a job scheduler's time limit), as a shell reports it

DEBUG_FLAG = "--debug"

# The folder that holds this `ssma_tf`, installed or a clone.
PACKAGE_PARENT = pathlib.Path(__file__).resolve().parents[2]


def configured_keras_backend() -> str:
    """The Keras backend this process will use, without importing Keras: `KERAS_BACKEND`, else
    the `backend` of `$KERAS_HOME/keras.json` (`~/.keras`), else "tensorflow"."""
    chosen = os.environ.get("KERAS_BACKEND")
    if chosen:
        return chosen
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    try:
        with open(os.path.join(home, "keras.json"), encoding="utf-8") as handle:
            import json

            configured = json.load(handle).get("backend")
    except (OSError, ValueError, AttributeError):
        return "tensorflow"
    return configured if isinstance(configured, str) and configured else "tensorflow"


# The modules of `tensorflow_command`s that are console commands (`ssma-<name>`).
_CONSOLE_COMMANDS = ("train", "evaluate", "predict", "export", "prune", "pretrain_depth", "importance_weights", "demo")


class BackendError(UserInputError):
    """A command that runs on Keras' TensorFlow backend, started under another."""


def require_tensorflow_backend(name: str) -> None:
    """Ends a command (or the part of it that builds a model: `ssma-scene train`) in one line
    when Keras runs on another backend than TensorFlow.

    Raises:
        BackendError: naming `name` and the backend.
    """
    backend = configured_keras_backend()
    if backend != "tensorflow":
        raise BackendError(
            f"{name} runs on Keras' TensorFlow backend, but KERAS_BACKEND (or keras.json) is {backend!r}: unset "
            "it or set it to tensorflow; the models themselves run on JAX from Python (docs/deploy.md)")


def tensorflow_command(main: Callable[[Optional[Sequence[str]]], int]) -> Callable[[Optional[Sequence[str]]], int]:
    """`command` for a command that trains or runs the Keras models with TensorFlow (its
    `tf.function`s, checkpoints, batch-norm folding): under another Keras backend it ends with one
    line at once (before: a traceback, for ssma-train after a minute of building the model).
    `--help` and `--version` still answer. A command only parts of which build a model calls
    `require_tensorflow_backend` there instead."""

    @functools.wraps(main)
    def checked(argv: Optional[Sequence[str]] = None) -> int:
        arguments = sys.argv[1:] if argv is None else list(argv)
        if not {"-h", "--help", "--version"} & set(arguments):
            # The console command (pyproject.toml's scripts), else how the module is run
            # (`python -m` names it `__main__`, its spec the module).
            spec = getattr(sys.modules.get(main.__module__), "__spec__", None)
            module = spec.name if spec is not None else main.__module__
            short = module.rsplit(".", 1)[-1]
            require_tensorflow_backend(
                f"ssma-{short.replace('_', '-')}" if short in _CONSOLE_COMMANDS else f"python -m {module}")
        return main(argv)

    return command(checked)


def command(main: Callable[[Optional[Sequence[str]]], int]) -> Callable[[Optional[Sequence[str]]], int]:
    """Wraps a command's `main(argv) -> status` so that an error ends it with one line.

    `UserInputError` gives `error: <message>` and status 2; an `OSError` that names a file (disk
    full, permission denied, read-only file system) gives `error: <file>: <reason>` and status 1
    (an output a command checks before its work, `ssma_tf.files.check_output`, is a
    `UserInputError`: status 2);
    Ctrl-C gives `interrupted` and 130, SIGTERM `terminated` and 143: both unwind the command, so
    the files being written under temporary names are removed. With `--debug` among the arguments
    the traceback is printed before that line. Other exceptions are bugs: they propagate with their
    traceback.
    """

    @functools.wraps(main)
    def run(argv: Optional[Sequence[str]] = None) -> int:
        arguments = sys.argv[1:] if argv is None else list(argv)
        # Spelt out here for the errors before the arguments are parsed; its abbreviations, which
        # argparse takes, once they are (`_DebugAction`, read by `_report`).
        debug = DEBUG_FLAG in arguments
        debugging = _DEBUG.set(debug)  # for the errors a command catches itself (`fail`)
        # Python's default for SIGTERM ends the process on the spot, leaving `.partial-*` files;
        # raised as an exception it unwinds like Ctrl-C. Signals go to the main thread only.
        in_main_thread = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, _raise_terminated) if in_main_thread else None
        outermost = in_main_thread and previous is not _raise_terminated  # not a command run by a command
        if outermost:
            clear_termination()
        shown = warnings.showwarning
        warnings.showwarning = _one_line_config_warnings(shown)
        unraisable = sys.unraisablehook
        sys.unraisablehook = _quiet_dropped_termination(unraisable)
        # TensorFlow's C++ information and warning lines stay off unless asked for; the lines it
        # writes before reading that setting go too, unless --debug (`start_up_lines`).
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        if not debug:
            quiet_tensorflow_start_up()
        stdout, stderr = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = _closed_reader_tolerated(stdout), _closed_reader_tolerated(stderr)
        try:
            status = main(argv)
            # A SIGTERM whose `Terminated` was raised in a finaliser, where Python drops it:
            # before, the command went on and ended with 0 as if it had not been asked to stop.
            raise_if_terminated()
            for wrapped in (sys.stdout, sys.stderr):
                if isinstance(wrapped, _ClosedReaderTolerated):
                    wrapped.flush()  # its last lines: a full disk is reported as any failed write
                    if wrapped.failure is not None:
                        raise wrapped.failure
            return status
        except UserInputError as error:
            return _report(error, EXIT_BAD_INPUT, debug)
        except ModuleNotFoundError as error:
            if (error.name or "").partition(".")[0] != "tensorflow":
                raise  # another missing module is a bug of the installation or of the code
            # A JAX machine without TensorFlow (before: a traceback ending in "No module named
            # 'tensorflow'", exit 1; helper 197).
            return _report(error, EXIT_BAD_INPUT, debug,
                           f"this command needs TensorFlow, which is not installed for {sys.executable} "
                           "(pip install tensorflow); under KERAS_BACKEND=jax without it, the networks of "
                           "ssma_tf.models and their .keras and .weights.h5 files work")
        except OSError as error:
            if error.filename is None:
                raise  # not about a file the user can look at: treat it as a bug
            return _report(error, EXIT_FAILED, debug, describe_os_error(error))
        except Terminated as error:
            return _report(error, EXIT_TERMINATED, debug, "terminated")
        except KeyboardInterrupt as error:
            return _report(error, EXIT_INTERRUPTED, debug, "interrupted")
        finally:
            for wrapped in (sys.stdout, sys.stderr):
                if isinstance(wrapped, _ClosedReaderTolerated):
                    wrapped.flush()  # what is left in the buffer, while a closed reader is still tolerated
            sys.stdout, sys.stderr = stdout, stderr
            remove_quiet_start_up()  # when the command did not import TensorFlow
            warnings.showwarning = shown
            sys.unraisablehook = unraisable
            if in_main_thread:  # None: a handler not set from Python; the default is the closest
                signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
            if outermost:
                clear_termination()  # reported: library calls after the command are not stopped by it
            _DEBUG.reset(debugging)

    return run


# Whether the command running in this context was given `--debug` (`command`, `fail`).
_DEBUG: contextvars.ContextVar[bool] = contextvars.ContextVar("ssma_tf_debug", default=False)


class _ClosedReaderTolerated:
    """Standard output (or error) that keeps the command working when its reader goes away
    (`| head`, `2>&1 | less` quit): from the first `BrokenPipeError` on, what is written there
    goes to the null device. Before, the command stopped with a traceback, exit 1, and without
    the files it was about to write (`ssma-evaluate --json`)."""

    def __init__(self, stream: Any, name: str):
        self._stream = stream
        self._name = name
        self.failure: Optional[OSError] = None  # the first failed write, reported when the command ends

    def _silence(self) -> None:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, self._stream.fileno())  # the stream's own later flushes (at exit) land there too
        os.close(null)

    def _failed(self, error: OSError) -> None:
        """A failed write (a full disk under `> log`) is remembered as an error naming the stream,
        which the command reports in one line with status 1 once its work is done (before: a
        traceback at once, and ssma-evaluate's --json, written after its table, was lost;
        helpers 242 and 243); what is written there later goes to the null device, as after a
        closed reader."""
        self._silence()
        if self.failure is None:
            self.failure = OSError(error.errno, error.strerror or str(error), self._name)

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._silence()
        except OSError as error:
            self._failed(error)
        return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._silence()
        except OSError as error:
            self._failed(error)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _closed_reader_tolerated(stream: Any) -> Any:
    """`stream` wrapped in `_ClosedReaderTolerated` when it is a file of its own (not a test's
    capture, not already wrapped)."""
    if isinstance(stream, _ClosedReaderTolerated):
        return stream
    try:
        number = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return stream
    return _ClosedReaderTolerated(stream, {1: "<standard output>", 2: "<standard error>"}.get(number, "<output>"))


def _one_line_config_warnings(shown: Callable) -> Callable:
    """`warnings.showwarning` that prints a `ConfigWarning` (or a `LeftoverWarning`) as
    `warning: <message>`, as the commands print their own warnings, instead of Python's file,
    line and source line."""
    from ssma_tf.config import ConfigWarning
    from ssma_tf.files import LeftoverWarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, (ConfigWarning, LeftoverWarning)):
            print(f"warning: {message}", file=sys.stderr if file is None else file)
        else:
            shown(message, category, filename, lineno, file, line)

    return show


def _quiet_dropped_termination(hook: Callable) -> Callable:
    """`sys.unraisablehook` that says nothing of a `Terminated` a finaliser dropped, and passes
    anything else to `hook`: the command still ends "terminated" (`raise_if_terminated`), where
    Python printed "Exception ignored in ..." and a traceback before it (helper 268)."""

    def unraisable(info: Any) -> None:
        if not isinstance(info.exc_value, Terminated):
            hook(info)

    return unraisable


def _raise_terminated(signum: int, frame: Any) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM during the clean-up ends it at once
    request_termination()  # kept should the exception be dropped (`ssma_tf.errors.raise_if_terminated`)
    raise Terminated()


def describe_os_error(error: OSError) -> str:
    """`<file>: <reason>` for an `OSError` (`out/m.json: No space left on device`)."""
    reason = error.strerror or str(error)
    if error.filename2 is not None:
        return f"{error.filename} -> {error.filename2}: {reason}"
    return f"{error.filename}: {reason}"


def _report(error: BaseException, status: int, debug: bool, message: Optional[str] = None) -> int:
    if debug or _DEBUG.get():
        traceback.print_exception(type(error), error, error.__traceback__, file=sys.stderr)
    print(f"error: {error if message is None else message}" if status not in (EXIT_INTERRUPTED, EXIT_TERMINATED)
          else message,
          file=sys.stderr, flush=True)
    return status


class ArgumentParser(argparse.ArgumentParser):
    """`argparse.ArgumentParser` whose long flags take dashes or underscores alike.

    The tools grew both spellings (`ssma-prepare --from-list`, `ssma-evaluate --json`,
    `--test_data` as in the config keys); a user should not have to remember which tool uses
    which. A flag given with the other spelling than the tool defines (`--finetune_steps` for
    `--finetune-steps`, `--test-data` for `--test_data`) is read as the defined one, with or
    without `=VALUE`. What follows `--` is left alone, and so is a flag neither spelling knows
    (argparse names it as typed). Subcommands' parsers are of this class too.
    """

    def __init__(self, *args, **kwargs):
        # A module of this package run with `python -m` (ssma_tf.cli.synthetic): argparse would name it
        # after its file ("usage: synthetic.py"), which is no command to type.
        if not args and "prog" not in kwargs and sys.argv and sys.argv[0]:
            started = pathlib.Path(sys.argv[0])
            if started.suffix == ".py" and started.resolve().parent == pathlib.Path(__file__).resolve().parent:
                kwargs["prog"] = f"python -m ssma_tf.cli.{started.stem}"
        super().__init__(*args, **kwargs)

    def parse_known_args(self, args=None, namespace=None):
        arguments = self._defined_spelling(sys.argv[1:] if args is None else list(args))
        self._refuse_repeated_lists(arguments)
        return super().parse_known_args(arguments, namespace)

    def _refuse_repeated_lists(self, arguments: list[str]) -> None:
        """Ends the command (exit 2) when a flag that takes a list (`--budgets 2 4`, `--stages`,
        `--calibration`) is given twice: argparse keeps the last list, and the first was dropped
        without a word (`--budgets 2 --budgets 4` selected for 4 alone)."""
        seen = set()
        for argument in arguments:
            if argument == "--":
                return
            action = self._option_string_actions.get(argument.partition("=")[0])
            if action is None or not isinstance(action, argparse._StoreAction) or action.nargs not in ("+", "*"):
                continue
            if action.dest in seen:
                flag = max(action.option_strings, key=len)
                self.error(f"{flag} is given twice: give all its values after one {flag} (argparse would keep the "
                           "last list alone)")
            seen.add(action.dest)

    def _defined_spelling(self, arguments: list[str]) -> list[str]:
        known = self._option_string_actions
        spelled = []
        for index, argument in enumerate(arguments):
            if argument == "--":
                return spelled + arguments[index:]
            if argument.startswith("--") and len(argument) > 2:
                flag, equals, value = argument.partition("=")
                if flag not in known:
                    for other in ("--" + flag[2:].replace("_", "-"), "--" + flag[2:].replace("-", "_")):
                        if other in known:
                            argument = other + equals + value
                            break
            spelled.append(argument)
        return spelled

    def parse_args(self, args=None, namespace=None):
        """argparse's, with a hint when an argument it did not expect is a `KEY=VALUE` setting:
        `--set a=1 b=2` takes only `a=1` (argparse said "unrecognized arguments: b=2"). The
        arguments are looked at one by one: a quoted value with spaces (`'s={method: x}'`) was
        cut at its first space when read back from argparse's message."""
        namespace, extras = self.parse_known_args(args, namespace)
        if extras:
            message = f"unrecognized arguments: {' '.join(extras)}"
            settings = [word for word in extras if looks_like_setting(word)]
            if settings and "--set" in self._option_string_actions:
                message += f" ({SET_EACH_HINT.format(shlex.quote(settings[0]))})"
            self.error(message)
        return namespace


# `--set` takes one KEY=VALUE; a second one after it is a positional argument to argparse.
SET_EACH_HINT = "{} is a setting: give --set before each one, as --set a=1 --set b=2"


def looks_like_setting(word: str) -> bool:
    """Whether a command-line word reads as `KEY=VALUE` (a config key, `=`, anything)."""
    name, equals, _ = word.partition("=")
    return bool(equals) and name.isidentifier()


def setting_as_run_or_exit(parser: argparse.ArgumentParser, run: Optional[str]) -> None:
    """Ends the command when the positional RUN is a `KEY=VALUE` that lost its `--set` (and no
    such file exists), which argparse took for the run folder."""
    if run is not None and looks_like_setting(run) and not os.path.exists(run):
        parser.error(SET_EACH_HINT.format(run))


class _DebugAction(argparse.Action):
    """`--debug` as argparse reads it, any abbreviation it takes (`--d`, `--deb`) included: the
    command's error is then shown with its traceback (before: only `--debug` spelt out; helpers
    242 and 243)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any):
        super().__init__(option_strings, dest, nargs=0, default=False, **kwargs)

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: Optional[str] = None) -> None:
        setattr(namespace, self.dest, True)
        _DEBUG.set(True)


def add_debug(parser: argparse.ArgumentParser) -> None:
    """Adds `--debug`, which shows the traceback of an error (see `command`)."""
    parser.add_argument(DEBUG_FLAG, action=_DebugAction,
                        help="on an error, print the traceback too (for a bug report)")


def add_version(parser: argparse.ArgumentParser) -> None:
    """Adds `--version`, which prints `<command> <version>` and exits, and `--debug`."""
    parser.add_argument("--version", action="version", version=f"%(prog)s (ssma-tf) {__version__}")
    add_debug(parser)


def add_overrides(parser: argparse.ArgumentParser) -> None:
    """Adds `--set KEY=VALUE` (repeatable), which replaces a key of the config."""
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="replace a config key, validated like the file (the value is read as YAML: "
        "--set batch_size=4 --set 'train_data=[a.tfrecords, b.tfrecords]'); repeatable",
    )


def parse_overrides_or_exit(parser: argparse.ArgumentParser, items: Sequence[str]) -> dict[str, Any]:
    """The `--set` items as a mapping of keys; a malformed one ends the command (exit 2)."""
    from ssma_tf.config import ConfigError, parse_overrides

    try:
        return parse_overrides(items)
    except ConfigError as error:
        parser.exit(2, f"error: {error}\n")
    raise AssertionError("unreachable")  # parser.exit does not return


def add_model_source(group, dataset_help: str) -> None:
    """Adds where the model comes from: a run folder or `.keras` file, `-c`, `--checkpoint`,
    `--model`, `--num_classes`, `--dataset` and `--set` (predict and export share them)."""
    from ssma_tf.constants import MODEL_NAMES  # no TensorFlow: --help stays quick

    group.add_argument("run", nargs="?", metavar="RUN",
                       help="a training run's folder or a .keras file: the model with its settings (instead of -c)")
    group.add_argument("-c", "--config", help="an evaluation or training config, or one of the model alone: "
                       "model, classes, size, checkpoint")
    group.add_argument("--checkpoint", help="weights: TF1/TF2 checkpoint, training folder, .weights.h5 or .keras "
                       "(overrides the config's)")
    group.add_argument("--model", choices=MODEL_NAMES, help="the network, for weights that do not say")
    group.add_argument("--num_classes", type=int, help="classes including void, for weights that do not say")
    group.add_argument("--dataset", help=dataset_help)
    add_overrides(group)


def default_backend(path: Optional[str]) -> str:
    """The backend a command runs `path` with when `--backend` is left out: an OpenVINO or TFLite
    export folder's own format, else "tensorflow" (before: such a folder was refused with a
    hint to say `--backend`)."""
    from ssma_tf.config.runs import exported_backend  # no TensorFlow

    said = exported_backend(path) if path else None
    return said if said in ("openvino", "tflite") else "tensorflow"


def model_source_or_exit(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, Any]:
    """Checks the flags of `add_model_source` (a run stands for `--checkpoint`); returns the `--set`
    overrides. Contradicting or missing flags end the command (exit 2)."""
    if args.run is not None:
        setting_as_run_or_exit(parser, args.run)
        if args.config is not None or args.checkpoint is not None:
            parser.error("give a training run's folder or .keras file, or -c/--checkpoint, not both")
        model_file_or_exit(parser, "RUN", args.run)
        args.checkpoint = args.run
    else:
        model_file_or_exit(parser, "--checkpoint", args.checkpoint)
    if args.config is None and args.checkpoint is None:
        parser.error("give a training run's folder, a config (-c) or a checkpoint (--checkpoint)")
    return parse_overrides_or_exit(parser, args.overrides)


def not_a_model_file(flag: str, path: str, takes: Optional[str] = None) -> Optional[str]:
    """The error for a model flag (`RUN`, `--checkpoint`, `--compare`) given a file that is no model,
    else None. Before: "no checkpoint at cfg/a.config (expected cfg/a.config.index, ...)" for a
    file that is there (helper 205; `--checkpoint` and `--compare`: helper 213).

    Args:
        takes: what the flag takes, for a flag that takes no config beside it (`--compare`);
            default: a model, and a config given with `-c`.
    """
    if not os.path.isfile(path) or _weights_or_checkpoint_part(path):
        return None
    if os.path.basename(path) == "checkpoint":
        from ssma_tf.checkpoints.reading import state_file_advice  # TensorFlow only for such a file

        advice = state_file_advice(path)  # a folder's state file: the prefix it names
        if advice is not None:
            return f"{flag} {advice}"
    if takes is not None:
        return f"{flag} {path} is a file but not a model: {takes}"
    config = path.endswith((".config", ".yaml", ".yml"))
    return (f"{flag} {path} is a file but not a model (a training run's folder, a .keras file or weights)"
            + (f": give a config with -c {path}" if config else ""))


def model_file_or_exit(parser: argparse.ArgumentParser, flag: str, path: Optional[str]) -> None:
    """Ends the command (`parser.error`) when a model flag names a file that is no model
    (`not_a_model_file`); nothing for a flag not given."""
    not_model = not_a_model_file(flag, path) if path is not None else None
    if not_model is not None:
        parser.error(not_model)


def _weights_or_checkpoint_part(path: str) -> bool:
    """Whether a file is weights or a pasted part of a checkpoint (`model.ckpt.index`, ...)."""
    from ssma_tf.constants import WEIGHTS_SUFFIXES

    name = os.path.basename(path)
    return name.endswith(WEIGHTS_SUFFIXES + (".index", ".meta")) or re.search(r"\.data-\d+-of-\d+$", name) is not None


def size_or_exit(parser: argparse.ArgumentParser, text: Optional[str]) -> Optional[tuple[int, int]]:
    """`--size` as (height, width), None for 'input' or no flag; a bad one ends the command."""
    from ssma_tf.inference.sizes import parse_size  # no TensorFlow

    try:
        return None if text is None else parse_size(text)
    except ValueError as error:
        parser.error(f"--size: {error}")
    raise AssertionError("unreachable")  # parser.error does not return


def finite_number(text: str) -> float:
    """The argparse `type` of a number flag: a float that is finite (before: `--max inf` was taken,
    and every depth picture came out flat, exit 0; `nan` passed the checks that compare)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def interpolation_flag(text: str) -> Any:
    """The argparse `type` of `--modality2_interpolation`: one method for modality 2 and every
    further one, or one per modality after the first, comma-separated (`nearest,bilinear` for an
    SSMA over three); a tuple then. Before, one method only: a lone `.keras` SSMA over three
    modalities could not be told that its third was resized bilinearly in training."""
    from ssma_tf.constants import INTERPOLATIONS  # no TensorFlow

    methods = tuple(part.strip() for part in text.split(","))
    for method in methods:
        if method not in INTERPOLATIONS:
            raise argparse.ArgumentTypeError(f"expected {' or '.join(INTERPOLATIONS)}, or one of them per modality "
                                             f"after the first separated by commas; got {text!r}")
    return methods[0] if len(methods) == 1 else methods


SEED_MAXIMUM = 2**32 - 1  # the config's `seed` and NumPy's generators take 0..2^32-1


def seed_number(text: str) -> int:
    """The argparse `type` of a `--seed`/`--seeds` value: an integer in 0..`SEED_MAXIMUM`, told
    before any work (before: -1 or 2^32 failed after an experiment's data were made)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if not 0 <= value <= SEED_MAXIMUM:
        raise argparse.ArgumentTypeError(f"must be in 0..{SEED_MAXIMUM}, got {value}")
    return value


def given_path(text: str) -> pathlib.Path:
    """The argparse `type` of a path flag: refuses an empty value (`-o "$OUT"` with OUT unset),
    which `pathlib.Path("")` reads as the current folder (before: `ssma-prepare -o ""` wrote
    into it, exit 0; helper 346)."""
    if not text:
        raise argparse.ArgumentTypeError("an empty path: give a file or folder name")
    return pathlib.Path(text)


def distinct_or_exit(parser: argparse.ArgumentParser, **lists: Optional[Sequence[Any]]) -> None:
    """Ends the command when a list flag (`seeds=[0, 0]` for `--seeds`) names a value twice: an
    experiment would count one run as two in its mean and range."""
    for name, values in lists.items():
        repeated = sorted({str(v) for v in values or () if list(values).count(v) > 1})
        if repeated:
            parser.error(f"--{name} names {', '.join(repeated)} more than once; give each once")


def output_folder_or_exit(parser: argparse.ArgumentParser, flag: str, path: Any) -> None:
    """Ends the command when `path`, given as `flag` for a folder it writes into (and resumes in),
    cannot be one (`ssma_tf.files.check_output`: a file, under a file, not writable). Before, an
    experiment took it and failed at its first write with "File exists" or "Not a directory",
    exit 1 (helper 304)."""
    from ssma_tf.files import OutputPathError, check_output  # no TensorFlow

    try:
        check_output(path, what=flag, directory=True, overwrite=None)
    except OutputPathError as error:
        parser.error(str(error))


def stride_multiples_or_exit(parser: argparse.ArgumentParser, **sizes: int) -> None:
    """Ends the command unless each size flag (`height=48` for `--height`) is a positive multiple of
    the networks' output stride, which the configs require only once the work has started."""
    from ssma_tf.constants import OUTPUT_STRIDE  # no TensorFlow

    for name, value in sizes.items():
        if value < OUTPUT_STRIDE or value % OUTPUT_STRIDE:
            parser.error(f"--{name} must be a positive multiple of {OUTPUT_STRIDE}, got {value}")


def fail(error: BaseException, status: int = 2) -> int:
    """Prints `error: <message>` on stderr (after the traceback of an exception under `--debug`, as
    `command` prints it); returns `status` for the command to exit with."""
    print_traceback_if_debug(error)
    print(f"error: {error}", file=sys.stderr)
    return status


def print_traceback_if_debug(error: Any) -> None:
    """Prints the traceback of an exception a command caught itself, when it runs with `--debug`
    (helper 219: ssma-prune, ssma-scene, ssma-prepare and ssma-importance-weights printed their
    one line alone, where docs/reliability.md promises the traceback before it)."""
    if _DEBUG.get() and isinstance(error, BaseException) and error.__traceback__ is not None:
        traceback.print_exception(type(error), error, error.__traceback__, file=sys.stderr)


def child_environment() -> dict[str, str]:
    """The environment in which the demos and experiments run a command (`python -m ssma_tf.cli...`).

    This `ssma_tf` comes first on the path (wherever it is installed, or a clone that is not),
    TensorFlow's C++ information lines are off and output is unbuffered, so that a child's lines
    show as they come.
    """
    path = os.pathsep.join(p for p in (str(PACKAGE_PARENT), os.environ.get("PYTHONPATH")) if p)
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1", PYTHONPATH=path)
