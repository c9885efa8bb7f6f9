"""Tests of `ssma_tf.distribute`: device selection and the choice of strategy."""

from __future__ import annotations

import json
import os

import pytest
import tensorflow as tf

from ssma_tf.distribute import cluster_from_env, configure_devices, create_strategy, is_chief, task_id


def test_gpu_id_sets_cuda_visible_devices(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    configure_devices(None)
    assert "CUDA_VISIBLE_DEVICES" not in os.environ
    configure_devices("-1")
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "-1"


def test_cluster_only_when_tf_config_has_several_tasks(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert cluster_from_env() is None
    one = {"cluster": {"worker": ["localhost:1"]}, "task": {"type": "worker", "index": 0}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(one))
    assert cluster_from_env() is None
    two = {"cluster": {"chief": ["localhost:1"], "worker": ["localhost:2"]}, "task": {"type": "chief", "index": 0}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(two))
    assert cluster_from_env() == two["cluster"]
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="TF_CONFIG"):
        cluster_from_env()


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
])
def test_a_tf_config_that_cannot_place_this_task_is_one_line(monkeypatch, raw, message):
    """Before: TensorFlow's traceback (exit 1), or a task index beyond the cluster accepted."""
    from ssma_tf.distribute import ClusterError

    monkeypatch.setenv("TF_CONFIG", raw)
    with pytest.raises(ClusterError, match=message):
        cluster_from_env()


def test_a_tf_config_that_tensorflow_reads_is_read_alike(monkeypatch):
    from ssma_tf.distribute import cluster_task

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
