"""pipelines.build_vocab: word counts equal a plain count and build-vocab's; the same vocabulary."""

import collections
import re
import unicodedata

import pytest
from test_pipelines_examples import corpus, settings  # noqa: F401  (fixture)

from electra_tf.config import load_config
from electra_tf.data import DataError
from electra_tf.data.vocab import build_vocab, count_words
from pipelines.build_vocab import count_corpus
from pipelines.build_vocab import main as vocab_main


def plain_count(files, lower_case=True, strip_accents=True):
    """Python's own count: blank lines separate documents, lower-case, NFD without marks,
    words and single punctuation marks (the BERT basic tokenizer on this corpus's text)."""
    counts = collections.Counter()
    for name in files:
        with open(name, encoding="utf-8") as f:
            for line in f:
                text = line.strip()
                if lower_case:
                    text = text.lower()
                if strip_accents:
                    text = "".join(c for c in unicodedata.normalize("NFD", text)
                                   if unicodedata.category(c) != "Mn")
                counts.update(re.findall(r"\w+|[^\w\s]", text))
    return counts


@pytest.fixture(scope="module")
def beam_counts(corpus):  # noqa: F811
    out = corpus["dir"] / "beam-vocab" / "vocab.txt"
    counts, path, size = count_corpus(["--out", str(out), "--size", "150",
                                       *settings(corpus)])
    return counts, out


def test_word_counts_equal_a_plain_python_count(corpus, beam_counts):  # noqa: F811
    counts, out = beam_counts
    assert counts == plain_count(corpus["files"])
    assert counts["cafe"] > 0 and counts["zurich"] > 0 and "Café" not in counts
    # The counts are kept beside the vocabulary (word TAB count).
    assert list(out.parent.glob("vocab.txt.counts-*-of-*.tsv"))


def test_word_counts_equal_build_vocabs_and_follow_the_case_settings(corpus, tmp_path):  # noqa: F811
    data = load_config(None, [f"data.paths=[{','.join(corpus['files'])}]", "data.source=text",
                              "data.eval_documents=0", "data.lower_case=false",
                              "data.strip_accents=false"]).data
    expected = count_words(data, 10**9)
    counts, _, _ = count_corpus(["--out", str(tmp_path / "v.txt"),
                                 *settings(corpus, "data.lower_case=false",
                                           "data.strip_accents=false")])
    assert counts == expected == plain_count(corpus["files"], False, False)
    assert counts["Café"] > 0


def test_the_vocabulary_equals_build_vocabs(corpus, tmp_path):  # noqa: F811
    out = tmp_path / "vocab.txt"
    assert vocab_main(["--out", str(out), "--size", "150", *settings(corpus)]) == 0
    data = load_config(None, [f"data.paths=[{','.join(corpus['files'])}]", "data.source=text",
                              "data.eval_documents=0"]).data
    reference = build_vocab(data, str(tmp_path / "reference.txt"), 150)
    beam = out.read_text().splitlines()
    assert len(beam) == 150 and beam[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert beam == open(reference).read().splitlines()


def test_an_empty_corpus_has_no_vocabulary(corpus, tmp_path, capsys):  # noqa: F811
    blank = tmp_path / "blank.txt"
    blank.write_text("\n\n  \n")
    with pytest.raises(DataError, match="has no words"):
        count_corpus(["--out", str(tmp_path / "v.txt"), *settings(corpus, f"data.paths=[{blank}]")])
    code = vocab_main(["--out", str(tmp_path), *settings(corpus)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "is a directory" in err[0]
