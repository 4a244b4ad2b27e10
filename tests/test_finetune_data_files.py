"""read_examples from local files: CSV, TSV, JSON lines and CoNLL column files."""

import json

import numpy as np
import pytest

from electra_tf.data import DataError
from electra_tf.finetune.data_config import FinetuneDataConfig
from electra_tf.finetune.sources import read_examples


def _rows(dataset):
    return [{k: (v.decode() if isinstance(v, bytes) else
                 [x.decode() for x in v] if isinstance(v, np.ndarray) and v.dtype == object
                 else v.item() if hasattr(v, "item") else v)
             for k, v in example.items()} for example in dataset.as_numpy_iterator()]


def test_csv_pairs_with_quotes_and_example_ids(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text('id,first,second,gold\n1,"a, quoted",b,yes\n2,c,"d ""e""",no\n\n')
    data = FinetuneDataConfig(source="csv", train_path=str(path), text_field="first",
                              text_pair_field="second", label_field="gold")
    rows = _rows(read_examples(data, "train", "classification"))
    assert rows == [
        {"text_a": "a, quoted", "text_b": "b", "label": "yes", "example_id": 0},
        {"text_a": "c", "text_b": 'd "e"', "label": "no", "example_id": 1}]


def test_tsv_without_quoting_regression_and_glob(tmp_path):
    (tmp_path / "a.tsv").write_text('s1\ts2\tscore\n"open quote\tx\t1.5\n')
    (tmp_path / "b.tsv").write_text("s1\ts2\tscore\ny\tz\t4\n")
    data = FinetuneDataConfig(source="tsv", train_path=str(tmp_path / "*.tsv"), text_field="s1",
                              text_pair_field="s2", label_field="score")
    dataset = read_examples(data, "train", "regression")
    rows = _rows(dataset)
    assert [r["text_a"] for r in rows] == ['"open quote', "y"]
    assert [r["label"] for r in rows] == [1.5, 4.0]
    assert dataset.element_spec["label"].dtype.name == "float32"


def test_headerless_csv_uses_column_numbers_and_max_examples(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("".join(f"text {i},{i % 2}\n" for i in range(10)))
    data = FinetuneDataConfig(source="csv", train_path=str(path), header=False,
                              text_field="0", label_field="1", max_examples=3)
    rows = _rows(read_examples(data, "train", "classification"))
    assert [(r["text_a"], r["label"]) for r in rows] == [("text 0", "0"), ("text 1", "1"),
                                                         ("text 2", "0")]


def test_jsonl_classification_and_tagging(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps({"text": "hi", "label": 1}) + "\n\n" +
                    json.dumps({"text": "yo", "label": True}) + "\n")
    data = FinetuneDataConfig(source="jsonl", train_path=str(path))
    assert [r["label"] for r in _rows(read_examples(data, "train", "classification"))] == [
        "1", "true"]
    tagged = tmp_path / "tags.jsonl"
    tagged.write_text(json.dumps({"words": ["New", "York"], "tags": ["B-LOC", "I-LOC"]}) + "\n")
    rows = _rows(read_examples(FinetuneDataConfig(source="jsonl", train_path=str(tagged)),
                               "train", "tagging"))
    assert rows == [{"words": ["New", "York"], "tags": ["B-LOC", "I-LOC"], "example_id": 0}]
    tagged.write_text(json.dumps({"words": ["a", "b"], "tags": ["O"]}) + "\n")
    with pytest.raises(DataError, match=r"tags.jsonl:1: 2 words but 1 tags"):
        read_examples(FinetuneDataConfig(source="jsonl", train_path=str(tagged)), "train",
                      "tagging")


CONLL = """-DOCSTART- -X- -X- O

EU NNP B-NP B-ORG
rejects VBZ B-VP O

German JJ B-NP B-MISC


-DOCSTART- -X- -X- O
Peter NNP B-NP B-PER
"""


def test_conll_docstart_blank_lines_and_columns(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text(CONLL)
    data = FinetuneDataConfig(source="conll", train_path=str(path))
    rows = _rows(read_examples(data, "train", "tagging"))
    assert rows == [
        {"words": ["EU", "rejects"], "tags": ["B-ORG", "O"], "example_id": 0},
        {"words": ["German"], "tags": ["B-MISC"], "example_id": 1},
        {"words": ["Peter"], "tags": ["B-PER"], "example_id": 2}]
    chunks = FinetuneDataConfig(source="conll", train_path=str(path), tag_column=2)
    assert _rows(read_examples(chunks, "train", "tagging"))[0]["tags"] == ["B-NP", "B-VP"]


def test_conll_word_without_tag_names_file_and_line(tmp_path):
    path = tmp_path / "bad.conll"
    path.write_text("a O\nb O\n\nc O\nd\ne O\n")
    data = FinetuneDataConfig(source="conll", train_path=str(path))
    with pytest.raises(DataError, match=r"bad.conll:5: .*sentence starting at line 4"):
        read_examples(data, "train", "tagging")
    data = FinetuneDataConfig(source="conll", train_path=str(path), word_column=0,
                              tag_column=3)
    with pytest.raises(DataError, match=r"bad.conll:1: 2 column"):
        read_examples(data, "train", "tagging")


@pytest.mark.parametrize("content, kind, message", [
    ("text,label\n", "classification", "has no examples"),
    ("words,label\nx,1\n", "classification", r"no column 'text' \(data.text_field\); its "
                                              r"columns are \['words', 'label'\]"),
    ("text,label\nx\n", "classification", r"t.csv:2: 1 column\(s\)"),
    ("text,label\nx,\n", "classification", "t.csv:2: the label is empty"),
    ("text,label\nx,abc\n", "regression", "t.csv:2: the regression target 'abc'"),
])
def test_bad_files(tmp_path, content, kind, message):
    path = tmp_path / "t.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        read_examples(FinetuneDataConfig(source="csv", train_path=str(path)), "train", kind)


def test_missing_split_file_and_bad_json(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"text": "a", "label": "x"}\n{oops\n')
    data = FinetuneDataConfig(source="jsonl", train_path=str(path))
    with pytest.raises(DataError, match="t.jsonl:2: not valid JSON"):
        read_examples(data, "train", "classification")
    with pytest.raises(DataError, match="data.validation_path is not set"):
        read_examples(data, "validation", "classification")
    missing = FinetuneDataConfig(source="jsonl", train_path=str(tmp_path / "nope.jsonl"))
    with pytest.raises(DataError, match="does not exist"):
        read_examples(missing, "train", "classification")
