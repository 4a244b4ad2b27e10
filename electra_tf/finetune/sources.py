"""`read_examples`: the raw examples of one split of a fine-tuning task, from any source.

Whatever the source (files.py, tfds_tasks.py, wordnet_tasks.py), the result is a
`tf.data.Dataset` with one element per example, in the source's order:

* classification: ``text_a`` string [], ``text_b`` string [] ("" without a pair), ``label``
  string [] (the raw label: a class name, or a number written as text);
* regression: the same, but ``label`` is float32 [];
* tagging: ``words`` string [None] and ``tags`` string [None] (one tag per word);
* always ``example_id`` int64 []: 0..n-1 in the source's order (after `max_examples`).

Tokenization happens later, in tf.data (features.py). Problems with the input are DataErrors
raised here with the file and line; the few that only show while a TFDS split is read are
in-graph checks that `data_errors()` turns into DataErrors.
"""

from __future__ import annotations

import contextlib
import logging
import re

import numpy as np
import tensorflow as tf

from electra_tf.data.errors import DataError
from electra_tf.finetune import wordnet_tasks
from electra_tf.finetune.data_config import (
    FILE_SOURCES,
    SPLITS,
    FinetuneDataConfig,
    tfds_defaults,
)
from electra_tf.finetune.files import Parsed, read_files
from electra_tf.finetune.tfds_tasks import ERROR_MARKER, builder, read_tfds

logger = logging.getLogger(__name__)

__all__ = ["read_examples", "data_errors", "examples_from_lists", "ERROR_MARKER"]


@contextlib.contextmanager
def data_errors():
    """Turns the failure of an in-graph data check (marked ERROR_MARKER) into a DataError."""
    try:
        yield
    except tf.errors.InvalidArgumentError as e:
        if ERROR_MARKER not in e.message:
            raise
        text = e.message.split(ERROR_MARKER, 1)[1].replace("\\'", "'")
        text = re.sub(r"\]\s*$", "", re.sub(r"\[\[.*", "", text, flags=re.S))  # graph location
        parts = [p.strip() for p in re.split(r"\]\s*\[", text)]    # the Assert's data items
        raise DataError(re.sub(r"\s+", " ", " ".join(p for p in parts if p))) from None


def examples_from_lists(parsed: Parsed, kind: str) -> tf.data.Dataset:
    """A dataset of raw examples from host lists (file parsers, WordNet, synthetic tasks)."""
    if kind == "tagging":
        lengths = np.array([len(w) for w in parsed["words"]], np.int64)
        def ragged(rows):
            values = [v for row in rows for v in row]
            return tf.RaggedTensor.from_row_lengths(
                tf.constant(values, tf.string, shape=[len(values)]), lengths)

        words, tags = ragged(parsed["words"]), ragged(parsed["tags"])
        return tf.data.Dataset.from_tensor_slices({"words": words, "tags": tags})
    label_dtype = tf.float32 if kind == "regression" else tf.string
    return tf.data.Dataset.from_tensor_slices({
        "text_a": tf.constant(parsed["text_a"], tf.string, shape=[len(parsed["text_a"])]),
        "text_b": tf.constant(parsed["text_b"], tf.string, shape=[len(parsed["text_b"])]),
        "label": tf.constant(parsed["label"], label_dtype, shape=[len(parsed["label"])]),
    })


def _wordnet(data: FinetuneDataConfig, split: str) -> tuple[Parsed, str]:
    if data.source == "wordnet_lexname":
        pairs = wordnet_tasks.lexname_examples(split)
        parsed: Parsed = {"text_a": [t for t, _ in pairs], "text_b": [""] * len(pairs),
                  "label": [label for _, label in pairs]}
    else:
        tagged = wordnet_tasks.tagging_examples(split)
        parsed = {"words": [list(w) for w, _ in tagged], "tags": [list(t) for _, t in tagged]}
    return parsed, f"{data.source} (WordNet 3.0, split {split!r})"


def _num(parsed: Parsed) -> int:
    return len(next(iter(parsed.values())))


def read_examples(data: FinetuneDataConfig, split: str, kind: str) -> tf.data.Dataset:
    """The raw examples of `split` ("train", "validation" or "test") for a task of `kind`.

    An empty split, a missing file, field or column, a malformed line, and (CoNLL / JSONL) a
    sentence whose word and tag counts differ are DataErrors naming the file and line.
    """
    if split not in SPLITS:
        raise DataError(f"split must be one of {SPLITS}, got {split!r}")
    if data.source == "tfds" and data.tfds_name and not tfds_defaults(data.tfds_name):
        builder(data)              # a misspelt name: say so before asking for its fields
    data = data.resolve(kind)
    if data.source == "tfds":
        dataset, description = read_tfds(data, split, kind)
        if data.max_examples is not None:
            dataset = dataset.take(data.max_examples)
        with data_errors():
            try:
                empty = not list(dataset.take(1))
            except tf.errors.OpError as e:
                if isinstance(e, tf.errors.InvalidArgumentError) and ERROR_MARKER in e.message:
                    raise
                raise DataError(f"cannot read {description}: {e.message.splitlines()[0]}") \
                    from None
        if empty:
            raise DataError(f"{description} has no examples; check data.{split}_split")
    else:
        if data.source in FILE_SOURCES:
            parsed, description = read_files(data, split, kind)
        else:
            parsed, description = _wordnet(data, split)
        if data.max_examples is not None:
            parsed = {k: v[:data.max_examples] for k, v in parsed.items()}
        if not _num(parsed):
            raise DataError(f"the {split} split ({description}) has no examples; check the "
                            "files (and data.header / the columns)")
        logger.info("%s: %d %s examples", description, _num(parsed), split)
        dataset = examples_from_lists(parsed, kind)
    return dataset.enumerate().map(
        lambda i, example: {**example, "example_id": tf.cast(i, tf.int64)})
