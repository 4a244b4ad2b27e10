"""Corpora that used to cost memory or pass silently: huge lines, wrong encodings, non-text."""

import logging
import os
import random
import subprocess
import sys
import textwrap

import pytest
import tensorflow as tf

from electra_tf.config import ConfigError, DataConfig
from electra_tf.data import DataError, open_documents
from electra_tf.data.documents import cut_long_texts

WORDS = ["kabar", "loden", "mifix", "nugul", "pehom", "rojex", "sikip", "tulum"]
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def text_config(paths, **kwargs):
    kwargs.setdefault("eval_documents", 0)
    return DataConfig(source="text", paths=[str(p) for p in paths], deterministic=True, **kwargs)


def read_docs(data):
    dataset = open_documents(data, "train").dataset
    return [[s.decode("utf-8") for s in doc] for doc in dataset.as_numpy_iterator()]


# ----------------------------------------------------------------------------------------------
# Over-long lines and documents
# ----------------------------------------------------------------------------------------------


def test_cut_long_texts_keeps_all_text_in_bounded_pieces():
    rng = random.Random(0)
    words = ["jardín", "ka", "ünïcode", "€uro", "x" * 30]
    for _ in range(30):
        texts = [" ".join(rng.choice(words) for _ in range(rng.randint(0, 40)))
                 for _ in range(rng.randint(0, 6))]
        limit = rng.choice([8, 16, 100])
        pieces, source = cut_long_texts(tf.constant(texts, tf.string), limit)
        pieces = [p.decode("utf-8") for p in pieces.numpy()]
        assert source.numpy().tolist() == sorted(source.numpy().tolist())
        for i, text in enumerate(texts):
            got = [p for p, s in zip(pieces, source.numpy(), strict=True) if s == i]
            if len(text) <= limit:
                assert got == [text]
            else:
                assert "".join(got).replace(" ", "") == text.replace(" ", "")
                assert all(0 < len(p) <= limit + min(64, limit // 2) for p in got)
                assert len(got) > 1


@pytest.mark.parametrize("layout", ["sentence_per_line", "document_per_line"])
def test_a_huge_line_is_read_in_pieces(tmp_path, layout):
    line = " ".join(WORDS[i % 8] for i in range(20_000))         # 120 KB, no newline
    (tmp_path / "big.txt").write_text("short one\n\n" + line)
    data = text_config([tmp_path / "big.txt"], layout=layout, seq_length=16)
    docs = read_docs(data)
    assert docs[0] == ["short one"]
    pieces = [s for doc in docs[1:] for s in doc]
    assert " ".join(pieces).split() == line.split()                 # nothing lost, in order
    assert max(len(s) for s in pieces) <= data.max_piece_chars + 64
    longest_doc = max(len(" ".join(doc).encode()) for doc in docs)
    assert longest_doc <= data.max_document_bytes + data.max_piece_chars + 64


def test_a_document_of_many_lines_is_read_in_parts(tmp_path):
    lines = [f"{WORDS[i % 8]} {i}" for i in range(3000)]
    (tmp_path / "long.txt").write_text("\n".join(lines) + "\n\nlast doc\n")
    data = text_config([tmp_path / "long.txt"], seq_length=8)       # parts of 2 KB
    docs = read_docs(data)
    assert [s for doc in docs[:-1] for s in doc] == lines and docs[-1] == ["last doc"]
    assert len(docs) > 10
    assert max(len("".join(doc).encode()) for doc in docs) <= data.max_document_bytes + 64


_MEASURE = textwrap.dedent("""
    import os, resource, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    sys.path.insert(0, {repo!r})
    from electra_tf.config import RunConfig
    from electra_tf.data import WordPieceTokenizer, make_dataset
    cfg = RunConfig()
    cfg.model.vocab_size = 64
    cfg.data.source, cfg.data.paths, cfg.data.eval_documents = "text", [{corpus!r}], 0
    cfg.data.deterministic = True
    cfg.validate()
    tokenizer = WordPieceTokenizer({vocab!r})
    dataset = make_dataset(cfg, tokenizer, batch_size=32)
    for batch in dataset.take(20):
        assert batch["input_ids"].shape == (32, 128)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
""")


def _peak_rss_kb(tmp_path, corpus, vocab):
    script = _MEASURE.format(repo=REPO, corpus=str(corpus), vocab=str(vocab))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return int(done.stdout.strip().splitlines()[-1])


def test_memory_on_a_single_four_megabyte_line_stays_bounded(tmp_path):
    """Peak RSS of a few training batches (seq 128, batch 32, repeat) from a 4 MB corpus that
    is one line, against a normal corpus of the same size: within 2x (it used to grow to
    tens of GB: 256 copies of the whole line per tokenizer call)."""
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS) + "\n")
    rng = random.Random(0)
    words = [rng.choice(WORDS) for _ in range(4_000_000 // 6)]
    (tmp_path / "one_line.txt").write_text(" ".join(words))
    normal = []
    for start in range(0, len(words), 12):
        normal.append(" ".join(words[start:start + 12]))
        if start % 120 == 0:
            normal.append("")
    (tmp_path / "normal.txt").write_text("\n".join(normal))
    assert os.path.getsize(tmp_path / "one_line.txt") > 3_900_000
    one_line = _peak_rss_kb(tmp_path, tmp_path / "one_line.txt", vocab)
    reference = _peak_rss_kb(tmp_path, tmp_path / "normal.txt", vocab)
    print(f"peak RSS: one 4 MB line {one_line / 1024:.0f} MB, normal corpus "
          f"{reference / 1024:.0f} MB")
    assert one_line < 2 * reference


# ----------------------------------------------------------------------------------------------
# Encodings and non-text
# ----------------------------------------------------------------------------------------------

SPANISH = ("El jardín de la señora Muñoz está lleno de flores. Había una canción en el aire.\n"
           "La niña corrió hacia el árbol más alto del jardín.\n\n") * 50


def test_latin1_text_is_an_error_naming_the_file_and_the_fix(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes(SPANISH.encode("latin-1"))
    with pytest.raises(DataError) as error:
        read_docs(text_config([path]))
    message = str(error.value)
    assert str(path) in message and "data.encoding" in message and "convert" in message
    assert "not utf-8 text" in message and "\n" not in message


def test_the_configured_encoding_is_decoded_in_the_graph(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes(SPANISH.encode("latin-1"))
    docs = read_docs(text_config([path], encoding="latin-1"))
    assert docs[0][0].startswith("El jardín de la señora Muñoz")
    assert not any("\ufffd" in s for doc in docs for s in doc)


@pytest.mark.parametrize("encoding", ["utf-8", "latin-1"])
def test_random_bytes_are_not_text(tmp_path, encoding):
    path = tmp_path / "random.bin"
    path.write_bytes(random.Random(0).randbytes(200_000))
    with pytest.raises(DataError, match=r"random.bin does not look like text"):
        read_docs(text_config([path], encoding=encoding))


def test_a_few_decode_errors_are_counted_and_logged(tmp_path, caplog):
    path = tmp_path / "mostly.txt"
    path.write_bytes((SPANISH * 4).encode("utf-8") + b"ten bad \xff bytes\n" * 10)
    with caplog.at_level(logging.WARNING, logger="electra_tf.data.text_checks"):
        docs = read_docs(text_config([path]))
    assert docs[-1][-1] == "ten bad \ufffd bytes"
    assert "10 characters of the text files are not valid utf-8" in caplog.text
    tight = text_config([path], max_decode_error_fraction=0.0)
    with pytest.raises(DataError, match="max_decode_error_fraction=0.0"):
        read_docs(tight)


def test_latin1_after_megabytes_of_clean_text_is_found(tmp_path):
    # Corpora concatenated from several sources: the wrong encoding starts 6 MB in, beyond the
    # start that is sampled, so only the pieces spread through the file can find it.
    clean = "".join(f"{' '.join(random.Random(i).choices(WORDS, k=12))}.\n"
                    for i in range(64)).encode("utf-8")
    path = tmp_path / "concatenated.txt"
    path.write_bytes(clean * (6_000_000 // len(clean)) + SPANISH.encode("latin-1") * 800)
    with pytest.raises(DataError, match=r"concatenated.txt is not utf-8 text.*sampled"):
        open_documents(text_config([path]), "train")


def test_encoding_fields_are_validated():
    with pytest.raises(ConfigError, match="data.encoding 'klingon' is not a known"):
        DataConfig(encoding="klingon").validate()
    with pytest.raises(ConfigError, match="convert the files to UTF-8"):
        DataConfig(encoding="utf-16").validate()
    with pytest.raises(ConfigError, match="max_decode_error_fraction"):
        DataConfig(max_decode_error_fraction=1.5).validate()
