"""Checkpoints of a run directory, and the run directory's layout.

    RUN_DIR/config.yaml              the resolved config (written before the first step)
    RUN_DIR/vocab.txt                the vocabulary, when the run built or copied it
    RUN_DIR/checkpoints/ckpt-N.*     tf.train.Checkpoint(model=…, optimizer=…, step=…, data=…)
    RUN_DIR/tensorboard/{train,eval} TensorBoard event files

`model` holds the networks' weights under their TF1 names (see `model_checkpoint`), so exporters
can restore the networks without the optimizer.

Saves are atomic: TensorFlow writes the data files under temporary names and renames them, and
only then rewrites the `checkpoint` index (itself written to a temporary file and renamed). A
crash mid-save leaves the previous checkpoint as the latest.
"""

from __future__ import annotations

import logging
import os

import tensorflow as tf

from electra_tf.config import ConfigError, RunConfig, read_saved_config, save_config
from electra_tf.models import ElectraNetworks

log = logging.getLogger(__name__)

CONFIG_NAME = "config.yaml"
CHECKPOINT_DIR = "checkpoints"


def model_checkpoint(networks: ElectraNetworks) -> tf.train.Checkpoint:
    """The networks' variables, keyed by their canonical (TF1) names, plus dropout seeds.

    Explicit names rather than Keras object tracking: Keras 3 layers do not expose their
    sub-layers to tf.train.Checkpoint, and the names stay stable if the code is reorganised.
    """
    from electra_tf.interop.names import tf1_variables

    return tf.train.Checkpoint(
        weights=dict(tf1_variables(networks)),
        # Without the dropout seed states a resumed run would draw other dropout masks.
        dropout_seeds={f"seed_{i}": v for i, v in enumerate(dropout_seed_states(networks))})


def dropout_seed_states(networks: ElectraNetworks) -> list:
    seen, states = set(), []
    for network in (networks.generator, networks.discriminator):
        for variable in network.non_trainable_variables if network is not None else ():
            if "seed_generator" in variable.path and id(variable) not in seen:
                seen.add(id(variable))
                states.append(variable)
    return states


def _incompatibilities(saved: RunConfig, new: RunConfig) -> list[str]:
    """Fields that must not change when a run resumes (they change the variables or data)."""
    problems = []
    if saved.model != new.model:
        problems.append("model (network sizes)")
    if saved.objective.kind != new.objective.kind:
        problems.append("objective.kind")
    for name in ("seq_length", "tokenizer", "lower_case", "strip_accents"):
        if getattr(saved.data, name) != getattr(new.data, name):
            problems.append(f"data.{name}")
    if saved.train.precision != new.train.precision and "mixed_float16" in (
            saved.train.precision, new.train.precision):
        problems.append("train.precision (to or from mixed_float16, which adds a loss scale)")
    return problems


def prepare_run_dir(config: RunConfig, chief: bool = True) -> None:
    """Creates the run directory and saves the config, or checks it against the saved one."""
    run_dir = config.train.run_dir
    path = os.path.join(run_dir, CONFIG_NAME)
    if tf.io.gfile.exists(path):
        saved = read_saved_config(path)
        problems = _incompatibilities(saved, config)
        if problems:
            raise ConfigError(
                f"{run_dir} holds a run with a different {', '.join(problems)}; resuming it "
                "with this config would not work. Use a new train.run_dir, or the saved "
                f"config ({path}).")
    if chief:
        tf.io.gfile.makedirs(run_dir)
        save_config(config, path)


class RunCheckpoints:
    """CheckpointManager for a run: resume, periodic saves, and multi-worker-safe writes."""

    def __init__(self, run_dir: str, keep: int, *, networks: ElectraNetworks, optimizer,
                 step: tf.Variable, data_iterator=None, chief: bool = True, worker_id: int = 0):
        parts = dict(model=model_checkpoint(networks), optimizer=optimizer, step=step)
        if data_iterator is not None:
            parts["data"] = data_iterator
        self.checkpoint = tf.train.Checkpoint(**parts)
        directory = os.path.join(run_dir, CHECKPOINT_DIR)
        self.directory = directory
        if not chief:  # every worker must take part in a save; only the chief's is kept
            directory = os.path.join(directory, f".worker-{worker_id}")
        self.chief = chief
        self.manager = tf.train.CheckpointManager(self.checkpoint, directory, max_to_keep=keep,
                                                  step_counter=step)
        self.step = step

    @property
    def latest(self) -> str | None:
        return tf.train.latest_checkpoint(self.directory)

    def restore_latest(self) -> bool:
        """Restores the newest checkpoint of the run; returns False for a fresh run."""
        path = self.latest
        if path is None:
            return False
        self.checkpoint.restore(path).assert_existing_objects_matched()
        log.info("resumed from %s at step %d", path, int(self.step.numpy()))
        return True

    def save(self) -> str:
        path = self.manager.save(checkpoint_number=int(self.step.numpy()))
        if not self.chief:
            tf.io.gfile.rmtree(os.path.dirname(path))
        log.info("saved checkpoint %s", path)
        return path


def restore_networks(run_dir: str, networks: ElectraNetworks, step: int | None = None) -> str:
    """Restores only the networks from a run's checkpoint (the latest, or the one at `step`)."""
    directory = os.path.join(run_dir, CHECKPOINT_DIR)
    if step is None:
        path = tf.train.latest_checkpoint(directory)
        if path is None:
            raise FileNotFoundError(f"no checkpoint in {directory}; train first, or check "
                                    "the --run-dir")
    else:
        path = os.path.join(directory, f"ckpt-{step}")
        if not tf.io.gfile.exists(path + ".index"):
            raise FileNotFoundError(f"no checkpoint for step {step} in {directory}")
    tf.train.Checkpoint(model=model_checkpoint(networks)).restore(path).expect_partial()\
        .assert_existing_objects_matched()
    return path
