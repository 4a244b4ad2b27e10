"""The run directory: its layout, its one writer, its saved config and its checkpoint list.

    RUN_DIR/config.yaml              the resolved config (written before the first step)
    RUN_DIR/vocab.txt                the vocabulary, when the run built it
    RUN_DIR/labels.json              a fine-tuning run's label set
    RUN_DIR/checkpoints/ckpt-N.*     tf.train.Checkpoint(model=…, optimizer=…, step=…, data=…)
    RUN_DIR/checkpoints/best/        a fine-tuning run's best checkpoint by its main metric
    RUN_DIR/tensorboard/{train,eval} TensorBoard event files
    RUN_DIR/.lock                    held by the process that writes the run (`RunLock`)

Everything here goes through `tf.io.gfile`, so a run directory may be on gs://.
"""

from __future__ import annotations

import logging
import os
import re
from typing import TYPE_CHECKING

import tensorflow as tf

from electra_tf.config import ConfigError, TrainConfig, save_config
from electra_tf.errors import MissingFileError, short_message
from electra_tf.training.optimizer import WarmupLinearDecay

if TYPE_CHECKING:
    from electra_tf.training.task import Task

log = logging.getLogger(__name__)

CONFIG_NAME = "config.yaml"
VOCAB_NAME = "vocab.txt"
LABELS_NAME = "labels.json"
CHECKPOINT_DIR = "checkpoints"
BEST_DIR = "best"
TENSORBOARD_DIR = "tensorboard"
LOCK_NAME = ".lock"

_CHECKPOINT_NAME = re.compile(r"ckpt-(\d+)")


def unusable(run_dir: str, error: tf.errors.OpError) -> ConfigError:
    return ConfigError(
        f"train.run_dir {run_dir} cannot be used: {short_message(error)}. Check the path (for "
        "gs://, the bucket name and your credentials) or choose another train.run_dir")


def check_run_dir(run_dir: str) -> None:
    """A clear ConfigError when `train.run_dir` is a file, lies below a file, or cannot be
    reached (checked before anything, such as a vocabulary, is written into it)."""
    try:
        path = run_dir.rstrip("/")
        while path and not tf.io.gfile.exists(path):
            parent = os.path.dirname(path)
            path = parent if parent != path else ""
        if path and not tf.io.gfile.isdir(path):
            where = "is a file" if path == run_dir.rstrip("/") else f"lies below the file {path}"
            raise ConfigError(f"train.run_dir {run_dir} {where}, not a directory; set "
                              "train.run_dir to a directory for the run")
    except tf.errors.OpError as e:
        raise unusable(run_dir, e) from None


def prepare_run_dir(task: Task, chief: bool = True) -> None:
    """Creates the run directory and saves the task's config, or checks it against the saved
    one (the saved config is only replaced once the new one has passed the checks)."""
    config = task.config
    run_dir = config.train.run_dir
    path = os.path.join(run_dir, CONFIG_NAME)
    check_run_dir(run_dir)
    try:
        if tf.io.gfile.exists(path):
            saved = task.read_config(path)
            problems = task.resume_problems(saved)
            if problems:
                raise ConfigError(
                    f"{run_dir} holds a run with a different {', '.join(problems)}; resuming "
                    "it with this config would not work. To resume it, use its saved config "
                    f"({path}). To continue from its weights with the new settings (optimizer "
                    "state starts fresh), use a new train.run_dir with "
                    f"train.init_checkpoint={run_dir}.")
            _warn_if_schedule_changes(saved.train, config.train)
        if chief:
            tf.io.gfile.makedirs(run_dir)
            save_config(config, path)
    except tf.errors.OpError as e:
        raise unusable(run_dir, e) from None


def _warn_if_schedule_changes(saved: TrainConfig, new: TrainConfig) -> None:
    """Resuming with another train.steps, learning_rate or warmup_steps recomputes the learning
    rate schedule, so the rate jumps at the resumed step (raising train.steps on a finished run
    restarts it from ~0 to well above it): say so, with the numbers."""
    fields = ("steps", "learning_rate", "warmup_steps")
    changed = [f"train.{f} {getattr(saved, f)} -> {getattr(new, f)}"
               for f in fields if getattr(saved, f) != getattr(new, f)]
    if not changed:
        return
    newest = checkpoint_paths(os.path.join(new.run_dir, CHECKPOINT_DIR))
    if not newest:
        return
    step = checkpoint_step(newest[0])

    def rate(train: TrainConfig) -> float:
        return float(WarmupLinearDecay(train.learning_rate, train.steps, train.warmup_steps)(step))

    log.warning("%s: the learning-rate schedule is recomputed, so at the resumed step %d the "
                "learning rate goes from %.3g to %.3g", ", ".join(changed), step,
                rate(saved), rate(new))


# ---------------------------------------------------------------------------- checkpoints


def checkpoint_step(prefix: str) -> int:
    """N of a checkpoint prefix `.../ckpt-N`."""
    match = _CHECKPOINT_NAME.fullmatch(os.path.basename(prefix))
    if match is None:
        raise ValueError(f"not a checkpoint prefix: {prefix}")
    return int(match.group(1))


def checkpoint_paths(directory: str) -> list[str]:
    """The checkpoint prefixes (`.../ckpt-N`) of a run's checkpoints directory, newest first:
    those its `checkpoint` index lists, even if their files are gone, and any other found."""
    names: set[str] = set()
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


def checkpoint_exists(prefix: str) -> bool:
    return tf.io.gfile.exists(prefix + ".index")


def saved_steps(run_dir: str) -> list[int]:
    """The steps of the run's checkpoints whose files exist, oldest first."""
    directory = os.path.join(run_dir, CHECKPOINT_DIR)
    return sorted(checkpoint_step(p) for p in checkpoint_paths(directory)
                  if checkpoint_exists(p))


def remove_partial_saves(run_dir: str) -> None:
    """Deletes what an interrupted save left behind, in the run's checkpoints and its best
    checkpoint. TensorFlow writes checkpoint N's files into `ckpt-N_temp/`, moves the data
    files to `ckpt-N.data-*`, writes `ckpt-N.index`, and removes the directory last: while
    `ckpt-N_temp/` exists, no `ckpt-N.*` file is a whole checkpoint."""
    directory = os.path.join(run_dir, CHECKPOINT_DIR)
    for where in (directory, os.path.join(directory, BEST_DIR)):
        if tf.io.gfile.isdir(where):
            _remove_partial_saves_in(where)


def _remove_partial_saves_in(directory: str) -> None:
    names = [name.rstrip("/") for name in tf.io.gfile.listdir(directory)]
    unfinished = {name[:-len("_temp")] for name in names if name.endswith("_temp")}
    for name in names:
        if (name.endswith("_temp") or ".tmp" in name
                or name.split(".", 1)[0] in unfinished):
            path = os.path.join(directory, name)
            log.info("removing %s, left by an interrupted checkpoint save", path)
            if tf.io.gfile.isdir(path):
                tf.io.gfile.rmtree(path)
            else:
                tf.io.gfile.remove(path)


def check_saved_run(run_dir: str, step: int | None) -> str:
    """For reading a finished or running run (export, fine-tuning from it): raises a
    MissingFileError naming the missing piece; returns the config path."""
    if not tf.io.gfile.isdir(run_dir):
        raise MissingFileError(
            f"run directory {run_dir} does not exist; pass the train.run_dir of a pretraining "
            "run with --run-dir")
    config_path = os.path.join(run_dir, CONFIG_NAME)
    if not tf.io.gfile.exists(config_path):
        raise MissingFileError(
            f"{config_path} not found: {run_dir} is not a run directory written by "
            "`electra-tf pretrain` (it saves config.yaml there before the first step)")
    directory = os.path.join(run_dir, CHECKPOINT_DIR)
    steps = saved_steps(run_dir)
    if not steps and tf.train.latest_checkpoint(directory) is None:
        raise MissingFileError(
            f"no checkpoint in {directory}: the run has not saved one yet; train longer (see "
            "train.checkpoint_every) or check --run-dir")
    if step is not None and not tf.io.gfile.exists(
            os.path.join(directory, f"ckpt-{step}.index")):
        available = ", ".join(str(s) for s in steps) or "none listed"
        raise MissingFileError(
            f"no checkpoint for step {step} in {directory} (available steps: {available}); "
            "pick one of those with --step, or omit --step for the latest")
    return config_path
