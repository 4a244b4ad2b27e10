"""Tokenizing and packing named documents into serialized ELECTRA examples (a Beam DoFn).

Tokenization is the run's in-graph tokenizer (`electra_tf.data.load_tokenizer` over the run's
vocabulary and settings, `pipeline.tokenize_documents`); packing is
`electra_tf.data.packing.pack_document`, the trainer's packer on one document with the seed
`document_seeds(name, seed)`. Both run as `tf.function`s inside the worker, so the examples are
exactly those the in-graph code gives for the same documents and seeds.
"""

from __future__ import annotations

import apache_beam as beam
import numpy as np
import tensorflow as tf

from electra_tf.config import DataConfig
from electra_tf.data.packing import document_seeds, pack_document
from electra_tf.data.pipeline import tokenize_documents
from electra_tf.data.tfrecord import FEATURES

STATS = "stats"
# (documents, documents without a token, examples, tokens in examples, text tokens, cut lines)
STAT_NAMES = ("documents", "empty_documents", "examples", "example_tokens", "text_tokens",
              "cut_lines")


def serialize(examples: dict[str, np.ndarray]) -> list[bytes]:
    """[n, L] arrays of the three features -> n serialized tf.train.Examples."""
    rows = {name: examples[name].astype(np.int64).tolist() for name in FEATURES}
    out = []
    for i in range(len(rows[FEATURES[0]])):
        feature = {name: tf.train.Feature(int64_list=tf.train.Int64List(value=rows[name][i]))
                   for name in FEATURES}
        out.append(tf.train.Example(
            features=tf.train.Features(feature=feature)).SerializeToString())
    return out


class TokenizeAndPack(beam.DoFn):
    """[(name, sentences)] batches -> serialized examples, plus a stats tuple per batch."""

    def __init__(self, data: DataConfig, seed: int):
        self.data = data
        self.seed = seed

    def setup(self):
        from electra_tf.data.tokenization import load_tokenizer

        data = self.data
        tokenizer = load_tokenizer(data)
        special = tokenizer.special

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string),
                                      tf.TensorSpec([None], tf.int64)])
        def tokenize(sentences, lengths):
            ids = tokenize_documents(tokenizer, tf.RaggedTensor.from_row_lengths(
                sentences, lengths))
            return tf.cast(ids.flat_values, tf.int32), ids.values.row_lengths()

        @tf.function(input_signature=[tf.TensorSpec([None], tf.int32),
                                      tf.TensorSpec([None], tf.int64),
                                      tf.TensorSpec([2], tf.int64)])
        def pack(tokens, lengths, seed):
            return pack_document(tf.RaggedTensor.from_row_lengths(tokens, lengths), seed,
                                 seq_length=data.seq_length, special=special,
                                 short_seq_prob=data.short_seq_prob,
                                 single_segment_prob=data.single_segment_prob)

        self._tokenizer = tokenizer
        self._tokenize, self._pack = tokenize, pack

    def process(self, batch):
        keys = [key for key, _ in batch]
        per_doc = np.array([len(sentences) for _, sentences in batch], np.int64)
        flat = [s for _, sentences in batch for s in sentences]
        tokens, lengths = self._tokenize(tf.constant(flat, tf.string), tf.constant(per_doc))
        tokens, lengths = tokens.numpy(), lengths.numpy()
        seeds = document_seeds(keys, self.seed).numpy()
        sentence_end = np.cumsum(per_doc)
        token_end = np.concatenate([[0], np.cumsum(lengths)])
        stats = np.zeros(len(STAT_NAMES), np.int64)
        stats[0] = len(batch)
        stats[5] = int(np.sum(lengths > self.data.seq_length - 3))
        for d in range(len(batch)):
            first, last = sentence_end[d] - per_doc[d], sentence_end[d]
            doc_tokens = tokens[token_end[first]:token_end[last]]
            stats[4] += doc_tokens.size
            if doc_tokens.size == 0:
                stats[1] += 1
                continue
            examples = {k: v.numpy() for k, v in
                        self._pack(doc_tokens, lengths[first:last], seeds[d]).items()}
            stats[2] += examples["input_ids"].shape[0]
            stats[3] += int(examples["input_mask"].sum())
            yield from serialize(examples)
        yield beam.pvalue.TaggedOutput(STATS, tuple(int(x) for x in stats))


def sum_stats(rows) -> tuple:
    """CombineGlobally function: the element-wise sum of stats tuples (zeros for none)."""
    total = [0] * len(STAT_NAMES)
    for row in rows:
        total = [a + b for a, b in zip(total, row, strict=True)]
    return tuple(total)
