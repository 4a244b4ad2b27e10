"""TensorBoard output: scalars for the `train` and `eval` runs, a text sample, profiler traces."""

from __future__ import annotations

import html
import logging
import os

import numpy as np
import tensorflow as tf

from electra_tf.training.run_dir import TENSORBOARD_DIR

log = logging.getLogger(__name__)

# The scalar tags the loop writes for every task, beside the task's own metrics.
LOOP_TAGS = ("loss", "learning_rate", "grad_norm", "loss_scale", "examples_per_second",
             "tokens_per_second", "step_time")


class Summaries:
    """Writes scalars and text for one run; a no-op on non-chief workers."""

    def __init__(self, run_dir: str, enabled: bool = True):
        self.enabled = enabled
        self.writers: dict[str, tf.summary.SummaryWriter] = {}
        self.logdir = os.path.join(run_dir, TENSORBOARD_DIR)

    def _writer(self, name: str):
        if name not in self.writers:
            self.writers[name] = tf.summary.create_file_writer(os.path.join(self.logdir, name))
        return self.writers[name]

    def scalars(self, run: str, step: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        with self._writer(run).as_default(step=step):
            for name, value in values.items():
                tf.summary.scalar(name, value)

    def text(self, run: str, step: int, name: str, markdown: str) -> None:
        if not self.enabled:
            return
        with self._writer(run).as_default(step=step):
            tf.summary.text(name, markdown)

    def flush(self) -> None:
        for writer in self.writers.values():
            writer.flush()

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()


def render_replacements(tokens: list[str], original: list[str], probs: np.ndarray,
                        length: int) -> str:
    """Markdown for one example: generator replacements and discriminator verdicts.

    A replaced token is shown as **sample** (~~original~~); a token the discriminator calls
    replaced (p > 0.5) gets a ⚑ and its probability. Correct calls are the ⚑ on bold tokens.
    """
    words = []
    for i in range(length):
        token = html.escape(tokens[i])
        if tokens[i] != original[i]:
            token = f"**{token}** (~~{html.escape(original[i])}~~)"
        if probs[i] > 0.5:
            token += f" ⚑{probs[i]:.2f}"
        words.append(token)
    legend = ("*Bold: generator's replacement (original struck through). "
              "⚑: the discriminator says replaced, with its probability.*")
    return " ".join(words) + "\n\n" + legend


class Profiler:
    """Traces steps [first, last] into the train run's log directory."""

    def __init__(self, logdir: str, steps: list[int]):
        self.logdir = logdir
        self.first, self.last = (steps + [0, -1])[:2] if steps else (0, -1)
        self.active = False

    def next_boundary(self, step: int) -> int | None:
        if self.last < 0:
            return None
        for boundary in (self.first, self.last + 1):
            if boundary > step:
                return boundary
        return None

    def update(self, step: int) -> None:
        """Call with the step about to run next."""
        if not self.active and self.first <= step <= self.last:
            tf.profiler.experimental.start(self.logdir)
            self.active = True
            log.info("profiling steps %d-%d into %s", self.first, self.last, self.logdir)
        elif self.active and step > self.last:
            tf.profiler.experimental.stop()
            self.active = False

    def stop(self) -> None:
        if self.active:
            tf.profiler.experimental.stop()
            self.active = False
