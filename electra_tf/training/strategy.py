"""Choosing the tf.distribute strategy from the config."""

from __future__ import annotations

import json
import logging
import os

import tensorflow as tf

from electra_tf.config import ConfigError, TrainConfig

log = logging.getLogger(__name__)


def create_strategy(config: TrainConfig) -> tf.distribute.Strategy:
    """Returns the strategy named by `train.strategy`.

    auto: TPU when `train.tpu` is set (an address, a name, or "local" on a TPU VM), mirrored when
    more than one GPU is visible, otherwise the default strategy.
    """
    kind = config.strategy
    if kind == "auto":
        if config.tpu:
            kind = "tpu"
        elif len(tf.config.list_logical_devices("GPU")) > 1:
            kind = "mirrored"
        else:
            kind = "default"
    if kind == "default":
        strategy = tf.distribute.get_strategy()
    elif kind == "mirrored":
        strategy = tf.distribute.MirroredStrategy()
    elif kind == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise ConfigError("train.strategy is multi_worker but TF_CONFIG is not set: export "
                              "TF_CONFIG with the cluster and this worker's task on every worker")
        try:
            json.loads(os.environ["TF_CONFIG"])
        except json.JSONDecodeError as e:
            raise ConfigError(f"TF_CONFIG is not valid JSON: {e}") from None
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    elif kind == "tpu":
        tpu = config.tpu or "local"
        install = tpu_install_problem()
        if install:
            log.warning("%s", install)
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
            tf.config.experimental_connect_to_cluster(resolver)
            topology = tf.tpu.experimental.initialize_tpu_system(resolver)
        except (ValueError, OSError, tf.errors.OpError) as e:  # OSError: URLError (GCE)
            raise ConfigError(f"could not connect to the TPU {tpu!r} (train.tpu): {e}. On a TPU "
                              "VM use train.tpu=local; elsewhere give the TPU name"
                              + (f". {install}" if install else "")) from None
        strategy = tf.distribute.TPUStrategy(resolver)
        log.info("%s", describe_tpu(topology, strategy.num_replicas_in_sync))
    else:  # validated earlier
        raise ConfigError(f"unknown train.strategy {kind!r}")
    log.info("strategy: %s with %d replica(s)", type(strategy).__name__,
             strategy.num_replicas_in_sync)
    return strategy


def describe_tpu(topology: tf.tpu.experimental.Topology, replicas: int) -> str:
    """One line saying what TPU the run got: the first-run check a TPU VM user reads."""
    mesh = "x".join(str(n) for n in topology.mesh_shape)
    return (f"TPU topology: mesh {mesh} (chips x cores per chip), {topology.num_tasks} "
            f"host(s) x {topology.num_tpus_per_task} TPU device(s) = "
            f"{topology.num_tasks * topology.num_tpus_per_task} device(s); "
            f"{replicas} replica(s) in sync; TensorFlow {tf.__version__}")


def tpu_install_problem() -> str | None:
    """Why this environment's TensorFlow may not drive a TPU (None when it is the TPU build)."""
    from importlib import metadata

    builds = set()
    for name in ("tensorflow", "tensorflow-cpu", "tensorflow-tpu", "tf-nightly",
                 "tf-nightly-tpu"):
        try:
            builds.add(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pass
    has_tpu_build = any(b.split()[0].endswith("-tpu") for b in builds)
    if has_tpu_build and len(builds) == 1:
        return None
    found = ", ".join(sorted(builds)) or "no TensorFlow distribution"
    if has_tpu_build:
        problem = f"two TensorFlow builds are installed ({found}) and one shadows the other"
    else:
        problem = f"this TensorFlow is not the TPU build ({found})"
    return (f"{problem}: on a TPU VM install electra-tf with `bash scripts/install_tpu_vm.sh` "
            "in a fresh environment (docs/tpu.md)")


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True on the worker that writes summaries and the canonical checkpoints."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    # Worker 0 leads only in a cluster without a chief task (TensorFlow's own rule).
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief
