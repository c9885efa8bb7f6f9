"""TensorFlow's start-up lines are dropped from the commands' output; everything else is kept."""

import importlib.machinery
import os
import subprocess
import sys
import types

import pytest

from ssma_tf.cli import start_up_lines
from tests.conftest import ROOT

INFO = "I0000 00:00:1796163695.329476   18898 port.cc:153] oneDNN custom operations are on.\n"
NOTE = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
WARNING = "W0000 00:00:1796163695.400000   18898 allocator.cc:1] Allocation exceeds 10% of free memory.\n"
NO_CUDA = ("E0000 00:00:1796163698.706497   18898 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA "
           "error: Failed call to cuInit: UNKNOWN ERROR (303)\n")


def test_information_lines_and_the_absl_note_go_the_cuinit_failure_only_without_a_driver():
    lines = [NOTE, INFO, WARNING, "a Python warning\n", NO_CUDA]
    assert start_up_lines.kept_lines(lines, gpu_driver=False) == [WARNING, "a Python warning\n"]
    assert start_up_lines.kept_lines(lines, gpu_driver=True) == [WARNING, "a Python warning\n", NO_CUDA]


class _Loader:
    """A loader whose module writes start-up lines on descriptor 2, as TensorFlow's libraries do."""

    def __init__(self, fail: bool = False):
        self.fail = fail

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        os.write(2, (NOTE + INFO + WARNING).encode())
        if self.fail:
            raise ImportError("libtensorflow_framework.so.2: cannot open shared object file")
        module.config = types.SimpleNamespace(list_physical_devices=lambda: os.write(2, NO_CUDA.encode()))


def _module(loader):
    module = types.ModuleType("tensorflow")
    module.__spec__ = importlib.machinery.ModuleSpec("tensorflow", loader)
    return module


def test_the_import_keeps_its_other_lines_and_a_failed_one_keeps_all(capfd, monkeypatch):
    monkeypatch.setattr(start_up_lines, "has_gpu_driver", lambda: False)
    loader = _Loader()
    module = _module(loader)
    start_up_lines._QuietLoader(loader).exec_module(module)
    assert capfd.readouterr().err == WARNING
    assert module.__loader__ is loader and module.__spec__.loader is loader  # the real one, for reloads
    failing = _Loader(fail=True)
    with pytest.raises(ImportError, match="cannot open shared object file"):
        start_up_lines._QuietLoader(failing).exec_module(_module(failing))
    assert capfd.readouterr().err == NOTE + INFO + WARNING  # nothing hidden when the import fails


def test_a_command_prints_only_its_own_lines(tmp_path):
    """Before: eight lines of TensorFlow's start-up (oneDNN, CUDA drivers, a cuInit "error") before
    the command's one line."""
    code = ("import sys; from ssma_tf.cli.check_records import main; "
            "sys.exit(main(sys.argv[1:]))")
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = str(ROOT)
    run = subprocess.run([sys.executable, "-c", code, "nothing.tfrecords"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 2 and run.stdout == ""
    lines = run.stderr.splitlines()
    assert lines[-1] == "error: no TFRecord file matches 'nothing.tfrecords'"
    if not start_up_lines.has_gpu_driver():  # with one, TensorFlow's lines about the GPU stay
        assert lines == lines[-1:]
