"""The training loop: set up a run, resume it, train, evaluate, checkpoint, summarise.

    trainer = Trainer(PretrainingTask(load_config("configs/quickstart.yaml")))
    result = trainer.train()

It runs any `Task` (`task.py`): pretraining and fine-tuning share this loop. The compiled
distributed step is in `step.py`; this module is the host side.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import math
import os
import time
from dataclasses import dataclass, field

import keras
import numpy as np
import tensorflow as tf

from electra_tf.config import ConfigError
from electra_tf.training import metrics as metrics_lib
from electra_tf.training import preemption
from electra_tf.training.checkpoints import BestCheckpoint, RunCheckpoints
from electra_tf.training.optimizer import create_optimizer
from electra_tf.training.progress import Progress, format_metrics
from electra_tf.training.run_dir import (
    CONFIG_NAME,
    check_run_dir,
    prepare_run_dir,
    remove_partial_saves,
)
from electra_tf.training.run_lock import RunLock
from electra_tf.training.step import TrainStep
from electra_tf.training.strategy import create_strategy, is_chief
from electra_tf.training.summaries import Profiler, Summaries
from electra_tf.training.task import Task

log = logging.getLogger(__name__)

_NAN_ADVICE = "Lower train.learning_rate, raise train.warmup_steps or use float32/bf16."


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or Inf; the run stopped without saving over the last checkpoint."""


@dataclass
class TrainResult:
    step: int
    status: str                      # "completed", "stopped" (stop_at) or "preempted" (SIGTERM)
    metrics: dict[str, float] = field(default_factory=dict)
    eval_metrics: dict[str, float] = field(default_factory=dict)
    checkpoint: str | None = None
    weights_digest: str = ""
    best_checkpoint: str | None = None
    best_metrics: dict[str, float] = field(default_factory=dict)  # best_checkpoint's eval


def _checkpointable(iterator) -> bool:
    try:
        tf.train.Checkpoint(data=iterator)
    except ValueError:
        return False
    return True


def weights_digest(model) -> str:
    """A short hash of all trainable weights (to compare runs and workers)."""
    digest = hashlib.sha256()
    for variable in model.trainable_variables:
        digest.update(np.ascontiguousarray(variable.numpy()).tobytes())
    return digest.hexdigest()[:16]


class Trainer:
    """Owns one run of a task: strategy, model, optimizer, data, checkpoints and summaries."""

    def __init__(self, task: Task, *, strategy: tf.distribute.Strategy | None = None):
        preemption.watch()
        self.task = task
        self.strategy = strategy or create_strategy(task.train_config)
        self.chief = is_chief(self.strategy)
        self._lock = self._lock_run_dir()
        self._check_saved_config()
        task.prepare()
        prepare_run_dir(task, self.chief)
        self._check_replicas()
        self._build_model_and_optimizer()
        self._open_data()
        self._open_checkpoints()
        self._resume_or_warm_start()
        self.summaries = Summaries(self.task.train_config.run_dir, enabled=self.chief)

    @property
    def config(self):
        return self.task.config

    # ------------------------------------------------------------------ set-up steps

    def _lock_run_dir(self) -> RunLock | None:
        """The chief is the run directory's one writer (other workers write nowhere else)."""
        run_dir = self.task.train_config.run_dir
        check_run_dir(run_dir)
        if not self.chief:
            return None
        lock = RunLock(run_dir)
        try:
            lock.acquire()
        except tf.errors.OpError as e:
            from electra_tf.training.run_dir import unusable

            raise unusable(run_dir, e) from None
        remove_partial_saves(run_dir)
        return lock

    def _check_saved_config(self) -> None:
        """Reads a resumed run's saved config before any work (such as building a vocabulary),
        so that a damaged one is reported first."""
        path = os.path.join(self.task.train_config.run_dir, CONFIG_NAME)
        if tf.io.gfile.exists(path):
            self.task.read_config(path)

    def _check_replicas(self) -> None:
        train, replicas = self.task.train_config, self.strategy.num_replicas_in_sync
        if replicas > 1 and train.batch_size % (replicas * train.grad_accum_steps):
            raise ConfigError(
                f"train.batch_size ({train.batch_size}) must be divisible by the number of "
                f"replicas ({replicas}) times train.grad_accum_steps")

    def _build_model_and_optimizer(self) -> None:
        train = self.task.train_config
        keras.utils.set_random_seed(train.seed)
        with self.strategy.scope():
            self.model = self.task.build_model(train.precision)
            variables = self.model.trainable_variables
            self.optimizer = create_optimizer(
                train, variables, train.precision,
                multipliers=self.task.learning_rate_multipliers(self.model))
            self.global_step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.step_fn = TrainStep(self.strategy, self.task, self.model, self.optimizer, train,
                                 self.global_step)

    def _open_data(self) -> None:
        self._train_dataset_fn = self.task.dataset_fn("train")
        if self._train_dataset_fn is None:
            raise ConfigError(f"{type(self.task).__name__} has no training data")
        self._eval_dataset_fn = self.task.dataset_fn("eval")
        self._skip_steps = 0
        self._train_iterator = self._make_train_iterator()
        self._check_eval_data()

    def _open_checkpoints(self) -> None:
        train = self.task.train_config
        resolver = getattr(self.strategy, "cluster_resolver", None)
        data_state = self._train_iterator if _checkpointable(self._train_iterator) else None
        self._replays_data = data_state is None
        weights = self.task.checkpoint_weights(self.model)
        self.checkpoints = RunCheckpoints(
            train.run_dir, train.keep_checkpoints, weights=weights, optimizer=self.optimizer,
            step=self.global_step, data_iterator=data_state, chief=self.chief,
            worker_id=getattr(resolver, "task_id", 0) or 0)
        self.best = (BestCheckpoint(train.run_dir, weights, self.task.main_metric, self.chief)
                     if self.task.main_metric else None)

    def _resume_or_warm_start(self) -> None:
        train = self.task.train_config
        resumed = self.checkpoints.restore_latest()
        if resumed and self._replays_data:
            # This strategy's input iterators cannot be checkpointed: replay the data stream
            # deterministically up to the restored step instead.
            self._skip_steps = int(self.global_step.numpy())
            log.info("skipping the first %d steps of input to resume the data stream",
                     self._skip_steps)
            self._train_iterator = self._make_train_iterator()
        if not resumed and train.init_checkpoint:
            restored = self.task.warm_start(self.model, train.init_checkpoint,
                                            train.allow_partial_init)
            log.info("initialised weights from %s (optimizer state starts fresh)", restored)

    def _make_train_iterator(self):
        def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
            dataset = self.input_dataset("train", context)
            assert dataset is not None  # checked in _open_data
            if self._skip_steps:  # each step takes one batch per replica of this pipeline
                per_step = context.num_replicas_in_sync // context.num_input_pipelines
                dataset = dataset.skip(self._skip_steps * per_step)
            return dataset

        return iter(self.strategy.distribute_datasets_from_function(dataset_fn))

    def input_dataset(self, split: str, context: tf.distribute.InputContext | None = None
                      ) -> tf.data.Dataset | None:
        """One input pipeline's dataset of `split` ("train" or "eval") as the trainer reads it
        (without the skip of a resumed stream), or None when the task has no such data.

        tf.data's autotuning is off unless `train.input_autotune`: its tuning thread made
        dropping an iterator wait up to a minute. Parallel maps then use every core, and
        prefetch buffers still grow on demand."""
        make = self._train_dataset_fn if split == "train" else self._eval_dataset_fn
        if make is None:
            return None
        options = tf.data.Options()
        options.autotune.enabled = self.task.train_config.input_autotune
        return make(context or tf.distribute.InputContext()).with_options(options)

    def _eval_batches(self, limit: int | None):
        """The first `limit` held-out batches (all with None): the same ones every time."""
        if self._eval_dataset_fn is None:
            return iter(())
        data = self.strategy.distribute_datasets_from_function(
            lambda context: self.input_dataset("eval", context))
        return itertools.islice(iter(data), limit)

    def _check_eval_data(self) -> None:
        """Reads one held-out batch now, so that unreadable evaluation data fails at start-up
        rather than after hours of training, and too little of it is said up front."""
        if self._eval_dataset_fn is None:
            return
        if next(self._eval_batches(1), None) is None:
            log.warning("the held-out data gives no full batch of train.batch_size=%d "
                        "examples, so evaluation is skipped: raise data.eval_documents or add "
                        "data.eval_paths", self.task.train_config.batch_size)
            self._eval_dataset_fn = None

    # ------------------------------------------------------------------ evaluation

    def evaluate(self, num_batches: int | None = None) -> dict[str, float]:
        """Metrics on the held-out data ({} when the run has none). Without `num_batches`,
        `train.eval_steps` batches, or every batch for a task that gathers per-example
        outputs (its metrics need the whole split)."""
        limit: int | None = num_batches or self.task.train_config.eval_steps
        if self.task.main_metric is not None and num_batches is None:
            limit = None
        result = self.step_fn.evaluate(self._eval_batches(limit))
        if result is None:
            return {}
        sums, examples = result
        return self.task.metrics({k: v.numpy() for k, v in sums.items()}, examples)

    def text_sample(self) -> str | None:
        """Markdown of the task's text summary for the first held-out batch."""
        batch = next(self._eval_batches(1), None)
        if batch is None:
            return None
        batch = {k: self.strategy.experimental_local_results(v)[0] for k, v in batch.items()}
        return self.task.text_summary(self.model, batch)

    # ------------------------------------------------------------------ the loop

    def _next_chunk(self, step: int, total: int, profiler: Profiler) -> int:
        train = self.task.train_config
        end = min(total, step + train.steps_per_execution)
        for every in (train.log_every, train.checkpoint_every, train.eval_every,
                      train.text_summary_every):
            if every:
                end = min(end, (step // every + 1) * every)
        boundary = profiler.next_boundary(step)
        if boundary is not None:
            end = min(end, boundary)
        return end - step

    def train(self, stop_at: int | None = None) -> TrainResult:
        """Trains to `train.steps` (or to `stop_at`, saving a checkpoint there)."""
        train = self.task.train_config
        total = train.steps if stop_at is None else min(stop_at, train.steps)
        step = int(self.global_step.numpy())
        if step >= total and not preemption.requested():  # nothing to train or save again
            if step >= train.steps:
                log.warning("the run in %s is already at step %d, not below train.steps=%d: "
                            "nothing to train (raise train.steps to continue it)",
                            train.run_dir, step, train.steps)
            self._release()
            return self._result(step, "completed" if step >= train.steps else "stopped",
                                {}, {}, self.checkpoints.latest)
        if self._lock is not None and self._lock.released:
            self._lock.acquire()
        profiler = Profiler(os.path.join(self.summaries.logdir, "train"), train.profile_steps)
        preemption.watch()
        progress = Progress(step, total, self.task.log_keys, enabled=self.chief)
        try:
            step, status, last_metrics, eval_metrics = self._loop(step, total, profiler,
                                                                  progress)
            path = self._save_checkpoint(step)
            if status == "completed":
                eval_metrics = self._log_eval(step) or eval_metrics
        finally:
            profiler.stop()
            progress.close()
            self.summaries.flush()
            self._release()
        if status == "preempted":
            preemption.reset()
        result = self._result(step, status, last_metrics, eval_metrics, path)
        log.info("%s at step %d; checkpoint %s; weights digest %s", status, step, path,
                 result.weights_digest)
        return result

    def _result(self, step, status, last_metrics, eval_metrics, path) -> TrainResult:
        best = self.best
        return TrainResult(step, status, last_metrics, eval_metrics, path,
                           weights_digest(self.model), best.path if best else None,
                           best.metrics if best else {})

    def _loop(self, step: int, total: int, profiler: Profiler, progress: Progress):
        """Runs chunks of steps to `total`; returns (step, status, train and eval metrics)."""
        train = self.task.train_config
        window, window_steps, window_time = None, 0, 0.0
        last_metrics: dict[str, float] = {}
        eval_metrics: dict[str, float] = {}
        if preemption.requested():
            log.warning("stopping before the first step (SIGTERM during set-up)")
            return step, "preempted", last_metrics, eval_metrics
        while step < total:
            profiler.update(step)
            n = self._next_chunk(step, total, profiler)
            start = time.perf_counter()
            loss, sums = self.step_fn.train(self._train_iterator, n)
            loss = float(loss)
            elapsed = time.perf_counter() - start
            if not math.isfinite(loss):
                raise NonFiniteLossError(
                    f"the loss became {loss} at step {step + n}; stopping without saving. "
                    f"The last good checkpoint is {self.checkpoints.latest}. {_NAN_ADVICE}")
            step += n
            sums = {k: v.numpy() for k, v in sums.items()}
            window = sums if window is None else {k: window[k] + sums[k] for k in sums}
            window_steps, window_time = window_steps + n, window_time + elapsed
            progress.update(step, loss)
            if step % train.log_every == 0 or step == total:
                last_metrics = self._log_train(step, window, window_steps, window_time,
                                               progress)
                window, window_steps, window_time = None, 0, 0.0
            if step % train.checkpoint_every == 0 and step < total:
                self._save_checkpoint(step)
            if train.eval_every and step % train.eval_every == 0 and step < total:
                eval_metrics = self._log_eval(step)
            if train.text_summary_every and step % train.text_summary_every == 0 and self.chief:
                sample = self.text_sample()
                if sample:
                    self.summaries.text("train", step, "replacements", sample)
            if preemption.requested():
                return step, "preempted", last_metrics, eval_metrics
        status = "completed" if total >= train.steps else "stopped"
        return step, status, last_metrics, eval_metrics

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()

    def _save_checkpoint(self, step: int) -> str:
        """Saves a checkpoint, unless the last update left non-finite weights (the loss checked
        before it was still finite): then the previous checkpoint stays the last good one."""
        finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(v))
                                for v in self.model.trainable_variables])
        if not bool(finite):
            raise NonFiniteLossError(
                f"the weights became NaN or Inf in the update of step {step}; stopping without "
                f"saving. The last good checkpoint is {self.checkpoints.latest}. {_NAN_ADVICE}")
        if self._lock is not None:
            self._lock.refresh()
        return self.checkpoints.save()

    def _log_train(self, step, window, steps, seconds, progress):
        train = self.task.train_config
        task_sums = {k: v for k, v in window.items() if k not in metrics_lib.STEP_SUMS}
        values = self.task.metrics(task_sums)  # over the window, like every other train metric
        values["learning_rate"] = float(self.optimizer.learning_rate)
        values["grad_norm"] = metrics_lib.mean_grad_norm(window)
        scale = getattr(self.optimizer, "dynamic_scale", None)
        values["loss_scale"] = float(scale.numpy()) if scale is not None else 1.0
        values["step_time"] = seconds / steps
        values["examples_per_second"] = steps * train.batch_size / seconds
        values["tokens_per_second"] = (steps * train.batch_size * self.task.tokens_per_example
                                       / seconds)
        self.summaries.scalars("train", step, values)
        progress.log(step, values)
        return values

    def _log_eval(self, step: int) -> dict[str, float]:
        values = self.evaluate()
        if values:
            self.summaries.scalars("eval", step, values)
            log.info("eval step %d: %s", step, format_metrics(values, self.task.log_keys))
            if self.best is not None:
                self.best.update(step, values)
            warning = self.task.progress_warning(step, values)
            if warning:
                log.warning("%s", warning)
        return values
