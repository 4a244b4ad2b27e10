"""TFDS sources on `tfds.testing.mock_data` (random examples from the builders' features)."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from electra_tf.data import DataError
from electra_tf.data.tokenization import WordPieceTokenizer
from electra_tf.finetune.data_config import FinetuneDataConfig
from electra_tf.finetune.features import make_features
from electra_tf.finetune.labels import LabelSet
from electra_tf.finetune.sources import data_errors, read_examples

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list("abcdefghij")


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    path.write_text("\n".join(VOCAB) + "\n")
    return WordPieceTokenizer(str(path))


@pytest.fixture
def mock():
    with tfds.testing.mock_data(num_examples=6, policy=tfds.testing.MockPolicy.USE_CODE):
        yield


def _tfds(name, **changes):
    return FinetuneDataConfig(source="tfds", tfds_name=name, **changes)


def _run(data, kind, tokenizer, split="train"):
    examples = read_examples(data, split, kind)
    labels = LabelSet.for_task(data, kind, examples)
    with data_errors():
        batches = list(make_features(examples, tokenizer, labels, kind=kind, seq_length=16,
                                     batch_size=4, training=False, seed=0).as_numpy_iterator())
    return examples, labels, batches


def test_sst2_single_text_with_class_names(mock, tokenizer):
    examples, labels, batches = _run(_tfds("glue/sst2"), "classification", tokenizer)
    assert labels.names == ("negative", "positive")
    first = next(iter(examples.as_numpy_iterator()))
    assert first["text_b"] == b"" and first["label"] in (b"negative", b"positive")
    assert first["example_id"] == 0
    assert [b["input_ids"].shape for b in batches] == [(4, 16), (4, 16)]
    assert sum(b["example_weight"].sum() for b in batches) == 6
    assert all(b["segment_ids"].max() == 0 for b in batches)


def test_mnli_pairs_read_validation_matched(mock, tokenizer):
    data = _tfds("glue/mnli")
    examples, labels, batches = _run(data, "classification", tokenizer, split="validation")
    assert labels.names == ("entailment", "neutral", "contradiction")
    assert data.resolve("classification").split_name("validation") == "validation_matched"
    texts = list(examples.as_numpy_iterator())
    assert all(t["text_b"] for t in texts)
    assert any(b["segment_ids"].max() == 1 for b in batches)


def test_stsb_regression_targets(mock, tokenizer):
    examples, labels, batches = _run(_tfds("glue/stsb"), "regression", tokenizer)
    assert labels is None
    targets = np.concatenate([b["label"] for b in batches])[:6]
    raw = [e["label"] for e in examples.as_numpy_iterator()]
    assert targets.dtype == np.float32 and np.allclose(targets, raw)


def test_conll2003_unaligned_mock_sequences(mock, tokenizer):
    message = r"has \d+ 'tokens' but \d+ 'ner'; every word.*allow_unaligned=true[^\]]*$"
    with pytest.raises(DataError, match=message):
        read_examples(_tfds("conll2003"), "train", "tagging")
    data = _tfds("conll2003", allow_unaligned=True)
    examples, labels, batches = _run(data, "tagging", tokenizer)
    assert labels.names[0] == "O" and len(labels) == 9 and "B-PER" in labels.names
    for example in examples.as_numpy_iterator():
        assert len(example["words"]) == len(example["tags"])
    assert sum(b["label_weights"].sum() for b in batches) > 0
    assert data.resolve("tagging").split_name("validation") == "dev"


def test_unknown_builder_feature_and_unlabeled_split(mock):
    with pytest.raises(DataError, match="not a TensorFlow Datasets dataset"):
        read_examples(_tfds("no_such_dataset_xyz"), "train", "classification")
    with pytest.raises(DataError, match=r"no feature 'sentence' .*\['hypothesis', 'idx'"):
        read_examples(_tfds("glue/mnli", text_field="sentence"), "train", "classification")
    with pytest.raises(DataError, match="no feature 'words'"):
        read_examples(_tfds("wikiann/en", words_field="words"), "train", "tagging")


def test_out_of_range_class_ids_read_as_unlabeled():
    def as_dataset(self, *args, **kwargs):
        return tf.data.Dataset.from_tensor_slices(
            {"sentence": ["a b", "c"], "label": tf.constant([-1, -1], tf.int64),
             "idx": tf.constant([0, 1], tf.int32)})

    with tfds.testing.mock_data(as_dataset_fn=as_dataset,
                                policy=tfds.testing.MockPolicy.USE_CODE):
        examples = read_examples(_tfds("glue/sst2"), "test", "classification")
        labels = LabelSet(("negative", "positive"))
        with pytest.raises(DataError, match="test split: an example has no label"):
            labels.check_split(examples, "test")
        assert labels.check_split(examples, "test", allow_unlabeled=True) is False
