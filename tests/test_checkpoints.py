"""A run's checkpoints: resume checks, damaged checkpoints, and warm starts from another run."""

import dataclasses
import logging
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
from synthetic import dataset_fn, synthetic_examples

from electra_tf.config import ConfigError, config_from_dict, read_saved_config
from electra_tf.errors import CheckpointError, UserError
from electra_tf.interop import CheckpointMismatchError, load_pretrained, tf1_variables
from electra_tf.models import build_networks
from electra_tf.pretraining import PretrainingTask
from electra_tf.training.checkpoints import is_run_checkpoint, restore_networks
from electra_tf.training.run_dir import prepare_run_dir as prepare_task_run_dir
from electra_tf.training.trainer import Trainer

SEQ, VOCAB = 32, 256


def prepare_run_dir(config):
    prepare_task_run_dir(PretrainingTask(config))


def make_config(run_dir, **train):
    settings = dict(run_dir=str(run_dir), batch_size=8, steps=4, log_every=2,
                    checkpoint_every=2, warmup_steps=1, steps_per_execution=2, eval_every=0,
                    text_summary_every=0)
    settings.update(train)
    return config_from_dict({"model": {"preset": "tiny", "vocab_size": VOCAB},
                             "data": {"seq_length": SEQ}, "train": settings})


def make_trainer(config, examples):
    return Trainer(PretrainingTask(config, train_dataset_fn=dataset_fn(examples,
                                                                   config.train.batch_size)))


@pytest.fixture(scope="module")
def examples():
    return synthetic_examples(64, SEQ, VOCAB, max_predictions=4)


@pytest.fixture(scope="module")
def run(tmp_path_factory, examples):
    """A finished 4-step run with checkpoints at steps 2 and 4 (2-layer tiny model)."""
    run_dir = tmp_path_factory.mktemp("source") / "run"
    trainer = make_trainer(make_config(run_dir), examples)
    trainer.train()
    return run_dir, {name: v.numpy() for name, v in tf1_variables(trainer.model).items()}


@pytest.fixture
def copy(run, tmp_path):
    """A copy of the run, to damage."""
    target = tmp_path / "copy"
    shutil.copytree(run[0], target)
    return target


def networks_like(run_dir, **model):
    config = read_saved_config(os.path.join(run_dir, "config.yaml")).model
    return build_networks(dataclasses.replace(config, **model))


def weights(networks):
    return {name: v.numpy() for name, v in tf1_variables(networks).items()}


# ---------------------------------------------------------------- resuming with another config


@pytest.mark.parametrize("change, field", [
    (dict(train={"batch_size": 4}), "train.batch_size (8, now 4)"),
    (dict(objective={"mask_prob": 0.3}), "objective.max_predictions (4, now 9"),
])
def test_resume_with_other_batch_shapes_is_refused_before_config_yaml_changes(
        tmp_path, change, field):
    prepare_run_dir(make_config(tmp_path))
    saved = (tmp_path / "config.yaml").read_text()
    changed = make_config(tmp_path, **change.get("train", {}))
    for name, value in change.get("objective", {}).items():
        setattr(changed.objective, name, value)
    with pytest.raises(ConfigError) as error:
        prepare_run_dir(changed)
    assert field in str(error.value)
    assert f"train.init_checkpoint={tmp_path}" in str(error.value)
    assert (tmp_path / "config.yaml").read_text() == saved


def test_gradient_accumulation_may_change_on_resume(tmp_path):
    prepare_run_dir(make_config(tmp_path))
    prepare_run_dir(make_config(tmp_path, grad_accum_steps=2))  # the batches keep their shape
    assert read_saved_config(str(tmp_path / "config.yaml")).train.grad_accum_steps == 2


def test_resume_with_another_schedule_warns_how_the_learning_rate_jumps(tmp_path, caplog):
    prepare_run_dir(make_config(tmp_path, steps=100, warmup_steps=10, learning_rate=1e-3))
    prepare_run_dir(make_config(tmp_path, steps=100, warmup_steps=10, learning_rate=1e-3,
                                grad_accum_steps=2))
    assert "learning-rate schedule" not in caplog.text       # no checkpoint, no change: quiet
    (tmp_path / "checkpoints").mkdir()
    for step in (40, 100):
        (tmp_path / "checkpoints" / f"ckpt-{step}.index").write_bytes(b"")
    with caplog.at_level(logging.WARNING):
        prepare_run_dir(make_config(tmp_path, steps=400, warmup_steps=10, learning_rate=1e-3))
    # At step 100 the old schedule had decayed to 0; the new one is at 1e-3 * (1 - 100/400).
    assert ("train.steps 100 -> 400: the learning-rate schedule is recomputed, so at the "
            "resumed step 100 the learning rate goes from 0 to 0.00075") in caplog.text


def test_run_dir_that_is_a_file_is_a_config_error(tmp_path):
    path = tmp_path / "a_file"
    path.write_text("x")
    with pytest.raises(ConfigError, match="train.run_dir .*a_file is a file"):
        prepare_run_dir(make_config(path))


def test_unreachable_run_dir_is_a_config_error(tmp_path, monkeypatch):
    def unreachable(path):
        raise tf.errors.FailedPreconditionError(None, None, f"cannot reach {path}")

    monkeypatch.setattr(tf.io.gfile, "exists", unreachable)
    with pytest.raises(ConfigError, match="train.run_dir gs://bucket/run cannot be used"):
        prepare_run_dir(make_config("gs://bucket/run"))


# ---------------------------------------------------------------- damaged checkpoints


def test_missing_newest_checkpoint_resumes_from_the_previous_one(copy, examples, caplog):
    for path in (copy / "checkpoints").glob("ckpt-4.*"):
        path.unlink()
    with caplog.at_level(logging.WARNING):
        trainer = make_trainer(make_config(copy), examples)
    assert int(trainer.global_step.numpy()) == 2
    assert "ckpt-4: its files are missing" in caplog.text
    assert trainer.checkpoints.latest.endswith("ckpt-2")
    assert restore_networks(str(copy), networks_like(copy)).endswith("ckpt-2")


def test_corrupt_newest_checkpoint_resumes_from_the_previous_one(copy, run, examples, caplog):
    os.truncate(copy / "checkpoints" / "ckpt-4.data-00000-of-00001", 100_000)
    with caplog.at_level(logging.WARNING):
        trainer = make_trainer(make_config(copy), examples)
    assert int(trainer.global_step.numpy()) == 2
    assert "ckpt-4.data-00000-of-00001" in caplog.text
    networks = networks_like(copy)
    assert restore_networks(str(copy), networks).endswith("ckpt-2")
    assert not np.array_equal(weights(networks)["electra/embeddings/word_embeddings"],
                              run[1]["electra/embeddings/word_embeddings"])  # step 2, not 4


def test_no_restorable_checkpoint_is_an_error_not_a_fresh_start(copy, examples):
    for step in (2, 4):
        os.truncate(copy / "checkpoints" / f"ckpt-{step}.data-00000-of-00001", 100_000)
    with pytest.raises(CheckpointError, match="ckpt-4.*ckpt-2") as error:
        make_trainer(make_config(copy), examples)
    assert isinstance(error.value, UserError)
    with pytest.raises(CheckpointError, match="ckpt-4.*ckpt-2"):
        restore_networks(str(copy), networks_like(copy))


# ---------------------------------------------------------------- warm start from a run


@pytest.mark.parametrize("model, listed", [
    (dict(hidden_size=64, intermediate_size=256), "(128, 128) in the checkpoint, (64, 64)"),
    (dict(num_layers=1), "layer_1/attention/self/query/kernel: shape (128, 128) in the "
                         "checkpoint, not in the model"),
    (dict(num_layers=3), "layer_2/attention/self/query/kernel: missing"),
])
def test_warm_start_from_another_model_size_lists_the_mismatches(run, model, listed):
    networks = networks_like(run[0], **model)
    before = weights(networks)
    with pytest.raises(CheckpointMismatchError, match="allow_partial") as error:
        restore_networks(str(run[0]), networks)
    assert listed in str(error.value)
    assert all(np.array_equal(v, before[k]) for k, v in weights(networks).items())


def test_allow_partial_warm_start_logs_each_skipped_name(run, caplog):
    networks = networks_like(run[0], num_layers=1)
    with caplog.at_level(logging.WARNING):
        restore_networks(str(run[0]), networks, allow_partial=True)
    assert "electra/encoder/layer_1/output/dense/kernel" in caplog.text
    loaded = weights(networks)
    for name in loaded:
        np.testing.assert_array_equal(loaded[name], run[1][name])


def test_warm_start_from_a_checkpoint_prefix_or_the_checkpoints_directory(run, examples,
                                                                         tmp_path):
    prefix = str(run[0] / "checkpoints" / "ckpt-4")
    trainer = make_trainer(make_config(tmp_path / "a", init_checkpoint=prefix), examples)
    np.testing.assert_array_equal(weights(trainer.model)["generator_predictions/output_bias"],
                                  run[1]["generator_predictions/output_bias"])
    assert is_run_checkpoint(str(run[0] / "checkpoints")) and is_run_checkpoint(prefix)
    assert restore_networks(str(run[0] / "checkpoints"), networks_like(run[0])) == prefix
    with pytest.raises(CheckpointMismatchError, match="pass the run directory"):
        load_pretrained(networks_like(run[0]), prefix)  # not a TF1 checkpoint
