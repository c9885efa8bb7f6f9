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


def test_one_device_uses_the_default_strategy(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    strategy = create_strategy(None)
    assert strategy is tf.distribute.get_strategy()
    assert strategy.num_replicas_in_sync == 1
    assert is_chief(strategy) and task_id(strategy) == 0
