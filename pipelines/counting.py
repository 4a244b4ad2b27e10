"""Word counts over a whole corpus, normalised and split as the WordPiece tokenizer sees words.

The per-batch count is the one of `electra_tf.data.vocab.count_words` (which samples the start
of a corpus in one process): `tokenization.normalize` (lower-casing, NFD accent stripping, per
data.lower_case / data.strip_accents), then tensorflow-text's BERT basic tokenizer (whitespace,
punctuation and CJK splits) with its own normalisation off. Beam sums the counts per word.
"""

from __future__ import annotations

import apache_beam as beam
import tensorflow as tf

from electra_tf.config import DataConfig


class CountWords(beam.DoFn):
    """[(name, sentences)] batches -> (word, count) pairs of the batch."""

    def __init__(self, data: DataConfig):
        self.lower_case = data.lower_case
        self.strip_accents = data.strip_accents

    def setup(self):
        from tensorflow_text.python.ops import bert_tokenizer

        from electra_tf.data.tokenization import normalize

        basic = bert_tokenizer.BasicTokenizer(lower_case=False, normalization_form=None)
        lower_case, strip_accents = self.lower_case, self.strip_accents

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def batch_counts(sentences):
            words = basic.tokenize(normalize(sentences, lower_case, strip_accents)).flat_values
            unique, _, freq = tf.unique_with_counts(words)
            return unique, freq

        self._counts = batch_counts

    def process(self, batch):
        sentences = [s for _, doc in batch for s in doc]
        if not sentences:
            return
        unique, freq = self._counts(tf.constant(sentences, tf.string))
        for word, count in zip(unique.numpy().tolist(), freq.numpy().tolist(), strict=True):
            yield word.decode("utf-8", "replace"), int(count)


def word_counts(documents, data: DataConfig, batch_documents: int = 64):
    """(word, total count) over a PCollection of (name, sentences) documents."""
    return (documents
            | "BatchForCounts" >> beam.BatchElements(min_batch_size=1,
                                                     max_batch_size=batch_documents)
            | "CountWords" >> beam.ParDo(CountWords(data))
            | "SumCounts" >> beam.CombinePerKey(sum))
