"""Reading a text corpus as named documents, with the trainer's own readers.

Each file is read whole by one worker through `electra_tf.data.sources.file_documents` (the
same code as the trainer's ``data.source: text``: blank lines between documents in the
``sentence_per_line`` layout, the in-graph sentence splitter for ``document_per_line``, .gz and
.zz decompression, NUL bytes to spaces). Work is spread over files, so a large corpus should
come as many files (dumps usually do); a single huge file is read by a single worker.

A TensorFlow Datasets split (``data.source: tfds``, prepared with ``tfds build``) is read in
ranges of `TFDS_CHUNK` examples, one range per work item; each example's text feature is one
document, sanitised and split into sentences by the trainer's `sanitize` / `split_sentences`.

Every document is named ``FILE#INDEX`` (the file as listed, the document's index in it) or
``tfds:NAME/SPLIT#INDEX``: its packing seed is derived from that name, so the same corpus gives
the same examples whatever the runner, the worker count or the order work is done in.
"""

from __future__ import annotations

import apache_beam as beam
import tensorflow as tf

from electra_tf.config import DataConfig
from electra_tf.data.errors import DataError
from electra_tf.data.sources import (
    compression_type,
    expand_paths,
    file_documents,
    read_error,
    sanitize,
    split_sentences,
)

_BLOCK = 4096   # lines per UTF-8 check, documents per conversion
TFDS_CHUNK = 10_000   # TFDS examples per work item


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


def read_file_documents(name: str, data: DataConfig, invalid_utf8: str = "error"):
    """Yields (``name#index``, [sentence bytes]) for every document of one file, read as the
    trainer reads it (data.layout, data.encoding and its length limits)."""
    if invalid_utf8 == "error":
        check_utf8(name)
    index = 0
    try:
        for batch in file_documents(name, data).ragged_batch(_BLOCK):
            for sentences in batch.to_list():
                yield f"{name}#{index}", sentences
                index += 1
    except tf.errors.OpError as e:
        raise read_error(name, e) from None


class ReadDocuments(beam.DoFn):
    """file name -> (document name, sentences) for each of its documents."""

    def __init__(self, data: DataConfig, invalid_utf8: str = "error"):
        self.data = data
        self.invalid_utf8 = invalid_utf8

    def process(self, name: str):
        yield from read_file_documents(name, self.data, self.invalid_utf8)


def _tfds_builder(data: DataConfig):
    import tensorflow_datasets as tfds

    try:
        return tfds.builder(data.tfds_name, data_dir=data.tfds_data_dir)
    except Exception as e:  # DatasetNotFoundError, unknown config or version, ...
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"data.tfds_name={data.tfds_name!r} is not a TensorFlow Datasets "
                        f"dataset ({first}); check the name/config/version") from None


def tfds_ranges(data: DataConfig, chunk: int | None = None) -> list[tuple[int, int]]:
    """[start, end) example ranges (`chunk`, default TFDS_CHUNK, examples each) covering
    data.tfds_split of a prepared TFDS dataset."""
    chunk = chunk or TFDS_CHUNK
    builder = _tfds_builder(data)
    if data.tfds_feature not in builder.info.features:
        raise DataError(f"TFDS dataset {data.tfds_name!r} has no feature {data.tfds_feature!r}; "
                        f"set data.tfds_feature to one of {sorted(builder.info.features.keys())}")
    try:
        total = builder.info.splits[data.tfds_split].num_examples
    except (KeyError, ValueError):   # not prepared, or no such split
        raise DataError(f"TFDS {data.tfds_name!r} has no prepared split {data.tfds_split!r} in "
                        f"{builder.data_dir}: prepare it first (tfds build {data.tfds_name} "
                        "--data_dir=DIR, then set data.tfds_data_dir=DIR)") from None
    if total == 0:
        raise DataError(f"the corpus is empty: TFDS {data.tfds_name!r} split "
                        f"{data.tfds_split!r} has no example")
    return [(start, min(start + chunk, total)) for start in range(0, total, chunk)]


def tfds_key(data: DataConfig) -> str:
    return f"tfds:{data.tfds_name}/{data.tfds_split}"


class ReadTfdsDocuments(beam.DoFn):
    """[start, end) -> (``tfds:NAME/SPLIT#INDEX``, sentences) for its non-empty documents."""

    def __init__(self, data: DataConfig):
        self.data = data

    def process(self, bounds: tuple[int, int]):
        data, (start, end) = self.data, bounds
        split = f"{data.tfds_split}[{start}:{end}]"
        feature = data.tfds_feature
        try:
            texts = _tfds_builder(data).as_dataset(split=split, shuffle_files=False)
            batches = texts.map(lambda example: example[feature]).batch(64).map(
                lambda t: split_sentences(sanitize(t)))
            index = start
            for docs in batches:
                for sentences in docs.to_list():
                    if sentences:
                        yield f"{tfds_key(data)}#{index}", sentences
                    index += 1
        except tf.errors.OpError as e:
            raise read_error(f"TFDS {data.tfds_name!r} split {split!r}", e) from None


def corpus_inputs(data: DataConfig) -> list[str]:
    """What the corpus is, for messages and metadata: its files, or the TFDS split."""
    return [tfds_key(data)] if data.source == "tfds" else list_corpus(data.paths)


def corpus_documents(pipeline, data: DataConfig, invalid_utf8: str, label: str = "Documents"):
    """A PCollection of (name, sentences) over the configured corpus: one text file, or one
    range of TFDS examples, per work item."""
    if data.source == "tfds":
        items, read = tfds_ranges(data), ReadTfdsDocuments(data)
    elif data.source == "text":
        items, read = list_corpus(data.paths), ReadDocuments(data, invalid_utf8)
    else:
        raise DataError(f"data.source is {data.source!r}: the Beam jobs read text files "
                        "(data.source=text, data.paths) or a prepared TFDS dataset "
                        "(data.source=tfds, data.tfds_name)")
    return (pipeline
            | f"{label}/Items" >> beam.Create(items)
            | f"{label}/Spread" >> beam.Reshuffle()
            | f"{label}/Read" >> beam.ParDo(read))
