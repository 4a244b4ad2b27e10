"""WordPiece and SentencePiece tokenizers: ids, normalization, vocab validation, SavedModel."""

import io
import random

import numpy as np
import pytest
import tensorflow as tf

from electra_tf.config import DataConfig
from electra_tf.data import (
    DataError,
    SentencePieceTokenizer,
    VocabError,
    WordPieceTokenizer,
    load_tokenizer,
)

# Specials deliberately not at 0-4 (Google's vocab has [UNK] 100, [CLS] 101, ...).
VOCAB = (["[PAD]", "hello", "world", "wörld", "Hello", ",", "!", "[UNK]", "[CLS]", "[SEP]",
          "[MASK]", "##world", "un", "##know"] + list("abcdefghijklmnopqrstuvwxyz")
         + ["##" + c for c in "abcdefghijklmnopqrstuvwxyz"])


def write(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def vocab_file(tmp_path_factory):
    return write(tmp_path_factory.mktemp("vocab") / "vocab.txt", VOCAB)


def tokens(tokenizer, text):
    return [t.decode() for t in tokenizer.id_to_token(tokenizer.tokenize([text])[0]).numpy()]


def test_wordpiece_ids_specials_and_normalization(vocab_file):
    tok = WordPieceTokenizer(vocab_file)
    assert tok.vocab_size == len(VOCAB) and tok.vocab_path == vocab_file
    assert (tok.special.pad_id, tok.special.unk_id, tok.special.cls_id, tok.special.sep_id,
            tok.special.mask_id) == (0, 7, 8, 9, 10)
    ids = tok.tokenize(tf.constant(["Hello, Wörld!", "helloworld unknown", ""]))
    assert isinstance(ids, tf.RaggedTensor) and ids.dtype == tf.int32
    assert ids.shape.rank == 2 and ids.row_lengths().numpy().tolist() == [4, 5, 0]
    assert tokens(tok, "Hello, Wörld!") == ["hello", ",", "world", "!"]
    assert tokens(tok, "helloworld unknown") == ["hello", "##world", "un", "##know", "##n"]
    # Lower-case only: accents stay; neither: case stays too.
    assert tokens(WordPieceTokenizer(vocab_file, strip_accents=False),
                  "Hello Wörld") == ["hello", "wörld"]
    assert tokens(WordPieceTokenizer(vocab_file, lower_case=False, strip_accents=False),
                  "Hello hello wörld Wörld") == ["Hello", "hello", "wörld", "[UNK]"]
    assert tokens(WordPieceTokenizer(vocab_file, lower_case=False), "Wörld") == ["[UNK]"]
    # Controls and NUL are dropped, invalid UTF-8 does not crash.
    assert tokens(tok, "hello\x00world") == ["hello", "world"]
    assert tok.tokenize(tf.constant([b"hello \xff\xfe world"])).shape[0] == 1


def test_id_to_token_and_graph_use(vocab_file):
    tok = WordPieceTokenizer(vocab_file)
    assert tok.id_to_token(tf.constant([[1, 2], [len(VOCAB) + 5, -1]])).numpy().tolist() == [
        [b"hello", b"world"], [b"[UNK]", b"[UNK]"]]

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def fn(texts):
        return tok.tokenize(texts).to_tensor()

    assert fn(tf.constant(["hello world", "world"])).numpy().tolist() == [[1, 2], [2, 0]]


class Serving(tf.Module):
    """A minimal serving module around a tokenizer, to check it survives a SavedModel."""

    def __init__(self, tokenizer):
        super().__init__()
        self.tokenizer = tokenizer

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def __call__(self, texts):
        ids = self.tokenizer.tokenize(texts)
        return {"ids": ids.to_tensor(), "tokens": self.tokenizer.id_to_token(ids).to_tensor()}


def test_savedmodel(tmp_path, vocab_file):
    tf.saved_model.save(Serving(WordPieceTokenizer(vocab_file)), str(tmp_path / "wp"))
    loaded = tf.saved_model.load(str(tmp_path / "wp"))
    out = loaded(tf.constant(["Hello world!"]))
    assert out["ids"].numpy().tolist() == [[1, 2, 6]]
    assert out["tokens"].numpy().tolist() == [[b"hello", b"world", b"!"]]


@pytest.mark.parametrize("lines, match", [
    (None, "does not exist"),
    ([], "is empty"),
    (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "a"],
     r"duplicate.*'a' \(lines 6 and 8"),
    (["[PAD]", "[UNK]", "[CLS]", "a"], r"lacks the special token\(s\) \[SEP\] \[MASK\]"),
    (["[PAD]", "", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], "empty lines"),
])
def test_bad_vocabularies(tmp_path, lines, match):
    path = tmp_path / "vocab.txt"
    if lines is not None:
        write(path, lines) if lines else path.write_text("")
    with pytest.raises(VocabError, match=match) as error:
        load_tokenizer(DataConfig(vocab_file=str(path)))
    assert str(path) in str(error.value)
    assert isinstance(error.value, DataError) and isinstance(error.value, ValueError)
    assert "build-vocab" in str(error.value) or "duplicate" in match or "empty lines" in match


def test_no_vocab_configured():
    with pytest.raises(VocabError, match="data.vocab_file"):
        load_tokenizer(DataConfig())


# ----------------------------------------------------------------------------------------------
# SentencePiece
# ----------------------------------------------------------------------------------------------

WORDS = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike".split()


def train_sentencepiece(path, **flags):
    import sentencepiece as spm  # the test extra installs it
    rng = random.Random(0)
    sentences = [" ".join(rng.choice(WORDS) for _ in range(8)) for _ in range(500)]
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(sentences), model_writer=model,
                                   vocab_size=40, hard_vocab_limit=False, num_threads=1,
                                   minloglevel=2, **flags)
    path.write_bytes(model.getvalue())
    return str(path)


@pytest.fixture(scope="module")
def sp_model(tmp_path_factory):
    return train_sentencepiece(tmp_path_factory.mktemp("sp") / "sp.model",
                               control_symbols=["[CLS]", "[SEP]", "[MASK]"], pad_id=0, unk_id=1,
                               bos_id=-1, eos_id=-1)


def test_sentencepiece(sp_model, tmp_path):
    data = DataConfig(tokenizer="sentencepiece", sentencepiece_model=sp_model)
    tok = load_tokenizer(data)
    assert isinstance(tok, SentencePieceTokenizer) and tok.vocab_path == sp_model
    assert (tok.special.pad_id, tok.special.unk_id) == (0, 1)         # its own <pad>/<unk>
    assert {tok.special.cls_id, tok.special.sep_id, tok.special.mask_id} == {2, 3, 4}
    ids = tok.tokenize(tf.constant(["alpha bravo", "kilo lima mike"]))
    assert ids.dtype == tf.int32 and ids.shape.rank == 2
    text = b"".join(tok.id_to_token(ids[0]).numpy()).decode().replace("\u2581", " ").strip()
    assert text == "alpha bravo"
    assert tok.id_to_token(tf.constant([tok.special.cls_id, 10_000])).numpy().tolist() == [
        b"[CLS]", b"<unk>"]
    # Control symbols are never produced from text.
    assert tok.special.mask_id not in tok.tokenize(["[MASK] alpha"]).flat_values.numpy()

    tf.saved_model.save(Serving(tok), str(tmp_path / "sp"))
    loaded = tf.saved_model.load(str(tmp_path / "sp"))
    np.testing.assert_array_equal(loaded(tf.constant(["alpha bravo"]))["ids"].numpy(),
                                  ids[:1].to_tensor().numpy())


def test_sentencepiece_errors(tmp_path):
    plain = train_sentencepiece(tmp_path / "plain.model")           # no [CLS]/[SEP]/[MASK]
    with pytest.raises(VocabError, match=r"no piece for \[PAD\] \[CLS\] \[SEP\] \[MASK\]"):
        SentencePieceTokenizer(plain)
    garbage = tmp_path / "garbage.model"
    garbage.write_bytes(b"not a model")
    with pytest.raises(VocabError, match="not a valid SentencePiece model"):
        SentencePieceTokenizer(str(garbage))
    with pytest.raises(VocabError, match="does not exist"):
        SentencePieceTokenizer(str(tmp_path / "missing.model"))
