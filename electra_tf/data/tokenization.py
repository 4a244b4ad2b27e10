"""In-graph tokenizers (tensorflow-text): WordPiece and SentencePiece behind one interface.

Both run inside `tf.data` and `tf.function` and can be saved in a SavedModel (they are
`tf.Module`s that track their tensorflow-text tokenizers and vocabulary constants).

WordPiece: `tensorflow_text.FastBertTokenizer` over a BERT ``vocab.txt`` (one token per line,
``##`` marks word continuations). With the default ``lower_case`` and ``strip_accents`` the
normalization is BERT-uncased (lower-case, NFD, accents removed), done by the fast normalizer
itself; other combinations normalize in the graph first. The vocabulary must contain
``[PAD] [UNK] [CLS] [SEP] [MASK]`` (anywhere: Google's vocab has them at 0, 100, 101, 102, 103).

SentencePiece: `tensorflow_text.SentencepieceTokenizer` over a trained ``.model`` file. The model
must have the pieces ``[CLS]``, ``[SEP]`` and ``[MASK]`` (train it with
``--control_symbols=[CLS],[SEP],[MASK]``). Padding and unknown tokens are the pieces ``[PAD]`` /
``[UNK]`` when the model has them, else its own ``<pad>`` / ``<unk>`` (train with ``--pad_id=0``:
SentencePiece disables padding by default). The model's own normalization applies;
``data.lower_case`` and ``data.strip_accents`` are for WordPiece only.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_text as tf_text

from electra_tf.config import DataConfig
from electra_tf.data.errors import VocabError
from electra_tf.data.masking import SpecialTokens

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
_FIX = ("give a BERT vocab.txt that has the special tokens [PAD] [UNK] [CLS] [SEP] [MASK], or "
        "build one with `electra-tf build-vocab` (leaving data.vocab_file unset builds one into "
        "the run directory)")


def normalize(texts: tf.Tensor, lower_case: bool, strip_accents: bool) -> tf.Tensor:
    """BERT-style normalization in the graph: case folding and/or NFD accent stripping."""
    if lower_case:
        texts = tf_text.case_fold_utf8(texts)
    if strip_accents:
        texts = tf_text.normalize_utf8(texts, "NFD")
        texts = tf.strings.regex_replace(texts, r"\p{Mn}", "")
    return texts


def _read_bytes(path: str, what: str, fix: str) -> bytes:
    """Reads a local or remote (tf.io.gfile) file; a missing or unreadable one is a VocabError."""
    try:
        if not tf.io.gfile.exists(path):
            raise VocabError(f"{what} {path} does not exist; {fix}")
        with tf.io.gfile.GFile(path, "rb") as f:
            return f.read()
    except tf.errors.OpError as e:
        raise VocabError(f"cannot read {what} {path}: {e.message}") from None


def read_vocab(path: str) -> list[str]:
    """Reads and validates a WordPiece vocabulary: one token per line, unique, specials present."""
    if not path:
        raise VocabError(f"no WordPiece vocabulary given: set data.vocab_file; {_FIX}")
    raw = _read_bytes(path, "vocabulary file", _FIX)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise VocabError(f"vocabulary file {path} is not UTF-8 text ({e}); a WordPiece "
                         "vocab.txt has one token per line") from None
    tokens = text.splitlines()
    while tokens and not tokens[-1].strip():
        tokens.pop()
    tokens = [t.strip() for t in tokens]
    if not tokens:
        raise VocabError(f"vocabulary file {path} is empty; {_FIX}")
    empty = [i + 1 for i, t in enumerate(tokens) if not t]
    if empty:
        raise VocabError(f"vocabulary file {path} has empty lines (line {empty[0]}"
                         f"{' and others' if len(empty) > 1 else ''}); remove them")
    seen: dict[str, int] = {}
    duplicates = []
    for line, token in enumerate(tokens, 1):
        if token in seen:
            duplicates.append(f"{token!r} (lines {seen[token]} and {line})")
        else:
            seen[token] = line
    if duplicates:
        raise VocabError(f"vocabulary file {path} has duplicate tokens: "
                         f"{', '.join(duplicates[:5])}{' ...' if len(duplicates) > 5 else ''}; "
                         "each token must appear once (ids are line numbers)")
    missing = [t for t in SPECIAL_TOKENS if t not in seen]
    if missing:
        raise VocabError(f"vocabulary file {path} lacks the special token(s) {' '.join(missing)}; "
                         f"{_FIX}")
    return tokens


class Tokenizer(tf.Module):
    """Text to token ids in the graph. Subclasses set `special`, `vocab_size`, `vocab_path`."""

    special: SpecialTokens
    vocab_size: int
    vocab_path: str

    def tokenize(self, texts: tf.Tensor) -> tf.RaggedTensor:
        """string [batch] -> int32 [batch, (tokens)], word pieces merged."""
        raise NotImplementedError

    def id_to_token(self, ids: tf.Tensor) -> tf.Tensor:
        """int ids (any shape) -> their tokens (strings); out-of-range ids give [UNK]'s text."""
        raise NotImplementedError


class WordPieceTokenizer(Tokenizer):
    """BERT WordPiece with `tensorflow_text.FastBertTokenizer`."""

    def __init__(self, vocab_path: str, *, lower_case: bool = True, strip_accents: bool = True,
                 name: str | None = None):
        super().__init__(name=name)
        tokens = read_vocab(vocab_path)
        index = {t: i for i, t in enumerate(tokens)}
        self.vocab_path = vocab_path
        self.vocab_size = len(tokens)
        self.special = SpecialTokens(*(index[t] for t in SPECIAL_TOKENS))
        self.lower_case = lower_case
        self.strip_accents = strip_accents
        self._builtin_normalizer = lower_case and strip_accents
        self._fast = tf_text.FastBertTokenizer(
            vocab=tokens, token_out_type=tf.int32, unknown_token="[UNK]",
            lower_case_nfd_strip_accents=self._builtin_normalizer)
        self._tokens = tf.constant(tokens)

    def tokenize(self, texts: tf.Tensor) -> tf.RaggedTensor:
        texts = tf.convert_to_tensor(texts, tf.string)
        if not self._builtin_normalizer:
            texts = normalize(texts, self.lower_case, self.strip_accents)
        return self._fast.tokenize(texts)

    def id_to_token(self, ids: tf.Tensor) -> tf.Tensor:
        ids = tf.cast(ids, tf.int32)
        valid = (ids >= 0) & (ids < self.vocab_size)
        return tf.gather(self._tokens, tf.where(valid, ids, self.special.unk_id))


class SentencePieceTokenizer(Tokenizer):
    """SentencePiece with `tensorflow_text.SentencepieceTokenizer` (see the module docstring)."""

    def __init__(self, model_path: str, *, name: str | None = None):
        super().__init__(name=name)
        fix = ("train it with the sentencepiece package, e.g. spm_train --pad_id=0 --unk_id=1 "
               "--bos_id=-1 --eos_id=-1 --control_symbols=[CLS],[SEP],[MASK]")
        if not model_path:
            raise VocabError(f"data.tokenizer is 'sentencepiece' but no model is given: set "
                             f"data.sentencepiece_model; {fix}")
        model = _read_bytes(model_path, "SentencePiece model", fix)
        if not model:
            raise VocabError(f"SentencePiece model {model_path} is empty; {fix}")
        try:
            self._sp = tf_text.SentencepieceTokenizer(model=model, out_type=tf.int32)
            self.vocab_size = int(self._sp.vocab_size())
            pieces = [p.decode("utf-8") for p in
                      self._sp.id_to_string(tf.range(self.vocab_size)).numpy()]
        except (tf.errors.OpError, ValueError) as e:
            raise VocabError(f"{model_path} is not a valid SentencePiece model "
                             f"({str(e).strip().splitlines()[0]}); {fix}") from None
        index: dict[str, int] = {}
        for i, piece in enumerate(pieces):
            index.setdefault(piece, i)
        fallbacks = {"[PAD]": "<pad>", "[UNK]": "<unk>"}
        ids, missing = [], []
        for token in SPECIAL_TOKENS:
            found = index.get(token, index.get(fallbacks.get(token, token)))
            if found is None:
                missing.append(token)
            ids.append(found)
        if missing:
            raise VocabError(f"SentencePiece model {model_path} has no piece for "
                             f"{' '.join(missing)} ([PAD]/[UNK] may also be its own <pad>/<unk>); "
                             f"{fix}")
        self.special = SpecialTokens(*ids)
        self.vocab_path = model_path

    def tokenize(self, texts: tf.Tensor) -> tf.RaggedTensor:
        return self._sp.tokenize(tf.convert_to_tensor(texts, tf.string))

    def id_to_token(self, ids: tf.Tensor) -> tf.Tensor:
        ids = tf.cast(ids, tf.int32)
        valid = (ids >= 0) & (ids < self.vocab_size)
        return self._sp.id_to_string(tf.where(valid, ids, self.special.unk_id))


def load_tokenizer(data: DataConfig, vocab_path: str | None = None) -> Tokenizer:
    """The configured tokenizer; `vocab_path` overrides data.vocab_file / sentencepiece_model.

    data.tokenizer was checked by DataConfig.validate; the files are checked here."""
    if data.tokenizer == "sentencepiece":
        return SentencePieceTokenizer(vocab_path or data.sentencepiece_model or "")
    return WordPieceTokenizer(vocab_path or data.vocab_file or "",
                              lower_case=data.lower_case, strip_accents=data.strip_accents)
