"""Checkpoints of a run directory, and the run directory's layout.

    RUN_DIR/config.yaml              the resolved config (written before the first step)
    RUN_DIR/vocab.txt                the vocabulary, when the run built it
    RUN_DIR/checkpoints/ckpt-N.*     tf.train.Checkpoint(model=…, optimizer=…, step=…, data=…)
    RUN_DIR/tensorboard/{train,eval} TensorBoard event files

`model` holds the networks' weights under their TF1 names (see `model_checkpoint`), so exporters
can restore the networks without the optimizer.

Saves are atomic: TensorFlow writes the data files under temporary names and renames them, and
only then rewrites the `checkpoint` index (itself written to a temporary file and renamed). A
crash mid-save leaves the previous checkpoint as the latest. A checkpoint whose files are missing
or unreadable is skipped (with a warning) for the newest one that reads.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable

import tensorflow as tf

from electra_tf.config import ConfigError, RunConfig, read_saved_config, save_config
from electra_tf.errors import CheckpointError
from electra_tf.interop.assign import CheckpointMismatchError, assign_named
from electra_tf.interop.names import RUN_WEIGHTS_PREFIX, RUN_WEIGHTS_SUFFIX
from electra_tf.models import ElectraNetworks
from electra_tf.training.optimizer import WarmupLinearDecay

log = logging.getLogger(__name__)

CONFIG_NAME = "config.yaml"
CHECKPOINT_DIR = "checkpoints"

_CHECKPOINT_NAME = re.compile(r"ckpt-(\d+)")
# What TensorFlow raises for a checkpoint with missing or truncated files.
_UNREADABLE = (tf.errors.OpError, IndexError)


def _short(error: BaseException, limit: int = 300) -> str:
    text = " ".join(str(getattr(error, "message", None) or error).split())
    return text[:limit] + (" ..." if len(text) > limit else "")


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
    """Fields that must not change when a run resumes: they change the variables, or the shapes
    of the batches held in the checkpointed state of the data pipeline."""
    problems = []
    if saved.model != new.model:
        problems.append("model (network sizes)")
    if saved.objective.kind != new.objective.kind:
        problems.append("objective.kind")
    for name in ("seq_length", "tokenizer", "lower_case", "strip_accents"):
        if getattr(saved.data, name) != getattr(new.data, name):
            problems.append(f"data.{name}")
    if saved.train.batch_size != new.train.batch_size:
        problems.append(f"train.batch_size ({saved.train.batch_size}, now "
                        f"{new.train.batch_size})")
    if saved.max_predictions != new.max_predictions:
        problems.append(f"objective.max_predictions ({saved.max_predictions}, now "
                        f"{new.max_predictions}; unless set, it follows objective.mask_prob)")
    if saved.train.precision != new.train.precision and "mixed_float16" in (
            saved.train.precision, new.train.precision):
        problems.append("train.precision (to or from mixed_float16, which adds a loss scale)")
    return problems


def _unusable(run_dir: str, error: tf.errors.OpError) -> ConfigError:
    return ConfigError(
        f"train.run_dir {run_dir} cannot be used: {_short(error)}. Check the path (for gs://, "
        "the bucket name and your credentials) or choose another train.run_dir")


def check_run_dir(run_dir: str) -> None:
    """A clear ConfigError when `train.run_dir` is a file or cannot be reached (checked before
    anything, such as a vocabulary, is written into it)."""
    try:
        if tf.io.gfile.exists(run_dir) and not tf.io.gfile.isdir(run_dir):
            raise ConfigError(f"train.run_dir {run_dir} is a file, not a directory; set "
                              "train.run_dir to a directory for the run")
    except tf.errors.OpError as e:
        raise _unusable(run_dir, e) from None


def prepare_run_dir(config: RunConfig, chief: bool = True) -> None:
    """Creates the run directory and saves the config, or checks it against the saved one
    (the saved config is only replaced once the new one has passed the checks)."""
    run_dir = config.train.run_dir
    path = os.path.join(run_dir, CONFIG_NAME)
    check_run_dir(run_dir)
    try:
        if tf.io.gfile.exists(path):
            saved = read_saved_config(path)
            problems = _incompatibilities(saved, config)
            if problems:
                raise ConfigError(
                    f"{run_dir} holds a run with a different {', '.join(problems)}; resuming "
                    "it with this config would not work. To resume it, use its saved config "
                    f"({path}). To continue from its weights with the new settings (optimizer "
                    "state starts fresh), use a new train.run_dir with "
                    f"train.init_checkpoint={run_dir}.")
            _warn_if_schedule_changes(saved, config)
        if chief:
            tf.io.gfile.makedirs(run_dir)
            save_config(config, path)
    except tf.errors.OpError as e:
        raise _unusable(run_dir, e) from None


def _warn_if_schedule_changes(saved: RunConfig, config: RunConfig) -> None:
    """Resuming with another train.steps, learning_rate or warmup_steps recomputes the learning
    rate schedule, so the rate jumps at the resumed step (raising train.steps on a finished run
    restarts it from ~0 to well above it): say so, with the numbers."""
    fields = ("steps", "learning_rate", "warmup_steps")
    changed = [f"train.{f} {getattr(saved.train, f)} -> {getattr(config.train, f)}"
               for f in fields if getattr(saved.train, f) != getattr(config.train, f)]
    if not changed:
        return
    newest = checkpoint_paths(os.path.join(config.train.run_dir, CHECKPOINT_DIR))
    if not newest:
        return
    step = int(_CHECKPOINT_NAME.search(os.path.basename(newest[0])).group(1))

    def rate(train) -> float:
        return float(WarmupLinearDecay(train.learning_rate, train.steps, train.warmup_steps)(step))

    log.warning("%s: the learning-rate schedule is recomputed, so at the resumed step %d the "
                "learning rate goes from %.3g to %.3g", ", ".join(changed), step,
                rate(saved.train), rate(config.train))


def checkpoint_paths(directory: str) -> list[str]:
    """The checkpoint prefixes (`.../ckpt-N`) of a run's checkpoints directory, newest first:
    those its `checkpoint` index lists, even if their files are gone, and any other found."""
    names = set()
    state = tf.train.get_checkpoint_state(directory)
    if state is not None:
        names.update(os.path.basename(p) for p in state.all_model_checkpoint_paths)
        names.add(os.path.basename(state.model_checkpoint_path))
    if tf.io.gfile.isdir(directory):
        pattern = os.path.join(directory, "ckpt-*.index")
        names.update(os.path.basename(p)[:-len(".index")] for p in tf.io.gfile.glob(pattern))
    steps = sorted((int(m.group(1)), name) for name in names
                   if (m := _CHECKPOINT_NAME.fullmatch(name)))
    return [os.path.join(directory, name) for _, name in reversed(steps)]


def _exists(prefix: str) -> bool:
    return tf.io.gfile.exists(prefix + ".index")


def _files(prefix: str) -> str:
    found = sorted(os.path.basename(p) for p in tf.io.gfile.glob(prefix + ".*"))
    return ", ".join(found) or "no files"


def _restore_newest(directory: str, restore: Callable[[str], None]) -> str | None:
    """Calls `restore` on the newest checkpoint in `directory` whose files exist and read, and
    returns its prefix (None if the directory has no checkpoints). Each checkpoint skipped is
    logged; if none can be restored, raises CheckpointError naming them all."""
    skipped = []
    for path in checkpoint_paths(directory):
        if not _exists(path):
            why = "its files are missing"
        else:
            try:
                restore(path)
                return path
            except _UNREADABLE as e:
                why = f"its files ({_files(path)}) cannot be read: {_short(e)}"
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
    prefixes = [path] if _exists(path) else [p for p in checkpoint_paths(path) if _exists(p)]
    if not prefixes:
        return False
    try:
        return bool(_run_weights(tf.train.load_checkpoint(prefixes[0])))
    except _UNREADABLE:
        return False


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
        """The newest checkpoint whose files exist."""
        return next((p for p in checkpoint_paths(self.directory) if _exists(p)), None)

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
                    f"checkpoint {path} does not hold what this run saves ({_short(e)}); was "
                    "it written by another version of electra-tf, or with another "
                    "train.strategy? Use a new train.run_dir with "
                    f"train.init_checkpoint={os.path.dirname(self.directory)}.") from None

        path = _restore_newest(self.directory, restore)
        if path is None:
            return False
        log.info("resumed from %s at step %d", path, int(self.step.numpy()))
        return True

    def save(self) -> str:
        path = self.manager.save(checkpoint_number=int(self.step.numpy()))
        if not self.chief:
            tf.io.gfile.rmtree(os.path.dirname(path))
        log.info("saved checkpoint %s", path)
        return path


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
    if _exists(path) or step is not None:
        prefix = path if _exists(path) else os.path.join(directory, f"ckpt-{step}")
        if not _exists(prefix):
            raise FileNotFoundError(f"no checkpoint for step {step} in {directory}")
        try:
            restore(prefix)
        except _UNREADABLE as e:
            raise CheckpointError(f"checkpoint {prefix} cannot be read (its files: "
                                  f"{_files(prefix)}): {_short(e)}") from None
        return prefix
    prefix = _restore_newest(directory, restore)
    if prefix is None:
        raise FileNotFoundError(f"no checkpoint in {directory}; train first, or check "
                                "the --run-dir")
    return prefix
