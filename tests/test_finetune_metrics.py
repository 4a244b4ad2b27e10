"""Fine-tuning metrics against independent computations (brute-force, written differently)."""

import itertools
import math

import numpy as np
import pytest

from electra_tf.finetune.metrics import (
    average_ranks,
    chunks,
    classification_metrics,
    entity_metrics,
    regression_metrics,
    word_tags,
)


def _binary_counts(labels, predictions):
    tp = sum(t == 1 and p == 1 for t, p in zip(labels, predictions, strict=True))
    tn = sum(t == 0 and p == 0 for t, p in zip(labels, predictions, strict=True))
    fp = sum(t == 0 and p == 1 for t, p in zip(labels, predictions, strict=True))
    fn = sum(t == 1 and p == 0 for t, p in zip(labels, predictions, strict=True))
    return tp, tn, fp, fn


def test_binary_classification_matches_textbook_formulas():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    predictions = np.where(rng.random(200) < 0.7, labels, 1 - labels)
    tp, tn, fp, fn = _binary_counts(labels, predictions)
    got = classification_metrics(labels, predictions, 2)
    mcc = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    assert got["accuracy"] == pytest.approx((tp + tn) / 200)
    assert got["mcc"] == pytest.approx(mcc)
    assert got["f1"] == pytest.approx(2 * precision * recall / (precision + recall))
    f1_negative = 2 * tn / (2 * tn + fn + fp)
    assert got["macro_f1"] == pytest.approx((got["f1"] + f1_negative) / 2)


def test_multiclass_mcc_is_the_correlation_of_one_hot_codes():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, 300)
    predictions = np.where(rng.random(300) < 0.5, labels, rng.integers(0, 4, 300))
    x, y = np.eye(4)[labels], np.eye(4)[predictions]
    x, y = x - x.mean(0), y - y.mean(0)
    expected = (x * y).sum() / math.sqrt((x * x).sum() * (y * y).sum())
    got = classification_metrics(labels, predictions, 4)
    assert got["mcc"] == pytest.approx(expected)
    assert "f1" not in got                         # positive-class F1 is for binary tasks only
    per_class = []
    for k in range(4):
        tp = np.sum((labels == k) & (predictions == k))
        fp = np.sum((labels != k) & (predictions == k))
        fn = np.sum((labels == k) & (predictions != k))
        per_class.append(2 * tp / (2 * tp + fp + fn))
    assert got["macro_f1"] == pytest.approx(np.mean(per_class))


def test_weights_select_examples_and_degenerate_cases():
    got = classification_metrics([1, 0, 1, 0], [1, 0, 0, 1], 2, weights=[1, 1, 0, 0])
    assert got == {"accuracy": 1.0, "macro_f1": 1.0, "mcc": 1.0, "f1": 1.0}
    constant = classification_metrics([0, 1, 1], [1, 1, 1], 2)
    assert constant["mcc"] == 0.0 and constant["accuracy"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="outside"):
        classification_metrics([0, 2], [0, 1], 2)


def _brute_ranks(values):
    return [1 + sum(v < x for v in values) + (sum(v == x for v in values) - 1) / 2
            for x in values]


def _brute_pearson(x, y):
    n = len(x)
    sx, sy = sum(x), sum(y)
    numerator = n * sum(a * b for a, b in zip(x, y, strict=True)) - sx * sy
    denominator = math.sqrt(n * sum(a * a for a in x) - sx ** 2) * math.sqrt(
        n * sum(b * b for b in y) - sy ** 2)
    return numerator / denominator


def test_regression_metrics_with_ties():
    targets = [0.0, 1.0, 1.0, 2.5, 3.0, 3.0, 3.0, 5.0]
    predictions = [0.5, 0.5, 2.0, 2.0, 2.0, 4.0, 1.0, 6.0]
    got = regression_metrics(targets, predictions)
    assert list(average_ranks(targets)) == _brute_ranks(targets)
    assert got["pearson"] == pytest.approx(_brute_pearson(targets, predictions))
    assert got["spearman"] == pytest.approx(
        _brute_pearson(_brute_ranks(targets), _brute_ranks(predictions)))
    assert got["mse"] == pytest.approx(
        sum((a - b) ** 2 for a, b in zip(targets, predictions, strict=True)) / len(targets))
    masked = regression_metrics(targets + [100.0], predictions + [-100.0],
                                weights=[1] * 8 + [0])
    assert masked == pytest.approx(got)
    assert regression_metrics([1, 2, 3], [2, 2, 2])["pearson"] == 0.0


def test_entity_f1_hand_computed_with_boundary_and_type_errors():
    true = [["B-PER", "I-PER", "O", "B-LOC", "O", "B-ORG", "I-ORG", "I-ORG"],
            ["O", "B-MISC", "O", "B-PER"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG", "O", "B-ORG", "I-ORG", "O"],  # type, boundary
            ["O", "B-MISC", "O", "B-PER"]]
    # True chunks: PER(0-1) LOC(3) ORG(5-7) | MISC(1) PER(3): 5.
    # Predicted: PER(0-1) ORG(3) ORG(5-6) | MISC(1) PER(3): 5, of which 3 are exactly right.
    got = entity_metrics(true, pred)
    assert got["precision"] == pytest.approx(3 / 5)
    assert got["recall"] == pytest.approx(3 / 5)
    assert got["f1"] == pytest.approx(3 / 5)
    assert got["token_accuracy"] == pytest.approx(10 / 12)


def test_chunk_rules_follow_conlleval():
    # An I- without a B- starts a chunk; a type change splits one; IOB1 uses B only between
    # adjacent chunks of the same type.
    assert chunks(["O", "I-PER", "I-PER", "I-LOC", "O"]) == {(1, 2, "PER"), (3, 3, "LOC")}
    assert chunks(["I-PER", "I-PER", "B-PER", "I-PER"]) == {(0, 1, "PER"), (2, 3, "PER")}
    assert chunks(["B-PER", "B-PER", "I-LOC"]) == {(0, 0, "PER"), (1, 1, "PER"), (2, 2, "LOC")}
    # IOBES and tags without a prefix (one-word chunks).
    assert chunks(["S-PER", "B-LOC", "E-LOC", "E-LOC", "O"]) == {
        (0, 0, "PER"), (1, 2, "LOC"), (3, 3, "LOC")}
    assert chunks(["NN", "NN", "O", "VB"]) == {(0, 0, "NN"), (1, 1, "NN"), (3, 3, "VB")}


def test_entity_metrics_against_brute_force_span_enumeration():
    """Random IOB2 sequences: chunks found by checking every span against the definition."""
    rng = np.random.default_rng(3)
    tags = ["O", "B-A", "I-A", "B-B", "I-B"]

    def brute(seq):
        found = set()
        for i, j in itertools.combinations_with_replacement(range(len(seq)), 2):
            span = seq[i:j + 1]
            kind = span[0][2:] if span[0] != "O" else None
            if kind is None or any(t[2:] != kind or t == "O" for t in span):
                continue
            starts_ok = span[0].startswith("B") or i == 0 or seq[i - 1] == "O" or \
                seq[i - 1][2:] != kind
            inside_ok = all(t.startswith("I") for t in span[1:])
            after = seq[j + 1] if j + 1 < len(seq) else "O"
            ends_ok = not (after.startswith("I") and after[2:] == kind)
            if starts_ok and inside_ok and ends_ok:
                found.add((i, j, kind))
        return found

    for _ in range(200):
        seq = [tags[k] for k in rng.integers(0, 5, int(rng.integers(1, 9)))]
        assert chunks(seq) == brute(seq), seq


def test_word_tags_fills_truncated_words_and_skips_padding():
    got = word_tags(example_ids=[7, -1], word_index=[[-1, 0, -1, 1, -1], [-1] * 5],
                    predicted_ids=[[0, 2, 1, 1, 0], [0] * 5], num_words=[3, 0],
                    names=["O", "B-X", "B-Y"])
    assert got == {7: ["B-Y", "B-X", "O"]}
    with pytest.raises(ValueError, match="sentence 0"):
        entity_metrics([["O", "O"]], [["O"]])
