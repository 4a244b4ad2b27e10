"""The raw-text SavedModel of a fine-tuned model, loaded in a fresh process with only
tensorflow and tensorflow_text, matches the in-process predictions (<= 1e-5)."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from electra_tf.data.tokenization import SPECIAL_TOKENS, WordPieceTokenizer
from electra_tf.finetune.commands import examples_dataset
from electra_tf.finetune.config import FinetuneSpec, resolve_config
from electra_tf.finetune.export import export_saved_model
from electra_tf.finetune.inference import FinetunedRun
from electra_tf.finetune.labels import LabelSet
from electra_tf.finetune.synthetic import SYNTHETIC_WORDS
from electra_tf.finetune.task import FinetuneTask

TOLERANCE = 1e-5
TEXTS = ["the cat sat not good", "a dog ran", "good", "the big red house by the water " * 3]
PAIRS = ["a tree", "", "not the man", "day light"]
WORDS = [["the", "cat", "sat"], ["a", "dog", "ran", "not", "good"], ["water"]]
LABELS = {"classification": ("neg", "pos", "mid"), "tagging": ("O", "B-X", "B-Y")}


@pytest.fixture(scope="module")
def vocab(tmp_path_factory):
    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    extra = ["by", "##s", "##ed"]
    path.write_text("\n".join(list(SPECIAL_TOKENS) + list(SYNTHETIC_WORDS) + extra) + "\n")
    return str(path)


def make_run(kind, vocab):
    tokenizer = WordPieceTokenizer(vocab)
    data = {"source": "csv", "train_path": "unused.csv", "seq_length": 12}
    if kind == "tagging":
        data = {"source": "conll", "train_path": "unused.conll", "seq_length": 12}
    spec = FinetuneSpec({"model": {"preset": "tiny", "vocab_size": tokenizer.vocab_size},
                         "task": {"kind": kind, "vocab_file": vocab, "tokenizer": "wordpiece",
                                  "lower_case": True, "strip_accents": True},
                         "data": data}, "test")
    names = LABELS.get(kind)
    config = resolve_config(spec, model=None, num_train_examples=64,
                            num_labels=len(names) if names else None)
    labels = LabelSet(names, kind) if names else None
    task = FinetuneTask(config, tokenizer, labels, has_validation=False)
    model = task.build_model("float32")
    for i, variable in enumerate(model.trainable_variables):  # distinct, non-trivial outputs
        rng = np.random.default_rng(i)
        variable.assign(variable.numpy() + 0.05 * rng.normal(size=variable.shape))
    return FinetunedRun(config, task, model, "in-memory")


def in_process(run, kind):
    if kind == "tagging":
        rows = [{"words": w} for w in WORDS]
    else:
        rows = [{"text": t, "text_pair": p} for t, p in zip(TEXTS, PAIRS, strict=True)]
    _, outputs = run.gather(run.features(examples_dataset(rows, kind), labeled=False))
    return outputs


LOADER = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    import tensorflow_text  # noqa: F401
    spec = json.loads(sys.argv[1])
    out = {}
    for kind, path in spec["dirs"].items():
        model = tf.saved_model.load(path)
        if kind == "tagging":
            words = tf.ragged.constant(spec["words"]).to_tensor(default_value="")
            result = model.signatures["tag_words"](words=words)
            raw = model.signatures["serving_default"](text=tf.constant(spec["texts"]))
            out[kind + "/raw_tags"] = raw["tags"].numpy().astype(str)
        else:
            result = model.signatures["serving_pair"](text=tf.constant(spec["texts"]),
                                                      text_pair=tf.constant(spec["pairs"]))
            single = model.signatures["serving_default"](text=tf.constant(spec["texts"]))
            out[kind + "/single"] = next(iter(v.numpy() for k, v in single.items()
                                              if k in ("probabilities", "score")))
        for key, value in result.items():
            value = value.numpy()
            out[f"{kind}/{key}"] = value.astype(str) if value.dtype == object else value
    assert not any(m.startswith("electra_tf") for m in sys.modules), "not standalone"
    np.savez(spec["out"], **out)
""")


@pytest.fixture(scope="module")
def exported(vocab, tmp_path_factory):
    root = tmp_path_factory.mktemp("exports")
    runs, dirs = {}, {}
    for kind in ("classification", "regression", "tagging"):
        runs[kind] = make_run(kind, vocab)
        dirs[kind] = export_saved_model(runs[kind], str(root / kind))
    out = str(root / "fresh.npz")
    spec = {"dirs": dirs, "texts": TEXTS, "pairs": PAIRS, "words": WORDS, "out": out}
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    subprocess.run([sys.executable, "-c", LOADER, json.dumps(spec)], check=True, env=env,
                   cwd=str(root), timeout=300)
    return runs, dict(np.load(out))


def test_classification_matches_in_process(exported):
    runs, fresh = exported
    expected = in_process(runs["classification"], "classification")["probabilities"]
    got = fresh["classification/probabilities"]
    assert got.shape == (4, 3) and np.abs(got - expected[:4]).max() <= TOLERANCE
    assert list(fresh["classification/label"]) == [LABELS["classification"][i]
                                                   for i in expected[:4].argmax(-1)]
    assert (fresh["classification/label_names"][0] == LABELS["classification"]).all()
    # Without the pair the inputs differ, so the outputs do (the pair is really used).
    assert np.abs(fresh["classification/single"] - got).max() > 1e-4


def test_regression_matches_in_process(exported):
    runs, fresh = exported
    expected = in_process(runs["regression"], "regression")["prediction"][:4]
    assert np.abs(fresh["regression/score"] - expected).max() <= TOLERANCE


def test_tagging_words_match_in_process(exported):
    runs, fresh = exported
    run = runs["tagging"]
    outputs = in_process(run, "tagging")
    from electra_tf.finetune.inference import prediction_records

    records = prediction_records("tagging", outputs, run.task.labels)
    tags = fresh["tagging/tags"]
    for row, record in enumerate(records):
        assert list(tags[row][:len(WORDS[row])]) == record["tags"]
        assert all(t == "" for t in tags[row][len(WORDS[row]):])
        at = outputs["word_index"][row] >= 0
        np.testing.assert_allclose(fresh["tagging/probabilities"][row][:at.sum()],
                                   outputs["probabilities"][row][at], atol=TOLERANCE)
    assert list(fresh["tagging/num_words"]) == [len(w) for w in WORDS]
    raw = fresh["tagging/raw_tags"]
    assert raw.shape == (4, 12) and raw[0, 0] == "" and set(raw[0, 1:6]) <= set(LABELS["tagging"])
