"""Synthetic fine-tuning tasks that need context: no token decides its label on its own.

* classification: a few filler words with "not" and "good" inserted at two random positions;
  the label is "1" when "not" comes before "good", else "0". Both classes have the same words
  in the same proportions, so only their order tells the classes apart.
* tagging: random filler words (a quarter of them "the", a quarter "a"); a word is tagged
  ``B-X`` when the word before it is "the", ``B-Y`` when it is "a", else ``O``. The same word
  takes every tag, depending on its neighbour.

`synthetic_context_examples` returns the examples; `write_synthetic_task` writes them as a CSV
(classification) or CoNLL (tagging) task with train / validation / test files and returns the
`FinetuneDataConfig` that reads them.
"""

from __future__ import annotations

import csv
import io
import os

import numpy as np
import tensorflow as tf

from electra_tf.finetune.data_config import FinetuneDataConfig

FILLERS = ("cat", "dog", "sat", "ran", "big", "red", "house", "tree", "water", "light", "day",
           "man")
SYNTHETIC_WORDS = FILLERS + ("the", "a", "not", "good")


def _classification(rng: np.random.Generator) -> dict:
    words = list(rng.choice(FILLERS, size=int(rng.integers(4, 11))))
    first, second = sorted(rng.choice(len(words) + 2, size=2, replace=False))
    negated = bool(rng.integers(2))
    words.insert(first, "not" if negated else "good")
    words.insert(second, "good" if negated else "not")
    return {"text": " ".join(words), "label": "1" if negated else "0"}


def _tagging(rng: np.random.Generator) -> dict:
    choices = np.array(FILLERS + ("the", "a"))
    weights = np.array([0.5 / len(FILLERS)] * len(FILLERS) + [0.25, 0.25])
    words = [str(w) for w in rng.choice(choices, size=int(rng.integers(5, 16)), p=weights)]
    tags = ["O"] + [{"the": "B-X", "a": "B-Y"}.get(previous, "O") for previous in words[:-1]]
    return {"words": words, "tags": tags}


def synthetic_context_examples(kind: str, n: int, seed: int = 0) -> list[dict]:
    """`n` examples: {"text", "label"} (classification) or {"words", "tags"} (tagging)."""
    if kind not in ("classification", "tagging"):
        raise ValueError(f"the synthetic tasks are classification and tagging, not {kind!r}")
    rng = np.random.default_rng(seed)
    make = _classification if kind == "classification" else _tagging
    return [make(rng) for _ in range(n)]


def _write(path: str, kind: str, examples: list[dict]) -> None:
    out = io.StringIO()
    if kind == "classification":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["text", "label"])
        writer.writerows([e["text"], e["label"]] for e in examples)
    else:
        out.write("-DOCSTART- O\n\n")
        for e in examples:
            out.writelines(f"{w} {t}\n" for w, t in zip(e["words"], e["tags"], strict=True))
            out.write("\n")
    with tf.io.gfile.GFile(path, "w") as f:
        f.write(out.getvalue())


def write_synthetic_task(kind: str, directory: str, *, train: int = 2000, validation: int = 200,
                         test: int = 200, seed: int = 0) -> FinetuneDataConfig:
    """Writes train/validation/test files (different seeds) and returns their data config."""
    tf.io.gfile.makedirs(directory)
    extension = "csv" if kind == "classification" else "conll"
    paths = {}
    for offset, (split, n) in enumerate((("train", train), ("validation", validation),
                                         ("test", test))):
        paths[split] = os.path.join(directory, f"{split}.{extension}")
        _write(paths[split], kind, synthetic_context_examples(kind, n, seed * 3 + offset))
    return FinetuneDataConfig(source=extension, train_path=paths["train"],
                              validation_path=paths["validation"], test_path=paths["test"])
