"""Metrics as sums: each replica returns numerators and denominators, the strategy adds them up,
and the host divides. This makes every reported figure exact for the global batch, whatever the
number of replicas or micro-batches.

The discriminator's AUC comes from two histograms of its predicted probabilities (for replaced
and for original tokens), which also add up across replicas and steps.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from electra_tf.objective import ObjectiveOutput

AUC_BINS = 512
ELECTRA_RATIOS = ("masked_lm_loss", "masked_lm_accuracy", "sampled_masked_lm_accuracy",
                  "disc_loss", "disc_accuracy", "disc_precision", "disc_recall")
MLM_RATIOS = ("masked_lm_loss", "masked_lm_accuracy")


def ratio_names(objective_kind: str) -> tuple[str, ...]:
    return ELECTRA_RATIOS if objective_kind == "electra" else MLM_RATIOS


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


def empty_sums(objective_kind: str) -> dict[str, tf.Tensor]:
    """Zeros with the structure `replica_sums` (plus the train step's extras) returns."""
    sums = {}
    for name in ratio_names(objective_kind):
        sums[f"{name}/num"] = tf.constant(0.0)
        sums[f"{name}/den"] = tf.constant(0.0)
    if objective_kind == "electra":
        sums["auc/positive"] = tf.zeros([AUC_BINS])
        sums["auc/negative"] = tf.zeros([AUC_BINS])
    sums["grad_norm"] = tf.constant(0.0)
    sums["grad_norm_steps"] = tf.constant(0.0)
    return sums


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
        steps = float(values["grad_norm_steps"])
        out["grad_norm"] = float(values["grad_norm"]) / steps if steps > 0 else float("nan")
    return out
