"""Metrics as sums: each replica returns numerators and denominators, the strategy adds them up,
and the host divides. This makes every reported figure exact for the global batch, whatever the
number of replicas or micro-batches.

The discriminator's AUC comes from two histograms of its predicted probabilities (for replaced
and for original tokens), which also add up across replicas and steps.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from electra_tf.objective import RATIO_NAMES, ObjectiveOutput

AUC_BINS = 512
ELECTRA_RATIOS = RATIO_NAMES["electra"]
# What the train step adds to every task's sums (see step.py).
STEP_SUMS = ("grad_norm", "grad_norm_steps")


def ratio_names(objective_kind: str) -> tuple[str, ...]:
    return RATIO_NAMES[objective_kind]


def sum_shapes(objective_kind: str) -> dict[str, tuple[int, ...]]:
    """The shapes of what `replica_sums` returns for an objective of this kind."""
    shapes: dict[str, tuple[int, ...]] = {}
    for name in ratio_names(objective_kind):
        shapes[f"{name}/num"] = ()
        shapes[f"{name}/den"] = ()
    if objective_kind == "electra":
        shapes["auc/positive"] = (AUC_BINS,)
        shapes["auc/negative"] = (AUC_BINS,)
    return shapes


def replica_sums(out: ObjectiveOutput) -> dict[str, tf.Tensor]:
    """Flattens an objective's ratios (and AUC histograms) into a dict of summable tensors."""
    sums: dict[str, tf.Tensor] = {}
    for name, (numerator, denominator) in out.ratios.items():
        sums[f"{name}/num"] = tf.cast(numerator, tf.float32)
        sums[f"{name}/den"] = tf.cast(denominator, tf.float32)
    if "disc_probs" in out.extras:
        probs = tf.reshape(out.extras["disc_probs"], [-1])
        labels = tf.reshape(out.extras["disc_labels"], [-1])
        weights = tf.reshape(out.extras["disc_weights"], [-1])
        bins = tf.minimum(tf.cast(probs * AUC_BINS, tf.int32), AUC_BINS - 1)
        sums["auc/positive"] = tf.math.unsorted_segment_sum(labels * weights, bins, AUC_BINS)
        sums["auc/negative"] = tf.math.unsorted_segment_sum((1.0 - labels) * weights, bins,
                                                            AUC_BINS)
    return sums


def zeros(shapes: dict[str, tuple[int, ...]]) -> dict[str, tf.Tensor]:
    """Zero running totals for sums of these shapes, plus the train step's own."""
    sums = {name: tf.zeros(shape) for name, shape in shapes.items()}
    sums.update({name: tf.constant(0.0) for name in STEP_SUMS})
    return sums


def empty_sums(objective_kind: str) -> dict[str, tf.Tensor]:
    """Zeros with the structure `replica_sums` (plus the train step's extras) returns."""
    return zeros(sum_shapes(objective_kind))


def mean_grad_norm(values: dict) -> float:
    """The train step's gradient norm, averaged over the steps whose norm was finite."""
    steps = float(values["grad_norm_steps"])
    return float(values["grad_norm"]) / steps if steps > 0 else float("nan")


def histogram_auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Area under the ROC curve from score histograms (ties within a bin count one half)."""
    positive, negative = np.asarray(positive, np.float64), np.asarray(negative, np.float64)
    total_pos, total_neg = positive.sum(), negative.sum()
    if total_pos == 0 or total_neg == 0:
        return float("nan")
    negatives_below = np.cumsum(negative) - negative
    return float((positive * (negatives_below + 0.5 * negative)).sum() / (total_pos * total_neg))


def finalize(sums: dict, objective_kind: str) -> dict[str, float]:
    """Host side: turns summed tensors into the reported metric values. The gradient norm is
    the mean over the steps whose norm was finite."""
    values = {k: np.asarray(v) for k, v in sums.items()}
    out = {}
    for name in ratio_names(objective_kind):
        den = float(values[f"{name}/den"])
        out[name] = float(values[f"{name}/num"]) / den if den > 0 else 0.0
    if "auc/positive" in values:
        out["disc_auc"] = histogram_auc(values["auc/positive"], values["auc/negative"])
    if "grad_norm" in values:
        out["grad_norm"] = mean_grad_norm(values)
    return out
