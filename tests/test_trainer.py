"""The pretraining runner: loss falls, summaries, resume, strategies, accumulation, NaN stop."""

import glob
import os
import signal
import threading
import time

import numpy as np
import pytest
import tensorflow as tf
from synthetic import dataset_fn, synthetic_examples, tiny_config

from electra_tf.config import ConfigError
from electra_tf.pretraining import TRAIN_TAGS, PretrainingTask
from electra_tf.training.trainer import NonFiniteLossError, Trainer

SEQ, VOCAB = 32, 256


def make_config(run_dir, **train):
    settings = dict(run_dir=str(run_dir), batch_size=16, steps=20, log_every=5,
                    checkpoint_every=10, warmup_steps=4, learning_rate=1e-3,
                    steps_per_execution=5, eval_every=0, eval_steps=2, text_summary_every=0)
    settings.update(train)
    return tiny_config(**settings, seq_length=SEQ, vocab_size=VOCAB)


@pytest.fixture(scope="module")
def examples():
    return synthetic_examples(128, SEQ, VOCAB, max_predictions=4)


def make_trainer(config, examples, strategy=None):
    batch = config.train.batch_size
    return Trainer(PretrainingTask(config, train_dataset_fn=dataset_fn(examples, batch),
                                   eval_dataset_fn=dataset_fn(examples, batch)),
                   strategy=strategy)


def read_scalars(logdir):
    """{tag: {step: value}} from the event files under `logdir` (text summaries as bytes)."""
    scalars = {}
    for path in glob.glob(os.path.join(logdir, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if not value.HasField("tensor"):
                    number = value.simple_value
                else:
                    array = tf.make_ndarray(value.tensor)
                    number = array.item() if array.dtype.kind != "O" else array.ravel()[0]
                scalars.setdefault(value.tag, {})[event.step] = number
    return scalars


def test_loss_falls_and_every_tag_is_written(tmp_path, examples):
    config = make_config(tmp_path, steps=60, log_every=10, eval_every=30, learning_rate=2e-3)
    result = make_trainer(config, examples).train()
    assert result.status == "completed" and result.step == 60
    train = read_scalars(tmp_path / "tensorboard" / "train")
    assert set(TRAIN_TAGS) <= set(train), set(TRAIN_TAGS) - set(train)
    losses = train["loss"]
    assert losses[60] < 0.8 * losses[10]
    # The logged loss is the window's, made of the two logged losses (loss = mlm + 50 disc).
    assert losses[60] == pytest.approx(train["masked_lm_loss"][60] + 50 * train["disc_loss"][60],
                                       rel=1e-5)
    evals = read_scalars(tmp_path / "tensorboard" / "eval")
    assert {"loss", "masked_lm_accuracy", "disc_auc", "disc_recall"} <= set(evals)
    assert set(evals["loss"]) == {30, 60}
    assert (tmp_path / "config.yaml").exists()
    assert result.checkpoint.endswith("ckpt-60")


def test_interrupt_and_resume_equals_an_uninterrupted_run(tmp_path, examples):
    # Dropout stays on: its seed states are part of the checkpoint.
    full = make_trainer(make_config(tmp_path / "full"), examples).train()

    first = make_trainer(make_config(tmp_path / "split"), examples).train(stop_at=10)
    assert first.status == "stopped" and first.step == 10
    resumed = make_trainer(make_config(tmp_path / "split"), examples).train()
    assert resumed.step == 20
    assert resumed.weights_digest == full.weights_digest


def test_resume_by_replaying_the_input_equals_an_uninterrupted_run(tmp_path, examples,
                                                                    monkeypatch):
    # Where the input iterator cannot be checkpointed (TPU, multi-worker), a resumed run skips
    # the batches already trained on instead of restoring the iterator.
    from electra_tf.training import trainer as trainer_module

    monkeypatch.setattr(trainer_module, "_checkpointable", lambda iterator: False)
    full = make_trainer(make_config(tmp_path / "full"), examples).train()
    make_trainer(make_config(tmp_path / "split"), examples).train(stop_at=10)
    resumed_trainer = make_trainer(make_config(tmp_path / "split"), examples)
    assert resumed_trainer._skip_steps == 10
    resumed = resumed_trainer.train()
    assert resumed.step == 20 and resumed.weights_digest == full.weights_digest


def test_sigterm_saves_and_the_run_resumes_identically(tmp_path, examples):
    full = make_trainer(make_config(tmp_path / "full", steps_per_execution=1),
                        examples).train()
    trainer = make_trainer(make_config(tmp_path / "killed", steps_per_execution=1), examples)

    def preempt():  # what a TPU VM or spot GPU does: SIGTERM mid-run
        while int(trainer.global_step.numpy()) < 7:
            time.sleep(0.005)
        os.kill(os.getpid(), signal.SIGTERM)

    killer = threading.Thread(target=preempt, daemon=True)
    killer.start()
    stopped = trainer.train()
    killer.join(timeout=30)
    assert stopped.status == "preempted" and 7 <= stopped.step < 20
    assert stopped.checkpoint.endswith(f"ckpt-{stopped.step}")
    resumed = make_trainer(make_config(tmp_path / "killed", steps_per_execution=1),
                           examples).train()
    assert resumed.step == 20 and resumed.weights_digest == full.weights_digest


def _losses(run_dir):
    return read_scalars(os.path.join(run_dir, "tensorboard", "train"))["loss"]


def test_mirrored_strategy_matches_the_default_strategy(tmp_path, examples):
    devices = [d.name for d in tf.config.list_logical_devices("CPU")][:2]
    assert len(devices) == 2, "conftest.py should create two logical CPUs"
    settings = dict(steps=6, log_every=1, steps_per_execution=1, checkpoint_every=100)

    def config(name):  # dropout masks depend on the batch split; switch it off
        base = make_config(tmp_path / name, **settings)
        base.model.dropout = base.model.attention_dropout = 0.0
        return base

    make_trainer(config("default"), examples).train()
    mirrored = tf.distribute.MirroredStrategy(devices)
    make_trainer(config("mirrored"), examples, strategy=mirrored).train()
    a, b = _losses(tmp_path / "default"), _losses(tmp_path / "mirrored")
    assert sorted(a) == sorted(b) == list(range(1, 7))
    np.testing.assert_allclose([a[s] for s in a], [b[s] for s in a], rtol=0, atol=1e-5)


def test_gradient_accumulation_equals_one_big_batch(tmp_path, examples):
    def config(name, accum):
        c = make_config(tmp_path / name, batch_size=32, grad_accum_steps=accum, steps=5,
                        log_every=1, steps_per_execution=1, checkpoint_every=100)
        c.model.dropout = c.model.attention_dropout = 0.0
        return c

    make_trainer(config("one", 1), examples).train()
    make_trainer(config("two", 2), examples).train()
    a, b = _losses(tmp_path / "one"), _losses(tmp_path / "two")
    np.testing.assert_allclose([a[s] for s in sorted(a)], [b[s] for s in sorted(a)],
                               rtol=0, atol=1e-5)


def test_jit_compiled_and_bfloat16_runs(tmp_path, examples):
    result = make_trainer(make_config(tmp_path / "xla", jit_compile=True, steps=10,
                                      precision="mixed_bfloat16"), examples).train()
    assert result.status == "completed" and np.isfinite(result.metrics["loss"])
    assert result.metrics["masked_lm_loss"] > 0


def test_nan_loss_stops_the_run_and_keeps_the_last_checkpoint(tmp_path, examples):
    trainer = make_trainer(make_config(tmp_path, steps=30, checkpoint_every=10), examples)
    trainer.train(stop_at=10)
    saved = trainer.checkpoints.latest
    assert saved.endswith("ckpt-10")
    # The weights blow up: the next step's loss is NaN.
    kernel = trainer.model.discriminator.head_output.kernel
    kernel.assign(tf.fill(kernel.shape, float("nan")))
    with pytest.raises(NonFiniteLossError, match="ckpt-10"):
        trainer.train()
    assert trainer.checkpoints.latest == saved
    reader = tf.train.load_checkpoint(saved)
    for name, _ in tf.train.list_variables(saved):
        if "VARIABLE_VALUE" in name and "model/" in name:
            value = reader.get_tensor(name)
            if value.dtype.kind == "f":
                assert np.all(np.isfinite(value)), name


def test_non_finite_weights_are_never_checkpointed(tmp_path, examples):
    # The loss is checked before the last update of a chunk; the checkpoint after it checks
    # the weights themselves.
    trainer = make_trainer(make_config(tmp_path, steps=20, checkpoint_every=10), examples)
    trainer.train(stop_at=10)
    saved = trainer.checkpoints.latest
    kernel = trainer.model.discriminator.head_output.kernel
    kernel.assign(tf.fill(kernel.shape, float("inf")))
    with pytest.raises(NonFiniteLossError, match="ckpt-10"):
        trainer._save_checkpoint(11)
    assert trainer.checkpoints.latest == saved


def test_a_finished_run_is_not_trained_or_saved_again(tmp_path, examples, caplog):
    make_trainer(make_config(tmp_path, steps=10, log_every=5), examples).train()
    index = tmp_path / "checkpoints" / "ckpt-10.index"
    before = index.stat().st_mtime_ns
    with caplog.at_level("WARNING"):
        result = make_trainer(make_config(tmp_path, steps=5), examples).train()
    assert result.step == 10 and result.checkpoint.endswith("ckpt-10")
    assert index.stat().st_mtime_ns == before
    assert "already at step 10, not below train.steps=5" in caplog.text


def test_raising_steps_continues_a_finished_run(tmp_path, examples):
    make_trainer(make_config(tmp_path, steps=10), examples).train()
    trainer = make_trainer(make_config(tmp_path, steps=20), examples)
    assert int(trainer.global_step.numpy()) == 10  # resumed, not restarted
    result = trainer.train()
    assert result.status == "completed" and result.step == 20
    assert result.checkpoint.endswith("ckpt-20")
    assert float(trainer.optimizer.learning_rate) == 0.0  # the new schedule ran to its end


def test_too_little_held_out_data_is_said_at_start(tmp_path, examples, caplog):
    few = {k: v[:3] for k, v in examples.items()}
    config = make_config(tmp_path)

    def no_full_batch(context):
        return tf.data.Dataset.from_tensor_slices(few).batch(16, drop_remainder=True)

    with caplog.at_level("WARNING"):
        trainer = Trainer(PretrainingTask(config, train_dataset_fn=dataset_fn(examples, 16),
                                          eval_dataset_fn=no_full_batch))
    assert "no full batch of train.batch_size=16" in caplog.text
    assert trainer.evaluate() == {}


def test_grad_norm_mean_leaves_out_steps_the_loss_scaler_skipped():
    from electra_tf.training import metrics

    sums = {k: v.numpy() for k, v in metrics.empty_sums("mlm").items()}
    sums.update(grad_norm=6.0, grad_norm_steps=2.0)  # 3 steps, one skipped (inf, left out)
    assert metrics.finalize(sums, "mlm")["grad_norm"] == 3.0
    sums.update(grad_norm=0.0, grad_norm_steps=0.0)
    assert np.isnan(metrics.finalize(sums, "mlm")["grad_norm"])


def test_resuming_with_a_different_model_is_a_clear_error(tmp_path, examples):
    make_trainer(make_config(tmp_path, steps=5, log_every=5), examples).train()
    changed = make_config(tmp_path, steps=5)
    changed.model.hidden_size = 64
    with pytest.raises(ConfigError, match="different model"):
        make_trainer(changed, examples)


def test_warm_start_loads_weights_with_fresh_optimizer_state(tmp_path, examples):
    source = make_trainer(make_config(tmp_path / "source", steps=5, log_every=5), examples)
    source.train()
    config = make_config(tmp_path / "target", steps=5, log_every=5,
                         init_checkpoint=str(tmp_path / "source"))
    target = make_trainer(config, examples)
    for a, b in zip(source.model.trainable_variables, target.model.trainable_variables,
                    strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert int(target.global_step.numpy()) == 0
    assert int(target.optimizer.iterations.numpy()) == 0


def test_float16_uses_dynamic_loss_scaling(tmp_path, examples):
    result = make_trainer(make_config(tmp_path, steps=10, precision="mixed_float16"),
                          examples).train()
    assert np.isfinite(result.metrics["loss"])
    # Dynamic loss scaling starts at 2**15 and halves on overflowing steps.
    assert 1.0 < result.metrics["loss_scale"] <= 2.0**15
    assert np.isfinite(result.metrics["grad_norm"])


def test_profiler_traces_the_configured_steps(tmp_path, examples):
    make_trainer(make_config(tmp_path, steps=6, log_every=3, profile_steps=[2, 3]),
                 examples).train()
    traces = glob.glob(str(tmp_path / "tensorboard" / "train" / "plugins" / "profile" / "*"
                           / "*.xplane.pb"))
    assert traces, "no profiler trace was written"


def test_input_pipelines_run_without_the_autotuning_thread_unless_asked(tmp_path, examples):
    # With tf.data's autotuning on, dropping a trained run's iterator waited 22-42 s for the
    # tuning thread (docs/performance.md, "Input autotuning").
    trainer = make_trainer(make_config(tmp_path / "off", steps=5), examples)
    for split in ("train", "eval"):
        assert trainer.input_dataset(split).options().autotune.enabled is False
    assert trainer.train().step == 5
    on = make_trainer(make_config(tmp_path / "on", steps=5, input_autotune=True), examples)
    assert on.input_dataset("train").options().autotune.enabled is True
