"""Choosing the distribution strategy, and which worker is the chief."""

import json
from types import SimpleNamespace

import pytest
import tensorflow as tf

from electra_tf.config import ConfigError, TrainConfig
from electra_tf.training.strategy import create_strategy, is_chief


def test_auto_on_a_cpu_machine_is_the_default_strategy():
    strategy = create_strategy(TrainConfig(strategy="auto"))
    assert strategy is tf.distribute.get_strategy()
    assert strategy.num_replicas_in_sync == 1


def test_mirrored_runs_on_the_visible_devices():
    assert create_strategy(TrainConfig(strategy="mirrored")).num_replicas_in_sync >= 1


def test_multi_worker_without_tf_config_says_what_to_set(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="TF_CONFIG is not set"):
        create_strategy(TrainConfig(strategy="multi_worker"))
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ConfigError, match="TF_CONFIG is not valid JSON"):
        create_strategy(TrainConfig(strategy="multi_worker"))


def test_an_unreachable_tpu_is_a_config_error():
    with pytest.raises(ConfigError, match="could not connect to the TPU 'no-such-tpu'"):
        create_strategy(TrainConfig(strategy="tpu", tpu="no-such-tpu"))


def resolver(task_type, task_id, cluster):
    spec = SimpleNamespace(as_dict=lambda: cluster)
    return SimpleNamespace(task_type=task_type, task_id=task_id, cluster_spec=lambda: spec)


@pytest.mark.parametrize("task_type, task_id, cluster, chief", [
    ("chief", 0, {"chief": ["a"], "worker": ["b"]}, True),
    ("worker", 0, {"chief": ["a"], "worker": ["b"]}, False),   # a chief task exists
    ("worker", 0, {"worker": ["a", "b"]}, True),               # no chief: worker 0 leads
    ("worker", 1, {"worker": ["a", "b"]}, False),
])
def test_the_chief_follows_tensorflows_rule(task_type, task_id, cluster, chief):
    strategy = SimpleNamespace(cluster_resolver=resolver(task_type, task_id, cluster))
    assert is_chief(strategy) is chief
    assert json.dumps(cluster)  # the cluster is plain data, as TF_CONFIG gives it


def test_a_single_process_is_its_own_chief():
    assert is_chief(tf.distribute.get_strategy())
