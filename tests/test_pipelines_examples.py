"""pipelines.prepare_pretraining_data: Beam's examples are the in-graph packer's, metadata,
and bad input."""

import gzip
import json
import os
import random

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from electra_tf.config import load_config
from electra_tf.data import DataError
from electra_tf.data.packing import document_seeds, pack_document, pack_documents
from electra_tf.data.pipeline import tokenize_documents
from electra_tf.data.sources import file_documents
from electra_tf.data.tokenization import load_tokenizer
from electra_tf.data.vocab import build_vocab
from pipelines.prepare_pretraining_data import main, prepare

SEQ = 32
WORDS = ("the cat dog sat on mat Café naïve über résumé quick brown fox jumps over lazy "
         "river mountain Zürich garden of stone and light rain falls softly").split()


def _sentence(rng, n=None):
    words = [rng.choice(WORDS) for _ in range(n or rng.randint(3, 14))]
    return " ".join(words).capitalize() + rng.choice([".", "!", "?", ", indeed."])


def write_corpus(directory, seed=0, files=2, docs=12):
    """Sentence-per-line files (blank line between documents), one very long sentence."""
    rng = random.Random(seed)
    paths = []
    for f in range(files):
        documents = []
        for d in range(docs):
            sentences = [_sentence(rng) for _ in range(rng.randint(1, 7))]
            if f == 0 and d == 3:
                sentences.append(_sentence(rng, 80))       # longer than SEQ - 3 tokens: cut
            documents.append("\n".join(sentences))
        path = directory / f"part-{f}.txt"
        path.write_text("\n\n".join(documents) + "\n", encoding="utf-8")
        paths.append(str(path))
    return paths


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    directory = tmp_path_factory.mktemp("corpus")
    files = write_corpus(directory)
    vocab = str(directory / "vocab.txt")
    data = load_config(None, [f"data.paths=[{','.join(files)}]", "data.source=text",
                              "data.eval_documents=0"]).data
    build_vocab(data, vocab, 150)
    return {"dir": directory, "files": files, "vocab": vocab}


def settings(corpus, *extra):
    sets = ["data.source=text", f"data.paths=[{','.join(corpus['files'])}]",
            f"data.vocab_file={corpus['vocab']}", f"data.seq_length={SEQ}",
            "data.eval_documents=0", *extra]
    return [arg for s in sets for arg in ("--set", s)]


def run_job(corpus, output, *extra_sets, args=()):
    return prepare(["--output", str(output), "--num_shards", "2", *args,
                    *settings(corpus, *extra_sets)])


def read_shards(output):
    """All examples of a prepared directory as sorted (input_ids, input_mask, segment_ids)."""
    metadata = json.loads((output / "metadata.json").read_text())
    spec = {k: tf.io.FixedLenFeature([SEQ], tf.int64)
            for k in ("input_ids", "input_mask", "segment_ids")}
    rows = []
    for shard in metadata["shards"]:
        for record in tf.data.TFRecordDataset(str(output / shard), "GZIP"):
            ex = tf.io.parse_single_example(record, spec)
            rows.append(tuple(tuple(ex[k].numpy().tolist())
                              for k in ("input_ids", "input_mask", "segment_ids")))
    return sorted(rows)


def in_graph(files, vocab, layout="sentence_per_line", seed=0, **data_sets):
    """The trainer's reader, tokenizer and packer, per document with its own seed."""
    sets = [f"data.vocab_file={vocab}", f"data.seq_length={SEQ}", f"data.layout={layout}",
            *(f"data.{k}={v}" for k, v in data_sets.items())]
    data = load_config(None, sets).data
    tokenizer = load_tokenizer(data)
    rows, documents, cut = [], 0, 0
    for name in files:
        docs = next(iter(file_documents(name, data).ragged_batch(10_000)))
        ids = tokenize_documents(tokenizer, docs)
        cut += int(tf.reduce_sum(tf.cast(ids.values.row_lengths() > SEQ - 3, tf.int32)))
        seeds = document_seeds([f"{name}#{i}" for i in range(ids.nrows())], seed)
        documents += int(ids.nrows())
        for i in range(int(ids.nrows())):
            if tf.size(ids[i].flat_values) == 0:
                continue
            out = pack_documents(ids[i:i + 1], seeds[i], seq_length=SEQ,
                                 special=tokenizer.special, short_seq_prob=data.short_seq_prob,
                                 single_segment_prob=data.single_segment_prob)
            arrays = [out[k].numpy() for k in ("input_ids", "input_mask", "segment_ids")]
            rows += [tuple(tuple(a[r].tolist()) for a in arrays) for r in range(len(arrays[0]))]
    return sorted(rows), documents, cut


@pytest.fixture(scope="module")
def prepared(corpus):
    output = corpus["dir"] / "prepared"
    metadata = run_job(corpus, output)
    return output, metadata


def test_beam_examples_are_the_in_graph_packers(corpus, prepared):
    output, metadata = prepared
    expected, documents, cut = in_graph(corpus["files"], corpus["vocab"])
    got = read_shards(output)
    assert len(got) > 2 * documents // 2 and got == expected
    counts = metadata["counts"]
    assert counts["documents"] == documents == 24 and counts["examples"] == len(expected)
    assert counts["cut_lines"] == cut >= 1
    assert counts["example_tokens"] == sum(sum(mask) for _, mask, _ in expected)
    # Both segments and single-segment examples occur, within the sequence length.
    assert any(1 in segments for *_, segments in got)


def test_metadata_is_written_last_and_describes_the_shards(corpus, prepared):
    output, metadata = prepared
    on_disk = json.loads((output / "metadata.json").read_text())
    assert on_disk == metadata
    assert metadata["shards"] == ["examples-00000-of-00002.tfrecord.gz",
                                  "examples-00001-of-00002.tfrecord.gz"]
    assert sorted(os.listdir(output)) == sorted(metadata["shards"] + ["metadata.json"])
    assert metadata["seq_length"] == SEQ and metadata["inputs"] == corpus["files"]
    assert metadata["tokenizer"] == {"kind": "wordpiece", "lower_case": True,
                                     "strip_accents": True}
    import hashlib
    with open(corpus["vocab"], "rb") as f:
        assert metadata["vocab_sha256"] == hashlib.sha256(f.read()).hexdigest()
    with gzip.open(output / metadata["shards"][0]) as f:   # real gzip files
        assert f.read(1)


def test_document_per_line_on_two_workers_gives_the_same_examples(corpus, tmp_path):
    lines = tmp_path / "docs.txt"
    rng = random.Random(5)
    lines.write_text("\n".join(" ".join(_sentence(rng) for _ in range(rng.randint(1, 6)))
                               for _ in range(20)) + "\n")
    other = tmp_path / "docs2.txt"
    other.write_text("\n".join(_sentence(rng) for _ in range(10)) + "\n")
    files = [str(lines), str(other)]
    output = tmp_path / "out"
    prepare(["--output", str(output), "--num_shards", "3", "--seed", "7",
             "--direct_num_workers", "2", "--direct_running_mode", "multi_threading",
             "--set", "data.source=text", "--set", f"data.paths=[{tmp_path}/docs*.txt]",
             "--set", "data.layout=document_per_line",
             "--set", f"data.vocab_file={corpus['vocab']}",
             "--set", f"data.seq_length={SEQ}", "--set", "data.single_segment_prob=0.3"])
    expected, documents, _ = in_graph(files, corpus["vocab"], "document_per_line", seed=7,
                                      single_segment_prob=0.3)
    assert read_shards(output) == expected and documents == 30


def test_the_bundle_based_direct_runner_writes_the_same_examples(corpus, prepared, tmp_path):
    output, metadata = prepared
    again = run_job(corpus, tmp_path / "out", args=["--runner", "bundle"])
    assert read_shards(tmp_path / "out") == read_shards(output)
    assert again["counts"] == metadata["counts"]


def test_pack_document_is_pack_documents_on_one_document_and_seeds_are_stable():
    doc = tf.ragged.constant([[[5, 6, 7], [8, 9, 10, 11, 12]], [[13, 14]]], tf.int32)
    from electra_tf.data.masking import SpecialTokens
    special = SpecialTokens(pad_id=0, unk_id=1, cls_id=2, sep_id=3, mask_id=4)
    seeds = document_seeds(["a#0", "a#1", "b#0"], 3)
    assert seeds.shape == (3, 2) and len({tuple(s) for s in seeds.numpy().tolist()}) == 3
    np.testing.assert_array_equal(seeds, document_seeds(["a#0", "a#1", "b#0"], 3))
    assert not np.array_equal(seeds, document_seeds(["a#0", "a#1", "b#0"], 4))
    one = pack_document(doc[0], seeds[0], seq_length=8, special=special)
    batch = pack_documents(doc[:1], seeds[0], seq_length=8, special=special)
    for key in one:
        np.testing.assert_array_equal(one[key], batch[key])


# ---------------------------------------------------------------------------------------------
# Bad input: one clear error naming the file, and never a metadata.json for a failed job.

def test_a_missing_file_is_named(corpus, tmp_path):
    with pytest.raises(DataError, match="nope.txt.*does not exist"):
        run_job(corpus, tmp_path / "out", f"data.paths=[{tmp_path}/nope.txt]")


def test_invalid_utf8_names_the_file_and_line_and_can_be_replaced(corpus, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"A good line.\nAnother one.\n\nCaf\xe9 au lait is bad here.\n")
    output = tmp_path / "out"
    with pytest.raises(DataError, match=r"bad.txt: line 4 is not valid UTF-8"):
        run_job(corpus, output, f"data.paths=[{bad}]")
    assert not (output / "metadata.json").exists()
    metadata = run_job(corpus, output, f"data.paths=[{bad}]",
                       args=["--invalid_utf8", "replace"])
    assert metadata["counts"]["documents"] == 2


def test_a_corrupt_gzip_file_is_named(corpus, tmp_path):
    bad = tmp_path / "corpus.txt.gz"
    bad.write_bytes(b"this is not gzip data\n" * 10)
    with pytest.raises(DataError, match="cannot read .*corpus.txt.gz"):
        run_job(corpus, tmp_path / "out", f"data.paths=[{bad}]")


def test_an_empty_corpus_is_refused_and_leaves_no_metadata(corpus, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(DataError, match="the corpus is empty"):
        run_job(corpus, tmp_path / "out", f"data.paths=[{empty}]")
    blank = tmp_path / "blank.txt"
    blank.write_text("\n   \n\n")
    output = tmp_path / "out2"
    with pytest.raises(DataError, match="gave no example"):
        run_job(corpus, output, f"data.paths=[{blank}]")
    assert not (output / "metadata.json").exists()


def test_an_unwritable_output_is_named(corpus, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(DataError, match=f"cannot write to the output {blocker}/out"):
        run_job(corpus, blocker / "out")


def test_a_failed_rerun_removes_the_earlier_metadata(corpus, tmp_path):
    output = tmp_path / "out"
    run_job(corpus, output)
    assert (output / "metadata.json").exists()
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe broken\n")
    with pytest.raises(DataError, match="bad.txt"):
        run_job(corpus, output, f"data.paths=[{bad}]")
    assert not (output / "metadata.json").exists()
    assert not list(output.glob("examples-*"))


def test_the_command_prints_one_line_errors(corpus, tmp_path, capsys):
    code = main(["--output", str(tmp_path / "out"),
                 *settings(corpus, f"data.paths=[{tmp_path}/missing/*.txt]")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1
    assert err[0].startswith("prepare_pretraining_data: error: ") and "missing" in err[0]


# ---------------------------------------------------------------------------------------------
# A TensorFlow Datasets split as the corpus (a tiny builder prepared here, offline).

class PipelinesTinyCorpus(tfds.core.GeneratorBasedBuilder):
    """15 documents of a few sentences (one of only whitespace), as a TFDS text feature."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(
            {"text": tfds.features.Text()}))

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        rng = random.Random(11)
        for i in range(15):
            text = " ".join(_sentence(rng) for _ in range(rng.randint(1, 6)))
            yield i, {"text": text if i != 4 else "  \n "}


def _tiny_tfds(data_dir):
    builder = PipelinesTinyCorpus(data_dir=str(data_dir))
    builder.download_and_prepare()
    return builder


def test_a_tfds_split_gives_the_in_graph_packers_examples(corpus, tmp_path, monkeypatch):
    import pipelines.documents

    builder = _tiny_tfds(tmp_path / "tfds")
    monkeypatch.setattr(pipelines.documents, "TFDS_CHUNK", 4)     # several work items
    output = tmp_path / "out"
    sets = ["data.source=tfds", f"data.tfds_name={builder.name}",
            f"data.tfds_data_dir={tmp_path / 'tfds'}", f"data.vocab_file={corpus['vocab']}",
            f"data.seq_length={SEQ}", "data.eval_documents=0"]
    metadata = prepare(["--output", str(output), "--num_shards", "2",
                        *[a for s in sets for a in ("--set", s)]])
    # The trainer's TFDS reader, then the in-graph tokenizer and packer per document.
    from electra_tf.data.sources import open_documents
    data = load_config(None, sets).data
    tokenizer = load_tokenizer(data)
    docs = next(iter(open_documents(data).dataset.ragged_batch(100)))
    ids = tokenize_documents(tokenizer, docs)
    stored = [t.numpy() for t in builder.as_dataset(split="train", shuffle_files=False)
              .map(lambda example: example["text"])]    # the order TFDS stored them in
    names = [f"tfds:{builder.name}/train#{i}" for i, text in enumerate(stored) if text.strip()]
    assert len(names) == 14 == int(ids.nrows())
    seeds = document_seeds(names, 0)
    expected = []
    for i in range(int(ids.nrows())):
        out = pack_documents(ids[i:i + 1], seeds[i], seq_length=SEQ, special=tokenizer.special)
        arrays = [out[k].numpy() for k in ("input_ids", "input_mask", "segment_ids")]
        expected += [tuple(tuple(a[r].tolist()) for a in arrays) for r in range(len(arrays[0]))]
    assert read_shards(output) == sorted(expected)
    assert metadata["counts"]["documents"] == 14 and metadata["inputs"] == [
        f"tfds:{builder.name}/train"]


def test_an_unprepared_tfds_dataset_is_named(corpus, tmp_path):
    builder = _tiny_tfds(tmp_path / "tfds")
    with pytest.raises(DataError, match="no prepared split 'validation'"):
        run_job(corpus, tmp_path / "out", "data.source=tfds", f"data.tfds_name={builder.name}",
                f"data.tfds_data_dir={tmp_path / 'tfds'}", "data.tfds_split=validation")
