"""The WordPiece vocabulary builder."""

import random

import pytest

from electra_tf.config import DataConfig
from electra_tf.data import SPECIAL_TOKENS, DataError, WordPieceTokenizer, build_vocab
from electra_tf.data.tokenization import read_vocab

STEMS = ["walk", "talk", "play", "jump", "read", "paint", "build", "cook", "clean", "open"]
ENDINGS = ["", "s", "ed", "ing", "er", "ers"]


def write_corpus(path, sentences=3000, seed=0):
    rng = random.Random(seed)
    lines = []
    for i in range(sentences):
        words = [rng.choice(STEMS) + rng.choice(ENDINGS) for _ in range(rng.randint(4, 12))]
        lines.append(" ".join(words).capitalize() + ".")
        if i % 10 == 9:
            lines.append("")
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_build_small_vocab(tmp_path, caplog):
    corpus = write_corpus(tmp_path / "corpus.txt")
    data = DataConfig(source="text", paths=[corpus], eval_documents=0)
    out = tmp_path / "new" / "dir" / "vocab.txt"
    with caplog.at_level("INFO", logger="electra_tf.data.vocab"):
        assert build_vocab(data, str(out), 80) == str(out)
    assert any("frequency threshold" in r.message for r in caplog.records)
    vocab = read_vocab(str(out))                       # unique, specials present
    assert len(vocab) == 80 and vocab[:5] == list(SPECIAL_TOKENS)
    assert not list(out.parent.glob("*.tmp"))          # written atomically
    assert "." in vocab and "##s" in vocab and "walk" in vocab
    tokenizer = WordPieceTokenizer(str(out))
    ids = tokenizer.tokenize(["Walking talkers cleaned."]).flat_values.numpy()
    assert tokenizer.special.unk_id not in ids and len(ids) <= 8


def test_vocab_padded_when_the_corpus_is_too_small(tmp_path):
    corpus = tmp_path / "tiny.txt"
    corpus.write_text("ab ba ab.\n")
    data = DataConfig(source="text", paths=[str(corpus)], eval_documents=0)
    vocab = read_vocab(build_vocab(data, str(tmp_path / "vocab.txt"), 40))
    assert len(vocab) == 40 and vocab[-1].startswith("[unused")
    assert {"a", "b", ".", "##a", "##b"} <= set(vocab)


def test_default_corpus_vocab_sample(tmp_path):
    out = build_vocab(DataConfig(), str(tmp_path / "vocab.txt"), 600, max_words=20_000)
    vocab = read_vocab(out)
    assert len(vocab) == 600 and vocab[:5] == list(SPECIAL_TOKENS)
    assert {"the", "of", "a", "##s"} <= set(vocab)


def test_empty_corpus(tmp_path):
    corpus = tmp_path / "blank.txt"
    corpus.write_text("\n\n   \n")
    data = DataConfig(source="text", paths=[str(corpus)], eval_documents=0)
    with pytest.raises(DataError, match="no words"):
        build_vocab(data, str(tmp_path / "vocab.txt"), 100)
