"""What every corpus source yields: a dataset of documents, and the graph text helpers.

A document is one element of a `tf.data.Dataset`: a 1-D `tf.string` tensor of its sentences in
order. Text is sanitised in the graph: it is decoded from the corpus' encoding into UTF-8
(undecodable bytes become U+FFFD), NUL bytes become spaces, and texts longer than a limit derived
from the sequence length (`DataConfig.max_piece_chars`) are cut into pieces before tokenization.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from electra_tf.data.errors import DataError

__all__ = ["Documents", "graph_only", "read_error", "sanitize", "split_sentences",
           "cut_long_texts", "texts_to_documents", "documents_to_dataset"]


def graph_only(fn):
    """Marks a tf.data function as plain graph code: AutoGraph's slow conversion is skipped."""
    return tf.autograph.experimental.do_not_convert(fn)


def read_error(what: str, error: tf.errors.OpError) -> DataError:
    """A one-line DataError for a TensorFlow error raised while reading `what`."""
    message = re.sub(r"\{\{.*?\}\}|\[Op:.*", "", error.message.strip().splitlines()[0]).strip()
    if "inflate" in message or "incorrect header" in message:
        message += " (a .gz, .zz or .zlib file that is not compressed that way?)"
    return DataError(f"cannot read {what}: {message}")


@dataclass
class Documents:
    """A dataset of documents (1-D string tensors of sentences) and a description for messages."""

    dataset: tf.data.Dataset
    description: str
    num_files: int = 0          # files read by this input pipeline (0: not file based)
    sharded_by_file: bool = False


def sanitize(texts: tf.Tensor, encoding: str = "UTF-8") -> tf.Tensor:
    """Decodes `encoding` into UTF-8 (undecodable bytes become U+FFFD), NUL bytes become spaces,
    outer whitespace is stripped."""
    texts = tf.strings.unicode_transcode(texts, encoding, "UTF-8", errors="replace",
                                         replacement_char=0xFFFD)
    texts = tf.strings.regex_replace(texts, "\x00", " ")
    return tf.strings.strip(texts)


def cut_long_texts(texts: tf.Tensor, max_chars: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Cuts texts [n] (valid UTF-8) longer than `max_chars` characters into pieces: a cut every
    `max_chars` characters, moved back to just after the last whitespace of the 64 characters
    before it when there is one (so pieces hold at most max_chars + 64 characters). Pieces keep
    their order and are stripped; pieces of only whitespace are dropped.

    This is what bounds the pipeline's memory on a corpus of huge lines: the tokenizer and the
    packer only ever see pieces, and a batch of documents never holds more than a batch of
    pieces. Returns (pieces [m], index in `texts` of each piece's text).
    """
    texts = tf.convert_to_tensor(texts, tf.string)
    lengths = tf.strings.length(texts, unit="UTF8_CHAR")
    long = tf.cast(tf.where(lengths > max_chars)[:, 0], tf.int32)
    chars = tf.strings.unicode_decode(tf.gather(texts, long), "UTF-8")     # [long, (chars)]
    size = tf.cast(chars.row_lengths(), tf.int32)
    flat = chars.flat_values
    # Cuts inside each long text: nominally every max_chars, moved back to after a whitespace.
    window = min(64, max_chars // 2)
    count = (size + max_chars - 1) // max_chars                            # pieces per text
    text = tf.repeat(tf.range(tf.size(long)), count - 1)
    k = tf.range(tf.size(text)) - tf.gather(tf.cumsum(count - 1, exclusive=True), text) + 1
    nominal = tf.gather(tf.cast(chars.row_starts(), tf.int32), text) + k * max_chars
    near = tf.gather(flat, nominal[:, None] - window + tf.range(window)[None, :])
    space = (near == 32) | (near == 9) | (near == 10) | (near == 13)
    last = tf.reduce_max(tf.where(space, tf.range(window)[None, :] + 1, 0), axis=1)
    cut = tf.where(last > 0, nominal - window + last, nominal)
    # Row splits of the pieces over `flat`: each text's start, its cuts, the end of the last.
    starts = tf.cast(chars.row_starts(), tf.int32)
    points = tf.concat([starts, cut], axis=0)
    owner = tf.concat([tf.range(tf.size(long)), text], axis=0)
    order = tf.argsort(points, stable=True)
    points, owner = tf.gather(points, order), tf.gather(owner, order)
    splits = tf.concat([points, [tf.size(flat)]], axis=0)
    pieces = tf.strings.strip(tf.strings.unicode_encode(
        tf.RaggedTensor.from_row_splits(flat, tf.cast(splits, tf.int64), validate=False),
        "UTF-8"))
    piece_text = tf.gather(long, owner)
    # Short texts stay as they are; pieces take the place of their text.
    short = tf.cast(tf.where(lengths <= max_chars)[:, 0], tf.int32)
    per_text = tf.tensor_scatter_nd_update(tf.ones_like(lengths, tf.int32), long[:, None], count)
    first = tf.cumsum(per_text, exclusive=True)
    piece_slot = tf.gather(first, piece_text) + tf.range(tf.size(owner)) - tf.gather(
        tf.cumsum(count, exclusive=True), owner)
    out = tf.dynamic_stitch([tf.gather(first, short), piece_slot],
                            [tf.gather(texts, short), pieces])
    source = tf.dynamic_stitch([tf.gather(first, short), piece_slot], [short, piece_text])
    # Empty short texts stay (a blank line ends a document); empty pieces go.
    keep = tf.dynamic_stitch([tf.gather(first, short), piece_slot],
                             [tf.ones_like(short, tf.bool), tf.strings.length(pieces) > 0])
    return tf.boolean_mask(out, keep), tf.boolean_mask(source, keep)


def split_sentences(texts: tf.Tensor) -> tf.RaggedTensor:
    """Splits documents [n] into sentences [n, (sentences)], dropping empty ones.

    A sentence ends at a line break, or at ``.``, ``!`` or ``?`` (plus closing quotes or brackets)
    followed by whitespace and an upper-case letter, a digit or an opening quote. This is a
    heuristic ("Dr. Smith" splits); it only decides where the two segments of an example may
    break, never what text is kept.
    """
    texts = tf.strings.regex_replace(
        texts, r"([.!?][\"'\)\]\x{201D}\x{2019}]*)\s+([\p{Lu}\p{N}\"'\(\x{201C}])", "\\1\n\\2")
    parts = tf.strings.strip(tf.strings.split(texts, "\n"))
    return tf.ragged.boolean_mask(parts, tf.strings.length(parts) > 0)


def texts_to_documents(texts: tf.Tensor, max_chars: int,
                       encoding: str = "UTF-8") -> tf.RaggedTensor:
    """Whole documents [n] (one string each) -> sanitised sentences [docs, (sentences)].

    A document longer than `max_chars` characters becomes several (`cut_long_texts`); the
    documents left without a sentence are dropped."""
    pieces, _ = cut_long_texts(sanitize(texts, encoding), max_chars)
    docs = split_sentences(pieces)
    return tf.ragged.boolean_mask(docs, docs.row_lengths() > 0)


def documents_to_dataset(documents: list[tuple[str, ...]] | list[list[str]]) -> tf.data.Dataset:
    """An in-memory list of documents (lists of sentences) as a dataset of documents."""
    lengths = np.array([len(d) for d in documents], np.int64)
    values = np.array([s for d in documents for s in d], dtype=object)
    ragged = tf.RaggedTensor.from_row_lengths(tf.constant(values, tf.string), lengths)
    return tf.data.Dataset.from_tensor_slices(ragged)
