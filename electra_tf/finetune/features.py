"""Raw examples -> static-shaped model batches, in tf.data, with the pretrained tokenizer.

`make_features` batches first and tokenizes whole batches (one tokenizer call per batch).
Every batch has the static shapes [B] / [B, L] (B = batch_size, L = seq_length):

* ``input_ids``, ``input_mask``, ``segment_ids`` int32 [B, L]. A single text is
  ``[CLS] a [SEP]``; a pair (``text_b`` not empty) is ``[CLS] a [SEP] b [SEP]`` with segment 1
  for ``b [SEP]``. Too long pairs lose tokens from the end of the longer side, one at a time
  (the second side on ties), as BERT's ``_truncate_seq_pair`` does.
* ``label`` int32 [B] (regression: float32; without a label set: zeros).
* ``example_weight`` float32 [B]: 1 for real examples, 0 for padding. Evaluation (training=False)
  reads every example once and pads the last batch with weight-0 examples (example_id -1), so
  every example is evaluated and shapes stay static; training shuffles with `seed`
  (reshuffled each epoch, deterministically), repeats, and drops the incomplete last batch.
* ``example_id`` int64 [B].
* tagging also: ``label_ids`` int32 [B, L] (a word's tag id at its first sub-token, 0 elsewhere),
  ``label_weights`` float32 [B, L] (1 at the first sub-token of each word of a real example,
  0 elsewhere: later sub-tokens, [CLS]/[SEP], padding), ``word_index`` int32 [B, L] (the word's
  number at its first sub-token, -1 elsewhere) and ``num_words`` int32 [B].

Tagging tokenizes every word on its own. A word that yields no token (an empty string, or
characters the tokenizer drops) is given one [UNK] so it still has a position. Words whose
first sub-token falls beyond L - 2 tokens are truncated: they have no position, so they get no
tag at prediction time; ``num_words`` minus the words with a position counts them
(`truncated_words`). A word cut inside its sub-tokens keeps its tag.

A label (tag) that the label set does not know fails an in-graph check whose message names it;
`sources.data_errors()` turns that into a DataError (`LabelSet.check_split` finds it earlier,
on the host, with the split's name).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from electra_tf.data.sources import graph_only
from electra_tf.data.tokenization import Tokenizer
from electra_tf.finetune.labels import LabelSet
from electra_tf.finetune.tfds_tasks import ERROR_MARKER

SHUFFLE_BUFFER = 100_000       # raw examples; fine-tuning sets of that size shuffle fully


def truncate_pair_lengths(len_a: tf.Tensor, len_b: tf.Tensor, budget: tf.Tensor):
    """The lengths BERT's truncation leaves: pop from the longer side (b on ties) to fit.

    Closed form of the pop loop: a keeps min(la, max(budget - lb, ceil(budget / 2))) tokens,
    b keeps min(lb, max(budget - la, floor(budget / 2))).
    """
    keep_a = tf.minimum(len_a, tf.maximum(budget - len_b, (budget + 1) // 2))
    keep_b = tf.minimum(len_b, tf.maximum(budget - len_a, budget // 2))
    return keep_a, keep_b


def _dense(rt: tf.RaggedTensor, default, batch_size: int, width: int) -> tf.Tensor:
    """[batch, (n)] -> [batch_size, width], cut or padded with `default`."""
    return rt.to_tensor(default_value=default, shape=[batch_size, width])


def _checked_ids(table, names: tf.Tensor, what: str) -> tf.Tensor:
    ids = table.lookup(names)
    unknown = tf.boolean_mask(names, ids < 0)
    check = tf.debugging.Assert(
        tf.equal(tf.size(unknown), 0),
        [f"{ERROR_MARKER}{what} that the training split never had:", unknown], summarize=5)
    with tf.control_dependencies([check]):
        return tf.identity(ids)


def _place(values: tf.Tensor, offset: tf.Tensor, count: tf.Tensor, positions: tf.Tensor,
           otherwise: tf.Tensor) -> tf.Tensor:
    """Puts values[:, k] at positions offset + k for k < count; `otherwise` elsewhere."""
    index = positions - offset[:, None]
    inside = (index >= 0) & (index < count[:, None])
    gathered = tf.gather(values, tf.clip_by_value(index, 0, values.shape[1] - 1), batch_dims=1)
    return tf.where(inside, gathered, otherwise)


def _sequence_features(tokenizer: Tokenizer, batch: dict, batch_size: int, seq_length: int):
    special = tokenizer.special
    a = tokenizer.tokenize(batch["text_a"])
    b = tokenizer.tokenize(batch["text_b"])
    len_a, len_b = tf.cast(a.row_lengths(), tf.int32), tf.cast(b.row_lengths(), tf.int32)
    has_b = tf.cast(len_b > 0, tf.int32)
    keep_a, keep_b = truncate_pair_lengths(len_a, len_b, seq_length - 2 - has_b)
    a = tf.cast(_dense(a, 0, batch_size, seq_length), tf.int32)
    b = tf.cast(_dense(b, 0, batch_size, seq_length), tf.int32)
    position = tf.range(seq_length)[None, :]
    sep_a = (keep_a + 1)[:, None]                   # [CLS] a... [SEP] b... [SEP]
    end = (keep_a + keep_b + 1 + has_b)[:, None]   # the last real position
    ids = tf.fill([batch_size, seq_length], special.pad_id)
    ids = _place(b, keep_a + 2, keep_b, position, ids)
    ids = tf.where((position == end) & (has_b[:, None] > 0), special.sep_id, ids)
    ids = _place(a, tf.ones_like(keep_a), keep_a, position, ids)
    ids = tf.where(position == sep_a, special.sep_id, ids)
    ids = tf.where(position == 0, special.cls_id, ids)
    return {
        "input_ids": ids,
        "input_mask": tf.cast(position <= end, tf.int32),
        "segment_ids": tf.cast((position > sep_a) & (position <= end), tf.int32),
    }


def _tagging_features(tokenizer: Tokenizer, batch: dict, table, batch_size: int,
                      seq_length: int):
    special = tokenizer.special
    words, tags = batch["words"], batch["tags"]
    pieces = tokenizer.tokenize(words.flat_values)                          # [words, (pieces)]
    per_word = pieces.row_lengths()
    # A word without tokens gets one [UNK], so that it still has a position.
    empty = tf.equal(per_word, 0)
    per_word = tf.maximum(per_word, 1)
    piece_number = tf.ragged.range(per_word).flat_values                   # per token
    source = tf.repeat(pieces.row_splits[:-1], per_word) + piece_number
    values = tf.concat([tf.cast(pieces.flat_values, tf.int32), [special.unk_id]], axis=0)
    unknown_at = tf.cast(tf.size(pieces.flat_values), source.dtype)
    token_ids = tf.gather(values, tf.where(tf.repeat(empty, per_word), unknown_at, source))
    word_number = tf.cast(tf.ragged.range(words.row_lengths()).flat_values, tf.int32)
    if table is None:
        tag_ids = tf.zeros_like(word_number)
    else:
        tag_ids = _checked_ids(table, tags.flat_values, "tag(s)")
    tokens_per_example = tf.math.unsorted_segment_sum(
        per_word, words.value_rowids(), batch_size)
    width = seq_length - 2

    def tokens(values, default):            # token-level values -> [batch, seq_length - 2]
        return _dense(tf.RaggedTensor.from_row_lengths(values, tokens_per_example,
                                                       validate=False), default, batch_size,
                      width)

    kept = tf.cast(tf.minimum(tokens_per_example, width), tf.int32)
    position = tf.range(seq_length)[None, :]
    last = (kept + 1)[:, None]

    def shifted(dense, default, start, end):  # [CLS]-aligned: start, dense..., end, padding
        out = tf.concat([tf.fill([batch_size, 1], start), dense,
                         tf.fill([batch_size, 1], default)], axis=1)
        return tf.where(position == last, end, tf.where(position > last, default, out))

    is_first = shifted(tokens(tf.cast(tf.equal(piece_number, 0), tf.int32), 0), 0, 0, 0) > 0
    word = shifted(tokens(tf.repeat(word_number, per_word), -1), -1, -1, -1)
    tag = shifted(tokens(tf.repeat(tag_ids, per_word), 0), 0, 0, 0)
    return {
        "input_ids": shifted(tokens(token_ids, special.pad_id), special.pad_id,
                             special.cls_id, special.sep_id),
        "input_mask": tf.cast(position <= last, tf.int32),
        "segment_ids": tf.zeros([batch_size, seq_length], tf.int32),
        "label_ids": tf.where(is_first, tag, 0),
        "label_weights": tf.cast(is_first, tf.float32) * batch["example_weight"][:, None],
        "word_index": tf.where(is_first, word, -1),
        "num_words": tf.cast(words.row_lengths(), tf.int32),
    }


def _padding_example(spec: dict, labels: LabelSet | None, kind: str) -> dict:
    """A weight-0 example that fills the last evaluation batch."""
    example = {"example_id": tf.constant(-1, tf.int64), "example_weight": tf.constant(0.0)}
    if kind == "tagging":
        example.update(words=tf.zeros([0], tf.string), tags=tf.zeros([0], tf.string))
    else:
        if kind == "regression":
            label = tf.constant(0.0, spec["label"].dtype)
        else:
            label = tf.constant(labels.names[0] if labels is not None else "")
        example.update(text_a=tf.constant(""), text_b=tf.constant(""), label=label)
    return {key: example[key] for key in spec}


def make_features(examples: tf.data.Dataset, tokenizer: Tokenizer, labels: LabelSet | None, *,
                  kind: str, seq_length: int, batch_size: int, training: bool,
                  seed: int) -> tf.data.Dataset:
    """Batches of model features from raw examples (`read_examples`); see the module doc.

    `labels` maps label names to ids (classification, tagging); None for regression, or to
    featurize unlabeled data for prediction (labels then read as 0).
    """
    if kind not in ("classification", "regression", "tagging"):
        raise ValueError(f"kind must be classification, regression or tagging, got {kind!r}")
    examples = examples.map(graph_only(
        lambda e: {**e, "example_weight": tf.constant(1.0, tf.float32)}))
    if training:
        examples = examples.shuffle(SHUFFLE_BUFFER, seed=seed, reshuffle_each_iteration=True)
        examples = examples.repeat()
    elif batch_size > 1:
        padding = _padding_example(examples.element_spec, labels, kind)
        examples = examples.concatenate(
            tf.data.Dataset.from_tensors(padding).repeat(batch_size - 1))
    if kind == "tagging":
        batches = examples.ragged_batch(batch_size, drop_remainder=True)
    else:
        batches = examples.batch(batch_size, drop_remainder=True)
    table = labels.lookup_table() if labels is not None and kind != "regression" else None

    @graph_only
    def featurize(batch):
        if kind == "tagging":
            features = _tagging_features(tokenizer, batch, table, batch_size, seq_length)
            features["label"] = tf.zeros([batch_size], tf.int32)
        else:
            features = _sequence_features(tokenizer, batch, batch_size, seq_length)
            if kind == "regression":
                features["label"] = tf.cast(batch["label"], tf.float32)
            elif table is None:
                features["label"] = tf.zeros([batch_size], tf.int32)
            else:
                features["label"] = _checked_ids(table, batch["label"], "label(s)")
        features["example_weight"] = batch["example_weight"]
        features["example_id"] = batch["example_id"]
        return features

    return batches.map(featurize, num_parallel_calls=tf.data.AUTOTUNE,
                       deterministic=True).prefetch(tf.data.AUTOTUNE)


def truncated_words(batch: dict[str, np.ndarray]) -> int:
    """How many words of the real examples of a (host) tagging batch have no position."""
    weight = np.asarray(batch["example_weight"]) > 0
    placed = (np.asarray(batch["word_index"]) >= 0).sum(axis=1)
    return int(((np.asarray(batch["num_words"]) - placed) * weight).sum())
