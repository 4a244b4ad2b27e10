"""Input pipeline: corpus sources, in-graph tokenizers, vocabulary builder, packing, masking.

Public interface::

    load_tokenizer(data, vocab_path=None) -> Tokenizer      (tokenization.py)
    build_vocab(data, out_path, vocab_size) -> str           (vocab.py)
    make_dataset(config, tokenizer, *, split, batch_size, input_context=None, repeat=True)
    dataset_fn(config, tokenizer, split="train", global_batch_size=None, repeat=None)
    pack_segments(segments, seq_length, special)             (packing.py, for serving)
    open_documents(data, split, input_context) / load_default_corpus()   (sources.py, wordnet.py;
        text files: text_files.py; the Documents they return: documents.py)
    has_eval_split(data) -> bool: whether split="eval" has held-out data   (sources.py)
    DataError, VocabError                                    (errors.py)
"""

from electra_tf.data.errors import DataError, VocabError
from electra_tf.data.packing import pack_documents, pack_segments
from electra_tf.data.pipeline import FEATURES, dataset_fn, make_dataset
from electra_tf.data.sources import has_eval_split, open_documents
from electra_tf.data.tokenization import (
    SPECIAL_TOKENS,
    SentencePieceTokenizer,
    Tokenizer,
    WordPieceTokenizer,
    load_tokenizer,
)
from electra_tf.data.vocab import build_vocab
from electra_tf.data.wordnet import load_default_corpus

__all__ = [
    "DataError", "VocabError", "FEATURES", "SPECIAL_TOKENS", "Tokenizer", "WordPieceTokenizer",
    "SentencePieceTokenizer", "load_tokenizer", "build_vocab", "make_dataset", "dataset_fn",
    "pack_documents", "pack_segments", "open_documents", "has_eval_split", "load_default_corpus",
]
