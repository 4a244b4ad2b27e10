"""Checkpoints of a run: saving, resuming, and restoring a run's networks elsewhere.

A checkpoint is tf.train.Checkpoint(model=…, optimizer=…, step=…, data=…) under
RUN_DIR/checkpoints/ckpt-N (see `run_dir.py` for the layout). `model` is what the task names
(`Task.checkpoint_weights`); for pretraining, the networks' weights under their TF1 names (see
`model_checkpoint`), so exporters can restore the networks without the optimizer.

Saves are atomic as far as a resume sees them: TensorFlow writes checkpoint N under
`ckpt-N_temp/`, moves its files to `ckpt-N.*` (the index is written in place), removes that
directory, and only then rewrites the `checkpoint` index (through a temporary file). A crash
mid-save leaves `ckpt-N_temp/`, and the next start deletes it together with any `ckpt-N.*` file
already moved (`run_dir.remove_partial_saves`), so the previous checkpoint is the latest. A
failed save says so in one line. A checkpoint whose files are missing or unreadable is skipped
(with a warning) for the newest one that reads.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable

import tensorflow as tf

from electra_tf.errors import CheckpointError, MissingFileError, short_message
from electra_tf.models import ElectraNetworks
from electra_tf.models.assign import CheckpointMismatchError, assign_named
from electra_tf.models.names import RUN_WEIGHTS_PREFIX, RUN_WEIGHTS_SUFFIX, tf1_variables
from electra_tf.models.networks import unique_variables
from electra_tf.training.run_dir import (
    BEST_DIR,
    CHECKPOINT_DIR,
    CONFIG_NAME,
    checkpoint_exists,
    checkpoint_paths,
    remove_partial_saves,
)

log = logging.getLogger(__name__)

# What TensorFlow raises for a checkpoint with missing or truncated files.
_UNREADABLE = (tf.errors.OpError, IndexError)


def model_checkpoint(networks: ElectraNetworks) -> tf.train.Checkpoint:
    """The networks' variables, keyed by their canonical (TF1) names, plus dropout seeds.

    Explicit names rather than Keras object tracking: Keras 3 layers do not expose their
    sub-layers to tf.train.Checkpoint, and the names stay stable if the code is reorganised.
    """
    return tf.train.Checkpoint(
        weights=dict(tf1_variables(networks)),
        # Without the dropout seed states a resumed run would draw other dropout masks.
        dropout_seeds={f"seed_{i}": v for i, v in enumerate(dropout_seed_states(networks))})


def dropout_seed_states(networks: ElectraNetworks) -> list:
    variables = [v for network in (networks.generator, networks.discriminator)
                 if network is not None for v in network.non_trainable_variables]
    return [v for v in unique_variables(variables) if "seed_generator" in v.path]


def _files(prefix: str) -> str:
    found = sorted(os.path.basename(p) for p in tf.io.gfile.glob(prefix + ".*"))
    return ", ".join(found) or "no files"


def _restore_newest(directory: str, restore: Callable[[str], None]) -> str | None:
    """Calls `restore` on the newest checkpoint in `directory` whose files exist and read, and
    returns its prefix (None if the directory has no checkpoints). Each checkpoint skipped is
    logged; if none can be restored, raises CheckpointError naming them all."""
    skipped = []
    for path in checkpoint_paths(directory):
        if not checkpoint_exists(path):
            why = "its files are missing"
        else:
            try:
                restore(path)
                return path
            except _UNREADABLE as e:
                why = f"its files ({_files(path)}) cannot be read: {short_message(e)}"
        log.warning("skipping checkpoint %s: %s", path, why)
        skipped.append(f"{os.path.basename(path)}: {why}")
    if skipped:
        raise CheckpointError(
            f"no checkpoint in {directory} can be restored ({'; '.join(skipped)}). Put back "
            f"the missing or damaged files; to start the run over instead, move {directory} "
            "away.")
    return None


def _weight_name(key: str) -> str | None:
    """The TF1 name in a checkpoint key of `model_checkpoint`'s weights, else None."""
    if not (key.startswith(RUN_WEIGHTS_PREFIX) and key.endswith(RUN_WEIGHTS_SUFFIX)):
        return None
    escaped = key[len(RUN_WEIGHTS_PREFIX):-len(RUN_WEIGHTS_SUFFIX)]
    # TensorFlow escapes "." as ".." and "/" as ".S" in object names.
    return re.sub(r"\.(.)", lambda m: "/" if m[1] == "S" else m[1], escaped)


def _run_weights(reader) -> dict[str, str]:
    """{TF1 name: checkpoint key} of the networks' weights in an electra-tf checkpoint."""
    keys = reader.get_variable_to_shape_map()
    return {name: key for key in keys if (name := _weight_name(key)) is not None}


def is_run_checkpoint(path: str) -> bool:
    """True for what `restore_networks` reads: an electra-tf run directory, its checkpoints/
    directory, or one of its checkpoint prefixes (`RUN/checkpoints/ckpt-N`)."""
    if tf.io.gfile.exists(os.path.join(path, CONFIG_NAME)):
        return True
    prefixes = ([path] if checkpoint_exists(path)
                else [p for p in checkpoint_paths(path) if checkpoint_exists(p)])
    if not prefixes:
        return False
    try:
        return bool(_run_weights(tf.train.load_checkpoint(prefixes[0])))
    except _UNREADABLE:
        return False


class RunCheckpoints:
    """CheckpointManager for a run: resume, periodic saves, and multi-worker-safe writes."""

    def __init__(self, run_dir: str, keep: int, *, weights: tf.train.Checkpoint, optimizer,
                 step: tf.Variable, data_iterator=None, chief: bool = True, worker_id: int = 0):
        parts = dict(model=weights, optimizer=optimizer, step=step)
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
        self.run_dir = run_dir

    @property
    def latest(self) -> str | None:
        """The newest checkpoint whose files exist."""
        return next((p for p in checkpoint_paths(self.directory) if checkpoint_exists(p)), None)

    def restore_latest(self) -> bool:
        """Restores the newest checkpoint of the run that reads; returns False for a fresh run.

        Checkpoints with missing or unreadable files are skipped with a warning; if the run has
        checkpoints but none can be restored, raises CheckpointError rather than start over.
        """
        def restore(path: str) -> None:
            try:
                self.checkpoint.restore(path).assert_existing_objects_matched()
            except AssertionError as e:
                raise CheckpointMismatchError(
                    f"checkpoint {path} does not hold what this run saves "
                    f"({short_message(e)}); was it written by another version of electra-tf, "
                    "or with another train.strategy? Use a new train.run_dir with "
                    f"train.init_checkpoint={os.path.dirname(self.directory)}.") from None

        path = _restore_newest(self.directory, restore)
        if path is None:
            return False
        log.info("resumed from %s at step %d", path, int(self.step.numpy()))
        return True

    def save(self) -> str:
        """Saves at the current step. A failed save (a full disk, a lost connection) raises a
        CheckpointError, with what it left half-written removed and the earlier checkpoints
        as they were."""
        try:
            path = self.manager.save(checkpoint_number=int(self.step.numpy()))
        except tf.errors.OpError as e:
            remove_partial_saves(self.run_dir)
            raise CheckpointError(
                f"could not save a checkpoint in {self.directory}: {short_message(e)}. The "
                f"earlier checkpoints are intact (latest: {self.latest}); free space or fix "
                "the location, then rerun the same command to resume from there.") from None
        if not self.chief:
            tf.io.gfile.rmtree(os.path.dirname(path))
        log.info("saved checkpoint %s", path)
        return path


class BestCheckpoint:
    """The checkpoint of a run's best evaluation by `metric` (higher is better), in
    RUN_DIR/checkpoints/best with its figures in best.json (kept across resumes).

    best.json is replaced only after the new checkpoint is whole, and the manager keeps the two
    newest, so the checkpoint best.json names exists whenever the run is stopped."""

    def __init__(self, run_dir: str, weights: tf.train.Checkpoint, metric: str, chief: bool):
        self.metric = metric
        self.chief = chief
        self.directory = os.path.join(run_dir, CHECKPOINT_DIR, BEST_DIR)
        self.record = os.path.join(self.directory, "best.json")
        self.manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=weights),
                                                  self.directory, max_to_keep=2)

    def _saved(self) -> dict:
        if not tf.io.gfile.exists(self.record):
            return {}
        with tf.io.gfile.GFile(self.record) as f:
            return json.loads(f.read() or "{}")

    @property
    def path(self) -> str | None:
        return self._saved().get("checkpoint")

    @property
    def metrics(self) -> dict[str, float]:
        """The evaluation metrics of the best checkpoint ({} before the first evaluation)."""
        return self._saved().get("metrics", {})

    def update(self, step: int, values: dict[str, float]) -> bool:
        """Saves the weights if `values[metric]` beats the best so far; returns whether."""
        value = values.get(self.metric)
        best = self._saved().get("value")
        if not self.chief or value is None or (best is not None and value <= best):
            return False
        path = self.manager.save(checkpoint_number=step)
        record = {"step": step, "metric": self.metric, "value": value, "checkpoint": path,
                  "metrics": values}
        temporary = self.record + ".tmp"
        with tf.io.gfile.GFile(temporary, "w") as f:
            f.write(json.dumps(record, indent=1))
        tf.io.gfile.rename(temporary, self.record, overwrite=True)
        log.info("best %s so far (%.4g) at step %d: saved %s", self.metric, value, step, path)
        return True


def _assign_run_weights(prefix: str, networks: ElectraNetworks, allow_partial: bool) -> None:
    """Compares names and shapes, then assigns the networks' weights from one checkpoint."""
    reader = tf.train.load_checkpoint(prefix)
    keys = _run_weights(reader)
    shapes = reader.get_variable_to_shape_map()
    run_config = os.path.join(os.path.dirname(os.path.dirname(prefix)), CONFIG_NAME)
    assign_named(networks, {name: shapes[key] for name, key in keys.items()},
                 lambda name: reader.get_tensor(keys[name]), source=f"checkpoint {prefix}",
                 allow_partial=allow_partial, unused_is_mismatch=True,
                 hint=f"Check that the model config matches that run's ({run_config})")


def restore_networks(path: str, networks: ElectraNetworks, step: int | None = None, *,
                     allow_partial: bool = False) -> str:
    """Restores only the networks from a run's checkpoint: the latest that reads (skipping,
    with a warning, any whose files are missing or damaged), or the one at `step`.

    `path` is a run directory, its checkpoints/ directory, or one checkpoint prefix
    (`RUN/checkpoints/ckpt-N`). Names and shapes are compared first: any variable missing or
    shaped differently raises CheckpointMismatchError listing them all (nothing is loaded),
    unless `allow_partial`, which loads the rest and logs each skipped name.
    """
    def restore(prefix: str) -> None:
        _assign_run_weights(prefix, networks, allow_partial)

    directory = os.path.join(path, CHECKPOINT_DIR)
    if not tf.io.gfile.isdir(directory):
        directory = path  # the checkpoints/ directory itself, or a checkpoint prefix
    if checkpoint_exists(path) or step is not None:
        prefix = path if checkpoint_exists(path) else os.path.join(directory, f"ckpt-{step}")
        if not checkpoint_exists(prefix):
            raise MissingFileError(f"no checkpoint for step {step} in {directory}")
        try:
            restore(prefix)
        except _UNREADABLE as e:
            raise CheckpointError(f"checkpoint {prefix} cannot be read (its files: "
                                  f"{_files(prefix)}): {short_message(e)}") from None
        return prefix
    newest = _restore_newest(directory, restore)
    if newest is None:
        raise MissingFileError(f"no checkpoint in {directory}; train first, or check "
                               "the --run-dir")
    return newest
