"""FinetuneDataConfig: defaults of known TFDS builders, validation messages, shipped configs."""

import dataclasses
import glob
import os

import pytest

from electra_tf.config import ConfigError
from electra_tf.finetune.config import load_spec
from electra_tf.finetune.data_config import FinetuneDataConfig, tfds_defaults


def test_known_builders_fill_fields_and_splits():
    mnli = FinetuneDataConfig(source="tfds", tfds_name="glue/mnli")
    resolved = mnli.resolve("classification")
    assert (resolved.text_field, resolved.text_pair_field, resolved.label_field) == (
        "premise", "hypothesis", "label")
    assert resolved.split_name("validation") == "validation_matched"
    assert resolved.split_name("train") == "train"
    assert mnli.text_field is None                     # resolve returns a new object
    assert tfds_defaults("wikiann/de")["words_field"] == "tokens"
    assert tfds_defaults("conll2003:1.0.0")["tags_field"] == "ner"
    assert FinetuneDataConfig(source="tfds", tfds_name="glue/stsb").natural_kind() == \
        "regression"
    custom = FinetuneDataConfig(source="tfds", tfds_name="glue/sst2", text_field="other")
    assert custom.resolve("classification").text_field == "other"


def test_file_sources_default_fields():
    data = FinetuneDataConfig(source="csv", train_path="t.csv").resolve("classification")
    assert (data.text_field, data.label_field, data.text_pair_field) == ("text", "label", None)
    tagging = FinetuneDataConfig(source="jsonl", train_path="t.jsonl").resolve("tagging")
    assert (tagging.words_field, tagging.tags_field) == ("words", "tags")


@pytest.mark.parametrize("changes, kind, message", [
    (dict(source="xml"), None, "data.source must be one of"),
    (dict(source="tfds"), None, "tfds_name is not set"),
    (dict(source="csv"), None, "train_path is not set"),
    (dict(source="csv", train_path="a", tfds_name="glue/cola"), None, "only read by"),
    (dict(source="wordnet_lexname", train_path="a"), None, "only read by file sources"),
    (dict(source="csv", train_path="a", seq_length=4), None, "at least 8"),
    (dict(source="csv", train_path="a", max_examples=0), None, "max_examples"),
    (dict(source="conll", train_path="a", word_column=1, tag_column=1), None, "own columns"),
    (dict(source="csv", train_path="a"), "tagging", "no per-word tags"),
    (dict(source="conll", train_path="a"), "classification", "must be tagging"),
    (dict(source="tfds", tfds_name="glue/stsb"), "classification", "regression dataset"),
    (dict(source="tfds", tfds_name="conll2003"), "classification", "tagging dataset"),
    (dict(source="tfds", tfds_name="some/builder"), "tagging", "data.words_field is not set"),
    (dict(source="tfds", tfds_name="some/builder"), "classification", "text_field is not set"),
    (dict(source="csv", train_path="a", header=False, text_field="text"), "classification",
     "column number"),
    (dict(source="csv", train_path="a"), "ranking", "task kind must be"),
])
def test_validation_messages(changes, kind, message):
    data = dataclasses.replace(FinetuneDataConfig(), **changes)
    with pytest.raises(ConfigError, match=message):
        data.resolve(kind) if kind else data.validate()


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(
    os.path.dirname(__file__), "..", "configs", "finetune", "*.yaml"))), ids=os.path.basename)
def test_every_shipped_finetuning_config_validates(path):
    spec = load_spec(path)
    assert spec.draft().task.kind in ("classification", "regression", "tagging")
