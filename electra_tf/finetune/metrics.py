"""Fine-tuning metrics, computed on the host with numpy from gathered per-example outputs.

`weights` everywhere select examples: an example counts when its weight is > 0 (1 for real
examples, 0 for the padding of the last evaluation batch); counted examples count equally.

* classification: accuracy; macro-F1 (the mean per-class F1 over the classes that occur in the
  labels or the predictions); Matthews correlation in its multi-class form (Gorodkin 2004; the
  usual binary MCC for two classes; 0 when undefined); for binary tasks also ``f1``, the F1 of
  the positive class (label id 1), as GLUE reports for MRPC and QQP.
* regression: Pearson and Spearman correlation (Spearman = Pearson of the ranks, ties sharing
  their average rank; 0 when a side is constant), and the mean squared error.
* tagging: entity (chunk) precision / recall / F1 as the CoNLL evaluation script (conlleval)
  and seqeval's default mode count them, and token accuracy. Chunks: a tag is ``O``, or
  ``P-TYPE`` with P one of B, I, E, S. A chunk starts at B or S, at I or E after O or after a
  chunk's end (so an I- without a B- starts one), and wherever the type changes; it ends
  before B, S or O, after E or S, and where the type changes. This reads IOB2 (BIO), IOB1
  (B only between adjacent chunks of one type) and IOBES alike. A tag without a prefix is a
  one-word chunk of that type (conlleval's ``-r`` raw mode). A predicted chunk is correct when
  its start, end and type all equal a true chunk's.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _selected(weights, n: int) -> np.ndarray:
    if weights is None:
        return np.ones(n, bool)
    weights = np.asarray(weights).reshape(-1)
    if weights.shape[0] != n:
        raise ValueError(f"{weights.shape[0]} weights for {n} examples")
    return weights > 0


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator else 0.0


def confusion_matrix(labels, predictions, num_labels: int, weights=None) -> np.ndarray:
    """Counts [true label, predicted label] of the selected examples."""
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    predictions = np.asarray(predictions).reshape(-1).astype(np.int64)
    if labels.shape != predictions.shape:
        raise ValueError(f"{labels.size} labels but {predictions.size} predictions")
    keep = _selected(weights, labels.size)
    labels, predictions = labels[keep], predictions[keep]
    for name, values in (("label", labels), ("prediction", predictions)):
        if values.size and (values.min() < 0 or values.max() >= num_labels):
            raise ValueError(f"a {name} id is outside [0, {num_labels})")
    matrix = np.zeros((num_labels, num_labels), np.int64)
    np.add.at(matrix, (labels, predictions), 1)
    return matrix


def classification_metrics(labels, predictions, num_labels: int,
                           weights=None) -> dict[str, float]:
    """accuracy, macro_f1, mcc, and (two labels) f1 of the positive class 1."""
    matrix = confusion_matrix(labels, predictions, num_labels, weights).astype(np.float64)
    total = matrix.sum()
    correct = np.trace(matrix)
    true_counts, predicted_counts = matrix.sum(axis=1), matrix.sum(axis=0)
    per_class = [_ratio(2 * matrix[k, k], true_counts[k] + predicted_counts[k])
                 for k in range(num_labels)]
    present = [k for k in range(num_labels) if true_counts[k] or predicted_counts[k]]
    covariance = correct * total - float(true_counts @ predicted_counts)
    spread = (total ** 2 - float(predicted_counts @ predicted_counts)) * (
        total ** 2 - float(true_counts @ true_counts))
    out = {
        "accuracy": _ratio(correct, total),
        "macro_f1": float(np.mean([per_class[k] for k in present])) if present else 0.0,
        "mcc": float(covariance / np.sqrt(spread)) if spread > 0 else 0.0,
    }
    if num_labels == 2:
        out["f1"] = per_class[1]
    return out


def average_ranks(values) -> np.ndarray:
    """1-based ranks; tied values share the mean of the ranks they span."""
    values = np.asarray(values, np.float64).reshape(-1)
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    ranks = np.empty(values.size, np.float64)
    start = 0
    while start < values.size:
        end = start
        while end + 1 < values.size and ordered[end + 1] == ordered[start]:
            end += 1
        ranks[order[start:end + 1]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    x, y = x - x.mean(), y - y.mean()
    denominator = np.sqrt((x @ x) * (y @ y))
    return float((x @ y) / denominator) if denominator > 0 else 0.0


def regression_metrics(targets, predictions, weights=None) -> dict[str, float]:
    """pearson, spearman and mse of the selected examples."""
    targets = np.asarray(targets, np.float64).reshape(-1)
    predictions = np.asarray(predictions, np.float64).reshape(-1)
    if targets.shape != predictions.shape:
        raise ValueError(f"{targets.size} targets but {predictions.size} predictions")
    keep = _selected(weights, targets.size)
    targets, predictions = targets[keep], predictions[keep]
    if not targets.size:
        return {"pearson": 0.0, "spearman": 0.0, "mse": 0.0}
    return {
        "pearson": _pearson(targets, predictions),
        "spearman": _pearson(average_ranks(targets), average_ranks(predictions)),
        "mse": float(np.mean((targets - predictions) ** 2)),
    }


# ----------------------------------------------------------------------------------------------
# Entities (chunks)
# ----------------------------------------------------------------------------------------------


def _split_tag(tag: str) -> tuple[str, str]:
    if tag == "O":
        return "O", ""
    if len(tag) > 2 and tag[1] in "-_" and tag[0] in "BIES":
        return tag[0], tag[2:]
    return "S", tag                      # no prefix: a one-word chunk of this type


def chunks(tags: Sequence[str]) -> set[tuple[int, int, str]]:
    """The (start, end inclusive, type) chunks of one tag sequence (see the module doc)."""
    found: set[tuple[int, int, str]] = set()
    start: int | None = None
    previous, previous_type = "O", ""
    for i, tag in enumerate(list(tags) + ["O"]):
        prefix, kind = _split_tag(tag)
        if start is not None and (
                previous in "ES" or prefix in "BSO" or kind != previous_type):
            found.add((start, i - 1, previous_type))
            start = None
        if prefix != "O" and (start is None or prefix in "BS"):
            start = i
        previous, previous_type = prefix, kind
    return found


def entity_metrics(true_tag_seqs: Sequence[Sequence[str]],
                   pred_tag_seqs: Sequence[Sequence[str]]) -> dict[str, float]:
    """Chunk precision, recall and F1 (micro over all sentences) and token accuracy.

    Each sentence's predicted tags must be as many as its true tags (a word the model could not
    tag, e.g. one truncated away, should be predicted "O").
    """
    if len(true_tag_seqs) != len(pred_tag_seqs):
        raise ValueError(f"{len(true_tag_seqs)} true sentences but {len(pred_tag_seqs)} "
                         "predicted")
    correct = true_total = pred_total = tokens = right = 0
    for number, (true, pred) in enumerate(zip(true_tag_seqs, pred_tag_seqs, strict=True)):
        if len(true) != len(pred):
            raise ValueError(f"sentence {number}: {len(true)} true tags but {len(pred)} "
                             "predicted")
        true_chunks, pred_chunks = chunks(true), chunks(pred)
        correct += len(true_chunks & pred_chunks)
        true_total += len(true_chunks)
        pred_total += len(pred_chunks)
        tokens += len(true)
        right += sum(t == p for t, p in zip(true, pred, strict=True))
    precision, recall = _ratio(correct, pred_total), _ratio(correct, true_total)
    return {"precision": precision, "recall": recall,
            "f1": _ratio(2 * precision * recall, precision + recall),
            "token_accuracy": _ratio(right, tokens)}


def word_tags(example_ids, word_index, predicted_ids, num_words, names: Sequence[str],
              fill: str = "O") -> dict[int, list[str]]:
    """Per-word predicted tags of each example from gathered tagging outputs.

    Args:
      example_ids: [N] (padding examples, id -1, are skipped); word_index, predicted_ids:
        [N, L] (the word number at first sub-tokens, -1 elsewhere; the predicted tag id per
        token); num_words: [N]. Words without a position (truncated) get `fill`.
    """
    out: dict[int, list[str]] = {}
    example_ids = np.asarray(example_ids).reshape(-1)
    word_index, predicted_ids = np.asarray(word_index), np.asarray(predicted_ids)
    for row, example in enumerate(example_ids):
        if example < 0:
            continue
        tags = [fill] * int(np.asarray(num_words).reshape(-1)[row])
        at = word_index[row] >= 0
        for word, tag in zip(word_index[row][at], predicted_ids[row][at], strict=True):
            tags[int(word)] = names[int(tag)]
        out[int(example)] = tags
    return out
