"""Tests of `ssma_tf.distribute`: device selection and the choice of strategy."""

from __future__ import annotations

import json
import os

import pytest
import tensorflow as tf

from ssma_tf.distribute import cluster_task, configure_devices, create_strategy, is_chief, task_id


def test_gpu_id_sets_cuda_visible_devices(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    configure_devices(None)
    assert "CUDA_VISIBLE_DEVICES" not in os.environ
    configure_devices("-1")
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "-1"


def test_cluster_only_when_tf_config_has_several_tasks(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert cluster_task() is None
    one = {"cluster": {"worker": ["localhost:1"]}, "task": {"type": "worker", "index": 0}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(one))
    assert cluster_task() is None
    two = {"cluster": {"chief": ["localhost:1"], "worker": ["localhost:2"]}, "task": {"type": "chief", "index": 0}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(two))
    assert cluster_task() == ("chief", 0, two["cluster"])
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="TF_CONFIG"):
        cluster_task()


@pytest.mark.parametrize("raw, message", [
    ("{'cluster': {}}", r"TF_CONFIG is not valid JSON \(Expecting property name enclosed in double quotes at "
                        r"character 1\); keys and strings need double quotes, e.g. \{\"cluster\""),
    ('{"cluster": ["a:1", "b:2"]}', r'TF_CONFIG needs a "cluster" mapping task types to lists of host:port'),
    ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}',
     r"TF_CONFIG: task index 2 of type 'worker', but the cluster lists 2 worker task\(s\) \(index 0 to 1\)"),
    ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "chief", "index": 0}}',
     r"TF_CONFIG: task type 'chief' is not in the cluster \(worker\)"),
    ('{"cluster": {"worker": ["a:1", "b:2"]}}', r"TF_CONFIG: task type None is not in the cluster"),
    ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "evaluator", "index": 0}}',
     r"TF_CONFIG: an evaluator task does not train"),
    # Before: a 41-line traceback, "Could not parse port for local server" (helper 145).
    ('{"cluster": {"worker": ["localhost", "localhost:2"]}, "task": {"type": "worker", "index": 0}}',
     r"TF_CONFIG: worker task 0 is 'localhost'; each task is \"host:port\" with a port in 1\.\.65535"),
    ('{"cluster": {"worker": ["a:1", "b:99999"]}, "task": {"type": "worker", "index": 0}}',
     r"TF_CONFIG: worker task 1 is 'b:99999'"),
])
def test_a_tf_config_that_cannot_place_this_task_is_one_line(monkeypatch, raw, message):
    """Before: TensorFlow's traceback (exit 1), or a task index beyond the cluster accepted."""
    from ssma_tf.distribute import ClusterError

    monkeypatch.setenv("TF_CONFIG", raw)
    with pytest.raises(ClusterError, match=message):
        cluster_task()


def test_a_tf_config_that_tensorflow_reads_is_read_alike(monkeypatch):
    # No cluster: one machine, as TensorFlow's resolver reads it (not an error).
    for raw in ("{}", '{"task": {"type": "worker", "index": 0}}'):
        monkeypatch.setenv("TF_CONFIG", raw)
        assert cluster_task() is None
    # An index given as a string, as TensorFlow takes it.
    cluster = {"chief": ["a:1"], "worker": ["b:2", "c:3"]}
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": "1"}}))
    assert cluster_task() == ("worker", 1, cluster)


def test_train_names_its_place_in_the_cluster_and_a_lost_task_in_one_line(monkeypatch, tmp_path, capsys):
    import ssma_tf.training
    from ssma_tf.cli import train as train_cli

    config = tmp_path / "c.config"
    config.write_text("model: AdapNet_pp\nnum_classes: 3\nheight: 32\nwidth: 64\nbatch_size: 2\nmax_iteration: 1\n"
                      f"learning_rate: 0.001\ncheckpoint: {tmp_path / 'run'}\ntrain_data: {config}\n")

    def lost(config):
        raise tf.errors.UnavailableError(None, None, "Socket closed")

    monkeypatch.setattr(ssma_tf.training, "train", lost)
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["a:1", "b:2"]},
                                                "task": {"type": "worker", "index": 1}}))
    assert train_cli.main(["-c", str(config)]) == 1
    error = capsys.readouterr().err
    assert "TF_CONFIG: worker 1 of a cluster of 2 training tasks; waiting until every task has started" in error
    assert ("error: another task of the cluster stopped or cannot be reached (UnavailableError: Socket closed); "
            "start every task again with the same command") in error
    assert "Traceback" not in error
    # Without a cluster the error is not reworded (an internal error keeps its traceback).
    monkeypatch.delenv("TF_CONFIG")
    with pytest.raises(tf.errors.UnavailableError):
        train_cli.main(["-c", str(config)])


def test_one_device_uses_the_default_strategy(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    strategy = create_strategy(None)
    assert strategy is tf.distribute.get_strategy()
    assert strategy.num_replicas_in_sync == 1
    assert is_chief(strategy) and task_id(strategy) == 0


@pytest.mark.parametrize("gpus, gpu_id, message", [
    (1, "0,1", r"gpu_id '0,1' asks for 2 GPUs, but only 1 of them are there"),
    (3, "5", r"gpu_id '5' names GPU\(s\) \[5\], but only 3 exist"),
])
def test_a_gpu_id_naming_gpus_that_are_not_there_is_one_line(monkeypatch, gpus, gpu_id, message):
    """Helper 92: `0,5` on two GPUs (CUDA shows one) was accepted, and the one refusal was a
    traceback (a ValueError, not an input error)."""
    from ssma_tf.distribute import DeviceError
    from ssma_tf.errors import UserInputError

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [f"GPU:{i}" for i in range(gpus)])
    with pytest.raises(DeviceError, match=message) as caught:
        configure_devices(gpu_id)
    assert isinstance(caught.value, UserInputError)
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [])
    configure_devices("0")  # no GPUs at all: the CPU, as every released config on such a machine


@pytest.mark.parametrize("gpus, gpu_id", [(1, "1"), (2, "2,3")])
def test_gpus_listed_before_the_variable_are_checked_though_as_many_as_asked(monkeypatch, gpus, gpu_id):
    """Helper 239: TensorFlow had listed the GPUs before gpu_id was applied, and a list of as many
    as asked for was taken for the variable's effect: `gpu_id: 1` on one GPU trained on GPU 0."""
    import ssma_tf.distribute as distribute
    from ssma_tf.distribute import DeviceError

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [f"GPU:{i}" for i in range(gpus)])
    selected = []
    monkeypatch.setattr(tf.config, "set_visible_devices", lambda devices, kind=None: selected.append(devices))
    monkeypatch.setattr(distribute, "_devices_listed", lambda: True)
    for attempt in (1, 2):  # a retry too (helper 241: the variable left set passed for its effect)
        with pytest.raises(DeviceError, match=rf"gpu_id '{gpu_id}' names GPU\(s\) .*, but only {gpus} exist"):
            configure_devices(gpu_id)
        assert os.environ["CUDA_VISIBLE_DEVICES"] == ""
    # Listed only now, under the variable: the GPUs it shows are those asked for, renumbered from 0.
    monkeypatch.setattr(distribute, "_devices_listed", lambda: False)
    configure_devices(gpu_id)
    # Listed before under the same value (a second call): the same.
    monkeypatch.setattr(distribute, "_devices_listed", lambda: True)
    configure_devices(gpu_id)
    assert selected == []
    # Listed before without the variable, a GPU that is there: selected by its index.
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    configure_devices("0")
    assert selected == [["GPU:0"]]


_WAIT_ALONE = """
import os, socket, sys
import ssma_tf.distribute as distribute
distribute.CLUSTER_JOIN_SECONDS = float(sys.argv[1])
taken = socket.socket()
taken.bind(("localhost", 0))
if sys.argv[2] == "taken":  # this task's own port held by another process
    taken.listen()
ports = [taken.getsockname()[1], int(sys.argv[3])]
os.environ["TF_CONFIG"] = ('{"cluster": {"worker": ["localhost:%d", "localhost:%d"]}, '
                           '"task": {"type": "worker", "index": 0}}' % tuple(ports))
if sys.argv[2] != "taken":
    taken.close()
print("waiting", flush=True)
try:
    distribute.create_strategy()
except distribute.ClusterError as error:
    print(f"ClusterError: {error}", flush=True)
    sys.exit(2)
"""


def _free_port():
    import socket

    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return probe.getsockname()[1]


def test_a_task_whose_peers_never_start_ends_with_a_line_and_sigterm_ends_it(tmp_path):
    """Before: a worker alone waited silently up to TensorFlow's hour, and SIGTERM did not stop it
    (only SIGKILL); a port in use was a 41-line traceback (helper 145)."""
    import signal
    import subprocess
    import sys
    import time

    from tests.conftest import ROOT

    def start(seconds, own):
        return subprocess.Popen([sys.executable, "-c", _WAIT_ALONE, str(seconds), own, str(_free_port())], cwd=ROOT,
                                env={**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)

    def end(process):  # the task and its watchdog, whatever the test found
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    alone = start(3, "free")
    try:
        out, err = alone.communicate(timeout=120)
    finally:
        end(alone)
    assert alone.returncode == -signal.SIGKILL, (out, err)
    assert "error: TF_CONFIG: this worker task 0 waited 0.05 minutes for the other task(s) of its cluster, worker 1 " \
           "(localhost:" in err, err
    # A scheduler's SIGTERM (to the whole job) ends the wait.
    stopped = start(300, "free")
    try:
        assert stopped.stdout.readline() == "waiting\n"
        time.sleep(3)  # into TensorFlow's wait
        os.killpg(stopped.pid, signal.SIGTERM)
        stopped.communicate(timeout=60)
    finally:
        end(stopped)
    assert stopped.returncode == -signal.SIGKILL
    taken = start(300, "taken")
    try:
        out, err = taken.communicate(timeout=120)
    finally:
        end(taken)
    assert taken.returncode == 2 and "ClusterError: TF_CONFIG: cannot listen on localhost:" in out, (out, err)
    assert "this worker task 0's address (" in out and "is its port in use by another process" in out, out


def test_the_watchdog_leaves_signals_the_task_ignores_alone():
    """Helper 146: a task started with `&` in a script ignores SIGINT; its watchdog turned a Ctrl-C
    meant for the script into a SIGKILL of the task. The watchdog alone, on a stand-in task."""
    import signal
    import subprocess
    import sys
    import time

    from ssma_tf.distribute import _WATCHDOG

    for ignored in (True, False):
        task = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        # Set either way: a test worker may ignore SIGINT itself, and a child inherits that.
        disposition = signal.SIG_IGN if ignored else signal.SIG_DFL
        keep = lambda disposition=disposition: signal.signal(signal.SIGINT, disposition)  # noqa: E731
        watchdog = subprocess.Popen([sys.executable, "-I", "-c", _WATCHDOG, str(task.pid), "60", "line"],
                                    stdin=subprocess.PIPE, preexec_fn=keep)
        try:
            time.sleep(1)  # its handlers in place
            watchdog.send_signal(signal.SIGINT)
            time.sleep(1)
            assert (task.poll() is None) == ignored, ignored
            watchdog.stdin.close()  # the wait is over: it leaves without a word
            assert watchdog.wait(timeout=30) == 0
        finally:
            task.kill()
            watchdog.kill()
            task.wait()
