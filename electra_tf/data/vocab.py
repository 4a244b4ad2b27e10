"""Learns a WordPiece vocabulary from the configured corpus (tensorflow-text's learner).

`build_vocab` counts words over (a sample of) the training split, normalized and split exactly
as the WordPiece tokenizer will see them, then runs the WordPiece learner of
`tensorflow_text.tools.wordpiece_vocab` at frequency thresholds chosen by a short search, and
writes a vocabulary of exactly `vocab_size` lines:

    [PAD] [UNK] [CLS] [SEP] [MASK]   (ids 0-4)
    single characters, then ##single characters
    learned word pieces, most frequent first
    [unused0] ...                    (only when the corpus is too small to fill the size)

To stay well under a minute, the learner sees the most frequent `max_input_words` words of at
most `max_words` running words (the default corpus has 1.75M; a bigger corpus is sampled from its
start: files in sorted order, up to 8 read side by side) and the search stops after
`max_searches` learner runs (or once a vocabulary at most 15% too big is found); the smallest
vocabulary at or above the size is then trimmed of its least frequent pieces (single
characters are always kept).
"""

from __future__ import annotations

import collections
import logging
import math
import time

import tensorflow as tf
from tensorflow_text.python.ops import bert_tokenizer
from tensorflow_text.tools.wordpiece_vocab import wordpiece_tokenizer_learner_lib as learner

from electra_tf.config import DataConfig
from electra_tf.data.documents import graph_only, read_error
from electra_tf.data.errors import DataError
from electra_tf.data.sources import open_documents
from electra_tf.data.tokenization import SPECIAL_TOKENS, normalize

logger = logging.getLogger(__name__)

_MAX_TOKEN_LENGTH = 50
_MAX_UNIQUE_CHARS = 1000


def count_words(data: DataConfig, max_words: int) -> collections.Counter:
    """Word counts of the training split, normalized and pre-tokenized like BERT."""
    documents = open_documents(data, "train")
    basic = bert_tokenizer.BasicTokenizer(lower_case=False, normalization_form=None)

    @graph_only
    def batch_counts(docs):
        words = basic.tokenize(normalize(docs.flat_values, data.lower_case,
                                         data.strip_accents)).flat_values
        unique, _, freq = tf.unique_with_counts(words)
        return unique, freq, tf.size(words)

    dataset = documents.dataset.batch(64).map(batch_counts, num_parallel_calls=2).prefetch(4)
    counts: collections.Counter = collections.Counter()
    total = 0
    started = time.perf_counter()
    try:
        for unique, freq, size in dataset.as_numpy_iterator():
            counts.update(dict(zip(unique.tolist(), freq.tolist(), strict=True)))
            total += int(size)
            if total >= max_words:
                logger.info("vocab: sampled the first %d words of %s", total,
                            documents.description)
                break
    except tf.errors.OpError as e:
        raise read_error(documents.description, e) from None
    if not counts:
        raise DataError(f"cannot build a vocabulary: {documents.description} has no words")
    logger.info("vocab: counted %d words (%d distinct) in %.1fs", total, len(counts),
                time.perf_counter() - started)
    return collections.Counter({w.decode("utf-8", "replace"): c for w, c in counts.items()})


def learn_vocab(counts: collections.Counter, vocab_size: int, *, max_input_words: int,
                max_searches: int = 6, num_iterations: int = 3) -> list[str]:
    """A WordPiece vocabulary of exactly `vocab_size` tokens, specials first."""
    reserved = list(SPECIAL_TOKENS)
    if vocab_size <= len(reserved):
        raise DataError(f"vocab_size must be above {len(reserved)}, got {vocab_size}")
    params = learner.Params(
        upper_thresh=None, lower_thresh=None, num_iterations=num_iterations,
        max_input_tokens=max_input_words, max_token_length=_MAX_TOKEN_LENGTH,
        max_unique_chars=_MAX_UNIQUE_CHARS, vocab_size=vocab_size, slack_ratio=0.0,
        include_joiner_token=True, joiner="##", reserved_tokens=reserved)
    words = learner.get_input_words(list(counts.items()), reserved, _MAX_TOKEN_LENGTH)
    allowed = learner.get_allowed_chars(words, _MAX_UNIQUE_CHARS)
    words = learner.filter_input_words(words, allowed, max_input_words)

    results: dict[int, list[str]] = {}

    def run(threshold: int) -> int:
        started = time.perf_counter()
        results[threshold] = learner.learn_with_thresh(words, threshold, params)
        logger.info("vocab: frequency threshold %d -> %d tokens (%.1fs)", threshold,
                    len(results[threshold]), time.perf_counter() - started)
        return len(results[threshold])

    # Search thresholds in log space: lo gives >= vocab_size tokens, hi gives fewer.
    lo, hi = 1, max(2, max(c for _, c in words) + 1)
    size_lo, size_hi = None, None
    threshold = _initial_threshold(words, vocab_size)
    for _ in range(max_searches):
        size = run(threshold)
        if size >= vocab_size:
            lo, size_lo = threshold, size
        else:
            hi, size_hi = threshold, size
        if hi - lo <= 1 or (size_lo is not None and size_lo <= vocab_size * 1.15):
            break
        if size_lo is not None and size_hi is not None:   # interpolate log(size) ~ log(t)
            slope = (math.log(size_lo) - math.log(size_hi)) / (math.log(lo) - math.log(hi))
            guess = math.exp(math.log(lo) + (math.log(vocab_size * 1.02) - math.log(size_lo))
                             / slope) if slope < 0 else math.sqrt(lo * hi)
        else:
            guess = threshold * 2.0 if size >= vocab_size else threshold / 2.0
        threshold = min(hi - 1, max(lo + 1, int(round(guess))))
        if threshold in results:
            break
    best = results.get(lo) if lo in results else results[max(results, key=lambda t: len(
        results[t]))]
    return _exact_size(best, vocab_size)


def _initial_threshold(words: list[tuple[str, int]], vocab_size: int) -> int:
    """About the count of the vocab_size-th most frequent word: a first guess for the search."""
    counts = sorted((c for _, c in words), reverse=True)
    return max(1, counts[min(len(counts) - 1, int(vocab_size * 0.8))])


def _is_single(token: str) -> bool:
    return len(token) == 1 or (token.startswith("##") and len(token) == 3)


def _exact_size(vocab: list[str], vocab_size: int) -> list[str]:
    """Trims the least frequent multi-character pieces, or pads with [unusedN]."""
    reserved, rest = vocab[:len(SPECIAL_TOKENS)], vocab[len(SPECIAL_TOKENS):]
    if len(vocab) > vocab_size:
        budget = vocab_size - len(reserved) - sum(map(_is_single, rest))
        kept = []
        for token in rest:            # learner order: characters, then pieces by count
            if _is_single(token) or budget > 0:
                kept.append(token)
                budget -= not _is_single(token)
        vocab = (reserved + kept)[:vocab_size]
    vocab = list(vocab)
    unused = 0
    while len(vocab) < vocab_size:
        vocab.append(f"[unused{unused}]")
        unused += 1
    return vocab


def build_vocab(data: DataConfig, out_path: str, vocab_size: int, *,
                max_words: int = 4_000_000, max_input_words: int | None = None) -> str:
    """Learns a WordPiece vocab of `vocab_size` tokens from the configured corpus; returns
    `out_path` (written atomically through tf.io.gfile, so gs:// works)."""
    if vocab_size <= len(SPECIAL_TOKENS):
        raise DataError(f"vocab_size must be above {len(SPECIAL_TOKENS)}, got {vocab_size}")
    if tf.io.gfile.isdir(out_path):
        raise DataError(f"cannot write the vocabulary to {out_path}: it is a directory; give a "
                        f"file path such as {out_path.rstrip('/')}/vocab.txt")
    started = time.perf_counter()
    logger.info("vocab: building a %d-token WordPiece vocabulary into %s", vocab_size, out_path)
    counts = count_words(data, max_words)
    vocab = learn_vocab(counts, vocab_size,
                        max_input_words=max_input_words or max(vocab_size + 10_000, 20_000))
    directory = out_path.rsplit("/", 1)[0] if "/" in out_path else ""
    tmp = f"{out_path}.tmp"
    try:
        if directory and not tf.io.gfile.exists(directory):
            tf.io.gfile.makedirs(directory)
        with tf.io.gfile.GFile(tmp, "w") as f:
            f.write("\n".join(vocab) + "\n")
        tf.io.gfile.rename(tmp, out_path, overwrite=True)
    except tf.errors.OpError as e:
        raise DataError(f"cannot write the vocabulary to {out_path}: {e.message}") from None
    finally:
        if tf.io.gfile.exists(tmp) and not tf.io.gfile.isdir(tmp):   # only after a failure
            tf.io.gfile.remove(tmp)
    logger.info("vocab: wrote %d tokens to %s in %.1fs", len(vocab), out_path,
                time.perf_counter() - started)
    return out_path
