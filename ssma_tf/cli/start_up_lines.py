"""TensorFlow's start-up lines, which every command printed before its own output.

Importing TensorFlow 2.21 writes, twice (once per native library it loads):

    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    I0000 00:00:1796163695.329476   18898 port.cc:153] oneDNN custom operations are on. ...
    I0000 00:00:1796163695.329870   18898 cudart_stub.cc:31] Could not find cuda drivers on ...

`TF_CPP_MIN_LOG_LEVEL` cannot hide them: they are written before TensorFlow's logging reads it.
On a machine without an NVIDIA driver the first device query adds
`E0000 ... failed call to cuInit: ... CUDA error ... (303)`, an error for a GPU nobody asked for.

`quiet_tensorflow_start_up` makes the first `import tensorflow` of a command run with the
standard-error file descriptor sent to a temporary file, queries the devices in the same window,
and then writes back every line but those: information lines (`I` and a date, which
`TF_CPP_MIN_LOG_LEVEL` 1 and up hide once logging is set up), absl's note above, and the cuInit
failure where no NVIDIA driver is installed (where one is, a failed cuInit means the GPU will
not be used, and the line is kept). When the import fails, everything is written back. The
commands' `--debug` keeps every line.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import re
import sys
from typing import Any, Iterable, Optional

from ssma_tf.native_output import native_lines_filtered

_INFO_LINE = re.compile(r"I\d{4} \d\d:\d\d:\d\d")
_ABSL_NOTE = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
_NO_CUDA = "failed call to cuInit"
# Where an NVIDIA driver (or WSL's GPU bridge) is installed.
_DRIVER_PATHS = ("/proc/driver/nvidia/version", "/dev/nvidiactl", "/dev/dxg")


def quiet_tensorflow_start_up() -> None:
    """Drops TensorFlow's start-up lines (see the module) from the first `import tensorflow`.

    Does nothing when TensorFlow is already imported or the hook is installed. The hook removes
    itself on the import it quiets.
    """
    if "tensorflow" in sys.modules or any(isinstance(f, _QuietImport) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _QuietImport())


def remove_quiet_start_up() -> None:
    """Removes the hook of `quiet_tensorflow_start_up` if no import used it."""
    sys.meta_path[:] = [finder for finder in sys.meta_path if not isinstance(finder, _QuietImport)]


def kept_lines(lines: Iterable[str], gpu_driver: bool) -> list[str]:
    """The captured start-up lines worth showing (all but those the module lists)."""
    kept = []
    for line in lines:
        if line.startswith(_ABSL_NOTE) or _INFO_LINE.match(line):
            continue
        if _NO_CUDA in line and not gpu_driver:
            continue
        kept.append(line)
    return kept


def has_gpu_driver() -> bool:
    """Whether this machine has an NVIDIA driver (a failed cuInit then matters)."""
    return any(os.path.exists(path) for path in _DRIVER_PATHS)


class _QuietImport(importlib.abc.MetaPathFinder):
    """Finds `tensorflow` as Python would, with a loader that runs it quietly."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Optional[importlib.machinery.ModuleSpec]:
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _QuietLoader(spec.loader)
        return spec


class _QuietLoader(importlib.abc.Loader):
    """Runs TensorFlow's `__init__` (and the device query) with standard error captured."""

    def __init__(self, loader: Any):
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        # The module keeps the real loader (reloads, resources).
        module.__loader__ = self._loader
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        with native_lines_filtered(lambda lines: kept_lines(lines, has_gpu_driver())):
            self._loader.exec_module(module)
            module.config.list_physical_devices()  # the cuInit line comes here, not at the first op
