"""FinetuneTask's step functions on hand-made batches, and the fine-tuning config's derivations."""

import dataclasses
import math

import numpy as np
import pytest
import tensorflow as tf

from electra_tf.config import ConfigError
from electra_tf.finetune.config import (
    FinetuneSpec,
    read_finetune_config,
    resolve_config,
    save_finetune_config,
)
from electra_tf.finetune.labels import LabelSet
from electra_tf.finetune.task import FinetuneTask
from electra_tf.training.task import StepContext

TINY = dict(preset="tiny", vocab_size=64, dropout=0.0, attention_dropout=0.0)


def spec(kind="classification", **sections):
    source = {"classification": "wordnet_lexname", "tagging": "wordnet_tagging",
              "regression": "csv"}[kind]
    data = {"source": source, "seq_length": 8}
    if kind == "regression":
        data["train_path"] = "train.csv"
    base = {"model": dict(TINY), "task": {"kind": kind}, "data": data}
    for name, values in sections.items():
        base[name] = {**base.get(name, {}), **values}
    return FinetuneSpec(base, "test.yaml")


def make_task(kind, num_labels=3):
    config = resolve_config(spec(kind), model=None, num_train_examples=100,
                            num_labels=None if kind == "regression" else num_labels)
    labels = None if kind == "regression" else LabelSet(tuple("abcdefg"[:num_labels]), kind)
    return FinetuneTask(config, None, labels)


def batch(kind, b=4, length=8, seed=0, padding_examples=1):
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, 64, size=(b, length)).astype(np.int32)
    mask = np.ones((b, length), np.int32)
    mask[1, 5:] = 0
    weight = np.ones(b, np.float32)
    weight[b - padding_examples:] = 0.0
    out = {"input_ids": ids * mask, "input_mask": mask, "segment_ids": np.zeros_like(ids),
           "example_weight": weight, "example_id": np.arange(b, dtype=np.int64)}
    if kind == "regression":
        out["label"] = rng.normal(size=b).astype(np.float32)
    else:
        out["label"] = rng.integers(0, 3, size=b).astype(np.int32)
    if kind == "tagging":
        out["label_ids"] = rng.integers(0, 3, size=(b, length)).astype(np.int32)
        label_weights = (rng.random((b, length)) > 0.3).astype(np.float32) * mask
        label_weights[:, 0] = 0.0
        out["label_weights"] = label_weights
        out["word_index"] = np.where(label_weights > 0, np.cumsum(label_weights, 1) - 1,
                                     -1).astype(np.int32)
        out["num_words"] = label_weights.sum(1).astype(np.int32)
    return {k: tf.constant(v) for k, v in out.items()}


def context(task, full):
    return StepContext(seed=tf.constant(0, tf.int64), example_ids=full["example_id"],
                       normalizers=task.loss_normalizers(full))


def reference_loss(kind, logits, b):
    logits = np.asarray(logits, np.float64)
    if kind == "regression":
        weight = b["example_weight"].numpy()
        return float(np.sum((logits[:, 0] - b["label"].numpy()) ** 2 * weight) / weight.sum())
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    if kind == "tagging":
        weight = b["label_weights"].numpy() * b["example_weight"].numpy()[:, None]
        picked = np.take_along_axis(log_probs, b["label_ids"].numpy()[..., None], -1)[..., 0]
    else:
        weight = b["example_weight"].numpy()
        picked = np.take_along_axis(log_probs, b["label"].numpy()[:, None], -1)[:, 0]
    return float(-(picked * weight).sum() / weight.sum())


@pytest.mark.parametrize("kind", ["classification", "regression", "tagging"])
def test_loss_is_the_weighted_mean_and_splits_exactly(kind):
    task = make_task(kind)
    model = task.build_model("float32")
    full = batch(kind)
    logits = model(full["input_ids"], full["input_mask"], full["segment_ids"], training=False)
    out = task.train_step(model, full, context(task, full))
    assert float(out.loss) == pytest.approx(reference_loss(kind, logits, full), rel=1e-5)
    halves = [{k: v[i * 2:(i + 1) * 2] for k, v in full.items()} for i in range(2)]
    split = sum(float(task.train_step(model, h, context(task, full)).loss) for h in halves)
    assert split == pytest.approx(float(out.loss), rel=1e-5)
    assert set(out.sums) == set(task.sum_shapes())


def test_padding_examples_do_not_count():
    task = make_task("classification")
    model = task.build_model("float32")
    a = batch("classification", padding_examples=1)
    b = dict(a, input_ids=tf.concat([a["input_ids"][:3], a["input_ids"][3:] + 1], 0),
             label=tf.concat([a["label"][:3], (a["label"][3:] + 1) % 3], 0))
    la = task.train_step(model, a, context(task, a)).loss
    lb = task.train_step(model, b, context(task, b)).loss
    assert float(la) == pytest.approx(float(lb), rel=1e-6)


@pytest.mark.parametrize("kind", ["classification", "regression", "tagging"])
def test_eval_step_gives_the_task_metrics(kind):
    task = make_task(kind)
    model = task.build_model("float32")
    b = batch(kind, padding_examples=0)
    out = task.eval_step(model, b, context(task, b))
    examples = {k: v.numpy() for k, v in out.examples.items()}
    values = task.metrics({k: v.numpy() for k, v in out.sums.items()}, examples)
    expected = {"classification": {"accuracy", "macro_f1", "mcc"},
                "regression": {"pearson", "spearman", "mse"},
                "tagging": {"precision", "recall", "f1", "token_accuracy", "accuracy"}}[kind]
    assert expected | {"loss"} <= set(values)
    assert task.main_metric in values
    if kind == "classification":  # sums and per-example outputs agree
        predictions = examples["probabilities"].argmax(-1)
        assert values["accuracy"] == pytest.approx(np.mean(predictions == b["label"].numpy()))


def test_gradient_steps_learn_a_batch():
    task = make_task("classification")
    model = task.build_model("float32")
    b = batch("classification", padding_examples=0)
    optimizer = tf.keras.optimizers.Adam(1e-3)
    first = None
    for _ in range(30):
        with tf.GradientTape() as tape:
            loss = task.train_step(model, b, context(task, b)).loss
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        first = float(loss) if first is None else first
    assert float(loss) < 0.2 * first


def test_multipliers_follow_the_config():
    task = make_task("classification")
    model = task.build_model("float32")
    factors = task.learning_rate_multipliers(model)
    assert len(factors) == len(model.trainable_variables)
    assert min(factors) == pytest.approx(0.8 ** 3)  # tiny: 2 layers, embeddings at depth 3
    off = FinetuneTask(dataclasses.replace(task.config, task=dataclasses.replace(
        task.config.task, layerwise_lr_decay=1.0)), None, task.labels)
    assert off.learning_rate_multipliers(model) is None


# ---------------------------------------------------------------------------------------------
# Config derivations
# ---------------------------------------------------------------------------------------------


def test_derived_training_schedule():
    config = resolve_config(spec(), model=None, num_train_examples=10_000, num_labels=4)
    train = config.train
    assert (config.task.epochs, train.batch_size) == (3.0, 32)
    assert train.steps == math.ceil(10_000 * 3 / 32)
    assert train.warmup_steps == round(0.1 * train.steps)
    assert train.learning_rate == 3e-4 and config.task.layerwise_lr_decay == 0.8  # small
    assert (train.adam_epsilon, train.weight_decay, train.clip_norm) == (1e-6, 0.01, 1.0)
    assert train.eval_every == math.ceil(train.steps / 3)
    assert config.task.num_labels == 4 and config.task.main_metric == "accuracy"


def test_small_data_sets_train_ten_epochs_and_sizes_pick_rates():
    small = resolve_config(spec(), model=None, num_train_examples=2000, num_labels=2)
    assert small.task.epochs == 10.0 and small.train.steps == math.ceil(2000 * 10 / 32)
    large = resolve_config(spec(model=dict(preset="large", vocab_size=64)), model=None,
                           num_train_examples=5000, num_labels=2)
    assert large.train.learning_rate == 5e-5 and large.task.layerwise_lr_decay == 0.9
    base = resolve_config(spec(model=dict(preset="base", vocab_size=64)), model=None,
                          num_train_examples=5000, num_labels=2)
    assert base.train.learning_rate == 1e-4 and base.task.layerwise_lr_decay == 0.8


def test_explicit_values_win_and_the_saved_config_derives_nothing(tmp_path):
    given = spec(task={"epochs": 2, "layerwise_lr_decay": 0.7, "init": "none"},
                 train={"steps": 50, "learning_rate": 1e-5, "batch_size": 16})
    config = resolve_config(given, model=None, num_train_examples=10_000, num_labels=3)
    assert (config.train.steps, config.train.learning_rate, config.train.warmup_steps) == \
        (50, 1e-5, 5)
    assert config.task.layerwise_lr_decay == 0.7
    path = str(tmp_path / "config.yaml")
    save_finetune_config(config, path)
    assert read_finetune_config(path) == config


def test_config_errors_name_the_field():
    with pytest.raises(ConfigError, match="task.kind"):
        resolve_config(spec(task={"kind": "ranking"}), model=None, num_train_examples=10,
                       num_labels=2)
    with pytest.raises(ConfigError, match="unknown field"):
        resolve_config(spec(task={"epoch": 3}), model=None, num_train_examples=10, num_labels=2)
    with pytest.raises(ConfigError, match="training split has 3 labels"):
        resolve_config(spec(task={"num_labels": 2}), model=None, num_train_examples=10,
                       num_labels=3)
    with pytest.raises(ConfigError, match="differ"):
        resolve_config(spec(task={"init": "a"}, train={"init_checkpoint": "b"}), model=None,
                       num_train_examples=10, num_labels=2)
    for task, match in (({"init": "run", "word_norm": 0}, "task.word_norm must be > 0"),
                        ({"word_norm": 0.16}, "task.init is none")):
        with pytest.raises(ConfigError, match=match):
            resolve_config(spec(task=task), model=None, num_train_examples=10, num_labels=2)


def test_warm_start_passes_word_norm(monkeypatch):
    import electra_tf.finetune.init as init

    calls = []
    monkeypatch.setattr(init, "load_encoder", lambda *args: calls.append(args) or "src")
    for word_norm in (None, 0.16):
        config = resolve_config(spec(task={"init": "run", "word_norm": word_norm}), model=None,
                                num_train_examples=10, num_labels=2)
        FinetuneTask(config, None, LabelSet(("a", "b"), "classification")).warm_start(
            "model", "run", False)
    assert calls == [("model", "run", None), ("model", "run", 0.16)]


# ---------------------------------------------------------------------------------------------
# TFDS mock data through prepare_task and the task's steps
# ---------------------------------------------------------------------------------------------

TFDS_CASES = {"glue/sst2": "classification", "glue/mnli": "classification",
              "glue/stsb": "regression", "conll2003": "tagging"}


@pytest.mark.parametrize("name", sorted(TFDS_CASES))
def test_tfds_mock_tasks_run(name, tmp_path):
    import tensorflow_datasets as tfds

    from electra_tf.data.tokenization import SPECIAL_TOKENS
    from electra_tf.finetune.setup import prepare_task

    kind = TFDS_CASES[name]
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(list(SPECIAL_TOKENS) + list("abcdefghij")) + "\n")
    given = FinetuneSpec({
        "model": dict(TINY), "task": {"kind": kind, "vocab_file": str(vocab)},
        "data": {"source": "tfds", "tfds_name": name, "seq_length": 16,
                 "allow_unaligned": kind == "tagging"},
        "train": {"run_dir": str(tmp_path / "run"), "batch_size": 4}}, "mock.yaml")
    with tfds.testing.mock_data(num_examples=6, policy=tfds.testing.MockPolicy.USE_CODE):
        task = prepare_task(given)
        assert task.config.train.steps == math.ceil(6 * 10 / 4)  # small data: 10 epochs
        model = task.build_model("float32")
        ctx = tf.distribute.InputContext()
        train = next(iter(task.dataset_fn("train")(ctx)))
        out = task.train_step(model, train, context(task, train))
        assert np.isfinite(float(out.loss))
        held_out = next(iter(task.dataset_fn("eval")(ctx)))
        values = task.metrics({k: v.numpy() for k, v in
                               task.eval_step(model, held_out, context(task, held_out))
                               .sums.items()},
                              {k: v.numpy() for k, v in task.eval_step(
                                  model, held_out, context(task, held_out)).examples.items()})
    assert task.main_metric in values


# ---------------------------------------------------------------------------------------------
# Through the loop: a resume mid-epoch is bit-identical
# ---------------------------------------------------------------------------------------------


def test_resume_mid_epoch_is_bit_identical(tmp_path):
    from electra_tf.data.tokenization import SPECIAL_TOKENS
    from electra_tf.finetune.setup import prepare_task
    from electra_tf.finetune.synthetic import SYNTHETIC_WORDS, write_synthetic_task
    from electra_tf.training.trainer import Trainer

    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(list(SPECIAL_TOKENS) + list(SYNTHETIC_WORDS)) + "\n")
    data = write_synthetic_task("classification", str(tmp_path / "data"), train=200,
                                validation=16, test=16)

    def task(run_dir):
        return prepare_task(FinetuneSpec({
            "model": {"preset": "tiny", "embedding_size": 32, "hidden_size": 32,
                      "num_heads": 2, "intermediate_size": 64, "dropout": 0.1},
            "task": {"kind": "classification", "vocab_file": str(vocab)},
            "data": {"source": "csv", "train_path": data.train_path,
                     "validation_path": data.validation_path, "seq_length": 16},
            "train": {"run_dir": str(run_dir), "batch_size": 8, "steps": 12,
                      "checkpoint_every": 6, "eval_every": 6, "log_every": 6}}, "resume"))

    straight = Trainer(task(tmp_path / "a")).train()
    first = Trainer(task(tmp_path / "b")).train(stop_at=6)  # 6 of 25 steps of an epoch
    assert first.status == "stopped"
    resumed = Trainer(task(tmp_path / "b")).train()
    assert resumed.step == straight.step == 12
    assert resumed.weights_digest == straight.weights_digest
    assert resumed.eval_metrics == straight.eval_metrics


def test_the_random_init_control_drops_word_norm():
    from electra_tf.finetune.baseline import random_init_spec

    given = spec(task={"init": "run", "word_norm": 0.16}, train={"run_dir": "runs/ft"})
    config = resolve_config(given, model=None, num_train_examples=10, num_labels=2)
    control = random_init_spec(given, FinetuneTask(config, None, None))
    resolved = resolve_config(control, model=None, num_train_examples=10, num_labels=2)
    assert (resolved.task.init, resolved.task.word_norm) == ("none", None)
    assert resolved.train.run_dir == "runs/ft_random_init"
