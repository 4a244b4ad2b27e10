"""Text-file corpora: paths and globs, compression, and the two line layouts, as tf.data.

* ``sentence_per_line`` (the reference layout): one sentence per line, a blank line (or a line of
  only whitespace) between documents.
* ``document_per_line``: one document per line, split into sentences in the graph.

Held-out evaluation (split="eval"): the first `data.eval_documents` documents of the corpus in
sorted file order, or all of `data.eval_paths` when set. Training never sees them.

Every file is checked as text first (text_checks.py: its encoding, how much is not text, how
many lines are over-long). Files ending in ``.gz`` (gzip) or ``.zz`` / ``.zlib`` (zlib) are
decompressed as they are read; other compressed files (.bz2, .xz, .zip, ...) are rejected.
"""

from __future__ import annotations

import os
import re

import numpy as np
import tensorflow as tf

from electra_tf.config import DataConfig
from electra_tf.data.documents import (
    Documents,
    cut_long_texts,
    graph_only,
    read_error,
    sanitize,
    texts_to_documents,
)
from electra_tf.data.errors import DataError
from electra_tf.data.text_checks import check_text_files

__all__ = ["expand_paths", "compression_type", "file_documents", "text_documents"]

_GLOB_CHARS = re.compile(r"[*?\[]")
# Lines read per block when grouping sentence-per-line files into documents.
_BLOCK_LINES = 4096
# File name suffix -> tf.data compression type; the other common compressed formats are rejected.
_COMPRESSION = {".gz": "GZIP", ".zz": "ZLIB", ".zlib": "ZLIB"}
_UNSUPPORTED_COMPRESSION = (".bz2", ".xz", ".zst", ".lz4", ".zip", ".7z")


def expand_paths(patterns: list[str], field: str = "data.paths") -> list[str]:
    """Expands files, directories and globs (local or gs://) into a sorted list of files."""
    if not patterns:
        raise DataError(f"{field} is empty: list the text files or globs to read")
    files: set[str] = set()
    for pattern in patterns:
        try:
            if _GLOB_CHARS.search(pattern):
                matches = [m for m in tf.io.gfile.glob(pattern) if not tf.io.gfile.isdir(m)]
                if not matches:
                    raise DataError(f"{field}: no file matches the glob {pattern!r}; check the "
                                    "pattern and that the files exist")
                files.update(matches)
            elif tf.io.gfile.isdir(pattern):
                inside = [os.path.join(pattern, name) for name in tf.io.gfile.listdir(pattern)]
                inside = [p for p in inside if not tf.io.gfile.isdir(p)]
                if not inside:
                    raise DataError(f"{field}: the directory {pattern!r} contains no files")
                files.update(inside)
            elif tf.io.gfile.exists(pattern):
                files.add(pattern)
            else:
                raise DataError(f"{field}: {pattern!r} does not exist; fix the path (globs such "
                                "as corpus/*.txt are accepted)")
        except tf.errors.OpError as e:
            raise DataError(f"{field}: cannot read {pattern!r}: {e.message}") from None
    unreadable = [f for f in sorted(files) if f.lower().endswith(_UNSUPPORTED_COMPRESSION)]
    if unreadable:
        raise DataError(f"{field}: {unreadable[0]} is compressed in a format that cannot be read "
                        "(only .gz and .zz/.zlib are): decompress it, or leave it out")
    return sorted(files)


def compression_type(name: str) -> str:
    """The tf.data compression type of a text file: 'GZIP' (.gz), 'ZLIB' (.zz, .zlib) or ''."""
    return _COMPRESSION.get(os.path.splitext(name)[1].lower(), "")


def _sentence_per_line_docs(filename: tf.Tensor, compression: tf.Tensor,
                            data: DataConfig) -> tf.data.Dataset:
    """Groups the lines of one file into documents at blank lines (graph code, blockwise).

    Lines longer than data.max_piece_chars are cut into pieces first (pieces of one line stay in
    its document), and a document longer than data.max_document_bytes is emitted in parts cut
    between lines: what is carried from block to block, and every document, stays bounded.
    """
    # A trailing blank line flushes the last document of the file.
    lines = tf.data.TextLineDataset(filename, compression).concatenate(
        tf.data.Dataset.from_tensors(tf.constant("")))
    encoding, max_chars, part_bytes = data.encoding, data.max_piece_chars, data.max_document_bytes

    @graph_only
    def step(carry, block):
        block, _ = cut_long_texts(sanitize(block, encoding), max_chars)
        lines = tf.concat([carry, block], axis=0)
        blank = tf.equal(lines, "")
        num_blank = tf.reduce_sum(tf.cast(blank, tf.int64))
        doc_index = tf.cumsum(tf.cast(blank, tf.int64))        # document of each line
        # Part of its document each line falls in (parts of part_bytes, cut between lines).
        sizes = tf.cast(tf.strings.length(lines), tf.int64)
        offset = tf.cumsum(sizes, exclusive=True)
        doc_offset = tf.gather(tf.math.segment_min(offset, doc_index), doc_index)
        part = (offset - doc_offset) // part_bytes
        trailing = doc_index >= num_blank                      # the unfinished last document
        last_part = tf.reduce_max(tf.where(trailing, part, -1))
        complete = ~trailing | (part < last_part)              # its full parts go out too
        keep = complete & ~blank
        values = tf.boolean_mask(lines, keep)
        _, _, row_lengths = tf.unique_with_counts(
            tf.boolean_mask(doc_index * (1 << 32) + part, keep))
        rest = tf.boolean_mask(lines, ~complete & ~blank)
        return rest, (values, row_lengths)

    @graph_only
    def to_documents(values, lengths):
        return tf.data.Dataset.from_tensor_slices(
            tf.RaggedTensor.from_row_lengths(values, lengths))

    return lines.batch(_BLOCK_LINES).scan(tf.zeros([0], tf.string), step).flat_map(to_documents)


def _document_per_line_docs(filename: tf.Tensor, compression: tf.Tensor,
                            data: DataConfig) -> tf.data.Dataset:
    """One document per line; a line longer than data.max_piece_chars becomes several."""
    lines = tf.data.TextLineDataset(filename, compression).batch(_BLOCK_LINES)
    encoding, max_chars = data.encoding, data.max_piece_chars
    to_docs = graph_only(lambda block: texts_to_documents(block, max_chars, encoding))
    return lines.map(to_docs).flat_map(graph_only(tf.data.Dataset.from_tensor_slices))


def file_documents(filename: str | tf.Tensor, data: DataConfig,
                   compression: str | tf.Tensor | None = None) -> tf.data.Dataset:
    """The documents of one text file, in order (compression: default from a str name), read
    with data.layout, data.encoding and the length limits of `data`."""
    if compression is None:
        compression = compression_type(filename) if isinstance(filename, str) else ""
    if data.layout == "document_per_line":
        return _document_per_line_docs(filename, compression, data)
    return _sentence_per_line_docs(filename, compression, data)


def _count(name: str, data: DataConfig, limit: int, skip: int = 0) -> int:
    """The number of documents of file `name` after the first `skip`, up to `limit`."""
    documents = file_documents(name, data).skip(skip).take(limit)
    try:
        return int(documents.reduce(np.int64(0), graph_only(lambda n, _: n + 1)))
    except tf.errors.OpError as e:
        raise read_error(name, e) from None


def text_documents(data: DataConfig, split: str,
                   input_context: tf.distribute.InputContext | None) -> Documents:
    """The documents of the text corpus for `split` (sharded by file when there are enough)."""
    if split == "eval" and data.eval_paths:
        files = expand_paths(data.eval_paths, "data.eval_paths")
    else:
        files = expand_paths(data.paths)
    description = f"{', '.join(files[:3])}{' ...' if len(files) > 3 else ''}"
    if all(_size(name) == 0 for name in files):
        raise DataError(f"the corpus is empty: every file of {description} has 0 bytes")
    check_text_files(files, data)
    holdout: list[int] = []                              # leading documents held out per file
    if not data.eval_paths and data.eval_documents > 0:
        remaining = data.eval_documents
        for name in files:
            if remaining == 0:
                break
            holdout.append(_count(name, data, remaining))
            remaining -= holdout[-1]
        if remaining == data.eval_documents:
            raise DataError(f"the corpus is empty: {description} holds no document (only blank "
                            "lines or whitespace); check the files in data.paths")
        exhausted = remaining > 0 or not any(
            _count(name, data, 1, skip)
            for name, skip in zip(files, holdout + [0] * (len(files) - len(holdout)),
                                  strict=True))
        if exhausted and split == "train":
            raise DataError(
                f"the corpus {data.paths} has only {data.eval_documents - remaining} documents "
                f"and data.eval_documents={data.eval_documents} of them are held out for "
                "evaluation, so none is left for training: add text, lower data.eval_documents "
                "or give data.eval_paths")

    # Per file: documents to skip (held out, when training) and to take (-1: all).
    skips = [0] * len(files)
    takes = [-1] * len(files)
    if split == "eval" and not data.eval_paths:
        files, takes, skips = files[:len(holdout)], holdout, [0] * len(holdout)
    elif split == "train":
        skips[:len(holdout)] = holdout

    sharded_by_file = False
    ids = list(range(len(files)))
    if input_context is not None and input_context.num_input_pipelines > 1:
        if len(files) >= input_context.num_input_pipelines:
            ids = ids[input_context.input_pipeline_id::input_context.num_input_pipelines]
            sharded_by_file = True
    table = tf.data.Dataset.from_tensor_slices((
        tf.constant([files[i] for i in ids]),
        tf.constant([compression_type(files[i]) for i in ids]),
        tf.constant([skips[i] for i in ids], tf.int64),
        tf.constant([takes[i] for i in ids], tf.int64)))
    # Evaluation reads files in order; training interleaves documents of several files.
    cycle = 1 if split == "eval" else min(len(ids), 8)

    @graph_only
    def read(name, compression, skip, take):
        return file_documents(name, data, compression).skip(skip).take(take)

    if cycle == 1:
        dataset = table.flat_map(read)
    else:
        dataset = table.interleave(read, cycle_length=cycle, block_length=8,
                                   num_parallel_calls=tf.data.AUTOTUNE,
                                   deterministic=data.deterministic)
    return Documents(dataset, f"text corpus {description} (split {split!r})", len(ids),
                     sharded_by_file)


def _size(name: str) -> int:
    try:
        return tf.io.gfile.stat(name).length
    except tf.errors.OpError as e:
        raise DataError(f"cannot read {name}: {e.message}") from None
