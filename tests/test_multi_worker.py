"""Two worker processes on localhost train together with MultiWorkerMirroredStrategy."""

import json
import os
import socket
import subprocess
import sys

import pytest

HERE = os.path.dirname(__file__)


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
def test_two_workers_complete_and_agree_on_the_weights(tmp_path):
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    processes = []
    for index in range(2):
        env = dict(os.environ, TF_CONFIG=json.dumps(
            {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}),
            TF_CPP_MIN_LOG_LEVEL="3")
        processes.append(subprocess.Popen(
            [sys.executable, os.path.join(HERE, "multi_worker_job.py"), str(tmp_path / "run")],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = []
    try:
        for process in processes:
            out, err = process.communicate(timeout=300)
            assert process.returncode == 0, err[-3000:]
            outputs.append(out)
    finally:
        for process in processes:
            process.kill()
    digests = [line.split()[1] for out in outputs for line in out.splitlines()
               if line.startswith("DIGEST")]
    assert len(digests) == 2 and digests[0] == digests[1]
    assert all("STEP 6" in out for out in outputs)
    # Only the chief's checkpoints are kept.
    kept = sorted(os.listdir(tmp_path / "run" / "checkpoints"))
    assert "ckpt-6.index" in kept and not any(name.startswith(".worker") for name in kept)


@pytest.mark.parametrize("cluster, task, chief", [
    ({"worker": ["a:1", "b:1"]}, ("worker", 0), True),
    ({"worker": ["a:1", "b:1"]}, ("worker", 1), False),
    ({"chief": ["c:1"], "worker": ["a:1", "b:1"]}, ("chief", 0), True),
    # With a chief task in the cluster, worker 0 is an ordinary worker (TensorFlow's rule).
    ({"chief": ["c:1"], "worker": ["a:1", "b:1"]}, ("worker", 0), False),
])
def test_one_chief_per_cluster(cluster, task, chief):
    from types import SimpleNamespace

    import tensorflow as tf

    from electra_tf.training.strategy import is_chief

    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
        tf.train.ClusterSpec(cluster), task_type=task[0], task_id=task[1])
    assert is_chief(SimpleNamespace(cluster_resolver=resolver)) is chief
