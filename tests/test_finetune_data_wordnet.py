"""The offline WordNet tasks and the synthetic context tasks."""

import collections

import numpy as np
import pytest

from electra_tf.data import DataError
from electra_tf.finetune import wordnet_tasks
from electra_tf.finetune.data_config import FinetuneDataConfig
from electra_tf.finetune.labels import LabelSet
from electra_tf.finetune.metrics import chunks
from electra_tf.finetune.sources import read_examples
from electra_tf.finetune.synthetic import synthetic_context_examples, write_synthetic_task


def test_lexname_task_is_balanced_fixed_and_split_by_synset():
    splits = {s: wordnet_tasks.lexname_examples(s) for s in ("train", "validation", "test")}
    for split, examples in splits.items():
        counts = collections.Counter(label for _, label in examples)
        assert set(counts) == set(wordnet_tasks.LEXNAME_CLASSES)
        assert len(set(counts.values())) == 1, split            # balanced
    assert len(splits["train"]) == 10_000 and len(splits["test"]) == 1_200
    texts = {s: {t for t, _ in e} for s, e in splits.items()}
    assert not texts["train"] & texts["test"] and not texts["validation"] & texts["test"]
    # Fixed: the split of a synset is a pure function of its id.
    synsets = wordnet_tasks.load_synsets()
    dog = next(s for s in synsets if s.synset_id == "n02084071")
    assert dog.lexname == "noun.animal" and wordnet_tasks.split_of(dog.bucket) == "train"
    parts = [p.strip() for t, _ in splits["test"] for p in t.split(";")]
    assert parts and not any(p.startswith('"') for p in parts)   # no quoted usage examples


def test_lexname_through_read_examples_and_labels():
    data = FinetuneDataConfig(source="wordnet_lexname", max_examples=40)
    examples = read_examples(data, "validation", "classification")
    rows = list(examples.as_numpy_iterator())
    assert len(rows) == 40 and rows[0]["example_id"] == 0 and rows[0]["text_b"] == b""
    labels = LabelSet.for_task(FinetuneDataConfig(source="wordnet_lexname"), "classification")
    assert labels.names == tuple(sorted(wordnet_tasks.LEXNAME_CLASSES))


def test_tagging_task_runs_definitions_together_with_pos_chunks():
    examples = wordnet_tasks.tagging_examples("test")
    assert len(examples) > 300
    assert examples == wordnet_tasks.tagging_examples.__wrapped__("test")   # deterministic
    sizes = collections.Counter()
    for words, tags in examples:
        assert len(words) == len(tags)
        found = sorted(chunks(tags))
        assert 2 <= len(found) <= 3
        assert found[0][0] == 0 and found[-1][1] == len(words) - 1
        sizes[len(found)] += 1
        assert all(t[2:] in ("NOUN", "VERB", "ADJ", "ADV") for t in tags)
    assert sizes[2] and sizes[3]
    # The same word takes different tags in different places: context decides.
    by_word = collections.defaultdict(set)
    for words, tags in examples:
        for word, tag in zip(words, tags, strict=True):
            by_word[word].add(tag)
    assert {"B-NOUN", "I-NOUN", "I-VERB"} <= by_word["a"]
    rows = list(read_examples(FinetuneDataConfig(source="wordnet_tagging", max_examples=3),
                              "train", "tagging").as_numpy_iterator())
    assert len(rows) == 3 and len(rows[0]["words"]) == len(rows[0]["tags"])
    with pytest.raises(DataError, match="splits train, validation and test"):
        wordnet_tasks.tagging_examples("dev")


def test_synthetic_classification_needs_word_order():
    examples = synthetic_context_examples("classification", 400, seed=0)
    for e in examples:
        words = e["text"].split()
        assert words.count("not") == 1 and words.count("good") == 1
        assert e["label"] == ("1" if words.index("not") < words.index("good") else "0")
    counts = collections.Counter(e["label"] for e in examples)
    assert abs(counts["1"] - counts["0"]) < 60
    # The bag of words says nothing: word frequencies match across the classes.
    bags = {c: collections.Counter(w for e in examples if e["label"] == c
                                   for w in e["text"].split()) for c in "01"}
    assert bags["0"]["not"] == counts["0"] and bags["1"]["good"] == counts["1"]


def test_synthetic_tagging_rule_and_files(tmp_path):
    examples = synthetic_context_examples("tagging", 200, seed=1)
    for e in examples:
        for i, tag in enumerate(e["tags"]):
            previous = e["words"][i - 1] if i else None
            assert tag == {"the": "B-X", "a": "B-Y"}.get(previous, "O")
    tagged_the = {e["words"][i] for e in examples for i, t in enumerate(e["tags"])
                  if t == "B-X"}
    assert "the" in tagged_the and len(tagged_the) > 5          # any word can take B-X
    data = write_synthetic_task("tagging", str(tmp_path / "tag"), train=30, validation=5, test=5)
    rows = list(read_examples(data, "train", "tagging").as_numpy_iterator())
    assert len(rows) == 30
    assert [w.decode() for w in rows[0]["words"]] == synthetic_context_examples(
        "tagging", 30, seed=0)[0]["words"]
    csv_data = write_synthetic_task("classification", str(tmp_path / "cls"), train=20,
                                    validation=4, test=4, seed=2)
    rows = list(read_examples(csv_data, "test", "classification").as_numpy_iterator())
    assert len(rows) == 4 and {r["label"] for r in rows} <= {b"0", b"1"}
    assert np.all([r["text_a"] for r in rows])
