"""Progress output of a run: a tqdm bar on an interactive terminal, log lines otherwise."""

from __future__ import annotations

import logging
import math
import sys
import time

log = logging.getLogger("electra_tf.training.trainer")


def format_metrics(values: dict[str, float], keys: tuple[str, ...]) -> str:
    return " ".join(f"{k}={values[k]:.4g}" for k in keys if k in values)


def eta(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


class Progress:
    """Shows steps done, the loss and, at each log step, the task's `keys` and the ETA."""

    def __init__(self, step: int, total: int, keys: tuple[str, ...], enabled: bool):
        self.bar = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=step, unit="step", dynamic_ncols=True)
        self.keys = keys
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
            remaining = (self.total - step) / rate if rate > 0 else float("nan")
            log.info("step %d/%d (eta %s): %s", step, self.total, eta(remaining),
                     format_metrics(values, self.keys))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
