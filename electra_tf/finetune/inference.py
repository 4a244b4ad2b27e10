"""A fine-tuned run on the host: restore it, evaluate a split, predict, write JSONL.

    run = load_finetuned("runs/sst2")                  # the best checkpoint, else the latest
    run.evaluate("validation")                         # {"accuracy": ..., "loss": ...}
    run.predict_examples(examples)                     # [{"id": 0, "label": "1", ...}, ...]

Batches are the task's own evaluation batches (static shapes, weight-0 padding examples), run
through one compiled function; only real examples are reported.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from electra_tf.config import ConfigError
from electra_tf.errors import MissingFileError
from electra_tf.finetune.config import FinetuneConfig, read_finetune_config
from electra_tf.finetune.labels import LabelSet
from electra_tf.finetune.model import FinetuneModel, model_checkpoint
from electra_tf.finetune.task import FinetuneTask

log = logging.getLogger(__name__)

CONFIG_NAME = "config.yaml"
CHECKPOINT_DIR = "checkpoints"
BEST_DIRS = ("best", os.path.join(CHECKPOINT_DIR, "best"))
VOCAB_NAME = "vocab.txt"


def run_vocab(config: FinetuneConfig, run_dir: str) -> str | None:
    """The run's WordPiece vocabulary: as configured, else the copy in the run directory."""
    if config.task.tokenizer != "wordpiece":
        return None
    for candidate in (config.task.vocab_file, os.path.join(run_dir, VOCAB_NAME)):
        if candidate and tf.io.gfile.exists(candidate):
            return candidate
    raise MissingFileError(f"the run's vocabulary {config.task.vocab_file} was not found, nor "
                           f"{os.path.join(run_dir, VOCAB_NAME)}; copy it there")


def find_checkpoint(run_dir: str, which: str = "best") -> str:
    """The best checkpoint (kept by task.main_metric) if `which` is best and one exists, else
    the latest."""
    if which == "best":
        for folder in BEST_DIRS:
            prefix = tf.train.latest_checkpoint(os.path.join(run_dir, folder))
            if prefix:
                return prefix
    prefix = tf.train.latest_checkpoint(os.path.join(run_dir, CHECKPOINT_DIR))
    if prefix is None:
        raise MissingFileError(f"no checkpoint in {os.path.join(run_dir, CHECKPOINT_DIR)}: "
                               "train first (electra-tf finetune), or check --run-dir")
    return prefix


@dataclass
class FinetunedRun:
    config: FinetuneConfig
    task: FinetuneTask
    model: FinetuneModel
    checkpoint: str

    def __post_init__(self):
        self._step = tf.function(self._outputs)

    def _outputs(self, batch):
        logits = self.task._logits(self.model, batch, False)
        _, sums = self.task._loss_and_sums(logits, batch)
        return sums, self.task.example_outputs(logits, batch)

    def gather(self, features: tf.data.Dataset) -> tuple[dict, dict]:
        """Summed statistics and concatenated per-example outputs over `features`."""
        sums, parts = None, []
        for batch in features:
            batch_sums, outputs = self._step(batch)
            batch_sums = {k: v.numpy() for k, v in batch_sums.items()}
            sums = batch_sums if sums is None else {k: sums[k] + batch_sums[k] for k in sums}
            parts.append({k: v.numpy() for k, v in outputs.items()})
        if sums is None:
            return {}, {}
        return sums, {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def features(self, examples: tf.data.Dataset, labeled: bool = True) -> tf.data.Dataset:
        return self.task.features(examples, self.config.train.batch_size, training=False,
                                  labeled=labeled)

    def evaluate(self, split: str = "validation") -> dict[str, float]:
        from electra_tf.finetune.sources import data_errors

        examples = self.task.examples(split)
        if self.task.labels is not None:
            self.task.labels.check_split(examples, split)
        with data_errors():
            sums, outputs = self.gather(self.features(examples))
        return self.task.metrics(sums, outputs)

    def evaluate_and_predict(self, split: str) -> tuple[dict[str, float], list[dict]]:
        """One pass over `split`: its metrics ({} if it is unlabelled, as GLUE's test splits
        are) and one prediction record per example."""
        from electra_tf.finetune.sources import data_errors

        examples = self.task.examples(split)
        labels = self.task.labels
        labelled = labels is None or labels.check_split(examples, split, allow_unlabeled=True)
        with data_errors():
            sums, outputs = self.gather(self.features(examples, labeled=labelled))
        metrics = self.task.metrics(sums, outputs) if labelled else {}
        return metrics, prediction_records(self.task.kind, outputs, labels)

    def predict_examples(self, examples: tf.data.Dataset) -> list[dict]:
        """One record per real example, in example_id order."""
        from electra_tf.finetune.sources import data_errors

        with data_errors():
            _, outputs = self.gather(self.features(examples, labeled=False))
        return prediction_records(self.task.kind, outputs, self.task.labels)


def prediction_records(kind: str, outputs: dict, labels: LabelSet | None) -> list[dict]:
    real = np.flatnonzero(np.asarray(outputs["example_weight"]) > 0)
    real = real[np.argsort(outputs["example_id"][real], kind="stable")]
    records = []
    for row in real:
        record: dict[str, object] = {"id": int(outputs["example_id"][row])}
        if kind == "regression":
            record["score"] = float(outputs["prediction"][row])
        elif kind == "classification":
            assert labels is not None, "a classification task has a label set"
            probabilities = outputs["probabilities"][row]
            record["label"] = labels.names[int(np.argmax(probabilities))]
            record["probabilities"] = {n: float(p) for n, p in
                                       zip(labels.names, probabilities, strict=True)}
        else:
            assert labels is not None, "a tagging task has a label set"
            at = outputs["word_index"][row] >= 0
            tags = ["O"] * int(outputs["num_words"][row])
            for word, tag in zip(outputs["word_index"][row][at], outputs["prediction"][row][at],
                                 strict=True):
                tags[int(word)] = labels.names[int(tag)]
            record["tags"] = tags
        records.append(record)
    return records


def load_finetuned(run_dir: str, which: str = "best") -> FinetunedRun:
    """The run's config, label set, tokenizer and model with its best (or latest) weights."""
    from electra_tf.finetune.model import build_model
    from electra_tf.finetune.setup import has_split, load_task_tokenizer

    path = os.path.join(run_dir, CONFIG_NAME)
    if not tf.io.gfile.exists(path):
        raise MissingFileError(f"{path} not found: {run_dir} is not a fine-tuning run "
                               "directory (electra-tf finetune writes config.yaml there)")
    config = read_finetune_config(path)
    task_config = config.task
    labels = LabelSet.load(run_dir) if task_config.kind != "regression" else None
    settings = {"tokenizer": task_config.tokenizer, "vocab_file": run_vocab(config, run_dir),
                "sentencepiece_model": task_config.sentencepiece_model,
                "lower_case": task_config.lower_case, "strip_accents": task_config.strip_accents}
    task = FinetuneTask(config, load_task_tokenizer(settings), labels,
                        has_validation=has_split(config, "validation"))
    num_labels = task_config.num_labels
    if num_labels is None:
        raise ConfigError(f"{path}: task.num_labels is missing; a fine-tuning run saves it "
                          "resolved, so this config was edited or damaged")
    model = build_model(config.model, task_config.kind, num_labels, task_config.dropout)
    prefix = find_checkpoint(run_dir, which)
    tf.train.Checkpoint(model=model_checkpoint(model)).restore(prefix).expect_partial()
    log.info("restored %s", prefix)
    return FinetunedRun(config, task, model, prefix)


def write_jsonl(records: list[dict], path: str) -> str:
    tmp = f"{path}.tmp"
    with tf.io.gfile.GFile(tmp, "w") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    tf.io.gfile.rename(tmp, path, overwrite=True)
    return path


__all__ = ["FinetunedRun", "find_checkpoint", "load_finetuned",
           "prediction_records", "write_jsonl"]
