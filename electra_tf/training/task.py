"""The seam between the training loop and what it trains.

The loop (`trainer.py`, `step.py`) owns everything a run has whatever it trains: the strategy,
the optimizer and its schedule, gradient accumulation and clipping, checkpoints and resume,
SIGTERM and NaN handling, TensorBoard and progress output. A `Task` owns the rest: its config,
its networks, its input pipelines, its loss and its metrics. ELECTRA and MLM pretraining
(`electra_tf.objective.PretrainingTask`) and the fine-tuning tasks (`electra_tf.finetune`) are
tasks; there is one loop.

Metrics travel as *sums*: each replica returns fixed-shape tensors that add up across
replicas, micro-batches and steps (numerators and denominators, histograms), and the host turns
the totals into figures (`Task.metrics`). That keeps every reported figure exact for the
global batch. Evaluation may also return per-example tensors (`EvalOutput.examples`) that the
host gathers, for metrics that do not decompose into sums (F1, rank correlations).
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tensorflow as tf

from electra_tf.config import TrainConfig

Batch = dict[str, tf.Tensor]
DatasetFn = Callable[[tf.distribute.InputContext], tf.data.Dataset]


@dataclass
class StepContext:
    """What the loop hands a task inside the compiled step (all tensors, no Python state)."""

    seed: tf.Tensor                   # int64 scalar: a function of the run seed and the step
    example_ids: tf.Tensor            # int64 [micro-batch]: each example's index in the stream
    normalizers: dict[str, tf.Tensor]  # the task's `loss_normalizers`, summed over the global batch
    training: bool = True


@dataclass
class StepOutput:
    loss: tf.Tensor                   # this micro-batch's share of the global-batch loss
    sums: dict[str, tf.Tensor]        # summable metric statistics, shapes as in `sum_shapes`


@dataclass
class EvalOutput:
    sums: dict[str, tf.Tensor]
    examples: dict[str, tf.Tensor] = field(default_factory=dict)  # [batch, ...] each, gathered


class Task(abc.ABC):
    """What one run trains. Subclasses set `config` (a config dataclass with a `train:
    TrainConfig` section and `to_yaml()`; it is saved as RUN_DIR/config.yaml) and
    `log_keys` (the metrics shown in progress lines)."""

    config: Any
    log_keys: tuple[str, ...] = ("loss",)
    # The metric that picks the best checkpoint (higher is better), or None to keep none.
    main_metric: str | None = None

    @property
    def train_config(self) -> TrainConfig:
        return self.config.train

    def prepare(self) -> None:
        """Called once the run directory is locked, before the config is saved: resolve what
        the config leaves open (e.g. build a vocabulary) by replacing `self.config` with a
        resolved copy. The default has nothing to resolve."""
        return None

    # ------------------------------------------------------------------ networks

    @abc.abstractmethod
    def build_model(self, precision: str) -> Any:
        """Builds the networks (called under `strategy.scope()`); the result has
        `trainable_variables`."""

    @abc.abstractmethod
    def checkpoint_weights(self, model: Any) -> tf.train.Checkpoint:
        """The model's variables under stable names, saved as `model` in each checkpoint."""

    def learning_rate_multipliers(self, model: Any) -> list[float] | None:
        """One factor per trainable variable (layer-wise decay), or None for 1 everywhere."""
        return None

    def warm_start(self, model: Any, path: str, allow_partial: bool) -> str:
        """Loads weights from `train.init_checkpoint`; returns what was loaded."""
        raise NotImplementedError(f"{type(self).__name__} has no warm start")

    # ------------------------------------------------------------------ data

    @abc.abstractmethod
    def dataset_fn(self, split: str) -> DatasetFn | None:
        """Per-replica batches for `split` ("train" repeats; "eval" does not), or None when
        the task has no such split."""

    @property
    def tokens_per_example(self) -> int:
        """For the tokens/s figure."""
        return 0

    # ------------------------------------------------------------------ inside the step

    @abc.abstractmethod
    def loss_normalizers(self, batch: Batch) -> dict[str, tf.Tensor]:
        """This replica's counts that the loss divides by; the loop all-reduces them first."""

    @abc.abstractmethod
    def train_step(self, model: Any, batch: Batch, context: StepContext) -> StepOutput:
        """The loss of one micro-batch and its metric sums."""

    @abc.abstractmethod
    def eval_step(self, model: Any, batch: Batch, context: StepContext) -> EvalOutput:
        """Metric sums (and per-example outputs) of one held-out batch, without dropout."""

    @abc.abstractmethod
    def sum_shapes(self) -> dict[str, tuple[int, ...]]:
        """The shapes of `StepOutput.sums` (the loop starts its running totals at zero)."""

    # ------------------------------------------------------------------ on the host

    @abc.abstractmethod
    def metrics(self, sums: dict[str, np.ndarray],
                examples: dict[str, np.ndarray] | None = None) -> dict[str, float]:
        """Figures (including "loss") from summed statistics and, in evaluation, the gathered
        per-example outputs."""

    def text_summary(self, model: Any, batch: Batch) -> str | None:
        """Markdown for TensorBoard's text tab from one held-out batch, or None."""
        return None

    def progress_warning(self, step: int, eval_values: dict[str, float]) -> str | None:
        """A warning for the run log when held-out figures lag far behind what a healthy run
        shows at this step, or None."""
        return None

    def resume_problems(self, saved_config: Any) -> list[str]:
        """What differs from a saved config in a way that makes resuming impossible."""
        return []

    def read_config(self, path: str) -> Any:
        """Reads a config this task saved (to compare on resume)."""
        raise NotImplementedError
