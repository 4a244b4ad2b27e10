"""LabelSet: order, saved in the run directory, checked on resume and at evaluation."""

import json

import pytest
import tensorflow as tf

from electra_tf.config import ConfigError
from electra_tf.data import DataError
from electra_tf.finetune.labels import LABELS_FILE, LabelSet
from electra_tf.finetune.sources import examples_from_lists


def _classification(labels):
    return examples_from_lists({"text_a": ["x"] * len(labels), "text_b": [""] * len(labels),
                                "label": labels}, "classification")


def _tagging(tags):
    return examples_from_lists({"words": [["w"] * len(t) for t in tags], "tags": tags},
                               "tagging")


def test_order_numeric_lexicographic_and_o_first():
    assert LabelSet.from_examples(_classification(["10", "2", "1", "2"])).names == ("1", "2",
                                                                                    "10")
    assert LabelSet.from_examples(_classification(["pos", "neg", "pos"])).names == ("neg", "pos")
    tags = LabelSet.from_examples(_tagging([["B-PER", "O"], ["I-PER", "B-LOC"]]), "tagging")
    assert tags.names == ("O", "B-LOC", "B-PER", "I-PER") and tags.kind == "tagging"


def test_save_load_and_check_matches(tmp_path):
    labels = LabelSet(("neg", "pos"))
    path = labels.save(str(tmp_path / "run"))
    assert json.loads(open(path).read()) == {"kind": "classification", "names": ["neg", "pos"]}
    assert LabelSet.load(str(tmp_path / "run")) == labels
    labels.check_matches(LabelSet(("neg", "pos")))
    with pytest.raises(ConfigError, match=r"new: \['neutral'\]"):
        labels.check_matches(LabelSet(("neg", "neutral", "pos")))
    with pytest.raises(ConfigError, match="another order"):
        labels.check_matches(LabelSet(("pos", "neg")))
    with pytest.raises(ConfigError, match="does not exist"):
        LabelSet.load(str(tmp_path / "elsewhere"))
    (tmp_path / "run" / LABELS_FILE).write_text("{broken")
    with pytest.raises(ConfigError, match="not a label file"):
        LabelSet.load(str(tmp_path / "run"))


def test_unseen_label_at_evaluation_names_label_and_split():
    labels = LabelSet(("neg", "pos"))
    assert labels.check_split(_classification(["pos", "neg"]), "validation") is True
    with pytest.raises(DataError, match=r"validation split has the label\(s\) \['meh'\]"):
        labels.check_split(_classification(["pos", "meh"]), "validation")
    with pytest.raises(DataError, match="test split: an example has no label"):
        labels.check_split(_classification(["pos", ""]), "test")
    tags = LabelSet(("O", "B-PER"), "tagging")
    with pytest.raises(DataError, match=r"\['B-LOC'\]"):
        tags.check_split(_tagging([["O", "B-LOC"]]), "validation")


def test_bad_sets_and_lookup():
    with pytest.raises(DataError, match="empty"):
        LabelSet(())
    with pytest.raises(DataError, match="duplicate"):
        LabelSet(("a", "a"))
    with pytest.raises(DataError, match="no label"):
        LabelSet.from_examples(_classification(["a", ""]))
    table = LabelSet(("a", "b")).lookup_table()
    assert table.lookup(tf.constant(["b", "a", "zz"])).numpy().tolist() == [1, 0, -1]
