"""Metric values (not just their names): ratio sums, disc precision/recall/accuracy and AUC."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from synthetic import synthetic_examples

from electra_tf.config import ObjectiveConfig
from electra_tf.models import build_networks
from electra_tf.objective import ObjectiveOutput, electra_objective
from electra_tf.training.metrics import (
    AUC_BINS,
    ELECTRA_RATIOS,
    finalize,
    histogram_auc,
    replica_sums,
)


def brute_force_auc(pos_scores, neg_scores):
    """P(positive score > negative score) + 1/2 P(tie), over all pairs."""
    diff = np.asarray(pos_scores, np.float64)[:, None] - np.asarray(neg_scores, np.float64)[None]
    return float(((diff > 0) + 0.5 * (diff == 0)).mean())


def disc_counts(probs, labels, weights):
    """Independent numpy reference for the discriminator's classification metrics."""
    flagged = (probs > 0.5) & (weights > 0)
    replaced = (labels > 0) & (weights > 0)
    true_pos = (flagged & replaced).sum()
    return {"disc_precision": true_pos / flagged.sum(),
            "disc_recall": true_pos / replaced.sum(),
            "disc_accuracy": ((flagged == replaced) & (weights > 0)).sum() / (weights > 0).sum()}


def hand_made_output(rng, batch=4, length=24):
    """An ObjectiveOutput with random labels / probabilities / padding and its ratios."""
    weights = (np.arange(length)[None] < rng.integers(length // 2, length + 1, (batch, 1)))
    weights = weights.astype(np.float32)
    labels = (rng.random((batch, length)) < 0.3).astype(np.float32) * weights
    probs = np.clip(0.5 + 0.3 * (labels - 0.5) + 0.3 * rng.standard_normal((batch, length)),
                    0.0, 1.0).astype(np.float32)
    flagged = (probs > 0.5) * weights
    ratios = {name: (tf.constant(float(i + 1)), tf.constant(float(i + 2)))
              for i, name in enumerate(ELECTRA_RATIOS)}
    ratios.update({
        "disc_accuracy": (tf.constant(((flagged == labels) * weights).sum()),
                          tf.constant(weights.sum())),
        "disc_precision": (tf.constant((flagged * labels).sum()), tf.constant(flagged.sum())),
        "disc_recall": (tf.constant((flagged * labels).sum()), tf.constant(labels.sum())),
    })
    extras = {"disc_probs": tf.constant(probs), "disc_labels": tf.constant(labels),
              "disc_weights": tf.constant(weights)}
    return ObjectiveOutput(loss=tf.constant(0.0), ratios=ratios, extras=extras), (
        probs, labels, weights)


def test_finalize_of_summed_replicas_gives_the_global_batch_metrics():
    rng = np.random.default_rng(0)
    (out_a, data_a), (out_b, data_b) = hand_made_output(rng), hand_made_output(rng, batch=3)
    sums_a, sums_b = replica_sums(out_a), replica_sums(out_b)
    assert set(sums_a) == {f"{n}/{p}" for n in ELECTRA_RATIOS for p in ("num", "den")} | {
        "auc/positive", "auc/negative"}
    for name in ELECTRA_RATIOS:
        assert float(sums_a[f"{name}/num"]) == float(out_a.ratios[name][0])
        assert float(sums_a[f"{name}/den"]) == float(out_a.ratios[name][1])
    # One replica.
    got = finalize({k: v.numpy() for k, v in sums_a.items()}, "electra")
    for name, value in disc_counts(*data_a).items():
        assert got[name] == pytest.approx(value, rel=1e-6), name
    assert got["masked_lm_loss"] == pytest.approx(1.0 / 2.0)
    # Two replicas, summed as the strategy does: the metrics of the union, not a mean of ratios.
    summed = {k: sums_a[k].numpy() + sums_b[k].numpy() for k in sums_a}
    got = finalize(summed, "electra")
    union = [np.concatenate([a.ravel(), b.ravel()]) for a, b in zip(data_a, data_b,
                                                                     strict=True)]
    for name, value in disc_counts(*union).items():
        assert got[name] == pytest.approx(value, rel=1e-6), name
        per_replica = (disc_counts(*data_a)[name] + disc_counts(*data_b)[name]) / 2
        assert abs(value - per_replica) > 1e-4          # the two would be distinguishable
    probs, labels, weights = union
    real = weights > 0
    expected_auc = brute_force_auc(probs[real & (labels > 0)], probs[real & (labels == 0)])
    assert 0.6 < expected_auc < 0.95
    same_bin = (summed["auc/positive"] * summed["auc/negative"]).sum() / (
        summed["auc/positive"].sum() * summed["auc/negative"].sum())
    assert abs(got["disc_auc"] - expected_auc) <= 0.5 * same_bin + 1e-9
    assert set(got) == set(ELECTRA_RATIOS) | {"disc_auc"}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_histogram_auc_matches_pairwise_auc_within_the_bin_width(seed):
    rng = np.random.default_rng(seed)
    pos = np.clip(rng.normal(0.6, 0.2, 400), 0, 1).astype(np.float32)
    neg = np.clip(rng.normal(0.45, 0.2, 900), 0, 1).astype(np.float32)
    out = ObjectiveOutput(loss=tf.constant(0.0), ratios={}, extras={
        "disc_probs": tf.constant(np.concatenate([pos, neg])[None]),
        "disc_labels": tf.constant(np.r_[np.ones(400), np.zeros(900)][None], tf.float32),
        "disc_weights": tf.ones([1, 1300])})
    sums = {k: v.numpy() for k, v in replica_sums(out).items()}
    assert sums["auc/positive"].shape == (AUC_BINS,)
    assert sums["auc/positive"].sum() == 400 and sums["auc/negative"].sum() == 900
    auc = histogram_auc(sums["auc/positive"], sums["auc/negative"])
    exact = brute_force_auc(pos, neg)
    # Only pairs that share a bin can be misjudged, and each by at most 1/2.
    same_bin = (sums["auc/positive"] * sums["auc/negative"]).sum() / (400 * 900)
    assert abs(auc - exact) <= 0.5 * same_bin + 1e-9
    assert 0.5 * same_bin < 0.01 and abs(auc - (1 - exact)) > 0.1   # not 1 - AUC


def test_histogram_auc_is_exact_when_scores_sit_on_bin_centres():
    # Equal scores are real ties here, so the pairwise AUC (ties = 1/2) must match exactly.
    rng = np.random.default_rng(3)
    pos_bins, neg_bins = rng.integers(100, 400, 300), rng.integers(0, 300, 500)
    positive = np.bincount(pos_bins, minlength=AUC_BINS)
    negative = np.bincount(neg_bins, minlength=AUC_BINS)
    exact = brute_force_auc(pos_bins, neg_bins)
    assert histogram_auc(positive, negative) == pytest.approx(exact, rel=1e-12)
    # Bins come from the probabilities: the centres land in their own bins (1.0 in the last).
    centres = (np.arange(AUC_BINS, dtype=np.float32) + 0.5) / AUC_BINS
    out = ObjectiveOutput(loss=tf.constant(0.0), ratios={}, extras={
        "disc_probs": tf.constant(np.r_[centres, 1.0][None], tf.float32),
        "disc_labels": tf.ones([1, AUC_BINS + 1]), "disc_weights": tf.ones([1, AUC_BINS + 1])})
    np.testing.assert_array_equal(replica_sums(out)["auc/positive"].numpy(),
                                  np.r_[np.ones(AUC_BINS - 1), 2.0])


def test_histogram_auc_edge_cases_and_padding():
    one_hot = np.eye(AUC_BINS)
    assert histogram_auc(one_hot[400], one_hot[10]) == 1.0     # positives score higher
    assert histogram_auc(one_hot[10], one_hot[400]) == 0.0
    assert histogram_auc(one_hot[7], 3 * one_hot[7]) == 0.5    # all tied
    assert np.isnan(histogram_auc(np.zeros(AUC_BINS), one_hot[3]))
    # Padding (weight 0) does not enter the histograms, whatever its score and label.
    out = ObjectiveOutput(loss=tf.constant(0.0), ratios={}, extras={
        "disc_probs": tf.constant([[0.9, 0.1, 0.0, 1.0, 0.0]]),
        "disc_labels": tf.constant([[1.0, 0.0, 1.0, 0.0, 0.0]]),
        "disc_weights": tf.constant([[1.0, 1.0, 0.0, 0.0, 0.0]])})
    sums = replica_sums(out)
    assert float(tf.reduce_sum(sums["auc/positive"])) == 1.0
    assert float(tf.reduce_sum(sums["auc/negative"])) == 1.0
    assert histogram_auc(sums["auc/positive"].numpy(), sums["auc/negative"].numpy()) == 1.0


@pytest.fixture(scope="module")
def objective_output(tiny_model_config):
    keras.utils.set_random_seed(1)
    networks = build_networks(tiny_model_config)
    batch = {k: tf.constant(v) for k, v in synthetic_examples(8, 32, 512, 5).items()}
    return electra_objective(networks, batch, config=ObjectiveConfig(), seed=tf.constant(1),
                             training=False)


def test_objective_precision_and_recall_use_flagged_and_replaced_tokens(objective_output):
    out = objective_output
    probs, labels, weights = (out.extras[k].numpy() for k in
                              ("disc_probs", "disc_labels", "disc_weights"))
    flagged = (probs > 0.5) & (weights > 0)
    replaced = labels > 0
    assert not (replaced & (weights == 0)).any()
    true_pos = (flagged & replaced).sum()
    # The untrained model flags some but not all tokens, and the three denominators differ.
    assert 0 < true_pos < replaced.sum() < flagged.sum() < weights.sum()
    expected = {"disc_precision": (true_pos, flagged.sum()),
                "disc_recall": (true_pos, replaced.sum()),
                "disc_accuracy": (((flagged == replaced) & (weights > 0)).sum(), weights.sum())}
    for name, (num, den) in expected.items():
        assert (float(out.ratios[name][0]), float(out.ratios[name][1])) == (num, den), name
    per_token = -(labels * np.log(probs) + (1 - labels) * np.log(1 - probs))
    np.testing.assert_allclose(float(out.ratios["disc_loss"][0]), (per_token * weights).sum(),
                               rtol=1e-4)
    assert float(out.ratios["disc_loss"][1]) == weights.sum()
    # ... and finalize reports num / den of exactly these.
    got = finalize({k: v.numpy() for k, v in replica_sums(out).items()}, "electra")
    for name, value in disc_counts(probs, labels, weights).items():
        assert got[name] == pytest.approx(value, rel=1e-6), name
    real = weights > 0
    sums = replica_sums(out)
    same_bin = float(tf.reduce_sum(sums["auc/positive"] * sums["auc/negative"])) / (
        replaced.sum() * (real & ~replaced).sum())
    exact = brute_force_auc(probs[real & replaced], probs[real & ~replaced])
    assert abs(got["disc_auc"] - exact) <= 0.5 * same_bin + 1e-9
    assert abs(got["disc_auc"] - (1 - exact)) > 0.1
