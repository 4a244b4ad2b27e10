"""The label set of a classification or tagging task: read once, saved with the run, checked.

The names come from the training split's metadata when TFDS has it (a ``ClassLabel``: every
class in its declared order, seen in training or not), else from the labels the training split
holds: "O" first for tagging, the rest sorted (numerically when every label is a number, so
"0"/"1" keep ids 0/1 and the positive class of a binary task is id 1). Label id = position.

The set is saved as ``RUN_DIR/labels.json`` (``{"kind": ..., "names": [...]}``). Resuming or
evaluating a run with data whose label set differs is a ConfigError (`check_matches`); a
label in an evaluation split that training never saw is a DataError naming the label and the
split (`check_split`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from electra_tf.config import ConfigError
from electra_tf.data.errors import DataError
from electra_tf.finetune.data_config import FinetuneDataConfig

LABELS_FILE = "labels.json"
_UNLABELED = ("an example has no label: the split is unlabeled (GLUE's test splits are); "
              "evaluate on a labelled split and use `predict` for this one")


def _collect(examples: tf.data.Dataset, kind: str) -> list[str]:
    """The distinct labels (tags) of a dataset of raw examples, read in batches."""
    key = "tags" if kind == "tagging" else "label"
    column = examples.map(lambda e: e[key])
    if kind == "tagging":
        column = column.unbatch()
    seen: set[bytes] = set()
    for batch in column.batch(4096).as_numpy_iterator():
        seen.update(np.unique(batch).tolist())
    return [s.decode("utf-8") for s in seen]


def _sort_key(names: list[str]):
    try:
        numbers = {n: float(n) for n in names}
    except ValueError:
        return lambda n: (0, n)
    return lambda n: (numbers[n], n)


@dataclass(frozen=True)
class LabelSet:
    """Label names in id order, and the task kind they belong to."""

    names: tuple[str, ...]
    kind: str = "classification"

    def __post_init__(self):
        object.__setattr__(self, "names", tuple(self.names))
        if not self.names:
            raise DataError("the label set is empty: the training split has no labels")
        if len(set(self.names)) != len(self.names):
            raise DataError(f"the label set {list(self.names)} has duplicate names")

    def __len__(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        return self.names.index(name)

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_names(cls, names, kind: str = "classification") -> LabelSet:
        """Sorted as documented above (for names found in data)."""
        names = sorted(set(names), key=_sort_key(list(set(names))))
        if kind == "tagging" and "O" in names:
            names = ["O"] + [n for n in names if n != "O"]
        return cls(tuple(names), kind)

    @classmethod
    def from_examples(cls, examples: tf.data.Dataset, kind: str = "classification") -> LabelSet:
        """The labels (tagging: tags) the raw training examples hold."""
        names = _collect(examples, kind)
        if "" in names:
            raise DataError(f"the training split: {_UNLABELED}")
        if not names:
            raise DataError("the training split has no labels; check data.label_field / "
                            "data.tags_field")
        return cls.from_names(names, kind)

    @classmethod
    def from_tfds_info(cls, data: FinetuneDataConfig, kind: str) -> LabelSet | None:
        """The ClassLabel names of the label (tags) feature, or None if it has none."""
        from electra_tf.finetune.tfds_tasks import label_names

        names = label_names(data.resolve(kind), kind)
        return cls(tuple(names), kind) if names else None

    @classmethod
    def for_task(cls, data: FinetuneDataConfig, kind: str,
                 train_examples: tf.data.Dataset | None = None) -> LabelSet | None:
        """The task's label set: TFDS metadata, else the training split (None: regression)."""
        if kind == "regression":
            return None
        if data.source == "tfds":
            labels = cls.from_tfds_info(data, kind)
            if labels is not None:
                return labels
        if train_examples is None:
            from electra_tf.finetune.sources import read_examples

            train_examples = read_examples(data, "train", kind)
        return cls.from_examples(train_examples, kind)

    # ------------------------------------------------------------------ run directory

    def save(self, run_dir: str) -> str:
        path = os.path.join(run_dir, LABELS_FILE)
        tf.io.gfile.makedirs(run_dir)
        with tf.io.gfile.GFile(path, "w") as f:
            f.write(json.dumps({"kind": self.kind, "names": list(self.names)}, indent=1) + "\n")
        return path

    @classmethod
    def load(cls, run_dir: str) -> LabelSet:
        path = os.path.join(run_dir, LABELS_FILE)
        if not tf.io.gfile.exists(path):
            raise ConfigError(f"{path} does not exist: {run_dir} is not a fine-tuning run of a "
                              "classification or tagging task (or it is incomplete)")
        try:
            with tf.io.gfile.GFile(path) as f:
                saved = json.loads(f.read())
            return cls(tuple(str(n) for n in saved["names"]), str(saved["kind"]))
        except (ValueError, KeyError, TypeError) as e:
            raise ConfigError(f"{path} is not a label file written by electra-tf ({e}); "
                              "restore it or start a new run") from None

    @classmethod
    def exists(cls, run_dir: str) -> bool:
        return tf.io.gfile.exists(os.path.join(run_dir, LABELS_FILE))

    # ------------------------------------------------------------------ checks

    def check_matches(self, other: LabelSet, where: str = "the run directory") -> None:
        """ConfigError unless `other` (e.g. from the data now configured) is the same set."""
        if other.kind != self.kind or other.names != self.names:
            added = [n for n in other.names if n not in self.names]
            missing = [n for n in self.names if n not in other.names]
            detail = (f"new: {added[:5]}, absent: {missing[:5]}" if added or missing
                      else "the same labels in another order")
            raise ConfigError(f"the data's label set {list(other.names)[:10]} differs from the "
                              f"one saved in {where} {list(self.names)[:10]} ({detail}); use "
                              "the data the run was trained on, or start a new run directory")

    def check_split(self, examples: tf.data.Dataset, split: str,
                    allow_unlabeled: bool = False) -> bool:
        """Whether the raw examples of `split` are labelled (False only if `allow_unlabeled`:
        else an unlabelled example is a DataError), checking that they hold no label this set
        does not know."""
        found = _collect(examples, self.kind)
        if "" in found:
            if allow_unlabeled:
                return False
            raise DataError(f"the {split} split: {_UNLABELED}")
        unknown = sorted(set(found) - set(self.names))
        if unknown:
            raise DataError(f"the {split} split has the label(s) {unknown[:5]} that the "
                            f"training split never had (known: {list(self.names)[:10]}); "
                            "fix the data or retrain with these labels in the training split")
        return True

    def lookup_table(self) -> tf.lookup.StaticHashTable:
        """Name -> id (int32); unknown names -> -1."""
        return tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(self.names),
                                                tf.range(len(self.names), dtype=tf.int32)),
            default_value=-1)
