"""The WordPiece vocabulary builder."""

import gzip
import random

import pytest
import tensorflow as tf

from electra_tf.config import DataConfig
from electra_tf.data import SPECIAL_TOKENS, DataError, WordPieceTokenizer, build_vocab, vocab
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


def test_gzip_corpus(tmp_path):
    plain = write_corpus(tmp_path / "corpus.txt")
    (tmp_path / "corpus.txt.gz").write_bytes(gzip.compress(open(plain, "rb").read()))
    data = DataConfig(source="text", paths=[str(tmp_path / "corpus.txt.gz")], eval_documents=0)
    tokens = read_vocab(build_vocab(data, str(tmp_path / "vocab.txt"), 80))
    assert "walk" in tokens and "##s" in tokens


def test_bad_arguments_fail_before_reading_the_corpus(tmp_path, monkeypatch):
    def no_counting(*args, **kwargs):
        raise AssertionError("the corpus was read")

    monkeypatch.setattr(vocab, "count_words", no_counting)
    with pytest.raises(DataError, match=r"it is a directory; give a file path such as .*vocab"):
        build_vocab(DataConfig(), str(tmp_path), 100)
    with pytest.raises(DataError, match="vocab_size must be above 5, got 3"):
        build_vocab(DataConfig(), str(tmp_path / "vocab.txt"), 3)
    assert not list(tmp_path.parent.glob(f"{tmp_path.name}*.tmp"))


def test_failed_write_leaves_no_tmp_file(tmp_path, monkeypatch):
    corpus = write_corpus(tmp_path / "corpus.txt", sentences=50)
    data = DataConfig(source="text", paths=[corpus], eval_documents=0)

    def failing_rename(*args, **kwargs):
        raise tf.errors.PermissionDeniedError(None, None, "permission denied")

    monkeypatch.setattr(tf.io.gfile, "rename", failing_rename)
    with pytest.raises(DataError, match="cannot write the vocabulary to .*permission denied"):
        build_vocab(data, str(tmp_path / "vocab.txt"), 40)
    assert not list(tmp_path.glob("*.tmp")) and not (tmp_path / "vocab.txt").exists()
