"""The pretraining loop: set up a run, resume it, train, evaluate, checkpoint, summarise.

    trainer = Trainer(load_config("configs/quickstart.yaml"))
    result = trainer.train()

The heavy lifting is in `step.py` (the compiled distributed step); this module is the host side.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import math
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import keras
import numpy as np
import tensorflow as tf

from electra_tf.config import ConfigError, RunConfig
from electra_tf.models import ElectraNetworks, build_networks
from electra_tf.objective import (
    electra_objective,
    scatter_at_positions,
    total_loss_from_ratios,
)
from electra_tf.training import metrics as metrics_lib
from electra_tf.training.checkpoints import (
    RunCheckpoints,
    check_run_dir,
    is_run_checkpoint,
    prepare_run_dir,
    restore_networks,
)
from electra_tf.training.optimizer import create_optimizer
from electra_tf.training.run_tokenizer import prepare_tokenizer
from electra_tf.training.step import TrainStep
from electra_tf.training.strategy import create_strategy, is_chief
from electra_tf.training.summaries import Profiler, Summaries, render_replacements

log = logging.getLogger(__name__)

DatasetFn = Callable[[tf.distribute.InputContext], tf.data.Dataset]


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


def _checkpointable(iterator) -> bool:
    try:
        tf.train.Checkpoint(data=iterator)
    except ValueError:
        return False
    return True


def weights_digest(networks: ElectraNetworks) -> str:
    """A short hash of all trainable weights (to compare runs and workers)."""
    digest = hashlib.sha256()
    for variable in networks.trainable_variables:
        digest.update(np.ascontiguousarray(variable.numpy()).tobytes())
    return digest.hexdigest()[:16]


class Trainer:
    """Owns one run: strategy, networks, optimizer, data, checkpoints and summaries."""

    def __init__(self, config: RunConfig, *, train_dataset_fn: DatasetFn | None = None,
                 eval_dataset_fn: DatasetFn | None = None, tokenizer=None,
                 strategy: tf.distribute.Strategy | None = None):
        self.config = config
        train = config.train
        self.strategy = strategy or create_strategy(train)
        self.chief = is_chief(self.strategy)
        check_run_dir(train.run_dir)
        if train_dataset_fn is None:
            from electra_tf.data import dataset_fn, has_eval_split

            tokenizer = tokenizer or prepare_tokenizer(config)
            train_dataset_fn = dataset_fn(config, tokenizer, "train", train.batch_size)
            if eval_dataset_fn is None and has_eval_split(config.data):
                eval_dataset_fn = dataset_fn(config, tokenizer, "eval", train.batch_size)
            elif eval_dataset_fn is None:
                log.info("no held-out data (data.eval_documents is 0 and no data.eval_paths): "
                         "evaluation is skipped")
        self.tokenizer = tokenizer
        prepare_run_dir(config, self.chief)
        if self.strategy.num_replicas_in_sync > 1 and train.batch_size % (
                self.strategy.num_replicas_in_sync * train.grad_accum_steps):
            raise ConfigError(
                f"train.batch_size ({train.batch_size}) must be divisible by the number of "
                f"replicas ({self.strategy.num_replicas_in_sync}) times train.grad_accum_steps")

        keras.utils.set_random_seed(train.seed)
        with self.strategy.scope():
            self.networks = build_networks(config.model, config.objective.kind, train.precision)
            self.optimizer = create_optimizer(train, self.networks.trainable_variables,
                                              train.precision)
            self.global_step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.step_fn = TrainStep(self.strategy, self.networks, self.optimizer, config,
                                 self.global_step)

        self._train_dataset_fn = train_dataset_fn
        self._skip_steps = 0
        self._train_iterator = self._make_train_iterator()
        self._eval_dataset_fn = eval_dataset_fn
        self._check_eval_data()
        resolver = getattr(self.strategy, "cluster_resolver", None)
        data_state = self._train_iterator if _checkpointable(self._train_iterator) else None
        self.checkpoints = RunCheckpoints(
            train.run_dir, train.keep_checkpoints, networks=self.networks,
            optimizer=self.optimizer, step=self.global_step, data_iterator=data_state,
            chief=self.chief, worker_id=getattr(resolver, "task_id", 0) or 0)
        resumed = self.checkpoints.restore_latest()
        if resumed and data_state is None:
            # This strategy's input iterators cannot be checkpointed: replay the data stream
            # deterministically up to the restored step instead.
            self._skip_steps = int(self.global_step.numpy())
            log.info("skipping the first %d steps of input to resume the data stream",
                     self._skip_steps)
            self._train_iterator = self._make_train_iterator()
        if not resumed and train.init_checkpoint:
            self._warm_start(train.init_checkpoint)
        self.summaries = Summaries(train.run_dir, enabled=self.chief)
        self._stop_requested = False

    # ------------------------------------------------------------------ set-up helpers

    def _make_train_iterator(self):
        def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
            dataset = self._train_dataset_fn(context)
            if self._skip_steps:  # each step takes one batch per replica of this pipeline
                per_step = context.num_replicas_in_sync // context.num_input_pipelines
                dataset = dataset.skip(self._skip_steps * per_step)
            return dataset

        return iter(self.strategy.distribute_datasets_from_function(dataset_fn))

    def _warm_start(self, path: str) -> None:
        """Loads weights only (fresh optimizer state) from a run dir (or its checkpoints/ dir or
        one of its checkpoints), an HF dir or a TF1 ckpt."""
        allow_partial = self.config.train.allow_partial_init
        if is_run_checkpoint(path):
            restored = restore_networks(path, self.networks, allow_partial=allow_partial)
        else:
            from electra_tf.interop import load_pretrained

            load_pretrained(self.networks, path, allow_partial=allow_partial)
            restored = path
        log.info("initialised weights from %s (optimizer state starts fresh)", restored)

    def _eval_batches(self, limit: int):
        """The first `limit` held-out batches: the same ones at every evaluation."""
        if self._eval_dataset_fn is None:
            return iter(())
        data = self.strategy.distribute_datasets_from_function(self._eval_dataset_fn)
        return itertools.islice(iter(data), limit)

    def _check_eval_data(self) -> None:
        """Reads one held-out batch now, so that unreadable evaluation data fails at start-up
        rather than after hours of training, and too little of it is said up front."""
        if self._eval_dataset_fn is None:
            return
        if next(self._eval_batches(1), None) is None:
            log.warning("the held-out data gives no full batch of train.batch_size=%d "
                        "examples, so evaluation is skipped: raise data.eval_documents or add "
                        "data.eval_paths", self.config.train.batch_size)
            self._eval_dataset_fn = None

    def _on_sigterm(self, signum, frame) -> None:
        log.warning("received SIGTERM: saving a checkpoint after the current steps, then "
                    "stopping")
        self._stop_requested = True

    # ------------------------------------------------------------------ evaluation

    def evaluate(self, num_batches: int | None = None) -> dict[str, float]:
        """Metrics on the held-out data ({} when the run has none)."""
        sums = self.step_fn.evaluate(self._eval_batches(num_batches or
                                                        self.config.train.eval_steps))
        if sums is None:
            return {}
        values = metrics_lib.finalize(sums, self.config.objective.kind)
        values["loss"] = float(total_loss_from_ratios(values, self.config.objective))
        return values

    def text_sample(self) -> str | None:
        """Markdown of the first held-out example with replacements and verdicts marked."""
        if self.tokenizer is None or self.networks.discriminator is None:
            return None
        batch = next(self._eval_batches(1), None)
        if batch is None:
            return None
        batch = {k: self.strategy.experimental_local_results(v)[0] for k, v in batch.items()}
        out = electra_objective(self.networks, batch, config=self.config.objective,
                                seed=tf.constant(self.config.train.seed, tf.int64),
                                training=False)
        original = scatter_at_positions(batch["input_ids"], batch["masked_lm_positions"],
                                        batch["masked_lm_ids"], batch["masked_lm_weights"])
        length = int(tf.reduce_sum(batch["input_mask"][0]))
        to_text = lambda ids: [t.decode("utf-8", "replace") for t in
                               self.tokenizer.id_to_token(ids[0][:length]).numpy()]
        return render_replacements(to_text(out.extras["corrupted_ids"]), to_text(original),
                                   out.extras["disc_probs"][0].numpy(), length)

    # ------------------------------------------------------------------ the loop

    def _next_chunk(self, step: int, total: int, profiler: Profiler) -> int:
        train = self.config.train
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
        train = self.config.train
        total = train.steps if stop_at is None else min(stop_at, train.steps)
        step = int(self.global_step.numpy())
        if step >= total:  # nothing to train, and nothing to save again
            if step >= train.steps:
                log.warning("the run in %s is already at step %d, not below train.steps=%d: "
                            "nothing to train (raise train.steps to continue it)",
                            train.run_dir, step, train.steps)
            return TrainResult(step, "completed" if step >= train.steps else "stopped",
                               checkpoint=self.checkpoints.latest,
                               weights_digest=weights_digest(self.networks))
        global_tokens = train.batch_size * self.config.data.seq_length
        profiler = Profiler(os.path.join(self.summaries.logdir, "train"), train.profile_steps)
        previous_handler = None
        try:
            previous_handler = signal.signal(signal.SIGTERM, self._on_sigterm)
        except ValueError:  # not the main thread: no preemption handling
            pass
        progress = _Progress(step, total, enabled=self.chief)
        window, window_steps, window_time = None, 0, 0.0
        last_metrics: dict[str, float] = {}
        eval_metrics: dict[str, float] = {}
        status = "completed"
        try:
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
                    last_metrics = self._log_train(step, window, window_steps,
                                                   window_time, global_tokens, progress)
                    window, window_steps, window_time = None, 0, 0.0
                if step % train.checkpoint_every == 0 and step < total:
                    self._save_checkpoint(step)
                if train.eval_every and step % train.eval_every == 0 and step < total:
                    eval_metrics = self._log_eval(step)
                if (train.text_summary_every and step % train.text_summary_every == 0
                        and self.chief):
                    sample = self.text_sample()
                    if sample:
                        self.summaries.text("train", step, "replacements", sample)
                if self._stop_requested:
                    status = "preempted"
                    break
            if status == "completed" and total < train.steps:
                status = "stopped"
            path = self._save_checkpoint(step)
            if status == "completed":
                eval_metrics = self._log_eval(step) or eval_metrics
        finally:
            profiler.stop()
            progress.close()
            self.summaries.flush()
            if previous_handler is not None:
                signal.signal(signal.SIGTERM, previous_handler)
        digest = weights_digest(self.networks)
        log.info("%s at step %d; checkpoint %s; weights digest %s", status, step, path, digest)
        return TrainResult(step, status, last_metrics, eval_metrics, path, digest)

    def _save_checkpoint(self, step: int) -> str:
        """Saves a checkpoint, unless the last update left non-finite weights (the loss checked
        before it was still finite): then the previous checkpoint stays the last good one."""
        finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(v))
                                for v in self.networks.trainable_variables])
        if not bool(finite):
            raise NonFiniteLossError(
                f"the weights became NaN or Inf in the update of step {step}; stopping without "
                f"saving. The last good checkpoint is {self.checkpoints.latest}. {_NAN_ADVICE}")
        return self.checkpoints.save()

    def _log_train(self, step, window, steps, seconds, global_tokens, progress):
        values = metrics_lib.finalize(window, self.config.objective.kind)
        # Over the window, like every other train metric (and like the eval loss).
        values["loss"] = float(total_loss_from_ratios(values, self.config.objective))
        values["learning_rate"] = float(self.optimizer.learning_rate)
        scale = getattr(self.optimizer, "dynamic_scale", None)
        values["loss_scale"] = float(scale.numpy()) if scale is not None else 1.0
        values["step_time"] = seconds / steps
        values["examples_per_second"] = steps * self.config.train.batch_size / seconds
        values["tokens_per_second"] = steps * global_tokens / seconds
        self.summaries.scalars("train", step, values)
        progress.log(step, values)
        return values

    def _log_eval(self, step: int) -> dict[str, float]:
        values = self.evaluate()
        if values:
            self.summaries.scalars("eval", step, values)
            log.info("eval step %d: %s", step, _format(values))
        return values


def _format(values: dict[str, float]) -> str:
    keys = ("loss", "masked_lm_loss", "masked_lm_accuracy", "disc_loss", "disc_auc",
            "disc_recall", "tokens_per_second")
    return " ".join(f"{k}={values[k]:.4g}" for k in keys if k in values)


def _eta(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


class _Progress:
    """A tqdm bar on an interactive terminal, plain log lines otherwise."""

    def __init__(self, step: int, total: int, enabled: bool):
        self.bar = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=step, unit="step", dynamic_ncols=True)
        self.total = total
        self.last = step
        self.first = step
        self.start = time.perf_counter()

    def update(self, step: int, loss: float) -> None:
        if self.bar is not None:
            self.bar.update(step - self.last)
            self.bar.set_postfix(loss=f"{loss:.3f}")
        self.last = step

    def log(self, step: int, values: dict[str, float]) -> None:
        if self.bar is None:
            rate = (step - self.first) / max(time.perf_counter() - self.start, 1e-9)
            eta = (self.total - step) / rate if rate > 0 else float("nan")
            log.info("step %d/%d (eta %s): %s", step, self.total, _eta(eta), _format(values))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
