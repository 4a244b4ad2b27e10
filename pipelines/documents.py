"""Reading a text corpus as named documents, with the trainer's own readers.

Each file is read whole by one worker through `electra_tf.data.sources.file_documents` (the
same code as the trainer's ``data.source: text``: blank lines between documents in the
``sentence_per_line`` layout, the in-graph sentence splitter for ``document_per_line``, .gz and
.zz decompression, NUL bytes to spaces). Work is spread over files, so a large corpus should
come as many files (dumps usually do); a single huge file is read by a single worker.

Every document is named ``FILE#INDEX`` (the file as listed, the document's index in it): its
packing seed is derived from that name, so the same corpus gives the same examples whatever
the runner, the worker count or the order work is done in.
"""

from __future__ import annotations

import apache_beam as beam
import tensorflow as tf

from electra_tf.data.errors import DataError
from electra_tf.data.sources import compression_type, expand_paths, file_documents, read_error

_BLOCK = 4096   # lines per UTF-8 check, documents per conversion


def list_corpus(patterns: list[str]) -> list[str]:
    """The corpus files (sorted), refusing a corpus whose files are all empty."""
    files = expand_paths(patterns)
    try:
        sizes = [tf.io.gfile.stat(name).length for name in files]
    except tf.errors.OpError as e:
        raise DataError(f"cannot read the corpus: {e.message}") from None
    if not any(sizes):
        shown = ", ".join(files[:3]) + (" ..." if len(files) > 3 else "")
        raise DataError(f"the corpus is empty: every file of {shown} has 0 bytes")
    return files


@tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
def _invalid_lines(lines: tf.Tensor) -> tf.Tensor:
    """Indices of the lines that are not valid UTF-8 (two replacement characters disagree)."""
    a = tf.strings.unicode_transcode(lines, "UTF-8", "UTF-8", errors="replace",
                                     replacement_char=0xFFFD)
    b = tf.strings.unicode_transcode(lines, "UTF-8", "UTF-8", errors="replace",
                                     replacement_char=0x1A)
    return tf.where(tf.not_equal(a, b))[:, 0]


def check_utf8(name: str) -> None:
    """Raises a DataError naming `name` and the first line that is not valid UTF-8."""
    lines = tf.data.TextLineDataset(name, compression_type(name)).batch(_BLOCK)
    try:
        for block, batch in enumerate(lines):
            bad = _invalid_lines(batch).numpy()
            if bad.size:
                line = block * _BLOCK + int(bad[0]) + 1
                raise DataError(f"{name}: line {line} is not valid UTF-8 text; fix or remove the "
                                "file, or pass --invalid_utf8 replace to read such bytes as "
                                "U+FFFD (as the trainer does)")
    except tf.errors.OpError as e:
        raise read_error(name, e) from None


def read_file_documents(name: str, layout: str, invalid_utf8: str = "error"):
    """Yields (``name#index``, [sentence bytes]) for every document of one file."""
    if invalid_utf8 == "error":
        check_utf8(name)
    index = 0
    try:
        for batch in file_documents(name, layout).ragged_batch(_BLOCK):
            for sentences in batch.to_list():
                yield f"{name}#{index}", sentences
                index += 1
    except tf.errors.OpError as e:
        raise read_error(name, e) from None


class ReadDocuments(beam.DoFn):
    """file name -> (document name, sentences) for each of its documents."""

    def __init__(self, layout: str, invalid_utf8: str = "error"):
        self.layout = layout
        self.invalid_utf8 = invalid_utf8

    def process(self, name: str):
        yield from read_file_documents(name, self.layout, self.invalid_utf8)


def corpus_documents(pipeline, files: list[str], layout: str, invalid_utf8: str,
                     label: str = "Documents"):
    """A PCollection of (name, sentences) over `files`, read one file per work item."""
    return (pipeline
            | f"{label}/Files" >> beam.Create(files)
            | f"{label}/Spread" >> beam.Reshuffle()
            | f"{label}/Read" >> beam.ParDo(ReadDocuments(layout, invalid_utf8)))
