"""The training loop runs any Task: a toy regression task (not ELECTRA) trains through the same
loop, resumes bit-identically, writes its own metric names and keeps a best checkpoint."""

import glob
import os
from dataclasses import dataclass, field

import keras
import numpy as np
import pytest
import tensorflow as tf

from electra_tf.config import TrainConfig
from electra_tf.training.task import EvalOutput, StepOutput, Task
from electra_tf.training.trainer import Trainer

FEATURES = 4


@dataclass
class ToyConfig:
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_yaml(self) -> str:
        return f"train: {{steps: {self.train.steps}, batch_size: {self.train.batch_size}}}\n"


class ToyRegression(Task):
    """y = x . w_true + noise, fitted by one Dense layer; metrics `toy_mse` and `toy_score`."""

    log_keys = ("loss", "toy_mse")
    main_metric = "toy_score"

    def __init__(self, train: TrainConfig):
        self.config = ToyConfig(train)

    def build_model(self, precision):
        model = keras.Sequential([keras.Input((FEATURES,)), keras.layers.Dense(1)])
        model.build((None, FEATURES))
        return model

    def checkpoint_weights(self, model):
        return tf.train.Checkpoint(kernel=model.layers[0].kernel, bias=model.layers[0].bias)

    def dataset_fn(self, split):
        rng = np.random.default_rng(0 if split == "train" else 1)
        x = rng.normal(size=(256, FEATURES)).astype(np.float32)
        y = x @ np.arange(1, FEATURES + 1, dtype=np.float32) + 0.5

        def fn(context):
            data = tf.data.Dataset.from_tensor_slices({"x": x, "y": y})
            if split == "train":
                data = data.shuffle(256, seed=3).repeat()
            return data.batch(context.get_per_replica_batch_size(self.train_config.batch_size),
                              drop_remainder=True)

        return fn

    def loss_normalizers(self, batch):
        return {"count": tf.cast(tf.shape(batch["y"])[0], tf.float32)}

    def _errors(self, model, batch, training):
        return tf.square(model(batch["x"], training=training)[:, 0] - batch["y"])

    def train_step(self, model, batch, context):
        errors = self._errors(model, batch, True)
        total = tf.reduce_sum(errors)
        return StepOutput(total / context.normalizers["count"],
                          {"toy_mse/num": total, "toy_mse/den": tf.cast(tf.size(errors),
                                                                       tf.float32)})

    def eval_step(self, model, batch, context):
        errors = self._errors(model, batch, False)
        return EvalOutput({"toy_mse/num": tf.reduce_sum(errors),
                           "toy_mse/den": tf.cast(tf.size(errors), tf.float32)},
                          {"error": errors})

    def sum_shapes(self):
        return {"toy_mse/num": (), "toy_mse/den": ()}

    def metrics(self, sums, examples=None):
        mse = float(sums["toy_mse/num"] / sums["toy_mse/den"])
        values = {"loss": mse, "toy_mse": mse}
        if examples is not None:
            values["toy_score"] = -float(np.mean(examples["error"]))
            values["toy_examples"] = float(len(examples["error"]))
        return values

    def read_config(self, path):
        return ToyConfig(self.config.train)


def toy(run_dir, **train):
    settings = dict(run_dir=str(run_dir), batch_size=16, steps=12, log_every=3,
                    checkpoint_every=6, eval_every=6, warmup_steps=0, learning_rate=0.05,
                    steps_per_execution=3, text_summary_every=0, weight_decay=0.0)
    settings.update(train)
    return ToyRegression(TrainConfig(**settings))


def event_tags(logdir):
    tags = set()
    for path in glob.glob(os.path.join(logdir, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            tags.update(value.tag for value in event.summary.value)
    return tags


def test_a_toy_task_trains_through_the_loop_with_its_own_metric_names(tmp_path):
    result = Trainer(toy(tmp_path)).train()
    assert result.status == "completed" and result.step == 12
    assert result.eval_metrics["toy_mse"] < 0.5 * 30.0  # the mean of y^2 is ~30.25 at w = 0
    assert result.eval_metrics["toy_examples"] == 256  # the whole split, gathered
    train_tags = event_tags(tmp_path / "tensorboard" / "train")
    assert {"toy_mse", "loss", "learning_rate", "grad_norm"} <= train_tags
    assert not any(tag.startswith(("disc_", "masked_lm")) for tag in train_tags)
    assert "toy_score" in event_tags(tmp_path / "tensorboard" / "eval")
    assert result.best_checkpoint and result.best_checkpoint.endswith("ckpt-12")


def test_a_toy_task_resumes_bit_identically(tmp_path):
    straight = Trainer(toy(tmp_path / "straight")).train()
    first = Trainer(toy(tmp_path / "resumed")).train(stop_at=6)
    assert first.status == "stopped" and first.step == 6
    resumed = Trainer(toy(tmp_path / "resumed"))
    assert int(resumed.global_step.numpy()) == 6
    assert resumed.train().weights_digest == straight.weights_digest


def test_a_second_writer_of_a_run_dir_is_refused(tmp_path):
    from electra_tf.config import ConfigError

    holder = Trainer(toy(tmp_path))  # holds the run directory until it has trained
    with pytest.raises(ConfigError, match="is being written by another process"):
        Trainer(toy(tmp_path))
    holder.train()
    Trainer(toy(tmp_path, steps=15)).train()  # free again once the first run ended


def test_pretraining_warns_when_held_out_auc_stays_at_chance_too_long():
    from electra_tf.config import config_from_dict
    from electra_tf.pretraining import STALLED_AUC_STEP, PretrainingTask

    task = PretrainingTask(config_from_dict({}))
    assert task.progress_warning(STALLED_AUC_STEP - 1, {"disc_auc": 0.51}) is None
    assert task.progress_warning(STALLED_AUC_STEP, {"disc_auc": 0.70}) is None
    warning = task.progress_warning(STALLED_AUC_STEP, {"disc_auc": 0.51})
    assert "still near chance" in warning and "docs/plateau.md" in warning
