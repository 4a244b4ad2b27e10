"""`FinetuneTask`: classification, regression and tagging on a pretrained encoder, as a `Task`
of the one training loop (electra_tf/training/task.py).

Inside the step: the model's logits, the summed weighted loss (losses.py) divided by the global
batch's weight (examples; tagging: labelled first sub-tokens), and summable statistics (loss,
weight, correct). Evaluation also returns per-example outputs, which the host turns into the
task's metrics (metrics.py): accuracy / macro-F1 / MCC / positive-class F1, Pearson / Spearman,
entity precision / recall / F1 and token accuracy. The learning rate of every variable is
scaled by the layer-wise decay (layerwise.py).
"""

from __future__ import annotations

import logging

import numpy as np
import tensorflow as tf

from electra_tf.finetune import losses
from electra_tf.finetune.config import FinetuneConfig, read_finetune_config
from electra_tf.finetune.labels import LabelSet
from electra_tf.finetune.layerwise import layerwise_multipliers
from electra_tf.finetune.model import build_model, model_checkpoint
from electra_tf.training.task import EvalOutput, StepContext, StepOutput, Task

log = logging.getLogger(__name__)

SPLIT_OF = {"train": "train", "eval": "validation"}


def _weight(batch) -> tf.Tensor:
    if "label_weights" in batch:
        return tf.cast(batch["label_weights"], tf.float32) * tf.cast(
            batch["example_weight"], tf.float32)[:, None]
    return tf.cast(batch["example_weight"], tf.float32)


class FinetuneTask(Task):
    """One fine-tuning run. `labels` is None for regression."""

    def __init__(self, config: FinetuneConfig, tokenizer, labels: LabelSet | None, *,
                 has_validation: bool = True):
        self.config = config
        self.tokenizer = tokenizer
        self.labels = labels
        self.kind = config.task.kind
        self.main_metric = config.task.main_metric
        self.has_validation = has_validation
        self.log_keys = ("loss", "accuracy") if self.kind != "regression" else ("loss",)

    def prepare(self) -> None:
        """With the run directory locked: save the label set (a resumed run must have the
        same) and a copy of the vocabulary, so the run stays usable if its source moves."""
        import os

        run_dir = self.config.train.run_dir
        tf.io.gfile.makedirs(run_dir)
        vocab = self.config.task.vocab_file
        copy = os.path.join(run_dir, "vocab.txt")
        if vocab and not tf.io.gfile.exists(copy):
            tf.io.gfile.copy(vocab, copy)
        if self.labels is not None:
            if LabelSet.exists(run_dir):
                LabelSet.load(run_dir).check_matches(self.labels)
            self.labels.save(run_dir)

    # ------------------------------------------------------------------ networks

    def build_model(self, precision: str):
        task = self.config.task
        return build_model(self.config.model, self.kind, task.num_labels, task.dropout,
                           precision)

    def checkpoint_weights(self, model) -> tf.train.Checkpoint:
        return model_checkpoint(model)

    def learning_rate_multipliers(self, model) -> list[float] | None:
        task = self.config.task
        if task.layerwise_lr_decay == 1.0:
            return None
        return layerwise_multipliers(model, task.layerwise_lr_decay,
                                     task.lr_decay_top_off_by_one)

    def warm_start(self, model, path: str, allow_partial: bool) -> str:
        from electra_tf.finetune.init import load_encoder

        return load_encoder(model, path, self.config.task.word_norm)

    # ------------------------------------------------------------------ data

    def examples(self, split: str) -> tf.data.Dataset:
        """Raw examples of `split` (train, validation or test)."""
        from electra_tf.finetune.sources import read_examples

        return read_examples(self.config.data, split, self.kind)

    def features(self, examples: tf.data.Dataset, batch_size: int, training: bool,
                 seed: int | None = None, labeled: bool = True) -> tf.data.Dataset:
        """Model batches; `labeled` False ignores the examples' labels (prediction)."""
        from electra_tf.finetune.features import make_features

        labels = self.labels if labeled else None
        return make_features(examples, self.tokenizer, labels, kind=self.kind,
                             seq_length=self.config.data.seq_length, batch_size=batch_size,
                             training=training,
                             seed=self.config.train.seed if seed is None else seed)

    def dataset_fn(self, split: str):
        if split == "eval" and not self.has_validation:
            return None
        training = split == "train"
        global_batch = self.config.train.batch_size

        def fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
            examples = self.examples(SPLIT_OF[split])
            if context.num_input_pipelines > 1:
                examples = examples.shard(context.num_input_pipelines, context.input_pipeline_id)
            return self.features(examples, context.get_per_replica_batch_size(global_batch),
                                 training, self.config.train.seed + context.input_pipeline_id)

        return fn

    @property
    def tokens_per_example(self) -> int:
        return self.config.data.seq_length

    # ------------------------------------------------------------------ inside the step

    def loss_normalizers(self, batch) -> dict[str, tf.Tensor]:
        return {"weight": tf.reduce_sum(_weight(batch))}

    def _loss_and_sums(self, logits, batch):
        weight = _weight(batch)
        if self.kind == "regression":
            total = losses.regression_loss(logits[:, 0], batch["label"], weight)
            return total, {"loss": total, "weight": tf.reduce_sum(weight)}
        labels = batch["label_ids"] if self.kind == "tagging" else batch["label"]
        total = losses.classification_loss(logits, labels, weight)
        return total, {"loss": total, "weight": tf.reduce_sum(weight),
                       "correct": losses.correct_count(logits, labels, weight)}

    def _logits(self, model, batch, training: bool):
        return model(batch["input_ids"], batch["input_mask"], batch["segment_ids"],
                     training=training)

    def train_step(self, model, batch, context: StepContext) -> StepOutput:
        total, sums = self._loss_and_sums(self._logits(model, batch, True), batch)
        return StepOutput(loss=total / tf.maximum(context.normalizers["weight"], 1e-6),
                          sums=sums)

    def eval_step(self, model, batch, context: StepContext) -> EvalOutput:
        logits = self._logits(model, batch, False)
        _, sums = self._loss_and_sums(logits, batch)
        return EvalOutput(sums=sums, examples=self.example_outputs(logits, batch))

    def example_outputs(self, logits, batch) -> dict[str, tf.Tensor]:
        """Per-example tensors gathered on the host for metrics and predictions."""
        out = {"example_id": batch["example_id"], "example_weight": batch["example_weight"]}
        if self.kind == "regression":
            out.update(prediction=logits[:, 0], label=batch["label"])
        elif self.kind == "classification":
            out.update(probabilities=tf.nn.softmax(logits, axis=-1), label=batch["label"])
        else:
            out.update(prediction=tf.argmax(logits, axis=-1, output_type=tf.int32),
                       probabilities=tf.reduce_max(tf.nn.softmax(logits, axis=-1), axis=-1),
                       label_ids=batch["label_ids"], word_index=batch["word_index"],
                       num_words=batch["num_words"])
        return out

    def sum_shapes(self) -> dict[str, tuple[int, ...]]:
        shapes: dict[str, tuple[int, ...]] = {"loss": (), "weight": ()}
        if self.kind != "regression":
            shapes["correct"] = ()
        return shapes

    # ------------------------------------------------------------------ on the host

    def metrics(self, sums: dict[str, np.ndarray],
                examples: dict[str, np.ndarray] | None = None) -> dict[str, float]:
        weight = float(sums["weight"])
        values = {"loss": float(sums["loss"]) / weight if weight else 0.0}
        if "correct" in sums:
            values["accuracy"] = float(sums["correct"]) / weight if weight else 0.0
        if examples:
            values.update(task_metrics(self.kind, examples, self.labels))
        return values

    def resume_problems(self, saved_config: FinetuneConfig) -> list[str]:
        problems = []
        if saved_config.model != self.config.model:
            problems.append("model (the encoder's sizes)")
        for name in ("kind", "num_labels"):
            if getattr(saved_config.task, name) != getattr(self.config.task, name):
                problems.append(f"task.{name}")
        if saved_config.data.seq_length != self.config.data.seq_length:
            problems.append("data.seq_length")
        if saved_config.train.batch_size != self.config.train.batch_size:
            problems.append("train.batch_size")
        return problems

    def read_config(self, path: str) -> FinetuneConfig:
        return read_finetune_config(path)


def task_metrics(kind: str, examples: dict[str, np.ndarray],
                 labels: LabelSet | None) -> dict[str, float]:
    """The task's metrics from gathered per-example outputs (padding examples are skipped)."""
    from electra_tf.finetune import metrics as m

    weights = np.asarray(examples["example_weight"])
    if kind == "regression":
        return m.regression_metrics(examples["label"], examples["prediction"], weights)
    assert labels is not None, f"task kind {kind} has a label set"
    if kind == "classification":
        predictions = np.argmax(examples["probabilities"], axis=-1)
        return m.classification_metrics(examples["label"], predictions, len(labels), weights)
    true_seqs, pred_seqs = word_tag_sequences(examples, labels)
    return m.entity_metrics(true_seqs, pred_seqs)


def word_tag_sequences(examples: dict[str, np.ndarray], labels: LabelSet
                       ) -> tuple[list[list[str]], list[list[str]]]:
    """True and predicted tags of the words that have a position (truncated words, which
    have neither, are left out of both), per real example."""
    names = labels.names
    true_seqs, pred_seqs = [], []
    for row in np.flatnonzero(np.asarray(examples["example_weight"]) > 0):
        at = np.asarray(examples["word_index"][row]) >= 0
        true_seqs.append([names[i] for i in np.asarray(examples["label_ids"][row])[at]])
        pred_seqs.append([names[i] for i in np.asarray(examples["prediction"][row])[at]])
    return true_seqs, pred_seqs
